/**
 * Seeded input values for conformance vectors. Every float input is a
 * multiple of 1/8 (or of 1/denominator) in a small range: exact in float32,
 * so ports in any precision read the same numbers, and drawn with integer
 * arithmetic only (no transcendental function), so the inputs are the same
 * bits on every engine.
 */
import type { Rng } from '../tensor/random.js';
import type { DType } from '../tensor/dtype.js';
import { unsafeData, wrap, type Tensor } from '../tensor/tensor.js';

/** k / denom with k uniform in [lo, hi] (defaults: [-16, 16] / 8, i.e. [-2, 2] in steps of 1/8). */
export function gridValues(
  rng: Rng,
  shape: readonly number[],
  opts: { lo?: number; hi?: number; denom?: number; dtype?: 'float32' | 'float64' } = {},
): Tensor {
  const lo = opts.lo ?? -16,
    hi = opts.hi ?? 16,
    denom = opts.denom ?? 8;
  const size = shape.reduce((a, b) => a * b, 1);
  const out = opts.dtype === 'float64' ? new Float64Array(size) : new Float32Array(size);
  for (let i = 0; i < size; i++) out[i] = (lo + rng.int(hi - lo + 1)) / denom;
  return wrap(out, shape.slice(), opts.dtype ?? 'float32');
}

/** int32 values uniform in [lo, hi]. */
export function intValues(rng: Rng, shape: readonly number[], lo: number, hi: number): Tensor {
  const size = shape.reduce((a, b) => a * b, 1);
  const out = new Int32Array(size);
  for (let i = 0; i < size; i++) out[i] = lo + rng.int(hi - lo + 1);
  return wrap(out, shape.slice(), 'int32');
}

/** bool values, true with probability num / den. */
export function boolValues(rng: Rng, shape: readonly number[], num = 1, den = 2): Tensor {
  const size = shape.reduce((a, b) => a * b, 1);
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = rng.int(den) < num ? 1 : 0;
  return wrap(out, shape.slice(), 'bool');
}

/** Values of `dtype` for a cache feature (floats on the 1/8 grid, int32 in [-9, 9], bool). */
export function featureValues(rng: Rng, shape: readonly number[], dtype: DType): Tensor {
  if (dtype === 'int32') return intValues(rng, shape, -9, 9);
  if (dtype === 'bool') return boolValues(rng, shape);
  return gridValues(rng, shape, { dtype });
}

/** A tensor from literal values. */
export function lit(values: readonly number[], shape: readonly number[], dtype: DType = 'float32'): Tensor {
  const ctor = { float32: Float32Array, float64: Float64Array, int32: Int32Array, bool: Uint8Array }[dtype];
  return wrap(ctor.from(values), shape.slice(), dtype);
}

/** A float64 copy of a float tensor (exact), or the tensor itself for other dtypes. */
export function as64(t: Tensor): Tensor {
  if (t.dtype !== 'float32') return t;
  return wrap(Float64Array.from(unsafeData(t)), t.shape.slice(), 'float64');
}

/** The values as plain numbers. */
export function nums(t: Tensor): number[] {
  return Array.from(unsafeData(t), Number);
}
