/**
 * Sparse training kernels: the optimiser updates of the rows a step touched
 * (Adam/AdamW, SGD with and without momentum) and the sparse row product of
 * embedding bags, each as a plain-TypeScript reference loop and a wrapper
 * that runs the WebAssembly SIMD kernel (wasm/sparse.ts) when it can.
 *
 * Float32 arithmetic. The references compute in float32: every operation is
 * rounded with Math.fround, in the order written. For float32 operands a
 * float64 +, -, ·, / or sqrt followed by one rounding to float32 is the
 * correctly rounded float32 result (double rounding is innocuous when the
 * wider format has at least 2p + 2 bits, 53 >= 2·24 + 2), which is what the
 * wasm f32 / f32x4 instructions compute. So kernel and reference agree BIT FOR
 * BIT (property-tested), and a run that uses the kernel in one place (Node)
 * and the reference in another (a browser page before initWasm()) still gives
 * identical numbers. This is a change from the float64 arithmetic the
 * optimisers used before (one rounding at the end): the results differ in
 * the last bits, deterministically.
 *
 * Memory. The kernels only see wasm memory. `HeapArray` is a float32 array
 * ALLOCATED there (an embedding table, an optimiser moment), so a step
 * updates it in place; only the small inputs (the gradient rows, the ids)
 * are copied in. A HeapArray's `data` view must be re-read after anything
 * that may allocate, because growing the wasm memory detaches older views.
 * Where wasm is unavailable, a HeapArray is an ordinary Float32Array and the
 * wrappers run the references.
 */
import { ArgumentError, InternalError, NonFiniteError, ShapeError, describe } from '../../errors.js';
import { Temps, defineWasmExtension, tryState, type WasmState } from './wasm/index.js';
import { buildSparseModule, type SparseKernelExports } from './wasm/sparse.js';

const f = Math.fround;

const sparseModule = defineWasmExtension<SparseKernelExports>('sparse', buildSparseModule);

/** The training kernels (this module's and the generic ones) and the shared memory, or null where wasm is unavailable. */
export function trainingKernels(): { st: WasmState; ex: SparseKernelExports } | null {
  return kernels();
}

function kernels(): { st: WasmState; ex: SparseKernelExports } | null {
  const st = tryState();
  if (st === null) return null;
  const ex = sparseModule.exports();
  return ex === null ? null : { st, ex };
}

/** Whether the sparse wasm kernels can run now. */
export function sparseKernelsAvailable(): boolean {
  return kernels() !== null;
}

// ---------------------------------------------------------------------------
// HeapArray
// ---------------------------------------------------------------------------

const released =
  typeof FinalizationRegistry === 'function'
    ? new FinalizationRegistry<number>((ptr) => {
        tryState()?.heap.free(ptr);
      })
    : null;

/**
 * A zero-initialised float32 array of `length` elements in the kernels' wasm
 * memory (or in JS memory where wasm is unavailable). Read `data` afresh
 * whenever you use it: the view is re-created after the memory grows. The
 * wasm block is freed when the HeapArray is garbage collected, or at once by
 * release(); a `data` view must not outlive its HeapArray.
 */
export class HeapArray {
  readonly length: number;
  /** Byte offset in the wasm memory, or -1 for a JS array. */
  readonly ptr: number;
  #view: Float32Array;
  readonly #st: WasmState | null;

  constructor(length: number, opts: { wasm?: boolean } = {}) {
    if (!Number.isInteger(length) || length < 0 || length > 2 ** 31 - 1)
      throw new ArgumentError('HeapArray', `length must be an integer in [0, 2^31), got ${describe(length)}`);
    this.length = length;
    const st = opts.wasm === false || length === 0 ? null : (kernels()?.st ?? null);
    let ptr = -1;
    if (st !== null) {
      try {
        const before = st.memory.buffer.byteLength;
        ptr = st.heap.alloc(length * 4);
        // Memory beyond the old end is fresh (zero, and not yet resident); a reused block must be cleared.
        const dirty = Math.min(ptr + length * 4, before) - ptr;
        if (dirty > 0) new Uint8Array(st.memory.buffer, ptr, dirty).fill(0);
      } catch {
        ptr = -1; // the memory could not grow: use a JS array
      }
    }
    this.ptr = ptr;
    this.#st = ptr >= 0 ? st : null;
    this.#view = ptr >= 0 ? new Float32Array(st!.memory.buffer, ptr, length) : new Float32Array(length);
    if (ptr >= 0) released?.register(this, ptr, this);
  }

