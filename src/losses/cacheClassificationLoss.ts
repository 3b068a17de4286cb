/**
 * The cache classification loss (reference: losses.CacheClassificationLoss).
 *
 * Per query i with positive score s⁺ᵢ = T(<qᵢ, pᵢ>) and cache scores
 * sᵢⱼ = T(<qᵢ, cⱼ>) over the (concatenated) cached embeddings cⱼ:
 *
 *   jᵢ ~ softmax(sᵢ·)                    sampled, a constant for the gradient
 *   probPosᵢ = softmax([s⁺ᵢ, sᵢ·])₀      a constant (stop-gradient)
 *   s⁻ᵢ = T(<qᵢ, g(features_jᵢ)>)        the sampled item through the doc network
 *   trainingLossᵢ     = (1 - probPosᵢ)·(s⁻ᵢ - s⁺ᵢ)
 *   interpretableLossᵢ = -log probPosᵢ
 *   stalenessᵢ        = ||c_jᵢ - g(features_jᵢ)||² / ||g(features_jᵢ)||²
 *
 * With fresh cached embeddings, E_j[∇ trainingLoss] = ∇ interpretableLoss
 * (the full cache-softmax cross-entropy): (1-probPos)·Σⱼ Pⱼ ∇s⁻ⱼ equals the
 * softmax-weighted negative term of ∇(-log probPos) because
 * exp(sⱼ)/Z = (1-probPos)·Pⱼ. This is proved by an exact-enumeration test.
 *
 * The all-pairs scores are computed from stop-gradient(q): they only feed
 * probPos and the sampling, both constants, so their (large) graph is never
 * built. `-log probPos` is computed as logSumExp([s⁺, s]) - s⁺, the same
 * value without the rounding of log(softmax).
 *
 * Beyond the reference (each optional; see CacheClassificationLossOptions):
 * empty slots excluded from scoring and sampling, false-negative masking by
 * an id key, exact categorical sampling, and per-query extras (probPos,
 * sampled indices, hasNegative).
 */
import { ArgumentError, DTypeError, NonFiniteError, ShapeError, describe, fmtShape } from '../errors.js';
import { isFloat } from '../tensor/dtype.js';
import { shapesEqual } from '../tensor/shape.js';
import type { Rng } from '../tensor/random.js';
import { isTensor, unsafeData, wrap, type Tensor } from '../tensor/tensor.js';
import { stopGradient } from '../autograd/transforms.js';
import { concat, expandDims, gatherRows } from '../ops/layout.js';
import { exp, mul, neg, sub } from '../ops/elementwise.js';
import { logSumExp } from '../ops/reduce.js';
import { matmul } from '../ops/linalg.js';
import type { NegativeCache } from '../cache/negativeCache.js';
import type { RetrievalFn } from '../retrieval/retrieval.js';
import { approximateTopKWithIndices } from '../retrieval/topk.js';
import { noiseKey } from '../scan/noise.js';
import { categoricalUniformCount, type FusedScanArgs, type FusedScanResult } from '../scan/contract.js';
import { fusedCacheScan } from '../scan/wasm.js';
import {
  applyReducer,
  checkQueryAndPositives,
  checkReducer,
  retrievalFrom,
  rowDot,
  staleness,
  type DocNetwork,
  type Reducer,
  type Sampler,
  type ScoreTransform,
} from './common.js';

