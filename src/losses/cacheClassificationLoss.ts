/**
 * The cache classification loss (reference: losses.CacheClassificationLoss),
 * in the reference's shape, one job per file:
 *  - cacheRetrieval.ts   retrieval from the caches (_retrieve_from_caches): scores,
 *                        masks, top-k, sampling; fused or straightforward;
 *  - cacheLossTerms.ts   the loss maths (_calculate_training_loss_and_summaries),
 *                        the reference estimator and the extended ones;
 *  - refresh.ts          the refresh data (_get_retrieved_embedding_updates);
 *  - validate.ts         input checks.
 * This file holds the options and wires the steps together: validate,
 * retrieve (or take a precomputed retrieval), run the doc network on the
 * sampled items, compute the terms, build the refresh data.
 *
 * Beyond the reference (each optional; every one off is the reference, bit
 * for bit): empty slots excluded from scoring and sampling, false-negative
 * masking by an id key, exact categorical sampling, several negatives per
 * query, in-batch negatives mixed with the cache's, an exact query-side
 * gradient over the cache, and per-query extras (probPos, sampled indices,
 * hasNegative). docs/estimators.md explains the estimators.
 */
import { ArgumentError, checkOptions, describe } from '../errors.js';
import type { Rng } from '../tensor/random.js';
import { isTensor, unsafeData, wrap, type Tensor } from '../tensor/tensor.js';
import { shapesEqual } from '../tensor/shape.js';
import { stopGradient } from '../autograd/transforms.js';
import { gatherRows } from '../ops/layout.js';
import type { NegativeCache } from '../cache/negativeCache.js';
import type { RetrievalFn } from '../retrieval/retrieval.js';
import { fusedCacheScan } from '../scan/wasm.js';
import {
  checkQueryAndPositives,
  checkReducer,
  retrievalFrom,
  transformScores,
  type DocNetwork,
  type Reducer,
  type Sampler,
  type ScoreTransform,
} from './common.js';
import {
  concatSources,
  retrieveFromCaches,
  type RetrievalRequest,
  type RetrievalResult,
  type RetrieverConfig,
  type Scanner,
} from './cacheRetrieval.js';
import {
  estimatorLossTerms,
  isReferenceEstimator,
  referenceLossTerms,
  type EstimatorOptions,
  type LossTerms,
} from './cacheLossTerms.js';
import { refreshData, type RefreshData } from './refresh.js';
import { checkCaches, checkFresh, checkRetrieval, type Retrieval } from './validate.js';

export type { Retrieval } from './validate.js';
export type { RetrievalResult } from './cacheRetrieval.js';

export interface CacheLossReturn extends LossTerms, RefreshData {
  /** Differentiate this. Reduced by the reducer (mean by default), or [b]. */
  trainingLoss: Tensor;
  /** -log probPos: the cross-entropy of the softmax the estimator targets (a constant; no gradient). */
  interpretableLoss: Tensor;
  /** ||cached - fresh||² / ||fresh||² of the sampled items (a constant; the mean over a query's samples). */
  staleness: Tensor;
}

/**
 * What a handler needs from a loss (reference: losses.CacheLoss). Any object
 * with these members works with CacheLossHandler and MultiCacheLossHandler:
 * a custom loss needs no subclassing. `retrieve` is optional (handlers'
 * `retrieve` needs it).
 */
export interface CacheLoss {
  readonly embeddingKey: string;
  readonly dataKeys: readonly string[];
  call(
    docNetwork: DocNetwork,
    queryEmbeddings: Tensor,
    posDocEmbeddings: Tensor,
    cache: Readonly<Record<string, NegativeCache>>,
    opts?: CacheLossCallOptions,
  ): CacheLossReturn;
  retrieve?(
    queryEmbeddings: Tensor,
    cache: Readonly<Record<string, NegativeCache>>,
    opts?: Omit<CacheLossCallOptions, 'retrieval'>,
  ): Retrieval;
}

