/**
 * Checkpoints: the trainer's state as named tensors (plus the run's history
 * as metadata), and its restoration. The tensor names are documented in
 * docs/checkpoints.md; the bytes are safetensors (src/io/safetensors.ts).
 */
import { ArgumentError, describe } from '../errors.js';
import { Rng } from '../tensor/random.js';
import { isTensor, unsafeData, wrap, type Tensor } from '../tensor/tensor.js';
import { AdamW, SGD } from '../optim/optimizers.js';
import type { NegativeCache } from '../cache/negativeCache.js';
import { CacheLossHandler } from '../handlers/handlers.js';
import { checkConfig, type TrainConfig } from './config.js';
import type { EvalResult } from './evaluate.js';
import type { DualEncoder } from './model.js';

/** The checkpoint format this version writes and reads (`negcache.format`). */
const FORMAT = 'negcache-trainer-v1';

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

/** What a checkpoint reads from and restores into a trainer (the Trainer class has these fields). */
export interface TrainerParts {
  readonly config: TrainConfig;
  readonly model: DualEncoder;
  readonly optimizer: AdamW | SGD;
  readonly handler: CacheLossHandler | null;
  readonly rng: Rng;
  readonly samplerRng: Rng;
  order: Int32Array;
  cursor: number;
  stepCount: number;
}

/** A training run's full state: the trainer's tensors plus the run's history (what a checkpoint holds). */
export interface Checkpoint {
  tensors: Record<string, Tensor>;
  metadata: Record<string, string>;
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
export function trainerState(trainer: TrainerParts): Record<string, Tensor> {
  const m = trainer.model;
  const out: Record<string, Tensor> = {
    'model.queryTable': m.queryTable.snapshot(),
    'model.docTable': m.docTable.snapshot(),
    'model.dense.query.w': m.dense.query.w,
    'model.dense.query.b': m.dense.query.b,
    'model.dense.doc.w': m.dense.doc.w,
    'model.dense.doc.b': m.dense.doc.b,
    'rng.batches': rngTensor(trainer.rng),
    'rng.sampler': rngTensor(trainer.samplerRng),
    'train.order': wrap(trainer.order.slice(), [trainer.order.length], 'int32'),
    'train.cursor': wrap(Int32Array.of(trainer.cursor), [], 'int32'),
    'train.step': wrap(Int32Array.of(trainer.stepCount), [], 'int32'),
  };
  for (const [k, v] of Object.entries(trainer.optimizer.getState())) out[`optim.${k}`] = v;
  if (trainer.handler) {
    const c = trainer.handler.cache;
    for (const [k, v] of Object.entries(c.data)) out[`cache.data.${k}`] = v;
    out['cache.age'] = c.age;
    if (c.valid) out['cache.valid'] = c.valid;
  }
  return out;
}

/** Restores a state from trainerState (same corpus and config). Validates everything before changing anything. */
export function restoreTrainerState(trainer: TrainerParts, state: Readonly<Record<string, Tensor>>): void {
  const op = 'Trainer.setState';
  if (state === null || typeof state !== 'object')
    throw new ArgumentError(op, `state must be a record of tensors from trainerState, got ${describe(state)}`);
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
  const m = trainer.model;
  const order = need('train.order');
  if (order.dtype !== 'int32' || order.size !== trainer.order.length)
    throw new ArgumentError(
      op,
      `train.order has ${order.size} entries; this corpus has ${trainer.order.length} training queries (a different corpus or split?)`,
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
  const cursor = scalarIn('train.cursor', trainer.order.length);
  const stepCount = scalarIn('train.step', 2 ** 31 - 1);
  const optim: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(state)) if (k.startsWith('optim.')) optim[k.slice(6)] = v;
  let cache: NegativeCache | null = null;
  if (trainer.handler) {
    const data: Record<string, Tensor> = {};
    for (const [k, v] of Object.entries(state)) if (k.startsWith('cache.data.')) data[k.slice(11)] = v;
    cache = { data, age: need('cache.age'), ...(state['cache.valid'] ? { valid: state['cache.valid'] } : {}) };
    trainer.handler.managers[CacheLossHandler.SOURCE]!.checkCache(op, cache);
  }
  const qTable = need('model.queryTable'),
    dTable = need('model.docTable');
  const rngB = need('rng.batches'),
    rngS = need('rng.sampler');
  // Dry runs of every setter on copies, so a bad checkpoint changes nothing.
  (trainer.config.optimizer === 'sgd'
    ? new SGD({ lr: trainer.config.lr })
    : new AdamW({ lr: trainer.config.lr })
  ).setState(optim);
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
  trainer.optimizer.setState(optim);
  m.queryTable.load(qTable);
  m.docTable.load(dTable);
  m.dense = dense;
  trainer.rng.setState(rngState(rngB));
  trainer.samplerRng.setState(rngState(rngS));
  trainer.order = Int32Array.from(unsafeData(order) as Int32Array);
  trainer.cursor = cursor;
  trainer.stepCount = stepCount;
  if (trainer.handler && cache) trainer.handler.setState(cache, trainer.stepCount);
}

function rngTensor(r: Rng): Tensor {
  return wrap(new Int32Array(r.getState().buffer), [4], 'int32');
}

function rngState(t: Tensor): Uint32Array {
  if (t.dtype !== 'int32' || t.size !== 4)
    throw new ArgumentError('Trainer.setState', 'an rng state must be int32 [4]');
  return new Uint32Array(Int32Array.from(unsafeData(t) as Int32Array).buffer);
}

/** Captures a run: trainer tensors, config, history and evaluations. */
export function checkpointOf(
  trainer: TrainerParts,
  history: readonly StepRecord[],
  evals: readonly EvalRecord[],
  trainSeconds: number,
): Checkpoint {
  const finite = (_k: string, v: unknown): unknown => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v);
  return {
    tensors: trainerState(trainer),
    metadata: {
      'negcache.format': FORMAT,
      'negcache.config': JSON.stringify(trainer.config, finite),
      'negcache.history': JSON.stringify(history, finite),
      'negcache.evals': JSON.stringify(evals, finite),
      'negcache.trainSeconds': String(trainSeconds),
    },
  };
}

