/**
 * Upstream parity: every test of the reference package (google-research,
 * `negative_cache/*_test.py`), ported with its exact inputs and expected
 * values, one `it` per upstream test, named after it. 36 upstream tests, 36 ports.
 *
 * Tolerances are the upstream ones: `assertAllEqual` → exact equality;
 * `assertAllClose` → |got - want| <= 1e-6 + 1e-6·|want| (TensorFlow's
 * defaults); the TPU tests' `tpuAssertAllClose` → 1e-4 + 1e-4·|want|.
 *
 * | upstream file / test | here | also covered by |
 * |---|---|---|
 * | negative_cache_test.py (15) | | |
 * | test_init_cache | ported | test/cache/negativeCache.model.test.ts |
 * | test_update_cache | ported | negativeCache.model.test.ts (3-step trace, model property) |
 * | test_update_cache_with_non_multiple_cache_size | ported | model property (any size) |
 * | test_update_caches_with_tf_function | ported (1) | |
 * | test_raises_value_error_if_different_update_sizes | ported (ShapeError) | negativeCache.errors.test.ts |
 * | test_update_cache_with_existing_items | ported (2) | model property |
 * | test_partial_update_cache_with_existing_items | ported (2) | model property |
 * | test_update_cache_with_new_items_and_existing_items | ported | model property (hand-built cache) |
 * | test_raises_value_error_if_new_item_keys_not_equal_specs | ported (ArgumentError) | negativeCache.errors.test.ts |
 * | test_raises_value_error_if_update_item_keys_not_in_specs | ported (ArgumentError) (2) | negativeCache.errors.test.ts |
 * | test_masked_update_cache_with_existing_items | ported (2) | model property |
 * | test_masked_update_cache_with_existing_items_when_all_items_masked | ported (2) | model property |
 * | test_update_cache_without_lru | ported (2) | 3-step trace without LRU |
 * | test_masked_update_cache_with_existing_items_not_in_index_one | ported (2) | model property |
 * | test_new_items_with_mask | ported | model property |
 * | retrieval_fns_test.py (4) | | |
 * | test_max_score_retrieval_fn | ported | test/retrieval/retrieval.test.ts (property) |
 * | test_gumbel_max_retrieval_fn_with_mock_randomness | ported (3) | |
 * | test_gumbel_max_retrieval_fn_with_temperature_and_mock_randomness | ported (3) | |
 * | test_gumbel_max_retrieval_fn_has_correct_output_shape | ported | retrieval.test.ts |
 * | util_test.py (1) | | |
 * | test_approximate_top_k_with_indices | ported | test/retrieval/topk.test.ts (property, explicit example) |
 * | filter_fns_test.py (2) | | |
 * | test_is_in_cache_filter_fn | ported | test/filters/isInCache.test.ts (property) |
 * | test_is_in_cache_filter_fn_with_missing_keys | ported | isInCache.test.ts (property over key subsets) |
 * | losses_test.py (10) | | |
 * | test_cache_classification_loss_interpretable_loss | ported | cacheClassificationLoss.closedForm.test.ts (same example) |
 * | test_cache_classification_loss_training_loss | ported | closedForm (same example, other index patterns) |
 * | test_cache_classification_loss_training_loss_with_score_transform | ported | closedForm (transform case) |
 * | test_cache_classification_loss_training_loss_gradient | ported | closedForm gradients; fast-check gradient checks |
 * | test_cache_classification_loss_training_loss_with_multi_cache | ported | cacheClassificationLoss.multiCache.test.ts |
 * | test_cache_classification_loss_refreshed_embeddings | ported | multiCache explicit example |
 * | test_cache_classification_loss_staleness | ported | closedForm (another stale cache) |
 * | test_cache_classification_loss_interpretable_loss_with_top_k | ported | closedForm topK case |
 * | test_cache_classification_loss_training_loss_with_top_k | ported | closedForm topK case |
 * | test_cache_classification_loss_refreshed_embeddings_with_top_k | ported | closedForm topK case |
 * | handlers_test.py (2) | | |
 * | test_initialize_cache | ported | test/handlers/handlers.test.ts |
 * | test_check_cache_after_update | ported (4) | handlers.test.ts (3 steps vs the model) |
 * | distributed_losses_test.py (2) | | |
 * | testInterpretableLoss | ported (5) | distributedCacheClassificationLoss.test.ts (union equality) |
 * | testTrainingLoss | ported (5) | distributedCacheClassificationLoss.test.ts |
 *
 * Where the port differs in form (never in values):
 *  (1) tf.function traces the Python into a graph; negcache has no tracing.
 *      The port checks the same values, and that the call is pure (the
 *      property tracing relies on: same input, same output, input unchanged).
 *  (2) upstream `update_cache` defaults `new_items` to none; negcache's
 *      `updateCache` always takes `newItems`, so the port passes zero new
 *      items (tensors with 0 rows), which is the same update.
 *  (3) upstream mocks `_sample_gumbel(shape)` (the Gumbel noise G, not the
 *      uniforms); negcache takes the same noise as `gumbelMaxRetrievalFn({noise})`,
 *      called once with the scores' shape, as the mock asserts.
 *  (4) upstream stubs the loss (its refresh data: row 0 gets [1, 1, 1]);
 *      the port uses the real loss with a retrieval function picking row 0
 *      and a doc network returning [1, 1, 1], which yields the same refresh
 *      data. `maskEmptySlots: false` is the reference behaviour (the fresh
 *      cache's zero rows are negatives), without which row 0 of an empty cache
 *      would not be sampled. The stub's constant loss 0.0 has no analogue.
 *  (5) upstream runs on a TPUStrategy with 2 replicas; the port runs 2
 *      in-process replicas (`runInProcess`), the same collectives. Upstream
 *      changes `loss_obj.reducer` between calls; the port builds a second loss.
 *      In testInterpretableLoss upstream samples with TF's global generator
 *      (the interpretable loss does not depend on the draw); the port passes a seeded Rng.
 */
