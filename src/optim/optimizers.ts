/**
 * Optimisers: SGD (with momentum) and Adam/AdamW.
 *
 * Dense parameters are trees of tensors updated functionally:
 * `params = opt.step(params, grads, sparse)` returns new tensors. Large
 * embedding tables are updated sparsely, in place in their EmbeddingTable
 * store: `sparse` lists, per named table, the rows a step touched and their
 * gradient. Sparse updates are "lazy" (as TF's LazyAdam / PyTorch's
 * SparseAdam): moments and weight decay of untouched rows do not move.
 *
 * Update rules (g the gradient after clipping, t the step count from 1):
 *   SGD:    v ← μ·v + g;  θ ← θ - lr·(g + μ·v if nesterov else v)   (v = g when μ = 0)
 *   Adam:   m ← β1·m + (1-β1)·g;  v ← β2·v + (1-β2)·g²
 *           θ ← θ - lr·(m / (1-β1ᵗ)) / (sqrt(v / (1-β2ᵗ)) + ε)
 *   AdamW:  θ ← θ - lr·λ·θ - (the Adam step), both from the old θ
 *           (decoupled weight decay, Loshchilov & Hutter; as PyTorch's AdamW)
 *   SGD weight decay is coupled (g ← g + λ·θ), as in PyTorch.
 * Gradient clipping by global norm (over dense and sparse gradients together):
 *   g ← g · min(1, clipNorm / ||g||₂).
 *
 * Arithmetic. Float32 parameters (every table, and the dense float32
 * leaves) are updated in float32 arithmetic, one rounding per operation in
 * a fixed order (src/tensor/kernels/sparse.ts): Adam as
 *   θ ← θ·(1 - lr·λ) - (lr/(1-β1ᵗ))·m / (sqrt(v)·(1/sqrt(1-β2ᵗ)) + ε)
 * with the per-step constants rounded to float32 once. The table rows run on
 * the WebAssembly SIMD kernels, in place in wasm memory, and the dense
 * leaves on the plain-TypeScript reference of the same arithmetic, so both
 * are bit-identical to the reference wherever they run. Float64 parameters
 * keep float64 arithmetic (the moments are float32 either way).
 */
import { ArgumentError, NonFiniteError, ShapeError, checkOptions, describe, fmtShape } from '../errors.js';
import { isFloat } from '../tensor/dtype.js';
import { shapesEqual } from '../tensor/shape.js';
import { isTensor, unsafeData, wrap, type Tensor } from '../tensor/tensor.js';
import { flatten } from '../autograd/tree.js';
import {
  HeapArray,
  adamParams,
  adamRows,
  adamRowsReference,
  firstNonFinite,
  sgdParams,
  sgdRows,
  sgdRowsReference,
} from '../tensor/kernels/sparse.js';
import type { EmbeddingTable } from '../nn/table.js';

export interface SparseGrad {
  table: EmbeddingTable;
  /** Rows touched this step (distinct ids). */
  ids: Int32Array;
  /** [ids.length, dim] gradient of those rows. */
  grad: Tensor;
}

export interface OptimizerCommon {
  lr: number;
  /** Clip the global gradient norm to this value (off when undefined). */
  clipNorm?: number;
}

function checkNum(
  op: string,
  name: string,
  v: unknown,
  lo: number,
  hi: number,
  loOpen = false,
  hiOpen = false,
): number {
  if (
    typeof v !== 'number' ||
    !Number.isFinite(v) ||
    v < lo ||
    v > hi ||
    (loOpen && v === lo) ||
    (hiOpen && v === hi)
  ) {
    throw new ArgumentError(
      op,
      `${name} must be a number in ${loOpen ? '(' : '['}${lo}, ${hi}${hiOpen ? ')' : ']'}, got ${describe(v)}`,
    );
  }
  return v;
}

/** Global L2 norm of dense and sparse gradients. */
export function globalNorm(grads: Tensor[], sparse: readonly SparseGrad[] = []): number {
  let s = 0;
  for (const t of [...grads, ...sparse.map((g) => g.grad)]) {
    const d = unsafeData(t);
    for (let i = 0; i < d.length; i++) s += d[i]! * d[i]!;
  }
  return Math.sqrt(s);
}

/** The factor min(1, maxNorm / norm) that clipping by global norm multiplies every gradient by. */
export function clipFactor(norm: number, maxNorm: number | undefined): number {
  if (maxNorm === undefined || norm <= maxNorm) return 1;
  return maxNorm / norm;
}

