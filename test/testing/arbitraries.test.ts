/**
 * negcache/testing: every arbitrary generates input the library accepts
 * (caches pass CacheManager.checkCache, updates pass updateCache, loss
 * problems pass CacheClassificationLoss.call), stays within its options, and
 * shrinks to a minimal counterexample.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ArgumentError,
  CacheClassificationLoss,
  CacheManager,
  checkGradients as coreCheckGradients,
  isFinite as isFiniteOp,
  zeros,
  type Tensor,
} from '../../src/index.js';
import {
  arbCache,
  arbCacheScenario,
  arbCacheSpec,
  arbCacheUpdate,
  arbFeatureSpecs,
  arbLossProblem,
  arbQueryBatch,
  arbRetrieval,
  arbScores,
  arbShape,
  arbTensor,
  arbTensorOf,
  checkGradients,
  fixedRetrievalFn,
} from '../../src/testing/index.js';
import { params } from '../util/props.js';

const values = (t: Tensor): number[] => Array.from(t.dataSync() as ArrayLike<number>, Number);

/** The first counterexample fast-check reports after shrinking (the property must fail). */
function shrunk<T>(arb: fc.Arbitrary<T>, prop: (v: T) => boolean): T {
  const out = fc.check(fc.property(arb, prop), { seed: 42, numRuns: 500 });
  expect(out.failed, 'the property was meant to fail').toBe(true);
  return out.counterexample![0] as T;
}

describe('tensors', () => {
  it('arbTensor: shapes, dtypes and values within the options, never NaN or ±Infinity (property)', () => {
    fc.assert(
      fc.property(
        arbTensor({ minRank: 1, maxRank: 3, minDim: 2, maxDim: 3, dtype: ['float32', 'float64', 'int32', 'bool'] }),
        (t) => {
          expect(t.rank).toBeGreaterThanOrEqual(1);
          expect(t.rank).toBeLessThanOrEqual(3);
          for (const d of t.shape) expect(d === 2 || d === 3).toBe(true);
          const v = values(t);
          if (t.dtype === 'bool') expect(v.every((x) => x === 0 || x === 1)).toBe(true);
          else if (t.dtype === 'int32') expect(v.every((x) => Number.isInteger(x) && x >= -8 && x <= 8)).toBe(true);
          else expect(v.every((x) => x >= -4 && x <= 4)).toBe(true);
          if (t.dtype !== 'bool' && t.dtype !== 'int32') expect(values(isFiniteOp(t)).every((x) => x === 1)).toBe(true);
        },
      ),
      params(200),
    );
  });

  it('arbTensor with a fixed shape, a range and a step: multiples of the step, exact in float32 (property)', () => {
    fc.assert(
      fc.property(arbTensor({ shape: [2, 3], dtype: 'float32', min: -1, max: 1, step: 1 / 8 }), (t) => {
        expect(t.shape).toEqual([2, 3]);
        expect(t.dtype).toBe('float32');
        for (const x of values(t)) {
          expect(Number.isInteger(x * 8)).toBe(true);
          expect(Math.abs(x)).toBeLessThanOrEqual(1);
        }
      }),
      params(100),
    );
  });

  it('float32 values stay inside [min, max] even when the bounds are not float32 numbers (property)', () => {
    fc.assert(
      fc.property(arbTensorOf([8], 'float32', { min: 0.1, max: 0.3 }), (t) => {
        for (const x of values(t)) expect(x >= 0.1 && x <= 0.3).toBe(true);
      }),
      params(100),
    );
  });

  it('shrinks to the smallest shape and the boundary value', () => {
    const t = shrunk(arbTensor({ maxRank: 3 }), (x) => values(x).every((v) => v < 2));
    expect(t.shape).toEqual([]);
    expect(values(t)).toEqual([2]);
    expect(shrunk(arbShape({ maxRank: 4 }), (s) => s.length < 2)).toEqual([1, 1]);
  });

  it('counterexamples print as the tensor() call that rebuilds them', () => {
    const t = fc.sample(arbTensorOf([2], 'int32', { min: 3, max: 3 }), { seed: 1, numRuns: 1 })[0]!;
    expect(fc.stringify(t)).toBe("tensor([3,3], 'int32', [2])");
  });

  it('rejects bad options by name', () => {
    expect(() => arbTensor({ minRank: 3, maxRank: 1 })).toThrow(ArgumentError);
    expect(() => arbTensor({ dtype: 'int64' as never })).toThrow(/dtype must be a dtype/);
    expect(() => arbTensor({ min: 2, max: 1 })).toThrow(/the minimum 2 exceeds the maximum 1/);
    expect(() => arbTensor({ step: 0 })).toThrow(/step must be a finite number > 0/);
    expect(() => arbTensor({ max: Infinity })).toThrow(/must be finite/);
    expect(() => arbTensorOf([-1], 'float32')).toThrow(/shape must be/);
  });
});

