/**
 * The matrix-product kernel: register-blocked outer products on f32x4.
 *
 * Every float32 product of the library runs on one micro-kernel, in two
 * orientations. Its operands are
 *   V  a "vector" operand, k-major: for each step p, the values V[p, w] of
 *      the tile's W = 4·MRV indices w are contiguous (a packed panel, or rows
 *      of a row-major [k × n] matrix read with a leading dimension);
 *   S  a "scalar" operand, NR rows each contiguous in p (row-major rows of
 *      A in A·B, or rows of B in A·Bᵀ: no packing needed).
 * Per step p the tile loads MRV vectors of V and broadcasts NR scalars of S
 * (v128.load32_splat), and updates MRV × NR f32x4 accumulators:
 *      acc[v][s] += V[p, 4v .. 4v+4) · S[s, p]
 * — an outer product with no horizontal reduction, MRV·NR independent
 * accumulator chains (enough to cover the add / FMA latency), and MRV + NR
 * loads per MRV·NR multiply-adds. The result tile is C[s, w] (orientation
 * 'N': accumulators along C's rows, stored as they are) or C[w, s]
 * (orientation 'T': each 4×4 block transposed with shuffles before the
 * store — the cost is per tile, not per step).
 *
 * Why this shape (issue 13). The previous kernel computed each output as a
 * dot product: 2×2 tiles of lane-wise partial sums, a horizontal reduction
 * per output, and only 4 accumulators, so consecutive adds into one
 * accumulator waited on each other: with an f32x4.add latency of 3–4
 * cycles and 4 chains it issues at most 1–1.3 adds per cycle, half of what
 * two FP pipes can do, whatever the tuning machine measured. (It ran 32–34
 * GFLOP/s on one AMD EPYC and 14–18 on another.) Here 8 chains of
 * independent multiply-adds keep both pipes busy, the loads per flop drop
 * from 1 per mul-add pair to 6 per 8, and the horizontal sums are gone.
 *
 * Arithmetic (what makes it checkable bit for bit). Every output is
 *      acc = +0;  for p = 0 .. k-1:  acc = f32(acc + f32(v_p · s_p))
 * in order of p, then f32(alpha · acc) — the same sequence whatever the
 * tile size, the position of the element in its tile, the edge handling
 * or the cache blocking, so all configurations give identical bits and
 * `matmulF32Reference` (matmul.ts) reproduces them in TypeScript. k may be
 * split into blocks (`accumulate`: the tile starts from the partial sums
 * stored in C instead of +0), which continues the same sequence.
 *
 * FMA (opt-in, `fma: true`). With relaxed SIMD the step is
 * f32x4.relaxed_madd(v, s, acc): one rounding where the engine fuses it
 * (V8 on x64 with FMA3, ARM64), two where it does not. That makes results
 * depend on the engine and the CPU, which the bit-identity guarantees of the
 * library (Node and Chromium identical on one machine; training runs
 * reproducible) cannot allow by default — see index.ts, `setKernelOptions`.
 *
 * Blocking. The driver walks the output in blocks of VB V-indices × SB S-rows
 * (chosen by the caller so a V block and an S block stay in L2), and inside
 * a block panel by panel (one W-wide V panel stays in L1 while the S rows
 * stream past it). Ragged edges: a tile with fewer than NR S rows calls an
 * edge function with that many rows (same arithmetic); a V panel with fewer
 * than W valid indices computes on the zero padding (packed) or on whatever
 * follows (unpacked: reads, never writes) and stores only the valid ones.
 */
import { FunctionBuilder, ModuleBuilder, type Local } from './emitter.js';

/** Tile and code shape of the gemm kernel. */
export interface GemmConfig {
  /** f32x4 vectors of V per tile (W = 4·mrv V indices). */
  mrv: number;
  /** S rows per tile, 1 to 4 (the 'T' store transposes 4×4 blocks; edge tiles cover nr < 4). */
  nr: number;
  /** Steps of p per loop trip. */
  unroll: number;
  /** f32x4.relaxed_madd instead of f32x4.mul + f32x4.add (opt-in; see the module comment). */
  fma: boolean;
}