export interface CacheLossReturn {
  /** Differentiate this. Reduced by the reducer (mean by default), or [b]. */
  trainingLoss: Tensor;
  /** -log probPos: the cache-softmax cross-entropy (a constant; no gradient). */
  interpretableLoss: Tensor;
  /** ||cached - fresh||² / ||fresh||² of the sampled items (a constant). */
  staleness: Tensor;
  /** Per data source: {embeddingKey: fresh embeddings of all b sampled items} (constants). */
  updatedItemData: Record<string, Record<string, Tensor>>;
  /** Per data source: int32 [b], sampled index minus the source's offset. */
  updatedItemIndices: Record<string, Tensor>;
  /** Per data source: bool [b], the sampled item belongs to that source (and exists). */
  updatedItemMask: Record<string, Tensor>;
  /** Beyond the reference: float [b] probPos (a constant). */
  probPos: Tensor;
  /** Beyond the reference: int32 [b], the sampled index into the concatenated cache. */
  retrievedIndices: Tensor;
  /** Beyond the reference: bool [b], false where every cache row was excluded for that query (its loss terms are 0). */
  hasNegative: Tensor;
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
  scanner?: (args: FusedScanArgs) => FusedScanResult;
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

/** Everything the two losses need from retrieval. */
export interface RetrievalResult {
  /**
   * Candidate scores the softmax runs over ([b, n] or [b, topK]; excluded
   * entries are -Infinity), or, on the fused path, their logSumExp [b, 1]
   * (all probPos needs: logSumExp([s⁺, lse]) = logSumExp([s⁺, scores])).
   */
  scores: Tensor;
  /** int32 [b] index into the concatenated cache. */
  indices: Int32Array;
  hasNegative: Uint8Array;
  retrievedData: Record<string, Tensor>;
  retrievedCacheEmbeddings: Tensor;
}

/** The result of `CacheClassificationLoss.retrieve`, to pass back as `call(..., {retrieval})`. */
export interface Retrieval extends RetrievalResult {
  /** The cache record it was computed against. */
  readonly cache: Readonly<Record<string, NegativeCache>>;
  /** The query values it was computed for (a constant copy). */
  readonly queries: Tensor;
}

export class CacheClassificationLoss {
  readonly embeddingKey: string;
  readonly dataKeys: readonly string[];
  readonly scoreTransform: ScoreTransform | undefined;
  readonly topK: number | undefined;
  readonly reducer: Reducer;
  readonly maskEmptySlots: boolean;
  readonly falseNegativeKey: string | undefined;
  readonly retrievalFn: RetrievalFn;
  readonly fused: boolean;
  /** The built-in sampler and its generator, when no custom retrievalFn was given (the fused path needs them). */
  private readonly sampler: Sampler | null;
  private readonly rng: Rng | null;
  private readonly scanner: (args: FusedScanArgs) => FusedScanResult;

  constructor(opts: CacheClassificationLossOptions) {
    const op = 'CacheClassificationLoss';
    if (opts === null || typeof opts !== 'object')
      throw new ArgumentError(op, `options must be an object, got ${describe(opts)}`);
    const allowed = [
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
      'fused',
      'scanner',
    ];
    for (const k of Object.keys(opts))
      if (!allowed.includes(k)) throw new ArgumentError(op, `unknown option "${k}"; allowed: ${allowed.join(', ')}`);
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
    this.embeddingKey = opts.embeddingKey;
    this.dataKeys = Object.freeze(opts.dataKeys.slice());
    this.scoreTransform = opts.scoreTransform;
    this.topK = opts.topK;
    this.reducer = checkReducer(op, opts.reducer);
    this.maskEmptySlots = opts.maskEmptySlots ?? true;
    this.falseNegativeKey = opts.falseNegativeKey;
    this.retrievalFn = retrievalFrom(op, opts);
    if (opts.fused !== undefined && typeof opts.fused !== 'boolean')
      throw new ArgumentError(op, `fused must be true or false, got ${describe(opts.fused)}`);
    if (opts.scanner !== undefined && typeof opts.scanner !== 'function')
      throw new ArgumentError(op, `scanner must be a function, got ${describe(opts.scanner)}`);
    this.fused = opts.fused ?? true;
    this.sampler = opts.retrievalFn === undefined ? (opts.sampler ?? 'gumbel') : null;
    this.rng = opts.retrievalFn === undefined ? (opts.rng ?? null) : null;
    this.scanner = opts.scanner ?? fusedCacheScan;
  }

