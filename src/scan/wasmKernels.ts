/**
 * The cache scan's WebAssembly SIMD kernels, generated from TypeScript: the
 * per-block steps of the streaming scan (row statistics, column masks, the
 * screened Gumbel-max pass, group maxima) and the counter-based noise.
 *
 * Design. These kernels live above tensor/ (they implement the scan's
 * contract, src/scan/contract.ts, and its noise, noise.ts), so they cannot
 * be part of the generic kernel module (src/tensor/kernels/wasm/kernels.ts),
 * which must not import src/scan/. They form a SECOND module: it imports the
 * same linear memory (`env.memory`) as the generic module, so both work on
 * the same buffers with one allocator, and the scan's score blocks computed
 * by the generic matmul are read in place. The runtime
 * (src/tensor/kernels/wasm/index.ts, `defineWasmExtension`) compiles and
 * instantiates it next to the generic module (in `initWasm()` too, so a
 * browser main thread gets both with one await) and gives it its own
 * constant-pool slot in the reserved bottom of the memory. The emit helpers
 * (ConstPool, the exp/log polynomials, horizontal max/sum) are the generic
 * module's exported ones, so both modules compute exp and log identically.
 *
 * Floating point: IEEE binary32, round-to-nearest-even, no fused multiply-add;
 * every result is reproducible bit for bit by TypeScript with Math.fround
 * after each operation (noise.ts does so for the Gumbel noise).
 *
 * Reads: the block kernels read whole vectors of their padded score rows
 * (stride `ld` a multiple of 4; the caller pads columns >= cols with -Inf).
 */
import { NOISE_CONST } from './noise.js';
import { FunctionBuilder, ModuleBuilder, type Local } from '../tensor/kernels/wasm/emitter.js';
import {
  ConstPool,
  EXP_CONST,
  emitHMax,
  emitHSum,
  emitLogF32x4,
  expLocals,
  logLocals,
  type VecConsts,
} from '../tensor/kernels/wasm/kernels.js';

/** The functions exported by the scan module (all pointers are byte offsets). */
export interface ScanKernelExports {
  /** Hash bits uniformAt(k0, k1, i, j) for j in [j0, j0 + len) into dst (u32). */
  noiseBits(dst: number, k0: number, k1: number, i: number, j0: number, len: number): void;
  /** Gumbel noise gumbelAt(k0, k1, i, j) for j in [j0, j0 + len) into dst (f32). */
  gumbelRow(dst: number, k0: number, k1: number, i: number, j0: number, len: number): void;
  /**
   * Per-row statistics of a score block S[rows, ld]: for each row r,
   * max[r] = max_j S[r,j] and sum[r] = Σ_j exp(S[r,j] - max[r]) over j < cols
   * (sum = 0 when max = -Inf). If `expOut` is non-zero, exp(S - max) is also
   * written to expOut[rows, ld]. exp is the scan's (emitExpNonPositive):
   * exactly 0 where S - max < SCAN_EXP_FLUSH.
   */
  rowStats(s: number, rows: number, cols: number, ld: number, maxOut: number, sumOut: number, expOut: number): void;
  /** S[r, j] = -Inf where the i32 mask[j] is 0, for r < rows, j < cols. */
  maskColumns(s: number, rows: number, cols: number, ld: number, mask: number): void;
  /**
   * The Gumbel-max pass over a score block (see contract.ts):
   * for rows r < rows (query q0 + r) and columns j < cols (cache row j0 + j),
   * key = S[r,j] + gumbelAt(k0, k1, q0 + r, j0 + j); where key > bestKey[r],
   * update bestKey/bestIdx/bestScore. Noise is only evaluated for vectors with
   * some lane whose hash bits are <= thr[r] (u32), a conservative screen
   * computed by the caller.
   */
  gumbelScan(
    s: number,
    rows: number,
    cols: number,
    ld: number,
    q0: number,
    j0: number,
    k0: number,
    k1: number,
    thr: number,
    bestKey: number,
    bestIdx: number,
    bestScore: number,
  ): void;
  /**
   * Group maxima: for rows r < rows, columns j < cols (cache row j0 + j,
   * group g = floor((j0 + j) / groupSize) - g0), where S[r,j] > gMax[r*kg + g],
   * set gMax and gArg = j0 + j (strict >, so the first index wins ties).
   */
  groupScan(
    s: number,
    rows: number,
    cols: number,
    ld: number,
    j0: number,
    groupSize: number,
    g0: number,
    kg: number,
    gMax: number,
    gArg: number,
  ): void;
  /**
   * The softmax-mean fold: for rows r < rows, acc[r, :] = old[r]·acc[r, :] +
   * new[r]·prod[r, :] over d columns (row strides d), the second term
   * skipped when new[r] = 0 (so a stale prod row, e.g. of a block without
   * candidates, is never read). old/new are f32 arrays.
   */
  meanFold(acc: number, prod: number, rows: number, d: number, oldScale: number, newScale: number): void;
}

