/**
 * The extended estimators of the cache loss (numNegatives, inBatchNegatives,
 * queryGradient 'exact'; src/losses/cacheLossTerms.ts) are unbiased for the
 * objectives docs/estimators.md states, checked exactly: the expectation over
 * the S sampled indices of every query is computed by enumerating every
 * S-tuple of candidates (the retrieval function returns the m-th entry of
 * the tuple on its m-th call; a tuple's probability for query i is
 * Π_m P_i,cₘ with P_i the softmax over query i's candidate logits), not by
 * sampling. The objectives, differentiated by autodiff with the cache
 * embeddings computed WITH gradient (a fresh cache):
 *
 *   numNegatives only:   -log softmax([s⁺ᵢ, sᵢ·cache])₀
 *   inBatchNegatives:    -log softmax([s⁺ᵢ, sᵢᵦ for the allowed b ≠ i, sᵢ·cache])₀
 *                        (allowed: b ≠ i and, with ids, pos id b ≠ pos id i; cache rows whose
 *                        id is any batch positive's id are left out: they take part fresh)
 *   queryGradient exact: the same objectives.
 *
 * With a STALE cache, 'exact' gives the query tower the exact gradient of
 * the softmax over the stale cache for EVERY draw (no expectation needed).
 *
 * Float64 throughout (the straightforward path). Tolerance as the reference
 * estimator's test: |lib - ref| <= 1e-9·||ref||∞ + 1e-12; controls with a
 * wrong weighting or the wrong objective show the comparison can fail.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CacheClassificationLoss,
  Rng,
  add,
  concat,
  div,
  gather,
  grad,
  logSumExp,
  matmul,
  mul,
  normal,
  reshape,
  scaleTransform,
  stopGradient,
  sub,
  sum,
  tensor,
  type CacheClassificationLossOptions,
  type Tensor,
} from '../../src/index.js';
import { params } from '../util/props.js';
import {
  TRANSFORMS,
  candidates,
  expectGradsClose,
  label,
  makeCache,
  rows,
  scenarioArb,
  setup,
  softmaxRow,
  type Params,
  type Scenario,
} from '../util/enumeration.js';

interface Estimator {
  numNegatives: number;
  inBatchNegatives: boolean;
  queryGradient: 'sampled' | 'exact';
}

/** The scenario as the library's exclusions see it with in-batch negatives: cached copies of batch positives are out. */
function withInBatchExclusion(sc: Scenario, est: Estimator): Scenario {
  if (!est.inBatchNegatives || sc.ids === undefined) return sc;
  const inBatch = new Set(sc.ids.pos);
  const base = sc.maskEmptySlots && sc.valid ? sc.valid : new Array<boolean>(sc.n).fill(true);
  return { ...sc, maskEmptySlots: true, valid: base.map((v, j) => v && !inBatch.has(sc.ids!.cache[j]!)) };
}

/** Every S-tuple of [0, width). */
function tuples(width: number, S: number): number[][] {
  let out: number[][] = [[]];
  for (let m = 0; m < S; m++) out = out.flatMap((t) => Array.from({ length: width }, (_, c) => [...t, c]));
  return out;
}

interface Run {
  lib: Record<string, Tensor>;
  ref: Record<string, Tensor>;
}

/**
 * The expected gradient of mean_i trainingLoss_i (by enumeration) and the
 * gradient of the objective. `weights` replaces the softmax weighting of the
 * draws (controls); `stale` perturbs the cached embeddings.
 */
