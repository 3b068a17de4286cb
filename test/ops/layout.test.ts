/**
 * Shape and indexing ops against the oracle, and their gradients.
 *
 * These ops only move values, so the forward pass must match the oracle
 * EXACTLY (no tolerance), for float32, float64 and int32. Gradients use the
 * checkGradients defaults (float64, tol 1e-6).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  broadcastTo,
  concat,
  expandDims,
  gather,
  gatherRows,
  grad,
  pad,
  reshape,
  scatterRows,
  slice,
  squeeze,
  stack,
  sum,
  tensor,
  topK,
  transpose,
  vjp,
  type Tensor,
} from '../../src/index.js';
import { params } from '../util/props.js';
import * as O from '../util/oracle.js';
import {
  arrOfShape,
  broadcastShapesArb,
  distinctArrOfShape,
  expectExact,
  expectGradientsOk,
  fromTensor,
  shapeArb,
  toTensor,
  type Arr,
} from '../util/oracle.js';

const DTYPES = ['float32', 'float64', 'int32'] as const;
/** Float values that are also exact in int32 after rounding (for the int32 pass). */
const ints = (a: Arr): Arr => O.map1(a, (v) => Math.round(v * 1000));

/** Checks a layout op on all three dtypes: forward exact vs the oracle, dtype preserved. */
function forwardAllDtypes(x: Arr, lib: (t: Tensor) => Tensor, ref: (a: Arr) => Arr): void {
  for (const dtype of DTYPES) {
    const xs = dtype === 'int32' ? ints(x) : x;
    const y = lib(toTensor(xs, dtype));
    expect(y.dtype).toBe(dtype);
    expectExact(y, ref(xs), dtype);
  }
}

describe('reshape', () => {
  const targets = (shape: number[]): number[][] => {
    const n = O.numel(shape);
    const out = [
      [n],
      [-1],
      shape.slice().reverse(),
      [...shape, 1],
      [1, ...shape],
      shape.length > 0 ? [-1, shape[shape.length - 1]!] : [1, 1, -1],
    ];
    for (let d = 2; d <= n; d++) if (n % d === 0) out.push([d, n / d], [n / d, -1, 1]);
    return out.filter((t) => !(t.includes(-1) && t.some((v) => v === 0)) && !(n === 0 && t.includes(-1)));
  };
  const arb = (o: O.ShapeOpts) =>
    O.arrArb(o).chain((x) => fc.record({ x: fc.constant(x), shape: fc.constantFrom(...targets(x.shape)) }));

  it('forward is exact (zero-size included) and keeps the values in row-major order', () => {
    fc.assert(
      fc.property(arb({ minDim: 0, maxRank: 4, maxSize: 48 }), ({ x, shape }) => {
        const resolved = shape.includes(-1)
          ? shape.map((d) => (d === -1 ? O.numel(x.shape) / -O.numel(shape) : d))
          : shape;
        forwardAllDtypes(
          x,
          (t) => reshape(t, shape),
          (a) => O.reshape(a, resolved),
        );
      }),
      params(100),
    );
  });

  it('gradient passes checkGradients', () => {
    fc.assert(
      fc.property(arb({ maxSize: 12 }), ({ x, shape }) => {
        expectGradientsOk((t) => reshape(t, shape), [toTensor(x)]);
      }),
      params(100),
    );
  });
});

describe('transpose', () => {
  const permArb = (rank: number) =>
    fc.oneof(
      fc.constant(undefined),
      fc.shuffledSubarray(
        Array.from({ length: rank }, (_, i) => i),
        { minLength: rank, maxLength: rank },
      ),
    );
  const arb = (o: O.ShapeOpts) =>
    O.arrArb(o).chain((x) => fc.record({ x: fc.constant(x), perm: permArb(x.shape.length) }));

  it('forward is exact for any permutation (default: reversed axes)', () => {
    fc.assert(
      fc.property(arb({ minDim: 0, maxRank: 5, maxDim: 3, maxSize: 60 }), ({ x, perm }) => {
        forwardAllDtypes(
          x,
          (t) => transpose(t, perm),
          (a) => O.transpose(a, perm),
        );
      }),
      params(100),
    );
  });

  it('gradient passes checkGradients', () => {
    fc.assert(
      fc.property(arb({ maxRank: 4, maxSize: 12 }), ({ x, perm }) => {
        expectGradientsOk((t) => transpose(t, perm), [toTensor(x)]);
      }),
      params(100),
    );
  });
});

