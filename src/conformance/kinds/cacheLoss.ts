/**
 * Kind `cache_loss`: CacheClassificationLoss forward and gradients for a
 * fixed retrieval.
 *
 * config: {sources: [...] (sorted: the concatenation order), transform:
 *   {kind: 'identity'} | {kind: 'scale', scale} | {kind: 'tanh'}, topK: k | null,
 *   reducer: 'mean' | 'none', docNetwork: 'linear', maskEmptySlots, falseNegativeKey: 'id' | null}
 * inputs: cache/<s>/emb [n_s, d] (cached, stale embeddings), cache/<s>/feat
 *   [n_s, F] (the features), cache/<s>/valid [n_s] and cache/<s>/id [n_s]
 *   when used, queries [b, d], positives [b, d], W [F, d] (the doc network:
 *   fresh = feat @ W), positiveIds [b] (with falseNegativeKey), retrieved
 *   int32 [b, 1] (what the retrieval function returns: an index into the
 *   candidates, i.e. the concatenated cache, or the topK group maxima),
 *   cotangent ([b] with reducer 'none', [] with 'mean')
 * expected: trainingLoss, interpretableLoss, staleness (reduced), probPos,
 *   retrievedIndices (into the concatenated cache), hasNegative,
 *   refresh/<s>/indices, refresh/<s>/mask, refresh/<s>/emb (the refresh data
 *   per source), grad/queries, grad/positives, grad/W: the gradients of
 *   sum(cotangent * trainingLoss) (for 'mean': cotangent * the mean).
 *
 * Expected floats are computed in float64 (the float32 inputs cast exactly).
 *
 * New estimator options of the loss get their own kind (e.g.
 * `cache_loss_<option>`), reusing `lossInputs`, `buildCache`, `transformOf`
 * and `picks` from here: see README "Checking your own implementation".
 */
import type { Rng } from '../../tensor/random.js';
import { wrap, type Tensor } from '../../tensor/tensor.js';
import { mul, tanh } from '../../ops/elementwise.js';
import { sum } from '../../ops/reduce.js';
import { matmul } from '../../ops/linalg.js';
import { valueAndGrad } from '../../autograd/transforms.js';
import type { NegativeCache } from '../../cache/negativeCache.js';
import { CacheClassificationLoss, type CacheLossReturn } from '../../losses/cacheClassificationLoss.js';
import { scaleTransform, type ScoreTransform } from '../../losses/common.js';
import { FLOAT64_TOLERANCE, type Json, type Vector, type VectorKind } from '../format.js';
import { as64, gridValues, lit, nums } from '../values.js';

export type TransformConfig = { kind: 'identity' } | { kind: 'scale'; scale: number } | { kind: 'tanh' };

export interface LossConfig {
  sources: string[];
  transform: TransformConfig;
  topK: number | null;
  reducer: 'mean' | 'none';
  docNetwork: 'linear';
  maskEmptySlots: boolean;
  falseNegativeKey: 'id' | null;
}

/** The score transform named by the config (undefined for identity). */
export function transformOf(t: TransformConfig): ScoreTransform | undefined {
  if (t.kind === 'identity') return undefined;
  if (t.kind === 'scale') return scaleTransform(t.scale);
  return (s: Tensor) => tanh(s);
}

/** The record of caches (float64 copies) for `prefix<s>/...` inputs. */
export function buildCache(
  sources: readonly string[],
  inputs: Record<string, Tensor>,
  prefix: (s: string) => string,
): Record<string, NegativeCache> {
  const cache: Record<string, NegativeCache> = {};
  for (const s of sources) {
    const p = prefix(s);
    const emb = as64(inputs[`${p}emb`]!);
    const n = emb.shape[0]!;
    cache[s] = {
      data: {
        emb,
        feat: as64(inputs[`${p}feat`]!),
        ...(inputs[`${p}id`] ? { id: inputs[`${p}id`] } : {}),
      },
      age: lit(new Array<number>(n).fill(0), [n], 'int32'),
      ...(inputs[`${p}valid`] ? { valid: inputs[`${p}valid`] } : {}),
    };
  }
  return cache;
}

