/**
 * Retrieval from a record of caches (reference: losses._retrieve_from_caches):
 * score every cached item for every query, exclude what must not be a
 * negative, optionally narrow to the approximate top-k, sample, and gather
 * the sampled items' data and cached embeddings. Values only: the scores are
 * computed from stop-gradient(queries) (they feed probPos and the sampling,
 * both constants of the loss), so no [b, n] graph is ever built.
 *
 * Two paths, same contract:
 *  - fused (default when it applies: float32, a scale or no transform, a
 *    built-in sampler over an explicit Rng): one streaming pass of the cache
 *    scan (src/scan/) gives each query's logSumExp over
 *    its candidates, its samples and, on request, the softmax-weighted mean of
 *    the cached embeddings, without the [b, n] score matrix;
 *  - straightforward: the all-pairs matmul, the transform, the exclusions,
 *    top-k, and the retrieval function (any RetrievalFn).
 *
 * Exclusions (each beyond the reference, each optional): empty slots
 * (`maskEmptySlots`), rows whose `falseNegativeKey` id equals the query's
 * positive id (false negatives), and rows excluded for every query
 * (`excludeRows`: the in-batch estimator excludes cached copies of the
 * batch's own positives, which take part fresh).
 *
 * Several samples per query (`numSamples` S): S independent draws from the
 * same softmax, with replacement. Gumbel: draw m uses the m-th noise key taken
 * from the generator, exactly what S successive calls of the retrieval
 * function draw, so both paths pick the same items whenever they compute the
 * same score floats. Samples are laid out query-major: entry i·S + m.
 */
import { ArgumentError, NonFiniteError, describe } from '../errors.js';
import { shapesEqual } from '../tensor/shape.js';
import type { Rng } from '../tensor/random.js';
import { isTensor, unsafeData, wrap, type Tensor } from '../tensor/tensor.js';
import { stopGradient } from '../autograd/transforms.js';
import { concat, gatherRows } from '../ops/layout.js';
import { matmul } from '../ops/linalg.js';
import type { NegativeCache } from '../cache/negativeCache.js';
import type { RetrievalFn } from '../retrieval/retrieval.js';
import { approximateTopKWithIndices } from '../retrieval/topk.js';
import { noiseKey } from '../scan/noise.js';
import { categoricalUniformCount, type FusedScanArgs, type FusedScanResult } from '../scan/contract.js';
import { transformScores, type Sampler, type ScoreTransform } from './common.js';

/** A fused cache scan (the contract of src/scan/contract.ts). */
export type Scanner = (args: FusedScanArgs) => FusedScanResult;

/** How a loss retrieves: fixed at construction. */
export interface RetrieverConfig {
  readonly embeddingKey: string;
  readonly dataKeys: readonly string[];
  readonly scoreTransform: ScoreTransform | undefined;
  readonly topK: number | undefined;
  readonly maskEmptySlots: boolean;
  readonly falseNegativeKey: string | undefined;
  readonly retrievalFn: RetrievalFn;
  /** The built-in sampler and its generator (null with a custom retrievalFn; the fused path needs them). */
  readonly sampler: Sampler | null;
  readonly rng: Rng | null;
  readonly fused: boolean;
  readonly scanner: Scanner;
}

/** What one call asks for beyond the reference's single sample. */
export interface RetrievalRequest {
  /** Draws per query (with replacement); 1 = the reference. */
  numSamples: number;
  /** Also return the softmax-weighted mean of the candidates' cached embeddings (fused path). */
  softmaxMean: boolean;
  /** [n] rows excluded for every query (1 = excluded), or null. */
  excludeRows: Uint8Array | null;
}

export const REFERENCE_REQUEST: RetrievalRequest = Object.freeze({
  numSamples: 1,
  softmaxMean: false,
  excludeRows: null,
});

/** The candidates of the straightforward path, for a loss that differentiates through their scores. */
export interface Candidates {
  /** [n, d] the concatenated cached embeddings. */
  embeddings: Tensor;
  /** [b·n] 1 where row j is excluded for query i, or null. */
  excluded: Uint8Array | null;
  /** [b·topK] the candidate rows (top-k group maxima), or null for every row. */
  topIndices: Int32Array | null;
}

/** Everything the losses need from retrieval. */
export interface RetrievalResult {
  /**
   * Candidate scores the softmax runs over ([b, n] or [b, topK]; excluded
   * entries are -Infinity), or, on the fused path, their logSumExp [b, 1]
   * (all probPos needs: logSumExp([s⁺, lse]) = logSumExp([s⁺, scores])).
   */
  scores: Tensor;
  /** Draws per query. */
  numSamples: number;
  /** int32 [b·S] index into the concatenated cache (query-major). */
  indices: Int32Array;
  /** [b] 0 where every cache row was excluded for that query (its sampled terms are 0). */
  hasNegative: Uint8Array;
  /** The sampled items' data, [b·S, ...] per data key. */
  retrievedData: Record<string, Tensor>;
  /** [b·S, d] the sampled items' cached (stale) embeddings. */
  retrievedCacheEmbeddings: Tensor;
  /** [b, d] Σⱼ πᵢⱼ cⱼ over query i's candidates (fused path, when requested). */
  softmaxMean?: Tensor;
  /** The straightforward path's candidates (null on the fused path). */
  candidates: Candidates | null;
}

