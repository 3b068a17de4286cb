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
 */
import { ArgumentError, describe } from '../errors.js';
import { Rng } from '../tensor/random.js';
import { isTensor, unsafeData, wrap, type Tensor } from '../tensor/tensor.js';
import { valueAndGrad } from '../autograd/transforms.js';
import { logSoftmax, mean } from '../ops/reduce.js';
import { gather, reshape } from '../ops/layout.js';
import { mul, neg, where } from '../ops/elementwise.js';
import { matmul } from '../ops/linalg.js';
import { RowSpace, makeBags } from '../nn/layers.js';
import { AdamW, SGD } from '../optim/optimizers.js';
import { CacheManager, type NegativeCache } from '../cache/negativeCache.js';
import { CacheClassificationLoss } from '../losses/cacheClassificationLoss.js';
import { scaleTransform, type Sampler } from '../losses/common.js';
import { CacheLossHandler, type HandlerStep } from '../handlers/handlers.js';
import type { Corpus } from '../data/corpus.js';
import type { FusedScanArgs, FusedScanResult } from '../scan/contract.js';
import { DualEncoder, tower, type DenseParams } from './model.js';
import { evaluate, type EvalResult } from './evaluate.js';

export type Method = 'cache' | 'inbatch' | 'full';
export const METHODS: readonly Method[] = ['cache', 'inbatch', 'full'];

export interface TrainConfig {
  method: Method;
  /** Maximum number of steps. */
  steps: number;
  /** Stop after this many seconds of training (evaluation time excluded); Infinity for none. */
  timeBudgetSeconds: number;
  batch: number;
  cacheSize: number;
  dim: number;
  lr: number;
  /** Score scale (inverse temperature): s = scale · <f(q), g(d)>. */
  scale: number;
  weightDecay: number;
  /** 'adamw' (default) or 'sgd' (with momentum 0.9); both update the embedding tables sparsely. */
  optimizer: 'adamw' | 'sgd';
  /**
   * Documents with identical features (in WordNet, 20 % of synsets share
   * their lemma set with another) have identical embeddings whatever the
   * model learns, so they cannot be told apart. With this on (default), a
   * query's identical twins of its positive are not negatives, in every
   * method: masked from the cache (false-negative masking by a content key),
   * from the batch, and from the full softmax. Evaluation is unchanged
   * (twins tie with the target and count against it).
   */
  maskDuplicates: boolean;
  /**
   * The documents of the 'full' softmax: 'train' (default) = every document
   * that is the positive of a training query, the set that the cache and the
   * batch draw their negatives from; 'all' = the whole corpus, held-out
   * queries' documents included. With 'all', the held-out documents are
   * only ever negatives during training, so the full softmax learns to push
   * exactly the test answers down (their unique features are free
   * parameters); 'train' keeps the three methods on one objective.
   */
  fullDocs: 'train' | 'all';
  clipNorm: number | undefined;
  sampler: Sampler;
  topK: number | undefined;
  seed: number;
  /** Evaluate recall on `evalQueries` held-out queries every this many seconds of training (0 = never). */
  evalEverySeconds: number;
  /** Also evaluate at every multiple of this many steps, step 0 included (0 = never); gives every method the same x-points in step plots. */
  evalEverySteps: number;
  evalQueries: number;
}

export const DEFAULT_CONFIG: Omit<TrainConfig, 'method'> = {
  steps: 100000,
  timeBudgetSeconds: Infinity,
  batch: 128,
  // Tuned on WordNet with 60 s runs, the same grid for every method (see the README's Results):
  // lr 0.003/0.01/0.03/0.1 (0.01 best for cache and in-batch), cache 1024/4096/16384 (4096 best).
  // Over 6 000 steps the cache does better at lr 0.003 (9.84 % recall@10 against 9.20 %); in-batch stays
  // best at 0.01. One shared default keeps the demo's comparison a comparison of losses only.
  cacheSize: 4096,
  dim: 64,
  lr: 0.01,
  scale: 20,
  weightDecay: 0,
  clipNorm: undefined,
  sampler: 'categorical',
  optimizer: 'adamw',
  maskDuplicates: true,
  fullDocs: 'train',
  topK: undefined,
  seed: 0,
  evalEverySeconds: 0,
  evalEverySteps: 0,
  evalQueries: 1000,
};