describe('expandDims and squeeze', () => {
  it('expandDims inserts a size-1 axis at any (negative) position; gradient', () => {
    const arb = O.arrArb({ minDim: 0, maxSize: 24 }).chain((x) =>
      fc.record({ x: fc.constant(x), axis: fc.integer({ min: -(x.shape.length + 1), max: x.shape.length }) }),
    );
    fc.assert(
      fc.property(arb, ({ x, axis }) => {
        const r = x.shape.length + 1;
        const a = axis < 0 ? axis + r : axis;
        const shape = x.shape.slice();
        shape.splice(a, 0, 1);
        forwardAllDtypes(
          x,
          (t) => expandDims(t, axis),
          (v) => O.reshape(v, shape),
        );
        if (O.numel(x.shape) > 0 && O.numel(x.shape) <= 12)
          expectGradientsOk((t) => expandDims(t, axis), [toTensor(x)]);
      }),
      params(150),
    );
  });

  it('squeeze removes the given size-1 axes, or all of them; gradient', () => {
    const arb = shapeArb({ maxRank: 4, maxDim: 3, maxSize: 12 })
      .chain((base) =>
        fc
          .array(fc.boolean(), { minLength: base.length, maxLength: base.length })
          .map((ones) => base.map((d, i) => (ones[i] ? 1 : d))),
      )
      .chain((shape) => {
        const unit = shape.flatMap((d, i) => (d === 1 ? [i] : []));
        return fc.record({
          x: arrOfShape(shape),
          axis: fc.oneof(
            fc.constant(undefined),
            fc.subarray(unit).map((a) => a.map((v, i) => (i % 2 ? v - shape.length : v))),
          ),
        });
      });
    fc.assert(
      fc.property(arb, ({ x, axis }) => {
        const r = x.shape.length;
        const drop =
          axis === undefined ? x.shape.flatMap((d, i) => (d === 1 ? [i] : [])) : axis.map((a) => (a < 0 ? a + r : a));
        const shape = x.shape.filter((_, i) => !drop.includes(i));
        forwardAllDtypes(
          x,
          (t) => squeeze(t, axis),
          (v) => O.reshape(v, shape),
        );
        expectGradientsOk((t) => squeeze(t, axis), [toTensor(x)]);
      }),
      params(150),
    );
  });
});

describe('broadcastTo', () => {
  it('forward matches the oracle (size-1 and missing leading axes, zero-size)', () => {
    fc.assert(
      fc.property(
        broadcastShapesArb(1, { minDim: 0, maxRank: 4, maxSize: 48 }).chain(({ out, shapes }) =>
          fc.record({ x: arrOfShape(shapes[0]!), out: fc.constant(out) }),
        ),
        ({ x, out }) => {
          forwardAllDtypes(
            x,
            (t) => broadcastTo(t, out),
            (a) => O.broadcastTo(a, out),
          );
        },
      ),
      params(100),
    );
  });

  it('gradient sums back over the broadcast axes (checkGradients)', () => {
    fc.assert(
      fc.property(
        broadcastShapesArb(1, { maxRank: 3, maxSize: 12 }).chain(({ out, shapes }) =>
          fc.record({ x: arrOfShape(shapes[0]!), out: fc.constant(out) }),
        ),
        ({ x, out }) => {
          expectGradientsOk((t) => broadcastTo(t, out), [toTensor(x)]);
        },
      ),
      params(100),
    );
  });
});

