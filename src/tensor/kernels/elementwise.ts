/**
 * Elementwise kernels: plain loops over typed arrays, no autodiff, no
 * validation (the public ops validate). Broadcasting is resolved here with
 * per-axis strides (0 along broadcast axes) so that `mul(x, 20)` never
 * materialises a full-size copy of the scalar.
 */
import type { TypedArray } from '../dtype.js';
import { stridesOf, type Shape } from '../shape.js';

export type Unary = (x: number) => number;
export type Binary = (a: number, b: number) => number;

export function mapUnary(src: TypedArray, out: TypedArray, f: Unary): TypedArray {
  const n = src.length;
  for (let i = 0; i < n; i++) out[i] = f(src[i]!);
  return out;
}

/** Strides of `shape` viewed in an output of rank `rank`: 0 along broadcast (size-1 or missing) axes. */
export function broadcastStrides(shape: Shape, outShape: Shape): number[] {
  const rank = outShape.length;
  const own = stridesOf(shape);
  const out = new Array<number>(rank).fill(0);
  for (let i = 0; i < shape.length; i++) {
    const axis = rank - shape.length + i;
    out[axis] = shape[i] === 1 && outShape[axis] !== 1 ? 0 : own[i]!;
  }
  return out;
}

/**
 * out[idx] = f(a[idx'], b[idx'']) with NumPy broadcasting. Fast paths for
 * equal shapes and scalar operands; otherwise an odometer over all axes but
 * the last, with a strided inner loop over the last axis.
 */
export function mapBinary(
  a: TypedArray, aShape: Shape, b: TypedArray, bShape: Shape,
  outShape: Shape, out: TypedArray, f: Binary,
): TypedArray {
  const n = out.length;
  if (n === 0) return out;
  if (a.length === n && b.length === n) {
    for (let i = 0; i < n; i++) out[i] = f(a[i]!, b[i]!);
    return out;
  }
  if (b.length === 1 && a.length === n) {
    const bv = b[0]!;
    for (let i = 0; i < n; i++) out[i] = f(a[i]!, bv);
    return out;
  }
  if (a.length === 1 && b.length === n) {
    const av = a[0]!;
    for (let i = 0; i < n; i++) out[i] = f(av, b[i]!);
    return out;
  }
  const rank = outShape.length;
  const sa = broadcastStrides(aShape, outShape);
  const sb = broadcastStrides(bShape, outShape);
  const last = outShape[rank - 1]!;
  const la = sa[rank - 1]!, lb = sb[rank - 1]!;
  const counter = new Array<number>(rank).fill(0);
  let ia = 0, ib = 0;
  for (let o = 0; o < n; o += last) {
    for (let j = 0; j < last; j++) out[o + j] = f(a[ia + j * la]!, b[ib + j * lb]!);
    // advance the odometer over axes rank-2 .. 0
    for (let axis = rank - 2; axis >= 0; axis--) {
      counter[axis]!++;
      ia += sa[axis]!;
      ib += sb[axis]!;
      if (counter[axis]! < outShape[axis]!) break;
      ia -= sa[axis]! * outShape[axis]!;
      ib -= sb[axis]! * outShape[axis]!;
      counter[axis] = 0;
    }
  }
  return out;
}

/** out = cond ? a : b with broadcasting of all three to outShape. */
export function mapWhere(
  c: TypedArray, cShape: Shape, a: TypedArray, aShape: Shape, b: TypedArray, bShape: Shape,
  outShape: Shape, out: TypedArray,
): TypedArray {
  const n = out.length;
  if (n === 0) return out;
  const rank = outShape.length;
  const sc = broadcastStrides(cShape, outShape);
  const sa = broadcastStrides(aShape, outShape);
  const sb = broadcastStrides(bShape, outShape);
  const counter = new Array<number>(rank).fill(0);
  let ic = 0, ia = 0, ib = 0;
  for (let o = 0; o < n; o++) {
    out[o] = c[ic] ? a[ia]! : b[ib]!;
    for (let axis = rank - 1; axis >= 0; axis--) {
      counter[axis]!++;
      ic += sc[axis]!; ia += sa[axis]!; ib += sb[axis]!;
      if (counter[axis]! < outShape[axis]!) break;
      ic -= sc[axis]! * outShape[axis]!;
      ia -= sa[axis]! * outShape[axis]!;
      ib -= sb[axis]! * outShape[axis]!;
      counter[axis] = 0;
    }
  }
  return out;
}

/** Materialises src (shape) broadcast to outShape. */
export function broadcastTo(src: TypedArray, shape: Shape, outShape: Shape, out: TypedArray): TypedArray {
  return mapBinary(src, shape, src.subarray(0, 1), [], outShape, out, (x) => x);
}
