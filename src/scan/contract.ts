/**
 * The fused cache scan: scores of every cached embedding against every query,
 * their softmax statistics, S samples per query and (optionally) the softmax
 * mean of the cached embeddings — without ever holding the b × n score matrix.
 *
 * score(i, j) = f32(f32(scale) · f32(<q_i, c_j>))       (float32, as the kernels compute it)
 *
 * Row j is EXCLUDED for query i when rowValid[j] === 0 (an empty cache slot)
 * or rowIds[j] === queryExcludeIds[i] (false-negative masking: the query's own
 * positive is in the cache). Excluded rows count as score -Infinity: they are
 * never the max, never sampled, and add nothing to logSumExp.
 *
 * Results per query i (over the non-excluded rows):
 *   max[i]        the max score (-Infinity if every row is excluded)
 *   logSumExp[i]  log Σ_j exp(score(i, j)) (-Infinity if none), from a running
 *                 (max, sum relative to max) fold in float64
 *   sample[i]     one draw from softmax(score(i, ·)) (-1 if none):
 *     'gumbel'      argmax_j f32(score(i,j) + G(i,j)), G = gumbelAt(key, i, j)
 *                   (noise.ts); first index on ties. Given the key the sample
 *                   is deterministic, and every implementation (reference, TS
 *                   streaming, wasm, any row split) returns the same index
 *                   whenever the scores are the same floats (e.g. integer
 *                   embeddings, whose dot products are exact in any order).
 *     'categorical' a blockwise exponential race with caller-supplied
 *                   uniforms, described below.
 *   sampleScore[i] the score of the sampled row (-Infinity if none)
 *
 * Several samples: numSamples = S >= 1 (default 1) independent draws per
 * query from the same softmax (with replacement). sample / sampleScore are
 * then [b·S] row-major: query i's draws at i·S ... i·S + S - 1.
 *   'gumbel'      keys[m] (S keys, e.g. S calls of noiseKey(rng)) for draw m:
 *                 draw m = argmax_j f32(score(i,j) + gumbelAt(keys[m], i, j)),
 *                 exactly what S single-sample scans with those keys return.
 *                 `key` (S = 1 only) means keys = [key].
 *   'categorical' draw m of query i reads the uniforms a single-sample scan
 *                 of b·S queries gives to "query i·S + m" (below), so
 *                 categoricalUniformCount(b, n, topKGroups, S) values.
 * The block statistics are computed once per block and shared by the S
 * draws; only the race bookkeeping is per draw. Different keys (uniforms)
 * make the draws independent; the same key twice gives the same draw.
 *
 * Softmax mean: with softmaxMean: true the result also has
 *   softmaxMean[i·d .. i·d + d)  μ_i = Σ_j π_ij c_j,  π_i = softmax over query
 *                 i's candidates (the non-excluded rows; with topKGroups the
 *                 k group maxima, candidate row = groupArg), c_j = cache row j;
 *                 zeros when the query has no candidate.
 * It is the expectation of the cached embedding under the cache softmax,
 * which gives the exact query-side gradient of the cache softmax loss:
 * ∂(−log p⁺_i)/∂q_i = scale·(1 − p⁺_i)·(μ_i − pos_i). Streaming, it is an
 * online softmax: per query a running (max m_i, Σexp s_i, acc_i = Σ_j
 * exp(score_ij − m_i)·c_j); a block adds the product of its exps
 * [queries × rows] with its cache rows [rows × d], and acc is rescaled when
 * the max grows. Partials carry acc relative to their max; combinePartials
 * rescales, adds and divides by the combined Σexp. With topKGroups it is
 * computed at the end from the group maxima (b·k·d work).
 *   Accuracy (wasm and TS against the float64 reference, equal scores):
 *   |μ_ip − μ*_ip| <= (SCAN_BLOCK + B + 16)·2^-23 · Σ_j π_ij |c_jp| (float32
 *   exps, block products and folds; B = number of blocks), plus, when the
 *   scores themselves differ from the reference's by up to δ_i (float32 dot
 *   products in another order), 2·δ_i·Σ_j π_ij |c_jp|. Tested in
 *   test/scan/fusedScan.test.ts.
 *
 * topKGroups = k (k must divide n): rows are cut into k groups of n/k
 * consecutive rows; groupMax[i*k + g] / groupArg[i*k + g] are the max score of
 * group g and its first row index (-Infinity / -1 when every row of the group
 * is excluded). This is the approximate top-k of the reference: the scores
 * are narrowed to the k group maxima FIRST, so with topKGroups set, max,
 * logSumExp and the sample are over the (non-empty) group maxima only: the
 * sample is a row index groupArg[i*k + g], drawn from softmax over the group
 * maxima (Gumbel noise G(i, groupArg) for 'gumbel'; for 'categorical' one
 * uniform per query, inverse CDF over the groups in order).
 *
 * Categorical sampling in one pass (without topKGroups). Rows are cut into
 * blocks of SCAN_BLOCK = 256 (block β = rows [256β, 256β + 256)). For each
 * query and block with some non-excluded row, with u1, u2 the block's two
 * uniforms:
 *   m_β = block max, s_β = Σ_{j in β} exp(score - m_β)      (block mass = e^{m_β} s_β)
 *   key_β = m_β + log s_β - log(-log u1)                   (log mass + Gumbel noise)
 * The block with the largest key wins (a Gumbel-max / exponential race over
 * blocks: block β wins with probability mass_β / Σ mass, i.e. weighted
 * reservoir sampling in the Efraimidis–Spirakis form), and within the winning
 * block the row is drawn by inverse CDF with u2: the first j whose running
 * sum of exp(score - m_β) exceeds u2·s_β. So P(row j) = mass_β/Σmass ·
 * e^{s_j - m_β}/s_β = softmax_j exactly. Only the block running best has to
 * be searched, O(log #blocks) times per query in expectation. Unlike the
 * sequential "replace with probability mass/massSoFar" reservoir, the race
 * key of a block does not depend on the blocks before it, which is what makes
 * row-range partial results combine exactly.
 *   Uniforms: `categoricalUniformCount(b, n, topKGroups, S)` values strictly
 *   inside (0, 1) (e.g. Rng.uniformOpen); draw m of query i, block β reads
 *   uniforms[(i·S+m)·2B + 2β] (race) and uniforms[(i·S+m)·2B + 2β + 1]
 *   (within block), B = ceil(n / 256). With topKGroups: one per draw,
 *   uniforms[i·S+m].
 *
 * Row ranges: `fusedScanRangeTS(args, rowStart, rowEnd)` (and the wasm
 * equivalent) scan rows [rowStart, rowEnd) only and return a ScanPartial
 * (max, sum of exp relative to max, race winners and their keys per draw,
 * group maxima of the groups touched, the softmax-mean accumulator);
 * `combinePartials(args, partials)` merges any set of
 * partials covering [0, n) into the full result. rowStart and rowEnd must be
 * multiples of SCAN_BLOCK (or n), so blocks are never split. Max, group
 * maxima and samples combine exactly (ties go to the lower row index);
 * logSumExp and softmaxMean up to rounding of the sums.
 *
 * Compatibility: without numSamples, keys and softmaxMean every result is
 * bit-identical to the single-sample scan's.
 *
 * Non-finite inputs: NaN in the embeddings or scale gives unspecified
 * results (they are not scanned for, which would cost a pass over the cache).
 *
 * Three implementations share this contract: `fusedScanReference`
 * (reference.ts; plain and slow: the full score row of each query, then the
 * statistics), `fusedScanTS` (tsBackend.ts; streaming over blocks in plain
 * TypeScript, the fallback when WebAssembly SIMD is unavailable) and the
 * wasm kernels (wasm.ts, `fusedCacheScanWasm`), the last two through the
 * same block orchestration `runScanRange` (streaming.ts) with different
 * backends. This file holds the types, the argument validation and the
 * sizes.
 */