export interface CacheClassificationLossOptions {
  /** The cache key holding document embeddings. */
  embeddingKey: string;
  /** The cache keys holding the document features the doc network reads. */
  dataKeys: readonly string[];
  /** Elementwise map of raw dot products (e.g. scaleTransform(20)); identity when omitted. */
  scoreTransform?: ScoreTransform;
  /** Narrow each row to approximate top-k candidates first (cache size must be divisible by topK). */
  topK?: number;
  /** 'mean' (default), 'none' (per-query values) or a function. */
  reducer?: Reducer;
  /** The generator for sampling (required unless retrievalFn is given). */
  rng?: Rng;
  /** 'gumbel' (default, the reference's Gumbel-max) or 'categorical' (exact, one uniform per query). */
  sampler?: Sampler;
  /** A custom retrieval function (scores [b, n] -> int32 [b, 1]); overrides rng/sampler. */
  retrievalFn?: RetrievalFn;
  /**
   * Exclude slots that never held an item (cache.valid false) from scoring
   * and sampling. Default true. With false, the all-zero rows of a fresh
   * cache are negatives, exactly as in the reference.
   */
  maskEmptySlots?: boolean;
  /**
   * Exclude, for query i, cache rows whose `falseNegativeKey` feature equals
   * positiveIds[i] (the call must then pass positiveIds). The key must hold
   * int32 ids of shape [] or [1]. Off by default (the reference has no such mask).
   */
  falseNegativeKey?: string;
  /**
   * Negatives drawn from the cache softmax per query, with replacement, each
   * refreshed through the doc network (every distinct item once); the
   * estimator averages them (same expectation, 1/k the variance). Default 1
   * (the reference).
   */
  numNegatives?: number;
  /**
   * The batch's other positives join the softmax as exact negatives
   * (gradient to both towers); the cache samples add the hard ones. With a
   * falseNegativeKey, positives sharing the query's key are not negatives,
   * and cached copies of the batch's positives are excluded from the cache
   * part (they take part fresh). Default false (the reference).
   */
  inBatchNegatives?: boolean;
  /**
   * 'sampled' (default, the reference): the query's gradient comes from the
   * sampled negative. 'exact': the query gets the exact gradient of the
   * softmax over the whole cache (stale cached embeddings), accumulated by the
   * scan; the doc side keeps the sampled, refreshed estimate.
   */
  queryGradient?: 'sampled' | 'exact';
  /**
   * Use the fused streaming scan (src/scan/) when it
   * applies: float32 embeddings, a score transform that is absent or a
   * scaleTransform, and a built-in sampler over `rng` (not a custom
   * retrievalFn). It never builds the [b, n] score matrix and runs on the
   * WebAssembly SIMD kernels where available. Default true. With false, or
   * when it does not apply, the loss takes the straightforward path:
   * all-pairs matmul, transform, masking, top-k, retrieval function.
   * The Gumbel sampler draws the same counter-based noise on both paths, so
   * they pick the same items whenever they compute the same score floats
   * (SIMD sums round differently, so near-ties may differ). The categorical
   * sampler is a different (blockwise) algorithm on the fused path: same
   * distribution, different draws.
   */
  fused?: boolean;
  /** The fused scan to call (default `fusedCacheScan`: wasm SIMD, else TypeScript). Node's `createParallelScan` runs it on both cores. */
  scanner?: Scanner;
}

export interface CacheLossCallOptions {
  /** int32 [b]: the id of each query's positive, for false-negative masking. */
  positiveIds?: Tensor;
  /**
   * A retrieval computed beforehand by `retrieve` for the same queries and
   * cache. The sampled items are constants of the loss, so sampling first
   * and differentiating after is the same computation; it lets a trainer
   * know which document rows a step needs before it builds the gradient.
   */
  retrieval?: Retrieval;
}

const OPTIONS = [
  'embeddingKey',
  'dataKeys',
  'scoreTransform',
  'topK',
  'reducer',
  'rng',
  'sampler',
  'retrievalFn',
  'maskEmptySlots',
  'falseNegativeKey',
  'numNegatives',
  'inBatchNegatives',
  'queryGradient',
  'fused',
  'scanner',
] as const;

