/**
 * Multi-cache: one cache split into several data sources (any split, source
 * names whose SORTED order defines the concatenation; the record is built in
 * a shuffled insertion order) behaves exactly like the single cache:
 *  - the same losses, probPos, staleness, hasNegative and gradients for the
 *    same sampled global index (injected via retrievalFn), and the same
 *    indices when sampling with the same seeded generator;
 *  - the refresh data, applied per source with updateCache, gives the
 *    single cache's refresh, split the same way (data, ages, valid flags).
 * The computations are identical on identical data, so equality is exact.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CacheClassificationLoss,
  CacheManager,
  Rng,
  concat,
  grad,
  matmul,
  normal,
  slice,
  tanh,
  tensor,
  type NegativeCache,
  type Tensor,
} from '../../src/index.js';
import { params } from '../util/props.js';
import { snapshotCache } from '../util/cacheModel.js';

const D = 2;
const F = 3;

interface Split {
  n: number;
  b: number;
  sizes: number[];
  names: string[];
  order: number[]; // insertion order of the sources in the record
  valid: boolean[] | null;
  /** Sources built without valid flags (their rows count as valid: forced true in the single cache). */
  dropValid: boolean[];
  useLru: boolean;
  topK: number | undefined;
  globalIdx: number[];
  seed: number;
}

const splitArb: fc.Arbitrary<Split> = fc
  .record({
    sizes: fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 4 }),
    b: fc.integer({ min: 1, max: 5 }),
    seed: fc.integer({ min: 0, max: 2 ** 30 }),
    useLru: fc.boolean(),
  })
  .chain(({ sizes, b, seed, useLru }) => {
    const n = sizes.reduce((a, s) => a + s, 0);
    const divisors = Array.from({ length: n }, (_, i) => i + 1).filter((k) => n % k === 0);
    return fc
      .record({
        names: fc
          .uniqueArray(fc.string({ minLength: 1, maxLength: 4 }), { minLength: sizes.length, maxLength: sizes.length })
          .map((ns) => ns.slice().sort()),
        order: fc.shuffledSubarray(
          sizes.map((_, i) => i),
          { minLength: sizes.length, maxLength: sizes.length },
        ),
        valid: fc.option(fc.array(fc.boolean(), { minLength: n, maxLength: n }), { nil: null }),
        dropValid: fc.array(fc.boolean(), { minLength: sizes.length, maxLength: sizes.length }),
        topK: fc.option(fc.constantFrom(...divisors), { nil: undefined }),
        globalIdx: fc.array(fc.integer({ min: 0, max: n - 1 }), { minLength: b, maxLength: b }),
      })
      .map((r) => ({ n, b, sizes, seed, useLru, ...r }));
  });

function build(sp: Split) {
  const rng = new Rng(sp.seed);
  const f64 = { dtype: 'float64' as const };
  const feat = normal([sp.n, F], rng, f64);
  const emb = normal([sp.n, D], rng, f64); // stale on purpose: staleness is non-trivial
  const ids = tensor(
    Array.from({ length: sp.n }, (_, j) => 100 + j),
    'int32',
    [sp.n],
  );
  const age = tensor(
    Array.from({ length: sp.n }, (_, j) => (j * 7) % 5),
    'int32',
    [sp.n],
  );
  const starts: number[] = [];
  let start = 0;
  sp.sizes.forEach((s) => {
    starts.push(start);
    start += s;
  });
  const sourceOf = (j: number): number => starts.reduce((acc, o, i) => (o <= j ? i : acc), 0);
  const validArr = sp.valid ? sp.valid.map((v, j) => v || sp.dropValid[sourceOf(j)]!) : null;
  const valid = validArr ? tensor(validArr.map(Number), 'bool', [sp.n]) : null;
  const q = normal([sp.b, D], rng, f64);
  const p = normal([sp.b, D], rng, f64);
  const w = normal([F, D], rng, f64);
  const single: NegativeCache = { data: { emb, feat, id: ids }, age, ...(valid ? { valid } : {}) };
  const parts: Record<string, NegativeCache> = {};
  for (const i of sp.order) {
    const s = sp.sizes[i]!,
      o = starts[i]!;
    const rows = (t: Tensor): Tensor => slice(t, [o], [s]);
    parts[sp.names[i]!] = {
      data: { emb: rows(emb), feat: rows(feat), id: rows(ids) },
      age: rows(age),
      ...(valid && !sp.dropValid[i] ? { valid: rows(valid) } : {}),
    };
  }
  const specs = {
    emb: { shape: [D], dtype: 'float64' as const },
    feat: { shape: [F], dtype: 'float64' as const },
    id: { shape: [], dtype: 'int32' as const },
  };
  return { q, p, w, single, parts, specs, starts };
}

