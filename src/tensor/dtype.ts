/**
 * Data types. `float32` is the working precision; `float64` exists so that
 * gradients can be checked against a float64 reference (see checkGradients);
 * `int32` holds ids, indices and ages (ids above 2^24 survive exactly, which
 * float32 could not do); `bool` holds masks (stored as 0/1 bytes).
 */
export type DType = 'float32' | 'float64' | 'int32' | 'bool';

export type FloatDType = 'float32' | 'float64';

export type TypedArray = Float32Array | Float64Array | Int32Array | Uint8Array;

export const DTYPES: readonly DType[] = ['float32', 'float64', 'int32', 'bool'];

export function isDType(x: unknown): x is DType {
  return typeof x === 'string' && (DTYPES as readonly string[]).includes(x);
}

export function isFloat(dtype: DType): dtype is FloatDType {
  return dtype === 'float32' || dtype === 'float64';
}

export function allocate(dtype: DType, size: number): TypedArray {
  switch (dtype) {
    case 'float32':
      return new Float32Array(size);
    case 'float64':
      return new Float64Array(size);
    case 'int32':
      return new Int32Array(size);
    case 'bool':
      return new Uint8Array(size);
  }
}

/** Bytes per element of a dtype's storage. */
export function bytesPerElement(dtype: DType): number {
  return dtype === 'float64' ? 8 : dtype === 'bool' ? 1 : 4;
}

/** The dtype a typed array stores (Uint8Array is bool). */
export function dtypeOfArray(a: TypedArray): DType {
  if (a instanceof Float32Array) return 'float32';
  if (a instanceof Float64Array) return 'float64';
  if (a instanceof Int32Array) return 'int32';
  return 'bool';
}

/**
 * Result dtype of an arithmetic op on two dtypes: equal dtypes stay; float32
 * with float64 promotes to float64 (so a float64 gradient check can run a
 * function that closes over float32 parameters). Anything else is null and
 * the op rejects it: mixing ints with floats needs an explicit `cast`.
 */
export function promote(a: DType, b: DType): DType | null {
  if (a === b) return a;
  if (isFloat(a) && isFloat(b)) return 'float64';
  return null;
}
