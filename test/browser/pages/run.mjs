// The seeded negative-cache training run that test/browser/chromium.test.ts
// executes twice: in headless Chromium (through determinism.html) and in
// Node (imported directly by the test). Both import the same built library,
// dist/src/index.js, through the same relative path, and must produce
// bit-identical losses, sampled indices and final parameters.
//
// Plain JavaScript on purpose: a browser loads it as is, with no build step.
// The step is the negative-cache step of src/train/trainer.ts written with
// the public API only (sparse embedding tables, sample-first retrieval,
// CacheLossHandler two-phase commit, AdamW), so the sampled indices of
// every step can be reported.
import {
  AdamW,
  CacheClassificationLoss,
  CacheLossHandler,
  CacheManager,
  DualEncoder,
  Rng,
  RowSpace,
  makeBags,
  scaleTransform,
  syntheticCorpus,
  tensor,
  tower,
  valueAndGrad,
} from '../../../dist/src/index.js';

/** The run's configuration (small enough for a few seconds in either runtime). */
export const DETERMINISM_CONFIG = Object.freeze({
  steps: 300,
  numDocs: 600,
  vocab: 120,
  featureBuckets: 2048,
  dim: 16,
  batch: 32,
  cacheSize: 256,
  scale: 20,
  lr: 0.01,
  seed: 20240607,
  sampler: 'gumbel',
});

/** The IEEE-754 bits of each element of a Float32Array / Float64Array / Int32Array as one hex string (8 digits per 32-bit word, little-endian word order). */
export function bitsHex(array) {
  const words = new Uint32Array(array.buffer, array.byteOffset, array.byteLength / 4);
  let s = '';
  for (let i = 0; i < words.length; i++) s += words[i].toString(16).padStart(8, '0');
  return s;
}

