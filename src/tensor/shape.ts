import { ArgumentError, ShapeError, describe, fmtShape } from '../errors.js';

export type Shape = readonly number[];

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
  if (sizeOf(shape) > 2 ** 31 - 1) {
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

/** NumPy broadcasting of two shapes; throws a ShapeError naming both. */
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
