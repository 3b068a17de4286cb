/**
 * Loading the SIMD kernels, managing their memory, and the public wrappers.
 *
 * Loading. `initWasm()` builds the module bytes (kernels.ts), compiles them
 * asynchronously and instantiates them; it resolves false when WebAssembly or
 * its 128-bit SIMD is unavailable (checked with WebAssembly.validate on a
 * tiny SIMD module first). Chromium refuses synchronous compilation of
 * modules over 4 KB on the main thread, so browsers must await initWasm()
 * once. Where synchronous compilation is allowed (Node, workers) the first
 * wrapper call compiles on demand, so `await initWasm()` is optional there.
 * `wasmReady()` tells whether the kernels are instantiated.
 *
 * Memory. One WebAssembly.Memory (no maximum; grown on demand) with a small
 * first-fit allocator above the kernels' constant pool: a sorted list of live
 * blocks, each rounded up to 64 bytes including 16 bytes of slack (the matmul
 * may read, never write, up to 12 bytes past an operand). Wasm memory cannot
 * shrink: after a large call the pages stay reserved and are reused.
 *
 * Copies. Kernels only see wasm memory, so the wrappers copy inputs in and
 * results out (TypedArray.set at memcpy speed: measured ~4 ms for a
 * 65536 × 128 cache, 32 MB, against ~45 ms for its matmul with 128 queries,
 * so ~8%; bench/kernels.ts prints both). A large array reused across calls — the cache embedding
 * matrix, immutable until the cache is replaced — can be made RESIDENT:
 * `makeResident(array)` copies it once and every later wrapper call given the
 * same Float32Array object (identity, a WeakMap) reads the resident copy.
 * The array must not be mutated while resident (negcache tensors are
 * immutable); `releaseResident(array)` frees it, and so does garbage
 * collection of the array (FinalizationRegistry).
 */
import { ArgumentError, DTypeError, NegcacheError, ShapeError, describe } from '../../../errors.js';
import {
  SCAN_BLOCK,
  SCAN_QUERY_CHUNK,
  checkScanRange,
  combinePartials,
  fusedScanRangeTS,
  fusedScanTS,
  runScanRange,
  validateScanArgs,
  type FusedScanArgs,
  type FusedScanResult,
  type ScanBackend,
  type ScanPartial,
  type ScanShape,
} from '../fusedScan.js';
import { FunctionBuilder, ModuleBuilder, webAssemblyApi, type WasmMemory, type WasmModule } from './emitter.js';
import { CONST_POOL_BYTES, buildKernelModule, type KernelExports } from './kernels.js';

const PAGE = 65536;
/** Constant-pool slots at the bottom of the memory: slot 0 for the generic module, the others for extensions. */
const CONST_POOL_SLOTS = 4;
/** Allocations start above the modules' constant pools (which also keeps them off the null pointer). */
const BASE = CONST_POOL_BYTES * CONST_POOL_SLOTS;
/** Slack after every allocation for the kernels' masked over-reads. */
const SLACK = 16;

/** A first-fit allocator over the wasm memory. */
export class Heap {
  private readonly blocks: { ptr: number; size: number }[] = [];
  constructor(readonly memory: WasmMemory) {}

  alloc(bytes: number): number {
    const size = Math.ceil((bytes + SLACK) / 64) * 64;
    let prevEnd = BASE;
    let at = this.blocks.length;
    for (let q = 0; q < this.blocks.length; q++) {
      const blk = this.blocks[q]!;
      if (blk.ptr - prevEnd >= size) {
        at = q;
        break;
      }
      prevEnd = blk.ptr + blk.size;
    }
    const end = prevEnd + size;
    const have = this.memory.buffer.byteLength;
    if (end > have) this.memory.grow(Math.ceil((end - have) / PAGE));
    this.blocks.splice(at, 0, { ptr: prevEnd, size });
    return prevEnd;
  }

  free(ptr: number): void {
    const q = this.blocks.findIndex((blk) => blk.ptr === ptr);
    if (q >= 0) this.blocks.splice(q, 1);
  }

  /** Bytes in live allocations (with rounding). */
  get bytesInUse(): number {
    return this.blocks.reduce((s, blk) => s + blk.size, 0);
  }
}

/** The instantiated generic kernels and the memory every module shares. */
export interface WasmState {
  exports: KernelExports;
  memory: WasmMemory;
  heap: Heap;
}