  /** The scale of the score transform if the fused path can apply it (identity = 1), else null. */
  private fusedScale(): number | null {
    if (this.scoreTransform === undefined) return 1;
    const c = this.scoreTransform.scale;
    return typeof c === 'number' && Number.isFinite(c) ? c : null;
  }

  /** T(x), or x without a transform. */
  transform(scores: Tensor): Tensor {
    if (!this.scoreTransform) return scores;
    const out = this.scoreTransform(scores);
    if (!isTensor(out) || !isFloat(out.dtype) || !shapesEqual(out.shape, scores.shape)) {
      throw new ArgumentError(
        'CacheClassificationLoss',
        `scoreTransform must map scores ${fmtShape(scores.shape)} to a float tensor of the same shape, got ${describe(out)}`,
      );
    }
    return out;
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
    checkCallOptions(op, opts, ['positiveIds', 'retrieval']);
    const { b, d } = checkQueryAndPositives(op, queryEmbeddings, posDocEmbeddings);
    const sources = checkCaches(op, cache, this.embeddingKey, this.dataKeys, d, this.falseNegativeKey);
    const positiveIds = this.checkPositiveIds(op, opts.positiveIds, b);
    const r =
      opts.retrieval !== undefined
        ? checkRetrieval(op, opts.retrieval, cache, queryEmbeddings)
        : this.retrieveFrom(queryEmbeddings, cache, sources, positiveIds);
    const fresh = docNetwork(r.retrievedData);
    checkFresh(op, fresh, b, d);
    const out = this.lossTerms(queryEmbeddings, posDocEmbeddings, fresh, r);
    const refresh = refreshData(cache, sources, this.embeddingKey, r.indices, r.hasNegative, stopGradient(fresh));
    return { ...out, ...refresh };
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
    checkCallOptions(op, opts, ['positiveIds']);
    if (!isTensor(queryEmbeddings) || queryEmbeddings.rank !== 2 || !isFloat(queryEmbeddings.dtype)) {
      throw new ArgumentError(
        op,
        `queryEmbeddings must be a float [batch, dim] tensor, got ${describe(queryEmbeddings)}`,
      );
    }
    if (queryEmbeddings.shape[0] === 0) throw new ShapeError(op, 'the batch is empty; need at least one query');
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
    return { ...this.retrieveFrom(q, cache, sources, positiveIds), cache, queries: q };
  }

  /** Scores every cached item, excludes masked ones, narrows to top-k, samples, gathers. */
  retrieveFrom(
    queryEmbeddings: Tensor,
    cache: Readonly<Record<string, NegativeCache>>,
    sources: readonly string[],
    positiveIds: Int32Array | null,
    topK = this.topK,
  ): RetrievalResult {
    const allEmb = concatSources(cache, sources, this.embeddingKey);
    const n = allEmb.shape[0]!;
    const b = queryEmbeddings.shape[0]!;
    if (topK !== undefined && n % topK !== 0)
      throw new ArgumentError(
        'CacheClassificationLoss',
        `topK = ${topK} does not divide the cache size ${n}; need cacheSize % topK === 0 (approximate top-k uses equal groups)`,
      );
    const scale = this.fusedScale();
    if (
      this.fused &&
      scale !== null &&
      this.sampler !== null &&
      this.rng !== null &&
      queryEmbeddings.dtype === 'float32' &&
      allEmb.dtype === 'float32'
    ) {
      return this.retrieveFused(
        queryEmbeddings,
        allEmb,
        cache,
        sources,
        positiveIds,
        topK,
        scale,
        this.sampler,
        this.rng,
      );
    }
    const raw = this.transform(matmul(stopGradient(queryEmbeddings), allEmb, { transposeB: true }));
    const excluded = this.exclusions(cache, sources, positiveIds, b, n);
    let scores = raw;
    if (excluded !== null) {
      const s = unsafeData(raw).slice();
      for (let i = 0; i < s.length; i++) if (excluded[i]) s[i] = -Infinity;
      scores = wrap(s, raw.shape, raw.dtype);
    }
    let candidates = scores;
    let topIdx: Int32Array | null = null;
    if (topK !== undefined) {
      const t = approximateTopKWithIndices(scores, topK);
      candidates = t.values;
      topIdx = unsafeData(t.indices) as Int32Array;
    }
    const picked = this.retrievalFn(stopGradient(candidates));
    if (!isTensor(picked) || picked.dtype !== 'int32' || !shapesEqual(picked.shape, [b, 1])) {
      throw new ArgumentError(
        'CacheClassificationLoss',
        `retrievalFn must return int32 [${b}, 1] indices, got ${describe(picked)}`,
      );
    }
    const cols = unsafeData(picked) as Int32Array;
    const width = candidates.shape[1]!;
    const cand = unsafeData(candidates);
    const indices = new Int32Array(b);
    const hasNegative = new Uint8Array(b);
    for (let i = 0; i < b; i++) {
      const c = cols[i]!;
      if (c < 0 || c >= width)
        throw new ArgumentError(
          'CacheClassificationLoss',
          `retrievalFn returned index ${c} for query ${i}; need 0 <= index < ${width}`,
        );
      indices[i] = topIdx ? topIdx[i * width + c]! : c;
      for (let j = 0; j < width; j++)
        if (cand[i * width + j] !== -Infinity) {
          hasNegative[i] = 1;
          break;
        }
    }
    return this.gathered(cache, sources, allEmb, stopGradient(candidates), indices, hasNegative);
  }

