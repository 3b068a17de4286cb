/**
 * Training the dual encoder three ways, with one code path for everything
 * but the loss:
 *  - 'cache':   the negative cache (CacheLossHandler): per query one negative
 *               sampled from the softmax over the cache, refreshed through the
 *               doc tower; the batch's positives enter the cache.
 *  - 'inbatch': softmax over the batch's positives (the other queries'
 *               documents are the negatives; duplicates of the own document
 *               are masked out).
 *  - 'full':    exact softmax over the whole corpus: every document through
 *               the doc tower on every step.
 *
 * Sparse parameters: each step collects the feature rows it touches in a
 * RowSpace, differentiates with respect to those rows only, and the
 * optimiser updates them in the EmbeddingTables. For the cache method, the
 * negatives are sampled first (values only) so their feature rows are known
 * before the gradient is built; the loss then reuses that sample.
 *
 * The configuration lives in config.ts, checkpoint state in checkpoint.ts and
 * the run loop (`train`) in run.ts.
 */
import { ArgumentError, describe } from '../errors.js';
import { Rng } from '../tensor/random.js';
import { unsafeData, wrap, type Tensor } from '../tensor/tensor.js';
import { valueAndGrad, vjp } from '../autograd/transforms.js';
import { slice } from '../ops/layout.js';
import { fullSoftmaxLoss } from '../losses/softmax.js';
import { RowSpace, embeddingBag, makeBags, type LinearParams } from '../nn/layers.js';
import { AdamW, SGD } from '../optim/optimizers.js';
import { CacheManager } from '../cache/negativeCache.js';
import { CacheClassificationLoss } from '../losses/cacheClassificationLoss.js';
import { scaleTransform } from '../losses/common.js';
import { CacheLossHandler, type HandlerStep } from '../handlers/handlers.js';
import { checkCorpus, type Corpus } from '../data/corpus.js';
import type { FusedScanArgs, FusedScanResult } from '../scan/contract.js';
import type { BlockRunner } from '../tensor/kernels/scoreBlocks.js';
import { DualEncoder, tower, type DenseParams } from './model.js';
import { checkConfig, type TrainConfig } from './config.js';
import { restoreTrainerState, trainerState, type TrainerParts } from './checkpoint.js';

/** Holds a model, its optimiser and (for the cache method) the handler, and takes steps. */
export class Trainer implements TrainerParts {
  readonly config: TrainConfig;
  readonly corpus: Corpus;
  readonly model: DualEncoder;
  readonly optimizer: AdamW | SGD;
  readonly handler: CacheLossHandler | null;
  readonly rng: Rng;
  /** The negative sampler's generator (cache method). */
  readonly samplerRng: Rng;
  /** Per document: the smallest index of a document with identical features (its own index if unique), or its own index without maskDuplicates. */
  readonly docKey: Int32Array;
  /** The epoch's permutation of the training queries and the position in it (checkpointed). */
  order: Int32Array;
  cursor = 0;
  stepCount = 0;

  /** Who runs the full softmax's block passes (null: this thread). */
  private readonly blockRunner: BlockRunner | null;

