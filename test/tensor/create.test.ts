/**
 * Creating tensors: tensor() from nested arrays and typed arrays, zeros /
 * ones / full, arange, uniform / normal; and the Tensor class itself
 * (toArray, item, dataSync, immutability). Values are compared exactly.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ShapeError,
  arange,
  full,
  isTensor,
  normal,
  ones,
  tensor,
  uniform,
  zeros,
  Rng,
  type DType,
} from '../../src/index.js';
import { params } from '../util/props.js';
import * as O from '../util/oracle.js';
import { expectExact, fromTensor, shapeArb } from '../util/oracle.js';

const DTYPES: DType[] = ['float32', 'float64', 'int32', 'bool'];

/** A nested array with the given shape, values from `v`. */
function nestedArb<T>(shape: readonly number[], v: fc.Arbitrary<T>): fc.Arbitrary<{ nested: unknown; flat: T[] }> {
  return fc.array(v, { minLength: O.numel(shape), maxLength: O.numel(shape) }).map((flat) => {
    let i = 0;
    const build = (axis: number): unknown =>
      axis === shape.length ? flat[i++] : Array.from({ length: shape[axis]! }, () => build(axis + 1));
    return { nested: build(0), flat };
  });
}

describe('tensor()', () => {
  it('round-trips nested arrays of any shape (zero-size included) for every dtype', () => {
    // a nested array can only express a 0 on its last axis ([0, 3] is just [])
    const arb = shapeArb({ minDim: 0, maxRank: 4, maxSize: 40 })
      .filter((s) => s.slice(0, -1).every((d) => d > 0))
      .chain((shape) =>
        fc.record({
          shape: fc.constant(shape),
          f: nestedArb(shape, fc.double({ min: -1e6, max: 1e6, noNaN: true })),
          i: nestedArb(shape, fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 })),
          b: nestedArb(shape, fc.boolean()),
        }),
      );
    fc.assert(
      fc.property(arb, ({ shape, f, i, b }) => {
        const t32 = tensor(f.nested as never);
        expect(t32.dtype).toBe('float32');
        expect(t32.shape).toEqual(shape);
        expect(t32.size).toBe(O.numel(shape));
        expect(t32.rank).toBe(shape.length);
        expectExact(t32, O.arr(shape, f.flat.map(Math.fround)));
        const t64 = tensor(f.nested as never, 'float64');
        expect(t64.toArray()).toEqual(f.nested);
        const ti = tensor(i.nested as never, 'int32');
        expect(ti.toArray()).toEqual(i.nested);
        const tb = tensor(b.nested as never);
        if (O.numel(shape) > 0) expect(tb.dtype).toBe('bool');
        expect(tb.toArray()).toEqual(b.nested);
        // the same values from a typed array with an explicit shape (any zero-size shape too)
        expect(tensor(Float64Array.from(f.flat), 'float64', shape).toArray()).toEqual(f.nested);
        expect(tensor(Int32Array.from(i.flat), undefined, shape).dtype).toBe('int32');
      }),
      params(100),
    );
  });

  it('rejects ragged nesting with a ShapeError naming the path', () => {
    // with at least two innermost lists, changing one's length makes it ragged
    const arb = shapeArb({ minRank: 2, maxRank: 4, minDim: 1, maxSize: 40 })
      .filter((s) => O.numel(s.slice(0, -1)) >= 2)
      .chain((shape) =>
        fc.record({
          n: nestedArb(shape, fc.integer({ min: 0, max: 9 })),
          path: fc.tuple(...shape.slice(0, -1).map((d) => fc.integer({ min: 0, max: d - 1 }))),
          grow: fc.boolean(),
        }),
      );
    fc.assert(
      fc.property(arb, ({ n, path, grow }) => {
        const nested = JSON.parse(JSON.stringify(n.nested)) as unknown[];
        let node = nested as unknown[];
        for (const p of path.slice(0, -1)) node = node[p] as unknown[];
        const leafList = node[path[path.length - 1]!] as unknown[];
        if (grow) leafList.push(1);
        else leafList.pop();
        expect(() => tensor(nested as never)).toThrow(ShapeError);
        expect(() => tensor(nested as never)).toThrow(/^tensor: ragged nested array: values\[/);
      }),
      params(100),
    );
  });

  it('scalars, empty arrays, and 0/1 for bool', () => {
    const s = tensor(2.5);
    expect(s.shape).toEqual([]);
    expect(s.item()).toBe(2.5);
    expect(tensor(true).item()).toBe(true);
    expect(tensor([]).shape).toEqual([0]);
    expect(tensor([[], []]).shape).toEqual([2, 0]);
    expect(tensor([[], []]).toArray()).toEqual([[], []]);
    expect(tensor(new Float32Array(0), 'float32', [0, 3]).shape).toEqual([0, 3]);
    expect(tensor(new Float32Array(0), 'float32', [0, 3]).toArray()).toEqual([]);
    expect(tensor([0, 1], 'bool').toArray()).toEqual([false, true]);
    expect(tensor([1, 2, 3, 4, 5, 6], 'int32', [2, 3]).toArray()).toEqual([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    expect(tensor(0.1).item()).toBe(Math.fround(0.1));
    expect(tensor(0.1, 'float64').item()).toBe(0.1);
    expect(Object.is(tensor([-0]).dataSync()[0], -0)).toBe(true);
  });

  it('copies its input: later writes to the source array do not change the tensor', () => {
    const src = new Float32Array([1, 2, 3]);
    const t = tensor(src);
    src[0] = 99;
    expect(t.toArray()).toEqual([1, 2, 3]);
    const nested = [[1, 2]];
    const u = tensor(nested);
    nested[0]![0] = 7;
    expect(u.toArray()).toEqual([[1, 2]]);
  });
});

describe('Tensor', () => {
  it('dataSync returns a copy and shape is frozen (immutable tensors)', () => {
    const t = tensor([
      [1, 2],
      [3, 4],
    ]);
    const d = t.dataSync();
    d[0] = 100;
    expect(t.toArray()).toEqual([
      [1, 2],
      [3, 4],
    ]);
    expect(Object.isFrozen(t.shape)).toBe(true);
    expect(() => {
      (t.shape as number[])[0] = 5;
    }).toThrow();
    expect(t.toString()).toBe('tensor([[1, 2],\n        [3, 4]], shape=[2,2], dtype=float32)');
    expect(isTensor(t)).toBe(true);
    expect(isTensor({ shape: [2], dtype: 'float32' })).toBe(false);
  });

  it('dataSync gives the typed array of its dtype', () => {
    expect(zeros([1], 'float32').dataSync()).toBeInstanceOf(Float32Array);
    expect(zeros([1], 'float64').dataSync()).toBeInstanceOf(Float64Array);
    expect(zeros([1], 'int32').dataSync()).toBeInstanceOf(Int32Array);
    expect(zeros([1], 'bool').dataSync()).toBeInstanceOf(Uint8Array);
  });
});

describe('zeros, ones, full', () => {
  it('fill any shape (zero-size included) for every dtype', () => {
    fc.assert(
      fc.property(
        shapeArb({ minDim: 0, maxRank: 4, maxSize: 60 }),
        fc.constantFrom(...DTYPES),
        fc.integer({ min: -100, max: 100 }),
        (shape, dtype, v) => {
          const z = zeros(shape, dtype),
            o = ones(shape, dtype);
          expect(z.dtype).toBe(dtype);
          expect(o.dtype).toBe(dtype);
          expectExact(z, O.filled(shape, 0));
          expectExact(o, O.filled(shape, 1));
          const value = dtype === 'bool' ? v > 0 : v;
          const f = full(shape, value, dtype);
          expectExact(f, O.filled(shape, dtype === 'bool' ? (v > 0 ? 1 : 0) : v));
        },
      ),
      params(100),
    );
    expect(full([2], 0.1).dtype).toBe('float32');
    expect(full([2], false).dtype).toBe('bool');
    expect(full([2], 0.1, 'float64').toArray()).toEqual([0.1, 0.1]);
    expect(zeros([]).shape).toEqual([]);
    expect(zeros([]).item()).toBe(0);
  });
});

describe('arange', () => {
  /** The oracle: start + i·step while below (or above, for negative steps) stop. */
  const ref = (start: number, stop: number, step: number): number[] => {
    const out: number[] = [];
    for (let i = 0; step > 0 ? start + i * step < stop : start + i * step > stop; i++) out.push(start + i * step);
    return out;
  };

  it('integer arguments give int32 [start, stop) with any non-zero step', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: -50, max: 50 }),
        fc.integer({ min: -50, max: 50 }),
        fc.integer({ min: -7, max: 7 }).filter((s) => s !== 0),
        (a, b, step) => {
          const t = arange(a, b, step);
          expect(t.dtype).toBe('int32');
          expect(t.toArray()).toEqual(ref(a, b, step));
        },
      ),
      params(100),
    );
    expect(arange(5).toArray()).toEqual([0, 1, 2, 3, 4]);
    expect(arange(0).shape).toEqual([0]);
    expect(arange(3, 1).shape).toEqual([0]);
    expect(arange(2 ** 31 - 3, 2 ** 31 - 1).toArray()).toEqual([2 ** 31 - 3, 2 ** 31 - 2]);
  });

  it('fractional arguments give float32; an explicit dtype is honoured', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: -20, max: 20 }),
        fc.integer({ min: 1, max: 40 }),
        fc.constantFrom(0.5, 0.25, -0.5, 0.125),
        (a, len, step) => {
          const stop = a + len * step;
          const t = arange(a, stop, step);
          expect(t.dtype).toBe('float32');
          expectExact(t, O.arr([len], ref(a, stop, step)));
          expectExact(arange(a, stop, step, 'float64'), O.arr([len], ref(a, stop, step)));
        },
      ),
      params(100),
    );
    expect(arange(0, 3, 1, 'float32').dtype).toBe('float32');
    expect(arange(0, 1, 0.1, 'float64').size).toBe(10);
  });
});

describe('uniform and normal', () => {
  it('draw from the rng in row-major order (same seed, same tensor) within the requested range', () => {
    fc.assert(
      fc.property(
        shapeArb({ minDim: 0, maxSize: 30 }),
        fc.integer(),
        fc.double({ min: -5, max: 5, noNaN: true }),
        fc.double({ min: 0, max: 5, noNaN: true }),
        (shape, seed, low, width) => {
          const high = low + width;
          const u = uniform(shape, new Rng(seed), { low, high, dtype: 'float64' });
          const r = new Rng(seed);
          expectExact(
            u,
            O.arr(
              shape,
              Array.from({ length: O.numel(shape) }, () => low + (high - low) * r.uniform()),
            ),
          );
          expect(fromTensor(u).data.every((v) => v >= low && v <= high)).toBe(true);
          const n = normal(shape, new Rng(seed), { mean: 1, std: 2 });
          const r2 = new Rng(seed);
          expect(n.dtype).toBe('float32');
          expectExact(
            n,
            O.arr(
              shape,
              Array.from({ length: O.numel(shape) }, () => Math.fround(1 + 2 * r2.normal())),
            ),
          );
        },
      ),
      params(150),
    );
  });
});
