/**
 * Kinds `retrieval_max_score` and `retrieval_gumbel`: retrieval functions,
 * scores [b, n] -> int32 indices [b, 1].
 *
 * retrieval_max_score: config {}; inputs scores; expected indices.
 * retrieval_gumbel: config {invTemp}; inputs scores, noise (the Gumbel
 *   noise G [b, n], as the reference's mocked `_sample_gumbel` gives it);
 *   expected indices = argmax_j (invTemp·s_ij + G_ij), first on ties.
 * Random Gumbel cases keep a margin of at least 1e-3 between the best and
 * the second-best perturbed score of every row (computed in float64), so a
 * float32 port picks the same index; the tie cases tie exactly.
 * Rows with -Infinity (excluded candidates) are beyond the reference.
 */
import type { Rng } from '../../tensor/random.js';
import type { Tensor } from '../../tensor/tensor.js';
import { gumbelMaxRetrievalFn, maxScoreRetrievalFn } from '../../retrieval/retrieval.js';
import { EXACT, type Json, type Vector, type VectorKind } from '../format.js';
import { gridValues, lit, nums } from '../values.js';

function vector(
  kind: string,
  name: string,
  pins: string,
  beyondReference: string[],
  config: { [k: string]: Json },
  inputs: Record<string, Tensor>,
  compute: VectorKind['compute'],
): Vector {
  return {
    name: `${kind}.${name}`,
    kind,
    pins,
    beyondReference,
    config,
    inputs,
    expected: compute(config, inputs) as Record<string, Tensor>,
    beyondReferenceOutputs: [],
    tolerance: EXACT,
  };
}

/** Scores with -Infinity at the given (row, column) entries. */
function withExcluded(t: Tensor, cells: [number, number][]): Tensor {
  const n = t.shape[1]!;
  const v = nums(t);
  for (const [i, j] of cells) v[i * n + j] = -Infinity;
  return lit(v, t.shape, 'float32');
}

export const maxScore: VectorKind = {
  kind: 'retrieval_max_score',
  compute: (_config, inputs) => ({ indices: maxScoreRetrievalFn()(inputs['scores']!) }),
  generate(rng: Rng): Vector[] {
    const pin = "REFERENCE.md 'Retrieval functions': max-score is the arg-max of each row, the first index on ties.";
    const upstream = lit([1, 2, 0, -1, 0, 3, 4, -1, -1], [3, 3]);
    // few distinct values: many ties
    const ties = gridValues(rng, [8, 6], { lo: -2, hi: 2, denom: 2 });
    const excluded = withExcluded(gridValues(rng, [4, 5], { lo: -2, hi: 2, denom: 2 }), [
      [0, 0],
      [0, 3],
      [1, 1],
      [2, 0],
      [2, 1],
      [2, 2],
      [2, 3],
      [2, 4],
    ]);
    return [
      vector(this.kind, 'upstream', `${pin} The upstream test's example.`, [], {}, { scores: upstream }, this.compute),
      vector(this.kind, 'ties', pin, [], {}, { scores: ties }, this.compute),
      vector(
        this.kind,
        'excluded',
        `${pin} -Infinity marks an excluded candidate; a row with nothing finite returns 0.`,
        ['excluded candidates (-Infinity scores)'],
        {},
        { scores: excluded },
        this.compute,
      ),
    ];
  },
};

/** Quantised Gumbel noise (multiples of 1/1024, exact in float32) with a margin of 1e-3 per row. */
function gumbelNoise(rng: Rng, scores: Tensor, invTemp: number): Tensor {
  const [b, n] = scores.shape as [number, number];
  const s = nums(scores);
  const g = new Array<number>(b * n);
  for (let i = 0; i < b; i++) {
    for (;;) {
      for (let j = 0; j < n; j++) g[i * n + j] = Math.round(rng.gumbel() * 1024) / 1024;
      const v = s
        .slice(i * n, (i + 1) * n)
        .map((x, j) => (x === -Infinity ? -Infinity : invTemp * x + g[i * n + j]!))
        .filter((x) => x !== -Infinity)
        .sort((a, c) => c - a);
      if (v.length < 2 || v[0]! - v[1]! >= 1e-3) break;
    }
  }
  return lit(g, [b, n], 'float32');
}

export const gumbel: VectorKind = {
  kind: 'retrieval_gumbel',
  compute: (config, inputs) => {
    const noise = inputs['noise']!;
    return {
      indices: gumbelMaxRetrievalFn({ noise: () => noise, invTemp: config['invTemp'] as number })(inputs['scores']!),
    };
  },
  generate(rng: Rng): Vector[] {
    const pin =
      "REFERENCE.md 'Retrieval functions': Gumbel-max is the arg-max of invTemp·score + G with G the given Gumbel noise (G = -log(-log U)), the first index on ties.";
    const out: Vector[] = [];
    const add = (name: string, extra: string, beyond: string[], invTemp: number, scores: Tensor, noise: Tensor) =>
      out.push(vector(this.kind, name, `${pin}${extra}`, beyond, { invTemp }, { scores, noise }, this.compute));
    // the two upstream tests with mocked randomness
    add(
      'upstream_mock',
      " The upstream test's example (test_gumbel_max_retrieval_fn_with_mock_randomness).",
      [],
      1,
      lit([1, 0, 0, 100, 0, 0, 0, 0, -1], [3, 3]),
      lit([0.0, 0.1, -0.1, 1.0, -2.0, 3.3, 0.1, -0.1, 2.0], [3, 3]),
    );
    add(
      'upstream_temperature',
      ' The upstream temperature test (invTemp 0.5).',
      [],
      0.5,
      lit([1, 0, 0], [1, 3]),
      lit([0.0, 0.9, 0.0], [1, 3]),
    );
    for (const invTemp of [1, 0.5, 4]) {
      const scores = gridValues(rng, [6, 7]);
      add(
        `random_invtemp_${String(invTemp).replace('.', '_')}`,
        '',
        [],
        invTemp,
        scores,
        gumbelNoise(rng, scores, invTemp),
      );
    }
    {
      const scores = gridValues(rng, [4, 5]);
      add('invtemp_0', ' With invTemp 0 the noise alone decides.', [], 0, scores, gumbelNoise(rng, scores, 0));
    }
    // exact ties of the perturbed scores: the first index wins
    add(
      'ties',
      ' Here the perturbed scores tie exactly.',
      [],
      1,
      lit([0, 0.5, 0.25, 1, 1, 1, -1, 0, 0], [3, 3]),
      lit([0.5, 0, 0.25, 0, 0, 0, 1, 0, 0], [3, 3]),
    );
    {
      const scores = withExcluded(gridValues(rng, [4, 5]), [
        [0, 1],
        [0, 4],
        [1, 0],
        [1, 1],
        [1, 2],
        [1, 3],
        [1, 4],
        [3, 2],
      ]);
      const noise = gumbelNoise(rng, scores, 1);
      // the excluded entries get the largest noise of their row: they must still never be picked
      const g = nums(noise);
      for (let j = 0; j < 5; j++) if (nums(scores)[j] === -Infinity) g[j] = 20;
      add(
        'excluded',
        ' -Infinity scores are skipped whatever their noise; a row with nothing finite returns 0.',
        ['excluded candidates (-Infinity scores)'],
        1,
        scores,
        lit(g, [4, 5], 'float32'),
      );
    }
    return out;
  },
};
