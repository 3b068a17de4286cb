/**
 * EmbeddingTable: rows() returns copies, applyRows writes only the named
 * rows (and validates before writing), snapshot()/load() round-trip, and
 * the seeded initialisation is reproducible.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ArgumentError, EmbeddingTable, Rng, ShapeError, tensor } from '../../src/index.js';
import { unsafeData } from '../../src/tensor/tensor.js';
import { params } from '../util/props.js';

const table3x2 = (): EmbeddingTable => new EmbeddingTable(3, 2, Float32Array.from([1, 2, 3, 4, 5, 6]));

describe('EmbeddingTable', () => {
  it('rows(ids) returns a [ids.length, dim] copy in the order asked (repeats allowed)', () => {
    const t = table3x2();
    const r = t.rows(Int32Array.from([2, 0, 2]));
    expect(r.shape).toEqual([3, 2]);
    expect(r.dtype).toBe('float32');
    expect(r.toArray()).toEqual([
      [5, 6],
      [1, 2],
      [5, 6],
    ]);
    expect(t.rows(new Int32Array(0)).shape).toEqual([0, 2]);
    // A copy: writing the table afterwards does not change the tensor already handed out.
    t.applyRows(Int32Array.from([2]), Float32Array.from([50, 60]));
    expect(r.toArray()).toEqual([
      [5, 6],
      [1, 2],
      [5, 6],
    ]);
    expect(t.rows(Int32Array.from([2])).toArray()).toEqual([[50, 60]]);
  });

  it('applyRows overwrites exactly the named rows', () => {
    const t = table3x2();
    t.applyRows(Int32Array.from([2, 0]), Float32Array.from([-5, -6, -1, -2]));
    expect(Array.from(t.data)).toEqual([-1, -2, 3, 4, -5, -6]);
  });

  it('applyRows validates sizes and ids before writing anything', () => {
    const t = table3x2();
    expect(() => t.applyRows(Int32Array.from([0]), Float32Array.from([1, 2, 3]))).toThrow(ShapeError);
    expect(() => t.applyRows(Int32Array.from([0, 3]), Float32Array.from([9, 9, 9, 9]))).toThrow(ArgumentError);
    expect(() => t.applyRows(Int32Array.from([0, -1]), Float32Array.from([9, 9, 9, 9]))).toThrow(
      /EmbeddingTable.applyRows: ids\[1\] = -1 is out of range/,
    );
    expect(Array.from(t.data)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('rows rejects out-of-range ids', () => {
    const t = table3x2();
    expect(() => t.rows(Int32Array.from([0, 3]))).toThrow(ArgumentError);
    expect(() => t.rows(Int32Array.from([-1]))).toThrow(
      /EmbeddingTable.rows: ids\[0\] = -1 is out of range; need 0 <= id < 3/,
    );
  });

  it('snapshot is an independent copy; load restores it exactly', () => {
    const t = new EmbeddingTable(5, 3, { rng: new Rng(4) });
    const snap = t.snapshot();
    expect(snap.shape).toEqual([5, 3]);
    const before = Array.from(t.data);
    t.applyRows(Int32Array.from([1, 4]), new Float32Array(6).fill(7));
    expect(Array.from(unsafeData(snap))).toEqual(before);
    t.load(snap);
    expect(Array.from(t.data)).toEqual(before);
    expect(() => t.load(tensor([[1, 2, 3]]))).toThrow(ShapeError);
    expect(() => t.load(tensor(new Float64Array(15), 'float64', [5, 3]))).toThrow(/need a float32 \[5, 3\] tensor/);
    expect(() => t.load(tensor(new Float32Array(15), 'float32', [15]))).toThrow(ShapeError);
    expect(Array.from(t.data)).toEqual(before);
  });

  it('seeded initialisation is reproducible: N(0, std²) from the given Rng, std = 1/sqrt(dim) by default', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        fc.integer({ min: 1, max: 20 }),
        fc.integer({ min: 1, max: 8 }),
        (seed, vocab, dim) => {
          const a = new EmbeddingTable(vocab, dim, { rng: new Rng(seed) });
          const b = new EmbeddingTable(vocab, dim, { rng: new Rng(seed) });
          expect(Array.from(a.data)).toEqual(Array.from(b.data));
          const r = new Rng(seed);
          const want = Array.from({ length: vocab * dim }, () => Math.fround(r.normal() / Math.sqrt(dim)));
          expect(Array.from(a.data)).toEqual(want);
        },
      ),
      params(30),
    );
    const c = new EmbeddingTable(4, 2, { rng: new Rng(1), std: 0 });
    expect(Array.from(c.data).every((v) => v === 0)).toBe(true); // std 0: all zeros (±0)
    expect(Array.from(new EmbeddingTable(4, 2, { rng: new Rng(2) }).data)).not.toEqual(
      Array.from(new EmbeddingTable(4, 2, { rng: new Rng(3) }).data),
    );
  });

  it('constructor errors', () => {
    expect(() => new EmbeddingTable(0, 2, { rng: new Rng(0) })).toThrow(ArgumentError);
    expect(() => new EmbeddingTable(2, 1.5, { rng: new Rng(0) })).toThrow(ArgumentError);
    expect(() => new EmbeddingTable(2 ** 16, 2 ** 16, { rng: new Rng(0) })).toThrow(/vocab\*dim < 2\^31/);
    expect(() => new EmbeddingTable(2, 2, new Float32Array(3))).toThrow(ShapeError);
    expect(() => new EmbeddingTable(2, 2, {} as never)).toThrow(ArgumentError);
  });
});