  /**
   * `scanner` replaces the fused cache scan of the cache method (e.g. Node's
   * two-thread `createParallelScan().scan`); `runner` runs the full
   * softmax's block passes (e.g. Node's two-thread `createTrainingPool()`).
   * Both change speed only, never results.
   */
  constructor(
    corpus: Corpus,
    config: TrainConfig,
    opts: { scanner?: (args: FusedScanArgs) => FusedScanResult; runner?: BlockRunner } = {},
  ) {
    if (
      opts === null ||
      typeof opts !== 'object' ||
      (opts.scanner !== undefined && typeof opts.scanner !== 'function') ||
      (opts.runner !== undefined && (opts.runner === null || typeof opts.runner.softmaxForward !== 'function'))
    ) {
      throw new ArgumentError(
        'train',
        `options must be {scanner?: function, runner?: BlockRunner}, got ${describe(opts)}`,
      );
    }
    this.blockRunner = opts.runner ?? null;
    if (config === null || typeof config !== 'object')
      throw new ArgumentError('train', `config must be a TrainConfig object, got ${describe(config)}`);
    this.config = checkConfig({ ...config });
    checkCorpus('train', corpus);
    this.corpus = corpus;
    if (corpus.trainQueries.length < 1) throw new ArgumentError('train', 'the corpus has no training queries');
    const root = new Rng(config.seed);
    this.model = new DualEncoder({ vocab: corpus.featureBuckets, dim: config.dim, seed: root.split().nextUint32() });
    this.rng = root.split();
    this.samplerRng = root.split();
    const clip = config.clipNorm !== undefined ? { clipNorm: config.clipNorm } : {};
    this.optimizer =
      config.optimizer === 'sgd'
        ? new SGD({ lr: config.lr, momentum: 0.9, weightDecay: config.weightDecay, ...clip })
        : new AdamW({ lr: config.lr, weightDecay: config.weightDecay, ...clip });
    this.order = corpus.trainQueries.slice();
    this.shuffle();
    this.docKey = config.maskDuplicates
      ? contentKeys(corpus)
      : Int32Array.from({ length: corpus.docs.length }, (_, i) => i);
    if (config.method === 'cache') {
      const cacheManager = new CacheManager({
        specs: {
          embedding: { shape: [config.dim], dtype: 'float32' },
          docId: { shape: [], dtype: 'int32' },
          docKey: { shape: [], dtype: 'int32' },
        },
        cacheSize: config.cacheSize,
      });
      const loss = new CacheClassificationLoss({
        embeddingKey: 'embedding',
        dataKeys: ['docId'],
        scoreTransform: scaleTransform(config.scale),
        rng: this.samplerRng,
        sampler: config.sampler,
        falseNegativeKey: 'docKey',
        numNegatives: config.numNegatives,
        inBatchNegatives: config.inBatchNegatives,
        queryGradient: config.queryGradient,
        ...(config.topK !== undefined ? { topK: config.topK } : {}),
        ...(opts.scanner !== undefined ? { scanner: opts.scanner } : {}),
      });
      this.handler = new CacheLossHandler({ cacheManager, loss });
    } else this.handler = null;
  }

  /** Everything needed to continue bit for bit, as named tensors (see trainerState in checkpoint.ts). */
  getState(): Record<string, Tensor> {
    return trainerState(this);
  }

  /** Restores a state from getState (same corpus and config); validates everything before changing anything. */
  setState(state: Readonly<Record<string, Tensor>>): void {
    restoreTrainerState(this, state);
  }