export class CacheClassificationLoss implements CacheLoss {
  readonly embeddingKey: string;
  readonly dataKeys: readonly string[];
  readonly scoreTransform: ScoreTransform | undefined;
  readonly topK: number | undefined;
  readonly reducer: Reducer;
  readonly maskEmptySlots: boolean;
  readonly falseNegativeKey: string | undefined;
  readonly retrievalFn: RetrievalFn;
  readonly fused: boolean;
  /** The estimator options (numNegatives, inBatchNegatives, queryGradient). */
  readonly estimator: Readonly<EstimatorOptions>;
  /** How retrieval runs (the options above, plus the sampler, generator and scanner). */
  readonly retriever: RetrieverConfig;

  constructor(opts: CacheClassificationLossOptions) {
    const op = 'CacheClassificationLoss';
    checkOptions(op, opts, OPTIONS, { required: true });
    if (typeof opts.embeddingKey !== 'string' || opts.embeddingKey === '')
      throw new ArgumentError(op, `embeddingKey must be a non-empty string, got ${describe(opts.embeddingKey)}`);
    if (!Array.isArray(opts.dataKeys) || !opts.dataKeys.every((k) => typeof k === 'string'))
      throw new ArgumentError(op, `dataKeys must be an array of strings, got ${describe(opts.dataKeys)}`);
    if (opts.scoreTransform !== undefined && typeof opts.scoreTransform !== 'function')
      throw new ArgumentError(op, `scoreTransform must be a function, got ${describe(opts.scoreTransform)}`);
    if (opts.topK !== undefined && (!Number.isInteger(opts.topK) || opts.topK < 1))
      throw new ArgumentError(op, `topK must be a positive integer, got ${describe(opts.topK)}`);
    if (opts.maskEmptySlots !== undefined && typeof opts.maskEmptySlots !== 'boolean')
      throw new ArgumentError(op, `maskEmptySlots must be true or false, got ${describe(opts.maskEmptySlots)}`);
    if (opts.falseNegativeKey !== undefined && typeof opts.falseNegativeKey !== 'string')
      throw new ArgumentError(op, `falseNegativeKey must be a string, got ${describe(opts.falseNegativeKey)}`);
    if (opts.fused !== undefined && typeof opts.fused !== 'boolean')
      throw new ArgumentError(op, `fused must be true or false, got ${describe(opts.fused)}`);
    if (opts.scanner !== undefined && typeof opts.scanner !== 'function')
      throw new ArgumentError(op, `scanner must be a function, got ${describe(opts.scanner)}`);
    const k = opts.numNegatives ?? 1;
    if (!Number.isInteger(k) || k < 1 || k > 1024)
      throw new ArgumentError(op, `numNegatives must be an integer in [1, 1024], got ${describe(opts.numNegatives)}`);
    if (opts.inBatchNegatives !== undefined && typeof opts.inBatchNegatives !== 'boolean')
      throw new ArgumentError(op, `inBatchNegatives must be true or false, got ${describe(opts.inBatchNegatives)}`);
    const qg = opts.queryGradient ?? 'sampled';
    if (qg !== 'sampled' && qg !== 'exact')
      throw new ArgumentError(op, `queryGradient must be 'sampled' or 'exact', got ${describe(opts.queryGradient)}`);
    this.embeddingKey = opts.embeddingKey;
    this.dataKeys = Object.freeze(opts.dataKeys.slice());
    this.scoreTransform = opts.scoreTransform;
    this.topK = opts.topK;
    this.reducer = checkReducer(op, opts.reducer);
    this.maskEmptySlots = opts.maskEmptySlots ?? true;
    this.falseNegativeKey = opts.falseNegativeKey;
    this.retrievalFn = retrievalFrom(op, opts);
    this.fused = opts.fused ?? true;
    this.estimator = Object.freeze({
      numNegatives: k,
      inBatchNegatives: opts.inBatchNegatives ?? false,
      queryGradient: qg,
    });
    this.retriever = Object.freeze({
      embeddingKey: this.embeddingKey,
      dataKeys: this.dataKeys,
      scoreTransform: this.scoreTransform,
      topK: this.topK,
      maskEmptySlots: this.maskEmptySlots,
      falseNegativeKey: this.falseNegativeKey,
      retrievalFn: this.retrievalFn,
      sampler: opts.retrievalFn === undefined ? (opts.sampler ?? 'gumbel') : null,
      rng: opts.retrievalFn === undefined ? (opts.rng ?? null) : null,
      fused: this.fused,
      scanner: opts.scanner ?? fusedCacheScan,
    });
  }

