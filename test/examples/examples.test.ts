/**
 * The examples run and show what they claim: `npm run example`
 * (examples/quickstart.ts) prints falling losses and a held-out recall far
 * above chance, with the meaning of each column; examples/own-data.ts goes
 * from the shipped file to search results; the shipped data set is exactly
 * what its committed generator makes from WordNet.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, ensureBuilt } from '../util/build.js';

const tmp = mkdtempSync(join(tmpdir(), 'negcache-examples-'));
beforeAll(
  () =>
    ensureBuilt('dist/examples/quickstart.js', 'dist/examples/own-data.js', 'dist/examples/data/make-wordnet-pairs.js'),
  300_000,
);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function node(script: string, args: string[]): string {
  const r = spawnSync(process.execPath, [join(ROOT, script), ...args], { encoding: 'utf8', timeout: 110_000 });
  if (r.error) throw r.error;
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return r.stdout;
}

describe('examples', () => {
  it('quickstart: the losses fall, held-out recall@1 rises far above chance, the columns are explained', () => {
    const out = node('dist/examples/quickstart.js', ['150']);
    expect(out).toContain('d/dx sum(x²) = [ [ 2, 4 ], [ 6, 8 ] ]');
    expect(out).toMatch(/training loss +\(1 - p\+\) \* \(s- - s\+\)/);
    expect(out).toMatch(/It is not a loss value: it is negative/);
    expect(out).toMatch(/interpretable loss -log p\+/);
    const rows = [...out.matchAll(/^ +(\d+) +(-?\d+\.\d+) +(\d+\.\d+) +(\d\.\d{3})$/gm)].map((m) => ({
      step: Number(m[1]),
      training: Number(m[2]),
      interpretable: Number(m[3]),
      recall: Number(m[4]),
    }));
    expect(rows.map((r) => r.step)).toEqual([50, 100, 150]);
    const first = /^ +0 +- +- +(\d\.\d{3})$/m.exec(out);
    expect(Number(first![1])).toBeLessThan(0.01); // at step 0: about chance (0.001)
    expect(rows[2]!.interpretable).toBeLessThan(rows[0]!.interpretable / 2);
    expect(rows[2]!.training).toBeLessThan(rows[0]!.training);
    expect(rows[2]!.recall).toBeGreaterThan(0.2); // 200× chance
  });

  it('own-data: from the shipped file to a model, an index and search results', () => {
    const out = node('dist/examples/own-data.js', [join(ROOT, 'examples/data/wordnet-pairs.jsonl'), '100']);
    expect(out).toMatch(
      /: 1800 documents \(300 without a query\), 3437 queries \(\d+ train \/ 181 held out\), 0 bad rows\n/,
    );
    const evals = [...out.matchAll(/step +(\d+): held-out recall@10 (\d+\.\d) %/g)].map((m) => [
      Number(m[1]),
      Number(m[2]),
    ]);
    expect(evals.map((e) => e[0])).toEqual([0, 100]);
    expect(evals[1]![1]).toBeGreaterThan(5); // chance: 0.56 %
    expect(out).toMatch(/model and index written to /);
    expect([...out.matchAll(/^query: /gm)]).toHaveLength(3);
    expect([...out.matchAll(/^  \d\. \S+ +-?\d\.\d{4}  \S/gm)]).toHaveLength(15);
  });

  it('the shipped data set is what examples/data/make-wordnet-pairs.ts makes from WordNet 3.1', () => {
    const out = node('dist/examples/data/make-wordnet-pairs.js', [tmp]);
    expect(out).toMatch(/^3737 rows \(1500 synsets with queries, 300 without\) written to /);
    for (const f of ['wordnet-pairs.jsonl', 'LICENSE-WordNet.txt'])
      expect(readFileSync(join(tmp, f), 'utf8'), f).toBe(readFileSync(join(ROOT, 'examples/data', f), 'utf8'));
    const data = readFileSync(join(ROOT, 'examples/data/wordnet-pairs.jsonl'));
    expect(data.length).toBeLessThan(1 << 20);
    expect(readFileSync(join(ROOT, 'examples/data/LICENSE-WordNet.txt'), 'utf8')).toMatch(
      /^This software and database is being provided to you, the LICENSEE, by\nPrinceton University/,
    );
  });
});
