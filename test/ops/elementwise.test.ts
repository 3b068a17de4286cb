/**
 * Elementwise ops against the float64 oracle, and their gradients.
 *
 * Tolerances (stated once, used below):
 *  - float32 forward vs oracle: |got - want| <= 1e-6 + 1e-6·|want|. Inputs are
 *    float32-exact, each op rounds once to float32 (relative 6e-8), so this
 *    leaves ~16x headroom over one rounding and catches any wrong formula.
 *  - float64 forward: the same JS Math functions run on the same values, so
 *    results must match the oracle to 1e-15 relative.
 *  - gradients: checkGradients defaults (float64 autodiff vs Richardson
 *    central differences, error |a-n|/max(1,|a|,|n|) <= 1e-6).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  abs,
  add,
  cast,
  div,
  equal,
  exp,
  greater,
  greaterEqual,
  isFinite,
  less,
  lessEqual,
  log,
  logicalAnd,
  logicalNot,
  logicalOr,
  maximum,
  minimum,
  mul,
  neg,
  notEqual,
  pow,
  relu,
  sigmoid,
  sqrt,
  square,
  sub,
  tanh,
  tensor,
  vjp,
  where,
  type Tensor,
} from '../../src/index.js';
import { params } from '../util/props.js';
import * as O from '../util/oracle.js';
import {
  arrOfShape,
  broadcastShapesArb,
  expectClose,
  expectExact,
  expectGradientsOk,
  fromTensor,
  shapeArb,
  toTensor,
  type Arr,
  type ValueOpts,
} from '../util/oracle.js';

const F32 = { rtol: 1e-6, atol: 1e-6 };
const F64 = { rtol: 1e-15, atol: 1e-300 };

interface UnarySpec {
  name: string;
  lib: (x: Tensor) => Tensor;
  ref: (x: number) => number;
  dom: ValueOpts;
}

const UNARY: UnarySpec[] = [
  { name: 'neg', lib: neg, ref: (x) => -x, dom: {} },
  { name: 'exp', lib: exp, ref: Math.exp, dom: { min: -4, max: 4 } },
  { name: 'log', lib: log, ref: Math.log, dom: { min: 0.25, max: 8 } },
  { name: 'sqrt', lib: sqrt, ref: Math.sqrt, dom: { min: 0.25, max: 8 } },
  { name: 'square', lib: square, ref: (x) => x * x, dom: {} },
  { name: 'abs', lib: abs, ref: Math.abs, dom: { awayFromZero: 0.1 } },
  { name: 'tanh', lib: tanh, ref: Math.tanh, dom: { min: -4, max: 4 } },
  { name: 'sigmoid', lib: sigmoid, ref: O.sigmoid, dom: { min: -8, max: 8 } },
  { name: 'relu', lib: relu, ref: (x) => (x > 0 ? x : 0), dom: { awayFromZero: 0.1 } },
];

describe.each(UNARY)('$name', ({ name, lib, ref, dom }) => {
  it('forward matches the oracle (float32 and float64, zero-size included)', () => {
    fc.assert(
      fc.property(
        shapeArb({ minDim: 0, maxRank: 4, maxSize: 40 }).chain((s) => arrOfShape(s, dom)),
        (x) => {
          const want = O.map1(x, ref);
          const y32 = lib(toTensor(x, 'float32'));
          expect(y32.dtype).toBe('float32');
          expectClose(y32, want, F32, name);
          const y64 = lib(toTensor(x, 'float64'));
          expect(y64.dtype).toBe('float64');
          expectClose(y64, want, F64, `${name} float64`);
        },
      ),
      params(100),
    );
  });

  it('gradient passes checkGradients (adjoint + full Jacobian)', () => {
    fc.assert(
      fc.property(
        shapeArb({ maxRank: 3, maxSize: 12 }).chain((s) => arrOfShape(s, dom)),
        (x) => {
          expectGradientsOk(lib, [toTensor(x)]);
        },
      ),
      params(100),
    );
  });
});

interface BinarySpec {
  name: string;
  lib: (a: Tensor, b: Tensor) => Tensor;
  ref: (a: number, b: number) => number;
  domA: (shape: number[]) => fc.Arbitrary<Arr>;
  domB: (shape: number[]) => fc.Arbitrary<Arr>;
}

const any3 = (s: number[]): fc.Arbitrary<Arr> => arrOfShape(s, { min: -3, max: 3 });
/** Values k + offset for integer k in [-3, 3]: operands with different offsets never tie. */
const lattice =
  (offset: number) =>
  (s: number[]): fc.Arbitrary<Arr> =>
    fc.array(fc.integer({ min: -3, max: 3 }), { minLength: O.numel(s), maxLength: O.numel(s) }).map((ks) =>
      O.arr(
        s,
        ks.map((k) => k + offset),
      ),
    );

