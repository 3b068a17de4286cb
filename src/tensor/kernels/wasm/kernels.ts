/**
 * The generic WebAssembly SIMD kernels, generated from TypeScript: the
 * matrix product (gemm.ts), transpose, exp and log over arrays.
 *
 * `buildKernelModule()` returns the bytes of one module that imports a single
 * linear memory (`env.memory`, growable) and exports the functions listed in
 * `KernelExports`. All pointers are byte offsets into that memory; leading
 * dimensions (`lda`, ...) are in elements. The JS side (index.ts) owns the
 * memory and its allocator.
 *
 * Extending. The module is assembled from `GENERIC_KERNELS`, a list of
 * builders that each add their functions: a new generic kernel is a new
 * builder (in its own file if it is large) appended to that list, with its
 * signature added to `KernelExports`. Kernels that belong to a layer above
 * tensor/ (the cache scan's, src/scan/wasmKernels.ts) are NOT added here:
 * they form a second module that shares this module's memory and allocator
 * (index.ts, `defineWasmExtension`) and reuses the emit helpers exported
 * below (ConstPool, the exp/log emitters, horizontal max/sum).
 *
 * Floating point: wasm arithmetic is IEEE binary32 with round-to-nearest-even
 * and no fused multiply-add, so every kernel's result is a deterministic
 * function of its inputs, reproducible bit for bit by TypeScript with
 * Math.fround after each operation (f32math.ts mirrors the log; the scan's
 * Gumbel noise relies on it).
 *
 * Over-reads: a gemm tile whose V panel is read unpacked (a row-major
 * operand with a leading dimension) loads whole W-wide vectors, so it may
 * READ up to 4·W - 4 bytes past the last valid column (never write). The
 * allocator in index.ts keeps SLACK bytes after every allocation, so such
 * reads stay inside the memory. (exp/log tails use a one-element splat load.)
 *
 * Constants: the hot loops load their vector constants from a constant pool
 * (an active data segment at a fixed address below the allocator's heap)
 * instead of v128.const; see ConstPool.
 */
import { LOGF_CONST } from '../f32math.js';
import { FunctionBuilder, ModuleBuilder, type Local } from './emitter.js';
import { DEFAULT_GEMM_CONFIG, addGemm, type GemmConfig, type GemmExports } from './gemm.js';

/** The functions exported by the module (all pointers are byte offsets): the gemm (gemm.ts) and these. */
export interface KernelExports extends GemmExports {
  /** dst[cols, rows] = src[rows, cols]ᵀ (dense). */
  transpose(src: number, dst: number, rows: number, cols: number): void;
  /** dst[i] = exp(src[i]) for i < len (dst may equal src). */
  expArray(src: number, dst: number, len: number): void;
  /** dst[i] = log(src[i]) for i < len (dst may equal src). */
  logArray(src: number, dst: number, len: number): void;
}

// ---------------------------------------------------------------------------
// transpose
// ---------------------------------------------------------------------------

/** dst[c, r] = src[r, c], in 16×16 blocks so both sides stay in cache. */
function buildTranspose(): FunctionBuilder {
  const fn = new FunctionBuilder('transpose', ['i32', 'i32', 'i32', 'i32']);
  const [src, dst, rows, cols] = [0, 1, 2, 3].map((i) => fn.param(i)) as [Local, Local, Local, Local];
  const rb = fn.local('i32'),
    cb = fn.local('i32'),
    r = fn.local('i32'),
    c = fn.local('i32');
  const rEnd = fn.local('i32'),
    cEnd = fn.local('i32');
  const B = 16;
  fn.forLoop(
    rb,
    () => fn.i32Const(0),
    () => fn.get(rows),
    B,
    () => {
      fn.get(rb).i32Const(B).i32Add().tee(rEnd).get(rows).i32GtS();
      fn.if(() => {
        fn.get(rows).set(rEnd);
      });
      fn.forLoop(
        cb,
        () => fn.i32Const(0),
        () => fn.get(cols),
        B,
        () => {
          fn.get(cb).i32Const(B).i32Add().tee(cEnd).get(cols).i32GtS();
          fn.if(() => {
            fn.get(cols).set(cEnd);
          });
          fn.forLoop(
            r,
            () => fn.get(rb),
            () => fn.get(rEnd),
            1,
            () => {
              fn.forLoop(
                c,
                () => fn.get(cb),
                () => fn.get(cEnd),
                1,
                () => {
                  // dst + (c*rows + r)*4  <-  src + (r*cols + c)*4
                  fn.get(dst).get(c).get(rows).i32Mul().get(r).i32Add().i32Const(4).i32Mul().i32Add();
                  fn.get(src).get(r).get(cols).i32Mul().get(c).i32Add().i32Const(4).i32Mul().i32Add().f32Load();
                  fn.f32Store();
                },
              );
            },
          );
        },
      );
    },
  );
  return fn;
}

