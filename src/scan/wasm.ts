/**
 * The wasm backend of the streaming scan and the public scan entry points.
 *
 * Two modules share one memory. The scores of a (query chunk, row block) are
 * computed by the GENERIC matmul kernel (src/tensor/kernels/wasm/, the same
 * code every float32 matmul of the library uses) into wasm scratch, and the
 * scan's own kernels (wasmKernels.ts: masks, row statistics, the Gumbel pass,
 * group maxima) read them there, in place. The scan module is registered as
 * an extension of the generic runtime (`defineWasmExtension`), which gives it
 * the shared memory, the allocator, a constant-pool slot, and includes it in
 * `initWasm()`; tensor/ never imports this layer. JS drives the blocks
 * (runScanRange, streaming.ts): a few calls per block of 256 rows, whose
 * cost is negligible next to the block's b·256·d multiply-adds.
 */
import { NegcacheError } from '../errors.js';
import {
  Temps,
  defineWasmExtension,
  gemmBlocks,
  gemmTile,
  makeResident,
  packedBytes,
  requireState,
  residentPointer,
  type WasmState,
} from '../tensor/kernels/wasm/index.js';
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
import { fusedScanRangeTS, fusedScanTS } from './tsBackend.js';
import { buildScanModule, type ScanKernelExports } from './wasmKernels.js';

/** The scan kernels, a module sharing the generic kernels' memory (compiled by initWasm()). */
const scanModule = defineWasmExtension<ScanKernelExports>('negcache-scan', buildScanModule);

/** Whether the wasm scan can run now (both modules instantiated, synchronously if allowed). */
export function scanWasmAvailable(): boolean {
  return scanModule.exports() !== null;
}

function requireScan(op: string): { st: WasmState; ex: ScanKernelExports } {
  const st = requireState(op);
  const ex = scanModule.exports();
  if (ex === null)
    throw new NegcacheError(
      op,
      'the WebAssembly scan kernels are not available here (await initWasm() and check that it resolved true)',
    );
  return { st, ex };
}

/** gumbelAt(k0, k1, i, j) for j in [j0, j0 + len), computed by the wasm kernel (bit-identical to noise.ts). */
export function gumbelRowWasm(k0: number, k1: number, i: number, j0: number, len: number): Float32Array {
  const { st, ex } = requireScan('gumbelRowWasm');
  const t = new Temps(st);
  try {
    const p = t.alloc(len * 4);
    ex.gumbelRow(p, k0 | 0, k1 | 0, i | 0, j0 | 0, len);
    return new Float32Array(st.memory.buffer, p, len).slice();
  } finally {
    t.free();
  }
}

/** uniformAt(k0, k1, i, j) for j in [j0, j0 + len), computed by the wasm kernel. */
export function noiseBitsWasm(k0: number, k1: number, i: number, j0: number, len: number): Uint32Array {
  const { st, ex } = requireScan('noiseBitsWasm');
  const t = new Temps(st);
  try {
    const p = t.alloc(len * 4);
    ex.noiseBits(p, k0 | 0, k1 | 0, i | 0, j0 | 0, len);
    return new Uint32Array(st.memory.buffer, p, len).slice();
  } finally {
    t.free();
  }
}

// ---------------------------------------------------------------------------
// The fused cache scan
// ---------------------------------------------------------------------------

export interface WasmScanOptions {
  /** Make the cache array resident (copied once, reused by later calls with the same array). Default false. */
  residentCache?: boolean;
}

