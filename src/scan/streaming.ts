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
 * Per-draw state (Gumbel) is DRAW-major: draw t of query i at t·b + i.
 */
export interface ScanBackend {
  /** [SCAN_QUERY_CHUNK × SCAN_BLOCK] score block. */
  readonly scores: Float32Array;
  /** Same shape: exp(score - rowMax), written by rowStats when asked (categorical, softmaxMean). */
  readonly exps: Float32Array | null;
  /** [SCAN_QUERY_CHUNK] per-row block max and Σ exp(score - max). */
  readonly statMax: Float32Array;
  readonly statSum: Float32Array | Float64Array;
  /** [SCAN_BLOCK] column mask for maskColumns: 0 = excluded, -1 = kept. */
  readonly colMask: Int32Array;
  /** [S × b] gumbel screen thresholds (uint32) and running best (f32 key, row, f32 score). */
  readonly thr: Uint32Array;
  readonly bestKey: Float32Array;
  readonly bestIdx: Int32Array;
  readonly bestScore: Float32Array;
  /** [b × k] running group maxima (topKGroups only). */
  readonly groupMax: Float32Array | null;
  readonly groupArg: Int32Array | null;
  /** [SCAN_QUERY_CHUNK] the softmax-mean fold factors of the chunk's rows (softmaxMean only). */
  readonly meanOld: Float32Array | Float64Array | null;
  readonly meanNew: Float32Array | Float64Array | null;
  /** scores[r, c] = score(q0 + r, j0 + c) for r < mq, c < R; -Inf in [R, ld). */
  scoreBlock(q0: number, mq: number, j0: number, R: number, ld: number): void;
  /** scores[r, c] = -Inf where colMask[c] == 0, c < ld. */
  maskColumns(mq: number, ld: number): void;
  /** statMax/statSum (and exps if wantExps) of rows r < mq over columns < R. */
  rowStats(mq: number, R: number, ld: number, wantExps: boolean): void;
  /** The screened Gumbel-max pass of draw t over the block for queries q0..q0+mq (state at t·b + q0). */
  gumbelScan(q0: number, mq: number, j0: number, R: number, ld: number, t: number): void;
  /** Folds the block into the running group maxima of queries q0..q0+mq. */
  groupScan(q0: number, mq: number, j0: number, R: number, ld: number): void;
  /**
   * The softmax-mean step for queries q0..q0+mq: acc[q0 + r] = meanOld[r]·acc[q0 + r]
   * + meanNew[r]·Σ_{c<R} exps[r, c]·cache[j0 + c] (the second term skipped when meanNew[r] = 0).
   */
  meanBlock(q0: number, mq: number, j0: number, R: number, ld: number): void;
  /** The softmax-mean accumulator [b·d] after the last block (relative to each query's running max). */
  meanAcc(): Float64Array;
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
 * row statistics, the (max, sum) fold, the sampler steps of the S draws and
 * the softmax-mean step.
 *
 * Online softmax mean: per query the running max m, and acc = Σ_j
 * exp(score_j - m)·c_j over the rows so far. A block with max mb and exps
 * e_j = exp(score_j - mb) gives acc' = α·acc + β·Σ_j e_j c_j with (α, β) =
 * (exp(m - mb), 1) when mb > m (the max grows: the old sum is rescaled), else
 * (1, exp(mb - m)); (1, 0) when the block has no candidate. The same (max,
 * Σexp) fold runs in float64 for logSumExp.
 */
export function runScanRange(
  args: FusedScanArgs,
  sh: ScanShape,
  rowStart: number,
  rowEnd: number,
  backend: ScanBackend,
): ScanPartial {
  const { b, k, S } = sh;
  const sampler = args.sampler;
  const max = new Float32Array(b).fill(-Infinity);
  const sumExp = new Float64Array(b);
  const raceKey = sampler === 'categorical' ? new Float64Array(b * S).fill(-Infinity) : null;
  const raceIdx = sampler === 'categorical' ? new Int32Array(b * S).fill(-1) : null;
  const raceScore = sampler === 'categorical' ? new Float32Array(b * S).fill(-Infinity) : null;
  backend.bestKey.fill(-Infinity);
  backend.bestIdx.fill(-1);
  backend.bestScore.fill(-Infinity);
  backend.groupMax?.fill(-Infinity);
  backend.groupArg?.fill(-1);
  const pairs = exclusionPairs(args, rowStart, rowEnd);
  let pairPos = 0;
  const { scores, statMax, statSum, colMask, thr, bestKey, meanOld, meanNew } = backend;
  const perQuery = 2 * sh.blocks;
  const uniforms = args.uniforms;
  const mean = sh.mean && k === 0;
  const wantExps = sampler === 'categorical' || mean;

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
      backend.rowStats(mq, R, ld, wantExps);
      for (let r = 0; r < mq; r++) {
        const i = q0 + r;
        const mb = statMax[r]!;
        if (mb === -Infinity) {
          if (sampler === 'gumbel') for (let t = 0; t < S; t++) thr[t * b + i] = 0;
          if (mean) {
            meanOld![r] = 1;
            meanNew![r] = 0;
          }
          continue;
        }
        const sb = statSum[r]!;
        // fold (max, sum relative to max)
        const m = max[i]!;
        if (mb > m) {
          sumExp[i] = sumExp[i]! * Math.exp(m - mb) + sb;
          max[i] = mb;
          if (mean) {
            meanOld![r] = Math.exp(m - mb);
            meanNew![r] = 1;
          }
        } else {
          sumExp[i] = sumExp[i]! + sb * Math.exp(mb - m);
          if (mean) {
            meanOld![r] = 1;
            meanNew![r] = Math.exp(mb - m);
          }
        }
        if (sampler === 'gumbel') {
          for (let t = 0; t < S; t++) thr[t * b + i] = gumbelScreen(bestKey[t * b + i]! - mb);
        } else if (sampler === 'categorical') {
          const logMass = mb + Math.log(sb);
          for (let t = 0; t < S; t++) {
            const v = i * S + t; // the draw's slot and its uniforms' query index
            const u1 = uniforms![v * perQuery + 2 * beta]!;
            const key = logMass - Math.log(-Math.log(u1));
            if (key > raceKey![v]!) {
              raceKey![v] = key;
              const u2 = uniforms![v * perQuery + 2 * beta + 1]!;
              const pick = pickInBlock(backend.exps!, r * ld, R, u2 * sb);
              raceIdx![v] = j0 + pick;
              raceScore![v] = scores[r * ld + pick]!;
            }
          }
        }
      }
      if (sampler === 'gumbel') for (let t = 0; t < S; t++) backend.gumbelScan(q0, mq, j0, R, ld, t);
      if (mean) backend.meanBlock(q0, mq, j0, R, ld);
    }
  }

  const part: ScanPartial = { rowStart, rowEnd, max, sumExp };
  if (k > 0) {
    part.groupMax = backend.groupMax!.slice();
    part.groupArg = backend.groupArg!.slice();
  } else if (sampler === 'gumbel') {
    // draw-major backend state -> [b·S] query-major
    const sample = new Int32Array(b * S),
      sampleScore = new Float32Array(b * S),
      sampleKey = new Float64Array(b * S);
    for (let t = 0; t < S; t++) {
      for (let i = 0; i < b; i++) {
        sample[i * S + t] = backend.bestIdx[t * b + i]!;
        sampleScore[i * S + t] = backend.bestScore[t * b + i]!;
        sampleKey[i * S + t] = bestKey[t * b + i]!;
      }
    }
    Object.assign(part, { sample, sampleScore, sampleKey });
  } else if (sampler === 'categorical') {
    part.sample = raceIdx!;
    part.sampleScore = raceScore!;
    part.sampleKey = raceKey!;
  }
  if (mean) part.meanAcc = backend.meanAcc();
  return part;
}