/** An ArgumentError about one metadata field of a checkpoint. */
function metaError(key: string, what: string): ArgumentError {
  return new ArgumentError('train', `the checkpoint's metadata "${key}" ${what}`);
}

/** A metadata field as JSON ("NaN" / "Infinity" / "-Infinity" strings revived as numbers, as checkpointOf writes them). */
export function parseMeta<T>(c: Checkpoint, key: string): T {
  const raw: unknown = c.metadata[key];
  if (raw === undefined) throw new ArgumentError('train', `the checkpoint has no metadata "${key}"`);
  if (typeof raw !== 'string') throw metaError(key, `must be a string, got ${describe(raw)}`);
  try {
    return JSON.parse(raw, (_k, v) =>
      v === 'NaN' ? NaN : v === 'Infinity' ? Infinity : v === '-Infinity' ? -Infinity : v,
    ) as T;
  } catch {
    throw metaError(key, 'is not valid JSON');
  }
}

/**
 * The config a checkpoint was trained with (so a resumed run can insist on
 * the same), validated field by field as checkConfig does. Keys absent from
 * the JSON are undefined (JSON.stringify drops the undefined optional fields).
 */
export function checkpointConfig(c: Checkpoint): TrainConfig {
  if (c.metadata['negcache.format'] !== FORMAT)
    throw new ArgumentError(
      'train',
      `not a negcache trainer checkpoint (format ${String(c.metadata['negcache.format'])})`,
    );
  const raw = parseMeta<unknown>(c, 'negcache.config');
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw metaError('negcache.config', `must be a JSON object (a TrainConfig), got ${describe(raw)}`);
  try {
    return checkConfig({ ...(raw as TrainConfig) });
  } catch (e) {
    if (!(e instanceof ArgumentError)) throw e;
    throw metaError('negcache.config', `is not a valid TrainConfig: ${e.message.replace(/^train: /, '')}`);
  }
}

