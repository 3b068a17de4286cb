/**
 * CacheManager.updateCache against the plain-array reference model of
 * test/util/cacheModel.ts (REFERENCE.md's four steps, literally).
 *
 * The model-based property drives random sequences of updates (new items
 * with and without masks, refreshes with and without masks and with
 * repeated indices, key subsets, LRU on and off, cache sizes 1..8, item
 * counts up to the cache size) and compares data, ages and valid flags
 * after EVERY step. It also snapshots the input cache (dataSync of every
 * tensor) before each update and asserts it is unchanged afterwards.
 *
 * Values are small integers, exact in every dtype, so all comparisons are exact.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CacheManager, oldestSlots, tensor, type NegativeCache } from '../../src/index.js';
import { params } from '../util/props.js';
import {
  cacheToModel,
  expectCacheMatchesModel,
  itemSize,
  modelInit,
  modelToCache,
  modelUpdate,
  snapshotCache,
  updateToTensors,
  type ModelSpec,
  type ModelUpdate,
} from '../util/cacheModel.js';

const SPECS: Record<string, ModelSpec> = {
  emb: { shape: [2], dtype: 'float32' },
  id: { shape: [], dtype: 'int32' },
  tok: { shape: [2, 1], dtype: 'int32' },
  flag: { shape: [1], dtype: 'bool' },
  wide: { shape: [3], dtype: 'float64' },
};

/** Random rows for `keys`, n items each. */
function rowsArb(keys: readonly string[], n: number): fc.Arbitrary<Record<string, number[][]>> {
  const rec: Record<string, fc.Arbitrary<number[][]>> = {};
  for (const k of keys) {
    const spec = SPECS[k]!;
    const val = spec.dtype === 'bool' ? fc.integer({ min: 0, max: 1 }) : fc.integer({ min: -50, max: 50 });
    rec[k] = fc.array(fc.array(val, { minLength: itemSize(spec), maxLength: itemSize(spec) }), {
      minLength: n,
      maxLength: n,
    });
  }
  return fc.record(rec);
}

function updateArb(size: number): fc.Arbitrary<ModelUpdate> {
  const allKeys = Object.keys(SPECS);
  return fc
    .record({
      n: fc.integer({ min: 0, max: size }),
      withNew: fc.nat(4).map((v) => v > 0), // a refresh-only update (no newItems) one time in five
      newMasked: fc.boolean(),
      refresh: fc.boolean(),
      m: fc.integer({ min: 0, max: 6 }),
      refreshMasked: fc.boolean(),
      subset: fc.subarray(allKeys), // may be empty: then only ages/valid flags of the indexed rows change (reference semantics)
    })
    .chain(({ n, withNew, newMasked, refresh, m, refreshMasked, subset }) =>
      fc
        .record({
          newItems: withNew ? rowsArb(allKeys, n) : fc.constant(undefined),
          newItemsMask:
            withNew && newMasked ? fc.array(fc.boolean(), { minLength: n, maxLength: n }) : fc.constant(undefined),
          updatedItemData: refresh ? rowsArb(subset, m) : fc.constant(undefined),
          // repeated indices are likely: m up to 6 draws from up to 8 slots
          updatedItemIndices: refresh
            ? fc.array(fc.integer({ min: 0, max: size - 1 }), { minLength: m, maxLength: m })
            : fc.constant(undefined),
          updatedItemMask:
            refresh && refreshMasked ? fc.array(fc.boolean(), { minLength: m, maxLength: m }) : fc.constant(undefined),
        })
        .map((u) => Object.fromEntries(Object.entries(u).filter(([, v]) => v !== undefined)) as unknown as ModelUpdate),
    );
}

const scenarioArb = fc
  .record({ size: fc.integer({ min: 1, max: 8 }), useLru: fc.boolean(), steps: fc.integer({ min: 1, max: 10 }) })
  .chain(({ size, useLru, steps }) =>
    fc.record({
      size: fc.constant(size),
      useLru: fc.constant(useLru),
      updates: fc.array(updateArb(size), { minLength: steps, maxLength: steps }),
    }),
  );

