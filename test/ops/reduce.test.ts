/**
 * Reductions, softmax family, arg-reductions and cumsum against the float64
 * oracle, and their gradients.
 *
 * Tolerances:
 *  - sum/mean/max/min/cumsum float32 forward: 1e-6 + 1e-6·|want|. The kernels
 *    accumulate in float64 and round once, so the error is one float32
 *    rounding of the result, not of the running sum.
 *  - logSumExp/softmax/logSoftmax float32 forward: 1e-5 + 1e-5·|want|. They are
 *    composed of several float32 ops (shift, exp, sum, log), each rounding.
 *  - float64 forward: 1e-12 relative (different summation order only).
 *  - gradients: checkGradients defaults (float64, tol 1e-6).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  all,
  any,
  argmax,
  argmin,
  cumsum,
  grad,
  logSoftmax,
  logSumExp,
  max,
  mean,
  min,
  softmax,
  sum,
  tensor,
  type Tensor,
} from '../../src/index.js';
import { params } from '../util/props.js';
import * as O from '../util/oracle.js';
import {
  arrOfShape,
  axisOptArb,
  distinctArrOfShape,
  expectClose,
  expectExact,
  expectGradientsOk,
  fromTensor,
  shapeArb,
  toTensor,
  type Arr,
} from '../util/oracle.js';

const F32 = { rtol: 1e-6, atol: 1e-6 };
const SOFT32 = { rtol: 1e-5, atol: 1e-5 };
const F64 = { rtol: 1e-12, atol: 1e-12 };

type Axis = number | number[] | undefined;

/** A tensor plus a reduction option over its axes. */
function withAxes(
  s: O.ShapeOpts,
  values: (shape: number[]) => fc.Arbitrary<Arr>,
): fc.Arbitrary<{ x: Arr; axis: Axis; keepDims: boolean }> {
  return shapeArb(s).chain((shape) =>
    fc.record({ x: values(shape), axis: axisOptArb(shape.length), keepDims: fc.boolean() }),
  );
}

const opts = (axis: Axis, keepDims: boolean) => (axis === undefined ? { keepDims } : { axis, keepDims });

/** The reduced axes are non-empty (max/min/mean/logSumExp of nothing is an error). */
const nonEmptyOver = (x: Arr, axis: Axis): boolean => O.normAxes(axis, x.shape.length).every((a) => x.shape[a]! > 0);

describe('sum and mean', () => {
  it('forward over random axes (number, list, negative, all) with keepDims matches the oracle', () => {
    fc.assert(
      fc.property(
        withAxes({ minDim: 0, maxRank: 4, maxSize: 48 }, (s) => arrOfShape(s)),
        ({ x, axis, keepDims }) => {
          const o = opts(axis, keepDims);
          expectClose(sum(toTensor(x), o), O.reduce(x, 'sum', axis, keepDims), F32, 'sum');
          expectClose(sum(toTensor(x, 'float64'), o), O.reduce(x, 'sum', axis, keepDims), F64, 'sum f64');
          if (nonEmptyOver(x, axis))
            expectClose(mean(toTensor(x), o), O.reduce(x, 'mean', axis, keepDims), F32, 'mean');
        },
      ),
      params(100),
    );
  });

  it('int32 sum is exact and stays int32', () => {
    const ints = (s: number[]) =>
      fc
        .array(fc.integer({ min: -1e5, max: 1e5 }), { minLength: O.numel(s), maxLength: O.numel(s) })
        .map((d) => O.arr(s, d));
    fc.assert(
      fc.property(withAxes({ minDim: 0 }, ints), ({ x, axis, keepDims }) => {
        const y = sum(toTensor(x, 'int32'), opts(axis, keepDims));
        expect(y.dtype).toBe('int32');
        expectExact(y, O.reduce(x, 'sum', axis, keepDims));
      }),
      params(150),
    );
  });

  it('gradients pass checkGradients', () => {
    fc.assert(
      fc.property(
        withAxes({ maxSize: 12 }, (s) => arrOfShape(s)),
        ({ x, axis, keepDims }) => {
          expectGradientsOk((t) => sum(t, opts(axis, keepDims)), [toTensor(x)]);
          expectGradientsOk((t) => mean(t, opts(axis, keepDims)), [toTensor(x)]);
        },
      ),
      params(150),
    );
  });
});

