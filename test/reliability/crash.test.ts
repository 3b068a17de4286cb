/**
 * Crash safety: a training process that checkpoints every step (or every
 * second step) is killed with SIGKILL at random, seeded moments, then
 * restarted from whatever is on disk, again and again (a crash loop). After
 * every kill:
 *   - the newest checkpoint file loads with the strict decoder and its CRC
 *     (a `.tmp` file of the killed writer may be left: the atomic writer's
 *     contract; but once a restarted process is past its start-up, the
 *     `.tmp` files of every earlier, dead writer are gone, so they never pile up);
 *   - it is never older than the one a previous trial found (nothing lost);
 *   - its tensors are bit-identical to an uninterrupted in-process run at the
 *     same step, and so are the per-step metrics recorded in it;
 *   - resuming it in-process for a few steps gives exactly the metrics the
 *     uninterrupted run has at those steps.
 * Two kinds of child: a fixture (test/reliability/fixtures/*.mjs) calling the
 * built library's `train` with saveSafetensorsSync, on a tiny corpus, for
 * every method; and the CLI (`negcache train ... --checkpoint-every 1`,
 * resumed with `--resume DIR`), whose 25 MB checkpoints make kills land in
 * the middle of writes.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Rng,
  Trainer,
  recipeConfig,
  syntheticCorpus,
  train,
  type Corpus,
  type Tensor,
  type TrainConfig,
} from '../../src/index.js';
import { loadSafetensorsSync } from '../../src/node/atomicFile.js';
import { runs } from '../util/props.js';
import { ROOT, ensureBuilt } from './build.js';
import { BASE, metricsOf, stateDiff } from './training.js';

const FIXTURE = join(ROOT, 'test/reliability/fixtures/train-and-checkpoint.mjs');
const CLI = join(ROOT, 'dist/src/cli/main.js');
const SEED = Number(process.env.NEGCACHE_PROPERTY_SEED ?? 20211206);
const CHECKPOINT = 'checkpoint.safetensors';

const work = mkdtempSync(join(tmpdir(), 'negcache-crash-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

beforeAll(() => {
  ensureBuilt(['dist/src/train/run.js', 'dist/src/node/atomicFile.js', 'dist/src/cli/main.js']);
}, 300_000);

// ------------------------------------------------------------------------------------------- the reference run

/**
 * An uninterrupted run, stepped lazily with the Trainer (what `train` does
 * between checkpoints). Resumed runs claim metrics for steps the reference
 * may not have reached yet; `settle` checks every claim once it has.
 */
class Reference {
  private readonly trainer: Trainer;
  private readonly metrics: string[] = [];
  private readonly states = new Map<number, Record<string, Tensor>>();
  private readonly claims = new Map<number, string[]>();
  constructor(
    readonly corpus: Corpus,
    readonly config: TrainConfig,
    private readonly keepStates: boolean,
  ) {
    this.trainer = new Trainer(corpus, config);
    if (keepStates) this.states.set(0, this.trainer.getState());
  }

  get at(): number {
    return this.trainer.stepCount;
  }

  advanceTo(step: number): void {
    while (this.trainer.stepCount < step) {
      const r = this.trainer.step();
      this.metrics.push(metricsOf([{ step: this.trainer.stepCount, ...r }])[0]!);
      if (this.keepStates) this.states.set(this.trainer.stepCount, this.trainer.getState());
    }
  }

  /** The state after `step` steps (kept, or the trainer's own when it is exactly there). */
  stateAt(step: number): Record<string, Tensor> {
    this.advanceTo(step);
    const kept = this.states.get(step);
    if (kept) return kept;
    if (this.trainer.stepCount !== step)
      throw new Error(`internal: the reference is at step ${this.trainer.stepCount}, asked for ${step}`);
    return this.trainer.getState();
  }

  metricsUpTo(step: number): string[] {
    this.advanceTo(step);
    return this.metrics.slice(0, step);
  }

  claim(lines: readonly string[], source: string): void {
    for (const line of lines) {
      const step = Number(line.slice(0, line.indexOf(':')));
      const list = this.claims.get(step) ?? [];
      list.push(`${line}   <- ${source}`);
      this.claims.set(step, list);
    }
  }

  /** Advances past every claimed step and checks each claim; returns how many were checked. */
  settle(): number {
    let n = 0;
    for (const [step, list] of [...this.claims.entries()].sort((a, b) => a[0] - b[0])) {
      this.advanceTo(step);
      for (const c of list) {
        expect(
          c.slice(0, c.indexOf('   <- ')),
          `a resumed run's metrics at step ${step} (${c.slice(c.indexOf('<- ') + 3)})`,
        ).toBe(this.metrics[step - 1]);
        n++;
      }
    }
    this.claims.clear();
    return n;
  }
}

