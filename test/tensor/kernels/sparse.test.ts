/**
 * The sparse training kernels (src/tensor/kernels/sparse.ts, wasm/sparse.ts)
 * against their plain-TypeScript references: the arithmetic is the same
 * float32 sequence, so every result must be BIT-identical (compared as
 * Float32 bit patterns, so -0 and NaN payloads count too). The references
 * themselves are checked against float64 arithmetic with a stated bound.
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { ShapeError } from '../../../src/errors.js';
import { Rng } from '../../../src/tensor/random.js';
import { initWasm, wasmBytesInUse } from '../../../src/tensor/kernels/wasm/index.js';
import {
  HeapArray,
  adamParams,
  adamRows,
  adamRowsReference,
  firstNonFinite,
  gatherRows,
  scatterRows,
  scatterRowsReference,
  sgdParams,
  sgdRows,
  sgdRowsReference,
  sparseKernelsAvailable,
} from '../../../src/tensor/kernels/sparse.js';
import { params } from '../../util/props.js';

beforeAll(async () => {
  expect(await initWasm()).toBe(true);
  expect(sparseKernelsAvailable()).toBe(true);
});

const bits = (a: Float32Array): number[] => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

function randArray(rng: Rng, len: number, scale = 1): Float32Array {
  const a = new Float32Array(len);
  for (let i = 0; i < len; i++) a[i] = (rng.uniform() * 2 - 1) * scale;
  return a;
}

/** Distinct row ids in a random order. */
function randIds(rng: Rng, vocab: number, n: number): Int32Array {
  const all = Int32Array.from({ length: vocab }, (_, i) => i);
  for (let i = vocab - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [all[i], all[j]] = [all[j]!, all[i]!];
  }
  return all.slice(0, n);
}

/** A table case: vocab rows of dim (dim 1..70 covers whole vectors and every ragged tail). */
const tableCase = fc.record({
  seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  dim: fc.integer({ min: 1, max: 70 }),
  vocab: fc.integer({ min: 1, max: 40 }),
  frac: fc.double({ min: 0, max: 1, noNaN: true }),
});

describe('HeapArray', () => {
  it('lives in wasm memory, starts at zero, and keeps its values when the memory grows', () => {
    const a = new HeapArray(1000);
    expect(a.onHeap).toBe(true);
    expect(a.data.every((x) => x === 0)).toBe(true);
    a.data.set(Float32Array.from({ length: 1000 }, (_, i) => i / 7));
    const before = wasmBytesInUse();
    const big = new HeapArray(8 << 20); // 32 MB: grows the memory, detaching old views
    expect(wasmBytesInUse()).toBeGreaterThan(before);
    expect(a.data.length).toBe(1000);
    expect(a.data[999]).toBe(Math.fround(999 / 7));
    expect(big.data[big.length - 1]).toBe(0);
    const plain = HeapArray.from([1, 2, 3], { wasm: false });
    expect(plain.onHeap).toBe(false);
    expect(Array.from(plain.data)).toEqual([1, 2, 3]);
  });
});

