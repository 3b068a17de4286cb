/**
 * Layers: linear, l2Normalize and the embedding bag against checkGradients
 * (float64 finite differences) over random shapes; the SPARSE embedding-bag
 * gradient (with respect to the row block of a RowSpace) against a DENSE
 * reference (one-hot count matrix [examples, vocab] · full table
 * [vocab, dim], differentiated with respect to the full table and
 * restricted to the RowSpace's ids); makeBags / RowSpace semantics.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ArgumentError,
  Rng,
  RowSpace,
  add,
  ShapeError,
  checkGradients,
  embeddingBag,
  grad,
  initLinear,
  l2Normalize,
  linear,
  makeBags,
  matmul,
  mul,
  normal,
  sum,
  tensor,
  type Bags,
  type Tensor,
} from '../../src/index.js';
import { unsafeData } from '../../src/tensor/tensor.js';
import { params } from '../util/props.js';

function randTensor(rng: Rng, shape: number[], dtype: 'float32' | 'float64' = 'float64', scale = 1): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const d = dtype === 'float64' ? new Float64Array(n) : new Float32Array(n);
  for (let i = 0; i < n; i++) d[i] = scale * rng.normal();
  return tensor(d, dtype, shape);
}

/** A random CSR feature matrix: `rowsCount` rows, each with 0..maxLen ids in [0, vocab) (repeats allowed). */
function randomCsr(
  rng: Rng,
  rowsCount: number,
  vocab: number,
  maxLen: number,
  minLen = 0,
): { offsets: Int32Array; ids: Int32Array } {
  const offsets = new Int32Array(rowsCount + 1);
  const ids: number[] = [];
  for (let r = 0; r < rowsCount; r++) {
    const len = minLen + rng.int(maxLen - minLen + 1);
    for (let k = 0; k < len; k++) ids.push(rng.int(vocab));
    offsets[r + 1] = ids.length;
  }
  return { offsets, ids: Int32Array.from(ids) };
}

function expectOk(r: { ok: boolean; summary: string }): void {
  expect(r.ok, r.summary).toBe(true);
}

const seedArb = fc.integer({ min: 0, max: 2 ** 31 - 1 });

describe('linear', () => {
  it('computes x·w + b (hand-computed)', () => {
    const p = {
      w: tensor([
        [1, 2, 3],
        [4, 5, 6],
      ]),
      b: tensor([0.5, -1, 0]),
    };
    const y = linear(
      p,
      tensor([
        [1, -1],
        [2, 0.5],
      ]),
    );
    expect(y.shape).toEqual([2, 3]);
    expect(y.toArray()).toEqual([
      [-2.5, -4, -3],
      [4.5, 5.5, 9],
    ]);
  });

  it('gradients (x, w, b) pass checkGradients over random shapes', () => {
    fc.assert(
      fc.property(
        seedArb,
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 4 }),
        (seed, batch, inDim, outDim) => {
          const rng = new Rng(seed);
          const x = randTensor(rng, [batch, inDim]),
            w = randTensor(rng, [inDim, outDim]),
            b = randTensor(rng, [outDim]);
          expectOk(checkGradients((xx, ww, bb) => linear({ w: ww!, b: bb! }, xx!), [x, w, b], { rng }));
        },
      ),
      params(25),
    );
  });

  it('float32: the primitive equals matmul + add bit for bit, and its gradients equal those of the composition (large sizes: wasm matmuls)', () => {
    fc.assert(
      fc.property(seedArb, fc.integer({ min: 1, max: 700 }), fc.integer({ min: 1, max: 70 }), (seed, batch, dim) => {
        const rng = new Rng(seed);
        const x = normal([batch, dim], rng),
          w = normal([dim, 2 + (dim % 5)], rng),
          b = normal([2 + (dim % 5)], rng);
        const ct = normal([batch, 2 + (dim % 5)], rng);
        expect(Array.from(unsafeData(linear({ w, b }, x)))).toEqual(Array.from(unsafeData(add(matmul(x, w), b))));
        const f = (fn: (xx: Tensor, ww: Tensor, bb: Tensor) => Tensor) =>
          grad((xx: Tensor, ww: Tensor, bb: Tensor) => sum(mul(fn(xx, ww, bb), ct)), { argnums: [0, 1, 2] })(x, w, b);
        const got = f((xx, ww, bb) => linear({ w: ww, b: bb }, xx)) as Tensor[];
        const want = f((xx, ww, bb) => add(matmul(xx, ww), bb)) as Tensor[];
        // x̄ and w̄ are the same matmuls; b̄ sums columns in float64 either way (1e-6 relative)
        expect(Array.from(unsafeData(got[0]!))).toEqual(Array.from(unsafeData(want[0]!)));
        expect(Array.from(unsafeData(got[1]!))).toEqual(Array.from(unsafeData(want[1]!)));
        const gb = unsafeData(got[2]!),
          wb = unsafeData(want[2]!);
        for (let k = 0; k < wb.length; k++)
          expect(Math.abs(gb[k]! - wb[k]!)).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(wb[k]!)));
      }),
      params(20),
    );
  });

  it('initLinear: glorot weights, zero bias; shape errors name the op', () => {
    const p = initLinear(new Rng(3), 4, 5);
    expect(p.w.shape).toEqual([4, 5]);
    expect(Array.from(unsafeData(p.b))).toEqual([0, 0, 0, 0, 0]);
    expect(() => linear(p, tensor([[1, 2, 3]]))).toThrow(ShapeError);
    expect(() => linear(p, tensor([[1, 2, 3]]))).toThrow(/linear: x must be \[batch, 4\]/);
    expect(() => linear(p, tensor([1, 2, 3, 4]))).toThrow(ShapeError);
    expect(() => linear({ w: p.w } as never, tensor([[1, 2, 3, 4]]))).toThrow(ArgumentError);
  });
});

