/**
 * The WebAssembly SIMD kernels of sparse training: optimiser updates of the
 * embedding-table rows a step touched, and the sparse row products of
 * embedding bags (forward and VJP). One extension module (registered with
 * `defineWasmExtension` in index.ts), sharing the generic module's memory and
 * allocator; the wrappers and the plain-TypeScript references are in
 * ../sparse.ts.
 *
 * Arithmetic. Every kernel is elementwise along a row: lane l of a vector
 * holds element l of the row, and every lane does exactly the float32
 * operations of the reference loop in ../sparse.ts, in the same order
 * (IEEE binary32, round to nearest even, no fused multiply-add; f32x4.sqrt
 * and f32x4.div are correctly rounded, as are Math.fround(Math.sqrt(x)) and
 * Math.fround(x / y) for float32 x, y). The results are therefore
 * bit-identical to the references, which the property tests check. Rows
 * whose length is not a multiple of 4 finish with a scalar loop of the same
 * operations.
 *
 * Memory. Pointers are byte offsets; `ids`, `from`, `to` are i32 arrays.
 * The optimiser kernels trust their row ids (the optimiser validated them);
 * `scatterRows` checks every row index against the sizes it is given and
 * returns the first bad entry instead of writing out of bounds.
 */
import { FunctionBuilder, ModuleBuilder, type Local } from './emitter.js';
import { INLINE_CONSTS, emitExpF32x4 } from './kernels.js';

/** The functions the sparse module exports (pointers are byte offsets). */
export interface SparseKernelExports {
  /**
   * Adam/AdamW over rows ids[0..n) of theta/m/v ([*, dim] float32), with
   * the gradient rows g[r·dim ..] (see adamRowsReference in ../sparse.ts):
   *   g' = g·gscale;  m = β1·m + (1-β1)·g';  v = β2·v + ((1-β2)·g')·g'
   *   θ = θ·decay - (alpha·m) / (sqrt(v)·k2 + ε)
   * Rows are visited in the order `order` (positions into ids; 0: 0..n-1),
   * which changes no result. The SGD kernels take `order` likewise. The
   * row kernels (these three and gatherRows) return a word folded from the
   * lines they loaded ahead (see emitVisitRows): meaningless, ignore it.
   */
  adamRows(
    theta: number,
    m: number,
    v: number,
    g: number,
    ids: number,
    n: number,
    dim: number,
    gscale: number,
    b1: number,
    omb1: number,
    b2: number,
    omb2: number,
    k2: number,
    eps: number,
    alpha: number,
    decay: number,
    order: number,
  ): number;
  /** SGD without momentum: θ = θ - lr·(g·gscale + λ·θ). */
  sgdRows(
    theta: number,
    g: number,
    ids: number,
    n: number,
    dim: number,
    gscale: number,
    wd: number,
    lr: number,
    order: number,
  ): number;
  /** SGD with momentum μ: g' = g·gscale + λ·θ;  b = μ·b + g';  θ = θ - lr·(nesterov ? g' + μ·b : b). */
  sgdMomentumRows(
    theta: number,
    buf: number,
    g: number,
    ids: number,
    n: number,
    dim: number,
    gscale: number,
    wd: number,
    mu: number,
    lr: number,
    nesterov: number,
    order: number,
  ): number;
  /**
   * dst[to[k]] += w[k]·src[from[k]] (rows of `dim` floats) for k = 0..nnz-1
   * in order; w = 0 (null pointer) means weight 1 (a plain add). Returns -1,
   * or the first k whose from[k] is not in [0, nSrc) or to[k] not in
   * [0, nDst) (nothing is written for that k or after it).
   */
  scatterRows(
    src: number,
    dst: number,
    from: number,
    to: number,
    w: number,
    nnz: number,
    dim: number,
    nSrc: number,
    nDst: number,
  ): number;
  /** The index of the first NaN or ±Infinity among len floats at ptr, or -1. */
  firstNonFinite(ptr: number, len: number): number;
  /**
   * Softmax statistics of a score block S [rows, ld] (f32): for each row r,
   * maxOut[r] = max_j S[r, j] and sumOut[r] = Σ_j exp(S[r, j] - maxOut[r])
   * (f32 lanes, then a horizontal add; 0 when the max is -Inf), over j <
   * cols rounded up to 4: the caller pads columns cols..ld with -Inf.
   */
  softmaxStats(s: number, rows: number, cols: number, ld: number, maxOut: number, sumOut: number): void;
  /**
   * In place, S[r, j] = coef[r] · exp(S[r, j] - lse[r]) over the same
   * columns (padding -Inf gives 0): the softmax cotangent of a block.
   * Results below 2^-126 in magnitude are 0 (no subnormals; softmaxStats
   * likewise drops exp terms below 2^-126).
   */
  softmaxScale(s: number, rows: number, cols: number, ld: number, lse: number, coef: number): void;
  /**
   * counts[r] += #{j < cols rounded up to 4 : S[r, j] >= thr[r]} (i32), the
   * caller padding with -Inf; returns the number of NaN scores seen.
   */
  countAtLeast(s: number, rows: number, cols: number, ld: number, thr: number, counts: number): number;
  /**
   * Row-wise L2 normalisation of x [rows, dim] into y: y = x / sqrt(Σ x² + eps)
   * (Σ over whole vectors in 4 f32 lanes, a horizontal add, then the ragged
   * tail one float at a time; see l2NormalizeRowsReference).
   */
  l2NormalizeRows(x: number, y: number, rows: number, dim: number, eps: number): void;
  /** Its VJP: out = (g - y·Σ g·y) / sqrt(Σ x² + eps), row by row, sums as in the forward. */
  l2NormalizeRowsVjp(x: number, y: number, g: number, out: number, rows: number, dim: number, eps: number): void;
  /** y[r, :] = y[r, :] + bias for r < rows (f32 adds, rows of `dim`). */
  addRowVector(y: number, rows: number, dim: number, bias: number): void;
  /** out[c] += Σ_r x[r, c] (float64 accumulators `out`, rows in order) for x [rows, dim] f32. */
  addColumnSums(x: number, rows: number, dim: number, out: number): void;
  /** dst[r] = src[ids[r]] for rows of `dim` floats, r < n (visiting r = order[j] when order is non-zero; ids trusted). */
  gatherRows(src: number, ids: number, n: number, dim: number, dst: number, order: number): number;
}

