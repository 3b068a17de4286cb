/**
 * Data movement kernels: permute, slice, pad (the adjoint of slice), concat,
 * gather/scatter along an axis. Plain loops over an [outer, n, inner] view.
 */
import type { TypedArray } from '../dtype.js';
import { sizeOf, stridesOf, type Shape } from '../shape.js';

/** out = src with axes permuted: out.shape[i] = shape[perm[i]]. */
export function permute(src: TypedArray, shape: Shape, perm: readonly number[], out: TypedArray): TypedArray {
  const rank = shape.length;
  const n = src.length;
  if (n === 0) return out;
  if (rank === 2 && perm[0] === 1) {
    for (let i = 0; i < shape[0]!; i++)
      for (let j = 0; j < shape[1]!; j++) out[j * shape[0]! + i] = src[i * shape[1]! + j]!;
    return out;
  }
  const inStrides = stridesOf(shape);
  const outShape = perm.map((p) => shape[p]!);
  const stepIn = perm.map((p) => inStrides[p]!); // input stride for each output axis
  const counter = new Array<number>(rank).fill(0);
  let ii = 0;
  for (let o = 0; o < n; o++) {
    out[o] = src[ii]!;
    for (let axis = rank - 1; axis >= 0; axis--) {
      counter[axis]!++;
      ii += stepIn[axis]!;
      if (counter[axis]! < outShape[axis]!) break;
      ii -= stepIn[axis]! * outShape[axis]!;
      counter[axis] = 0;
    }
  }
  return out;
}

/** out = src[begin[0]:begin[0]+size[0], ...]. */
export function slice(
  src: TypedArray,
  shape: Shape,
  begin: readonly number[],
  size: readonly number[],
  out: TypedArray,
): TypedArray {
  copyBox(src, shape, begin, out, size, new Array(size.length).fill(0), size);
  return out;
}

/** out = zeros(outShape) with src placed at `begin` (the adjoint of slice). */
export function pad(
  src: TypedArray,
  shape: Shape,
  begin: readonly number[],
  outShape: Shape,
  out: TypedArray,
): TypedArray {
  copyBox(src, shape, new Array(shape.length).fill(0), out, outShape, begin, shape);
  return out;
}

/** Copies a box of `box` elements from src at srcBegin to dst at dstBegin. */
function copyBox(
  src: TypedArray,
  srcShape: Shape,
  srcBegin: readonly number[],
  dst: TypedArray,
  dstShape: Shape,
  dstBegin: readonly number[],
  box: Shape,
): void {
  const rank = box.length;
  if (sizeOf(box) === 0) return;
  if (rank === 0) {
    dst[0] = src[0]!;
    return;
  }
  const ss = stridesOf(srcShape),
    ds = stridesOf(dstShape);
  let si = 0,
    di = 0;
  for (let a = 0; a < rank; a++) {
    si += srcBegin[a]! * ss[a]!;
    di += dstBegin[a]! * ds[a]!;
  }
  const last = box[rank - 1]!;
  const counter = new Array<number>(rank).fill(0);
  const total = sizeOf(box);
  for (let done = 0; done < total; done += last) {
    dst.set(src.subarray(si, si + last), di);
    for (let axis = rank - 2; axis >= 0; axis--) {
      counter[axis]!++;
      si += ss[axis]!;
      di += ds[axis]!;
      if (counter[axis]! < box[axis]!) break;
      si -= ss[axis]! * box[axis]!;
      di -= ds[axis]! * box[axis]!;
      counter[axis] = 0;
    }
  }
}

/** Concatenates parts ([outer, n_p, inner] views) along the middle axis. */
export function concat(
  parts: readonly TypedArray[],
  outer: number,
  ns: readonly number[],
  inner: number,
  out: TypedArray,
): TypedArray {
  const total = ns.reduce((x, y) => x + y, 0);
  let offset = 0;
  for (let p = 0; p < parts.length; p++) {
    const chunk = ns[p]! * inner;
    const src = parts[p]!;
    for (let o = 0; o < outer; o++) out.set(src.subarray(o * chunk, (o + 1) * chunk), o * total * inner + offset);
    offset += chunk;
  }
  return out;
}

/** out[o, j, i] = src[o, idx[j], i] for src viewed as [outer, n, inner]. Indices are trusted. */
export function gather(
  src: TypedArray,
  outer: number,
  n: number,
  inner: number,
  idx: Int32Array,
  out: TypedArray,
): TypedArray {
  const m = idx.length;
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < m; j++) {
      const s = (o * n + idx[j]!) * inner;
      const d = (o * m + j) * inner;
      if (inner === 1) out[d] = src[s]!;
      else out.set(src.subarray(s, s + inner), d);
    }
  }
  return out;
}

/** The adjoint of gather: out (zeros [outer, n, inner]) accumulates src [outer, m, inner] at idx. */
export function scatterAdd(
  src: TypedArray,
  outer: number,
  n: number,
  inner: number,
  idx: Int32Array,
  out: TypedArray,
): TypedArray {
  const m = idx.length;
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < m; j++) {
      const d = (o * n + idx[j]!) * inner;
      const s = (o * m + j) * inner;
      for (let i = 0; i < inner; i++) out[d + i] += src[s + i]!;
    }
  }
  return out;
}

/**
 * out = src with rows idx[j] replaced by rows j of `updates` (rows of
 * `inner` elements; out already holds a copy of src). With repeated indices
 * the last write wins.
 */
export function scatterRows(updates: TypedArray, idx: Int32Array, inner: number, out: TypedArray): TypedArray {
  for (let j = 0; j < idx.length; j++) out.set(updates.subarray(j * inner, (j + 1) * inner), idx[j]! * inner);
  return out;
}

/** Zeroes rows idx[j] (of `inner` elements) of out in place: the part of x that scatterRows overwrote. */
export function zeroRows(idx: Int32Array, inner: number, out: TypedArray): TypedArray {
  for (let j = 0; j < idx.length; j++) out.fill(0, idx[j]! * inner, (idx[j]! + 1) * inner);
  return out;
}

/**
 * Sparse row sums: out[to[k]] += weight[k] · src[from[k]] for every entry k
 * (rows of `inner` elements; weight 1 when null; out starts at zero).
 */
export function sparseRows(
  src: TypedArray,
  inner: number,
  from: Int32Array,
  to: Int32Array,
  weight: Float64Array | null,
  out: TypedArray,
): TypedArray {
  for (let k = 0; k < from.length; k++) {
    const s = from[k]! * inner,
      d = to[k]! * inner,
      w = weight ? weight[k]! : 1;
    if (w === 1) for (let i = 0; i < inner; i++) out[d + i] += src[s + i]!;
    else for (let i = 0; i < inner; i++) out[d + i] += w * src[s + i]!;
  }
  return out;
}

/**
 * For row scatter with repeated indices the LAST occurrence wins (as if the
 * rows were written in order). Returns, for each update j, whether it wins.
 */
export function lastWriteWins(idx: Int32Array): Uint8Array {
  const wins = new Uint8Array(idx.length);
  const seen = new Set<number>();
  for (let j = idx.length - 1; j >= 0; j--) {
    if (!seen.has(idx[j]!)) {
      wins[j] = 1;
      seen.add(idx[j]!);
    }
  }
  return wins;
}