/**
 * Per table: a stamp per row id, to find repeated ids in O(ids) without a
 * Set (stamp[id] === the current check's number means "seen").
 */
const idStamps = new WeakMap<EmbeddingTable, { stamp: Int32Array; epoch: number }>();

function firstRepeat(table: EmbeddingTable, ids: Int32Array): number {
  let s = idStamps.get(table);
  if (s === undefined || s.stamp.length !== table.vocab) {
    s = { stamp: new Int32Array(table.vocab), epoch: 0 };
    idStamps.set(table, s);
  }
  if (++s.epoch === 2 ** 31 - 1) {
    s.stamp.fill(0);
    s.epoch = 1;
  }
  const { stamp, epoch } = s;
  for (let r = 0; r < ids.length; r++) {
    const id = ids[r]!;
    if (stamp[id] === epoch) return r;
    stamp[id] = epoch;
  }
  return -1;
}

/** A Float32Array holding `t`'s values (the storage itself when it is float32: read only). */
function float32Of(t: Tensor): Float32Array {
  const d = unsafeData(t);
  return d instanceof Float32Array ? d : Float32Array.from(d);
}

abstract class Optimizer {
  protected t = 0;
  readonly lr: number;
  readonly clipNorm: number | undefined;
  /** Dense state per parameter leaf (by flattened order) and per table name. */
  protected dense: Float32Array[][] = [];
  protected tables = new Map<string, HeapArray[]>();
  private denseShapes: string[] | null = null;

  constructor(
    protected readonly name: string,
    opts: OptimizerCommon,
    allowed: readonly string[] = [],
  ) {
    checkOptions(name, opts, ['lr', 'clipNorm', ...allowed], { required: true });
    this.lr = checkNum(name, 'lr', opts.lr, 0, 1e6, true);
    this.clipNorm =
      opts.clipNorm === undefined ? undefined : checkNum(name, 'clipNorm', opts.clipNorm, 0, Infinity, true);
  }

  /** Number of steps taken. */
  get steps(): number {
    return this.t;
  }

  protected abstract slots(): number;
  /** Float32 rows `ids` (null: all, as one row of `dim`) of theta with gradient rows g, in float32 arithmetic. */
  protected abstract updateF32(
    theta: Float32Array,
    g: Float32Array,
    state: Float32Array[],
    dim: number,
    scale: number,
  ): void;
  /** The same for rows ids of a table in a HeapArray (the wasm kernels where they can run). */
  protected abstract updateRows(
    theta: HeapArray,
    g: Float32Array,
    state: HeapArray[],
    ids: Int32Array,
    dim: number,
    scale: number,
  ): void;
  /** A float64 parameter, in float64 arithmetic. */
  protected abstract updateF64(theta: Float64Array, g: Float32Array, state: Float32Array[], scale: number): void;