  /** T(x), or x without a transform. */
  transform(scores: Tensor): Tensor {
    return transformScores(this.scoreTransform, scores);
  }

  /**
   * Computes the losses against `cache` (a record of caches, one per data
   * source; sources are concatenated in sorted key order). Pure: no cache
   * is modified; feed the refresh data to CacheManager.updateCache.
   */
  call(
    docNetwork: DocNetwork,
    queryEmbeddings: Tensor,
    posDocEmbeddings: Tensor,
    cache: Readonly<Record<string, NegativeCache>>,
    opts: CacheLossCallOptions = {},
  ): CacheLossReturn {
    const op = 'CacheClassificationLoss';
    if (typeof docNetwork !== 'function')
      throw new ArgumentError(
        op,
        `docNetwork must be a function (features) => embeddings, got ${describe(docNetwork)}`,
      );
    checkOptions(op, opts, ['positiveIds', 'retrieval'], { required: true });
    const { b, d } = checkQueryAndPositives(op, queryEmbeddings, posDocEmbeddings);
    const sources = checkCaches(op, cache, this.embeddingKey, this.dataKeys, d, this.falseNegativeKey);
    const positiveIds = this.checkPositiveIds(op, opts.positiveIds, b);
    const r =
      opts.retrieval !== undefined
        ? checkRetrieval(op, opts.retrieval, cache, queryEmbeddings, this.estimator.numNegatives)
        : this.retrieveFrom(queryEmbeddings, cache, sources, positiveIds);
    // The doc network on the sampled items: each distinct item once when there are several samples.
    const { features, inverse, rows } = docNetworkInputs(r, this.estimator.numNegatives);
    const unique = docNetwork(features);
    checkFresh(op, unique, rows, d);
    const fresh = inverse === null ? unique : gatherRows(unique, wrap(inverse, [inverse.length], 'int32'));
    const terms = isReferenceEstimator(this.estimator)
      ? referenceLossTerms(this.scoreTransform, this.reducer, queryEmbeddings, posDocEmbeddings, fresh, r)
      : estimatorLossTerms(
          this.scoreTransform,
          this.reducer,
          this.estimator,
          queryEmbeddings,
          posDocEmbeddings,
          fresh,
          r,
          this.estimator.inBatchNegatives ? inBatchExclusions(b, positiveIds) : null,
          this.scoreTransform === undefined ? 1 : (this.scoreTransform.scale ?? null),
        );
    const S = r.numSamples;
    const valid = S === 1 ? r.hasNegative : Uint8Array.from(r.indices, (_, t) => r.hasNegative[Math.floor(t / S)]!);
    const refresh = refreshData(cache, sources, this.embeddingKey, r.indices, valid, stopGradient(fresh));
    return { ...terms, ...refresh };
  }

  checkPositiveIds(op: string, ids: Tensor | undefined, b: number): Int32Array | null {
    if (this.falseNegativeKey === undefined) {
      if (ids !== undefined)
        throw new ArgumentError(
          op,
          'positiveIds was given but the loss has no falseNegativeKey; set falseNegativeKey to mask false negatives',
        );
      return null;
    }
    if (!isTensor(ids) || ids.dtype !== 'int32' || !shapesEqual(ids.shape, [b])) {
      throw new ArgumentError(
        op,
        `falseNegativeKey is "${this.falseNegativeKey}", so positiveIds must be an int32 [${b}] tensor (one id per query), got ${describe(ids)}`,
      );
    }
    return unsafeData(ids) as Int32Array;
  }

