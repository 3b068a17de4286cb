/**
 * Composite functions (softmax cross-entropy, logSumExp of a matmul,
 * L2-normalise-then-dot) against the oracle and checkGradients, and an
 * INDEPENDENT gradient check that does not trust checkGradients: the
 * gradient of L(x) = Σ w ⊙ op(x) (fixed random weights w) is taken by
 * central differences on the float64 ORACLE (fdGrad, Richardson, h = 1e-4)
 * and compared with `grad` of the library function.
 *
 * Tolerances:
 *  - forward float32 vs oracle: 1e-5 + 1e-5·|want| (composites of several
 *    float32 ops, each rounding once);
 *  - independent check, library in float64: |g - fd| <= 1e-7·max(1, |fd|)
 *    (fd truncation ~h⁴, rounding ~1e-16/h ≈ 1e-12);
 *  - independent check, library in float32: |g - fd| <= 1e-4·max(1, |fd|)
 *    (float32 autodiff carries a few roundings of ~6e-8 per op, times
 *    magnitudes up to ~30).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  arange,
  cast,
  cumsum,
  div,
  equal,
  expandDims,
  gather,
  grad,
  logSoftmax,
  logSumExp,
  matmul,
  max,
  maximum,
  mean,
  mul,
  neg,
  pow,
  scatterRows,
  sqrt,
  square,
  sum,
  tensor,
  topK,
  type Tensor,
} from '../../src/index.js';
import { params } from '../util/props.js';
import * as O from '../util/oracle.js';
import {
  arrOfShape,
  distinctArrOfShape,
  expectClose,
  expectGradientsOk,
  fdGrad,
  fromTensor,
  shapeArb,
  toTensor,
  type Arr,
} from '../util/oracle.js';

const COMP32 = { rtol: 1e-5, atol: 1e-5 };

// ------------------------------------------------------------ the composites, in the library

/** Mean softmax cross-entropy of logits [B, C] against int32 labels [B]. */
function softmaxCrossEntropy(logits: Tensor, labels: Tensor): Tensor {
  const c = logits.shape[1]!;
  const onehot = cast(equal(expandDims(labels, 1), arange(c)), logits.dtype);
  return neg(mean(sum(mul(onehot, logSoftmax(logits)), { axis: 1 })));
}

/** Row-wise cosine: x / sqrt(Σ x²) per row, then row-wise dot. */
function l2NormalizeThenDot(a: Tensor, b: Tensor): Tensor {
  const na = div(a, sqrt(sum(square(a), { axis: 1, keepDims: true })));
  const nb = div(b, sqrt(sum(square(b), { axis: 1, keepDims: true })));
  return sum(mul(na, nb), { axis: 1 });
}

// ------------------------------------------------------------ the same, in the oracle

function oracleCrossEntropy(z: Arr, labels: readonly number[]): number {
  const lp = O.logSoftmax(z, 1);
  const c = z.shape[1]!;
  return -labels.reduce((s, l, r) => s + lp.data[r * c + l]!, 0) / labels.length;
}

function oracleCosine(a: Arr, b: Arr): Arr {
  const [rows, d] = a.shape as [number, number];
  const out: number[] = [];
  for (let r = 0; r < rows; r++) {
    let aa = 0,
      bb = 0,
      ab = 0;
    for (let j = 0; j < d; j++) {
      const x = a.data[r * d + j]!,
        y = b.data[r * d + j]!;
      aa += x * x;
      bb += y * y;
      ab += x * y;
    }
    out.push(ab / Math.sqrt(aa) / Math.sqrt(bb));
  }
  return O.arr([rows], out);
}

const logitsArb = fc
  .record({ b: fc.integer({ min: 1, max: 4 }), c: fc.integer({ min: 1, max: 5 }) })
  .chain(({ b, c }) =>
    fc.record({
      z: arrOfShape([b, c], { min: -5, max: 5 }),
      labels: fc.array(fc.integer({ min: 0, max: c - 1 }), { minLength: b, maxLength: b }),
    }),
  );

const cosineArb = fc
  .record({ r: fc.integer({ min: 1, max: 3 }), d: fc.integer({ min: 1, max: 4 }) })
  .chain(({ r, d }) =>
    fc.record({
      a: arrOfShape([r, d], { awayFromZero: 0.5, max: 2 }),
      b: arrOfShape([r, d], { awayFromZero: 0.5, max: 2 }),
    }),
  );

const lseMatmulArb = fc
  .record({ m: fc.integer({ min: 1, max: 3 }), n: fc.integer({ min: 1, max: 4 }), k: fc.integer({ min: 1, max: 3 }) })
  .chain(({ m, n, k }) => fc.record({ q: arrOfShape([m, k]), c: arrOfShape([n, k]) }));

