/**
 * fast-check arbitraries for the negative cache: what a property test of code
 * that uses the cache, or of another implementation of it, needs to generate.
 *
 * Every arbitrary yields input the library accepts as it stands (a cache passes
 * `CacheManager.checkCache`, an update passes `updateCache`, a loss problem
 * passes `CacheClassificationLoss.call`), and shrinks towards small shapes and
 * values near 0 (they are built from fast-check's integer, float and array
 * arbitraries with `map`/`chain`, which shrink). Tensors print as
 * `tensor([...], 'float32')` in counterexamples.
 *
 * Values: floats are drawn in [min, max] (default [-4, 4]) or, with `step`,
 * as integer multiples of `step` (e.g. 1/8: exact in float32, so sums of a
 * few stay exact and a port in another language sees the very same numbers);
 * int32 in [min, max] (default [-8, 8]); bool uniformly. NaN and ±Infinity are
 * never generated. Options are checked when the arbitrary is built; a bad
 * option is an ArgumentError naming it.
 */
import fc from 'fast-check';
import { ArgumentError, describe } from '../errors.js';
import { isDType, type DType, type TypedArray } from '../tensor/dtype.js';
import { wrap, type Tensor } from '../tensor/tensor.js';
import type { CacheManagerOptions, CacheUpdate, FeatureSpec, NegativeCache } from '../cache/negativeCache.js';
import type { RetrievalFn } from '../retrieval/retrieval.js';

const OP = 'negcache/testing';

/** fc.record with plain objects (fast-check may otherwise build null-prototype objects). */
function record<T>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }): fc.Arbitrary<T> {
  return fc.record(model as Parameters<typeof fc.record>[0], { noNullPrototype: true }) as unknown as fc.Arbitrary<T>;
}

// ------------------------------------------------------------------ values and tensors

/** Value ranges for generated tensors. */
export interface ValueOptions {
  /** Smallest value (default -4 for floats, -8 for int32). */
  min?: number;
  /** Largest value (default 4 for floats, 8 for int32). */
  max?: number;
  /** Floats only: draw integer multiples of `step` in [min, max] (e.g. 1/8). */
  step?: number;
}

/** Bounds for a random shape: rank in [minRank, maxRank], every dimension in [minDim, maxDim]. */
export interface ShapeOptions {
  minRank?: number;
  maxRank?: number;
  minDim?: number;
  maxDim?: number;
}

export interface TensorArbOptions extends ValueOptions, ShapeOptions {
  /** A fixed shape (the rank/dim bounds are then ignored). */
  shape?: readonly number[];
  /** One dtype, or a list to draw from (default 'float32'). */
  dtype?: DType | readonly DType[];
}

function int(name: string, v: unknown, min: number, max = 2 ** 31 - 1): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    throw new ArgumentError(OP, `${name} must be an integer in [${min}, ${max}], got ${describe(v)}`);
  return v;
}

function range(name: string, lo: number, hi: number): void {
  if (lo > hi) throw new ArgumentError(OP, `${name}: the minimum ${lo} exceeds the maximum ${hi}`);
}

/** Prints a tensor in counterexamples as the `tensor(...)` call that rebuilds it. */
function printable(t: Tensor): Tensor {
  Object.defineProperty(t, fc.toStringMethod, {
    value: () => `tensor(${JSON.stringify(t.toArray())}, '${t.dtype}', ${JSON.stringify(t.shape)})`,
    enumerable: false,
  });
  return t;
}

/** An arbitrary shape within the bounds (shrinks to lower rank and smaller dimensions). */
export function arbShape(opts: ShapeOptions = {}): fc.Arbitrary<number[]> {
  const minRank = int('minRank', opts.minRank ?? 0, 0, 8);
  const maxRank = int('maxRank', opts.maxRank ?? 3, 0, 8);
  const minDim = int('minDim', opts.minDim ?? 1, 0, 1 << 16);
  const maxDim = int('maxDim', opts.maxDim ?? 4, 0, 1 << 16);
  range('rank', minRank, maxRank);
  range('dim', minDim, maxDim);
  return fc.array(fc.integer({ min: minDim, max: maxDim }), { minLength: minRank, maxLength: maxRank });
}

