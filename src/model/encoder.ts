/**
 * A usable model out: the trained dual encoder's two towers plus the
 * feature configuration, as one safetensors file that encodes new text.
 *
 *   const bytes = exportModel(trainResult.model, corpus.features);   // Uint8Array (safetensors)
 *   const model = loadModel(bytes);                                   // browser-safe
 *   const q = model.encodeQueries(['a domestic animal that barks']);  // float32 [1, dim], unit rows
 *   const d = model.encodeDocuments(['dog, domestic dog']);           // float32 [1, dim]
 *
 * Encoding is exactly what training computed: text → {@link textFeatures}
 * (the stored FeatureConfig) → mean embedding bag → x·W + b → L2
 * normalisation (`tower` in src/train/model.ts), in chunks of `chunk` texts
 * (default 8192, as `embedAll`). `encodeDocuments(texts)` therefore equals
 * `embedAll(model, 'doc', corpus, ...)` bit for bit for the same texts in
 * the same order. One caveat on bits: the projection x·W runs on the
 * WebAssembly SIMD matmul for chunks of 8 or more texts (at dim 64) and on
 * plain loops below that, and the two round differently (~1e-7), so the
 * same text encoded alone and in a batch can differ in the last bits.
 *
 * The file (docs/model-format.md): tensors `query.table` [buckets, dim],
 * `query.dense.w` [dim, dim], `query.dense.b` [dim] and the same under
 * `doc.`; metadata `negcache.format` = `negcache-encoder-v1`,
 * `negcache.features` (the FeatureConfig as JSON) and optional
 * `negcache.train` (the training configuration, informative only).
 */
import { ArgumentError, describe } from '../errors.js';
import { isTensor, unsafeData, wrap, type Tensor } from '../tensor/tensor.js';
import { decodeSafetensors, encodeSafetensors } from '../io/safetensors.js';
import { EmbeddingTable } from '../nn/table.js';
import { RowSpace, makeBags, type LinearParams } from '../nn/layers.js';
import { checkFeatureConfig, textFeatures, type FeatureConfig } from '../data/text.js';
import { tower, type DualEncoder } from '../train/model.js';

/** The `negcache.format` of a model file. */
export const MODEL_FORMAT = 'negcache-encoder-v1';

/** A model file's tensors and metadata (what exportModel encodes and loadModel decodes). */
export interface ModelFile {
  tensors: Record<string, Tensor>;
  metadata: Record<string, string>;
}

export interface EncodeOptions {
  /** Texts per tower evaluation (default 8192, the trainer's embedAll chunk). */
  chunk?: number;
}

interface Tower {
  table: EmbeddingTable;
  proj: LinearParams;
}

/** A trained dual encoder that turns text into unit-length embeddings (see the module comment). */
export class EncoderModel {
  readonly features: FeatureConfig;
  readonly dim: number;
  /** Extra metadata of the file (e.g. `negcache.train`), without the format and features. */
  readonly metadata: Readonly<Record<string, string>>;
  private readonly towers: { query: Tower; doc: Tower };

  private constructor(features: FeatureConfig, query: Tower, doc: Tower, metadata: Record<string, string>) {
    this.features = features;
    this.dim = query.table.dim;
    this.towers = { query, doc };
    this.metadata = Object.freeze({ ...metadata });
  }

  /**
   * An encoder over a trainer's DualEncoder, without copying: it reads the
   * live tables and the current projections, so training on afterwards
   * changes what it computes for the tables (the projections are captured now).
   * For a frozen copy use `loadModel(exportModel(model, features))`.
   */
  static fromDualEncoder(
    model: DualEncoder,
    features: FeatureConfig,
    metadata: Record<string, string> = {},
  ): EncoderModel {
    const op = 'EncoderModel.fromDualEncoder';
    if (model === null || typeof model !== 'object' || !(model.queryTable instanceof EmbeddingTable))
      throw new ArgumentError(op, `model must be a DualEncoder (e.g. trainResult.model), got ${describe(model)}`);
    const f = checkFeatureConfig(op, features);
    if (f.buckets !== model.queryTable.vocab)
      throw new ArgumentError(
        op,
        `features.buckets is ${f.buckets} but the model's tables have ${model.queryTable.vocab} rows; pass the corpus's features`,
      );
    return new EncoderModel(
      f,
      { table: model.queryTable, proj: model.dense.query },
      { table: model.docTable, proj: model.dense.doc },
      metadata,
    );
  }