describe('composite functions', () => {
  it('softmax cross-entropy: forward matches the oracle; gradient passes checkGradients', () => {
    fc.assert(
      fc.property(logitsArb, ({ z, labels }) => {
        const lab = tensor(labels, 'int32');
        expectClose(softmaxCrossEntropy(toTensor(z), lab), O.arr([], [oracleCrossEntropy(z, labels)]), COMP32, 'CE');
        expectGradientsOk((t) => softmaxCrossEntropy(t, lab), [toTensor(z)]);
      }),
      params(150),
    );
  });

  it('the gradient of softmax cross-entropy is (softmax - onehot) / B (closed form)', () => {
    fc.assert(
      fc.property(logitsArb, ({ z, labels }) => {
        const g = grad((t: Tensor) => softmaxCrossEntropy(t, tensor(labels, 'int32')))(toTensor(z, 'float64'));
        const p = O.softmax(z, 1);
        const c = z.shape[1]!,
          b = z.shape[0]!;
        const want = O.arr(
          z.shape,
          p.data.map((v, i) => (v - (labels[Math.floor(i / c)] === i % c ? 1 : 0)) / b),
        );
        expectClose(g, want, { rtol: 1e-12, atol: 1e-14 }, 'CE closed form');
      }),
      params(150),
    );
  });

  it('logSumExp of a matmul (Q·Cᵀ scores): forward and gradient', () => {
    fc.assert(
      fc.property(lseMatmulArb, ({ q, c }) => {
        const f = (x: Tensor, y: Tensor) => logSumExp(matmul(x, y, { transposeB: true }), { axis: 1 });
        expectClose(
          f(toTensor(q), toTensor(c)),
          O.reduce(O.matmul(q, c, false, true), 'logSumExp', 1),
          COMP32,
          'lse(QCᵀ)',
        );
        expectGradientsOk(f, [toTensor(q), toTensor(c)]);
      }),
      params(150),
    );
  });

  it('L2-normalise-then-dot: forward matches the oracle cosine; gradient', () => {
    fc.assert(
      fc.property(cosineArb, ({ a, b }) => {
        expectClose(l2NormalizeThenDot(toTensor(a), toTensor(b)), oracleCosine(a, b), COMP32, 'cosine');
        expectGradientsOk(l2NormalizeThenDot, [toTensor(a), toTensor(b)]);
      }),
      params(150),
    );
  });
});

// ------------------------------------------------------------ independent finite differences on the oracle

interface IndependentCase {
  name: string;
  arb: fc.Arbitrary<Arr[]>;
  oracle: (xs: Arr[]) => Arr;
  lib: (...ts: Tensor[]) => Tensor;
}

const fixedIdx = O.arr([4], [2, 0, 2, 1]);