import { ArgumentError, DTypeError, ShapeError, describe } from '../errors.js';

export type ScanSampler = 'none' | 'gumbel' | 'categorical';

export interface FusedScanArgs {
  /** [b, d] row-major. */
  queries: Float32Array;
  b: number;
  d: number;
  /** [n, d] row-major. */
  cache: Float32Array;
  n: number;
  /** score(i, j) = scale · <q_i, c_j>. */
  scale: number;
  /** [n]; 0 = slot excluded for every query. */
  rowValid?: Uint8Array;
  /** [n] and [b]; row j is excluded for query i iff rowIds[j] === queryExcludeIds[i]. Give both or neither. */
  rowIds?: Int32Array;
  queryExcludeIds?: Int32Array;
  sampler: ScanSampler;
  /** For 'gumbel' with one sample: the noise key (two uint32), e.g. noiseKey(rng). Same as keys: [key]. */
  key?: [number, number];
  /** For 'gumbel': one noise key per draw (numSamples of them); give key or keys, not both. */
  keys?: [number, number][];
  /** For 'categorical': categoricalUniformCount(b, n, topKGroups, numSamples) uniforms in (0, 1). */
  uniforms?: Float64Array;
  /** If set (must divide n): per-group maxima, and statistics over the group maxima only. */
  topKGroups?: number;
  /** Draws per query, S >= 1 (default 1): sample and sampleScore are [b·S]. */
  numSamples?: number;
  /** Also return softmaxMean [b·d], Σ_j π_ij c_j (default false). */
  softmaxMean?: boolean;
}