/** FNV-1a over a hex string's characters (a short digest for display). */
export function digest(hex) {
  let h = 0x811c9dc5;
  for (let i = 0; i < hex.length; i++) {
    h ^= hex.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}

/**
 * Trains the dual encoder of src/train/model.ts with the negative cache and
 * returns, per step, the float32 bits of the training loss, the float64 bits
 * of the interpretable loss and staleness metrics and the sampled cache
 * indices, and at the end the float32 bits of every parameter and of the
 * cache. Everything returned is JSON (strings and numbers).
 */
export function runDeterminism(overrides = {}) {
  const c = { ...DETERMINISM_CONFIG, ...overrides };
  const corpus = syntheticCorpus({
    numDocs: c.numDocs,
    vocab: c.vocab,
    seed: c.seed,
    featureBuckets: c.featureBuckets,
  });
  const root = new Rng(c.seed);
  const model = new DualEncoder({ vocab: corpus.featureBuckets, dim: c.dim, seed: root.split().nextUint32() });
  const batchRng = root.split();
  const samplerRng = root.split();
  const optimizer = new AdamW({ lr: c.lr });
  const cacheManager = new CacheManager({
    specs: { embedding: { shape: [c.dim], dtype: 'float32' }, docId: { shape: [], dtype: 'int32' } },
    cacheSize: c.cacheSize,
  });
  const loss = new CacheClassificationLoss({
    embeddingKey: 'embedding',
    dataKeys: ['docId'],
    scoreTransform: scaleTransform(c.scale),
    rng: samplerRng,
    sampler: c.sampler,
    falseNegativeKey: 'docId',
  });
  const handler = new CacheLossHandler({ cacheManager, loss });

  // Batches: an epoch-wise Fisher-Yates permutation of the training queries.
  const order = corpus.trainQueries.slice();
  let cursor = order.length;
  const nextBatch = () => {
    if (cursor + c.batch > order.length) {
      for (let i = order.length - 1; i > 0; i--) {
        const j = batchRng.int(i + 1);
        const t = order[i];
        order[i] = order[j];
        order[j] = t;
      }
      cursor = 0;
    }
    const out = order.slice(cursor, cursor + c.batch);
    cursor += c.batch;
    return out;
  };

  const trainingLoss = [];
  const interpretableLoss = [];
  const staleness = [];
  const indices = [];
  for (let step = 0; step < c.steps; step++) {
    const batch = nextBatch();
    const qSpace = new RowSpace();
    const qBags = makeBags(corpus.queryOffsets, corpus.queryIds, batch, corpus.featureBuckets, qSpace);
    const qIds = qSpace.ids();
    const qRows = model.queryTable.rows(qIds);
    const positiveIds = tensor(batch, 'int32');
    // 1. Sample the negatives first (values only): the rows they touch are then known.
    const retrieval = handler.retrieve(tower(qRows, qBags, model.dense.query), { positiveIds });
    const sampled = retrieval.retrievedData.docId.dataSync();
    // 2. The document rows of the positives and of the sampled negatives.
    const dSpace = new RowSpace();
    const posBags = makeBags(corpus.docOffsets, corpus.docIds, batch, corpus.featureBuckets, dSpace);
    const negBags = makeBags(corpus.docOffsets, corpus.docIds, sampled, corpus.featureBuckets, dSpace);
    const dIds = dSpace.ids();
    // 3. Differentiate with respect to the dense parameters and the touched rows.
    const f = (p) => {
      const qEmb = tower(p.qRows, qBags, p.dense.query);
      const pEmb = tower(p.dRows, posBags, p.dense.doc);
      const docNetwork = (features) => {
        const ids = features.docId.dataSync();
        if (ids.length !== sampled.length || ids.some((v, i) => v !== sampled[i]))
          throw new Error('the loss asked for documents other than the sampled ones');
        return tower(p.dRows, negBags, p.dense.doc);
      };
      const s = handler.computeLoss(docNetwork, qEmb, pEmb, { docId: positiveIds }, { positiveIds, retrieval });
      return [s.trainingLoss, s];
    };
    const { grad, aux: s } = valueAndGrad(f, { hasAux: true })({
      dense: model.dense,
      qRows,
      dRows: model.docTable.rows(dIds),
    });
    handler.commit(s, { gradients: grad });
    model.dense = optimizer.step(model.dense, grad.dense, {
      query: { table: model.queryTable, ids: qIds, grad: grad.qRows },
      doc: { table: model.docTable, ids: dIds, grad: grad.dRows },
    });
    trainingLoss.push(bitsHex(s.trainingLoss.dataSync()));
    interpretableLoss.push(bitsHex(Float64Array.of(s.metrics.interpretableLoss)));
    staleness.push(bitsHex(Float64Array.of(s.metrics.staleness)));
    const picked = Array.from(s.retrievedIndices.dataSync());
    if (picked.some((v, i) => v !== retrieval.indices[i]))
      throw new Error(`step ${step}: the loss used other indices than the retrieval`);
    indices.push(picked);
  }

  const cache = handler.cache;
  const params = {
    'model.queryTable': bitsHex(model.queryTable.data),
    'model.docTable': bitsHex(model.docTable.data),
    'model.dense.query.w': bitsHex(model.dense.query.w.dataSync()),
    'model.dense.query.b': bitsHex(model.dense.query.b.dataSync()),
    'model.dense.doc.w': bitsHex(model.dense.doc.w.dataSync()),
    'model.dense.doc.b': bitsHex(model.dense.doc.b.dataSync()),
    'cache.embedding': bitsHex(cache.data.embedding.dataSync()),
    'cache.docId': bitsHex(cache.data.docId.dataSync()),
    'cache.age': bitsHex(cache.age.dataSync()),
  };
  const all = Object.keys(params)
    .sort()
    .map((k) => `${k}:${params[k]}`)
    .join(';');
  return {
    config: c,
    trainingLoss,
    interpretableLoss,
    staleness,
    indices,
    params,
    digest: digest(
      `${trainingLoss.join()}|${interpretableLoss.join()}|${staleness.join()}|${indices.join(';')}|${all}`,
    ),
    lastInterpretableLoss: s2f(interpretableLoss[interpretableLoss.length - 1]),
  };
}

/** Decodes a float64 bits hex string (two little-endian 32-bit words). */
function s2f(hex) {
  const w = new Uint32Array(2);
  w[0] = parseInt(hex.slice(0, 8), 16);
  w[1] = parseInt(hex.slice(8, 16), 16);
  return new Float64Array(w.buffer)[0];
}