// ------------------------------------------------------------------------------------------- processes

interface Outcome {
  /** The process was still running when it was killed. */
  killed: boolean;
  pid: number;
  exitCode: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Starts `node args`, and kills it with SIGKILL `delayMs` after it prints
 * `ready` (or after it starts, with `fromSpawn`). Only this child is killed.
 */
function runAndKill(args: readonly string[], delayMs: number, fromSpawn: boolean, ready = 'ready'): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '',
      stderr = '';
    let timer: NodeJS.Timeout | null = null;
    let killed = false;
    const kill = (): void => {
      if (child.exitCode === null && child.signalCode === null) {
        killed = true;
        child.kill('SIGKILL');
      }
    };
    const arm = (): void => {
      if (timer === null) timer = setTimeout(kill, delayMs);
    };
    const guard = setTimeout(kill, 60_000); // never hang the suite
    child.stdout.on('data', (b: Buffer) => {
      stdout += b.toString();
      if (!fromSpawn && stdout.includes(ready)) arm();
    });
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    if (fromSpawn) arm();
    child.on('error', reject);
    child.on('exit', (code) => {
      if (timer) clearTimeout(timer);
      clearTimeout(guard);
      resolve({ killed, pid: child.pid!, exitCode: code, stdout, stderr });
    });
  });
}

// ------------------------------------------------------------------------------------------- one trial

interface Chain {
  dir: string;
  /** Step of the newest checkpoint a trial found in this chain (0: none yet). */
  step: number;
}

interface Tally {
  trials: number;
  found: number;
  none: number;
  killedMidRun: number;
  completed: number;
  /** Distinct temporary files left behind by killed writers (allowed; the target stays complete). */
  leftoverTmp: Set<string>;
  /** Those in the folder after the last trial. */
  present: Set<string>;
  /** How many a later start removed (all of them, once a start gets past its clean-up). */
  removedTmp: number;
  /** The most temporary files in the folder at once. */
  maxTmpAtOnce: number;
  resumedSteps: number;
}

const newTally = (): Tally => ({
  trials: 0,
  found: 0,
  none: 0,
  killedMidRun: 0,
  completed: 0,
  leftoverTmp: new Set(),
  present: new Set(),
  removedTmp: 0,
  maxTmpAtOnce: 0,
  resumedSteps: 0,
});

/**
 * The `.tmp` files in the folder after a trial. If the child got past its
 * start-up clean-up (`cleaned`), every temporary file of an earlier (dead)
 * writer must be gone: only the child's own may remain.
 */
function checkTempFiles(dir: string, child: Outcome, cleaned: boolean, tally: Tally, label: string): void {
  const tmps = readdirSync(dir)
    .filter((f) => f.endsWith('.tmp'))
    .map((f) => join(dir, f));
  tally.maxTmpAtOnce = Math.max(tally.maxTmpAtOnce, tmps.length);
  for (const t of tally.present) if (t.startsWith(dir) && !tmps.includes(t)) tally.removedTmp++;
  for (const t of [...tally.present]) if (t.startsWith(dir)) tally.present.delete(t);
  if (cleaned)
    for (const t of tmps)
      expect(t, `${label}: a temporary file of an earlier, dead writer survived the restart`).toMatch(
        new RegExp(`/\\.checkpoint\\.safetensors\\.${child.pid}\\.\\d+\\.tmp$`),
      );
  for (const t of tmps) {
    tally.leftoverTmp.add(t);
    tally.present.add(t);
  }
}

