/**
 * Row-wise L2 normalisation (src/tensor/kernels/rowwise.ts): the wasm
 * kernels are bit-identical to the float32 references (same operations in
 * the same order), and the references are the float64 maths within float32
 * rounding.
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../../../src/tensor/random.js';
import { initWasm } from '../../../src/tensor/kernels/wasm/index.js';
import {
  l2NormalizeRows,
  l2NormalizeRowsReference,
  l2NormalizeRowsVjp,
  l2NormalizeRowsVjpReference,
} from '../../../src/tensor/kernels/rowwise.js';
import { params } from '../../util/props.js';

beforeAll(async () => {
  expect(await initWasm()).toBe(true);
});

const bits = (a: Float32Array): number[] => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

function rand(rng: Rng, len: number, scale: number): Float32Array {
  return Float32Array.from({ length: len }, () => (rng.uniform() * 2 - 1) * scale);
}

describe('l2NormalizeRows', () => {
  it('kernel = reference, bit for bit, forward and VJP (any width, zero rows, tiny and large values)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        fc.integer({ min: 1, max: 70 }),
        fc.integer({ min: 1, max: 300 }),
        fc.constantFrom(1e-20, 1e-3, 1, 1e15),
        (seed, dim, rows, scale) => {
          const rng = new Rng(seed);
          const x = rand(rng, rows * dim, scale);
          if (rows > 1) x.fill(0, 0, dim); // a zero row: eps keeps it finite
          const g = rand(rng, rows * dim, 1);
          const eps = Math.fround(1e-12);
          const y = l2NormalizeRows(x, rows, dim, 1e-12); // >= 4096 elements: the kernel
          const yRef = new Float32Array(rows * dim);
          l2NormalizeRowsReference(x, yRef, rows, dim, eps);
          expect(bits(y)).toEqual(bits(yRef));
          const gx = l2NormalizeRowsVjp(x, y, g, rows, dim, 1e-12);
          const gxRef = new Float32Array(rows * dim);
          l2NormalizeRowsVjpReference(x, y, g, gxRef, rows, dim, eps);
          expect(bits(gx)).toEqual(bits(gxRef));
        },
      ),
      params(60),
    );
  });

  it('the reference is x / |x| and its derivative within float32 rounding', () => {
    const rng = new Rng(4);
    const dim = 13,
      rows = 5;
    const x = rand(rng, rows * dim, 2),
      g = rand(rng, rows * dim, 1);
    const y = new Float32Array(rows * dim),
      gx = new Float32Array(rows * dim);
    l2NormalizeRowsReference(x, y, rows, dim, Math.fround(1e-12));
    l2NormalizeRowsVjpReference(x, y, g, gx, rows, dim, Math.fround(1e-12));
    for (let r = 0; r < rows; r++) {
      const o = r * dim;
      let s = 0;
      for (let k = 0; k < dim; k++) s += x[o + k]! ** 2;
      const norm = Math.sqrt(s + 1e-12);
      let c = 0;
      for (let k = 0; k < dim; k++) c += g[o + k]! * (x[o + k]! / norm);
      for (let k = 0; k < dim; k++) {
        expect(Math.abs(y[o + k]! - x[o + k]! / norm)).toBeLessThanOrEqual(1e-6);
        const want = (g[o + k]! - (x[o + k]! / norm) * c) / norm;
        expect(Math.abs(gx[o + k]! - want)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(want)));
      }
    }
  });
});