/** One scalar value of `dtype` (as a number; bool as 0/1). */
export function arbScalar(dtype: DType, opts: ValueOptions = {}): fc.Arbitrary<number> {
  if (!isDType(dtype))
    throw new ArgumentError(OP, `dtype must be float32, float64, int32 or bool, got ${describe(dtype)}`);
  if (dtype === 'bool') return fc.integer({ min: 0, max: 1 });
  const floatType = dtype !== 'int32';
  const min = opts.min ?? (floatType ? -4 : -8);
  const max = opts.max ?? (floatType ? 4 : 8);
  if (!Number.isFinite(min) || !Number.isFinite(max))
    throw new ArgumentError(OP, `min and max must be finite, got ${min} and ${max}`);
  range('values', min, max);
  if (dtype === 'int32') {
    const lo = Math.max(Math.ceil(min), -(2 ** 31)),
      hi = Math.min(Math.floor(max), 2 ** 31 - 1);
    range('int32 values', lo, hi);
    return fc.integer({ min: lo, max: hi });
  }
  if (opts.step !== undefined) {
    if (typeof opts.step !== 'number' || !(opts.step > 0) || !Number.isFinite(opts.step))
      throw new ArgumentError(OP, `step must be a finite number > 0, got ${describe(opts.step)}`);
    const step = opts.step;
    const lo = Math.ceil(min / step),
      hi = Math.floor(max / step);
    range(`multiples of step ${step}`, lo, hi);
    return fc.integer({ min: lo, max: hi }).map((k) => (dtype === 'float32' ? Math.fround(k * step) : k * step));
  }
  if (dtype === 'float32') {
    const lo = Math.fround(min),
      hi = Math.fround(max);
    return fc
      .float({ min: lo < min ? nextUp32(lo) : lo, max: hi > max ? nextDown32(hi) : hi, noNaN: true })
      .map((v) => (Object.is(v, -0) ? 0 : v));
  }
  return fc.double({ min, max, noNaN: true }).map((v) => (Object.is(v, -0) ? 0 : v));
}

function nextUp32(x: number): number {
  const f = new Float32Array([x]);
  const i = new Int32Array(f.buffer);
  i[0]! += x >= 0 ? 1 : -1;
  return f[0]!;
}

function nextDown32(x: number): number {
  return -nextUp32(-x);
}

function storage(dtype: DType, values: readonly number[]): TypedArray {
  if (dtype === 'float32') return Float32Array.from(values);
  if (dtype === 'float64') return Float64Array.from(values);
  if (dtype === 'int32') return Int32Array.from(values);
  return Uint8Array.from(values);
}

/** A tensor of exactly `shape` and `dtype` with values per `opts`. */
export function arbTensorOf(shape: readonly number[], dtype: DType, opts: ValueOptions = {}): fc.Arbitrary<Tensor> {
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0))
    throw new ArgumentError(OP, `shape must be an array of non-negative integers, got ${describe(shape)}`);
  const size = shape.reduce((a, b) => a * b, 1);
  const s = shape.slice();
  return fc
    .array(arbScalar(dtype, opts), { minLength: size, maxLength: size })
    .map((v) => printable(wrap(storage(dtype, v), s, dtype)));
}

/** A tensor of a given or random shape and dtype. */
export function arbTensor(opts: TensorArbOptions = {}): fc.Arbitrary<Tensor> {
  const dtypes =
    opts.dtype === undefined ? ['float32' as DType] : typeof opts.dtype === 'string' ? [opts.dtype] : opts.dtype;
  if (!Array.isArray(dtypes) || dtypes.length === 0 || !dtypes.every(isDType))
    throw new ArgumentError(OP, `dtype must be a dtype or a non-empty list of dtypes, got ${describe(opts.dtype)}`);
  for (const dt of dtypes) arbScalar(dt, opts); // validate the value options for every dtype now
  const shape = opts.shape !== undefined ? fc.constant(opts.shape.slice()) : arbShape(opts);
  return fc.tuple(shape, fc.constantFrom(...dtypes)).chain(([sh, dt]) => arbTensorOf(sh, dt, opts));
}

// ------------------------------------------------------------------ cache specs and caches