let state: WasmState | null = null;
let simd: boolean | null = null;
let pending: Promise<boolean> | null = null;
let moduleBytes: Uint8Array | null = null;
let syncFailed = false;

/** A 1-function module using i32x4.splat / extract_lane: validates iff SIMD is supported. */
function simdProbe(): Uint8Array {
  const fn = new FunctionBuilder('probe', [], ['i32']);
  fn.i32Const(7).i32x4Splat().i32x4ExtractLane(1);
  const mod = new ModuleBuilder();
  mod.add(fn);
  return mod.emit();
}

/** Whether this engine has WebAssembly with 128-bit SIMD. */
export function wasmSimdSupported(): boolean {
  if (simd === null) {
    let ok = false;
    try {
      const api = webAssemblyApi();
      ok = api !== null && api.validate(simdProbe());
    } catch {
      ok = false;
    }
    simd = ok;
  }
  return simd;
}

function bytes(): Uint8Array {
  if (moduleBytes === null) moduleBytes = buildKernelModule();
  return moduleBytes;
}

function instantiate(module: WasmModule): WasmState {
  const api = webAssemblyApi()!;
  const memory = new api.Memory({ initial: 16 });
  const instance = new api.Instance(module, { env: { memory } });
  return { exports: instance.exports as unknown as KernelExports, memory, heap: new Heap(memory) };
}

// ---------------------------------------------------------------------------
// Extension modules (the same API as the h13k branch's registry, so that
// modules defined above tensor/ -- the sparse training kernels of
// kernels/wasm/sparse.ts -- share this memory and allocator)
// ---------------------------------------------------------------------------

/**
 * A second kernel module sharing the generic module's memory and allocator.
 * `exports()` gives its exports, compiling and instantiating it synchronously
 * on first use where the engine allows it (after the generic module); null
 * when unavailable.
 */
export interface WasmExtension<E> {
  readonly name: string;
  /** The instantiated exports (compiling synchronously if allowed), or null. */
  exports(): E | null;
  /** True once instantiated. */
  ready(): boolean;
}

interface ExtensionRecord {
  readonly name: string;
  readonly build: (constBase: number) => Uint8Array;
  readonly constBase: number;
  bytes: Uint8Array | null;
  exports: object | null;
  pending: Promise<boolean> | null;
  syncFailed: boolean;
}

const extensions: ExtensionRecord[] = [];

/**
 * Registers an extension module: `build(constBase)` returns its bytes, with
 * its constant pool (if any, at most CONST_POOL_BYTES) placed at `constBase`,
 * the slot reserved for it at the bottom of the memory. The module must
 * import the memory as `env.memory`. Registering the same name twice returns
 * the first registration. Every registered extension is compiled by `initWasm()`.
 */
export function defineWasmExtension<E>(name: string, build: (constBase: number) => Uint8Array): WasmExtension<E> {
  let rec = extensions.find((e) => e.name === name);
  if (rec === undefined) {
    if (extensions.length + 1 >= CONST_POOL_SLOTS)
      throw new RangeError(`defineWasmExtension: no constant-pool slot left for '${name}'`);
    rec = {
      name,
      build,
      constBase: CONST_POOL_BYTES * (extensions.length + 1),
      bytes: null,
      exports: null,
      pending: null,
      syncFailed: false,
    };
    extensions.push(rec);
  }
  const r = rec;
  return {
    name,
    exports: () => (r.exports !== null ? (r.exports as E) : (tryExtension(r) as E | null)),
    ready: () => r.exports !== null,
  };
}

function extensionBytes(r: ExtensionRecord): Uint8Array {
  if (r.bytes === null) r.bytes = r.build(r.constBase);
  return r.bytes;
}

function instantiateExtension(r: ExtensionRecord, st: WasmState, module: WasmModule): void {
  if (r.exports === null) r.exports = new (webAssemblyApi()!.Instance)(module, { env: { memory: st.memory } }).exports;
}

function tryExtension(r: ExtensionRecord): object | null {
  const st = tryState();
  if (!st || r.syncFailed) return null;
  try {
    instantiateExtension(r, st, new (webAssemblyApi()!.Module)(extensionBytes(r)));
  } catch {
    r.syncFailed = true; // as for the generic module: wait for initWasm()
    return null;
  }
  return r.exports;
}

function initGeneric(): Promise<boolean> {
  if (state) return Promise.resolve(true);
  if (pending === null) {
    pending = webAssemblyApi()!
      .compile(bytes())
      .then((module) => {
        if (!state) state = instantiate(module);
        return true;
      })
      .catch(() => false);
  }
  return pending;
}

