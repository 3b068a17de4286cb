/**
 * Reductions: `sum(x, {axis, keepDims})` where axis is a number, a list, or
 * omitted for all axes. logSumExp, softmax and logSoftmax are composed from
 * primitives with the usual max-shift for stability.
 */
import { DTypeError, ShapeError } from '../errors.js';
import { isFloat } from '../tensor/dtype.js';
import { allocateFor, around, normalizeAxes, normalizeAxis, reducedShape, type Shape } from '../tensor/shape.js';
import { unsafeData, wrap, type Tensor } from '../tensor/tensor.js';
import { argReduceAxis, reduceAxes } from '../tensor/kernels/reduce.js';
import { bind, detach } from '../autograd/engine.js';
import { primitives as P } from '../autograd/primitives.js';
import { add, div, exp, isFinite, log, neg, sub, where } from './elementwise.js';
import { reshape } from './layout.js';
import { checkBoolean, checkOptions, checkTensor } from './util.js';

export interface ReduceOptions {
  /** Axis or axes to reduce (negative counts from the end); all axes when omitted. */
  axis?: number | readonly number[];
  /** Keep reduced axes as size 1 (default false). */
  keepDims?: boolean;
}

function parse(
  op: string,
  x: Tensor,
  opts: ReduceOptions | undefined,
): { t: Tensor; axes: number[]; keepDims: boolean } {
  const t = checkTensor(op, 'x', x);
  checkOptions(op, opts, ['axis', 'keepDims']);
  const axes = normalizeAxes(op, opts?.axis, t.rank);
  return { t, axes, keepDims: checkBoolean(op, 'keepDims', opts?.keepDims, false) };
}

function numeric(op: string, t: Tensor): void {
  if (t.dtype === 'bool') throw new DTypeError(op, 'x is bool; use any/all for masks or cast to int32 to count');
}

function checkNonEmpty(op: string, t: Tensor, axes: readonly number[]): void {
  for (const a of axes) {
    if (t.shape[a] === 0)
      throw new ShapeError(
        op,
        `cannot reduce the empty axis ${a} of shape [${t.shape.join(',')}]; the ${op} of nothing is undefined`,
      );
  }
}

export function sum(x: Tensor, opts?: ReduceOptions): Tensor {
  const { t, axes, keepDims } = parse('sum', x, opts);
  numeric('sum', t);
  return bind(P.sum, [t], { axes, keepDims });
}

export function mean(x: Tensor, opts?: ReduceOptions): Tensor {
  const { t, axes, keepDims } = parse('mean', x, opts);
  numeric('mean', t);
  if (!isFloat(t.dtype)) throw new DTypeError('mean', `x must be float, got ${t.dtype}; cast it first`);
  checkNonEmpty('mean', t, axes);
  let count = 1;
  for (const a of axes) count *= t.shape[a]!;
  return div(bind(P.sum, [t], { axes, keepDims }), count);
}

/** Maximum; its gradient goes to the maximal entries, split evenly among ties. NaN propagates. */
export function max(x: Tensor, opts?: ReduceOptions): Tensor {
  const { t, axes, keepDims } = parse('max', x, opts);
  numeric('max', t);
  checkNonEmpty('max', t, axes);
  return bind(P.max, [t], { axes, keepDims });
}

/** Minimum, as -max(-x). */
export function min(x: Tensor, opts?: ReduceOptions): Tensor {
  const { t, axes, keepDims } = parse('min', x, opts);
  numeric('min', t);
  checkNonEmpty('min', t, axes);
  return neg(bind(P.max, [neg(t)], { axes, keepDims }));
}

function boolReduce(op: 'any' | 'all', x: Tensor, opts?: ReduceOptions): Tensor {
  const { t, axes, keepDims } = parse(op, x, opts);
  if (t.dtype !== 'bool')
    throw new DTypeError(op, `x must be bool, got ${t.dtype}; compare first (e.g. greater(x, 0))`);
  return wrap(reduceAxes(unsafeData(t), t.shape, axes, op), reducedShape(t.shape, axes, keepDims), 'bool');
}

export const any = (x: Tensor, opts?: ReduceOptions): Tensor => boolReduce('any', x, opts);
export const all = (x: Tensor, opts?: ReduceOptions): Tensor => boolReduce('all', x, opts);

