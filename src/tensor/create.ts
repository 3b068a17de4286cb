/**
 * Creating tensors. Numbers default to float32 and booleans to bool; pass a
 * dtype to choose. int32 values must be integers in [-2^31, 2^31).
 */
import { ArgumentError, DTypeError, ShapeError, describe, fmtShape } from '../errors.js';
import { allocate, isDType, type DType, type TypedArray } from './dtype.js';
import { Rng } from './random.js';
import { checkShape, sizeOf, type Shape } from './shape.js';
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
    const d = checkDType(op, dtype ?? inferFromTyped(values));
    const s = shape === undefined ? [values.length] : checkShape(op, 'shape', shape);
    if (sizeOf(s) !== values.length)
      throw new ShapeError(op, `shape ${fmtShape(s)} needs ${sizeOf(s)} values, got ${values.length}`);
    const out = allocate(d, values.length);
    for (let i = 0; i < values.length; i++)
      store(op, out, i, d === 'bool' ? (values[i] === 0 ? 0 : values[i] === 1 ? 1 : values[i]) : values[i], d);
    return wrap(out, s, d);
  }
  const inferred = inferShape(values);
  if (shape !== undefined && sizeOf(checkShape(op, 'shape', shape)) !== sizeOf(inferred)) {
    throw new ShapeError(op, `shape ${fmtShape(shape)} needs ${sizeOf(shape)} values, got ${sizeOf(inferred)}`);
  }
  const first = firstLeaf(values);
  const d = checkDType(op, dtype ?? (typeof first === 'boolean' ? 'bool' : 'float32'));
  const out = allocate(d, sizeOf(inferred));
  let i = 0;
  const walk = (v: NestedArray): void => {
    if (Array.isArray(v)) for (const x of v) walk(x);
    else store(op, out, i++, v, d);
  };
  walk(values);
  return wrap(out, shape ?? inferred, d);
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
    shape.push(v.length);
    v = v[0];
  }
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
  const out = allocate(d, sizeOf(s));
  store('full', out, 0, value, d);
  out.fill(out[0] ?? 0);
  return wrap(out, s, d);
}

export function zeros(shape: readonly number[], dtype: DType = 'float32'): Tensor {
  const s = checkShape('zeros', 'shape', shape);
  const d = checkDType('zeros', dtype);
  return wrap(allocate(d, sizeOf(s)), s, d);
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
  const out = allocate(d, n);
  for (let i = 0; i < n; i++) store('arange', out, i, start + i * step, d);
  return wrap(out, [n], d);
}

function checkRng(op: string, g: unknown): Rng {
  if (!(g instanceof Rng))
    throw new ArgumentError(op, `rng must be a seeded Rng (e.g. new Rng(42)), got ${describe(g)}`);
  return g;
}

function checkOpts(op: string, opts: unknown, allowed: readonly string[]): void {
  if (typeof opts !== 'object' || opts === null || Array.isArray(opts)) {
    throw new ArgumentError(op, `options must be an object like {${allowed.join(', ')}}, got ${describe(opts)}`);
  }
  for (const key of Object.keys(opts)) {
    if (!allowed.includes(key)) throw new ArgumentError(op, `unknown option "${key}"; allowed: ${allowed.join(', ')}`);
  }
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
  checkOpts('uniform', opts, ['low', 'high', 'dtype']);
  const d = checkFloatDType('uniform', opts.dtype ?? 'float32');
  const low = opts.low ?? 0,
    high = opts.high ?? 1;
  if (!Number.isFinite(low) || !Number.isFinite(high) || !(low <= high)) {
    throw new ArgumentError('uniform', `need finite low <= high, got low=${low}, high=${high}`);
  }
  const out = allocate(d, sizeOf(s));
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
  checkOpts('normal', opts, ['mean', 'std', 'dtype']);
  const d = checkFloatDType('normal', opts.dtype ?? 'float32');
  const mean = opts.mean ?? 0,
    std = opts.std ?? 1;
  if (!Number.isFinite(mean) || !Number.isFinite(std) || std < 0) {
    throw new ArgumentError('normal', `need finite mean and std >= 0, got mean=${mean}, std=${std}`);
  }
  const out = allocate(d, sizeOf(s));
  for (let i = 0; i < out.length; i++) out[i] = mean + std * g.normal();
  return wrap(out, s, d);
}

export type { Shape };
