/**
 * Kind `cache_loss_estimators`: the cache loss's estimator options beyond the
 * reference (numNegatives, inBatchNegatives, queryGradient 'exact';
 * docs/estimators.md), forward and gradients for fixed draws.
 *
 * config: as `cache_loss` (sources, transform, topK, reducer, docNetwork,
 *   maskEmptySlots, falseNegativeKey), plus numNegatives S, inBatchNegatives,
 *   queryGradient ('sampled' | 'exact').
 * inputs: as `cache_loss`, except `retrieved` is int32 [b, S]: column m is what
 *   the retrieval function returns on its m-th call (an index into the
 *   candidates: the concatenated cache, or the topK group maxima).
 * expected: as `cache_loss`; retrievedIndices is [b, S] for S > 1 ([b] for
 *   S = 1) and the refresh data has b·S rows (query-major: row i·S + m is
 *   query i's m-th draw).
 *
 * The objective is -log softmax([s⁺ᵢ, sᵢᵦ for the in-batch negatives (with
 * inBatchNegatives), the cache candidates])₀ with w⁺, w_b, w_c the constant
 * softmax weights of the positive, each in-batch negative and the cache mass:
 *   trainingLossᵢ = w_c·mean_m T(<qᵢ, fresh_jₘ>) + Σ_b w_b·sᵢᵦ - (1 - w⁺)·s⁺ᵢ
 * (interpretableLoss = -log w⁺, probPos = w⁺). In-batch negatives: b ≠ i and,
 * with a falseNegativeKey, positiveIds[b] ≠ positiveIds[i]; cache rows whose
 * id is any batch positive's id are excluded for every query. queryGradient
 * 'exact': the sampled term takes no gradient to q, and q gets
 * w_c·Σⱼ πⱼ T'(<q, cⱼ>) cⱼ over the candidates (π their softmax) instead; the
 * value is unchanged.
 */
import type { Rng } from '../../tensor/random.js';
import { wrap, type Tensor } from '../../tensor/tensor.js';
import { CacheClassificationLoss } from '../../losses/cacheClassificationLoss.js';
import { FLOAT64_TOLERANCE, type Json, type Vector, type VectorKind } from '../format.js';
import { gridValues, lit, nums } from '../values.js';
import {
  buildCache,
  lossConfig,
  lossInputs,
  lossOutputs,
  nonZeroCotangent,
  picks,
  transformOf,
  type LossCase,
  type LossConfig,
} from './cacheLoss.js';

interface EstimatorConfig extends LossConfig {
  numNegatives: number;
  inBatchNegatives: boolean;
  queryGradient: 'sampled' | 'exact';
}

export function compute(config: { [k: string]: Json }, inputs: Record<string, Tensor>): Record<string, Tensor> {
  const c = config as unknown as EstimatorConfig;
  const cache = buildCache(c.sources, inputs, (s) => `cache/${s}/`);
  const scoreTransform = transformOf(c.transform);
  const retrieved = inputs['retrieved']!;
  const [b, S] = retrieved.shape as [number, number];
  const cols = nums(retrieved);
  let call = 0;
  const loss = new CacheClassificationLoss({
    embeddingKey: 'emb',
    dataKeys: ['feat'],
    reducer: c.reducer,
    maskEmptySlots: c.maskEmptySlots,
    numNegatives: c.numNegatives,
    inBatchNegatives: c.inBatchNegatives,
    queryGradient: c.queryGradient,
    // the m-th call returns column m of `retrieved`
    retrievalFn: () => {
      const m = call++ % S;
      return wrap(
        Int32Array.from({ length: b }, (_, i) => cols[i * S + m]!),
        [b, 1],
        'int32',
      );
    },
    ...(scoreTransform ? { scoreTransform } : {}),
    ...(c.topK !== null ? { topK: c.topK } : {}),
    ...(c.falseNegativeKey !== null ? { falseNegativeKey: c.falseNegativeKey } : {}),
  });
  return lossOutputs(loss, cache, c, inputs, () => {
    call = 0;
  });
}

const PIN =
  "docs/estimators.md (beyond the reference): the softmax over [s+, in-batch negatives if on, the cache candidates]; weights w+, w_b, w_c held constant; trainingLoss = w_c * mean of the S fresh sampled scores + sum_b w_b s_b - (1 - w+) s+; interpretableLoss = -log w+; with queryGradient 'exact' the sampled scores take no gradient to q and q gets w_c * sum_j pi_j T'(<q, c_j>) c_j; refresh data for all b*S draws.";