/** 1-3 parts that agree on every axis but `axis` (sizes along it may be 0). */
function partsArb(o: { maxSize: number; minPartDim: number }): fc.Arbitrary<{ parts: Arr[]; axis: number }> {
  return shapeArb({ minRank: 1, maxRank: 3, maxDim: 3, maxSize: o.maxSize }).chain((shape) =>
    fc
      .record({
        axis: fc.integer({ min: -shape.length, max: shape.length - 1 }),
        sizes: fc.array(fc.integer({ min: o.minPartDim, max: 3 }), { minLength: 1, maxLength: 3 }),
      })
      .chain(({ axis, sizes }) => {
        const a = axis < 0 ? axis + shape.length : axis;
        return fc
          .tuple(...sizes.map((n) => arrOfShape(shape.map((d, i) => (i === a ? n : d)))))
          .map((parts) => ({ parts, axis }));
      }),
  );
}

describe('concat and stack', () => {
  it('concat forward matches the oracle along any axis, zero-size parts included', () => {
    fc.assert(
      fc.property(partsArb({ maxSize: 24, minPartDim: 0 }), ({ parts, axis }) => {
        for (const dtype of DTYPES) {
          const ps = dtype === 'int32' ? parts.map(ints) : parts;
          const y = concat(
            ps.map((p) => toTensor(p, dtype)),
            axis,
          );
          expect(y.dtype).toBe(dtype);
          expectExact(y, O.concat(ps, axis), `concat ${dtype}`);
        }
        // float32 with float64 promotes
        const mixed = concat(
          parts.map((p, i) => toTensor(p, i % 2 ? 'float64' : 'float32')),
          axis,
        );
        expect(mixed.dtype).toBe(parts.length > 1 ? 'float64' : 'float32');
        expectExact(mixed, O.concat(parts, axis));
      }),
      params(100),
    );
  });

  it('concat gradient splits the cotangent among all parts (checkGradients, mixed dtypes)', () => {
    fc.assert(
      fc.property(partsArb({ maxSize: 8, minPartDim: 1 }), ({ parts, axis }) => {
        expectGradientsOk(
          (...xs) => concat(xs, axis),
          parts.map((p) => toTensor(p)),
        );
      }),
      params(100),
    );
    const { vjp: pull } = vjp((a: Tensor, b: Tensor) => concat([a, b]), tensor([1, 2]), tensor([3], 'float64'));
    const [ga, gb] = pull(tensor([10, 20, 30], 'float64')) as Tensor[];
    expect(ga!.dtype).toBe('float32');
    expect(ga!.toArray()).toEqual([10, 20]);
    expect(gb!.dtype).toBe('float64');
    expect(gb!.toArray()).toEqual([30]);
  });

  it('stack forward matches the oracle along any new axis; gradient', () => {
    const arb = shapeArb({ maxRank: 3, maxDim: 3, maxSize: 8 }).chain((shape) =>
      fc.record({
        parts: fc.array(arrOfShape(shape), { minLength: 1, maxLength: 3 }),
        axis: fc.integer({ min: -(shape.length + 1), max: shape.length }),
      }),
    );
    fc.assert(
      fc.property(arb, ({ parts, axis }) => {
        for (const dtype of DTYPES) {
          const ps = dtype === 'int32' ? parts.map(ints) : parts;
          expectExact(
            stack(
              ps.map((p) => toTensor(p, dtype)),
              axis,
            ),
            O.stack(ps, axis),
            `stack ${dtype}`,
          );
        }
        expectGradientsOk(
          (...xs) => stack(xs, axis),
          parts.map((p) => toTensor(p)),
        );
      }),
      params(150),
    );
  });
});

