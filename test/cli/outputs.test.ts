/**
 * Nothing lost at the edges of a CLI run (the built CLI as a child process,
 * and `main` in-process with a fault seam):
 *   - an --out that cannot be written (a file, a path under a file,
 *     /dev/null, /proc, /sys, a read-only folder, a read-only or directory
 *     report.md) is refused before any training, exit 2, one line, no stack
 *     trace; /proc never hangs;
 *   - a write that still fails at the end goes to a fallback folder named in
 *     a one-line message (exit 1), checkpoints included;
 *   - a checkpoint in --out is only replaced by the run that resumes it or
 *     with --overwrite;
 *   - a resumed run keeps every trajectory flag (only the budget flags may
 *     change) and is refused when there is nothing to train;
 *   - the temporary files of killed writers are removed on start, never a
 *     live writer's.
 * Read-only cases need a user that permissions apply to: as root the child
 * runs as uid/gid 65534 (nobody), on a world-readable copy of the built CLI
 * (the checkout itself may sit in a private folder, e.g. one from mktemp -d,
 * that nobody cannot enter).
 */
import { spawn, spawnSync, type SpawnSyncOptions } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ensureBuilt } from '../util/build.js';
import { loadSafetensorsSync, saveSafetensorsSync } from '../../src/node/atomicFile.js';
import type { AtomicWriteStep } from '../../src/node/atomicFile.js';
import { main } from '../../src/cli/main.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'dist/src/cli/main.js');
const tmp = fs.mkdtempSync(join(tmpdir(), 'negcache-outputs-'));
fs.chmodSync(tmp, 0o777); // reachable by the unprivileged child

const isRoot = process.getuid?.() === 0;
/** The CLI the unprivileged child runs: the build (with package.json, for its module type) copied into `tmp`. */
const PUBLIC_CLI = join(tmp, 'app/dist/src/cli/main.js');