export interface StepRecord {
  step: number;
  /** Seconds of training so far (evaluation excluded). */
  time: number;
  stepMs: number;
  trainingLoss: number;
  /** Cache method: -log probPos over the cache; softmax methods: the cross-entropy itself. */
  interpretableLoss: number;
  /** Cache method only (NaN otherwise). */
  staleness: number;
}

export interface EvalRecord extends EvalResult {
  step: number;
  time: number;
}

export interface TrainResult {
  config: TrainConfig;
  history: StepRecord[];
  evals: EvalRecord[];
  final: EvalResult;
  steps: number;
  trainSeconds: number;
  medianStepMs: number;
  model: DualEncoder;
}

export interface TrainHooks {
  onStep?: (r: StepRecord) => void;
  onEval?: (r: EvalRecord) => void;
  /** Clock in milliseconds (default performance.now). */
  now?: () => number;
}

export function checkConfig(c: TrainConfig): TrainConfig {
  const op = 'train';
  if (c === null || typeof c !== 'object')
    throw new ArgumentError(op, `config must be a TrainConfig object, got ${describe(c)}`);
  const int = (name: keyof TrainConfig, lo: number, hi = 2 ** 31 - 1): void => {
    const v = c[name];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi)
      throw new ArgumentError(op, `${name} must be an integer in [${lo}, ${hi}], got ${describe(v)}`);
  };
  const num = (name: keyof TrainConfig, lo: number, open = false): void => {
    const v = c[name];
    if (typeof v !== 'number' || Number.isNaN(v) || v < lo || (open && v === lo))
      throw new ArgumentError(op, `${name} must be a number ${open ? '>' : '>='} ${lo}, got ${describe(v)}`);
  };
  if (!METHODS.includes(c.method))
    throw new ArgumentError(op, `method must be one of ${METHODS.join(', ')}, got ${describe(c.method)}`);
  int('steps', 1);
  int('batch', 1, 65536);
  int('cacheSize', 1, 2 ** 24);
  int('dim', 1, 4096);
  int('seed', 0, Number.MAX_SAFE_INTEGER);
  int('evalQueries', 1);
  int('evalEverySteps', 0);
  num('lr', 0, true);
  num('scale', 0, true);
  num('weightDecay', 0);
  num('timeBudgetSeconds', 0, true);
  num('evalEverySeconds', 0);
  if (c.clipNorm !== undefined) num('clipNorm', 0, true);
  if (typeof c.maskDuplicates !== 'boolean')
    throw new ArgumentError(op, `maskDuplicates must be true or false, got ${describe(c.maskDuplicates)}`);
  if (c.fullDocs !== 'train' && c.fullDocs !== 'all')
    throw new ArgumentError(op, `fullDocs must be train or all, got ${describe(c.fullDocs)}`);
  if (c.optimizer !== 'adamw' && c.optimizer !== 'sgd')
    throw new ArgumentError(op, `optimizer must be adamw or sgd, got ${describe(c.optimizer)}`);
  if (c.sampler !== 'gumbel' && c.sampler !== 'categorical')
    throw new ArgumentError(op, `sampler must be gumbel or categorical, got ${describe(c.sampler)}`);
  if (c.topK !== undefined) {
    int('topK', 1);
    if (c.cacheSize % c.topK !== 0) throw new ArgumentError(op, `topK ${c.topK} must divide cacheSize ${c.cacheSize}`);
  }
  if (c.method === 'cache' && c.batch > c.cacheSize)
    throw new ArgumentError(
      op,
      `batch ${c.batch} is larger than cacheSize ${c.cacheSize}; the cache must hold at least one batch of new items`,
    );
  return c;
}