// ---------------------------------------------------------------------------
// Counter-based noise (mirrors noise.ts bit for bit)
// ---------------------------------------------------------------------------

/** Scalar fmix32 of the i32 on the stack: h ^= h>>>16; h *= A; h ^= h>>>13; h *= B; h ^= h>>>16. */
function emitFmixI32(fn: FunctionBuilder, h: Local): void {
  fn.tee(h).get(h).i32Const(16).i32ShrU().i32Xor().i32Const(NOISE_CONST.fmixA).i32Mul().tee(h);
  fn.get(h).i32Const(13).i32ShrU().i32Xor().i32Const(NOISE_CONST.fmixB).i32Mul().tee(h);
  fn.get(h).i32Const(16).i32ShrU().i32Xor();
}
/** fmix32 on each i32x4 lane. */
function emitFmixI32x4(fn: FunctionBuilder, h: Local, K: VecConsts): void {
  fn.tee(h).get(h).i32Const(16).i32x4ShrU().v128Xor().vconstI32(K, NOISE_CONST.fmixA).i32x4Mul().tee(h);
  fn.get(h).i32Const(13).i32x4ShrU().v128Xor().vconstI32(K, NOISE_CONST.fmixB).i32x4Mul().tee(h);
  fn.get(h).i32Const(16).i32x4ShrU().v128Xor();
}

/** Per-query seeds: r1 = fmix(i·rowMul ^ k0), r2 = fmix(r1 + k1). */
function emitRowSeeds(fn: FunctionBuilder, i: Local, k0: Local, k1: Local, r1: Local, r2: Local, h: Local): void {
  fn.get(i).i32Const(NOISE_CONST.rowMul).i32Mul().get(k0).i32Xor();
  emitFmixI32(fn, h);
  fn.set(r1);
  fn.get(r1).get(k1).i32Add();
  emitFmixI32(fn, h);
  fn.set(r2);
}

/** Bits for the 4 columns in the i32x4 `jv`: fmix(fmix(j·colMul ^ r1) + r2). Leaves an i32x4. */
function emitNoiseBitsX4(fn: FunctionBuilder, jv: Local, r1v: Local, r2v: Local, h: Local, K: VecConsts): void {
  fn.get(jv).vconstI32(K, NOISE_CONST.colMul).i32x4Mul().get(r1v).v128Xor();
  emitFmixI32x4(fn, h, K);
  fn.get(r2v).i32x4Add();
  emitFmixI32x4(fn, h, K);
}

/**
 * Gumbel noise from the u32 bits on the stack (see noise.ts, `gumbelFromBits`):
 *   w = f32(f32(bits) + 0.5) · 2^-32
 *   if w < 0.5:  t = 1 - w, c = ((t - 1) + w) / t      (log t - c = log1p(-w))
 *   else:        t = f32(f32(~bits) + 0.5) · 2^-32, c = 0   (1 - w straight from the integer)
 *   E = -(log t - c);  G = -log E
 * (branch-free: both sides computed, selected with the w < 0.5 lane mask).
 */
