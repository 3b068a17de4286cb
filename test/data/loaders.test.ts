/**
 * The data loaders: JSONL / CSV / TSV parsing (quoting, BOM, CRLF, chunk
 * boundaries anywhere), every malformation named by its line, skipBadRows,
 * document deduplication (by id, by text, references by id), duplicate
 * pairs, the held-out split by query text, and the built corpus itself.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ArgumentError } from '../../src/errors.js';
import { checkCorpus, isTestId } from '../../src/data/corpus.js';
import { DEFAULT_TEXT_FEATURES, textFeatures } from '../../src/data/text.js';
import {
  corpusFromAsyncRecords,
  corpusFromRecords,
  corpusFromStream,
  corpusFromText,
  formatOfPath,
  parseRecords,
  type ParsedRow,
  type PairRecord,
} from '../../src/data/loaders.js';
import { params } from '../util/props.js';

const rows = (text: string | string[], format: 'jsonl' | 'csv' | 'tsv', fields?: object): ParsedRow[] => [
  ...parseRecords(text, { format, ...(fields ? { fields } : {}) }),
];

const rec = (query: string | null, document: string | null, docId: string | number | null = null): PairRecord => ({
  query,
  document,
  docId,
});

describe('JSONL', () => {
  it('reads objects line by line, with a BOM, CRLF, blank lines and extra keys', () => {
    const text =
      '\uFEFF{"query": "a barking pet", "document": "dog", "docId": "d1"}\r\n' +
      '\r\n' +
      '{"query": "a purring pet", "document": "cat", "extra": [1, 2]}\n' +
      '{"document": "cow", "docId": 7}\n' +
      '{"query": "man\'s best friend", "docId": "d1", "document": null}';
    expect(rows(text, 'jsonl')).toEqual([
      { line: 1, record: rec('a barking pet', 'dog', 'd1') },
      { line: 3, record: rec('a purring pet', 'cat') },
      { line: 4, record: rec(null, 'cow', 7) },
      { line: 5, record: rec("man's best friend", null, 'd1') },
    ]);
  });

  it('names every malformed line', () => {
    const text = [
      '{"query": "ok", "document": "fine"}',
      '{"query": "broken", "document": ',
      '["an", "array"]',
      '{"query": 3, "document": "x"}',
      '{"query": "q", "document": "x", "docId": 1.5}',
      'null',
    ].join('\n');
    const r = rows(text, 'jsonl');
    expect(r.map((x) => x.line)).toEqual([1, 2, 3, 4, 5, 6]);
    expect('record' in r[0]!).toBe(true);
    expect((r[1] as { error: string }).error).toMatch(/^not valid JSON \(/);
    expect((r[2] as { error: string }).error).toMatch(/^need a JSON object/);
    expect((r[3] as { error: string }).error).toBe('"query" must be a string, got 3');
    expect((r[4] as { error: string }).error).toBe('"docId" must be a string or an integer, got 1.5');
    expect((r[5] as { error: string }).error).toMatch(/^need a JSON object .*got null/);
  });

  it('uses the configured field names', () => {
    const r = rows('{"q": "x y", "text": "z", "id": "a"}\n{"query": "x", "document": "y"}', 'jsonl', {
      query: 'q',
      document: 'text',
      docId: 'id',
    });
    expect(r[0]).toEqual({ line: 1, record: rec('x y', 'z', 'a') });
    expect(r[1]).toEqual({ line: 2, record: rec(null, null, null) });
  });
});

describe('CSV (RFC 4180) and TSV', () => {
  it('reads quoted fields with commas, doubled quotes and newlines; rows keep their first line', () => {
    const text =
      '\uFEFFquery,document,docId\r\n' +
      '"a pet, that barks",dog,d1\r\n' +
      '"the ""king"" of beasts",lion,\r\n' +
      '"two\r\nlines",x,d3\r\n' +
      '\r\n' +
      'plain,"multi\nline\ndoc",d4\n' +
      'last,row,d5';
    expect(rows(text, 'csv')).toEqual([
      { line: 2, record: rec('a pet, that barks', 'dog', 'd1') },
      { line: 3, record: rec('the "king" of beasts', 'lion', '') },
      { line: 4, record: rec('two\r\nlines', 'x', 'd3') },
      { line: 7, record: rec('plain', 'multi\nline\ndoc', 'd4') },
      { line: 10, record: rec('last', 'row', 'd5') },
    ]);
  });

  it('keeps a quote inside an unquoted field, allows empty fields and columns in any order', () => {
    expect(rows('document,extra,query\n5" screen,,a "small" tv\n,,q', 'csv')).toEqual([
      { line: 2, record: rec('a "small" tv', '5" screen', null) },
      { line: 3, record: rec('q', '', null) },
    ]);
  });

  it('names malformed rows: field counts, text after a closing quote, an unterminated quote', () => {
    const text = 'query,document\n' + 'a,b\n' + 'a,b,c\n' + 'only\n' + '"x"y,z\n' + 'ok,fine\n' + '"never closed,z\n';
    const r = rows(text, 'csv');
    expect(r.map((x) => [x.line, 'error' in x ? x.error : 'ok'])).toEqual([
      [2, 'ok'],
      [3, '3 fields, the header has 2 (a comma inside a field? put the field in double quotes)'],
      [4, '1 field, the header has 2'],
      [5, 'a closing quote must be followed by a comma or the end of the line, found "y"'],
      [6, 'ok'],
      [7, 'a quoted field is never closed (it runs to the end of the file)'],
    ]);
  });

  it('refuses a header without the needed columns, naming them', () => {
    expect(() => rows('q,d\nx,y', 'csv')).toThrow(
      /line 1 \(the header\) has no column "query"; its columns are "q", "d" \(name the columns with fields/,
    );
    expect(() => rows('', 'csv')).toThrow(/the file is empty: no header row/);
    expect(rows('q,d,i\nx,y,z', 'csv', { query: 'q', document: 'd', docId: 'i' })).toEqual([
      { line: 2, record: rec('x', 'y', 'z') },
    ]);
  });

  it('a file of documents only may leave out the query column (needQuery: false)', () => {
    expect(() => rows('docId,document\nd1,dog', 'csv')).toThrow(/has no column "query"/);
    expect([...parseRecords('docId,document\nd1,dog\n', { format: 'csv', needQuery: false })]).toEqual([
      { line: 2, record: rec(null, 'dog', 'd1') },
    ]);
  });

  it('TSV: tabs separate, quotes are ordinary characters, CRLF and BOM handled', () => {
    expect(rows('\uFEFFquery\tdocument\r\n"quoted" q\ta, b, c\r\nx\ty\tz\r\n', 'tsv')).toEqual([
      { line: 2, record: rec('"quoted" q', 'a, b, c', null) },
      { line: 3, error: '3 fields, the header has 2' },
    ]);
  });

  /** RFC 4180 writer: quote a field iff it holds a comma, quote, CR or LF (or, to vary things, at random). */
  const csvField = (s: string, force: boolean): string =>
    force || /[",\r\n]/.test(s) || s.startsWith(' ') ? '"' + s.replace(/"/g, '""') + '"' : s;
  const fieldText = fc.string({ unit: fc.constantFrom('a', 'b', ' ', ',', '"', '\n', '\r\n', 'é', '😀', '\t', 'x') });

  it('round-trips any records through RFC 4180 CSV, split into chunks anywhere', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fieldText, fieldText, fc.boolean(), fc.boolean()), { minLength: 1, maxLength: 8 }),
        fc.boolean(),
        fc.array(fc.nat(), { maxLength: 6 }),
        (records, crlf, cuts) => {
          const nl = crlf ? '\r\n' : '\n';
          const lines = records.map(([q, d, fq, fd]) => {
            const line = csvField(q, fq) + ',' + csvField(d, fd);
            // A record that would read as a blank line must be quoted.
            return line === ',' || line.trim() === ',' ? `"${q.replace(/"/g, '""')}",` + csvField(d, true) : line;
          });
          const text = 'query,document' + nl + lines.join(nl) + nl;
          const whole = rows(text, 'csv');
          expect(whole.map((r) => ('record' in r ? [r.record.query, r.record.document] : r))).toEqual(
            records.map(([q, d]) => [q, d]),
          );
          // Row lines: each row starts one line after the previous row's last line.
          let line = 2;
          for (let i = 0; i < whole.length; i++) {
            expect(whole[i]!.line).toBe(line);
            line += lines[i]!.split('\n').length;
          }
          const points = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
          const chunks: string[] = [];
          let prev = 0;
          for (const p of points) {
            chunks.push(text.slice(prev, p));
            prev = p;
          }
          chunks.push(text.slice(prev));
          expect(rows(chunks, 'csv')).toEqual(whole);
          expect(rows(chunks, 'csv')).toEqual(rows([...text], 'csv'));
        },
      ),
      params(200),
    );
  });

  it('JSONL and TSV parse identically whatever the chunking', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fieldText, fieldText), { minLength: 1, maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 5 }),
        (records, cuts) => {
          const jsonl = records.map(([q, d]) => JSON.stringify({ query: q, document: d })).join('\r\n');
          const tsv =
            'query\tdocument\n' +
            records.map(([q, d]) => q.replace(/[\t\r\n]/g, ' ') + '\t' + d.replace(/[\t\r\n]/g, ' ')).join('\n');
          for (const [text, format] of [
            [jsonl, 'jsonl'],
            [tsv, 'tsv'],
          ] as const) {
            const points = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
            const chunks = points
              .map((p, i) => text.slice(i === 0 ? 0 : points[i - 1]!, p))
              .concat(text.slice(points.at(-1) ?? 0));
            expect(rows(chunks, format)).toEqual(rows(text, format));
          }
          expect(rows(jsonl, 'jsonl').map((r) => ('record' in r ? [r.record.query, r.record.document] : r))).toEqual(
            records.map(([q, d]) => [q, d]),
          );
        },
      ),
      params(150),
    );
  });
});