/** Holds a model, its optimiser and (for the cache method) the handler, and takes steps. */
export class Trainer {
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
  private order: Int32Array;
  private cursor = 0;
  stepCount = 0;

  /**
   * `scanner` replaces the fused cache scan of the cache method (e.g. Node's
   * two-thread `createParallelScan().scan`); it changes speed only, never
   * results (both scans return identical samples).
   */
  constructor(corpus: Corpus, config: TrainConfig, opts: { scanner?: (args: FusedScanArgs) => FusedScanResult } = {}) {
    if (
      opts === null ||
      typeof opts !== 'object' ||
      (opts.scanner !== undefined && typeof opts.scanner !== 'function')
    ) {
      throw new ArgumentError('train', `options must be {scanner?: function}, got ${describe(opts)}`);
    }
    if (config === null || typeof config !== 'object')
      throw new ArgumentError('train', `config must be a TrainConfig object, got ${describe(config)}`);
    this.config = checkConfig({ ...config });
    checkCorpus(corpus);
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
        ...(config.topK !== undefined ? { topK: config.topK } : {}),
        ...(opts.scanner !== undefined ? { scanner: opts.scanner } : {}),
      });
      this.handler = new CacheLossHandler({ cacheManager, loss });
    } else this.handler = null;
  }

  /**
   * Everything needed to continue bit for bit, as named tensors (the
   * checkpoint's tensor names, documented in docs/checkpoints.md):
   *   model.queryTable, model.docTable              float32 [vocab, dim]
   *   model.dense.{query,doc}.{w,b}                 float32
   *   optim.t, optim.dense.<i>.<slot>, optim.table.<query|doc>.<slot>   (AdamW moments)
   *   cache.data.<key>, cache.age, cache.valid      (cache method)
   *   rng.batches, rng.sampler                      int32 [4] (xoshiro128** state, bit-cast)
   *   train.order, train.cursor, train.step         the epoch permutation and position
   */
  getState(): Record<string, Tensor> {
    const m = this.model;
    const out: Record<string, Tensor> = {
      'model.queryTable': m.queryTable.snapshot(),
      'model.docTable': m.docTable.snapshot(),
      'model.dense.query.w': m.dense.query.w,
      'model.dense.query.b': m.dense.query.b,
      'model.dense.doc.w': m.dense.doc.w,
      'model.dense.doc.b': m.dense.doc.b,
      'rng.batches': rngTensor(this.rng),
      'rng.sampler': rngTensor(this.samplerRng),
      'train.order': wrap(this.order.slice(), [this.order.length], 'int32'),
      'train.cursor': wrap(Int32Array.of(this.cursor), [], 'int32'),
      'train.step': wrap(Int32Array.of(this.stepCount), [], 'int32'),
    };
    for (const [k, v] of Object.entries(this.optimizer.getState())) out[`optim.${k}`] = v;
    if (this.handler) {
      const c = this.handler.cache;
      for (const [k, v] of Object.entries(c.data)) out[`cache.data.${k}`] = v;
      out['cache.age'] = c.age;
      if (c.valid) out['cache.valid'] = c.valid;
    }
    return out;
  }

  /** Restores a state from getState (same corpus and config). Validates everything before changing anything. */
  setState(state: Readonly<Record<string, Tensor>>): void {
    const op = 'Trainer.setState';
    if (state === null || typeof state !== 'object')
      throw new ArgumentError(op, `state must be a record of tensors from getState, got ${describe(state)}`);
    const need = (k: string): Tensor => {
      const t = state[k];
      if (t === undefined) throw new ArgumentError(op, `the checkpoint has no tensor "${k}"`);
      if (!isTensor(t)) throw new ArgumentError(op, `"${k}" must be a Tensor, got ${describe(t)}`);
      return t;
    };
    const scalarIn = (k: string, hi: number): number => {
      const t = need(k);
      const v = t.dtype === 'int32' && t.size === 1 ? (unsafeData(t)[0] as number) : NaN;
      if (!(v >= 0 && v <= hi))
        throw new ArgumentError(
          op,
          `${k} must be an int32 scalar in [0, ${hi}], got ${describe(t)}${t.size === 1 ? ` holding ${String(v)}` : ''}`,
        );
      return v;
    };
    const m = this.model;
    const order = need('train.order');
    if (order.dtype !== 'int32' || order.size !== this.order.length)
      throw new ArgumentError(
        op,
        `train.order has ${order.size} entries; this corpus has ${this.order.length} training queries (a different corpus or split?)`,
      );
    const dense = {
      query: { w: need('model.dense.query.w'), b: need('model.dense.query.b') },
      doc: { w: need('model.dense.doc.w'), b: need('model.dense.doc.b') },
    };
    for (const [k, t] of Object.entries({ qw: dense.query.w, dw: dense.doc.w })) {
      if (t.shape[0] !== m.config.dim || t.shape[1] !== m.config.dim)
        throw new ArgumentError(
          op,
          `dense ${k} is [${t.shape}]; need [${m.config.dim}, ${m.config.dim}] (a different --dim?)`,
        );
    }
    for (const [k, t] of Object.entries({ qw: dense.query.w, dw: dense.doc.w, qb: dense.query.b, db: dense.doc.b })) {
      const want = k.endsWith('w') ? [m.config.dim, m.config.dim] : [m.config.dim];
      if (t.dtype !== 'float32' || t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i]))
        throw new ArgumentError(op, `dense ${k} is [${t.shape}] ${t.dtype}; need float32 [${want}]`);
    }
    const cursor = scalarIn('train.cursor', this.order.length);
    const stepCount = scalarIn('train.step', 2 ** 31 - 1);
    const optim: Record<string, Tensor> = {};
    for (const [k, v] of Object.entries(state)) if (k.startsWith('optim.')) optim[k.slice(6)] = v;
    let cache: NegativeCache | null = null;
    if (this.handler) {
      const data: Record<string, Tensor> = {};
      for (const [k, v] of Object.entries(state)) if (k.startsWith('cache.data.')) data[k.slice(11)] = v;
      cache = { data, age: need('cache.age'), ...(state['cache.valid'] ? { valid: state['cache.valid'] } : {}) };
      this.handler.managers[CacheLossHandler.SOURCE]!.checkCache(op, cache);
    }
    const qTable = need('model.queryTable'),
      dTable = need('model.docTable');
    const rngB = need('rng.batches'),
      rngS = need('rng.sampler');
    // Dry runs of every setter on copies, so a bad checkpoint changes nothing.
    (this.config.optimizer === 'sgd' ? new SGD({ lr: this.config.lr }) : new AdamW({ lr: this.config.lr })).setState(
      optim,
    );
    for (const [t, table] of [
      [qTable, m.queryTable],
      [dTable, m.docTable],
    ] as const) {
      if (t.dtype !== 'float32' || t.rank !== 2 || t.shape[0] !== table.vocab || t.shape[1] !== table.dim)
        throw new ArgumentError(op, `a table is [${t.shape}] ${t.dtype}; need float32 [${table.vocab}, ${table.dim}]`);
    }
    Rng.fromState(rngState(rngB));
    Rng.fromState(rngState(rngS));
    // Apply.
    this.optimizer.setState(optim);
    m.queryTable.load(qTable);
    m.docTable.load(dTable);
    m.dense = dense;
    this.rng.setState(rngState(rngB));
    this.samplerRng.setState(rngState(rngS));
    this.order = Int32Array.from(unsafeData(order) as Int32Array);
    this.cursor = cursor;
    this.stepCount = stepCount;
    if (this.handler && cache) this.handler.setState(cache, this.stepCount);
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

  /** The next batch of training queries (query i's positive is document i); reshuffles each epoch. */
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
    const docIds = wrap(batch.slice(), [batch.length], 'int32');
    // false negatives: the positive itself and (with maskDuplicates) its identical twins
    const positiveIds = wrap(
      Int32Array.from(batch, (d) => this.docKey[d]!),
      [batch.length],
      'int32',
    );
    // 1. Sample the negatives from the current cache (values only).
    const qValues = tower(q.rows, q.bags, m.dense.query);
    const retrieval = h.retrieve(qValues, { positiveIds });
    const sampled = unsafeData(retrieval.retrievedData['docId']!) as Int32Array;
    // 2. The document rows this step touches: positives and sampled negatives.
    const dSpace = new RowSpace();
    const posBags = makeBags(c.docOffsets, c.docIds, batch, c.featureBuckets, dSpace);
    const negBags = makeBags(c.docOffsets, c.docIds, sampled, c.featureBuckets, dSpace);
    const dIds = dSpace.ids();
    const dRows0 = m.docTable.rows(dIds);
    // 3. Differentiate with respect to dense params and the touched rows.
    const f = (p: { dense: DenseParams; qRows: Tensor; dRows: Tensor }): [Tensor, HandlerStep] => {
      const qEmb = tower(p.qRows, q.bags, p.dense.query);
      const pEmb = tower(p.dRows, posBags, p.dense.doc);
      const docNetwork = (features: Record<string, Tensor>): Tensor => {
        const ids = unsafeData(features['docId']!) as Int32Array;
        if (ids.some((v, i) => v !== sampled[i]))
          throw new Error('internal: the loss asked for documents other than the sampled ones');
        return tower(p.dRows, negBags, p.dense.doc);
      };
      const s = h.computeLoss(
        docNetwork,
        qEmb,
        pEmb,
        { docId: docIds, docKey: positiveIds },
        { positiveIds, retrieval },
      );
      return [s.trainingLoss, s];
    };
    const { grad, aux } = valueAndGrad(f, { hasAux: true })({ dense: m.dense, qRows: q.rows, dRows: dRows0 });
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
    const dSpace = new RowSpace();
    const posBags = makeBags(c.docOffsets, c.docIds, batch, c.featureBuckets, dSpace);
    const dIds = dSpace.ids();
    const b = batch.length;
    // The same document twice in a batch (or an identical twin, with maskDuplicates) is not a negative for itself.
    const key = this.docKey;
    const dup = new Uint8Array(b * b);
    for (let i = 0; i < b; i++)
      for (let j = 0; j < b; j++) dup[i * b + j] = i !== j && key[batch[i]!] === key[batch[j]!] ? 1 : 0;
    const dupMask = wrap(dup, [b, b], 'bool');
    const diag = wrap(
      Int32Array.from({ length: b }, (_, i) => i * b + i),
      [b],
      'int32',
    );
    const f = (p: { dense: DenseParams; qRows: Tensor; dRows: Tensor }): Tensor => {
      const qEmb = tower(p.qRows, q.bags, p.dense.query);
      const pEmb = tower(p.dRows, posBags, p.dense.doc);
      const scores = where(dupMask, -Infinity, mul(matmul(qEmb, pEmb, { transposeB: true }), this.config.scale));
      const logp = logSoftmax(scores, { axis: 1 });
      return neg(mean(gather(flat(logp), diag)));
    };
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
    twins: Map<number, number[]>;
  } | null = null;

  /** The full softmax's documents (config.fullDocs), their bags, and each document's position among them (-1 if absent). */
  private fullDocuments() {
    if (this.fullSet !== null) return this.fullSet;
    const c = this.corpus,
      n = c.docs.length;
    const docs = this.config.fullDocs === 'all' ? Int32Array.from({ length: n }, (_, i) => i) : c.trainQueries.slice();
    const position = new Int32Array(n).fill(-1);
    docs.forEach((d, i) => {
      position[d] = i;
    });
    const space = new RowSpace();
    const bags = makeBags(c.docOffsets, c.docIds, docs, c.featureBuckets, space);
    // Positions of identical twins, grouped by content key (groups of one dropped).
    const groups = new Map<number, number[]>();
    if (this.config.maskDuplicates) {
      docs.forEach((d, i) => {
        const g = groups.get(this.docKey[d]!);
        if (g) g.push(i);
        else groups.set(this.docKey[d]!, [i]);
      });
      for (const [k, g] of groups) if (g.length < 2) groups.delete(k);
    }
    this.fullSet = { docs, position, bags, ids: space.ids(), twins: groups };
    return this.fullSet;
  }

  private fullStep(batch: Int32Array) {
    const m = this.model;
    const q = this.queryRows(batch);
    const { docs, position, bags, ids, twins } = this.fullDocuments();
    const n = docs.length,
      b = batch.length;
    const target = wrap(
      Int32Array.from({ length: b }, (_, i) => i * n + position[batch[i]!]!),
      [b],
      'int32',
    );
    // bool [b, n]: the positive's identical twins (not the positive itself) are not negatives.
    let twinMask: Tensor | null = null;
    if (twins.size > 0) {
      const mask = new Uint8Array(b * n);
      let any = false;
      batch.forEach((doc, i) => {
        for (const t of twins.get(this.docKey[doc]!) ?? [])
          if (t !== position[doc]) {
            mask[i * n + t] = 1;
            any = true;
          }
      });
      if (any) twinMask = wrap(mask, [b, n], 'bool');
    }
    const f = (p: { dense: DenseParams; qRows: Tensor; dRows: Tensor }): Tensor => {
      const qEmb = tower(p.qRows, q.bags, p.dense.query);
      const dEmb = tower(p.dRows, bags, p.dense.doc);
      const scores = mul(matmul(qEmb, dEmb, { transposeB: true }), this.config.scale);
      const logp = logSoftmax(twinMask ? where(twinMask, -Infinity, scores) : scores, { axis: 1 });
      return neg(mean(gather(flat(logp), target)));
    };
    const { value, grad } = valueAndGrad(f)({ dense: m.dense, qRows: q.rows, dRows: m.docTable.rows(ids) });
    this.apply(grad, q.ids, ids);
    const v = value.item() as number;
    return { trainingLoss: v, interpretableLoss: v, staleness: NaN };
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

function rngTensor(r: Rng): Tensor {
  return wrap(new Int32Array(r.getState().buffer), [4], 'int32');
}

function rngState(t: Tensor): Uint32Array {
  if (t.dtype !== 'int32' || t.size !== 4)
    throw new ArgumentError('Trainer.setState', 'an rng state must be int32 [4]');
  return new Uint32Array(Int32Array.from(unsafeData(t) as Int32Array).buffer);
}

function flat(t: Tensor): Tensor {
  return reshape(t, [t.size]);
}

/** Picks `count` evaluation queries deterministically (every k-th held-out query). */
export function evalSubset(testQueries: Int32Array, count: number): Int32Array {
  if (testQueries.length <= count) return testQueries;
  const step = testQueries.length / count;
  return Int32Array.from({ length: count }, (_, i) => testQueries[Math.floor(i * step)]!);
}

/** A training run's full state: the trainer's tensors plus the run's history (what a checkpoint holds). */
export interface Checkpoint {
  tensors: Record<string, Tensor>;
  metadata: Record<string, string>;
}

export interface TrainOptions extends TrainHooks {
  /** Continue from a checkpoint taken with the same corpus and config. */
  resume?: Checkpoint;
  /** Call onCheckpoint every this many steps (and after the last step). */
  checkpointEvery?: number;
  onCheckpoint?: (c: Checkpoint) => void;
  /** The fused cache scan to use (see Trainer's constructor). */
  scanner?: (args: FusedScanArgs) => FusedScanResult;
}

/** Captures a run: trainer tensors, config, history and evaluations. */
export function checkpointOf(
  trainer: Trainer,
  history: readonly StepRecord[],
  evals: readonly EvalRecord[],
  trainSeconds: number,
): Checkpoint {
  const finite = (_k: string, v: unknown): unknown => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v);
  return {
    tensors: trainer.getState(),
    metadata: {
      'negcache.format': 'negcache-trainer-v1',
      'negcache.config': JSON.stringify(trainer.config, finite),
      'negcache.history': JSON.stringify(history, finite),
      'negcache.evals': JSON.stringify(evals, finite),
      'negcache.trainSeconds': String(trainSeconds),
    },
  };
}

