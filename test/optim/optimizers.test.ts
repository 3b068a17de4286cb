/**
 * Optimisers against hand-computed values, for the parameter θ = [1, -2]
 * with gradients g1 = [0.5, 0.1] (step 1) and g2 = [-0.25, 0.2] (step 2),
 * lr = 0.1:
 *
 *   SGD:                 θ1 = θ - 0.1·g1 = [0.95, -2.01];  θ2 = θ1 - 0.1·g2 = [0.975, -2.03]
 *   SGD μ=0.9:           v1 = g1;  θ1 = [0.95, -2.01]
 *                        v2 = 0.9·v1 + g2 = [0.2, 0.29];  θ2 = [0.93, -2.039]
 *   SGD μ=0.9 Nesterov:  θ1 = θ - 0.1·(g1 + 0.9·v1) = θ - 0.1·[0.95, 0.19] = [0.905, -2.019]
 *                        θ2 = θ1 - 0.1·(g2 + 0.9·v2) = θ1 - 0.1·[-0.07, 0.461] = [0.912, -2.0651]
 *   SGD λ=0.1 (coupled): g' = g1 + 0.1·θ = [0.6, -0.1];  θ1 = [0.94, -1.99]
 *   SGD λ=0.1, μ=0.9:    step 2: g' = g2 + 0.1·θ1 = [-0.156, 0.001]; v2 = 0.9·[0.6, -0.1] + g' = [0.384, -0.089]
 *                        θ2 = θ1 - 0.1·v2 = [0.9016, -1.9811]
 *   Adam (β1 0.9, β2 0.999, ε 1e-8):
 *                        m1 = 0.1·g1 = [0.05, 0.01], v1 = 0.001·g1² = [2.5e-4, 1e-5]
 *                        m̂ = m1/0.1 = g1, v̂ = v1/0.001 = g1²  →  step = sign(g1)  →  θ1 = [0.9, -2.1]
 *                        m2 = 0.9·m1 + 0.1·g2 = [0.02, 0.029], v2 = 0.999·v1 + 0.001·g2² = [3.1225e-4, 4.999e-5]
 *                        m̂ = m2/0.19 = [0.1052632, 0.1526316], v̂ = v2/0.001999 = [0.1562031, 0.0250075]
 *                        m̂/√v̂ = [0.2663370, 0.9651820]  →  θ2 = [0.8733663, -2.1965182]
 *   AdamW (λ = 0.01 decoupled, from the old θ):
 *                        θ1 = θ - 0.1·0.01·θ - 0.1·sign(g1) = [0.899, -2.098]
 *                        θ2 = 0.999·θ1 - 0.1·[0.2663370, 0.9651820] = [0.8714673, -2.1924202]
 *
 * Values are float32 (state and parameters), so they are compared to 1e-6.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  Adam,
  AdamW,
  ArgumentError,
  EmbeddingTable,
  NonFiniteError,
  Rng,
  SGD,
  ShapeError,
  clipFactor,
  globalNorm,
  tensor,
  type SparseGrad,
  type Tensor,
} from '../../src/index.js';
import { unsafeData } from '../../src/tensor/tensor.js';
import { params } from '../util/props.js';

type Opt = SGD | Adam;

const g1 = [0.5, 0.1];
const g2 = [-0.25, 0.2];

function vals(t: Tensor): number[] {
  return Array.from(unsafeData(t));
}

function expectNear(got: ArrayLike<number>, want: number[], tol = 1e-6): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++)
    expect(Math.abs(got[i]! - want[i]!), `element ${i}: got ${got[i]}, want ${want[i]}`).toBeLessThanOrEqual(tol);
}

/** Two steps on the 2-element parameter; returns θ after each. */
function twoSteps(opt: Opt): [number[], number[]] {
  let p = { theta: tensor([1, -2]) };
  p = opt.step(p, { theta: tensor(g1) });
  const a = vals(p.theta);
  p = opt.step(p, { theta: tensor(g2) });
  return [a, vals(p.theta)];
}