import { describe, expect, it } from 'vitest';
import {
  ArgumentError,
  CacheClassificationLoss,
  CacheLossHandler,
  CacheManager,
  DistributedCacheClassificationLoss,
  Rng,
  ShapeError,
  approximateTopKWithIndices,
  gumbelMaxRetrievalFn,
  isInCacheFilter,
  maxScoreRetrievalFn,
  mul,
  runInProcess,
  tensor,
  valueAndGrad,
  zeros,
  type DocNetwork,
  type FeatureSpec,
  type NegativeCache,
  type NestedArray,
  type Tensor,
} from '../../src/index.js';

/** TensorFlow's assertAllClose: |got - want| <= atol + rtol·|want| elementwise, equal shapes. */
function expectAllClose(got: Tensor, want: number | NestedArray, tol = 1e-6): void {
  const w = tensor(want as NestedArray, 'float64');
  expect(got.shape).toEqual(w.shape);
  const g = Array.from(got.dataSync() as ArrayLike<number>, Number);
  Array.from(w.dataSync() as Float64Array).forEach((v, i) =>
    expect(Math.abs(g[i]! - v), `element ${i}: got ${g[i]}, want ${v}`).toBeLessThanOrEqual(tol + tol * Math.abs(v)),
  );
}

/** assertAllEqual: same values (bool as 0/1), compared as nested lists. */
function expectAllEqual(got: Tensor, want: NestedArray): void {
  expect(got.toArray()).toEqual(tensor(want, got.dtype).toArray());
}

const int32 = (v: NestedArray): Tensor => tensor(v, 'int32');
const f32 = (v: NestedArray): Tensor => tensor(v, 'float32');

const SPECS_12: Record<string, FeatureSpec> = {
  '1': { shape: [2], dtype: 'int32' },
  '2': { shape: [3], dtype: 'float32' },
};

/** Zero new items for specs (see note (2)). */
function noNewItems(specs: Record<string, FeatureSpec>): Record<string, Tensor> {
  return Object.fromEntries(Object.entries(specs).map(([k, s]) => [k, zeros([0, ...s.shape], s.dtype)]));
}

/** A hand-built cache without valid flags, as the reference builds them. */
function handBuilt(data: Record<string, Tensor>, age: number[]): NegativeCache {
  return { data, age: int32(age) };
}

