/**
 * Matrix products on row-major float arrays (plain TypeScript; the
 * portable path and the reference for faster kernels).
 *
 *   matmul2d(a, b, m, n, k, transA, transB, out): out[m,n] = op(A)·op(B)
 *   where op(A) is A [m,k] or, with transA, Aᵀ for A stored [k,m]; likewise B.
 *
 * Two blocked kernels do the work:
 *  - NT (B stored [n,k], the `Q·Cᵀ` of cache scoring): a 4×4 register tile of
 *    dot products over contiguous k, so each loaded value feeds 4 products.
 *  - NN (B stored [k,n]): rank-1 updates of 4 output rows at a time over
 *    contiguous n, blocked over k and n so the B panel stays in cache.
 * Transposed A is copied once into row-major form (O(mk), negligible next to
 * O(mnk)). Accumulation is in float64 registers (JS numbers).
 */
import type { TypedArray } from '../dtype.js';
import { matmulNNWasm, matmulNTWasm, matmulTNWasm, wasmAvailable, wasmBytesInUse } from './wasm/index.js';

type Floats = Float32Array | Float64Array;

/** Below this many multiply-adds the plain loops win (copying into wasm memory costs more). */
export const WASM_MIN_WORK = 1 << 15;

/**
 * Whether the wasm kernels' copies of an m×k by k×n product (operands, their
 * transposes, the result: at most 2mk + 2kn + mn floats) fit next to what the
 * wasm memory already holds, below its 4 GiB limit (with 1 MiB to spare).
 * Larger products stay on the plain loops instead of failing to grow it.
 */
export function fitsInWasm(m: number, n: number, k: number): boolean {
  return 4 * (2 * m * k + 2 * k * n + m * n) + wasmBytesInUse() <= 2 ** 32 - 2 ** 20;
}

export function matmul2d(
  a: Floats,
  b: Floats,
  m: number,
  n: number,
  k: number,
  transA: boolean,
  transB: boolean,
  out: Floats,
): Floats {
  if (m === 0 || n === 0) return out;
  if (k === 0) {
    out.fill(0);
    return out;
  }
  if (
    a instanceof Float32Array &&
    b instanceof Float32Array &&
    out instanceof Float32Array &&
    m * n * k >= WASM_MIN_WORK &&
    fitsInWasm(m, n, k) &&
    wasmAvailable()
  ) {
    // float32 products of some size go to the WebAssembly SIMD kernels (wasm/kernels.ts);
    // they accumulate in float32 lanes, so they round differently from the loops below.
    if (!transA && transB) matmulNTWasm(a, b, m, n, k, out);
    else if (!transA && !transB) matmulNNWasm(a, b, m, n, k, out);
    else if (transA && !transB) matmulTNWasm(a, b, m, n, k, out);
    else matmulNTWasm(transpose2d(a, k, m, new Float32Array(m * k)), b, m, n, k, out);
    return out;
  }
  const A = transA ? transpose2d(a, k, m, new (a.constructor as Float32ArrayConstructor)(m * k) as Floats) : a;
  if (transB) matmulNT(A, b, m, n, k, out);
  else matmulNN(A, b, m, n, k, out);
  return out;
}

/**
 * out[i·ldc + j] = A[m,k] · B[n,k]ᵀ (A read from aOff, B from bOff), scaled
 * by alpha. With alpha ≠ 1 the dot product is rounded to float32 before
 * scaling, f32(alpha · f32(dot)), which is how the SIMD kernels define a
 * scaled score (the fused scan's plain-TypeScript backend uses this form).
 */
export function matmulNT(
  a: Floats,
  b: Floats,
  m: number,
  n: number,
  k: number,
  out: Floats,
  ldc = n,
  alpha = 1,
  aOff = 0,
  bOff = 0,
): Floats {
  const w = alpha === 1 ? (c: number) => c : (c: number) => alpha * Math.fround(c);
  const m4 = m - (m % 4),
    n4 = n - (n % 4);
  for (let i = 0; i < m4; i += 4) {
    const a0 = aOff + i * k,
      a1 = a0 + k,
      a2 = a1 + k,
      a3 = a2 + k;
    for (let j = 0; j < n4; j += 4) {
      const b0 = bOff + j * k,
        b1 = b0 + k,
        b2 = b1 + k,
        b3 = b2 + k;
      let c00 = 0,
        c01 = 0,
        c02 = 0,
        c03 = 0,
        c10 = 0,
        c11 = 0,
        c12 = 0,
        c13 = 0;
      let c20 = 0,
        c21 = 0,
        c22 = 0,
        c23 = 0,
        c30 = 0,
        c31 = 0,
        c32 = 0,
        c33 = 0;
      for (let p = 0; p < k; p++) {
        const x0 = a[a0 + p]!,
          x1 = a[a1 + p]!,
          x2 = a[a2 + p]!,
          x3 = a[a3 + p]!;
        const y0 = b[b0 + p]!,
          y1 = b[b1 + p]!,
          y2 = b[b2 + p]!,
          y3 = b[b3 + p]!;
        c00 += x0 * y0;
        c01 += x0 * y1;
        c02 += x0 * y2;
        c03 += x0 * y3;
        c10 += x1 * y0;
        c11 += x1 * y1;
        c12 += x1 * y2;
        c13 += x1 * y3;
        c20 += x2 * y0;
        c21 += x2 * y1;
        c22 += x2 * y2;
        c23 += x2 * y3;
        c30 += x3 * y0;
        c31 += x3 * y1;
        c32 += x3 * y2;
        c33 += x3 * y3;
      }
      let o = i * ldc + j;
      out[o] = w(c00);
      out[o + 1] = w(c01);
      out[o + 2] = w(c02);
      out[o + 3] = w(c03);
      o += ldc;
      out[o] = w(c10);
      out[o + 1] = w(c11);
      out[o + 2] = w(c12);
      out[o + 3] = w(c13);
      o += ldc;
      out[o] = w(c20);
      out[o + 1] = w(c21);
      out[o + 2] = w(c22);
      out[o + 3] = w(c23);
      o += ldc;
      out[o] = w(c30);
      out[o + 1] = w(c31);
      out[o + 2] = w(c32);
      out[o + 3] = w(c33);
    }
  }
  // ragged rows and columns: plain dots
  for (let i = 0; i < m; i++) {
    for (let j = i < m4 ? n4 : 0; j < n; j++) out[i * ldc + j] = w(dot(a, aOff + i * k, b, bOff + j * k, k));
  }
  return out;
}