  /**
   * Samples the negatives for `queryEmbeddings` (values only; no gradient)
   * without computing the loss. Pass the result to `call` as `retrieval`.
   */
  retrieve(
    queryEmbeddings: Tensor,
    cache: Readonly<Record<string, NegativeCache>>,
    opts: Omit<CacheLossCallOptions, 'retrieval'> = {},
  ): Retrieval {
    const op = 'CacheClassificationLoss.retrieve';
    checkOptions(op, opts, ['positiveIds'], { required: true });
    if (
      !isTensor(queryEmbeddings) ||
      queryEmbeddings.rank !== 2 ||
      !(queryEmbeddings.dtype === 'float32' || queryEmbeddings.dtype === 'float64')
    ) {
      throw new ArgumentError(
        op,
        `queryEmbeddings must be a float [batch, dim] tensor, got ${describe(queryEmbeddings)}`,
      );
    }
    if (queryEmbeddings.shape[0] === 0) throw new ArgumentError(op, 'the batch is empty; need at least one query');
    const sources = checkCaches(
      op,
      cache,
      this.embeddingKey,
      this.dataKeys,
      queryEmbeddings.shape[1]!,
      this.falseNegativeKey,
    );
    const positiveIds = this.checkPositiveIds(op, opts.positiveIds, queryEmbeddings.shape[0]!);
    const q = stopGradient(queryEmbeddings);
    const r = this.retrieveFrom(q, cache, sources, positiveIds);
    return { ...r, cache, queries: q, docNetworkFeatures: docNetworkInputs(r, this.estimator.numNegatives).features };
  }

  /**
   * Retrieval with this loss's options for queries `q` (values only). The
   * sharded loss calls it with its own top-k per shard.
   */
  retrieveFrom(
    q: Tensor,
    cache: Readonly<Record<string, NegativeCache>>,
    sources: readonly string[],
    positiveIds: Int32Array | null,
    topK = this.topK,
  ): RetrievalResult {
    const e = this.estimator;
    const req: RetrievalRequest = {
      numSamples: e.numNegatives,
      softmaxMean: e.queryGradient === 'exact',
      excludeRows:
        e.inBatchNegatives && positiveIds !== null && this.falseNegativeKey !== undefined
          ? rowsMatching(concatSources(cache, sources, this.falseNegativeKey), positiveIds)
          : null,
    };
    return retrieveFromCaches(this.retriever, q, cache, sources, positiveIds, req, topK);
  }

  /** The reference's loss terms for a retrieval (used by the sharded loss, whose estimator is the reference's). */
  lossTerms(
    q: Tensor,
    p: Tensor,
    fresh: Tensor,
    r: Pick<RetrievalResult, 'scores' | 'hasNegative' | 'retrievedCacheEmbeddings' | 'indices'>,
  ): LossTerms {
    return referenceLossTerms(this.scoreTransform, this.reducer, q, p, fresh, r);
  }
}

/**
 * The features the doc network runs on: the sampled items' data as
 * retrieved (one sample per query: exactly the reference's b rows), or, with
 * several samples, each distinct cache index once (first-occurrence order)
 * with `inverse` mapping the b·S samples back to those rows.
 */
function docNetworkInputs(
  r: RetrievalResult,
  numSamples: number,
): { features: Record<string, Tensor>; inverse: Int32Array | null; rows: number } {
  if (numSamples === 1) return { features: r.retrievedData, inverse: null, rows: r.indices.length };
  const first = new Map<number, number>();
  const keep: number[] = [];
  const inverse = new Int32Array(r.indices.length);
  r.indices.forEach((j, t) => {
    let u = first.get(j);
    if (u === undefined) {
      u = keep.length;
      first.set(j, u);
      keep.push(t);
    }
    inverse[t] = u;
  });
  const rows = wrap(Int32Array.from(keep), [keep.length], 'int32');
  const features: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(r.retrievedData)) features[k] = gatherRows(v, rows);
  return { features, inverse, rows: keep.length };
}

/** [b·b] 1 where positive j is not an in-batch negative for query i: j = i, or the same false-negative id. */
function inBatchExclusions(b: number, positiveIds: Int32Array | null): Uint8Array {
  const ex = new Uint8Array(b * b);
  for (let i = 0; i < b; i++)
    for (let j = 0; j < b; j++)
      ex[i * b + j] = i === j || (positiveIds !== null && positiveIds[i] === positiveIds[j]) ? 1 : 0;
  return ex;
}

/** [n] 1 where the cache row's id is one of `ids`. */
function rowsMatching(rowIds: Tensor, ids: Int32Array): Uint8Array {
  const set = new Set(ids);
  const d = unsafeData(rowIds) as Int32Array;
  const out = new Uint8Array(d.length);
  for (let j = 0; j < d.length; j++) if (set.has(d[j]!)) out[j] = 1;
  return out;
}
