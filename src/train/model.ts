/**
 * The dual encoder of the experiment: each tower is a mean embedding bag
 * over hashed sparse features, a linear projection, and L2 normalisation:
 *
 *   f(query) = normalize(W_q · mean_{k ∈ features} E_q[k] + b_q)
 *   g(doc)   = normalize(W_d · mean_{k ∈ features} E_d[k] + b_d)
 *
 * The two embedding tables are EmbeddingTables (sparse, in-place updates);
 * the projections are ordinary tensors (dense, functional updates).
 */
import { Rng } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { EmbeddingTable } from '../nn/table.js';
import { embeddingBag, initLinear, l2Normalize, linear, type Bags, type LinearParams } from '../nn/layers.js';

export interface DenseParams {
  query: LinearParams;
  doc: LinearParams;
}

export interface DualEncoderConfig {
  /** Hash buckets of the feature vocabulary (both towers). */
  vocab: number;
  /** Embedding dimension. */
  dim: number;
  seed: number;
}

export class DualEncoder {
  readonly queryTable: EmbeddingTable;
  readonly docTable: EmbeddingTable;
  dense: DenseParams;
  readonly config: DualEncoderConfig;

  constructor(config: DualEncoderConfig) {
    this.config = { ...config };
    const rng = new Rng(config.seed);
    this.queryTable = new EmbeddingTable(config.vocab, config.dim, { rng: rng.split() });
    this.docTable = new EmbeddingTable(config.vocab, config.dim, { rng: rng.split() });
    const r = rng.split();
    this.dense = { query: initLinear(r, config.dim, config.dim), doc: initLinear(r, config.dim, config.dim) };
  }

  /**
   * Frees both tables' wasm memory now rather than at garbage collection (a
   * process that trains model after model, like `negcache compare`, would
   * otherwise fill the 4 GiB wasm memory first). The model is unusable afterwards.
   */
  release(): void {
    this.queryTable.release();
    this.docTable.release();
  }
}

/** One tower: normalize(linear(meanBag(rows))). */
export function tower(rows: Tensor, bags: Bags, proj: LinearParams): Tensor {
  return l2Normalize(linear(proj, embeddingBag(rows, bags, 'mean')));
}
