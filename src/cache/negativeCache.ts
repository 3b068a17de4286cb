/**
 * The negative cache and its manager (reference: negative_cache.NegativeCache
 * and CacheManager).
 *
 * A cache is a plain immutable record: `data` (one tensor [cacheSize, ...spec]
 * per feature), `age` (int32 [cacheSize]) and, beyond the reference, `valid`
 * (bool [cacheSize]: which slots hold a real item; all false after initCache).
 * `updateCache` is pure: it returns a new cache and never touches the old one.
 */
import { ArgumentError, DTypeError, ShapeError, checkOptions, describe, fmtShape } from '../errors.js';
import { allocate, isDType, isFloat, type DType } from '../tensor/dtype.js';
import { shapesEqual, sizeOf } from '../tensor/shape.js';
import { isTensor, unsafeData, wrap, type Tensor } from '../tensor/tensor.js';

export interface FeatureSpec {
  /** Per-item shape, e.g. [128] for an embedding or [] for an id. */
  shape: readonly number[];
  dtype: DType;
}

export interface NegativeCache {
  /** Feature name -> [cacheSize, ...spec.shape] tensor. */
  readonly data: Readonly<Record<string, Tensor>>;
  /** int32 [cacheSize]: steps since each slot was last written (reference semantics). */
  readonly age: Tensor;
  /**
   * bool [cacheSize]: the slot holds a real item (written at least once).
   * Beyond the reference; optional so that hand-built caches work (missing
   * means every slot counts as valid, as in the reference).
   */
  readonly valid?: Tensor;
}

export interface CacheUpdate {
  /**
   * New items: exactly the cache's keys, each [n, ...spec.shape]. Optional:
   * an update without new items only refreshes rows (and ages every slot).
   */
  newItems?: Readonly<Record<string, Tensor>>;
  /** bool [n]: false items are not written (their slots stay as they are). */
  newItemsMask?: Tensor;
  /** Rows to overwrite in place: a subset of the cache's keys, each [m, ...spec.shape]. */
  updatedItemData?: Readonly<Record<string, Tensor>>;
  /** int32 [m]: the slot each row of updatedItemData goes to. */
  updatedItemIndices?: Tensor;
  /** bool [m]: false rows write nothing (their index is not even checked). */
  updatedItemMask?: Tensor;
}

export interface CacheManagerOptions {
  specs: Readonly<Record<string, FeatureSpec>>;
  cacheSize: number;
  /** Least-recently-used replacement (default true): refreshed rows become youngest. */
  useLru?: boolean;
}

const OP = 'updateCache';

export class CacheManager {
  readonly specs: Readonly<Record<string, FeatureSpec>>;
  readonly cacheSize: number;
  readonly useLru: boolean;

  constructor(opts: CacheManagerOptions) {
    const op = 'CacheManager';
    checkOptions(op, opts, ['specs', 'cacheSize', 'useLru'], { required: true });
    const { specs, cacheSize, useLru = true } = opts;
    if (specs === null || typeof specs !== 'object' || Object.keys(specs).length === 0) {
      throw new ArgumentError(op, `specs must map at least one feature name to {shape, dtype}, got ${describe(specs)}`);
    }
    for (const [key, spec] of Object.entries(specs)) {
      if (
        spec === null ||
        typeof spec !== 'object' ||
        !Array.isArray(spec.shape) ||
        !spec.shape.every((d) => Number.isInteger(d) && d >= 0)
      ) {
        throw new ArgumentError(
          op,
          `specs.${key}.shape must be an array of non-negative integers, got ${describe(spec?.shape)}`,
        );
      }
      if (!isDType(spec.dtype))
        throw new DTypeError(
          op,
          `specs.${key}.dtype must be float32, float64, int32 or bool, got ${describe(spec.dtype)}`,
        );
    }
    if (!Number.isInteger(cacheSize) || cacheSize < 1 || cacheSize > 2 ** 28) {
      throw new ArgumentError(op, `cacheSize must be an integer in [1, 2^28], got ${describe(cacheSize)}`);
    }
    if (typeof useLru !== 'boolean')
      throw new ArgumentError(op, `useLru must be true or false, got ${describe(useLru)}`);
    for (const [key, spec] of Object.entries(specs)) {
      const elements = spec.shape.reduce((p, d) => p * d, cacheSize);
      if (!(elements <= 2 ** 31 - 1)) {
        throw new ArgumentError(
          op,
          `specs.${key} is ${fmtShape(spec.shape)} per item, so the cache tensor [${cacheSize}, ${spec.shape.join(', ')}] would have ${elements} elements; need at most 2^31-1`,
        );
      }
    }
    this.specs = Object.freeze(
      Object.fromEntries(
        Object.entries(specs).map(([k, s]) => [
          k,
          Object.freeze({ shape: Object.freeze(s.shape.slice()), dtype: s.dtype }),
        ]),
      ),
    );
    this.cacheSize = cacheSize;
    this.useLru = useLru;
  }