export interface FusedScanResult {
  max: Float32Array;
  logSumExp: Float64Array;
  /** [b·S] the draws (query i's at i·S ... i·S + S - 1), -1 if the query has no candidate. */
  sample?: Int32Array;
  sampleScore?: Float32Array;
  groupMax?: Float32Array;
  groupArg?: Int32Array;
  /** [b·d] with softmaxMean: μ_i = Σ_j π_ij c_j (zeros for a query with no candidate). */
  softmaxMean?: Float32Array;
}

/** The result of scanning rows [rowStart, rowEnd); see combinePartials. */
export interface ScanPartial {
  rowStart: number;
  rowEnd: number;
  /** [b] max over the range's non-excluded rows (-Infinity if none). Without topKGroups only. */
  max: Float32Array;
  /** [b] Σ exp(score - max) over the range (0 if none). Without topKGroups only. */
  sumExp: Float64Array;
  /** [b·S] the range's candidate per draw (-1 if none), its score, and its race key (gumbel: score + G as float32). */
  sample?: Int32Array;
  sampleScore?: Float32Array;
  sampleKey?: Float64Array;
  /** [b, k] group maxima over the range's rows (-Infinity / -1 for groups it does not touch). */
  groupMax?: Float32Array;
  groupArg?: Int32Array;
  /** [b·d] with softmaxMean (without topKGroups): Σ_j exp(score_ij - max_i)·c_j over the range (0 if none). */
  meanAcc?: Float64Array;
}

/** Rows per block of the streaming scan (and of the categorical race). */
export const SCAN_BLOCK = 256;
/** Queries per chunk of the streaming scan (scratch is SCAN_QUERY_CHUNK × SCAN_BLOCK floats). */
export const SCAN_QUERY_CHUNK = 128;

/** Validated sizes of a scan. */
export interface ScanShape {
  b: number;
  d: number;
  n: number;
  /** topKGroups, or 0. */
  k: number;
  /** Rows per group (n / k), or 0. */
  groupSize: number;
  /** Number of SCAN_BLOCK blocks, ceil(n / SCAN_BLOCK). */
  blocks: number;
  scale32: number;
  /** The first draw's key (0, 0 unless 'gumbel'). */
  k0: number;
  k1: number;
  /** Draws per query. */
  S: number;
  /** [2·S] the draws' keys as int32 pairs (k0, k1) ('gumbel'; else empty). */
  keys: Int32Array;
  /** Whether softmaxMean is asked for. */
  mean: boolean;
}

/** How many uniforms a categorical scan reads (numSamples draws per query, default 1). */
export function categoricalUniformCount(b: number, n: number, topKGroups?: number, numSamples = 1): number {
  if (topKGroups !== undefined) return b * numSamples;
  return b * numSamples * 2 * Math.ceil(n / SCAN_BLOCK);
}

function isCount(x: unknown): x is number {
  return typeof x === 'number' && Number.isInteger(x) && x >= 0;
}

