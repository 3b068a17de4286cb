/**
 * Exact retrieval evaluation: every document is embedded, every held-out
 * query is scored against all of them, and the rank of its own document
 * (pessimistic on ties) gives recall@1/10/100 and MRR.
 *
 * The ranking streams blocks of documents through the wasm kernels and
 * only counts, per query, the documents that score at least as high as its
 * own (src/tensor/kernels/scoreBlocks.ts): no [queries, documents] score
 * matrix is materialised. A BlockRunner may split the queries over threads
 * (negcache/node's createTrainingPool); the ranks are the same.
 */
import { ArgumentError, describe } from '../errors.js';
import { unsafeData, wrap } from '../tensor/tensor.js';
import { LOCAL_BLOCK_RUNNER, scoreBlocksAvailable, type BlockRunner } from '../tensor/kernels/scoreBlocks.js';
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

/**
 * Ranks each query's own document (query q's positive is document
 * corpus.queryDoc[q]) among all documents. `opts.runner` runs the ranking
 * (default: this thread).
 */
export function evaluate(
  model: DualEncoder,
  corpus: Corpus,
  queries: ArrayLike<number>,
  docEmbeddings?: Float32Array,
  opts: { runner?: BlockRunner } = {},
): EvalResult {
  if (
    opts === null ||
    typeof opts !== 'object' ||
    (opts.runner !== undefined && typeof opts.runner?.rank !== 'function')
  )
    throw new ArgumentError('evaluate', `options must be {runner?: BlockRunner}, got ${describe(opts)}`);
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
  if (scoreBlocksAvailable()) {
    const q = embedAll(model, 'query', corpus, queries);
    const targets = Int32Array.from({ length: queries.length }, (_, i) => corpus.queryDoc[queries[i]!]!);
    const r = summarizeRanks((opts.runner ?? LOCAL_BLOCK_RUNNER).rank(q, allDocs, queries.length, nDocs, dim, targets));
    return { recallAt1: r.recallAt1, recallAt10: r.recallAt10, recallAt100: r.recallAt100, mrr: r.mrr, count: r.count };
  }
  // Without the wasm kernels: score chunks of queries against every document and rank in each row.
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