/** A float32 value in vector (v128 splat) and scalar (f32) form. */
interface Both {
  v: Local;
  s: Local;
}

/**
 * Emitting one row operation in either width: the body is written once
 * against these helpers and emitted twice, for whole vectors of 4 lanes and
 * for the scalar tail, so the two cannot disagree.
 */
class Lanes {
  constructor(
    private readonly fn: FunctionBuilder,
    readonly vec: boolean,
  ) {}
  load(ptr: Local): void {
    this.fn.get(ptr);
    if (this.vec) this.fn.v128Load();
    else this.fn.f32Load();
  }
  /** Stores the value `value` emits at ptr. */
  store(ptr: Local, value: () => void): void {
    this.fn.get(ptr);
    value();
    if (this.vec) this.fn.v128Store();
    else this.fn.f32Store();
  }
  c(x: Both): void {
    this.fn.get(this.vec ? x.v : x.s);
  }
  get(x: Both): void {
    this.c(x);
  }
  set(x: Both): void {
    this.fn.set(this.vec ? x.v : x.s);
  }
  mul(): void {
    if (this.vec) this.fn.f32x4Mul();
    else this.fn.f32Mul();
  }
  add(): void {
    if (this.vec) this.fn.f32x4Add();
    else this.fn.f32Add();
  }
  sub(): void {
    if (this.vec) this.fn.f32x4Sub();
    else this.fn.f32Sub();
  }
  div(): void {
    if (this.vec) this.fn.f32x4Div();
    else this.fn.f32Div();
  }
  sqrt(): void {
    if (this.vec) this.fn.f32x4Sqrt();
    else this.fn.f32Sqrt();
  }
}

/** An f32 parameter together with its splat into a v128 local (set at function entry). */
function splatParam(fn: FunctionBuilder, index: number): Both {
  const s = fn.param(index);
  const v = fn.local('v128');
  fn.get(s).f32x4Splat().set(v);
  return { v, s };
}

/** A v128 and an f32 temporary. */
function temp(fn: FunctionBuilder): Both {
  return { v: fn.local('v128'), s: fn.local('f32') };
}

/**
 * for (each of the `ptrs` advanced in step) over `bytes` bytes from ptrs[0]:
 * whole vectors with `body(vector lanes)`, then single floats with
 * `body(scalar lanes)`. `end` and `vecEnd` are scratch locals.
 */
function emitRowLoop(
  fn: FunctionBuilder,
  ptrs: Local[],
  bytes: Local,
  end: Local,
  vecEnd: Local,
  body: (L: Lanes) => void,
): void {
  const lead = ptrs[0]!;
  fn.get(lead).get(bytes).i32Add().set(end);
  fn.get(lead).get(bytes).i32Const(~15).i32And().i32Add().set(vecEnd);
  for (const [vec, stride, stop] of [
    [true, 16, vecEnd],
    [false, 4, end],
  ] as const) {
    const L = new Lanes(fn, vec);
    fn.block((exit) => {
      fn.loop((top) => {
        fn.get(lead).get(stop).i32GeU().brIf(exit);
        body(L);
        for (const p of ptrs) fn.get(p).i32Const(stride).i32Add().set(p);
        fn.br(top);
      });
    });
  }
}

/** Rows fetched ahead of the update at a time (see emitVisitRows). */
const TOUCH_AHEAD = 16;