/** Validates the arguments (before any work); returns the sizes. */
export function validateScanArgs(args: FusedScanArgs, op = 'fusedScan'): ScanShape {
  if (args === null || typeof args !== 'object')
    throw new ArgumentError(op, `args must be an object, got ${describe(args)}`);
  const { b, d, n } = args;
  if (!isCount(b) || !isCount(d) || !isCount(n)) {
    throw new ArgumentError(
      op,
      `b, d, n must be non-negative integers, got b=${describe(b)}, d=${describe(d)}, n=${describe(n)}`,
    );
  }
  if (!(args.queries instanceof Float32Array))
    throw new DTypeError(op, `queries must be a Float32Array, got ${describe(args.queries)}`);
  if (!(args.cache instanceof Float32Array))
    throw new DTypeError(op, `cache must be a Float32Array, got ${describe(args.cache)}`);
  if (args.queries.length !== b * d)
    throw new ShapeError(op, `queries has length ${args.queries.length}; need b*d = ${b * d}`);
  if (args.cache.length !== n * d)
    throw new ShapeError(op, `cache has length ${args.cache.length}; need n*d = ${n * d}`);
  if (typeof args.scale !== 'number' || !Number.isFinite(args.scale))
    throw new ArgumentError(op, `scale must be a finite number, got ${describe(args.scale)}`);
  if (args.rowValid !== undefined) {
    if (!(args.rowValid instanceof Uint8Array))
      throw new DTypeError(op, `rowValid must be a Uint8Array, got ${describe(args.rowValid)}`);
    if (args.rowValid.length !== n)
      throw new ShapeError(op, `rowValid has length ${args.rowValid.length}; need n = ${n}`);
  }
  if ((args.rowIds === undefined) !== (args.queryExcludeIds === undefined)) {
    throw new ArgumentError(op, 'rowIds and queryExcludeIds must be given together');
  }
  if (args.rowIds !== undefined) {
    if (!(args.rowIds instanceof Int32Array))
      throw new DTypeError(op, `rowIds must be an Int32Array, got ${describe(args.rowIds)}`);
    if (!(args.queryExcludeIds instanceof Int32Array))
      throw new DTypeError(op, `queryExcludeIds must be an Int32Array, got ${describe(args.queryExcludeIds)}`);
    if (args.rowIds.length !== n) throw new ShapeError(op, `rowIds has length ${args.rowIds.length}; need n = ${n}`);
    if (args.queryExcludeIds.length !== b)
      throw new ShapeError(op, `queryExcludeIds has length ${args.queryExcludeIds.length}; need b = ${b}`);
  }
  if (args.sampler !== 'none' && args.sampler !== 'gumbel' && args.sampler !== 'categorical') {
    throw new ArgumentError(op, `sampler must be 'none', 'gumbel' or 'categorical', got ${describe(args.sampler)}`);
  }
  let k = 0;
  if (args.topKGroups !== undefined) {
    k = args.topKGroups;
    if (!Number.isInteger(k) || k < 1 || n % k !== 0) {
      throw new ArgumentError(
        op,
        `topKGroups must be a positive integer dividing n = ${n}, got ${describe(args.topKGroups)}`,
      );
    }
  }
  const S = args.numSamples ?? 1;
  if (!Number.isInteger(S) || S < 1)
    throw new ArgumentError(op, `numSamples must be a positive integer, got ${describe(args.numSamples)}`);
  if (args.softmaxMean !== undefined && typeof args.softmaxMean !== 'boolean')
    throw new ArgumentError(op, `softmaxMean must be a boolean, got ${describe(args.softmaxMean)}`);
  let keys = new Int32Array(0);
  if (args.sampler === 'gumbel') {
    const okWord = (v: unknown): boolean =>
      typeof v === 'number' && Number.isInteger(v) && v >= -0x80000000 && v <= 0xffffffff;
    const okKey = (key: unknown): key is [number, number] =>
      Array.isArray(key) && key.length === 2 && okWord(key[0]) && okWord(key[1]);
    if (args.keys !== undefined) {
      if (args.key !== undefined) throw new ArgumentError(op, 'give key (one sample) or keys (one per draw), not both');
      if (!Array.isArray(args.keys) || args.keys.length !== S || !args.keys.every(okKey)) {
        throw new ArgumentError(
          op,
          `sampler 'gumbel' needs keys: numSamples = ${S} pairs [uint32, uint32] (noiseKey(rng) each), got ${describe(args.keys)}`,
        );
      }
      keys = new Int32Array(2 * S);
      args.keys.forEach((key, m) => {
        keys[2 * m] = key[0] | 0;
        keys[2 * m + 1] = key[1] | 0;
      });
    } else {
      if (!okKey(args.key)) {
        throw new ArgumentError(
          op,
          `sampler 'gumbel' needs key: [uint32, uint32] (noiseKey(rng)), or keys for several samples, got ${describe(args.key)}`,
        );
      }
      if (S !== 1)
        throw new ArgumentError(
          op,
          `numSamples = ${S} needs keys (one [uint32, uint32] per draw); key is for one sample`,
        );
      keys = Int32Array.of(args.key[0] | 0, args.key[1] | 0);
    }
  }
  if (args.sampler === 'categorical') {
    const need = categoricalUniformCount(b, n, args.topKGroups, S);
    if (!(args.uniforms instanceof Float64Array) || args.uniforms.length < need) {
      throw new ArgumentError(
        op,
        `sampler 'categorical' needs uniforms: a Float64Array of at least ${need} values in (0,1), got ${describe(args.uniforms)}${args.uniforms instanceof Float64Array ? ` of length ${args.uniforms.length}` : ''}`,
      );
    }
  }
  return {
    b,
    d,
    n,
    k,
    groupSize: k > 0 ? n / k : 0,
    blocks: Math.ceil(n / SCAN_BLOCK),
    scale32: Math.fround(args.scale),
    k0: keys.length > 0 ? keys[0]! : 0,
    k1: keys.length > 0 ? keys[1]! : 0,
    S,
    keys,
    mean: args.softmaxMean === true,
  };
}