/**
 * log Σ exp(x) over the axes, stable: with m = max(x) held constant (its
 * gradient contributions cancel exactly), lse = m + log Σ exp(x - m). A row
 * that is entirely -Infinity gives -Infinity (m is replaced by 0 there so no
 * NaN appears in the forward pass).
 */
export function logSumExp(x: Tensor, opts?: ReduceOptions): Tensor {
  const { t, axes, keepDims } = parse('logSumExp', x, opts);
  if (!isFloat(t.dtype)) throw new DTypeError('logSumExp', `x must be float, got ${t.dtype}`);
  checkNonEmpty('logSumExp', t, axes);
  const m0 = detach(bind(P.max, [t], { axes, keepDims: true }));
  const m = where(isFinite(m0), m0, 0);
  const lse = add(log(bind(P.sum, [exp(sub(t, m))], { axes, keepDims: true })), m);
  return keepDims ? lse : reshape(lse, reducedShape(t.shape, axes, false));
}

function softAxis(op: string, x: Tensor, opts?: { axis?: number }): { t: Tensor; axis: number } {
  const t = checkTensor(op, 'x', x);
  checkOptions(op, opts, ['axis']);
  if (!isFloat(t.dtype)) throw new DTypeError(op, `x must be float, got ${t.dtype}`);
  if (t.rank === 0) throw new ShapeError(op, 'x is a scalar; need at least one axis');
  return { t, axis: normalizeAxis(op, opts?.axis ?? -1, t.rank) };
}

/** log softmax along one axis (default last): x - logSumExp(x), as one primitive (see P.logSoftmax). */
export function logSoftmax(x: Tensor, opts?: { axis?: number }): Tensor {
  const { t, axis } = softAxis('logSoftmax', x, opts);
  if (t.shape[axis] === 0) return t; // nothing to normalise: the result is empty too
  return bind(P.logSoftmax, [t], { axis });
}

/** softmax along one axis (default last): exp(x - logSumExp(x)). */
export function softmax(x: Tensor, opts?: { axis?: number }): Tensor {
  const { t, axis } = softAxis('softmax', x, opts);
  if (t.shape[axis] === 0) return t; // nothing to normalise: the result is empty too
  return exp(bind(P.logSoftmax, [t], { axis }));
}

function argReduce(op: 'argmax' | 'argmin', x: Tensor, opts?: { axis?: number; keepDims?: boolean }): Tensor {
  const t = checkTensor(op, 'x', x);
  checkOptions(op, opts, ['axis', 'keepDims']);
  if (t.dtype === 'bool') throw new DTypeError(op, 'x is bool; cast to int32 first');
  if (t.rank === 0) throw new ShapeError(op, 'x is a scalar; need at least one axis');
  const axis = normalizeAxis(op, opts?.axis ?? -1, t.rank);
  if (t.shape[axis] === 0) throw new ShapeError(op, `axis ${axis} is empty; the ${op} of nothing is undefined`);
  const keepDims = checkBoolean(op, 'keepDims', opts?.keepDims, false);
  const [outer, n, inner] = around(t.shape, axis);
  const out = argReduceAxis(
    unsafeData(t),
    outer,
    n,
    inner,
    op === 'argmax' ? 'max' : 'min',
    allocateFor(op, [outer * inner], 'int32') as Int32Array,
  );
  return wrap(out, reducedShape(t.shape, [axis], keepDims), 'int32');
}

/** Index of the first maximum along `axis` (default last), int32, no gradient. */
export const argmax = (x: Tensor, opts?: { axis?: number; keepDims?: boolean }): Tensor => argReduce('argmax', x, opts);
/** Index of the first minimum along `axis` (default last), int32, no gradient. */
export const argmin = (x: Tensor, opts?: { axis?: number; keepDims?: boolean }): Tensor => argReduce('argmin', x, opts);

/** Inclusive cumulative sum along `axis` (default last); `reverse` sums from the end. */
export function cumsum(x: Tensor, opts?: { axis?: number; reverse?: boolean }): Tensor {
  const t = checkTensor('cumsum', 'x', x);
  checkOptions('cumsum', opts, ['axis', 'reverse']);
  numeric('cumsum', t);
  if (t.rank === 0) return t;
  const axis = normalizeAxis('cumsum', opts?.axis ?? -1, t.rank);
  return bind(P.cumsum, [t], { axis, reverse: checkBoolean('cumsum', 'reverse', opts?.reverse, false) });
}

export type { Shape };