describe('negative_cache_test.py', () => {
  it('test_init_cache', () => {
    const specs: Record<string, FeatureSpec> = {
      '1': { shape: [2], dtype: 'int32' },
      '2': { shape: [3], dtype: 'float32' },
      '3': { shape: [3, 2], dtype: 'float32' },
    };
    const cache = new CacheManager({ specs, cacheSize: 6 }).initCache();
    expect(new Set(Object.keys(cache.data))).toEqual(new Set(['1', '2', '3']));
    expect(cache.data['1']!.dtype).toBe('int32');
    expectAllEqual(cache.data['1']!, zeros([6, 2]).toArray() as NestedArray);
    expectAllEqual(cache.data['2']!, zeros([6, 3]).toArray() as NestedArray);
    expectAllEqual(cache.data['3']!, zeros([6, 3, 2]).toArray() as NestedArray);
    expect(cache.age.dtype).toBe('int32');
    expectAllEqual(cache.age, [0, 0, 0, 0, 0, 0]);
  });

  it('test_update_cache', () => {
    const m = new CacheManager({ specs: SPECS_12, cacheSize: 4 });
    const items = (v: number): Record<string, Tensor> => ({
      '1': int32([
        [v, v],
        [v, v],
      ]),
      '2': f32([
        [v, v, v],
        [v, v, v],
      ]),
    });
    let cache = m.updateCache(m.initCache(), { newItems: items(1) });
    expect(new Set(Object.keys(cache.data))).toEqual(new Set(['1', '2']));
    expectAllEqual(cache.data['1']!, [
      [1, 1],
      [1, 1],
      [0, 0],
      [0, 0],
    ]);
    expectAllEqual(cache.data['2']!, [
      [1, 1, 1],
      [1, 1, 1],
      [0, 0, 0],
      [0, 0, 0],
    ]);
    expectAllEqual(cache.age, [0, 0, 1, 1]);
    cache = m.updateCache(cache, { newItems: items(2) });
    expectAllEqual(cache.data['1']!, [
      [1, 1],
      [1, 1],
      [2, 2],
      [2, 2],
    ]);
    expectAllEqual(cache.data['2']!, [
      [1, 1, 1],
      [1, 1, 1],
      [2, 2, 2],
      [2, 2, 2],
    ]);
    cache = m.updateCache(cache, { newItems: items(3) });
    expectAllEqual(cache.data['1']!, [
      [3, 3],
      [3, 3],
      [2, 2],
      [2, 2],
    ]);
    expectAllEqual(cache.data['2']!, [
      [3, 3, 3],
      [3, 3, 3],
      [2, 2, 2],
      [2, 2, 2],
    ]);
  });

  it('test_update_cache_with_non_multiple_cache_size', () => {
    const m = new CacheManager({ specs: SPECS_12, cacheSize: 3 });
    const items = (v: number): Record<string, Tensor> => ({
      '1': int32([
        [v, v],
        [v, v],
      ]),
      '2': f32([
        [v, v, v],
        [v, v, v],
      ]),
    });
    let cache = m.updateCache(m.initCache(), { newItems: items(1) });
    expectAllEqual(cache.data['1']!, [
      [1, 1],
      [1, 1],
      [0, 0],
    ]);
    expectAllEqual(cache.data['2']!, [
      [1, 1, 1],
      [1, 1, 1],
      [0, 0, 0],
    ]);
    expectAllEqual(cache.age, [0, 0, 1]);
    cache = m.updateCache(cache, { newItems: items(2) });
    expectAllEqual(cache.data['1']!, [
      [2, 2],
      [1, 1],
      [2, 2],
    ]);
    expectAllEqual(cache.data['2']!, [
      [2, 2, 2],
      [1, 1, 1],
      [2, 2, 2],
    ]);
    expectAllEqual(cache.age, [0, 1, 0]);
  });

  it('test_update_caches_with_tf_function', () => {
    const m = new CacheManager({ specs: SPECS_12, cacheSize: 4 });
    const init = m.initCache();
    const newItems = {
      '1': int32([
        [1, 1],
        [1, 1],
      ]),
      '2': f32([
        [1, 1, 1],
        [1, 1, 1],
      ]),
    };
    const cache = m.updateCache(init, { newItems });
    expectAllEqual(cache.data['1']!, [
      [1, 1],
      [1, 1],
      [0, 0],
      [0, 0],
    ]);
    expectAllEqual(cache.data['2']!, [
      [1, 1, 1],
      [1, 1, 1],
      [0, 0, 0],
      [0, 0, 0],
    ]);
    // see note (1): a pure function, like a traced graph
    const again = m.updateCache(init, { newItems });
    expect(again.data['1']!.toArray()).toEqual(cache.data['1']!.toArray());
    expect(again.age.toArray()).toEqual(cache.age.toArray());
    expectAllEqual(init.data['1']!, zeros([4, 2]).toArray() as NestedArray);
  });

  it('test_raises_value_error_if_different_update_sizes', () => {
    const m = new CacheManager({ specs: SPECS_12, cacheSize: 4 });
    const newItems = {
      '1': int32([
        [1, 1],
        [1, 1],
      ]),
      '2': f32([[1, 1, 1]]),
    };
    expect(() => m.updateCache(m.initCache(), { newItems })).toThrow(ShapeError);
  });

  it('test_update_cache_with_existing_items', () => {
    const m = new CacheManager({ specs: SPECS_12, cacheSize: 4 });
    const cache = m.updateCache(m.initCache(), {
      newItems: noNewItems(SPECS_12),
      updatedItemIndices: int32([1, 3]),
      updatedItemData: {
        '1': int32([
          [1, 1],
          [1, 1],
        ]),
        '2': f32([
          [1, 1, 1],
          [1, 1, 1],
        ]),
      },
    });
    expect(new Set(Object.keys(cache.data))).toEqual(new Set(['1', '2']));
    expectAllEqual(cache.data['1']!, [
      [0, 0],
      [1, 1],
      [0, 0],
      [1, 1],
    ]);
    expectAllEqual(cache.data['2']!, [
      [0, 0, 0],
      [1, 1, 1],
      [0, 0, 0],
      [1, 1, 1],
    ]);
    expectAllEqual(cache.age, [1, 0, 1, 0]);
  });

  it('test_partial_update_cache_with_existing_items', () => {
    const m = new CacheManager({ specs: SPECS_12, cacheSize: 4 });
    const cache = m.updateCache(m.initCache(), {
      newItems: noNewItems(SPECS_12),
      updatedItemIndices: int32([1, 3]),
      updatedItemData: {
        '1': int32([
          [1, 1],
          [1, 1],
        ]),
      },
    });
    expectAllEqual(cache.data['1']!, [
      [0, 0],
      [1, 1],
      [0, 0],
      [1, 1],
    ]);
    expectAllEqual(cache.data['2']!, zeros([4, 3]).toArray() as NestedArray);
    expectAllEqual(cache.age, [1, 0, 1, 0]);
  });

  it('test_update_cache_with_new_items_and_existing_items', () => {
    const specs: Record<string, FeatureSpec> = {
      '1': { shape: [1], dtype: 'int32' },
      '2': { shape: [1], dtype: 'int32' },
    };
    const m = new CacheManager({ specs, cacheSize: 2 });
    // a hand-built cache of 3 slots: its size comes from its tensors, not from cacheSize
    const cache = m.updateCache(handBuilt({ '1': int32([[0], [0], [3]]), '2': int32([[1], [2], [4]]) }, [2, 1, 0]), {
      newItems: { '1': int32([[11]]), '2': int32([[12]]) },
      updatedItemIndices: int32([0]),
      updatedItemData: { '1': int32([[10]]) },
    });
    expect(new Set(Object.keys(cache.data))).toEqual(new Set(['1', '2']));
    expectAllEqual(cache.data['1']!, [[10], [11], [3]]);
    expectAllEqual(cache.data['2']!, [[1], [12], [4]]);
    expectAllEqual(cache.age, [0, 0, 1]);
  });

  it('test_raises_value_error_if_new_item_keys_not_equal_specs', () => {
    const specs: Record<string, FeatureSpec> = {
      '1': { shape: [1], dtype: 'int32' },
      '2': { shape: [1], dtype: 'int32' },
    };
    const m = new CacheManager({ specs, cacheSize: 4 });
    const ones = int32([[1], [1]]);
    expect(() => m.updateCache(m.initCache(), { newItems: { '1': ones } })).toThrow(ArgumentError);
    expect(() => m.updateCache(m.initCache(), { newItems: { '1': ones, '2': ones, '3': ones } })).toThrow(
      ArgumentError,
    );
  });

  it('test_raises_value_error_if_update_item_keys_not_in_specs', () => {
    const specs: Record<string, FeatureSpec> = {
      '1': { shape: [1], dtype: 'int32' },
      '2': { shape: [1], dtype: 'int32' },
    };
    const m = new CacheManager({ specs, cacheSize: 4 });
    const ones = int32([[1], [1]]);
    expect(() =>
      m.updateCache(m.initCache(), {
        newItems: noNewItems(specs),
        updatedItemData: { '1': ones, '3': ones },
        updatedItemIndices: int32([0]),
      }),
    ).toThrow(ArgumentError);
  });

  it('test_masked_update_cache_with_existing_items', () => {
    const m = new CacheManager({ specs: SPECS_12, cacheSize: 4 });
    const cache = m.updateCache(m.initCache(), {
      newItems: noNewItems(SPECS_12),
      updatedItemIndices: int32([1, 3]),
      updatedItemData: {
        '1': int32([
          [1, 1],
          [2, 2],
        ]),
        '2': f32([
          [3, 3, 3],
          [4, 4, 4],
        ]),
      },
      updatedItemMask: tensor([true, false]),
    });
    expectAllEqual(cache.data['1']!, [
      [0, 0],
      [1, 1],
      [0, 0],
      [0, 0],
    ]);
    expectAllEqual(cache.data['2']!, [
      [0, 0, 0],
      [3, 3, 3],
      [0, 0, 0],
      [0, 0, 0],
    ]);
    expectAllEqual(cache.age, [1, 0, 1, 1]);
  });

  it('test_masked_update_cache_with_existing_items_when_all_items_masked', () => {
    const specs: Record<string, FeatureSpec> = { '1': { shape: [2], dtype: 'int32' } };
    const m = new CacheManager({ specs, cacheSize: 4 });
    const before = handBuilt(
      {
        '1': int32([
          [5, 5],
          [10, 10],
          [15, 15],
          [20, 20],
        ]),
      },
      [2, 2, 2, 2],
    );
    const cache = m.updateCache(before, {
      newItems: noNewItems(specs),
      updatedItemIndices: int32([1, 3]),
      updatedItemData: {
        '1': int32([
          [1, 1],
          [2, 2],
        ]),
      },
      updatedItemMask: tensor([false, false]),
    });
    expect(Object.keys(cache.data)).toEqual(['1']);
    expectAllEqual(cache.data['1']!, [
      [5, 5],
      [10, 10],
      [15, 15],
      [20, 20],
    ]);
    expectAllEqual(cache.age, [3, 3, 3, 3]);
  });

  it('test_update_cache_without_lru', () => {
    const specs: Record<string, FeatureSpec> = { '1': { shape: [2], dtype: 'int32' } };
    const m = new CacheManager({ specs, cacheSize: 4, useLru: false });
    const before = handBuilt(
      {
        '1': int32([
          [5, 5],
          [10, 10],
          [15, 15],
          [20, 20],
        ]),
      },
      [1, 0, 1, 1],
    );
    const cache = m.updateCache(before, {
      newItems: noNewItems(specs),
      updatedItemIndices: int32([1, 3]),
      updatedItemData: {
        '1': int32([
          [1, 1],
          [2, 2],
        ]),
      },
    });
    expectAllEqual(cache.data['1']!, [
      [5, 5],
      [1, 1],
      [15, 15],
      [2, 2],
    ]);
    expectAllEqual(cache.age, [2, 1, 2, 2]);
  });

  it('test_masked_update_cache_with_existing_items_not_in_index_one', () => {
    const m = new CacheManager({ specs: SPECS_12, cacheSize: 4 });
    const cache = m.updateCache(m.initCache(), {
      newItems: noNewItems(SPECS_12),
      updatedItemIndices: int32([0, 3]),
      updatedItemData: {
        '1': int32([
          [1, 1],
          [2, 2],
        ]),
        '2': f32([
          [3, 3, 3],
          [4, 4, 4],
        ]),
      },
      updatedItemMask: tensor([true, false]),
    });
    expectAllEqual(cache.data['1']!, [
      [1, 1],
      [0, 0],
      [0, 0],
      [0, 0],
    ]);
    expectAllEqual(cache.data['2']!, [
      [3, 3, 3],
      [0, 0, 0],
      [0, 0, 0],
      [0, 0, 0],
    ]);
    expectAllEqual(cache.age, [0, 1, 1, 1]);
  });

  it('test_new_items_with_mask', () => {
    const specs: Record<string, FeatureSpec> = { '1': { shape: [2], dtype: 'int32' } };
    const m = new CacheManager({ specs, cacheSize: 4 });
    const before = handBuilt(
      {
        '1': int32([
          [1, 1],
          [2, 2],
          [3, 3],
          [4, 4],
        ]),
      },
      [0, 2, 1, 3],
    );
    const cache = m.updateCache(before, {
      newItems: {
        '1': int32([
          [5, 5],
          [6, 6],
          [7, 7],
        ]),
      },
      newItemsMask: tensor([true, false, true]),
    });
    expectAllEqual(cache.data['1']!, [
      [1, 1],
      [7, 7],
      [3, 3],
      [5, 5],
    ]);
  });
});

