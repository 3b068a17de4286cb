/**
 * Layers as pure functions of (params, inputs). Parameters are records of
 * tensors, so `grad` differentiates a whole model at once.
 */
import { ArgumentError, ShapeError, describe, fmtShape } from '../errors.js';
import { isTensor, unsafeData, type Tensor } from '../tensor/tensor.js';
import type { Rng } from '../tensor/random.js';
import { bind } from '../autograd/engine.js';
import { sparseRowsP } from '../autograd/primitives.js';
import { add, div, mul, sqrt } from '../ops/elementwise.js';
import { sum } from '../ops/reduce.js';
import { matmul } from '../ops/linalg.js';
import { glorotUniform, zerosInit } from './init.js';

export interface LinearParams {
  /** [inDim, outDim] */
  w: Tensor;
  /** [outDim] */
  b: Tensor;
}

export function initLinear(rng: Rng, inDim: number, outDim: number): LinearParams {
  return { w: glorotUniform(rng, inDim, outDim), b: zerosInit([outDim]) };
}

/** x·w + b for x [batch, inDim]. */
export function linear(params: LinearParams, x: Tensor): Tensor {
  if (!params || !isTensor(params.w) || !isTensor(params.b))
    throw new ArgumentError('linear', `params must be {w, b} tensors, got ${describe(params)}`);
  if (!isTensor(x) || x.rank !== 2 || x.shape[1] !== params.w.shape[0]) {
    throw new ShapeError(
      'linear',
      `x must be [batch, ${params.w.shape[0]}] to match w ${fmtShape(params.w.shape)}, got ${describe(x)}`,
    );
  }
  return add(matmul(x, params.w), params.b);
}

/**
 * x / sqrt(Σ x² + eps) along the last axis. eps (default 1e-12) keeps the
 * zero vector finite (it maps to zero) without changing non-tiny rows.
 */
export function l2Normalize(x: Tensor, eps = 1e-12): Tensor {
  if (!isTensor(x) || x.rank < 1)
    throw new ArgumentError('l2Normalize', `x must be a tensor of rank >= 1, got ${describe(x)}`);
  if (typeof eps !== 'number' || !Number.isFinite(eps) || eps < 0)
    throw new ArgumentError('l2Normalize', `eps must be a finite number >= 0, got ${describe(eps)}`);
  return div(x, sqrt(add(sum(mul(x, x), { axis: -1, keepDims: true }), eps)));
}

/**
 * The distinct global ids (e.g. hashed features) a step touches, each given
 * a row number in first-use order. Bags built against one RowSpace index
 * into one row block, `table.rows(space.ids())`: only these rows are ever
 * gathered, differentiated and updated (a sparse gradient).
 */
export class RowSpace {
  private readonly position = new Map<number, number>();
  private readonly list: number[] = [];

  /** The row of `id`, adding it if new. */
  rowOf(id: number): number {
    let r = this.position.get(id);
    if (r === undefined) {
      r = this.list.length;
      this.position.set(id, r);
      this.list.push(id);
    }
    return r;
  }

  get size(): number {
    return this.list.length;
  }

  /** The global ids in row order. */
  ids(): Int32Array {
    return Int32Array.from(this.list);
  }
}

/**
 * A batch of bags: example e sums (or averages) rows local[k] of a row block
 * for the feature occurrences k that belong to it.
 */
export interface Bags {
  /** For every feature occurrence, its row in the row block. */
  local: Int32Array;
  /** For every feature occurrence, its example. */
  segment: Int32Array;
  /** Number of examples. */
  count: number;
  /** Features per example (for the mean). */
  sizes: Int32Array;
}

/**
 * Builds Bags for `examples` from CSR features (offsets [N+1], ids [nnz]),
 * registering their ids in `space`. Ids are checked against `vocab`.
 */
export function makeBags(
  offsets: Int32Array,
  ids: Int32Array,
  examples: ArrayLike<number>,
  vocab: number,
  space: RowSpace,
): Bags {
  const op = 'makeBags';
  if (!(offsets instanceof Int32Array))
    throw new ArgumentError(op, `offsets must be an Int32Array (CSR row offsets), got ${describe(offsets)}`);
  if (!(ids instanceof Int32Array))
    throw new ArgumentError(op, `ids must be an Int32Array (CSR feature ids), got ${describe(ids)}`);
  if (!(Array.isArray(examples) || (ArrayBuffer.isView(examples) && !(examples instanceof DataView))))
    throw new ArgumentError(op, `examples must be an array of example indices, got ${describe(examples)}`);
  if (!Number.isInteger(vocab) || vocab < 1)
    throw new ArgumentError(op, `vocab must be a positive integer, got ${describe(vocab)}`);
  if (space === null || typeof space !== 'object' || typeof (space as Partial<RowSpace>).rowOf !== 'function')
    throw new ArgumentError(op, `space must be a RowSpace, got ${describe(space)}`);
  const local: number[] = [];
  const segment: number[] = [];
  const sizes = new Int32Array(examples.length);
  // Validate everything before registering any id, so a rejected call leaves `space` unchanged.
  for (let e = 0; e < examples.length; e++) {
    const ex = examples[e]!;
    if (!Number.isInteger(ex) || ex < 0 || ex + 1 >= offsets.length)
      throw new ArgumentError(op, `examples[${e}] = ${ex} is out of range; need 0 <= example < ${offsets.length - 1}`);
    if (!(offsets[ex]! >= 0 && offsets[ex]! <= offsets[ex + 1]! && offsets[ex + 1]! <= ids.length)) {
      throw new ArgumentError(
        op,
        `offsets[${ex}..${ex + 1}] = [${offsets[ex]}, ${offsets[ex + 1]}] is not a range of ids; need 0 <= offsets[i] <= offsets[i+1] <= ${ids.length}`,
      );
    }
    for (let k = offsets[ex]!; k < offsets[ex + 1]!; k++) {
      const id = ids[k]!;
      if (!(id >= 0 && id < vocab))
        throw new ArgumentError(op, `feature id ${id} of example ${ex} is out of range for a vocabulary of ${vocab}`);
    }
  }
  for (let e = 0; e < examples.length; e++) {
    const ex = examples[e]!;
    for (let k = offsets[ex]!; k < offsets[ex + 1]!; k++) {
      local.push(space.rowOf(ids[k]!));
      segment.push(e);
    }
    sizes[e] = offsets[ex + 1]! - offsets[ex]!;
  }
  return { local: Int32Array.from(local), segment: Int32Array.from(segment), count: examples.length, sizes };
}