  /** Builds a model from a model file's tensors and metadata (what loadModel decodes); validates everything. */
  static fromFile(file: ModelFile): EncoderModel {
    const op = 'loadModel';
    if (file === null || typeof file !== 'object' || file.tensors === null || typeof file.tensors !== 'object')
      throw new ArgumentError(op, `need {tensors, metadata}, got ${describe(file)}`);
    const meta = file.metadata ?? {};
    const format = meta['negcache.format'];
    if (format !== MODEL_FORMAT)
      throw new ArgumentError(
        op,
        format === 'negcache-trainer-v1'
          ? 'this is a training checkpoint, not a model file; export one with `negcache export --checkpoint DIR --out model.safetensors`'
          : `not a negcache model file (negcache.format is ${describe(format)}; need "${MODEL_FORMAT}")`,
      );
    let parsed: unknown;
    try {
      parsed = JSON.parse(meta['negcache.features'] ?? '');
    } catch {
      throw new ArgumentError(op, 'the metadata "negcache.features" is missing or not valid JSON');
    }
    const features = checkFeatureConfig(op, parsed);
    const get = (name: string, shape: number[]): Tensor => {
      const t = file.tensors[name];
      if (!isTensor(t)) throw new ArgumentError(op, `the file has no tensor "${name}"`);
      if (t.dtype !== 'float32' || t.rank !== shape.length || t.shape.some((v, i) => v !== shape[i]))
        throw new ArgumentError(op, `"${name}" is ${describe(t)}; need float32 [${shape.join(', ')}]`);
      return t;
    };
    const q = file.tensors['query.table'];
    const dim = isTensor(q) && q.rank === 2 ? q.shape[1]! : NaN;
    if (!(dim >= 1))
      throw new ArgumentError(op, `"query.table" must be a float32 [buckets, dim] tensor, got ${describe(q)}`);
    const side = (s: 'query' | 'doc'): Tower => {
      const table = get(`${s}.table`, [features.buckets, dim]);
      return {
        // An EncoderModel never writes its tables, so they share the tensors' storage (no copy).
        table: new EmbeddingTable(features.buckets, dim, unsafeData(table) as Float32Array),
        proj: { w: get(`${s}.dense.w`, [dim, dim]), b: get(`${s}.dense.b`, [dim]) },
      };
    };
    const extra: Record<string, string> = {};
    for (const [k, v] of Object.entries(meta)) if (k !== 'negcache.format' && k !== 'negcache.features') extra[k] = v;
    return new EncoderModel(features, side('query'), side('doc'), extra);
  }

  /** Query embeddings: float32 [texts.length, dim], each row unit length. */
  encodeQueries(texts: readonly string[], opts: EncodeOptions = {}): Tensor {
    return this.encode('encodeQueries', 'query', texts, opts);
  }

  /** Document embeddings: float32 [texts.length, dim], each row unit length. */
  encodeDocuments(texts: readonly string[], opts: EncodeOptions = {}): Tensor {
    return this.encode('encodeDocuments', 'doc', texts, opts);
  }

  /** The feature ids of `text` in one tower (what the embedding bag averages). */
  featureIds(text: string, role: 'query' | 'doc'): Int32Array {
    return textFeatures(text, this.features, role);
  }

  /** The model file's tensors and metadata (copies of the tables). */
  toFile(extraMetadata: Record<string, string> = {}): ModelFile {
    const t = this.towers;
    return {
      tensors: {
        'query.table': t.query.table.snapshot(),
        'query.dense.w': t.query.proj.w,
        'query.dense.b': t.query.proj.b,
        'doc.table': t.doc.table.snapshot(),
        'doc.dense.w': t.doc.proj.w,
        'doc.dense.b': t.doc.proj.b,
      },
      metadata: {
        ...this.metadata,
        ...extraMetadata,
        'negcache.format': MODEL_FORMAT,
        'negcache.features': JSON.stringify(this.features),
      },
    };
  }