/** Inspects the folder after a kill; returns the step of the checkpoint found (or the previous step if none). */
function verifyAfterKill(
  chain: Chain,
  ref: Reference,
  label: string,
  tally: Tally,
  resumeSteps: number,
  lastStep: number,
): number {
  const files = readdirSync(chain.dir);
  if (!files.includes(CHECKPOINT)) {
    expect(chain.step, `${label}: the checkpoint of step ${chain.step} disappeared`).toBe(0);
    tally.none++;
    return 0;
  }
  // Strict decode, CRC required: a torn or partial file throws here and fails the test.
  const { tensors, metadata, checksum } = loadSafetensorsSync(join(chain.dir, CHECKPOINT), { requireChecksum: true });
  expect(checksum).toBe('verified');
  tally.found++;
  const step = tensors['train.step']!.item() as number;
  expect(step, `${label}: the checkpoint went back from step ${chain.step} to ${step}`).toBeGreaterThanOrEqual(
    chain.step,
  );
  // The file is the uninterrupted run's state at that step, bit for bit, with its metrics history.
  expect(
    stateDiff(tensors, ref.stateAt(step)),
    `${label}: tensors differing from the uninterrupted run at step ${step}`,
  ).toEqual([]);
  const revive = (_k: string, v: unknown): unknown => (v === 'NaN' ? NaN : v === 'Infinity' ? Infinity : v);
  expect(
    metricsOf(JSON.parse(metadata['negcache.history']!, revive)),
    `${label}: the history in the checkpoint`,
  ).toEqual(ref.metricsUpTo(step));
  const saved = JSON.parse(metadata['negcache.config']!, revive) as TrainConfig;
  expect({ ...saved, steps: 0 }).toEqual({ ...ref.config, steps: 0 });
  // Resume in-process for a few steps: the metrics are claimed against the reference.
  if (step < lastStep) {
    const to = Math.min(step + resumeSteps, lastStep);
    const r = train(ref.corpus, { ...saved, steps: to }, { resume: { tensors, metadata } });
    expect(r.history.length).toBe(to);
    ref.claim(metricsOf(r.history.slice(step)), `${label}, resumed from step ${step}`);
    tally.resumedSteps += to - step;
  }
  return step;
}

function report(kind: string, t: Tally, claims: number, extra = ''): void {
  console.log(
    `[reliability crash] ${kind} (kill-delay seed ${SEED}): ${t.trials} SIGKILL trials; ${t.found} found a checkpoint (loaded strictly with CRC, bit-identical to the ` +
      `uninterrupted run), ${t.none} found none yet; ${t.killedMidRun} killed while running, ${t.completed} had finished; ` +
      `${t.leftoverTmp.size} .tmp files left by killed writers, ${t.removedTmp} of them removed by the next start (at most ${t.maxTmpAtOnce} in a folder at once); ` +
      `${claims} resumed-step metrics checked against the uninterrupted run${extra}`,
  );
}

// ------------------------------------------------------------------------------------------- fixture children

