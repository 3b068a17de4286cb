/**
 * The `negcache` executable (src/cli/bin.ts): a launcher that runs main.js in
 * a child Node with --max-semi-space-size=64. It must be transparent: the
 * same output and exit status as main.js, the flag on the child (unless the
 * user gave one), and signals passed on so that no child outlives it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, ensureBuilt } from '../util/build.js';

const BIN = join(ROOT, 'dist/src/cli/bin.js');
const MAIN = join(ROOT, 'dist/src/cli/main.js');
const tmp = mkdtempSync(join(tmpdir(), 'negcache-bin-'));

beforeAll(() => ensureBuilt('dist/src/cli/bin.js', 'dist/src/cli/main.js'), 300_000);
afterAll(() => {
  // A failed test must not leave a ten-million-step training running (the tests below assert there is none).
  for (const pid of pidsWith(tmp))
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  rmSync(tmp, { recursive: true, force: true });
});

/** Pids and command lines (argv) of the processes whose command line contains `marker`, from /proc. */
function processTable(marker: string): { pid: number; argv: string[] }[] {
  const out: { pid: number; argv: string[] }[] = [];
  if (process.platform !== 'linux') return out;
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
      if (argv.some((a) => a.includes(marker))) out.push({ pid: Number(pid), argv });
    } catch {
      // the process ended meanwhile
    }
  }
  return out;
}
const processesWith = (marker: string): string[][] => processTable(marker).map((p) => p.argv);
const pidsWith = (marker: string): number[] => processTable(marker).map((p) => p.pid);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** No process mentioning `out` is left, waiting up to 5 s for the signalled ones to exit. */
async function expectNoneLeft(out: string, what?: string): Promise<void> {
  for (let i = 0; i < 100 && processesWith(out).length > 0; i++) await sleep(50);
  expect(processesWith(out), what).toEqual([]);
}

/** The launcher running a training that does not end by itself (synthetic data, ten million steps) into `out`. */
function startTraining(out: string, env: Record<string, string> = {}): ChildProcess {
  return spawn(
    process.execPath,
    [BIN, 'train', '--loss', 'inbatch', '--data', 'synthetic', '--steps', '10000000', '--quiet', '--out', out],
    { stdio: 'ignore', env: { ...process.env, ...env } },
  );
}

/** The command line of the main.js child whose arguments mention `marker`, waiting up to 10 s for it to start. */
async function mainChild(marker: string): Promise<string[] | undefined> {
  for (let i = 0; i < 200; i++) {
    const child = processesWith(marker).find((argv) => argv.includes(MAIN));
    if (child !== undefined) return child;
    await sleep(50);
  }
  return undefined;
}

describe('the negcache launcher', () => {
  it('prints what main.js prints and exits with its status (help: 0; a bad flag: 2)', () => {
    for (const args of [
      ['train', '--help'],
      ['train', '--loss', 'cache', '--lr', '0'],
    ]) {
      const viaBin = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000 });
      const direct = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 60_000 });
      expect(viaBin.status).toBe(direct.status);
      expect(viaBin.stdout).toBe(direct.stdout);
      expect(viaBin.stderr).toBe(direct.stderr);
    }
    expect(spawnSync(process.execPath, [BIN, 'train', '--help'], { encoding: 'utf8' }).status).toBe(0);
    expect(
      spawnSync(process.execPath, [BIN, 'train', '--loss', 'cache', '--lr', '0'], { encoding: 'utf8' }).status,
    ).toBe(2);
  }, 120_000);

  it.runIf(process.platform === 'linux')(
    'runs main.js with --max-semi-space-size=64 and passes SIGTERM on (no child outlives it)',
    async () => {
      const out = join(tmp, `run-${process.pid}`);
      const launcher = startTraining(out);
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
        launcher.on('exit', (code, signal) => res({ code, signal })),
      );
      const child = await mainChild(out);
      expect(child).toBeDefined();
      expect(child).toContain('--max-semi-space-size=64');
      launcher.kill('SIGTERM');
      expect(await exited).toEqual({ code: null, signal: 'SIGTERM' });
      await expectNoneLeft(out);
    },
    60_000,
  );

  it.runIf(process.platform === 'linux')(
    'adds no second flag when the user gave one in NODE_OPTIONS',
    async () => {
      const out = join(tmp, `run2-${process.pid}`);
      const launcher = startTraining(out, { NODE_OPTIONS: '--max-semi-space-size=32' });
      const exited = new Promise<void>((res) => launcher.on('exit', () => res()));
      const child = await mainChild(out);
      expect(child).toBeDefined();
      expect(child!.filter((a) => a.startsWith('--max-semi-space-size'))).toEqual([]);
      launcher.kill('SIGTERM');
      await exited;
      await expectNoneLeft(out);
    },
    60_000,
  );

  it.runIf(process.platform === 'linux')(
    'a SIGTERM the moment the child appears still reaches it (the handlers are installed before the spawn)',
    async () => {
      // The launcher used to install its handlers just after spawning: a signal in between killed the launcher
      // alone, and the child trained on (16 of 20 launchers signalled this way left one; one leaked from a CI run).
      for (let round = 0; round < 5; round++) {
        const out = join(tmp, `race-${round}-${process.pid}`);
        const launcher = startTraining(out);
        const exited = new Promise<void>((res) => launcher.on('exit', () => res()));
        const until = Date.now() + 10_000;
        while (!processesWith(out).some((argv) => argv.includes(MAIN)) && Date.now() < until); // no sleep: signal at once
        launcher.kill('SIGTERM');
        await exited;
        await expectNoneLeft(out, `round ${round}`);
      }
    },
    60_000,
  );
});