/**
 * mrv × nr = 2 × 4: 8 accumulators + 2 V vectors + 1 broadcast = 11 of the
 * 15 xmm registers V8 allocates on x64 (xmm15 is its scratch), no spills.
 * Unroll 1: Node 20's TurboFan (V8 11.3) hoists the loads of an unrolled
 * body to the top of the trip and spills accumulators to the stack (seen
 * with --print-wasm-code); Node 24 does not. Measured on the 2-core Xeon
 * (Sapphire Rapids, shared and loaded, so in CPU time), GFLOP/s of
 * [128×128]·[16384×128]ᵀ in 256-row blocks (old dot-product kernel: 30–33):
 *   mrv×nr unroll   Node 20   Node 24
 *   2×4    1        34–37     35–36      <- default
 *   2×4    2        28–30     35–37
 *   2×4    4        25–27     34–36
 *   3×4    1        28–32     31–35
 *   3×3    1        30–35     35–38
 *   1×4    4        22–24     —
 *   2×4    1, fma   n/a       42–44      (relaxed SIMD: Node 22+)
 * The non-FMA step is 8 mulps + 8 addps per 64 flops; on this CPU three
 * ports take them (~12 flop/cycle ≈ 44 GFLOP/s at 3.7 GHz), on Zen 2/3 two
 * multiply and two add pipes (16 flop/cycle); with FMA 8 vfmadd on two ports.
 */
export const DEFAULT_GEMM_CONFIG: GemmConfig = { mrv: 2, nr: 4, unroll: 1, fma: false };

/** The gemm exports (pointers in bytes, leading dimensions in elements). */
export interface GemmExports {
  /**
   * Orientation N: C[s, w] (= alpha ·) Σ_p V[p, w]·S[s, p] for s < ns, w < nv.
   * V: panels of W = 4·mrv indices; panel q starts at v + q·vPanel bytes and
   * step p of it at + p·ldv·4. S row s at s + s·lds·4. C at c + (s·ldc + w)·4.
   * Blocks of vb V-indices (multiple of W) × sb S rows (multiple of nr).
   * accumulate = 1: start from C's values (partial sums of earlier k blocks);
   * scale = 1: multiply by alpha at the end (else store the raw sums).
   */
  gemmN(
    v: number,
    vPanel: number,
    ldv: number,
    nv: number,
    s: number,
    lds: number,
    ns: number,
    k: number,
    c: number,
    ldc: number,
    alpha: number,
    vb: number,
    sb: number,
    accumulate: number,
    scale: number,
  ): void;
  /** Orientation T: C[w, s] = alpha · Σ_p V[p, w]·S[s, p], C at c + (w·ldc + s)·4 (no accumulate). */
  gemmT(
    v: number,
    vPanel: number,
    ldv: number,
    nv: number,
    s: number,
    lds: number,
    ns: number,
    k: number,
    c: number,
    ldc: number,
    alpha: number,
    vb: number,
    sb: number,
  ): void;
  /**
   * Packs rows of a row-major matrix into V panels: dst[(r / W)·k·W + p·W + r % W]
   * = src[r·lds + p] for r < rows (zero for the padding up to a multiple of W), p < k.
   */
  packRows(src: number, lds: number, rows: number, k: number, dst: number): void;
  /**
   * Packs columns of a row-major [k × cols] matrix into V panels:
   * dst[(j / W)·k·W + p·W + j % W] = src[p·lds + j] (zero padding).
   */
  packCols(src: number, lds: number, k: number, cols: number, dst: number): void;
}

/** Locals of one tile. */
interface TileLocals {
  acc: Local[][]; // [v][s]
  av: Local[];
  bs: Local;
  pv: Local;
  ps: Local[];
  p: Local;
  t: Local[]; // transpose scratch (4)
}