// ---------------------------------------------------------------------------
// Vector constants
// ---------------------------------------------------------------------------

/**
 * Bytes of one constant pool. The bottom of the memory holds CONST_POOL_SLOTS
 * pools (active data segments written at instantiation): slot 0 is the
 * generic module's (at address 0), slots 1.. belong to the extension modules
 * (index.ts, `defineWasmExtension`). The allocator starts above them
 * (RESERVED_BYTES) and never hands them out.
 */
export const CONST_POOL_BYTES = 1024;
/** Pool slots: the generic module and up to three extension modules. */
export const CONST_POOL_SLOTS = 4;
/** Bytes below the allocator's heap. */
export const RESERVED_BYTES = CONST_POOL_BYTES * CONST_POOL_SLOTS;

/** How a kernel obtains a splatted vector constant. */
export interface VecConsts {
  f32(fn: FunctionBuilder, v: number): void;
  i32(fn: FunctionBuilder, v: number): void;
}

/** v128.const in the code. */
export const INLINE_CONSTS: VecConsts = {
  f32: (fn, v) => {
    fn.v128ConstF32(v);
  },
  i32: (fn, v) => {
    fn.v128ConstI32(v);
  },
};

/**
 * Constants loaded from memory (`i32.const 0; v128.load offset=base+k`), the
 * pool's bytes placed at address `base` by the module's data segment.
 * TurboFan (V8 11.3) re-materialises a v128.const at its use inside a nested
 * loop (a 64-bit immediate move, vmovq and vpunpcklqdq: seen with
 * --print-wasm-code), while a load from a fixed address is one µop that can
 * fold into the arithmetic. Measured (best of 4, 8.4M elements): the Gumbel
 * hash screen 6.9 -> 6.3 ms; the exp loops of rowStats unchanged (9.7 ms).
 */
export class ConstPool implements VecConsts {
  /** `base`: the pool's address (a multiple of 16 in the reserved area). */
  constructor(readonly base = 0) {
    if (!Number.isInteger(base) || base < 0 || base % 16 !== 0 || base + CONST_POOL_BYTES > RESERVED_BYTES)
      throw new RangeError(`ConstPool: base ${base} is not a 16-aligned slot below ${RESERVED_BYTES}`);
  }
  private readonly view = new DataView(new ArrayBuffer(CONST_POOL_BYTES));
  private readonly cast = new DataView(new ArrayBuffer(4));
  private used = 0;
  private readonly offsets = new Map<number, number>();

  f32(fn: FunctionBuilder, v: number): void {
    this.cast.setFloat32(0, v, true);
    this.i32(fn, this.cast.getInt32(0, true));
  }
  i32(fn: FunctionBuilder, v: number): void {
    const bits = v | 0;
    let off = this.offsets.get(bits);
    if (off === undefined) {
      off = this.used;
      if (off + 16 > CONST_POOL_BYTES) throw new RangeError('ConstPool: full');
      for (let l = 0; l < 4; l++) this.view.setInt32(off + 4 * l, bits, true);
      this.offsets.set(bits, off);
      this.used = off + 16;
    }
    fn.i32Const(0).v128Load(this.base + off);
  }
  /** The pool's bytes (to be placed at address `base`). */
  bytes(): Uint8Array {
    return new Uint8Array(this.view.buffer.slice(0, this.used));
  }
}

// ---------------------------------------------------------------------------
// exp / log on f32x4
// ---------------------------------------------------------------------------

/**
 * Constants of the vector exp (Cephes expf): exp(x) = 2^n · exp(r) with
 * n = nearest(x·log2 e), r = x - n·ln2 computed in two parts (C1 has few
 * significant bits so n·C1 is exact), exp(r) ≈ 1 + r + r²·P(r) on
 * |r| <= ln2/2.
 */