const CASES: IndependentCase[] = [
  {
    name: 'softmax cross-entropy',
    arb: logitsArb.filter(({ labels }) => labels.length > 0).map(({ z }) => [z]),
    oracle: ([z]) =>
      O.arr(
        [],
        [
          oracleCrossEntropy(
            z!,
            Array.from({ length: z!.shape[0]! }, (_, r) => r % z!.shape[1]!),
          ),
        ],
      ),
    lib: (t) =>
      softmaxCrossEntropy(
        t,
        tensor(
          Array.from({ length: t.shape[0]! }, (_, r) => r % t.shape[1]!),
          'int32',
        ),
      ),
  },
  {
    name: 'matmul with transposeA and transposeB',
    arb: fc
      .record({
        m: fc.integer({ min: 1, max: 3 }),
        n: fc.integer({ min: 1, max: 3 }),
        k: fc.integer({ min: 1, max: 3 }),
      })
      .chain(({ m, n, k }) => fc.tuple(arrOfShape([k, m]), arrOfShape([n, k]))),
    oracle: ([a, b]) => O.matmul(a!, b!, true, true),
    lib: (a, b) => matmul(a, b, { transposeA: true, transposeB: true }),
  },
  {
    name: 'batched matmul with a broadcast batch',
    arb: fc.tuple(arrOfShape([2, 2, 3]), arrOfShape([3, 2])),
    oracle: ([a, b]) => O.matmul(a!, b!),
    lib: (a, b) => matmul(a, b),
  },
  {
    name: 'logSumExp over axis 0',
    arb: shapeArb({ minRank: 1, maxRank: 3, maxSize: 10 })
      .chain((s) => arrOfShape(s, { min: -4, max: 4 }))
      .map((x) => [x]),
    oracle: ([x]) => O.reduce(x!, 'logSumExp', 0),
    lib: (t) => logSumExp(t, { axis: 0 }),
  },
  {
    name: 'gather along axis 1 with repeats',
    arb: fc
      .integer({ min: 1, max: 3 })
      .chain((r) => arrOfShape([r, 3]))
      .map((x) => [x]),
    oracle: ([x]) => O.gather(x!, fixedIdx, 1),
    lib: (t) => gather(t, toTensor(fixedIdx, 'int32'), { axis: 1 }),
  },
  {
    name: 'reverse cumsum along axis 0',
    arb: shapeArb({ minRank: 1, maxRank: 2, maxSize: 10 })
      .chain((s) => arrOfShape(s))
      .map((x) => [x]),
    oracle: ([x]) => O.cumsum(x!, 0, true),
    lib: (t) => cumsum(t, { axis: 0, reverse: true }),
  },
  {
    name: 'pow (base and exponent)',
    arb: shapeArb({ maxSize: 6 }).chain((s) =>
      fc.tuple(arrOfShape(s, { min: 0.5, max: 3 }), arrOfShape(s, { min: -2, max: 2 })),
    ),
    oracle: ([a, b]) => O.map2(a!, b!, Math.pow),
    lib: (a, b) => pow(a, b),
  },
  {
    name: 'maximum with broadcasting',
    arb: fc.tuple(
      arrOfShape([3, 2]).map((a) => O.map1(a, (v) => Math.round(v) + 0.25)),
      arrOfShape([2]).map((a) => O.map1(a, (v) => Math.round(v) - 0.25)),
    ),
    oracle: ([a, b]) => O.map2(a!, b!, Math.max),
    lib: (a, b) => maximum(a, b),
  },
  {
    name: 'max over axis 1 (distinct values)',
    arb: fc
      .integer({ min: 1, max: 3 })
      .chain((r) => distinctArrOfShape([r, 4]))
      .map((x) => [x]),
    oracle: ([x]) => O.reduce(x!, 'max', 1),
    lib: (t) => max(t, { axis: 1 }),
  },
  {
    name: 'scatterRows (x and updates, repeated index)',
    arb: fc.tuple(arrOfShape([4, 2]), arrOfShape([3, 2])),
    oracle: ([x, u]) => O.scatterRows(x!, [3, 1, 3], u!),
    lib: (x, u) => scatterRows(x, tensor([3, 1, 3], 'int32'), u),
  },
  {
    name: 'topK values',
    arb: fc
      .integer({ min: 1, max: 3 })
      .chain((r) => distinctArrOfShape([r, 5]))
      .map((x) => [x]),
    oracle: ([x]) => O.topK(x!, 3).values,
    lib: (t) => topK(t, 3).values,
  },
];

describe.each(CASES)('independent FD check (oracle, float64): $name', ({ arb, oracle, lib }) => {
  it('grad matches central differences of the oracle, in float64 and float32', () => {
    const withWeights = arb.chain((xs) => {
      const outSize = O.numel(oracle(xs).shape);
      return fc.record({
        xs: fc.constant(xs),
        w: fc.array(fc.double({ min: -1, max: 1, noNaN: true }).map(Math.fround), {
          minLength: outSize,
          maxLength: outSize,
        }),
      });
    });
    fc.assert(
      fc.property(withWeights, ({ xs, w }) => {
        const shape = oracle(xs).shape;
        const L = (flat: number[][]): number => O.weightedSum(oracle(flat.map((d, i) => O.arr(xs[i]!.shape, d))), w);
        const fd = fdGrad(
          L,
          xs.map((x) => x.data),
        );
        const argnums = xs.map((_, i) => i);
        for (const [dtype, tol] of [
          ['float64', 1e-7],
          ['float32', 1e-4],
        ] as const) {
          const wT = toTensor(O.arr(shape, w), dtype);
          const gs = grad((...ts: Tensor[]) => sum(mul(lib(...ts), wT)), { argnums })(
            ...xs.map((x) => toTensor(x, dtype)),
          ) as Tensor[];
          gs.forEach((g, i) => {
            expect(g.dtype).toBe(dtype);
            const got = fromTensor(g).data;
            fd[i]!.forEach((want, k) => {
              const err = Math.abs(got[k]! - want) / Math.max(1, Math.abs(want));
              if (!(err <= tol))
                throw new Error(
                  `${dtype} input ${i} element ${k}: grad ${got[k]} vs oracle FD ${want} (error ${err.toExponential(2)} > ${tol})`,
                );
            });
          });
        }
      }),
      params(150),
    );
  });
});
