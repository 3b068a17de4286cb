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
import type { TrainConfig } from './config.js';
import type { EvalResult } from './evaluate.js';
import type { DualEncoder } from './model.js';

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
      'negcache.format': 'negcache-trainer-v1',
      'negcache.config': JSON.stringify(trainer.config, finite),
      'negcache.history': JSON.stringify(history, finite),
      'negcache.evals': JSON.stringify(evals, finite),
      'negcache.trainSeconds': String(trainSeconds),
    },
  };
}

export function parseMeta<T>(c: Checkpoint, key: string): T {
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

/** The config a checkpoint was trained with (so a resumed run can insist on the same). */
export function checkpointConfig(c: Checkpoint): TrainConfig {
  if (c.metadata['negcache.format'] !== 'negcache-trainer-v1')
    throw new ArgumentError(
      'train',
      `not a negcache trainer checkpoint (format ${String(c.metadata['negcache.format'])})`,
    );
  return parseMeta<TrainConfig>(c, 'negcache.config');
}