  /** The sampled items' data and cached embeddings. */
  private gathered(
    cache: Readonly<Record<string, NegativeCache>>,
    sources: readonly string[],
    allEmb: Tensor,
    scores: Tensor,
    indices: Int32Array,
    hasNegative: Uint8Array,
  ): RetrievalResult {
    const idxT = wrap(indices, [indices.length], 'int32');
    const retrievedData: Record<string, Tensor> = {};
    for (const key of this.dataKeys) retrievedData[key] = gatherRows(concatSources(cache, sources, key), idxT);
    return { scores, indices, hasNegative, retrievedData, retrievedCacheEmbeddings: gatherRows(allEmb, idxT) };
  }

  /**
   * The fused path: one streaming pass over the cache computes each query's
   * logSumExp over its candidates (all rows, or the top-k group maxima) and
   * draws its sample, without the [b, n] score matrix.
   */
  private retrieveFused(
    q: Tensor,
    allEmb: Tensor,
    cache: Readonly<Record<string, NegativeCache>>,
    sources: readonly string[],
    positiveIds: Int32Array | null,
    topK: number | undefined,
    scale: number,
    sampler: Sampler,
    rng: Rng,
  ): RetrievalResult {
    const op = 'CacheClassificationLoss';
    const b = q.shape[0]!,
      d = q.shape[1]!,
      n = allEmb.shape[0]!;
    // The kernels do not look for NaN (a pass over the cache would cost as much as the scan):
    // the queries are checked here, the cache through its effect on the statistics below.
    const qd = unsafeData(q);
    for (let i = 0; i < qd.length; i++) {
      if (!Number.isFinite(qd[i]!))
        throw new NonFiniteError(
          op,
          `queryEmbeddings[${Math.floor(i / d)}, ${i % d}] is ${qd[i]}; need finite embeddings`,
        );
    }
    const rowValid = this.maskEmptySlots ? concatValid(cache, sources) : null;
    const rowIds =
      positiveIds && this.falseNegativeKey !== undefined
        ? (unsafeData(concatSources(cache, sources, this.falseNegativeKey)) as Int32Array)
        : null;
    const args: FusedScanArgs = {
      queries: unsafeData(q) as Float32Array,
      b,
      d,
      cache: unsafeData(allEmb) as Float32Array,
      n,
      scale,
      sampler,
      ...(rowValid ? { rowValid } : {}),
      ...(rowIds ? { rowIds, queryExcludeIds: positiveIds! } : {}),
      ...(topK !== undefined ? { topKGroups: topK } : {}),
    };
    // A rejected cache must not consume randomness: the generator is rewound before throwing.
    const rngBefore = rng.getState();
    if (sampler === 'gumbel') args.key = noiseKey(rng);
    else {
      const u = new Float64Array(categoricalUniformCount(b, n, topK));
      for (let i = 0; i < u.length; i++) u[i] = rng.uniformOpen();
      args.uniforms = u;
    }
    const res = this.scanner(args);
    const c = unsafeData(allEmb);
    for (let i = 0; i < b; i++) {
      const v = res.logSumExp[i]!;
      // No candidate at all: either every row was excluded, or every remaining score was NaN
      // (the kernels never pick a NaN): look at this query's candidate rows.
      if (v === -Infinity) {
        for (let j = 0; j < n; j++) {
          if ((rowValid && !rowValid[j]) || (rowIds && rowIds[j] === positiveIds![i])) continue;
          for (let k = j * d; k < (j + 1) * d; k++) {
            if (!Number.isFinite(c[k]!)) {
              rng.setState(rngBefore);
              throw new NonFiniteError(
                op,
                `cached embedding row ${j} (of the concatenated cache) holds ${c[k]}; the scores of query ${i} are not finite`,
              );
            }
          }
        }
      }
      if (v !== v || v === Infinity) {
        rng.setState(rngBefore);
        let bad = -1;
        for (let k = 0; k < c.length; k++)
          if (!Number.isFinite(c[k]!)) {
            bad = k;
            break;
          }
        throw new NonFiniteError(
          op,
          bad >= 0
            ? `cached embedding row ${Math.floor(bad / d)} (of the concatenated cache) holds ${c[bad]}; the scores of query ${i} are not finite`
            : `the scores of query ${i} overflow (logSumExp ${v}); reduce the score scale`,
        );
      }
    }
    const indices = new Int32Array(b);
    const hasNegative = new Uint8Array(b);
    for (let i = 0; i < b; i++) {
      const j = res.sample![i]!;
      // no candidate left: index 0 as a placeholder (hasNegative false: zero loss, no refresh)
      indices[i] = j >= 0 ? j : 0;
      hasNegative[i] = j >= 0 ? 1 : 0;
    }
    const lse = wrap(Float32Array.from(res.logSumExp), [b, 1], 'float32');
    return this.gathered(cache, sources, allEmb, lse, indices, hasNegative);
  }