  private encode(op: string, role: 'query' | 'doc', texts: readonly string[], opts: EncodeOptions): Tensor {
    if (!Array.isArray(texts)) throw new ArgumentError(op, `texts must be an array of strings, got ${describe(texts)}`);
    for (let i = 0; i < texts.length; i++)
      if (typeof texts[i] !== 'string')
        throw new ArgumentError(op, `texts[${i}] must be a string, got ${describe(texts[i])}`);
    if (opts === null || typeof opts !== 'object')
      throw new ArgumentError(op, `options must be {chunk?}, got ${describe(opts)}`);
    const chunk = opts.chunk ?? 8192;
    if (!Number.isInteger(chunk) || chunk < 1)
      throw new ArgumentError(op, `chunk must be a positive integer, got ${describe(chunk)}`);
    const n = texts.length;
    const parts = texts.map((s) => textFeatures(s, this.features, role));
    const offsets = new Int32Array(n + 1);
    for (let i = 0; i < n; i++) offsets[i + 1] = offsets[i]! + parts[i]!.length;
    const ids = new Int32Array(offsets[n]!);
    for (let i = 0; i < n; i++) ids.set(parts[i]!, offsets[i]!);
    const { table, proj } = this.towers[role];
    const dim = this.dim;
    const out = new Float32Array(n * dim);
    // The same loop as embedAll (src/train/evaluate.ts), so the same texts in the same chunks give the same bits.
    for (let s = 0; s < n; s += chunk) {
      const part = Array.from({ length: Math.min(chunk, n - s) }, (_, i) => s + i);
      const space = new RowSpace();
      const bags = makeBags(offsets, ids, part, this.features.buckets, space);
      const emb = tower(table.rows(space.ids()), bags, proj);
      out.set(unsafeData(emb) as Float32Array, s * dim);
    }
    return wrap(out, [n, dim], 'float32');
  }
}

/**
 * The bytes of a model file (safetensors, docs/model-format.md) for a
 * trained DualEncoder (e.g. `train(...).model`) or an EncoderModel, with
 * the corpus's feature configuration (`corpus.features`).
 */
export function exportModel(
  model: DualEncoder | EncoderModel,
  features?: FeatureConfig,
  metadata: Record<string, string> = {},
): Uint8Array {
  const op = 'exportModel';
  let enc: EncoderModel;
  if (model instanceof EncoderModel) enc = model;
  else {
    if (features === undefined)
      throw new ArgumentError(
        op,
        'features is required with a DualEncoder: pass corpus.features (buildCorpus and the loaders set it)',
      );
    enc = EncoderModel.fromDualEncoder(model, features);
  }
  if (metadata === null || typeof metadata !== 'object')
    throw new ArgumentError(op, `metadata must be a record of strings, got ${describe(metadata)}`);
  const file = enc.toFile(metadata);
  return encodeSafetensors(file.tensors, file.metadata);
}

/** Loads a model file's bytes (safetensors; checksum verified when present). Browser-safe. */
export function loadModel(bytes: Uint8Array): EncoderModel {
  if (!(bytes instanceof Uint8Array))
    throw new ArgumentError('loadModel', `bytes must be a Uint8Array, got ${describe(bytes)}`);
  const { tensors, metadata } = decodeSafetensors(bytes);
  return EncoderModel.fromFile({ tensors, metadata });
}

/**
 * An encoder from a training checkpoint's tensors (`model.queryTable`,
 * `model.docTable`, `model.dense.*`, see docs/checkpoints.md) and the
 * feature configuration: `features`, or else the checkpoint's
 * `negcache.features` metadata (the CLI writes it).
 */
export function modelFromCheckpoint(checkpoint: ModelFile, features?: FeatureConfig): EncoderModel {
  const op = 'modelFromCheckpoint';
  if (checkpoint === null || typeof checkpoint !== 'object' || typeof checkpoint.tensors !== 'object')
    throw new ArgumentError(op, `need a checkpoint {tensors, metadata}, got ${describe(checkpoint)}`);
  const meta = checkpoint.metadata ?? {};
  if (meta['negcache.format'] !== 'negcache-trainer-v1')
    throw new ArgumentError(
      op,
      `not a negcache training checkpoint (negcache.format is ${describe(meta['negcache.format'])})`,
    );
  let f: unknown = features;
  if (f === undefined) {
    const raw = meta['negcache.features'];
    if (raw === undefined)
      throw new ArgumentError(
        op,
        'the checkpoint does not record its feature configuration (metadata "negcache.features"); pass features',
      );
    try {
      f = JSON.parse(raw);
    } catch {
      throw new ArgumentError(op, 'the checkpoint\'s metadata "negcache.features" is not valid JSON');
    }
  }
  const t = checkpoint.tensors;
  const extra: Record<string, string> = {};
  if (meta['negcache.config'] !== undefined) extra['negcache.train'] = meta['negcache.config'];
  return EncoderModel.fromFile({
    tensors: {
      'query.table': t['model.queryTable']!,
      'query.dense.w': t['model.dense.query.w']!,
      'query.dense.b': t['model.dense.query.b']!,
      'doc.table': t['model.docTable']!,
      'doc.dense.w': t['model.dense.doc.w']!,
      'doc.dense.b': t['model.dense.doc.b']!,
    },
    metadata: {
      ...extra,
      'negcache.format': MODEL_FORMAT,
      'negcache.features': JSON.stringify(checkFeatureConfig(op, f)),
    },
  });
}