interface EstimatorCase extends LossCase {
  numNegatives: number;
  inBatchNegatives: boolean;
  queryGradient: 'sampled' | 'exact';
}

function cases(): EstimatorCase[] {
  const base = { F: 3, maskEmptySlots: true };
  return [
    {
      ...base,
      name: 'three_negatives_scale_none',
      extra: ' numNegatives 3 (draws may repeat), T(s) = 3s, reducer none.',
      beyond: ['numNegatives'],
      sizes: { cache: 6 },
      b: 3,
      d: 2,
      transform: { kind: 'scale', scale: 3 },
      topK: null,
      reducer: 'none',
      numNegatives: 3,
      inBatchNegatives: false,
      queryGradient: 'sampled',
    },
    {
      ...base,
      name: 'in_batch_false_negatives_mean',
      extra:
        ' inBatchNegatives with ids: positives sharing the query id are not negatives, and cache rows holding a batch positive id are out of the cache part.',
      beyond: ['inBatchNegatives', 'falseNegativeKey', 'maskEmptySlots (valid flags)'],
      sizes: { s0: 4, s1: 3 },
      valid: { s0: [1, 1, 0, 1], s1: [1, 1, 1] },
      ids: { cache: { s0: [4, 7, 0, 3], s1: [9, 8, 4] }, positives: [7, 3, 7, 5] },
      b: 4,
      d: 2,
      transform: { kind: 'identity' },
      topK: null,
      reducer: 'mean',
      numNegatives: 1,
      inBatchNegatives: true,
      queryGradient: 'sampled',
    },
    {
      ...base,
      name: 'exact_query_tanh_none',
      extra: " queryGradient 'exact' with a non-linear transform T(s) = tanh(s).",
      beyond: ["queryGradient 'exact'"],
      sizes: { cache: 5 },
      b: 3,
      d: 3,
      transform: { kind: 'tanh' },
      topK: null,
      reducer: 'none',
      numNegatives: 1,
      inBatchNegatives: false,
      queryGradient: 'exact',
    },
    {
      ...base,
      name: 'all_three_topk_scale_mean',
      extra: " numNegatives 2, inBatchNegatives and queryGradient 'exact' together, with topK 2 and T(s) = 2s.",
      beyond: ['numNegatives', 'inBatchNegatives', "queryGradient 'exact'"],
      sizes: { cache: 8 },
      b: 4,
      d: 2,
      transform: { kind: 'scale', scale: 2 },
      topK: 2,
      reducer: 'mean',
      numNegatives: 2,
      inBatchNegatives: true,
      queryGradient: 'exact',
    },
  ];
}

function fromCase(rng: Rng, lc: EstimatorCase, kind: string): Vector {
  const inputs = lossInputs(rng, lc, (s) => `cache/${s}/`);
  const config: EstimatorConfig = {
    ...lossConfig(lc),
    numNegatives: lc.numNegatives,
    inBatchNegatives: lc.inBatchNegatives,
    queryGradient: lc.queryGradient,
  };
  inputs['queries'] = gridValues(rng, [lc.b, lc.d]);
  inputs['positives'] = gridValues(rng, [lc.b, lc.d]);
  if (lc.ids) inputs['positiveIds'] = lit(lc.ids.positives, [lc.b], 'int32');
  const rowValid: number[] = [];
  const rowIds: number[] = [];
  for (const s of config.sources) {
    rowValid.push(...(lc.valid?.[s] ?? new Array<number>(lc.sizes[s]!).fill(1)));
    if (lc.ids) rowIds.push(...lc.ids.cache[s]!);
  }
  const inBatchIds = new Set(lc.ids?.positives ?? []);
  const excluded = (i: number, j: number): boolean =>
    (config.maskEmptySlots && !rowValid[j]) ||
    (lc.ids !== undefined && rowIds[j] === lc.ids.positives[i]) ||
    (lc.inBatchNegatives && lc.ids !== undefined && inBatchIds.has(rowIds[j]!));
  const columns = Array.from({ length: lc.numNegatives }, () =>
    nums(picks(rng, lc.b, rowValid.length, lc.topK, excluded)),
  );
  inputs['retrieved'] = lit(
    Array.from(
      { length: lc.b * lc.numNegatives },
      (_, t) => columns[t % lc.numNegatives]![Math.floor(t / lc.numNegatives)]!,
    ),
    [lc.b, lc.numNegatives],
    'int32',
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

export const cacheLossEstimators: VectorKind = {
  kind: 'cache_loss_estimators',
  compute,
  generate(rng: Rng): Vector[] {
    return cases().map((lc) => fromCase(rng, lc, this.kind));
  },
};