  /** [b*n] exclusion flags (empty slots, false negatives), or null when nothing is excluded. */
  private exclusions(
    cache: Readonly<Record<string, NegativeCache>>,
    sources: readonly string[],
    positiveIds: Int32Array | null,
    b: number,
    n: number,
  ): Uint8Array | null {
    const rowValid = this.maskEmptySlots ? concatValid(cache, sources) : null;
    const rowIds =
      positiveIds && this.falseNegativeKey !== undefined
        ? (unsafeData(concatSources(cache, sources, this.falseNegativeKey)) as Int32Array)
        : null;
    if (rowValid === null && rowIds === null) return null;
    const ex = new Uint8Array(b * n);
    for (let i = 0; i < b; i++) {
      for (let j = 0; j < n; j++) {
        if ((rowValid && !rowValid[j]) || (rowIds && rowIds[j] === positiveIds![i])) ex[i * n + j] = 1;
      }
    }
    return ex;
  }

  /** The three per-query losses from the scores, reduced. */
  lossTerms(
    q: Tensor,
    p: Tensor,
    fresh: Tensor,
    r: Pick<RetrievalResult, 'scores' | 'hasNegative' | 'retrievedCacheEmbeddings' | 'indices'>,
  ): Omit<CacheLossReturn, 'updatedItemData' | 'updatedItemIndices' | 'updatedItemMask'> {
    const b = q.shape[0]!;
    const sPos = this.transform(rowDot(q, p));
    const sNeg = this.transform(rowDot(q, fresh));
    const sPosC = stopGradient(sPos);
    const all = concat([expandDims(sPosC, 1), r.scores], 1);
    const logProbPos = sub(sPosC, logSumExp(all, { axis: 1 })); // log softmax([s⁺, s])₀, a constant
    const probPos = exp(logProbPos);
    const trainingLoss = mul(sub(1, probPos), sub(sNeg, sPos));
    const keep = wrap(r.hasNegative.slice(), [b], 'bool');
    const stale = staleness(stopGradient(r.retrievedCacheEmbeddings), stopGradient(fresh), keep);
    return {
      trainingLoss: applyReducer(this.reducer, trainingLoss),
      interpretableLoss: applyReducer(this.reducer, neg(logProbPos)),
      staleness: applyReducer(this.reducer, stale),
      probPos,
      retrievedIndices: wrap(r.indices.slice(), [b], 'int32'),
      hasNegative: keep,
    };
  }
}

/** The options of call/retrieve: a plain object with known keys. */
function checkCallOptions(op: string, opts: unknown, allowed: readonly string[]): void {
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts))
    throw new ArgumentError(op, `options must be an object like {${allowed.join(', ')}}, got ${describe(opts)}`);
  for (const k of Object.keys(opts))
    if (!allowed.includes(k)) throw new ArgumentError(op, `unknown option "${k}"; allowed: ${allowed.join(', ')}`);
}