  #freed = false;

  /**
   * Frees the wasm block now instead of when the array is garbage collected
   * (a 32-bit wasm memory holds 4 GiB, and a long process that trains run
   * after run cannot wait for the collector: the finalizers run only between
   * tasks). Using the array afterwards is an InternalError. Idempotent.
   */
  release(): void {
    if (this.#freed) return;
    this.#freed = true;
    if (this.ptr >= 0) {
      released?.unregister(this);
      this.#st!.heap.free(this.ptr);
    }
    this.#view = new Float32Array(0);
  }

  /** Whether release() was called. */
  get isReleased(): boolean {
    return this.#freed;
  }

  /** Whether the array lives in wasm memory (the kernels update it in place). */
  get onHeap(): boolean {
    this.#live();
    return this.ptr >= 0;
  }

  #live(): void {
    if (this.#freed) throw new InternalError('HeapArray', 'the array was used after release()');
  }

  /** The elements (a view into wasm memory, or a plain array). */
  get data(): Float32Array {
    this.#live();
    const st = this.#st;
    if (st !== null && this.#view.buffer !== st.memory.buffer)
      this.#view = new Float32Array(st.memory.buffer, this.ptr, this.length);
    return this.#view;
  }

  /** A HeapArray holding a copy of `values`. */
  static from(values: ArrayLike<number>, opts: { wasm?: boolean } = {}): HeapArray {
    const a = new HeapArray(values.length, opts);
    a.data.set(values);
    return a;
  }
}

/** Copies `src` into wasm memory (a temporary of `t`); returns its byte offset. */
function int32In(st: WasmState, t: Temps, src: Int32Array): number {
  const p = t.alloc(src.length * 4);
  new Int32Array(st.memory.buffer, p, src.length).set(src);
  return p;
}

// ---------------------------------------------------------------------------
// Visiting order of large row sets
// ---------------------------------------------------------------------------

/** From this many rows on, row updates and gathers visit the rows in table order (visitOrder). */
export const ORDERED_ROWS_MIN = 16384;

const orders = new WeakMap<Int32Array, Int32Array>();

/**
 * For a large set of row ids (the full softmax touches ~146 000 of 262 144
 * rows, in first-use order, i.e. scattered over the table), the positions
 * 0..n-1 sorted by id: visiting rows in this order streams through the
 * table and the moments instead of fetching every row at random (measured
 * ~2.6x on the Adam update). Null below ORDERED_ROWS_MIN rows. Cached per
 * ids array (identity): the trainer passes the same array every step. The
 * order never changes a result (each row is visited once and rows are
 * independent), so even a stale order, for an array mutated since, is
 * correct; it is only slower.
 */
export function visitOrder(ids: Int32Array): Int32Array | null {
  if (ids.length < ORDERED_ROWS_MIN) return null;
  let o = orders.get(ids);
  if (o === undefined) {
    o = Int32Array.from(ids.keys()).sort((x, y) => ids[x]! - ids[y]!);
    orders.set(ids, o);
  }
  return o;
}

/**
 * Rows ids[r] of a [*, dim] HeapArray as a fresh Float32Array [ids.length, dim]
 * (ids trusted), copied by the wasm kernel when the array lives in wasm
 * memory: its short vector loop keeps many rows' cache misses in flight at
 * once, where a scalar JS copy waits for each row in turn.
 */
export function gatherRows(table: HeapArray, ids: Int32Array, dim: number): Float32Array {
  const n = ids.length;
  const out = new Float32Array(n * dim);
  const k = table.onHeap && n * dim >= SCATTER_WASM_MIN ? kernels() : null;
  const order = visitOrder(ids);
  if (k === null) {
    const data = table.data;
    for (let q = 0; q < n; q++) {
      const r = order === null ? q : order[q]!;
      const s = ids[r]! * dim,
        o = r * dim;
      for (let c = 0; c < dim; c++) out[o + c] = data[s + c]!;
    }
    return out;
  }
  const t = new Temps(k.st);
  try {
    const pi = int32In(k.st, t, ids),
      po = order === null ? 0 : int32In(k.st, t, order),
      pd = t.alloc(n * dim * 4);
    k.ex.gatherRows(table.ptr, pi, n, dim, pd, po);
    out.set(new Float32Array(k.st.memory.buffer, pd, n * dim));
  } finally {
    t.free();
  }
  return out;
}

// ---------------------------------------------------------------------------
// Checks shared by the optimisers
// ---------------------------------------------------------------------------

/** The flat index of the first NaN or ±Infinity in `a`, or -1. */
export function firstNonFinite(a: Float32Array | Float64Array): number {
  const k = a instanceof Float32Array && a.length >= 1024 ? kernels() : null;
  if (k !== null) {
    const t = new Temps(k.st);
    try {
      return k.ex.firstNonFinite(t.input(a as Float32Array), a.length);
    } finally {
      t.free();
    }
  }
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i]!)) return i;
  return -1;
}

