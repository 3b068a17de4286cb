/**
 * Exact retrieval evaluation: every document is embedded, every held-out
 * query is scored against all of them, and the rank of its own document
 * (pessimistic on ties) gives recall@1/10/100 and MRR.
 */
import { unsafeData, wrap } from '../tensor/tensor.js';
import { matmul } from '../ops/linalg.js';
import { RowSpace, makeBags } from '../nn/layers.js';
import type { Corpus } from '../data/corpus.js';
import { summarizeRanks, rankOfTarget } from '../eval/metrics.js';
import { tower, type DualEncoder } from './model.js';
import type { Tensor } from '../tensor/tensor.js';

/** Embeddings of documents (or queries) `examples`, in chunks, without gradient. */
export function embedAll(
  model: DualEncoder,
  side: 'query' | 'doc',
  corpus: Corpus,
  examples: ArrayLike<number>,
  chunk = 8192,
): Float32Array {
  const dim = model.config.dim;
  const out = new Float32Array(examples.length * dim);
  const offsets = side === 'query' ? corpus.queryOffsets : corpus.docOffsets;
  const ids = side === 'query' ? corpus.queryIds : corpus.docIds;
  const table = side === 'query' ? model.queryTable : model.docTable;
  const proj = side === 'query' ? model.dense.query : model.dense.doc;
  for (let s = 0; s < examples.length; s += chunk) {
    const part = Array.from({ length: Math.min(chunk, examples.length - s) }, (_, i) => examples[s + i]!);
    const space = new RowSpace();
    const bags = makeBags(offsets, ids, part, model.config.vocab, space);
    const emb = tower(table.rows(space.ids()), bags, proj);
    out.set(unsafeData(emb) as Float32Array, s * dim);
  }
  return out;
}

export interface EvalResult {
  recallAt1: number;
  recallAt10: number;
  recallAt100: number;
  mrr: number;
  count: number;
}

/** Ranks each query's own document (query q's positive is document corpus.queryDoc[q]) among all documents. */
export function evaluate(
  model: DualEncoder,
  corpus: Corpus,
  queries: ArrayLike<number>,
  docEmbeddings?: Float32Array,
): EvalResult {
  const dim = model.config.dim;
  const nDocs = corpus.docs.length;
  const allDocs =
    docEmbeddings ??
    embedAll(
      model,
      'doc',
      corpus,
      Int32Array.from({ length: nDocs }, (_, i) => i),
    );
  const D: Tensor = wrap(allDocs, [nDocs, dim], 'float32');
  const ranks = new Int32Array(queries.length);
  const chunk = 256;
  for (let s = 0; s < queries.length; s += chunk) {
    const part = Array.from({ length: Math.min(chunk, queries.length - s) }, (_, i) => queries[s + i]!);
    const q = wrap(embedAll(model, 'query', corpus, part), [part.length, dim], 'float32');
    const scores = unsafeData(matmul(q, D, { transposeB: true })) as Float32Array;
    for (let i = 0; i < part.length; i++)
      ranks[s + i] = rankOfTarget(scores.subarray(i * nDocs, (i + 1) * nDocs), corpus.queryDoc[part[i]!]!);
  }
  const r = summarizeRanks(ranks);
  return { recallAt1: r.recallAt1, recallAt10: r.recallAt10, recallAt100: r.recallAt100, mrr: r.mrr, count: r.count };
}
