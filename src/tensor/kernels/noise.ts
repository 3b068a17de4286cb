/**
 * Counter-based noise: U(i, j) is a hash of (key, i, j), so the Gumbel noise
 * of query i and cache row j is the same whatever order the rows are visited
 * in (blocked, fused, split across threads). The key (two uint32) is drawn
 * from an explicit Rng once per retrieval call.
 *
 * bits(k0, k1, i, j) = fmix32(fmix32(k0 ^ i·0x9E3779B1) ^ k1 ^ j·0x85EBCA77)
 * using MurmurHash3's finaliser fmix32; every step is a 32-bit integer
 * operation available as an i32x4 SIMD op.
 */
import type { Rng } from '../random.js';

export function noiseKey(rng: Rng): [number, number] {
  return [rng.nextUint32(), rng.nextUint32()];
}

export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export function uniformAt(k0: number, k1: number, i: number, j: number): number {
  return fmix32(fmix32(k0 ^ Math.imul(i, 0x9e3779b1)) ^ k1 ^ Math.imul(j, 0x85ebca77));
}

/** Standard Gumbel noise -log(-log(U)) with U = (bits + 0.5) / 2^32 strictly inside (0, 1). */
export function gumbelAt(k0: number, k1: number, i: number, j: number): number {
  return -Math.log(-Math.log((uniformAt(k0, k1, i, j) + 0.5) / 4294967296));
}