function compare(sc: Scenario, est: Estimator, opts: { stale?: number; weights?: 'uniform' } = {}): Run {
  const { xc, p, queryTower, docNet } = setup(sc);
  const qv = rows(queryTower(p));
  const freshCv = docNet(p)({ feat: xc });
  const staleShift = opts.stale
    ? normal([sc.n, sc.d], new Rng(sc.seed + 1), { dtype: 'float64', std: opts.stale })
    : null;
  const cv = rows(staleShift ? add(freshCv, staleShift) : freshCv);
  const view = withInBatchExclusion(sc, est);
  const { logits, cols } = candidates(view, qv, cv);
  const width = logits[0]!.length;
  // A query without a cache candidate has sampled terms of weight 0 but (with in-batch negatives) a
  // non-zero loss: any draw distribution that sums to 1 gives its expectation; take column 0.
  const P = logits.map((l) =>
    !l.some((v) => v !== -Infinity)
      ? l.map((_, c) => (c === 0 ? 1 : 0))
      : opts.weights === 'uniform'
        ? l.map((v) =>
            l.some((x) => x !== -Infinity) ? (v === -Infinity ? 0 : 1 / l.filter((x) => x !== -Infinity).length) : 0,
          )
        : softmaxRow(l),
  );

  let tuple: number[] = [];
  let calls = 0;
  const loss = new CacheClassificationLoss({
    embeddingKey: 'emb',
    dataKeys: ['feat'],
    reducer: 'none',
    maskEmptySlots: sc.maskEmptySlots,
    ...(sc.transform.lib ? { scoreTransform: sc.transform.lib } : {}),
    ...(sc.topK !== undefined ? { topK: sc.topK } : {}),
    ...(sc.ids ? { falseNegativeKey: 'id' } : {}),
    ...est,
    retrievalFn: () => tensor(new Array<number>(sc.b).fill(tuple[calls++ % est.numNegatives]!), 'int32', [sc.b, 1]),
  } as CacheClassificationLossOptions);
  const callOpts = sc.ids ? { positiveIds: tensor(sc.ids.pos, 'int32', [sc.b]) } : {};
  const all = tuples(width, est.numNegatives);

  const expected = (q: Params): Tensor => {
    const doc = docNet(q);
    const emb = stopGradient(staleShift ? add(doc({ feat: xc }), staleShift) : doc({ feat: xc }));
    const cache = { only: makeCache(sc, emb, xc) };
    let total: Tensor = tensor(0, 'float64');
    for (const t of all) {
      tuple = t;
      calls = 0;
      const out = loss.call(doc, queryTower(q), q.pos, cache, callOpts);
      expect(out.trainingLoss.shape).toEqual([sc.b]);
      const w = tensor(
        P.map((row) => t.reduce((acc, c) => acc * row[c]!, 1)),
        'float64',
        [sc.b],
      );
      total = add(total, sum(mul(out.trainingLoss, w)));
      const idx = Array.from(out.retrievedIndices.dataSync() as Int32Array);
      expect(idx).toEqual(cols.flatMap((cc) => t.map((c) => cc[c]!)));
    }
    return div(total, sc.b);
  };

  const objective = (q: Params, cacheEmb: (q: Params) => Tensor): Tensor => {
    const T = (s: Tensor): Tensor => (sc.transform.lib ? sc.transform.lib(s) : s);
    const qe = queryTower(q);
    const emb = cacheEmb(q);
    const sPos = T(sum(mul(qe, q.pos), { axis: 1 }));
    const Sc = reshape(T(matmul(qe, emb, { transposeB: true })), [sc.b * sc.n]);
    const Sb = reshape(T(matmul(qe, q.pos, { transposeB: true })), [sc.b * sc.b]);
    let total: Tensor = tensor(0, 'float64');
    for (let i = 0; i < sc.b; i++) {
      const cacheCols = cols[i]!.filter((_, c) => logits[i]![c] !== -Infinity);
      const batch = est.inBatchNegatives
        ? Array.from({ length: sc.b }, (_, j) => j).filter(
            (j) => j !== i && (!sc.ids || sc.ids.pos[j] !== sc.ids.pos[i]),
          )
        : [];
      if (cacheCols.length + batch.length === 0) continue;
      const pos = gather(sPos, tensor([i], 'int32'));
      const parts = [pos];
      if (cacheCols.length > 0)
        parts.push(
          gather(
            Sc,
            tensor(
              cacheCols.map((j) => i * sc.n + j),
              'int32',
            ),
          ),
        );
      if (batch.length > 0)
        parts.push(
          gather(
            Sb,
            tensor(
              batch.map((j) => i * sc.b + j),
              'int32',
            ),
          ),
        );
      total = add(total, sub(logSumExp(concat(parts)), reshape(pos, [])));
    }
    return div(total, sc.b);
  };

  const lib = grad(expected)(p) as Record<string, Tensor>;
  const ref = grad((q: Params) => objective(q, (qq) => docNet(qq)({ feat: xc })))(p) as Record<string, Tensor>;
  return { lib, ref };
}