describe('cache specs, caches and updates', () => {
  it('arbCacheSpec: CacheManager accepts the options; the embedding feature is there when asked for (property)', () => {
    fc.assert(
      fc.property(arbCacheSpec({ embedding: { key: 'emb', dim: 3 }, maxSize: 5 }), (o) => {
        const m = new CacheManager(o);
        expect(m.cacheSize).toBeLessThanOrEqual(5);
        expect(o.specs['emb']).toEqual({ shape: [3], dtype: 'float32' });
        // plain objects (fast-check's records may otherwise have a null prototype)
        for (const x of [o, o.specs, ...Object.values(o.specs)])
          expect(Object.getPrototypeOf(x)).toBe(Object.prototype);
      }),
      params(100),
    );
    fc.assert(
      fc.property(arbFeatureSpecs({ keys: ['a', 'b'], minKeys: 2, dtypes: ['int32'] }), (s) => {
        expect(Object.keys(s)).toEqual(['a', 'b']);
        expect(Object.values(s).every((x) => x.dtype === 'int32')).toBe(true);
      }),
      params(50),
    );
  });

  it('arbCache: passes checkCache; invalid slots hold zeros; ages within maxAge (property)', () => {
    fc.assert(
      fc.property(
        arbCacheSpec()
          .chain((o) =>
            fc.record({
              o: fc.constant(o),
              mode: fc.constantFrom('random', 'all', 'none', 'absent') as fc.Arbitrary<
                'random' | 'all' | 'none' | 'absent'
              >,
            }),
          )
          .chain(({ o, mode }) =>
            fc.record({ o: fc.constant(o), mode: fc.constant(mode), c: arbCache(o, { valid: mode, maxAge: 3 }) }),
          ),
        ({ o, mode, c }) => {
          const m = new CacheManager(o);
          expect(m.checkCache('test', c)).toBe(o.cacheSize);
          expect(values(c.age).every((a) => a >= 0 && a <= 3)).toBe(true);
          if (mode === 'absent') {
            expect(c.valid).toBeUndefined();
            return;
          }
          const v = values(c.valid!);
          if (mode === 'all') expect(v.every((x) => x === 1)).toBe(true);
          if (mode === 'none') expect(v.every((x) => x === 0)).toBe(true);
          for (const t of Object.values(c.data)) {
            const inner = t.size / o.cacheSize;
            const d = values(t);
            v.forEach((ok, j) => {
              if (!ok) expect(d.slice(j * inner, (j + 1) * inner).every((x) => x === 0)).toBe(true);
            });
          }
        },
      ),
      params(100),
    );
  });

  it('arbCacheUpdate: updateCache accepts every update against every cache of the layout (property)', () => {
    fc.assert(
      fc.property(
        arbCacheSpec().chain((o) =>
          fc.record({ o: fc.constant(o), cache: arbCache(o), update: arbCacheUpdate(o, { maxRefreshes: 5 }) }),
        ),
        ({ o, cache, update }) => {
          const m = new CacheManager(o);
          const next = m.updateCache(cache, update);
          expect(m.checkCache('test', next)).toBe(o.cacheSize);
          const n = Object.values(update.newItems ?? {})[0]?.shape[0] ?? 0;
          expect(n).toBeLessThanOrEqual(o.cacheSize);
          if (update.updatedItemIndices)
            expect(values(update.updatedItemIndices).every((j) => j >= 0 && j < o.cacheSize)).toBe(true);
        },
      ),
      params(150),
    );
  });

  it('arbCacheScenario: every update of the sequence applies, from initCache, and with masks off there are none (property)', () => {
    fc.assert(
      fc.property(arbCacheScenario({ maxSteps: 5 }), ({ options, updates }) => {
        const m = new CacheManager(options);
        let c = m.initCache();
        for (const u of updates) c = m.updateCache(c, u);
        expect(updates.length).toBeGreaterThanOrEqual(1);
      }),
      params(100),
    );
    fc.assert(
      fc.property(arbCacheScenario({ masks: false, maxRefreshes: 0 }), ({ updates }) => {
        for (const u of updates) expect(Object.keys(u)).toEqual(['newItems']);
      }),
      params(30),
    );
  });

  it('shrinking: a property failing on refreshes shrinks to one refreshed row and no new items', () => {
    const layout = { specs: { id: { shape: [], dtype: 'int32' as const } }, cacheSize: 4 };
    const u = shrunk(arbCacheUpdate(layout), (x) => x.updatedItemIndices === undefined);
    expect(u.updatedItemIndices!.shape).toEqual([1]);
    expect(u.newItems?.['id']!.shape).toEqual([0]);
    expect(u.newItemsMask).toBeUndefined();
    expect(u.updatedItemMask).toBeUndefined();
  });
});

