/**
 * The softmax baselines (src/losses/softmax.ts) against a float64 oracle:
 * values (float32 tensors, tolerance 2e-5 relative to max(1, |value|): the
 * scores are float32 products rounded once per op) and gradients (float64
 * inputs, checkGradients at 1e-6), over random shapes, scales, targets and
 * exclusion masks. A closed form pins the in-batch loss on a 2 × 2 example.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ShapeError, checkGradients, tensor, type Tensor } from '../../src/index.js';
import { inBatchSoftmaxLoss, softmaxRetrievalLoss } from '../../src/losses/softmax.js';
import { params } from '../util/props.js';

/** float64 oracle: per-query -log softmax(scale·q·cᵀ with excluded at -∞)[target]. */
function oracle(q: number[][], c: number[][], targets: number[], scale: number, excluded?: boolean[][]): number[] {
  return q.map((qi, i) => {
    const s = c.map((cj, j) => (excluded?.[i]?.[j] ? -Infinity : scale * qi.reduce((a, v, k) => a + v * cj[k]!, 0)));
    const m = Math.max(...s);
    const lse = m + Math.log(s.reduce((a, v) => a + Math.exp(v - m), 0));
    return lse - s[targets[i]!]!;
  });
}

const caseArb = fc
  .record({ b: fc.integer({ min: 1, max: 5 }), n: fc.integer({ min: 1, max: 7 }), d: fc.integer({ min: 1, max: 4 }) })
  .chain(({ b, n, d }) =>
    fc.record({
      q: fc.array(fc.array(fc.double({ min: -1, max: 1, noNaN: true }), { minLength: d, maxLength: d }), {
        minLength: b,
        maxLength: b,
      }),
      c: fc.array(fc.array(fc.double({ min: -1, max: 1, noNaN: true }), { minLength: d, maxLength: d }), {
        minLength: n,
        maxLength: n,
      }),
      targets: fc.array(fc.integer({ min: 0, max: n - 1 }), { minLength: b, maxLength: b }),
      mask: fc.array(fc.array(fc.boolean(), { minLength: n, maxLength: n }), { minLength: b, maxLength: b }),
      useMask: fc.boolean(),
      scale: fc.double({ min: 0.5, max: 20, noNaN: true }),
    }),
  )
  .map((x) => ({
    ...x,
    // the target itself is never excluded
    mask: x.mask.map((row, i) => row.map((v, j) => v && j !== x.targets[i])),
  }));

describe('softmaxRetrievalLoss', () => {
  it('equals the float64 oracle (per query and mean), with and without exclusions', () => {
    fc.assert(
      fc.property(caseArb, ({ q, c, targets, mask, useMask, scale }) => {
        const excluded = useMask ? tensor(mask) : undefined;
        const opts = { scale, ...(excluded ? { excluded } : {}) };
        const want = oracle(q, c, targets, scale, useMask ? mask : undefined);
        const per = softmaxRetrievalLoss(tensor(q), tensor(c), tensor(targets, 'int32'), { ...opts, reducer: 'none' });
        const got = Array.from(per.toArray() as number[]);
        got.forEach((v, i) =>
          expect(Math.abs(v - want[i]!)).toBeLessThanOrEqual(2e-5 * Math.max(1, Math.abs(want[i]!))),
        );
        const mean = softmaxRetrievalLoss(tensor(q), tensor(c), tensor(targets, 'int32'), opts).item() as number;
        const wantMean = want.reduce((a, v) => a + v, 0) / want.length;
        expect(Math.abs(mean - wantMean)).toBeLessThanOrEqual(2e-5 * Math.max(1, Math.abs(wantMean)));
      }),
      params(150),
    );
  });

  it('has the gradients of its float64 definition, for queries and candidates', () => {
    fc.assert(
      fc.property(caseArb, ({ q, c, targets, mask, useMask, scale }) => {
        const t = tensor(targets, 'int32');
        const excluded = useMask ? tensor(mask) : undefined;
        const f = (qq: Tensor, cc: Tensor): Tensor =>
          softmaxRetrievalLoss(qq, cc, t, { scale, ...(excluded ? { excluded } : {}) });
        const report = checkGradients(f, [tensor(q, 'float64'), tensor(c, 'float64')]);
        expect(report.ok, report.summary).toBe(true);
      }),
      params(60),
    );
  });

  it('rejects bad targets, masks that hide the target, and mismatched shapes', () => {
    const q = tensor([[1, 0]]),
      c = tensor([
        [1, 0],
        [0, 1],
      ]);
    expect(() => softmaxRetrievalLoss(q, c, tensor([2], 'int32'), { scale: 1 })).toThrow(
      /targets\[0\] is 2; need 0 <= target < 2/,
    );
    expect(() =>
      softmaxRetrievalLoss(q, c, tensor([0], 'int32'), { scale: 1, excluded: tensor([[true, false]]) }),
    ).toThrow(/masks query 0's own target/);
    expect(() => softmaxRetrievalLoss(q, tensor([[1, 0, 0]]), tensor([0], 'int32'), { scale: 1 })).toThrow(ShapeError);
    expect(() => softmaxRetrievalLoss(q, c, tensor([0], 'int32'), { scale: NaN })).toThrow(
      /scale must be a finite number/,
    );
  });
});

describe('inBatchSoftmaxLoss', () => {
  it('pins the closed form: q = [[1,0],[0,1]], p = [[1,0],[1,1]], scale 2', () => {
    // scores = 2·q·pᵀ = [[2, 2], [0, 2]]; loss₀ = log(e² + e²) - 2 = log 2; loss₁ = log(1 + e²) - 2
    const q = tensor([
      [1, 0],
      [0, 1],
    ]);
    const p = tensor([
      [1, 0],
      [1, 1],
    ]);
    const per = inBatchSoftmaxLoss(q, p, { scale: 2, reducer: 'none' }).toArray() as number[];
    expect(per[0]).toBeCloseTo(Math.log(2), 6);
    expect(per[1]).toBeCloseTo(Math.log(1 + Math.exp(2)) - 2, 6);
    // masking query 0's second candidate leaves only its target: loss 0
    const masked = inBatchSoftmaxLoss(q, p, {
      scale: 2,
      reducer: 'none',
      excluded: tensor([
        [false, true],
        [false, false],
      ]),
    }).toArray() as number[];
    expect(Math.abs(masked[0]!)).toBe(0);
    expect(masked[1]).toBeCloseTo(Math.log(1 + Math.exp(2)) - 2, 6);
  });

  it('equals softmaxRetrievalLoss with targets 0..b-1 over the positives (oracle on random cases)', () => {
    fc.assert(
      fc.property(caseArb, ({ q, scale }) => {
        const b = q.length;
        const p = q.map((row) => row.map((v) => -v / 2 + 0.1));
        const ids = Array.from({ length: b }, (_, i) => i);
        const want = oracle(q, p, ids, scale);
        const got = inBatchSoftmaxLoss(tensor(q), tensor(p), { scale, reducer: 'none' }).toArray() as number[];
        got.forEach((v, i) =>
          expect(Math.abs(v - want[i]!)).toBeLessThanOrEqual(2e-5 * Math.max(1, Math.abs(want[i]!))),
        );
      }),
      params(100),
    );
  });

  it('needs one positive per query', () => {
    expect(() =>
      inBatchSoftmaxLoss(
        tensor([[1, 0]]),
        tensor([
          [1, 0],
          [0, 1],
        ]),
        { scale: 1 },
      ),
    ).toThrow(/positives must have the queries' shape \[1,2\]/);
  });
});