/** Scores, excludes, narrows to top-k, samples, gathers. */
export function retrieveFromCaches(
  cfg: RetrieverConfig,
  queryEmbeddings: Tensor,
  cache: Readonly<Record<string, NegativeCache>>,
  sources: readonly string[],
  positiveIds: Int32Array | null,
  req: RetrievalRequest = REFERENCE_REQUEST,
  topK = cfg.topK,
): RetrievalResult {
  const allEmb = concatSources(cache, sources, cfg.embeddingKey);
  const n = allEmb.shape[0]!;
  if (topK !== undefined && n % topK !== 0)
    throw new ArgumentError(
      'CacheClassificationLoss',
      `topK = ${topK} does not divide the cache size ${n}; need cacheSize % topK === 0 (approximate top-k uses equal groups)`,
    );
  const scale = fusedScale(cfg.scoreTransform);
  if (
    cfg.fused &&
    scale !== null &&
    cfg.sampler !== null &&
    cfg.rng !== null &&
    queryEmbeddings.dtype === 'float32' &&
    allEmb.dtype === 'float32'
  ) {
    return retrieveFused(cfg, queryEmbeddings, allEmb, cache, sources, positiveIds, req, topK, scale, cfg.rng);
  }
  return retrieveStraightforward(cfg, queryEmbeddings, allEmb, cache, sources, positiveIds, req, topK);
}

/** The scale of the score transform if the fused path can apply it (identity = 1), else null. */
function fusedScale(t: ScoreTransform | undefined): number | null {
  if (t === undefined) return 1;
  const c = t.scale;
  return typeof c === 'number' && Number.isFinite(c) ? c : null;
}

function retrieveStraightforward(
  cfg: RetrieverConfig,
  q: Tensor,
  allEmb: Tensor,
  cache: Readonly<Record<string, NegativeCache>>,
  sources: readonly string[],
  positiveIds: Int32Array | null,
  req: RetrievalRequest,
  topK: number | undefined,
): RetrievalResult {
  const b = q.shape[0]!,
    n = allEmb.shape[0]!,
    S = req.numSamples;
  const raw = transformScores(cfg.scoreTransform, matmul(stopGradient(q), allEmb, { transposeB: true }));
  const excluded = exclusions(cfg, cache, sources, positiveIds, req.excludeRows, b, n);
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
  const width = candidates.shape[1]!;
  const cand = unsafeData(candidates);
  const hasNegative = new Uint8Array(b);
  for (let i = 0; i < b; i++) {
    for (let j = 0; j < width; j++)
      if (cand[i * width + j] !== -Infinity) {
        hasNegative[i] = 1;
        break;
      }
  }
  const indices = new Int32Array(b * S);
  const frozen = stopGradient(candidates);
  for (let m = 0; m < S; m++) {
    const picked = cfg.retrievalFn(frozen);
    if (!isTensor(picked) || picked.dtype !== 'int32' || !shapesEqual(picked.shape, [b, 1])) {
      throw new ArgumentError(
        'CacheClassificationLoss',
        `retrievalFn must return int32 [${b}, 1] indices, got ${describe(picked)}`,
      );
    }
    const cols = unsafeData(picked) as Int32Array;
    for (let i = 0; i < b; i++) {
      const c = cols[i]!;
      if (c < 0 || c >= width)
        throw new ArgumentError(
          'CacheClassificationLoss',
          `retrievalFn returned index ${c} for query ${i}; need 0 <= index < ${width}`,
        );
      indices[i * S + m] = topIdx ? topIdx[i * width + c]! : c;
    }
  }
  return {
    ...gathered(cfg, cache, sources, allEmb, indices),
    scores: frozen,
    numSamples: S,
    indices,
    hasNegative,
    candidates: { embeddings: allEmb, excluded, topIndices: topIdx },
  };
}

/**
 * The fused path: one streaming pass over the cache computes each query's
 * logSumExp over its candidates (all rows, or the top-k group maxima), draws
 * its samples and, on request, the softmax-weighted mean of the cached rows,
 * without the [b, n] score matrix.
 */