function dot(a: Floats, ao: number, b: Floats, bo: number, k: number): number {
  let s = 0;
  for (let p = 0; p < k; p++) s += a[ao + p]! * b[bo + p]!;
  return s;
}

const KC = 128; // k-panel depth
const NC = 512; // n-panel width

/** out[m,n] = A[m,k] · B[k,n] */
export function matmulNN(a: Floats, b: Floats, m: number, n: number, k: number, out: Floats): Floats {
  const acc = new Float64Array(4 * Math.min(n, NC));
  for (let jc = 0; jc < n; jc += NC) {
    const nb = Math.min(NC, n - jc);
    for (let i = 0; i < m; i += 4) {
      const rows = Math.min(4, m - i);
      acc.fill(0, 0, 4 * nb);
      for (let pc = 0; pc < k; pc += KC) {
        const pEnd = Math.min(k, pc + KC);
        if (rows === 4) {
          for (let p = pc; p < pEnd; p++) {
            const x0 = a[i * k + p]!,
              x1 = a[(i + 1) * k + p]!,
              x2 = a[(i + 2) * k + p]!,
              x3 = a[(i + 3) * k + p]!;
            const bo = p * n + jc;
            for (let j = 0; j < nb; j++) {
              const y = b[bo + j]!;
              acc[j] += x0 * y;
              acc[nb + j] += x1 * y;
              acc[2 * nb + j] += x2 * y;
              acc[3 * nb + j] += x3 * y;
            }
          }
        } else {
          for (let r = 0; r < rows; r++) {
            for (let p = pc; p < pEnd; p++) {
              const x = a[(i + r) * k + p]!;
              const bo = p * n + jc;
              for (let j = 0; j < nb; j++) acc[r * nb + j] += x * b[bo + j]!;
            }
          }
        }
      }
      for (let r = 0; r < rows; r++) {
        const o = (i + r) * n + jc;
        for (let j = 0; j < nb; j++) out[o + j] = acc[r * nb + j]!;
      }
    }
  }
  return out;
}

/**
 * The exact arithmetic of the WebAssembly matrix products (wasm/gemm.ts,
 * without the opt-in FMA), in TypeScript: every output is
 *   acc = +0;  for p = 0 .. k-1:  acc = f32(acc + f32(op(A)[i,p] · op(B)[p,j]));  C[i,j] = f32(alpha · acc)
 * (float64 operations rounded to float32 after each step give the same
 * correctly rounded results as binary32 arithmetic). Slow; the property
 * tests compare the kernels with it bit for bit.
 */
export function matmulF32Reference(
  a: Float32Array,
  b: Float32Array,
  m: number,
  n: number,
  k: number,
  transA: boolean,
  transB: boolean,
  alpha = 1,
): Float32Array {
  const f32 = Math.fround;
  const out = new Float32Array(m * n);
  const al = f32(alpha);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let acc = 0;
      for (let p = 0; p < k; p++) {
        const x = transA ? a[p * m + i]! : a[i * k + p]!;
        const y = transB ? b[j * k + p]! : b[p * n + j]!;
        acc = f32(acc + f32(x * y));
      }
      out[i * n + j] = f32(al * acc);
    }
  }
  return out;
}

/** out[cols, rows] = src[rows, cols]ᵀ, blocked for cache locality. */
export function transpose2d<T extends TypedArray>(src: T, rows: number, cols: number, out: T): T {
  const B = 32;
  for (let i0 = 0; i0 < rows; i0 += B) {
    const iEnd = Math.min(rows, i0 + B);
    for (let j0 = 0; j0 < cols; j0 += B) {
      const jEnd = Math.min(cols, j0 + B);
      for (let i = i0; i < iEnd; i++) {
        for (let j = j0; j < jEnd; j++) out[j * rows + i] = src[i * cols + j]!;
      }
    }
  }
  return out;
}
