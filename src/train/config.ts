/**
 * The training configuration: its fields, defaults and validation.
 *
 * CONFIG_FIELDS is the one source of truth for what each field accepts:
 * checkConfig validates with it and the CLI derives its flags' ranges from it
 * (src/cli/main.ts), so the two cannot drift apart. BUDGET_FIELDS is the
 * resume rule (see resumeMismatches).
 */
import { ArgumentError, describe } from '../errors.js';
import type { Sampler } from '../losses/common.js';

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
  /** Cache method: negatives drawn from the cache softmax per query (1 = the reference; see docs/estimators.md). */
  numNegatives: number;
  /** Cache method: the batch's other positives join the softmax as exact negatives. */
  inBatchNegatives: boolean;
  /** Cache method: 'sampled' (the reference) or 'exact' (the query's exact gradient over the whole cache). */
  queryGradient: 'sampled' | 'exact';
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
  numNegatives: 1,
  inBatchNegatives: false,
  queryGradient: 'sampled',
  seed: 0,
  evalEverySeconds: 0,
  evalEverySteps: 0,
  evalQueries: 1000,
};

/** The estimator fields of the cache method (docs/estimators.md). */
export const ESTIMATOR_FIELDS = ['numNegatives', 'inBatchNegatives', 'queryGradient'] as const;

/**
 * A named training recipe: a method and its tuned defaults, applied over
 * DEFAULT_CONFIG. The CLI's --loss takes these names and `compare`/`demo`
 * run all four, each with its own tuned defaults (tuning grid and results in
 * the README's Results):
 *  - cache:            the negative cache with the estimators that won the grid;
 *  - cache-reference:  the reference estimator (one sampled negative per query,
 *                      sampled query gradient), at its own best learning rate;
 *  - inbatch, full:    the softmax baselines at their best learning rates.
 * Explicit settings override a recipe's defaults, except that
 * cache-reference keeps the reference estimator whatever is asked.
 */
export type Recipe = 'cache' | 'cache-reference' | 'inbatch' | 'full';

export const RECIPES: { readonly [R in Recipe]: { readonly method: Method; readonly defaults: Partial<TrainConfig> } } =
  {
    cache: {
      method: 'cache',
      defaults: { lr: 0.01, numNegatives: 4, inBatchNegatives: true, queryGradient: 'sampled' },
    },
    'cache-reference': {
      method: 'cache',
      defaults: { lr: 0.003, numNegatives: 1, inBatchNegatives: false, queryGradient: 'sampled' },
    },
    inbatch: { method: 'inbatch', defaults: { lr: 0.01 } },
    full: { method: 'full', defaults: { lr: 0.01 } },
  };

export const RECIPE_NAMES = Object.keys(RECIPES) as readonly Recipe[];

/**
 * The config of a recipe: DEFAULT_CONFIG, the recipe's defaults, then
 * `overrides` (cache-reference ignores overrides of the estimator fields).
 */
export function recipeConfig(recipe: Recipe, overrides: Partial<TrainConfig> = {}): TrainConfig {
  const r = RECIPES[recipe];
  const c: TrainConfig = { ...DEFAULT_CONFIG, ...r.defaults, ...overrides, method: r.method };
  if (recipe === 'cache-reference')
    for (const k of ESTIMATOR_FIELDS) (c as unknown as Record<string, unknown>)[k] = r.defaults[k];
  return c;
}

/**
 * What one TrainConfig field accepts. `int` and `number` ranges are closed
 * unless `minOpen` (then min itself is refused); `max` may be Infinity for a
 * number (Infinity itself is then allowed: "no limit"). `optional` fields may
 * also be undefined (= off).
 */
export type FieldSpec =
  | { readonly kind: 'int'; readonly min: number; readonly max: number; readonly optional?: true }
  | {
      readonly kind: 'number';
      readonly min: number;
      readonly minOpen?: true;
      readonly max: number;
      readonly optional?: true;
    }
  | { readonly kind: 'choice'; readonly choices: readonly string[] }
  | { readonly kind: 'bool' };