describe('retrieval_fns_test.py', () => {
  it('test_max_score_retrieval_fn', () => {
    const scores = f32([
      [1, 2, 0],
      [-1, 0, 3],
      [4, -1, -1],
    ]);
    expectAllEqual(maxScoreRetrievalFn()(scores), [[1], [2], [0]]);
  });

  it('test_gumbel_max_retrieval_fn_with_mock_randomness', () => {
    const scores = f32([
      [1, 0, 0],
      [100, 0, 0],
      [0, 0, -1],
    ]);
    const calls: (readonly number[])[] = [];
    const noise = (shape: readonly [number, number]): Tensor => {
      calls.push(shape.slice());
      return f32([
        [0.0, 0.1, -0.1],
        [1.0, -2.0, 3.3],
        [0.1, -0.1, 2.0],
      ]);
    };
    expectAllEqual(gumbelMaxRetrievalFn({ noise })(scores), [[0], [0], [2]]);
    // called once, with the scores' shape as its only argument
    expect(calls).toEqual([[3, 3]]);
  });

  it('test_gumbel_max_retrieval_fn_with_temperature_and_mock_randomness', () => {
    const scores = f32([[1, 0, 0]]);
    const noise = (): Tensor => f32([[0.0, 0.9, 0.0]]);
    expectAllEqual(gumbelMaxRetrievalFn({ noise, invTemp: 0.5 })(scores), [[1]]);
  });

  it('test_gumbel_max_retrieval_fn_has_correct_output_shape', () => {
    const scores = f32([
      [1, 0, 0],
      [100, 0, 0],
      [0, 0, -1],
    ]);
    expect(gumbelMaxRetrievalFn({ rng: new Rng(0) })(scores).shape).toEqual([3, 1]);
  });
});

