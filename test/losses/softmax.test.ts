/**
 * The softmax baselines (src/losses/softmax.ts) against a float64 oracle:
 * values (float32 tensors, tolerance 2e-5 relative to max(1, |value|): the
 * scores are float32 products rounded once per op) and gradients (float64
 * inputs, checkGradients at 1e-6), over random shapes, scales, targets and
 * exclusion masks. A closed form pins the in-batch loss on a 2 × 2 example.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  ArgumentError,
  Rng,
  ShapeError,
  add,
  checkGradients,
  div,
  l2Normalize,
  matmul,
  mul,
  normal,
  sqrt,
  sum,
  tensor,
  valueAndGrad,
  type Tensor,
} from '../../src/index.js';
import { fullSoftmaxLoss, inBatchSoftmaxLoss, softmaxRetrievalLoss } from '../../src/losses/softmax.js';
import { unsafeData } from '../../src/tensor/tensor.js';
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

describe('fullSoftmaxLoss (fused, streamed) against the plain composition', () => {
  /** Random unit rows and pairs; the mask form of the pairs for the composition. */
  function fullCase(seed: number, b: number, n: number, d: number, nPairs: number) {
    const rng = new Rng(seed);
    const unit = (rows: number): Tensor => l2Normalize(normal([rows, d], rng));
    const q = unit(b),
      c = unit(n);
    const targets = Int32Array.from({ length: b }, () => rng.int(n));
    const query: number[] = [],
      candidate: number[] = [];
    for (let k = 0; k < nPairs; k++) {
      const i = rng.int(b),
        j = rng.int(n);
      if (targets[i] !== j) {
        query.push(i);
        candidate.push(j);
      }
    }
    const mask = new Uint8Array(b * n);
    query.forEach((i, k) => {
      mask[i * n + candidate[k]!] = 1;
    });
    return {
      q,
      c,
      t: tensor(targets, 'int32'),
      pairs: { query: Int32Array.from(query), candidate: Int32Array.from(candidate) },
      mask: tensor(mask, 'bool', [b, n]),
    };
  }

  // The fused pass sums exp over a block of 1024 candidates in 4 float32 lanes (256 terms each): a relative
  // error of at most 256·2⁻²⁴ ≈ 1.5e-5 in Σ, hence ≈ 1.5e-5 absolute in log-sum-exp and in each probability
  // P. Bounds (ε = 5e-5, unit rows, scale s, ḡ <= 1 per query): the value within ε·max(1, |value|); a
  // gradient entry is a sum of terms s·ḡ·(P - onehot)·row whose absolute values add up to at most 2s for a
  // query (Σ_j P = 1) and 2s·b for a candidate, so within ε·2s and ε·2s·b.
  it('values and both gradients agree within float32 rounding (see the bounds above)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        fc.integer({ min: 1, max: 8 }),
        fc.oneof(fc.integer({ min: 1, max: 30 }), fc.integer({ min: 1000, max: 2100 })),
        fc.integer({ min: 1, max: 16 }),
        fc.integer({ min: 0, max: 10 }),
        fc.constantFrom('mean', 'none') as fc.Arbitrary<'mean' | 'none'>,
        (seed, b, n, d, nPairs, reducer) => {
          const scale = 20,
            eps = 5e-5;
          const { q, c, t, pairs, mask } = fullCase(seed, b, n, d, nPairs);
          const fused = valueAndGrad(
            (qq: Tensor, cc: Tensor) => sum(fullSoftmaxLoss(qq, cc, t, { scale, excluded: pairs, reducer })),
            { argnums: [0, 1] },
          )(q, c);
          const plain = valueAndGrad(
            (qq: Tensor, cc: Tensor) => sum(softmaxRetrievalLoss(qq, cc, t, { scale, excluded: mask, reducer })),
            { argnums: [0, 1] },
          )(q, c);
          const within = (x: Tensor, y: Tensor, tol: number): void => {
            const a = unsafeData(x),
              w = unsafeData(y);
            for (let k = 0; k < w.length; k++) expect(Math.abs(a[k]! - w[k]!)).toBeLessThanOrEqual(tol);
          };
          within(fused.value, plain.value, eps * Math.max(1, Math.abs(plain.value.item() as number)));
          const [gq, gc] = fused.grad as Tensor[];
          const [pq, pc] = plain.grad as Tensor[];
          within(gq!, pq!, eps * 2 * scale);
          within(gc!, pc!, eps * 2 * scale * b);
        },
      ),
      params(30),
    );
  });

  it('with a tower head {features, w, b}: the same loss and gradients as normalize(features·w + b) composed of ops', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        fc.integer({ min: 1, max: 6 }),
        fc.oneof(fc.integer({ min: 1, max: 30 }), fc.integer({ min: 1020, max: 1100 })),
        fc.integer({ min: 1, max: 9 }),
        // d >= 2: in one dimension normalisation is the sign function, whose derivative both sides round to noise
        fc.integer({ min: 2, max: 9 }),
        (seed, b, n, din, d) => {
          const rng = new Rng(seed);
          const q = l2Normalize(normal([b, d], rng)),
            x = normal([n, din], rng),
            w = normal([din, d], rng),
            bias = normal([d], rng);
          const t = tensor(
            Int32Array.from({ length: b }, () => rng.int(n)),
            'int32',
          );
          const ref = (qq: Tensor, xx: Tensor, ww: Tensor, bb: Tensor): Tensor => {
            const y = add(matmul(xx, ww), bb);
            const c = div(y, sqrt(add(sum(mul(y, y), { axis: -1, keepDims: true }), 1e-12)));
            return softmaxRetrievalLoss(qq, c, t, { scale: 20 });
          };
          const fused = (qq: Tensor, xx: Tensor, ww: Tensor, bb: Tensor): Tensor =>
            fullSoftmaxLoss(qq, { features: xx, w: ww, b: bb }, t, { scale: 20 });
          const A = valueAndGrad(fused, { argnums: [0, 1, 2, 3] })(q, x, w, bias);
          const B = valueAndGrad(ref, { argnums: [0, 1, 2, 3] })(q, x, w, bias);
          expect(Math.abs((A.value.item() as number) - (B.value.item() as number))).toBeLessThanOrEqual(
            5e-5 * Math.max(1, Math.abs(B.value.item() as number)),
          );
          (A.grad as Tensor[]).forEach((g, k) => {
            const a = unsafeData(g),
              r = unsafeData((B.grad as Tensor[])[k]!);
            let m = 0;
            for (let i = 0; i < r.length; i++) m = Math.max(m, Math.abs(r[i]!));
            for (let i = 0; i < r.length; i++)
              expect(Math.abs(a[i]! - r[i]!)).toBeLessThanOrEqual(1e-4 * Math.max(1, m));
          });
        },
      ),
      params(25),
    );
  });

  it('float64 inputs take the composition exactly (so its gradient checks cover them)', () => {
    const { q, c, t, pairs, mask } = fullCase(3, 3, 9, 4, 5);
    const q64 = tensor(Array.from(unsafeData(q)), 'float64', [3, 4]),
      c64 = tensor(Array.from(unsafeData(c)), 'float64', [9, 4]);
    const a = fullSoftmaxLoss(q64, c64, t, { scale: 7, excluded: pairs, reducer: 'none' });
    const b = softmaxRetrievalLoss(q64, c64, t, { scale: 7, excluded: mask, reducer: 'none' });
    expect(a.dtype).toBe('float64');
    expect(Array.from(unsafeData(a))).toEqual(Array.from(unsafeData(b)));
  });

  it('is deterministic: the same inputs give the same bits', () => {
    const { q, c, t, pairs } = fullCase(9, 4, 3000, 8, 6);
    const run = () =>
      valueAndGrad((qq: Tensor, cc: Tensor) => fullSoftmaxLoss(qq, cc, t, { scale: 20, excluded: pairs }), {
        argnums: [0, 1],
      })(q, c);
    const x = run(),
      y = run();
    expect(x.value.item()).toBe(y.value.item());
    for (let k = 0; k < 2; k++)
      expect(Array.from(unsafeData((x.grad as Tensor[])[k]!))).toEqual(
        Array.from(unsafeData((y.grad as Tensor[])[k]!)),
      );
  });

  it('rejects bad pairs, a pair that masks the target, and a bad runner', () => {
    const q = tensor([[1, 0]]),
      c = tensor([
        [1, 0],
        [0, 1],
      ]),
      t = tensor([0], 'int32');
    expect(() =>
      fullSoftmaxLoss(q, c, t, { scale: 1, excluded: { query: Int32Array.of(0), candidate: Int32Array.of(0) } }),
    ).toThrow(/excluded pair 0 masks query 0's own target 0/);
    expect(() =>
      fullSoftmaxLoss(q, c, t, { scale: 1, excluded: { query: Int32Array.of(1), candidate: Int32Array.of(1) } }),
    ).toThrow(ArgumentError);
    expect(() => fullSoftmaxLoss(q, c, t, { scale: 1, excluded: { query: Int32Array.of(0) } as never })).toThrow(
      /excluded must be \{query, candidate\}/,
    );
    expect(() => fullSoftmaxLoss(q, c, t, { scale: 1, runner: {} as never })).toThrow(/runner must be a BlockRunner/);
    expect(() => fullSoftmaxLoss(q, c, tensor([5], 'int32'), { scale: 1 })).toThrow(/targets\[0\] is 5/);
  });
});