const CASES: { name: string; make: () => Opt; step1: number[]; step2: number[] }[] = [
  { name: 'SGD', make: () => new SGD({ lr: 0.1 }), step1: [0.95, -2.01], step2: [0.975, -2.03] },
  {
    name: 'SGD momentum 0.9',
    make: () => new SGD({ lr: 0.1, momentum: 0.9 }),
    step1: [0.95, -2.01],
    step2: [0.93, -2.039],
  },
  {
    name: 'SGD Nesterov 0.9',
    make: () => new SGD({ lr: 0.1, momentum: 0.9, nesterov: true }),
    step1: [0.905, -2.019],
    step2: [0.912, -2.0651],
  },
  {
    name: 'SGD weight decay 0.1',
    make: () => new SGD({ lr: 0.1, weightDecay: 0.1 }),
    step1: [0.94, -1.99],
    step2: [0.94 - 0.1 * (-0.25 + 0.094), -1.99 - 0.1 * (0.2 - 0.199)],
  },
  {
    name: 'SGD weight decay 0.1 + momentum 0.9',
    make: () => new SGD({ lr: 0.1, weightDecay: 0.1, momentum: 0.9 }),
    step1: [0.94, -1.99],
    step2: [0.9016, -1.9811],
  },
  { name: 'Adam', make: () => new Adam({ lr: 0.1 }), step1: [0.9, -2.1], step2: [0.8733663, -2.1965182] },
  {
    name: 'AdamW (default λ 0.01)',
    make: () => new AdamW({ lr: 0.1 }),
    step1: [0.899, -2.098],
    step2: [0.8714673, -2.1924202],
  },
  {
    name: 'Adam with weightDecay 0.01 = AdamW',
    make: () => new Adam({ lr: 0.1, weightDecay: 0.01 }),
    step1: [0.899, -2.098],
    step2: [0.8714673, -2.1924202],
  },
];

describe('one and two steps against hand-computed values', () => {
  for (const c of CASES) {
    it(c.name, () => {
      const opt = c.make();
      expect(opt.steps).toBe(0);
      const [a, b] = twoSteps(opt);
      expectNear(a, c.step1);
      expectNear(b, c.step2);
      expect(opt.steps).toBe(2);
    });
  }

  it('step returns new tensors of the same tree and leaves the inputs unchanged', () => {
    const opt = new SGD({ lr: 0.1 });
    const p = { a: tensor([1, -2]), nested: [tensor([[3]])] };
    const q = opt.step(p, { a: tensor(g1), nested: [tensor([[1]])] });
    expect(vals(p.a)).toEqual([1, -2]);
    expect(q.a).not.toBe(p.a);
    expect(q.nested[0]!.shape).toEqual([1, 1]);
    expectNear(vals(q.nested[0]!), [2.9]);
  });

  it('a float64 parameter stays float64 (no rounding of θ to float32)', () => {
    const p = new SGD({ lr: 0.1 }).step({ w: tensor([1, -2], 'float64') }, { w: tensor(g1, 'float64') });
    expect(p.w.dtype).toBe('float64');
    expect(vals(p.w)[0]).toBe(1 - 0.1 * 0.5); // 0.95 as a double; float32 would give 0.949999988
    const q = new SGD({ lr: 0.1 }).step({ w: tensor([1, -2]) }, { w: tensor(g1) });
    expect(q.w.dtype).toBe('float32');
    expect(vals(q.w)[0]).toBe(Math.fround(0.95));
  });

  it('Adam state after step 1 holds m = 0.1·g and v = 0.001·g² per parameter', () => {
    const opt = new Adam({ lr: 0.1 });
    opt.step({ theta: tensor([1, -2]) }, { theta: tensor(g1) });
    const s = opt.getState();
    expect(s['t']!.item()).toBe(1);
    expectNear(vals(s['dense.0.0']!), [0.05, 0.01], 1e-9);
    expectNear(vals(s['dense.0.1']!), [2.5e-4, 1e-5], 1e-10); // float32 storage: relative error ≤ 6e-8
  });
});

