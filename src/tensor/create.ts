/**
 * Creating tensors. Numbers default to float32 and booleans to bool; pass a
 * dtype to choose. int32 values must be integers in [-2^31, 2^31).
 */
import { ArgumentError, DTypeError, ShapeError, checkOptions, describe, fmtShape } from '../errors.js';
import { isDType, type DType, type TypedArray } from './dtype.js';
import { Rng } from './random.js';
import { MAX_RANK, allocateFor, checkShape, checkSize, sizeOf, type Shape } from './shape.js';
import { wrap, type Tensor } from './tensor.js';

export type NestedArray = number | boolean | readonly NestedArray[];

function checkDType(op: string, dtype: unknown): DType {
  if (!isDType(dtype))
    throw new DTypeError(op, `dtype must be one of float32, float64, int32, bool; got ${describe(dtype)}`);
  return dtype;
}

/** Writes one JS value into storage, validating it for the dtype. */
function store(op: string, out: TypedArray, i: number, v: unknown, dtype: DType): void {
  if (dtype === 'bool') {
    if (typeof v === 'boolean') out[i] = v ? 1 : 0;
    else if (v === 0 || v === 1) out[i] = v;
    else
      throw new ArgumentError(
        op,
        `value ${describe(v)} at flat index ${i} is not a boolean; bool tensors need true/false (or 0/1)`,
      );
    return;
  }
  if (typeof v !== 'number') {
    throw new ArgumentError(
      op,
      `value ${describe(v)} at flat index ${i} is not a number; ${dtype} tensors need numbers`,
    );
  }
  if (dtype === 'int32' && !(Number.isInteger(v) && v >= -2147483648 && v <= 2147483647)) {
    throw new ArgumentError(op, `value ${v} at flat index ${i} is not an int32; need an integer in [-2^31, 2^31-1]`);
  }
  out[i] = v;
}

/**
 * A tensor from nested arrays, e.g. `tensor([[1, 2], [3, 4]])` (float32),
 * `tensor([3, 7], 'int32')`, `tensor([true, false])` (bool). Also accepts a
 * typed array with an explicit shape: `tensor(new Float32Array(6), 'float32', [2, 3])`.
 */
export function tensor(values: NestedArray | TypedArray, dtype?: DType, shape?: readonly number[]): Tensor {
  const op = 'tensor';
  if (ArrayBuffer.isView(values)) {
    const src = checkTypedValues(op, values);
    const d = checkDType(op, dtype ?? inferFromTyped(src));
    const s = shape === undefined ? [src.length] : checkShape(op, 'shape', shape);
    if (sizeOf(s) !== src.length)
      throw new ShapeError(op, `shape ${fmtShape(s)} needs ${sizeOf(s)} values, got ${src.length}`);
    const out = allocateFor(op, s, d);
    for (let i = 0; i < src.length; i++)
      store(op, out, i, d === 'bool' ? (src[i] === 0 ? 0 : src[i] === 1 ? 1 : src[i]) : src[i], d);
    return wrap(out, s, d);
  }
  const inferred = inferShape(values);
  if (shape !== undefined && sizeOf(checkShape(op, 'shape', shape)) !== sizeOf(inferred)) {
    throw new ShapeError(op, `shape ${fmtShape(shape)} needs ${sizeOf(shape)} values, got ${sizeOf(inferred)}`);
  }
  const first = firstLeaf(values);
  const d = checkDType(op, dtype ?? (typeof first === 'boolean' ? 'bool' : 'float32'));
  const out = allocateFor(op, inferred, d);
  let i = 0;
  const walk = (v: NestedArray): void => {
    if (Array.isArray(v)) for (const x of v) walk(x);
    else store(op, out, i++, v, d);
  };
  walk(values);
  return wrap(out, shape ?? inferred, d);
}

/** Typed arrays of numbers (not a DataView, not BigInt64Array/BigUint64Array), as an indexable array. */
type NumericArray = ArrayLike<number> & ArrayBufferView;

function checkTypedValues(op: string, values: ArrayBufferView): NumericArray {
  if (values instanceof DataView || values instanceof BigInt64Array || values instanceof BigUint64Array) {
    throw new ArgumentError(
      op,
      `values must be nested arrays or a typed array of numbers (Float32Array, Float64Array, Int32Array, Uint8Array, ...), got ${describe(values)}`,
    );
  }
  return values as unknown as NumericArray;
}

function inferFromTyped(a: ArrayBufferView): DType {
  if (a instanceof Float64Array) return 'float64';
  if (a instanceof Int32Array) return 'int32';
  if (a instanceof Uint8Array) return 'bool';
  return 'float32';
}

function firstLeaf(v: NestedArray): unknown {
  while (Array.isArray(v)) {
    if (v.length === 0) return undefined;
    v = v[0];
  }
  return v;
}