export const EXP_CONST = {
  hi: 88.8, // above: +Inf (exp(88.73) overflows binary32)
  lo: -104, // below: 0 (exp(-103.98) is below half the smallest subnormal)
  log2e: 1.44269504088896341,
  c1: 0.693359375,
  c2: -2.1219444e-4,
  p: [1.98756915e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1],
} as const;

/**
 * Emits exp of the f32x4 on top of the stack, leaving the result. `t` are
 * scratch locals (v128 x, n-as-f32, r, y; i32x4 n).
 *
 *   x = pmin(pmax(x, lo), hi)            (pmax(a,b) = a < b ? b : a: one maxps; NaN stays NaN)
 *   v = x·log2e + 1.5·2^23               (float add rounds v to an integer, ties to even:
 *   n = v - 1.5·2^23 as float,            the same n as nearest(x·log2e), |n| <= 151)
 *       bits(v) - bits(1.5·2^23) as int
 *   r = (x - n·c1) - n·c2
 *   y = ((((p0 r + p1) r + p2) r + p3) r + p4) r + p5;  y = y·r² + r + 1
 *   result = y · 2^(n - n>>1) · 2^(n>>1)  (two exponent-field scalings, so the
 *            subnormal range and overflow to +Inf come out right)
 * (f32x4.min/max/nearest/trunc_sat would cost 5-8 x86 instructions each.)
 */
export function emitExpF32x4(
  fn: FunctionBuilder,
  t: { x: Local; nf: Local; r: Local; y: Local; ni: Local },
  K: VecConsts = INLINE_CONSTS,
): void {
  const C = EXP_CONST;
  const MAGIC = 12582912; // 1.5 * 2^23
  fn.vconstF32(K, C.lo).f32x4Pmax().vconstF32(K, C.hi).f32x4Pmin().tee(t.x);
  fn.vconstF32(K, C.log2e).f32x4Mul().vconstF32(K, MAGIC).f32x4Add().tee(t.nf);
  fn.vconstF32(K, MAGIC).i32x4Sub().set(t.ni);
  fn.get(t.nf).vconstF32(K, MAGIC).f32x4Sub().set(t.nf);
  // r = (x - n*c1) - n*c2
  fn.get(t.x).get(t.nf).vconstF32(K, C.c1).f32x4Mul().f32x4Sub();
  fn.get(t.nf).vconstF32(K, C.c2).f32x4Mul().f32x4Sub().set(t.r);
  // Horner
  fn.vconstF32(K, C.p[0]).get(t.r).f32x4Mul();
  for (let q = 1; q < C.p.length; q++) {
    fn.vconstF32(K, C.p[q]!).f32x4Add();
    if (q < C.p.length - 1) fn.get(t.r).f32x4Mul();
  }
  // y*r*r + r + 1
  fn.get(t.r).f32x4Mul().get(t.r).f32x4Mul().get(t.r).f32x4Add().vconstF32(K, 1).f32x4Add();
  // * 2^(n - (n >> 1)): exponent field ((n - n>>1) + 127) << 23
  fn.get(t.ni)
    .get(t.ni)
    .i32Const(1)
    .i32x4ShrS()
    .i32x4Sub()
    .vconstI32(K, 127)
    .i32x4Add()
    .i32Const(23)
    .i32x4Shl()
    .f32x4Mul();
  // * 2^(n >> 1)
  fn.get(t.ni).i32Const(1).i32x4ShrS().vconstI32(K, 127).i32x4Add().i32Const(23).i32x4Shl().f32x4Mul();
}

/** Constants of the vector log: the Cephes logf polynomial, mirrored by `logf32` (f32math.ts). */
const LOG_CONST = LOGF_CONST;

/**
 * Emits log of the f32x4 on top of the stack (positive normal inputs; the
 * special values are patched by `emitLogSpecials`). Scratch locals:
 * x, e (i32x4), f, z, y.
 *
 *   bits = x; e = (bits >> 23) - 126; m = (bits & 0x7fffff) | 0x3f000000   (m in [0.5, 1))
 *   if m < √½: e -= 1, f = 2m - 1  else f = m - 1       (m·2 - 1 = m + m - 1)
 *   z = f²;  y = f·z·P(f) + e·q1 - z/2;  log = f + y + e·q2
 */
