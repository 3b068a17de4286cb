/**
 * The exported model: export → load → encode gives the trainer's own
 * embeddings (embedAll) bit for bit, for user data and for the WordNet-style
 * corpus (documents written as synsetText), across the 8192-text chunk
 * boundary; the checkpoint route gives the same model; files are checked.
 */
import { describe, expect, it } from 'vitest';
import { ArgumentError } from '../../src/errors.js';
import { unsafeData, wrap } from '../../src/tensor/tensor.js';
import { decodeSafetensors, encodeSafetensors } from '../../src/io/safetensors.js';
import { syntheticCorpus, synsetText } from '../../src/data/corpus.js';
import { corpusFromRecords } from '../../src/data/loaders.js';
import { DEFAULT_CONFIG, type TrainConfig } from '../../src/train/config.js';
import { Trainer } from '../../src/train/trainer.js';
import { embedAll } from '../../src/train/evaluate.js';
import { checkpointOf } from '../../src/train/checkpoint.js';
import { EncoderModel, MODEL_FORMAT, exportModel, loadModel, modelFromCheckpoint } from '../../src/model/encoder.js';

const config: TrainConfig = {
  ...DEFAULT_CONFIG,
  method: 'cache',
  steps: 30,
  batch: 16,
  cacheSize: 64,
  dim: 12,
  lr: 0.05,
};

function trained(corpus: ConstructorParameters<typeof Trainer>[0], steps = 30): Trainer {
  const t = new Trainer(corpus, config);
  for (let i = 0; i < steps; i++) t.step();
  return t;
}

const same = (a: Float32Array, b: Float32Array): boolean =>
  a.length === b.length &&
  new Uint32Array(a.buffer, a.byteOffset, a.length).every(
    (v, i) => v === new Uint32Array(b.buffer, b.byteOffset, b.length)[i],
  );

describe('export -> load -> encode equals the trainer, bit for bit', () => {
  it('user data (text documents and queries), more than one 8192-text chunk', () => {
    const records = Array.from({ length: 9000 }, (_, i) => ({
      query: `what is item ${i % 4001} of colour ${['red', 'green', 'blue'][i % 3]}`,
      document: `item ${i % 4001} ${['red', 'green', 'blue'][i % 3]} thing`,
    }));
    const { corpus } = corpusFromRecords(records, { features: { buckets: 4096 }, testFraction: 0.1 });
    expect(corpus.docs.length).toBeGreaterThan(8192);
    const t = trained(corpus);
    const bytes = exportModel(t.model, corpus.features, { note: 'test' });
    const model = loadModel(bytes);
    expect(model.dim).toBe(12);
    expect(model.features).toEqual(corpus.features);
    expect(model.metadata).toEqual({ note: 'test' });
    const allDocs = Int32Array.from({ length: corpus.docs.length }, (_, i) => i);
    const docs = model.encodeDocuments(corpus.docs.map((d) => d.text));
    expect(docs.shape).toEqual([corpus.docs.length, 12]);
    expect(same(unsafeData(docs) as Float32Array, embedAll(t.model, 'doc', corpus, allDocs))).toBe(true);
    const allQueries = Int32Array.from({ length: corpus.queryDoc.length }, (_, i) => i);
    const queries = model.encodeQueries(corpus.queryTexts!.slice());
    expect(same(unsafeData(queries) as Float32Array, embedAll(t.model, 'query', corpus, allQueries))).toBe(true);
    // The live view over the trainer's model gives the same bits.
    const live = EncoderModel.fromDualEncoder(t.model, corpus.features!);
    expect(
      same(
        unsafeData(live.encodeDocuments(corpus.docs.map((d) => d.text))) as Float32Array,
        unsafeData(docs) as Float32Array,
      ),
    ).toBe(true);
    // Rows are unit length.
    const q = unsafeData(queries) as Float32Array;
    for (let i = 0; i < 5; i++) {
      let s = 0;
      for (let j = 0; j < 12; j++) s += q[i * 12 + j]! ** 2;
      expect(Math.abs(s - 1)).toBeLessThan(1e-5);
    }
  });

  it('the WordNet-style corpus: documents as synsetText, queries as glosses', () => {
    const corpus = syntheticCorpus({ numDocs: 500, vocab: 60, seed: 2, featureBuckets: 2048 });
    const t = trained(corpus);
    const model = loadModel(exportModel(t.model, corpus.features));
    const all = Int32Array.from({ length: 500 }, (_, i) => i);
    expect(
      same(
        unsafeData(model.encodeDocuments(corpus.docs.map(synsetText))) as Float32Array,
        embedAll(t.model, 'doc', corpus, all),
      ),
    ).toBe(true);
    expect(
      same(
        unsafeData(model.encodeQueries(corpus.docs.map((s) => s.gloss))) as Float32Array,
        embedAll(t.model, 'query', corpus, all),
      ),
    ).toBe(true);
  });

  it('the checkpoint route gives the same model; the training config travels as negcache.train', () => {
    const { corpus } = corpusFromRecords(
      Array.from({ length: 300 }, (_, i) => ({ query: `question ${i} about ${i % 17}`, document: `answer ${i % 50}` })),
      { features: { buckets: 1024 } },
    );
    const t = trained(corpus, 10);
    const ckpt = checkpointOf(t, [], [], 0);
    expect(() => modelFromCheckpoint(ckpt)).toThrow(/does not record its feature configuration/);
    const a = modelFromCheckpoint({
      ...ckpt,
      metadata: { ...ckpt.metadata, 'negcache.features': JSON.stringify(corpus.features) },
    });
    const b = modelFromCheckpoint(ckpt, corpus.features);
    expect(a.metadata['negcache.train']).toBe(ckpt.metadata['negcache.config']);
    const texts = corpus.docs.map((d) => d.text);
    const direct = unsafeData(loadModel(exportModel(t.model, corpus.features)).encodeDocuments(texts)) as Float32Array;
    expect(same(unsafeData(a.encodeDocuments(texts)) as Float32Array, direct)).toBe(true);
    expect(same(unsafeData(b.encodeDocuments(texts)) as Float32Array, direct)).toBe(true);
    // Re-exporting a loaded model gives the same bytes.
    const bytes = exportModel(a);
    expect(Buffer.from(exportModel(loadModel(bytes))).equals(Buffer.from(bytes))).toBe(true);
  });
});

