/**
 * log-softmax along one axis of a row-major array seen as [outer, n, inner],
 * and its backward pass. Plain loops, no autodiff, no validation.
 *
 *   forward   z = x - m - log Σ exp(x - m),  m = max(x) along the axis (stable; NaN propagates)
 *   backward  x̄ = ḡ - exp(z) · Σ ḡ           (softmax(x) = exp(z))
 *
 * A row that is entirely -Infinity gives NaN (the distribution is undefined).
 * Contiguous rows (inner = 1) of at least WASM_MIN_ELEMENTS float32 values
 * take their exp from the wasm kernel.
 */
import type { TypedArray } from '../dtype.js';
import { WASM_MIN_ELEMENTS } from './elementwise.js';
import { expWasm, wasmAvailable } from './wasm/index.js';

export function logSoftmaxAxis(src: TypedArray, outer: number, n: number, inner: number, out: TypedArray): TypedArray {
  const row = inner === 1 ? null : new Float64Array(n);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * n * inner + i;
      let m = -Infinity;
      for (let k = 0; k < n; k++) {
        const v = src[base + k * inner]!;
        if (v > m || v !== v) m = v;
      }
      if (inner === 1) {
        // contiguous row: shift into out, then exp into a scratch row
        for (let k = 0; k < n; k++) out[base + k] = src[base + k]! - m;
        const e = expRow(out, base, n);
        let sum = 0;
        for (let k = 0; k < n; k++) sum += e[k]!;
        const ls = Math.log(sum);
        for (let k = 0; k < n; k++) out[base + k] = out[base + k]! - ls;
      } else {
        let sum = 0;
        for (let k = 0; k < n; k++) {
          row![k] = src[base + k * inner]! - m;
          sum += Math.exp(row![k]!);
        }
        const ls = Math.log(sum);
        for (let k = 0; k < n; k++) out[base + k * inner] = row![k]! - ls;
      }
    }
  }
  return out;
}

/** out = g - exp(z) · Σ_axis g, for the log-softmax output z and its cotangent g. */
export function logSoftmaxBackward(
  g: TypedArray,
  z: TypedArray,
  outer: number,
  n: number,
  inner: number,
  out: TypedArray,
): TypedArray {
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * n * inner + i;
      let gs = 0;
      for (let k = 0; k < n; k++) gs += g[base + k * inner]!;
      if (inner === 1) {
        const e = expRow(z, base, n);
        for (let k = 0; k < n; k++) out[base + k] = g[base + k]! - e[k]! * gs;
      } else {
        for (let k = 0; k < n; k++) out[base + k * inner] = g[base + k * inner]! - Math.exp(z[base + k * inner]!) * gs;
      }
    }
  }
  return out;
}

/** exp of src[base .. base+n) into a fresh row (wasm for long float32 rows). */
function expRow(src: TypedArray, base: number, n: number): Float32Array | Float64Array {
  if (src instanceof Float32Array && n >= WASM_MIN_ELEMENTS && wasmAvailable())
    return expWasm(src.subarray(base, base + n));
  const out = src instanceof Float32Array ? new Float32Array(n) : new Float64Array(n);
  for (let k = 0; k < n; k++) out[k] = Math.exp(src[base + k]!);
  return out;
}