describe('l2Normalize', () => {
  it('rows have unit norm and keep their direction', () => {
    const y = l2Normalize(
      tensor([
        [3, 4],
        [0, -2],
      ]),
    );
    const d = unsafeData(y);
    expect(d[0]).toBeCloseTo(0.6, 6);
    expect(d[1]).toBeCloseTo(0.8, 6);
    expect(d[2]).toBeCloseTo(0, 6);
    expect(d[3]).toBeCloseTo(-1, 6);
  });

  it('gradients pass checkGradients over random shapes (rank 1 to 3)', () => {
    fc.assert(
      fc.property(seedArb, fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 3 }), (seed, shape) => {
        const rng = new Rng(seed);
        // Entries are ±(0.5 + |N(0,1)|) so no row is near the origin, where the map is ill-conditioned for differences.
        const x = tensor(
          Float64Array.from(unsafeData(randTensor(rng, shape)), (v) => Math.sign(v || 1) * (0.5 + Math.abs(v))),
          'float64',
          shape,
        );
        expectOk(checkGradients((t) => l2Normalize(t!), [x], { rng }));
      }),
      params(25),
    );
  });

  it('the zero vector stays finite: value 0 and a finite gradient (float32 and float64)', () => {
    for (const dtype of ['float32', 'float64'] as const) {
      const x = tensor(
        [
          [0, 0, 0],
          [1, 2, 2],
        ],
        dtype,
      );
      const y = l2Normalize(x);
      expect(Array.from(unsafeData(y)).slice(0, 3)).toEqual([0, 0, 0]);
      expect(
        Array.from(unsafeData(y))
          .slice(3)
          .map((v) => Number(v.toFixed(6))),
      ).toEqual([0.333333, 0.666667, 0.666667]);
      const c = tensor(
        [
          [0.3, -0.2, 0.1],
          [1, 1, 1],
        ],
        dtype,
      );
      const g = grad((t: Tensor) => sum(mul(l2Normalize(t), c)))(x) as Tensor;
      for (const v of unsafeData(g)) expect(Number.isFinite(v)).toBe(true);
      // At 0 the map is x / sqrt(eps): the gradient is c / sqrt(1e-12) = 1e6 · c.
      const g0 = Array.from(unsafeData(g)).slice(0, 3);
      expect(g0[0]! / 1e6).toBeCloseTo(0.3, 3);
      expect(g0[1]! / 1e6).toBeCloseTo(-0.2, 3);
    }
  });
});