/**
 * for j in [0, n): r = order ? order[j] : j, then `body(r, off)` with
 * off = ids[r]·rowBytes, the byte offset of the table row r updates. The
 * visiting order never changes a result (the rows are distinct, each is
 * updated once, independently): `order` sorts large updates by table
 * address, so the table and moment rows stream instead of being fetched
 * at random.
 *
 * Touch-ahead, a software prefetch (wasm has no prefetch instruction): the
 * rows are scattered over tens of MB, so each row's first access misses the
 * TLB and the caches, and the out-of-order window holds the work of only
 * about one row, so misses would be waited for one row at a time. Every
 * TOUCH_AHEAD rows the loop loads one word of every 64-byte line of the
 * next TOUCH_AHEAD rows of each of `tables`, back to back, so their misses
 * (and page walks) overlap. The loaded words are folded into the returned
 * local, which the kernel returns, so the loads cannot be dropped; they
 * change nothing else (measured: Adam over 9 100 random rows of 2^18 x 64,
 * 3.0 -> 1.9 ms). Touched rows lie inside the tables, like the rows updated.
 */
function emitVisitRows(
  fn: FunctionBuilder,
  ids: Local,
  n: Local,
  order: Local,
  rowBytes: Local,
  tables: Local[],
  body: (r: Local, off: Local) => void,
): Local {
  const j = fn.local('i32'),
    r = fn.local('i32'),
    off = fn.local('i32'),
    t = fn.local('i32'),
    tEnd = fn.local('i32'),
    tOff = fn.local('i32'),
    line = fn.local('i32'),
    sink = fn.local('i32');
  fn.forLoop(
    j,
    () => fn.i32Const(0),
    () => fn.get(n),
    1,
    () => {
      // Only for rows in the given (random) order (order = 0, so row t is ids[t]): rows visited in table order
      // stream, and the hardware prefetcher does better alone (touching ahead made the full softmax's 146 000-row
      // update 40 -> 56 ms).
      fn.get(j)
        .i32Const(TOUCH_AHEAD - 1)
        .i32And()
        .i32Eqz()
        .get(order)
        .i32Eqz()
        .i32And();
      fn.if(() => {
        // tEnd = min(j + 2·TOUCH_AHEAD, n)
        fn.get(j)
          .i32Const(2 * TOUCH_AHEAD)
          .i32Add()
          .set(tEnd);
        fn.get(tEnd).get(n).get(tEnd).get(n).i32LtS().select().set(tEnd);
        fn.forLoop(
          t,
          () => fn.get(j).i32Const(TOUCH_AHEAD).i32Add(),
          () => fn.get(tEnd),
          1,
          () => {
            fn.get(ids).get(t).i32Const(4).i32Mul().i32Add().i32Load().get(rowBytes).i32Mul().set(tOff);
            fn.forLoop(
              line,
              () => fn.i32Const(0),
              () => fn.get(rowBytes),
              64,
              () => {
                for (const b of tables)
                  fn.get(sink).get(b).get(tOff).i32Add().get(line).i32Add().i32Load().i32Xor().set(sink);
              },
            );
          },
        );
      });
      // select(order[j], j, order): with order = 0 the load reads address 4j, inside the ids array's memory, unused.
      fn.get(order).get(j).i32Const(4).i32Mul().i32Add().i32Load().get(j).get(order).select().set(r);
      fn.get(ids).get(r).i32Const(4).i32Mul().i32Add().i32Load().get(rowBytes).i32Mul().set(off);
      body(r, off);
    },
  );
  return sink;
}

function buildAdamRows(): FunctionBuilder {
  const fn = new FunctionBuilder(
    'adamRows',
    [
      'i32',
      'i32',
      'i32',
      'i32',
      'i32',
      'i32',
      'i32',
      'f32',
      'f32',
      'f32',
      'f32',
      'f32',
      'f32',
      'f32',
      'f32',
      'f32',
      'i32',
    ],
    ['i32'],
  );
  const [theta, m, v, g, ids, n, dim] = [0, 1, 2, 3, 4, 5, 6].map((i) => fn.param(i)) as Local[];
  const order = fn.param(16);
  const gscale = splatParam(fn, 7),
    b1 = splatParam(fn, 8),
    omb1 = splatParam(fn, 9),
    b2 = splatParam(fn, 10),
    omb2 = splatParam(fn, 11),
    k2 = splatParam(fn, 12),
    eps = splatParam(fn, 13),
    alpha = splatParam(fn, 14),
    decay = splatParam(fn, 15);
  const rowBytes = fn.local('i32'),
    pT = fn.local('i32'),
    pM = fn.local('i32'),
    pV = fn.local('i32'),
    pG = fn.local('i32'),
    end = fn.local('i32'),
    vecEnd = fn.local('i32');
  const gv = temp(fn),
    mv = temp(fn),
    vv = temp(fn);
  fn.get(dim).i32Const(4).i32Mul().set(rowBytes);
  const sink = emitVisitRows(fn, ids, n, order, rowBytes, [theta, m, v], (r, off) => {
    {
      fn.get(g).get(r).get(rowBytes).i32Mul().i32Add().set(pG);
      fn.get(theta).get(off).i32Add().set(pT);
      fn.get(m).get(off).i32Add().set(pM);
      fn.get(v).get(off).i32Add().set(pV);
      emitRowLoop(fn, [pT, pM, pV, pG], rowBytes, end, vecEnd, (L) => {
        // g' = g·gscale
        L.load(pG);
        L.c(gscale);
        L.mul();
        L.set(gv);
        // m = β1·m + (1-β1)·g'
        L.load(pM);
        L.c(b1);
        L.mul();
        L.c(omb1);
        L.get(gv);
        L.mul();
        L.add();
        L.set(mv);
        L.store(pM, () => L.get(mv));
        // v = β2·v + ((1-β2)·g')·g'
        L.load(pV);
        L.c(b2);
        L.mul();
        L.c(omb2);
        L.get(gv);
        L.mul();
        L.get(gv);
        L.mul();
        L.add();
        L.set(vv);
        L.store(pV, () => L.get(vv));
        // θ = θ·decay - (alpha·m) / (sqrt(v)·k2 + ε)
        L.store(pT, () => {
          L.load(pT);
          L.c(decay);
          L.mul();
          L.c(alpha);
          L.get(mv);
          L.mul();
          L.get(vv);
          L.sqrt();
          L.c(k2);
          L.mul();
          L.c(eps);
          L.add();
          L.div();
          L.sub();
        });
      });
    }
  });
  fn.get(sink);
  return fn;
}