const estimatorArb = (o: { S: number[]; inBatch: boolean[]; exact: boolean[] }): fc.Arbitrary<Estimator> =>
  fc.record({
    numNegatives: fc.constantFrom(...o.S),
    inBatchNegatives: fc.constantFrom(...o.inBatch),
    queryGradient: fc.constantFrom(...o.exact.map((e) => (e ? ('exact' as const) : ('sampled' as const)))),
  });

/** Small scenarios: the enumeration has width^S terms. */
const small = (features: { topK: boolean; mask: boolean }) =>
  scenarioArb(features).filter((sc) => (sc.topK ?? sc.n) <= 4);

const estLabel = (sc: Scenario, e: Estimator) =>
  `${label(sc)} S=${e.numNegatives} inBatch=${e.inBatchNegatives} q=${e.queryGradient}`;

describe('extended cache-loss estimators are unbiased (exact expectation over every draw)', () => {
  it('numNegatives S = 2, 3: E[∇] = ∇ cache-softmax loss (query tower, positives, doc network)', () => {
    fc.assert(
      fc.property(
        small({ topK: true, mask: true }),
        estimatorArb({ S: [2, 3], inBatch: [false], exact: [false] }),
        (sc, e) => {
          const { lib, ref } = compare(sc, e);
          expectGradsClose(lib, ref, estLabel(sc, e));
        },
      ),
      params(60),
    );
  });

  it('inBatchNegatives (S = 1, 2): E[∇] = ∇ softmax over [s⁺, in-batch negatives, cache], both towers', () => {
    fc.assert(
      fc.property(
        small({ topK: true, mask: true }),
        estimatorArb({ S: [1, 2], inBatch: [true], exact: [false] }),
        (sc, e) => {
          const { lib, ref } = compare(sc, e);
          expectGradsClose(lib, ref, estLabel(sc, e));
        },
      ),
      params(80),
    );
  });

  it("queryGradient 'exact' (any S, with or without in-batch negatives): E[∇] = ∇ of the same objectives", () => {
    fc.assert(
      fc.property(
        small({ topK: true, mask: true }),
        estimatorArb({ S: [1, 2], inBatch: [false, true], exact: [true] }),
        (sc, e) => {
          const { lib, ref } = compare(sc, e);
          expectGradsClose(lib, ref, estLabel(sc, e));
        },
      ),
      params(80),
    );
  });

  it('explicit: every transform and doc network, all three options together, non-trivial gradients', () => {
    for (const transform of TRANSFORMS) {
      for (const docKind of ['linear', '2-layer'] as const) {
        const sc: Scenario = {
          b: 3,
          n: 4,
          d: 3,
          transform,
          docKind,
          maskEmptySlots: true,
          ids: { cache: [0, 1, 2, 3], pos: [1, 5, 6] },
          seed: 11,
        };
        const e: Estimator = { numNegatives: 2, inBatchNegatives: true, queryGradient: 'exact' };
        const { lib, ref } = compare(sc, e);
        expectGradsClose(lib, ref, estLabel(sc, e));
        for (const k of Object.keys(ref))
          expect(Math.max(...Array.from(ref[k]!.dataSync() as Float64Array, Math.abs)), k).toBeGreaterThan(1e-3);
      }
    }
  });
});