/**
 * Runs a row-update kernel: copies the gradient rows (ids.length × dim) and
 * the ids into wasm memory, with the table-order visit order for large sets
 * (visitOrder; 0 = in given order), calls `run` with their pointers, and
 * frees them.
 */
function withRowUpdate(
  k: { st: WasmState; ex: SparseKernelExports },
  g: Float32Array,
  ids: Int32Array,
  dim: number,
  run: (pg: number, pi: number, po: number) => void,
): void {
  const order = visitOrder(ids);
  const t = new Temps(k.st);
  try {
    run(t.input(g, 0, ids.length * dim), int32In(k.st, t, ids), order === null ? 0 : int32In(k.st, t, order));
  } finally {
    t.free();
  }
}

// ---------------------------------------------------------------------------
// Adam / AdamW
// ---------------------------------------------------------------------------

/**
 * One step's Adam constants, as float32 values (see adamParams):
 *   gscale  the clipping factor;  b1, omb1 = 1 - β1;  b2, omb2 = 1 - β2
 *   k2 = 1 / sqrt(1 - β2ᵗ);  alpha = lr / (1 - β1ᵗ);  eps;  decay = 1 - lr·λ
 */
export interface AdamF32 {
  gscale: number;
  b1: number;
  omb1: number;
  b2: number;
  omb2: number;
  k2: number;
  eps: number;
  alpha: number;
  decay: number;
}

/**
 * Adam(W)'s per-step constants for step t (from 1), each computed in float64
 * and rounded once to float32. With them the update
 *   θ ← θ - lr·λ·θ - lr·(m / (1-β1ᵗ)) / (sqrt(v / (1-β2ᵗ)) + ε)
 * becomes θ ← θ·decay - (alpha·m) / (sqrt(v)·k2 + ε): the same maths with one
 * square root and one division per element.
 */
export function adamParams(o: {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  t: number;
  gscale: number;
}): AdamF32 {
  return {
    gscale: f(o.gscale),
    b1: f(o.beta1),
    omb1: f(1 - o.beta1),
    b2: f(o.beta2),
    omb2: f(1 - o.beta2),
    k2: f(1 / Math.sqrt(1 - Math.pow(o.beta2, o.t))),
    eps: f(o.eps),
    alpha: f(o.lr / (1 - Math.pow(o.beta1, o.t))),
    decay: f(1 - o.lr * o.weightDecay),
  };
}

/**
 * The reference: rows ids[r] of theta, m, v ([*, dim]) take the gradient
 * row r of g (from gOffset). `ids` null means rows 0..n-1 in order.
 */
