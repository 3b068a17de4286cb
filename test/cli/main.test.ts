/**
 * The built CLI as a child process (`node dist/src/cli/main.js ...`): bad
 * usage exits with status 2 and a one-line reason on stderr, never a stack
 * trace; a tiny successful `train` writes report.md, metrics.json and the
 * SVG plots. CI builds before the tests; a missing build is made here.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../util/build.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'dist/src/cli/main.js');
const tmp = mkdtempSync(join(tmpdir(), 'negcache-cli-'));

beforeAll(() => ensureBuilt('dist/src/cli/main.js'), 300_000);

afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: tmp, encoding: 'utf8', timeout: 90_000 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function expectNoStack(s: string): void {
  expect(s).not.toMatch(/^\s{4}at /m);
  expect(s).not.toMatch(/Error: /);
}

describe('negcache CLI: bad usage exits 2 with a clear message and no stack trace', () => {
  const cases: [string, string[], RegExp][] = [
    [
      'train without --loss',
      ['train', '--steps', '3'],
      /^negcache train: train needs --loss cache\|cache-reference\|inbatch\|full\n/,
    ],
    [
      'a non-number',
      ['train', '--loss', 'inbatch', '--batch', 'abc'],
      /^negcache train: --batch needs a whole number, got "abc"\n/,
    ],
    [
      'an unknown flag',
      ['train', '--loss', 'inbatch', '--nope'],
      /^negcache train: unknown flag --nope; known flags: --loss, --steps,/,
    ],
    [
      'a bad choice',
      ['train', '--loss', 'cache', '--sampler', 'bad'],
      /^negcache train: --sampler must be one of gumbel, categorical, got "bad"\n/,
    ],
    [
      'a bad --loss',
      ['train', '--loss', 'softmax'],
      /^negcache train: --loss must be one of cache, cache-reference, inbatch, full, got "softmax"\n/,
    ],
    ['an unknown command', ['frobnicate', '--steps', '3'], /^negcache: unknown command "frobnicate"\n/],
    [
      'a value out of range',
      ['compare', '--steps', '0'],
      /^negcache compare: --steps must be an integer in \[1, 2147483647\], got 0\n/,
    ],
    ['a duplicate flag', ['demo', '--seed', '1', '--seed=2'], /^negcache demo: --seed is given twice\n/],
    [
      'bad --seeds',
      ['compare', '--seeds', '0,x', '--steps', '1'],
      /^negcache compare: --seeds needs comma-separated whole numbers in \[0, 9007199254740991\], got "0,x"\n/,
    ],
    [
      'a repeated seed',
      ['compare', '--seeds', '1,2,1', '--steps', '1'],
      /^negcache compare: --seeds has a repeated seed: "1,2,1"\n/,
    ],
    [
      '--seed with --seeds',
      ['compare', '--seed', '1', '--seeds', '1,2', '--steps', '1'],
      /^negcache compare: give --seed or --seeds, not both\n/,
    ],
    ['--seeds on train', ['train', '--loss', 'full', '--seeds', '1,2'], /^negcache train: unknown flag --seeds;/],
    ['a missing value', ['compare', '--out'], /^negcache compare: --out needs a value/],
    [
      'top-k not dividing cache-size',
      ['compare', '--cache-size', '100', '--top-k', '3'],
      /^negcache compare: --top-k 3 must divide --cache-size 100\n/,
    ],
    [
      'hex for an int',
      ['train', '--loss', 'inbatch', '--steps', '0x10'],
      /^negcache train: --steps needs a whole number, got "0x10"\n/,
    ],
    [
      'an exponent for an int',
      ['train', '--loss', 'inbatch', '--steps', '1e3'],
      /^negcache train: --steps needs a whole number written in digits \(like 1000\), got "1e3"\n/,
    ],
    ['an empty --out', ['train', '--loss', 'inbatch', '--out', ''], /^negcache train: --out needs a non-empty value/],
    [
      'an empty --resume',
      ['train', '--loss', 'inbatch', '--resume='],
      /^negcache train: --resume needs a non-empty value/,
    ],
    [
      'a learning rate the optimiser would refuse',
      ['train', '--loss', 'inbatch', '--lr', '1e7'],
      /^negcache train: --lr must be a number in \(0, 1000000\], got 1e7\n/,
    ],
    [
      'top-k not dividing the default cache size',
      ['train', '--loss', 'cache', '--top-k', '3'],
      /^negcache train: --top-k 3 must divide --cache-size 4096\n/,
    ],
    [
      'batch larger than the cache',
      ['train', '--loss', 'cache', '--batch', '64', '--cache-size', '32'],
      /^negcache train: --batch 64 is larger than --cache-size 32; the cache must hold at least one batch of new items\n/,
    ],
  ];
  for (const [name, args, msg] of cases) {
    it(`${name}: negcache ${args.join(' ')}`, () => {
      const r = cli(args);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toMatch(msg);
      expectNoStack(r.stderr);
      expectNoStack(r.stdout);
      if (name !== 'an unknown command') expect(r.stderr).toContain(`run "negcache ${args[0]} --help" for the flags`);
      else expect(r.stderr).toContain('usage: negcache <command> [flags]');
    });
  }

  it("a value the library rejects (lr 0) is refused by the flag, in the library's words, before anything is created", () => {
    const r = cli([
      'train',
      '--loss',
      'inbatch',
      '--data',
      'synthetic',
      '--max-docs',
      '50',
      '--lr',
      '0',
      '--steps',
      '2',
      '--quiet',
      '--out',
      join(tmp, 'never'),
    ]);
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toBe(
      'negcache train: --lr must be a number in (0, 1000000], got 0\nrun "negcache train --help" for the flags\n',
    );
    expectNoStack(r.stderr);
    expect(existsSync(join(tmp, 'never'))).toBe(false);
  });

  it('no command prints the usage and exits 2; --help exits 0', () => {
    const none = cli([]);
    expect(none.status).toBe(2);
    expect(none.stdout).toContain('usage: negcache <command> [flags]');
    const help = cli(['train', '--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^negcache train: /);
    expect(help.stdout).toMatch(/--loss <cache\|cache-reference\|inbatch\|full>/);
    expect(help.stdout).toMatch(/--max-docs <int>/);
  });
});

describe('negcache train: a tiny successful run', () => {
  it('writes report.md, metrics.json and the SVG plots', () => {
    const out = join(tmp, 'report');
    const r = cli([
      'train',
      '--loss',
      'inbatch',
      '--data',
      'synthetic',
      '--max-docs',
      '300',
      '--steps',
      '30',
      '--eval-every',
      '0',
      '--quiet',
      '--out',
      out,
    ]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain(`report written to ${out}/report.md`);
    const files = readdirSync(out).sort();
    expect(files).toEqual([
      'interpretable_loss.svg',
      'loss.svg',
      'metrics.json',
      'recall10_steps.svg',
      'recall10_time.svg',
      'report.md',
    ]);
    for (const f of files.filter((x) => x.endsWith('.svg'))) {
      const svg = readFileSync(join(out, f), 'utf8');
      expect(svg.startsWith('<svg') || svg.startsWith('<?xml'), f).toBe(true);
      expect(svg.trimEnd().endsWith('</svg>'), f).toBe(true);
    }
    const md = readFileSync(join(out, 'report.md'), 'utf8');
    expect(md).toMatch(/^# negcache: training with the inbatch loss/);
    expect(md).toMatch(/^\| inbatch \| 30 \| /m);
    expect(md).toContain('synthetic reverse dictionary, 300 documents');
    for (const f of files.filter((x) => x.endsWith('.svg'))) expect(md).toContain(`![${f}](${f})`);
    const metrics = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8')) as {
      meta: { command: string };
      results: {
        method: string;
        steps: number;
        history: unknown[];
        final: { count: number; recallAt10: number };
        config: Record<string, unknown>;
      }[];
    };
    expect(metrics.meta.command).toBe(
      `negcache train --loss inbatch --data synthetic --max-docs 300 --steps 30 --eval-every 0 --quiet --out ${out}`,
    );
    expect(metrics.results).toHaveLength(1);
    const [res] = metrics.results;
    expect(res!.method).toBe('inbatch');
    expect(res!.steps).toBe(30);
    expect(res!.history).toHaveLength(30);
    expect(res!.final.count).toBeGreaterThan(0);
    expect(res!.final.recallAt10).toBeGreaterThanOrEqual(0);
    expect(res!.config['timeBudgetSeconds']).toBeNull();
  });
});

describe('negcache compare --seeds: one run per seed and method, and the across-seeds table', () => {
  it('runs 2 seeds × 4 recipes and reports mean ± sd', () => {
    const out = join(tmp, 'seeds');
    const r = cli([
      'compare',
      '--data',
      'synthetic',
      '--max-docs',
      '200',
      '--steps',
      '8',
      '--batch',
      '16',
      '--cache-size',
      '64',
      '--seeds',
      '3,4',
      '--eval-every',
      '0',
      '--eval-every-steps',
      '4',
      '--quiet',
      '--out',
      out,
    ]);
    expect(r.status, r.stderr).toBe(0);
    const metrics = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8')) as {
      results: { method: string; config: { seed: number }; evals: { step: number }[] }[];
    };
    expect(metrics.results.map((x) => `${x.method}:${x.config.seed}`)).toEqual([
      'cache:3',
      'cache-reference:3',
      'inbatch:3',
      'full:3',
      'cache:4',
      'cache-reference:4',
      'inbatch:4',
      'full:4',
    ]);
    for (const x of metrics.results) expect(x.evals.map((e) => e.step)).toEqual([0, 4, 8]);
    const md = readFileSync(join(out, 'report.md'), 'utf8');
    expect(md).toContain('## Across seeds (mean ± sample standard deviation)');
    expect(md).toMatch(/^\| full \| 2 \| [\d.]+ ± [\d.]+ \| /m);
    expect(md).toContain('Seeds 3, 4: each seed draws its own subset');
  });
});
