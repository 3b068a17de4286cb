/**
 * Loading the SIMD kernels, managing their memory, and the public wrappers.
 *
 * Loading. `initWasm()` builds the module bytes (kernels.ts, and every
 * extension module registered with `defineWasmExtension`, such as the cache
 * scan's), compiles them asynchronously and instantiates them against one
 * shared memory; it resolves false when WebAssembly or
 * its 128-bit SIMD is unavailable (checked with WebAssembly.validate on a
 * tiny SIMD module first). Chromium refuses synchronous compilation of
 * modules over 4 KB on the main thread, so browsers must await initWasm()
 * once. Where synchronous compilation is allowed (Node, workers) the first
 * wrapper call compiles on demand, so `await initWasm()` is optional there.
 * `wasmReady()` tells whether the kernels are instantiated.
 *
 * Memory. One WebAssembly.Memory (no maximum; grown on demand), imported by
 * every module, with a small first-fit allocator above the modules' constant
 * pools (RESERVED_BYTES, kernels.ts): a sorted list of live
 * blocks, each rounded up to 64 bytes including SLACK bytes of slack (the
 * gemm may read, never write, up to 28 bytes past an operand). Wasm memory
 * cannot shrink: after a large call the pages stay reserved and are reused.
 *
 * Copies. Kernels only see wasm memory, so the wrappers copy inputs in and
 * results out (TypedArray.set at memcpy speed: ~4 ms for a 65536 × 128
 * cache, 32 MB; bench/kernels.ts prints it). The cache scan (src/scan/wasm.ts)
 * copies the cache block by block into a small staging buffer as it scans
 * instead, so the rows are still in cache when the products read them. A
 * large array reused across calls — the cache embedding
 * matrix, immutable until the cache is replaced — can be made RESIDENT:
 * `makeResident(array)` copies it once and every later wrapper call given the
 * same Float32Array object (identity, a WeakMap) reads the resident copy.
 * The array must not be mutated while resident (negcache tensors are
 * immutable); `releaseResident(array)` frees it, and so does garbage
 * collection of the array (FinalizationRegistry).
 */
import { ArgumentError, DTypeError, NegcacheError, ShapeError, describe } from '../../../errors.js';
import { FunctionBuilder, ModuleBuilder, webAssemblyApi, type WasmMemory, type WasmModule } from './emitter.js';
import {
  CONST_POOL_BYTES,
  CONST_POOL_SLOTS,
  RESERVED_BYTES,
  buildKernelModule,
  type KernelExports,
} from './kernels.js';
import { DEFAULT_GEMM_CONFIG } from './gemm.js';

const PAGE = 65536;
/** Allocations start above the modules' constant pools (which also keeps them off the null pointer). */
const BASE = RESERVED_BYTES;
/** Slack after every allocation for the kernels' over-reads (gemm: up to 4·W - 4 = 28 bytes; kernels.ts). */
const SLACK = 64;

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
    if (end > have) {
      try {
        this.memory.grow(Math.ceil((end - have) / PAGE));
      } catch (e) {
        // A 32-bit wasm memory ends at 4 GiB (or the engine refused): a typed error, not a bare RangeError.
        throw new ArgumentError(
          'wasm',
          `cannot grow the WebAssembly memory from ${have} to ${end} bytes for a ${bytes}-byte buffer (a 32-bit WebAssembly memory holds at most 4 GiB): ${(e as Error).message}`,
        );
      }
    }
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

// ---------------------------------------------------------------------------
// Kernel options: FMA (relaxed SIMD), opt-in
// ---------------------------------------------------------------------------

let relaxed: boolean | null = null;

/** A 1-function module using f32x4.relaxed_madd: validates iff the engine implements relaxed SIMD. */
function relaxedProbe(): Uint8Array {
  const fn = new FunctionBuilder('probe', [], ['f32']);
  fn.v128ConstF32(1).v128ConstF32(2).v128ConstF32(3).f32x4RelaxedMadd().f32x4ExtractLane(0);
  const mod = new ModuleBuilder();
  mod.add(fn);
  return mod.emit();
}