export function adamRowsReference(
  theta: Float32Array,
  m: Float32Array,
  v: Float32Array,
  g: Float32Array,
  ids: Int32Array | null,
  n: number,
  dim: number,
  p: AdamF32,
): void {
  const { gscale, b1, omb1, b2, omb2, k2, eps, alpha, decay } = p;
  for (let r = 0; r < n; r++) {
    const off = (ids === null ? r : ids[r]!) * dim,
      go = r * dim;
    for (let k = 0; k < dim; k++) {
      const i = off + k;
      const gi = f(g[go + k]! * gscale);
      const mi = f(f(b1 * m[i]!) + f(omb1 * gi));
      const vi = f(f(b2 * v[i]!) + f(f(omb2 * gi) * gi));
      m[i] = mi;
      v[i] = vi;
      const den = f(f(f(Math.sqrt(vi)) * k2) + eps);
      theta[i] = f(f(theta[i]! * decay) - f(f(alpha * mi) / den));
    }
  }
}

/**
 * Adam rows on the fastest path: the wasm kernel in place when theta, m and
 * v all live in wasm memory, else the reference (bit-identical). `g` holds
 * ids.length gradient rows. The caller validates ids (in range, distinct).
 */
export function adamRows(
  theta: HeapArray,
  m: HeapArray,
  v: HeapArray,
  g: Float32Array,
  ids: Int32Array,
  dim: number,
  p: AdamF32,
): void {
  const k = theta.onHeap && m.onHeap && v.onHeap ? kernels() : null;
  if (k === null) return adamRowsReference(theta.data, m.data, v.data, g, ids, ids.length, dim, p);
  withRowUpdate(k, g, ids, dim, (pg, pi, po) =>
    k.ex.adamRows(
      theta.ptr,
      m.ptr,
      v.ptr,
      pg,
      pi,
      ids.length,
      dim,
      p.gscale,
      p.b1,
      p.omb1,
      p.b2,
      p.omb2,
      p.k2,
      p.eps,
      p.alpha,
      p.decay,
      po,
    ),
  );
}

// ---------------------------------------------------------------------------
// SGD
// ---------------------------------------------------------------------------

/** One step's SGD constants as float32 values; `momentum` 0 means plain SGD (no buffer). */
export interface SgdF32 {
  gscale: number;
  wd: number;
  mu: number;
  lr: number;
  nesterov: boolean;
}

export function sgdParams(o: {
  lr: number;
  momentum: number;
  nesterov: boolean;
  weightDecay: number;
  gscale: number;
}): SgdF32 {
  return { gscale: f(o.gscale), wd: f(o.weightDecay), mu: f(o.momentum), lr: f(o.lr), nesterov: o.nesterov };
}

/**
 * The reference: g' = g·gscale + λ·θ; with momentum b = μ·b + g' and
 * step = g' + μ·b (Nesterov) or b, else step = g'; θ = θ - lr·step.
 */
export function sgdRowsReference(
  theta: Float32Array,
  buf: Float32Array | null,
  g: Float32Array,
  ids: Int32Array | null,
  n: number,
  dim: number,
  p: SgdF32,
): void {
  const { gscale, wd, mu, lr, nesterov } = p;
  for (let r = 0; r < n; r++) {
    const off = (ids === null ? r : ids[r]!) * dim,
      go = r * dim;
    for (let k = 0; k < dim; k++) {
      const i = off + k;
      const gi = f(f(g[go + k]! * gscale) + f(wd * theta[i]!));
      let step = gi;
      if (p.mu > 0) {
        const b = f(f(mu * buf![i]!) + gi);
        buf![i] = b;
        step = nesterov ? f(gi + f(mu * b)) : b;
      }
      theta[i] = f(theta[i]! - f(lr * step));
    }
  }
}

/** SGD rows on the fastest path (see adamRows). `buf` is null when momentum is 0. */
export function sgdRows(
  theta: HeapArray,
  buf: HeapArray | null,
  g: Float32Array,
  ids: Int32Array,
  dim: number,
  p: SgdF32,
): void {
  const usesBuf = p.mu > 0;
  const k = theta.onHeap && (!usesBuf || buf!.onHeap) ? kernels() : null;
  if (k === null) return sgdRowsReference(theta.data, usesBuf ? buf!.data : null, g, ids, ids.length, dim, p);
  withRowUpdate(k, g, ids, dim, (pg, pi, po) => {
    if (usesBuf)
      k.ex.sgdMomentumRows(
        theta.ptr,
        buf!.ptr,
        pg,
        pi,
        ids.length,
        dim,
        p.gscale,
        p.wd,
        p.mu,
        p.lr,
        p.nesterov ? 1 : 0,
        po,
      );
    else k.ex.sgdRows(theta.ptr, pg, pi, ids.length, dim, p.gscale, p.wd, p.lr, po);
  });
}