describe('sparse table updates', () => {
  const base = (): Float32Array => Float32Array.from([0, 0, 1, -2, 3, 3, -1, 0.5, 7, 7]); // 5 rows × 2
  const sparseGrad = (table: EmbeddingTable, ids: number[], g: number[]): SparseGrad => ({
    table,
    ids: Int32Array.from(ids),
    grad: tensor(g, 'float32', [ids.length, table.dim]),
  });

  for (const c of CASES) {
    it(`${c.name}: only the touched rows change, exactly as the dense update would change them`, () => {
      const table = new EmbeddingTable(5, 2, base());
      const opt = c.make();
      // Rows 1 and 3 get the gradients g1 and g2; θ of row 1 is [1, -2] as in the dense cases.
      const out = opt.step({}, {}, { emb: sparseGrad(table, [1, 3], [...g1, ...g2]) });
      expect(out).toEqual({});
      expect(opt.steps).toBe(1);
      const after = Array.from(table.data);
      expect(after.slice(0, 2)).toEqual([0, 0]);
      expect(after.slice(4, 6)).toEqual([3, 3]);
      expect(after.slice(8, 10)).toEqual([7, 7]);
      // Dense reference: the same rows as one dense [2, 2] parameter, same gradient.
      const dense = c.make().step(
        {
          w: tensor([
            [1, -2],
            [-1, 0.5],
          ]),
        },
        { w: tensor([g1, g2]) },
      );
      expect([...after.slice(2, 4), ...after.slice(6, 8)]).toEqual(vals(dense.w));
      expectNear(after.slice(2, 4), c.step1);
    });
  }

  it('lazy: a row not touched in a step keeps its value and moments, and weight decay skips it (AdamW)', () => {
    const table = new EmbeddingTable(5, 2, base());
    const opt = new AdamW({ lr: 0.1, weightDecay: 0.1 });
    opt.step({}, {}, { emb: sparseGrad(table, [1, 3], [...g1, ...g2]) });
    const row3 = Array.from(table.data.slice(6, 8));
    const s1 = opt.getState();
    opt.step({}, {}, { emb: sparseGrad(table, [1], g2) });
    const s2 = opt.getState();
    expect(Array.from(table.data.slice(6, 8))).toEqual(row3);
    for (const k of ['table.emb.0', 'table.emb.1']) {
      expect(vals(s2[k]!).slice(6, 8)).toEqual(vals(s1[k]!).slice(6, 8));
      expect(vals(s2[k]!).slice(2, 4)).not.toEqual(vals(s1[k]!).slice(2, 4));
    }
    // Row 1, touched in both steps, followed the dense two-step trajectory of AdamW(λ 0.1):
    const d = twoSteps(new AdamW({ lr: 0.1, weightDecay: 0.1 }))[1];
    expect(Array.from(table.data.slice(2, 4))).toEqual(d);
    // Untouched rows never got state: rows 0, 2, 4 moments are zero.
    for (const r of [0, 2, 4]) expect(vals(s2['table.emb.0']!).slice(2 * r, 2 * r + 2)).toEqual([0, 0]);
  });

  it('sparse and dense together in one step; two tables keep separate state', () => {
    const q = new EmbeddingTable(5, 2, base());
    const d = new EmbeddingTable(5, 2, base());
    const opt = new SGD({ lr: 0.1, momentum: 0.9 });
    let p = { theta: tensor([1, -2]) };
    p = opt.step(p, { theta: tensor(g1) }, { q: sparseGrad(q, [1], g1), d: sparseGrad(d, [1], g2) });
    p = opt.step(p, { theta: tensor(g2) }, { q: sparseGrad(q, [1], g2), d: sparseGrad(d, [1], g2) });
    expectNear(vals(p.theta), [0.93, -2.039]);
    expectNear(q.data.slice(2, 4), [0.93, -2.039]);
    // Table d got g2 twice: v1 = g2, v2 = 1.9·g2; θ2 = [1, -2] - 0.1·2.9·g2 = [1.0725, -2.058]
    expectNear(d.data.slice(2, 4), [1.0725, -2.058]);
  });

  it('property: step 1 on random rows equals the dense update of those rows, for every optimiser', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        fc.integer({ min: 0, max: CASES.length - 1 }),
        (seed, ci) => {
          const rng = new Rng(seed);
          const vocab = 2 + rng.int(8),
            dim = 1 + rng.int(4);
          const table = new EmbeddingTable(vocab, dim, { rng });
          const before = table.data.slice();
          const ids = Array.from({ length: vocab }, (_, i) => i).filter(() => rng.uniform() < 0.5);
          if (ids.length === 0) ids.push(rng.int(vocab));
          const g = Array.from({ length: ids.length * dim }, () => rng.normal());
          CASES[ci]!.make().step({}, {}, { t: sparseGrad(table, ids, g) });
          const rows = tensor(
            Float32Array.from(ids.flatMap((id) => Array.from(before.slice(id * dim, (id + 1) * dim)))),
            'float32',
            [ids.length, dim],
          );
          const dense = vals(CASES[ci]!.make().step({ w: rows }, { w: tensor(g, 'float32', [ids.length, dim]) }).w);
          for (let v = 0; v < vocab; v++) {
            const k = ids.indexOf(v);
            const got = Array.from(table.data.slice(v * dim, (v + 1) * dim));
            expect(got).toEqual(
              k < 0 ? Array.from(before.slice(v * dim, (v + 1) * dim)) : dense.slice(k * dim, (k + 1) * dim),
            );
          }
        },
      ),
      params(40),
    );
  });
});