  /**
   * One step: returns the new dense parameters (same tree structure) and
   * updates the sparse tables in place. Everything is validated before
   * anything changes; a non-finite gradient is rejected (NonFiniteError)
   * with no state touched.
   */
  step<T>(params: T, grads: unknown, sparse: Readonly<Record<string, SparseGrad>> = {}): T {
    const op = `${this.name}.step`;
    const p = flatten(op, params, 'params');
    const g = flatten(op, grads, 'grads');
    if (p.leaves.length !== g.leaves.length)
      throw new ShapeError(
        op,
        `grads has ${g.leaves.length} tensors but params has ${p.leaves.length}; need the same tree`,
      );
    const structure = (f: typeof p): string => JSON.stringify(f.rebuild(f.leaves.map((_, i) => i)));
    if (structure(p) !== structure(g))
      throw new ShapeError(
        op,
        `grads ${structure(g)} is not the same tree as params ${structure(p)} (leaf numbers shown); need the same keys and nesting`,
      );
    p.leaves.forEach((t, i) => {
      const gt = g.leaves[i]!;
      if (!isFloat(t.dtype))
        throw new ArgumentError(op, `parameter ${i} is ${t.dtype}; only float parameters can be optimised`);
      if (!shapesEqual(t.shape, gt.shape))
        throw new ShapeError(op, `gradient ${i} is ${fmtShape(gt.shape)} but its parameter is ${fmtShape(t.shape)}`);
    });
    const shapes = p.leaves.map((t) => fmtShape(t.shape));
    if (this.denseShapes !== null && shapes.join(';') !== this.denseShapes.join(';')) {
      throw new ShapeError(
        op,
        `the parameter tree changed since the first step (${this.denseShapes.join(' ')} → ${shapes.join(' ')}); use one optimiser per model`,
      );
    }
    if (sparse === null || typeof sparse !== 'object' || Array.isArray(sparse))
      throw new ArgumentError(op, `sparse must be a record {name: {table, ids, grad}}, got ${describe(sparse)}`);
    const sparseList = Object.entries(sparse);
    for (const [name, s] of sparseList) {
      if (!s || !isTensor(s.grad) || !(s.ids instanceof Int32Array) || !(s.table?.data instanceof Float32Array))
        throw new ArgumentError(op, `sparse.${name} must be {table, ids, grad}, got ${describe(s)}`);
      if (!shapesEqual(s.grad.shape, [s.ids.length, s.table.dim]))
        throw new ShapeError(
          op,
          `sparse.${name}.grad is ${fmtShape(s.grad.shape)}; need [${s.ids.length}, ${s.table.dim}]`,
        );
      const vocab = s.table.vocab;
      for (let r = 0; r < s.ids.length; r++) {
        const id = s.ids[r]!;
        if (!(id >= 0 && id < vocab))
          throw new ArgumentError(op, `sparse.${name}.ids has ${id}; need 0 <= id < ${vocab}`);
      }
      const rep = firstRepeat(s.table, s.ids);
      if (rep >= 0)
        throw new ArgumentError(
          op,
          `sparse.${name}.ids repeats ${s.ids[rep]}; need distinct ids (sum their gradients first)`,
        );
    }
    // State restored by setState must fit what it is applied to (a short moment array would read undefined -> NaN).
    const fits = (slots: readonly ({ length: number } | undefined)[] | undefined, size: number): boolean => {
      if (slots === undefined || slots.length !== this.slots()) return false;
      for (let k = 0; k < slots.length; k++) {
        const s = slots[k];
        if (!(s instanceof Float32Array || s instanceof HeapArray) || s.length !== size) return false;
      }
      return true;
    };
    if (
      this.dense.length > 0 &&
      (this.dense.length !== p.leaves.length || p.leaves.some((t, i) => !fits(this.dense[i], t.size)))
    ) {
      throw new ShapeError(
        op,
        `the optimiser's moments (${this.dense.length} parameters, restored by setState?) do not fit params (${p.leaves.length} tensors: ${shapes.join(' ')}); need the state of this model`,
      );
    }
    for (const [name, s] of sparseList) {
      const st = this.tables.get(name);
      if (st !== undefined && !fits(st, s.table.vocab * s.table.dim))
        throw new ShapeError(
          op,
          `the optimiser's moments of table "${name}" (restored by setState?) do not fit a [${s.table.vocab}, ${s.table.dim}] table`,
        );
    }
    g.leaves.forEach((t, i) => {
      const d = unsafeData(t);
      const k = firstNonFinite(d as Float32Array | Float64Array);
      if (k >= 0)
        throw new NonFiniteError(
          op,
          `gradient of parameter ${i} has ${d[k]} at flat index ${k}; the step was rejected`,
        );
    });
    const sparseGrads = sparseList.map(([, s]) => float32Of(s.grad));
    sparseGrads.forEach((d, i) => {
      const k = firstNonFinite(d);
      if (k >= 0)
        throw new NonFiniteError(
          op,
          `gradient of table "${sparseList[i]![0]}" has ${d[k]} at flat index ${k}; the step was rejected`,
        );
    });

    // All checks passed: mutate state.
    this.denseShapes = shapes;
    this.t++;
    const scale =
      this.clipNorm === undefined
        ? 1
        : clipFactor(
            globalNorm(
              g.leaves,
              sparseList.map(([, s]) => s),
            ),
            this.clipNorm,
          );
    if (this.dense.length === 0)
      this.dense = p.leaves.map((t) => Array.from({ length: this.slots() }, () => new Float32Array(t.size)));
    const next = p.leaves.map((t, i) => {
      const gi = float32Of(g.leaves[i]!);
      // The parameter keeps its dtype (a float64 parameter must not come back as float32).
      if (t.dtype === 'float64') {
        const theta = Float64Array.from(unsafeData(t));
        this.updateF64(theta, gi, this.dense[i]!, scale);
        return wrap(theta, t.shape, t.dtype);
      }
      const theta = Float32Array.from(unsafeData(t));
      this.updateF32(theta, gi, this.dense[i]!, theta.length, scale);
      return wrap(theta, t.shape, t.dtype);
    });
    sparseList.forEach(([name, s], i) => {
      let state = this.tables.get(name);
      if (!state) {
        state = Array.from({ length: this.slots() }, () => new HeapArray(s.table.vocab * s.table.dim));
        this.tables.set(name, state);
      }
      this.updateRows(s.table.storage, sparseGrads[i]!, state, s.ids, s.table.dim, scale);
    });
    return p.rebuild(next) as T;
  }