function createWasmBackend(
  st: WasmState,
  sx: ScanKernelExports,
  args: FusedScanArgs,
  sh: ScanShape,
  t: Temps,
): ScanBackend {
  const { b, d, k, groupSize, S } = sh;
  const mean = sh.mean && k === 0;
  const ex = st.exports;
  const chunk = SCAN_QUERY_CHUNK * SCAN_BLOCK;
  // Inputs (copies or resident) and scratch; no allocation after this point,
  // so the views below stay attached.
  const pq = t.input(args.queries);
  // the queries packed once into gemm panels (the V operand of every score block)
  const { W } = gemmTile();
  const pqp = t.alloc(packedBytes(b, d));
  ex.packRows(pq, d, b, d, pqp);
  const qPanel = d * W * 4;
  const { sb } = gemmBlocks(d);
  const vbQ = Math.ceil(SCAN_QUERY_CHUNK / W) * W, // a whole query chunk is one V block
    vbD = Math.max(W, Math.ceil(d / W) * W); // the mean's V: all d columns in one block
  // The cache rows: the resident copy if there is one, else each block is copied into a staging
  // buffer just before it is scanned (it is then in cache for the products that read it; a copy of
  // the whole range first would stream it through memory twice and hold it in wasm memory).
  const resident = residentPointer(args.cache);
  const pstage = resident === null ? t.alloc(SCAN_BLOCK * d * 4) : 0;
  const ps = t.alloc(chunk * 4);
  const pe = args.sampler === 'categorical' || mean ? t.alloc(chunk * 4) : 0;
  const pmax = t.alloc(SCAN_QUERY_CHUNK * 4),
    psum = t.alloc(SCAN_QUERY_CHUNK * 4);
  const pmask = t.alloc(SCAN_BLOCK * 4);
  const pthr = t.alloc(S * b * 4),
    pbk = t.alloc(S * b * 4),
    pbi = t.alloc(S * b * 4),
    pbs = t.alloc(S * b * 4);
  const pgm = k > 0 ? t.alloc(b * k * 4) : 0,
    pga = k > 0 ? t.alloc(b * k * 4) : 0;
  // softmax mean: fold factors, the product [chunk × d], acc [b × d]
  const pOld = mean ? t.alloc(SCAN_QUERY_CHUNK * 4) : 0,
    pNew = mean ? t.alloc(SCAN_QUERY_CHUNK * 4) : 0,
    pprod = mean ? t.alloc(SCAN_QUERY_CHUNK * d * 4) : 0,
    pacc = mean ? t.alloc(b * d * 4) : 0;
  const buf = st.memory.buffer;
  const scores = new Float32Array(buf, ps, chunk);
  const stage = resident === null ? new Float32Array(buf, pstage, SCAN_BLOCK * d) : null;
  let staged = -1;
  /** Address of cache rows j0 .. j0 + R in wasm memory. */
  const rows = (j0: number, R: number): number => {
    if (resident !== null) return resident + j0 * d * 4;
    if (staged !== j0) {
      stage!.set(args.cache.subarray(j0 * d, (j0 + R) * d));
      staged = j0;
    }
    return pstage;
  };
  if (mean) new Float32Array(buf, pacc, b * d).fill(0);
  return {
    scores,
    exps: pe ? new Float32Array(buf, pe, chunk) : null,
    statMax: new Float32Array(buf, pmax, SCAN_QUERY_CHUNK),
    statSum: new Float32Array(buf, psum, SCAN_QUERY_CHUNK),
    colMask: new Int32Array(buf, pmask, SCAN_BLOCK),
    thr: new Uint32Array(buf, pthr, S * b),
    bestKey: new Float32Array(buf, pbk, S * b),
    bestIdx: new Int32Array(buf, pbi, S * b),
    bestScore: new Float32Array(buf, pbs, S * b),
    groupMax: k > 0 ? new Float32Array(buf, pgm, b * k) : null,
    groupArg: k > 0 ? new Int32Array(buf, pga, b * k) : null,
    meanOld: mean ? new Float32Array(buf, pOld, SCAN_QUERY_CHUNK) : null,
    meanNew: mean ? new Float32Array(buf, pNew, SCAN_QUERY_CHUNK) : null,
    scoreBlock(q0, mq, j0, R, ld) {
      // scores[r, c] = f32(scale · Σ_p q[q0 + r, p]·cache[j0 + c, p]): V = the packed queries, S = the cache rows
      ex.gemmT(pqp + (q0 / W) * qPanel, qPanel, W, mq, rows(j0, R), d, R, d, ps, ld, sh.scale32, vbQ, sb);
      if (ld > R) for (let r = 0; r < mq; r++) for (let c = R; c < ld; c++) scores[r * ld + c] = -Infinity;
    },
    maskColumns(mq, ld) {
      sx.maskColumns(ps, mq, ld, ld, pmask);
    },
    rowStats(mq, R, ld, wantExps) {
      sx.rowStats(ps, mq, R, ld, pmax, psum, wantExps ? pe : 0);
    },
    gumbelScan(q0, mq, j0, R, ld, draw) {
      const o = (draw * b + q0) * 4;
      sx.gumbelScan(
        ps,
        mq,
        R,
        ld,
        q0,
        j0,
        sh.keys[2 * draw]!,
        sh.keys[2 * draw + 1]!,
        pthr + o,
        pbk + o,
        pbi + o,
        pbs + o,
      );
    },
    groupScan(q0, mq, j0, R, ld) {
      sx.groupScan(ps, mq, R, ld, j0, groupSize, 0, k, pgm + q0 * k * 4, pga + q0 * k * 4);
    },
    meanBlock(q0, mq, j0, R, ld) {
      // prod[r, :] = Σ_c exps[r, c]·cache[j0 + c, :] on the generic gemm: V = the block's cache rows read in
      // place (k-major: step c is row j0 + c, panels of W columns), S = the exps rows
      ex.gemmN(rows(j0, R), W * 4, d, d, pe, ld, mq, R, pprod, d, 1, vbD, SCAN_QUERY_CHUNK, 0, 1);
      sx.meanFold(pacc + q0 * d * 4, pprod, mq, d, pOld, pNew);
    },
    meanAcc() {
      return Float64Array.from(new Float32Array(buf, pacc, b * d));
    },
    dispose() {},
  };
}