function retrieveFused(
  cfg: RetrieverConfig,
  q: Tensor,
  allEmb: Tensor,
  cache: Readonly<Record<string, NegativeCache>>,
  sources: readonly string[],
  positiveIds: Int32Array | null,
  req: RetrievalRequest,
  topK: number | undefined,
  scale: number,
  rng: Rng,
): RetrievalResult {
  const op = 'CacheClassificationLoss';
  const b = q.shape[0]!,
    d = q.shape[1]!,
    n = allEmb.shape[0]!,
    S = req.numSamples;
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
  let rowValid = cfg.maskEmptySlots ? concatValid(cache, sources) : null;
  if (req.excludeRows !== null) {
    const v = rowValid ? rowValid.slice() : new Uint8Array(n).fill(1);
    for (let j = 0; j < n; j++) if (req.excludeRows[j]) v[j] = 0;
    rowValid = v;
  }
  const rowIds =
    positiveIds && cfg.falseNegativeKey !== undefined
      ? (unsafeData(concatSources(cache, sources, cfg.falseNegativeKey)) as Int32Array)
      : null;
  const args: FusedScanArgs = {
    queries: unsafeData(q) as Float32Array,
    b,
    d,
    cache: unsafeData(allEmb) as Float32Array,
    n,
    scale,
    sampler: cfg.sampler!,
    ...(rowValid ? { rowValid } : {}),
    ...(rowIds ? { rowIds, queryExcludeIds: positiveIds! } : {}),
    ...(topK !== undefined ? { topKGroups: topK } : {}),
    ...(S > 1 ? { numSamples: S } : {}),
    ...(req.softmaxMean ? { softmaxMean: true } : {}),
  };
  // A rejected cache must not consume randomness: the generator is rewound before throwing.
  const rngBefore = rng.getState();
  if (cfg.sampler === 'gumbel') {
    if (S === 1) args.key = noiseKey(rng);
    else args.keys = Array.from({ length: S }, () => noiseKey(rng));
  } else {
    const u = new Float64Array(categoricalUniformCount(b, n, topK, S));
    for (let i = 0; i < u.length; i++) u[i] = rng.uniformOpen();
    args.uniforms = u;
  }
  const res = cfg.scanner(args);
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
  const sample = res.sample!;
  if (sample.length !== b * S) {
    throw new ArgumentError(op, `the scanner returned ${sample.length} samples; need b·numSamples = ${b * S}`);
  }
  const indices = new Int32Array(b * S);
  const hasNegative = new Uint8Array(b);
  for (let i = 0; i < b; i++) {
    hasNegative[i] = sample[i * S]! >= 0 ? 1 : 0;
    for (let m = 0; m < S; m++) {
      const j = sample[i * S + m]!;
      // no candidate left: index 0 as a placeholder (hasNegative false: zero weight, no refresh)
      indices[i * S + m] = j >= 0 ? j : 0;
    }
  }
  let softmaxMean: Tensor | undefined;
  if (req.softmaxMean) {
    if (!(res.softmaxMean instanceof Float32Array) || res.softmaxMean.length !== b * d) {
      throw new ArgumentError(op, `the scanner did not return softmaxMean [${b}, ${d}]; it must implement the option`);
    }
    softmaxMean = wrap(res.softmaxMean, [b, d], 'float32');
  }
  const lse = wrap(Float32Array.from(res.logSumExp), [b, 1], 'float32');
  return {
    ...gathered(cfg, cache, sources, allEmb, indices),
    scores: lse,
    numSamples: S,
    indices,
    hasNegative,
    ...(softmaxMean ? { softmaxMean } : {}),
    candidates: null,
  };
}

/** The sampled items' data and cached embeddings. */
function gathered(
  cfg: RetrieverConfig,
  cache: Readonly<Record<string, NegativeCache>>,
  sources: readonly string[],
  allEmb: Tensor,
  indices: Int32Array,
): Pick<RetrievalResult, 'retrievedData' | 'retrievedCacheEmbeddings'> {
  const idxT = wrap(indices, [indices.length], 'int32');
  const retrievedData: Record<string, Tensor> = {};
  for (const key of cfg.dataKeys) retrievedData[key] = gatherRows(concatSources(cache, sources, key), idxT);
  return { retrievedData, retrievedCacheEmbeddings: gatherRows(allEmb, idxT) };
}

/** [b·n] exclusion flags (empty slots, false negatives, rows excluded for all), or null when nothing is excluded. */
function exclusions(
  cfg: RetrieverConfig,
  cache: Readonly<Record<string, NegativeCache>>,
  sources: readonly string[],
  positiveIds: Int32Array | null,
  excludeRows: Uint8Array | null,
  b: number,
  n: number,
): Uint8Array | null {
  const rowValid = cfg.maskEmptySlots ? concatValid(cache, sources) : null;
  const rowIds =
    positiveIds && cfg.falseNegativeKey !== undefined
      ? (unsafeData(concatSources(cache, sources, cfg.falseNegativeKey)) as Int32Array)
      : null;
  if (rowValid === null && rowIds === null && excludeRows === null) return null;
  const ex = new Uint8Array(b * n);
  for (let i = 0; i < b; i++) {
    for (let j = 0; j < n; j++) {
      if ((rowValid && !rowValid[j]) || (rowIds && rowIds[j] === positiveIds![i]) || (excludeRows && excludeRows[j]))
        ex[i * n + j] = 1;
    }
  }
  return ex;
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

/** [n] 1 where the concatenated row holds a real item, or null when no source tracks validity. */
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
