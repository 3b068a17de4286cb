/**
 * The exact index: search equals a brute-force ranking (all scores, sorted
 * by score descending then row ascending) bit for bit, across block
 * boundaries; ties go to the row added first; scores are the dot products
 * (float32 bound against float64); merging split ranges equals the whole;
 * the file round trip; validation.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ArgumentError, ShapeError } from '../../src/errors.js';
import { Rng } from '../../src/tensor/random.js';
import { matmulNT } from '../../src/tensor/kernels/matmul.js';
import { matmulNTWasm, wasmAvailable } from '../../src/tensor/kernels/wasm/index.js';
import { wrap } from '../../src/tensor/tensor.js';
import {
  Index,
  QUERY_BLOCK,
  ROW_BLOCK,
  decodeIndex,
  encodeIndex,
  mergeTopK,
  scoreKernel,
  topKRange,
} from '../../src/search/searchIndex.js';
import { params } from '../util/props.js';

function randomRows(rng: Rng, n: number, d: number, levels: number): Float32Array {
  // Few distinct levels make ties common; otherwise Gaussian.
  const out = new Float32Array(n * d);
  for (let i = 0; i < out.length; i++) out[i] = levels > 0 ? rng.int(levels) - (levels >> 1) : rng.normal();
  return out;
}

/** All scores with one kernel call (the same kernel the index uses), then a full sort per query. */
function bruteForce(q: Float32Array, nq: number, data: Float32Array, n: number, d: number, k: number) {
  const all = new Float32Array(nq * n);
  if (wasmAvailable()) matmulNTWasm(q, data, nq, n, d, all);
  else matmulNT(q, data, nq, n, d, all);
  return Array.from({ length: nq }, (_, i) => {
    const order = Array.from({ length: n }, (_, r) => r).sort((a, b) => {
      const sa = all[i * n + a]!,
        sb = all[i * n + b]!;
      return sa !== sb ? sb - sa : a - b;
    });
    const top = order.slice(0, Math.min(k, n));
    return { rows: top, scores: top.map((r) => all[i * n + r]!) };
  });
}

describe('Index.search equals brute-force ranking', () => {
  it('on random data with and without ties, small and across block boundaries', () => {
    expect(scoreKernel()).toBe('wasm'); // Node compiles the SIMD kernels; the 'ts' path is covered below
    fc.assert(
      fc.property(
        fc.record({
          n: fc.oneof(fc.integer({ min: 1, max: 60 }), fc.integer({ min: ROW_BLOCK - 3, max: 2 * ROW_BLOCK + 5 })),
          nq: fc.oneof(fc.integer({ min: 1, max: 5 }), fc.integer({ min: QUERY_BLOCK - 2, max: QUERY_BLOCK + 3 })),
          d: fc.integer({ min: 1, max: 40 }),
          k: fc.integer({ min: 1, max: 70 }),
          levels: fc.constantFrom(0, 2, 3),
          seed: fc.nat(),
          batches: fc.integer({ min: 1, max: 3 }),
        }),
        ({ n, nq, d, k, levels, seed, batches }) => {
          const rng = new Rng(seed);
          const data = randomRows(rng, n, d, levels);
          const q = randomRows(rng, nq, d, levels);
          const index = new Index(d);
          // Added in several batches: the same index.
          const cut = Array.from({ length: batches - 1 }, () => rng.int(n + 1)).sort((a, b) => a - b);
          let prev = 0;
          for (const c of [...cut, n]) {
            index.add(
              Array.from({ length: c - prev }, (_, i) => `r${prev + i}`),
              data.slice(prev * d, c * d),
            );
            prev = c;
          }
          const got = index.search(wrap(q, [nq, d], 'float32'), k);
          const want = bruteForce(q, nq, data, n, d, k);
          expect(got).toHaveLength(nq);
          for (let i = 0; i < nq; i++) {
            expect(Array.from(got[i]!.rows)).toEqual(want[i]!.rows);
            expect(Array.from(got[i]!.scores)).toEqual(want[i]!.scores);
            expect(got[i]!.ids).toEqual(want[i]!.rows.map((r) => `r${r}`));
          }
        },
      ),
      params(25),
    );
  });

  it('the plain-TypeScript kernel path ranks the same way against its own brute force', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2500 }), fc.integer({ min: 1, max: 6 }), fc.nat(), (n, nq, seed) => {
        const rng = new Rng(seed);
        const d = 5;
        const data = randomRows(rng, n, d, 3);
        const q = randomRows(rng, nq, d, 3);
        const all = matmulNT(q, data, nq, n, d, new Float32Array(nq * n));
        const got = topKRange(q, nq, data, d, 0, n, 9, 'ts');
        for (let i = 0; i < nq; i++) {
          const order = Array.from({ length: n }, (_, r) => r)
            .sort((a, b) => all[i * n + b]! - all[i * n + a]! || a - b)
            .slice(0, 9);
          expect(Array.from(got.rows.subarray(i * 9, i * 9 + got.counts[i]!))).toEqual(order);
        }
      }),
      params(30),
    );
  });

  it('splitting the rows into ranges and merging gives the same top k (what the parallel search does)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 3000 }),
        fc.integer({ min: 1, max: 9 }),
        fc.integer({ min: 1, max: 20 }),
        fc.array(fc.nat(), { maxLength: 3 }),
        fc.nat(),
        (n, nq, k, cuts, seed) => {
          const rng = new Rng(seed);
          const d = 8;
          const data = randomRows(rng, n, d, 3);
          const q = randomRows(rng, nq, d, 3);
          const points = [0, ...new Set(cuts.map((c) => c % n)), n].sort((a, b) => a - b);
          const parts = points.slice(1).map((end, i) => topKRange(q, nq, data, d, points[i]!, end, k));
          const merged = mergeTopK(parts, nq, k);
          const whole = topKRange(q, nq, data, d, 0, n, k);
          expect(merged.counts).toEqual(whole.counts);
          expect(merged.rows).toEqual(whole.rows);
          expect(merged.scores).toEqual(whole.scores);
        },
      ),
      params(60),
    );
  });

  it('breaks ties by insertion order', () => {
    const index = new Index(2);
    index.add(['a', 'b', 'c', 'd'], new Float32Array([1, 0, 0, 1, 1, 0, 1, 0]));
    const [r] = index.search(new Float32Array([1, 0]), 4);
    expect(r!.ids).toEqual(['a', 'c', 'd', 'b']);
    expect(Array.from(r!.scores)).toEqual([1, 1, 1, 0]);
    expect(index.search(new Float32Array([1, 0]), 2)[0]!.ids).toEqual(['a', 'c']);
  });

  it('scores are the dot products (within a float32 bound of the float64 value)', () => {
    const rng = new Rng(3);
    const d = 64,
      n = 500,
      nq = 7;
    const data = randomRows(rng, n, d, 0);
    const q = randomRows(rng, nq, d, 0);
    const index = new Index(d);
    index.add(
      Array.from({ length: n }, (_, i) => String(i)),
      data,
    );
    for (const [i, res] of index.search(q, 10).entries()) {
      for (let j = 0; j < res.rows.length; j++) {
        let exact = 0,
          mag = 0;
        for (let p = 0; p < d; p++) {
          exact += q[i * d + p]! * data[res.rows[j]! * d + p]!;
          mag += Math.abs(q[i * d + p]! * data[res.rows[j]! * d + p]!);
        }
        expect(Math.abs(res.scores[j]! - exact)).toBeLessThanOrEqual(d * 2 ** -23 * mag);
      }
    }
  });

  it('returns fewer hits than k when the index is small, none when it is empty', () => {
    const index = new Index(3);
    expect(index.search(new Float32Array(6), 5)).toEqual([
      { ids: [], scores: new Float32Array(0), rows: new Int32Array(0) },
      { ids: [], scores: new Float32Array(0), rows: new Int32Array(0) },
    ]);
    index.add(['x', 'y'], new Float32Array([1, 2, 3, 4, 5, 6]));
    expect(index.search(new Float32Array([0, 0, 1]), 5)[0]!.ids).toEqual(['y', 'x']);
  });
});