export const fixedRetrieval = (t: Tensor) => (): Tensor => t;
export const linearDoc = (W: Tensor) => (features: Record<string, Tensor>) => matmul(features['feat']!, W);

/** The scalar that is differentiated: sum(cotangent * trainingLoss). */
export function objective(trainingLoss: Tensor, cotangent: Tensor, reducer: 'mean' | 'none'): Tensor {
  return reducer === 'none' ? sum(mul(trainingLoss, cotangent)) : mul(trainingLoss, cotangent);
}

export function compute(config: { [k: string]: Json }, inputs: Record<string, Tensor>): Record<string, Tensor> {
  const c = config as unknown as LossConfig;
  const cache = buildCache(c.sources, inputs, (s) => `cache/${s}/`);
  const scoreTransform = transformOf(c.transform);
  const loss = new CacheClassificationLoss({
    embeddingKey: 'emb',
    dataKeys: ['feat'],
    reducer: c.reducer,
    maskEmptySlots: c.maskEmptySlots,
    retrievalFn: fixedRetrieval(inputs['retrieved']!),
    ...(scoreTransform ? { scoreTransform } : {}),
    ...(c.topK !== null ? { topK: c.topK } : {}),
    ...(c.falseNegativeKey !== null ? { falseNegativeKey: c.falseNegativeKey } : {}),
  });
  return lossOutputs(loss, cache, c, inputs);
}

/**
 * A loss vector's expected outputs: the loss's values and refresh data, and
 * the gradients of sum(cotangent * trainingLoss) with respect to the
 * queries, the positives and W. `beforeCall` runs before each call of the
 * loss (a retrieval function that counts its calls resets there).
 */
export function lossOutputs(
  loss: CacheClassificationLoss,
  cache: Record<string, NegativeCache>,
  c: LossConfig,
  inputs: Record<string, Tensor>,
  beforeCall: () => void = () => {},
): Record<string, Tensor> {
  const cot = as64(inputs['cotangent']!);
  const f = (q: Tensor, p: Tensor, W: Tensor): [Tensor, CacheLossReturn] => {
    beforeCall();
    const out = loss.call(
      linearDoc(W),
      q,
      p,
      cache,
      c.falseNegativeKey !== null ? { positiveIds: inputs['positiveIds']! } : {},
    );
    return [objective(out.trainingLoss, cot, c.reducer), out];
  };
  const { grad, aux } = valueAndGrad(f, { argnums: [0, 1, 2], hasAux: true })(
    as64(inputs['queries']!),
    as64(inputs['positives']!),
    as64(inputs['W']!),
  );
  const out = aux as CacheLossReturn;
  const [gq, gp, gW] = grad as Tensor[];
  const expected: Record<string, Tensor> = {
    trainingLoss: out.trainingLoss,
    interpretableLoss: out.interpretableLoss,
    staleness: out.staleness,
    probPos: out.probPos,
    retrievedIndices: out.retrievedIndices,
    hasNegative: out.hasNegative,
  };
  for (const s of c.sources) {
    expected[`refresh/${s}/indices`] = out.updatedItemIndices[s]!;
    expected[`refresh/${s}/mask`] = out.updatedItemMask[s]!;
    expected[`refresh/${s}/emb`] = out.updatedItemData[s]!['emb']!;
  }
  expected['grad/queries'] = gq!;
  expected['grad/positives'] = gp!;
  expected['grad/W'] = gW!;
  return expected;
}

/** A cotangent [b] of multiples of 1/8 in [-1, 1] without zeros (every query's gradient shows). */
export function nonZeroCotangent(rng: Rng, b: number): Tensor {
  return lit(
    Array.from({ length: b }, () => ((1 + rng.int(8)) / 8) * (rng.int(2) === 0 ? 1 : -1)),
    [b],
  );
}

/**
 * Valid picks: per query, an index into the candidates (the n cache rows, or
 * the topK group maxima) that is not excluded, uniformly; 0 when all are.
 * `excluded(i, j)` says whether cache row j is excluded for query i.
 */