export function emitLogF32x4(
  fn: FunctionBuilder,
  t: { x: Local; e: Local; f: Local; z: Local; y: Local; mask: Local },
  K: VecConsts = INLINE_CONSTS,
): void {
  const C = LOG_CONST;
  fn.tee(t.x);
  fn.i32Const(23).i32x4ShrS().vconstI32(K, 126).i32x4Sub().set(t.e);
  // m in [0.5, 1)
  fn.get(t.x).vconstI32(K, 0x007fffff).v128And().vconstI32(K, 0x3f000000).v128Or().set(t.f);
  // mask = m < sqrt(1/2) (all ones where true)
  fn.get(t.f).vconstF32(K, C.sqrtHalf).f32x4Lt().set(t.mask);
  // e += mask (mask is -1 where true)
  fn.get(t.e).get(t.mask).i32x4Add().set(t.e);
  // f = (m - 1) + (mask ? m : 0)
  fn.get(t.f).vconstF32(K, 1).f32x4Sub().get(t.f).get(t.mask).v128And().f32x4Add().set(t.f);
  fn.get(t.f).get(t.f).f32x4Mul().set(t.z);
  // P(f) by Horner
  fn.vconstF32(K, C.p[0]).get(t.f).f32x4Mul();
  for (let q = 1; q < C.p.length; q++) {
    fn.vconstF32(K, C.p[q]!).f32x4Add();
    if (q < C.p.length - 1) fn.get(t.f).f32x4Mul();
  }
  // y = P * f * z
  fn.get(t.f).f32x4Mul().get(t.z).f32x4Mul();
  // ef = float(e)
  fn.get(t.e).f32x4ConvertI32x4S().set(t.e);
  // y += e*q1; y -= z/2
  fn.get(t.e).vconstF32(K, C.q1).f32x4Mul().f32x4Add();
  fn.get(t.z).vconstF32(K, 0.5).f32x4Mul().f32x4Sub().set(t.y);
  // result = f + y + e*q2
  fn.get(t.f).get(t.y).f32x4Add().get(t.e).vconstF32(K, C.q2).f32x4Mul().f32x4Add();
}

/**
 * General log on f32x4: subnormal inputs are scaled by 2^23 first (and
 * 23·ln2 subtracted after); then the special values are patched:
 * x = 0 -> -Inf, x < 0 -> NaN, x = +Inf -> +Inf, NaN -> NaN.
 */
export function emitLogGeneral(
  fn: FunctionBuilder,
  t: { in: Local; x: Local; e: Local; f: Local; z: Local; y: Local; mask: Local; sub: Local },
  K: VecConsts = INLINE_CONSTS,
): void {
  fn.set(t.in);
  // sub = in < 2^-126 (as a mask); scaled = sub ? in * 2^23 : in
  fn.get(t.in)
    .vconstF32(K, 2 ** -126)
    .f32x4Lt()
    .set(t.sub);
  fn.get(t.in)
    .vconstF32(K, 2 ** 23)
    .f32x4Mul()
    .get(t.in)
    .get(t.sub)
    .v128Bitselect();
  emitLogF32x4(fn, t, K);
  // minus 23*ln2 where scaled
  fn.vconstF32(K, -23 * Math.LN2)
    .get(t.sub)
    .v128And()
    .f32x4Add();
  // bitselect(a, b, m) keeps a where m is set: so each patch keeps the result where the special case does NOT hold.
  // x == 0 -> -Inf
  fn.vconstF32(K, -Infinity).get(t.in).vconstF32(K, 0).f32x4Ne().v128Bitselect();
  // x == +Inf -> +Inf
  fn.vconstF32(K, Infinity).get(t.in).vconstF32(K, Infinity).f32x4Ne().v128Bitselect();
  // x < 0 or NaN -> NaN  (keep where x >= 0)
  fn.vconstF32(K, NaN).get(t.in).vconstF32(K, 0).f32x4Ge().v128Bitselect();
}