describe('max and min', () => {
  it('forward matches the oracle (ties allowed in the forward pass)', () => {
    const lattice = (s: number[]) =>
      fc.array(fc.integer({ min: -4, max: 4 }), { minLength: O.numel(s), maxLength: O.numel(s) }).map((d) =>
        O.arr(
          s,
          d.map((v) => v / 4),
        ),
      );
    fc.assert(
      fc.property(withAxes({ minDim: 0, maxRank: 4, maxSize: 48 }, lattice), ({ x, axis, keepDims }) => {
        fc.pre(nonEmptyOver(x, axis));
        for (const dtype of ['float32', 'float64', 'int32'] as const) {
          const xs = dtype === 'int32' ? O.map1(x, (v) => v * 4) : x;
          expectExact(
            max(toTensor(xs, dtype), opts(axis, keepDims)),
            O.reduce(xs, 'max', axis, keepDims),
            `max ${dtype}`,
          );
          expectExact(
            min(toTensor(xs, dtype), opts(axis, keepDims)),
            O.reduce(xs, 'min', axis, keepDims),
            `min ${dtype}`,
          );
        }
      }),
      params(100),
    );
  });

  it('NaN propagates through max and min', () => {
    const x = tensor([
      [1, NaN, 3],
      [4, 5, 6],
    ]);
    expect(fromTensor(max(x, { axis: 1 })).data).toEqual([NaN, 6]);
    expect(fromTensor(min(x, { axis: 1 })).data).toEqual([NaN, 4]);
    expect(Number.isNaN(max(x).item())).toBe(true);
  });

  it('gradients with distinct values pass checkGradients', () => {
    fc.assert(
      fc.property(
        withAxes({ maxSize: 12 }, (s) => distinctArrOfShape(s)),
        ({ x, axis, keepDims }) => {
          expectGradientsOk((t) => max(t, opts(axis, keepDims)), [toTensor(x)]);
          expectGradientsOk((t) => min(t, opts(axis, keepDims)), [toTensor(x)]);
        },
      ),
      params(150),
    );
  });

  it('ties share the gradient evenly (regression example)', () => {
    const g = grad((t: Tensor) => max(t))(tensor([1, 3, 3, -2]));
    expect(fromTensor(g).data).toEqual([0, 0.5, 0.5, 0]);
    const g2 = grad((t: Tensor) => sum(min(t, { axis: 1 })))(
      tensor([
        [2, 2, 2],
        [0, 1, 0],
      ]),
    );
    expect(fromTensor(g2).data.map((v) => Math.round(v * 1e6) / 1e6)).toEqual(
      [1 / 3, 1 / 3, 1 / 3, 0.5, 0, 0.5].map((v) => Math.round(v * 1e6) / 1e6),
    );
  });
});