const INT32_MAX = 2 ** 31 - 1;

/**
 * Every TrainConfig field and what it accepts (the mapped type makes a new
 * field without a spec a compile error). The upper bounds are those of the
 * parts the field feeds: lr and weightDecay as the optimisers check them,
 * batch / cacheSize / dim as the trainer can allocate, scale so that scores
 * (scale · cosine) stay far inside float32.
 */
export const CONFIG_FIELDS: { readonly [K in keyof TrainConfig]-?: FieldSpec } = {
  method: { kind: 'choice', choices: METHODS },
  steps: { kind: 'int', min: 1, max: INT32_MAX },
  timeBudgetSeconds: { kind: 'number', min: 0, minOpen: true, max: Infinity },
  batch: { kind: 'int', min: 1, max: 65536 },
  cacheSize: { kind: 'int', min: 1, max: 2 ** 24 },
  dim: { kind: 'int', min: 1, max: 4096 },
  lr: { kind: 'number', min: 0, minOpen: true, max: 1e6 },
  scale: { kind: 'number', min: 0, minOpen: true, max: 1e6 },
  weightDecay: { kind: 'number', min: 0, max: 1e6 },
  optimizer: { kind: 'choice', choices: ['adamw', 'sgd'] },
  maskDuplicates: { kind: 'bool' },
  fullDocs: { kind: 'choice', choices: ['train', 'all'] },
  clipNorm: { kind: 'number', min: 0, minOpen: true, max: Infinity, optional: true },
  sampler: { kind: 'choice', choices: ['gumbel', 'categorical'] },
  topK: { kind: 'int', min: 1, max: 2 ** 24, optional: true },
  numNegatives: { kind: 'int', min: 1, max: 1024 },
  inBatchNegatives: { kind: 'bool' },
  queryGradient: { kind: 'choice', choices: ['sampled', 'exact'] },
  seed: { kind: 'int', min: 0, max: Number.MAX_SAFE_INTEGER },
  evalEverySeconds: { kind: 'number', min: 0, max: Infinity },
  evalEverySteps: { kind: 'int', min: 0, max: INT32_MAX },
  evalQueries: { kind: 'int', min: 1, max: INT32_MAX },
};

/** The config keys, in declaration order. */
export const CONFIG_KEYS = Object.keys(CONFIG_FIELDS) as readonly (keyof TrainConfig)[];

/**
 * The resume rule. A resumed run continues the checkpoint's trajectory bit
 * for bit, so every field that changes what a step computes must equal the
 * checkpoint's. Only these budget fields may differ: how long to train
 * (steps, timeBudgetSeconds) and when and on how many held-out queries to
 * evaluate (evaluation reads the model and draws nothing from the training
 * generators). Every other field, including any field added later, is
 * trajectory-relevant by default: clipNorm, for one, changes the update.
 */
export const BUDGET_FIELDS: readonly (keyof TrainConfig)[] = [
  'steps',
  'timeBudgetSeconds',
  'evalEverySeconds',
  'evalEverySteps',
  'evalQueries',
];

/** One field whose value differs between a checkpoint's config and a resumed run's. */
export interface ConfigMismatch {
  field: keyof TrainConfig;
  saved: unknown;
  now: unknown;
}

/** The trajectory-relevant fields (all but BUDGET_FIELDS) on which `now` differs from `saved`, in CONFIG_KEYS order. */
export function resumeMismatches(saved: TrainConfig, now: TrainConfig): ConfigMismatch[] {
  return CONFIG_KEYS.filter((k) => !BUDGET_FIELDS.includes(k) && !Object.is(saved[k], now[k])).map((field) => ({
    field,
    saved: saved[field],
    now: now[field],
  }));
}

/** "an integer in [1, 65536]", "a number in (0, 1000000]", "one of adamw, sgd", ... (used by the CLI too). */
export function describeField(spec: FieldSpec): string {
  switch (spec.kind) {
    case 'int':
      return `an integer in [${spec.min}, ${spec.max}]`;
    case 'number':
      return spec.max === Infinity
        ? `a number ${spec.minOpen ? '>' : '>='} ${spec.min}`
        : `a number in ${spec.minOpen ? '(' : '['}${spec.min}, ${spec.max}]`;
    case 'choice':
      return `one of ${spec.choices.join(', ')}`;
    case 'bool':
      return 'true or false';
  }
}