beforeAll(() => {
  ensureBuilt('dist/src/cli/main.js');
  if (isRoot) {
    fs.cpSync(join(ROOT, 'dist/src'), join(tmp, 'app/dist/src'), { recursive: true });
    fs.copyFileSync(join(ROOT, 'package.json'), join(tmp, 'app/package.json'));
    for (const p of [
      join(tmp, 'app'),
      ...(fs.readdirSync(join(tmp, 'app'), { recursive: true }) as string[]).map((f) => join(tmp, 'app', f)),
    ])
      fs.chmodSync(p, fs.statSync(p).isDirectory() ? 0o755 : 0o644);
  }
}, 300_000);
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function cli(
  args: string[],
  opts: { unprivileged?: boolean } = {},
): { status: number | null; stdout: string; stderr: string } {
  const o: SpawnSyncOptions = { cwd: tmp, encoding: 'utf8', timeout: 90_000 };
  const drop = opts.unprivileged === true && isRoot;
  if (drop) Object.assign(o, { uid: 65534, gid: 65534 });
  const r = spawnSync(process.execPath, [drop ? PUBLIC_CLI : CLI, ...args], o);
  if (r.error) throw r.error; // ETIMEDOUT: the command hung
  return { status: r.status, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** A tiny training run (synthetic data, a few steps), not quiet: "data:" on stdout means training started. */
const TRAIN = ['train', '--loss', 'inbatch', '--data', 'synthetic', '--max-docs', '300', '--batch', '8', '--dim', '8'];

function expectRefused(r: { status: number | null; stdout: string; stderr: string }, message: RegExp): void {
  expect(r.status, r.stderr).toBe(2);
  expect(r.stderr).toMatch(message);
  expect(r.stderr.endsWith('run "negcache train --help" for the flags\n'), r.stderr).toBe(true);
  expect(r.stderr.split('\n')).toHaveLength(3); // the reason, the hint, the final newline
  expect(r.stderr).not.toMatch(/^\s+at /m);
  expect(r.stdout, 'training started').not.toContain('data:');
}

describe('an --out that cannot be written is refused before training (exit 2, one line)', () => {
  const base = join(tmp, 'unwritable');
  beforeAll(() => {
    fs.mkdirSync(base, { mode: 0o777 });
    fs.chmodSync(base, 0o777);
    fs.writeFileSync(join(base, 'a-file'), 'keep');
    fs.mkdirSync(join(base, 'read-only'), { mode: 0o555 });
    fs.chmodSync(join(base, 'read-only'), 0o555);
    fs.mkdirSync(join(base, 'ro-report'));
    fs.chmodSync(join(base, 'ro-report'), 0o777);
    fs.writeFileSync(join(base, 'ro-report', 'report.md'), 'old report');
    fs.chmodSync(join(base, 'ro-report', 'report.md'), 0o444);
    fs.mkdirSync(join(base, 'dir-report', 'report.md'), { recursive: true });
    fs.symlinkSync('/proc', join(base, 'to-proc'));
  });

  const cases: [string, string, RegExp, boolean][] = [
    ['an existing file', 'a-file', /^negcache train: --out .*a-file is a file, not a folder\n/, false],
    [
      'a path under a file',
      'a-file/sub',
      /^negcache train: --out .*a-file\/sub is under .*a-file, which is a file, not a folder\n/,
      false,
    ],
    ['/dev/null', '/dev/null', /^negcache train: --out \/dev\/null is under \/dev, a pseudo-file system/, false],
    [
      '/proc (this once hung at 100 % CPU)',
      '/proc/negcache',
      /^negcache train: --out \/proc\/negcache is under \/proc, a pseudo-file system/,
      false,
    ],
    [
      '/sys',
      '/sys/negcache/x',
      /^negcache train: --out \/sys\/negcache\/x is under \/sys, a pseudo-file system/,
      false,
    ],
    [
      'a symlink into /proc',
      'to-proc/negcache',
      /^negcache train: --out .*to-proc\/negcache is under \/proc, a pseudo-file system/,
      false,
    ],
    ['a read-only folder', 'read-only', /^negcache train: --out .*read-only is not writable: EACCES/, true],
    [
      'a folder under a read-only folder',
      'read-only/sub/sub',
      /^negcache train: --out .*read-only\/sub\/sub cannot be created: EACCES/,
      true,
    ],
    [
      'a folder holding a read-only report.md',
      'ro-report',
      /^negcache train: --out .*ro-report holds report\.md, which cannot be replaced: EACCES/,
      true,
    ],
    [
      'a folder holding a folder report.md',
      'dir-report',
      /^negcache train: --out .*dir-report holds report\.md, which is a folder; need a file\n/,
      false,
    ],
  ];
  for (const [what, out, message, unprivileged] of cases) {
    it(`${what}: --out ${out}`, () => {
      const path = out.startsWith('/') ? out : join(base, out);
      const before = fs.readdirSync(base).sort();
      const r = cli([...TRAIN, '--steps', '5', '--out', path], { unprivileged });
      expectRefused(r, message);
      expect(fs.readdirSync(base).sort()).toEqual(before);
      expect(fs.readFileSync(join(base, 'a-file'), 'utf8')).toBe('keep');
      expect(fs.readFileSync(join(base, 'ro-report', 'report.md'), 'utf8')).toBe('old report');
      expect(fs.readdirSync(join(base, 'read-only'))).toEqual([]);
    });
  }

  it('the same writable folder is accepted (the unprivileged child can write the reports)', () => {
    const out = join(base, 'fine', 'nested', 'deep');
    const r = cli([...TRAIN, '--steps', '3', '--quiet', '--out', out], { unprivileged: true });
    expect(r.status, r.stderr).toBe(0);
    expect(fs.readdirSync(out)).toContain('report.md');
  });
});

// ------------------------------------------------------------------------------------------------ in-process

function inProcess(argv: string[], faults?: (step: AtomicWriteStep, temp: string) => void) {
  let stdout = '',
    stderr = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => {
    stdout += String(s);
    return true;
  });
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => {
    stderr += String(s);
    return true;
  });
  try {
    const code = main(argv, faults ? { faults } : {});
    return { code, stdout, stderr };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}

describe('a write that fails at the end keeps the results in a fallback folder (exit 1, one line)', () => {
  const fallbacks: string[] = [];
  afterEach(() => {
    for (const f of fallbacks.splice(0)) fs.rmSync(f, { recursive: true, force: true });
  });
  const enospc = (): Error => Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });

  it('checkpoints and report: every file the run wrote is in the fallback, the message says where', () => {
    const out = join(tmp, 'late-failure');
    const r = inProcess(
      [...TRAIN, '--steps', '12', '--checkpoint-every', '5', '--quiet', '--out', out],
      (step, temp) => {
        if (step === 'write' && temp.startsWith(out)) throw enospc();
      },
    );
    const m = r.stderr.match(
      /^negcache train: could not write the checkpoint to (.*) \(.*ENOSPC: no space left on device, write.*\); writing it to (\S+) from now on\nnegcache train: could not write to (.*) \(.*ENOSPC.*\); the results are in (\S+)\n$/,
    );
    expect(m, r.stderr).not.toBeNull();
    fallbacks.push(m![2]!);
    expect(r.code).toBe(1);
    expect([m![1], m![3]]).toEqual([out, out]);
    expect(m![4]).toBe(m![2]);
    expect(m![2]!.startsWith(join(tmpdir(), 'negcache-train-'))).toBe(true);
    expect(r.stdout).toContain(`report written to ${m![2]}/report.md`);
    const files = fs.readdirSync(m![2]!).sort();
    expect(files).toEqual(expect.arrayContaining(['checkpoint.safetensors', 'metrics.json', 'report.md']));
    const ckpt = loadSafetensorsSync(join(m![2]!, 'checkpoint.safetensors'), { requireChecksum: true });
    expect(ckpt.tensors['train.step']!.item()).toBe(12);
    expect(JSON.parse(fs.readFileSync(join(m![2]!, 'metrics.json'), 'utf8')).results[0].steps).toBe(12);
    expect(fs.readdirSync(out)).toEqual([]); // the failed writes left no temporary files behind
  });

  it('only the report fails: the checkpoints stay in --out, the report goes to the fallback', () => {
    const out = join(tmp, 'report-failure');
    const r = inProcess(
      [...TRAIN, '--steps', '4', '--checkpoint-every', '2', '--quiet', '--out', out],
      (step, temp) => {
        if (step === 'open' && temp.startsWith(out) && temp.includes('report.md'))
          throw Object.assign(new Error('EIO: i/o error'), { code: 'EIO' });
      },
    );
    const m = r.stderr.match(
      /^negcache train: could not write to (.*) \(.*EIO: i\/o error.*\); the results are in (\S+)\n$/,
    );
    expect(m, r.stderr).not.toBeNull();
    fallbacks.push(m![2]!);
    expect(r.code).toBe(1);
    expect(fs.readdirSync(out)).toEqual(['checkpoint.safetensors']);
    expect(fs.readdirSync(m![2]!)).toContain('report.md');
  });

  it('the fallback fails too: one line naming both, exit 1, no stack trace', () => {
    const out = join(tmp, 'all-failure');
    const r = inProcess([...TRAIN, '--steps', '2', '--quiet', '--out', out], (step) => {
      if (step === 'rename') throw enospc();
    });
    expect(r.code).toBe(1);
    const m = r.stderr.match(
      /^negcache train: could not write to (.*) \(.*ENOSPC.*\) nor to a fallback folder (\S+) \(.*ENOSPC.*\)\n$/,
    );
    expect(m, r.stderr).not.toBeNull();
    fallbacks.push(m![2]!);
    expect(m![1]).toBe(out);
  });
});