describe('clipping by global norm (dense and sparse together)', () => {
  it('globalNorm and clipFactor', () => {
    const t = new EmbeddingTable(3, 2, new Float32Array(6));
    const sparse: SparseGrad[] = [{ table: t, ids: Int32Array.from([2]), grad: tensor([[0, 4]]) }];
    expect(globalNorm([tensor([3, 0])], sparse)).toBe(5);
    expect(globalNorm([tensor([3, 0]), tensor([[4]])])).toBe(5);
    expect(globalNorm([])).toBe(0);
    expect(clipFactor(5, 1)).toBe(0.2);
    expect(clipFactor(5, undefined)).toBe(1);
    expect(clipFactor(0.5, 1)).toBe(1);
    expect(clipFactor(1, 1)).toBe(1);
  });

  it('dense g = [3, 0] and sparse row g = [0, 4] have norm 5; clipNorm 1 scales both by 0.2', () => {
    const t = new EmbeddingTable(3, 2, Float32Array.from([1, 1, 1, 1, 1, 1]));
    const opt = new SGD({ lr: 1, clipNorm: 1 });
    const p = opt.step(
      { a: tensor([1, 1]) },
      { a: tensor([3, 0]) },
      { t: { table: t, ids: Int32Array.from([2]), grad: tensor([[0, 4]]) } },
    );
    expectNear(vals(p.a), [1 - 0.6, 1]);
    expectNear(t.data, [1, 1, 1, 1, 1, 1 - 0.8]);
  });

  it('a norm under clipNorm is left alone', () => {
    const t = new EmbeddingTable(3, 2, Float32Array.from([1, 1, 1, 1, 1, 1]));
    const opt = new SGD({ lr: 1, clipNorm: 10 });
    const p = opt.step(
      { a: tensor([1, 1]) },
      { a: tensor([3, 0]) },
      { t: { table: t, ids: Int32Array.from([0]), grad: tensor([[0, 4]]) } },
    );
    expectNear(vals(p.a), [-2, 1]);
    expectNear(t.data, [1, -3, 1, 1, 1, 1]);
  });

  it('clipping applies before coupled weight decay and momentum (SGD) and before the moments (Adam)', () => {
    // SGD λ=0.1, clip 0.5: g1 has norm √0.26 ≈ 0.5099, factor 0.5/0.5099; g' = factor·g1 + 0.1·θ
    const f = 0.5 / Math.sqrt(0.26);
    const [a] = twoSteps(new SGD({ lr: 0.1, weightDecay: 0.1, clipNorm: 0.5 }));
    expectNear(a, [1 - 0.1 * (f * 0.5 + 0.1), -2 - 0.1 * (f * 0.1 - 0.2)]);
    const opt = new Adam({ lr: 0.1, clipNorm: 0.5 });
    opt.step({ x: tensor([1, -2]) }, { x: tensor(g1) });
    expectNear(vals(opt.getState()['dense.0.0']!), [0.1 * f * 0.5, 0.1 * f * 0.1], 1e-8);
  });
});