describe("queryGradient 'exact' gives the query the exact gradient whatever is drawn", () => {
  it('with a STALE cache: ∇ query tower of every single draw = ∇ of the softmax over the stale cache', () => {
    fc.assert(
      fc.property(
        small({ topK: true, mask: true }),
        fc.boolean(),
        fc.integer({ min: 0, max: 3 }),
        (sc, inBatch, draw) => {
          const { xc, p, queryTower, docNet } = setup(sc);
          const shift = normal([sc.n, sc.d], new Rng(sc.seed + 1), { dtype: 'float64', std: 0.5 });
          const staleEmb = add(docNet(p)({ feat: xc }), shift); // a constant: p is fixed here
          const e: Estimator = { numNegatives: 1, inBatchNegatives: inBatch, queryGradient: 'exact' };
          const view = withInBatchExclusion(sc, e);
          const cv = rows(staleEmb);
          const { logits, cols } = candidates(view, rows(queryTower(p)), cv);
          const width = logits[0]!.length;
          const loss = new CacheClassificationLoss({
            embeddingKey: 'emb',
            dataKeys: ['feat'],
            maskEmptySlots: sc.maskEmptySlots,
            ...(sc.transform.lib ? { scoreTransform: sc.transform.lib } : {}),
            ...(sc.topK !== undefined ? { topK: sc.topK } : {}),
            ...(sc.ids ? { falseNegativeKey: 'id' } : {}),
            ...e,
            retrievalFn: () => tensor(new Array<number>(sc.b).fill(draw % width), 'int32', [sc.b, 1]),
          });
          const cache = { only: makeCache(sc, staleEmb, xc) };
          const callOpts = sc.ids ? { positiveIds: tensor(sc.ids.pos, 'int32', [sc.b]) } : {};
          const lib = grad(
            (wq: Tensor) => loss.call(docNet(p), queryTower({ ...p, wq }), p.pos, cache, callOpts).trainingLoss,
          )(p.wq);
          // the objective over the stale cache (constants), differentiated in wq only
          const ref = grad((wq: Tensor) => {
            const T = (s: Tensor): Tensor => (sc.transform.lib ? sc.transform.lib(s) : s);
            const qe = queryTower({ ...p, wq });
            const sPos = T(sum(mul(qe, p.pos), { axis: 1 }));
            const Sc = reshape(T(matmul(qe, staleEmb, { transposeB: true })), [sc.b * sc.n]);
            const Sb = reshape(T(matmul(qe, p.pos, { transposeB: true })), [sc.b * sc.b]);
            let total: Tensor = tensor(0, 'float64');
            for (let i = 0; i < sc.b; i++) {
              const cc = cols[i]!.filter((_, c) => logits[i]![c] !== -Infinity);
              const bb = inBatch
                ? Array.from({ length: sc.b }, (_, j) => j).filter(
                    (j) => j !== i && (!sc.ids || sc.ids.pos[j] !== sc.ids.pos[i]),
                  )
                : [];
              if (cc.length + bb.length === 0) continue;
              const pos = gather(sPos, tensor([i], 'int32'));
              const parts = [pos];
              if (cc.length)
                parts.push(
                  gather(
                    Sc,
                    tensor(
                      cc.map((j) => i * sc.n + j),
                      'int32',
                    ),
                  ),
                );
              if (bb.length)
                parts.push(
                  gather(
                    Sb,
                    tensor(
                      bb.map((j) => i * sc.b + j),
                      'int32',
                    ),
                  ),
                );
              total = add(total, sub(logSumExp(concat(parts)), reshape(pos, [])));
            }
            return div(total, sc.b);
          })(p.wq);
          expectGradsClose({ wq: lib }, { wq: ref }, `${label(sc)} inBatch=${inBatch} draw=${draw}`);
        },
      ),
      params(100),
    );
  });
});

describe('controls: the comparison fails on a biased estimate', () => {
  const sc: Scenario = {
    b: 3,
    n: 4,
    d: 2,
    transform: TRANSFORMS[1]!,
    docKind: 'linear',
    maskEmptySlots: true,
    ids: { cache: [0, 1, 2, 3], pos: [1, 5, 6] },
    seed: 5,
  };
  const maxDiff = ({ lib, ref }: Run): number =>
    Math.max(
      ...Object.keys(ref).flatMap((k) => {
        const a = lib[k]!.dataSync() as Float64Array,
          r = ref[k]!.dataSync() as Float64Array;
        return Array.from(r, (v, i) => Math.abs(a[i]! - v));
      }),
    );

  it('uniform instead of softmax weights over the draws (S = 2, in-batch, exact)', () => {
    const e: Estimator = { numNegatives: 2, inBatchNegatives: true, queryGradient: 'exact' };
    expect(maxDiff(compare(sc, e))).toBeLessThan(1e-9);
    expect(maxDiff(compare(sc, e, { weights: 'uniform' }))).toBeGreaterThan(1e-3);
  });

  it('a stale cache biases the doc-network side even with the exact query gradient', () => {
    const e: Estimator = { numNegatives: 1, inBatchNegatives: false, queryGradient: 'exact' };
    expect(maxDiff(compare(sc, e, { stale: 0.5 }))).toBeGreaterThan(1e-3);
  });
});

