/**
 * Kind `is_in_cache`: the is-in-cache filter, isInCacheFilter(keys)(cache, newItems).
 *
 * config: {keys: [...], ignoreEmptySlots}; inputs: cache/<key> and
 * newItems/<key> for every compared key (int32 or bool), cache/valid when
 * the cache has valid flags; expected: mask (bool [n]: true where NO
 * counted cache row equals the item on every key). Exact.
 */
import type { Rng } from '../../tensor/random.js';
import type { Tensor } from '../../tensor/tensor.js';
import { isInCacheFilter } from '../../filters/isInCache.js';
import { EXACT, type Json, type Vector, type VectorKind } from '../format.js';
import { boolValues, intValues, lit, nums } from '../values.js';

const PIN =
  "REFERENCE.md 'Filters': IsInCache(keys) is true for a new item that has NO cache row equal to it on every one of the keys (exact equality); duplicates within the batch are not filtered.";

export const isInCache: VectorKind = {
  kind: 'is_in_cache',
  compute: (config, inputs) => {
    const keys = config['keys'] as string[];
    const data: Record<string, Tensor> = {};
    const items: Record<string, Tensor> = {};
    for (const k of keys) {
      data[k] = inputs[`cache/${k}`]!;
      items[k] = inputs[`newItems/${k}`]!;
    }
    const size = data[keys[0]!]!.shape[0]!;
    const cache = {
      data,
      age: lit(new Array<number>(size).fill(0), [size], 'int32'),
      ...(inputs['cache/valid'] ? { valid: inputs['cache/valid'] } : {}),
    };
    return { mask: isInCacheFilter(keys, { ignoreEmptySlots: config['ignoreEmptySlots'] as boolean })(cache, items) };
  },
  generate(rng: Rng): Vector[] {
    const out: Vector[] = [];
    const add = (
      name: string,
      extra: string,
      beyond: string[],
      config: { [k: string]: Json },
      inputs: Record<string, Tensor>,
    ) =>
      out.push({
        name: `${this.kind}.${name}`,
        kind: this.kind,
        pins: `${PIN}${extra}`,
        beyondReference: beyond,
        config,
        inputs,
        expected: this.compute(config, inputs) as Record<string, Tensor>,
        beyondReferenceOutputs: [],
        tolerance: EXACT,
      });
    // the upstream example: 7 cache rows, 5 new items, keys ('1', '2') and ('1',)
    const c1 = lit([0, 0, 1, 1, 2, 2, 3, 3, 20, 20, 30, 30, 40, 40], [7, 2], 'int32');
    const c2 = lit([4, 4, 5, 5, 6, 6, 7, 7, 50, 50, 60, 60, 70, 70], [7, 2], 'int32');
    const n1 = lit([0, 0, 1, 1, 3, 3, 8, 8, 9, 9], [5, 2], 'int32');
    const n2 = lit([4, 4, 7, 7, 7, 7, 10, 10, 11, 11], [5, 2], 'int32');
    const upstream = { 'cache/1': c1, 'cache/2': c2, 'newItems/1': n1, 'newItems/2': n2 };
    add(
      'upstream_two_keys',
      " The upstream test's example.",
      [],
      { keys: ['1', '2'], ignoreEmptySlots: true },
      upstream,
    );
    add(
      'upstream_one_key',
      ' The upstream example compared on key "1" only.',
      [],
      { keys: ['1'], ignoreEmptySlots: true },
      { 'cache/1': c1, 'newItems/1': n1 },
    );
    // random ids with many collisions, an int32 [2] key and a bool key, duplicates within the batch
    for (let r = 0; r < 2; r++) {
      const size = 6 + rng.int(4),
        n = 6;
      const cacheId = intValues(rng, [size, 2], 0, 2);
      const cacheFlag = boolValues(rng, [size]);
      const newId = intValues(rng, [n, 2], 0, 2);
      const ni = nums(newId);
      ni[2] = ni[0]!; // item 1 duplicates item 0 on "id"
      ni[3] = ni[1]!;
      add(
        `random_${r}`,
        '',
        [],
        { keys: ['id', 'flag'], ignoreEmptySlots: true },
        {
          'cache/id': cacheId,
          'cache/flag': cacheFlag,
          'newItems/id': lit(ni, [n, 2], 'int32'),
          'newItems/flag': boolValues(rng, [n]),
        },
      );
    }
    // valid flags: id 0 must not match the zero rows of empty slots (unless ignoreEmptySlots is false)
    const ids = lit([5, 0, 0, 7, 0], [5], 'int32');
    const valid = lit([1, 0, 0, 1, 0], [5], 'bool');
    const items = lit([0, 5, 6, 7], [4], 'int32');
    add(
      'empty_slots',
      ' Only valid slots count: the zero rows of empty slots do not match an item whose id is 0.',
      ['valid flags with ignoreEmptySlots true'],
      { keys: ['id'], ignoreEmptySlots: true },
      { 'cache/id': ids, 'cache/valid': valid, 'newItems/id': items },
    );
    add(
      'empty_slots_counted',
      ' With ignoreEmptySlots false every row counts, as in the reference (the valid flags are ignored).',
      ['valid flags given but ignored (ignoreEmptySlots false)'],
      { keys: ['id'], ignoreEmptySlots: false },
      { 'cache/id': ids, 'cache/valid': valid, 'newItems/id': items },
    );
    return out;
  },
};