export interface FeatureSpecsOptions {
  /** Feature names (default f0, f1, ... up to maxKeys). The generated specs use a non-empty subset, in this order. */
  keys?: readonly string[];
  minKeys?: number;
  maxKeys?: number;
  /** Per-item rank in [0, maxRank] (default 2) and dimensions in [1, maxDim] (default 3). */
  maxRank?: number;
  maxDim?: number;
  /** Dtypes to draw from (default all four). */
  dtypes?: readonly DType[];
  /** Always include a float32 embedding feature `{shape: [dim], dtype: 'float32'}` under this key. */
  embedding?: { key: string; dim: number };
}

/** Feature specs (feature name → per-item shape and dtype), as `CacheManager` takes them. */
export function arbFeatureSpecs(opts: FeatureSpecsOptions = {}): fc.Arbitrary<Record<string, FeatureSpec>> {
  const maxKeys = int('maxKeys', opts.maxKeys ?? opts.keys?.length ?? 3, 0, 64);
  const keys = opts.keys ?? Array.from({ length: maxKeys }, (_, i) => `f${i}`);
  if (!Array.isArray(keys) || !keys.every((k) => typeof k === 'string' && k !== ''))
    throw new ArgumentError(OP, `keys must be non-empty strings, got ${describe(keys)}`);
  const emb = opts.embedding;
  if (emb !== undefined) {
    if (emb === null || typeof emb.key !== 'string' || emb.key === '')
      throw new ArgumentError(OP, `embedding must be {key, dim}, got ${describe(emb)}`);
    int('embedding.dim', emb.dim, 1, 1 << 16);
  }
  const minKeys = int('minKeys', opts.minKeys ?? (emb ? 0 : 1), 0, 64);
  const others = keys.filter((k) => k !== emb?.key);
  range('keys', minKeys, Math.min(maxKeys, others.length));
  const dtypes = opts.dtypes ?? (['float32', 'float64', 'int32', 'bool'] as const);
  if (!Array.isArray(dtypes) || dtypes.length === 0 || !dtypes.every(isDType))
    throw new ArgumentError(OP, `dtypes must be a non-empty list of dtypes, got ${describe(opts.dtypes)}`);
  const spec: fc.Arbitrary<FeatureSpec> = record({
    shape: arbShape({ minRank: 0, maxRank: opts.maxRank ?? 2, minDim: 1, maxDim: opts.maxDim ?? 3 }),
    dtype: fc.constantFrom(...dtypes),
  });
  return fc
    .subarray(others, { minLength: minKeys, maxLength: Math.min(maxKeys, others.length) })
    .chain((chosen) => fc.tuple(...chosen.map(() => spec)).map((s) => ({ chosen, s })))
    .map(({ chosen, s }) => {
      const out: Record<string, FeatureSpec> = {};
      if (emb) out[emb.key] = { shape: [emb.dim], dtype: 'float32' };
      chosen.forEach((k, i) => (out[k] = s[i]!));
      if (Object.keys(out).length === 0) out[keys[0]!] = { shape: [], dtype: 'float32' };
      return out;
    });
}

export interface CacheSpecOptions extends FeatureSpecsOptions {
  /** Cache size in [minSize, maxSize] (default 1..8). */
  minSize?: number;
  maxSize?: number;
  /** Fixed LRU flag; drawn when omitted. */
  useLru?: boolean;
}

/** `CacheManager` options: specs, a cache size and the LRU flag (plain data: build the manager with `new CacheManager(o)`). */
export function arbCacheSpec(opts: CacheSpecOptions = {}): fc.Arbitrary<CacheManagerOptions> {
  const minSize = int('minSize', opts.minSize ?? 1, 1, 1 << 20);
  const maxSize = int('maxSize', opts.maxSize ?? 8, 1, 1 << 20);
  range('size', minSize, maxSize);
  if (opts.useLru !== undefined && typeof opts.useLru !== 'boolean')
    throw new ArgumentError(OP, `useLru must be true or false, got ${describe(opts.useLru)}`);
  return record({
    specs: arbFeatureSpecs(opts),
    cacheSize: fc.integer({ min: minSize, max: maxSize }),
    useLru: opts.useLru !== undefined ? fc.constant(opts.useLru) : fc.boolean(),
  });
}