/** What a checkpoint's metadata holds besides the config: the run so far. */
export interface CheckpointRun {
  history: StepRecord[];
  evals: EvalRecord[];
  trainSeconds: number;
}

const STEP_KEYS = ['step', 'time', 'stepMs', 'trainingLoss', 'interpretableLoss', 'staleness'] as const;
const EVAL_KEYS = ['step', 'time', 'recallAt1', 'recallAt10', 'recallAt100', 'mrr', 'count'] as const;

/**
 * One record of history or evals: a plain object whose every value is a
 * number (the loss fields may be NaN: staleness is NaN outside the cache
 * method), with at least `keys`, a whole `step` in [lo, hi] and a finite
 * non-negative `time`. Extra numeric fields are allowed (metrics a newer
 * trainer records).
 */
function checkRecord(key: string, i: number, r: unknown, keys: readonly string[], lo: number, hi: number): void {
  const at = `entry ${i}`;
  if (r === null || typeof r !== 'object' || Array.isArray(r))
    throw metaError(key, `${at} must be an object, got ${describe(r)}`);
  const rec = r as Record<string, unknown>;
  for (const k of keys) if (!(k in rec)) throw metaError(key, `${at} has no field "${k}"`);
  for (const [k, v] of Object.entries(rec))
    if (typeof v !== 'number') throw metaError(key, `${at} field "${k}" must be a number, got ${describe(v)}`);
  const step = rec['step'] as number;
  if (!Number.isInteger(step) || step < lo || step > hi)
    throw metaError(key, `${at} has step ${describe(step)}; need an integer in [${lo}, ${hi}]`);
  for (const k of ['time', ...(keys === STEP_KEYS ? ['stepMs'] : ['count'])]) {
    const v = rec[k] as number;
    if (!Number.isFinite(v) || v < 0) throw metaError(key, `${at} has ${k} ${describe(v)}; need a finite number >= 0`);
  }
}

/**
 * The run recorded in a checkpoint, every field validated (a typed
 * ArgumentError naming the field otherwise): `negcache.history` an array of
 * step records, one per step 1..stepCount in order; `negcache.evals` an
 * array of evaluation records at steps in [0, stepCount], in order;
 * `negcache.trainSeconds` a finite number >= 0, not below the history's last
 * time. `stepCount` is the checkpoint's train.step.
 */
export function checkpointRun(c: Checkpoint, stepCount: number): CheckpointRun {
  const history = parseMeta<unknown>(c, 'negcache.history');
  if (!Array.isArray(history)) throw metaError('negcache.history', `must be a JSON array, got ${describe(history)}`);
  if (history.length !== stepCount)
    throw metaError('negcache.history', `has ${history.length} entries; the checkpoint is at step ${stepCount}`);
  history.forEach((r: unknown, i) => {
    checkRecord('negcache.history', i, r, STEP_KEYS, i + 1, i + 1);
  });
  const evals = parseMeta<unknown>(c, 'negcache.evals');
  if (!Array.isArray(evals)) throw metaError('negcache.evals', `must be a JSON array, got ${describe(evals)}`);
  evals.forEach((r: unknown, i) => {
    const prev = i > 0 ? ((evals[i - 1] as EvalRecord).step ?? 0) : 0;
    checkRecord('negcache.evals', i, r, EVAL_KEYS, prev, stepCount);
  });
  const raw: unknown = c.metadata['negcache.trainSeconds'];
  if (raw === undefined) throw new ArgumentError('train', 'the checkpoint has no metadata "negcache.trainSeconds"');
  const trainSeconds = typeof raw === 'string' && /^\d+(\.\d*)?([eE][-+]?\d+)?$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isFinite(trainSeconds))
    throw metaError('negcache.trainSeconds', `must be a finite number >= 0, got ${describe(raw)}`);
  const last = (history.at(-1) as StepRecord | undefined)?.time ?? 0;
  if (trainSeconds < last)
    throw metaError('negcache.trainSeconds', `is ${trainSeconds}, less than the history's last time ${last}`);
  return { history: history as StepRecord[], evals: evals as EvalRecord[], trainSeconds };
}