describe('the model file', () => {
  const corpus = syntheticCorpus({ numDocs: 100, vocab: 30, seed: 3, featureBuckets: 256 });
  const t = new Trainer(corpus, config);
  const bytes = exportModel(t.model, corpus.features);

  it('holds the documented tensors and metadata', () => {
    const { tensors, metadata } = decodeSafetensors(bytes);
    expect(Object.fromEntries(Object.entries(tensors).map(([k, v]) => [k, [v.dtype, ...v.shape]]))).toEqual({
      'doc.dense.b': ['float32', 12],
      'doc.dense.w': ['float32', 12, 12],
      'doc.table': ['float32', 256, 12],
      'query.dense.b': ['float32', 12],
      'query.dense.w': ['float32', 12, 12],
      'query.table': ['float32', 256, 12],
    });
    expect(metadata['negcache.format']).toBe(MODEL_FORMAT);
    expect(JSON.parse(metadata['negcache.features']!)).toEqual(corpus.features);
    expect(
      same(
        unsafeData(tensors['query.table']!) as Float32Array,
        t.model.queryTable.snapshot().dataSync() as Float32Array,
      ),
    ).toBe(true);
  });

  it('rejects checkpoints, other files, bad features and wrong shapes, with a message', () => {
    const ckptBytes = encodeSafetensors(checkpointOf(t, [], [], 0).tensors, checkpointOf(t, [], [], 0).metadata);
    expect(() => loadModel(ckptBytes)).toThrow(
      /this is a training checkpoint, not a model file; export one with `negcache export/,
    );
    const { tensors, metadata } = decodeSafetensors(bytes);
    const redo = (tt: object, mm: object) => encodeSafetensors(tt as never, mm as never);
    expect(() => loadModel(redo(tensors, { ...metadata, 'negcache.format': 'x' }))).toThrow(
      /not a negcache model file/,
    );
    expect(() => loadModel(redo(tensors, { ...metadata, 'negcache.features': '{' }))).toThrow(/not valid JSON/);
    expect(() =>
      loadModel(
        redo(tensors, { ...metadata, 'negcache.features': JSON.stringify({ ...corpus.features, buckets: 512 }) }),
      ),
    ).toThrow(/"query.table" is a \[256,12\] float32 tensor; need float32 \[512, 12\]/);
    const { ['doc.dense.b']: _, ...missing } = tensors;
    expect(() => loadModel(redo(missing, metadata))).toThrow(/the file has no tensor "doc.dense.b"/);
    expect(() =>
      loadModel(redo({ ...tensors, 'doc.dense.w': wrap(new Float32Array(12), [12], 'float32') }, metadata)),
    ).toThrow(/"doc.dense.w" is a \[12\] float32 tensor; need float32 \[12, 12\]/);
    expect(() => exportModel(t.model)).toThrow(/features is required with a DualEncoder/);
    expect(() => loadModel('x' as never)).toThrow(ArgumentError);
    const m = loadModel(bytes);
    expect(() => m.encodeQueries('x' as never)).toThrow(/texts must be an array of strings/);
    expect(() => m.encodeQueries([3 as never])).toThrow(/texts\[0\] must be a string/);
    // Text without features embeds as the normalised bias (an empty bag), not NaN.
    expect(Array.from(m.encodeQueries(['...']).dataSync()).every(Number.isFinite)).toBe(true);
  });
});