describe('Index storage and files', () => {
  it('round-trips through an index file with ids, texts and metadata; a shared index searches the same', () => {
    const rng = new Rng(8);
    const index = new Index(5);
    const data = randomRows(rng, 300, 5, 0);
    index.add(
      Array.from({ length: 300 }, (_, i) => `doc-${i}`),
      data,
      { texts: Array.from({ length: 300 }, (_, i) => (i % 3 === 0 ? null : `text ${i} ✓`)) },
    );
    index.metadata = { 'negcache.model': 'abc' };
    const back = decodeIndex(encodeIndex(index));
    expect(back.size).toBe(300);
    expect(back.metadata).toEqual({ 'negcache.model': 'abc' });
    expect(back.text(1)).toBe('text 1 ✓');
    expect(back.text(3)).toBe(null);
    expect(back.rowOf('doc-42')).toBe(42);
    expect(back.embeddings()).toEqual(index.embeddings());
    const q = randomRows(rng, 4, 5, 0);
    expect(back.search(q, 7)).toEqual(index.search(q, 7));
    const shared = decodeIndex(encodeIndex(index), { shared: true });
    expect(shared.embeddings().buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(shared.search(q, 7)).toEqual(index.search(q, 7));
  });

  it('validates before changing anything', () => {
    const index = new Index(2);
    index.add(['a'], new Float32Array([1, 1]));
    const v = index.version;
    expect(() => index.add(['b', 'a'], new Float32Array(4))).toThrow(
      new ArgumentError('Index.add', 'ids[1] = "a" is already in the index (row 0); ids must be unique'),
    );
    expect(() => index.add(['b', 'b'], new Float32Array(4))).toThrow(/ids\[1\] = "b" is already in the index; ids/);
    expect(() => index.add(['b'], new Float32Array([1, NaN]))).toThrow(
      /embeddings row 0 holds NaN; every value must be finite/,
    );
    expect(() => index.add(['b'], new Float32Array(3))).toThrow(ShapeError);
    expect(() => index.add(['b'], wrap(new Float32Array(3), [1, 3], 'float32'))).toThrow(
      /embeddings must be a float32 \[n, 2\] tensor/,
    );
    expect(() => index.add(['b'], new Float32Array(2), { texts: ['x', 'y'] })).toThrow(/texts must be an array of 1/);
    expect(() => index.add([3 as never], new Float32Array(2))).toThrow(/ids\[0\] must be a string/);
    expect(index.size).toBe(1);
    expect(index.version).toBe(v);
    expect(() => index.search(new Float32Array(2), 0)).toThrow(/k must be a positive integer/);
    expect(() => index.search(new Float32Array([Infinity, 0]), 1)).toThrow(/queries row 0 holds Infinity/);
    expect(() => new Index(0)).toThrow(/dim must be an integer/);
    expect(() => decodeIndex(new Uint8Array(3))).toThrow();
  });
});