describe('util_test.py', () => {
  it('test_approximate_top_k_with_indices', () => {
    const scores = f32([
      [1, 2, 3, 4],
      [2, 1, 3, 4],
      [4, 1, 3, 2],
    ]);
    const { values, indices } = approximateTopKWithIndices(scores, 2);
    expectAllClose(values, [
      [2, 4],
      [2, 4],
      [4, 3],
    ]);
    expectAllEqual(indices, [
      [1, 3],
      [0, 3],
      [0, 2],
    ]);
  });
});

describe('filter_fns_test.py', () => {
  const cache = handBuilt(
    {
      '1': int32([
        [0, 0],
        [1, 1],
        [2, 2],
        [3, 3],
        [20, 20],
        [30, 30],
        [40, 40],
      ]),
      '2': int32([
        [4, 4],
        [5, 5],
        [6, 6],
        [7, 7],
        [50, 50],
        [60, 60],
        [70, 70],
      ]),
    },
    [0, 0, 0, 0],
  );
  const newItems = {
    '1': int32([
      [0, 0],
      [1, 1],
      [3, 3],
      [8, 8],
      [9, 9],
    ]),
    '2': int32([
      [4, 4],
      [7, 7],
      [7, 7],
      [10, 10],
      [11, 11],
    ]),
  };

  it('test_is_in_cache_filter_fn', () => {
    expectAllEqual(isInCacheFilter(['1', '2'])(cache, newItems), [false, true, false, true, true]);
  });

  it('test_is_in_cache_filter_fn_with_missing_keys', () => {
    expectAllEqual(isInCacheFilter(['1'])(cache, newItems), [false, false, false, true, true]);
  });
});