/** Whether this engine implements relaxed SIMD (Node 22+, Chrome 114+; not Node 20). */
export function relaxedSimdSupported(): boolean {
  if (relaxed === null) {
    try {
      const api = webAssemblyApi();
      relaxed = api !== null && wasmSimdSupported() && api.validate(relaxedProbe());
    } catch {
      relaxed = false;
    }
  }
  return relaxed;
}

/** Options of the generic kernels (see setKernelOptions). */
export interface KernelOptions {
  /**
   * Use f32x4.relaxed_madd (a fused multiply-add where the engine and CPU
   * have one) in the matrix products, where the engine implements relaxed
   * SIMD. Default false. Fused products round once instead of twice, so the
   * scores, samples and every trained weight then differ in their last bits
   * from the default path, and from engines that do not fuse: with it, a
   * Node 20 run (no relaxed SIMD) and a Chromium run (relaxed SIMD, FMA on
   * x64 with FMA3) of the same seed are no longer bit-identical. Within one
   * engine on one machine results stay reproducible run to run.
   */
  fma?: boolean;
}

let options: Required<KernelOptions> = { fma: false };

/**
 * Sets the kernel options. They are compiled into the module, so they must be
 * set before the kernels are compiled (before initWasm() or the first
 * product); changing them afterwards throws. Worker threads compile their own
 * kernels: createParallelScan passes the options on.
 */
export function setKernelOptions(opts: KernelOptions): void {
  if (opts === null || typeof opts !== 'object')
    throw new ArgumentError('setKernelOptions', `options must be an object, got ${describe(opts)}`);
  if (opts.fma !== undefined && typeof opts.fma !== 'boolean')
    throw new ArgumentError('setKernelOptions', `fma must be a boolean, got ${describe(opts.fma)}`);
  const next = { fma: opts.fma ?? options.fma };
  if (next.fma !== options.fma && (moduleBytes !== null || state !== null))
    throw new ArgumentError(
      'setKernelOptions',
      `fma cannot change from ${options.fma} to ${next.fma} after the kernels were compiled; set it before initWasm() or the first product`,
    );
  options = next;
}

/** The options in effect, and whether the fused multiply-add is actually compiled in. */
export function kernelOptions(): { fma: boolean; relaxedSimd: boolean; fmaInUse: boolean } {
  const rs = relaxedSimdSupported();
  return { fma: options.fma, relaxedSimd: rs, fmaInUse: options.fma && rs };
}

function bytes(): Uint8Array {
  if (moduleBytes === null) moduleBytes = buildKernelModule({ ...DEFAULT_GEMM_CONFIG, fma: kernelOptions().fmaInUse });
  return moduleBytes;
}

function instantiate(module: WasmModule): WasmState {
  const api = webAssemblyApi()!;
  const memory = new api.Memory({ initial: 16 });
  const instance = new api.Instance(module, { env: { memory } });
  return { exports: instance.exports as unknown as KernelExports, memory, heap: new Heap(memory) };
}

// ---------------------------------------------------------------------------
// Extension modules
// ---------------------------------------------------------------------------

/**
 * A second kernel module sharing the generic module's memory and allocator
 * (defined by a layer above tensor/, e.g. the cache scan's kernels,
 * src/scan/wasm.ts). `exports()` gives its exports, compiling and
 * instantiating it synchronously on first use where the engine allows it
 * (after the generic module); null when unavailable.
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
  /** The module bytes given its constant-pool address. */
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
 * the first registration. Every registered extension is compiled by
 * `initWasm()`.
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

// ---------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------

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

/** The instantiated kernels, or a NegcacheError naming `op`. */
export function requireState(op: string): WasmState {
  const st = tryState();
  if (!st)
    throw new NegcacheError(
      op,
      'WebAssembly SIMD kernels are not available here (await initWasm() and check that it resolved true)',
    );
  return st;
}

/** Whether the generic kernels can run now (instantiating them synchronously if allowed). */
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

