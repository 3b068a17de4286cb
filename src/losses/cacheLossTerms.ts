/**
 * The cache loss's maths (reference: AbstractCacheClassificationLoss.
 * _calculate_training_loss_and_summaries), given the retrieval and the fresh
 * embeddings of the sampled items. Notation per query i:
 *
 *   s⁺ᵢ = T(<qᵢ, pᵢ>)              positive score (gradient to q and p)
 *   sᵢⱼ = T(<qᵢ, cⱼ>)              cache scores over the STALE cached cⱼ (constants)
 *   jᵢ ~ softmax(sᵢ·)              the sampled item (a constant)
 *   s⁻ᵢ = T(<qᵢ, g(x_jᵢ)>)         the sampled item's FRESH score (gradient to q and the doc network g)
 *
 * The reference estimator (every option off; `referenceLossTerms`):
 *
 *   probPosᵢ          = softmax([s⁺ᵢ, sᵢ·])₀                      (stop-gradient)
 *   trainingLossᵢ     = (1 - probPosᵢ)·(s⁻ᵢ - s⁺ᵢ)
 *   interpretableLossᵢ = -log probPosᵢ
 *
 * E_j[∇ trainingLoss] = ∇ interpretableLoss when the cache is fresh: since
 * exp(sᵢⱼ)/Z = (1 - probPos)·softmax(sᵢ·)ⱼ, the expectation of the sampled
 * term is the softmax-weighted negative term of ∇(-log probPos).
 *
 * The extended estimators (`estimatorLossTerms`; docs/estimators.md gives the
 * objective each one is unbiased for and its cost):
 *
 *  - numNegatives S: S draws jᵢ₁..jᵢₛ (with replacement) and the mean of
 *    their fresh scores in place of s⁻ᵢ. The mean of S unbiased estimates is
 *    unbiased; its variance is 1/S of one draw's.
 *  - inBatchNegatives: the batch's other positives p_b join the softmax as
 *    exact negatives, sᵢᵦ = T(<qᵢ, p_b>) (gradient to both towers), b ≠ i and
 *    not a false negative. With Z = e^{s⁺} + Σ_b e^{sᵢᵦ} + Σⱼ e^{sᵢⱼ} and the
 *    constant weights w⁺ = e^{s⁺}/Z, w_b = e^{sᵢᵦ}/Z, w_c = Σⱼ e^{sᵢⱼ}/Z:
 *
 *      trainingLossᵢ = w_c·mean_m s⁻ᵢₘ + Σ_b w_b·sᵢᵦ - (1 - w⁺)·s⁺ᵢ
 *
 *    whose gradient has expectation -∇s⁺ + w⁺∇s⁺ + Σ_b w_b∇sᵢᵦ + Σⱼ (e^{sᵢⱼ}/Z)∇sᵢⱼ
 *    = ∇(-log softmax([s⁺, sᵢ·batch, sᵢ·cache])₀) (cache scores fresh). Without
 *    in-batch negatives w_c = 1 - w⁺ and this is the reference form.
 *  - queryGradient 'exact': the query receives the exact gradient of the
 *    softmax over the whole (stale) cache. The sampled term is computed from
 *    stop-gradient(q), so it trains only the doc network, and
 *
 *      + w_c·(Eᵢ - stopGradient(Eᵢ)),   Eᵢ = logSumExpⱼ T(<qᵢ, cⱼ>)
 *
 *    adds w_c·Σⱼ πᵢⱼ ∇_q sᵢⱼ to the query's gradient and 0 to the value. On
 *    the fused path T is a scale α, and ∇_q Eᵢ = α·μᵢ with μᵢ = Σⱼ πᵢⱼ cⱼ
 *    (the scan's softmaxMean), so Eᵢ is replaced by α·<qᵢ, stopGradient(μᵢ)>:
 *    the same gradient without the [b, n] graph.
 *
 * probPos is w⁺ in every form, and interpretableLoss = -log w⁺: the
 * cross-entropy of the softmax the estimator targets (with in-batch
 * negatives, over the batch and the cache).
 */
import { wrap, type Tensor } from '../tensor/tensor.js';
import { stopGradient } from '../autograd/transforms.js';
import { concat, expandDims, gather, gatherRows, reshape } from '../ops/layout.js';
import { add, exp, mul, neg, sub, where } from '../ops/elementwise.js';
import { logSumExp, mean, sum } from '../ops/reduce.js';
import { matmul } from '../ops/linalg.js';
import { applyReducer, rowDot, staleness, transformScores, type Reducer, type ScoreTransform } from './common.js';
import type { RetrievalResult } from './cacheRetrieval.js';