describe('RowSpace and makeBags', () => {
  // Four examples: [5, 2, 5], [], [7], [2, 9]
  const offsets = Int32Array.from([0, 3, 3, 4, 6]);
  const ids = Int32Array.from([5, 2, 5, 7, 2, 9]);

  it('gives rows in first-use order; local, segment, count and sizes describe the bags', () => {
    const space = new RowSpace();
    const bags = makeBags(offsets, ids, [3, 0, 1], 10, space);
    expect(Array.from(space.ids())).toEqual([2, 9, 5]);
    expect(space.size).toBe(3);
    expect(Array.from(bags.local)).toEqual([0, 1, 2, 0, 2]);
    expect(Array.from(bags.segment)).toEqual([0, 0, 1, 1, 1]);
    expect(bags.count).toBe(3);
    expect(Array.from(bags.sizes)).toEqual([2, 3, 0]);
    expect(space.rowOf(9)).toBe(1);
    expect(space.rowOf(4)).toBe(3);
    expect(Array.from(space.ids())).toEqual([2, 9, 5, 4]);
  });

  it('two bag sets share one space: the second reuses rows and appends new ids', () => {
    const space = new RowSpace();
    const a = makeBags(offsets, ids, [0], 10, space);
    const b = makeBags(offsets, ids, [2, 3, 0], 10, space);
    expect(Array.from(space.ids())).toEqual([5, 2, 7, 9]);
    expect(Array.from(a.local)).toEqual([0, 1, 0]);
    expect(Array.from(b.local)).toEqual([2, 1, 3, 0, 1, 0]);
    expect(Array.from(b.segment)).toEqual([0, 1, 1, 2, 2, 2]);
  });

  it('rejects out-of-range feature ids and examples with ArgumentError, leaving the space unchanged', () => {
    const space = new RowSpace();
    makeBags(offsets, ids, [2], 10, space);
    const before = Array.from(space.ids());
    expect(() => makeBags(offsets, ids, [0, 3], 9, space)).toThrow(ArgumentError);
    expect(() => makeBags(offsets, ids, [0, 3], 9, space)).toThrow(
      /makeBags: feature id 9 of example 3 is out of range for a vocabulary of 9/,
    );
    expect(() => makeBags(offsets, Int32Array.from([5, 2, 5, 7, -1, 9]), [0, 3], 10, space)).toThrow(ArgumentError);
    expect(() => makeBags(offsets, ids, [0, 4], 10, space)).toThrow(/examples\[1\] = 4 is out of range/);
    expect(() => makeBags(offsets, ids, [-1], 10, space)).toThrow(ArgumentError);
    expect(() => makeBags(offsets, ids, [0.5], 10, space)).toThrow(ArgumentError);
    expect(Array.from(space.ids())).toEqual(before);
  });
});

/** Random bags over a random CSR: examples may repeat, bags may be empty and contain repeated ids. */
function randomBagsCase(seed: number) {
  const rng = new Rng(seed);
  const vocab = 2 + rng.int(9);
  const dim = 1 + rng.int(3);
  const n = 1 + rng.int(5);
  const csr = randomCsr(rng, n, vocab, 4);
  const examples = Array.from({ length: 1 + rng.int(4) }, () => rng.int(n));
  return { rng, vocab, dim, csr, examples };
}

