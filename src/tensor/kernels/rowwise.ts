/**
 * Row-wise L2 normalisation of a [rows, dim] float32 matrix, forward and
 * VJP, as plain-TypeScript references and wrappers that run the WebAssembly
 * SIMD kernels (wasm/sparse.ts) when they can. The two are BIT-identical:
 * the references do the kernels' float32 operations in the kernels' order
 * (Math.fround after each; see sparse.ts for why that matches f32x4):
 *
 *   Σ over a row: whole groups of 4 accumulate lane by lane,
 *     a_l ← a_l + x[4k+l]·x[4k+l];  h = (a0 + a2) + (a1 + a3);
 *     then h ← h + x[k]·x[k] for the ragged tail k >= 4·floor(dim/4)
 *   forward:  r = sqrt(h + eps);  y = x / r
 *   VJP:      r as above;  c = Σ g·y (same summation);  x̄ = (g - y·c) / r
 * (x̄ is the derivative of y = x/r: ∂yₖ/∂xⱼ = δₖⱼ/r - xₖxⱼ/r³.)
 */
import { Temps } from './wasm/index.js';
import { trainingKernels } from './sparse.js';

const f = Math.fround;

/** Σₖ a[ao+k]·b[bo+k] over dim elements, in the lane order of the kernels. */
function laneDot(a: Float32Array, ao: number, b: Float32Array, bo: number, dim: number): number {
  const v = dim & ~3;
  let a0 = 0,
    a1 = 0,
    a2 = 0,
    a3 = 0;
  for (let k = 0; k < v; k += 4) {
    a0 = f(a0 + f(a[ao + k]! * b[bo + k]!));
    a1 = f(a1 + f(a[ao + k + 1]! * b[bo + k + 1]!));
    a2 = f(a2 + f(a[ao + k + 2]! * b[bo + k + 2]!));
    a3 = f(a3 + f(a[ao + k + 3]! * b[bo + k + 3]!));
  }
  let h = f(f(a0 + a2) + f(a1 + a3));
  for (let k = v; k < dim; k++) h = f(h + f(a[ao + k]! * b[bo + k]!));
  return h;
}

/** The reference forward: y [rows, dim] = x / sqrt(Σx² + eps) per row (eps a float32 value). */
export function l2NormalizeRowsReference(
  x: Float32Array,
  y: Float32Array,
  rows: number,
  dim: number,
  eps: number,
): void {
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    const norm = f(Math.sqrt(f(laneDot(x, o, x, o, dim) + eps)));
    for (let k = 0; k < dim; k++) y[o + k] = f(x[o + k]! / norm);
  }
}

/** The reference VJP: out = (g - y·Σg·y) / sqrt(Σx² + eps) per row. */
export function l2NormalizeRowsVjpReference(
  x: Float32Array,
  y: Float32Array,
  g: Float32Array,
  out: Float32Array,
  rows: number,
  dim: number,
  eps: number,
): void {
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    const norm = f(Math.sqrt(f(laneDot(x, o, x, o, dim) + eps)));
    const c = laneDot(g, o, y, o, dim);
    for (let k = 0; k < dim; k++) out[o + k] = f(f(g[o + k]! - f(y[o + k]! * c)) / norm);
  }
}

/** Below this many elements the references run (copying into wasm memory costs more). */
const WASM_MIN = 4096;

/** y = x / sqrt(Σx² + eps) row by row (a fresh array), on the kernel when available. */
export function l2NormalizeRows(x: Float32Array, rows: number, dim: number, eps: number): Float32Array {
  const y = new Float32Array(rows * dim);
  const k = rows * dim >= WASM_MIN ? trainingKernels() : null;
  if (k === null) {
    l2NormalizeRowsReference(x, y, rows, dim, f(eps));
    return y;
  }
  const t = new Temps(k.st);
  try {
    const px = t.input(x, 0, rows * dim),
      py = t.alloc(rows * dim * 4);
    k.ex.l2NormalizeRows(px, py, rows, dim, f(eps));
    y.set(new Float32Array(k.st.memory.buffer, py, rows * dim));
  } finally {
    t.free();
  }
  return y;
}

/** The VJP of l2NormalizeRows (a fresh array), on the kernel when available. */
export function l2NormalizeRowsVjp(
  x: Float32Array,
  y: Float32Array,
  g: Float32Array,
  rows: number,
  dim: number,
  eps: number,
): Float32Array {
  const out = new Float32Array(rows * dim);
  const k = rows * dim >= WASM_MIN ? trainingKernels() : null;
  if (k === null) {
    l2NormalizeRowsVjpReference(x, y, g, out, rows, dim, f(eps));
    return out;
  }
  const t = new Temps(k.st);
  try {
    const n = rows * dim;
    const px = t.input(x, 0, n),
      py = t.input(y, 0, n),
      pg = t.input(g, 0, n),
      po = t.alloc(n * 4);
    k.ex.l2NormalizeRowsVjp(px, py, pg, po, rows, dim, f(eps));
    out.set(new Float32Array(k.st.memory.buffer, po, n));
  } finally {
    t.free();
  }
  return out;
}