/** Validates the record of caches; returns the sources in sorted order. */
export function checkCaches(
  op: string,
  cache: unknown,
  embeddingKey: string,
  dataKeys: readonly string[],
  d: number,
  idKey?: string,
): string[] {
  if (cache === null || typeof cache !== 'object' || Array.isArray(cache) || Object.keys(cache).length === 0) {
    throw new ArgumentError(
      op,
      `cache must be a non-empty record of caches (data source -> NegativeCache), got ${describe(cache)}`,
    );
  }
  const sources = Object.keys(cache).sort();
  for (const s of sources) {
    const c = (cache as Record<string, NegativeCache>)[s];
    if (c === null || typeof c !== 'object' || c.data === null || typeof c.data !== 'object') {
      throw new ArgumentError(op, `cache.${s} must be a NegativeCache {data, age}, got ${describe(c)}`);
    }
    const emb = c.data[embeddingKey];
    if (!isTensor(emb))
      throw new ArgumentError(
        op,
        `cache.${s}.data has no embedding "${embeddingKey}" (keys: ${Object.keys(c.data).join(', ')})`,
      );
    if (!isFloat(emb.dtype))
      throw new DTypeError(op, `cache.${s}.data.${embeddingKey} must be float, got ${emb.dtype}`);
    if (emb.rank !== 2 || emb.shape[1] !== d) {
      throw new ShapeError(
        op,
        `cache.${s}.data.${embeddingKey} is ${fmtShape(emb.shape)}; need [cacheSize, ${d}] to match the query dimension ${d}`,
      );
    }
    const size = emb.shape[0]!;
    for (const key of [...dataKeys, ...(idKey !== undefined ? [idKey] : [])]) {
      const t = c.data[key];
      if (!isTensor(t))
        throw new ArgumentError(op, `cache.${s}.data has no key "${key}" (keys: ${Object.keys(c.data).join(', ')})`);
      if (t.shape[0] !== size)
        throw new ShapeError(
          op,
          `cache.${s}.data.${key} has ${t.shape[0]} rows but the embeddings have ${size}; need one row per slot`,
        );
    }
    if (idKey !== undefined) {
      const t = c.data[idKey]!;
      if (t.dtype !== 'int32' || !(t.rank === 1 || (t.rank === 2 && t.shape[1] === 1))) {
        throw new DTypeError(
          op,
          `falseNegativeKey "${idKey}" must hold int32 ids of shape [cacheSize] or [cacheSize, 1], got ${fmtShape(t.shape)} ${t.dtype}`,
        );
      }
    }
    if (
      c.valid !== undefined &&
      (!isTensor(c.valid) || c.valid.dtype !== 'bool' || !shapesEqual(c.valid.shape, [size]))
    ) {
      throw new ArgumentError(op, `cache.${s}.valid must be a bool [${size}] tensor, got ${describe(c.valid)}`);
    }
  }
  return sources;
}