function emitGumbelFromBits(
  fn: FunctionBuilder,
  L: { bits: Local; w: Local; t: Local; mask: Local; lg: ReturnType<typeof logLocals> },
  K: VecConsts,
): void {
  fn.tee(L.bits)
    .f32x4ConvertI32x4U()
    .vconstF32(K, 0.5)
    .f32x4Add()
    .vconstF32(K, 2 ** -32)
    .f32x4Mul()
    .tee(L.w);
  fn.vconstF32(K, 0.5).f32x4Lt().set(L.mask);
  // t = mask ? 1 - w : f32(~bits) + 0.5) * 2^-32
  fn.vconstF32(K, 1).get(L.w).f32x4Sub();
  fn.get(L.bits)
    .v128Not()
    .f32x4ConvertI32x4U()
    .vconstF32(K, 0.5)
    .f32x4Add()
    .vconstF32(K, 2 ** -32)
    .f32x4Mul();
  fn.get(L.mask).v128Bitselect().tee(L.t);
  emitLogF32x4(fn, L.lg, K);
  // - (mask ? ((t - 1) + w) / t : 0)
  fn.get(L.t).vconstF32(K, 1).f32x4Sub().get(L.w).f32x4Add().get(L.t).f32x4Div().get(L.mask).v128And().f32x4Sub();
  fn.f32x4Neg();
  emitLogF32x4(fn, L.lg, K);
  fn.f32x4Neg();
}

function noiseLocals(fn: FunctionBuilder) {
  return {
    r1: fn.local('i32'),
    r2: fn.local('i32'),
    h: fn.local('i32'),
    r1v: fn.local('v128'),
    r2v: fn.local('v128'),
    hv: fn.local('v128'),
    jv: fn.local('v128'),
  };
}

function buildNoiseRow(name: 'noiseBits' | 'gumbelRow', K: VecConsts): FunctionBuilder {
  const fn = new FunctionBuilder(name, ['i32', 'i32', 'i32', 'i32', 'i32', 'i32']);
  const [dst, k0, k1, i, j0, len] = [0, 1, 2, 3, 4, 5].map((q) => fn.param(q)) as [
    Local,
    Local,
    Local,
    Local,
    Local,
    Local,
  ];
  const N = noiseLocals(fn);
  const G = {
    bits: fn.local('v128'),
    w: fn.local('v128'),
    t: fn.local('v128'),
    mask: fn.local('v128'),
    lg: logLocals(fn),
  };
  const p = fn.local('i32');
  const tmp = fn.local('v128');
  emitRowSeeds(fn, i, k0, k1, N.r1, N.r2, N.h);
  fn.get(N.r1).i32x4Splat().set(N.r1v);
  fn.get(N.r2).i32x4Splat().set(N.r2v);
  // jv = j0 + [0,1,2,3]
  fn.get(j0).i32x4Splat().v128ConstI32(0, 1, 2, 3).i32x4Add().set(N.jv);
  fn.forLoop(
    p,
    () => fn.i32Const(0),
    () => fn.get(len),
    4,
    () => {
      emitNoiseBitsX4(fn, N.jv, N.r1v, N.r2v, N.hv, K);
      if (name === 'gumbelRow') emitGumbelFromBits(fn, G, K);
      fn.set(tmp);
      // store up to 4 lanes
      for (let l = 0; l < 4; l++) {
        fn.get(p).i32Const(l).i32Add().get(len).i32LtS();
        fn.if(() => {
          fn.get(dst).get(p).i32Const(l).i32Add().i32Const(4).i32Mul().i32Add();
          fn.get(tmp).i32x4ExtractLane(l).i32Store();
        });
      }
      fn.get(N.jv).v128ConstI32(4).i32x4Add().set(N.jv);
    },
  );
  return fn;
}

// ---------------------------------------------------------------------------
// Block kernels
// ---------------------------------------------------------------------------

/** Below this, exp(x) is under the smallest normal float (e^-87.3365 = 2^-126) and the scan's exp gives 0. */
export const SCAN_EXP_FLUSH = -87.33654;

