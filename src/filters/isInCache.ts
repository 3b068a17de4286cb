/**
 * The is-in-cache filter (reference: filter_fns.IsInCache). For new items,
 * a bool mask that is true for items with NO cache row equal to them on
 * every one of `keys` (exact equality). Integer (int32) and bool keys only:
 * float keys are rejected, since exact float equality is not a meaningful
 * identity. Use it as `newItemsMask` to keep duplicates out of the cache.
 *
 * Beyond the reference: with `ignoreEmptySlots` (default true) only valid
 * slots count, so an item whose id happens to be 0 is not mistaken for the
 * zero rows of an empty cache. With false, every row counts (the reference).
 * Duplicates within one batch of new items are not filtered (as in the reference).
 */
import { ArgumentError, DTypeError, ShapeError, checkOptions, describe, fmtShape, optionRules } from '../errors.js';
import { sizeOf } from '../tensor/shape.js';
import { isTensor, unsafeData, wrap, type Tensor } from '../tensor/tensor.js';
import type { NegativeCache } from '../cache/negativeCache.js';

export type NewItemsFilter = (cache: NegativeCache, newItems: Readonly<Record<string, Tensor>>) => Tensor;

export function isInCacheFilter(keys: readonly string[], opts: { ignoreEmptySlots?: boolean } = {}): NewItemsFilter {
  const op = 'isInCacheFilter';
  if (!Array.isArray(keys) || keys.length === 0 || !keys.every((k) => typeof k === 'string')) {
    throw new ArgumentError(op, `keys must be a non-empty array of feature names, got ${describe(keys)}`);
  }
  checkOptions(op, opts, { ignoreEmptySlots: optionRules.boolean }, { required: true });
  const ignoreEmpty = opts.ignoreEmptySlots ?? true;
  return (cache, newItems) => {
    if (cache === null || typeof cache !== 'object' || cache.data === null || typeof cache.data !== 'object') {
      throw new ArgumentError(op, `cache must be a NegativeCache, got ${describe(cache)}`);
    }
    if (newItems === null || typeof newItems !== 'object')
      throw new ArgumentError(op, `newItems must be a record of tensors, got ${describe(newItems)}`);
    let n = -1,
      size = -1;
    for (const key of keys) {
      const c = cache.data[key],
        t = newItems[key];
      if (!isTensor(c))
        throw new ArgumentError(op, `the cache has no key "${key}" (keys: ${Object.keys(cache.data).join(', ')})`);
      if (!isTensor(t))
        throw new ArgumentError(op, `newItems has no key "${key}" (keys: ${Object.keys(newItems).join(', ')})`);
      for (const [name, x] of [
        [`cache.data.${key}`, c],
        [`newItems.${key}`, t],
      ] as const) {
        if (x.dtype !== 'int32' && x.dtype !== 'bool')
          throw new DTypeError(
            op,
            `${name} is ${x.dtype}; the filter compares exactly and needs int32 or bool keys (float keys are rejected)`,
          );
        if (x.rank === 0) throw new ShapeError(op, `${name} is a scalar; need one row per item ([n, ...])`);
      }
      if (c.shape.slice(1).join() !== t.shape.slice(1).join()) {
        throw new ShapeError(
          op,
          `newItems.${key} is ${fmtShape(t.shape)} but the cache rows are ${fmtShape(c.shape.slice(1))}; need items of the same shape`,
        );
      }
      if (n === -1) {
        n = t.shape[0]!;
        size = c.shape[0]!;
      } else if (t.shape[0] !== n)
        throw new ShapeError(
          op,
          `newItems.${key} has ${t.shape[0]} items but another key has ${n}; need one item count`,
        );
    }
    const valid = ignoreEmpty && cache.valid ? (unsafeData(cache.valid) as Uint8Array) : null;
    const rowKey = (src: Record<string, Tensor>, i: number): string =>
      keys
        .map((k) => {
          const t = src[k]!;
          const inner = t.rank <= 1 ? 1 : sizeOf(t.shape.slice(1));
          return Array.from(unsafeData(t).subarray(i * inner, (i + 1) * inner)).join(',');
        })
        .join('|');
    const present = new Set<string>();
    for (let j = 0; j < size; j++) if (!valid || valid[j]) present.add(rowKey(cache.data as Record<string, Tensor>, j));
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = present.has(rowKey(newItems as Record<string, Tensor>, i)) ? 0 : 1;
    return wrap(out, [n], 'bool');
  };
}
