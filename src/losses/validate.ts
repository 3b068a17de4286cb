/** Validation of the cache loss's inputs (before any sampling, so a rejected call consumes no randomness). */
import { ArgumentError, DTypeError, ShapeError, describe, fmtShape } from '../errors.js';
import { isFloat } from '../tensor/dtype.js';
import { shapesEqual } from '../tensor/shape.js';
import { isTensor, unsafeData, type Tensor } from '../tensor/tensor.js';
import type { NegativeCache } from '../cache/negativeCache.js';
import type { RetrievalResult } from './cacheRetrieval.js';

/** A precomputed retrieval (from `retrieve`), to pass back as `call(..., {retrieval})`. */
export interface Retrieval extends RetrievalResult {
  /** The cache record it was computed against. */
  readonly cache: Readonly<Record<string, NegativeCache>>;
  /** The query values it was computed for (a constant copy). */
  readonly queries: Tensor;
  /**
   * Exactly the features the loss will pass to the doc network for this
   * retrieval: the sampled items' data, each distinct item once when
   * numNegatives > 1 (a trainer reads it to know which document rows a step
   * touches before it builds the gradient).
   */
  readonly docNetworkFeatures: Record<string, Tensor>;
}

/** Validates the record of caches; returns the sources in sorted order. */
export function checkCaches(
  op: string,
  cache: unknown,
  embeddingKey: string,
  dataKeys: readonly string[],
  d: number,
  idKey?: string,
): string[] {
  if (cache === null || typeof cache !== 'object' || Array.isArray(cache) || Object.keys(cache).length === 0) {
    throw new ArgumentError(
      op,
      `cache must be a non-empty record of caches (data source -> NegativeCache), got ${describe(cache)}`,
    );
  }
  const sources = Object.keys(cache).sort();
  for (const s of sources) {
    const c = (cache as Record<string, NegativeCache>)[s];
    if (c === null || typeof c !== 'object' || c.data === null || typeof c.data !== 'object') {
      throw new ArgumentError(op, `cache.${s} must be a NegativeCache {data, age}, got ${describe(c)}`);
    }
    const emb = c.data[embeddingKey];
    if (!isTensor(emb))
      throw new ArgumentError(
        op,
        `cache.${s}.data has no embedding "${embeddingKey}" (keys: ${Object.keys(c.data).join(', ')})`,
      );
    if (!isFloat(emb.dtype))
      throw new DTypeError(op, `cache.${s}.data.${embeddingKey} must be float, got ${emb.dtype}`);
    if (emb.rank !== 2 || emb.shape[1] !== d) {
      throw new ShapeError(
        op,
        `cache.${s}.data.${embeddingKey} is ${fmtShape(emb.shape)}; need [cacheSize, ${d}] to match the query dimension ${d}`,
      );
    }
    const size = emb.shape[0]!;
    for (const key of [...dataKeys, ...(idKey !== undefined ? [idKey] : [])]) {
      const t = c.data[key];
      if (!isTensor(t))
        throw new ArgumentError(op, `cache.${s}.data has no key "${key}" (keys: ${Object.keys(c.data).join(', ')})`);
      if (t.shape[0] !== size)
        throw new ShapeError(
          op,
          `cache.${s}.data.${key} has ${t.shape[0]} rows but the embeddings have ${size}; need one row per slot`,
        );
    }
    if (idKey !== undefined) {
      const t = c.data[idKey]!;
      if (t.dtype !== 'int32' || !(t.rank === 1 || (t.rank === 2 && t.shape[1] === 1))) {
        throw new DTypeError(
          op,
          `falseNegativeKey "${idKey}" must hold int32 ids of shape [cacheSize] or [cacheSize, 1], got ${fmtShape(t.shape)} ${t.dtype}`,
        );
      }
    }
    if (
      c.valid !== undefined &&
      (!isTensor(c.valid) || c.valid.dtype !== 'bool' || !shapesEqual(c.valid.shape, [size]))
    ) {
      throw new ArgumentError(op, `cache.${s}.valid must be a bool [${size}] tensor, got ${describe(c.valid)}`);
    }
  }
  return sources;
}

/** A precomputed retrieval must belong to this cache and these query values. */
export function checkRetrieval(
  op: string,
  r: Retrieval,
  cache: Readonly<Record<string, NegativeCache>>,
  q: Tensor,
  numSamples: number,
): Retrieval {
  if (r === null || typeof r !== 'object' || !(r.indices instanceof Int32Array) || r.docNetworkFeatures === undefined)
    throw new ArgumentError(op, `retrieval must come from retrieve(), got ${describe(r)}`);
  if (r.numSamples !== numSamples)
    throw new ArgumentError(
      op,
      `retrieval has ${r.numSamples} samples per query but this loss draws numNegatives = ${numSamples}; retrieve with this loss`,
    );
  if (r.cache !== cache)
    throw new ArgumentError(
      op,
      'retrieval was computed against a different cache; call retrieve() again with this cache',
    );
  const a = unsafeData(r.queries),
    bq = unsafeData(q);
  if (!shapesEqual(r.queries.shape, q.shape) || a.some((v, i) => !Object.is(v, bq[i]))) {
    throw new ArgumentError(
      op,
      'retrieval was computed for different query embeddings; sampling must see the same query values as the loss',
    );
  }
  return r;
}

export function checkFresh(op: string, fresh: unknown, rows: number, d: number): void {
  if (!isTensor(fresh) || !isFloat(fresh.dtype) || !shapesEqual(fresh.shape, [rows, d])) {
    throw new ShapeError(
      op,
      `docNetwork must return float embeddings [${rows}, ${d}] for the ${rows} sampled items, got ${describe(fresh)}`,
    );
  }
}