function initExtension(r: ExtensionRecord): Promise<boolean> {
  if (r.exports !== null) return Promise.resolve(true);
  if (r.pending === null) {
    r.pending = Promise.all([webAssemblyApi()!.compile(extensionBytes(r)), initGeneric()])
      .then(([module, ok]) => {
        if (!ok || !state) return false;
        instantiateExtension(r, state, module);
        return true;
      })
      .catch(() => false);
  }
  return r.pending;
}

/**
 * Compiles and instantiates the kernels asynchronously: the generic module
 * and every registered extension (required once on a browser main thread).
 * Resolves true when all are ready, false when WebAssembly SIMD is
 * unavailable or a compilation fails.
 */
export function initWasm(): Promise<boolean> {
  if (wasmReady()) return Promise.resolve(true);
  if (!wasmSimdSupported()) return Promise.resolve(false);
  return Promise.all([initGeneric(), ...extensions.map(initExtension)]).then((oks) => oks.every(Boolean));
}

/** True once the generic kernels and every registered extension are instantiated. */
export function wasmReady(): boolean {
  return state !== null && extensions.every((e) => e.exports !== null);
}

/**
 * The instantiated kernels, compiling synchronously on first use where the
 * engine allows it; null when unavailable (no SIMD, or a browser main thread
 * before initWasm() resolved).
 */
export function tryState(): WasmState | null {
  if (state) return state;
  if (syncFailed || !wasmSimdSupported()) return null;
  try {
    state = instantiate(new (webAssemblyApi()!.Module)(bytes()));
  } catch {
    syncFailed = true; // e.g. Chromium's main-thread limit on synchronous compilation: wait for initWasm()
    return null;
  }
  return state;
}

export function requireState(op: string): WasmState {
  const st = tryState();
  if (!st)
    throw new NegcacheError(
      op,
      'WebAssembly SIMD kernels are not available here (await initWasm() and check that it resolved true)',
    );
  return st;
}

/** Whether the kernels can run now (instantiating them synchronously if allowed). */
export function wasmAvailable(): boolean {
  return tryState() !== null;
}

// ---------------------------------------------------------------------------
// Resident buffers
// ---------------------------------------------------------------------------

/** A Float32Array's copy inside the wasm memory. */
export class WasmBuffer {
  #released = false;
  constructor(
    readonly ptr: number,
    readonly length: number,
  ) {}
  get released(): boolean {
    return this.#released;
  }
  /** @internal */
  markReleased(): void {
    this.#released = true;
  }
}

const resident = new WeakMap<Float32Array, WasmBuffer>();
const finalizer =
  typeof FinalizationRegistry === 'function'
    ? new FinalizationRegistry<WasmBuffer>((buf) => {
        if (!buf.released && state) {
          state.heap.free(buf.ptr);
          buf.markReleased();
        }
      })
    : null;

/**
 * Copies `array` into wasm memory once; later wrapper calls given this same
 * Float32Array object use the copy instead of copying again. Returns null if
 * the kernels are unavailable. The array must not be mutated while resident.
 */
export function makeResident(array: Float32Array): WasmBuffer | null {
  if (!(array instanceof Float32Array))
    throw new DTypeError('makeResident', `array must be a Float32Array, got ${describe(array)}`);
  const have = resident.get(array);
  if (have && !have.released) return have;
  const st = tryState();
  if (!st) return null;
  const ptr = st.heap.alloc(array.length * 4);
  new Float32Array(st.memory.buffer, ptr, array.length).set(array);
  const buf = new WasmBuffer(ptr, array.length);
  resident.set(array, buf);
  finalizer?.register(array, buf, buf);
  return buf;
}

/** Frees the resident copy of `array`, if any. */
export function releaseResident(array: Float32Array): void {
  const buf = resident.get(array);
  if (!buf || buf.released) return;
  resident.delete(array);
  finalizer?.unregister(buf);
  if (state) state.heap.free(buf.ptr);
  buf.markReleased();
}

/** Whether `array` currently has a resident copy. */
export function isResident(array: Float32Array): boolean {
  const buf = resident.get(array);
  return buf !== undefined && !buf.released;
}

/** Bytes currently allocated in the wasm memory (resident buffers included). */
export function wasmBytesInUse(): number {
  return state ? state.heap.bytesInUse : 0;
}