const BINARY: BinarySpec[] = [
  { name: 'add', lib: add, ref: (a, b) => a + b, domA: any3, domB: any3 },
  { name: 'sub', lib: sub, ref: (a, b) => a - b, domA: any3, domB: any3 },
  { name: 'mul', lib: mul, ref: (a, b) => a * b, domA: any3, domB: any3 },
  {
    name: 'div',
    lib: div,
    ref: (a, b) => a / b,
    domA: any3,
    domB: (s) => arrOfShape(s, { awayFromZero: 0.5, max: 4 }),
  },
  {
    name: 'pow',
    lib: pow,
    ref: Math.pow,
    domA: (s) => arrOfShape(s, { min: 0.5, max: 3 }),
    domB: (s) => arrOfShape(s, { min: -2, max: 2 }),
  },
  { name: 'maximum', lib: maximum, ref: Math.max, domA: lattice(0.25), domB: lattice(0.75) },
  { name: 'minimum', lib: minimum, ref: Math.min, domA: lattice(0.25), domB: lattice(0.75) },
];

describe.each(BINARY)('$name', ({ name, lib, ref, domA, domB }) => {
  it('forward with broadcasting (size-1 axes, missing leading axes, zero-size) matches the oracle', () => {
    const arb = broadcastShapesArb(2, { minDim: 0, maxDim: 3, maxRank: 4, maxSize: 36 }).chain(({ shapes }) =>
      fc.tuple(domA(shapes[0]!), domB(shapes[1]!)),
    );
    fc.assert(
      fc.property(arb, ([a, b]) => {
        const want = O.map2(a, b, ref);
        expectClose(lib(toTensor(a), toTensor(b)), want, F32, name);
        const y = lib(toTensor(a, 'float64'), toTensor(b, 'float64'));
        expect(y.dtype).toBe('float64');
        expectClose(y, want, F64, `${name} float64`);
        // float32 with float64 promotes to float64 and computes on the float32 values exactly
        const mixed = lib(toTensor(a, 'float32'), toTensor(b, 'float64'));
        expect(mixed.dtype).toBe('float64');
        expectClose(mixed, want, F64, `${name} mixed`);
      }),
      params(100),
    );
  });

  it('gradient (with broadcasting) passes checkGradients', () => {
    const arb = broadcastShapesArb(2, { maxDim: 3, maxRank: 3, maxSize: 12 }).chain(({ shapes }) =>
      fc.tuple(domA(shapes[0]!), domB(shapes[1]!)),
    );
    fc.assert(
      fc.property(arb, ([a, b]) => {
        expectGradientsOk(lib, [toTensor(a), toTensor(b)]);
      }),
      params(100),
    );
  });
});

describe('numbers as operands', () => {
  it('a JS number broadcasts as a scalar of the tensor dtype, on either side', () => {
    fc.assert(
      fc.property(O.arrArb({ minDim: 0 }), fc.double({ min: -4, max: 4, noNaN: true }).map(Math.fround), (x, c) => {
        for (const dtype of ['float32', 'float64'] as const) {
          const t = toTensor(x, dtype);
          const right = mul(t, c),
            left = sub(c, t);
          expect(right.dtype).toBe(dtype);
          expect(left.dtype).toBe(dtype);
          expectClose(
            right,
            O.map1(x, (v) => v * c),
            F32,
            'mul(x, c)',
          );
          expectClose(
            left,
            O.map1(x, (v) => c - v),
            F32,
            'sub(c, x)',
          );
        }
      }),
      params(150),
    );
  });

  it('int32 arithmetic is exact and stays int32', () => {
    const ints = (s: number[]) =>
      fc
        .array(fc.integer({ min: -1000, max: 1000 }), { minLength: O.numel(s), maxLength: O.numel(s) })
        .map((d) => O.arr(s, d));
    fc.assert(
      fc.property(
        broadcastShapesArb(2, { minDim: 0 }).chain(({ shapes }) => fc.tuple(ints(shapes[0]!), ints(shapes[1]!))),
        ([a, b]) => {
          const ta = toTensor(a, 'int32'),
            tb = toTensor(b, 'int32');
          for (const [f, r] of [
            [add, (u: number, v: number) => u + v],
            [sub, (u: number, v: number) => u - v],
            [mul, (u: number, v: number) => u * v],
            [maximum, Math.max],
            [minimum, Math.min],
          ] as const) {
            const y = f(ta, tb);
            expect(y.dtype).toBe('int32');
            expectExact(y, O.map2(a, b, r));
          }
          expectExact(
            neg(ta),
            O.map1(a, (v) => -v + 0),
          );
          expectExact(abs(ta), O.map1(a, Math.abs));
          expectExact(
            add(ta, 7),
            O.map1(a, (v) => v + 7),
          );
        },
      ),
      params(150),
    );
  });
});