/**
 * exp(x) for x <= 0 (x = score - row max), leaving the f32x4 result: the
 * Cephes expf of the generic kernels (EXP_CONST: the same reduction and
 * polynomial, so the same values on normal results) without the parts a
 * non-positive argument does not need: no clamp at +88.7, and one exponent
 * scaling 2^n instead of two (n >= -126 on the kept range). Lanes with
 * x < SCAN_EXP_FLUSH (where the result would be subnormal or 0: at most
 * 2^-126 each, nothing next to the row max's exp(0) = 1), -Infinity
 * included, give exactly 0 — an excluded row's weight is 0, never tiny.
 * 27 vector operations instead of 36.
 */
function emitExpNonPositive(
  fn: FunctionBuilder,
  t: { x: Local; nf: Local; r: Local; y: Local; ni: Local },
  K: VecConsts,
): void {
  const C = EXP_CONST;
  const MAGIC = 12582912; // 1.5 * 2^23: adding it rounds to an integer (ties to even)
  fn.tee(t.x);
  fn.vconstF32(K, C.log2e).f32x4Mul().vconstF32(K, MAGIC).f32x4Add().tee(t.nf);
  fn.vconstF32(K, MAGIC).i32x4Sub().set(t.ni);
  fn.get(t.nf).vconstF32(K, MAGIC).f32x4Sub().set(t.nf);
  // r = (x - n*c1) - n*c2
  fn.get(t.x).get(t.nf).vconstF32(K, C.c1).f32x4Mul().f32x4Sub();
  fn.get(t.nf).vconstF32(K, C.c2).f32x4Mul().f32x4Sub().set(t.r);
  fn.vconstF32(K, C.p[0]).get(t.r).f32x4Mul();
  for (let q = 1; q < C.p.length; q++) {
    fn.vconstF32(K, C.p[q]!).f32x4Add();
    if (q < C.p.length - 1) fn.get(t.r).f32x4Mul();
  }
  fn.get(t.r).f32x4Mul().get(t.r).f32x4Mul().get(t.r).f32x4Add().vconstF32(K, 1).f32x4Add();
  // · 2^n: exponent field (n + 127) << 23
  fn.get(t.ni).vconstI32(K, 127).i32x4Add().i32Const(23).i32x4Shl().f32x4Mul();
  // flush x < SCAN_EXP_FLUSH (incl. -Inf) to +0: result & ~(x < flush)
  fn.get(t.x).vconstF32(K, SCAN_EXP_FLUSH).f32x4Lt().v128AndNot();
}

/**
 * rowStats(s, rows, cols, ld, maxOut, sumOut, expOut). Columns are read in
 * whole vectors up to cols rounded up to 4; the caller pads lanes j >= cols
 * with -Inf (they then add exp(-Inf) = 0 and do not change the max). Two
 * passes per row: a vector max (two accumulators, pmax = one maxps), then
 * Σ exp(s - max), storing exp(s - max) to expOut too when expOut != 0 (the
 * test is outside the loop: two loop bodies).
 */