/** The address of `array`'s resident copy, or null if it has none. */
export function residentPointer(array: Float32Array): number | null {
  const buf = resident.get(array);
  return buf !== undefined && !buf.released ? buf.ptr : null;
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
  /** The memory's current buffer (views made after the last alloc stay attached until the next one). */
  get buffer(): ArrayBuffer {
    return this.st.memory.buffer;
  }
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

/** Bytes a V block and an S block of the gemm aim for (each well inside L2 next to the other). */
const GEMM_V_BLOCK_BYTES = 128 * 1024;
const GEMM_S_BLOCK_BYTES = 64 * 1024;
/** k-block of the N orientation when k is large (the V panel W·KC·4 bytes stays in L1). */
const GEMM_KC = 256;
/** Above this k a product uses the N orientation with k blocks (T cannot continue partial sums). */
const GEMM_T_MAX_K = 1024;

/** The tile of the compiled gemm: W = 4·mrv V indices per panel, NR S rows per tile. */
export function gemmTile(): { W: number; NR: number } {
  return { W: 4 * DEFAULT_GEMM_CONFIG.mrv, NR: DEFAULT_GEMM_CONFIG.nr };
}

/** Blocking of a gemm call with k steps: V blocks of vb indices, S blocks of sb rows (multiples of W and NR). */
export function gemmBlocks(k: number): { vb: number; sb: number } {
  const { W, NR } = gemmTile();
  const row = Math.max(1, k) * 4;
  return {
    vb: W * Math.max(1, Math.floor(GEMM_V_BLOCK_BYTES / (row * W))),
    sb: NR * Math.max(1, Math.floor(GEMM_S_BLOCK_BYTES / (row * NR))),
  };
}

/** Bytes of a packed V operand of `count` indices and k steps (panels of W, zero-padded). */
export function packedBytes(count: number, k: number): number {
  const { W } = gemmTile();
  return Math.ceil(count / W) * W * k * 4;
}

/**
 * C[s, v] for s < ns, v < nv with V packed (full k per panel) and S rows
 * contiguous in p: orientation N, in k blocks of GEMM_KC when k is large
 * (each block continues the partial sums in C, so the bits do not change).
 */
export function gemmNBlocked(
  ex: KernelExports,
  vPacked: number,
  nv: number,
  sRows: number,
  lds: number,
  ns: number,
  k: number,
  c: number,
  ldc: number,
  alpha: number,
): void {
  const { W } = gemmTile();
  const kc = k > 2 * GEMM_KC ? GEMM_KC : Math.max(k, 1);
  const { vb, sb } = gemmBlocks(kc);
  const panel = k * W * 4;
  if (k === 0) {
    ex.gemmN(vPacked, panel, W, nv, sRows, lds, ns, 0, c, ldc, alpha, vb, sb, 0, 1);
    return;
  }
  for (let p0 = 0; p0 < k; p0 += kc) {
    const kk = Math.min(kc, k - p0);
    const first = p0 === 0 ? 0 : 1,
      last = p0 + kk >= k ? 1 : 0;
    ex.gemmN(vPacked + p0 * W * 4, panel, W, nv, sRows + p0 * 4, lds, ns, kk, c, ldc, alpha, vb, sb, first, last);
  }
}

/** Bytes of the S operand streamed through wasm memory per chunk (a staged chunk stays in L2 for its product). */
const STREAM_CHUNK_BYTES = 1 << 20;

/**
 * Runs `body(sPtr, r0, rows)` over the rows of the S operand `src` ([count ×
 * k] row-major) in chunks: the resident copy if `src` is resident, else each
 * chunk is copied into a staging buffer right before its product reads it
 * (the operand never needs a full copy in wasm memory, and the chunk is still
 * in cache when it is read). Chunks are multiples of NR rows.
 */
/** Rows per chunk of streamRows for rows of k floats: a multiple of NR, about STREAM_CHUNK_BYTES. */
function chunkRowsFor(k: number): number {
  const { NR } = gemmTile();
  return Math.max(NR, Math.floor(STREAM_CHUNK_BYTES / (Math.max(1, k) * 4 * NR)) * NR);
}

function streamRows(
  t: Temps,
  src: Float32Array,
  count: number,
  k: number,
  body: (sPtr: number, r0: number, rows: number) => void,
): void {
  const chunk = chunkRowsFor(k);
  const res = residentPointer(src);
  const stage = res === null ? t.alloc(Math.min(chunk, count) * k * 4) : 0;
  for (let r0 = 0; r0 < count; r0 += chunk) {
    const rows = Math.min(chunk, count - r0);
    if (res !== null) {
      body(res + r0 * k * 4, r0, rows);
    } else {
      new Float32Array(t.buffer, stage, rows * k).set(src.subarray(r0 * k, (r0 + rows) * k));
      body(stage, r0, rows);
    }
  }
}

/**
 * C[m,n] = A[m,k] · B[n,k]ᵀ (row-major; k contiguous in both). The smaller
 * operand is packed into panels (the V operand), the other (S) is streamed
 * through wasm memory in row chunks and read in place (gemm.ts); each chunk's
 * block of C is copied out as it is done. The bits do not depend on the
 * orientation or the chunking (every output is the same sequential sum).
 */
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
  const ex = st.exports;
  const { W } = gemmTile();
  const t = new Temps(st);
  try {
    if (m <= n && k <= GEMM_T_MAX_K) {
      // V = A (packed), S = rows of B in chunks: C[:, j0 .. j0 + rows) in orientation T
      const pa = t.input(a);
      const pp = t.alloc(packedBytes(m, k));
      ex.packRows(pa, k, m, k, pp);
      const { vb, sb } = gemmBlocks(k);
      const pc = t.alloc(m * Math.min(n, chunkRowsFor(k)) * 4);
      streamRows(t, b, n, k, (sPtr, j0, rows) => {
        ex.gemmT(pp, k * W * 4, W, m, sPtr, k, rows, k, pc, rows, 1, vb, sb);
        const block = new Float32Array(t.buffer, pc, m * rows);
        for (let i = 0; i < m; i++) c.set(block.subarray(i * rows, (i + 1) * rows), i * n + j0);
      });
    } else {
      // V = B (packed), S = rows of A in chunks: C[i0 .. i0 + rows, :] in orientation N
      const pb = t.input(b);
      const pp = t.alloc(packedBytes(n, k));
      ex.packRows(pb, k, n, k, pp);
      streamC(t, ex, a, m, k, pp, n, c);
    }
  } finally {
    t.free();
  }
  return c;
}