/** Temporary allocations of one call, freed together. */
export class Temps {
  private readonly ptrs: number[] = [];
  constructor(private readonly st: WasmState) {}
  alloc(bytes: number): number {
    const p = this.st.heap.alloc(bytes);
    this.ptrs.push(p);
    return p;
  }
  /** The resident copy of `src`, or a temporary copy of its elements [from, from + len). */
  input(src: Float32Array, from = 0, len = src.length - from): number {
    const buf = resident.get(src);
    if (buf && !buf.released) return buf.ptr + from * 4;
    const p = this.alloc(len * 4);
    new Float32Array(this.st.memory.buffer, p, len).set(len === src.length ? src : src.subarray(from, from + len));
    return p;
  }
  free(): void {
    for (const p of this.ptrs) this.st.heap.free(p);
    this.ptrs.length = 0;
  }
}

// ---------------------------------------------------------------------------
// Matmuls
// ---------------------------------------------------------------------------

function checkMatmul(
  op: string,
  a: Float32Array,
  b: Float32Array,
  m: number,
  n: number,
  k: number,
  aLen: number,
  bLen: number,
  out: Float32Array | undefined,
): Float32Array {
  for (const [name, v] of [
    ['m', m],
    ['n', n],
    ['k', k],
  ] as const) {
    if (!Number.isInteger(v) || v < 0)
      throw new ArgumentError(op, `${name} must be a non-negative integer, got ${describe(v)}`);
  }
  if (!(a instanceof Float32Array)) throw new DTypeError(op, `a must be a Float32Array, got ${describe(a)}`);
  if (!(b instanceof Float32Array)) throw new DTypeError(op, `b must be a Float32Array, got ${describe(b)}`);
  if (a.length !== aLen) throw new ShapeError(op, `a has length ${a.length}; need ${aLen}`);
  if (b.length !== bLen) throw new ShapeError(op, `b has length ${b.length}; need ${bLen}`);
  if (out !== undefined) {
    if (!(out instanceof Float32Array)) throw new DTypeError(op, `out must be a Float32Array, got ${describe(out)}`);
    if (out.length !== m * n) throw new ShapeError(op, `out has length ${out.length}; need m*n = ${m * n}`);
    return out;
  }
  return new Float32Array(m * n);
}

/** C[m,n] = A[m,k] · B[n,k]ᵀ (row-major; k contiguous in both). */
export function matmulNTWasm(
  a: Float32Array,
  b: Float32Array,
  m: number,
  n: number,
  k: number,
  out?: Float32Array,
): Float32Array {
  const op = 'matmulNTWasm';
  const c = checkMatmul(op, a, b, m, n, k, m * k, n * k, out);
  if (m === 0 || n === 0) return c;
  const st = requireState(op);
  const t = new Temps(st);
  try {
    const pa = t.input(a),
      pb = t.input(b),
      pc = t.alloc(m * n * 4);
    st.exports.matmulNT(pa, pb, pc, m, n, k, k, k, n, 1);
    c.set(new Float32Array(st.memory.buffer, pc, m * n));
  } finally {
    t.free();
  }
  return c;
}

/** C[m,n] = A[m,k] · B[k,n]: B is transposed into wasm scratch, then the NT kernel. */
export function matmulNNWasm(
  a: Float32Array,
  b: Float32Array,
  m: number,
  n: number,
  k: number,
  out?: Float32Array,
): Float32Array {
  const op = 'matmulNNWasm';
  const c = checkMatmul(op, a, b, m, n, k, m * k, k * n, out);
  if (m === 0 || n === 0) return c;
  const st = requireState(op);
  const t = new Temps(st);
  try {
    const pa = t.input(a),
      pb = t.input(b),
      pbt = t.alloc(n * k * 4),
      pc = t.alloc(m * n * 4);
    st.exports.transpose(pb, pbt, k, n);
    st.exports.matmulNT(pa, pbt, pc, m, n, k, k, k, n, 1);
    c.set(new Float32Array(st.memory.buffer, pc, m * n));
  } finally {
    t.free();
  }
  return c;
}