function parseMeta<T>(c: Checkpoint, key: string): T {
  const raw = c.metadata[key];
  if (raw === undefined) throw new ArgumentError('train', `the checkpoint has no metadata "${key}"`);
  try {
    return JSON.parse(raw, (_k, v) =>
      v === 'NaN' ? NaN : v === 'Infinity' ? Infinity : v === '-Infinity' ? -Infinity : v,
    ) as T;
  } catch {
    throw new ArgumentError('train', `the checkpoint's metadata "${key}" is not valid JSON`);
  }
}

/** The hooks and checkpoint options of train(), checked before anything runs. */
function checkHooks(hooks: unknown): asserts hooks is TrainOptions {
  const op = 'train';
  if (hooks === null || typeof hooks !== 'object')
    throw new ArgumentError(
      op,
      `options must be an object {resume?, checkpointEvery?, onCheckpoint?, onStep?, onEval?, now?}, got ${describe(hooks)}`,
    );
  const h = hooks as Record<string, unknown>;
  for (const k of ['onStep', 'onEval', 'onCheckpoint', 'now', 'scanner']) {
    if (h[k] !== undefined && typeof h[k] !== 'function')
      throw new ArgumentError(op, `${k} must be a function, got ${describe(h[k])}`);
  }
  const every = h['checkpointEvery'];
  if (every !== undefined && !(typeof every === 'number' && Number.isInteger(every) && every >= 0))
    throw new ArgumentError(op, `checkpointEvery must be a non-negative integer (0 = never), got ${describe(every)}`);
  const r = h['resume'] as Partial<Checkpoint> | undefined;
  if (r !== undefined) {
    if (
      r === null ||
      typeof r !== 'object' ||
      r.tensors === null ||
      typeof r.tensors !== 'object' ||
      r.metadata === null ||
      typeof r.metadata !== 'object'
    ) {
      throw new ArgumentError(
        op,
        `resume must be a checkpoint {tensors, metadata} (from onCheckpoint or loadSafetensorsSync), got ${describe(r)}`,
      );
    }
  }
}