describe('updateCache vs the reference model', () => {
  it('matches data, ages and valid flags after every step, never mutating its input (property)', () => {
    fc.assert(
      fc.property(scenarioArb, ({ size, useLru, updates }) => {
        const manager = new CacheManager({ specs: SPECS, cacheSize: size, useLru });
        let cache = manager.initCache();
        let model = modelInit(SPECS, size);
        expectCacheMatchesModel(cache, model, 'init');
        updates.forEach((u, step) => {
          const before = snapshotCache(cache);
          const next = manager.updateCache(cache, updateToTensors(u, SPECS));
          expect(snapshotCache(cache), `step ${step}: input cache mutated`).toEqual(before);
          model = modelUpdate(model, u, useLru);
          expectCacheMatchesModel(next, model, `step ${step}`);
          cache = next;
        });
      }),
      params(300),
    );
  });

  it('accepts a hand-built cache of another size and without valid flags (all slots count as valid) (property)', () => {
    const specs: Record<string, ModelSpec> = { id: { shape: [], dtype: 'int32' } };
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 7 }).chain((size) =>
          fc.record({
            size: fc.constant(size),
            ages: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: size, maxLength: size }),
            ids: fc.array(fc.integer({ min: 0, max: 9 }), { minLength: size, maxLength: size }),
            newIds: fc.array(fc.integer({ min: 10, max: 19 }), { minLength: 0, maxLength: size }),
            useLru: fc.boolean(),
          }),
        ),
        ({ size, ages, ids, newIds, useLru }) => {
          const manager = new CacheManager({ specs, cacheSize: 3, useLru }); // cacheSize deliberately different
          const cache: NegativeCache = {
            data: { id: tensor(ids, 'int32', [size]) },
            age: tensor(ages, 'int32', [size]),
          };
          const model = {
            data: { id: ids.map((v) => [v]) },
            age: ages.slice(),
            valid: new Array<boolean>(size).fill(true),
          };
          const u: ModelUpdate = { newItems: { id: newIds.map((v) => [v]) } };
          const next = manager.updateCache(cache, updateToTensors(u, specs));
          expectCacheMatchesModel(next, modelUpdate(model, u, useLru));
        },
      ),
      params(60),
    );
  });
});