// ------------------------------------------------------------------------------------------------ checkpoints

const CKPT = [...TRAIN, '--quiet'];
const stepOf = (dir: string): number =>
  loadSafetensorsSync(join(dir, 'checkpoint.safetensors'), { requireChecksum: true }).tensors[
    'train.step'
  ]!.item() as number;

describe('a checkpoint in --out is replaced only by the run that resumes it, or with --overwrite', () => {
  it('a second run without --resume or --overwrite is refused and changes nothing', () => {
    const out = join(tmp, 'keep-ckpt');
    expect(cli([...CKPT, '--steps', '20', '--checkpoint-every', '10', '--out', out]).status).toBe(0);
    const ckpt = fs.readFileSync(join(out, 'checkpoint.safetensors'));
    const report = fs.readFileSync(join(out, 'report.md'));
    expectRefused(
      cli([...TRAIN, '--steps', '3', '--checkpoint-every', '10', '--out', out]),
      /^negcache train: --out .*keep-ckpt already holds checkpoint\.safetensors; give --resume .*keep-ckpt to continue that run, or --overwrite to replace it\n/,
    );
    // Resuming another run into it is refused too.
    const other = join(tmp, 'other-run');
    expect(cli([...CKPT, '--steps', '2', '--checkpoint-every', '2', '--out', other]).status).toBe(0);
    expectRefused(
      cli([...TRAIN, '--steps', '4', '--checkpoint-every', '2', '--resume', other, '--out', out]),
      /already holds checkpoint\.safetensors/,
    );
    expect(Buffer.compare(fs.readFileSync(join(out, 'checkpoint.safetensors')), ckpt)).toBe(0);
    expect(Buffer.compare(fs.readFileSync(join(out, 'report.md')), report)).toBe(0);
    expect(stepOf(out)).toBe(20);
    // A run that writes no checkpoint leaves it alone.
    expect(cli([...CKPT, '--steps', '3', '--out', out]).status).toBe(0);
    expect(Buffer.compare(fs.readFileSync(join(out, 'checkpoint.safetensors')), ckpt)).toBe(0);
    // --resume continues it; --overwrite replaces it.
    expect(cli([...CKPT, '--steps', '25', '--checkpoint-every', '10', '--resume', out, '--out', out]).status).toBe(0);
    expect(stepOf(out)).toBe(25);
    expect(cli([...CKPT, '--steps', '3', '--checkpoint-every', '10', '--overwrite', '--out', out]).status).toBe(0);
    expect(stepOf(out)).toBe(3);
  });
});