function tileLocals(fn: FunctionBuilder, cfg: GemmConfig, nr: number): TileLocals {
  return {
    acc: Array.from({ length: cfg.mrv }, () => Array.from({ length: nr }, () => fn.local('v128'))),
    av: Array.from({ length: cfg.mrv }, () => fn.local('v128')),
    bs: fn.local('v128'),
    pv: fn.local('i32'),
    ps: Array.from({ length: cfg.nr }, () => fn.local('i32')),
    p: fn.local('i32'),
    t: Array.from({ length: 4 }, () => fn.local('v128')),
  };
}

/** Parameters a tile reads (locals of the enclosing function). */
interface TileParams {
  /** V panel start (bytes) and bytes per step. */
  vp: Local;
  ldv4: Local;
  /** S row 0 of the tile (bytes) and bytes per S row. */
  sp: Local;
  lds4: Local;
  k: Local;
  /** C tile origin (bytes) and bytes per C row. */
  cp: Local;
  ldc4: Local;
  alpha: Local;
  /** Valid V indices of this panel (1 .. W). */
  nvNow: Local;
  /** N only: start from C (i32 0/1) and multiply by alpha at the end (i32 0/1). */
  accumulate: Local | null;
  scale: Local | null;
}

/**
 * Emits one tile with `nr` S rows: the accumulator init, the k loop, and the
 * store for orientation `orient`.
 */
function emitTile(
  fn: FunctionBuilder,
  cfg: GemmConfig,
  nr: number,
  orient: 'N' | 'T',
  L: TileLocals,
  P: TileParams,
): void {
  const { mrv, unroll } = cfg;
  const { acc, av, bs, pv, ps, p } = L;
  // S row pointers
  for (let s = 0; s < nr; s++) {
    fn.get(P.sp);
    if (s > 0) fn.get(P.lds4).i32Const(s).i32Mul().i32Add();
    fn.set(ps[s]!);
  }
  fn.get(P.vp).set(pv);
  // init: +0, or (N, accumulate) the partial sums in C
  const zero = (): void => {
    for (let v = 0; v < mrv; v++) for (let s = 0; s < nr; s++) fn.v128ConstI32(0).set(acc[v]![s]!);
  };
  if (orient === 'N') {
    fn.get(P.accumulate!);
    fn.if(
      () => {
        // C[s, 4v .. 4v+4) (a load past the valid columns reads the allocator's slack or the next row; never stored)
        for (let s = 0; s < nr; s++)
          for (let v = 0; v < mrv; v++) {
            fn.get(P.cp);
            if (s > 0) fn.get(P.ldc4).i32Const(s).i32Mul().i32Add();
            fn.v128Load(16 * v).set(acc[v]![s]!);
          }
      },
      () => zero(),
    );
  } else zero();

  const step = (u: number): void => {
    for (let v = 0; v < mrv; v++)
      fn.get(pv)
        .v128Load(16 * v)
        .set(av[v]!);
    fn.get(pv).get(P.ldv4).i32Add().set(pv);
    for (let s = 0; s < nr; s++) {
      fn.get(ps[s]!)
        .v128Load32Splat(4 * u)
        .set(bs);
      for (let v = 0; v < mrv; v++) {
        const a = acc[v]![s]!;
        if (cfg.fma) fn.get(av[v]!).get(bs).get(a).f32x4RelaxedMadd().set(a);
        else fn.get(a).get(av[v]!).get(bs).f32x4Mul().f32x4Add().set(a);
      }
    }
  };
  fn.i32Const(0).set(p);
  fn.block((exit) =>
    fn.loop((top) => {
      fn.get(p).i32Const(unroll).i32Add().get(P.k).i32GtS().brIf(exit);
      for (let u = 0; u < unroll; u++) step(u);
      for (let s = 0; s < nr; s++)
        fn.get(ps[s]!)
          .i32Const(4 * unroll)
          .i32Add()
          .set(ps[s]!);
      fn.get(p).i32Const(unroll).i32Add().set(p);
      fn.br(top);
    }),
  );
  if (unroll > 1) {
    fn.block((exit) =>
      fn.loop((top) => {
        fn.get(p).get(P.k).i32GeS().brIf(exit);
        step(0);
        for (let s = 0; s < nr; s++) fn.get(ps[s]!).i32Const(4).i32Add().set(ps[s]!);
        fn.get(p).i32Const(1).i32Add().set(p);
        fn.br(top);
      }),
    );
  }

  if (orient === 'N') emitStoreN(fn, cfg, nr, L, P);
  else emitStoreT(fn, cfg, nr, L, P);
}