/** What the cache arbitraries need to know of a cache: a `CacheManager` or its options. */
export interface CacheLayout {
  specs: Readonly<Record<string, FeatureSpec>>;
  cacheSize: number;
}

export interface CacheArbOptions extends ValueOptions {
  /** Number of slots (default layout.cacheSize; a hand-built cache may differ from it). */
  size?: number;
  /** Ages in [0, maxAge] (default 10). */
  maxAge?: number;
  /**
   * The valid flags: 'random' (default), 'all', 'none' (a fresh cache), or
   * 'absent' (no `valid` field: a hand-built cache as in the reference).
   * Invalid slots hold zeros, as in a cache that got there by updates.
   */
  valid?: 'random' | 'all' | 'none' | 'absent';
}

function checkLayout(layout: unknown): CacheLayout {
  const l = layout as CacheLayout;
  if (l === null || typeof l !== 'object' || l.specs === null || typeof l.specs !== 'object')
    throw new ArgumentError(OP, `layout must be a CacheManager or {specs, cacheSize}, got ${describe(layout)}`);
  int('cacheSize', l.cacheSize, 1, 1 << 28);
  return l;
}

/** A cache for `layout` with random rows, ages and valid flags. */
export function arbCache(layout: CacheLayout, opts: CacheArbOptions = {}): fc.Arbitrary<NegativeCache> {
  const { specs, cacheSize } = checkLayout(layout);
  const size = int('size', opts.size ?? cacheSize, 1, 1 << 28);
  const maxAge = int('maxAge', opts.maxAge ?? 10, 0);
  const validMode = opts.valid ?? 'random';
  if (!['random', 'all', 'none', 'absent'].includes(validMode))
    throw new ArgumentError(OP, `valid must be 'random', 'all', 'none' or 'absent', got ${describe(opts.valid)}`);
  const keys = Object.keys(specs);
  const data = fc.tuple(...keys.map((k) => arbTensorOf([size, ...specs[k]!.shape], specs[k]!.dtype, opts)));
  const valid =
    validMode === 'random'
      ? fc.array(fc.boolean(), { minLength: size, maxLength: size })
      : fc.constant(new Array<boolean>(size).fill(validMode !== 'none'));
  return record({
    data,
    age: fc.array(fc.integer({ min: 0, max: maxAge }), { minLength: size, maxLength: size }),
    valid,
  }).map(({ data: d, age, valid: v }) => {
    const out: Record<string, Tensor> = {};
    keys.forEach((k, i) => {
      const t = d[i]!;
      if (validMode === 'absent') {
        out[k] = t;
        return;
      }
      // invalid slots hold zeros, as after initCache
      const src = t.dataSync();
      const inner = src.length / size;
      for (let j = 0; j < size; j++) if (!v[j]) src.fill(0, j * inner, (j + 1) * inner);
      out[k] = printable(wrap(src, t.shape, t.dtype));
    });
    const cache: NegativeCache = {
      data: out,
      age: printable(wrap(Int32Array.from(age), [size], 'int32')),
      ...(validMode === 'absent' ? {} : { valid: printable(wrap(Uint8Array.from(v, Number), [size], 'bool')) }),
    };
    return cache;
  });
}

export interface CacheUpdateArbOptions extends ValueOptions {
  /** Number of slots of the cache the update is for (default layout.cacheSize). */
  size?: number;
  /** At most this many new items (default the cache size; never more). */
  maxNewItems?: number;
  /** At most this many refreshed rows (default 4; 0 = no refreshes). Repeated indices happen (the last unmasked row wins). */
  maxRefreshes?: number;
  /** Draw newItemsMask / updatedItemMask some of the time (default true). */
  masks?: boolean;
}

/**
 * One valid update for a cache of `layout`: new items (exactly the cache's
 * keys, 0..maxNewItems rows), sometimes a mask, and sometimes refreshes
 * (`updatedItemData` over a subset of the keys, possibly empty, with indices
 * in range and sometimes a mask).
 */