/** Whether `v` is a value the spec accepts (undefined for an optional field included). */
export function fieldAccepts(spec: FieldSpec, v: unknown): boolean {
  switch (spec.kind) {
    case 'int':
      return (
        (v === undefined && spec.optional === true) ||
        (typeof v === 'number' && Number.isInteger(v) && v >= spec.min && v <= spec.max)
      );
    case 'number':
      return (
        (v === undefined && spec.optional === true) ||
        (typeof v === 'number' &&
          !Number.isNaN(v) &&
          (spec.minOpen ? v > spec.min : v >= spec.min) &&
          v <= spec.max &&
          (v !== Infinity || spec.max === Infinity))
      );
    case 'choice':
      return typeof v === 'string' && spec.choices.includes(v);
    case 'bool':
      return typeof v === 'boolean';
  }
}

/** The known key a misspelt one most likely meant (same letters ignoring case, or one edit away), if any. */
function suggestKey(key: string): string | undefined {
  const lower = key.toLowerCase().replace(/[-_]/g, '');
  const exact = CONFIG_KEYS.find((k) => k.toLowerCase() === lower);
  if (exact) return exact;
  return CONFIG_KEYS.find((k) => editDistanceAtMostOne(k.toLowerCase(), lower));
}

function editDistanceAtMostOne(a: string, b: string): boolean {
  if (Math.abs(a.length - b.length) > 1) return false;
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  if (a.length === b.length) return a.slice(i + 1) === b.slice(i + 1);
  return a.length > b.length ? a.slice(i + 1) === b.slice(i) : a.slice(i) === b.slice(i + 1);
}

/**
 * Unknown keys are refused, as by every other options object in the
 * library (ops' `checkOptions`, the optimisers, the losses): a misspelt
 * `lR` or `cachesize` must not silently train with the default. This is the
 * job of the shared `checkOptions(op, opts, schema)` helper once it is in a
 * low layer; the did-you-mean suggestion is the part to keep.
 */
function checkKnownKeys(op: string, c: object): void {
  for (const k of Object.keys(c)) {
    if (!Object.hasOwn(CONFIG_FIELDS, k)) {
      const hint = suggestKey(k);
      throw new ArgumentError(
        op,
        `unknown config key ${JSON.stringify(k)}${hint ? ` (did you mean "${hint}"?)` : ''}; the keys are ${CONFIG_KEYS.join(', ')}`,
      );
    }
  }
}

/**
 * Validates a TrainConfig: no unknown keys, every field as CONFIG_FIELDS
 * says, topK dividing cacheSize, and (cache method) a batch that fits in the
 * cache. Returns the config; throws ArgumentError (op `op`, default 'train')
 * naming the first bad field.
 */
export function checkConfig(c: TrainConfig, op = 'train'): TrainConfig {
  if (c === null || typeof c !== 'object' || Array.isArray(c))
    throw new ArgumentError(op, `config must be a TrainConfig object, got ${describe(c)}`);
  checkKnownKeys(op, c);
  for (const k of CONFIG_KEYS) {
    const spec = CONFIG_FIELDS[k];
    const v: unknown = c[k];
    if (!fieldAccepts(spec, v))
      throw new ArgumentError(
        op,
        `${k} must be ${describeField(spec)}${'optional' in spec ? ' (or undefined: off)' : ''}, got ${describe(v)}`,
      );
  }
  if (c.topK !== undefined && c.cacheSize % c.topK !== 0)
    throw new ArgumentError(op, `topK ${c.topK} must divide cacheSize ${c.cacheSize}`);
  if (c.method === 'cache' && c.batch > c.cacheSize)
    throw new ArgumentError(
      op,
      `batch ${c.batch} is larger than cacheSize ${c.cacheSize}; the cache must hold at least one batch of new items`,
    );
  return c;
}