describe('adamRows: the wasm kernel is bit-identical to the float32 reference', () => {
  it('random tables, rows, gradients, clipping factors, steps and decays', () => {
    fc.assert(
      fc.property(tableCase, ({ seed, dim, vocab, frac }) => {
        const rng = new Rng(seed);
        const n = Math.max(1, Math.round(frac * vocab));
        const ids = randIds(rng, vocab, n);
        const theta = randArray(rng, vocab * dim, 3),
          m = randArray(rng, vocab * dim, 0.1),
          v = randArray(rng, vocab * dim, 0.01).map(Math.abs);
        const g = randArray(rng, n * dim, 10 ** (rng.int(6) - 3));
        if (rng.uniform() < 0.3) g[rng.int(g.length)] = 0; // zero gradients (sign of zero matters)
        const p = adamParams({
          lr: 10 ** -(1 + rng.int(4)),
          beta1: rng.uniform() * 0.99,
          beta2: 0.9 + rng.uniform() * 0.0999,
          eps: 10 ** -(4 + rng.int(6)),
          weightDecay: rng.uniform() < 0.5 ? 0 : rng.uniform(),
          t: 1 + rng.int(1000),
          gscale: rng.uniform() < 0.5 ? 1 : rng.uniform(),
        });
        const [T, M, V] = [theta, m, v].map((a) => HeapArray.from(a));
        expect(T!.onHeap && M!.onHeap && V!.onHeap).toBe(true);
        adamRows(T!, M!, V!, g, ids, dim, p);
        adamRowsReference(theta, m, v, g, ids, n, dim, p);
        expect(bits(T!.data)).toEqual(bits(theta));
        expect(bits(M!.data)).toEqual(bits(m));
        expect(bits(V!.data)).toEqual(bits(v));
      }),
      params(60),
    );
  });

  it('large row sets (visited in table order by the kernels) give the same bits as the reference in row order', () => {
    const rng = new Rng(21);
    const vocab = 40000,
      dim = 5,
      n = 20000; // >= ORDERED_ROWS_MIN: the kernels visit rows sorted by id
    const ids = randIds(rng, vocab, n);
    const theta = randArray(rng, vocab * dim),
      m = randArray(rng, vocab * dim, 0.1),
      v = randArray(rng, vocab * dim, 0.01).map(Math.abs);
    const g = randArray(rng, n * dim);
    const p = adamParams({ lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, t: 4, gscale: 1 });
    const [T, M, V] = [theta, m, v].map((a) => HeapArray.from(a));
    adamRows(T!, M!, V!, g, ids, dim, p);
    adamRowsReference(theta, m, v, g, ids, n, dim, p);
    expect(bits(T!.data)).toEqual(bits(theta));
    expect(bits(M!.data)).toEqual(bits(m));
    expect(bits(V!.data)).toEqual(bits(v));
    const sp = sgdParams({ lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 0.01, gscale: 1 });
    const B = HeapArray.from(m);
    sgdRows(T!, B, g, ids, dim, sp);
    sgdRowsReference(theta, m, g, ids, n, dim, sp);
    expect(bits(T!.data)).toEqual(bits(theta));
    expect(bits(B.data)).toEqual(bits(m));
  });

  it('the float32 reference is Adam within float32 rounding (a float64 recomputation, relative 1e-5)', () => {
    const rng = new Rng(3);
    const dim = 9,
      vocab = 6;
    const theta = randArray(rng, vocab * dim, 2),
      m = randArray(rng, vocab * dim, 0.1),
      v = randArray(rng, vocab * dim, 0.01).map(Math.abs);
    const g = randArray(rng, 2 * dim);
    const o = { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, t: 7, gscale: 0.5 };
    const ids = Int32Array.from([4, 1]);
    const th = Float64Array.from(theta),
      mm = Float64Array.from(m),
      vv = Float64Array.from(v);
    for (let r = 0; r < 2; r++)
      for (let k = 0; k < dim; k++) {
        const i = ids[r]! * dim + k;
        const gi = g[r * dim + k]! * o.gscale;
        mm[i] = o.beta1 * mm[i]! + (1 - o.beta1) * gi;
        vv[i] = o.beta2 * vv[i]! + (1 - o.beta2) * gi * gi;
        const step = (o.lr * (mm[i]! / (1 - o.beta1 ** o.t))) / (Math.sqrt(vv[i]! / (1 - o.beta2 ** o.t)) + o.eps);
        th[i] = th[i]! - o.lr * o.weightDecay * th[i]! - step;
      }
    adamRowsReference(theta, m, v, g, ids, 2, dim, adamParams(o));
    for (let i = 0; i < theta.length; i++) {
      expect(Math.abs(theta[i]! - th[i]!)).toBeLessThanOrEqual(1e-5 * Math.abs(th[i]!) + 1e-7);
      expect(Math.abs(m[i]! - mm[i]!)).toBeLessThanOrEqual(1e-5 * Math.abs(mm[i]!) + 1e-9);
      expect(Math.abs(v[i]! - vv[i]!)).toBeLessThanOrEqual(1e-5 * Math.abs(vv[i]!) + 1e-12);
    }
  });

  it('a table outside wasm memory takes the reference path with the same result', () => {
    const rng = new Rng(8);
    const theta = randArray(rng, 40),
      g = randArray(rng, 20);
    const p = adamParams({ lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, t: 1, gscale: 1 });
    const ids = Int32Array.from([1, 0]);
    const a = [theta, new Float32Array(40), new Float32Array(40)].map((x) => HeapArray.from(x));
    const b = [theta, new Float32Array(40), new Float32Array(40)].map((x) => HeapArray.from(x, { wasm: false }));
    adamRows(a[0]!, a[1]!, a[2]!, g, ids, 10, p);
    adamRows(b[0]!, b[1]!, b[2]!, g, ids, 10, p);
    for (let k = 0; k < 3; k++) expect(bits(a[k]!.data)).toEqual(bits(b[k]!.data));
  });
});