describe('losses_test.py', () => {
  const doc: DocNetwork = (data) => data['data']!;
  const oneCache = (emb: NestedArray, data: NestedArray, age: number[]): Record<string, NegativeCache> => ({
    cache: handBuilt({ embeddings: f32(emb), data: f32(data) }, age),
  });
  const fixed = (idx: number[]) => (): Tensor => int32(idx.map((i) => [i]));
  const Q = f32([[-1], [1], [3]]);
  const P = f32([[2], [2], [1]]);
  const PROB_POS = [0.0420101, 0.705385, 0.499381];
  const perQuery = (diff: number[]): number[] => PROB_POS.map((p, i) => (1 - p) * diff[i]!);
  const mean = (v: number[]): number => v.reduce((a, b) => a + b, 0) / v.length;

  it('test_cache_classification_loss_interpretable_loss', () => {
    const cache = oneCache([[1], [-1]], [[1], [-1]], [0, 0]);
    const want = [3.169846, 0.349012, 0.694385];
    const none = new CacheClassificationLoss({
      embeddingKey: 'embeddings',
      dataKeys: ['data'],
      reducer: 'none',
      rng: new Rng(0),
    });
    expectAllClose(none.call(doc, Q, P, cache).interpretableLoss, want);
    const reduced = new CacheClassificationLoss({
      embeddingKey: 'embeddings',
      dataKeys: ['data'],
      reducer: 'mean',
      rng: new Rng(0),
    });
    expectAllClose(reduced.call(doc, Q, P, cache).interpretableLoss, (3.169846 + 0.349012 + 0.694385) / 3.0);
  });

  it('test_cache_classification_loss_training_loss', () => {
    const cache = oneCache([[1], [-1]], [[1], [-1]], [0, 0]);
    const want = perQuery([1, -3, 0]);
    for (const reducer of ['none', 'mean'] as const) {
      const loss = new CacheClassificationLoss({
        embeddingKey: 'embeddings',
        dataKeys: ['data'],
        reducer,
        retrievalFn: fixed([0, 1, 0]),
      });
      expectAllClose(loss.call(doc, Q, P, cache).trainingLoss, reducer === 'none' ? want : mean(want));
    }
  });

  it('test_cache_classification_loss_training_loss_with_score_transform', () => {
    const cache = oneCache([[2], [-2]], [[2], [-2]], [0, 0]);
    const want = perQuery([1, -3, 0]);
    for (const reducer of ['none', 'mean'] as const) {
      const loss = new CacheClassificationLoss({
        embeddingKey: 'embeddings',
        dataKeys: ['data'],
        scoreTransform: (s) => mul(s, 0.25),
        reducer,
        retrievalFn: fixed([0, 1, 0]),
      });
      const out = loss.call(doc, mul(Q, 2), mul(P, 2), cache);
      expectAllClose(out.trainingLoss, reducer === 'none' ? want : mean(want));
    }
  });

  it('test_cache_classification_loss_training_loss_gradient', () => {
    const cache = oneCache([[1], [-1]], [[1], [-1]], [0, 0]);
    const loss = new CacheClassificationLoss({
      embeddingKey: 'embeddings',
      dataKeys: ['data'],
      retrievalFn: fixed([0, 1, 0]),
    });
    const f = (queryModel: Tensor, docModel: Tensor): Tensor => {
      const docNetwork: DocNetwork = (data) => mul(data['data']!, docModel);
      return loss.call(docNetwork, mul(queryModel, Q), mul(docModel, P), cache).trainingLoss;
    };
    const { grad } = valueAndGrad(f, { argnums: [0, 1] })(f32(1), f32(1));
    const [gq, gd] = grad as Tensor[];
    expectAllClose(gq!, 0.024715006);
    expectAllClose(gd!, 0.024715006);
  });

  it('test_cache_classification_loss_training_loss_with_multi_cache', () => {
    const cache = {
      cache1: handBuilt({ embeddings: f32([[1]]), data: f32([[1]]) }, [0]),
      cache2: handBuilt({ embeddings: f32([[-1]]), data: f32([[-1]]) }, [0]),
    };
    const want = perQuery([1, -3, 0]);
    for (const reducer of ['none', 'mean'] as const) {
      const loss = new CacheClassificationLoss({
        embeddingKey: 'embeddings',
        dataKeys: ['data'],
        reducer,
        retrievalFn: fixed([0, 1, 0]),
      });
      expectAllClose(loss.call(doc, Q, P, cache).trainingLoss, reducer === 'none' ? want : mean(want));
    }
  });

  it('test_cache_classification_loss_refreshed_embeddings', () => {
    const cache = {
      cache1: handBuilt({ embeddings: f32([[1], [2], [3]]), data: f32([[10], [20], [30]]) }, [0, 0, 0]),
      cache2: handBuilt({ embeddings: f32([[-1], [-2]]), data: f32([[-10], [-20]]) }, [0, 0]),
    };
    const loss = new CacheClassificationLoss({
      embeddingKey: 'embeddings',
      dataKeys: ['data'],
      retrievalFn: fixed([0, 1, 3]),
    });
    const out = loss.call(doc, f32([[0], [0], [0]]), P, cache);
    expectAllEqual(out.updatedItemMask['cache1']!, [true, true, false]);
    expectAllEqual(out.updatedItemMask['cache2']!, [false, false, true]);
    expect((out.updatedItemData['cache1']!['embeddings']!.toArray() as unknown[]).slice(0, 2)).toEqual([[10], [20]]);
    expect((out.updatedItemData['cache2']!['embeddings']!.toArray() as unknown[])[2]).toEqual([-10]);
    expect((out.updatedItemIndices['cache1']!.toArray() as unknown[]).slice(0, 2)).toEqual([0, 1]);
    expect((out.updatedItemIndices['cache2']!.toArray() as unknown[])[2]).toBe(0);
  });

  it('test_cache_classification_loss_staleness', () => {
    const cache = oneCache([[1], [-1]], [[2], [-3]], [0, 0]);
    const zero = f32([[0], [0], [0]]);
    const reduced = new CacheClassificationLoss({
      embeddingKey: 'embeddings',
      dataKeys: ['data'],
      retrievalFn: fixed([0, 1, 0]),
    });
    expectAllClose(reduced.call(doc, zero, zero, cache).staleness, 0.31481481481);
    const none = new CacheClassificationLoss({
      embeddingKey: 'embeddings',
      dataKeys: ['data'],
      reducer: 'none',
      retrievalFn: fixed([0, 1, 0]),
    });
    expectAllClose(none.call(doc, zero, zero, cache).staleness, [1.0 / 4.0, 4.0 / 9.0, 1.0 / 4.0]);
  });

  const topKCache = (): Record<string, NegativeCache> => oneCache([[1], [-1], [3], [2]], [[1], [-1], [3], [2]], [0, 0]);
  const Q2 = f32([[-1], [1]]);
  const P2 = f32([[2], [2]]);

  it('test_cache_classification_loss_interpretable_loss_with_top_k', () => {
    const loss = new CacheClassificationLoss({
      embeddingKey: 'embeddings',
      dataKeys: ['data'],
      reducer: 'none',
      topK: 2,
      rng: new Rng(0),
    });
    expectAllClose(loss.call(doc, Q2, P2, topKCache()).interpretableLoss, [3.0949229, 1.407605964]);
  });

  it('test_cache_classification_loss_training_loss_with_top_k', () => {
    const loss = new CacheClassificationLoss({
      embeddingKey: 'embeddings',
      dataKeys: ['data'],
      reducer: 'none',
      topK: 2,
      retrievalFn: fixed([0, 0]),
    });
    const probPos = [0.045278503, 0.2447284712];
    const diff = [3.0, -1.0];
    expectAllClose(
      loss.call(doc, Q2, P2, topKCache()).trainingLoss,
      probPos.map((p, i) => (1 - p) * diff[i]!),
    );
  });

  it('test_cache_classification_loss_refreshed_embeddings_with_top_k', () => {
    const loss = new CacheClassificationLoss({
      embeddingKey: 'embeddings',
      dataKeys: ['data'],
      topK: 2,
      retrievalFn: fixed([0, 0]),
    });
    const out = loss.call(doc, Q2, P2, topKCache());
    expectAllClose(out.updatedItemData['cache']!['embeddings']!, [[-1], [1]]);
    expectAllEqual(out.updatedItemIndices['cache']!, [1, 0]);
    expectAllEqual(out.updatedItemMask['cache']!, [true, true]);
  });
});

