/**
 * Your own data through the built CLI (child processes): train on the
 * shipped data set from its file → export (from the checkpoint, the same
 * bytes as train --export) → encode → search, whose output equals the
 * library's ranking and finds training queries' documents; bad input exits
 * 2 with a message naming the problem (file, line), never a stack trace.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../util/build.js';
import { loadModel } from '../../src/model/encoder.js';
import { decodeIndex } from '../../src/search/searchIndex.js';
import { loadCorpusFileSync } from '../../src/node/dataFile.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'dist/src/cli/main.js');
const DATA = join(ROOT, 'examples/data/wordnet-pairs.jsonl');
const tmp = mkdtempSync(join(tmpdir(), 'negcache-cli-model-'));

beforeAll(() => ensureBuilt('dist/src/cli/main.js', 'dist/src/cli/model.js'), 300_000);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: tmp, encoding: 'utf8', timeout: 110_000 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function expectNoStack(s: string): void {
  expect(s).not.toMatch(/^\s{4}at /m);
  expect(s).not.toMatch(/Error: /);
}

describe('train → export → encode → search on the shipped data set', () => {
  const run = join(tmp, 'run');
  const model = join(run, 'model.safetensors');

  it('runs end to end and agrees with the library', () => {
    const train = cli([
      'train',
      '--loss',
      'cache',
      '--data',
      DATA,
      '--steps',
      '300',
      '--batch',
      '64',
      '--cache-size',
      '512',
      '--lr',
      '0.02',
      '--dim',
      '32',
      '--buckets',
      '16384',
      '--checkpoint-every',
      '300',
      '--export',
      model,
      '--out',
      run,
      '--quiet',
    ]);
    expect(train.status, train.stderr).toBe(0);
    const metrics = JSON.parse(readFileSync(join(run, 'metrics.json'), 'utf8')) as {
      meta: { corpus: string };
      results: { final: { recallAt10: number; count: number } }[];
    };
    expect(metrics.meta.corpus).toMatch(
      /^wordnet-pairs\.jsonl: 1800 documents \(300 without a query\), 3437 queries \(\d+ train \/ \d+ held out\), 3737 rows; features: 16384 buckets; query: word n-grams 1,2, char n-grams 3,4; document: word n-grams 1,2, char n-grams 3,4$/,
    );
    // Held-out recall well above chance (10 / 1800 = 0.56 %).
    expect(metrics.results[0]!.final.recallAt10).toBeGreaterThan(0.05);

    // export from the checkpoint = the file train --export wrote.
    const exported = join(tmp, 'exported.safetensors');
    const ex = cli(['export', '--checkpoint', run, '--out', exported]);
    expect(ex.status, ex.stderr).toBe(0);
    expect(ex.stdout).toMatch(
      /^model written to .*exported\.safetensors \(\d+\.\d MB; dim 32, 16384 buckets, step 300\)\n$/,
    );
    expect(readFileSync(exported).equals(readFileSync(model))).toBe(true);

    const index = join(tmp, 'out/index.safetensors');
    const enc = cli(['encode', '--model', model, '--input', DATA, '--out', index]);
    expect(enc.status, enc.stderr).toBe(0);
    expect(enc.stdout).toMatch(/^encoded 1800 documents of .* in \d+\.\d s; index written to .*index\.safetensors/);

    // The library's view of the same files.
    const m = loadModel(new Uint8Array(readFileSync(model)));
    const idx = decodeIndex(new Uint8Array(readFileSync(index)));
    const { corpus } = loadCorpusFileSync(DATA, { features: m.features });
    expect(idx.size).toBe(1800);
    expect(Array.from({ length: 1800 }, (_, r) => idx.id(r))).toEqual(corpus.docs.map((d) => d.id));
    expect(idx.text(0)).toBe(corpus.docs[0]!.text);

    // Training definitions: the CLI's JSON output equals the library's search, and finds their documents.
    const trainQ = Array.from(corpus.trainQueries)
      .filter((q) => corpus.queryTexts![q]!.length > 20)
      .slice(0, 20);
    const texts = trainQ.map((q) => corpus.queryTexts![q]!);
    const s = cli(['search', '--model', model, '--index', index, '--json', '-k', '10', ...texts]);
    expect(s.status, s.stderr).toBe(0);
    const lines = s.stdout
      .trim()
      .split('\n')
      .map(
        (l) => JSON.parse(l) as { query: string; results: { rank: number; id: string; score: number; text: string }[] },
      );
    const lib = idx.search(m.encodeQueries(texts), 10);
    expect(lines.map((l) => l.query)).toEqual(texts);
    for (let i = 0; i < texts.length; i++) {
      expect(lines[i]!.results.map((h) => h.id)).toEqual(lib[i]!.ids);
      expect(lines[i]!.results.map((h) => h.score)).toEqual(Array.from(lib[i]!.scores));
      expect(lines[i]!.results.map((h) => h.rank)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      expect(lines[i]!.results[0]!.text).toBe(idx.text(lib[i]!.rows[0]!));
    }
    const found = trainQ.filter((q, i) => lib[i]!.ids.includes(corpus.docs[corpus.queryDoc[q]!]!.id)).length;
    expect(found).toBeGreaterThanOrEqual(14);

    // A training checkpoint given as a model is named as such.
    const wrong = cli([
      'encode',
      '--model',
      join(run, 'checkpoint.safetensors'),
      '--input',
      DATA,
      '--out',
      join(tmp, 'x.safetensors'),
    ]);
    expect(wrong.status).toBe(2);
    expect(wrong.stderr).toMatch(
      /this is a training checkpoint, not a model file; export one with `negcache export --checkpoint DIR --out model\.safetensors`/,
    );

    // The table: rank, id, score, text.
    const table = cli(['search', '--model', model, '--index', index, texts[0]!, '-k', '3']);
    expect(table.status, table.stderr).toBe(0);
    const rows = table.stdout.split('\n');
    expect(rows[0]).toBe(`query: ${texts[0]}`);
    for (let r = 1; r <= 3; r++) {
      const id = lib[0]!.ids[r - 1]!;
      expect(rows[r]).toMatch(
        new RegExp(`^ {3}${r}  ${id} +${lib[0]!.scores[r - 1]!.toFixed(4).replace('.', '\\.')}  \\S`),
      );
    }
  });

  it('refuses an index encoded with another model', () => {
    const tiny = (seed: string, file: string) =>
      cli([
        'train',
        '--loss',
        'inbatch',
        '--data',
        DATA,
        '--steps',
        '2',
        '--batch',
        '8',
        '--dim',
        '8',
        '--buckets',
        '1024',
        '--seed',
        seed,
        '--export',
        file,
        '--out',
        join(tmp, `run-${seed}`),
        '--quiet',
      ]);
    const a = join(tmp, 'a.safetensors'),
      b = join(tmp, 'b.safetensors'),
      index = join(tmp, 'a-index.safetensors');
    expect(tiny('1', a).status).toBe(0);
    expect(tiny('2', b).status).toBe(0);
    expect(cli(['encode', '--model', a, '--input', DATA, '--out', index, '--no-texts']).status).toBe(0);
    const ok = cli(['search', '--model', a, '--index', index, 'anything', '-k', '2']);
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/^query: anything\n {3}1  \S+ +-?\d\.\d{4}\n {3}2  \S+ +-?\d\.\d{4}\n$/);
    const r = cli(['search', '--model', b, '--index', index, 'anything']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(
      /^negcache search: the index .*a-index\.safetensors was encoded with another model \(CRC-32 [0-9a-f]{8}; .*b\.safetensors is [0-9a-f]{8}\); encode it again with this model\n/,
    );
  });
});

describe('bad input exits 2 with a message', () => {
  const bad = join(tmp, 'bad.jsonl');
  writeFileSync(
    bad,
    '{"query": "fine", "document": "ok"}\n{"query": "no document"}\n{"query": "x", "document": "y"}\n',
  );
  const cases: [string, string[], RegExp][] = [
    [
      'a missing data file',
      ['train', '--loss', 'cache', '--data', 'nope.jsonl', '--steps', '1'],
      /^negcache train: loadCorpusFile: cannot read nope\.jsonl: ENOENT\n/,
    ],
    [
      'an unknown extension',
      ['train', '--loss', 'cache', '--data', 'pairs.txt', '--steps', '1'],
      /^negcache train: loadCorpusFile: cannot tell the format of pairs\.txt from its extension/,
    ],
    [
      'a malformed row',
      ['train', '--loss', 'cache', '--data', bad, '--steps', '1'],
      /^negcache train: corpusFromRecords: .*bad\.jsonl line 2: missing "document" \(and no "docId" naming one\)\n/,
    ],
    [
      'a file-only flag without a file',
      ['train', '--loss', 'cache', '--query-field', 'q'],
      /^negcache train: --query-field applies to --data <file> only \(data is wordnet\)\n/,
    ],
    [
      '--max-docs with a file',
      ['compare', '--data', bad, '--max-docs', '100'],
      /^negcache compare: --max-docs applies to --data wordnet and synthetic only/,
    ],
    [
      'bad n-grams',
      ['train', '--loss', 'cache', '--data', bad, '--doc-char-ngrams', '4,3'],
      /^negcache train: --doc-char-ngrams must be ascending without repeats, got "4,3"\n/,
    ],
    ['export without --out', ['export', '--checkpoint', 'x'], /^negcache export: export needs --out\n/],
    [
      'export of a missing checkpoint',
      ['export', '--checkpoint', 'nowhere', '--out', 'm.safetensors'],
      /^negcache export: --checkpoint: no checkpoint at nowhere\n/,
    ],
    [
      'encode of a missing model',
      ['encode', '--model', 'm.safetensors', '--input', bad, '--out', 'i.safetensors'],
      /^negcache encode: --model: no file at m\.safetensors\n/,
    ],
    [
      'search without a query',
      ['search', '--model', 'm', '--index', 'i'],
      /^negcache search: search needs at least one query/,
    ],
    [
      'search with a bad -k',
      ['search', '--model', 'm', '--index', 'i', '-k', 'x', 'q'],
      /^negcache search: --k needs a whole number, got "x"\n/,
    ],
    ['a stray argument to encode', ['encode', 'docs.jsonl'], /^negcache encode: unexpected argument "docs\.jsonl"/],
  ];
  for (const [name, args, msg] of cases) {
    it(`${name}: negcache ${args.join(' ')}`, () => {
      const r = cli(args);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toMatch(msg);
      expectNoStack(r.stderr);
    });
  }

  it('--skip-bad-rows counts and lists them, then trains', () => {
    const r = cli([
      'train',
      '--loss',
      'inbatch',
      '--data',
      bad,
      '--skip-bad-rows',
      '--steps',
      '2',
      '--batch',
      '2',
      '--buckets',
      '1024',
      '--dim',
      '8',
      '--test-fraction',
      '0',
      '--out',
      join(tmp, 'skip'),
    ]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain(
      `skipped 1 bad row of ${bad}:\n  line 2: missing "document" (and no "docId" naming one)\n`,
    );
    expect(r.stdout).toMatch(
      /data: bad\.jsonl: 2 documents \(0 without a query\), 2 queries \(2 train \/ 0 held out\), 3 rows, 1 bad rows skipped/,
    );
  });
});