/** N: row s of the tile is C[s, 0 .. W); multiply by alpha if `scale`; lanes >= nvNow are not stored. */
function emitStoreN(fn: FunctionBuilder, cfg: GemmConfig, nr: number, L: TileLocals, P: TileParams): void {
  fn.get(P.scale!);
  fn.if(() => {
    for (let v = 0; v < cfg.mrv; v++)
      for (let s = 0; s < nr; s++) {
        const a = L.acc[v]![s]!;
        fn.get(a).get(P.alpha).f32x4Splat().f32x4Mul().set(a);
      }
  });
  for (let s = 0; s < nr; s++) {
    for (let v = 0; v < cfg.mrv; v++) {
      const a = L.acc[v]![s]!;
      const addr = (): void => {
        fn.get(P.cp);
        if (s > 0) fn.get(P.ldc4).i32Const(s).i32Mul().i32Add();
      };
      fn.get(P.nvNow)
        .i32Const(4 * v + 4)
        .i32GeS();
      fn.if(
        () => {
          addr();
          fn.get(a).v128Store(16 * v);
        },
        () => {
          for (let l = 0; l < 4; l++) {
            fn.get(P.nvNow)
              .i32Const(4 * v + l)
              .i32GtS();
            fn.if(() => {
              addr();
              fn.get(a)
                .f32x4ExtractLane(l)
                .f32Store(16 * v + 4 * l);
            });
          }
        },
      );
    }
  }
}

/**
 * T: accumulators acc[v][0..4) are a 4×4 block [S rows × V indices]; after
 * multiplying by alpha it is transposed (two rounds of 2-lane interleaves)
 * so that row r of the result is C[4v + r, 0 .. nr), stored if 4v + r < nvNow.
 */
function emitStoreT(fn: FunctionBuilder, cfg: GemmConfig, nr: number, L: TileLocals, P: TileParams): void {
  const [t0, t1, t2, t3] = L.t as [Local, Local, Local, Local];
  for (let v = 0; v < cfg.mrv; v++) {
    const col = (s: number): void => {
      if (s < nr) fn.get(L.acc[v]![s]!).get(P.alpha).f32x4Splat().f32x4Mul();
      else fn.v128ConstI32(0);
    };
    // t0 = (a0[0], a1[0], a0[1], a1[1]), t1 = (a0[2], a1[2], a0[3], a1[3]); t2, t3 likewise from a2, a3
    col(0);
    col(1);
    fn.i32x4Shuffle([0, 4, 1, 5]).set(t0);
    col(0);
    col(1);
    fn.i32x4Shuffle([2, 6, 3, 7]).set(t1);
    col(2);
    col(3);
    fn.i32x4Shuffle([0, 4, 1, 5]).set(t2);
    col(2);
    col(3);
    fn.i32x4Shuffle([2, 6, 3, 7]).set(t3);
    const rows: [Local, Local, [number, number, number, number]][] = [
      [t0, t2, [0, 1, 4, 5]],
      [t0, t2, [2, 3, 6, 7]],
      [t1, t3, [0, 1, 4, 5]],
      [t1, t3, [2, 3, 6, 7]],
    ];
    rows.forEach(([x, y, lanes], r) => {
      const w = 4 * v + r;
      fn.get(P.nvNow).i32Const(w).i32GtS();
      fn.if(() => {
        fn.get(P.cp).get(P.ldc4).i32Const(w).i32Mul().i32Add();
        fn.get(x).get(y).i32x4Shuffle(lanes);
        if (nr === 4) fn.v128Store();
        else {
          fn.set(L.bs); // the transposed row, reusing the broadcast register
          fn.set(L.pv); // the row address
          for (let l = 0; l < nr; l++)
            fn.get(L.pv)
              .get(L.bs)
              .f32x4ExtractLane(l)
              .f32Store(4 * l);
        }
      });
    });
  }
}