describe('handlers_test.py', () => {
  const specs: Record<string, FeatureSpec> = {
    data: { shape: [2], dtype: 'int32' },
    embedding: { shape: [3], dtype: 'float32' },
  };

  it('test_initialize_cache', () => {
    const handler = new CacheLossHandler({
      cacheManager: new CacheManager({ specs, cacheSize: 4 }),
      loss: new CacheClassificationLoss({ embeddingKey: 'embedding', dataKeys: ['data'], rng: new Rng(0) }),
    });
    expect(new Set(Object.keys(handler.cache.data))).toEqual(new Set(['data', 'embedding']));
    expectAllEqual(handler.cache.data['data']!, zeros([4, 2]).toArray() as NestedArray);
    expect(handler.cache.data['data']!.dtype).toBe('int32');
    expectAllEqual(handler.cache.data['embedding']!, zeros([4, 3]).toArray() as NestedArray);
    expectAllEqual(handler.cache.age, [0, 0, 0, 0]);
  });

  it('test_check_cache_after_update', () => {
    // see note (4): the loss's refresh data is {embedding: [[1, 1, 1]]} at index 0, mask [true]
    const handler = new CacheLossHandler({
      cacheManager: new CacheManager({ specs, cacheSize: 4 }),
      loss: new CacheClassificationLoss({
        embeddingKey: 'embedding',
        dataKeys: ['data'],
        maskEmptySlots: false,
        retrievalFn: () => int32([[0]]),
      }),
    });
    const step = handler.updateCacheAndComputeLoss(() => f32([[1, 1, 1]]), f32([[0, 0, 0]]), f32([[2, 2, 2]]), {
      data: int32([[2, 2]]),
    });
    expectAllEqual(step.updatedItemIndices['cache']!, [0]);
    expectAllEqual(step.updatedItemMask['cache']!, [true]);
    expect(new Set(Object.keys(handler.cache.data))).toEqual(new Set(['data', 'embedding']));
    expectAllEqual(handler.cache.data['data']!, [
      [0, 0],
      [2, 2],
      [0, 0],
      [0, 0],
    ]);
    expectAllEqual(handler.cache.data['embedding']!, [
      [1, 1, 1],
      [2, 2, 2],
      [0, 0, 0],
      [0, 0, 0],
    ]);
    expectAllEqual(handler.cache.age, [0, 0, 1, 1]);
  });
});