/** A precomputed retrieval must belong to this cache and these query values. */
function checkRetrieval(
  op: string,
  r: Retrieval,
  cache: Readonly<Record<string, NegativeCache>>,
  q: Tensor,
): RetrievalResult {
  if (r === null || typeof r !== 'object' || !(r.indices instanceof Int32Array))
    throw new ArgumentError(op, `retrieval must come from retrieve(), got ${describe(r)}`);
  if (r.cache !== cache)
    throw new ArgumentError(
      op,
      'retrieval was computed against a different cache; call retrieve() again with this cache',
    );
  const a = unsafeData(r.queries),
    bq = unsafeData(q);
  if (!shapesEqual(r.queries.shape, q.shape) || a.some((v, i) => !Object.is(v, bq[i]))) {
    throw new ArgumentError(
      op,
      'retrieval was computed for different query embeddings; sampling must see the same query values as the loss',
    );
  }
  return r;
}

function checkFresh(op: string, fresh: unknown, b: number, d: number): void {
  if (!isTensor(fresh) || !isFloat(fresh.dtype) || !shapesEqual(fresh.shape, [b, d])) {
    throw new ShapeError(
      op,
      `docNetwork must return float embeddings [${b}, ${d}] for the ${b} sampled items, got ${describe(fresh)}`,
    );
  }
}

/** The sources' tensors under `key`, concatenated in order (no copy for one source). */
export function concatSources(
  cache: Readonly<Record<string, NegativeCache>>,
  sources: readonly string[],
  key: string,
): Tensor {
  const parts = sources.map((s) => cache[s]!.data[key]!);
  return parts.length === 1 ? parts[0]! : concat(parts, 0);
}

function concatValid(cache: Readonly<Record<string, NegativeCache>>, sources: readonly string[]): Uint8Array | null {
  if (sources.every((s) => cache[s]!.valid === undefined)) return null;
  const parts = sources.map((s) => {
    const c = cache[s]!;
    const size = c.age.shape[0] ?? c.data[Object.keys(c.data)[0]!]!.shape[0]!;
    return c.valid ? (unsafeData(c.valid) as Uint8Array) : new Uint8Array(size).fill(1);
  });
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Per-source refresh data: fresh embeddings, local indices, membership masks. */
export function refreshData(
  cache: Readonly<Record<string, NegativeCache>>,
  sources: readonly string[],
  embeddingKey: string,
  indices: Int32Array,
  hasNegative: Uint8Array,
  fresh: Tensor,
): Pick<CacheLossReturn, 'updatedItemData' | 'updatedItemIndices' | 'updatedItemMask'> {
  const b = indices.length;
  const updatedItemData: Record<string, Record<string, Tensor>> = {};
  const updatedItemIndices: Record<string, Tensor> = {};
  const updatedItemMask: Record<string, Tensor> = {};
  let start = 0;
  for (const s of sources) {
    const size = cache[s]!.data[embeddingKey]!.shape[0]!;
    const local = new Int32Array(b);
    const mask = new Uint8Array(b);
    for (let i = 0; i < b; i++) {
      local[i] = indices[i]! - start;
      mask[i] = hasNegative[i] && indices[i]! >= start && indices[i]! < start + size ? 1 : 0;
    }
    updatedItemData[s] = { [embeddingKey]: fresh };
    updatedItemIndices[s] = wrap(local, [b], 'int32');
    updatedItemMask[s] = wrap(mask, [b], 'bool');
    start += size;
  }
  return { updatedItemData, updatedItemIndices, updatedItemMask };
}