/** The parts of a Corpus the trainer reads. */
function checkCorpus(corpus: unknown): asserts corpus is Corpus {
  const c = corpus as Partial<Corpus> | null;
  const arrays = ['docOffsets', 'docIds', 'queryOffsets', 'queryIds', 'trainQueries', 'testQueries'] as const;
  if (
    c === null ||
    typeof c !== 'object' ||
    !Array.isArray(c.docs) ||
    !Number.isInteger(c.featureBuckets) ||
    (c.featureBuckets as number) < 1 ||
    arrays.some((k) => !(c[k] instanceof Int32Array))
  ) {
    throw new ArgumentError(
      'train',
      `corpus must be a Corpus (from buildCorpus or syntheticCorpus), got ${describe(corpus)}`,
    );
  }
}

/** The config a checkpoint was trained with (so a resumed run can insist on the same). */
export function checkpointConfig(c: Checkpoint): TrainConfig {
  if (c.metadata['negcache.format'] !== 'negcache-trainer-v1')
    throw new ArgumentError(
      'train',
      `not a negcache trainer checkpoint (format ${String(c.metadata['negcache.format'])})`,
    );
  return parseMeta<TrainConfig>(c, 'negcache.config');
}

/** Trains with the given config until `steps` or the time budget, evaluating along the way. */
export function train(corpus: Corpus, config: TrainConfig, hooks: TrainOptions = {}): TrainResult {
  checkHooks(hooks);
  const now = hooks.now ?? (() => performance.now());
  const trainer = new Trainer(corpus, config, hooks.scanner !== undefined ? { scanner: hooks.scanner } : {});
  let history: StepRecord[] = [];
  let evals: EvalRecord[] = [];
  let trainMs = 0;
  if (hooks.resume) {
    const saved = checkpointConfig(hooks.resume);
    for (const k of [
      'method',
      'batch',
      'cacheSize',
      'dim',
      'lr',
      'scale',
      'weightDecay',
      'optimizer',
      'maskDuplicates',
      'fullDocs',
      'sampler',
      'topK',
      'seed',
    ] as const) {
      if (saved[k] !== config[k])
        throw new ArgumentError(
          'train',
          `cannot resume: the checkpoint was trained with ${k} = ${String(saved[k])}, this run has ${String(config[k])}`,
        );
    }
    trainer.setState(hooks.resume.tensors);
    history = parseMeta<StepRecord[]>(hooks.resume, 'negcache.history');
    evals = parseMeta<EvalRecord[]>(hooks.resume, 'negcache.evals');
    trainMs = 1000 * Number(hooks.resume.metadata['negcache.trainSeconds'] ?? 0);
  }
  const subset = evalSubset(corpus.testQueries, config.evalQueries);
  let nextEval =
    config.evalEverySeconds > 0
      ? evals.length > 0
        ? evals[evals.length - 1]!.time + config.evalEverySeconds
        : 0
      : Infinity;
  const doEval = (): void => {
    const r = evaluate(trainer.model, corpus, subset);
    const rec = { ...r, step: trainer.stepCount, time: trainMs / 1000 };
    evals.push(rec);
    hooks.onEval?.(rec);
  };
  const every = hooks.checkpointEvery ?? 0;
  while (trainer.stepCount < config.steps && trainMs / 1000 < config.timeBudgetSeconds) {
    const byTime = trainMs / 1000 >= nextEval;
    if (byTime) nextEval += config.evalEverySeconds;
    if (
      byTime ||
      (config.evalEverySteps > 0 &&
        trainer.stepCount % config.evalEverySteps === 0 &&
        evals.at(-1)?.step !== trainer.stepCount)
    )
      doEval();
    const t0 = now();
    const r = trainer.step();
    const dt = now() - t0;
    trainMs += dt;
    const rec: StepRecord = { step: trainer.stepCount, time: trainMs / 1000, stepMs: dt, ...r };
    history.push(rec);
    hooks.onStep?.(rec);
    if (every > 0 && trainer.stepCount % every === 0)
      hooks.onCheckpoint?.(checkpointOf(trainer, history, evals, trainMs / 1000));
  }
  if (every > 0 && trainer.stepCount % every !== 0)
    hooks.onCheckpoint?.(checkpointOf(trainer, history, evals, trainMs / 1000));
  if ((config.evalEverySeconds > 0 || config.evalEverySteps > 0) && evals.at(-1)?.step !== trainer.stepCount) doEval();
  const final = evaluate(trainer.model, corpus, corpus.testQueries);
  const sorted = history.map((h) => h.stepMs).sort((a, b) => a - b);
  return {
    config: trainer.config,
    history,
    evals,
    final,
    steps: trainer.stepCount,
    trainSeconds: trainMs / 1000,
    medianStepMs: sorted.length ? sorted[Math.floor(sorted.length / 2)]! : NaN,
    model: trainer.model,
  };
}