  /** The optimiser state as named tensors (for checkpoints). */
  getState(): Record<string, Tensor> {
    const out: Record<string, Tensor> = { t: wrap(Int32Array.of(this.t), [], 'int32') };
    this.dense.forEach((slots, i) =>
      slots.forEach((s, k) => {
        out[`dense.${i}.${k}`] = wrap(s.slice(), [s.length], 'float32');
      }),
    );
    for (const [name, slots] of this.tables)
      slots.forEach((s, k) => {
        out[`table.${name}.${k}`] = wrap(s.data.slice(), [s.length], 'float32');
      });
    return out;
  }

  /**
   * Frees the sparse tables' state (moments, in wasm memory) now rather than
   * at garbage collection, and forgets it: the next step starts those rows'
   * state from zero, as for a fresh optimiser. train() calls it when a run ends.
   */
  release(): void {
    for (const slots of this.tables.values()) for (const s of slots) s.release();
    this.tables = new Map();
  }

  /** Restores a state captured by getState. */
  setState(state: Record<string, Tensor>): void {
    const op = `${this.name}.setState`;
    if (state === null || typeof state !== 'object')
      throw new ArgumentError(op, `state must be a record of tensors from getState, got ${describe(state)}`);
    const t = state['t'];
    if (!isTensor(t) || t.dtype !== 'int32' || t.size !== 1)
      throw new ArgumentError(op, 'state.t must be an int32 scalar');
    const dense: Float32Array[][] = [];
    const tables = new Map<string, Tensor[]>();
    for (const [key, v] of Object.entries(state)) {
      if (key === 't') continue;
      const m = /^dense\.(\d+)\.(\d+)$/.exec(key) ?? null;
      const tm = /^table\.(.+)\.(\d+)$/.exec(key) ?? null;
      if (!isTensor(v) || v.dtype !== 'float32') throw new ArgumentError(op, `state.${key} must be a float32 tensor`);
      if (m) {
        (dense[Number(m[1])] ??= [])[Number(m[2])] = Float32Array.from(unsafeData(v));
      } else if (tm) {
        const arr = tables.get(tm[1]!) ?? [];
        arr[Number(tm[2])] = v;
        tables.set(tm[1]!, arr);
      } else throw new ArgumentError(op, `unknown state entry "${key}"`);
    }
    this.t = unsafeData(t)[0]!;
    this.dense = dense;
    // Missing slots stay missing (step() then rejects the state as not fitting).
    const heap = new Map<string, HeapArray[]>();
    for (const [name, slots] of tables) {
      const arr: HeapArray[] = [];
      slots.forEach((v, k) => {
        arr[k] = HeapArray.from(unsafeData(v));
      });
      heap.set(name, arr);
    }
    this.tables = heap;
    this.denseShapes = null;
  }
}

export interface SGDOptions extends OptimizerCommon {
  momentum?: number;
  nesterov?: boolean;
  weightDecay?: number;
}

export class SGD extends Optimizer {
  readonly momentum: number;
  readonly nesterov: boolean;
  readonly weightDecay: number;

  constructor(opts: SGDOptions) {
    super('SGD', opts, ['momentum', 'nesterov', 'weightDecay']);
    this.momentum = checkNum('SGD', 'momentum', opts.momentum ?? 0, 0, 1);
    if (opts.nesterov !== undefined && typeof opts.nesterov !== 'boolean')
      throw new ArgumentError('SGD', `nesterov must be true or false, got ${describe(opts.nesterov)}`);
    this.nesterov = opts.nesterov ?? false;
    this.weightDecay = checkNum('SGD', 'weightDecay', opts.weightDecay ?? 0, 0, 1e6);
  }