/** The shape of a nested array; ragged nesting is an error naming the path. */
function inferShape(values: unknown): number[] {
  const shape: number[] = [];
  let v: unknown = values;
  while (Array.isArray(v)) {
    // Bounding the depth first keeps the recursive check below shallow (and ends a self-containing array).
    if (shape.length === MAX_RANK)
      throw new ArgumentError(
        'tensor',
        `values are nested more than ${MAX_RANK} arrays deep; a tensor has at most ${MAX_RANK} axes`,
      );
    shape.push(v.length);
    v = v[0];
  }
  checkSize('tensor', shape, 'float32');
  const check = (x: unknown, depth: number, path: string): void => {
    if (depth === shape.length) {
      if (Array.isArray(x))
        throw new ShapeError(
          'tensor',
          `ragged nested array: ${path} is an array but the shape ${fmtShape(shape)} says it should be a value`,
        );
      return;
    }
    if (!Array.isArray(x) || x.length !== shape[depth]) {
      throw new ShapeError(
        'tensor',
        `ragged nested array: ${path} has ${Array.isArray(x) ? `length ${x.length}` : describe(x)}; need length ${shape[depth]} to match shape ${fmtShape(shape)}`,
      );
    }
    x.forEach((e, i) => check(e, depth + 1, `${path}[${i}]`));
  };
  check(values, 0, 'values');
  return shape;
}

export function full(shape: readonly number[], value: number | boolean, dtype?: DType): Tensor {
  const s = checkShape('full', 'shape', shape);
  const d = checkDType('full', dtype ?? (typeof value === 'boolean' ? 'bool' : 'float32'));
  const out = allocateFor('full', s, d);
  store('full', out, 0, value, d);
  out.fill(out[0] ?? 0);
  return wrap(out, s, d);
}

export function zeros(shape: readonly number[], dtype: DType = 'float32'): Tensor {
  const s = checkShape('zeros', 'shape', shape);
  const d = checkDType('zeros', dtype);
  return wrap(allocateFor('zeros', s, d), s, d);
}

export function ones(shape: readonly number[], dtype: DType = 'float32'): Tensor {
  return full(shape, dtype === 'bool' ? true : 1, dtype);
}

/** [start, start+step, ...) below stop, like NumPy's arange. int32 by default when all arguments are integers. */
export function arange(start: number, stop?: number, step = 1, dtype?: DType): Tensor {
  if (stop === undefined) {
    stop = start;
    start = 0;
  }
  for (const [name, v] of [
    ['start', start],
    ['stop', stop],
    ['step', step],
  ] as const) {
    if (typeof v !== 'number' || !Number.isFinite(v))
      throw new ArgumentError('arange', `${name} must be a finite number, got ${describe(v)}`);
  }
  if (step === 0) throw new ArgumentError('arange', 'step must not be 0');
  const d = checkDType('arange', dtype ?? (Number.isInteger(start) && Number.isInteger(step) ? 'int32' : 'float32'));
  const n = Math.max(0, Math.ceil((stop - start) / step));
  if (!(n <= 2 ** 31 - 1))
    throw new ArgumentError('arange', `[${start}, ${stop}) with step ${step} has ${n} values; need at most 2^31-1`);
  const out = allocateFor('arange', [n], d);
  for (let i = 0; i < n; i++) store('arange', out, i, start + i * step, d);
  return wrap(out, [n], d);
}

function checkRng(op: string, g: unknown): Rng {
  if (!(g instanceof Rng))
    throw new ArgumentError(op, `rng must be a seeded Rng (e.g. new Rng(42)), got ${describe(g)}`);
  return g;
}

function checkFloatDType(op: string, dtype: DType): DType {
  if (dtype !== 'float32' && dtype !== 'float64')
    throw new DTypeError(op, `dtype must be float32 or float64, got ${dtype}`);
  return dtype;
}

/** Uniform values in [low, high) drawn from `rng` in row-major order. */
export function uniform(
  shape: readonly number[],
  rng: Rng,
  opts: { low?: number; high?: number; dtype?: DType } = {},
): Tensor {
  const s = checkShape('uniform', 'shape', shape);
  const g = checkRng('uniform', rng);
  checkOptions('uniform', opts, ['low', 'high', 'dtype']);
  const d = checkFloatDType('uniform', opts.dtype ?? 'float32');
  const low = opts.low ?? 0,
    high = opts.high ?? 1;
  if (!Number.isFinite(low) || !Number.isFinite(high) || !(low <= high)) {
    throw new ArgumentError('uniform', `need finite low <= high, got low=${low}, high=${high}`);
  }
  const out = allocateFor('uniform', s, d);
  for (let i = 0; i < out.length; i++) out[i] = low + (high - low) * g.uniform();
  return wrap(out, s, d);
}

/** Normal values with the given mean and standard deviation, drawn from `rng` in row-major order. */
export function normal(
  shape: readonly number[],
  rng: Rng,
  opts: { mean?: number; std?: number; dtype?: DType } = {},
): Tensor {
  const s = checkShape('normal', 'shape', shape);
  const g = checkRng('normal', rng);
  checkOptions('normal', opts, ['mean', 'std', 'dtype']);
  const d = checkFloatDType('normal', opts.dtype ?? 'float32');
  const mean = opts.mean ?? 0,
    std = opts.std ?? 1;
  if (!Number.isFinite(mean) || !Number.isFinite(std) || std < 0) {
    throw new ArgumentError('normal', `need finite mean and std >= 0, got mean=${mean}, std=${std}`);
  }
  const out = allocateFor('normal', s, d);
  for (let i = 0; i < out.length; i++) out[i] = mean + std * g.normal();
  return wrap(out, s, d);
}

export type { Shape };
