/**
 * Engine invariants of grad / valueAndGrad / vjp / stopGradient: fan-out
 * accumulation, idempotence, deep chains, constants, stopGradient, linearity
 * of the VJP, non-float outputs, trees of parameters, argnums, repeated vjp.
 *
 * Closed-form gradients are compared in float64 at 1e-12 relative (the only
 * error is rounding in a handful of ops); idempotence is bit-exact.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  add,
  argmax,
  cast,
  exp,
  gather,
  grad,
  greater,
  log,
  logSumExp,
  matmul,
  mul,
  sigmoid,
  softmax,
  stopGradient,
  sub,
  sum,
  tanh,
  tensor,
  valueAndGrad,
  vjp,
  where,
  zeros,
  type NonFloatTensor,
  type Tensor,
} from '../../src/index.js';
import { params } from '../util/props.js';
import * as O from '../util/oracle.js';
import { arrOfShape, expectClose, expectExact, fromTensor, shapeArb, toTensor } from '../util/oracle.js';

const C64 = { rtol: 1e-12, atol: 1e-12 };
const vec = (o: O.ValueOpts = {}) => shapeArb({ minRank: 1, maxRank: 3, maxSize: 16 }).chain((s) => arrOfShape(s, o));

describe('fan-out accumulates', () => {
  it('x used several times: d/dx Σ(x·x + x + exp(x)·x + tanh(x)) = 2x + 1 + eˣ(1+x) + 1 - tanh²x', () => {
    fc.assert(
      fc.property(vec({ min: -2, max: 2 }), (x) => {
        const f = (t: Tensor) => sum(add(add(add(mul(t, t), t), mul(exp(t), t)), tanh(t)));
        const g = grad(f)(toTensor(x, 'float64'));
        expectClose(
          g,
          O.map1(x, (v) => 2 * v + 1 + Math.exp(v) * (1 + v) + 1 - Math.tanh(v) ** 2),
          C64,
          'fan-out',
        );
      }),
      params(150),
    );
  });

  it('the same tensor in both operands and through two branches of a diamond', () => {
    const g = grad((t: Tensor) => {
      const a = mul(t, 3);
      const b = mul(a, a); // 9t²
      const c = add(a, b); // 3t + 9t²
      return sum(mul(c, t)); // 3t² + 9t³
    })(tensor([1, -2], 'float64'));
    expect(g.toArray()).toEqual([6 + 27, -12 + 108]);
  });
});

describe('idempotence and purity', () => {
  it('grad called twice gives bit-identical results, and the inputs are unchanged', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4 }).chain((n) => fc.tuple(arrOfShape([n, 3]), arrOfShape([3, 2]))),
        ([a, b]) => {
          const f = (x: Tensor, w: Tensor) => logSumExp(softmax(matmul(x, w)));
          const x = toTensor(a),
            w = toTensor(b);
          const g = grad(f, { argnums: [0, 1] });
          const [g1, h1] = g(x, w) as Tensor[];
          const [g2, h2] = g(x, w) as Tensor[];
          expect(g2!.dataSync()).toEqual(g1!.dataSync());
          expect(h2!.dataSync()).toEqual(h1!.dataSync());
          const vg = valueAndGrad(f)(x, w);
          expect(vg.grad.dataSync()).toEqual(g1!.dataSync());
          expectExact(x, a);
          expectExact(w, b);
        },
      ),
      params(100),
    );
  });
});

describe('deep graphs', () => {
  it('a chain of 100 000 ops runs without stack overflow and differentiates exactly', () => {
    const n = 100_000;
    const f = (t: Tensor) => {
      let y = t;
      for (let i = 0; i < n; i++) y = i % 2 === 0 ? add(y, 1) : mul(y, 1);
      return sum(y);
    };
    const { value, grad: g } = valueAndGrad(f)(tensor([0.5, -1]));
    expect(value.item()).toBe(0.5 - 1 + n);
    expect(g.toArray()).toEqual([1, 1]);
  });
});

describe('constants', () => {
  it('closed-over tensors are constants: the gradient of Σ x·w w.r.t. x is w, and w gets none', () => {
    fc.assert(
      fc.property(
        vec().chain((x) => fc.tuple(fc.constant(x), arrOfShape(x.shape))),
        ([x, w]) => {
          const wt = toTensor(w, 'float64');
          const g = grad((t: Tensor) => sum(mul(t, wt)))(toTensor(x, 'float64'));
          expectExact(g, w);
          // vjp over x only: one gradient, for x
          const { vjp: pull } = vjp((t: Tensor) => mul(t, wt), toTensor(x, 'float64'));
          expect(pull(toTensor(O.filled(x.shape, 1), 'float64'))).toHaveLength(1);
        },
      ),
      params(100),
    );
  });

  it('an argument that does not influence the output gets zeros of its shape and dtype', () => {
    const [gx, gy, gz] = grad(
      (x: Tensor, _y: Tensor, z: Tensor) => add(sum(x), sum(cast(cast(z, 'int32'), 'float32'))),
      { argnums: [0, 1, 2] },
    )(tensor([1, 2]), zeros([2, 3], 'float64'), tensor([1.5])) as Tensor[];
    expect(gx!.toArray()).toEqual([1, 1]);
    expect(gy!.shape).toEqual([2, 3]);
    expect(gy!.dtype).toBe('float64');
    expect(fromTensor(gy!).data).toEqual([0, 0, 0, 0, 0, 0]);
    expect(gz!.toArray()).toEqual([0]); // only reached through a cast to int32
    // a function that ignores its argument entirely
    const g0 = grad((_t: Tensor) => sum(tensor([1, 2])))(tensor([[3]]));
    expect(g0.toArray()).toEqual([[0]]);
  });

  it('the same tensor passed as a differentiated and as a closed-over value: only the argument is tracked', () => {
    const x = tensor([2, 3], 'float64');
    const g = grad((t: Tensor) => sum(mul(t, x)))(x);
    expect(g.toArray()).toEqual([2, 3]);
  });
});

describe('stopGradient', () => {
  it('keeps the value, blocks the gradient; the gradient of Σ x·stopGradient(x) is x', () => {
    fc.assert(
      fc.property(vec(), (x) => {
        const t = toTensor(x, 'float64');
        expectExact(stopGradient(t), x);
        expectExact(grad((u: Tensor) => sum(mul(u, stopGradient(u))))(t), x);
        expectExact(grad((u: Tensor) => sum(exp(stopGradient(u))))(t), O.filled(x.shape, 0));
        // inside a larger graph: d/dx Σ (x - sg(x)) ⊙ exp(x)... at the point the first factor is 0, so grad = exp(x)·1
        const g = grad((u: Tensor) => sum(mul(sub(u, stopGradient(u)), exp(u))))(t);
        expectClose(g, O.map1(x, Math.exp), C64, 'straight-through');
      }),
      params(100),
    );
  });
});

describe('the VJP', () => {
  it('is linear in the cotangent: vjp(a·u + b·w) = a·vjp(u) + b·vjp(w)', () => {
    const arb = fc.integer({ min: 1, max: 3 }).chain((m) =>
      fc.record({
        x: arrOfShape([m, 3]),
        w: arrOfShape([3, 4]),
        u: arrOfShape([m, 4]),
        v: arrOfShape([m, 4]),
        a: fc.double({ min: -2, max: 2, noNaN: true }),
        b: fc.double({ min: -2, max: 2, noNaN: true }),
      }),
    );
    fc.assert(
      fc.property(arb, ({ x, w, u, v, a, b }) => {
        const f = (p: Tensor, q: Tensor) => sigmoid(mul(softmax(matmul(p, q)), log(add(exp(matmul(p, q)), 1))));
        const { vjp: pull } = vjp(f, toTensor(x, 'float64'), toTensor(w, 'float64'));
        const combo = O.arr(
          u.shape,
          u.data.map((ui, i) => a * ui + b * v.data[i]!),
        );
        const lhs = pull(toTensor(combo, 'float64')) as Tensor[];
        const gu = pull(toTensor(u, 'float64')) as Tensor[];
        const gv = pull(toTensor(v, 'float64')) as Tensor[];
        lhs.forEach((l, i) => {
          const ru = fromTensor(gu[i]!),
            rv = fromTensor(gv[i]!);
          expectClose(
            l,
            O.arr(
              ru.shape,
              ru.data.map((p, k) => a * p + b * rv.data[k]!),
            ),
            { rtol: 1e-12, atol: 1e-13 },
            `linearity input ${i}`,
          );
        });
      }),
      params(150),
    );
  });

  it('can be called many times, with the same results each time', () => {
    const { value, vjp: pull } = vjp((t: Tensor) => mul(exp(t), t), tensor([0.5, 1, -1], 'float64'));
    expect(value.dtype).toBe('float64');
    const first = (pull(tensor([1, 2, 3], 'float64'))[0] as Tensor).dataSync();
    for (let i = 0; i < 50; i++) {
      const ct = tensor([i, -i, 1], 'float64');
      const g = pull(ct)[0] as Tensor;
      expect(fromTensor(g).data).toEqual([0.5, 1, -1].map((x, k) => [i, -i, 1][k]! * Math.exp(x) * (1 + x)));
    }
    expect((pull(tensor([1, 2, 3], 'float64'))[0] as Tensor).dataSync()).toEqual(first);
  });

  it('a float32 cotangent for a float64 output is cast; gradients keep each input dtype', () => {
    const { vjp: pull } = vjp((a: Tensor, b: Tensor) => mul(a, b), tensor([1, 2]), tensor([3, 4], 'float64'));
    const [ga, gb] = pull(tensor([1, 1])) as Tensor[];
    expect(ga!.dtype).toBe('float32');
    expect(gb!.dtype).toBe('float64');
    expect(ga!.toArray()).toEqual([3, 4]);
    expect(gb!.toArray()).toEqual([1, 2]);
  });
});

describe('non-float values carry no gradient', () => {
  it('int32 and bool outputs of tracked inputs are constants; int leaves get null', () => {
    const x = tensor([0.5, 2, -1]);
    const g = grad((t: Tensor) => {
      const i = argmax(t); // int32, no gradient
      const mask = greater(t, 0); // bool, no gradient
      const picked = gather(t, i.rank === 0 ? tensor([i.item() as number], 'int32') : i);
      return add(sum(picked), sum(where(mask, t, 0)));
    })(x);
    expect(g.toArray()).toEqual([1, 2, 0]);
    // an index argument typed NonFloatTensor gets a gradient typed null
    const [gx, gi] = grad((t: Tensor, idx: NonFloatTensor) => sum(gather(t, idx)), { argnums: [0, 1] })(
      x,
      tensor([2, 2], 'int32') as NonFloatTensor,
    );
    expect(gx.toArray()).toEqual([0, 0, 2]);
    expect(gi).toBeNull();
    // the int32 result of a cast of a tracked float is a plain constant
    const { vjp: pull } = vjp((t: Tensor) => add(t, cast(cast(mul(t, 10), 'int32'), 'float32')), tensor([1.25]));
    expect((pull(tensor([1]))[0] as Tensor).toArray()).toEqual([1]);
  });
});

describe('valueAndGrad, trees and argnums', () => {
  it('hasAux passes aux through untouched and differentiates only the value', () => {
    const aux = { note: 'kept', count: 3 };
    const r = valueAndGrad((t: Tensor) => [sum(mul(t, t)), aux] as const, { hasAux: true })(tensor([1, -2], 'float64'));
    expect(r.aux).toBe(aux);
    expect(r.value.item()).toBe(5);
    expect(r.grad.toArray()).toEqual([2, -4]);
  });

  it('a record/array tree of parameters gets a gradient tree of the same structure (int leaves null)', () => {
    fc.assert(
      fc.property(arrOfShape([2, 3]), arrOfShape([3]), arrOfShape([2]), (w, b, v) => {
        const params0 = {
          dense: { w: toTensor(w, 'float64'), b: toTensor(b, 'float64') },
          extra: [toTensor(v, 'float64'), tensor([1], 'int32')],
        };
        const f = (p: typeof params0) =>
          add(sum(add(matmul(tensor([[1, 1]], 'float64'), p.dense.w), p.dense.b)), sum(mul(p.extra[0]!, p.extra[0]!)));
        const { value, grad: g } = valueAndGrad(f)(params0);
        expect(Object.keys(g).sort()).toEqual(['dense', 'extra']);
        expect(Object.keys(g.dense).sort()).toEqual(['b', 'w']);
        expect(Array.isArray(g.extra)).toBe(true);
        expect(g.extra).toHaveLength(2);
        expect(g.extra[1]).toBeNull();
        expectExact(g.dense.w, O.filled([2, 3], 1));
        expectExact(g.dense.b, O.filled([3], 1));
        expectClose(
          g.extra[0],
          O.map1(v, (x) => 2 * x),
          C64,
        );
        const want =
          w.data.reduce((s, x) => s + x, 0) + b.data.reduce((s, x) => s + x, 0) + v.data.reduce((s, x) => s + x * x, 0);
        expect(Math.abs((value.item() as number) - want)).toBeLessThan(1e-9);
      }),
      params(100),
    );
  });

  it('argnums arrays return gradients in the requested order; a number returns a single gradient', () => {
    const f = (a: Tensor, b: Tensor, c: Tensor) => sum(mul(mul(a, b), c));
    const a = tensor([2], 'float64'),
      b = tensor([3], 'float64'),
      c = tensor([5], 'float64');
    const [gc, ga] = grad(f, { argnums: [2, 0] })(a, b, c) as Tensor[];
    expect(gc!.toArray()).toEqual([6]);
    expect(ga!.toArray()).toEqual([15]);
    expect(grad(f, { argnums: 1 })(a, b, c).toArray()).toEqual([10]);
    expect(grad(f, { argnums: [1] })(a, b, c)).toHaveLength(1);
    const vg = valueAndGrad(f, { argnums: [0, 1, 2] })(a, b, c);
    expect(vg.value.item()).toBe(30);
    expect((vg.grad as Tensor[]).map((t) => t.item())).toEqual([15, 10, 6]);
  });
});
