/**
 * updateCache rejects bad updates with a typed error whose message names the
 * op and the argument, BEFORE anything is computed: the input cache is
 * deep-equal (dataSync of every tensor) to its snapshot after every throw,
 * and validateUpdate throws exactly what updateCache throws.
 */
import { describe, expect, it } from 'vitest';
import {
  ArgumentError,
  CacheManager,
  DTypeError,
  ShapeError,
  tensor,
  zeros,
  type CacheUpdate,
  type NegativeCache,
} from '../../src/index.js';
import { snapshotCache } from '../util/cacheModel.js';

const specs = { emb: { shape: [2], dtype: 'float32' as const }, id: { shape: [], dtype: 'int32' as const } };
const manager = new CacheManager({ specs, cacheSize: 3 });

function filledCache(): NegativeCache {
  return manager.updateCache(manager.initCache(), {
    newItems: {
      emb: tensor([
        [1, 2],
        [3, 4],
      ]),
      id: tensor([7, 8], 'int32'),
    },
  });
}

const items = (n: number, d = 2) => ({ emb: zeros([n, d]), id: zeros([n], 'int32') });
const idx = (v: number[]) => tensor(v, 'int32', [v.length]);

type ErrClass = typeof ArgumentError | typeof ShapeError | typeof DTypeError;
const cases: { name: string; update: () => unknown; cls: ErrClass; msg: RegExp[] }[] = [
  {
    name: 'newItems missing a key',
    update: () => ({ newItems: { emb: zeros([1, 2]) } }),
    cls: ArgumentError,
    msg: [/^updateCache: newItems is missing keys \["id"\]/],
  },
  {
    name: 'newItems with an extra key',
    update: () => ({ newItems: { ...items(1), extra: zeros([1]) } }),
    cls: ArgumentError,
    msg: [/^updateCache: newItems has unknown keys \["extra"\]/],
  },
  {
    name: 'newItemsMask without newItems',
    update: () => ({ newItemsMask: tensor([true]) }),
    cls: ArgumentError,
    msg: [/^updateCache: newItemsMask was given without newItems/],
  },
  {
    name: 'newItems not a record',
    update: () => ({ newItems: zeros([1, 2]) }),
    cls: ArgumentError,
    msg: [/^updateCache: newItems must be a record/],
  },
  {
    name: 'refresh keys not a subset',
    update: () => ({
      newItems: items(0),
      updatedItemData: { emb: zeros([1, 2]), other: zeros([1]) },
      updatedItemIndices: idx([0]),
    }),
    cls: ArgumentError,
    msg: [/^updateCache: updatedItemData has unknown keys \["other"\]/],
  },
  {
    name: 'mismatched new item counts',
    update: () => ({ newItems: { emb: zeros([2, 2]), id: zeros([1], 'int32') } }),
    cls: ShapeError,
    msg: [/^updateCache: newItems\.\w+ has \d items but newItems\.\w+ has \d/, /one item count/],
  },
  {
    name: 'mismatched refresh counts (data vs indices)',
    update: () => ({ newItems: items(0), updatedItemData: { emb: zeros([2, 2]) }, updatedItemIndices: idx([0]) }),
    cls: ShapeError,
    msg: [/^updateCache: updatedItemIndices has 1 entries but updatedItemData has 2 rows/],
  },
  {
    name: 'mismatched refresh counts (between keys)',
    update: () => ({
      newItems: items(0),
      updatedItemData: { emb: zeros([2, 2]), id: zeros([1], 'int32') },
      updatedItemIndices: idx([0, 1]),
    }),
    cls: ShapeError,
    msg: [/^updateCache: updatedItemData\.\w+ has \d items/],
  },
  {
    name: 'newItemsMask of the wrong length',
    update: () => ({ newItems: items(2), newItemsMask: tensor([true]) }),
    cls: ArgumentError,
    msg: [/^updateCache: newItemsMask must be a bool \[2\] tensor/],
  },
  {
    name: 'updatedItemMask of the wrong dtype',
    update: () => ({
      newItems: items(0),
      updatedItemData: { id: zeros([1], 'int32') },
      updatedItemIndices: idx([0]),
      updatedItemMask: tensor([1], 'int32'),
    }),
    cls: ArgumentError,
    msg: [/^updateCache: updatedItemMask must be a bool \[1\] tensor/],
  },
  {
    name: 'wrong embedding width in newItems',
    update: () => ({ newItems: items(1, 3) }),
    cls: ShapeError,
    msg: [/^updateCache: newItems\.emb is \[1,3\]; need \[n, 2\]/],
  },
  {
    name: 'wrong embedding width in a refresh',
    update: () => ({ newItems: items(0), updatedItemData: { emb: zeros([1, 1]) }, updatedItemIndices: idx([0]) }),
    cls: ShapeError,
    msg: [/^updateCache: updatedItemData\.emb is \[1,1\]/],
  },
  {
    name: 'int key given floats',
    update: () => ({ newItems: { emb: zeros([1, 2]), id: zeros([1]) } }),
    cls: DTypeError,
    msg: [/^updateCache: newItems\.id is float32; the cache stores int32/],
  },
  {
    name: 'index out of range (too large)',
    update: () => ({
      newItems: items(0),
      updatedItemData: { id: zeros([2], 'int32') },
      updatedItemIndices: idx([0, 3]),
    }),
    cls: ArgumentError,
    msg: [/^updateCache: updatedItemIndices\[1\] = 3 is out of range for a cache of 3 slots/],
  },
  {
    name: 'index out of range (negative)',
    update: () => ({ newItems: items(0), updatedItemData: { id: zeros([1], 'int32') }, updatedItemIndices: idx([-1]) }),
    cls: ArgumentError,
    msg: [/^updateCache: updatedItemIndices\[0\] = -1 is out of range/],
  },
  {
    name: 'indices of the wrong dtype',
    update: () => ({
      newItems: items(0),
      updatedItemData: { id: zeros([1], 'int32') },
      updatedItemIndices: tensor([0]),
    }),
    cls: ArgumentError,
    msg: [/^updateCache: updatedItemIndices must be an int32 \[m\] tensor/],
  },
  {
    name: 'indices as a plain array (with an empty updatedItemData)',
    update: () => ({ newItems: items(0), updatedItemData: {}, updatedItemIndices: [0] }),
    cls: ArgumentError,
    msg: [/^updateCache: updatedItemIndices must be an int32 \[m\] tensor, got an array of length 1/],
  },
  {
    name: 'more new items than slots',
    update: () => ({ newItems: items(4) }),
    cls: ArgumentError,
    msg: [/^updateCache: newItems has 4 items but the cache has 3 slots/],
  },
  {
    name: 'refresh data without indices',
    update: () => ({ newItems: items(0), updatedItemData: { id: zeros([1], 'int32') } }),
    cls: ArgumentError,
    msg: [/^updateCache: updatedItemData and updatedItemIndices go together/],
  },
  {
    name: 'an unknown update field',
    update: () => ({ newItems: items(0), newItemMask: tensor([true]) }),
    cls: ArgumentError,
    msg: [/^updateCache: unknown option "newItemMask"; allowed: newItems, newItemsMask/],
  },
];