/** C[m,n] = A[k,m]ᵀ · B[k,n]: both operands transposed into wasm scratch, then the NT kernel. */
export function matmulTNWasm(
  a: Float32Array,
  b: Float32Array,
  m: number,
  n: number,
  k: number,
  out?: Float32Array,
): Float32Array {
  const op = 'matmulTNWasm';
  const c = checkMatmul(op, a, b, m, n, k, k * m, k * n, out);
  if (m === 0 || n === 0) return c;
  const st = requireState(op);
  const t = new Temps(st);
  try {
    const pa = t.input(a),
      pb = t.input(b),
      pat = t.alloc(m * k * 4),
      pbt = t.alloc(n * k * 4),
      pc = t.alloc(m * n * 4);
    st.exports.transpose(pa, pat, k, m);
    st.exports.transpose(pb, pbt, k, n);
    st.exports.matmulNT(pat, pbt, pc, m, n, k, k, k, n, 1);
    c.set(new Float32Array(st.memory.buffer, pc, m * n));
  } finally {
    t.free();
  }
  return c;
}

// ---------------------------------------------------------------------------
// Elementwise
// ---------------------------------------------------------------------------

/** Elements per chunk of the elementwise wrappers (4 MB of scratch). */
const MAP_CHUNK = 1 << 20;

function mapWasm(op: string, kernel: 'expArray' | 'logArray', src: Float32Array, dst?: Float32Array): Float32Array {
  if (!(src instanceof Float32Array)) throw new DTypeError(op, `src must be a Float32Array, got ${describe(src)}`);
  if (dst !== undefined && !(dst instanceof Float32Array))
    throw new DTypeError(op, `dst must be a Float32Array, got ${describe(dst)}`);
  if (dst !== undefined && dst.length !== src.length)
    throw new ShapeError(op, `dst has length ${dst.length}; need ${src.length}`);
  const out = dst ?? new Float32Array(src.length);
  if (src.length === 0) return out;
  const st = requireState(op);
  const t = new Temps(st);
  try {
    const chunk = Math.min(MAP_CHUNK, src.length);
    const p = t.alloc(chunk * 4);
    const view = new Float32Array(st.memory.buffer, p, chunk);
    for (let at = 0; at < src.length; at += chunk) {
      const len = Math.min(chunk, src.length - at);
      view.set(src.subarray(at, at + len));
      st.exports[kernel](p, p, len);
      out.set(len === chunk ? view : view.subarray(0, len), at);
    }
  } finally {
    t.free();
  }
  return out;
}

/** dst[i] = exp(src[i]) by the f32x4 Cephes polynomial (max relative error ~1.3e-7 on [-87, 88]; 0 below -103.98, +Inf above 88.72, NaN propagates). */
export function expWasm(src: Float32Array, dst?: Float32Array): Float32Array {
  return mapWasm('expWasm', 'expArray', src, dst);
}

/** dst[i] = log(src[i]) by the f32x4 Cephes polynomial (max relative error ~1 ulp; log 0 = -Inf, log x<0 = NaN, subnormals handled). */
export function logWasm(src: Float32Array, dst?: Float32Array): Float32Array {
  return mapWasm('logWasm', 'logArray', src, dst);
}

/** gumbelAt(k0, k1, i, j) for j in [j0, j0 + len), computed by the wasm kernel (bit-identical to noise.ts). */
export function gumbelRowWasm(k0: number, k1: number, i: number, j0: number, len: number): Float32Array {
  const st = requireState('gumbelRowWasm');
  const t = new Temps(st);
  try {
    const p = t.alloc(len * 4);
    st.exports.gumbelRow(p, k0 | 0, k1 | 0, i | 0, j0 | 0, len);
    return new Float32Array(st.memory.buffer, p, len).slice();
  } finally {
    t.free();
  }
}