function buildRowStats(K: VecConsts): FunctionBuilder {
  const fn = new FunctionBuilder('rowStats', ['i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32']);
  const [s, rows, cols, ld, maxOut, sumOut, expOut] = [0, 1, 2, 3, 4, 5, 6].map((q) => fn.param(q)) as Local[] as [
    Local,
    Local,
    Local,
    Local,
    Local,
    Local,
    Local,
  ];
  const r = fn.local('i32'),
    p = fn.local('i32'),
    row = fn.local('i32'),
    eRow = fn.local('i32'),
    end = fn.local('i32');
  const m0 = fn.local('v128'),
    m1 = fn.local('v128'),
    mv = fn.local('v128'),
    s0 = fn.local('v128');
  const mx = fn.local('f32');
  const e = expLocals(fn);
  const ev = fn.local('v128');
  fn.forLoop(
    r,
    () => fn.i32Const(0),
    () => fn.get(rows),
    1,
    () => {
      fn.get(s).get(r).get(ld).i32Mul().i32Const(4).i32Mul().i32Add().set(row);
      fn.get(expOut).get(r).get(ld).i32Mul().i32Const(4).i32Mul().i32Add().set(eRow);
      fn.get(row).get(cols).i32Const(3).i32Add().i32Const(-4).i32And().i32Const(4).i32Mul().i32Add().set(end);
      // max: pairs of vectors, then one more if needed
      fn.v128ConstF32(-Infinity).set(m0);
      fn.v128ConstF32(-Infinity).set(m1);
      fn.get(row).set(p);
      fn.block((exit) =>
        fn.loop((top) => {
          fn.get(p).i32Const(32).i32Add().get(end).i32GtU().brIf(exit);
          fn.get(m0).get(p).v128Load(0).f32x4Pmax().set(m0);
          fn.get(m1).get(p).v128Load(16).f32x4Pmax().set(m1);
          fn.get(p).i32Const(32).i32Add().set(p);
          fn.br(top);
        }),
      );
      fn.get(p).get(end).i32LtU();
      fn.if(() => {
        fn.get(m0).get(p).v128Load(0).f32x4Pmax().set(m0);
      });
      fn.get(m0).get(m1).f32x4Pmax().set(m0);
      emitHMax(fn, m0);
      fn.set(mx);
      fn.get(maxOut).get(r).i32Const(4).i32Mul().i32Add().get(mx).f32Store();
      // sum of exp(s - max); 0 if max = -Inf
      fn.v128ConstI32(0).set(s0);
      fn.get(mx).f32Const(-Infinity).f32Ne();
      fn.if(() => {
        fn.get(mx).f32x4Splat().set(mv);
        fn.get(row).set(p);
        const body = (store: boolean): void => {
          fn.block((exit) =>
            fn.loop((top) => {
              fn.get(p).get(end).i32GeU().brIf(exit);
              fn.get(p).v128Load(0).get(mv).f32x4Sub();
              emitExpNonPositive(fn, e, K);
              fn.set(ev);
              fn.get(s0).get(ev).f32x4Add().set(s0);
              if (store) {
                fn.get(eRow).get(ev).v128Store(0);
                fn.get(eRow).i32Const(16).i32Add().set(eRow);
              }
              fn.get(p).i32Const(16).i32Add().set(p);
              fn.br(top);
            }),
          );
        };
        fn.get(expOut).i32Eqz();
        fn.if(
          () => body(false),
          () => body(true),
        );
      });
      fn.get(sumOut).get(r).i32Const(4).i32Mul().i32Add();
      emitHSum(fn, s0);
      fn.f32Store();
    },
  );
  return fn;
}

/** maskColumns(s, rows, cols, ld, mask): S[r, j] = -Inf where mask[j] == 0 (mask padded to a multiple of 4 lanes). */
function buildMaskColumns(): FunctionBuilder {
  const fn = new FunctionBuilder('maskColumns', ['i32', 'i32', 'i32', 'i32', 'i32']);
  const [s, rows, cols, ld, mask] = [0, 1, 2, 3, 4].map((q) => fn.param(q)) as [Local, Local, Local, Local, Local];
  const r = fn.local('i32'),
    j = fn.local('i32'),
    addr = fn.local('i32');
  fn.forLoop(
    r,
    () => fn.i32Const(0),
    () => fn.get(rows),
    1,
    () => {
      fn.forLoop(
        j,
        () => fn.i32Const(0),
        () => fn.get(cols),
        4,
        () => {
          fn.get(s).get(r).get(ld).i32Mul().get(j).i32Add().i32Const(4).i32Mul().i32Add().tee(addr);
          // bitselect(s, -inf, mask != 0)
          fn.get(addr).v128Load().v128ConstF32(-Infinity);
          fn.get(mask).get(j).i32Const(4).i32Mul().i32Add().v128Load().v128ConstI32(0).i32x4Ne();
          fn.v128Bitselect().v128Store();
        },
      );
    },
  );
  return fn;
}