export function arbCacheUpdate(layout: CacheLayout, opts: CacheUpdateArbOptions = {}): fc.Arbitrary<CacheUpdate> {
  const { specs, cacheSize } = checkLayout(layout);
  const size = int('size', opts.size ?? cacheSize, 1, 1 << 28);
  const maxNew = Math.min(int('maxNewItems', opts.maxNewItems ?? size, 0), size);
  const maxRefresh = int('maxRefreshes', opts.maxRefreshes ?? 4, 0, 1 << 16);
  const masks = opts.masks ?? true;
  if (typeof masks !== 'boolean') throw new ArgumentError(OP, `masks must be true or false, got ${describe(masks)}`);
  const keys = Object.keys(specs);
  const rows = (ks: readonly string[], n: number): fc.Arbitrary<Record<string, Tensor>> =>
    fc
      .tuple(...ks.map((k) => arbTensorOf([n, ...specs[k]!.shape], specs[k]!.dtype, opts)))
      .map((ts) => Object.fromEntries(ks.map((k, i) => [k, ts[i]!])));
  const boolMask = (n: number): fc.Arbitrary<Tensor> =>
    fc
      .array(fc.boolean(), { minLength: n, maxLength: n })
      .map((b) => printable(wrap(Uint8Array.from(b, Number), [n], 'bool')));
  return record({
    n: fc.integer({ min: 0, max: maxNew }),
    m: fc.integer({ min: 0, max: maxRefresh }),
    newMasked: masks ? fc.boolean() : fc.constant(false),
    refreshMasked: masks ? fc.boolean() : fc.constant(false),
    subset: fc.subarray(keys),
  }).chain(({ n, m, newMasked, refreshMasked, subset }) => {
    const parts: { [K in keyof CacheUpdate]-?: fc.Arbitrary<CacheUpdate[K]> } = {
      newItems: rows(keys, n),
      newItemsMask: newMasked ? boolMask(n) : fc.constant(undefined),
      updatedItemData: m > 0 ? rows(subset, m) : fc.constant(undefined),
      updatedItemIndices:
        m > 0
          ? fc
              .array(fc.integer({ min: 0, max: size - 1 }), { minLength: m, maxLength: m })
              .map((ix) => printable(wrap(Int32Array.from(ix), [m], 'int32')))
          : fc.constant(undefined),
      updatedItemMask: m > 0 && refreshMasked ? boolMask(m) : fc.constant(undefined),
    };
    return record(parts).map((u) => {
      const out = { newItems: u.newItems } as CacheUpdate;
      for (const k of ['newItemsMask', 'updatedItemData', 'updatedItemIndices', 'updatedItemMask'] as const)
        if (u[k] !== undefined) (out as unknown as Record<string, unknown>)[k] = u[k];
      return out;
    });
  });
}

export interface CacheScenario {
  /** Build the manager with `new CacheManager(scenario.options)`. */
  options: CacheManagerOptions;
  /** Apply in order, starting from `initCache()`; each is valid for the cache it meets. */
  updates: CacheUpdate[];
}

/** A cache layout and a sequence of 1..maxSteps valid updates (default 6). */
export function arbCacheScenario(
  opts: CacheSpecOptions & CacheUpdateArbOptions & { minSteps?: number; maxSteps?: number } = {},
): fc.Arbitrary<CacheScenario> {
  const minSteps = int('minSteps', opts.minSteps ?? 1, 0, 1 << 16);
  const maxSteps = int('maxSteps', opts.maxSteps ?? 6, 0, 1 << 16);
  range('steps', minSteps, maxSteps);
  const { size: _size, ...rest } = opts;
  void _size;
  return arbCacheSpec(opts).chain((options) =>
    fc
      .array(arbCacheUpdate(options, rest), { minLength: minSteps, maxLength: maxSteps })
      .map((updates) => ({ options, updates })),
  );
}

// ------------------------------------------------------------------ queries, scores, retrievals

/** A size: a fixed number or {min, max}. */
export type SizeOption = number | { min: number; max: number };

function sizeArb(name: string, v: SizeOption | undefined, dflt: SizeOption, lo = 1): fc.Arbitrary<number> {
  const s = v ?? dflt;
  if (typeof s === 'number') return fc.constant(int(name, s, lo));
  if (s === null || typeof s !== 'object')
    throw new ArgumentError(OP, `${name} must be a number or {min, max}, got ${describe(s)}`);
  const min = int(`${name}.min`, s.min, lo),
    max = int(`${name}.max`, s.max, lo);
  range(name, min, max);
  return fc.integer({ min, max });
}