/**
 * The fused scan of cache rows [rowStart, rowEnd) on the wasm kernels, as a
 * partial result (see contract.ts; combine with combinePartials). The rows
 * of the range are copied into wasm memory block by block, as they are
 * scanned (not at all if the cache is resident).
 */
export function fusedCacheScanWasmRange(
  args: FusedScanArgs,
  rowStart: number,
  rowEnd: number,
  opts: WasmScanOptions = {},
): ScanPartial {
  const op = 'fusedCacheScanWasmRange';
  const sh = validateScanArgs(args, op);
  checkScanRange(sh, rowStart, rowEnd, op);
  return scanRange(op, args, sh, rowStart, rowEnd, opts);
}

function scanRange(
  op: string,
  args: FusedScanArgs,
  sh: ScanShape,
  rowStart: number,
  rowEnd: number,
  opts: WasmScanOptions,
): ScanPartial {
  const { st, ex } = requireScan(op);
  if (opts.residentCache) makeResident(args.cache);
  const t = new Temps(st);
  try {
    return runScanRange(args, sh, rowStart, rowEnd, createWasmBackend(st, ex, args, sh, t));
  } finally {
    t.free();
  }
}

/** The fused cache scan on the wasm SIMD kernels (contract in contract.ts). */
export function fusedCacheScanWasm(args: FusedScanArgs, opts: WasmScanOptions = {}): FusedScanResult {
  const op = 'fusedCacheScanWasm';
  const sh = validateScanArgs(args, op);
  return combinePartials(args, [scanRange(op, args, sh, 0, sh.n, opts)]);
}

/**
 * The fused cache scan on the fastest implementation available: the wasm
 * kernels when they can run (see scanWasmAvailable), else the TypeScript
 * streaming scan. Both follow the same contract (contract.ts).
 */
export function fusedCacheScan(args: FusedScanArgs, opts: WasmScanOptions = {}): FusedScanResult {
  return scanWasmAvailable() ? fusedCacheScanWasm(args, opts) : fusedScanTS(args);
}

/** fusedCacheScan on a row range, as a partial result. */
export function fusedCacheScanRange(
  args: FusedScanArgs,
  rowStart: number,
  rowEnd: number,
  opts: WasmScanOptions = {},
): ScanPartial {
  return scanWasmAvailable()
    ? fusedCacheScanWasmRange(args, rowStart, rowEnd, opts)
    : fusedScanRangeTS(args, rowStart, rowEnd);
}
