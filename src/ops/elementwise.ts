/**
 * Elementwise ops with NumPy broadcasting. Numbers broadcast as scalars of
 * the other operand's dtype (`mul(x, 20)`). Arithmetic needs equal dtypes,
 * except float32 with float64, which promotes to float64.
 */
import { ArgumentError, DTypeError } from '../errors.js';
import { isFloat, promote, type DType } from '../tensor/dtype.js';
import { allocateFor, broadcastShapes } from '../tensor/shape.js';
import { unsafeData, wrap, type Tensor } from '../tensor/tensor.js';
import { castInto, mapBinary, mapUnary, type Binary } from '../tensor/kernels/elementwise.js';
import { bind, type Primitive } from '../autograd/engine.js';
import { primitives as P } from '../autograd/primitives.js';
import { checkBoolTensor, checkTensor, operand, type TensorLike } from './util.js';

function arith(
  op: string,
  prim: Primitive<null>,
  a: TensorLike,
  b: TensorLike,
  opts: { floatOnly?: boolean; noBool?: boolean } = {},
): Tensor {
  const x = operand(op, 'a', a, b);
  const y = operand(op, 'b', b, x);
  const dtype = promote(x.dtype, y.dtype);
  if (dtype === null) {
    throw new DTypeError(
      op,
      `dtypes differ (a is ${x.dtype}, b is ${y.dtype}); need equal dtypes (or float32 with float64): cast one of them`,
    );
  }
  if (dtype === 'bool')
    throw new DTypeError(
      op,
      `a and b are bool; arithmetic on bool tensors is not defined: cast the masks to int32 or float32 first`,
    );
  if (opts.floatOnly && !isFloat(dtype))
    throw new DTypeError(op, `a and b must be float, got ${dtype}; cast to float32 first`);
  broadcastShapes(op, x.shape, y.shape); // throws a ShapeError naming the op
  return bind(prim, [x, y], null);
}

export const add = (a: TensorLike, b: TensorLike): Tensor => arith('add', P.add, a, b);
export const sub = (a: TensorLike, b: TensorLike): Tensor => arith('sub', P.sub, a, b);
export const mul = (a: TensorLike, b: TensorLike): Tensor => arith('mul', P.mul, a, b);
/** Division; float only (integer division is not what a loss wants). */
export const div = (a: TensorLike, b: TensorLike): Tensor => arith('div', P.div, a, b, { floatOnly: true });
export const pow = (a: TensorLike, b: TensorLike): Tensor => arith('pow', P.pow, a, b, { floatOnly: true });
export const maximum = (a: TensorLike, b: TensorLike): Tensor => arith('maximum', P.maximum, a, b);
export const minimum = (a: TensorLike, b: TensorLike): Tensor => arith('minimum', P.minimum, a, b);

function floatUnary(op: string, prim: Primitive<null>, x: Tensor): Tensor {
  const t = checkTensor(op, 'x', x);
  if (!isFloat(t.dtype)) throw new DTypeError(op, `x must be float32 or float64, got ${t.dtype}; cast it first`);
  return bind(prim, [t], null);
}

export const exp = (x: Tensor): Tensor => floatUnary('exp', P.exp, x);
export const log = (x: Tensor): Tensor => floatUnary('log', P.log, x);
export const sqrt = (x: Tensor): Tensor => floatUnary('sqrt', P.sqrt, x);
export const tanh = (x: Tensor): Tensor => floatUnary('tanh', P.tanh, x);
export const sigmoid = (x: Tensor): Tensor => floatUnary('sigmoid', P.sigmoid, x);
export const relu = (x: Tensor): Tensor => floatUnary('relu', P.relu, x);

export function neg(x: Tensor): Tensor {
  const t = checkTensor('neg', 'x', x);
  if (t.dtype === 'bool') throw new DTypeError('neg', 'x is bool; use logicalNot for masks');
  return bind(P.neg, [t], null);
}

export function abs(x: Tensor): Tensor {
  const t = checkTensor('abs', 'x', x);
  if (t.dtype === 'bool') throw new DTypeError('abs', 'x is bool; abs needs numbers');
  return bind(P.abs, [t], null);
}

/** x² (composed: x·x, so its gradient is 2x·ḡ by fan-out accumulation). */
export function square(x: Tensor): Tensor {
  const t = checkTensor('square', 'x', x);
  return mul(t, t);
}