/**
 * The within-block inverse CDF of the categorical race: the first column c
 * whose running Σ exps exceeds `target` (= u2·Σ exps), skipping zeros.
 */
function pickInBlock(exps: Float32Array, base: number, R: number, target: number): number {
  let acc = 0,
    last = -1;
  for (let c = 0; c < R; c++) {
    const e = exps[base + c]!;
    if (e === 0) continue;
    last = c;
    acc += e;
    if (acc > target) return c;
  }
  return last; // rounding left the running sum short; last >= 0 since the max has exp(0) = 1
}

/**
 * Merges partial results (any order, any set of ranges that together cover
 * the rows once) into the full result. Ties in sample keys and group maxima
 * go to the lower row index, so the merge does not depend on the order.
 * The S draws merge independently; the softmax-mean accumulators are
 * rescaled to the common max, added, and divided by the combined Σexp.
 */
export function combinePartials(args: FusedScanArgs, partials: readonly ScanPartial[]): FusedScanResult {
  const sh = validateScanArgs(args, 'combinePartials');
  const { b, d, k, S } = sh;
  const sampler = args.sampler;
  if (!Array.isArray(partials) || partials.length === 0)
    throw new ArgumentError('combinePartials', `partials must be a non-empty array, got ${describe(partials)}`);
  const max = new Float32Array(b).fill(-Infinity);
  const logSumExp = new Float64Array(b);
  const out: FusedScanResult = { max, logSumExp };
  const sample = sampler === 'none' ? null : new Int32Array(b * S).fill(-1);
  const sampleScore = sampler === 'none' ? null : new Float32Array(b * S).fill(-Infinity);
  if (sample) {
    out.sample = sample;
    out.sampleScore = sampleScore!;
  }
  const softmaxMean = sh.mean ? new Float32Array(b * d) : null;

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
    const mu = softmaxMean ? new Float64Array(d) : null;
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
      if (mu) {
        // μ_i = Σ_g π_g · c_{groupArg}, over the non-empty groups (b·k·d work)
        mu.fill(0);
        for (let g = 0; g < k; g++) {
          const a = ga[i * k + g]!;
          if (a < 0) continue;
          const pi = Math.exp(gm[i * k + g]! - m) / s;
          for (let p = 0; p < d; p++) mu[p] += pi * args.cache[a * d + p]!;
        }
        softmaxMean!.set(mu, i * d);
      }
      for (let t = 0; t < S; t++) {
        const v = i * S + t;
        if (sampler === 'gumbel') {
          const k0 = sh.keys[2 * t]!,
            k1 = sh.keys[2 * t + 1]!;
          let best = -Infinity,
            pick = -1;
          for (let g = 0; g < k; g++) {
            const a = ga[i * k + g]!;
            if (a < 0) continue;
            const key = Math.fround(gm[i * k + g]! + gumbelAt(k0, k1, i, a));
            if (key > best) {
              best = key;
              pick = g;
            }
          }
          sample![v] = pick < 0 ? -1 : ga[i * k + pick]!;
          sampleScore![v] = pick < 0 ? -Infinity : gm[i * k + pick]!;
        } else if (sampler === 'categorical') {
          const pick = inverseCdf(gm, i * k, (i + 1) * k, m, args.uniforms![v]! * s);
          sample![v] = pick < 0 ? -1 : ga[pick]!;
          sampleScore![v] = pick < 0 ? -Infinity : gm[pick]!;
        }
      }
    }
    if (softmaxMean) out.softmaxMean = softmaxMean;
    return out;
  }

  const bestKey = new Float64Array(b * S).fill(-Infinity);
  for (const p of partials) {
    if (p.max.length !== b || p.sumExp.length !== b)
      throw new ArgumentError('combinePartials', `a partial has ${p.max.length} queries; need b = ${b}`);
    if (sample && (!p.sample || !p.sampleKey || !p.sampleScore || p.sample.length !== b * S))
      throw new ArgumentError(
        'combinePartials',
        `a partial lacks the ${S} sample(s) per query of sampler '${sampler}'`,
      );
    if (softmaxMean && (!p.meanAcc || p.meanAcc.length !== b * d))
      throw new ArgumentError('combinePartials', 'a partial lacks the softmax-mean accumulator of shape [b, d]');
  }
  const acc = softmaxMean ? new Float64Array(d) : null;
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
      if (acc) {
        acc.fill(0);
        for (const p of partials) {
          if (p.max[i]! === -Infinity) continue;
          const w = Math.exp(p.max[i]! - m);
          for (let q = 0; q < d; q++) acc[q] += w * p.meanAcc![i * d + q]!;
        }
        for (let q = 0; q < d; q++) softmaxMean![i * d + q] = acc[q]! / s;
      }
    }
    if (sample) {
      for (let t = 0; t < S; t++) {
        const v = i * S + t;
        for (const p of partials) {
          const idx = p.sample![v]!;
          if (idx < 0) continue;
          const key = p.sampleKey![v]!;
          if (key > bestKey[v]! || sample[v]! < 0 || (key === bestKey[v] && idx < sample[v]!)) {
            bestKey[v] = key;
            sample[v] = idx;
            sampleScore![v] = p.sampleScore![v]!;
          }
        }
      }
    }
  }
  if (softmaxMean) out.softmaxMean = softmaxMean;
  return out;
}