describe('where', () => {
  const arb = broadcastShapesArb(3, { minDim: 0, maxDim: 3, maxSize: 36 }).chain(({ shapes }) =>
    fc.tuple(
      fc
        .array(fc.boolean(), { minLength: O.numel(shapes[0]!), maxLength: O.numel(shapes[0]!) })
        .map((bs) => O.arr(shapes[0]!, bs.map(Number))),
      any3(shapes[1]!),
      any3(shapes[2]!),
    ),
  );

  it('forward with three-way broadcasting matches the oracle', () => {
    fc.assert(
      fc.property(arb, ([c, a, b]) => {
        expectExact(where(toTensor(c, 'bool'), toTensor(a), toTensor(b)), O.where(c, a, b));
      }),
      params(100),
    );
  });

  it('gradient reaches a where cond holds and b elsewhere (checkGradients)', () => {
    const small = broadcastShapesArb(3, { maxDim: 3, maxSize: 12 }).chain(({ shapes }) =>
      fc.tuple(
        fc
          .array(fc.boolean(), { minLength: O.numel(shapes[0]!), maxLength: O.numel(shapes[0]!) })
          .map((bs) => O.arr(shapes[0]!, bs.map(Number))),
        any3(shapes[1]!),
        any3(shapes[2]!),
      ),
    );
    fc.assert(
      fc.property(small, ([c, a, b]) => {
        const cond = toTensor(c, 'bool');
        expectGradientsOk((x, y) => where(cond, x, y), [toTensor(a), toTensor(b)]);
      }),
      params(150),
    );
  });
});

describe('comparisons and logic (bool results, no gradient)', () => {
  const cmpArb = broadcastShapesArb(2, { minDim: 0, maxSize: 36 }).chain(({ shapes }) =>
    fc.tuple(...shapes.map((s) => lattice(0)(s).map((a) => O.map1(a, (v) => v / 2)))),
  );

  it('equal/notEqual/less/lessEqual/greater/greaterEqual match the oracle, ties included', () => {
    const ops = [
      [equal, (u: number, v: number) => u === v],
      [notEqual, (u: number, v: number) => u !== v],
      [less, (u: number, v: number) => u < v],
      [lessEqual, (u: number, v: number) => u <= v],
      [greater, (u: number, v: number) => u > v],
      [greaterEqual, (u: number, v: number) => u >= v],
    ] as const;
    fc.assert(
      fc.property(cmpArb, ([a, b]) => {
        for (const [f, r] of ops) {
          const want = O.map2(a!, b!, (u, v) => (r(u, v) ? 1 : 0));
          for (const dtype of ['float32', 'float64', 'int32'] as const) {
            const y = f(
              toTensor(dtype === 'int32' ? O.map1(a!, (v) => Math.round(v * 2)) : a!, dtype),
              toTensor(dtype === 'int32' ? O.map1(b!, (v) => Math.round(v * 2)) : b!, dtype),
            );
            expect(y.dtype).toBe('bool');
            expectExact(y, want);
          }
          expectExact(
            f(toTensor(a!), 0.5),
            O.map1(a!, (u) => (r(u, 0.5) ? 1 : 0)),
          );
        }
      }),
      params(150),
    );
  });

  it('comparisons on NaN follow IEEE (NaN equals nothing, notEqual everything)', () => {
    const x = tensor([NaN, 1, NaN]);
    const y = tensor([NaN, NaN, 2]);
    expect(equal(x, y).toArray()).toEqual([false, false, false]);
    expect(notEqual(x, y).toArray()).toEqual([true, true, true]);
    expect(less(x, y).toArray()).toEqual([false, false, false]);
    expect(greaterEqual(x, y).toArray()).toEqual([false, false, false]);
  });

  it('logicalAnd/Or/Not with broadcasting', () => {
    const boolArb = (s: number[]) =>
      fc.array(fc.boolean(), { minLength: O.numel(s), maxLength: O.numel(s) }).map((d) => O.arr(s, d.map(Number)));
    fc.assert(
      fc.property(
        broadcastShapesArb(2, { minDim: 0, maxSize: 36 }).chain(({ shapes }) =>
          fc.tuple(boolArb(shapes[0]!), boolArb(shapes[1]!)),
        ),
        ([a, b]) => {
          const ta = toTensor(a, 'bool'),
            tb = toTensor(b, 'bool');
          expectExact(
            logicalAnd(ta, tb),
            O.map2(a, b, (u, v) => (u && v ? 1 : 0)),
          );
          expectExact(
            logicalOr(ta, tb),
            O.map2(a, b, (u, v) => (u || v ? 1 : 0)),
          );
          const n = logicalNot(ta);
          expect(n.dtype).toBe('bool');
          expectExact(
            n,
            O.map1(a, (u) => (u ? 0 : 1)),
          );
        },
      ),
      params(150),
    );
  });

  it('isFinite marks NaN and ±Infinity, for every dtype', () => {
    const special = fc.constantFrom(NaN, Infinity, -Infinity, 0, -1.5, 3.25e38, 1e-45);
    fc.assert(
      fc.property(
        shapeArb({ minDim: 0 }).chain((s) =>
          fc.array(special, { minLength: O.numel(s), maxLength: O.numel(s) }).map((d) => O.arr(s, d)),
        ),
        (x) => {
          for (const dtype of ['float32', 'float64'] as const) {
            const y = isFinite(toTensor(x, dtype));
            expect(y.dtype).toBe('bool');
            expectExact(
              y,
              O.map1(x, (v) => (Number.isFinite(v) ? 1 : 0)),
            );
          }
        },
      ),
      params(100),
    );
    expect(isFinite(tensor([1, -2], 'int32')).toArray()).toEqual([true, true]);
    expect(isFinite(tensor([true, false])).toArray()).toEqual([true, true]);
  });

  it('comparison and logic outputs carry no gradient even from a tracked input', () => {
    const { vjp: pull } = vjp((x: Tensor) => add(x, cast(greater(x, 0), 'float32')), tensor([-1, 2]));
    expect((pull(tensor([1, 1]))[0] as Tensor).toArray()).toEqual([1, 1]);
  });
});