  /** A zero cache: every feature zeros [cacheSize, ...shape], age zeros, no valid slot. */
  initCache(): NegativeCache {
    const data: Record<string, Tensor> = {};
    for (const [key, spec] of Object.entries(this.specs)) {
      const shape = [this.cacheSize, ...spec.shape];
      data[key] = wrap(allocate(spec.dtype, sizeOf(shape)), shape, spec.dtype);
    }
    return {
      data,
      age: wrap(new Int32Array(this.cacheSize), [this.cacheSize], 'int32'),
      valid: wrap(new Uint8Array(this.cacheSize), [this.cacheSize], 'bool'),
    };
  }

  /**
   * Returns the updated cache (the input is never modified). In order, as the
   * reference does:
   *  1. validation (everything is checked before anything is computed);
   *  2. refreshes: row updatedItemIndices[i] of every key in updatedItemData
   *     takes row i, unless updatedItemMask[i] is false; with LRU those rows'
   *     age becomes -1; with repeated indices the last row wins;
   *  3. new items: the n slots with the largest age are chosen (n = number of
   *     new items, masked ones included), ties to the smaller index; the k-th
   *     unmasked item goes to the k-th chosen slot, with age -1;
   *  4. every age + 1.
   * Written slots become valid. The cache size comes from the cache's own
   * tensors (a hand-built cache of another size works).
   */
  updateCache(cache: NegativeCache, update: CacheUpdate): NegativeCache {
    const size = this.checkCache(OP, cache);
    const { n, m } = this.checkUpdate(cache, size, update);

    const data: Record<string, Tensor> = {};
    const copies: Record<string, ReturnType<typeof allocate>> = {};
    for (const key of Object.keys(cache.data)) copies[key] = unsafeData(cache.data[key]!).slice();
    const age = (unsafeData(cache.age) as Int32Array).slice();
    const valid = cache.valid ? (unsafeData(cache.valid) as Uint8Array).slice() : new Uint8Array(size).fill(1);

    // 2. refreshes of existing rows
    if (update.updatedItemData && update.updatedItemIndices && m > 0) {
      const idx = unsafeData(update.updatedItemIndices) as Int32Array;
      const mask = update.updatedItemMask ? (unsafeData(update.updatedItemMask) as Uint8Array) : null;
      for (const [key, rows] of Object.entries(update.updatedItemData)) {
        const inner = rowSize(cache.data[key]!);
        const src = unsafeData(rows);
        const dst = copies[key]!;
        for (let i = 0; i < m; i++) {
          if (mask && !mask[i]) continue;
          dst.set(src.subarray(i * inner, (i + 1) * inner), idx[i]! * inner);
        }
      }
      const wrote = Object.keys(update.updatedItemData).length > 0;
      for (let i = 0; i < m; i++) {
        if (mask && !mask[i]) continue;
        if (this.useLru) age[idx[i]!] = -1; // as the reference, even when no key is written
        if (wrote) valid[idx[i]!] = 1;
      }
    }

    // 3. new items into the n oldest slots (stable: ties to the smaller index)
    if (n > 0) {
      const slots = oldestSlots(age, n);
      const mask = update.newItemsMask ? (unsafeData(update.newItemsMask) as Uint8Array) : null;
      let k = 0;
      for (let i = 0; i < n; i++) {
        if (mask && !mask[i]) continue;
        const slot = slots[k++]!;
        for (const [key, items] of Object.entries(update.newItems!)) {
          const inner = rowSize(cache.data[key]!);
          copies[key]!.set(unsafeData(items).subarray(i * inner, (i + 1) * inner), slot * inner);
        }
        age[slot] = -1;
        valid[slot] = 1;
      }
    }

    // 4. everything ages by one
    for (let i = 0; i < size; i++) age[i] = age[i]! + 1;
    for (const key of Object.keys(cache.data))
      data[key] = wrap(copies[key]!, cache.data[key]!.shape, cache.data[key]!.dtype);
    return {
      data,
      age: wrap(age, [size], 'int32'),
      valid: wrap(valid, [size], 'bool'),
    };
  }

  /** Runs every check of updateCache without computing anything; throws what updateCache would. */
  validateUpdate(cache: NegativeCache, update: CacheUpdate): void {
    this.checkUpdate(cache, this.checkCache(OP, cache), update);
  }

