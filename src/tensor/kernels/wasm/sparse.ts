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

/** The functions the sparse module exports (pointers are byte offsets). */
export interface SparseKernelExports {
  /**
   * Adam/AdamW over rows ids[0..n) of theta/m/v ([*, dim] float32), with
   * the gradient rows g[r·dim ..] (see adamRowsReference in ../sparse.ts):
   *   g' = g·gscale;  m = β1·m + (1-β1)·g';  v = β2·v + ((1-β2)·g')·g'
   *   θ = θ·decay - (alpha·m) / (sqrt(v)·k2 + ε)
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
  ): void;
  /** SGD without momentum: θ = θ - lr·(g·gscale + λ·θ). */
  sgdRows(theta: number, g: number, ids: number, n: number, dim: number, gscale: number, wd: number, lr: number): void;
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
  ): void;
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

/**
 * Touch-ahead, a software prefetch: the table rows a kernel updates are
 * scattered over tens of MB, so each row's first access waits on memory.
 * Loading one float of every 64-byte line of the rows `ahead` positions
 * later (into `sink`, which the function returns so the loads stay) lets
 * those misses overlap with the arithmetic on the current row.
 */
function buildAdamRows(): FunctionBuilder {
  const fn = new FunctionBuilder(
    'adamRows',
    ['i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'f32', 'f32', 'f32', 'f32', 'f32', 'f32', 'f32', 'f32', 'f32'],
    [],
  );
  const [theta, m, v, g, ids, n, dim] = [0, 1, 2, 3, 4, 5, 6].map((i) => fn.param(i)) as Local[];
  const gscale = splatParam(fn, 7),
    b1 = splatParam(fn, 8),
    omb1 = splatParam(fn, 9),
    b2 = splatParam(fn, 10),
    omb2 = splatParam(fn, 11),
    k2 = splatParam(fn, 12),
    eps = splatParam(fn, 13),
    alpha = splatParam(fn, 14),
    decay = splatParam(fn, 15);
  const r = fn.local('i32'),
    rowBytes = fn.local('i32'),
    off = fn.local('i32'),
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
  fn.get(g).set(pG);
  fn.forLoop(
    r,
    () => fn.i32Const(0),
    () => fn.get(n),
    1,
    () => {
      fn.get(ids).get(r).i32Const(4).i32Mul().i32Add().i32Load().get(rowBytes).i32Mul().set(off);
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
    },
  );
  return fn;
}

function buildSgdRows(): FunctionBuilder {
  const fn = new FunctionBuilder('sgdRows', ['i32', 'i32', 'i32', 'i32', 'i32', 'f32', 'f32', 'f32'], []);
  const [theta, g, ids, n, dim] = [0, 1, 2, 3, 4].map((i) => fn.param(i)) as Local[];
  const gscale = splatParam(fn, 5),
    wd = splatParam(fn, 6),
    lr = splatParam(fn, 7);
  const r = fn.local('i32'),
    rowBytes = fn.local('i32'),
    pT = fn.local('i32'),
    pG = fn.local('i32'),
    end = fn.local('i32'),
    vecEnd = fn.local('i32');
  fn.get(dim).i32Const(4).i32Mul().set(rowBytes);
  fn.get(g).set(pG);
  fn.forLoop(
    r,
    () => fn.i32Const(0),
    () => fn.get(n),
    1,
    () => {
      fn.get(theta).get(ids).get(r).i32Const(4).i32Mul().i32Add().i32Load().get(rowBytes).i32Mul().i32Add().set(pT);
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
    },
  );
  return fn;
}

function buildSgdMomentumRows(): FunctionBuilder {
  const fn = new FunctionBuilder(
    'sgdMomentumRows',
    ['i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'f32', 'f32', 'f32', 'f32', 'i32'],
    [],
  );
  const [theta, buf, g, ids, n, dim] = [0, 1, 2, 3, 4, 5].map((i) => fn.param(i)) as Local[];
  const gscale = splatParam(fn, 6),
    wd = splatParam(fn, 7),
    mu = splatParam(fn, 8),
    lr = splatParam(fn, 9);
  const nesterov = fn.param(10);
  const r = fn.local('i32'),
    rowBytes = fn.local('i32'),
    off = fn.local('i32'),
    pT = fn.local('i32'),
    pB = fn.local('i32'),
    pG = fn.local('i32'),
    end = fn.local('i32'),
    vecEnd = fn.local('i32');
  const gv = temp(fn),
    bv = temp(fn);
  fn.get(dim).i32Const(4).i32Mul().set(rowBytes);
  for (const nest of [false, true]) {
    // Two copies of the loop, chosen once: no branch per element.
    fn.get(nesterov);
    if (!nest) fn.i32Eqz();
    fn.if(() => {
      fn.get(g).set(pG);
      fn.forLoop(
        r,
        () => fn.i32Const(0),
        () => fn.get(n),
        1,
        () => {
          fn.get(ids).get(r).i32Const(4).i32Mul().i32Add().i32Load().get(rowBytes).i32Mul().set(off);
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
        },
      );
    });
  }
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

/** The sparse module's bytes (no constant pool: constants are splatted parameters). */
export function buildSparseModule(_constBase = 0): Uint8Array {
  const mod = new ModuleBuilder().importMemory('env', 'memory', 1);
  mod.add(buildAdamRows());
  mod.add(buildSgdRows());
  mod.add(buildSgdMomentumRows());
  mod.add(buildScatterRows());
  mod.add(buildFirstNonFinite());
  return mod.emit();
}
