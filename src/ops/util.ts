/** Argument checks shared by the public ops. */
import { ArgumentError, DTypeError, describe } from '../errors.js';
import { allocate, isFloat, type DType } from '../tensor/dtype.js';
import { isTensor, wrap, type Tensor } from '../tensor/tensor.js';

export type TensorLike = Tensor | number;

export function checkTensor(op: string, arg: string, x: unknown): Tensor {
  if (!isTensor(x)) throw new ArgumentError(op, `${arg} must be a Tensor, got ${describe(x)}`);
  return x;
}

export function checkFloatTensor(op: string, arg: string, x: unknown): Tensor {
  const t = checkTensor(op, arg, x);
  if (!isFloat(t.dtype))
    throw new DTypeError(op, `${arg} must be float32 or float64, got ${t.dtype} ${describe(t)}; cast it first`);
  return t;
}

export function checkIntTensor(op: string, arg: string, x: unknown): Tensor {
  const t = checkTensor(op, arg, x);
  if (t.dtype !== 'int32') throw new DTypeError(op, `${arg} must be int32, got ${t.dtype}`);
  return t;
}

export function checkBoolTensor(op: string, arg: string, x: unknown): Tensor {
  const t = checkTensor(op, arg, x);
  if (t.dtype !== 'bool')
    throw new DTypeError(op, `${arg} must be bool, got ${t.dtype}; compare or cast to get a mask`);
  return t;
}

/** A scalar tensor of `dtype` holding `v`. */
export function scalar(v: number | boolean, dtype: DType): Tensor {
  const out = allocate(dtype, 1);
  out[0] = typeof v === 'boolean' ? (v ? 1 : 0) : v;
  return wrap(out, [], dtype);
}

/**
 * Turns an operand into a tensor: tensors pass through; a JS number becomes
 * a scalar of the other operand's dtype (so `mul(x, 20)` stays float32).
 */
export function operand(op: string, arg: string, x: unknown, other: unknown): Tensor {
  if (typeof x === 'number') {
    const dtype: DType = isTensor(other) ? other.dtype : 'float32';
    if (dtype === 'int32' && !Number.isInteger(x)) {
      throw new DTypeError(
        op,
        `${arg} is the non-integer number ${x} but the other operand is int32; cast the tensor to float32 first`,
      );
    }
    if (dtype === 'bool')
      throw new DTypeError(op, `${arg} is a number but the other operand is bool; cast the mask first`);
    return scalar(x, dtype);
  }
  if (typeof x === 'boolean') return scalar(x, 'bool');
  return checkTensor(op, arg, x);
}

/** The shared options check (src/errors.ts), re-exported for the ops. */
export { checkOptions } from '../errors.js';

export function checkBoolean(op: string, arg: string, v: unknown, fallback: boolean): boolean {
  if (v === undefined) return fallback;
  if (typeof v !== 'boolean') throw new ArgumentError(op, `${arg} must be true or false, got ${describe(v)}`);
  return v;
}

export function checkInt(op: string, arg: string, v: unknown, min: number, max = 2 ** 31 - 1): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new ArgumentError(op, `${arg} must be an integer in [${min}, ${max}], got ${describe(v)}`);
  }
  return v;
}
