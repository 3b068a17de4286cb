/** Shape and indexing ops: reshape, transpose, slice, concat, gather, scatter, topK, ... */
import { ArgumentError, DTypeError, ShapeError, describe, fmtShape } from '../errors.js';
import { promote } from '../tensor/dtype.js';
import {
  MAX_RANK,
  allocateFor,
  broadcastShapes,
  checkShape,
  checkSize,
  normalizeAxis,
  shapesEqual,
  showJson,
  sizeOf,
} from '../tensor/shape.js';
import { unsafeData, wrap, type Tensor } from '../tensor/tensor.js';
import { topK as topKKernel } from '../tensor/kernels/sort.js';
import { bind } from '../autograd/engine.js';
import { primitives as P } from '../autograd/primitives.js';
import { checkInt, checkIntTensor, checkOptions, checkTensor } from './util.js';

/** Reshape to `shape`; one entry may be -1 (inferred). Shares storage. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const t = checkTensor('reshape', 'x', x);
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= -1)) {
    throw new ArgumentError(
      'reshape',
      `shape must be an array of non-negative integers (one may be -1), got ${showJson(shape)}`,
    );
  }
  if (shape.length > MAX_RANK)
    throw new ArgumentError('reshape', `shape has ${shape.length} axes; need at most ${MAX_RANK}`);
  const unknown = shape.filter((d) => d === -1).length;
  if (unknown > 1) throw new ArgumentError('reshape', `shape ${fmtShape(shape)} has more than one -1`);
  const known = shape.reduce((p, d) => (d === -1 ? p : p * d), 1);
  let resolved = shape.slice();
  if (unknown === 1) {
    if (known === 0 || t.size % known !== 0) {
      throw new ShapeError(
        'reshape',
        `cannot infer -1 in ${fmtShape(shape)} for ${t.size} elements (x is ${fmtShape(t.shape)})`,
      );
    }
    resolved = shape.map((d) => (d === -1 ? t.size / known : d));
  }
  if (sizeOf(resolved) !== t.size) {
    throw new ShapeError(
      'reshape',
      `x is ${fmtShape(t.shape)} (${t.size} elements) but shape ${fmtShape(shape)} holds ${sizeOf(resolved)}; need equal sizes`,
    );
  }
  return shapesEqual(resolved, t.shape) ? t : bind(P.reshape, [t], { shape: resolved });
}

/** Permutes axes; with no `perm`, reverses them (matrix transpose for 2-D). */
export function transpose(x: Tensor, perm?: readonly number[]): Tensor {
  const t = checkTensor('transpose', 'x', x);
  if (perm !== undefined && !Array.isArray(perm))
    throw new ArgumentError('transpose', `perm must be an array of axes, got ${describe(perm)}`);
  const p =
    perm === undefined
      ? t.shape.map((_, i) => t.rank - 1 - i)
      : perm.map((a) => normalizeAxis('transpose', a, t.rank, 'perm entry'));
  if (p.length !== t.rank || new Set(p).size !== t.rank) {
    throw new ArgumentError(
      'transpose',
      `perm ${JSON.stringify(perm)} is not a permutation of the ${t.rank} axes of ${fmtShape(t.shape)}`,
    );
  }
  if (p.every((a, i) => a === i)) return t;
  return bind(P.permute, [t], { perm: p });
}

/** Inserts a size-1 axis at `axis` (which may equal the rank, or be negative). */
export function expandDims(x: Tensor, axis: number): Tensor {
  const t = checkTensor('expandDims', 'x', x);
  const a = normalizeAxis('expandDims', axis, t.rank + 1);
  if (t.rank === MAX_RANK)
    throw new ArgumentError('expandDims', `x already has ${MAX_RANK} axes, the most a tensor may have`);
  const shape = t.shape.slice();
  shape.splice(a, 0, 1);
  return bind(P.reshape, [t], { shape });
}

/** Removes size-1 axes (the given ones, or all). */
export function squeeze(x: Tensor, axis?: number | readonly number[]): Tensor {
  const t = checkTensor('squeeze', 'x', x);
  if (axis !== undefined && typeof axis !== 'number' && !Array.isArray(axis))
    throw new ArgumentError('squeeze', `axis must be a number or an array of numbers, got ${describe(axis)}`);
  const axes =
    axis === undefined
      ? t.shape.flatMap((d, i) => (d === 1 ? [i] : []))
      : (typeof axis === 'number' ? [axis] : axis).map((a) => normalizeAxis('squeeze', a, t.rank));
  for (const a of axes) {
    if (t.shape[a] !== 1)
      throw new ShapeError('squeeze', `axis ${a} of ${fmtShape(t.shape)} has size ${t.shape[a]}; need size 1`);
  }
  return reshape(
    t,
    t.shape.filter((_, i) => !axes.includes(i)),
  );
}

