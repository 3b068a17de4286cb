/**
 * Nested transforms. The engine is first order (its VJP rules run on
 * constants), so a second-order request must never come back as a wrong
 * number: grad of grad, an inner transform whose function closes over the
 * outer argument, an inner value depending on the outer argument, vjp inside
 * grad, and the async form all throw UnsupportedError naming the transform.
 * Nestings that only see constants are exact and keep working, and every
 * single-level use is unchanged.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  NegcacheError,
  UnsupportedError,
  add,
  exp,
  grad,
  mul,
  stopGradient,
  sum,
  tensor,
  valueAndGrad,
  valueAndGradAsync,
  vjp,
  type Tensor,
} from '../../src/index.js';
import { params } from '../util/props.js';
import * as O from '../util/oracle.js';
import { arrOfShape, expectClose, fromTensor, shapeArb, toTensor } from '../util/oracle.js';

const sq = (y: Tensor): Tensor => sum(mul(y, y));

/** Runs f and returns the error it throws (fails the test if it returns). */
function thrown(f: () => unknown): UnsupportedError {
  let result: unknown;
  try {
    result = f();
  } catch (e) {
    expect(e).toBeInstanceOf(UnsupportedError);
    expect(e).toBeInstanceOf(NegcacheError);
    return e as UnsupportedError;
  }
  throw new Error(`expected an UnsupportedError, got a result: ${String(result)}`);
}