describe('cast', () => {
  it('float -> int32 truncates toward zero; -> bool is != 0; back to float is exact', () => {
    fc.assert(
      fc.property(O.arrArb({ minDim: 0 }, { min: -1e6, max: 1e6 }), (x) => {
        for (const dtype of ['float32', 'float64'] as const) {
          const t = toTensor(x, dtype);
          const i = cast(t, 'int32');
          expect(i.dtype).toBe('int32');
          expectExact(
            i,
            O.map1(x, (v) => Math.trunc(v) + 0),
          );
          const b = cast(t, 'bool');
          expect(b.dtype).toBe('bool');
          expectExact(
            b,
            O.map1(x, (v) => (v !== 0 ? 1 : 0)),
          );
          expectExact(
            cast(i, 'float64'),
            O.map1(x, (v) => Math.trunc(v) + 0),
          );
          expectExact(
            cast(b, 'int32'),
            O.map1(x, (v) => (v !== 0 ? 1 : 0)),
          );
        }
        const d = cast(toTensor(x, 'float32'), 'float64');
        expect(d.dtype).toBe('float64');
        expectExact(d, x); // x is float32-exact
        expectExact(cast(toTensor(x, 'float64'), 'float32'), O.f32(x));
      }),
      params(150),
    );
    expect(cast(tensor([2147483647.9, -2147483648.9], 'float64'), 'int32').toArray()).toEqual([
      2147483647, -2147483648,
    ]);
  });

  it('float32 -> float64 gradient passes checkGradients in native precision', () => {
    fc.assert(
      fc.property(O.arrArb({ maxSize: 12 }), (x) => {
        // native: the autodiff runs on the float32 input, so the cast node is really differentiated
        expectGradientsOk((t) => mul(cast(t, 'float64'), cast(t, 'float64')), [toTensor(x, 'float32')], {
          precision: 'native',
        });
      }),
      params(150),
    );
  });

  it('the VJP of a cast is the cotangent cast back (float32 <-> float64, both ways)', () => {
    fc.assert(
      fc.property(O.arrArb({ minRank: 1 }), O.arrArb({ minRank: 1 }), (x, v) => {
        const ct = O.arr(
          x.shape,
          x.data.map((_, i) => v.data[i % Math.max(1, v.data.length)] ?? 1),
        );
        const up = vjp((t: Tensor) => cast(t, 'float64'), toTensor(x, 'float32'));
        const gUp = up.vjp(toTensor(ct, 'float64'))[0] as Tensor;
        expect(gUp.dtype).toBe('float32');
        expectExact(gUp, O.f32(ct));
        const down = vjp((t: Tensor) => cast(t, 'float32'), toTensor(x, 'float64'));
        expect(down.value.dtype).toBe('float32');
        const gDown = down.vjp(toTensor(ct, 'float32'))[0] as Tensor;
        expect(gDown.dtype).toBe('float64');
        expectExact(gDown, O.f32(ct));
      }),
      params(100),
    );
  });

  it('casts to int32/bool carry no gradient', () => {
    const { vjp: pull } = vjp((x: Tensor) => add(x, cast(cast(x, 'int32'), 'float32')), tensor([1.5, -2.5]));
    expect(fromTensor(pull(tensor([1, 1]))[0] as Tensor).data).toEqual([1, 1]);
  });
});