// ---------------------------------------------------------------------------
// Sparse row products (embedding bags)
// ---------------------------------------------------------------------------

/**
 * The reference: out[to[k]] += w[k]·src[from[k]] for rows of `dim` floats,
 * k in order, in float32 (w null: weight 1, a plain add). `out` must be
 * zeroed (or hold what to add to). Indices are trusted.
 */
export function scatterRowsReference(
  src: Float32Array,
  out: Float32Array,
  from: Int32Array,
  to: Int32Array,
  w: Float32Array | null,
  dim: number,
): void {
  for (let k = 0; k < from.length; k++) {
    const s = from[k]! * dim,
      d = to[k]! * dim;
    if (w === null) for (let i = 0; i < dim; i++) out[d + i] = f(out[d + i]! + src[s + i]!);
    else {
      const wk = w[k]!;
      for (let i = 0; i < dim; i++) out[d + i] = f(out[d + i]! + f(wk * src[s + i]!));
    }
  }
}

/** Below this many multiply-adds the reference runs (the copies into wasm memory cost more). */
export const SCATTER_WASM_MIN = 4096;

/**
 * out [nOut, dim] = zeros, then out[to[k]] += w[k]·src[from[k]]
 * (src [nSrc, dim]), on the wasm kernel when available, else the reference
 * (bit-identical). Every index is checked (ShapeError naming `op`).
 */
export function scatterRows(
  op: string,
  src: Float32Array,
  nSrc: number,
  from: Int32Array,
  to: Int32Array,
  w: Float32Array | null,
  nOut: number,
  dim: number,
): Float32Array {
  const out = new Float32Array(nOut * dim);
  const k = from.length * dim >= SCATTER_WASM_MIN ? kernels() : null;
  if (k === null) {
    for (let e = 0; e < from.length; e++) checkEntry(op, from, to, e, nSrc, nOut, false);
    scatterRowsReference(src, out, from, to, w, dim);
    return out;
  }
  const t = new Temps(k.st);
  try {
    const ps = t.input(src, 0, nSrc * dim),
      po = t.alloc(nOut * dim * 4),
      pf = int32In(k.st, t, from),
      pt = int32In(k.st, t, to),
      pw = w === null ? 0 : t.input(w);
    new Float32Array(k.st.memory.buffer, po, nOut * dim).fill(0);
    const bad = k.ex.scatterRows(ps, po, pf, pt, pw, from.length, dim, nSrc, nOut);
    if (bad >= 0) checkEntry(op, from, to, bad, nSrc, nOut, true);
    out.set(new Float32Array(k.st.memory.buffer, po, nOut * dim));
  } finally {
    t.free();
  }
  return out;
}

function checkEntry(
  op: string,
  from: Int32Array,
  to: Int32Array,
  e: number,
  nSrc: number,
  nOut: number,
  known: boolean,
): void {
  const a = from[e]!,
    b = to[e]!;
  if (!(a >= 0 && a < nSrc))
    throw new ShapeError(op, `entry ${e} reads row ${a}, outside the ${nSrc} rows given; need 0 <= row < ${nSrc}`);
  if (!(b >= 0 && b < nOut))
    throw new ShapeError(op, `entry ${e} writes row ${b}, outside the ${nOut} output rows; need 0 <= row < ${nOut}`);
  if (known) throw new Error(`internal: scatterRows flagged entry ${e} but its rows are in range`);
}

/** Throws a NonFiniteError naming `what` if `a` holds a NaN or ±Infinity. */
export function requireFinite(op: string, what: string, a: Float32Array | Float64Array): void {
  const i = firstNonFinite(a);
  if (i >= 0) throw new NonFiniteError(op, `${what} has ${a[i]} at flat index ${i}; the step was rejected`);
}