describe('embeddingBag', () => {
  it('sum and mean of hand-made bags (empty bag → zeros)', () => {
    const rows = tensor([
      [1, 2],
      [10, 20],
      [100, 200],
    ]);
    const bags: Bags = {
      local: Int32Array.from([0, 2, 2, 1]),
      segment: Int32Array.from([0, 0, 0, 2]),
      count: 3,
      sizes: Int32Array.from([3, 0, 1]),
    };
    expect(embeddingBag(rows, bags, 'sum').toArray()).toEqual([
      [201, 402],
      [0, 0],
      [10, 20],
    ]);
    expect(embeddingBag(rows, bags, 'mean').toArray()).toEqual([
      [67, 134],
      [0, 0],
      [10, 20],
    ]);
    expect(embeddingBag(rows, bags).toArray()).toEqual([
      [67, 134],
      [0, 0],
      [10, 20],
    ]);
  });

  it('gradients with respect to the rows pass checkGradients (sum and mean, random bags)', () => {
    fc.assert(
      fc.property(seedArb, fc.constantFrom('sum' as const, 'mean' as const), (seed, mode) => {
        const { rng, vocab, dim, csr, examples } = randomBagsCase(seed);
        const space = new RowSpace();
        const bags = makeBags(csr.offsets, csr.ids, examples, vocab, space);
        if (space.size === 0) return; // every chosen bag empty: nothing to differentiate
        const rows = randTensor(rng, [space.size, dim]);
        expectOk(checkGradients((r) => embeddingBag(r!, bags, mode), [rows], { rng }));
      }),
      params(30),
    );
  });

  it('the sparse row-block gradient equals the dense one-hot·table gradient restricted to the RowSpace ids', () => {
    fc.assert(
      fc.property(
        seedArb,
        fc.constantFrom('sum' as const, 'mean' as const),
        fc.constantFrom('float32' as const, 'float64' as const),
        (seed, mode, dtype) => {
          const { rng, vocab, dim, csr, examples } = randomBagsCase(seed);
          // Two bag sets in one space (as the trainer's positives and negatives).
          const examples2 = Array.from({ length: 1 + rng.int(3) }, () => rng.int(csr.offsets.length - 1));
          const space = new RowSpace();
          const bags1 = makeBags(csr.offsets, csr.ids, examples, vocab, space);
          const bags2 = makeBags(csr.offsets, csr.ids, examples2, vocab, space);
          const ids = space.ids();
          const table = randTensor(rng, [vocab, dim], dtype);
          const w1 = randTensor(rng, [examples.length, dim], dtype),
            w2 = randTensor(rng, [examples2.length, dim], dtype);
          // Sparse: differentiate with respect to the row block table[ids].
          const tdata = unsafeData(table);
          const block = tensor(
            dtype === 'float64' ? new Float64Array(ids.length * dim) : new Float32Array(ids.length * dim),
            dtype,
            [ids.length, dim],
          );
          const bd = unsafeData(block);
          ids.forEach((id, r) => {
            for (let j = 0; j < dim; j++) bd[r * dim + j] = tdata[id * dim + j]!;
          });
          const fSparse = (rows: Tensor): Tensor =>
            add(sum(mul(embeddingBag(rows, bags1, mode), w1)), sum(mul(embeddingBag(rows, bags2, mode), w2)));
          const gSparse = unsafeData(grad(fSparse)(block) as Tensor);
          // Dense reference: count matrices [examples, vocab] (divided by the bag size for the mean) · full table.
          const counts = (ex: number[]): Tensor => {
            const c = new Float64Array(ex.length * vocab);
            ex.forEach((e, i) => {
              const lo = csr.offsets[e]!,
                hi = csr.offsets[e + 1]!;
              for (let k = lo; k < hi; k++) c[i * vocab + csr.ids[k]!] += mode === 'mean' ? 1 / (hi - lo) : 1;
            });
            return tensor(dtype === 'float64' ? c : Float32Array.from(c), dtype, [ex.length, vocab]);
          };
          const c1 = counts(examples),
            c2 = counts(examples2);
          const fDense = (t: Tensor): Tensor => add(sum(mul(matmul(c1, t), w1)), sum(mul(matmul(c2, t), w2)));
          const gDense = unsafeData(grad(fDense)(table) as Tensor);
          // Forward values agree too.
          const yS = unsafeData(embeddingBag(block, bags1, mode)),
            yD = unsafeData(matmul(c1, table));
          const tol = dtype === 'float64' ? 1e-12 : 1e-5;
          yS.forEach((v, i) => expect(Math.abs(v - yD[i]!)).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(yD[i]!))));
          // Row r of the sparse gradient is row ids[r] of the dense one; the dense gradient is zero elsewhere.
          const inSpace = new Set(ids);
          for (let v = 0; v < vocab; v++) {
            const r = ids.indexOf(v);
            for (let j = 0; j < dim; j++) {
              const dense = gDense[v * dim + j]!;
              if (!inSpace.has(v)) {
                expect(dense).toBe(0);
                continue;
              }
              const sparse = gSparse[r * dim + j]!;
              expect(
                Math.abs(sparse - dense),
                `row ${v} col ${j}: sparse ${sparse} dense ${dense}`,
              ).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(dense)));
            }
          }
        },
      ),
      params(40),
    );
  });

  it('shape and mode errors', () => {
    const space = new RowSpace();
    const bags = makeBags(Int32Array.from([0, 2]), Int32Array.from([3, 4]), [0], 5, space);
    expect(() => embeddingBag(tensor([[1, 2]]), bags)).toThrow(ShapeError);
    expect(() => embeddingBag(tensor([[1, 2]]), bags)).toThrow(/embeddingBag: bag row 1 is beyond the 1 rows given/);
    expect(() => embeddingBag(tensor([1, 2]), bags)).toThrow(ShapeError);
    expect(() => embeddingBag(tensor([[1], [2]]), bags, 'max' as never)).toThrow(ArgumentError);
  });
});
