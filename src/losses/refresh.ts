/**
 * The refresh data of a cache loss (reference: losses._get_retrieved_embedding_updates):
 * for every data source, the fresh embeddings of the sampled items, their
 * indices local to that source, and a mask of the items that belong to it.
 * Fed to CacheManager.updateCache (by the handlers), it replaces the stale
 * embeddings of the items a step used.
 */
import { wrap, type Tensor } from '../tensor/tensor.js';
import type { NegativeCache } from '../cache/negativeCache.js';

export interface RefreshData {
  /** Per data source: {embeddingKey: fresh embeddings of every sampled item} (constants). */
  updatedItemData: Record<string, Record<string, Tensor>>;
  /** Per data source: int32 [m], sampled index minus the source's offset. */
  updatedItemIndices: Record<string, Tensor>;
  /** Per data source: bool [m], the sampled item belongs to that source (and exists). */
  updatedItemMask: Record<string, Tensor>;
}

/**
 * `indices` [m] index the concatenated cache (sources in sorted order);
 * `valid[k]` is 0 for placeholders (a query without a negative); `fresh` is
 * [m, d], a constant.
 */
export function refreshData(
  cache: Readonly<Record<string, NegativeCache>>,
  sources: readonly string[],
  embeddingKey: string,
  indices: Int32Array,
  valid: Uint8Array,
  fresh: Tensor,
): RefreshData {
  const m = indices.length;
  const updatedItemData: Record<string, Record<string, Tensor>> = {};
  const updatedItemIndices: Record<string, Tensor> = {};
  const updatedItemMask: Record<string, Tensor> = {};
  let start = 0;
  for (const s of sources) {
    const size = cache[s]!.data[embeddingKey]!.shape[0]!;
    const local = new Int32Array(m);
    const mask = new Uint8Array(m);
    for (let i = 0; i < m; i++) {
      local[i] = indices[i]! - start;
      mask[i] = valid[i] && indices[i]! >= start && indices[i]! < start + size ? 1 : 0;
    }
    updatedItemData[s] = { [embeddingKey]: fresh };
    updatedItemIndices[s] = wrap(local, [m], 'int32');
    updatedItemMask[s] = wrap(mask, [m], 'bool');
    start += size;
  }
  return { updatedItemData, updatedItemIndices, updatedItemMask };
}