/** The per-query losses of one call, reduced by the reducer. */
export interface LossTerms {
  trainingLoss: Tensor;
  interpretableLoss: Tensor;
  staleness: Tensor;
  /** float [b] (a constant). */
  probPos: Tensor;
  /** int32 [b] (one sample per query) or [b, S]. */
  retrievedIndices: Tensor;
  /** bool [b]. */
  hasNegative: Tensor;
}

/** The reference estimator (one sample, sampled query gradient, no in-batch negatives). */
export function referenceLossTerms(
  transform: ScoreTransform | undefined,
  reducer: Reducer,
  q: Tensor,
  p: Tensor,
  fresh: Tensor,
  r: Pick<RetrievalResult, 'scores' | 'hasNegative' | 'retrievedCacheEmbeddings' | 'indices'>,
): LossTerms {
  const b = q.shape[0]!;
  const sPos = transformScores(transform, rowDot(q, p));
  const sNeg = transformScores(transform, rowDot(q, fresh));
  const sPosC = stopGradient(sPos);
  const all = concat([expandDims(sPosC, 1), r.scores], 1);
  const logProbPos = sub(sPosC, logSumExp(all, { axis: 1 })); // log softmax([s⁺, s])₀, a constant
  const probPos = exp(logProbPos);
  const trainingLoss = mul(sub(1, probPos), sub(sNeg, sPos));
  const keep = wrap(r.hasNegative.slice(), [b], 'bool');
  const stale = staleness(stopGradient(r.retrievedCacheEmbeddings), stopGradient(fresh), keep);
  return {
    trainingLoss: applyReducer(reducer, trainingLoss),
    interpretableLoss: applyReducer(reducer, neg(logProbPos)),
    staleness: applyReducer(reducer, stale),
    probPos,
    retrievedIndices: wrap(r.indices.slice(), [b], 'int32'),
    hasNegative: keep,
  };
}

export interface EstimatorOptions {
  numNegatives: number;
  inBatchNegatives: boolean;
  queryGradient: 'sampled' | 'exact';
}

/** True when the options are the reference's (then referenceLossTerms is used, bit for bit). */
export function isReferenceEstimator(e: EstimatorOptions): boolean {
  return e.numNegatives === 1 && !e.inBatchNegatives && e.queryGradient === 'sampled';
}

/**
 * The extended estimators (see the file comment). `fresh` is [b·S, d] (the
 * S samples of each query, query-major); `inBatchExcluded` is [b·b] (1 where
 * positive b is not a negative for query i, the diagonal included) when
 * in-batch negatives are on; `scale` is the transform's scale on the fused
 * path (needed with the exact query gradient there).
 */
