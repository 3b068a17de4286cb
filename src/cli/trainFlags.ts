/**
 * The training flags of the CLI and what they become: each flag that sets a
 * TrainConfig field takes its kind, range and choices from the field's spec
 * (CONFIG_FIELDS in src/train/config.ts), so the CLI accepts exactly what the
 * library accepts; library messages about a field are reworded to name its
 * flag; and a resumed run is checked against its checkpoint (the resume rule,
 * BUDGET_FIELDS) before anything is created or trained.
 */
import { NegcacheError } from '../errors.js';
import {
  BUDGET_FIELDS,
  CONFIG_FIELDS,
  DEFAULT_CONFIG,
  checkConfig,
  recipeConfig,
  resumeMismatches,
  type Recipe,
  type TrainConfig,
} from '../train/config.js';
import { checkpointConfig, checkpointRun, type Checkpoint } from '../train/checkpoint.js';
import { UsageError, flagOf, type FlagSpec } from './args.js';

/**
 * The flags that set a TrainConfig field. Their kinds, ranges and choices come
 * from the field's spec (CONFIG_FIELDS), so the CLI accepts exactly what the
 * library accepts; `--loss` sets `method`.
 */
export const FIELD_FLAGS: Record<string, { field: keyof TrainConfig; help: string }> = {
  steps: { field: 'steps', help: 'maximum steps per method' },
  seconds: { field: 'timeBudgetSeconds', help: 'training time budget per method, seconds' },
  batch: { field: 'batch', help: `queries per step (default ${DEFAULT_CONFIG.batch})` },
  'cache-size': { field: 'cacheSize', help: `negative cache slots (default ${DEFAULT_CONFIG.cacheSize})` },
  dim: { field: 'dim', help: `embedding dimension (default ${DEFAULT_CONFIG.dim})` },
  lr: { field: 'lr', help: "learning rate (default: the recipe's tuned rate, see negcache --help)" },
  scale: { field: 'scale', help: `score scale (default ${DEFAULT_CONFIG.scale})` },
  'weight-decay': { field: 'weightDecay', help: 'decoupled weight decay (default 0)' },
  'clip-norm': { field: 'clipNorm', help: 'clip gradients to this global norm (default off)' },
  sampler: { field: 'sampler', help: 'negative sampler (default categorical)' },
  optimizer: { field: 'optimizer', help: 'adamw (default) or sgd (momentum 0.9)' },
  'mask-duplicates': { field: 'maskDuplicates', help: 'identical documents are not negatives (default true)' },
  'full-docs': {
    field: 'fullDocs',
    help: 'documents of the full softmax: train (default; the positives of training queries) or all',
  },
  'top-k': { field: 'topK', help: 'approximate top-k narrowing of the cache (default off)' },
  'num-negatives': {
    field: 'numNegatives',
    help: "cache: negatives sampled per query (default: the recipe's; 1 = the reference)",
  },
  'in-batch-negatives': {
    field: 'inBatchNegatives',
    help: "cache: the batch's other positives are exact negatives too (default: the recipe's)",
  },
  'query-gradient': {
    field: 'queryGradient',
    help: "cache: sampled (the reference) or exact (the query's exact gradient over the cache); default: the recipe's",
  },
  seed: { field: 'seed', help: 'seed for everything (default 0)' },
  'eval-every': { field: 'evalEverySeconds', help: 'seconds of training between recall evaluations (default 10)' },
  'eval-every-steps': { field: 'evalEverySteps', help: 'also evaluate every N steps (default 0: off)' },
  'eval-queries': { field: 'evalQueries', help: 'held-out queries in the periodic evaluations (default 1000)' },
};

/** The flag that sets a config field, as users type it. */
export function flagName(field: keyof TrainConfig): string {
  if (field === 'method') return '--loss';
  const flag = Object.entries(FIELD_FLAGS).find(([, f]) => f.field === field)?.[0];
  return flag !== undefined ? `--${flag}` : field;
}

export const CONFIG_FLAGS: Record<string, FlagSpec> = Object.fromEntries(
  Object.entries(FIELD_FLAGS).map(([flag, { field, help }]) => [flag, flagOf(CONFIG_FIELDS[field], help)]),
);

