/**
 * Property tests with negcache/testing, written as a user would write them
 * (copy this file; in your project import from 'negcache' and
 * 'negcache/testing' instead of the relative paths). The suite runs it.
 *
 * 1. A port of the cache update (here a small plain-array one, standing in
 *    for yours) is checked against negcache's CacheManager on random update
 *    sequences: data, ages and valid flags after every step.
 * 2. The gradient of the cache loss with respect to a doc network's weights
 *    is checked against float64 finite differences with `checkGradients`,
 *    on random caches, batches and retrievals.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CacheClassificationLoss, CacheManager, matmul, type CacheUpdate, type Tensor } from '../src/index.js';
import { arbCacheScenario, arbLossProblem, arbTensorOf, checkGradients } from '../src/testing/index.js';

/** A port under test: the reference's updateCache on plain arrays (rows of numbers per key). */
function portUpdate(
  cache: { data: Record<string, number[][]>; age: number[]; valid: boolean[] },
  u: CacheUpdate,
  useLru: boolean,
): typeof cache {
  const rows = (t: Tensor): number[][] => {
    const v = Array.from(t.dataSync() as ArrayLike<number>, Number);
    const n = t.shape[0]!;
    const w = n === 0 ? 0 : v.length / n;
    return Array.from({ length: n }, (_, i) => v.slice(i * w, (i + 1) * w));
  };
  const data = Object.fromEntries(Object.entries(cache.data).map(([k, r]) => [k, r.map((x) => x.slice())]));
  const age = cache.age.slice();
  const valid = cache.valid.slice();
  if (u.updatedItemData && u.updatedItemIndices) {
    const idx = rows(u.updatedItemIndices).map((r) => r[0]!);
    const mask = u.updatedItemMask ? rows(u.updatedItemMask).map((r) => r[0]! === 1) : idx.map(() => true);
    const keys = Object.keys(u.updatedItemData);
    idx.forEach((slot, i) => {
      if (!mask[i]) return;
      for (const k of keys) data[k]![slot] = rows(u.updatedItemData![k]!)[i]!;
      if (useLru) age[slot] = -1;
      if (keys.length > 0) valid[slot] = true;
    });
  }
  const items: Readonly<Record<string, Tensor>> = u.newItems ?? {};
  const keys = Object.keys(items);
  const n = keys.length > 0 ? items[keys[0]!]!.shape[0]! : 0;
  const mask = u.newItemsMask ? rows(u.newItemsMask).map((r) => r[0]! === 1) : new Array(n).fill(true);
  const slots = age.map((_, j) => j).sort((a, b) => age[b]! - age[a]! || a - b);
  let next = 0;
  for (let i = 0; i < n; i++) {
    if (!mask[i]) continue;
    const slot = slots[next++]!;
    for (const k of keys) data[k]![slot] = rows(items[k]!)[i]!;
    age[slot] = -1;
    valid[slot] = true;
  }
  return { data, age: age.map((a) => a + 1), valid };
}

describe('my port of the cache update agrees with negcache', () => {
  it('on random update sequences: data, ages, valid flags after every step', () => {
    fc.assert(
      fc.property(arbCacheScenario({ maxSteps: 6, step: 1 / 4 }), ({ options, updates }) => {
        const manager = new CacheManager(options);
        let ours = manager.initCache();
        let port = {
          data: Object.fromEntries(
            Object.entries(options.specs).map(([k, s]) => [
              k,
              Array.from({ length: options.cacheSize }, () => new Array(s.shape.reduce((a, b) => a * b, 1)).fill(0)),
            ]),
          ),
          age: new Array<number>(options.cacheSize).fill(0),
          valid: new Array<boolean>(options.cacheSize).fill(false),
        };
        for (const u of updates) {
          ours = manager.updateCache(ours, u);
          port = portUpdate(port, u, options.useLru ?? true);
          expect(Array.from(ours.age.dataSync())).toEqual(port.age);
          expect(Array.from(ours.valid!.dataSync(), Boolean)).toEqual(port.valid);
          for (const k of Object.keys(port.data))
            expect(Array.from(ours.data[k]!.dataSync() as ArrayLike<number>, Number)).toEqual(port.data[k]!.flat());
        }
      }),
      { numRuns: 100 },
    );
  });
});

describe('gradients of the cache loss', () => {
  it('d trainingLoss / d W of a linear doc network matches float64 finite differences', () => {
    // The training loss depends on the queries and positives also through probPos, which the loss holds
    // constant (a stop-gradient), so finite differences would see a different function there. The doc
    // network's weights reach the loss only through the sampled item's fresh embedding: a clean check.
    const problem = arbLossProblem({ dim: { min: 1, max: 3 }, valid: 'random' }).chain((p) =>
      fc.record({ p: fc.constant(p), w: arbTensorOf([p.queries.shape[1]!, p.queries.shape[1]!], 'float32') }),
    );
    fc.assert(
      fc.property(problem, ({ p, w }) => {
        const loss = new CacheClassificationLoss({
          embeddingKey: p.embeddingKey,
          dataKeys: p.dataKeys,
          retrievalFn: p.retrievalFn,
        });
        const f = (weights: Tensor): Tensor =>
          loss.call((features) => matmul(features['feat']!, weights), p.queries, p.positives, p.cache).trainingLoss;
        const report = checkGradients(f, [w]);
        expect(report.ok, report.summary).toBe(true);
      }),
      { numRuns: 50 },
    );
  });
});