/** where(cond, a, b): elementwise cond ? a : b, all three broadcast; cond must be bool. */
export function where(cond: Tensor, a: TensorLike, b: TensorLike): Tensor {
  const c = checkBoolTensor('where', 'cond', cond);
  const x = operand('where', 'a', a, b);
  const y = operand('where', 'b', b, x);
  const dtype = promote(x.dtype, y.dtype);
  if (dtype === null) throw new DTypeError('where', `a is ${x.dtype} and b is ${y.dtype}; need equal dtypes`);
  broadcastShapes('where', broadcastShapes('where', c.shape, x.shape), y.shape);
  return bind(P.where, [c, x, y], null);
}

// ------------------------------------------------------------ comparisons and logic (bool results, no gradient)

function compare(op: string, f: Binary, a: TensorLike, b: TensorLike): Tensor {
  const x = operand(op, 'a', a, b);
  const y = operand(op, 'b', b, x);
  if (promote(x.dtype, y.dtype) === null)
    throw new DTypeError(op, `dtypes differ (a is ${x.dtype}, b is ${y.dtype}); cast one of them`);
  const shape = broadcastShapes(op, x.shape, y.shape);
  const out = allocateFor(op, shape, 'bool');
  mapBinary(unsafeData(x), x.shape, unsafeData(y), y.shape, shape, out, f);
  return wrap(out, shape, 'bool');
}

export const equal = (a: TensorLike, b: TensorLike): Tensor => compare('equal', (u, v) => (u === v ? 1 : 0), a, b);
export const notEqual = (a: TensorLike, b: TensorLike): Tensor =>
  compare('notEqual', (u, v) => (u !== v ? 1 : 0), a, b);
export const less = (a: TensorLike, b: TensorLike): Tensor => compare('less', (u, v) => (u < v ? 1 : 0), a, b);
export const lessEqual = (a: TensorLike, b: TensorLike): Tensor =>
  compare('lessEqual', (u, v) => (u <= v ? 1 : 0), a, b);
export const greater = (a: TensorLike, b: TensorLike): Tensor => compare('greater', (u, v) => (u > v ? 1 : 0), a, b);
export const greaterEqual = (a: TensorLike, b: TensorLike): Tensor =>
  compare('greaterEqual', (u, v) => (u >= v ? 1 : 0), a, b);

function logical(op: string, f: Binary, a: Tensor, b: Tensor): Tensor {
  const x = checkBoolTensor(op, 'a', a);
  const y = checkBoolTensor(op, 'b', b);
  return compare(op, f, x, y);
}

export const logicalAnd = (a: Tensor, b: Tensor): Tensor => logical('logicalAnd', (u, v) => (u && v ? 1 : 0), a, b);
export const logicalOr = (a: Tensor, b: Tensor): Tensor => logical('logicalOr', (u, v) => (u || v ? 1 : 0), a, b);

export function logicalNot(a: Tensor): Tensor {
  const x = checkBoolTensor('logicalNot', 'a', a);
  const out = allocateFor('logicalNot', x.shape, 'bool');
  mapUnary(unsafeData(x), out, (v) => (v ? 0 : 1));
  return wrap(out, x.shape, 'bool');
}

/** True where x is neither NaN nor ±Infinity. */
export function isFinite(x: Tensor): Tensor {
  const t = checkTensor('isFinite', 'x', x);
  const out = allocateFor('isFinite', t.shape, 'bool');
  mapUnary(unsafeData(t), out, (v) => (Number.isFinite(v) ? 1 : 0));
  return wrap(out, t.shape, 'bool');
}

/**
 * Converts dtype. Between float32 and float64 the gradient flows (cast back);
 * to int32 truncates toward zero and to bool tests `!= 0`, with no gradient.
 * Casting a non-finite or out-of-range float to int32 is an error, never a
 * silent wrap-around.
 */
export function cast(x: Tensor, dtype: DType): Tensor {
  const t = checkTensor('cast', 'x', x);
  if (!['float32', 'float64', 'int32', 'bool'].includes(dtype)) {
    throw new DTypeError('cast', `dtype must be float32, float64, int32 or bool, got ${String(dtype)}`);
  }
  if (t.dtype === dtype) return t;
  if (isFloat(t.dtype) && isFloat(dtype)) return bind(P.cast, [t], { dtype });
  if (dtype === 'int32' && isFloat(t.dtype)) {
    const d = unsafeData(t);
    for (let i = 0; i < d.length; i++) {
      const v = d[i]!;
      if (!(v > -2147483649 && v < 2147483648)) {
        throw new ArgumentError(
          'cast',
          `value ${v} at flat index ${i} of x does not fit in int32; need a finite value in (-2^31-1, 2^31)`,
        );
      }
    }
  }
  return wrap(castInto(unsafeData(t), allocateFor('cast', t.shape, dtype)), t.shape, dtype);
}

export type { DType };