describe('slice and pad', () => {
  /** begin (possibly shorter than the rank) and size (with -1 = to the end). */
  const sliceArb = (o: O.ShapeOpts) =>
    O.arrArb(o).chain((x) => {
      const r = x.shape.length;
      return fc.integer({ min: 0, max: r }).chain((len) =>
        fc
          .tuple(fc.tuple(...x.shape.slice(0, len).map((d) => fc.integer({ min: 0, max: d }))), fc.boolean())
          .chain(([begin, withSize]) => {
            const sizeArbs = x.shape.map((d, i) => {
              const b = begin[i] ?? 0;
              return fc.oneof(fc.integer({ min: 0, max: d - b }), fc.constant(-1));
            });
            return fc.record({
              x: fc.constant(x),
              begin: fc.constant(begin as number[]),
              size: withSize ? fc.tuple(...sizeArbs).map((s) => s as number[]) : fc.constant(undefined),
            });
          }),
      );
    });
  const resolve = (x: Arr, begin: number[], size: number[] | undefined) => {
    const b = x.shape.map((_, i) => begin[i] ?? 0);
    const s = x.shape.map((d, i) => (size === undefined || size[i] === -1 ? d - b[i]! : size[i]!));
    return { b, s };
  };

  it('slice forward is exact (zero-size boxes included)', () => {
    fc.assert(
      fc.property(sliceArb({ minDim: 0, maxRank: 4, maxSize: 48 }), ({ x, begin, size }) => {
        const { b, s } = resolve(x, begin, size);
        forwardAllDtypes(
          x,
          (t) => slice(t, begin, size),
          (a) => O.slice(a, b, s),
        );
      }),
      params(100),
    );
  });

  it('slice gradient pads the cotangent back (checkGradients)', () => {
    fc.assert(
      fc.property(sliceArb({ maxSize: 12 }), ({ x, begin, size }) => {
        expectGradientsOk((t) => slice(t, begin, size), [toTensor(x)]);
      }),
      params(150),
    );
  });

  it('pad forward is exact; gradient slices the cotangent (checkGradients)', () => {
    const arb = O.arrArb({ minDim: 0, maxSize: 12 }).chain((x) =>
      fc.record({
        x: fc.constant(x),
        before: fc.tuple(...x.shape.map(() => fc.integer({ min: 0, max: 2 }))).map((v) => v as number[]),
        after: fc.tuple(...x.shape.map(() => fc.integer({ min: 0, max: 2 }))).map((v) => v as number[]),
      }),
    );
    fc.assert(
      fc.property(arb, ({ x, before, after }) => {
        forwardAllDtypes(
          x,
          (t) => pad(t, before, after),
          (a) => O.pad(a, before, after),
        );
        if (O.numel(x.shape) > 0) expectGradientsOk((t) => pad(t, before, after), [toTensor(x)]);
      }),
      params(150),
    );
  });
});

