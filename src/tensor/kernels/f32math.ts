/**
 * float32 elementary functions shared by the vector kernels (wasm/kernels.ts)
 * and their plain-TypeScript mirrors.
 *
 * `logf32` reproduces the f32x4 log kernel bit for bit: wasm arithmetic is
 * IEEE binary32 with round-to-nearest-even and no fused multiply-add, and
 * float64 operations followed by Math.fround give the same correctly rounded
 * results for + - * /. The counter-based Gumbel noise of the cache scan
 * (src/scan/noise.ts) is built on it.
 */

/** Cephes logf constants (shared with the wasm kernel). */
export const LOGF_CONST = {
  sqrtHalf: 0.707106781186547524,
  q1: -2.1219444e-4,
  q2: 0.693359375,
  p: [
    7.0376836292e-2, -1.151461031e-1, 1.167699874e-1, -1.2420140846e-1, 1.4249322787e-1, -1.6668057665e-1,
    2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1,
  ],
} as const;

const f32 = Math.fround;
const bitsF = new Float32Array(1);
const bitsI = new Int32Array(bitsF.buffer);
const LP = LOGF_CONST.p.map((c) => f32(c));
const SQRT_HALF = f32(LOGF_CONST.sqrtHalf);
const Q1 = f32(LOGF_CONST.q1);
const Q2 = f32(LOGF_CONST.q2);

/**
 * Natural log in float32, bit-identical to the wasm kernel's vector log for
 * positive normal inputs:
 *   x = m·2^e, m in [0.5, 1); if m < √½ then f = 2m - 1, e -= 1 else f = m - 1
 *   z = f²; y = f·z·P(f) + e·q1 - z/2; log x = (f + y) + e·q2
 */
export function logf32(x: number): number {
  bitsF[0] = x;
  const bits = bitsI[0]!;
  let e = (bits >> 23) - 126;
  bitsI[0] = (bits & 0x007fffff) | 0x3f000000;
  const m = bitsF[0]!;
  let f = f32(m - 1);
  if (m < SQRT_HALF) {
    e -= 1;
    f = f32(f + m);
  }
  const z = f32(f * f);
  let p = f32(LP[0]! * f);
  for (let q = 1; q < LP.length; q++) {
    p = f32(p + LP[q]!);
    if (q < LP.length - 1) p = f32(p * f);
  }
  let y = f32(f32(p * f) * z);
  y = f32(y + f32(e * Q1));
  y = f32(y - f32(z * 0.5));
  return f32(f32(f + y) + f32(e * Q2));
}