  /** Checks a cache against the specs; returns its size (from its own tensors). */
  checkCache(op: string, cache: NegativeCache, arg = 'cache'): number {
    if (cache === null || typeof cache !== 'object' || cache.data === null || typeof cache.data !== 'object') {
      throw new ArgumentError(op, `${arg} must be a NegativeCache {data, age, valid?}, got ${describe(cache)}`);
    }
    checkKeys(op, `${arg}.data`, cache.data, Object.keys(this.specs), true);
    if (!isTensor(cache.age) || cache.age.dtype !== 'int32' || cache.age.rank !== 1) {
      throw new ArgumentError(op, `${arg}.age must be an int32 [cacheSize] tensor, got ${describe(cache.age)}`);
    }
    const size = cache.age.shape[0]!;
    for (const [key, spec] of Object.entries(this.specs)) {
      const t = cache.data[key]!;
      if (!isTensor(t)) throw new ArgumentError(op, `${arg}.data.${key} must be a Tensor, got ${describe(t)}`);
      const want = [size, ...spec.shape];
      if (!shapesEqual(t.shape, want) || t.dtype !== spec.dtype) {
        throw new ShapeError(
          op,
          `${arg}.data.${key} is ${fmtShape(t.shape)} ${t.dtype}; need ${fmtShape(want)} ${spec.dtype} (the spec, with the cache size ${size} from ${arg}.age)`,
        );
      }
    }
    if (
      cache.valid !== undefined &&
      (!isTensor(cache.valid) || cache.valid.dtype !== 'bool' || !shapesEqual(cache.valid.shape, [size]))
    ) {
      throw new ArgumentError(op, `${arg}.valid must be a bool [${size}] tensor, got ${describe(cache.valid)}`);
    }
    return size;
  }

  private checkUpdate(cache: NegativeCache, size: number, update: CacheUpdate): { n: number; m: number } {
    checkOptions(OP, update, ['newItems', 'newItemsMask', 'updatedItemData', 'updatedItemIndices', 'updatedItemMask'], {
      required: true,
    });
    const { newItems, newItemsMask, updatedItemData, updatedItemIndices, updatedItemMask } = update;
    // new items (optional: without them the update only refreshes): exactly the cache's keys, one item count
    let n = 0;
    if (newItems === undefined) {
      if (newItemsMask !== undefined) throw new ArgumentError(OP, 'newItemsMask was given without newItems');
    } else {
      checkKeys(OP, 'newItems', newItems, Object.keys(this.specs), true);
      n = this.checkRows('newItems', newItems, size, cache);
      if (newItemsMask !== undefined) checkMask('newItemsMask', newItemsMask, n);
      if (n > size) {
        throw new ArgumentError(
          OP,
          `newItems has ${n} items but the cache has ${size} slots; need at most ${size} new items per update`,
        );
      }
    }
    // refreshes: a subset of keys, one item count shared with indices and mask
    let m = 0;
    if (updatedItemData !== undefined || updatedItemIndices !== undefined || updatedItemMask !== undefined) {
      if (updatedItemData === undefined || updatedItemIndices === undefined) {
        throw new ArgumentError(OP, 'updatedItemData and updatedItemIndices go together; got only one of them');
      }
      checkKeys(OP, 'updatedItemData', updatedItemData, Object.keys(this.specs), false);
      // Check the indices' type first: with an empty updatedItemData, m is read from them.
      if (!isTensor(updatedItemIndices) || updatedItemIndices.dtype !== 'int32' || updatedItemIndices.rank !== 1) {
        throw new ArgumentError(
          OP,
          `updatedItemIndices must be an int32 [m] tensor, got ${describe(updatedItemIndices)}`,
        );
      }
      m =
        Object.keys(updatedItemData).length > 0
          ? this.checkRows('updatedItemData', updatedItemData, size, cache)
          : updatedItemIndices.shape[0]!;
      if (updatedItemIndices.shape[0] !== m) {
        throw new ShapeError(
          OP,
          `updatedItemIndices has ${updatedItemIndices.shape[0]} entries but updatedItemData has ${m} rows; need one item count per update`,
        );
      }
      if (updatedItemMask !== undefined) checkMask('updatedItemMask', updatedItemMask, m);
      const idx = unsafeData(updatedItemIndices) as Int32Array;
      const mask = updatedItemMask ? (unsafeData(updatedItemMask) as Uint8Array) : null;
      for (let i = 0; i < m; i++) {
        if (mask && !mask[i]) continue;
        if (idx[i]! < 0 || idx[i]! >= size) {
          throw new ArgumentError(
            OP,
            `updatedItemIndices[${i}] = ${idx[i]} is out of range for a cache of ${size} slots; need 0 <= index < ${size} (or mask the row out)`,
          );
        }
      }
    }
    return { n, m };
  }

