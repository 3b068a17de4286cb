/**
 * Reductions over one contiguous axis of a row-major array seen as
 * [outer, n, inner]: out[o, i] = op over k of src[o, k, i]. Several axes are
 * reduced one after another by the callers. Sums accumulate in float64 (JS
 * numbers), so float32 sums are more accurate than a float32 accumulator.
 */
import type { TypedArray } from '../dtype.js';
import { around, type Shape } from '../shape.js';

export type ReduceOp = 'sum' | 'max' | 'min' | 'any' | 'all';

/**
 * Reduces the sorted `axes` of src (of `shape`) one axis at a time, last
 * axis first, and returns fresh storage of the reduced size (of src's
 * element type). No axes: a copy.
 */
export function reduceAxes(src: TypedArray, shape: Shape, axes: readonly number[], op: ReduceOp): TypedArray {
  if (axes.length === 0) return src.slice();
  let cur = src;
  const s = shape.slice();
  for (let a = axes.length - 1; a >= 0; a--) {
    const axis = axes[a]!;
    const [outer, n, inner] = around(s, axis);
    const out = new (cur.constructor as new (length: number) => TypedArray)(outer * inner);
    reduceAxis(cur, outer, n, inner, op, out);
    cur = out;
    s[axis] = 1;
  }
  return cur;
}

/**
 * The float32 sum: the same loops as reduceAxis's, in a function that only
 * ever sees Float32Array sources, so its element loads stay monomorphic (the
 * shared loop sees every typed-array class). Same order, same float64
 * accumulator: the same bits.
 */
function sumF32(src: Float32Array, outer: number, n: number, inner: number, out: TypedArray): TypedArray {
  const stride = n * inner;
  if (inner === 1) {
    for (let o = 0; o < outer; o++) {
      let s = 0;
      const base = o * n;
      for (let k = 0; k < n; k++) s += src[base + k]!;
      out[o] = s;
    }
    return out;
  }
  const acc = new Float64Array(inner);
  for (let o = 0; o < outer; o++) {
    acc.fill(0);
    for (let k = 0; k < n; k++) {
      const base = o * stride + k * inner;
      for (let i = 0; i < inner; i++) acc[i] += src[base + i]!;
    }
    for (let i = 0; i < inner; i++) out[o * inner + i] = acc[i]!;
  }
  return out;
}

export function reduceAxis(
  src: TypedArray,
  outer: number,
  n: number,
  inner: number,
  op: ReduceOp,
  out: TypedArray,
): TypedArray {
  const stride = n * inner;
  if (op === 'sum' && src instanceof Float32Array) return sumF32(src, outer, n, inner, out);
  if (op === 'sum') {
    if (inner === 1) {
      for (let o = 0; o < outer; o++) {
        let s = 0;
        const base = o * n;
        for (let k = 0; k < n; k++) s += src[base + k]!;
        out[o] = s;
      }
      return out;
    }
    const acc = new Float64Array(inner);
    for (let o = 0; o < outer; o++) {
      acc.fill(0);
      for (let k = 0; k < n; k++) {
        const base = o * stride + k * inner;
        for (let i = 0; i < inner; i++) acc[i] += src[base + i]!;
      }
      for (let i = 0; i < inner; i++) out[o * inner + i] = acc[i]!;
    }
    return out;
  }
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * stride + i;
      let r: number;
      switch (op) {
        case 'max': {
          r = -Infinity;
          for (let k = 0; k < n; k++) {
            const v = src[base + k * inner]!;
            if (v > r || v !== v) r = v; // NaN propagates
            if (r !== r) break;
          }
          break;
        }
        case 'min': {
          r = Infinity;
          for (let k = 0; k < n; k++) {
            const v = src[base + k * inner]!;
            if (v < r || v !== v) r = v;
            if (r !== r) break;
          }
          break;
        }
        case 'any': {
          r = 0;
          for (let k = 0; k < n; k++)
            if (src[base + k * inner]) {
              r = 1;
              break;
            }
          break;
        }
        case 'all': {
          r = 1;
          for (let k = 0; k < n; k++)
            if (!src[base + k * inner]) {
              r = 0;
              break;
            }
          break;
        }
      }
      out[o * inner + i] = r;
    }
  }
  return out;
}

/**
 * Index of the first maximum (or minimum) along the axis; NaN counts as the
 * maximum (first NaN wins), matching NumPy's argmax.
 */
export function argReduceAxis(
  src: TypedArray,
  outer: number,
  n: number,
  inner: number,
  mode: 'max' | 'min',
  out: Int32Array,
): Int32Array {
  const stride = n * inner;
  const sign = mode === 'max' ? 1 : -1;
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * stride + i;
      let best = -Infinity,
        arg = 0;
      for (let k = 0; k < n; k++) {
        const v = src[base + k * inner]!;
        if (v !== v) {
          arg = k;
          break;
        }
        if (sign * v > best) {
          best = sign * v;
          arg = k;
        }
      }
      out[o * inner + i] = arg;
    }
  }
  return out;
}

/** Inclusive cumulative sum along an axis ([outer, n, inner] view), optionally from the end. */
export function cumsumAxis(
  src: TypedArray,
  outer: number,
  n: number,
  inner: number,
  reverse: boolean,
  out: TypedArray,
): TypedArray {
  const stride = n * inner;
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * stride + i;
      let s = 0;
      if (!reverse) {
        for (let k = 0; k < n; k++) {
          s += src[base + k * inner]!;
          out[base + k * inner] = s;
        }
      } else {
        for (let k = n - 1; k >= 0; k--) {
          s += src[base + k * inner]!;
          out[base + k * inner] = s;
        }
      }
    }
  }
  return out;
}
