/**
 * The fused cache scan: scores of every cached embedding against every query,
 * their softmax statistics, and one sample per query — without ever holding
 * the b × n score matrix.
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
 *   Uniforms: `categoricalUniformCount(b, n, topKGroups)` values strictly
 *   inside (0, 1) (e.g. Rng.uniformOpen); query i, block β reads
 *   uniforms[i·2B + 2β] (race) and uniforms[i·2B + 2β + 1] (within block), B =
 *   ceil(n / 256). With topKGroups: one per query, uniforms[i].
 *
 * Row ranges: `fusedScanRangeTS(args, rowStart, rowEnd)` (and the wasm
 * equivalent) scan rows [rowStart, rowEnd) only and return a ScanPartial
 * (max, sum of exp relative to max, race winner and its key, group maxima of
 * the groups touched); `combinePartials(args, partials)` merges any set of
 * partials covering [0, n) into the full result. rowStart and rowEnd must be
 * multiples of SCAN_BLOCK (or n), so blocks are never split. Max, group
 * maxima and samples combine exactly (ties go to the lower row index);
 * logSumExp up to float64 rounding of the sums.
 *
 * Non-finite inputs: NaN in the embeddings or scale gives unspecified
 * results (they are not scanned for, which would cost a pass over the cache).
 *
 * Three implementations share this contract: `fusedScanReference` (plain and
 * slow: the full score row of each query, then the statistics),
 * `fusedScanTS` (streaming over blocks in plain TypeScript, the fallback
 * when WebAssembly SIMD is unavailable) and the wasm kernels
 * (wasm/index.ts, `fusedCacheScanWasm`), the last two through the same
 * block orchestration `runScanRange` with different backends.
 */
import { ArgumentError, DTypeError, ShapeError, describe } from '../../errors.js';
import { bitsFromSeeds, gumbelAt, gumbelFromBits, gumbelScreen, rowSeeds } from './noise.js';
import { matmulNT } from './matmul.js';

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
  /** For 'gumbel': the noise key (two uint32), e.g. noiseKey(rng). */
  key?: [number, number];
  /** For 'categorical': categoricalUniformCount(b, n, topKGroups) uniforms in (0, 1). */
  uniforms?: Float64Array;
  /** If set (must divide n): per-group maxima, and statistics over the group maxima only. */
  topKGroups?: number;
}

export interface FusedScanResult {
  max: Float32Array;
  logSumExp: Float64Array;
  sample?: Int32Array;
  sampleScore?: Float32Array;
  groupMax?: Float32Array;
  groupArg?: Int32Array;
}

/** The result of scanning rows [rowStart, rowEnd); see combinePartials. */
export interface ScanPartial {
  rowStart: number;
  rowEnd: number;
  /** [b] max over the range's non-excluded rows (-Infinity if none). Without topKGroups only. */
  max: Float32Array;
  /** [b] Σ exp(score - max) over the range (0 if none). Without topKGroups only. */
  sumExp: Float64Array;
  /** [b] the range's sample candidate (-1 if none), its score, and its race key (gumbel: score + G as float32). */
  sample?: Int32Array;
  sampleScore?: Float32Array;
  sampleKey?: Float64Array;
  /** [b, k] group maxima over the range's rows (-Infinity / -1 for groups it does not touch). */
  groupMax?: Float32Array;
  groupArg?: Int32Array;
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
  k0: number;
  k1: number;
}