/**
 * gumbelScanRow(row, cols, j0, r1, r2, thr, pKey, pIdx, pScore): the column
 * loop of one query. Per vector of 4 columns: bits = hash; if some lane has
 * bits <= thr, compute the 4 Gumbel values and keys = s + G, and update the
 * running best (f32 *pKey, i32 *pIdx, f32 *pScore) lane by lane in column
 * order (strict >, so earlier columns win ties).
 *
 * A separate function rather than the inner loop of gumbelScan: as an
 * inner loop TurboFan recomputed the query's seeds on every trip.
 */
function buildGumbelScanRow(K: VecConsts): FunctionBuilder {
  const fn = new FunctionBuilder('gumbelScanRow', ['i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32']);
  const [row, cols, j0, r1, r2, thr, pKey, pIdx, pScore] = [0, 1, 2, 3, 4, 5, 6, 7, 8].map((q) =>
    fn.param(q),
  ) as Local[] as [Local, Local, Local, Local, Local, Local, Local, Local, Local];
  const N = noiseLocals(fn);
  const G = {
    bits: fn.local('v128'),
    w: fn.local('v128'),
    t: fn.local('v128'),
    mask: fn.local('v128'),
    lg: logLocals(fn),
  };
  const p = fn.local('i32');
  const thrv = fn.local('v128'),
    bits = fn.local('v128'),
    sv = fn.local('v128'),
    keys = fn.local('v128');
  const bestK = fn.local('f32'),
    bestJ = fn.local('i32'),
    bestS = fn.local('f32'),
    kl = fn.local('f32');
  fn.get(r1).i32x4Splat().set(N.r1v);
  fn.get(r2).i32x4Splat().set(N.r2v);
  fn.get(thr).i32x4Splat().set(thrv);
  fn.get(pKey).f32Load().set(bestK);
  fn.get(pIdx).i32Load().set(bestJ);
  fn.get(pScore).f32Load().set(bestS);
  fn.get(j0).i32x4Splat().v128ConstI32(0, 1, 2, 3).i32x4Add().set(N.jv);
  fn.forLoop(
    p,
    () => fn.i32Const(0),
    () => fn.get(cols),
    4,
    () => {
      emitNoiseBitsX4(fn, N.jv, N.r1v, N.r2v, N.hv, K);
      fn.tee(bits).get(thrv).i32x4LeU().v128AnyTrue();
      fn.if(() => {
        fn.get(row).get(p).i32Const(4).i32Mul().i32Add().v128Load().set(sv);
        fn.get(bits);
        emitGumbelFromBits(fn, G, K);
        fn.get(sv).f32x4Add().set(keys);
        for (let l = 0; l < 4; l++) {
          // lane l counts only if p + l < cols
          fn.get(keys)
            .f32x4ExtractLane(l)
            .tee(kl)
            .get(bestK)
            .f32Gt()
            .get(p)
            .i32Const(l)
            .i32Add()
            .get(cols)
            .i32LtS()
            .i32And();
          fn.if(() => {
            fn.get(kl).set(bestK);
            fn.get(j0).get(p).i32Add().i32Const(l).i32Add().set(bestJ);
            fn.get(sv).f32x4ExtractLane(l).set(bestS);
          });
        }
      });
      fn.get(N.jv).v128ConstI32(4).i32x4Add().set(N.jv);
    },
  );
  fn.get(pKey).get(bestK).f32Store();
  fn.get(pIdx).get(bestJ).i32Store();
  fn.get(pScore).get(bestS).f32Store();
  return fn;
}