describe('updateCache validation', () => {
  it.each(cases)('$name → $cls.name, cache unchanged', ({ update, cls, msg }) => {
    const cache = filledCache();
    const before = snapshotCache(cache);
    const u = update() as CacheUpdate;
    let err: unknown;
    try {
      manager.updateCache(cache, u);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(cls);
    for (const re of msg) expect((err as Error).message).toMatch(re);
    expect(snapshotCache(cache)).toEqual(before);
    expect(() => manager.validateUpdate(cache, u)).toThrow((err as Error).message);
    expect(snapshotCache(cache)).toEqual(before);
  });

  it('rejects a cache that does not fit the specs', () => {
    const bad: NegativeCache = { data: { emb: zeros([3, 5]), id: zeros([3], 'int32') }, age: zeros([3], 'int32') };
    expect(() => manager.updateCache(bad, { newItems: items(0) })).toThrow(ShapeError);
    expect(() => manager.updateCache(bad, { newItems: items(0) })).toThrow(
      /^updateCache: cache\.data\.emb is \[3,5\] float32; need \[3,2\] float32/,
    );
    const noId = { data: { emb: zeros([3, 2]) }, age: zeros([3], 'int32') } as NegativeCache;
    expect(() => manager.updateCache(noId, { newItems: { emb: zeros([0, 2]) } })).toThrow(
      /^updateCache: cache\.data is missing keys \["id"\]/,
    );
    const badAge = { data: { emb: zeros([3, 2]), id: zeros([3], 'int32') }, age: zeros([3]) } as NegativeCache;
    expect(() => manager.updateCache(badAge, { newItems: items(0) })).toThrow(
      /^updateCache: cache\.age must be an int32 \[cacheSize\] tensor/,
    );
  });

  it('rejects bad manager options', () => {
    expect(() => new CacheManager({ specs: {}, cacheSize: 3 })).toThrow(ArgumentError);
    expect(() => new CacheManager({ specs, cacheSize: 0 })).toThrow(/^CacheManager: cacheSize must be an integer/);
    expect(() => new CacheManager({ specs: { x: { shape: [1], dtype: 'float16' as never } }, cacheSize: 1 })).toThrow(
      DTypeError,
    );
  });
});

describe('CacheManager options', () => {
  it('unknown option keys are rejected by name', () => {
    const specs = { emb: { shape: [2], dtype: 'float32' as const } };
    expect(() => new CacheManager({ specs, cacheSize: 4, useLRU: false } as never)).toThrow(ArgumentError);
    expect(() => new CacheManager({ specs, cacheSize: 4, useLRU: false } as never)).toThrow(
      /^CacheManager: unknown option "useLRU"; allowed: specs, cacheSize, useLru/,
    );
    expect(new CacheManager({ specs, cacheSize: 4, useLru: false }).useLru).toBe(false);
  });
});