/** Elementwise map over a float array with a vector body; the ragged tail uses a splat (same code, same bits). */
export function buildMapArray(name: string, body: (fn: FunctionBuilder) => void): FunctionBuilder {
  const fn = new FunctionBuilder(name, ['i32', 'i32', 'i32']);
  const [src, dst, len] = [0, 1, 2].map((i) => fn.param(i)) as [Local, Local, Local];
  const i = fn.local('i32');
  const end4 = fn.local('i32');
  fn.get(len).i32Const(-4).i32And().set(end4);
  fn.forLoop(
    i,
    () => fn.i32Const(0),
    () => fn.get(end4),
    4,
    () => {
      fn.get(dst).get(i).i32Const(4).i32Mul().i32Add();
      fn.get(src).get(i).i32Const(4).i32Mul().i32Add().v128Load();
      body(fn);
      fn.v128Store();
    },
  );
  fn.forLoop(
    i,
    () => fn.get(end4),
    () => fn.get(len),
    1,
    () => {
      fn.get(dst).get(i).i32Const(4).i32Mul().i32Add();
      fn.get(src).get(i).i32Const(4).i32Mul().i32Add().v128Load32Splat();
      body(fn);
      fn.f32x4ExtractLane(0).f32Store();
    },
  );
  return fn;
}

export function expLocals(fn: FunctionBuilder): { x: Local; nf: Local; r: Local; y: Local; ni: Local } {
  return { x: fn.local('v128'), nf: fn.local('v128'), r: fn.local('v128'), y: fn.local('v128'), ni: fn.local('v128') };
}
export function logLocals(fn: FunctionBuilder): { x: Local; e: Local; f: Local; z: Local; y: Local; mask: Local } {
  return {
    x: fn.local('v128'),
    e: fn.local('v128'),
    f: fn.local('v128'),
    z: fn.local('v128'),
    y: fn.local('v128'),
    mask: fn.local('v128'),
  };
}

/** Horizontal max of the f32x4 in `v` (pmax: NaN handling unspecified), leaving an f32. */
export function emitHMax(fn: FunctionBuilder, v: Local): void {
  fn.get(v).get(v).get(v).i32x4Shuffle([2, 3, 0, 1]).f32x4Pmax().set(v);
  fn.get(v).get(v).get(v).i32x4Shuffle([1, 0, 3, 2]).f32x4Pmax().f32x4ExtractLane(0);
}
/** Horizontal sum of the f32x4 in `v` (lane order ((0+2)+(1+3))), leaving an f32. */
export function emitHSum(fn: FunctionBuilder, v: Local): void {
  fn.get(v).get(v).get(v).i32x4Shuffle([2, 3, 0, 1]).f32x4Add().set(v);
  fn.get(v).get(v).get(v).i32x4Shuffle([1, 0, 3, 2]).f32x4Add().f32x4ExtractLane(0);
}

// ---------------------------------------------------------------------------
// Module
// ---------------------------------------------------------------------------

/** Adds functions to the generic module; `K` is the module's constant pool, `cfg` the gemm tile. */
export type KernelBuilder = (mod: ModuleBuilder, K: ConstPool, cfg: GemmConfig) => void;

function addMatmul(mod: ModuleBuilder, _K: ConstPool, cfg: GemmConfig): void {
  addGemm(mod, cfg);
}

function addTranspose(mod: ModuleBuilder): void {
  mod.add(buildTranspose());
}

function addExpLog(mod: ModuleBuilder, K: ConstPool): void {
  mod.add(buildMapArray('expArray', (fn) => emitExpF32x4(fn, expLocals(fn), K)));
  mod.add(
    buildMapArray('logArray', (fn) => {
      const L = logLocals(fn);
      emitLogGeneral(fn, { in: fn.local('v128'), sub: fn.local('v128'), ...L }, K);
    }),
  );
}

/** The builders of the generic module, in function-index order. */
export const GENERIC_KERNELS: readonly KernelBuilder[] = [addMatmul, addTranspose, addExpLog];

/** Builds the generic kernel module. Deterministic: the same config gives the same bytes. */
export function buildKernelModule(cfg: GemmConfig = DEFAULT_GEMM_CONFIG): Uint8Array {
  const mod = new ModuleBuilder().importMemory('env', 'memory', 1);
  const K = new ConstPool(0);
  for (const add of GENERIC_KERNELS) add(mod, K, cfg);
  mod.data(K.base, K.bytes());
  return mod.emit();
}
