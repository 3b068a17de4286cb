import { ArgumentError, ShapeError, describe, fmtShape } from '../errors.js';
import { allocate, bytesPerElement, type DType, type TypedArray } from './dtype.js';

export type Shape = readonly number[];

/**
 * Size limits, checked before anything is allocated. A tensor holds at most
 * 2^31 - 1 elements (indices are int32 and kernels index with 32-bit
 * integers; JS engines cap typed arrays near there too), and has at most 64
 * axes (as NumPy 2; deeper nesting is almost certainly a mistake and would
 * overflow recursive printers).
 */
export const MAX_ELEMENTS = 2 ** 31 - 1;
export const MAX_RANK = 64;

/**
 * Checks that a result of `shape` and `dtype` may be allocated: at most
 * MAX_RANK axes and MAX_ELEMENTS elements. Returns its element count. Call
 * it wherever a new shape is computed (broadcasting, matmul, concat, pad,
 * gather, creation) so a too-large request is an ArgumentError naming the op
 * instead of a RangeError from the engine.
 */
export function checkSize(op: string, shape: Shape, dtype: DType): number {
  if (shape.length > MAX_RANK)
    throw new ArgumentError(op, `the result would have ${shape.length} axes; need at most ${MAX_RANK}`);
  const n = sizeOf(shape);
  if (!(n <= MAX_ELEMENTS)) {
    const gib = (n * bytesPerElement(dtype)) / 2 ** 30;
    throw new ArgumentError(
      op,
      `the result would be a ${fmtShape(shape)} ${dtype} tensor of ${n} elements (${gib.toFixed(1)} GiB); need at most 2^31-1 elements`,
    );
  }
  return n;
}

/**
 * Fresh zeroed storage for a result of `shape` and `dtype`: checkSize, then
 * the allocation, whose failure (the engine is out of memory) also becomes
 * an ArgumentError naming the op and the bytes it needed.
 */
export function allocateFor(op: string, shape: Shape, dtype: DType): TypedArray {
  const n = checkSize(op, shape, dtype);
  try {
    return allocate(dtype, n);
  } catch (e) {
    if (!(e instanceof RangeError)) throw e;
    throw new ArgumentError(
      op,
      `could not allocate ${n * bytesPerElement(dtype)} bytes for a ${fmtShape(shape)} ${dtype} tensor (out of memory: ${e.message})`,
    );
  }
}

export function sizeOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Row-major strides: the last axis is contiguous. */
export function stridesOf(shape: Shape): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i]!;
  }
  return strides;
}

export function shapesEqual(a: Shape, b: Shape): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function isDim(d: unknown): d is number {
  return typeof d === 'number' && Number.isInteger(d) && d >= 0 && d <= 2 ** 31 - 1;
}

/** A value as JSON for error messages; never throws (BigInt, symbols and unprintable objects included). */
export function showJson(x: unknown): string {
  try {
    return (
      JSON.stringify(x, (_k, v: unknown) =>
        typeof v === 'bigint' ? `${v}n` : typeof v === 'symbol' ? v.toString() : v,
      ) ?? describe(x)
    );
  } catch {
    return describe(x);
  }
}

export function checkShape(op: string, arg: string, shape: unknown): number[] {
  if (!Array.isArray(shape) || !shape.every(isDim)) {
    throw new ArgumentError(op, `${arg} must be an array of non-negative integers, got ${showJson(shape)}`);
  }
  if (shape.length > MAX_RANK) throw new ArgumentError(op, `${arg} has ${shape.length} axes; need at most ${MAX_RANK}`);
  if (sizeOf(shape) > MAX_ELEMENTS) {
    throw new ArgumentError(op, `${arg} ${fmtShape(shape)} has ${sizeOf(shape)} elements; need at most 2^31-1`);
  }
  return shape.slice();
}

/** Resolves a possibly negative axis against a rank; throws naming the op. */
export function normalizeAxis(op: string, axis: unknown, rank: number, arg = 'axis'): number {
  if (typeof axis !== 'number' || !Number.isInteger(axis) || axis < -rank || axis >= rank) {
    throw new ArgumentError(
      op,
      `${arg} ${String(axis)} is out of range for a tensor of rank ${rank}; need an integer in [${-rank}, ${rank - 1}]`,
    );
  }
  return axis < 0 ? axis + rank : axis;
}

/** Resolves `axis` option (number, list, or undefined = all axes) to sorted unique axes. */
export function normalizeAxes(op: string, axis: number | readonly number[] | undefined, rank: number): number[] {
  if (axis === undefined) return Array.from({ length: rank }, (_, i) => i);
  const list = typeof axis === 'number' ? [axis] : axis;
  if (!Array.isArray(list))
    throw new ArgumentError(op, `axis must be a number or an array of numbers, got ${showJson(axis)}`);
  const out = list.map((a) => normalizeAxis(op, a, rank));
  const unique = [...new Set(out)].sort((x, y) => x - y);
  if (unique.length !== out.length)
    throw new ArgumentError(op, `axis ${showJson(axis)} repeats an axis; each axis may appear once`);
  return unique;
}

/**
 * [outer, n, inner] view of `shape` around `axis`: the product of the axes
 * before it, its size, and the product of the axes after it.
 */
export function around(shape: Shape, axis: number): [number, number, number] {
  let outer = 1,
    inner = 1;
  for (let i = 0; i < axis; i++) outer *= shape[i]!;
  for (let i = axis + 1; i < shape.length; i++) inner *= shape[i]!;
  return [outer, shape[axis]!, inner];
}

/**
 * NumPy broadcasting of two shapes; throws a ShapeError naming both, and an
 * ArgumentError when the result would exceed MAX_ELEMENTS.
 */
export function broadcastShapes(op: string, a: Shape, b: Shape): number[] {
  const rank = Math.max(a.length, b.length);
  const out = new Array<number>(rank);
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da === db || db === 1) out[i] = da;
    else if (da === 1) out[i] = db;
    else {
      throw new ShapeError(
        op,
        `shapes ${fmtShape(a)} and ${fmtShape(b)} do not broadcast (axis ${i - rank}: ${da} vs ${db}; need equal sizes or one of them 1)`,
      );
    }
  }
  if (sizeOf(out) > MAX_ELEMENTS)
    throw new ArgumentError(
      op,
      `shapes ${fmtShape(a)} and ${fmtShape(b)} broadcast to ${fmtShape(out)} = ${sizeOf(out)} elements; need at most 2^31-1`,
    );
  return out;
}

/** Shape after reducing `axes` (sorted), with or without kept size-1 dims. */
export function reducedShape(shape: Shape, axes: readonly number[], keepDims: boolean): number[] {
  const out: number[] = [];
  for (let i = 0; i < shape.length; i++) {
    if (axes.includes(i)) {
      if (keepDims) out.push(1);
    } else out.push(shape[i]!);
  }
  return out;
}
