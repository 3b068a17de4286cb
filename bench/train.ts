/**
 * The cost of training and evaluation at the demo's configuration on WordNet
 * (batch 128, dim 64, cache 4 096 slots, 2^18 feature buckets, the whole
 * corpus of 117 791 synsets): the median step of the negative cache, in-batch
 * and full softmax, and the whole-corpus evaluation (every document embedded,
 * every held-out query ranked), with spreads and each child's peak RSS.
 *
 *   npm run build && node dist/bench/train.js [--baseline <git-ref>] [--quick]
 *                                             [--rounds R] [--tasks cache,inbatch,full,eval]
 *
 * Every measurement runs in a fresh child process (bench/trainDriver.ts), so
 * one task's memory and JIT state cannot skew another's, and peak RSS is that
 * of one training run. With `--baseline <ref>` the commit is checked out in a
 * temporary `git worktree` (node_modules symlinked to this checkout's, then
 * `npm run build`), and the same driver measures both builds in the same run,
 * alternating current / baseline child by child (rounds), so drift in the
 * machine's load hits both alike; the table then gives baseline / current
 * ratios of the medians. The worktree is removed at the end.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { printTable } from './util.js';

/** cache: the reference estimator (comparable with any baseline); cache-recipe: the tuned `cache` recipe. */
type Task = 'cache' | 'cache-recipe' | 'inbatch' | 'full' | 'eval';
const ALL: Task[] = ['cache', 'cache-recipe', 'inbatch', 'full', 'eval'];

const argv = process.argv.slice(2);
const flag = (name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const quick = argv.includes('--quick');
const baselineRef = flag('--baseline');
const rounds = Number(flag('--rounds') ?? (quick ? 1 : 2));
const tasks = (flag('--tasks')?.split(',') ?? ALL) as Task[];
for (const t of tasks)
  if (!ALL.includes(t)) {
    console.error(`unknown task ${t}; choose from ${ALL.join(', ')}`);
    process.exit(2);
  }

/**
 * Timed / warm-up repetitions per child. The cache and in-batch steps are
 * timed after 200 warm-up steps: the first hundred or so steps of a run
 * touch optimiser-moment rows for the first time (page faults into fresh
 * zero pages, in both builds) and run colder code; a demo run is thousands
 * of steps at the steady state measured here.
 */
const COUNTS: Record<Task, [number, number]> = quick
  ? { cache: [50, 100], 'cache-recipe': [50, 100], inbatch: [50, 100], full: [2, 1], eval: [1, 1] }
  : { cache: [150, 200], 'cache-recipe': [150, 200], inbatch: [150, 200], full: [4, 1], eval: [2, 1] };

const here = dirname(fileURLToPath(import.meta.url)); // dist/bench
const repo = resolve(here, '../..');
const driver = join(here, 'trainDriver.js');

interface Result {
  task: Task;
  /** Set when the build cannot run the task (a baseline without recipes). */
  unavailable?: string;
  times: number[];
  /** Per timed call, ms spent in the cache scan (cache tasks; missing from older drivers' output). */
  scanTimes?: number[];
  /** CPU ms of the whole child (all threads) per timed call. */
  cpu: number[];
  maxRssMB: number;
  twoThreads: { scan: boolean; pool: boolean };
}

function run(root: string, task: Task): Result {
  const [timed, warm] = COUNTS[task];
  const r = spawnSync(
    process.execPath,
    // the flags the negcache executable runs with (src/cli/bin.ts), for both builds alike
    ['--max-old-space-size=8192', '--max-semi-space-size=64', driver, root, task, String(timed), String(warm)],
    {
      encoding: 'utf8',
      maxBuffer: 1 << 26,
    },
  );
  if (r.status !== 0) throw new Error(`the ${task} child for ${root} failed (${r.status ?? r.signal}):\n${r.stderr}`);
  const line = r.stdout.trim().split('\n').pop()!;
  return JSON.parse(line) as Result;
}

function sh(cmd: string, args: string[], cwd: string): void {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed in ${cwd}:\n${r.stdout}\n${r.stderr}`);
}

function prepareBaseline(ref: string): { dir: string; sha: string } {
  const shaRun = spawnSync('git', ['rev-parse', '--short', ref], { cwd: repo, encoding: 'utf8' });
  if (shaRun.status !== 0) throw new Error(`git rev-parse ${ref}: ${shaRun.stderr}`);
  const sha = shaRun.stdout.trim();
  const dir = join(mkdtempSync(join(tmpdir(), 'negcache-baseline-')), sha);
  console.log(`building the baseline ${ref} (${sha}) in ${dir} ...`);
  sh('git', ['worktree', 'add', '--detach', dir, sha], repo);
  if (!existsSync(join(dir, 'node_modules'))) symlinkSync(join(repo, 'node_modules'), join(dir, 'node_modules'), 'dir');
  // An old commit's benchmarks may import peers the root install no longer has (the TensorFlow.js packages moved
  // to bench/'s own package): tsc then reports errors but still emits. Only the library (dist/src) is needed here.
  const build = spawnSync('npm', ['run', 'build'], { cwd: dir, encoding: 'utf8', maxBuffer: 1 << 26 });
  const needed = ['dist/src/index.js', 'dist/src/node/index.js'].filter((f) => !existsSync(join(dir, f)));
  if (needed.length > 0)
    throw new Error(`the baseline's build did not produce ${needed.join(', ')}:\n${build.stdout}\n${build.stderr}`);
  if (build.status !== 0)
    console.log(
      `(the baseline's build reported errors outside dist/src, ignored: ${build.stdout.split('\n').filter((l) => /error TS/.test(l)).length} errors)`,
    );
  return { dir, sha };
}

function stats(xs: number[]): { median: number; p10: number; p90: number; min: number; max: number } {
  const s = xs.slice().sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.max(0, Math.round(q * (s.length - 1))))]!;
  return { median: at(0.5), p10: at(0.1), p90: at(0.9), min: s[0]!, max: s[s.length - 1]! };
}