describe('every option off is the reference, bit for bit', () => {
  it('explicit defaults give the same values and gradients as no options (float32, fused path)', () => {
    const rng = new Rng(3);
    const q = normal([8, 16], rng);
    const pos = normal([8, 16], rng);
    const cacheEmb = normal([512, 16], rng);
    const cache = {
      c: {
        data: { emb: cacheEmb, feat: cacheEmb },
        age: tensor(new Array<number>(512).fill(0), 'int32'),
      },
    };
    const doc = (f: Record<string, Tensor>): Tensor => mul(f.feat!, 1.5);
    const run = (extra: Partial<CacheClassificationLossOptions>) => {
      const loss = new CacheClassificationLoss({ embeddingKey: 'emb', dataKeys: ['feat'], rng: new Rng(9), ...extra });
      let out!: ReturnType<typeof loss.call>;
      const g = grad((qq: Tensor) => {
        out = loss.call(doc, qq, pos, cache);
        return out.trainingLoss;
      })(q);
      return {
        g: Array.from(g.dataSync()),
        v: out.trainingLoss.item(),
        idx: Array.from(out.retrievedIndices.dataSync()),
      };
    };
    const a = run({});
    const b = run({ numNegatives: 1, inBatchNegatives: false, queryGradient: 'sampled' });
    expect(b).toEqual(a);
  });
});