const docNet =
  (w: Tensor) =>
  (f: Record<string, Tensor>): Tensor =>
    tanh(matmul(f.feat!, w));

describe('multi-cache = the concatenated single cache', () => {
  it('same losses, probPos, staleness and gradients for the same injected global index; same refresh (property)', () => {
    fc.assert(
      fc.property(splitArb, (sp) => {
        const { q, p, w, single, parts, specs } = build(sp);
        // With topK the injected value is a candidate column in [0, topK).
        const width = sp.topK ?? sp.n;
        const injected = tensor(
          sp.globalIdx.map((g) => [g % width]),
          'int32',
          [sp.b, 1],
        );
        const mk = () =>
          new CacheClassificationLoss({
            embeddingKey: 'emb',
            dataKeys: ['feat'],
            reducer: 'none',
            retrievalFn: () => injected,
            ...(sp.topK !== undefined ? { topK: sp.topK } : {}),
          });
        const before = {
          single: snapshotCache(single),
          parts: Object.fromEntries(Object.entries(parts).map(([s, c]) => [s, snapshotCache(c)])),
        };
        const a = mk().call(docNet(w), q, p, { only: single });
        const b = mk().call(docNet(w), q, p, parts);
        for (const key of [
          'trainingLoss',
          'interpretableLoss',
          'staleness',
          'probPos',
          'hasNegative',
          'retrievedIndices',
        ] as const) {
          expect(Array.from(b[key].dataSync() as ArrayLike<number>), key).toEqual(
            Array.from(a[key].dataSync() as ArrayLike<number>),
          );
        }
        // gradients of the mean training loss with respect to queries, positives and the doc network
        const g = (cache: Record<string, NegativeCache>) =>
          grad(
            (qq: Tensor, pp: Tensor, ww: Tensor) => {
              const out = new CacheClassificationLoss({
                embeddingKey: 'emb',
                dataKeys: ['feat'],
                retrievalFn: () => injected,
                ...(sp.topK !== undefined ? { topK: sp.topK } : {}),
              }).call(docNet(ww), qq, pp, cache);
              return out.trainingLoss;
            },
            { argnums: [0, 1, 2] },
          )(q, p, w) as Tensor[];
        const ga = g({ only: single }),
          gb = g(parts);
        ga.forEach((t, i) =>
          expect(Array.from(gb[i]!.dataSync() as Float64Array)).toEqual(Array.from(t.dataSync() as Float64Array)),
        );

        // refresh: per source, then concatenated in sorted order, equals the single refresh
        const singleMgr = new CacheManager({ specs, cacheSize: sp.n, useLru: sp.useLru });
        const empty = {
          emb: tensor(new Float64Array(0), 'float64', [0, D]),
          feat: tensor(new Float64Array(0), 'float64', [0, F]),
          id: tensor(new Int32Array(0), 'int32', [0]),
        };
        const refreshed = singleMgr.updateCache(single, {
          newItems: empty,
          updatedItemData: a.updatedItemData.only!,
          updatedItemIndices: a.updatedItemIndices.only!,
          updatedItemMask: a.updatedItemMask.only!,
        });
        const sources = Object.keys(parts).sort();
        expect(sources).toEqual(sp.names);
        const per = sources.map((s) =>
          new CacheManager({ specs, cacheSize: parts[s]!.age.shape[0]!, useLru: sp.useLru }).updateCache(parts[s]!, {
            newItems: empty,
            updatedItemData: b.updatedItemData[s]!,
            updatedItemIndices: b.updatedItemIndices[s]!,
            updatedItemMask: b.updatedItemMask[s]!,
          }),
        );
        const joined: NegativeCache = {
          data: Object.fromEntries(
            ['emb', 'feat', 'id'].map((k) => [
              k,
              concat(
                per.map((c) => c.data[k]!),
                0,
              ),
            ]),
          ),
          age: concat(
            per.map((c) => c.age),
            0,
          ),
          valid: concat(
            per.map((c) => c.valid!),
            0,
          ), // updateCache always returns valid flags
        };
        expect(snapshotCache(joined)).toEqual(snapshotCache(refreshed));
        // each sampled item is refreshed in exactly one source, and only if the query had a negative
        const hasNeg = Array.from(a.hasNegative.dataSync());
        for (let i = 0; i < sp.b; i++) {
          const owners = sources.filter((s) => (b.updatedItemMask[s]!.dataSync() as Uint8Array)[i] === 1);
          expect(owners.length).toBe(hasNeg[i]);
        }
        // nothing was mutated
        expect(snapshotCache(single)).toEqual(before.single);
        for (const [s, c] of Object.entries(parts)) expect(snapshotCache(c)).toEqual(before.parts[s]);
      }),
      params(200),
    );
  });

  it('sampling with the same seeded generator picks the same global indices (property)', () => {
    fc.assert(
      fc.property(splitArb, fc.constantFrom('gumbel' as const, 'categorical' as const), (sp, sampler) => {
        const { q, p, w, single, parts } = build(sp);
        const mk = () =>
          new CacheClassificationLoss({
            embeddingKey: 'emb',
            dataKeys: ['feat'],
            reducer: 'none',
            rng: new Rng(sp.seed),
            sampler,
          });
        const a = mk().call(docNet(w), q, p, { only: single });
        const b = mk().call(docNet(w), q, p, parts);
        expect(Array.from(b.retrievedIndices.dataSync())).toEqual(Array.from(a.retrievedIndices.dataSync()));
        expect(Array.from(b.trainingLoss.dataSync())).toEqual(Array.from(a.trainingLoss.dataSync()));
      }),
      params(60),
    );
  });

  it('explicit: sources "b" (2 slots) and "a" (1 slot) concatenate as a, b; local indices and masks per source', () => {
    const src = (embs: number[], ids: number[]): NegativeCache => ({
      data: { emb: tensor(embs.map((e) => [e, 0])), feat: tensor(embs.map((e) => [e, 0])), id: tensor(ids, 'int32') },
      age: tensor(
        ids.map(() => 0),
        'int32',
      ),
    });
    const caches = { b: src([2, 3], [20, 30]), a: src([1], [10]) }; // concatenated: a0, b0, b1
    const loss = new CacheClassificationLoss({
      embeddingKey: 'emb',
      dataKeys: ['feat'],
      reducer: 'none',
      retrievalFn: () => tensor([[0], [2], [1]], 'int32'),
    });
    const out = loss.call(
      (f) => f.feat!,
      tensor([
        [1, 0],
        [1, 0],
        [1, 0],
      ]),
      tensor([
        [0, 1],
        [0, 1],
        [0, 1],
      ]),
      caches,
    );
    expect(Array.from(out.retrievedIndices.dataSync())).toEqual([0, 2, 1]);
    expect(Array.from(out.updatedItemMask.a!.dataSync())).toEqual([1, 0, 0]);
    expect(Array.from(out.updatedItemMask.b!.dataSync())).toEqual([0, 1, 1]);
    expect(Array.from(out.updatedItemIndices.a!.dataSync())).toEqual([0, 2, 1]);
    expect(Array.from(out.updatedItemIndices.b!.dataSync())).toEqual([-1, 1, 0]);
    // sampled negative scores are the embeddings 1, 3, 2 (q = e0, positive score 0)
    const pp = 1 / (1 + Math.E + Math.exp(2) + Math.exp(3));
    Array.from(out.trainingLoss.dataSync() as Float32Array).forEach((v, i) =>
      expect(Math.abs(v - (1 - pp) * [1, 3, 2][i]!)).toBeLessThan(1e-6),
    );
  });
});