/** Broadcasts x to `shape` (NumPy rules); gradient sums back. */
export function broadcastTo(x: Tensor, shape: readonly number[]): Tensor {
  const t = checkTensor('broadcastTo', 'x', x);
  checkShape('broadcastTo', 'shape', shape);
  const out = broadcastShapes('broadcastTo', t.shape, shape);
  if (!shapesEqual(out, shape))
    throw new ShapeError('broadcastTo', `x ${fmtShape(t.shape)} cannot be broadcast to ${fmtShape(shape)}`);
  return shapesEqual(t.shape, shape) ? t : bind(P.broadcastTo, [t], { shape: out });
}

/** Concatenates along `axis` (default 0); all other axes must agree. */
export function concat(xs: readonly Tensor[], axis = 0): Tensor {
  if (!Array.isArray(xs) || xs.length === 0)
    throw new ArgumentError('concat', `xs must be a non-empty array of tensors, got ${describe(xs)}`);
  const ts = xs.map((x, i) => checkTensor('concat', `xs[${i}]`, x));
  const first = ts[0]!;
  if (first.rank === 0) throw new ShapeError('concat', 'cannot concatenate scalars; use stack');
  const a = normalizeAxis('concat', axis, first.rank);
  let dtype = first.dtype;
  ts.forEach((t, i) => {
    const p = promote(dtype, t.dtype);
    if (p === null)
      throw new DTypeError('concat', `xs[${i}] is ${t.dtype} but xs[0] is ${first.dtype}; need equal dtypes`);
    dtype = p;
    if (t.rank !== first.rank || t.shape.some((d, j) => j !== a && d !== first.shape[j])) {
      throw new ShapeError(
        'concat',
        `xs[${i}] is ${fmtShape(t.shape)} but xs[0] is ${fmtShape(first.shape)}; need equal sizes on every axis but ${a}`,
      );
    }
  });
  if (ts.length === 1) return first;
  const shape = first.shape.slice();
  shape[a] = ts.reduce((n, t) => n + t.shape[a]!, 0);
  checkSize('concat', shape, dtype);
  return bind(P.concat, ts, { axis: a });
}

/** Stacks equal-shaped tensors along a new axis. */
export function stack(xs: readonly Tensor[], axis = 0): Tensor {
  if (!Array.isArray(xs) || xs.length === 0)
    throw new ArgumentError('stack', `xs must be a non-empty array of tensors, got ${describe(xs)}`);
  const ts = xs.map((x, i) => checkTensor('stack', `xs[${i}]`, x));
  ts.forEach((t, i) => {
    if (!shapesEqual(t.shape, ts[0]!.shape))
      throw new ShapeError(
        'stack',
        `xs[${i}] is ${fmtShape(t.shape)} but xs[0] is ${fmtShape(ts[0]!.shape)}; need equal shapes`,
      );
  });
  const a = normalizeAxis('stack', axis, ts[0]!.rank + 1);
  return concat(
    ts.map((t) => expandDims(t, a)),
    a,
  );
}

/**
 * slice(x, begin, size): the box starting at `begin` with `size` (-1 = to
 * the end) on each axis; shorter lists leave trailing axes whole.
 */
export function slice(x: Tensor, begin: readonly number[], size?: readonly number[]): Tensor {
  const t = checkTensor('slice', 'x', x);
  if (!Array.isArray(begin) || begin.length > t.rank)
    throw new ArgumentError('slice', `begin must be an array of at most ${t.rank} integers, got ${describe(begin)}`);
  if (size !== undefined && (!Array.isArray(size) || size.length > t.rank))
    throw new ArgumentError(
      'slice',
      `size must be an array of at most ${t.rank} integers (-1 = to the end), got ${describe(size)}`,
    );
  const b: number[] = [],
    s: number[] = [];
  for (let i = 0; i < t.rank; i++) {
    const d = t.shape[i]!;
    const bi = begin[i] ?? 0;
    if (!Number.isInteger(bi) || bi < 0 || bi > d)
      throw new ArgumentError(
        'slice',
        `begin[${i}] = ${String(bi)} is out of range for axis ${i} of size ${d}; need 0 <= begin <= ${d}`,
      );
    let si = size?.[i] ?? -1;
    if (si === -1) si = d - bi;
    if (!Number.isInteger(si) || si < 0 || bi + si > d)
      throw new ArgumentError(
        'slice',
        `size[${i}] = ${String(size?.[i])} with begin ${bi} overruns axis ${i} of size ${d}`,
      );
    b.push(bi);
    s.push(si);
  }
  if (shapesEqual(s, t.shape)) return t;
  return bind(P.slice, [t], { begin: b, size: s });
}

/** Zero padding: `before[i]` zeros before and `after[i]` after axis i. */
export function pad(x: Tensor, before: readonly number[], after: readonly number[]): Tensor {
  const t = checkTensor('pad', 'x', x);
  if (!Array.isArray(before) || !Array.isArray(after))
    throw new ArgumentError(
      'pad',
      `before and after must be arrays of ${t.rank} integers, got ${describe(before)} and ${describe(after)}`,
    );
  if (before.length !== t.rank || after.length !== t.rank)
    throw new ArgumentError(
      'pad',
      `before and after need ${t.rank} entries (one per axis), got ${before.length} and ${after.length}`,
    );
  const shape = t.shape.map(
    (d, i) => d + checkInt('pad', `before[${i}]`, before[i], 0) + checkInt('pad', `after[${i}]`, after[i], 0),
  );
  checkSize('pad', shape, t.dtype);
  return bind(P.pad, [t], { begin: before.slice(), shape });
}