function buildSgdRows(): FunctionBuilder {
  const fn = new FunctionBuilder('sgdRows', ['i32', 'i32', 'i32', 'i32', 'i32', 'f32', 'f32', 'f32', 'i32'], ['i32']);
  const [theta, g, ids, n, dim] = [0, 1, 2, 3, 4].map((i) => fn.param(i)) as Local[];
  const gscale = splatParam(fn, 5),
    wd = splatParam(fn, 6),
    lr = splatParam(fn, 7);
  const order = fn.param(8);
  const rowBytes = fn.local('i32'),
    pT = fn.local('i32'),
    pG = fn.local('i32'),
    end = fn.local('i32'),
    vecEnd = fn.local('i32');
  fn.get(dim).i32Const(4).i32Mul().set(rowBytes);
  const sink = emitVisitRows(fn, ids, n, order, rowBytes, [theta], (r, off) => {
    {
      fn.get(g).get(r).get(rowBytes).i32Mul().i32Add().set(pG);
      fn.get(theta).get(off).i32Add().set(pT);
      emitRowLoop(fn, [pT, pG], rowBytes, end, vecEnd, (L) => {
        // θ = θ - lr·(g·gscale + λ·θ)
        L.store(pT, () => {
          L.load(pT);
          L.c(lr);
          L.load(pG);
          L.c(gscale);
          L.mul();
          L.c(wd);
          L.load(pT);
          L.mul();
          L.add();
          L.mul();
          L.sub();
        });
      });
    }
  });
  fn.get(sink);
  return fn;
}