describe('gather, gatherRows, scatterRows', () => {
  /** x, an axis, and int32 indices of rank 0-2 into that axis (repeats allowed). */
  const gatherArb = (o: O.ShapeOpts, maxIdx: number) =>
    O.arrArb({ ...o, minRank: 1 }).chain((x) =>
      fc.integer({ min: 0, max: x.shape.length - 1 }).chain((axis) => {
        const n = x.shape[axis]!;
        return fc.record({
          x: fc.constant(x),
          axis: fc.constantFrom(axis, axis - x.shape.length),
          idx:
            n === 0
              ? fc.constant(O.arr([0], []))
              : shapeArb({ maxRank: 2, minDim: 0, maxDim: maxIdx, maxSize: maxIdx }).chain((s) =>
                  fc
                    .array(fc.integer({ min: 0, max: n - 1 }), { minLength: O.numel(s), maxLength: O.numel(s) })
                    .map((d) => O.arr(s, d)),
                ),
        });
      }),
    );

  it('gather along every axis matches the oracle (index tensors of rank 0-2, repeats)', () => {
    fc.assert(
      fc.property(gatherArb({ minDim: 0, maxRank: 4, maxSize: 48 }, 5), ({ x, axis, idx }) => {
        forwardAllDtypes(
          x,
          (t) => gather(t, toTensor(idx, 'int32'), { axis }),
          (a) => O.gather(a, idx, axis),
        );
      }),
      params(100),
    );
  });

  it('gather gradient accumulates repeated indices (checkGradients)', () => {
    fc.assert(
      fc.property(gatherArb({ maxSize: 8 }, 4), ({ x, axis, idx }) => {
        const i = toTensor(idx, 'int32');
        expectGradientsOk((t) => gather(t, i, { axis }), [toTensor(x)]);
      }),
      params(150),
    );
    // explicit: row 1 gathered three times gets 3x the cotangent
    const g = grad((t: Tensor) => sum(gather(t, tensor([1, 1, 0, 1], 'int32'))))(tensor([5, 6, 7]));
    expect(g.toArray()).toEqual([1, 3, 0]);
  });

  it('gatherRows is gather along axis 0; gradient', () => {
    const rowsArb = O.arrArb({ minRank: 1, maxSize: 12 }).chain((x) =>
      fc.record({
        x: fc.constant(x),
        idx: shapeArb({ maxRank: 2, minDim: 0, maxDim: 4, maxSize: 4 }).chain((s) =>
          fc
            .array(fc.integer({ min: 0, max: x.shape[0]! - 1 }), { minLength: O.numel(s), maxLength: O.numel(s) })
            .map((d) => O.arr(s, d)),
        ),
      }),
    );
    fc.assert(
      fc.property(rowsArb, ({ x, idx }) => {
        const i = toTensor(idx, 'int32');
        forwardAllDtypes(
          x,
          (t) => gatherRows(t, i),
          (a) => O.gather(a, idx, 0),
        );
        if (O.numel(x.shape) > 0 && O.numel(idx.shape) > 0) expectGradientsOk((t) => gatherRows(t, i), [toTensor(x)]);
      }),
      params(150),
    );
  });

  const scatterArb = (o: O.ShapeOpts) =>
    O.arrArb({ ...o, minRank: 1, minDim: 1 }).chain((x) => {
      const n = x.shape[0]!;
      return fc.array(fc.integer({ min: 0, max: n - 1 }), { minLength: 0, maxLength: 4 }).chain((idx) =>
        fc.record({
          x: fc.constant(x),
          idx: fc.constant(idx),
          u: arrOfShape([idx.length, ...x.shape.slice(1)]),
        }),
      );
    });

  it('scatterRows replaces rows, the last write wins on repeats, x is unchanged', () => {
    fc.assert(
      fc.property(scatterArb({ maxRank: 3, maxSize: 24 }), ({ x, idx, u }) => {
        for (const dtype of DTYPES) {
          const xs = dtype === 'int32' ? ints(x) : x,
            us = dtype === 'int32' ? ints(u) : u;
          const tx = toTensor(xs, dtype);
          const y = scatterRows(tx, toTensor(O.arr([idx.length], idx), 'int32'), toTensor(us, dtype));
          expect(y.dtype).toBe(dtype);
          expectExact(y, O.scatterRows(xs, idx, us), `scatterRows ${dtype}`);
          expectExact(tx, xs, 'x unchanged');
        }
      }),
      params(100),
    );
  });

  it('scatterRows gradient w.r.t. x and updates (losing updates get zero) passes checkGradients', () => {
    fc.assert(
      fc.property(scatterArb({ maxRank: 3, maxSize: 8 }), ({ x, idx, u }) => {
        const i = toTensor(O.arr([idx.length], idx), 'int32');
        expectGradientsOk((a, b) => scatterRows(a, i, b), [toTensor(x), toTensor(u)]);
      }),
      params(150),
    );
    const { vjp: pull } = vjp(
      (a: Tensor, b: Tensor) => scatterRows(a, tensor([1, 1], 'int32'), b),
      tensor([1, 2, 3]),
      tensor([8, 9]),
    );
    const [gx, gu] = pull(tensor([10, 20, 30])) as Tensor[];
    expect(gx!.toArray()).toEqual([10, 0, 30]);
    expect(gu!.toArray()).toEqual([0, 20]);
  });
});

