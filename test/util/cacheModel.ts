/**
 * An obviously-correct reference model of the negative cache in plain JS
 * arrays, following /work/shared/REFERENCE.md ("Cache manager") literally,
 * plus helpers to move between the model and library caches and to snapshot
 * a cache's values for "nothing was mutated" assertions.
 *
 * The model never imports the cache code: only `tensor()` to build tensors
 * and `dataSync()` to read them back.
 */
import { expect } from 'vitest';
import { tensor } from '../../src/tensor/create.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import type { DType } from '../../src/tensor/dtype.js';
import type { CacheUpdate, NegativeCache } from '../../src/cache/negativeCache.js';

export interface ModelSpec {
  shape: number[];
  dtype: DType;
}

/** One row per slot; each row is the item's values flattened (length = product of spec.shape). */
export interface ModelCache {
  data: Record<string, number[][]>;
  age: number[];
  valid: boolean[];
}

export interface ModelUpdate {
  /** Absent: a refresh-only update. */
  newItems?: Record<string, number[][]>;
  newItemsMask?: boolean[];
  updatedItemData?: Record<string, number[][]>;
  updatedItemIndices?: number[];
  updatedItemMask?: boolean[];
}

export function itemSize(spec: ModelSpec): number {
  return spec.shape.reduce((a, b) => a * b, 1);
}

/** initCache(): zero rows, age 0, nothing valid. */
export function modelInit(specs: Record<string, ModelSpec>, size: number): ModelCache {
  const data: Record<string, number[][]> = {};
  for (const [key, spec] of Object.entries(specs)) {
    data[key] = Array.from({ length: size }, () => new Array<number>(itemSize(spec)).fill(0));
  }
  return { data, age: new Array<number>(size).fill(0), valid: new Array<boolean>(size).fill(false) };
}

/**
 * updateCache, step by step as REFERENCE.md states it (the update is assumed
 * valid: step 1, validation, is the library's job and is tested separately).
 * Returns a new model; the input is not modified.
 */
export function modelUpdate(cache: ModelCache, update: ModelUpdate, useLru: boolean): ModelCache {
  const size = cache.age.length;
  const data: Record<string, number[][]> = {};
  for (const [k, rows] of Object.entries(cache.data)) data[k] = rows.map((r) => r.slice());
  const age = cache.age.slice();
  const valid = cache.valid.slice();

  // 2. Updates of existing items: row updatedItemIndices[i] of every key in
  //    updatedItemData takes row i, except where updatedItemMask[i] is false.
  //    With LRU the written row's age becomes -1. (In order, so a repeated
  //    index ends up with its last unmasked row.)
  if (update.updatedItemData !== undefined && update.updatedItemIndices !== undefined) {
    const idx = update.updatedItemIndices;
    for (let i = 0; i < idx.length; i++) {
      if (update.updatedItemMask !== undefined && !update.updatedItemMask[i]) continue;
      const slot = idx[i]!;
      for (const [k, rows] of Object.entries(update.updatedItemData)) data[k]![slot] = rows[i]!.slice();
      if (useLru) age[slot] = -1; // even when updatedItemData has no keys (as the reference)
      if (Object.keys(update.updatedItemData).length > 0) valid[slot] = true; // only a written row holds an item
    }
  }

  // 3. New items: the n slots with the largest age, ties to the smallest
  //    index; the k-th unmasked item goes to the k-th chosen slot, age -1.
  const newItems = update.newItems ?? {};
  const keys = Object.keys(newItems);
  const n = keys.length === 0 ? 0 : newItems[keys[0]!]!.length;
  const order = Array.from({ length: size }, (_, j) => j).sort((a, b) => age[b]! - age[a]! || a - b);
  const chosen = order.slice(0, n);
  let k = 0;
  for (let i = 0; i < n; i++) {
    if (update.newItemsMask !== undefined && !update.newItemsMask[i]) continue;
    const slot = chosen[k++]!;
    for (const key of keys) data[key]![slot] = newItems[key]![i]!.slice();
    age[slot] = -1;
    valid[slot] = true;
  }

  // 4. Every age + 1.
  for (let j = 0; j < size; j++) age[j] = age[j]! + 1;
  return { data, age, valid };
}

// ---------------------------------------------------------------------
// Conversions
// ---------------------------------------------------------------------

function rowsToTensor(rows: number[][], spec: ModelSpec): Tensor {
  const flat = rows.flat();
  return tensor(flat, spec.dtype, [rows.length, ...spec.shape]);
}