export interface QueryBatchOptions extends ValueOptions {
  /** Queries per batch (default 1..4). */
  batch?: SizeOption;
  /** Embedding dimension (default 1..4). */
  dim?: SizeOption;
  /** 'float32' (default) or 'float64'. */
  dtype?: 'float32' | 'float64';
}

/** Query embeddings and one positive document embedding per query, both float [b, d]. */
export function arbQueryBatch(opts: QueryBatchOptions = {}): fc.Arbitrary<{ queries: Tensor; positives: Tensor }> {
  const dtype = opts.dtype ?? 'float32';
  if (dtype !== 'float32' && dtype !== 'float64')
    throw new ArgumentError(OP, `dtype must be 'float32' or 'float64', got ${describe(opts.dtype)}`);
  return fc
    .tuple(sizeArb('batch', opts.batch, { min: 1, max: 4 }), sizeArb('dim', opts.dim, { min: 1, max: 4 }))
    .chain(([b, d]) =>
      record({ queries: arbTensorOf([b, d], dtype, opts), positives: arbTensorOf([b, d], dtype, opts) }),
    );
}

export interface ScoresOptions extends ValueOptions {
  batch?: SizeOption;
  /** Candidates per row (default 1..6). */
  candidates?: SizeOption;
  /** Probability that an entry is -Infinity (an excluded candidate; default 0). */
  excluded?: number;
  dtype?: 'float32' | 'float64';
}

/** Scores [b, n] as retrieval functions take them; with `excluded`, some entries are -Infinity. */
export function arbScores(opts: ScoresOptions = {}): fc.Arbitrary<Tensor> {
  const dtype = opts.dtype ?? 'float32';
  if (dtype !== 'float32' && dtype !== 'float64')
    throw new ArgumentError(OP, `dtype must be 'float32' or 'float64', got ${describe(opts.dtype)}`);
  const p = opts.excluded ?? 0;
  if (typeof p !== 'number' || !(p >= 0 && p <= 1))
    throw new ArgumentError(OP, `excluded must be a probability in [0, 1], got ${describe(opts.excluded)}`);
  const entry =
    p === 0
      ? arbScalar(dtype, opts)
      : fc
          .tuple(fc.double({ min: 0, max: 1, noNaN: true }), arbScalar(dtype, opts))
          .map(([u, v]) => (u < p ? -Infinity : v));
  return fc
    .tuple(sizeArb('batch', opts.batch, { min: 1, max: 4 }), sizeArb('candidates', opts.candidates, { min: 1, max: 6 }))
    .chain(([b, n]) =>
      fc
        .array(entry, { minLength: b * n, maxLength: b * n })
        .map((v) => printable(wrap(storage(dtype, v), [b, n], dtype))),
    );
}

export interface RetrievalArb {
  /** int32 [b, 1]: one candidate index per query. */
  indices: Tensor;
  /** A retrieval function returning `indices` (it checks that the scores have b rows and enough candidates). */
  retrievalFn: RetrievalFn;
}

/** A fixed retrieval function returning `indices` (int32 [b, 1]) for scores [b, n]. */
export function fixedRetrievalFn(indices: Tensor): RetrievalFn {
  const idx = Int32Array.from(indices.dataSync() as Int32Array);
  if (indices.dtype !== 'int32' || indices.rank !== 2 || indices.shape[1] !== 1)
    throw new ArgumentError(OP, `indices must be int32 [b, 1], got ${describe(indices)}`);
  return (scores) => {
    const [b, n] = scores.shape as [number, number];
    if (b !== idx.length || idx.some((j) => j >= n))
      throw new ArgumentError(
        'fixedRetrievalFn',
        `scores are [${scores.shape.join(', ')}] but the fixed indices are for ${idx.length} queries with maximum ${Math.max(...idx)}`,
      );
    return wrap(idx.slice(), [b, 1], 'int32');
  };
}

/** Retrieval results: per query an index in [0, candidates), and the retrieval function that returns them. */
export function arbRetrieval(opts: { batch: number; candidates: number }): fc.Arbitrary<RetrievalArb> {
  const b = int('batch', opts?.batch, 1),
    n = int('candidates', opts?.candidates, 1);
  return fc.array(fc.integer({ min: 0, max: n - 1 }), { minLength: b, maxLength: b }).map((ix) => {
    const indices = printable(wrap(Int32Array.from(ix), [b, 1], 'int32'));
    return { indices, retrievalFn: fixedRetrievalFn(indices) };
  });
}