describe('sgdRows: the wasm kernels are bit-identical to the float32 reference', () => {
  it('plain, momentum and Nesterov, with and without weight decay and clipping', () => {
    fc.assert(
      fc.property(tableCase, fc.constantFrom(0, 0.5, 0.9), fc.boolean(), ({ seed, dim, vocab, frac }, mu, nest) => {
        const rng = new Rng(seed);
        const n = Math.max(1, Math.round(frac * vocab));
        const ids = randIds(rng, vocab, n);
        const theta = randArray(rng, vocab * dim, 3),
          buf = randArray(rng, vocab * dim);
        const g = randArray(rng, n * dim);
        const p = sgdParams({
          lr: rng.uniform(),
          momentum: mu,
          nesterov: nest,
          weightDecay: rng.uniform() < 0.5 ? 0 : rng.uniform() * 0.1,
          gscale: rng.uniform() < 0.5 ? 1 : rng.uniform(),
        });
        const T = HeapArray.from(theta),
          B = HeapArray.from(buf);
        sgdRows(T, mu > 0 ? B : null, g, ids, dim, p);
        sgdRowsReference(theta, mu > 0 ? buf : null, g, ids, n, dim, p);
        expect(bits(T.data)).toEqual(bits(theta));
        expect(bits(B.data)).toEqual(bits(buf));
      }),
      params(60),
    );
  });
});

describe('scatterRows (embedding-bag products): the wasm kernel is bit-identical to the float32 reference', () => {
  it('random entries (repeated rows, any order), weighted and unweighted', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        fc.integer({ min: 1, max: 70 }),
        fc.integer({ min: 64, max: 600 }),
        fc.boolean(),
        (seed, dim, nnz, weighted) => {
          const rng = new Rng(seed);
          const nSrc = 1 + rng.int(50),
            nOut = 1 + rng.int(30);
          const src = randArray(rng, nSrc * dim, 5);
          const from = Int32Array.from({ length: nnz }, () => rng.int(nSrc));
          const to = Int32Array.from({ length: nnz }, () => rng.int(nOut));
          const w = weighted ? randArray(rng, nnz) : null;
          const got = scatterRows('test', src, nSrc, from, to, w, nOut, dim); // nnz·dim >= 64: wasm for most cases
          const want = new Float32Array(nOut * dim);
          scatterRowsReference(src, want, from, to, w, dim);
          expect(bits(got)).toEqual(bits(want));
        },
      ),
      params(60),
    );
  });

  it('an entry outside the given rows is a ShapeError naming it (kernel and reference paths)', () => {
    const src = new Float32Array(10 * 64);
    const from = Int32Array.from({ length: 100 }, (_, k) => k % 10);
    const to = new Int32Array(100);
    from[37] = 10;
    expect(() => scatterRows('op', src, 10, from, to, null, 1, 64)).toThrow(ShapeError);
    expect(() => scatterRows('op', src, 10, from, to, null, 1, 64)).toThrow(/^op: entry 37 reads row 10/);
    from[37] = 0;
    to[99] = -1;
    expect(() => scatterRows('op', src, 10, from, to, null, 1, 64)).toThrow(/^op: entry 99 writes row -1/);
    // Small: the reference path checks the same way.
    expect(() => scatterRows('op', src, 10, Int32Array.of(0, 11), Int32Array.of(0, 0), null, 1, 2)).toThrow(
      /^op: entry 1 reads row 11/,
    );
  });
});

describe('gatherRows', () => {
  it('copies rows ids[r] exactly, on the kernel (wasm table) and the loop (JS table), small and large id sets', () => {
    const rng = new Rng(31);
    for (const [vocab, dim, n] of [
      [50, 3, 20],
      [300, 64, 200],
      [40000, 5, 20000],
    ] as const) {
      const values = randArray(rng, vocab * dim);
      const ids = randIds(rng, vocab, n);
      const want = new Float32Array(n * dim);
      for (let r = 0; r < n; r++) want.set(values.subarray(ids[r]! * dim, (ids[r]! + 1) * dim), r * dim);
      expect(bits(gatherRows(HeapArray.from(values), ids, dim))).toEqual(bits(want));
      expect(bits(gatherRows(HeapArray.from(values, { wasm: false }), ids, dim))).toEqual(bits(want));
    }
  });
});

describe('firstNonFinite', () => {
  it('finds the first NaN / ±Infinity (kernel for long arrays, loop for short and float64 ones)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 5000 }),
        fc.array(fc.nat(), { maxLength: 3 }),
        fc.constantFrom(NaN, Infinity, -Infinity),
        (len, at, bad) => {
          const a = new Float32Array(len).fill(1.5);
          for (const i of at) if (len > 0) a[i % len] = bad;
          const want = a.findIndex((x) => !Number.isFinite(x));
          expect(firstNonFinite(a)).toBe(want);
          expect(firstNonFinite(Float64Array.from(a))).toBe(want);
        },
      ),
      params(80),
    );
  });
});