function checkIndices(op: string, idx: Tensor, n: number, axis: number): void {
  const d = unsafeData(idx) as Int32Array;
  for (let i = 0; i < d.length; i++) {
    const v = d[i]!;
    if (v < 0 || v >= n)
      throw new ArgumentError(
        op,
        `indices[${i}] = ${v} is out of range for axis ${axis} of size ${n}; need 0 <= index < ${n}`,
      );
  }
}

/** gather(x, indices, {axis}): picks slices along `axis` (default 0); output shape x.shape[:axis] + indices.shape + x.shape[axis+1:]. */
export function gather(x: Tensor, indices: Tensor, opts?: { axis?: number }): Tensor {
  const t = checkTensor('gather', 'x', x);
  const idx = checkIntTensor('gather', 'indices', indices);
  checkOptions('gather', opts, ['axis']);
  if (t.rank === 0) throw new ShapeError('gather', 'x is a scalar; need at least one axis');
  const axis = normalizeAxis('gather', opts?.axis ?? 0, t.rank);
  checkIndices('gather', idx, t.shape[axis]!, axis);
  checkSize('gather', [...t.shape.slice(0, axis), ...idx.shape, ...t.shape.slice(axis + 1)], t.dtype);
  return bind(P.gather, [t, idx], { axis });
}

/** Rows of x at `indices` (any shape of int32 indices): gather along axis 0. */
export function gatherRows(x: Tensor, indices: Tensor): Tensor {
  const t = checkTensor('gatherRows', 'x', x);
  const idx = checkIntTensor('gatherRows', 'indices', indices);
  if (t.rank === 0) throw new ShapeError('gatherRows', 'x is a scalar; need at least one axis');
  checkIndices('gatherRows', idx, t.shape[0]!, 0);
  checkSize('gatherRows', [...idx.shape, ...t.shape.slice(1)], t.dtype);
  return bind(P.gather, [t, idx], { axis: 0 });
}

/**
 * A new tensor equal to x with rows `indices[j]` replaced by `updates[j]`
 * (functional: x is unchanged). With repeated indices the last update wins.
 */
export function scatterRows(x: Tensor, indices: Tensor, updates: Tensor): Tensor {
  const t = checkTensor('scatterRows', 'x', x);
  const idx = checkIntTensor('scatterRows', 'indices', indices);
  const u = checkTensor('scatterRows', 'updates', updates);
  if (t.rank === 0) throw new ShapeError('scatterRows', 'x is a scalar; need at least one axis');
  if (idx.rank !== 1) throw new ShapeError('scatterRows', `indices must be 1-D, got ${fmtShape(idx.shape)}`);
  const want = [idx.shape[0]!, ...t.shape.slice(1)];
  if (!shapesEqual(u.shape, want))
    throw new ShapeError(
      'scatterRows',
      `updates is ${fmtShape(u.shape)}; need ${fmtShape(want)} (one row of x per index)`,
    );
  if (promote(t.dtype, u.dtype) !== t.dtype)
    throw new DTypeError('scatterRows', `updates is ${u.dtype} but x is ${t.dtype}; need equal dtypes`);
  checkIndices('scatterRows', idx, t.shape[0]!, 0);
  return bind(P.scatterRows, [t, idx, u], null);
}

/**
 * The k largest entries along the last axis, in descending order; ties go to
 * the smaller index first (stable). `values` carries gradient (a gather),
 * `indices` is int32.
 */
export function topK(x: Tensor, k: number): { values: Tensor; indices: Tensor } {
  const t = checkTensor('topK', 'x', x);
  if (t.rank === 0) throw new ShapeError('topK', 'x is a scalar; need at least one axis');
  if (t.dtype === 'bool') throw new DTypeError('topK', 'x is bool; cast it first');
  const n = t.shape[t.rank - 1]!;
  checkInt('topK', 'k', k, 0, n);
  const rows = t.size / Math.max(n, 1);
  const vals = allocateFor('topK', [rows, k], t.dtype);
  const idx = allocateFor('topK', [rows, k], 'int32') as Int32Array;
  if (n > 0) topKKernel(unsafeData(t), rows, n, k, vals, idx);
  const shape = [...t.shape.slice(0, -1), k];
  const indices = wrap(idx, shape, 'int32');
  const flat = reshape(t, [rows, n]);
  // values as a differentiable gather: row r, column idx[r, j]
  const flatIdx = new Int32Array(rows * k);
  for (let r = 0; r < rows; r++) for (let j = 0; j < k; j++) flatIdx[r * k + j] = r * n + idx[r * k + j]!;
  const values = reshape(
    bind(P.gather, [reshape(flat, [rows * n]), wrap(flatIdx, [rows * k], 'int32')], { axis: 0 }),
    shape,
  );
  return { values, indices };
}