/** gumbelScan: see KernelExports. Per row: the query's seeds r1, r2, then gumbelScanRow on its columns. */
function buildGumbelScan(rowFn: number): FunctionBuilder {
  const fn = new FunctionBuilder('gumbelScan', [
    'i32',
    'i32',
    'i32',
    'i32',
    'i32',
    'i32',
    'i32',
    'i32',
    'i32',
    'i32',
    'i32',
    'i32',
  ]);
  const [s, rows, cols, ld, q0, j0, k0, k1, thr, bestKey, bestIdx, bestScore] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
  ].map((q) => fn.param(q)) as Local[] as [
    Local,
    Local,
    Local,
    Local,
    Local,
    Local,
    Local,
    Local,
    Local,
    Local,
    Local,
    Local,
  ];
  const N = noiseLocals(fn);
  const r = fn.local('i32'),
    q = fn.local('i32'),
    off = fn.local('i32');
  fn.forLoop(
    r,
    () => fn.i32Const(0),
    () => fn.get(rows),
    1,
    () => {
      fn.get(q0).get(r).i32Add().set(q);
      emitRowSeeds(fn, q, k0, k1, N.r1, N.r2, N.h);
      fn.get(r).i32Const(4).i32Mul().set(off);
      fn.get(s).get(r).get(ld).i32Mul().i32Const(4).i32Mul().i32Add();
      fn.get(cols).get(j0).get(N.r1).get(N.r2);
      fn.get(thr).get(off).i32Add().i32Load();
      fn.get(bestKey).get(off).i32Add().get(bestIdx).get(off).i32Add().get(bestScore).get(off).i32Add();
      fn.call(rowFn);
    },
  );
  return fn;
}

/**
 * groupScan: per row, walk the columns group segment by group segment; in a
 * segment keep the running (max, first argmax) in scalar registers with a
 * strict > and merge it into gMax/gArg (strict >: earlier columns — earlier
 * blocks were merged before — win ties).
 */
function buildGroupScan(): FunctionBuilder {
  const fn = new FunctionBuilder('groupScan', ['i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32']);
  const [s, rows, cols, ld, j0, gs, g0, kg, gMax, gArg] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map((q) =>
    fn.param(q),
  ) as Local[] as [Local, Local, Local, Local, Local, Local, Local, Local, Local, Local];
  const r = fn.local('i32'),
    j = fn.local('i32'),
    segEnd = fn.local('i32'),
    g = fn.local('i32'),
    row = fn.local('i32');
  const best = fn.local('f32'),
    bestJ = fn.local('i32'),
    v = fn.local('f32'),
    slot = fn.local('i32');
  fn.forLoop(
    r,
    () => fn.i32Const(0),
    () => fn.get(rows),
    1,
    () => {
      fn.get(s).get(r).get(ld).i32Mul().i32Const(4).i32Mul().i32Add().set(row);
      fn.i32Const(0).set(j);
      fn.block((done) =>
        fn.loop((seg) => {
          fn.get(j).get(cols).i32GeS().brIf(done);
          // g = (j0 + j) / gs; segEnd = min(cols, (g + 1) * gs - j0)
          fn.get(j0).get(j).i32Add().get(gs).i32DivU().set(g);
          fn.get(g).i32Const(1).i32Add().get(gs).i32Mul().get(j0).i32Sub().tee(segEnd).get(cols).i32GtS();
          fn.if(() => {
            fn.get(cols).set(segEnd);
          });
          fn.f32Const(-Infinity).set(best);
          fn.i32Const(-1).set(bestJ);
          fn.block((exit) =>
            fn.loop((top) => {
              fn.get(j).get(segEnd).i32GeS().brIf(exit);
              fn.get(row).get(j).i32Const(4).i32Mul().i32Add().f32Load().tee(v).get(best).f32Gt();
              fn.if(() => {
                fn.get(v).set(best);
                fn.get(j).set(bestJ);
              });
              fn.get(j).i32Const(1).i32Add().set(j);
              fn.br(top);
            }),
          );
          // merge into slot r*kg + (g - g0)
          fn.get(r).get(kg).i32Mul().get(g).get(g0).i32Sub().i32Add().i32Const(4).i32Mul().set(slot);
          fn.get(best).get(gMax).get(slot).i32Add().f32Load().f32Gt();
          fn.if(() => {
            fn.get(gMax).get(slot).i32Add().get(best).f32Store();
            fn.get(gArg).get(slot).i32Add().get(j0).get(bestJ).i32Add().i32Store();
          });
          fn.br(seg);
        }),
      );
    },
  );
  return fn;
}