describe('distributed_losses_test.py', () => {
  const TPU_TOL = 1e-4;
  const shards = [
    { data: f32([[1], [2]]), embedding: f32([[1], [2]]) },
    { data: f32([[-1], [-2]]), embedding: f32([[-1], [-2]]) },
  ];
  const queries = [f32([[-1], [1]]), f32([[1], [1]])];
  const positives = [f32([[2], [2]]), f32([[2], [2]])];
  const doc: DocNetwork = (data) => data['data']!;

  /** Runs the loss on 2 in-process replicas; returns each replica's output of `pick`. */
  async function run(loss: DistributedCacheClassificationLoss, pick: 'interpretableLoss' | 'trainingLoss') {
    return runInProcess(2, async (ctx) => {
      const r = ctx.replicaId;
      const cache = { cache: handBuilt(shards[r]!, []) };
      const out = await loss.call(ctx, doc, queries[r]!, positives[r]!, cache);
      return out[pick];
    });
  }

  it('testInterpretableLoss', async () => {
    const reduced = await run(
      new DistributedCacheClassificationLoss({ embeddingKey: 'embedding', dataKeys: ['data'], rng: new Rng(0) }),
      'interpretableLoss',
    );
    expectAllClose(reduced[0]!, (4.37452 + 0.89035) / 2.0, TPU_TOL);
    expectAllClose(reduced[1]!, 0.89035, TPU_TOL);
    const none = await run(
      new DistributedCacheClassificationLoss({
        embeddingKey: 'embedding',
        dataKeys: ['data'],
        reducer: 'none',
        rng: new Rng(0),
      }),
      'interpretableLoss',
    );
    expectAllClose(none[0]!, [4.37452, 0.89035], TPU_TOL);
    expectAllClose(none[1]!, [0.89035, 0.89035], TPU_TOL);
  });

  it('testTrainingLoss', async () => {
    // the upstream mock: local retrieval over the 4 gathered queries, then the shard choice over [2, R]
    const mockRetrievalFn = (scores: Tensor): Tensor =>
      scores.shape[0] === 4 ? int32([[0], [1], [0], [1]]) : int32([[0], [1]]);
    const reduced = await run(
      new DistributedCacheClassificationLoss({
        embeddingKey: 'embedding',
        dataKeys: ['data'],
        retrievalFn: mockRetrievalFn,
      }),
      'trainingLoss',
    );
    expectAllClose(reduced[0]!, (0.9874058 + -2.35795) / 2.0, TPU_TOL);
    expectAllClose(reduced[1]!, (-0.589488 + -2.35795) / 2.0, TPU_TOL);
    const none = await run(
      new DistributedCacheClassificationLoss({
        embeddingKey: 'embedding',
        dataKeys: ['data'],
        reducer: 'none',
        retrievalFn: mockRetrievalFn,
      }),
      'trainingLoss',
    );
    expectAllClose(none[0]!, [0.9874058, -2.35795], TPU_TOL);
    expectAllClose(none[1]!, [-0.589488, -2.35795], TPU_TOL);
  });
});