/** A Bags record as makeBags builds it: parallel local/segment arrays, segments in [0, count), one size per example. */
function checkBags(op: string, bags: unknown, mode: 'sum' | 'mean'): asserts bags is Bags {
  if (bags === null || typeof bags !== 'object')
    throw new ArgumentError(op, `bags must be {local, segment, count, sizes} from makeBags, got ${describe(bags)}`);
  const b = bags as Partial<Bags>;
  if (!(b.local instanceof Int32Array) || !(b.segment instanceof Int32Array) || !(b.sizes instanceof Int32Array)) {
    throw new ArgumentError(
      op,
      `bags.local, bags.segment and bags.sizes must be Int32Arrays (from makeBags), got ${describe(b.local)}, ${describe(b.segment)}, ${describe(b.sizes)}`,
    );
  }
  if (b.local.length !== b.segment.length)
    throw new ShapeError(
      op,
      `bags.local has ${b.local.length} entries but bags.segment has ${b.segment.length}; need one segment per entry`,
    );
  const count = b.count;
  if (typeof count !== 'number' || !Number.isInteger(count) || count < 0 || count > 2 ** 31 - 1)
    throw new ArgumentError(op, `bags.count must be a non-negative integer, got ${describe(count)}`);
  if (b.sizes.length !== count)
    throw new ShapeError(
      op,
      `bags.sizes has ${b.sizes.length} entries but bags.count is ${count}; need one size per example`,
    );
  for (let k = 0; k < b.segment.length; k++) {
    const e = b.segment[k]!;
    if (!(e >= 0 && e < count))
      throw new ArgumentError(op, `bags.segment[${k}] = ${e} is out of range; need 0 <= segment < ${count}`);
    if (mode === 'mean' && !(b.sizes[e]! > 0))
      throw new ArgumentError(
        op,
        `bags.sizes[${e}] = ${b.sizes[e]} but example ${e} has features; need its feature count for the mean`,
      );
  }
}

/**
 * Embedding bag: out[e] = Σ_{k ∈ bag e} rows[local[k]] ('sum'), divided by
 * the bag size for 'mean' (an empty bag gives zeros). Composed of a gather
 * and a scatter-add, so its gradient with respect to `rows` is the
 * scatter-add of the output cotangent onto the rows the batch used
 * ([space size, dim]), never a dense [vocab, dim] gradient.
 */
export function embeddingBag(rows: Tensor, bags: Bags, mode: 'sum' | 'mean' = 'mean'): Tensor {
  const op = 'embeddingBag';
  if (!isTensor(rows) || rows.rank !== 2)
    throw new ShapeError(op, `rows must be [numRows, dim], got ${describe(rows)}`);
  if (mode !== 'sum' && mode !== 'mean')
    throw new ArgumentError(op, `mode must be 'sum' or 'mean', got ${describe(mode)}`);
  checkBags(op, bags, mode);
  for (let k = 0; k < bags.local.length; k++) {
    if (bags.local[k]! < 0)
      throw new ArgumentError(op, `bags.local[${k}] = ${bags.local[k]} is negative; need a row index`);
    if (bags.local[k]! >= rows.shape[0]!)
      throw new ShapeError(
        op,
        `bag row ${bags.local[k]} is beyond the ${rows.shape[0]} rows given; build rows from the same RowSpace after all bags`,
      );
  }
  // One sparse product: out[segment[k]] += w_k · rows[local[k]], w_k = 1 (sum) or 1/size (mean).
  // Its VJP scatters the cotangent back onto the used rows; no [entries, dim] intermediate.
  let weight: Float64Array | null = null;
  if (mode === 'mean') {
    weight = new Float64Array(bags.local.length);
    for (let k = 0; k < weight.length; k++) weight[k] = 1 / bags.sizes[bags.segment[k]!]!;
  }
  return bind(sparseRowsP, [rows], { from: bags.local, to: bags.segment, weight, rows: bags.count });
}

/** Reads a tensor's values as a fresh Float32Array (for stores that own their memory). */
export function toFloat32(t: Tensor): Float32Array {
  return Float32Array.from(unsafeData(t));
}
