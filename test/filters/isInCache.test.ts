/**
 * isInCacheFilter: true for new items with NO counted cache row equal to
 * them on every one of `keys` (exact equality). Counted rows: every row, or
 * (ignoreEmptySlots, the default) only the valid ones when the cache has
 * valid flags. Integer and bool keys only; float keys are a DTypeError.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ArgumentError,
  CacheManager,
  DTypeError,
  ShapeError,
  isInCacheFilter,
  tensor,
  zeros,
  type NegativeCache,
} from '../../src/index.js';
import { params } from '../util/props.js';
import { snapshotCache } from '../util/cacheModel.js';

const KEYS = ['id', 'tok', 'flag'] as const;
type Key = (typeof KEYS)[number];

interface Item {
  id: number;
  tok: [number, number];
  flag: number;
}
const itemArb: fc.Arbitrary<Item> = fc.record({
  id: fc.integer({ min: 0, max: 2 }), // small ranges: collisions are frequent
  tok: fc.tuple(fc.integer({ min: -1, max: 1 }), fc.integer({ min: 0, max: 1 })),
  flag: fc.integer({ min: 0, max: 1 }),
});

function toRecord(items: Item[]) {
  return {
    id: tensor(
      items.map((x) => x.id),
      'int32',
      [items.length],
    ),
    tok: tensor(
      items.flatMap((x) => x.tok),
      'int32',
      [items.length, 2],
    ),
    flag: tensor(
      items.map((x) => x.flag),
      'bool',
      [items.length],
    ),
  };
}

const rowOf = (x: Item, k: Key): number[] => (k === 'tok' ? x.tok : [x[k]]);

describe('isInCacheFilter', () => {
  it('matches the reference: no counted row equal on all keys (property)', () => {
    fc.assert(
      fc.property(
        fc.array(itemArb, { minLength: 1, maxLength: 8 }).chain((rows) =>
          fc.record({
            rows: fc.constant(rows),
            valid: fc.option(fc.array(fc.boolean(), { minLength: rows.length, maxLength: rows.length }), {
              nil: undefined,
            }),
            items: fc.array(itemArb, { minLength: 0, maxLength: 6 }),
            keys: fc.subarray([...KEYS], { minLength: 1 }),
            ignoreEmptySlots: fc.option(fc.boolean(), { nil: undefined }),
          }),
        ),
        ({ rows, valid, items, keys, ignoreEmptySlots }) => {
          const cache: NegativeCache = {
            data: toRecord(rows),
            age: zeros([rows.length], 'int32'),
            ...(valid ? { valid: tensor(valid.map(Number), 'bool', [rows.length]) } : {}),
          };
          const before = snapshotCache(cache);
          const filter = isInCacheFilter(keys, ignoreEmptySlots === undefined ? {} : { ignoreEmptySlots });
          const mask = filter(cache, toRecord(items));
          expect(mask.dtype).toBe('bool');
          expect(mask.shape).toEqual([items.length]);
          const ignore = ignoreEmptySlots ?? true;
          const want = items.map(
            (x) =>
              !rows.some(
                (r, j) =>
                  (!ignore || !valid || valid[j]) &&
                  keys.every((k) => rowOf(r, k).every((v, e) => v === rowOf(x, k)[e])),
              ),
          );
          expect(Array.from(mask.dataSync() as Uint8Array, (v) => v === 1)).toEqual(want);
          expect(snapshotCache(cache)).toEqual(before);
        },
      ),
      params(200),
    );
  });

  it('ignoreEmptySlots: an id 0 is not mistaken for the zero rows of an empty cache (unless ignoreEmptySlots is false)', () => {
    const manager = new CacheManager({ specs: { id: { shape: [], dtype: 'int32' } }, cacheSize: 3 });
    const empty = manager.initCache();
    const items = { id: tensor([0, 5], 'int32') };
    expect(Array.from(isInCacheFilter(['id'])(empty, items).dataSync())).toEqual([1, 1]);
    expect(Array.from(isInCacheFilter(['id'], { ignoreEmptySlots: true })(empty, items).dataSync())).toEqual([1, 1]);
    expect(Array.from(isInCacheFilter(['id'], { ignoreEmptySlots: false })(empty, items).dataSync())).toEqual([0, 1]);
    // after inserting 5, it is filtered either way; 0 still only matches the empty rows
    const one = manager.updateCache(empty, { newItems: { id: tensor([5], 'int32') } });
    expect(Array.from(isInCacheFilter(['id'])(one, items).dataSync())).toEqual([1, 0]);
    expect(Array.from(isInCacheFilter(['id'], { ignoreEmptySlots: false })(one, items).dataSync())).toEqual([0, 0]);
    // a hand-built cache without valid flags counts every row
    const bare: NegativeCache = { data: { id: tensor([0, 7, 9], 'int32') }, age: zeros([3], 'int32') };
    expect(Array.from(isInCacheFilter(['id'])(bare, items).dataSync())).toEqual([0, 1]);
  });

  it('duplicates within one batch are not filtered (as in the reference)', () => {
    const cache: NegativeCache = { data: { id: tensor([1], 'int32') }, age: zeros([1], 'int32') };
    expect(Array.from(isInCacheFilter(['id'])(cache, { id: tensor([2, 2, 1], 'int32') }).dataSync())).toEqual([
      1, 1, 0,
    ]);
  });

  it('rejects float keys (DTypeError) and other bad input', () => {
    const cache: NegativeCache = {
      data: { id: tensor([1, 2], 'int32'), emb: zeros([2, 3]) },
      age: zeros([2], 'int32'),
    };
    expect(() => isInCacheFilter(['emb'])(cache, { emb: zeros([1, 3]) })).toThrow(DTypeError);
    expect(() => isInCacheFilter(['emb'])(cache, { emb: zeros([1, 3]) })).toThrow(
      /^isInCacheFilter: cache\.data\.emb is float32; the filter compares exactly and needs int32 or bool keys \(float keys are rejected\)/,
    );
    expect(() => isInCacheFilter(['id'])(cache, { id: tensor([1]) })).toThrow(
      /^isInCacheFilter: newItems\.id is float32/,
    );
    expect(() => isInCacheFilter(['id'])(cache, { id: tensor([1], 'float64') })).toThrow(DTypeError);
    expect(() => isInCacheFilter([])).toThrow(ArgumentError);
    expect(() => isInCacheFilter(['nope'])(cache, { nope: tensor([1], 'int32') })).toThrow(
      /^isInCacheFilter: the cache has no key "nope"/,
    );
    expect(() => isInCacheFilter(['id'])(cache, {})).toThrow(/^isInCacheFilter: newItems has no key "id"/);
    expect(() => isInCacheFilter(['id'])(cache, { id: tensor([[1, 2]], 'int32') })).toThrow(ShapeError);
    const two: NegativeCache = {
      data: { id: tensor([1, 2], 'int32'), tok: tensor([3, 4], 'int32') },
      age: zeros([2], 'int32'),
    };
    expect(() =>
      isInCacheFilter(['id', 'tok'])(two, { id: tensor([1], 'int32'), tok: tensor([1, 2], 'int32') }),
    ).toThrow(/^isInCacheFilter: newItems\.tok has 2 items but another key has 1/);
  });
});
