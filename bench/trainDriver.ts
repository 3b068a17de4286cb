/**
 * The measuring child of bench/train.ts: times training steps or the
 * whole-corpus evaluation of ONE negcache build and prints one JSON line.
 *
 *   node dist/bench/trainDriver.js <repo root> <cache|inbatch|full|eval> <timed> <warm>
 *
 * The build under test is imported from `<root>/dist/src/index.js` and
 * `<root>/dist/src/node/index.js` through exports that exist in every build
 * since d7f7f51 (`buildCorpus`, `Trainer`, `DEFAULT_CONFIG`, `evaluate`,
 * `loadWordNet`, `createParallelScan`), so the same driver measures an old
 * commit and the working tree. It sets things up as the CLI does (`negcache
 * train`): WordNet with seed 0 and 5 % held-out queries, the default
 * configuration (batch 128, dim 64, cache 4 096, 2^18 buckets, whole corpus),
 * the two-thread cache scan for the cache method, and, where the build has it
 * (`createTrainingPool` in negcache/node), the two-thread pool for the full
 * softmax and the evaluation.
 */
import { pathToFileURL } from 'node:url';
import { join, resolve } from 'node:path';
import { timedCalls } from './util.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
type Any = any;

const [rootArg, task, timedArg, warmArg] = process.argv.slice(2);
if (!rootArg || !task || !['cache', 'cache-recipe', 'inbatch', 'full', 'eval'].includes(task)) {
  console.error('usage: trainDriver.js <repo root> <cache|cache-recipe|inbatch|full|eval> <timed> <warm>');
  process.exit(2);
}
const timed = Number(timedArg ?? 10);
const warm = Number(warmArg ?? 1);
const root = resolve(rootArg);
const lib: Any = await import(pathToFileURL(join(root, 'dist/src/index.js')).href);
const node: Any = await import(pathToFileURL(join(root, 'dist/src/node/index.js')).href);

const t0 = performance.now();
// As the CLI: the synsets dropped after featurising where the build can (compactCorpus), so a full GC has less to mark.
// (built inside a function, so that no variable keeps the full corpus alive)
const loadCorpus = (): Any => {
  const built = lib.buildCorpus(node.loadWordNet(), { seed: 0, testFraction: 0.05 });
  return typeof lib.compactCorpus === 'function' ? lib.compactCorpus(built) : built;
};
const corpus = loadCorpus();
const corpusMs = performance.now() - t0;

// 'cache' is the reference estimator (DEFAULT_CONFIG: one sampled negative per query), which every build has;
// 'cache-recipe' the tuned recipe `cache` (several negatives, in-batch negatives), where the build has recipes.
if (task === 'cache-recipe' && typeof lib.recipeConfig !== 'function') {
  console.log(JSON.stringify({ task, unavailable: 'this build has no training recipes' }));
  process.exit(0);
}
const method = task === 'eval' ? 'inbatch' : task === 'cache-recipe' ? 'cache' : task;
const scan = method === 'cache' ? node.createParallelScan() : null;
const pool = typeof node.createTrainingPool === 'function' ? node.createTrainingPool() : null;
const opts: Record<string, unknown> = {};
/** The cache scan (sampling the negatives), timed call by call: the step's one O(cache) part. */
const timedScan = scan ? timedCalls(scan.scan as (args: unknown) => unknown) : null;
if (timedScan) opts['scanner'] = timedScan.call;
if (pool) opts['runner'] = pool;
const config = task === 'cache-recipe' ? lib.recipeConfig('cache') : { ...lib.DEFAULT_CONFIG, method };
const trainer = new lib.Trainer(corpus, config, opts);

const times: number[] = [];
/** Per timed call, the part of it spent in the cache scan (cache tasks; empty otherwise). */
const scanTimes: number[] = [];
/** CPU time of the whole process (all threads) per timed call: robust to a busy machine, unlike wall time. */
const cpu: number[] = [];
const run =
  task === 'eval'
    ? (): void => {
        lib.evaluate(trainer.model, corpus, corpus.testQueries, undefined, pool ? { runner: pool } : undefined);
      }
    : (): void => {
        trainer.step();
      };
for (let i = 0; i < warm; i++) run();
for (let i = 0; i < timed; i++) {
  const c = process.cpuUsage();
  if (timedScan) timedScan.ms = 0;
  const a = performance.now();
  run();
  times.push(performance.now() - a);
  if (timedScan) scanTimes.push(timedScan.ms);
  const d = process.cpuUsage(c);
  cpu.push((d.user + d.system) / 1000);
}
scan?.close();
pool?.close();
console.log(
  JSON.stringify({
    task,
    times,
    scanTimes,
    cpu,
    corpusMs,
    docs: corpus.docs.length,
    testQueries: corpus.testQueries.length,
    twoThreads: { scan: scan !== null, pool: pool !== null },
    maxRssMB: process.resourceUsage().maxRSS / 1024,
  }),
);