describe('corpusFromRecords: documents, queries, dedup', () => {
  const data: PairRecord[] = [
    { query: 'a barking pet', document: 'dog', docId: 'd1' },
    { query: 'loyal companion animal', docId: 'd1' }, // refers to d1 by id
    { query: 'a purring pet', document: 'cat' },
    { query: 'small feline', document: 'cat' }, // same text, no id: same document
    { document: 'cow' }, // a document without a query
    { query: 'a purring pet', document: 'cat' }, // a repeated pair: dropped
    { query: 'large striped cat', docId: 'tiger' }, // refers forward
    { document: 'tiger', docId: 'tiger' },
    { document: 'dog', docId: 'd2' }, // the same text under another id is another document
  ];

  it('shares documents by id and by text, keeps documents without queries, drops repeated pairs', () => {
    const { corpus, stats } = corpusFromRecords(data, { testFraction: 0 });
    checkCorpus('test', corpus);
    expect(corpus.docs).toEqual([
      { id: 'd1', text: 'dog' },
      { id: '#1', text: 'cat' },
      { id: '#2', text: 'cow' },
      { id: 'tiger', text: 'tiger' },
      { id: 'd2', text: 'dog' },
    ]);
    expect(corpus.queryTexts).toEqual([
      'a barking pet',
      'loyal companion animal',
      'a purring pet',
      'small feline',
      'large striped cat',
    ]);
    expect(Array.from(corpus.queryDoc)).toEqual([0, 0, 1, 1, 3]);
    expect(stats).toEqual({
      rows: 9,
      queries: 5,
      documents: 5,
      documentsWithoutQuery: 2,
      duplicatePairs: 1,
      trainQueries: 5,
      testQueries: 0,
      badRows: 0,
      bad: [],
    });
    // Features are textFeatures of each text with the default configuration.
    expect(corpus.features).toEqual(DEFAULT_TEXT_FEATURES);
    for (let d = 0; d < corpus.docs.length; d++)
      expect(Array.from(corpus.docIds.subarray(corpus.docOffsets[d]!, corpus.docOffsets[d + 1]!))).toEqual(
        Array.from(textFeatures(corpus.docs[d]!.text, corpus.features!, 'doc')),
      );
    for (let q = 0; q < corpus.queryTexts!.length; q++)
      expect(Array.from(corpus.queryIds.subarray(corpus.queryOffsets[q]!, corpus.queryOffsets[q + 1]!))).toEqual(
        Array.from(textFeatures(corpus.queryTexts![q]!, corpus.features!, 'query')),
      );
  });

  it('applies feature overrides', () => {
    const { corpus } = corpusFromRecords(data, { features: { buckets: 64, seed: 9, doc: { charNgrams: [] } } });
    expect(corpus.featureBuckets).toBe(64);
    expect(corpus.seed).toBe(9);
    expect(corpus.features!.doc.charNgrams).toEqual([]);
    expect(Math.max(...corpus.docIds, ...corpus.queryIds)).toBeLessThan(64);
  });

  it('throws on the first bad record, naming it; skipBadRows counts and lists them all', () => {
    const bad: PairRecord[] = [
      { query: 'fine', document: 'ok' },
      { query: 'no document here' },
      { query: '...', document: 'x' },
      { query: 'q', document: '!!!' },
      { query: 'a barking pet', document: 'wolf', docId: 'ok' },
      { query: 'other', document: 'wolf!', docId: 'ok' },
      { query: 3 as unknown as string, document: 'x' },
      {},
      { query: 'dangling', docId: 'nowhere' },
    ];
    expect(() => corpusFromRecords(bad)).toThrow(
      new ArgumentError('corpusFromRecords', 'records[1]: missing "document" (and no "docId" naming one)'),
    );
    const { corpus, stats } = corpusFromRecords(bad, { skipBadRows: true });
    expect(stats.badRows).toBe(7);
    expect(stats.bad).toEqual([
      { line: 2, reason: 'missing "document" (and no "docId" naming one)' },
      { line: 3, reason: 'the query "..." has no features (no letters or digits)' },
      { line: 4, reason: 'the document "!!!" has no features (no letters or digits)' },
      { line: 6, reason: 'docId "ok" has a different document text than at records[4] (the first text stands)' },
      { line: 7, reason: '"query" must be a string, got 3' },
      { line: 8, reason: 'empty row: no "query", no "document"' },
      { line: 9, reason: 'docId "nowhere" is never given a document text' },
    ]);
    expect(corpus.docs.map((d) => d.id)).toEqual(['#0', 'ok']);
    expect(corpus.queryTexts).toEqual(['fine', 'a barking pet']);
    expect(() => corpusFromRecords(bad.slice(7))).toThrow(/records\[0\]: empty row/);
    expect(() => corpusFromRecords(bad.slice(8))).toThrow(
      /records\[0\]: docId "nowhere" is never given a document text anywhere in the data/,
    );
  });

  it('refuses a given id that collides with an automatic one, and a corpus without documents', () => {
    expect(() =>
      corpusFromRecords([
        { query: 'x', document: 'a' },
        { query: 'y', document: 'b', docId: '#0' },
      ]),
    ).toThrow(/records\[1\]: docId "#0" collides with the automatic id of the document without an id at records\[0\]/);
    expect(() => corpusFromRecords([{}], { skipBadRows: true })).toThrow(/1 rows read but no document in them/);
    expect(() => corpusFromRecords(3 as never)).toThrow(/records must be an array or iterable/);
    expect(() => corpusFromRecords([], { testFraction: 2 })).toThrow(/testFraction must be a number in \[0, 1\]/);
  });

  it('splits by a seeded hash of the query text: stable under reordering, repeated texts on one side', () => {
    const pairs: PairRecord[] = [];
    for (let i = 0; i < 2000; i++) pairs.push({ query: `query number ${i % 1500}`, document: `doc ${i}` });
    const { corpus, stats } = corpusFromRecords(pairs, { testFraction: 0.2, splitSeed: 5 });
    const testTexts = new Set(Array.from(corpus.testQueries, (q) => corpus.queryTexts![q]!));
    const trainTexts = new Set(Array.from(corpus.trainQueries, (q) => corpus.queryTexts![q]!));
    for (const t of testTexts) expect(trainTexts.has(t)).toBe(false);
    for (const t of testTexts) expect(isTestId(t, 5, 0.2)).toBe(true);
    expect(stats.trainQueries + stats.testQueries).toBe(2000);
    expect(stats.testQueries / 2000).toBeGreaterThan(0.15);
    expect(stats.testQueries / 2000).toBeLessThan(0.25);
    const reversed = corpusFromRecords(pairs.slice().reverse(), { testFraction: 0.2, splitSeed: 5 }).corpus;
    expect(new Set(Array.from(reversed.testQueries, (q) => reversed.queryTexts![q]!))).toEqual(testTexts);
  });
});