describe('the fused path (float32, the streaming scan) equals the straightforward path', () => {
  /** Small-integer embeddings: every dot product is exact in float32, in any summation order. */
  const intCase = (seed: number, b: number, n: number, d: number) => {
    const r = new Rng(seed);
    const ints = (rows: number, cols: number): number[][] =>
      Array.from({ length: rows }, () => Array.from({ length: cols }, () => r.int(7) - 3));
    return { q: tensor(ints(b, d)), pos: tensor(ints(b, d)), emb: tensor(ints(n, d)) };
  };

  it('Gumbel with numNegatives S: the same S items per query, the same losses and gradients (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 1e6 }),
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 700 }),
        fc.integer({ min: 1, max: 4 }),
        fc.boolean(),
        (seed, b, n, S, inBatch) => {
          const { q, pos, emb } = intCase(seed, b, n, 5);
          const ids = tensor(
            Array.from({ length: n }, (_, j) => j % 11),
            'int32',
          );
          const cache = {
            c: { data: { emb, feat: emb, id: ids }, age: tensor(new Array<number>(n).fill(0), 'int32') },
          };
          const positiveIds = tensor(
            Array.from({ length: b }, (_, i) => (3 * i) % 11),
            'int32',
          );
          const run = (fused: boolean) => {
            const loss = new CacheClassificationLoss({
              embeddingKey: 'emb',
              dataKeys: ['feat'],
              scoreTransform: scaleTransform(0.5),
              rng: new Rng(seed),
              sampler: 'gumbel',
              falseNegativeKey: 'id',
              numNegatives: S,
              inBatchNegatives: inBatch,
              fused,
            });
            let out!: ReturnType<typeof loss.call>;
            const g = grad((qq: Tensor) => {
              out = loss.call((f) => mul(f.feat!, 0.5), qq, pos, cache, { positiveIds });
              return out.trainingLoss;
            })(q);
            return {
              idx: Array.from(out.retrievedIndices.dataSync()),
              g: Array.from(g.dataSync() as Float32Array),
              out,
            };
          };
          const a = run(true),
            s = run(false);
          expect(a.idx).toEqual(s.idx);
          a.g.forEach((v, k) =>
            expect(Math.abs(v - s.g[k]!)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(s.g[k]!))),
          );
          const il = (t: Tensor) => t.item() as number;
          expect(Math.abs(il(a.out.interpretableLoss) - il(s.out.interpretableLoss))).toBeLessThanOrEqual(1e-5);
        },
      ),
      params(40),
    );
  });

  it("queryGradient 'exact': the query gradient equals autodiff of the dense softmax over the cache (float32)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 1e6 }),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 900 }),
        fc.boolean(),
        fc.option(fc.constantFrom(1, 2, 3, 4), { nil: undefined }),
        (seed, b, n0, inBatch, topKDiv) => {
          const r = new Rng(seed);
          const d = 8;
          const n = topKDiv !== undefined ? n0 - (n0 % topKDiv) + topKDiv : n0;
          const topK = topKDiv !== undefined ? n / topKDiv : undefined;
          const q = normal([b, d], r, { std: 0.5 });
          const pos = normal([b, d], r, { std: 0.5 });
          const emb = normal([n, d], r, { std: 0.5 });
          const valid = tensor(Array.from({ length: n }, () => r.uniform() < 0.9));
          const cache = { c: { data: { emb, feat: emb }, age: tensor(new Array<number>(n).fill(0), 'int32'), valid } };
          const loss = new CacheClassificationLoss({
            embeddingKey: 'emb',
            dataKeys: ['feat'],
            scoreTransform: scaleTransform(3),
            rng: new Rng(seed + 1),
            sampler: 'categorical',
            queryGradient: 'exact',
            inBatchNegatives: inBatch,
            ...(topK !== undefined ? { topK } : {}),
          });
          const g = grad((qq: Tensor) => loss.call((f) => f.feat!, qq, pos, cache).trainingLoss)(q);
          // dense reference in float64: -log softmax([s⁺, (in-batch), candidates])₀ with stale constants
          const q64 = tensor(q.toArray() as number[][], 'float64');
          const v = Array.from(valid.dataSync() as Uint8Array);
          const ref = grad((qq: Tensor) => {
            const sPos = mul(sum(mul(qq, tensor(pos.toArray() as number[][], 'float64')), { axis: 1 }), 3);
            const all = mul(matmul(qq, tensor(emb.toArray() as number[][], 'float64'), { transposeB: true }), 3);
            const sb = mul(matmul(qq, tensor(pos.toArray() as number[][], 'float64'), { transposeB: true }), 3);
            const allv = all.toArray() as number[][];
            let total: Tensor = tensor(0, 'float64');
            for (let i = 0; i < b; i++) {
              let cols = Array.from({ length: n }, (_, j) => j).filter((j) => v[j]);
              if (topK !== undefined) {
                const gsz = n / topK;
                cols = [];
                for (let gi = 0; gi < topK; gi++) {
                  let best = -1;
                  for (let j = gi * gsz; j < (gi + 1) * gsz; j++)
                    if (v[j] && (best < 0 || allv[i]![j]! > allv[i]![best]!)) best = j;
                  if (best >= 0) cols.push(best);
                }
              }
              const parts = [gather(sPos, tensor([i], 'int32'))];
              if (cols.length)
                parts.push(
                  gather(
                    reshape(all, [b * n]),
                    tensor(
                      cols.map((j) => i * n + j),
                      'int32',
                    ),
                  ),
                );
              if (inBatch && b > 1)
                parts.push(
                  gather(
                    reshape(sb, [b * b]),
                    tensor(
                      Array.from({ length: b }, (_, j) => j)
                        .filter((j) => j !== i)
                        .map((j) => i * b + j),
                      'int32',
                    ),
                  ),
                );
              total = add(total, sub(logSumExp(concat(parts)), reshape(parts[0]!, [])));
            }
            return div(total, b);
          })(q64);
          const got = Array.from(g.dataSync() as Float32Array),
            want = Array.from(ref.dataSync() as Float64Array);
          const scale = Math.max(1e-3, ...want.map(Math.abs));
          got.forEach((x, k) => expect(Math.abs(x - want[k]!), `entry ${k}`).toBeLessThanOrEqual(2e-4 * scale));
        },
      ),
      params(40),
    );
  });
});
