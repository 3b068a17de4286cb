/**
 * Counter-based noise: random bits as a pure function of (key, i, j).
 *
 * The fused cache scan needs Gumbel noise G(i, j) for every (query i, cache
 * row j). Drawing it from a sequential generator would tie the noise to the
 * traversal order; a counter-based generator makes G(i, j) the same whether
 * the scan is row-major, blocked, vectorised or split across workers, so the
 * fast kernels can be checked bit for bit against a plain reference.
 *
 * Construction (all arithmetic on uint32, `*` is Math.imul / i32x4.mul):
 *
 *   fmix(h)  = murmur3's 32-bit finalizer:
 *              h ^= h >>> 16; h *= 0x85ebca6b; h ^= h >>> 13; h *= 0xc2b2ae35; h ^= h >>> 16
 *              (a bijection of uint32 with full avalanche)
 *   r1(i)    = fmix((i * 0x9e3779b1) ^ k0)          per-query seed
 *   r2(i)    = fmix(r1(i) + k1)                      second per-query seed
 *   bits(i,j) = fmix( fmix((j * 0x85ebca77) ^ r1(i)) + r2(i) )
 *
 * Two fmix rounds per element with both the multiply-xor input and the add
 * depending on the query, so two queries' rows are not shifted copies of each
 * other. For a fixed query, j -> bits is a bijection of uint32 (both
 * multipliers are odd). Only i32x4.mul / xor / shr_u / add are needed, so the
 * wasm kernel evaluates four j at once (src/scan/wasmKernels.ts mirrors this file).
 *
 * Gumbel noise from the bits, in float32 arithmetic (each step rounded to
 * binary32, exactly what the f32x4 kernel computes; wasm has no FMA and
 * rounds to nearest even, and float64 ops followed by Math.fround give the
 * same correctly rounded results for + - * /):
 *
 *   w = f32(f32(bits) + 0.5) · 2^-32                      a uniform in (0, 1)
 *   E = -log(1 - w), computed as
 *       w < 0.5:  t = 1 - w, E = -(logf(t) - ((t - 1) + w) / t)    (log1p(-w), accurate for small w)
 *       w >= 0.5: t = f32(f32(~bits) + 0.5) · 2^-32, E = -logf(t)  (1 - w taken exactly from the integer)
 *   G = -logf(E)
 *
 * E = -log(1 - w) is Exp(1) and G = -log E is standard Gumbel; using 1 - w
 * rather than w (the same distribution) puts the large-G tail at small w,
 * where float32 has full relative precision: G ranges from
 * -log(-log(2^-33)) ≈ -3.15 up to -log(2^-33) ≈ 22.87 with no visible
 * discretisation at either end. `logf` is the Cephes logf polynomial (max
 * error ~1 ulp), `logf32` of src/tensor/kernels/f32math.ts, which
 * reproduces the vector kernel's bits. |G - G_exact| < 3e-6 over all 2^32 inputs' range (tested
 * on samples and at the extremes), where G_exact = -log(-log1p(-(bits + 0.5)/2^32)).
 */
import type { Rng } from '../tensor/random.js';
import { logf32 } from '../tensor/kernels/f32math.js';

/** Multipliers of the noise hash (odd). */
export const NOISE_CONST = {
  rowMul: 0x9e3779b1,
  colMul: 0x85ebca77,
  fmixA: 0x85ebca6b,
  fmixB: 0xc2b2ae35,
} as const;

/** A 64-bit noise key (two uint32) drawn from the generator: two draws. */
export function noiseKey(rng: Rng): [number, number] {
  return [rng.nextUint32(), rng.nextUint32()];
}

/** murmur3 fmix32 as an int32 bit pattern (internal; the exported fmix32 is unsigned). */
function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, NOISE_CONST.fmixA);
  h ^= h >>> 13;
  h = Math.imul(h, NOISE_CONST.fmixB);
  return h ^ (h >>> 16);
}

/** murmur3 fmix32 of a 32-bit integer, as a uint32. */
export function fmix32(h: number): number {
  return mix(h) >>> 0;
}

/** The two per-query seeds r1(i), r2(i) (int32 bit patterns). */
export function rowSeeds(k0: number, k1: number, i: number): [number, number] {
  const r1 = mix(Math.imul(i, NOISE_CONST.rowMul) ^ k0);
  const r2 = mix((r1 + k1) | 0);
  return [r1, r2];
}

/** Noise bits (uint32) for (i, j) given the query's seeds. */
export function bitsFromSeeds(r1: number, r2: number, j: number): number {
  return mix((mix(Math.imul(j, NOISE_CONST.colMul) ^ r1) + r2) | 0) >>> 0;
}

/** A uniform uint32 in [0, 2^32) that is a pure function of (key, i, j). */
export function uniformAt(k0: number, k1: number, i: number, j: number): number {
  const [r1, r2] = rowSeeds(k0, k1, i);
  return bitsFromSeeds(r1, r2, j);
}

const f32 = Math.fround;

/** Gumbel noise (float32 value) from 32 random bits, as specified above. */
export function gumbelFromBits(bits: number): number {
  const w = f32(f32(f32(bits >>> 0) + 0.5) * 2 ** -32);
  let e: number;
  if (w < 0.5) {
    const t = f32(1 - w);
    const c = f32(f32(f32(t - 1) + w) / t);
    e = -f32(logf32(t) - c);
  } else {
    const t = f32(f32(f32(~bits >>> 0) + 0.5) * 2 ** -32);
    e = -logf32(t);
  }
  return -logf32(e);
}

/** Gumbel noise G(i, j) = gumbelFromBits(uniformAt(k0, k1, i, j)), a float32 value. */
export function gumbelAt(k0: number, k1: number, i: number, j: number): number {
  return gumbelFromBits(uniformAt(k0, k1, i, j));
}

/**
 * The exact (float64) Gumbel value the float32 `gumbelFromBits` approximates:
 * -log(-log1p(-(bits + 0.5) / 2^32)). For tests and error bounds.
 */
export function gumbelFromBitsExact(bits: number): number {
  return -Math.log(-Math.log1p(-((bits >>> 0) + 0.5) / 4294967296));
}

/**
 * The screen of the Gumbel-max scan: a uint32 threshold X
 * such that gumbelFromBits(bits) > t implies bits <= X (conservatively: a
 * margin of 1e-3 on t covers the float32 error of G, a relative 1e-5 on the
 * threshold covers the rounding of w). Returns 0xffffffff (no screening) when
 * nearly every bits value could pass.
 *
 * Derivation: G > t  <=>  -log1p(-w) < e^-t  <=>  w < -expm1(-e^-t).
 */
export function gumbelScreen(t: number): number {
  const tt = t - 1e-3 - 1e-6 * Math.abs(t);
  if (!(tt > -2.5)) return 0xffffffff; // also NaN and -Infinity
  const w = -Math.expm1(-Math.exp(-tt));
  const x = Math.floor(w * 4294967296 * (1 + 1e-5)) + 256;
  return x >= 0xffffffff ? 0xffffffff : x;
}