  private shuffle(): void {
    const a = this.order;
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.rng.int(i + 1);
      const t = a[i]!;
      a[i] = a[j]!;
      a[j] = t;
    }
  }

  /** The next batch of training queries (query q's positive is document corpus.queryDoc[q]); reshuffles each epoch. */
  nextBatch(): Int32Array {
    const b = Math.min(this.config.batch, this.order.length);
    if (this.cursor + b > this.order.length) {
      this.shuffle();
      this.cursor = 0;
    }
    const out = this.order.slice(this.cursor, this.cursor + b);
    this.cursor += b;
    return out;
  }

  /** One optimisation step; returns its loss metrics. */
  step(): { trainingLoss: number; interpretableLoss: number; staleness: number } {
    const batch = this.nextBatch();
    const r =
      this.config.method === 'cache'
        ? this.cacheStep(batch)
        : this.config.method === 'inbatch'
          ? this.inBatchStep(batch)
          : this.fullStep(batch);
    this.stepCount++;
    return r;
  }

  private queryRows(batch: Int32Array) {
    const c = this.corpus;
    const space = new RowSpace();
    const bags = makeBags(c.queryOffsets, c.queryIds, batch, c.featureBuckets, space);
    const ids = space.ids();
    return { bags, ids, rows: this.model.queryTable.rows(ids) };
  }

  /** Applies dense and sparse gradients. */
  private apply(grad: { dense: DenseParams; qRows: Tensor; dRows: Tensor }, qIds: Int32Array, dIds: Int32Array): void {
    this.model.dense = this.optimizer.step(this.model.dense, grad.dense, {
      query: { table: this.model.queryTable, ids: qIds, grad: grad.qRows },
      doc: { table: this.model.docTable, ids: dIds, grad: grad.dRows },
    });
  }

  private cacheStep(batch: Int32Array) {
    const c = this.corpus,
      m = this.model,
      h = this.handler!;
    const q = this.queryRows(batch);
    const pos = this.positives(batch);
    const docIds = wrap(pos.slice(), [pos.length], 'int32');
    // false negatives: the positive itself and (with maskDuplicates) its identical twins
    const positiveIds = wrap(
      Int32Array.from(pos, (d) => this.docKey[d]!),
      [pos.length],
      'int32',
    );
    // 1. The query tower, once: recorded for its VJP (step 3), its values sample the negatives from the current cache.
    const proj = m.dense.query;
    const qTower = vjp((rows: Tensor, w: Tensor, b: Tensor) => tower(rows, q.bags, { w, b }), q.rows, proj.w, proj.b);
    const retrieval = h.retrieve(qTower.value, { positiveIds });
    // the documents the loss will run the doc tower on (each sampled document once with numNegatives > 1)
    const sampled = unsafeData(retrieval.docNetworkFeatures['docId']!) as Int32Array;
    // 2. The document rows this step touches: positives, then sampled negatives, as one set of bags.
    const P = pos.length,
      S = sampled.length,
      dim = m.config.dim;
    const dSpace = new RowSpace();
    const docs = new Int32Array(P + S);
    docs.set(pos);
    docs.set(sampled, P);
    const docBags = makeBags(c.docOffsets, c.docIds, docs, c.featureBuckets, dSpace);
    const dIds = dSpace.ids();
    const dRows0 = m.docTable.rows(dIds);
    // 3. Differentiate with respect to the query embeddings, the doc tower's parameters and its touched rows,
    // then pull the query embeddings' gradient back through the recorded query tower.
    const f = (p: { qEmb: Tensor; doc: LinearParams; dRows: Tensor }): [Tensor, HandlerStep] => {
      // One pass of the document tower over positives and negatives: one bag product, and one
      // cotangent for the touched rows instead of two summed (the tower is row-wise, so the rows are the same).
      const dEmb = tower(p.dRows, docBags, p.doc);
      const pEmb = slice(dEmb, [0, 0], [P, dim]);
      const docNetwork = (features: Record<string, Tensor>): Tensor => {
        const ids = unsafeData(features['docId']!) as Int32Array;
        if (ids.length !== S || ids.some((v, i) => v !== sampled[i]))
          throw new Error('internal: the loss asked for documents other than the sampled ones');
        return slice(dEmb, [P, 0], [S, dim]);
      };
      const s = h.computeLoss(
        docNetwork,
        p.qEmb,
        pEmb,
        { docId: docIds, docKey: positiveIds },
        { positiveIds, retrieval },
      );
      return [s.trainingLoss, s];
    };
    const { grad: g, aux } = valueAndGrad(f, { hasAux: true })({ qEmb: qTower.value, doc: m.dense.doc, dRows: dRows0 });
    const [gRows, gW, gB] = qTower.vjp(g.qEmb);
    const grad = { dense: { query: { w: gW, b: gB }, doc: g.doc }, qRows: gRows, dRows: g.dRows };
    const s = aux as HandlerStep;
    h.commit(s, { gradients: grad });
    this.apply(grad, q.ids, dIds);
    return {
      trainingLoss: s.metrics.trainingLoss,
      interpretableLoss: s.metrics.interpretableLoss,
      staleness: s.metrics.staleness,
    };
  }

  private inBatchStep(batch: Int32Array) {
    const c = this.corpus,
      m = this.model;
    const q = this.queryRows(batch);
    const pos = this.positives(batch);
    const dSpace = new RowSpace();
    const posBags = makeBags(c.docOffsets, c.docIds, pos, c.featureBuckets, dSpace);
    const dIds = dSpace.ids();
    const b = batch.length;
    // The same document twice in a batch (or an identical twin, with maskDuplicates) is not a negative for itself:
    // (query, candidate) pairs for the fused softmax (in-batch is the full softmax over the batch's positives).
    const key = this.docKey;
    const exQuery: number[] = [],
      exDoc: number[] = [];
    for (let i = 0; i < b; i++)
      for (let j = 0; j < b; j++)
        if (i !== j && key[pos[i]!] === key[pos[j]!]) {
          exQuery.push(i);
          exDoc.push(j);
        }
    const excluded = { query: Int32Array.from(exQuery), candidate: Int32Array.from(exDoc) };
    const targets = wrap(
      Int32Array.from({ length: b }, (_, i) => i),
      [b],
      'int32',
    );
    const scale = this.config.scale;
    const f = (p: { dense: DenseParams; qRows: Tensor; dRows: Tensor }): Tensor =>
      fullSoftmaxLoss(tower(p.qRows, q.bags, p.dense.query), tower(p.dRows, posBags, p.dense.doc), targets, {
        scale,
        excluded,
      });
    const { value, grad } = valueAndGrad(f)({ dense: m.dense, qRows: q.rows, dRows: m.docTable.rows(dIds) });
    this.apply(grad, q.ids, dIds);
    const v = value.item() as number;
    return { trainingLoss: v, interpretableLoss: v, staleness: NaN };
  }

  private fullSet: {
    docs: Int32Array;
    position: Int32Array;
    bags: ReturnType<typeof makeBags>;
    ids: Int32Array;
    /** Per position: the next position with the same content key (a cycle per group of twins), or -1 for a unique document. */
    nextTwin: Int32Array;
  } | null = null;

  /** The full softmax's documents (config.fullDocs), their bags, and each document's position among them (-1 if absent). */
  private fullDocuments() {
    if (this.fullSet !== null) return this.fullSet;
    const c = this.corpus,
      n = c.docs.length;
    const docs =
      this.config.fullDocs === 'all'
        ? Int32Array.from({ length: n }, (_, i) => i)
        : Int32Array.from(new Set(this.positives(c.trainQueries))).sort();
    const position = new Int32Array(n).fill(-1);
    docs.forEach((d, i) => {
      position[d] = i;
    });
    const space = new RowSpace();
    const bags = makeBags(c.docOffsets, c.docIds, docs, c.featureBuckets, space);
    // Identical twins (same content key) as cycles over positions, so a batch's twins are found without a scan.
    const nextTwin = new Int32Array(docs.length).fill(-1);
    if (this.config.maskDuplicates) {
      const first = new Map<number, number>();
      const last = new Map<number, number>();
      docs.forEach((d, i) => {
        const k = this.docKey[d]!;
        const l = last.get(k);
        if (l === undefined) first.set(k, i);
        else nextTwin[l] = i;
        last.set(k, i);
      });
      for (const [k, f] of first) {
        const l = last.get(k)!;
        if (l !== f) nextTwin[l] = f; // close the cycle; a group of one stays -1
      }
    }
    this.fullSet = { docs, position, bags, ids: space.ids(), nextTwin };
    return this.fullSet;
  }

  private fullStep(batch: Int32Array) {
    const m = this.model;
    const q = this.queryRows(batch);
    const pos = this.positives(batch);
    const { position, bags, ids, nextTwin } = this.fullDocuments();
    const b = batch.length;
    const targets = wrap(
      Int32Array.from(pos, (d) => position[d]!),
      [b],
      'int32',
    );
    // (query, position) pairs: the positive's identical twins (not the positive itself) are not negatives.
    const exQuery: number[] = [],
      exDoc: number[] = [];
    pos.forEach((doc, i) => {
      const t = position[doc]!;
      for (let j = nextTwin[t]!; j >= 0 && j !== t; j = nextTwin[j]!) {
        exQuery.push(i);
        exDoc.push(j);
      }
    });
    const excluded = { query: Int32Array.from(exQuery), candidate: Int32Array.from(exDoc) };
    const scale = this.config.scale;
    const runner = this.blockRunner;
    // The document tower's last layers (linear + l2Normalize, as in tower()) run inside the fused full
    // softmax, panel by panel: the [n, dim] embeddings and their cotangent are never materialised.
    const f = (p: { dense: DenseParams; qRows: Tensor; dRows: Tensor }): Tensor =>
      fullSoftmaxLoss(
        tower(p.qRows, q.bags, p.dense.query),
        { features: embeddingBag(p.dRows, bags, 'mean'), w: p.dense.doc.w, b: p.dense.doc.b },
        targets,
        { scale, excluded, ...(runner ? { runner } : {}) },
      );
    const { value, grad } = valueAndGrad(f)({ dense: m.dense, qRows: q.rows, dRows: m.docTable.rows(ids) });
    this.apply(grad, q.ids, ids);
    const v = value.item() as number;
    return { trainingLoss: v, interpretableLoss: v, staleness: NaN };
  }

  /** The positive document of each query. */
  private positives(queries: Int32Array): Int32Array {
    const qd = this.corpus.queryDoc;
    return Int32Array.from(queries, (qi) => qd[qi]!);
  }
}

/** Per document, the smallest index of a document with the same feature multiset. */
export function contentKeys(corpus: Corpus): Int32Array {
  const first = new Map<string, number>();
  const out = new Int32Array(corpus.docs.length);
  for (let d = 0; d < out.length; d++) {
    const ids = Array.from(corpus.docIds.subarray(corpus.docOffsets[d]!, corpus.docOffsets[d + 1]!))
      .sort((x, y) => x - y)
      .join(',');
    const k = first.get(ids);
    if (k === undefined) {
      first.set(ids, d);
      out[d] = d;
    } else out[d] = k;
  }
  return out;
}