function buildSgdMomentumRows(): FunctionBuilder {
  const fn = new FunctionBuilder(
    'sgdMomentumRows',
    ['i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'f32', 'f32', 'f32', 'f32', 'i32', 'i32'],
    ['i32'],
  );
  const [theta, buf, g, ids, n, dim] = [0, 1, 2, 3, 4, 5].map((i) => fn.param(i)) as Local[];
  const gscale = splatParam(fn, 6),
    wd = splatParam(fn, 7),
    mu = splatParam(fn, 8),
    lr = splatParam(fn, 9);
  const nesterov = fn.param(10),
    order = fn.param(11);
  const rowBytes = fn.local('i32'),
    pT = fn.local('i32'),
    pB = fn.local('i32'),
    pG = fn.local('i32'),
    end = fn.local('i32'),
    vecEnd = fn.local('i32');
  const gv = temp(fn),
    bv = temp(fn);
  const touched = fn.local('i32');
  fn.get(dim).i32Const(4).i32Mul().set(rowBytes);
  for (const nest of [false, true]) {
    // Two copies of the loop, chosen once: no branch per element.
    fn.get(nesterov);
    if (!nest) fn.i32Eqz();
    fn.if(() => {
      const sink = emitVisitRows(fn, ids, n, order, rowBytes, [theta, buf], (r, off) => {
        {
          fn.get(g).get(r).get(rowBytes).i32Mul().i32Add().set(pG);
          fn.get(theta).get(off).i32Add().set(pT);
          fn.get(buf).get(off).i32Add().set(pB);
          emitRowLoop(fn, [pT, pB, pG], rowBytes, end, vecEnd, (L) => {
            // g' = g·gscale + λ·θ
            L.load(pG);
            L.c(gscale);
            L.mul();
            L.c(wd);
            L.load(pT);
            L.mul();
            L.add();
            L.set(gv);
            // b = μ·b + g'
            L.c(mu);
            L.load(pB);
            L.mul();
            L.get(gv);
            L.add();
            L.set(bv);
            L.store(pB, () => L.get(bv));
            // θ = θ - lr·step, step = g' + μ·b (Nesterov) or b
            L.store(pT, () => {
              L.load(pT);
              L.c(lr);
              if (nest) {
                L.get(gv);
                L.c(mu);
                L.get(bv);
                L.mul();
                L.add();
              } else L.get(bv);
              L.mul();
              L.sub();
            });
          });
        }
      });
      fn.get(sink).set(touched);
    });
  }
  fn.get(touched);
  return fn;
}

function buildScatterRows(): FunctionBuilder {
  const fn = new FunctionBuilder(
    'scatterRows',
    ['i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32'],
    ['i32'],
  );
  const [src, dst, from, to, w, nnz, dim, nSrc, nDst] = [0, 1, 2, 3, 4, 5, 6, 7, 8].map((i) => fn.param(i)) as Local[];
  const k = fn.local('i32'),
    rowBytes = fn.local('i32'),
    f = fn.local('i32'),
    t = fn.local('i32'),
    pS = fn.local('i32'),
    pD = fn.local('i32'),
    end = fn.local('i32'),
    vecEnd = fn.local('i32');
  const wt: Both = { v: fn.local('v128'), s: fn.local('f32') };
  fn.get(dim).i32Const(4).i32Mul().set(rowBytes);
  for (const weighted of [false, true]) {
    fn.get(w);
    if (!weighted) fn.i32Eqz();
    fn.if(() => {
      fn.forLoop(
        k,
        () => fn.i32Const(0),
        () => fn.get(nnz),
        1,
        () => {
          fn.get(from).get(k).i32Const(4).i32Mul().i32Add().i32Load().set(f);
          fn.get(to).get(k).i32Const(4).i32Mul().i32Add().i32Load().set(t);
          // Unsigned compares: a negative index is a huge one.
          fn.get(f).get(nSrc).i32GeU().get(t).get(nDst).i32GeU().i32Or();
          fn.if(() => {
            fn.get(k).return();
          });
          fn.get(src).get(f).get(rowBytes).i32Mul().i32Add().set(pS);
          fn.get(dst).get(t).get(rowBytes).i32Mul().i32Add().set(pD);
          if (weighted) {
            fn.get(w).get(k).i32Const(4).i32Mul().i32Add().f32Load().tee(wt.s).f32x4Splat().set(wt.v);
          }
          emitRowLoop(fn, [pD, pS], rowBytes, end, vecEnd, (L) => {
            // dst = dst + w·src (or dst + src)
            L.store(pD, () => {
              L.load(pD);
              if (weighted) L.c(wt);
              L.load(pS);
              if (weighted) L.mul();
              L.add();
            });
          });
        },
      );
    });
  }
  fn.i32Const(-1);
  return fn;
}

function buildFirstNonFinite(): FunctionBuilder {
  const fn = new FunctionBuilder('firstNonFinite', ['i32', 'i32'], ['i32']);
  const [ptr, len] = [fn.param(0), fn.param(1)];
  const i = fn.local('i32'),
    x = fn.local('v128'),
    s = fn.local('f32');
  // Whole vectors: x - x is 0 for finite lanes and NaN for NaN / ±Inf lanes.
  fn.i32Const(0).set(i);
  fn.block((found) => {
    fn.loop((top) => {
      fn.get(i).i32Const(4).i32Add().get(len).i32GtS().brIf(found);
      fn.get(ptr).get(i).i32Const(4).i32Mul().i32Add().v128Load().tee(x).get(x).f32x4Sub().tee(x).get(x).f32x4Ne();
      fn.v128AnyTrue().brIf(found);
      fn.get(i).i32Const(4).i32Add().set(i);
      fn.br(top);
    });
  });
  // From the first suspicious vector (or the tail) on, one float at a time.
  fn.block((exit) => {
    fn.loop((top) => {
      fn.get(i).get(len).i32GeS().brIf(exit);
      fn.get(ptr).get(i).i32Const(4).i32Mul().i32Add().f32Load().tee(s).get(s).f32Sub().tee(s).get(s).f32Ne();
      fn.if(() => {
        fn.get(i).return();
      });
      fn.get(i).i32Const(1).i32Add().set(i);
      fn.br(top);
    });
  });
  fn.i32Const(-1);
  return fn;
}

/** The horizontal max / sum of the v128 in `v` (clobbered), left as an f32 on the stack. */
function emitHorizontal(fn: FunctionBuilder, v: Local, op: 'max' | 'add'): void {
  const combine = (): void => {
    if (op === 'max') fn.f32x4Pmax();
    else fn.f32x4Add();
  };
  fn.get(v).get(v).get(v).i32x4Shuffle([2, 3, 0, 1]);
  combine();
  fn.set(v);
  fn.get(v).get(v).get(v).i32x4Shuffle([1, 0, 3, 2]);
  combine();
  fn.f32x4ExtractLane(0);
}

/** Locals and the per-row pointers of the block kernels: row r starts at s + r·ld·4 and has ceil(cols/4) vectors. */
function blockRows(
  fn: FunctionBuilder,
  s: Local,
  rows: Local,
  cols: Local,
  ld: Local,
  body: (r: Local, p: Local, end: Local) => void,
): void {
  const r = fn.local('i32'),
    row = fn.local('i32'),
    p = fn.local('i32'),
    end = fn.local('i32');
  fn.forLoop(
    r,
    () => fn.i32Const(0),
    () => fn.get(rows),
    1,
    () => {
      fn.get(s).get(r).get(ld).i32Mul().i32Const(4).i32Mul().i32Add().set(row);
      fn.get(row).get(cols).i32Const(3).i32Add().i32Const(-4).i32And().i32Const(4).i32Mul().i32Add().set(end);
      fn.get(row).set(p);
      body(r, p, end);
    },
  );
}

/** while (p < end) { body; p += 16 } */
function emitVectors(fn: FunctionBuilder, p: Local, end: Local, body: () => void): void {
  fn.block((exit) =>
    fn.loop((top) => {
      fn.get(p).get(end).i32GeU().brIf(exit);
      body();
      fn.get(p).i32Const(16).i32Add().set(p);
      fn.br(top);
    }),
  );
}

function expScratch(fn: FunctionBuilder): { x: Local; nf: Local; r: Local; y: Local; ni: Local } {
  return { x: fn.local('v128'), nf: fn.local('v128'), r: fn.local('v128'), y: fn.local('v128'), ni: fn.local('v128') };
}

/** The smallest normal float32, 2^-126. */
const FLT_MIN = 2 ** -126;

/**
 * Replaces lanes of the f32x4 on the stack whose magnitude is below the
 * smallest normal float (subnormals) by 0. Subnormal operands make x86
 * arithmetic take a microcode assist per operation (measured: a VJP pass
 * 35x slower on inputs whose probabilities underflow), and wasm has no
 * flush-to-zero mode. What is dropped is below 2^-126 next to a sum or a
 * probability of at least 1 (the max term): far under float32 rounding.
 */
function emitFlushSubnormal(fn: FunctionBuilder, v: Local): void {
  fn.tee(v).get(v).f32x4Abs().v128ConstF32(FLT_MIN).f32x4Lt().v128AndNot();
}

function buildSoftmaxStats(): FunctionBuilder {
  const fn = new FunctionBuilder('softmaxStats', ['i32', 'i32', 'i32', 'i32', 'i32', 'i32']);
  const [s, rows, cols, ld, maxOut, sumOut] = [0, 1, 2, 3, 4, 5].map((q) => fn.param(q)) as Local[];
  const mv = fn.local('v128'),
    acc = fn.local('v128'),
    mx = fn.local('f32'),
    start = fn.local('i32'),
    ev = fn.local('v128');
  const e = expScratch(fn);
  blockRows(fn, s!, rows!, cols!, ld!, (r, p, end) => {
    fn.get(p).set(start);
    fn.v128ConstF32(-Infinity).set(acc);
    emitVectors(fn, p, end, () => {
      fn.get(acc).get(p).v128Load().f32x4Pmax().set(acc);
    });
    emitHorizontal(fn, acc, 'max');
    fn.set(mx);
    fn.get(maxOut!).get(r).i32Const(4).i32Mul().i32Add().get(mx).f32Store();
    fn.v128ConstI32(0).set(acc);
    fn.get(mx).f32Const(-Infinity).f32Ne();
    fn.if(() => {
      fn.get(mx).f32x4Splat().set(mv);
      fn.get(start).set(p);
      emitVectors(fn, p, end, () => {
        fn.get(acc);
        fn.get(p).v128Load().get(mv).f32x4Sub();
        emitExpF32x4(fn, e, INLINE_CONSTS);
        emitFlushSubnormal(fn, ev);
        fn.f32x4Add().set(acc);
      });
    });
    fn.get(sumOut!).get(r).i32Const(4).i32Mul().i32Add();
    emitHorizontal(fn, acc, 'add');
    fn.f32Store();
  });
  return fn;
}

function buildSoftmaxScale(): FunctionBuilder {
  const fn = new FunctionBuilder('softmaxScale', ['i32', 'i32', 'i32', 'i32', 'i32', 'i32']);
  const [s, rows, cols, ld, lse, coef] = [0, 1, 2, 3, 4, 5].map((q) => fn.param(q)) as Local[];
  const lv = fn.local('v128'),
    cv = fn.local('v128'),
    ev = fn.local('v128');
  const e = expScratch(fn);
  blockRows(fn, s!, rows!, cols!, ld!, (r, p, end) => {
    fn.get(lse!).get(r).i32Const(4).i32Mul().i32Add().v128Load32Splat().set(lv);
    fn.get(coef!).get(r).i32Const(4).i32Mul().i32Add().v128Load32Splat().set(cv);
    emitVectors(fn, p, end, () => {
      fn.get(p);
      fn.get(p).v128Load().get(lv).f32x4Sub();
      emitExpF32x4(fn, e, INLINE_CONSTS);
      fn.get(cv).f32x4Mul();
      emitFlushSubnormal(fn, ev);
      fn.v128Store();
    });
  });
  return fn;
}

function buildCountAtLeast(): FunctionBuilder {
  const fn = new FunctionBuilder('countAtLeast', ['i32', 'i32', 'i32', 'i32', 'i32', 'i32'], ['i32']);
  const [s, rows, cols, ld, thr, counts] = [0, 1, 2, 3, 4, 5].map((q) => fn.param(q)) as Local[];
  const tv = fn.local('v128'),
    acc = fn.local('v128'),
    nan = fn.local('v128'),
    x = fn.local('v128'),
    addr = fn.local('i32');
  fn.v128ConstI32(0).set(nan);
  blockRows(fn, s!, rows!, cols!, ld!, (r, p, end) => {
    fn.get(thr!).get(r).i32Const(4).i32Mul().i32Add().v128Load32Splat().set(tv);
    fn.v128ConstI32(0).set(acc);
    emitVectors(fn, p, end, () => {
      // lanes >= thr are -1 (all ones): subtracting counts them; NaN lanes (x != x) likewise into `nan`
      fn.get(acc).get(p).v128Load().tee(x).get(tv).f32x4Ge().i32x4Sub().set(acc);
      fn.get(nan).get(x).get(x).f32x4Ne().i32x4Sub().set(nan);
    });
    fn.get(counts!).get(r).i32Const(4).i32Mul().i32Add().tee(addr);
    fn.get(addr).i32Load();
    fn.get(acc).i32x4ExtractLane(0).i32Add();
    fn.get(acc).i32x4ExtractLane(1).i32Add();
    fn.get(acc).i32x4ExtractLane(2).i32Add();
    fn.get(acc).i32x4ExtractLane(3).i32Add();
    fn.i32Store();
  });
  fn.get(nan).i32x4ExtractLane(0).get(nan).i32x4ExtractLane(1).i32Add();
  fn.get(nan).i32x4ExtractLane(2).i32Add().get(nan).i32x4ExtractLane(3).i32Add();
  return fn;
}

/**
 * Leaves Σ_k a_k·b_k over one row (pointers pa, pb advanced) as an f32 on the
 * stack: whole vectors into 4 f32 lanes, the horizontal add, then the tail.
 */
function emitRowDot(fn: FunctionBuilder, pa: Local, pb: Local, dim: Local, acc: Local, h: Local, k: Local): void {
  fn.v128ConstI32(0).set(acc);
  fn.forLoop(
    k,
    () => fn.i32Const(0),
    () => fn.get(dim).i32Const(-4).i32And(),
    4,
    () => {
      fn.get(acc).get(pa).v128Load().get(pb).v128Load().f32x4Mul().f32x4Add().set(acc);
      fn.get(pa).i32Const(16).i32Add().set(pa);
      fn.get(pb).i32Const(16).i32Add().set(pb);
    },
  );
  emitHorizontal(fn, acc, 'add');
  fn.set(h);
  fn.forLoop(
    k,
    () => fn.get(dim).i32Const(-4).i32And(),
    () => fn.get(dim),
    1,
    () => {
      fn.get(h).get(pa).f32Load().get(pb).f32Load().f32Mul().f32Add().set(h);
      fn.get(pa).i32Const(4).i32Add().set(pa);
      fn.get(pb).i32Const(4).i32Add().set(pb);
    },
  );
  fn.get(h);
}

function buildL2NormalizeRows(vjp: boolean): FunctionBuilder {
  const fn = vjp
    ? new FunctionBuilder('l2NormalizeRowsVjp', ['i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'f32'])
    : new FunctionBuilder('l2NormalizeRows', ['i32', 'i32', 'i32', 'i32', 'f32']);
  const x = fn.param(0),
    y = fn.param(1),
    g = vjp ? fn.param(2) : null,
    out = vjp ? fn.param(3) : null,
    rows = fn.param(vjp ? 4 : 2),
    dim = fn.param(vjp ? 5 : 3),
    eps = fn.param(vjp ? 6 : 4);
  const r = fn.local('i32'),
    rowBytes = fn.local('i32'),
    off = fn.local('i32'),
    pa = fn.local('i32'),
    pb = fn.local('i32'),
    k = fn.local('i32'),
    acc = fn.local('v128'),
    h = fn.local('f32'),
    norm: Both = { v: fn.local('v128'), s: fn.local('f32') },
    dot: Both = { v: fn.local('v128'), s: fn.local('f32') },
    pX = fn.local('i32'),
    pY = fn.local('i32'),
    pG = fn.local('i32'),
    pO = fn.local('i32'),
    end = fn.local('i32'),
    vecEnd = fn.local('i32');
  fn.get(dim).i32Const(4).i32Mul().set(rowBytes);
  fn.forLoop(
    r,
    () => fn.i32Const(0),
    () => fn.get(rows),
    1,
    () => {
      fn.get(r).get(rowBytes).i32Mul().set(off);
      // norm = sqrt(Σ x² + eps)
      fn.get(x).get(off).i32Add().tee(pa).set(pb);
      emitRowDot(fn, pa, pb, dim, acc, h, k);
      fn.get(eps).f32Add().f32Sqrt().tee(norm.s).f32x4Splat().set(norm.v);
      fn.get(y).get(off).i32Add().set(pY);
      if (!vjp) {
        fn.get(x).get(off).i32Add().set(pX);
        emitRowLoop(fn, [pY, pX], rowBytes, end, vecEnd, (L) => {
          L.store(pY, () => {
            L.load(pX);
            L.get(norm);
            L.div();
          });
        });
        return;
      }
      // dot = Σ g·y
      fn.get(g!).get(off).i32Add().set(pa);
      fn.get(pY).set(pb);
      emitRowDot(fn, pa, pb, dim, acc, h, k);
      fn.tee(dot.s).f32x4Splat().set(dot.v);
      fn.get(out!).get(off).i32Add().set(pO);
      fn.get(g!).get(off).i32Add().set(pG);
      emitRowLoop(fn, [pO, pG, pY], rowBytes, end, vecEnd, (L) => {
        L.store(pO, () => {
          L.load(pG);
          L.load(pY);
          L.get(dot);
          L.mul();
          L.sub();
          L.get(norm);
          L.div();
        });
      });
    },
  );
  return fn;
}

function buildAddRowVector(): FunctionBuilder {
  const fn = new FunctionBuilder('addRowVector', ['i32', 'i32', 'i32', 'i32']);
  const [y, rows, dim, bias] = [0, 1, 2, 3].map((q) => fn.param(q)) as Local[];
  const r = fn.local('i32'),
    rowBytes = fn.local('i32'),
    pY = fn.local('i32'),
    pB = fn.local('i32'),
    end = fn.local('i32'),
    vecEnd = fn.local('i32');
  fn.get(dim!).i32Const(4).i32Mul().set(rowBytes);
  fn.forLoop(
    r,
    () => fn.i32Const(0),
    () => fn.get(rows!),
    1,
    () => {
      fn.get(y!).get(r).get(rowBytes).i32Mul().i32Add().set(pY);
      fn.get(bias!).set(pB);
      emitRowLoop(fn, [pY, pB], rowBytes, end, vecEnd, (L) => {
        L.store(pY, () => {
          L.load(pY);
          L.load(pB);
          L.add();
        });
      });
    },
  );
  return fn;
}

function buildAddColumnSums(): FunctionBuilder {
  const fn = new FunctionBuilder('addColumnSums', ['i32', 'i32', 'i32', 'i32']);
  const [x, rows, dim, out] = [0, 1, 2, 3].map((q) => fn.param(q)) as Local[];
  const r = fn.local('i32'),
    c = fn.local('i32'),
    px = fn.local('i32'),
    po = fn.local('i32');
  fn.get(x!).set(px);
  fn.forLoop(
    r,
    () => fn.i32Const(0),
    () => fn.get(rows!),
    1,
    () => {
      fn.get(out!).set(po);
      fn.forLoop(
        c,
        () => fn.i32Const(0),
        () => fn.get(dim!),
        1,
        () => {
          fn.get(po).get(po).f64Load().get(px).f32Load().f64PromoteF32().f64Add().f64Store();
          fn.get(po).i32Const(8).i32Add().set(po);
          fn.get(px).i32Const(4).i32Add().set(px);
        },
      );
    },
  );
  return fn;
}

function buildGatherRows(): FunctionBuilder {
  const fn = new FunctionBuilder('gatherRows', ['i32', 'i32', 'i32', 'i32', 'i32', 'i32'], ['i32']);
  const [src, ids, n, dim, dst, order] = [0, 1, 2, 3, 4, 5].map((q) => fn.param(q)) as Local[];
  const rowBytes = fn.local('i32'),
    pS = fn.local('i32'),
    pD = fn.local('i32'),
    end = fn.local('i32'),
    vecEnd = fn.local('i32');
  fn.get(dim!).i32Const(4).i32Mul().set(rowBytes);
  const sink = emitVisitRows(fn, ids!, n!, order!, rowBytes, [src!], (r, off) => {
    fn.get(src!).get(off).i32Add().set(pS);
    fn.get(dst!).get(r).get(rowBytes).i32Mul().i32Add().set(pD);
    emitRowLoop(fn, [pD, pS], rowBytes, end, vecEnd, (L) => {
      L.store(pD, () => L.load(pS));
    });
  });
  fn.get(sink);
  return fn;
}

/** The sparse module's bytes (no constant pool: constants are splatted parameters). */
export function buildSparseModule(_constBase = 0): Uint8Array {
  const mod = new ModuleBuilder().importMemory('env', 'memory', 1);
  mod.add(buildAdamRows());
  mod.add(buildSgdRows());
  mod.add(buildSgdMomentumRows());
  mod.add(buildScatterRows());
  mod.add(buildFirstNonFinite());
  mod.add(buildSoftmaxStats());
  mod.add(buildSoftmaxScale());
  mod.add(buildCountAtLeast());
  mod.add(buildL2NormalizeRows(false));
  mod.add(buildL2NormalizeRows(true));
  mod.add(buildAddRowVector());
  mod.add(buildAddColumnSums());
  mod.add(buildGatherRows());
  return mod.emit();
}