describe('logSumExp, softmax, logSoftmax', () => {
  it('logSumExp forward over random axes matches the oracle', () => {
    fc.assert(
      fc.property(
        withAxes({ minDim: 0, maxRank: 4, maxSize: 48 }, (s) => arrOfShape(s, { min: -6, max: 6 })),
        ({ x, axis, keepDims }) => {
          fc.pre(nonEmptyOver(x, axis));
          expectClose(
            logSumExp(toTensor(x), opts(axis, keepDims)),
            O.reduce(x, 'logSumExp', axis, keepDims),
            SOFT32,
            'logSumExp',
          );
          expectClose(
            logSumExp(toTensor(x, 'float64'), opts(axis, keepDims)),
            O.reduce(x, 'logSumExp', axis, keepDims),
            F64,
            'logSumExp f64',
          );
        },
      ),
      params(100),
    );
  });

  it('is stable for large magnitudes and gives -Infinity for an all -Infinity row', () => {
    // |x| up to 1e4 (exp overflows float32 beyond 88): lse stays finite and
    // correct to 1e-6 relative. softmax = exp(x - lse) inherits lse's absolute
    // error (float32 ulp at 1e4 is 1e-3), which is the conditioning of softmax
    // at that magnitude, so it is compared to 2e-3 there and to SOFT32 for |x| <= 60.
    fc.assert(
      fc.property(O.arrArb({ minRank: 1, maxRank: 3 }, { min: -1e4, max: 1e4 }), (x) => {
        const y = logSumExp(toTensor(x), { axis: -1 });
        expect(fromTensor(y).data.every(Number.isFinite)).toBe(true);
        expectClose(y, O.reduce(x, 'logSumExp', -1), { rtol: 1e-6, atol: 1e-5 }, 'lse large');
        expectClose(softmax(toTensor(x)), O.softmax(x), { rtol: 0, atol: 2e-3 }, 'softmax large');
      }),
      params(150),
    );
    fc.assert(
      fc.property(O.arrArb({ minRank: 1, maxRank: 3 }, { min: -60, max: 60 }), (x) => {
        expectClose(softmax(toTensor(x)), O.softmax(x), SOFT32, 'softmax |x|<=60');
        expectClose(logSoftmax(toTensor(x)), O.logSoftmax(x), SOFT32, 'logSoftmax |x|<=60');
      }),
      params(150),
    );
    const y = logSumExp(
      tensor([
        [-Infinity, -Infinity],
        [-Infinity, 0],
      ]),
      { axis: 1 },
    );
    expect(fromTensor(y).data).toEqual([-Infinity, 0]);
  });

  it('softmax and logSoftmax along any axis match the oracle; softmax rows sum to 1', () => {
    const arb = shapeArb({ minRank: 1, maxRank: 4, minDim: 0, maxSize: 48 }).chain((shape) =>
      fc.record({
        x: arrOfShape(shape, { min: -8, max: 8 }),
        axis: fc.integer({ min: -shape.length, max: shape.length - 1 }),
      }),
    );
    fc.assert(
      fc.property(arb, ({ x, axis }) => {
        const s = softmax(toTensor(x), { axis });
        expectClose(s, O.softmax(x, axis), SOFT32, 'softmax');
        expectClose(logSoftmax(toTensor(x), { axis }), O.logSoftmax(x, axis), SOFT32, 'logSoftmax');
        const ax = axis < 0 ? axis + x.shape.length : axis;
        if (x.shape[ax]! > 0)
          expectClose(sum(s, { axis }), O.filled(O.reduce(x, 'sum', axis).shape, 1), SOFT32, 'softmax sums');
      }),
      params(100),
    );
  });

  it('softmax/logSoftmax over an empty axis return the empty tensor (regression: used to throw a logSumExp error)', () => {
    for (const f of [softmax, logSoftmax]) {
      expect(f(tensor([])).shape).toEqual([0]);
      const y = f(tensor(new Float32Array(0), 'float32', [2, 0]));
      expect(y.shape).toEqual([2, 0]);
      expect(y.dtype).toBe('float32');
      expect(f(tensor(new Float32Array(0), 'float32', [0, 3]), { axis: 0 }).shape).toEqual([0, 3]);
      expect(grad((t: Tensor) => sum(f(t)))(tensor(new Float32Array(0), 'float32', [3, 0])).shape).toEqual([3, 0]);
    }
  });

  it('gradients pass checkGradients', () => {
    const arb = shapeArb({ minRank: 1, maxSize: 12 }).chain((shape) =>
      fc.record({
        x: arrOfShape(shape, { min: -4, max: 4 }),
        axis: fc.integer({ min: -shape.length, max: shape.length - 1 }),
        keepDims: fc.boolean(),
      }),
    );
    fc.assert(
      fc.property(arb, ({ x, axis, keepDims }) => {
        const t = toTensor(x);
        expectGradientsOk((u) => logSumExp(u, { axis, keepDims }), [t]);
        expectGradientsOk((u) => softmax(u, { axis }), [t]);
        expectGradientsOk((u) => logSoftmax(u, { axis }), [t]);
      }),
      params(150),
    );
  });
});

