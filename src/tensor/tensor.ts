import { ArgumentError, InternalError, fmtShape } from '../errors.js';
import type { DType, TypedArray } from './dtype.js';
import { formatTensor } from './format.js';
import { sizeOf, stridesOf, type Shape } from './shape.js';

/**
 * A node of the autodiff graph, attached to a tensor that was computed from
 * tracked inputs inside `grad`/`vjp`. The tensor layer only carries it; the
 * autograd layer creates and walks it. `id`s grow with creation order, so
 * the backward pass visits nodes in reverse creation order.
 */
export interface GradNode {
  readonly id: number;
  /**
   * The primitive that computed the tensor (e.g. `matmul`), or `leaf` for a
   * differentiated argument. The engine always sets op, attrs and trace;
   * they are optional only so that a hand-made node (in tests) stays valid.
   */
  readonly op?: string;
  /** The primitive's attributes (e.g. `{axes: [1], keepDims: false}`), for graph dumps; null for none. */
  readonly attrs?: unknown;
  /** The transform call (grad, vjp, ...) whose trace this node belongs to; see autograd/engine.ts. */
  readonly trace?: number;
  /** The primal inputs of the primitive (empty for a leaf). */
  readonly inputs: readonly Tensor[];
  /**
   * Vector-Jacobian product: given the output cotangent, one entry per
   * input: a function computing that input's cotangent (called only for
   * inputs that need one, so unneeded cotangents are never computed), or
   * null where the input gets none. null for a leaf.
   */
  readonly vjp: ((cotangent: Tensor) => readonly ((() => Tensor) | null)[]) | null;
}

// Set by the Tensor class's static block: the only way to reach its private fields.
let dataOf!: (t: Tensor) => TypedArray;
let nodeOf!: (t: Tensor) => GradNode | null;

/**
 * An immutable n-dimensional array, row-major. Its storage is private: no op
 * writes into an existing tensor, every op returns a new one. Read values
 * with `toArray()`, `item()` or `dataSync()` (a copy).
 */
export class Tensor {
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly size: number;
  readonly #data: TypedArray;
  readonly #node: GradNode | null;

  /** @internal Use `tensor()` and the creation functions; this takes ownership of `data`. */
  constructor(data: TypedArray, shape: Shape, dtype: DType, node: GradNode | null = null) {
    this.#data = data;
    this.shape = Object.freeze(shape.slice());
    this.dtype = dtype;
    this.size = data.length;
    this.#node = node;
  }

  get rank(): number {
    return this.shape.length;
  }

  /** A copy of the values as a typed array (Float32Array, Float64Array, Int32Array, Uint8Array for bool). */
  dataSync(): TypedArray {
    return this.#data.slice();
  }

  /** The values as nested JS arrays (booleans for bool tensors); a number for a scalar. */
  toArray(): unknown {
    const d = this.#data;
    const isBool = this.dtype === 'bool';
    const read = (i: number): number | boolean => (isBool ? d[i] !== 0 : d[i]!);
    if (this.shape.length === 0) return read(0);
    const strides = stridesOf(this.shape);
    const build = (axis: number, offset: number): unknown[] => {
      const n = this.shape[axis]!;
      const out = new Array<unknown>(n);
      for (let i = 0; i < n; i++) {
        out[i] = axis === this.shape.length - 1 ? read(offset + i) : build(axis + 1, offset + i * strides[axis]!);
      }
      return out;
    };
    return build(0, 0);
  }

  /** The single value of a one-element tensor. */
  item(): number | boolean {
    if (this.size !== 1) {
      throw new ArgumentError(
        'item',
        `tensor has shape ${fmtShape(this.shape)} (${this.size} elements); need exactly one element`,
      );
    }
    return this.dtype === 'bool' ? this.#data[0] !== 0 : this.#data[0]!;
  }

  /**
   * The values, NumPy style, with shape and dtype (large tensors are
   * summarised; the format is described in src/tensor/format.ts):
   *   tensor([[1, 2],
   *           [3, 4]], shape=[2,2], dtype=float32)
   */
  toString(): string {
    return formatTensor(this.#data, this.shape, this.dtype);
  }

  /** What Node's util.inspect and console.log print: the same as toString(). Needs no Node import. */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }

  static {
    dataOf = (t: Tensor) => t.#data;
    nodeOf = (t: Tensor) => t.#node;
  }
}

/**
 * @internal The storage of a tensor, for kernels and library internals.
 * Read-only by contract: nothing may write into it (tensors are immutable).
 */
export function unsafeData(t: Tensor): TypedArray {
  return dataOf(t);
}

/** @internal The autodiff node of a tensor, or null for a constant. */
export function gradNode(t: Tensor): GradNode | null {
  return nodeOf(t);
}

/** @internal Wraps freshly computed storage (ownership passes to the tensor). */
export function wrap(data: TypedArray, shape: Shape, dtype: DType, node: GradNode | null = null): Tensor {
  if (sizeOf(shape) !== data.length) {
    throw new InternalError('wrap', `${data.length} values for shape ${fmtShape(shape)}`);
  }
  return new Tensor(data, shape, dtype, node);
}

export function isTensor(x: unknown): x is Tensor {
  return x instanceof Tensor;
}
