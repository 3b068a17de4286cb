/**
 * checkGradients must FAIL on wrong gradient rules (otherwise every gradient
 * property in test/ops proves nothing) and point at the bad Jacobian entry.
 * Deliberately broken primitives are bound through the engine exactly like
 * the real ones.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bind, type Primitive } from '../../src/autograd/engine.js';
import { checkGradients, exp, gather, mul, sum, tensor, type Tensor } from '../../src/index.js';
import { unsafeData, wrap } from '../../src/tensor/tensor.js';
import { params } from '../util/props.js';
import { arrOfShape, shapeArb, toTensor } from '../util/oracle.js';

/** y = x ⊙ c elementwise with a chosen (possibly wrong) VJP rule. */
function scaleWith(c: number[], rule: (ct: Float64Array | Float32Array) => number[]): Primitive<null> {
  return {
    name: 'testScale',
    arity: 1,
    forward: ([x]) => {
      const d = unsafeData(x!);
      const out = new Float64Array(d.length);
      for (let i = 0; i < d.length; i++) out[i] = d[i]! * c[i]!;
      return wrap(out, x!.shape, 'float64');
    },
    vjp: ({ g }) => [() => wrap(Float64Array.from(rule(unsafeData(g) as Float64Array)), g.shape, 'float64')],
  };
}

describe('checkGradients', () => {
  const c = [1, 2, 3, 4, 5, 6];
  const x = tensor(
    [
      [0.5, -1, 2],
      [1, 0.25, -3],
    ],
    'float64',
  );

  it('passes a correct rule, with adjoint + full-Jacobian checks counted', () => {
    const good = scaleWith(c, (ct) => Array.from(ct, (v, i) => v * c[i]!));
    const r = checkGradients((t) => bind(good, [t], null), [x]);
    expect(r.ok, r.summary).toBe(true);
    expect(r.checks).toBe(3 + 6 * 6); // 3 adjoint directions + 6×6 Jacobian entries
    expect(r.maxError).toBeLessThan(1e-9);
    expect(r.summary).toMatch(/^gradients match: 39 checks/);
  });

  it('fails a rule with one wrong entry and localises it in the Jacobian', () => {
    const bad = scaleWith(c, (ct) => Array.from(ct, (v, i) => v * (i === 4 ? c[i]! * 1.01 : c[i]!)));
    const r = checkGradients((t) => bind(bad, [t], null), [x]);
    expect(r.ok).toBe(false);
    expect(r.summary).toMatch(/^GRADIENT MISMATCH/);
    const worstJ = r.worst.find((e) => e.kind === 'jacobian')!;
    expect(worstJ.input).toBe(0);
    expect(worstJ.element).toBe(4);
    expect(worstJ.outputElement).toBe(4);
    expect(worstJ.numeric).toBeCloseTo(5, 6);
    expect(worstJ.autodiff).toBeCloseTo(5.05, 6);
  });

  it('fails a rule that routes the cotangent to the wrong elements (transposition bug), on random shapes', () => {
    fc.assert(
      fc.property(
        shapeArb({ minRank: 1, maxSize: 12 })
          .filter((s) => s.reduce((p, d) => p * d, 1) >= 2)
          .chain((s) => arrOfShape(s)),
        (a) => {
          const n = a.data.length;
          const cs = Array.from({ length: n }, (_, i) => i + 1);
          const swapped = scaleWith(cs, (ct) => Array.from(ct, (_, i) => ct[n - 1 - i]! * cs[n - 1 - i]!));
          const r = checkGradients((t) => bind(swapped, [t], null), [toTensor(a, 'float64')]);
          expect(r.ok).toBe(false);
        },
      ),
      params(100),
    );
  });

  it('the adjoint check alone catches an error when the Jacobian check is disabled', () => {
    const bad = scaleWith(c, (ct) => Array.from(ct, (v, i) => v * c[i]! * 0.999));
    const r = checkGradients((t) => bind(bad, [t], null), [x], { maxJacobianEntries: 0 });
    expect(r.ok).toBe(false);
    expect(r.checks).toBe(3);
    expect(r.worst.every((e) => e.kind === 'adjoint')).toBe(true);
  });

  it('skips int32 inputs and checks a closure over float32 constants in float64', () => {
    const w = tensor([1.5, -2, 0.25]);
    const r = checkGradients(
      (t, idx) => mul(exp(gather(t, idx)), w),
      [tensor([0.1, 0.2, 0.3, 0.4]), tensor([3, 0, 3], 'int32')],
    );
    expect(r.ok, r.summary).toBe(true);
    expect(r.checks).toBe(3 + 4 * 3);
  });

  it('native precision checks the float32 autodiff at a looser tolerance', () => {
    const r = checkGradients((t: Tensor) => sum(mul(exp(t), t)), [tensor([0.5, -1, 2])], { precision: 'native' });
    expect(r.tol).toBe(2e-3);
    expect(r.ok, r.summary).toBe(true);
  });
});