describe('argmax and argmin', () => {
  it('match the oracle (first index on ties) along any axis, keepDims', () => {
    const lattice = (s: number[]) =>
      fc
        .array(fc.integer({ min: -2, max: 2 }), { minLength: O.numel(s), maxLength: O.numel(s) })
        .map((d) => O.arr(s, d));
    const arb = shapeArb({ minRank: 1, maxRank: 4, maxSize: 48 }).chain((shape) =>
      fc.record({
        x: lattice(shape),
        axis: fc.integer({ min: -shape.length, max: shape.length - 1 }),
        keepDims: fc.boolean(),
      }),
    );
    fc.assert(
      fc.property(arb, ({ x, axis, keepDims }) => {
        for (const dtype of ['float32', 'float64', 'int32'] as const) {
          const amax = argmax(toTensor(x, dtype), { axis, keepDims });
          expect(amax.dtype).toBe('int32');
          expectExact(amax, O.argReduce(x, 'max', axis, keepDims), `argmax ${dtype}`);
          expectExact(
            argmin(toTensor(x, dtype), { axis, keepDims }),
            O.argReduce(x, 'min', axis, keepDims),
            `argmin ${dtype}`,
          );
        }
      }),
      params(100),
    );
  });

  it('handle ±Infinity and NaN (first NaN wins), default axis -1', () => {
    const x = tensor([
      [-Infinity, -Infinity, -Infinity],
      [Infinity, 1, Infinity],
      [2, NaN, NaN],
      [1, 5, 5],
    ]);
    expect(argmax(x).toArray()).toEqual([0, 0, 1, 1]);
    expect(argmin(x).toArray()).toEqual([0, 1, 1, 0]);
    expect(argmin(tensor([Infinity, Infinity])).item()).toBe(0);
  });
});

describe('any and all', () => {
  it('match the oracle over random axes, including empty axes (any → false, all → true)', () => {
    const bools = (s: number[]) =>
      fc.array(fc.boolean(), { minLength: O.numel(s), maxLength: O.numel(s) }).map((d) => O.arr(s, d.map(Number)));
    fc.assert(
      fc.property(withAxes({ minDim: 0, maxRank: 4, maxSize: 48 }, bools), ({ x, axis, keepDims }) => {
        const t = toTensor(x, 'bool');
        const a = any(t, opts(axis, keepDims)),
          b = all(t, opts(axis, keepDims));
        expect(a.dtype).toBe('bool');
        expectExact(a, O.reduce(x, 'any', axis, keepDims));
        expectExact(b, O.reduce(x, 'all', axis, keepDims));
      }),
      params(100),
    );
  });
});

describe('cumsum', () => {
  it('forward along any axis, both directions, matches the oracle', () => {
    const arb = shapeArb({ minRank: 1, maxRank: 4, minDim: 0, maxSize: 48 }).chain((shape) =>
      fc.record({
        x: arrOfShape(shape),
        axis: fc.integer({ min: -shape.length, max: shape.length - 1 }),
        reverse: fc.boolean(),
      }),
    );
    fc.assert(
      fc.property(arb, ({ x, axis, reverse }) => {
        expectClose(cumsum(toTensor(x), { axis, reverse }), O.cumsum(x, axis, reverse), F32, 'cumsum');
        const ints = O.map1(x, Math.round);
        const yi = cumsum(toTensor(ints, 'int32'), { axis, reverse });
        expect(yi.dtype).toBe('int32');
        expectExact(yi, O.cumsum(ints, axis, reverse));
      }),
      params(100),
    );
    expect(cumsum(tensor(3)).item()).toBe(3);
    expect(cumsum(tensor([1, 2, 3])).toArray()).toEqual([1, 3, 6]);
    expect(cumsum(tensor([1, 2, 3]), { reverse: true }).toArray()).toEqual([6, 5, 3]);
  });

  it('gradients in both directions pass checkGradients', () => {
    const arb = shapeArb({ minRank: 1, maxSize: 12 }).chain((shape) =>
      fc.record({
        x: arrOfShape(shape),
        axis: fc.integer({ min: -shape.length, max: shape.length - 1 }),
        reverse: fc.boolean(),
      }),
    );
    fc.assert(
      fc.property(arb, ({ x, axis, reverse }) => {
        expectGradientsOk((t) => cumsum(t, { axis, reverse }), [toTensor(x)]);
      }),
      params(150),
    );
  });
});