function tensorToRows(t: Tensor): number[][] {
  const d = Array.from(t.dataSync() as ArrayLike<number>, Number);
  const n = t.shape[0]!;
  const inner = n === 0 ? 0 : d.length / n;
  return Array.from({ length: n }, (_, i) => d.slice(i * inner, (i + 1) * inner));
}

export function modelToCache(m: ModelCache, specs: Record<string, ModelSpec>): NegativeCache {
  const data: Record<string, Tensor> = {};
  for (const [k, spec] of Object.entries(specs)) data[k] = rowsToTensor(m.data[k]!, spec);
  return {
    data,
    age: tensor(m.age, 'int32', [m.age.length]),
    valid: tensor(
      m.valid.map((v) => (v ? 1 : 0)),
      'bool',
      [m.valid.length],
    ),
  };
}

export function cacheToModel(c: NegativeCache): ModelCache {
  const data: Record<string, number[][]> = {};
  for (const [k, t] of Object.entries(c.data)) data[k] = tensorToRows(t);
  const size = c.age.shape[0]!;
  return {
    data,
    age: Array.from(c.age.dataSync() as Int32Array),
    valid: c.valid ? Array.from(c.valid.dataSync() as Uint8Array, (v) => v !== 0) : new Array<boolean>(size).fill(true),
  };
}

/** The library form of a model update. */
export function updateToTensors(u: ModelUpdate, specs: Record<string, ModelSpec>): CacheUpdate {
  const out: CacheUpdate = {};
  if (u.newItems !== undefined)
    out.newItems = Object.fromEntries(
      Object.entries(u.newItems).map(([k, rows]) => [k, rowsToTensor(rows, specs[k]!)]),
    );
  if (u.newItemsMask !== undefined)
    out.newItemsMask = tensor(
      u.newItemsMask.map((v) => (v ? 1 : 0)),
      'bool',
      [u.newItemsMask.length],
    );
  if (u.updatedItemData !== undefined) {
    out.updatedItemData = Object.fromEntries(
      Object.entries(u.updatedItemData).map(([k, rows]) => [k, rowsToTensor(rows, specs[k]!)]),
    );
  }
  if (u.updatedItemIndices !== undefined)
    out.updatedItemIndices = tensor(u.updatedItemIndices, 'int32', [u.updatedItemIndices.length]);
  if (u.updatedItemMask !== undefined)
    out.updatedItemMask = tensor(
      u.updatedItemMask.map((v) => (v ? 1 : 0)),
      'bool',
      [u.updatedItemMask.length],
    );
  return out;
}

// ---------------------------------------------------------------------
// Snapshots: every tensor's shape, dtype and values, as plain data
// ---------------------------------------------------------------------

export interface TensorSnapshot {
  shape: number[];
  dtype: DType;
  values: number[];
}

export function snapTensor(t: Tensor): TensorSnapshot {
  // Object.is-safe plain numbers (NaN stays NaN, -0 becomes 0 for toEqual).
  return {
    shape: t.shape.slice(),
    dtype: t.dtype,
    values: Array.from(t.dataSync() as ArrayLike<number>, (v) => Number(v) + 0),
  };
}

/** Deep snapshot of a cache (or a record of caches) through dataSync. */
export function snapshotCache(c: NegativeCache): Record<string, unknown> {
  return {
    data: Object.fromEntries(
      Object.keys(c.data)
        .sort()
        .map((k) => [k, snapTensor(c.data[k]!)]),
    ),
    age: snapTensor(c.age),
    valid: c.valid === undefined ? null : snapTensor(c.valid),
  };
}

export function snapshotCaches(cs: Readonly<Record<string, NegativeCache>>): Record<string, unknown> {
  return Object.fromEntries(
    Object.keys(cs)
      .sort()
      .map((s) => [s, snapshotCache(cs[s]!)]),
  );
}

/** Asserts the library cache holds exactly the model's data, ages and valid flags. */
export function expectCacheMatchesModel(c: NegativeCache, m: ModelCache, label = ''): void {
  const got = cacheToModel(c);
  expect(got.age, `${label} age`).toEqual(m.age);
  expect(got.valid, `${label} valid`).toEqual(m.valid);
  expect(Object.keys(got.data).sort(), `${label} keys`).toEqual(Object.keys(m.data).sort());
  for (const k of Object.keys(m.data)) expect(got.data[k], `${label} data.${k}`).toEqual(m.data[k]);
}
