/**
 * CacheLossHandler / MultiCacheLossHandler: the step order (the loss against
 * the CURRENT cache; then the batch's positives become new items and the
 * sampled items get their fresh embeddings), metrics, the two-phase
 * computeLoss/commit protocol and its rejections, per-source new items, and
 * isInCacheFilter wired as `filter`.
 *
 * Expected caches come from the plain-array reference model
 * (test/util/cacheModel.ts), not from updateCache. Retrieval is the
 * deterministic maxScoreRetrievalFn (or a seeded sampler where stated), so a
 * twin loss object reproduces the handler's loss exactly.
 */
import { describe, expect, it } from 'vitest';
import {
  ArgumentError,
  CacheClassificationLoss,
  CacheLossHandler,
  CacheManager,
  MultiCacheLossHandler,
  NonFiniteError,
  Rng,
  isInCacheFilter,
  matmul,
  maxScoreRetrievalFn,
  normal,
  tensor,
  valueAndGrad,
  type DocNetwork,
  type HandlerStep,
  type NegativeCache,
  type StepMetrics,
  type Tensor,
} from '../../src/index.js';
import {
  cacheToModel,
  expectCacheMatchesModel,
  modelUpdate,
  snapshotCache,
  snapshotCaches,
  type ModelUpdate,
} from '../util/cacheModel.js';

const D = 2;
const specs = {
  emb: { shape: [D], dtype: 'float32' as const },
  feat: { shape: [D], dtype: 'float32' as const },
  id: { shape: [], dtype: 'int32' as const },
};
const lossOpts = { embeddingKey: 'emb', dataKeys: ['feat'] } as const;

const docNet =
  (w: Tensor): DocNetwork =>
  (f) =>
    matmul(f.feat!, w);

/** A batch of b items with ids starting at `firstId`; positives = docNet(w)(features) so fresh at insertion. */
function batch(rng: Rng, b: number, firstId: number, w: Tensor) {
  const feat = normal([b, D], rng);
  const features = {
    feat,
    id: tensor(
      Array.from({ length: b }, (_, i) => firstId + i),
      'int32',
    ),
  };
  return { q: normal([b, D], rng), p: docNet(w)({ feat }), features };
}

const rowsOf = (t: Tensor): number[][] => {
  const a = Array.from(t.dataSync() as ArrayLike<number>, Number);
  const n = t.shape[0]!,
    inner = n === 0 ? 0 : a.length / n;
  return Array.from({ length: n }, (_, i) => a.slice(i * inner, (i + 1) * inner));
};

/** The reference model's view of the update a handler step makes to source `s`. */
function modelStepUpdate(
  step: HandlerStep,
  s: string,
  newItems: Record<string, Tensor>,
  mask?: boolean[],
): ModelUpdate {
  return {
    newItems: Object.fromEntries(Object.entries(newItems).map(([k, t]) => [k, rowsOf(t)])),
    ...(mask ? { newItemsMask: mask } : {}),
    updatedItemData: { emb: rowsOf(step.updatedItemData[s]!.emb!) },
    updatedItemIndices: Array.from(step.updatedItemIndices[s]!.dataSync() as Int32Array),
    updatedItemMask: Array.from(step.updatedItemMask[s]!.dataSync() as Uint8Array, (v) => v === 1),
  };
}

function values(t: Tensor): number[] {
  return Array.from(t.dataSync() as ArrayLike<number>, Number);
}