describe('topK', () => {
  it('values and indices match the oracle without ties (both the sort and the partial-selection path)', () => {
    const arb = shapeArb({ minRank: 1, maxRank: 3, maxDim: 3, maxSize: 9 }).chain((lead) =>
      fc.integer({ min: 0, max: 40 }).chain((n) =>
        fc.record({
          x: distinctArrOfShape([...lead.slice(0, -1), n]),
          k: fc.integer({ min: 0, max: n }),
        }),
      ),
    );
    fc.assert(
      fc.property(arb, ({ x, k }) => {
        for (const dtype of DTYPES) {
          const xs = dtype === 'int32' ? ints(x) : x;
          const { values, indices } = topK(toTensor(xs, dtype), k);
          const want = O.topK(xs, k);
          expect(values.dtype).toBe(dtype);
          expect(indices.dtype).toBe('int32');
          expectExact(values, want.values, `values ${dtype}`);
          expectExact(indices, want.indices, `indices ${dtype}`);
        }
      }),
      params(100),
    );
  });

  it('is stable with many ties: equal values come out in increasing index order', () => {
    const arb = shapeArb({ minRank: 0, maxRank: 2, maxDim: 3 }).chain((lead) =>
      fc.integer({ min: 1, max: 40 }).chain((n) =>
        fc.record({
          x: fc
            .array(fc.integer({ min: 0, max: 2 }), { minLength: O.numel(lead) * n, maxLength: O.numel(lead) * n })
            .map((d) => O.arr([...lead, n], d)),
          k: fc.integer({ min: 0, max: n }),
        }),
      ),
    );
    fc.assert(
      fc.property(arb, ({ x, k }) => {
        const { values, indices } = topK(toTensor(x), k);
        const want = O.topK(x, k);
        expectExact(values, want.values);
        expectExact(indices, want.indices);
      }),
      params(100),
    );
  });

  it('NaN ranks above every number; -Infinity last', () => {
    const { values, indices } = topK(tensor([[1, NaN, Infinity, -Infinity, NaN]]), 5);
    expect(indices.toArray()).toEqual([[1, 4, 2, 0, 3]]);
    expect(fromTensor(values).data).toEqual([NaN, NaN, Infinity, 1, -Infinity]);
  });

  it('values gradient (a gather) passes checkGradients', () => {
    const arb = shapeArb({ minRank: 0, maxRank: 2, maxDim: 2 }).chain((lead) =>
      fc.integer({ min: 1, max: 5 }).chain((n) =>
        fc.record({
          x: distinctArrOfShape([...lead, n]),
          k: fc.integer({ min: 0, max: n }),
        }),
      ),
    );
    fc.assert(
      fc.property(arb, ({ x, k }) => {
        expectGradientsOk((t) => topK(t, k).values, [toTensor(x)]);
      }),
      params(150),
    );
  });
});

describe('int32 values above 2^24 survive exactly', () => {
  const big = fc.oneof(
    fc.integer({ min: 2 ** 24 + 1, max: 2 ** 31 - 1 }),
    fc.integer({ min: -(2 ** 31), max: -(2 ** 24) - 1 }),
    fc.constantFrom(2 ** 24 + 1, 2 ** 31 - 1, -(2 ** 31), 16777217, 123456789),
  );

  it('through tensor(), reshape, gather, concat and scatterRows', () => {
    fc.assert(
      fc.property(
        fc.array(big, { minLength: 2, maxLength: 12 }),
        fc.array(fc.nat(), { minLength: 0, maxLength: 6 }),
        (vals, picks) => {
          const t = tensor(vals, 'int32');
          expect(t.toArray()).toEqual(vals);
          expect(Array.from(t.dataSync())).toEqual(vals);
          const idx = picks.map((p) => p % vals.length);
          expect(gather(t, tensor(idx, 'int32')).toArray()).toEqual(idx.map((i) => vals[i]));
          expect(concat([t, t]).toArray()).toEqual([...vals, ...vals]);
          const even = vals.length - (vals.length % 2);
          const m = reshape(slice(t, [0], [even]), [even / 2, 2]);
          expect(m.toArray()).toEqual(Array.from({ length: even / 2 }, (_, r) => [vals[2 * r], vals[2 * r + 1]]));
          const rows = tensor([[vals[0]!, vals[1]!]], 'int32');
          const s = scatterRows(m, tensor([0], 'int32'), rows);
          expect((s.toArray() as number[][])[0]).toEqual([vals[0], vals[1]]);
          const swapped = scatterRows(t, tensor([0, 1], 'int32'), tensor([vals[1]!, vals[0]!], 'int32'));
          expect(swapped.toArray()).toEqual([vals[1], vals[0], ...vals.slice(2)]);
          expect(gatherRows(m, tensor([even / 2 - 1], 'int32')).toArray()).toEqual([[vals[even - 2], vals[even - 1]]]);
        },
      ),
      params(100),
    );
  });
});