/** Validates a row range: 0 <= rowStart <= rowEnd <= n, both multiples of SCAN_BLOCK or equal to n. */
export function checkScanRange(shape: ScanShape, rowStart: number, rowEnd: number, op: string): void {
  const ok = (x: number): boolean =>
    Number.isInteger(x) && x >= 0 && x <= shape.n && (x % SCAN_BLOCK === 0 || x === shape.n);
  if (!ok(rowStart) || !ok(rowEnd) || rowStart > rowEnd) {
    throw new ArgumentError(
      op,
      `row range must satisfy 0 <= rowStart <= rowEnd <= n = ${shape.n} with both multiples of ${SCAN_BLOCK} (or n), got [${describe(rowStart)}, ${describe(rowEnd)})`,
    );
  }
}

/**
 * Splits rows [0, n) into at most `parts` contiguous ranges aligned to
 * SCAN_BLOCK with balanced block counts (for scanning on several workers and
 * merging with combinePartials). Always at least one range ([0, 0] when n = 0).
 */
export function splitScanRows(n: number, parts: number): [number, number][] {
  if (!Number.isInteger(n) || n < 0)
    throw new ArgumentError('splitScanRows', `n must be a non-negative integer, got ${describe(n)}`);
  if (!Number.isInteger(parts) || parts < 1)
    throw new ArgumentError('splitScanRows', `parts must be a positive integer, got ${describe(parts)}`);
  const blocks = Math.ceil(n / SCAN_BLOCK);
  const p = Math.max(1, Math.min(parts, blocks));
  const out: [number, number][] = [];
  for (let q = 0; q < p; q++) {
    const b0 = Math.floor((q * blocks) / p),
      b1 = Math.floor(((q + 1) * blocks) / p);
    out.push([Math.min(n, b0 * SCAN_BLOCK), Math.min(n, b1 * SCAN_BLOCK)]);
  }
  return out;
}

export function inverseCdf(s: ArrayLike<number>, lo: number, hi: number, m: number, target: number): number {
  let acc = 0,
    last = -1;
  for (let c = lo; c < hi; c++) {
    const v = s[c]!;
    if (v === -Infinity) continue;
    last = c;
    acc += Math.exp(v - m);
    if (acc > target) return c;
  }
  return last;
}