export function picks(
  rng: Rng,
  b: number,
  n: number,
  topK: number | null,
  excluded: (i: number, j: number) => boolean,
): Tensor {
  const out = new Int32Array(b);
  for (let i = 0; i < b; i++) {
    const width = topK ?? n;
    const group = n / width;
    const ok: number[] = [];
    for (let c = 0; c < width; c++) {
      let any = false;
      for (let j = c * group; j < (c + 1) * group; j++) if (!excluded(i, j)) any = true;
      if (any) ok.push(c);
    }
    out[i] = ok.length > 0 ? ok[rng.int(ok.length)]! : 0;
  }
  return wrap(out, [b, 1], 'int32');
}

export interface LossCase {
  name: string;
  extra: string;
  beyond: string[];
  sizes: Record<string, number>;
  b: number;
  d: number;
  F: number;
  transform: TransformConfig;
  topK: number | null;
  reducer: 'mean' | 'none';
  /** Per source: valid flags (omitted: no flags). */
  valid?: Record<string, number[]>;
  /** Per source ids and per query positive ids (false-negative masking). */
  ids?: { cache: Record<string, number[]>; positives: number[] };
  maskEmptySlots?: boolean;
}

/** Random inputs of a loss case (cached embeddings, features, W, queries, positives) and valid picks. */
export function lossInputs(rng: Rng, lc: LossCase, prefix: (s: string) => string): Record<string, Tensor> {
  const inputs: Record<string, Tensor> = {};
  const sources = Object.keys(lc.sizes).sort();
  for (const s of sources) {
    const n = lc.sizes[s]!;
    const p = prefix(s);
    inputs[`${p}emb`] = gridValues(rng, [n, lc.d]);
    inputs[`${p}feat`] = gridValues(rng, [n, lc.F]);
    if (lc.valid) inputs[`${p}valid`] = lit(lc.valid[s]!, [n], 'bool');
    if (lc.ids) inputs[`${p}id`] = lit(lc.ids.cache[s]!, [n], 'int32');
  }
  inputs['W'] = gridValues(rng, [lc.F, lc.d], { lo: -8, hi: 8 });
  return inputs;
}

export function lossConfig(lc: LossCase): LossConfig {
  return {
    sources: Object.keys(lc.sizes).sort(),
    transform: lc.transform,
    topK: lc.topK,
    reducer: lc.reducer,
    docNetwork: 'linear',
    maskEmptySlots: lc.maskEmptySlots ?? true,
    falseNegativeKey: lc.ids ? 'id' : null,
  };
}

const PIN =
  "REFERENCE.md 'The cache classification loss': sources concatenated in sorted key order; scores T(<q, c_j>) of the cached embeddings; probPos = softmax([s+, scores])_0 a constant; trainingLoss = (1 - probPos)(T(<q, fresh_j>) - s+) with fresh_j the doc network on the retrieved item's features; interpretableLoss = -log probPos; staleness = ||c_j - fresh_j||^2 / ||fresh_j||^2; refresh data per source; gradients with probPos and the retrieval held constant.";

