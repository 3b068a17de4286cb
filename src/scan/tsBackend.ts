/**
 * The plain-TypeScript backend of the streaming scan: the same block
 * orchestration as the wasm scan (streaming.ts), kernels as loops. It is the
 * fallback where WebAssembly SIMD is unavailable.
 */
import { matmulNT } from '../tensor/kernels/matmul.js';
import { bitsFromSeeds, gumbelFromBits, rowSeeds } from './noise.js';
import {
  SCAN_BLOCK,
  SCAN_QUERY_CHUNK,
  checkScanRange,
  validateScanArgs,
  type FusedScanArgs,
  type FusedScanResult,
  type ScanPartial,
  type ScanShape,
} from './contract.js';
import { combinePartials, runScanRange, type ScanBackend } from './streaming.js';

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
  const { b, d, k, groupSize, S } = sh;
  const mean = sh.mean && k === 0;
  const scores = new Float32Array(SCAN_QUERY_CHUNK * SCAN_BLOCK);
  const exps = args.sampler === 'categorical' || mean ? new Float32Array(SCAN_QUERY_CHUNK * SCAN_BLOCK) : null;
  const statMax = new Float32Array(SCAN_QUERY_CHUNK);
  const statSum = new Float64Array(SCAN_QUERY_CHUNK);
  const colMask = new Int32Array(SCAN_BLOCK);
  const thr = new Uint32Array(S * b);
  const bestKey = new Float32Array(S * b),
    bestIdx = new Int32Array(S * b),
    bestScore = new Float32Array(S * b);
  const groupMax = k > 0 ? new Float32Array(b * k) : null;
  const groupArg = k > 0 ? new Int32Array(b * k) : null;
  const meanOld = mean ? new Float64Array(SCAN_QUERY_CHUNK) : null;
  const meanNew = mean ? new Float64Array(SCAN_QUERY_CHUNK) : null;
  const acc = mean ? new Float64Array(b * d) : null;
  const blockSum = mean ? new Float64Array(d) : null;
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
    meanOld,
    meanNew,
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
    gumbelScan(q0, mq, j0, R, ld, draw) {
      const k0 = sh.keys[2 * draw]!,
        k1 = sh.keys[2 * draw + 1]!;
      for (let r = 0; r < mq; r++) {
        const i = q0 + r,
          slot = draw * b + i;
        const [r1, r2] = rowSeeds(k0, k1, i);
        const t = thr[slot]!;
        let best = bestKey[slot]!,
          bestJ = bestIdx[slot]!,
          bestS = bestScore[slot]!;
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
        bestKey[slot] = best;
        bestIdx[slot] = bestJ;
        bestScore[slot] = bestS;
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
    meanBlock(q0, mq, j0, R, ld) {
      for (let r = 0; r < mq; r++) {
        const base = (q0 + r) * d;
        const a = meanOld![r]!,
          x = meanNew![r]!;
        if (x === 0) {
          for (let p = 0; p < d; p++) acc![base + p] = a * acc![base + p]!;
          continue;
        }
        blockSum!.fill(0);
        for (let c = 0; c < R; c++) {
          const e = exps![r * ld + c]!;
          if (e === 0) continue;
          const row = (j0 + c) * d;
          for (let p = 0; p < d; p++) blockSum![p] += e * cache[row + p]!;
        }
        for (let p = 0; p < d; p++) acc![base + p] = a * acc![base + p]! + x * blockSum![p]!;
      }
    },
    meanAcc() {
      return acc!.slice();
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