describe('text and stream entry points agree', () => {
  const csv =
    'query,document,docId\n"a pet, barking",dog,d1\nloyal friend,,d1\nnaïve café owner,"café, bistro",c\n,standalone doc,\n';

  it('corpusFromText = corpusFromStream (UTF-8 bytes split inside characters) = corpusFromAsyncRecords', async () => {
    const a = corpusFromText(csv, { format: 'csv' });
    const bytes = new TextEncoder().encode(csv);
    const pieces: Uint8Array[] = [];
    for (let i = 0; i < bytes.length; i += 3) pieces.push(bytes.subarray(i, i + 3));
    const b = await corpusFromStream(
      (async function* () {
        yield* pieces;
      })(),
      { format: 'csv' },
    );
    expect(b).toEqual(a);
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        for (const p of pieces) c.enqueue(p);
        c.close();
      },
    });
    expect(await corpusFromStream(stream, { format: 'csv' })).toEqual(a);
    const records = [...parseRecords(csv, { format: 'csv' })].map((r) => ('record' in r ? r.record : {}));
    const c = await corpusFromAsyncRecords(
      (async function* () {
        yield* records;
      })(),
    );
    expect(c.corpus).toEqual(a.corpus);
    expect(a.corpus.docs).toEqual([
      { id: 'd1', text: 'dog' },
      { id: 'c', text: 'café, bistro' },
      { id: '#2', text: 'standalone doc' },
    ]);
  });

  it('reports invalid UTF-8 and names the source in row errors', async () => {
    await expect(corpusFromStream([new Uint8Array([0x71, 0xff, 0x0a])], { format: 'jsonl' })).rejects.toThrow(
      /not valid UTF-8/,
    );
    expect(() => corpusFromText('{"query": "x"}\n', { format: 'jsonl', source: 'my.jsonl' })).toThrow(
      'corpusFromRecords: my.jsonl line 1: missing "document" (and no "docId" naming one)',
    );
  });

  it('formatOfPath', () => {
    expect(['a.jsonl', 'b.NDJSON', 'c.csv', 'd.tsv', 'e.tab', 'f.txt', 'g'].map(formatOfPath)).toEqual([
      'jsonl',
      'jsonl',
      'csv',
      'tsv',
      'tsv',
      null,
      null,
    ]);
  });
});
