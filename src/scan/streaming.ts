/**
 * The block orchestration of the streaming scan, shared by the TypeScript
 * backend (tsBackend.ts) and the wasm backend (wasm.ts): `runScanRange`
 * scans a row range block by block through a `ScanBackend` and returns a
 * ScanPartial; `combinePartials` merges partials into the full result
 * (contract.ts states what both compute).
 */
import { ArgumentError, describe } from '../errors.js';
import { gumbelAt, gumbelScreen } from './noise.js';
import {
  SCAN_BLOCK,
  SCAN_QUERY_CHUNK,
  inverseCdf,
  validateScanArgs,
  type FusedScanArgs,
  type FusedScanResult,
  type ScanPartial,
  type ScanShape,
} from './contract.js';

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