describe('queries, scores, retrievals and loss problems', () => {
  it('arbQueryBatch: equal float shapes, b >= 1 (property)', () => {
    fc.assert(
      fc.property(arbQueryBatch({ batch: { min: 1, max: 3 }, dim: 2, dtype: 'float64' }), ({ queries, positives }) => {
        expect(queries.shape).toEqual(positives.shape);
        expect(queries.shape[1]).toBe(2);
        expect(queries.dtype).toBe('float64');
        expect(queries.shape[0]).toBeGreaterThanOrEqual(1);
      }),
      params(50),
    );
  });

  it('arbScores: -Infinity only with `excluded`, and then sometimes (property)', () => {
    let sawExcluded = 0;
    fc.assert(
      fc.property(arbScores({ batch: 3, candidates: 4, excluded: 0.3 }), arbScores(), (s, t) => {
        expect(s.shape).toEqual([3, 4]);
        if (values(s).some((v) => v === -Infinity)) sawExcluded++;
        expect(values(s).every((v) => v === -Infinity || Math.abs(v) <= 4)).toBe(true);
        expect(values(t).every((v) => Number.isFinite(v))).toBe(true);
      }),
      params(50),
    );
    expect(sawExcluded).toBeGreaterThan(0);
  });

  it('arbRetrieval: indices in range; the retrieval function returns them and refuses scores that do not fit', () => {
    fc.assert(
      fc.property(arbRetrieval({ batch: 3, candidates: 5 }), ({ indices, retrievalFn }) => {
        expect(indices.shape).toEqual([3, 1]);
        expect(values(indices).every((j) => j >= 0 && j < 5)).toBe(true);
        expect(values(retrievalFn(zeros([3, 5])))).toEqual(values(indices));
      }),
      params(50),
    );
    const fn = fixedRetrievalFn(
      fc.sample(arbRetrieval({ batch: 2, candidates: 4 }), { seed: 3, numRuns: 1 })[0]!.indices,
    );
    expect(() => fn(zeros([3, 4]))).toThrow(ArgumentError);
    expect(() => fixedRetrievalFn(zeros([2, 1]))).toThrow(/indices must be int32 \[b, 1\]/);
  });

  it('arbLossProblem: CacheClassificationLoss.call accepts it and samples the given (valid) items (property)', () => {
    fc.assert(
      fc.property(
        arbLossProblem({ valid: 'random', step: 1 / 8 }),
        fc.constantFrom<'mean' | 'none'>('mean', 'none'),
        (p, reducer) => {
          const loss = new CacheClassificationLoss({
            embeddingKey: p.embeddingKey,
            dataKeys: p.dataKeys,
            retrievalFn: p.retrievalFn,
            reducer,
          });
          const out = loss.call((f) => f['feat']!, p.queries, p.positives, p.cache);
          expect(values(out.retrievedIndices)).toEqual(values(p.indices));
          // a picked slot is valid whenever the query has a negative
          const valid = Object.keys(p.cache)
            .sort()
            .flatMap((s) => values(p.cache[s]!.valid!));
          values(out.hasNegative).forEach((h, i) => {
            if (h) expect(valid[values(p.indices)[i]!]).toBe(1);
          });
          expect(values(out.trainingLoss).every(Number.isFinite)).toBe(true);
        },
      ),
      params(100),
    );
  });

  it('re-exports checkGradients (the same function as the main entry)', () => {
    expect(checkGradients).toBe(coreCheckGradients);
  });
});