describe('updateCache: explicit examples', () => {
  const specs: Record<string, ModelSpec> = { x: { shape: [], dtype: 'int32' } };
  const ids = (c: NegativeCache): number[] => Array.from(c.data.x!.dataSync() as Int32Array);
  const ages = (c: NegativeCache): number[] => Array.from(c.age.dataSync() as Int32Array);
  const valid = (c: NegativeCache): boolean[] => Array.from(c.valid!.dataSync() as Uint8Array, (v) => v === 1);
  const xs = (v: number[]) => tensor(v, 'int32', [v.length]);

  it('a hand-computed 3-step LRU trace (and the same steps without LRU)', () => {
    // size 3. Step 1: new items 10, 11 -> ages all 0, ties to the smallest index -> slots 0, 1.
    //   x = [10, 11, 0], ages [-1, -1, 0] + 1 = [0, 0, 1], valid [T, T, F].
    // Step 2: refresh slot 0 with 20 (LRU: age -1), new item 12 -> oldest is slot 2.
    //   x = [20, 11, 12], ages [-1, 0, -1] + 1 = [0, 1, 0].
    // Step 3: new item 13 -> oldest is slot 1 (age 1) -> x = [20, 13, 12], ages [1, 0, 1].
    // The refreshed item 20 survives: it was the least recently written slot but was used.
    const lru = new CacheManager({ specs, cacheSize: 3 });
    expect(lru.useLru).toBe(true);
    let c = lru.initCache();
    expect([ids(c), ages(c), valid(c)]).toEqual([
      [0, 0, 0],
      [0, 0, 0],
      [false, false, false],
    ]);
    c = lru.updateCache(c, { newItems: { x: xs([10, 11]) } });
    expect([ids(c), ages(c), valid(c)]).toEqual([
      [10, 11, 0],
      [0, 0, 1],
      [true, true, false],
    ]);
    c = lru.updateCache(c, {
      newItems: { x: xs([12]) },
      updatedItemData: { x: xs([20]) },
      updatedItemIndices: xs([0]),
    });
    expect([ids(c), ages(c), valid(c)]).toEqual([
      [20, 11, 12],
      [0, 1, 0],
      [true, true, true],
    ]);
    c = lru.updateCache(c, { newItems: { x: xs([13]) } });
    expect([ids(c), ages(c)]).toEqual([
      [20, 13, 12],
      [1, 0, 1],
    ]);

    // Without LRU the refresh leaves the age alone:
    // step 2: ages [0, 0, 1] -> new item 12 to slot 2, x = [20, 11, 12], ages [1, 1, 0];
    // step 3: ages [1, 1, 0] -> tie between slots 0 and 1 goes to slot 0: x = [13, 11, 12], ages [0, 2, 1].
    const fifo = new CacheManager({ specs, cacheSize: 3, useLru: false });
    let f = fifo.initCache();
    f = fifo.updateCache(f, { newItems: { x: xs([10, 11]) } });
    f = fifo.updateCache(f, {
      newItems: { x: xs([12]) },
      updatedItemData: { x: xs([20]) },
      updatedItemIndices: xs([0]),
    });
    expect([ids(f), ages(f)]).toEqual([
      [20, 11, 12],
      [1, 1, 0],
    ]);
    f = fifo.updateCache(f, { newItems: { x: xs([13]) } });
    expect([ids(f), ages(f)]).toEqual([
      [13, 11, 12],
      [0, 2, 1],
    ]);
  });

  it('chooses the oldest slots with ties to the smallest index', () => {
    const m = new CacheManager({ specs, cacheSize: 5 });
    const hand: NegativeCache = { data: { x: xs([1, 2, 3, 4, 5]) }, age: xs([2, 5, 5, 1, 5]) };
    // two new items: ages 5, 5, 5 at slots 1, 2, 4 -> slots 1 and 2
    const two = m.updateCache(hand, { newItems: { x: xs([70, 71]) } });
    expect(ids(two)).toEqual([1, 70, 71, 4, 5]);
    expect(ages(two)).toEqual([3, 0, 0, 2, 6]);
    // three: slots 1, 2, 4; four: then slot 0 (age 2) before slot 3 (age 1)
    expect(ids(m.updateCache(hand, { newItems: { x: xs([70, 71, 72]) } }))).toEqual([1, 70, 71, 4, 72]);
    expect(ids(m.updateCache(hand, { newItems: { x: xs([70, 71, 72, 73]) } }))).toEqual([73, 70, 71, 4, 72]);
    // a mask keeps the chosen slots but writes the k-th unmasked item to the k-th slot
    const masked = m.updateCache(hand, {
      newItems: { x: xs([70, 71, 72]) },
      newItemsMask: tensor([false, true, true]),
    });
    expect(ids(masked)).toEqual([1, 71, 72, 4, 5]);
    expect(ages(masked)).toEqual([3, 0, 0, 2, 6]);
    // all masked: nothing written, ages still increase
    const none = m.updateCache(hand, { newItems: { x: xs([70, 71]) }, newItemsMask: tensor([false, false]) });
    expect(ids(none)).toEqual([1, 2, 3, 4, 5]);
    expect(ages(none)).toEqual([3, 6, 6, 2, 6]);
    // oldestSlots directly
    expect(Array.from(oldestSlots(Int32Array.from([2, 5, 5, 1, 5]), 4))).toEqual([1, 2, 4, 0]);
    expect(Array.from(oldestSlots(Int32Array.from([0, 0, 0, 0]), 3))).toEqual([0, 1, 2]);
  });

  it('oldestSlots equals a stable sort by age (property, many ties)', () => {
    fc.assert(
      fc.property(
        fc
          .array(fc.integer({ min: -1, max: 3 }), { minLength: 1, maxLength: 40 })
          .chain((a) => fc.tuple(fc.constant(a), fc.integer({ min: 0, max: a.length }))),
        ([a, n]) => {
          const want = a
            .map((_, j) => j)
            .sort((x, y) => a[y]! - a[x]! || x - y)
            .slice(0, n);
          expect(Array.from(oldestSlots(Int32Array.from(a), n))).toEqual(want);
        },
      ),
      params(200),
    );
  });

  it('refreshes with repeated indices: the last unmasked row wins; masked rows are not range-checked', () => {
    const m = new CacheManager({ specs, cacheSize: 3 });
    const c0 = m.updateCache(m.initCache(), { newItems: { x: xs([1, 2, 3]) } });
    const c1 = m.updateCache(c0, {
      newItems: { x: xs([]) },
      updatedItemData: { x: xs([7, 8, 9, 10]) },
      updatedItemIndices: xs([1, 1, 99, 1]),
      updatedItemMask: tensor([true, true, false, false]),
    });
    expect(ids(c1)).toEqual([1, 8, 3]);
    expect(ages(c1)).toEqual([1, 0, 1]);
    expect(cacheToModel(c0).data.x).toEqual([[1], [2], [3]]);
  });

  it('modelToCache round-trips (sanity check of the test helper)', () => {
    const model = modelUpdate(
      modelInit(SPECS, 2),
      {
        newItems: { emb: [[1, 2]], id: [[3]], tok: [[4, 5]], flag: [[1]], wide: [[6, 7, 8]] },
      },
      true,
    );
    expect(cacheToModel(modelToCache(model, SPECS))).toEqual(model);
  });
});