describe('crash safety: SIGKILL at random moments, restart from disk, repeat', () => {
  it('the fixture (train + saveSafetensorsSync from dist), every method, checkpointEvery 1 or 2', async () => {
    const corpusOptions = { numDocs: 120, vocab: 180, seed: 3, featureBuckets: 512 };
    const corpus = syntheticCorpus(corpusOptions);
    const LAST = 40;
    const configs: [string, TrainConfig, number][] = [
      ['cache', { ...BASE, method: 'cache', steps: LAST }, 1],
      [
        'cache gumbel topK',
        { ...BASE, method: 'cache', sampler: 'gumbel', topK: 4, clipNorm: 0.5, seed: 5, steps: LAST },
        2,
      ],
      ['inbatch', { ...BASE, method: 'inbatch', seed: 1, steps: LAST }, 1],
      ['full', { ...BASE, method: 'full', seed: 2, steps: LAST }, 2],
    ];
    const refs = configs.map(([, c]) => new Reference(corpus, c, true));
    const rng = new Rng(SEED);
    const tally = newTally();
    const trials = runs(32);
    let chainIndex = 0;
    let chain: Chain | null = null;
    for (let trial = 0; trial < trials; trial++) {
      if (chain === null || chain.step >= LAST) {
        chain = { dir: mkdtempSync(join(work, 'fixture-')), step: 0 };
        chainIndex++;
      }
      const k = (chainIndex - 1) % configs.length;
      const [name, config, every] = configs[k]!;
      // Mostly: some time after the child is ready (loaded any checkpoint); sometimes: during start-up.
      const early = rng.uniform() < 0.2;
      const delay = early ? rng.uniform() * 150 : rng.uniform() * 250;
      const json = JSON.stringify(config, (_k, v) => (v === Infinity ? 'Infinity' : v));
      const out = await runAndKill(
        [FIXTURE, chain.dir, json, JSON.stringify(corpusOptions), String(every)],
        delay,
        early,
      );
      tally.trials++;
      if (out.killed) tally.killedMidRun++;
      else {
        expect(out.exitCode, `the child failed: ${out.stderr}`).toBe(0);
        tally.completed++;
      }
      const label = `trial ${trial} (${name}, every ${every}, chain ${chainIndex}, killed ${delay.toFixed(0)} ms after ${early ? 'spawn' : 'ready'})`;
      checkTempFiles(chain.dir, out, out.stdout.includes('ready'), tally, label);
      chain.step = verifyAfterKill(chain, refs[k]!, label, tally, 3, LAST);
      if (!out.killed) expect(chain.step, `${label}: finished without its last checkpoint`).toBe(LAST);
    }
    const claims = refs.reduce((n, r) => n + r.settle(), 0);
    report('fixture', tally, claims, `; ${chainIndex} crash-and-restart chains of ${LAST} steps`);
    expect(tally.found).toBeGreaterThan(0);
    expect(tally.killedMidRun).toBeGreaterThan(0);
  }, 300_000);

  // ------------------------------------------------------------------------------------------- the CLI

  it('the CLI: negcache train --checkpoint-every 1, killed and restarted with --resume', async () => {
    // What `negcache train --loss cache --data synthetic --max-docs 300 ...` builds (src/cli/main.ts).
    const corpus = syntheticCorpus({ numDocs: 300, vocab: 450, seed: 0 });
    // --loss cache is the cache recipe (its tuned estimators) with the flags below
    const config: TrainConfig = recipeConfig('cache', {
      steps: 100000,
      timeBudgetSeconds: Infinity,
      batch: 8,
      cacheSize: 64,
      evalEverySeconds: 0,
    });
    const ref = new Reference(corpus, config, false);
    const dir = mkdtempSync(join(work, 'cli-'));
    const chain: Chain = { dir, step: 0 };
    const rng = new Rng(SEED + 1);
    const tally = newTally();
    const trials = runs(8);
    const flags = [
      'train',
      '--loss',
      'cache',
      '--data',
      'synthetic',
      '--max-docs',
      '300',
      '--steps',
      '100000',
      '--batch',
      '8',
      '--cache-size',
      '64',
      '--checkpoint-every',
      '1',
      '--eval-every',
      '0',
      '--out',
      dir,
    ];
    for (let trial = 0; trial < trials; trial++) {
      // Mostly: some time after the data is loaded ("data:", printed after the start-up checks and clean-up, just
      // before training); sometimes: during start-up. Timed from the data line, not from spawn, so a slow or
      // loaded machine still kills mid-training.
      const early = rng.uniform() < 0.2;
      const delay = early ? 300 + rng.uniform() * 1500 : 100 + rng.uniform() * 1200;
      const args = [CLI, ...flags, ...(chain.step > 0 ? ['--resume', dir] : [])];
      const out = await runAndKill(args, delay, early, 'data:');
      tally.trials++;
      expect(out.killed, `the CLI exited by itself (code ${out.exitCode}): ${out.stderr}`).toBe(true);
      tally.killedMidRun++;
      const label = `CLI trial ${trial} (killed ${delay.toFixed(0)} ms after ${early ? 'spawn' : 'the data line'})`;
      // "data:" is printed after the start-up checks and clean-up.
      checkTempFiles(dir, out, out.stdout.includes('data:'), tally, label);
      chain.step = verifyAfterKill(chain, ref, label, tally, 2, Infinity);
    }
    const claims = ref.settle();
    report('CLI', tally, claims, `; reached step ${chain.step} over ${trials} restarts (25 MB checkpoints)`);
    expect(tally.found).toBeGreaterThan(0);

    // A damaged checkpoint is refused by `--resume` with a message and exit status 2, and left as it is.
    const file = join(dir, CHECKPOINT);
    const good = readFileSync(file);
    for (const [what, bytes] of [
      [
        'one byte flipped',
        (() => {
          const b = Uint8Array.from(good);
          b[Math.floor(good.length / 2)] ^= 0x10;
          return b;
        })(),
      ],
      ['truncated', good.subarray(0, good.length - 1000)],
    ] as const) {
      writeFileSync(file, bytes);
      const r = spawnSync(process.execPath, [CLI, ...flags, '--resume', dir], {
        cwd: ROOT,
        encoding: 'utf8',
        timeout: 60_000,
      });
      expect(r.status, `${what}: ${r.stderr}`).toBe(2);
      expect(r.stderr, what).toMatch(
        /^negcache train: loadSafetensorsSync: ".*checkpoint\.safetensors" is not a valid checkpoint: decodeSafetensors: /,
      );
      expect(Buffer.compare(readFileSync(file), Buffer.from(bytes)), `${what}: the file was changed`).toBe(0);
      expect(readdirSync(dir).includes('report.md'), `${what}: a run started`).toBe(false);
    }
  }, 300_000);
});