/** How many uniforms a categorical scan reads. */
export function categoricalUniformCount(b: number, n: number, topKGroups?: number): number {
  if (topKGroups !== undefined) return b;
  return b * 2 * Math.ceil(n / SCAN_BLOCK);
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
  let k0 = 0,
    k1 = 0;
  if (args.sampler === 'gumbel') {
    const key = args.key;
    const okWord = (v: unknown): boolean =>
      typeof v === 'number' && Number.isInteger(v) && v >= -0x80000000 && v <= 0xffffffff;
    if (!Array.isArray(key) || key.length !== 2 || !okWord(key[0]) || !okWord(key[1])) {
      throw new ArgumentError(op, `sampler 'gumbel' needs key: [uint32, uint32] (noiseKey(rng)), got ${describe(key)}`);
    }
    k0 = key[0] | 0;
    k1 = key[1] | 0;
  }
  if (args.sampler === 'categorical') {
    const need = categoricalUniformCount(b, n, args.topKGroups);
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
    k0,
    k1,
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

// ---------------------------------------------------------------------------
// Reference
// ---------------------------------------------------------------------------

/**
 * The reference: for each query, the full score row (float64 dot product
 * rounded to float32, times f32(scale), rounded), exclusions set to
 * -Infinity, then the statistics exactly as the contract states them.
 */
export function fusedScanReference(args: FusedScanArgs): FusedScanResult {
  const sh = validateScanArgs(args, 'fusedScanReference');
  const { b, d, n, k, groupSize } = sh;
  const { queries, cache, sampler } = args;
  const max = new Float32Array(b);
  const logSumExp = new Float64Array(b);
  const sample = sampler === 'none' ? undefined : new Int32Array(b);
  const sampleScore = sampler === 'none' ? undefined : new Float32Array(b);
  const groupMax = k > 0 ? new Float32Array(b * k) : undefined;
  const groupArg = k > 0 ? new Int32Array(b * k) : undefined;
  const row = new Float32Array(n);
  for (let i = 0; i < b; i++) {
    // 1. the full score row
    for (let j = 0; j < n; j++) {
      const excluded =
        (args.rowValid !== undefined && args.rowValid[j] === 0) ||
        (args.rowIds !== undefined && args.rowIds[j] === args.queryExcludeIds![i]);
      if (excluded) {
        row[j] = -Infinity;
        continue;
      }
      let dot = 0;
      for (let p = 0; p < d; p++) dot += queries[i * d + p]! * cache[j * d + p]!;
      row[j] = sh.scale32 * Math.fround(dot);
    }
    // 2. candidates: every row, or the k group maxima
    let candScore: Float32Array = row;
    let candIndex: (c: number) => number = (c) => c;
    if (k > 0) {
      const gm = new Float32Array(k).fill(-Infinity);
      const ga = new Int32Array(k).fill(-1);
      for (let j = 0; j < n; j++) {
        const g = Math.floor(j / groupSize);
        if (row[j]! > gm[g]!) {
          gm[g] = row[j]!;
          ga[g] = j;
        }
      }
      groupMax!.set(gm, i * k);
      groupArg!.set(ga, i * k);
      candScore = gm;
      candIndex = (c) => ga[c]!;
    }
    const count = candScore.length;
    // 3. max and logSumExp
    let m = -Infinity;
    for (let c = 0; c < count; c++) if (candScore[c]! > m) m = candScore[c]!;
    max[i] = m;
    if (m === -Infinity) {
      logSumExp[i] = -Infinity;
    } else {
      let s = 0;
      for (let c = 0; c < count; c++) s += Math.exp(candScore[c]! - m);
      logSumExp[i] = m + Math.log(s);
    }
    // 4. the sample
    if (sampler === 'none') continue;
    let pick = -1;
    if (m !== -Infinity && sampler === 'gumbel') {
      let best = -Infinity;
      for (let c = 0; c < count; c++) {
        if (candScore[c] === -Infinity) continue;
        const key = Math.fround(candScore[c]! + gumbelAt(sh.k0, sh.k1, i, candIndex(c)));
        if (key > best) {
          best = key;
          pick = c;
        }
      }
    } else if (m !== -Infinity && k > 0) {
      // categorical over the group maxima: inverse CDF with one uniform
      const u = args.uniforms![i]!;
      let total = 0;
      for (let c = 0; c < count; c++) total += Math.exp(candScore[c]! - m);
      pick = inverseCdf(candScore, 0, count, m, u * total);
    } else if (m !== -Infinity) {
      // categorical: the blockwise race
      const perQuery = 2 * sh.blocks;
      let bestKey = -Infinity;
      for (let beta = 0; beta < sh.blocks; beta++) {
        const lo = beta * SCAN_BLOCK,
          hi = Math.min(n, lo + SCAN_BLOCK);
        let mb = -Infinity;
        for (let j = lo; j < hi; j++) if (row[j]! > mb) mb = row[j]!;
        if (mb === -Infinity) continue;
        let sb = 0;
        for (let j = lo; j < hi; j++) sb += Math.exp(row[j]! - mb);
        const u1 = args.uniforms![i * perQuery + 2 * beta]!;
        const u2 = args.uniforms![i * perQuery + 2 * beta + 1]!;
        const key = mb + Math.log(sb) - Math.log(-Math.log(u1));
        if (key > bestKey) {
          bestKey = key;
          pick = inverseCdf(row, lo, hi, mb, u2 * sb);
        }
      }
    }
    sample![i] = pick < 0 ? -1 : candIndex(pick);
    sampleScore![i] = pick < 0 ? -Infinity : candScore[pick]!;
  }
  const out: FusedScanResult = { max, logSumExp };
  if (sample) {
    out.sample = sample;
    out.sampleScore = sampleScore!;
  }
  if (groupMax) {
    out.groupMax = groupMax;
    out.groupArg = groupArg!;
  }
  return out;
}

/** First index c in [lo, hi) whose running Σ exp(s_c - m) exceeds target (the last positive one if rounding leaves it short). */
function inverseCdf(s: ArrayLike<number>, lo: number, hi: number, m: number, target: number): number {
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

// ---------------------------------------------------------------------------
// Block orchestration (shared by the TS streaming scan and the wasm scan)
// ---------------------------------------------------------------------------

/**
 * The compute kernels of a streaming scan. A backend owns its scratch (as
 * typed-array views the orchestration reads and writes) and its per-query
 * state. Scores of a (query chunk, row block) live in `scores` with row
 * stride `ld` = R rounded up to a multiple of 4; columns [R, ld) hold -Inf.
 */
export interface ScanBackend {
  /** [SCAN_QUERY_CHUNK × SCAN_BLOCK] score block. */
  readonly scores: Float32Array;
  /** Same shape: exp(score - rowMax), written by rowStats when asked (categorical only). */
  readonly exps: Float32Array | null;
  /** [SCAN_QUERY_CHUNK] per-row block max and Σ exp(score - max). */
  readonly statMax: Float32Array;
  readonly statSum: Float32Array | Float64Array;
  /** [SCAN_BLOCK] column mask for maskColumns: 0 = excluded, -1 = kept. */
  readonly colMask: Int32Array;
  /** [b] gumbel screen thresholds (uint32) and running best (f32 key, row, f32 score). */
  readonly thr: Uint32Array;
  readonly bestKey: Float32Array;
  readonly bestIdx: Int32Array;
  readonly bestScore: Float32Array;
  /** [b × k] running group maxima (topKGroups only). */
  readonly groupMax: Float32Array | null;
  readonly groupArg: Int32Array | null;
  /** scores[r, c] = score(q0 + r, j0 + c) for r < mq, c < R; -Inf in [R, ld). */
  scoreBlock(q0: number, mq: number, j0: number, R: number, ld: number): void;
  /** scores[r, c] = -Inf where colMask[c] == 0, c < ld. */
  maskColumns(mq: number, ld: number): void;
  /** statMax/statSum (and exps if wantExps) of rows r < mq over columns < R. */
  rowStats(mq: number, R: number, ld: number, wantExps: boolean): void;
  /** The screened Gumbel-max pass over the block for queries q0..q0+mq (state at offset q0). */
  gumbelScan(q0: number, mq: number, j0: number, R: number, ld: number): void;
  /** Folds the block into the running group maxima of queries q0..q0+mq. */
  groupScan(q0: number, mq: number, j0: number, R: number, ld: number): void;
  /** Frees scratch. */
  dispose(): void;
}

/** Rows j in [rowStart, rowEnd) and queries i with rowIds[j] === queryExcludeIds[i], as pairs (j, i) by ascending j. */
function exclusionPairs(args: FusedScanArgs, rowStart: number, rowEnd: number): Int32Array {
  if (args.rowIds === undefined) return new Int32Array(0);
  const byId = new Map<number, number[]>();
  const ex = args.queryExcludeIds!;
  let lo = Infinity,
    hi = -Infinity;
  for (let i = 0; i < ex.length; i++) {
    const id = ex[i]!;
    const list = byId.get(id);
    if (list) list.push(i);
    else byId.set(id, [i]);
    if (id < lo) lo = id;
    if (id > hi) hi = id;
  }
  const out: number[] = [];
  const ids = args.rowIds;
  for (let j = rowStart; j < rowEnd; j++) {
    const id = ids[j]!;
    if (id < lo || id > hi) continue;
    const list = byId.get(id);
    if (list) for (const i of list) out.push(j, i);
  }
  return Int32Array.from(out);
}

/**
 * Scans rows [rowStart, rowEnd) block by block with the given backend and
 * returns the partial result. Work per block and query chunk: scores (a
 * matmul), exclusions (-Inf), then either the group fold (topKGroups) or the
 * row statistics, the (max, sum) fold, and the sampler step.
 */
export function runScanRange(
  args: FusedScanArgs,
  sh: ScanShape,
  rowStart: number,
  rowEnd: number,
  backend: ScanBackend,
): ScanPartial {
  const { b, k } = sh;
  const sampler = args.sampler;
  const max = new Float32Array(b).fill(-Infinity);
  const sumExp = new Float64Array(b);
  const raceKey = sampler === 'categorical' ? new Float64Array(b).fill(-Infinity) : null;
  const raceIdx = sampler === 'categorical' ? new Int32Array(b).fill(-1) : null;
  const raceScore = sampler === 'categorical' ? new Float32Array(b).fill(-Infinity) : null;
  backend.bestKey.fill(-Infinity);
  backend.bestIdx.fill(-1);
  backend.bestScore.fill(-Infinity);
  backend.groupMax?.fill(-Infinity);
  backend.groupArg?.fill(-1);
  const pairs = exclusionPairs(args, rowStart, rowEnd);
  let pairPos = 0;
  const { scores, statMax, statSum, colMask } = backend;
  const perQuery = 2 * sh.blocks;
  const uniforms = args.uniforms;

  for (let j0 = rowStart; j0 < rowEnd; j0 += SCAN_BLOCK) {
    const R = Math.min(SCAN_BLOCK, rowEnd - j0);
    const ld = (R + 3) & ~3;
    const beta = j0 / SCAN_BLOCK;
    let anyInvalid = false;
    if (args.rowValid !== undefined) {
      for (let c = 0; c < R; c++) {
        const v = args.rowValid[j0 + c] !== 0;
        colMask[c] = v ? -1 : 0;
        if (!v) anyInvalid = true;
      }
      for (let c = R; c < ld; c++) colMask[c] = 0;
    }
    const pairLo = pairPos;
    while (pairPos < pairs.length && pairs[pairPos]! < j0 + R) pairPos += 2;
    const pairHi = pairPos;

    for (let q0 = 0; q0 < b; q0 += SCAN_QUERY_CHUNK) {
      const mq = Math.min(SCAN_QUERY_CHUNK, b - q0);
      backend.scoreBlock(q0, mq, j0, R, ld);
      if (anyInvalid) backend.maskColumns(mq, ld);
      for (let p = pairLo; p < pairHi; p += 2) {
        const i = pairs[p + 1]!;
        if (i >= q0 && i < q0 + mq) scores[(i - q0) * ld + (pairs[p]! - j0)] = -Infinity;
      }
      if (k > 0) {
        backend.groupScan(q0, mq, j0, R, ld);
        continue;
      }
      backend.rowStats(mq, R, ld, sampler === 'categorical');
      for (let r = 0; r < mq; r++) {
        const i = q0 + r;
        const mb = statMax[r]!;
        if (mb === -Infinity) {
          if (sampler === 'gumbel') backend.thr[i] = 0;
          continue;
        }
        const sb = statSum[r]!;
        // fold (max, sum relative to max)
        const m = max[i]!;
        if (mb > m) {
          sumExp[i] = sumExp[i]! * Math.exp(m - mb) + sb;
          max[i] = mb;
        } else {
          sumExp[i] = sumExp[i]! + sb * Math.exp(mb - m);
        }
        if (sampler === 'gumbel') {
          backend.thr[i] = gumbelScreen(backend.bestKey[i]! - mb);
        } else if (sampler === 'categorical') {
          const u1 = uniforms![i * perQuery + 2 * beta]!;
          const key = mb + Math.log(sb) - Math.log(-Math.log(u1));
          if (key > raceKey![i]!) {
            raceKey![i] = key;
            const u2 = uniforms![i * perQuery + 2 * beta + 1]!;
            const target = u2 * sb;
            const exps = backend.exps!;
            const base = r * ld;
            let acc = 0,
              last = -1,
              pick = -1;
            for (let c = 0; c < R; c++) {
              const e = exps[base + c]!;
              if (e === 0) continue;
              last = c;
              acc += e;
              if (acc > target) {
                pick = c;
                break;
              }
            }
            if (pick < 0) pick = last; // rounding left the running sum short; last >= 0 since the max has exp(0) = 1
            raceIdx![i] = j0 + pick;
            raceScore![i] = scores[base + pick]!;
          }
        }
      }
      if (sampler === 'gumbel') backend.gumbelScan(q0, mq, j0, R, ld);
    }
  }

  const part: ScanPartial = { rowStart, rowEnd, max, sumExp };
  if (k > 0) {
    part.groupMax = backend.groupMax!.slice();
    part.groupArg = backend.groupArg!.slice();
  } else if (sampler === 'gumbel') {
    part.sample = backend.bestIdx.slice();
    part.sampleScore = backend.bestScore.slice();
    part.sampleKey = Float64Array.from(backend.bestKey);
  } else if (sampler === 'categorical') {
    part.sample = raceIdx!;
    part.sampleScore = raceScore!;
    part.sampleKey = raceKey!;
  }
  return part;
}

/**
 * Merges partial results (any order, any set of ranges that together cover
 * the rows once) into the full result. Ties in sample keys and group maxima
 * go to the lower row index, so the merge does not depend on the order.
 */
export function combinePartials(args: FusedScanArgs, partials: readonly ScanPartial[]): FusedScanResult {
  const sh = validateScanArgs(args, 'combinePartials');
  const { b, k } = sh;
  const sampler = args.sampler;
  if (!Array.isArray(partials) || partials.length === 0)
    throw new ArgumentError('combinePartials', `partials must be a non-empty array, got ${describe(partials)}`);
  const max = new Float32Array(b).fill(-Infinity);
  const logSumExp = new Float64Array(b);
  const out: FusedScanResult = { max, logSumExp };
  const sample = sampler === 'none' ? null : new Int32Array(b).fill(-1);
  const sampleScore = sampler === 'none' ? null : new Float32Array(b).fill(-Infinity);
  if (sample) {
    out.sample = sample;
    out.sampleScore = sampleScore!;
  }

  if (k > 0) {
    const gm = new Float32Array(b * k).fill(-Infinity);
    const ga = new Int32Array(b * k).fill(-1);
    for (const p of partials) {
      if (!p.groupMax || !p.groupArg || p.groupMax.length !== b * k)
        throw new ArgumentError('combinePartials', 'a partial lacks group results of shape [b, topKGroups]');
      for (let q = 0; q < b * k; q++) {
        const v = p.groupMax[q]!,
          a = p.groupArg[q]!;
        if (a < 0) continue;
        if (v > gm[q]! || ga[q]! < 0 || (v === gm[q] && a < ga[q]!)) {
          gm[q] = v;
          ga[q] = a;
        }
      }
    }
    out.groupMax = gm;
    out.groupArg = ga;
    for (let i = 0; i < b; i++) {
      let m = -Infinity;
      for (let g = 0; g < k; g++) if (gm[i * k + g]! > m) m = gm[i * k + g]!;
      max[i] = m;
      if (m === -Infinity) {
        logSumExp[i] = -Infinity;
        continue;
      }
      let s = 0;
      for (let g = 0; g < k; g++) s += Math.exp(gm[i * k + g]! - m);
      logSumExp[i] = m + Math.log(s);
      if (sampler === 'gumbel') {
        let best = -Infinity,
          pick = -1;
        for (let g = 0; g < k; g++) {
          const a = ga[i * k + g]!;
          if (a < 0) continue;
          const key = Math.fround(gm[i * k + g]! + gumbelAt(sh.k0, sh.k1, i, a));
          if (key > best) {
            best = key;
            pick = g;
          }
        }
        sample![i] = pick < 0 ? -1 : ga[i * k + pick]!;
        sampleScore![i] = pick < 0 ? -Infinity : gm[i * k + pick]!;
      } else if (sampler === 'categorical') {
        const pick = inverseCdf(gm, i * k, (i + 1) * k, m, args.uniforms![i]! * s);
        sample![i] = pick < 0 ? -1 : ga[pick]!;
        sampleScore![i] = pick < 0 ? -Infinity : gm[pick]!;
      }
    }
    return out;
  }

  const bestKey = new Float64Array(b).fill(-Infinity);
  for (const p of partials) {
    if (p.max.length !== b || p.sumExp.length !== b)
      throw new ArgumentError('combinePartials', `a partial has ${p.max.length} queries; need b = ${b}`);
    if (sample && (!p.sample || !p.sampleKey || !p.sampleScore))
      throw new ArgumentError('combinePartials', `a partial lacks the samples of sampler '${sampler}'`);
  }
  for (let i = 0; i < b; i++) {
    let m = -Infinity;
    for (const p of partials) if (p.max[i]! > m) m = p.max[i]!;
    max[i] = m;
    if (m === -Infinity) {
      logSumExp[i] = -Infinity;
    } else {
      let s = 0;
      for (const p of partials) if (p.max[i]! !== -Infinity) s += p.sumExp[i]! * Math.exp(p.max[i]! - m);
      logSumExp[i] = m + Math.log(s);
    }
    if (sample) {
      for (const p of partials) {
        const idx = p.sample![i]!;
        if (idx < 0) continue;
        const key = p.sampleKey![i]!;
        if (key > bestKey[i]! || sample[i]! < 0 || (key === bestKey[i] && idx < sample[i]!)) {
          bestKey[i] = key;
          sample[i] = idx;
          sampleScore![i] = p.sampleScore![i]!;
        }
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// Plain TypeScript streaming backend
// ---------------------------------------------------------------------------

/**
 * The plain-JS NT product used by the TypeScript backend and as the wasm
 * kernels' baseline: matmul.ts's 4×4-tiled loop, with a leading dimension,
 * offsets and the f32(alpha · f32(dot)) scaling of the kernels' scores.
 */
export function matmulNTJs(
  a: Float32Array,
  b: Float32Array,
  m: number,
  n: number,
  k: number,
  out: Float32Array,
  ldc = n,
  alpha = 1,
  aOff = 0,
  bOff = 0,
): Float32Array {
  return matmulNT(a, b, m, n, k, out, ldc, alpha, aOff, bOff) as Float32Array;
}

/** The plain TypeScript backend: the same block orchestration, kernels as loops. */
export function createJsBackend(args: FusedScanArgs, sh: ScanShape): ScanBackend {
  const { b, d, k, groupSize } = sh;
  const scores = new Float32Array(SCAN_QUERY_CHUNK * SCAN_BLOCK);
  const exps = args.sampler === 'categorical' ? new Float32Array(SCAN_QUERY_CHUNK * SCAN_BLOCK) : null;
  const statMax = new Float32Array(SCAN_QUERY_CHUNK);
  const statSum = new Float64Array(SCAN_QUERY_CHUNK);
  const colMask = new Int32Array(SCAN_BLOCK);
  const thr = new Uint32Array(b);
  const bestKey = new Float32Array(b),
    bestIdx = new Int32Array(b),
    bestScore = new Float32Array(b);
  const groupMax = k > 0 ? new Float32Array(b * k) : null;
  const groupArg = k > 0 ? new Int32Array(b * k) : null;
  const { queries, cache } = args;
  return {
    scores,
    exps,
    statMax,
    statSum,
    colMask,
    thr,
    bestKey,
    bestIdx,
    bestScore,
    groupMax,
    groupArg,
    scoreBlock(q0, mq, j0, R, ld) {
      matmulNTJs(queries, cache, mq, R, d, scores, ld, sh.scale32, q0 * d, j0 * d);
      if (ld > R) for (let r = 0; r < mq; r++) for (let c = R; c < ld; c++) scores[r * ld + c] = -Infinity;
    },
    maskColumns(mq, ld) {
      for (let c = 0; c < ld; c++) {
        if (colMask[c] !== 0) continue;
        for (let r = 0; r < mq; r++) scores[r * ld + c] = -Infinity;
      }
    },
    rowStats(mq, R, ld, wantExps) {
      for (let r = 0; r < mq; r++) {
        const base = r * ld;
        let m = -Infinity;
        for (let c = 0; c < R; c++) if (scores[base + c]! > m) m = scores[base + c]!;
        statMax[r] = m;
        let s = 0;
        if (m !== -Infinity) {
          for (let c = 0; c < R; c++) {
            const e = Math.exp(scores[base + c]! - m);
            s += e;
            if (wantExps) exps![base + c] = e;
          }
        }
        statSum[r] = s;
      }
    },
    gumbelScan(q0, mq, j0, R, ld) {
      for (let r = 0; r < mq; r++) {
        const i = q0 + r;
        const [r1, r2] = rowSeeds(sh.k0, sh.k1, i);
        const t = thr[i]!;
        let best = bestKey[i]!,
          bestJ = bestIdx[i]!,
          bestS = bestScore[i]!;
        const base = r * ld;
        for (let c = 0; c < R; c++) {
          const bits = bitsFromSeeds(r1, r2, j0 + c);
          if (bits > t) continue;
          const s = scores[base + c]!;
          const key = Math.fround(s + gumbelFromBits(bits));
          if (key > best) {
            best = key;
            bestJ = j0 + c;
            bestS = s;
          }
        }
        bestKey[i] = best;
        bestIdx[i] = bestJ;
        bestScore[i] = bestS;
      }
    },
    groupScan(q0, mq, j0, R, ld) {
      for (let r = 0; r < mq; r++) {
        const base = r * ld;
        const gBase = (q0 + r) * k;
        for (let c = 0; c < R; c++) {
          const v = scores[base + c]!;
          const slot = gBase + Math.floor((j0 + c) / groupSize);
          if (v > groupMax![slot]!) {
            groupMax![slot] = v;
            groupArg![slot] = j0 + c;
          }
        }
      }
    },
    dispose() {},
  };
}

/** The streaming scan of rows [rowStart, rowEnd) in plain TypeScript. */
export function fusedScanRangeTS(args: FusedScanArgs, rowStart: number, rowEnd: number): ScanPartial {
  const sh = validateScanArgs(args, 'fusedScanRangeTS');
  checkScanRange(sh, rowStart, rowEnd, 'fusedScanRangeTS');
  return runScanRange(args, sh, rowStart, rowEnd, createJsBackend(args, sh));
}

/** The streaming scan in plain TypeScript (the fallback without WebAssembly SIMD). */
export function fusedScanTS(args: FusedScanArgs): FusedScanResult {
  const sh = validateScanArgs(args, 'fusedScanTS');
  return combinePartials(args, [runScanRange(args, sh, 0, sh.n, createJsBackend(args, sh))]);
}