// ------------------------------------------------------------------ whole loss problems

export interface LossProblemOptions extends ValueOptions {
  /** Number of data sources (default 1..3), named s0, s1, ... */
  sources?: SizeOption;
  /** Slots per source (default 1..4). */
  sourceSize?: SizeOption;
  batch?: SizeOption;
  dim?: SizeOption;
  /** Valid flags of the caches: as in arbCache (default 'all'). With 'random' some queries may have no negative. */
  valid?: CacheArbOptions['valid'];
  dtype?: 'float32' | 'float64';
}

/**
 * Everything `CacheClassificationLoss.call` takes, with a fixed retrieval:
 * caches keyed by source, each with `emb` (float [n_s, d], the cached
 * embeddings) and `feat` (float [n_s, d], the features the doc network
 * reads; different from `emb`, so the cache is stale), queries and positives
 * [b, d], and a retrieval function picking, per query, an index into the
 * concatenated cache (sources in sorted order; valid slots only when there is one).
 * Use with `new CacheClassificationLoss({embeddingKey, dataKeys, retrievalFn})`.
 */
export interface LossProblem {
  cache: Record<string, NegativeCache>;
  embeddingKey: 'emb';
  dataKeys: ['feat'];
  queries: Tensor;
  positives: Tensor;
  /** int32 [b, 1], into the concatenated cache. */
  indices: Tensor;
  retrievalFn: RetrievalFn;
}

export function arbLossProblem(opts: LossProblemOptions = {}): fc.Arbitrary<LossProblem> {
  const dtype = opts.dtype ?? 'float32';
  if (dtype !== 'float32' && dtype !== 'float64')
    throw new ArgumentError(OP, `dtype must be 'float32' or 'float64', got ${describe(opts.dtype)}`);
  const valid = opts.valid ?? 'all';
  return record({
    sizes: sizeArb('sources', opts.sources, { min: 1, max: 3 }).chain((s) =>
      fc.array(sizeArb('sourceSize', opts.sourceSize, { min: 1, max: 4 }), { minLength: s, maxLength: s }),
    ),
    b: sizeArb('batch', opts.batch, { min: 1, max: 4 }),
    d: sizeArb('dim', opts.dim, { min: 1, max: 4 }),
  })
    .chain(({ sizes, b, d }) => {
      const specs: Record<string, FeatureSpec> = { emb: { shape: [d], dtype }, feat: { shape: [d], dtype } };
      const caches = fc.tuple(...sizes.map((n) => arbCache({ specs, cacheSize: n }, { ...opts, valid })));
      const n = sizes.reduce((a, c) => a + c, 0);
      return record({
        caches,
        batch: arbQueryBatch({ ...opts, batch: b, dim: d, dtype }),
        picks: fc.array(fc.integer({ min: 0, max: n - 1 }), { minLength: b, maxLength: b }),
      });
    })
    .map(({ caches, batch, picks }) => {
      const cache: Record<string, NegativeCache> = {};
      caches.forEach((c, i) => (cache[`s${i}`] = c));
      // Prefer a valid slot: the k-th pick becomes the (k mod #valid)-th valid slot when there is one.
      const validRows: number[] = [];
      let all = 0;
      for (const s of Object.keys(cache).sort()) {
        const c = cache[s]!;
        const v = c.valid ? (c.valid.dataSync() as Uint8Array) : null;
        const size = c.age.shape[0]!;
        for (let j = 0; j < size; j++) if (!v || v[j]) validRows.push(all + j);
        all += size;
      }
      const idx = picks.map((p) => (validRows.length > 0 ? validRows[p % validRows.length]! : p));
      const indices = printable(wrap(Int32Array.from(idx), [idx.length, 1], 'int32'));
      return {
        cache,
        embeddingKey: 'emb' as const,
        dataKeys: ['feat'] as ['feat'],
        queries: batch.queries,
        positives: batch.positives,
        indices,
        retrievalFn: fixedRetrievalFn(indices),
      };
    });
}