  /** All tensors of `items` must have the spec's per-item shape and dtype and one shared leading dim. */
  private checkRows(arg: string, items: Readonly<Record<string, Tensor>>, _size: number, cache: NegativeCache): number {
    let count = -1;
    let first = '';
    for (const key of Object.keys(items).sort()) {
      const t = items[key];
      const spec = this.specs[key]!;
      if (!isTensor(t)) throw new ArgumentError(OP, `${arg}.${key} must be a Tensor, got ${describe(t)}`);
      const itemShape = t.shape.slice(1);
      if (t.rank !== spec.shape.length + 1 || !shapesEqual(itemShape, cache.data[key]!.shape.slice(1))) {
        throw new ShapeError(
          OP,
          `${arg}.${key} is ${fmtShape(t.shape)}; need [n, ${spec.shape.join(', ')}] (items of shape ${fmtShape(spec.shape)})`.replace(
            '[n, ]',
            '[n]',
          ),
        );
      }
      if (t.dtype !== spec.dtype && !(isFloat(t.dtype) && isFloat(spec.dtype))) {
        throw new DTypeError(OP, `${arg}.${key} is ${t.dtype}; the cache stores ${spec.dtype}`);
      }
      if (count === -1) {
        count = t.shape[0]!;
        first = key;
      } else if (t.shape[0] !== count) {
        throw new ShapeError(
          OP,
          `${arg}.${key} has ${t.shape[0]} items but ${arg}.${first} has ${count}; need one item count per update`,
        );
      }
    }
    return Math.max(count, 0);
  }
}

function rowSize(t: Tensor): number {
  return t.shape.length <= 1 ? 1 : sizeOf(t.shape.slice(1));
}

function checkMask(arg: string, mask: unknown, n: number): void {
  if (!isTensor(mask) || mask.dtype !== 'bool' || !shapesEqual(mask.shape, [n])) {
    throw new ArgumentError(OP, `${arg} must be a bool [${n}] tensor (one entry per item), got ${describe(mask)}`);
  }
}

/** Keys must equal `want` (exact) or be a subset of it. */
function checkKeys(op: string, arg: string, obj: unknown, want: readonly string[], exact: boolean): void {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj) || isTensor(obj)) {
    throw new ArgumentError(op, `${arg} must be a record of tensors keyed by feature name, got ${describe(obj)}`);
  }
  const keys = Object.keys(obj);
  const extra = keys.filter((k) => !want.includes(k));
  if (extra.length > 0)
    throw new ArgumentError(
      op,
      `${arg} has unknown keys ${JSON.stringify(extra)}; the cache's keys are ${JSON.stringify(want)}`,
    );
  if (exact) {
    const missing = want.filter((k) => !keys.includes(k));
    if (missing.length > 0)
      throw new ArgumentError(
        op,
        `${arg} is missing keys ${JSON.stringify(missing)}; need exactly the cache's keys ${JSON.stringify(want)}`,
      );
  }
}

/**
 * The n slots with the largest age, ties to the smaller index (a stable
 * top-k), in that order. O(N log n): a min-heap of the best n seen so far;
 * scanning indices in increasing order, a later slot only displaces the
 * heap's worst when its age is strictly larger, which is the tie rule.
 */
export function oldestSlots(age: Int32Array, n: number): Int32Array {
  if (n <= 0) return new Int32Array(0);
  // worse(a, b): slot a ranks after slot b (younger, or same age and larger index)
  const worse = (a: number, b: number): boolean => age[a]! < age[b]! || (age[a] === age[b] && a > b);
  const heap: number[] = [];
  const siftUp = (i: number): void => {
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!worse(heap[i]!, heap[p]!)) break;
      [heap[i], heap[p]] = [heap[p]!, heap[i]!];
      i = p;
    }
  };
  const siftDown = (i: number): void => {
    for (;;) {
      const l = 2 * i + 1,
        r = l + 1;
      let w = i;
      if (l < heap.length && worse(heap[l]!, heap[w]!)) w = l;
      if (r < heap.length && worse(heap[r]!, heap[w]!)) w = r;
      if (w === i) return;
      [heap[i], heap[w]] = [heap[w]!, heap[i]!];
      i = w;
    }
  };
  for (let j = 0; j < age.length; j++) {
    if (heap.length < n) {
      heap.push(j);
      siftUp(heap.length - 1);
    } else if (age[j]! > age[heap[0]!]!) {
      heap[0] = j;
      siftDown(0);
    }
  }
  heap.sort((a, b) => age[b]! - age[a]! || a - b);
  return Int32Array.from(heap);
}