describe('validation: rejected steps change nothing', () => {
  function setup() {
    const table = new EmbeddingTable(4, 2, Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]));
    const opt = new Adam({ lr: 0.1 });
    const p = opt.step(
      { w: tensor([1, -2]) },
      { w: tensor(g1) },
      {
        e: {
          table,
          ids: Int32Array.from([0, 2]),
          grad: tensor([
            [1, 1],
            [1, 1],
          ]),
        },
      },
    );
    return { table, opt, p, state: opt.getState(), data: Array.from(table.data) };
  }
  const stateValues = (s: Record<string, Tensor>): Record<string, number[]> =>
    Object.fromEntries(Object.entries(s).map(([k, v]) => [k, vals(v)]));

  const bad: {
    name: string;
    err: new (...a: never[]) => Error;
    msg: RegExp;
    run: (o: ReturnType<typeof setup>) => unknown;
  }[] = [
    {
      name: 'NaN in a dense gradient',
      err: NonFiniteError,
      msg: /Adam.step: gradient of parameter 0 has NaN at flat index 1; the step was rejected/,
      run: ({ opt, p, table }) =>
        opt.step(p, { w: tensor([0.1, NaN]) }, { e: { table, ids: Int32Array.from([1]), grad: tensor([[1, 1]]) } }),
    },
    {
      name: 'Infinity in a sparse gradient',
      err: NonFiniteError,
      msg: /gradient of table "e" has Infinity/,
      run: ({ opt, p, table }) =>
        opt.step(
          p,
          { w: tensor([0.1, 0.2]) },
          {
            e: {
              table,
              ids: Int32Array.from([1, 3]),
              grad: tensor([
                [1, 1],
                [Infinity, 1],
              ]),
            },
          },
        ),
    },
    {
      name: 'gradient shape mismatch',
      err: ShapeError,
      msg: /gradient 0 is \[3\] but its parameter is \[2\]/,
      run: ({ opt, p }) => opt.step(p, { w: tensor([0.1, 0.2, 0.3]) }),
    },
    {
      name: 'sparse gradient shape mismatch',
      err: ShapeError,
      msg: /sparse.e.grad is \[1,2\]; need \[2, 2\]/,
      run: ({ opt, p, table }) =>
        opt.step(p, { w: tensor([0.1, 0.2]) }, { e: { table, ids: Int32Array.from([1, 3]), grad: tensor([[1, 1]]) } }),
    },
    {
      name: 'repeated sparse ids',
      err: ArgumentError,
      msg: /sparse.e.ids repeats 1; need distinct ids/,
      run: ({ opt, p, table }) =>
        opt.step(
          p,
          { w: tensor([0.1, 0.2]) },
          {
            e: {
              table,
              ids: Int32Array.from([1, 3, 1]),
              grad: tensor([
                [1, 1],
                [1, 1],
                [1, 1],
              ]),
            },
          },
        ),
    },
    {
      name: 'sparse id out of range',
      err: ArgumentError,
      msg: /sparse.e.ids has 4; need 0 <= id < 4/,
      run: ({ opt, p, table }) =>
        opt.step(p, { w: tensor([0.1, 0.2]) }, { e: { table, ids: Int32Array.from([4]), grad: tensor([[1, 1]]) } }),
    },
    {
      name: 'sparse entry without ids',
      err: ArgumentError,
      msg: /sparse.e must be \{table, ids, grad\}/,
      run: ({ opt, p, table }) =>
        opt.step(p, { w: tensor([0.1, 0.2]) }, { e: { table, ids: [1] as never, grad: tensor([[1, 1]]) } }),
    },
    {
      name: 'sparse entry without a table',
      err: ArgumentError,
      msg: /sparse.e must be \{table, ids, grad\}/,
      run: ({ opt, p }) =>
        opt.step(p, { w: tensor([0.1, 0.2]) }, { e: { ids: Int32Array.from([1]), grad: tensor([[1, 1]]) } as never }),
    },
    {
      name: 'changed parameter tree (a new shape)',
      err: ShapeError,
      msg: /the parameter tree changed since the first step \(\[2\] → \[3\]\)/,
      run: ({ opt }) => opt.step({ w: tensor([1, 2, 3]) }, { w: tensor([0.1, 0.2, 0.3]) }),
    },
    {
      name: 'changed parameter tree (an extra leaf)',
      err: ShapeError,
      msg: /the parameter tree changed/,
      run: ({ opt }) => opt.step({ w: tensor([1, 2]), x: tensor([1]) }, { w: tensor([0.1, 0.2]), x: tensor([1]) }),
    },
    {
      name: 'grads with a different number of tensors',
      err: ShapeError,
      msg: /grads has 2 tensors but params has 1/,
      run: ({ opt, p }) => opt.step(p, { w: tensor([0.1, 0.2]), x: tensor([1]) }),
    },
    {
      name: 'integer parameter',
      err: ArgumentError,
      msg: /parameter 0 is int32; only float parameters can be optimised/,
      run: ({ opt }) => opt.step({ w: tensor([1, 2], 'int32') }, { w: tensor([0.1, 0.2]) }),
    },
    {
      name: 'a non-tensor in the tree',
      err: ArgumentError,
      msg: /Adam.step: grads.w\[0\] must be a Tensor/,
      run: ({ opt, p }) => opt.step(p, { w: [0.1, 0.2] }),
    },
  ];

  for (const b of bad) {
    it(`${b.name} → ${b.err.name}, with no state change`, () => {
      const o = setup();
      const pBefore = vals(o.p.w);
      expect(() => b.run(o)).toThrow(b.err);
      expect(() => b.run(o)).toThrow(b.msg);
      expect(o.opt.steps).toBe(1);
      expect(stateValues(o.opt.getState())).toEqual(stateValues(o.state));
      expect(Array.from(o.table.data)).toEqual(o.data);
      expect(vals(o.p.w)).toEqual(pBefore);
      // The optimiser continues exactly as if the rejected step never happened.
      const ref = setup();
      const next = o.opt.step(
        o.p,
        { w: tensor(g2) },
        { e: { table: o.table, ids: Int32Array.from([2]), grad: tensor([[0.5, -0.5]]) } },
      );
      const want = ref.opt.step(
        ref.p,
        { w: tensor(g2) },
        { e: { table: ref.table, ids: Int32Array.from([2]), grad: tensor([[0.5, -0.5]]) } },
      );
      expect(vals(next.w)).toEqual(vals(want.w));
      expect(Array.from(o.table.data)).toEqual(Array.from(ref.table.data));
    });
  }

  it('constructor options are checked', () => {
    expect(() => new SGD({ lr: 0 })).toThrow(ArgumentError);
    expect(() => new SGD({ lr: NaN })).toThrow(/SGD: lr must be a number in \(0, 1000000\], got NaN/);
    expect(() => new SGD({ lr: 0.1, momentum: 1.5 })).toThrow(ArgumentError);
    expect(() => new SGD({ lr: 0.1, weightDecay: -1 })).toThrow(ArgumentError);
    expect(() => new SGD({ lr: 0.1, clipNorm: 0 })).toThrow(ArgumentError);
    expect(() => new Adam({ lr: 0.1, beta1: 1.1 })).toThrow(/Adam: beta1/);
    expect(() => new Adam({ lr: 0.1, eps: 0 })).toThrow(ArgumentError);
    expect(() => new AdamW({ lr: -1 })).toThrow(/AdamW: lr/);
    expect(() => new SGD(null as never)).toThrow(ArgumentError);
    expect(new AdamW({ lr: 0.1 }).weightDecay).toBe(0.01);
    expect(new AdamW({ lr: 0.1, weightDecay: 0 }).weightDecay).toBe(0);
  });
});