const GEMM_PARAMS_N = [
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
  'f32',
  'i32',
  'i32',
  'i32',
  'i32',
] as const;
const GEMM_PARAMS_T = [
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
  'f32',
  'i32',
  'i32',
] as const;
/** Edge tile: (vp, ldv4, sp, lds4, k, cp, ldc4, alpha, nvNow[, accumulate, scale]). */
const EDGE_PARAMS_N = ['i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'f32', 'i32', 'i32', 'i32'] as const;
const EDGE_PARAMS_T = ['i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'f32', 'i32'] as const;

function buildEdgeTile(cfg: GemmConfig, nr: number, orient: 'N' | 'T'): FunctionBuilder {
  const fn = new FunctionBuilder(`gemm${orient}_edge${nr}`, orient === 'N' ? [...EDGE_PARAMS_N] : [...EDGE_PARAMS_T]);
  const q = (i: number): Local => fn.param(i);
  const P: TileParams = {
    vp: q(0),
    ldv4: q(1),
    sp: q(2),
    lds4: q(3),
    k: q(4),
    cp: q(5),
    ldc4: q(6),
    alpha: q(7),
    nvNow: q(8),
    accumulate: orient === 'N' ? q(9) : null,
    scale: orient === 'N' ? q(10) : null,
  };
  emitTile(fn, cfg, nr, orient, tileLocals(fn, cfg, nr), P);
  return fn;
}

/** The driver: blocks vb × sb, panels, tiles (full tiles inline, edge tiles called). */
function buildGemm(cfg: GemmConfig, orient: 'N' | 'T', edge: (nr: number) => number): FunctionBuilder {
  const fn = new FunctionBuilder(`gemm${orient}`, orient === 'N' ? [...GEMM_PARAMS_N] : [...GEMM_PARAMS_T]);
  const q = (i: number): Local => fn.param(i);
  const [v, vPanel, ldv, nv, s, lds, ns, k, c, ldc, alpha, vb, sb] = Array.from({ length: 13 }, (_, i) => q(i)) as [
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
    Local,
  ];
  const accumulate = orient === 'N' ? q(13) : null,
    scale = orient === 'N' ? q(14) : null;
  const W = 4 * cfg.mrv,
    NR = cfg.nr;
  const ldv4 = fn.local('i32'),
    lds4 = fn.local('i32'),
    ldc4 = fn.local('i32');
  const w1 = fn.local('i32'),
    w1End = fn.local('i32'),
    s0 = fn.local('i32'),
    s0End = fn.local('i32'),
    w0 = fn.local('i32'),
    si = fn.local('i32'),
    nvNow = fn.local('i32'),
    nrNow = fn.local('i32'),
    vp = fn.local('i32'),
    sp = fn.local('i32'),
    cp = fn.local('i32');
  const L = tileLocals(fn, cfg, NR);
  fn.get(ldv).i32Const(4).i32Mul().set(ldv4);
  fn.get(lds).i32Const(4).i32Mul().set(lds4);
  fn.get(ldc).i32Const(4).i32Mul().set(ldc4);
  const minInto = (dst: Local, a: () => void, b: Local): void => {
    a();
    fn.tee(dst).get(b).i32GtS();
    fn.if(() => {
      fn.get(b).set(dst);
    });
  };
  // for (w1 = 0; w1 < nv; w1 += vb) for (s0 = 0; s0 < ns; s0 += sb): runtime steps, so written out
  const stepLoop = (i: Local, end: Local, step: Local, body: () => void): void => {
    fn.i32Const(0).set(i);
    fn.block((exit) =>
      fn.loop((top) => {
        fn.get(i).get(end).i32GeS().brIf(exit);
        body();
        fn.get(i).get(step).i32Add().set(i);
        fn.br(top);
      }),
    );
  };
  stepLoop(w1, nv, vb, () => {
    minInto(w1End, () => fn.get(w1).get(vb).i32Add(), nv);
    stepLoop(s0, ns, sb, () => {
      minInto(s0End, () => fn.get(s0).get(sb).i32Add(), ns);
      fn.forLoop(
        w0,
        () => fn.get(w1),
        () => fn.get(w1End),
        W,
        () => {
          // panel w0 / W; valid indices min(W, nv - w0)
          fn.get(v).get(w0).i32Const(W).i32DivU().get(vPanel).i32Mul().i32Add().set(vp);
          fn.get(nv).get(w0).i32Sub().tee(nvNow).i32Const(W).i32GtS();
          fn.if(() => {
            fn.i32Const(W).set(nvNow);
          });
          fn.forLoop(
            si,
            () => fn.get(s0),
            () => fn.get(s0End),
            NR,
            () => {
              fn.get(s).get(si).get(lds4).i32Mul().i32Add().set(sp);
              // N: C[si, w0]; T: C[w0, si]
              fn.get(c);
              if (orient === 'N') fn.get(si).get(ldc4).i32Mul().get(w0).i32Const(4).i32Mul().i32Add();
              else fn.get(w0).get(ldc4).i32Mul().get(si).i32Const(4).i32Mul().i32Add();
              fn.i32Add().set(cp);
              fn.get(s0End).get(si).i32Sub().tee(nrNow).i32Const(NR).i32GeS();
              const P: TileParams = { vp, ldv4, sp, lds4, k, cp, ldc4, alpha, nvNow, accumulate, scale };
              fn.if(
                () => emitTile(fn, cfg, NR, orient, L, P),
                () => {
                  for (let r = 1; r < NR; r++) {
                    fn.get(nrNow).i32Const(r).i32Eq();
                    fn.if(() => {
                      fn.get(vp).get(ldv4).get(sp).get(lds4).get(k).get(cp).get(ldc4).get(alpha).get(nvNow);
                      if (orient === 'N') fn.get(accumulate!).get(scale!);
                      fn.call(edge(r));
                    });
                  }
                },
              );
            },
          );
        },
      );
    });
  });
  return fn;
}

/**
 * packRows: for each row r (zero rows up to a multiple of W), its k values
 * scattered into column r % W of panel r / W (a transpose; scalar loop,
 * O(rows·k) next to the product's O(rows·k·n)).
 */
function buildPackRows(cfg: GemmConfig): FunctionBuilder {
  const W = 4 * cfg.mrv;
  const fn = new FunctionBuilder('packRows', ['i32', 'i32', 'i32', 'i32', 'i32']);
  const [src, lds, rows, k, dst] = [0, 1, 2, 3, 4].map((i) => fn.param(i)) as [Local, Local, Local, Local, Local];
  const r = fn.local('i32'),
    p = fn.local('i32'),
    padded = fn.local('i32'),
    out = fn.local('i32');
  fn.get(rows)
    .i32Const(W - 1)
    .i32Add()
    .i32Const(W)
    .i32DivU()
    .i32Const(W)
    .i32Mul()
    .set(padded);
  fn.forLoop(
    r,
    () => fn.i32Const(0),
    () => fn.get(padded),
    1,
    () => {
      // out = dst + ((r / W)·k·W + r % W)·4
      fn.get(dst)
        .get(r)
        .i32Const(W)
        .i32DivU()
        .get(k)
        .i32Mul()
        .i32Const(W)
        .i32Mul()
        .get(r)
        .i32Const(W)
        .i32RemU()
        .i32Add()
        .i32Const(4)
        .i32Mul()
        .i32Add()
        .set(out);
      fn.forLoop(
        p,
        () => fn.i32Const(0),
        () => fn.get(k),
        1,
        () => {
          const at = (): void => {
            fn.get(out)
              .get(p)
              .i32Const(4 * W)
              .i32Mul()
              .i32Add();
          };
          fn.get(r).get(rows).i32LtS();
          fn.if(
            () => {
              at();
              fn.get(src).get(r).get(lds).i32Mul().get(p).i32Add().i32Const(4).i32Mul().i32Add().f32Load().f32Store();
            },
            () => {
              at();
              fn.f32Const(0).f32Store();
            },
          );
        },
      );
    },
  );
  return fn;
}

/**
 * packCols: panel q holds, for each step p, the W values src[p, qW .. qW + W)
 * — a copy of W contiguous floats per (q, p), whole vectors for full panels
 * and lane by lane with zero padding for the last one.
 */
function buildPackCols(cfg: GemmConfig): FunctionBuilder {
  const W = 4 * cfg.mrv;
  const fn = new FunctionBuilder('packCols', ['i32', 'i32', 'i32', 'i32', 'i32']);
  const [src, lds, k, cols, dst] = [0, 1, 2, 3, 4].map((i) => fn.param(i)) as [Local, Local, Local, Local, Local];
  const q = fn.local('i32'),
    p = fn.local('i32'),
    w = fn.local('i32'),
    valid = fn.local('i32'),
    from = fn.local('i32'),
    to = fn.local('i32'),
    lds4 = fn.local('i32');
  fn.get(lds).i32Const(4).i32Mul().set(lds4);
  fn.forLoop(
    q,
    () => fn.i32Const(0),
    () => fn.get(cols),
    W,
    () => {
      // this panel's source column q and destination (q / W)·k·W floats in
      fn.get(src).get(q).i32Const(4).i32Mul().i32Add().set(from);
      fn.get(dst).get(q).get(k).i32Mul().i32Const(4).i32Mul().i32Add().set(to);
      fn.get(cols).get(q).i32Sub().set(valid);
      fn.forLoop(
        p,
        () => fn.i32Const(0),
        () => fn.get(k),
        1,
        () => {
          fn.get(valid).i32Const(W).i32GeS();
          fn.if(
            () => {
              for (let v = 0; v < cfg.mrv; v++)
                fn.get(to)
                  .get(from)
                  .v128Load(16 * v)
                  .v128Store(16 * v);
            },
            () => {
              fn.forLoop(
                w,
                () => fn.i32Const(0),
                () => fn.i32Const(W),
                1,
                () => {
                  const at = (): void => {
                    fn.get(to).get(w).i32Const(4).i32Mul().i32Add();
                  };
                  fn.get(w).get(valid).i32LtS();
                  fn.if(
                    () => {
                      at();
                      fn.get(from).get(w).i32Const(4).i32Mul().i32Add().f32Load().f32Store();
                    },
                    () => {
                      at();
                      fn.f32Const(0).f32Store();
                    },
                  );
                },
              );
            },
          );
          fn.get(from).get(lds4).i32Add().set(from);
          fn.get(to)
            .i32Const(4 * W)
            .i32Add()
            .set(to);
        },
      );
    },
  );
  return fn;
}

/** Adds the gemm functions (gemmN, gemmT, packRows, packCols and their edge tiles) to a module. */
export function addGemm(mod: ModuleBuilder, cfg: GemmConfig = DEFAULT_GEMM_CONFIG): void {
  if (!(cfg.mrv >= 1 && cfg.nr >= 1 && cfg.unroll >= 1) || cfg.nr > 4)
    throw new RangeError('addGemm: need mrv >= 1, 1 <= nr <= 4, unroll >= 1');
  for (const orient of ['N', 'T'] as const) {
    const edges = new Map<number, number>();
    for (let r = 1; r < cfg.nr; r++) edges.set(r, mod.add(buildEdgeTile(cfg, r, orient), null));
    mod.add(buildGemm(cfg, orient, (r) => edges.get(r)!));
  }
  mod.add(buildPackRows(cfg));
  mod.add(buildPackCols(cfg));
}