  protected slots(): number {
    return 1;
  }

  private constants(scale: number) {
    return sgdParams({
      lr: this.lr,
      momentum: this.momentum,
      nesterov: this.nesterov,
      weightDecay: this.weightDecay,
      gscale: scale,
    });
  }

  protected updateF32(theta: Float32Array, g: Float32Array, [buf]: Float32Array[], dim: number, scale: number): void {
    sgdRowsReference(theta, buf!, g, null, 1, dim, this.constants(scale));
  }

  protected updateRows(
    theta: HeapArray,
    g: Float32Array,
    [buf]: HeapArray[],
    ids: Int32Array,
    dim: number,
    scale: number,
  ): void {
    sgdRows(theta, buf!, g, ids, dim, this.constants(scale));
  }

  protected updateF64(theta: Float64Array, g: Float32Array, [buf]: Float32Array[], scale: number): void {
    const { lr, momentum: mu, nesterov, weightDecay: wd } = this;
    for (let i = 0; i < theta.length; i++) {
      const gi = g[i]! * scale + wd * theta[i]!;
      let step = gi;
      if (mu > 0) {
        const v = mu * buf![i]! + gi;
        buf![i] = v;
        step = nesterov ? gi + mu * v : v;
      }
      theta[i] = theta[i]! - lr * step;
    }
  }
}

export interface AdamOptions extends OptimizerCommon {
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Decoupled weight decay λ (AdamW); 0 = plain Adam. */
  weightDecay?: number;
}

export class Adam extends Optimizer {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;

  constructor(opts: AdamOptions, name = 'Adam') {
    super(name, opts, ['beta1', 'beta2', 'eps', 'weightDecay']);
    // beta = 1 would divide by 1 - beta^t = 0 (NaN parameters): need [0, 1).
    this.beta1 = checkNum(name, 'beta1', opts.beta1 ?? 0.9, 0, 1, false, true);
    this.beta2 = checkNum(name, 'beta2', opts.beta2 ?? 0.999, 0, 1, false, true);
    this.eps = checkNum(name, 'eps', opts.eps ?? 1e-8, 0, 1, true);
    this.weightDecay = checkNum(name, 'weightDecay', opts.weightDecay ?? 0, 0, 1e6);
  }

  protected slots(): number {
    return 2;
  }

  private constants(scale: number) {
    return adamParams({
      lr: this.lr,
      beta1: this.beta1,
      beta2: this.beta2,
      eps: this.eps,
      weightDecay: this.weightDecay,
      t: this.t,
      gscale: scale,
    });
  }

  protected updateF32(theta: Float32Array, g: Float32Array, [m, v]: Float32Array[], dim: number, scale: number): void {
    adamRowsReference(theta, m!, v!, g, null, 1, dim, this.constants(scale));
  }

  protected updateRows(
    theta: HeapArray,
    g: Float32Array,
    [m, v]: HeapArray[],
    ids: Int32Array,
    dim: number,
    scale: number,
  ): void {
    adamRows(theta, m!, v!, g, ids, dim, this.constants(scale));
  }

  protected updateF64(theta: Float64Array, g: Float32Array, [m, v]: Float32Array[], scale: number): void {
    const { lr, beta1: b1, beta2: b2, eps, weightDecay: wd } = this;
    const c1 = 1 - Math.pow(b1, this.t),
      c2 = 1 - Math.pow(b2, this.t);
    for (let i = 0; i < theta.length; i++) {
      const gi = g[i]! * scale;
      const mi = b1 * m![i]! + (1 - b1) * gi;
      const vi = b2 * v![i]! + (1 - b2) * gi * gi;
      m![i] = mi;
      v![i] = vi;
      let th = theta[i]! - (lr * (mi / c1)) / (Math.sqrt(vi / c2) + eps);
      if (wd > 0) th -= lr * wd * theta[i]!;
      theta[i] = th;
    }
  }
}

/** AdamW: Adam with decoupled weight decay (default λ = 0.01). */
export class AdamW extends Adam {
  constructor(opts: AdamOptions) {
    if (opts === null || typeof opts !== 'object')
      throw new ArgumentError('AdamW', `options must be an object, got ${describe(opts)}`);
    super({ ...opts, weightDecay: opts.weightDecay ?? 0.01 }, 'AdamW');
  }
}
