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

/** The four arithmetic ops, which get their own loops (a closure call per element is several times slower). */
export type ArithOp = 'add' | 'sub' | 'mul' | 'div';

/**
 * out[o + j] = a[ia + j·la] ∘ b[ib + j·lb] for j < len: one strided run.
 * Strides are 0 (broadcast) or 1 in practice.
 */
function run(
  f: Binary | ArithOp,
  a: TypedArray,
  ia: number,
  la: number,
  b: TypedArray,
  ib: number,
  lb: number,
  out: TypedArray,
  o: number,
  len: number,
): void {
  switch (f) {
    case 'add':
      for (let j = 0; j < len; j++) out[o + j] = a[ia + j * la]! + b[ib + j * lb]!;
      return;
    case 'sub':
      for (let j = 0; j < len; j++) out[o + j] = a[ia + j * la]! - b[ib + j * lb]!;
      return;
    case 'mul':
      for (let j = 0; j < len; j++) out[o + j] = a[ia + j * la]! * b[ib + j * lb]!;
      return;
    case 'div':
      for (let j = 0; j < len; j++) out[o + j] = a[ia + j * la]! / b[ib + j * lb]!;
      return;
    default:
      for (let j = 0; j < len; j++) out[o + j] = f(a[ia + j * la]!, b[ib + j * lb]!);
  }
}

/**
 * The same-shape float32 case of `run` in a function that only ever sees
 * Float32Arrays: `run` is called with every typed-array type, so V8 compiles
 * its element accesses generically, several times slower. Same arithmetic
 * (one operation, rounded by the store), same results. Cotangent
 * accumulation in the backward pass (a tensor used twice) lands here.
 */
function runF32(f: ArithOp, a: Float32Array, b: Float32Array, out: Float32Array, n: number): void {
  switch (f) {
    case 'add':
      for (let j = 0; j < n; j++) out[j] = a[j]! + b[j]!;
      return;
    case 'sub':
      for (let j = 0; j < n; j++) out[j] = a[j]! - b[j]!;
      return;
    case 'mul':
      for (let j = 0; j < n; j++) out[j] = a[j]! * b[j]!;
      return;
    case 'div':
      for (let j = 0; j < n; j++) out[j] = a[j]! / b[j]!;
  }
}

/**
 * out[idx] = f(a[idx'], b[idx'']) with NumPy broadcasting: runs along the
 * last axis, and an odometer over the other axes. `f` is a function, or the
 * name of an arithmetic op (specialised loops).
 */
export function mapBinary(
  a: TypedArray,
  aShape: Shape,
  b: TypedArray,
  bShape: Shape,
  outShape: Shape,
  out: TypedArray,
  f: Binary | ArithOp,
): TypedArray {
  const n = out.length;
  if (n === 0) return out;
  if (a.length === n && b.length === n) {
    if (typeof f === 'string' && a instanceof Float32Array && b instanceof Float32Array && out instanceof Float32Array)
      runF32(f, a, b, out, n);
    else run(f, a, 0, 1, b, 0, 1, out, 0, n);
    return out;
  }
  if (b.length === 1 && a.length === n) {
    run(f, a, 0, 1, b, 0, 0, out, 0, n);
    return out;
  }
  if (a.length === 1 && b.length === n) {
    run(f, a, 0, 0, b, 0, 1, out, 0, n);
    return out;
  }
  const rank = outShape.length;
  const sa = broadcastStrides(aShape, outShape);
  const sb = broadcastStrides(bShape, outShape);
  const last = outShape[rank - 1]!;
  const la = sa[rank - 1]!,
    lb = sb[rank - 1]!;
  const counter = new Array<number>(rank).fill(0);
  let ia = 0,
    ib = 0;
  for (let o = 0; o < n; o += last) {
    run(f, a, ia, la, b, ib, lb, out, o, last);
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
  c: TypedArray,
  cShape: Shape,
  a: TypedArray,
  aShape: Shape,
  b: TypedArray,
  bShape: Shape,
  outShape: Shape,
  out: TypedArray,
): TypedArray {
  const n = out.length;
  if (n === 0) return out;
  const rank = outShape.length;
  const sc = broadcastStrides(cShape, outShape);
  const sa = broadcastStrides(aShape, outShape);
  const sb = broadcastStrides(bShape, outShape);
  const counter = new Array<number>(rank).fill(0);
  let ic = 0,
    ia = 0,
    ib = 0;
  for (let o = 0; o < n; o++) {
    out[o] = c[ic] ? a[ia]! : b[ib]!;
    for (let axis = rank - 1; axis >= 0; axis--) {
      counter[axis]!++;
      ic += sc[axis]!;
      ia += sa[axis]!;
      ib += sb[axis]!;
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