function cases(): LossCase[] {
  const out: LossCase[] = [];
  const base = { F: 3, maskEmptySlots: true };
  out.push({
    ...base,
    name: 'scale_mean',
    extra: ' Score transform T(s) = 3s, reducer mean.',
    beyond: [],
    sizes: { cache: 8 },
    b: 4,
    d: 3,
    transform: { kind: 'scale', scale: 3 },
    topK: null,
    reducer: 'mean',
  });
  out.push({
    ...base,
    name: 'tanh_none',
    extra: ' A non-linear transform T(s) = tanh(s), reducer none.',
    beyond: [],
    sizes: { cache: 6 },
    b: 3,
    d: 2,
    transform: { kind: 'tanh' },
    topK: null,
    reducer: 'none',
  });
  out.push({
    ...base,
    name: 'topk_none',
    extra: ' Approximate top-k (topK 2) narrows each row to the group maxima before sampling; indices map back.',
    beyond: [],
    sizes: { cache: 8 },
    b: 3,
    d: 2,
    transform: { kind: 'identity' },
    topK: 2,
    reducer: 'none',
  });
  out.push({
    ...base,
    name: 'multi_source_mean',
    extra: ' Three sources of sizes 1, 3 and 2 (named so that sorted order differs from insertion order).',
    beyond: [],
    sizes: { web: 2, news: 3, arxiv: 1 },
    b: 4,
    d: 2,
    transform: { kind: 'identity' },
    topK: null,
    reducer: 'mean',
  });
  out.push({
    ...base,
    name: 'multi_source_topk_scale_none',
    extra: ' Two sources with topK 3 over their concatenation and T(s) = 2s.',
    beyond: [],
    sizes: { b: 3, a: 3 },
    b: 4,
    d: 3,
    transform: { kind: 'scale', scale: 2 },
    topK: 3,
    reducer: 'none',
  });
  out.push({
    ...base,
    name: 'empty_slots_mean',
    extra: ' Slots that never held an item (valid false) are excluded from the scores and the retrieval.',
    beyond: ['maskEmptySlots (valid flags)'],
    sizes: { s0: 4, s1: 3 },
    valid: { s0: [1, 0, 1, 1], s1: [0, 0, 0] },
    b: 3,
    d: 2,
    transform: { kind: 'scale', scale: 2 },
    topK: null,
    reducer: 'mean',
  });
  out.push({
    ...base,
    name: 'false_negatives_none',
    extra: ' For query i, the rows whose id equals positiveIds[i] are excluded (for that query only).',
    beyond: ['falseNegativeKey', 'maskEmptySlots (valid flags)'],
    sizes: { s0: 3, s1: 3 },
    valid: { s0: [1, 1, 0], s1: [1, 1, 1] },
    ids: { cache: { s0: [7, 3, 0], s1: [3, 7, 7] }, positives: [7, 3, 9, 0] },
    b: 4,
    d: 2,
    transform: { kind: 'identity' },
    topK: null,
    reducer: 'none',
  });
  out.push({
    ...base,
    name: 'no_negative_mean',
    extra:
      ' Queries 0 and 2 have every valid row excluded (all carry their positive id): they have no negative, so their loss terms, gradients and staleness are 0 and they refresh nothing.',
    beyond: ['falseNegativeKey', 'maskEmptySlots (valid flags)'],
    sizes: { s0: 4 },
    valid: { s0: [1, 1, 0, 1] },
    ids: { cache: { s0: [5, 5, 0, 5] }, positives: [5, 2, 5] },
    b: 3,
    d: 2,
    transform: { kind: 'scale', scale: 2 },
    topK: null,
    reducer: 'mean',
  });
  out.push({
    ...base,
    name: 'false_negatives_topk_tanh',
    extra: ' Masks with approximate top-k (a group whose rows are all excluded yields a -Infinity candidate) and tanh.',
    beyond: ['falseNegativeKey', 'maskEmptySlots (valid flags)'],
    sizes: { s0: 6 },
    valid: { s0: [1, 1, 0, 1, 1, 1] },
    ids: { cache: { s0: [1, 2, 2, 2, 2, 1] }, positives: [1, 2, 3] },
    b: 3,
    d: 2,
    transform: { kind: 'tanh' },
    topK: 3,
    reducer: 'none',
  });
  out.push({
    ...base,
    name: 'zero_rows_counted',
    extra: ' With maskEmptySlots false the zero rows of never-filled slots are negatives, as in the reference.',
    beyond: ['valid flags given but ignored (maskEmptySlots false)'],
    sizes: { s0: 5 },
    valid: { s0: [1, 1, 0, 0, 0] },
    maskEmptySlots: false,
    b: 3,
    d: 2,
    transform: { kind: 'identity' },
    topK: null,
    reducer: 'mean',
  });
  return out;
}