export function estimatorLossTerms(
  transform: ScoreTransform | undefined,
  reducer: Reducer,
  est: EstimatorOptions,
  q: Tensor,
  p: Tensor,
  fresh: Tensor,
  r: RetrievalResult,
  inBatchExcluded: Uint8Array | null,
  scale: number | null,
): LossTerms {
  const b = q.shape[0]!,
    S = r.numSamples;
  const exact = est.queryGradient === 'exact';
  const sPos = transformScores(transform, rowDot(q, p));
  const sPosC = stopGradient(sPos);

  // Sampled cache terms: query i's row repeated for each of its S samples.
  const rep =
    S === 1
      ? q
      : gatherRows(
          q,
          wrap(
            Int32Array.from({ length: b * S }, (_, k) => Math.floor(k / S)),
            [b * S],
            'int32',
          ),
        );
  const sNegAll = transformScores(transform, rowDot(exact ? stopGradient(rep) : rep, fresh));
  const sNeg = S === 1 ? sNegAll : mean(reshape(sNegAll, [b, S]), { axis: 1 });

  // The softmax's normaliser over [s⁺, in-batch negatives, cache candidates] (constants).
  let sBatch: Tensor | null = null; // T(q·pᵀ) [b, b] with excluded entries at 0 (gradient to both towers)
  let sBatchC: Tensor | null = null; // the same values with excluded entries at -∞, constant
  if (inBatchExcluded !== null) {
    const mask = wrap(inBatchExcluded, [b, b], 'bool');
    const raw = transformScores(transform, matmul(q, p, { transposeB: true }));
    sBatch = where(mask, 0, raw);
    sBatchC = where(mask, -Infinity, stopGradient(raw));
  }
  const parts = [expandDims(sPosC, 1), ...(sBatchC ? [sBatchC] : []), r.scores];
  const logZ = expandDims(logSumExp(concat(parts, 1), { axis: 1 }), 1); // [b, 1], finite: s⁺ is
  const logProbPos = sub(sPosC, reshape(logZ, [b]));
  const probPos = exp(logProbPos);
  const wCache = sum(exp(sub(r.scores, logZ)), { axis: 1 }); // Σⱼ e^{sᵢⱼ}/Z, 0 without candidates

  let trainingLoss = sub(mul(wCache, sNeg), mul(sub(1, probPos), sPos));
  if (sBatch !== null) trainingLoss = add(trainingLoss, sum(mul(exp(sub(sBatchC!, logZ)), sBatch), { axis: 1 }));
  if (exact) {
    const e = exactQueryTerm(transform, q, r, scale);
    trainingLoss = add(trainingLoss, mul(wCache, sub(e, stopGradient(e))));
  }

  const keep = wrap(r.hasNegative.slice(), [b], 'bool');
  const keepAll =
    S === 1
      ? keep
      : wrap(
          Uint8Array.from({ length: b * S }, (_, k) => r.hasNegative[Math.floor(k / S)]!),
          [b * S],
          'bool',
        );
  let stale = staleness(stopGradient(r.retrievedCacheEmbeddings), stopGradient(fresh), keepAll);
  if (S > 1) stale = mean(reshape(stale, [b, S]), { axis: 1 });
  return {
    trainingLoss: applyReducer(reducer, trainingLoss),
    interpretableLoss: applyReducer(reducer, neg(logProbPos)),
    staleness: applyReducer(reducer, stale),
    probPos,
    retrievedIndices: wrap(r.indices.slice(), S === 1 ? [b] : [b, S], 'int32'),
    hasNegative: keep,
  };
}

/**
 * Eᵢ with ∇_q Eᵢ = Σⱼ πᵢⱼ ∇_q T(<qᵢ, cⱼ>) over query i's candidates (stale
 * cⱼ): on the fused path α·<qᵢ, μᵢ> (μ the scan's softmax mean, a constant),
 * on the straightforward path logSumExp of the candidate scores recomputed
 * with gradient to q (any transform). Rows without a candidate give 0.
 */
function exactQueryTerm(
  transform: ScoreTransform | undefined,
  q: Tensor,
  r: RetrievalResult,
  scale: number | null,
): Tensor {
  const b = q.shape[0]!;
  if (r.candidates === null) {
    // fused: T(x) = αx, so ∇_q logSumExpⱼ α<q, cⱼ> = α Σⱼ πⱼ cⱼ
    return mul(rowDot(q, r.softmaxMean!), scale!);
  }
  const { embeddings, excluded, topIndices } = r.candidates;
  const n = embeddings.shape[0]!;
  let scores = transformScores(transform, matmul(q, embeddings, { transposeB: true }));
  const noCandidate = Uint8Array.from(r.hasNegative, (h) => (h ? 0 : 1));
  if (excluded !== null) {
    // excluded entries at -∞; rows without any candidate at 0 (finite, weighted by w_c = 0)
    const ex = new Uint8Array(b * n);
    for (let i = 0; i < b; i++)
      for (let j = 0; j < n; j++) ex[i * n + j] = excluded[i * n + j]! && !noCandidate[i] ? 1 : 0;
    scores = where(wrap(ex, [b, n], 'bool'), -Infinity, scores);
  }
  if (topIndices !== null) {
    const k = topIndices.length / b;
    const flat = Int32Array.from({ length: b * k }, (_, t) => Math.floor(t / k) * n + topIndices[t]!);
    scores = reshape(gather(reshape(scores, [b * n]), wrap(flat, [b * k], 'int32')), [b, k]);
  }
  if (noCandidate.some((v) => v === 1)) {
    const width = scores.shape[1]!;
    const rows = Uint8Array.from({ length: b * width }, (_, t) => noCandidate[Math.floor(t / width)]!);
    scores = where(wrap(rows, [b, width], 'bool'), 0, scores);
  }
  return logSumExp(scores, { axis: 1 });
}