/** C = S·V for V packed [k × nv] and S = rows of `a` streamed in chunks (orientation N, k blocks), copied out per chunk. */
function streamC(
  t: Temps,
  ex: KernelExports,
  a: Float32Array,
  m: number,
  k: number,
  vPacked: number,
  nv: number,
  c: Float32Array,
): void {
  const pc = t.alloc(Math.min(m, chunkRowsFor(k)) * nv * 4);
  streamRows(t, a, m, k, (sPtr, i0, rows) => {
    gemmNBlocked(ex, vPacked, nv, sPtr, k, rows, k, pc, nv, 1);
    c.set(new Float32Array(t.buffer, pc, rows * nv), i0 * nv);
  });
}

/** C[m,n] = A[m,k] · B[k,n]: B's columns packed into panels (V), A's rows streamed (S), orientation N. */
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
    const pb = t.input(b),
      pp = t.alloc(packedBytes(n, k));
    st.exports.packCols(pb, n, k, n, pp);
    streamC(t, st.exports, a, m, k, pp, n, c);
  } finally {
    t.free();
  }
  return c;
}

/** C[m,n] = A[k,m]ᵀ · B[k,n]: A transposed into wasm scratch (the S rows), then as matmulNNWasm. */
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
      pp = t.alloc(packedBytes(n, k)),
      pc = t.alloc(m * n * 4);
    st.exports.transpose(pa, pat, k, m);
    st.exports.packCols(pb, n, k, n, pp);
    gemmNBlocked(st.exports, pp, n, pat, k, m, k, pc, n, 1);
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