describe('resume with the CLI: one rule, and nothing to train is said', () => {
  const out = join(tmp, 'resume-rule');
  beforeAll(() => {
    expect(cli([...CKPT, '--steps', '20', '--checkpoint-every', '10', '--out', out]).status).toBe(0);
  });
  const resume = [...TRAIN, '--checkpoint-every', '10', '--resume', out, '--out', out];

  it.each([
    [
      '--clip-norm',
      ['--clip-norm', '1'],
      /^negcache train: --clip-norm 1 differs from the checkpoint's off \(.*checkpoint\.safetensors\); a resumed run keeps every setting that changes training, only --steps, --seconds, --eval-every, --eval-every-steps, --eval-queries may change\n/,
    ],
    ['--lr', ['--lr', '0.02'], /^negcache train: --lr 0\.02 differs from the checkpoint's 0\.01 /],
    [
      '--weight-decay',
      ['--weight-decay', '0.1'],
      /^negcache train: --weight-decay 0\.1 differs from the checkpoint's 0 /,
    ],
    [
      '--mask-duplicates',
      ['--mask-duplicates', 'false'],
      /^negcache train: --mask-duplicates false differs from the checkpoint's true /,
    ],
  ])('a changed %s is refused', (_flag, extra, message) => {
    expectRefused(cli([...resume, '--steps', '30', ...extra]), message);
    expect(stepOf(out)).toBe(20);
  });

  it('--steps at or below the checkpoint: nothing to train, exit 2', () => {
    for (const steps of ['3', '20'])
      expectRefused(
        cli([...resume, '--steps', steps]),
        new RegExp(
          `^negcache train: --steps ${steps} is not above the checkpoint's step 20 \\(.*\\): nothing to train; give --steps above 20\\n`,
        ),
      );
    expect(stepOf(out)).toBe(20);
  });

  it('a checkpoint re-saved with a valid CRC but bad metadata is refused naming --resume and the field', () => {
    const bad = join(tmp, 'bad-meta');
    fs.mkdirSync(bad);
    const { tensors, metadata } = loadSafetensorsSync(join(out, 'checkpoint.safetensors'));
    for (const [key, value, message] of [
      [
        'negcache.history',
        '{"a":1}',
        /the checkpoint's metadata "negcache\.history" must be a JSON array, got an object \(a\)/,
      ],
      [
        'negcache.trainSeconds',
        'abc',
        /the checkpoint's metadata "negcache\.trainSeconds" must be a finite number >= 0, got "abc"/,
      ],
    ] as const) {
      saveSafetensorsSync(join(bad, 'checkpoint.safetensors'), tensors, { ...metadata, [key]: value });
      const r = cli([...TRAIN, '--steps', '30', '--checkpoint-every', '10', '--resume', bad, '--out', bad]);
      expectRefused(
        r,
        new RegExp(`^negcache train: --resume: .*bad-meta/checkpoint\\.safetensors: ${message.source}\n`),
      );
      expect(fs.readdirSync(bad)).toEqual(['checkpoint.safetensors']);
    }
  });

  it('a checkpoint whose checksum key is damaged is refused, not read as an unchecked file', () => {
    // A change inside the key "negcache.crc32" hides the checksum from the default reader (the format's documented
    // limit, src/io/safetensors.ts); the CLI's checkpoints always have one, so --resume requires it.
    const bad = join(tmp, 'bad-key');
    fs.mkdirSync(bad);
    const bytes = fs.readFileSync(join(out, 'checkpoint.safetensors'));
    const keyAt = bytes.indexOf('"negcache.crc32"') + 1;
    expect(keyAt).toBeGreaterThan(8);
    bytes[keyAt] ^= 0x01; // 'n' -> 'o'
    fs.writeFileSync(join(bad, 'checkpoint.safetensors'), bytes);
    expect(loadSafetensorsSync(join(bad, 'checkpoint.safetensors')).checksum).toBe('absent');
    expectRefused(
      cli([...TRAIN, '--steps', '30', '--checkpoint-every', '10', '--resume', bad, '--out', bad]),
      /^negcache train: --resume: .*bad-key\/checkpoint\.safetensors has no "negcache\.crc32" checksum, which every checkpoint of negcache train has; the file is damaged or was not written by negcache train, and is not resumed\n/,
    );
    expect(fs.readdirSync(bad)).toEqual(['checkpoint.safetensors']);
    expect(Buffer.compare(fs.readFileSync(join(bad, 'checkpoint.safetensors')), bytes)).toBe(0);
  });

  it('budget flags may change: more steps and another evaluation schedule', () => {
    const r = cli([...resume, '--steps', '26', '--eval-every-steps', '5', '--eval-queries', '20', '--quiet']);
    expect(r.status, r.stderr).toBe(0);
    expect(stepOf(out)).toBe(26);
  });
});

describe("stale temporary files of killed writers are removed on start, never a live writer's", () => {
  it("a dead pid's checkpoint temp goes, a live process's stays", () => {
    const out = join(tmp, 'stale');
    fs.mkdirSync(out);
    const dead = spawnSync(process.execPath, ['-e', ''], { stdio: 'ignore' }).pid!;
    const live = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    try {
      const deadTmp = `.checkpoint.safetensors.${dead}.1.tmp`;
      const liveTmp = `.checkpoint.safetensors.${live.pid}.1.tmp`;
      fs.writeFileSync(join(out, deadTmp), new Uint8Array(1 << 20));
      fs.writeFileSync(join(out, liveTmp), new Uint8Array(10));
      const r = cli([...TRAIN, '--steps', '3', '--checkpoint-every', '3', '--out', out]);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toContain(`removed 1 temporary file(s) left by killed runs: ${join(out, deadTmp)}`);
      const files = fs.readdirSync(out);
      expect(files).not.toContain(deadTmp);
      expect(files).toContain(liveTmp);
      expect(files).toContain('checkpoint.safetensors');
    } finally {
      live.kill('SIGKILL');
    }
  });
});
