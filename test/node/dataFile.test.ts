/**
 * Reading (query, document) files from disk: the sync and async readers give
 * the same corpus as the in-memory parser, across chunk boundaries (a file
 * larger than one read), and name the file and line in every error.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { corpusFromText } from '../../src/data/loaders.js';
import { loadCorpusFile, loadCorpusFileSync } from '../../src/node/dataFile.js';

const dir = mkdtempSync(join(tmpdir(), 'negcache-data-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string | Uint8Array): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

describe('loadCorpusFile / loadCorpusFileSync', () => {
  it('stream a file larger than one read (multi-byte characters across the 1 MiB boundary) into the same corpus', async () => {
    const lines: string[] = [];
    for (let i = 0, length = 0; length < 1.2 * 2 ** 20; i++) {
      lines.push(
        JSON.stringify({ query: `définition ${i} of ünïcode thing ${i % 97}`, document: `doc ${i % 5000} ✓` }),
      );
      length += lines.at(-1)!.length + 1;
    }
    const text = lines.join('\n') + '\n';
    const path = file('big.jsonl', text);
    const expected = corpusFromText(text, { format: 'jsonl', source: path });
    expect(loadCorpusFileSync(path)).toEqual(expected);
    expect(await loadCorpusFile(path)).toEqual(expected);
    expect(expected.stats.documents).toBe(5000);
    expect(expected.stats.queries).toBe(lines.length);
  });

  it('take the format from the extension or the option, and the field names', async () => {
    const tsv = file('pairs.data', 'q\td\nred fruit\tapple\n');
    expect(() => loadCorpusFileSync(tsv)).toThrow(/cannot tell the format of .*pairs\.data from its extension/);
    const { corpus } = loadCorpusFileSync(tsv, { format: 'tsv', fields: { query: 'q', document: 'd' } });
    expect(corpus.docs).toEqual([{ id: '#0', text: 'apple' }]);
    expect((await loadCorpusFile(tsv, { format: 'tsv', fields: { query: 'q', document: 'd' } })).corpus).toEqual(
      corpus,
    );
  });

  it('name the file and the line of a bad row, a bad header, a missing file and invalid UTF-8', async () => {
    const bad = file('bad.csv', 'query,document\nok,fine\n"x"y,z\n');
    expect(() => loadCorpusFileSync(bad)).toThrow(
      `corpusFromRecords: ${bad} line 3: a closing quote must be followed by a comma or the end of the line, found "y"`,
    );
    await expect(loadCorpusFile(bad)).rejects.toThrow(`${bad} line 3: a closing quote`);
    expect(loadCorpusFileSync(bad, { skipBadRows: true }).stats.bad).toEqual([
      { line: 3, reason: 'a closing quote must be followed by a comma or the end of the line, found "y"' },
    ]);
    const header = file('header.csv', 'question,answer\nx,y\n');
    expect(() => loadCorpusFileSync(header)).toThrow(
      `loadCorpusFile: ${header} line 1 (the header) has no column "query"`,
    );
    await expect(loadCorpusFile(header)).rejects.toThrow(`${header} line 1 (the header) has no column "query"`);
    expect(() => loadCorpusFileSync(join(dir, 'missing.jsonl'))).toThrow(/cannot read .*missing\.jsonl: ENOENT/);
    const latin1 = file('latin1.jsonl', new Uint8Array([...Buffer.from('{"query": "caf'), 0xe9, ...Buffer.from('"}')]));
    expect(() => loadCorpusFileSync(latin1)).toThrow(/latin1\.jsonl is not valid UTF-8/);
    await expect(loadCorpusFile(latin1)).rejects.toThrow(/latin1\.jsonl: the input is not valid UTF-8/);
    expect(() => loadCorpusFileSync(dir + '/', { format: 'csv' })).toThrow(/is not a file/);
  });
});