describe('second-order requests throw instead of answering wrongly', () => {
  it('grad of a function that calls grad on the traced argument (the issue-17 example; true answer [2, 2])', () => {
    const e = thrown(() => grad((x: Tensor) => sum(grad(sq)(x)))(tensor([1, 1])));
    expect(e.op).toBe('grad');
    expect(e.message).toMatch(
      /^grad: argument 0 is being differentiated by an enclosing grad: gradients of gradients \(second-order differentiation\) are not supported/,
    );
    expect(e.message).toMatch(/stopGradient\(\)/);
  });

  it('every pairing of grad, valueAndGrad and vjp on the traced argument', () => {
    const x0 = tensor([0.5, -1]);
    const inner: Record<string, (x: Tensor) => Tensor> = {
      grad: (x) => grad(sq)(x),
      valueAndGrad: (x) => valueAndGrad(sq)(x).grad,
      valueAndGradValue: (x) => valueAndGrad(sq)(x).value,
      vjp: (x) => vjp((y: Tensor) => mul(y, y), x).vjp(tensor([1, 1]))[0],
      vjpValue: (x) => vjp((y: Tensor) => mul(y, y), x).value,
    };
    const outer: Record<string, (f: (x: Tensor) => Tensor) => unknown> = {
      grad: (f) => grad((x: Tensor) => sum(f(x)))(x0),
      valueAndGrad: (f) => valueAndGrad((x: Tensor) => sum(f(x)))(x0),
      vjp: (f) => vjp((x: Tensor) => f(x), x0),
    };
    for (const [o, run] of Object.entries(outer))
      for (const [i, f] of Object.entries(inner)) {
        const e = thrown(() => run(f));
        expect(e.op, `${o} of ${i}`).toBe(i.startsWith('vjp') ? 'vjp' : i.replace('Value', ''));
        expect(e.message, `${o} of ${i}`).toContain(`enclosing ${o}`);
      }
  });

  it('an inner grad whose function closes over the outer argument (true gradient: d/dx Σ x = 1)', () => {
    const e = thrown(() =>
      grad((x: Tensor) => sum(grad((y: Tensor) => sum(mul(y, x)))(tensor([1, 2]))))(tensor([3, 4])),
    );
    expect(e.message).toMatch(
      /^grad: mul combines a value traced by this grad with a value traced by an enclosing grad/,
    );
  });

  it('an inner function whose value depends on the outer argument only (no mixing inside it)', () => {
    const e = thrown(() =>
      grad((x: Tensor) => valueAndGrad((_y: Tensor) => sum(exp(x)))(tensor([1])).value)(tensor([3, 4])),
    );
    expect(e.op).toBe('valueAndGrad');
    expect(e.message).toMatch(/f's value depends on a tensor that an enclosing grad is differentiating/);
  });

  it('vjp inside grad: differentiating through the pullback with respect to the cotangent', () => {
    const { vjp: pull } = vjp((t: Tensor) => mul(t, 2), tensor([1, 2]));
    const e = thrown(() => grad((c: Tensor) => sum(pull(c)[0]))(tensor([1, 1])));
    expect(e.op).toBe('vjp');
    expect(e.message).toMatch(/^vjp: the cotangent is being differentiated by an enclosing grad/);
  });

  it('a closure-captured traced tensor passed into an inner grad through a tree', () => {
    thrown(() => grad((w: Tensor) => sum(grad((p: { a: Tensor }) => sq(p.a))({ a: mul(w, 2) }).a))(tensor([1])));
  });

  it('valueAndGradAsync nested in either direction', async () => {
    const x0 = tensor([1, 2]);
    await expect(
      valueAndGradAsync(async (x: Tensor) => sum((await valueAndGradAsync(async (y: Tensor) => sq(y))(x)).grad))(x0),
    ).rejects.toThrow(/^valueAndGradAsync: argument 0 is being differentiated by an enclosing valueAndGradAsync/);
    await expect(
      valueAndGradAsync(async (x: Tensor) => sum(grad((y: Tensor) => sum(mul(y, x)))(tensor([1, 1]))))(x0),
    ).rejects.toBeInstanceOf(UnsupportedError);
  });
});

describe('nestings that only see constants, and single-level uses, keep working', () => {
  it('an inner grad at a constant point, used as a weight, is exact: d/dx Σ x·(2c) = 2c', () => {
    fc.assert(
      fc.property(
        shapeArb({ minRank: 1, maxSize: 12 }).chain((s) => fc.tuple(arrOfShape(s), arrOfShape(s))),
        ([xa, ca]) => {
          const c = toTensor(ca, 'float64');
          const g = grad((x: Tensor) => sum(mul(x, grad(sq)(c))))(toTensor(xa, 'float64'));
          expectClose(
            g,
            O.map1(ca, (v) => 2 * v),
            { rtol: 0, atol: 0 },
            'weight',
          );
        },
      ),
      params(100),
    );
  });

  it('stopGradient makes the outer value a constant for the inner transform on purpose', () => {
    // f(x) = Σ x·∂/∂y Σ y·sg(x) = Σ x·sg(x): gradient sg(x) = x
    const g = grad((x: Tensor) => sum(mul(x, grad((y: Tensor) => sum(mul(y, stopGradient(x))))(tensor([1, 2])))))(
      tensor([3, 4]),
    );
    expect(g.toArray()).toEqual([3, 4]);
  });

  it('a tensor that escaped a finished transform is a constant afterwards, also inside a new one', () => {
    let leaked: Tensor | null = null;
    grad((x: Tensor) => {
      leaked = mul(x, 3);
      return sum(leaked);
    })(tensor([1, 2]));
    const g = grad((x: Tensor) => sum(mul(x, leaked!)))(tensor([5, 7]));
    expect(g.toArray()).toEqual([3, 6]);
    expect(grad(sq)(leaked!).toArray()).toEqual([6, 12]);
  });

  it('a transform whose function threw closes its trace: the next calls are unaffected', () => {
    expect(() =>
      grad((x: Tensor) => {
        void add(x, 1);
        throw new Error('boom');
      })(tensor([1])),
    ).toThrow('boom');
    expect(grad((x: Tensor) => sum(grad(sq)(tensor([2, 3]))))(tensor([1, 1])).toArray()).toEqual([0, 0]);
    expect(grad(sq)(tensor([2, 3])).toArray()).toEqual([4, 6]);
  });

  it('independent async transforms interleaved at await points give their own exact gradients', async () => {
    const tick = () => new Promise<void>((r) => setTimeout(r, 0));
    const f = async (x: Tensor) => {
      const a = mul(x, x);
      await tick();
      return sum(mul(a, x)); // Σ x³
    };
    const xs = [tensor([1, 2], 'float64'), tensor([-3, 0.5], 'float64'), tensor([4, 4], 'float64')];
    const results = await Promise.all(xs.map((x) => valueAndGradAsync(f)(x)));
    results.forEach((r, i) => {
      expect(fromTensor(r.grad).data).toEqual(fromTensor(xs[i]!).data.map((v) => 3 * v * v));
    });
  });

  it('the same closed-over constant used at two nesting levels stays a constant', () => {
    const w = tensor([2, 3]);
    const g = grad((x: Tensor) => sum(mul(mul(x, w), grad((y: Tensor) => sum(mul(y, w)))(w))))(tensor([1, 1]));
    expect(g.toArray()).toEqual([4, 9]);
  });
});