const fmt = (ms: number): string => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`);
const spread = (xs: number[]): string => {
  const s = stats(xs);
  return xs.length >= 10 ? `${fmt(s.p10)}–${fmt(s.p90)} (p10–p90)` : `${fmt(s.min)}–${fmt(s.max)}`;
};

console.log(`CPU: ${cpus()[0]?.model} × ${cpus().length}, Node ${process.version}`);
console.log(
  `load average at start: ${loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}`,
);
let base: { dir: string; sha: string } | null = null;
try {
  if (baselineRef !== undefined) base = prepareBaseline(baselineRef);
  const current: Record<string, Result[]> = {};
  const old: Record<string, Result[]> = {};
  for (let r = 0; r < rounds; r++) {
    for (const task of tasks) {
      // Alternate which build goes first, so a trend in the load favours neither.
      const order: ('current' | 'base')[] =
        base === null ? ['current'] : r % 2 === 0 ? ['current', 'base'] : ['base', 'current'];
      for (const who of order) {
        const res = run(who === 'current' ? repo : base!.dir, task);
        (who === 'current' ? current : old)[task] ??= [];
        (who === 'current' ? current : old)[task]!.push(res);
        const who_ = who === 'current' ? 'current ' : `base ${base!.sha}`;
        if (res.unavailable !== undefined) {
          console.log(`  round ${r + 1} ${task.padEnd(12)} ${who_}: n/a (${res.unavailable})`);
          continue;
        }
        const s = stats(res.times);
        console.log(
          `  round ${r + 1} ${task.padEnd(12)} ${who_}: median ${fmt(s.median)} over ${res.times.length}, peak RSS ${res.maxRssMB.toFixed(0)} MB`,
        );
      }
    }
  }
  const label: Record<Task, string> = {
    cache: 'cache step, reference estimator (2-thread scan)',
    'cache-recipe': 'cache step, recipe `cache`: 4 negatives + in-batch (2-thread scan)',
    inbatch: 'in-batch step',
    full: 'full-softmax step',
    eval: 'evaluation (117 791 docs, held-out queries)',
  };
  const rows: string[][] = [];
  const cpuRows: string[][] = [];
  for (const task of tasks) {
    const cur = current[task]!.flatMap((x) => x.times);
    const curCpu = current[task]!.flatMap((x) => x.cpu);
    const rss = Math.max(...current[task]!.map((x) => x.maxRssMB));
    const row = [label[task], fmt(stats(cur).median), spread(cur), `${rss.toFixed(0)} MB`];
    const cpuRow = [label[task], fmt(stats(curCpu).median)];
    const baseRuns = old[task]?.filter((x) => x.unavailable === undefined) ?? [];
    if (base !== null && baseRuns.length === 0) {
      row.push('n/a', '', '', '');
      cpuRow.push('n/a', '');
    } else if (base !== null) {
      const b = old[task]!.flatMap((x) => x.times);
      const bCpu = old[task]!.flatMap((x) => x.cpu);
      const brss = Math.max(...old[task]!.map((x) => x.maxRssMB));
      row.push(
        fmt(stats(b).median),
        spread(b),
        `${brss.toFixed(0)} MB`,
        `${(stats(b).median / stats(cur).median).toFixed(2)}×`,
      );
      cpuRow.push(fmt(stats(bCpu).median), `${(stats(bCpu).median / stats(curCpu).median).toFixed(2)}×`);
    }
    rows.push(row);
    cpuRows.push(cpuRow);
  }
  console.log(
    `\nWordNet, demo configuration; medians over ${rounds} round(s) of fresh processes; ${
      current['cache']?.[0]?.twoThreads.scan ? 'cache scan on 2 threads; ' : ''
    }${Object.values(current)[0]?.[0]?.twoThreads.pool ? 'full softmax and evaluation on 2 threads (createTrainingPool)' : 'no training pool'}\n`,
  );
  const headers = ['', 'current', 'spread', 'peak RSS'];
  if (base !== null) headers.push(`base ${base.sha}`, 'spread', 'peak RSS', 'speed-up');
  printTable(headers, rows);
  console.log(
    '\nCPU time per call (all threads of the child; a busy machine inflates it far less than wall time; with two threads it counts both):\n',
  );
  printTable(['', 'current CPU', ...(base !== null ? [`base ${base.sha} CPU`, 'ratio'] : [])], cpuRows);
  if (current['inbatch']) {
    const i = stats(current['inbatch'].flatMap((x) => x.times)).median;
    for (const t of ['cache', 'cache-recipe'] as const)
      if (current[t]) {
        const c = stats(current[t].flatMap((x) => x.times)).median;
        console.log(`${t === 'cache' ? '\n' : ''}${label[t]} / in-batch step (current): ${(c / i).toFixed(2)}`);
        // What the ratio would be with a scan that cost nothing: the step minus its own scan, call by call.
        const rest = current[t].flatMap((x) => x.times.map((ms, k) => ms - (x.scanTimes?.[k] ?? NaN)));
        const scanOnly = current[t].flatMap((x) => x.scanTimes ?? []);
        if (scanOnly.length > 0)
          console.log(
            `  of which the cache scan ${fmt(stats(scanOnly).median)}; the step without it ${fmt(stats(rest).median)} = ${(stats(rest).median / i).toFixed(2)} × in-batch`,
          );
      }
  }
  console.log(
    `load average at end: ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );
} finally {
  if (base !== null) {
    spawnSync('git', ['worktree', 'remove', '--force', base.dir], { cwd: repo });
    rmSync(dirname(base.dir), { recursive: true, force: true });
  }
}