/**
 * meanFold: see ScanKernelExports. Per row two scalar factors, then f32x4
 * over the columns in groups of 4 and a scalar tail (d need not be a
 * multiple of 4); every element is f32(f32(a·acc) + f32(x·prod)).
 */
function buildMeanFold(): FunctionBuilder {
  const fn = new FunctionBuilder('meanFold', ['i32', 'i32', 'i32', 'i32', 'i32', 'i32']);
  const [acc, prod, rows, d, oldS, newS] = [0, 1, 2, 3, 4, 5].map((q) => fn.param(q)) as [
    Local,
    Local,
    Local,
    Local,
    Local,
    Local,
  ];
  const r = fn.local('i32'),
    p = fn.local('i32'),
    d4 = fn.local('i32'),
    pa = fn.local('i32'),
    pp = fn.local('i32');
  const a = fn.local('f32'),
    x = fn.local('f32');
  const av = fn.local('v128'),
    xv = fn.local('v128');
  fn.get(d).i32Const(-4).i32And().set(d4);
  fn.forLoop(
    r,
    () => fn.i32Const(0),
    () => fn.get(rows),
    1,
    () => {
      fn.get(oldS).get(r).i32Const(4).i32Mul().i32Add().f32Load().tee(a).f32x4Splat().set(av);
      fn.get(newS).get(r).i32Const(4).i32Mul().i32Add().f32Load().tee(x).f32x4Splat().set(xv);
      fn.get(acc).get(r).get(d).i32Mul().i32Const(4).i32Mul().i32Add().set(pa);
      fn.get(prod).get(r).get(d).i32Mul().i32Const(4).i32Mul().i32Add().set(pp);
      const body = (withProd: boolean): void => {
        fn.forLoop(
          p,
          () => fn.i32Const(0),
          () => fn.get(d4),
          4,
          () => {
            fn.get(pa).get(p).i32Const(4).i32Mul().i32Add();
            fn.get(av).get(pa).get(p).i32Const(4).i32Mul().i32Add().v128Load().f32x4Mul();
            if (withProd) fn.get(xv).get(pp).get(p).i32Const(4).i32Mul().i32Add().v128Load().f32x4Mul().f32x4Add();
            fn.v128Store();
          },
        );
        fn.forLoop(
          p,
          () => fn.get(d4),
          () => fn.get(d),
          1,
          () => {
            fn.get(pa).get(p).i32Const(4).i32Mul().i32Add();
            fn.get(a).get(pa).get(p).i32Const(4).i32Mul().i32Add().f32Load().f32Mul();
            if (withProd) fn.get(x).get(pp).get(p).i32Const(4).i32Mul().i32Add().f32Load().f32Mul().f32Add();
            fn.f32Store();
          },
        );
      };
      fn.get(x).f32Const(0).f32Eq();
      fn.if(
        () => body(false),
        () => body(true),
      );
    },
  );
  return fn;
}

// ---------------------------------------------------------------------------
// Module
// ---------------------------------------------------------------------------

/**
 * Builds the scan kernel module, its constant pool at address `constBase`
 * (the slot the runtime assigned). Deterministic: the same base gives the
 * same bytes.
 */
export function buildScanModule(constBase: number): Uint8Array {
  const mod = new ModuleBuilder().importMemory('env', 'memory', 1);
  const K = new ConstPool(constBase);
  mod.add(buildNoiseRow('noiseBits', K));
  mod.add(buildNoiseRow('gumbelRow', K));
  mod.add(buildRowStats(K));
  mod.add(buildMaskColumns());
  const gumbelRow = mod.add(buildGumbelScanRow(K), null);
  mod.add(buildGumbelScan(gumbelRow));
  mod.add(buildGroupScan());
  mod.add(buildMeanFold());
  mod.data(K.base, K.bytes());
  return mod.emit();
}