/** --seeds "0,1,2": distinct whole numbers in --seed's range. */
export function parseSeeds(v: string): number[] {
  const { min, max } = CONFIG_FIELDS.seed as { min: number; max: number };
  const parts = v.split(',').map((x) => x.trim());
  const seeds = parts.map((x) => (/^\d+$/.test(x) ? Number(x) : NaN));
  if (seeds.some((x) => !Number.isSafeInteger(x) || x < min || x > max))
    throw new UsageError(`--seeds needs comma-separated whole numbers in [${min}, ${max}], got "${v}"`);
  if (new Set(seeds).size !== seeds.length) throw new UsageError(`--seeds has a repeated seed: "${v}"`);
  return seeds;
}

/**
 * The config of one recipe from the flags: the recipe's tuned defaults, then
 * every given flag's field (recipeConfig: cache-reference keeps the reference
 * estimator whatever the flags say).
 */
export function configFrom(
  flags: Record<string, string | number | boolean>,
  recipe: Recipe,
  defaultSeconds: number,
): TrainConfig {
  const c: Record<string, unknown> = {
    // --steps alone bounds by steps; --seconds alone (or neither) by time; both: whichever comes first.
    timeBudgetSeconds: flags['steps'] !== undefined ? Infinity : defaultSeconds,
    evalEverySeconds: 10,
  };
  for (const [flag, { field }] of Object.entries(FIELD_FLAGS)) {
    const v = flags[flag];
    if (v !== undefined) c[field] = CONFIG_FIELDS[field].kind === 'bool' ? v === 'true' : v;
  }
  return recipeConfig(recipe, c as Partial<TrainConfig>);
}

/** checkConfig with its field names turned into the flags that set them (`--top-k 3 must divide --cache-size 4096`). */
export function checkConfigFlags(c: TrainConfig): void {
  try {
    checkConfig({ ...c });
  } catch (e) {
    if (!(e instanceof NegcacheError)) throw e;
    const fields = Object.keys(CONFIG_FIELDS) as (keyof TrainConfig)[];
    const text = e.message
      .replace(/^train: /, '')
      // A field name followed by its value or "must" is the field (not the word: "one batch of new items").
      .replace(new RegExp(`\\b(${fields.join('|')})\\b(?= (-?\\d|must\\b|=))`, 'g'), (f) =>
        flagName(f as keyof TrainConfig),
      );
    throw new UsageError(text);
  }
}

const show = (v: unknown): string => (v === undefined ? 'off' : String(v));

/**
 * The checks a resumed run makes before anything is created or trained, with
 * the flags named: the checkpoint's config and run record are valid, every
 * setting but the budget ones equals the checkpoint's (the resume rule,
 * BUDGET_FIELDS in src/train/config.ts), and there is something left to train.
 */
export function checkResumable(resume: Checkpoint, config: TrainConfig, file: string): number {
  // A checkpoint whose metadata is not valid is a problem with what --resume names: say so.
  const named = <T>(read: () => T): T => {
    try {
      return read();
    } catch (e) {
      if (!(e instanceof NegcacheError)) throw e;
      throw new UsageError(`--resume: ${file}: ${e.message.replace(/^train: /, '')}`);
    }
  };
  const saved = named(() => checkpointConfig(resume));
  const diff = resumeMismatches(saved, config);
  if (diff.length > 0) {
    const { field, saved: was, now } = diff[0]!;
    throw new UsageError(
      `${flagName(field)} ${show(now)} differs from the checkpoint's ${show(was)} (${file}); ` +
        `a resumed run keeps every setting that changes training, only ${BUDGET_FIELDS.map(flagName).join(', ')} may change`,
    );
  }
  const t = resume.tensors['train.step'];
  if (t === undefined || t.dtype !== 'int32' || t.size !== 1) return 0; // train() reports the bad tensor
  const step = t.item() as number;
  const run = named(() => checkpointRun(resume, step));
  if (step >= config.steps)
    throw new UsageError(
      `--steps ${config.steps} is not above the checkpoint's step ${step} (${file}): nothing to train; give --steps above ${step}`,
    );
  if (run.trainSeconds >= config.timeBudgetSeconds)
    throw new UsageError(
      `--seconds ${config.timeBudgetSeconds} is not above the checkpoint's ${run.trainSeconds.toFixed(1)} s of training (${file}): ` +
        'nothing to train; give a larger --seconds, or --steps alone',
    );
  return step;
}