/** A loss vector from a case: random inputs, valid picks, a cotangent, negcache's outputs. */
function fromCase(rng: Rng, lc: LossCase, kind: string): Vector {
  const inputs = lossInputs(rng, lc, (s) => `cache/${s}/`);
  const config = lossConfig(lc);
  inputs['queries'] = gridValues(rng, [lc.b, lc.d]);
  inputs['positives'] = gridValues(rng, [lc.b, lc.d]);
  if (lc.ids) inputs['positiveIds'] = lit(lc.ids.positives, [lc.b], 'int32');
  // the zero rows of never-filled slots, as a real cache holds them
  for (const s of config.sources) {
    const v = lc.valid?.[s];
    if (!v) continue;
    for (const key of ['emb', 'feat']) {
      const t = inputs[`cache/${s}/${key}`]!;
      const w = t.shape[1]!;
      const d = nums(t);
      v.forEach((ok, j) => {
        if (!ok) d.fill(0, j * w, (j + 1) * w);
      });
      inputs[`cache/${s}/${key}`] = lit(d, t.shape);
    }
  }
  const rowValid: number[] = [];
  const rowIds: number[] = [];
  for (const s of config.sources) {
    rowValid.push(...(lc.valid?.[s] ?? new Array<number>(lc.sizes[s]!).fill(1)));
    if (lc.ids) rowIds.push(...lc.ids.cache[s]!);
  }
  const n = rowValid.length;
  inputs['retrieved'] = picks(
    rng,
    lc.b,
    n,
    lc.topK,
    (i, j) => (config.maskEmptySlots && !rowValid[j]) || (lc.ids !== undefined && rowIds[j] === lc.ids.positives[i]),
  );
  inputs['cotangent'] = lc.reducer === 'none' ? nonZeroCotangent(rng, lc.b) : lit([1], [], 'float32');
  const cfg = config as unknown as { [k: string]: Json };
  return {
    name: `${kind}.${lc.name}`,
    kind,
    pins: `${PIN}${lc.extra}`,
    beyondReference: lc.beyond,
    config: cfg,
    inputs,
    expected: compute(cfg, inputs),
    beyondReferenceOutputs: ['probPos', 'retrievedIndices', 'hasNegative'],
    tolerance: FLOAT64_TOLERANCE,
  };
}

export const cacheLoss: VectorKind = {
  kind: 'cache_loss',
  compute,
  generate(rng: Rng): Vector[] {
    const out: Vector[] = [];
    // the upstream examples (losses_test.py): d = 1, the doc network the identity (W = [[1]]), a fresh cache
    const upstream = (
      name: string,
      extra: string,
      emb: number[],
      q: number[],
      p: number[],
      retrieved: number[],
      topK: number | null,
    ): Vector => {
      const config: LossConfig = {
        sources: ['cache'],
        transform: { kind: 'identity' },
        topK,
        reducer: 'none',
        docNetwork: 'linear',
        maskEmptySlots: true,
        falseNegativeKey: null,
      };
      const b = q.length;
      const inputs: Record<string, Tensor> = {
        'cache/cache/emb': lit(emb, [emb.length, 1]),
        'cache/cache/feat': lit(emb, [emb.length, 1]),
        queries: lit(q, [b, 1]),
        positives: lit(p, [b, 1]),
        W: lit([1], [1, 1]),
        retrieved: lit(retrieved, [b, 1], 'int32'),
        cotangent: lit(new Array<number>(b).fill(1), [b]),
      };
      const cfg = config as unknown as { [k: string]: Json };
      return {
        name: `${this.kind}.${name}`,
        kind: this.kind,
        pins: `${PIN}${extra}`,
        beyondReference: [],
        config: cfg,
        inputs,
        expected: compute(cfg, inputs),
        beyondReferenceOutputs: ['probPos', 'retrievedIndices', 'hasNegative'],
        tolerance: FLOAT64_TOLERANCE,
      };
    };
    out.push(
      upstream(
        'upstream',
        " The upstream tests' example (cache [1, -1], queries [-1, 1, 3], positives [2, 2, 1], retrieval [0, 1, 0]).",
        [1, -1],
        [-1, 1, 3],
        [2, 2, 1],
        [0, 1, 0],
        null,
      ),
    );
    out.push(
      upstream(
        'upstream_top_k',
        " The upstream top-k tests' example (cache [1, -1, 3, 2], topK 2, retrieval [0, 0] of the candidates).",
        [1, -1, 3, 2],
        [-1, 1],
        [2, 2],
        [0, 0],
        2,
      ),
    );
    for (const lc of cases()) out.push(fromCase(rng, lc, this.kind));
    return out;
  },
};