describe('CacheLossHandler', () => {
  it('step order: loss against the current cache, then positives in and sampled items refreshed (3 steps vs the model)', () => {
    const rng = new Rng(1);
    const manager = new CacheManager({ specs, cacheSize: 4 });
    const handler = new CacheLossHandler({
      cacheManager: manager,
      loss: new CacheClassificationLoss({ ...lossOpts, retrievalFn: maxScoreRetrievalFn() }),
    });
    const twin = new CacheClassificationLoss({ ...lossOpts, retrievalFn: maxScoreRetrievalFn() });
    let model = cacheToModel(handler.cache);
    model.valid = model.valid.map(() => false);
    expectCacheMatchesModel(handler.cache, model, 'init');

    for (let s = 0; s < 3; s++) {
      const w = normal([D, D], rng); // the doc tower changes every step, so cached embeddings go stale
      const { q, p, features } = batch(rng, 2, 10 * (s + 1), w);
      const before = handler.cache;
      const want = twin.call(docNet(w), q, p, { cache: before });
      const step = handler.updateCacheAndComputeLoss(docNet(w), q, p, features);
      // the loss was computed against the cache as it was before the step
      expect(values(step.trainingLoss)).toEqual(values(want.trainingLoss));
      expect(values(step.interpretableLoss)).toEqual(values(want.interpretableLoss));
      expect(values(step.retrievedIndices)).toEqual(values(want.retrievedIndices));
      if (s === 0)
        expect(values(step.hasNegative)).toEqual([0, 0]); // empty cache: nothing to sample
      else expect(values(step.hasNegative)).toEqual([1, 1]);
      // then: refreshes of the sampled items and the positives as new items (embeddings under 'emb')
      model = modelUpdate(model, modelStepUpdate(step, 'cache', { ...features, emb: p }), true);
      expectCacheMatchesModel(handler.cache, model, `after step ${s + 1}`);
      expect(handler.step).toBe(s + 1);
      // explicitly: the positives' ids are in the cache, and each sampled row holds its fresh embedding
      const ids = values(handler.cache.data.id!);
      for (const id of values(features.id)) expect(ids).toContain(id);
      if (s > 0) {
        const idx = values(step.retrievedIndices);
        const fresh = rowsOf(docNet(w)({ feat: tensor(idx.map((j) => rowsOf(before.data.feat!)[j]!)) }));
        const emb = rowsOf(handler.cache.data.emb!);
        idx.forEach((j, i) => {
          // unless a new item took the slot (it cannot: refreshed rows are the youngest with LRU)
          expect(emb[j]).toEqual(fresh[i]);
        });
      }
    }
  });

  it('metrics: returned with the step, passed to onMetrics on commit only', () => {
    const rng = new Rng(2);
    const seen: StepMetrics[] = [];
    const handler = new CacheLossHandler({
      cacheManager: new CacheManager({ specs, cacheSize: 6 }),
      loss: new CacheClassificationLoss({ ...lossOpts, rng: new Rng(9) }),
      onMetrics: (m) => seen.push(m),
    });
    const w = normal([D, D], rng);
    const b1 = batch(rng, 3, 0, w);
    handler.updateCacheAndComputeLoss(docNet(w), b1.q, b1.p, b1.features);
    expect(seen.map((m) => m.step)).toEqual([1]);
    // the first step sees an empty cache: no negatives, so every loss is 0
    expect(Object.fromEntries(Object.entries(seen[0]!).map(([k, v]) => [k, v + 0]))).toEqual({
      step: 1,
      trainingLoss: 0,
      interpretableLoss: 0,
      staleness: 0,
    });
    const w2 = normal([D, D], rng);
    const { q, p, features } = batch(rng, 3, 100, w2);
    const step = handler.computeLoss(docNet(w2), q, p, features);
    expect(seen.length).toBe(1); // computeLoss alone reports nothing
    expect(step.metrics.step).toBe(2);
    expect(step.metrics.trainingLoss).toBe(values(step.trainingLoss)[0]);
    expect(step.metrics.interpretableLoss).toBe(values(step.interpretableLoss)[0]);
    expect(step.metrics.staleness).toBe(values(step.staleness)[0]);
    expect(step.metrics.interpretableLoss).toBeGreaterThan(0);
    expect(step.metrics.staleness).toBeGreaterThan(0); // the doc tower changed
    handler.commit(step);
    expect(seen).toEqual([seen[0], step.metrics]);
  });

  it('two-phase: computeLoss is pure; gradients from valueAndGrad; stale and double commits rejected with the cache unchanged', () => {
    const rng = new Rng(3);
    let calls = 0;
    const handler = new CacheLossHandler({
      cacheManager: new CacheManager({ specs, cacheSize: 8 }),
      loss: new CacheClassificationLoss({ ...lossOpts, rng: new Rng(4) }),
      onMetrics: () => calls++,
    });
    const w = normal([D, D], rng);
    const b1 = batch(rng, 3, 0, w);
    handler.updateCacheAndComputeLoss(docNet(w), b1.q, b1.p, b1.features);
    const snap = snapshotCache(handler.cache);

    const b2 = batch(rng, 2, 50, w);
    const vg = valueAndGrad(
      (ww: Tensor) => {
        const st = handler.computeLoss(docNet(ww), b2.q, b2.p, b2.features);
        return [st.trainingLoss, st];
      },
      { hasAux: true },
    )(w);
    const s1 = vg.aux as HandlerStep;
    const s2 = handler.computeLoss(docNet(w), b2.q, b2.p, b2.features);
    expect(snapshotCache(handler.cache)).toEqual(snap);
    expect(handler.step).toBe(1);

    handler.commit(s1, { gradients: vg.grad });
    expect(handler.step).toBe(2);
    expect(calls).toBe(2);
    const snap2 = snapshotCache(handler.cache);
    expect(snap2).not.toEqual(snap);
    expect(() => handler.commit(s2)).toThrow(ArgumentError);
    expect(() => handler.commit(s2)).toThrow(
      /^CacheLossHandler\.commit: this step was computed against an older cache/,
    );
    expect(() => handler.commit(s1)).toThrow(/^CacheLossHandler\.commit: this step was already committed/);
    expect(() => handler.commit({} as HandlerStep)).toThrow(
      /^CacheLossHandler\.commit: step must come from computeLoss/,
    );
    expect(snapshotCache(handler.cache)).toEqual(snap2);
    expect(handler.step).toBe(2);
    expect(calls).toBe(2);
  });

  it('non-finite loss, gradients or new items: NonFiniteError naming the tensor, cache and step unchanged', () => {
    const rng = new Rng(5);
    let calls = 0;
    const mk = (rejectNonFinite?: boolean) =>
      new CacheLossHandler({
        cacheManager: new CacheManager({ specs, cacheSize: 8 }),
        loss: new CacheClassificationLoss({ ...lossOpts, retrievalFn: maxScoreRetrievalFn() }),
        onMetrics: () => calls++,
        ...(rejectNonFinite === undefined ? {} : { rejectNonFinite }),
      });
    const handler = mk();
    const w = normal([D, D], rng);
    const b1 = batch(rng, 2, 0, w);
    handler.updateCacheAndComputeLoss(docNet(w), b1.q, b1.p, b1.features);
    const snap = snapshotCache(handler.cache);
    calls = 0;
    const b2 = batch(rng, 2, 10, w);

    const nanDoc: DocNetwork = (f) =>
      matmul(
        f.feat!,
        tensor([
          [NaN, 0],
          [0, 1],
        ]),
      );
    const bad = handler.computeLoss(nanDoc, b2.q, b2.p, b2.features);
    expect(() => handler.commit(bad)).toThrow(NonFiniteError);
    expect(() => handler.commit(bad)).toThrow(
      /^CacheLossHandler\.commit: trainingLoss has NaN at flat index 0; the step was rejected and the cache left unchanged/,
    );

    const good = handler.computeLoss(docNet(w), b2.q, b2.p, b2.features);
    expect(() => handler.commit(good, { gradients: { a: tensor([1, 2]), b: tensor([[0, Infinity]]) } })).toThrow(
      /^CacheLossHandler\.commit: gradients \(leaf 1 in sorted-key order\) has Infinity at flat index 1/,
    );
    expect(() => handler.commit(good, { gradients: tensor([NaN]) })).toThrow(
      /^CacheLossHandler\.commit: gradients has NaN at flat index 0/,
    );

    const nanFeatures = {
      ...b2.features,
      feat: tensor([
        [1, 2],
        [NaN, 0],
      ]),
    };
    const badItems = handler.computeLoss(docNet(w), b2.q, b2.p, nanFeatures);
    expect(() => handler.commit(badItems)).toThrow(
      /^CacheLossHandler\.commit: newItems\.cache \(leaf \d in sorted-key order\) has NaN at flat index 2/,
    );

    expect(snapshotCache(handler.cache)).toEqual(snap);
    expect(handler.step).toBe(1);
    expect(calls).toBe(0);
    // the rejected step can still be committed once the gradients are fine
    handler.commit(good, { gradients: tensor([1]) });
    expect(handler.step).toBe(2);

    // rejectNonFinite: false lets it through
    const lax = mk(false);
    lax.commit(lax.computeLoss(docNet(w), b2.q, b2.p, nanFeatures));
    expect(lax.step).toBe(1);
    expect(values(lax.cache.data.feat!).some(Number.isNaN)).toBe(true);
  });

  it('isInCacheFilter as `filter` keeps items already in the cache out (control: without it they are duplicated)', () => {
    const rng = new Rng(6);
    const w = normal([D, D], rng);
    const run = (withFilter: boolean) => {
      const handler = new CacheLossHandler({
        cacheManager: new CacheManager({ specs, cacheSize: 8 }), // room for every item: nothing is evicted
        loss: new CacheClassificationLoss({ ...lossOpts, retrievalFn: maxScoreRetrievalFn() }),
        ...(withFilter ? { filter: isInCacheFilter(['id']) } : {}),
      });
      const r = new Rng(7);
      for (const ids of [
        [1, 2],
        [2, 3],
        [3, 1, 4],
      ]) {
        const feat = normal([ids.length, D], r);
        handler.updateCacheAndComputeLoss(docNet(w), normal([ids.length, D], r), docNet(w)({ feat }), {
          feat,
          id: tensor(ids, 'int32'),
        });
      }
      const ids = values(handler.cache.data.id!),
        valid = values(handler.cache.valid!);
      return ids.filter((_, j) => valid[j]).sort((a, b) => a - b);
    };
    expect(run(true)).toEqual([1, 2, 3, 4]);
    expect(run(false)).toEqual([1, 1, 2, 2, 3, 3, 4]);
  });

  it('bad batches throw from computeLoss with the handler state unchanged', () => {
    const rng = new Rng(8);
    const handler = new CacheLossHandler({
      cacheManager: new CacheManager({ specs, cacheSize: 4 }),
      loss: new CacheClassificationLoss({ ...lossOpts, retrievalFn: maxScoreRetrievalFn(), falseNegativeKey: 'id' }),
    });
    const w = normal([D, D], rng);
    const b1 = batch(rng, 2, 0, w);
    handler.updateCacheAndComputeLoss(docNet(w), b1.q, b1.p, b1.features, { positiveIds: b1.features.id });
    const snap = snapshotCache(handler.cache);
    const big = batch(rng, 5, 10, w);
    const small = batch(rng, 2, 20, w);
    const cases: [() => unknown, RegExp][] = [
      [
        () => handler.computeLoss(docNet(w), big.q, big.p, big.features, { positiveIds: big.features.id }),
        /^updateCache: newItems has 5 items but the cache has 4 slots/,
      ],
      [
        () =>
          handler.computeLoss(
            docNet(w),
            small.q,
            small.p,
            { feat: small.features.feat },
            { positiveIds: small.features.id },
          ),
        /^updateCache: newItems is missing keys \["id"\]/,
      ],
      [
        () =>
          handler.computeLoss(
            docNet(w),
            small.q,
            small.p,
            { ...small.features, extra: small.features.id },
            { positiveIds: small.features.id },
          ),
        /^updateCache: newItems has unknown keys \["extra"\]/,
      ],
      [
        () => handler.computeLoss(docNet(w), small.q, small.p, small.features),
        /^CacheClassificationLoss: falseNegativeKey is "id", so positiveIds must be an int32 \[2\] tensor/,
      ],
      [
        () => handler.computeLoss(docNet(w), small.q, small.p, null as never),
        /^CacheLossHandler\.computeLoss: features must be a record of tensors/,
      ],
    ];
    for (const [f, re] of cases) {
      expect(f).toThrow(ArgumentError);
      expect(f).toThrow(re);
      expect(snapshotCache(handler.cache)).toEqual(snap);
      expect(handler.step).toBe(1);
    }
  });

  it('setState restores a cache and the step counter; steps computed before are stale', () => {
    const rng = new Rng(9);
    const manager = new CacheManager({ specs, cacheSize: 4 });
    const handler = new CacheLossHandler({
      cacheManager: manager,
      loss: new CacheClassificationLoss({ ...lossOpts, retrievalFn: maxScoreRetrievalFn() }),
    });
    const w = normal([D, D], rng);
    const b1 = batch(rng, 2, 0, w);
    const pending = handler.computeLoss(docNet(w), b1.q, b1.p, b1.features);
    const restored = manager.updateCache(manager.initCache(), { newItems: { emb: b1.p, ...b1.features } });
    handler.setState(restored, 7);
    expect(handler.step).toBe(7);
    expect(snapshotCache(handler.cache)).toEqual(snapshotCache(restored));
    expect(() => handler.commit(pending)).toThrow(/older cache/);
    expect(() => handler.setState({ ...restored, age: tensor([0, 0, 0, 0]) } as NegativeCache, 1)).toThrow(
      /^setState: caches\.cache\.age must be an int32/,
    );
    expect(() => handler.setState(restored, -1)).toThrow(/step must be a non-negative integer/);
    expect(handler.step).toBe(7);
  });

  it("rejects a manager without the loss's keys", () => {
    const loss = new CacheClassificationLoss({ ...lossOpts, retrievalFn: maxScoreRetrievalFn() });
    expect(
      () =>
        new CacheLossHandler({ cacheManager: new CacheManager({ specs: { feat: specs.feat }, cacheSize: 2 }), loss }),
    ).toThrow(/cache "cache" has no spec for the loss's embeddingKey "emb"/);
    expect(
      () => new CacheLossHandler({ cacheManager: new CacheManager({ specs: { emb: specs.emb }, cacheSize: 2 }), loss }),
    ).toThrow(/cache "cache" has no spec for data key "feat"/);
  });
});

describe('MultiCacheLossHandler', () => {
  it('per-source new items and refreshes; the loss runs over the sources in sorted order (3 steps vs the model)', () => {
    const rng = new Rng(11);
    const managers = {
      web: new CacheManager({ specs, cacheSize: 3 }),
      books: new CacheManager({ specs, cacheSize: 2, useLru: false }),
    };
    const handler = new MultiCacheLossHandler({
      cacheManagers: managers,
      loss: new CacheClassificationLoss({ ...lossOpts, retrievalFn: maxScoreRetrievalFn() }),
    });
    const twin = new CacheClassificationLoss({ ...lossOpts, retrievalFn: maxScoreRetrievalFn() });
    const models = Object.fromEntries(
      Object.entries(handler.cache).map(([s, c]) => {
        const m = cacheToModel(c);
        m.valid = m.valid.map(() => false);
        return [s, m];
      }),
    );
    for (let step = 0; step < 3; step++) {
      const w = normal([D, D], rng);
      const b = 3;
      const q = normal([b, D], rng),
        p = normal([b, D], rng);
      const item = (n: number, id0: number) => {
        const feat = normal([n, D], rng);
        return {
          feat,
          id: tensor(
            Array.from({ length: n }, (_, i) => id0 + i),
            'int32',
          ),
          emb: docNet(w)({ feat }),
        };
      };
      const newItems = { web: item(2, 100 * step), books: item(1, 100 * step + 50) };
      const mask: Record<string, Tensor> = step === 2 ? { web: tensor([false, true]) } : {};
      const before = handler.cache;
      const want = twin.call(docNet(w), q, p, before);
      const st = handler.updateCacheAndComputeLoss(docNet(w), q, p, newItems, mask);
      expect(values(st.trainingLoss)).toEqual(values(want.trainingLoss));
      expect(values(st.retrievedIndices)).toEqual(values(want.retrievedIndices));
      for (const s of ['books', 'web'] as const) {
        const m = s === 'web' && step === 2 ? [false, true] : undefined;
        models[s] = modelUpdate(models[s]!, modelStepUpdate(st, s, newItems[s], m), managers[s].useLru);
        expectCacheMatchesModel(handler.cache[s]!, models[s]!, `${s} after step ${step + 1}`);
      }
      if (step > 0) {
        // global index = books (2 slots) first, then web
        const idx = values(st.retrievedIndices);
        idx.forEach((g, i) => {
          expect(values(st.updatedItemMask.books!)[i]).toBe(g < 2 ? 1 : 0);
          expect(values(st.updatedItemMask.web!)[i]).toBe(g >= 2 ? 1 : 0);
        });
      }
    }
    expect(handler.step).toBe(3);
  });

  it('rejects unknown or missing sources with the state unchanged', () => {
    const rng = new Rng(12);
    const handler = new MultiCacheLossHandler({
      cacheManagers: { a: new CacheManager({ specs, cacheSize: 2 }), b: new CacheManager({ specs, cacheSize: 2 }) },
      loss: new CacheClassificationLoss({ ...lossOpts, retrievalFn: maxScoreRetrievalFn() }),
    });
    const snap = snapshotCaches(handler.cache);
    const w = normal([D, D], rng);
    const { q, p, features } = batch(rng, 1, 0, w);
    const items = { ...features, emb: p };
    expect(() => handler.computeLoss(docNet(w), q, p, { a: items, b: items, c: items })).toThrow(
      /^MultiCacheLossHandler\.computeLoss: newItems has unknown sources \["c"\]/,
    );
    expect(() => handler.computeLoss(docNet(w), q, p, { a: items })).toThrow(
      /^MultiCacheLossHandler\.computeLoss: no new items for cache "b"/,
    );
    expect(() => handler.computeLoss(docNet(w), q, p, { a: items, b: { ...items, emb: tensor([[1, 2, 3]]) } })).toThrow(
      /^updateCache: newItems\.emb is \[1,3\]/,
    );
    expect(
      () =>
        new MultiCacheLossHandler({
          cacheManagers: {},
          loss: new CacheClassificationLoss({ ...lossOpts, retrievalFn: maxScoreRetrievalFn() }),
        }),
    ).toThrow(ArgumentError);
    expect(snapshotCaches(handler.cache)).toEqual(snap);
    expect(handler.step).toBe(0);
  });
});
