/**
 * Kind `approx_top_k`: approximateTopKWithIndices(scores [b, n], k).
 *
 * config: {k}; inputs: scores (float32); expected: values [b, k] (float32,
 * copied from the scores, so exact) and indices [b, k] (int32, columns of
 * the original row), in group order. All exact.
 */
import type { Rng } from '../../tensor/random.js';
import { approximateTopKWithIndices } from '../../retrieval/topk.js';
import { EXACT, type Vector, type VectorKind } from '../format.js';
import { gridValues, lit, nums } from '../values.js';

const PIN =
  "REFERENCE.md 'Approximate top-k': each row is cut into k consecutive groups of n/k columns; from each group the largest score (first on ties) and its column in the original row, in group order.";

export const approxTopK: VectorKind = {
  kind: 'approx_top_k',
  compute: (config, inputs) => {
    const { values, indices } = approximateTopKWithIndices(inputs['scores']!, config['k'] as number);
    return { values, indices };
  },
  generate(rng: Rng): Vector[] {
    const cases: { name: string; k: number; scores: ReturnType<typeof lit>; extra?: string; beyond?: string[] }[] = [
      {
        name: 'upstream',
        k: 2,
        scores: lit([1, 2, 3, 4, 2, 1, 3, 4, 4, 1, 3, 2], [3, 4]),
        extra: " The upstream test's example.",
      },
      { name: 'ties_k3', k: 3, scores: gridValues(rng, [6, 12], { lo: -2, hi: 2, denom: 2 }) },
      {
        name: 'ties_k1',
        k: 1,
        scores: gridValues(rng, [5, 6], { lo: -1, hi: 1, denom: 1 }),
        extra: ' k = 1: the first maximum of the row.',
      },
      { name: 'k_equals_n', k: 5, scores: gridValues(rng, [3, 5]), extra: ' k = n: every column is its own group.' },
    ];
    {
      const s = nums(gridValues(rng, [4, 8], { lo: -2, hi: 2, denom: 2 }));
      for (const c of [0, 1, 2, 3, 9, 10, 16, 17, 18, 19]) s[c] = -Infinity;
      cases.push({
        name: 'excluded',
        k: 4,
        scores: lit(s, [4, 8]),
        extra: ' A group whose scores are all -Infinity yields -Infinity and its first column.',
        beyond: ['excluded candidates (-Infinity scores)'],
      });
    }
    return cases.map((c) => {
      const config = { k: c.k };
      const inputs = { scores: c.scores };
      return {
        name: `${this.kind}.${c.name}`,
        kind: this.kind,
        pins: `${PIN}${c.extra ?? ''}`,
        beyondReference: c.beyond ?? [],
        config,
        inputs,
        expected: this.compute(config, inputs) as Record<string, ReturnType<typeof lit>>,
        beyondReferenceOutputs: [],
        tolerance: EXACT,
      };
    });
  },
};