/** uniformAt(k0, k1, i, j) for j in [j0, j0 + len), computed by the wasm kernel. */
export function noiseBitsWasm(k0: number, k1: number, i: number, j0: number, len: number): Uint32Array {
  const st = requireState('noiseBitsWasm');
  const t = new Temps(st);
  try {
    const p = t.alloc(len * 4);
    st.exports.noiseBits(p, k0 | 0, k1 | 0, i | 0, j0 | 0, len);
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
  args: FusedScanArgs,
  sh: ScanShape,
  rowStart: number,
  rowEnd: number,
  t: Temps,
): ScanBackend {
  const { b, d, k, groupSize } = sh;
  const ex = st.exports;
  const chunk = SCAN_QUERY_CHUNK * SCAN_BLOCK;
  // Inputs (copies or resident) and scratch; no allocation after this point,
  // so the views below stay attached.
  const pq = t.input(args.queries);
  const pc = t.input(args.cache, rowStart * d, (rowEnd - rowStart) * d);
  const pcBase = pc - rowStart * d * 4; // where row 0 is (or would be): row j is at pcBase + j*d*4
  const ps = t.alloc(chunk * 4);
  const pe = args.sampler === 'categorical' ? t.alloc(chunk * 4) : 0;
  const pmax = t.alloc(SCAN_QUERY_CHUNK * 4),
    psum = t.alloc(SCAN_QUERY_CHUNK * 4);
  const pmask = t.alloc(SCAN_BLOCK * 4);
  const pthr = t.alloc(b * 4),
    pbk = t.alloc(b * 4),
    pbi = t.alloc(b * 4),
    pbs = t.alloc(b * 4);
  const pgm = k > 0 ? t.alloc(b * k * 4) : 0,
    pga = k > 0 ? t.alloc(b * k * 4) : 0;
  const buf = st.memory.buffer;
  const scores = new Float32Array(buf, ps, chunk);
  return {
    scores,
    exps: pe ? new Float32Array(buf, pe, chunk) : null,
    statMax: new Float32Array(buf, pmax, SCAN_QUERY_CHUNK),
    statSum: new Float32Array(buf, psum, SCAN_QUERY_CHUNK),
    colMask: new Int32Array(buf, pmask, SCAN_BLOCK),
    thr: new Uint32Array(buf, pthr, b),
    bestKey: new Float32Array(buf, pbk, b),
    bestIdx: new Int32Array(buf, pbi, b),
    bestScore: new Float32Array(buf, pbs, b),
    groupMax: k > 0 ? new Float32Array(buf, pgm, b * k) : null,
    groupArg: k > 0 ? new Int32Array(buf, pga, b * k) : null,
    scoreBlock(q0, mq, j0, R, ld) {
      ex.matmulNT(pq + q0 * d * 4, pcBase + j0 * d * 4, ps, mq, R, d, d, d, ld, sh.scale32);
      if (ld > R) for (let r = 0; r < mq; r++) for (let c = R; c < ld; c++) scores[r * ld + c] = -Infinity;
    },
    maskColumns(mq, ld) {
      ex.maskColumns(ps, mq, ld, ld, pmask);
    },
    rowStats(mq, R, ld, wantExps) {
      ex.rowStats(ps, mq, R, ld, pmax, psum, wantExps ? pe : 0);
    },
    gumbelScan(q0, mq, j0, R, ld) {
      ex.gumbelScan(ps, mq, R, ld, q0, j0, sh.k0, sh.k1, pthr + q0 * 4, pbk + q0 * 4, pbi + q0 * 4, pbs + q0 * 4);
    },
    groupScan(q0, mq, j0, R, ld) {
      ex.groupScan(ps, mq, R, ld, j0, groupSize, 0, k, pgm + q0 * k * 4, pga + q0 * k * 4);
    },
    dispose() {},
  };
}

/**
 * The fused scan of cache rows [rowStart, rowEnd) on the wasm kernels, as a
 * partial result (see fusedScan.ts; combine with combinePartials). Only the
 * rows of the range are copied into wasm memory (none if the cache is resident).
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
  const st = requireState(op);
  if (opts.residentCache) makeResident(args.cache);
  const t = new Temps(st);
  try {
    return runScanRange(args, sh, rowStart, rowEnd, createWasmBackend(st, args, sh, rowStart, rowEnd, t));
  } finally {
    t.free();
  }
}

/** The fused cache scan on the wasm SIMD kernels (contract in fusedScan.ts). */
export function fusedCacheScanWasm(args: FusedScanArgs, opts: WasmScanOptions = {}): FusedScanResult {
  const op = 'fusedCacheScanWasm';
  const sh = validateScanArgs(args, op);
  return combinePartials(args, [scanRange(op, args, sh, 0, sh.n, opts)]);
}

/**
 * The fused cache scan on the fastest implementation available: the wasm
 * kernels when they can run (see wasmAvailable), else the TypeScript
 * streaming scan. Both follow the same contract (fusedScan.ts).
 */
export function fusedCacheScan(args: FusedScanArgs, opts: WasmScanOptions = {}): FusedScanResult {
  return wasmAvailable() ? fusedCacheScanWasm(args, opts) : fusedScanTS(args);
}

/** fusedCacheScan on a row range, as a partial result. */
export function fusedCacheScanRange(
  args: FusedScanArgs,
  rowStart: number,
  rowEnd: number,
  opts: WasmScanOptions = {},
): ScanPartial {
  return wasmAvailable()
    ? fusedCacheScanWasmRange(args, rowStart, rowEnd, opts)
    : fusedScanRangeTS(args, rowStart, rowEnd);
}