describe('getState / setState', () => {
  const run = (
    opt: Opt,
    p: { a: Tensor; b: Tensor },
    t: EmbeddingTable,
    k: number,
    n: number,
    rng: Rng,
  ): { a: Tensor; b: Tensor } => {
    for (let s = 0; s < n; s++) {
      const ga = tensor(Array.from({ length: 3 }, () => rng.normal()));
      const gb = tensor([[rng.normal(), rng.normal()]]);
      const ids = Int32Array.from([(k + s) % t.vocab, (k + s + 2) % t.vocab]);
      const gt = tensor(
        Array.from({ length: 2 * t.dim }, () => rng.normal()),
        'float32',
        [2, t.dim],
      );
      p = opt.step(p, { a: ga, b: gb }, { tab: { table: t, ids, grad: gt } });
    }
    return p;
  };

  for (const [name, make] of [
    ['SGD Nesterov + weight decay', () => new SGD({ lr: 0.05, momentum: 0.8, nesterov: true, weightDecay: 0.01 })],
    ['AdamW with clipping', () => new AdamW({ lr: 0.05, clipNorm: 1 })],
  ] as const) {
    it(`${name}: a restored optimiser (and table) continues bit-identically`, () => {
      const rng = new Rng(11);
      const table = new EmbeddingTable(6, 3, { rng: new Rng(5) });
      const a = make();
      const p = run(a, { a: tensor([0.1, 0.2, 0.3]), b: tensor([[1, -1]]) }, table, 0, 3, rng);
      const state = a.getState();
      const snap = table.snapshot();
      expect(Object.keys(state).sort()).toEqual(
        name.startsWith('SGD')
          ? ['dense.0.0', 'dense.1.0', 't', 'table.tab.0']
          : ['dense.0.0', 'dense.0.1', 'dense.1.0', 'dense.1.1', 't', 'table.tab.0', 'table.tab.1'],
      );
      const rngState = rng.getState();
      const pA = run(a, p, table, 3, 3, rng);
      const dataA = Array.from(table.data);

      const b = make();
      b.setState(state);
      expect(b.steps).toBe(3);
      const table2 = new EmbeddingTable(6, 3, { rng: new Rng(99) });
      table2.load(snap);
      const pB = run(b, p, table2, 3, 3, Rng.fromState(rngState));
      expect(vals(pB.a)).toEqual(vals(pA.a));
      expect(vals(pB.b)).toEqual(vals(pA.b));
      expect(Array.from(table2.data)).toEqual(dataA);
      expect(b.steps).toBe(6);
      // getState copies: stepping on did not alter the captured state.
      expect(state['t']!.item()).toBe(3);
    });
  }

  it('setState rejects malformed state', () => {
    const opt = new Adam({ lr: 0.1 });
    expect(() => opt.setState({})).toThrow(/Adam.setState: state.t must be an int32 scalar/);
    expect(() => opt.setState({ t: tensor([1], 'int32'), bogus: tensor([1]) })).toThrow(/unknown state entry "bogus"/);
    expect(() => opt.setState({ t: tensor([1], 'int32'), 'dense.0.0': tensor([1], 'int32') })).toThrow(ArgumentError);
    expect(opt.steps).toBe(0);
  });
});

describe('optimiser options', () => {
  it('unknown option keys are rejected by name (a misspelt momentum would otherwise be ignored)', () => {
    expect(() => new SGD({ lr: 0.1, momentun: 0.9 } as never)).toThrow(ArgumentError);
    expect(() => new SGD({ lr: 0.1, momentun: 0.9 } as never)).toThrow(
      /^SGD: unknown option "momentun"; allowed: lr, clipNorm, momentum, nesterov, weightDecay/,
    );
    expect(() => new Adam({ lr: 0.1, beta: 0.9 } as never)).toThrow(/^Adam: unknown option "beta"/);
    expect(() => new AdamW({ lr: 0.1, decay: 0.1 } as never)).toThrow(/^AdamW: unknown option "decay"/);
    expect(new AdamW({ lr: 0.1, weightDecay: 0.1, beta1: 0.8, beta2: 0.99, eps: 1e-6, clipNorm: 1 }).beta1).toBe(0.8);
  });
});
