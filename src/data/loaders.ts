/**
 * Your own (query, document) pairs in: parsers for JSONL, CSV and TSV, and
 * the corpus builder that turns records into a training Corpus.
 * Browser-safe: everything works on strings, chunks of text (any split,
 * e.g. a fetch() body or a Node read stream) and records; the Node file
 * readers are in src/node/dataFile.ts.
 *
 * Records. A record is {query?, document?, docId?}:
 *   - `query` and `document` together are a training pair;
 *   - several records may share a document (same docId, or, without ids, the
 *     same text): one document with several queries;
 *   - a record without a query adds a document only (retrievable, a
 *     negative, never a positive);
 *   - a record with a docId but no document text refers to a document whose
 *     text is given by another record (before or after it).
 * Empty strings count as absent. Documents are identified by docId when a
 * record has one, otherwise by their exact text; a document without an id
 * gets `#<n>`, n its position in the corpus. The same docId with two
 * different texts is a bad row (the first text stands). An identical
 * (query, document) pair seen again is dropped and counted
 * (`duplicatePairs`).
 *
 * File formats (field names configurable, defaults query / document / docId):
 *   jsonl  one JSON object per line: {"query": "...", "document": "...", "docId": "d7"};
 *          docId may be a string or an integer; blank lines are skipped.
 *   csv    RFC 4180: a header row naming the columns, fields separated by
 *          commas, a field may be "quoted" (then it may hold commas, newlines
 *          and doubled quotes ""); a quote inside an unquoted field is kept as
 *          is; blank lines are skipped.
 *   tsv    a header row, fields separated by tabs, no quoting (a quote is an
 *          ordinary character; fields cannot hold tabs or newlines).
 * All three: UTF-8, an optional byte-order mark, LF or CRLF line ends.
 *
 * Bad rows. Every problem names its line (`line 17: missing "document"`;
 * `records[16]: ...` for in-memory records): invalid JSON, not an object, a
 * field of the wrong type, a row with the wrong number of fields, text after
 * a closing quote, an unterminated quote, no document, a query or document
 * without any letter or digit (no features), a conflicting docId text, a
 * docId never given a text. By default the first one throws an ArgumentError
 * before a corpus exists; with `skipBadRows` they are skipped, counted and
 * listed (the first 100) in the stats. A missing column in a CSV/TSV header
 * always throws.
 *
 * The held-out split: query q is a test query iff
 * `hashString(queryText, splitSeed) / 2^32 < testFraction` (as isTestId does
 * for WordNet synset ids), so it depends only on the query's text: the same
 * query text is always on the same side, whatever the order or the rest of
 * the file, and repeated query texts (one query, several relevant
 * documents) never straddle the split. Every document stays in the index.
 *
 * Memory: the parsers keep only the current row; the builder keeps each
 * distinct document text once, each query text, and their feature ids.
 */
import { ArgumentError, describe } from '../errors.js';
import type { Corpus, CorpusDocument } from './corpus.js';
import { isTestId } from './corpus.js';
import { resolveFeatureConfig, textFeatures, type FeatureConfig, type FeatureOverrides } from './text.js';

/** One (query, document) pair, a document alone, or a query that refers to a document by id. */
export interface PairRecord {
  query?: string | null;
  document?: string | null;
  /** A string, or an integer (converted with String()). */
  docId?: string | number | null;
}

export type DataFormat = 'jsonl' | 'csv' | 'tsv';

/** Which JSON keys / CSV columns hold what. */
export interface FieldNames {
  /** Default "query". */
  query?: string;
  /** Default "document". */
  document?: string;
  /** Default "docId" (optional in the data). */
  docId?: string;
}

/** A parsed row: where it starts and its record, or why it is malformed. */
export type ParsedRow = { line: number; record: PairRecord } | { line: number; error: string };

export interface ParseOptions {
  format: DataFormat;
  fields?: FieldNames;
  /** A CSV/TSV header must have the query column (default true; false for files of documents only). */
  needQuery?: boolean;
}

const FORMATS: readonly DataFormat[] = ['jsonl', 'csv', 'tsv'];

function fieldNames(op: string, f: FieldNames | undefined): Required<FieldNames> {
  if (f !== undefined && (f === null || typeof f !== 'object'))
    throw new ArgumentError(op, `fields must be {query?, document?, docId?}, got ${describe(f)}`);
  const out = { query: f?.query ?? 'query', document: f?.document ?? 'document', docId: f?.docId ?? 'docId' };
  for (const [k, v] of Object.entries(out))
    if (typeof v !== 'string' || v === '')
      throw new ArgumentError(op, `fields.${k} must be a non-empty string, got ${describe(v)}`);
  if (new Set(Object.values(out)).size !== 3)
    throw new ArgumentError(op, `fields must name three different columns, got ${JSON.stringify(out)}`);
  return out;
}

/**
 * A push parser: feed it chunks of text (split anywhere, even inside a
 * character pair such as CRLF or a doubled quote), get complete rows back.
 * `end()` flushes the last row. Line numbers are 1-based physical lines; a
 * CSV row that spans lines (newlines inside quotes) has the line it starts on.
 */
export class RecordParser {
  readonly format: DataFormat;
  private readonly names: Required<FieldNames>;
  private readonly needQuery: boolean;
  private started = false;
  private ended = false;
  // JSONL
  private pending = '';
  // CSV / TSV
  private readonly sep: number;
  private readonly quoting: boolean;
  private state = FIELD_START;
  private field = '';
  private fields: string[] = [];
  private rowQuoted = false;
  private pendingCR = false;
  private rowError: string | null = null;
  private header: string[] | null = null;
  private columns: { query: number; document: number; docId: number } | null = null;
  private line = 1;
  private rowLine = 1;

  constructor(opts: ParseOptions) {
    const op = 'RecordParser';
    if (opts === null || typeof opts !== 'object')
      throw new ArgumentError(op, `options must be {format, fields?}, got ${describe(opts)}`);
    if (!FORMATS.includes(opts.format))
      throw new ArgumentError(op, `format must be one of ${FORMATS.join(', ')}, got ${describe(opts.format)}`);
    this.format = opts.format;
    this.names = fieldNames(op, opts.fields);
    if (opts.needQuery !== undefined && typeof opts.needQuery !== 'boolean')
      throw new ArgumentError(op, `needQuery must be true or false, got ${describe(opts.needQuery)}`);
    this.needQuery = opts.needQuery ?? true;
    this.sep = opts.format === 'tsv' ? TAB : COMMA;
    this.quoting = opts.format === 'csv';
  }

  /** Parses a chunk; returns the rows it completed. */
  push(chunk: string): ParsedRow[] {
    if (typeof chunk !== 'string')
      throw new ArgumentError('RecordParser.push', `chunk must be a string, got ${describe(chunk)}`);
    if (this.ended) throw new ArgumentError('RecordParser.push', 'the parser has ended');
    if (!this.started && chunk.length > 0) {
      this.started = true;
      if (chunk.charCodeAt(0) === 0xfeff) chunk = chunk.slice(1);
    }
    const out: ParsedRow[] = [];
    if (this.format === 'jsonl') this.pushJsonl(chunk, out);
    else this.pushDelimited(chunk, out);
    return out;
  }

  /** Ends the input; returns the last row, if any. */
  end(): ParsedRow[] {
    if (this.ended) return [];
    this.ended = true;
    const out: ParsedRow[] = [];
    if (this.format === 'jsonl') {
      if (this.pending !== '') this.jsonlLine(this.pending, out);
      this.pending = '';
      return out;
    }
    if (this.pendingCR) {
      this.pendingCR = false;
      if (this.state === AFTER_QUOTE) this.state = FIELD_START;
      this.field += '\r';
    }
    if (this.state === QUOTED) {
      this.rowError ??= 'a quoted field is never closed (it runs to the end of the file)';
      this.finishRow(out);
    } else if (this.state === SKIP_LINE) this.finishRow(out);
    else if (this.fields.length > 0 || this.field !== '' || this.rowQuoted) {
      this.fields.push(this.field);
      this.finishRow(out);
    }
    if (this.header === null) throw new ArgumentError('RecordParser', 'the file is empty: no header row');
    return out;
  }

  // ---- JSONL ----

  private pushJsonl(chunk: string, out: ParsedRow[]): void {
    let text = this.pending + chunk;
    let start = 0;
    for (;;) {
      const nl = text.indexOf('\n', start);
      if (nl < 0) break;
      this.jsonlLine(text.slice(start, nl), out);
      start = nl + 1;
    }
    this.pending = text.slice(start);
    text = '';
  }

  private jsonlLine(raw: string, out: ParsedRow[]): void {
    const line = this.line++;
    const s = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (s.trim() === '') return;
    let v: unknown;
    try {
      v = JSON.parse(s);
    } catch (e) {
      out.push({ line, error: `not valid JSON (${(e as Error).message})` });
      return;
    }
    if (v === null || typeof v !== 'object' || Array.isArray(v)) {
      out.push({
        line,
        error: `need a JSON object {"${this.names.query}": ..., "${this.names.document}": ...}, got ${describe(v)}`,
      });
      return;
    }
    const o = v as Record<string, unknown>;
    const n = this.names;
    for (const key of [n.query, n.document]) {
      const x = o[key];
      if (x !== undefined && x !== null && typeof x !== 'string') {
        out.push({ line, error: `"${key}" must be a string, got ${describe(x)}` });
        return;
      }
    }
    const id = o[n.docId];
    if (
      id !== undefined &&
      id !== null &&
      typeof id !== 'string' &&
      !(typeof id === 'number' && Number.isSafeInteger(id))
    ) {
      out.push({ line, error: `"${n.docId}" must be a string or an integer, got ${describe(id)}` });
      return;
    }
    out.push({
      line,
      record: {
        query: (o[n.query] as string | null | undefined) ?? null,
        document: (o[n.document] as string | null | undefined) ?? null,
        docId: (id as string | number | null | undefined) ?? null,
      },
    });
  }

  // ---- CSV / TSV ----

  private pushDelimited(chunk: string, out: ParsedRow[]): void {
    const n = chunk.length;
    const sep = this.sep;
    let i = 0;
    while (i < n) {
      let c = chunk.charCodeAt(i);
      if (this.pendingCR) {
        this.pendingCR = false;
        if (c !== LF) {
          // A lone CR is an ordinary character (except right after a closing quote).
          if (this.state === AFTER_QUOTE)
            this.badRow(`a closing quote must be followed by ${this.sepName()} or the end of the line`);
          else if (this.state !== SKIP_LINE) this.field += '\r';
        }
      }
      switch (this.state) {
        case SKIP_LINE: {
          const nl = chunk.indexOf('\n', i);
          if (nl < 0) {
            i = n;
            break;
          }
          i = nl + 1;
          this.finishRow(out);
          this.line++;
          this.rowLine = this.line;
          break;
        }
        case QUOTED: {
          const q = chunk.indexOf('"', i);
          const end = q < 0 ? n : q;
          const piece = chunk.slice(i, end);
          this.field += piece;
          for (let k = piece.indexOf('\n'); k >= 0; k = piece.indexOf('\n', k + 1)) this.line++;
          if (q < 0) i = n;
          else {
            this.state = QUOTE_IN_QUOTED;
            i = q + 1;
          }
          break;
        }
        case QUOTE_IN_QUOTED: {
          if (c === QUOTE) {
            this.field += '"';
            this.state = QUOTED;
            i++;
          } else this.state = AFTER_QUOTE;
          break;
        }
        case AFTER_QUOTE: {
          if (c === sep) {
            this.fields.push(this.field);
            this.field = '';
            this.state = FIELD_START;
            i++;
          } else if (c === LF) {
            this.fields.push(this.field);
            this.finishRow(out);
            i++;
            this.line++;
            this.rowLine = this.line;
          } else if (c === CR) {
            this.pendingCR = true;
            i++;
          } else {
            this.badRow(
              `a closing quote must be followed by ${this.sepName()} or the end of the line, found ${JSON.stringify(chunk[i])}`,
            );
          }
          break;
        }
        default: {
          // FIELD_START or UNQUOTED
          if (this.state === FIELD_START && this.quoting && c === QUOTE) {
            this.state = QUOTED;
            this.rowQuoted = true;
            i++;
            break;
          }
          let j = i;
          while (j < n) {
            c = chunk.charCodeAt(j);
            if (c === sep || c === LF || c === CR) break;
            j++;
          }
          if (j > i) this.field += chunk.slice(i, j);
          this.state = UNQUOTED;
          if (j === n) {
            i = n;
            break;
          }
          if (c === sep) {
            this.fields.push(this.field);
            this.field = '';
            this.state = FIELD_START;
          } else if (c === LF) {
            this.fields.push(this.field);
            this.finishRow(out);
            this.line++;
            this.rowLine = this.line;
          } else this.pendingCR = true;
          i = j + 1;
        }
      }
    }
  }

  private sepName(): string {
    return this.sep === TAB ? 'a tab' : 'a comma';
  }

  /** Marks the current row bad and skips the rest of its line. */
  private badRow(reason: string): void {
    this.rowError ??= reason;
    this.state = SKIP_LINE;
  }

  private finishRow(out: ParsedRow[]): void {
    const fields = this.fields;
    const line = this.rowLine;
    const error = this.rowError;
    const quoted = this.rowQuoted;
    this.fields = [];
    this.field = '';
    this.state = FIELD_START;
    this.rowError = null;
    this.rowQuoted = false;
    if (error === null && !quoted && fields.length === 1 && fields[0]!.trim() === '') return; // a blank line
    if (this.header === null) {
      if (error !== null) throw new ArgumentError('RecordParser', `line ${line} (the header): ${error}`);
      this.setHeader(fields, line);
      return;
    }
    if (error !== null) {
      out.push({ line, error });
      return;
    }
    if (fields.length !== this.header.length) {
      out.push({
        line,
        error: `${fields.length} field${fields.length === 1 ? '' : 's'}, the header has ${this.header.length}${
          fields.length > this.header.length && this.sep === COMMA
            ? ' (a comma inside a field? put the field in double quotes)'
            : ''
        }`,
      });
      return;
    }
    const col = this.columns!;
    out.push({
      line,
      record: {
        query: col.query >= 0 ? (fields[col.query] ?? null) : null,
        document: fields[col.document] ?? null,
        docId: col.docId >= 0 ? (fields[col.docId] ?? null) : null,
      },
    });
  }

  private setHeader(fields: string[], line: number): void {
    const names = fields.map((f) => f.trim());
    this.header = names;
    const find = (name: string, required: boolean): number => {
      const k = names.indexOf(name);
      if (k < 0 && required)
        throw new ArgumentError(
          'RecordParser',
          `line ${line} (the header) has no column "${name}"; its columns are ${names.map((x) => JSON.stringify(x)).join(', ')} (name the columns with fields / --query-field, --doc-field, --id-field)`,
        );
      return k;
    };
    this.columns = {
      query: find(this.names.query, this.needQuery),
      document: find(this.names.document, true),
      docId: find(this.names.docId, false),
    };
  }
}

const FIELD_START = 0,
  UNQUOTED = 1,
  QUOTED = 2,
  QUOTE_IN_QUOTED = 3,
  AFTER_QUOTE = 4,
  SKIP_LINE = 5;
const LF = 10,
  CR = 13,
  TAB = 9,
  COMMA = 44,
  QUOTE = 34;

/** Parses text (one string, or chunks of it) into rows; see {@link RecordParser}. */
export function* parseRecords(text: string | Iterable<string>, opts: ParseOptions): Generator<ParsedRow> {
  const parser = new RecordParser(opts);
  if (typeof text === 'string') {
    yield* parser.push(text);
  } else {
    if (text === null || typeof (text as Iterable<string>)[Symbol.iterator] !== 'function')
      throw new ArgumentError('parseRecords', `text must be a string or an iterable of strings, got ${describe(text)}`);
    for (const chunk of text) yield* parser.push(chunk);
  }
  yield* parser.end();
}

/**
 * Parses a stream of chunks (strings, or UTF-8 bytes decoded as they come,
 * a character split across chunks included) into rows: an async iterable
 * (a Node read stream) or a web ReadableStream (a fetch() body).
 */
export async function* parseRecordsAsync(
  chunks: AsyncIterable<string | Uint8Array> | Iterable<string | Uint8Array> | ReadableStream<Uint8Array>,
  opts: ParseOptions,
): AsyncGenerator<ParsedRow> {
  const parser = new RecordParser(opts);
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const text = (c: string | Uint8Array): string => {
    if (typeof c === 'string') return c;
    if (c instanceof Uint8Array) {
      try {
        return decoder.decode(c, { stream: true });
      } catch {
        throw new ArgumentError('parseRecordsAsync', 'the input is not valid UTF-8');
      }
    }
    throw new ArgumentError('parseRecordsAsync', `chunks must be strings or Uint8Arrays, got ${describe(c)}`);
  };
  for await (const c of iterateChunks(chunks)) yield* parser.push(text(c));
  try {
    yield* parser.push(decoder.decode());
  } catch (e) {
    if (e instanceof ArgumentError) throw e;
    throw new ArgumentError('parseRecordsAsync', 'the input ends inside a UTF-8 character');
  }
  yield* parser.end();
}

async function* iterateChunks<T>(src: AsyncIterable<T> | Iterable<T> | ReadableStream<T>): AsyncGenerator<T> {
  const s = src as { getReader?: unknown; [Symbol.asyncIterator]?: unknown; [Symbol.iterator]?: unknown };
  if (s !== null && typeof s === 'object' && typeof s[Symbol.asyncIterator] === 'function') {
    yield* src as AsyncIterable<T>;
  } else if (s !== null && typeof s === 'object' && typeof s.getReader === 'function') {
    const reader = (src as ReadableStream<T>).getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        yield value;
      }
    } finally {
      reader.releaseLock();
    }
  } else if (s !== null && typeof s === 'object' && typeof s[Symbol.iterator] === 'function') {
    yield* src as Iterable<T>;
  } else
    throw new ArgumentError(
      'parseRecordsAsync',
      `chunks must be an async iterable, an iterable or a ReadableStream, got ${describe(src)}`,
    );
}

/** Options of the corpus builders. */
export interface CorpusFromRecordsOptions {
  /** The field names, for messages (and, for text, which JSON keys / columns to read). */
  fields?: FieldNames;
  /** Feature overrides, merged over DEFAULT_TEXT_FEATURES (see FeatureConfig). */
  features?: FeatureOverrides;
  /** Fraction of query texts held out for testing, in [0, 1] (default 0.05). */
  testFraction?: number;
  /** Seed of the split hash (default: features.seed). */
  splitSeed?: number;
  /** Skip malformed rows, counting and listing them, instead of throwing on the first (default false). */
  skipBadRows?: boolean;
  /** A name for messages, e.g. the file name (default none). */
  source?: string;
}

/** What the builder saw. */
export interface LoadStats {
  /** Rows (records) read, bad ones included; blank lines and the header excluded. */
  rows: number;
  /** Queries in the corpus (training pairs kept). */
  queries: number;
  documents: number;
  /** Documents that are nobody's positive. */
  documentsWithoutQuery: number;
  /** Repeated (query, document) pairs dropped. */
  duplicatePairs: number;
  trainQueries: number;
  testQueries: number;
  /** Rows skipped as malformed (skipBadRows). */
  badRows: number;
  /** The first 100 of them: line (or record index + 1) and reason. */
  bad: { line: number; reason: string }[];
}

/** A corpus built from records: documents with ids and texts, queries with texts, features recorded. */
export interface LoadedCorpus {
  corpus: Corpus<Required<CorpusDocument>>;
  stats: LoadStats;
}

const MAX_LISTED = 100;

interface DocEntry {
  id: string;
  text: string | undefined;
  /** Line of the first record that named this document (for messages). */
  line: number;
  /** Line where its text was given. */
  textLine: number;
  ids: Int32Array | null;
  /** Lines of the rows that referred to it by id before it had a text (bad rows if it never gets one). */
  refLines: number[];
}

/**
 * Builds a Corpus from records, one at a time (the engine behind
 * corpusFromRecords / corpusFromText and their async twins).
 */
export class CorpusBuilder {
  readonly features: FeatureConfig;
  private readonly testFraction: number;
  private readonly splitSeed: number;
  private readonly skipBadRows: boolean;
  private readonly where: (line: number) => string;
  private readonly names: Required<FieldNames>;
  private readonly docs: DocEntry[] = [];
  private readonly docByKey = new Map<string, number>();
  private readonly queryTexts: string[] = [];
  private readonly queryDoc: number[] = [];
  private readonly queryParts: Int32Array[] = [];
  private readonly pairs = new Map<string, number | number[]>();
  private readonly stats: LoadStats = {
    rows: 0,
    queries: 0,
    documents: 0,
    documentsWithoutQuery: 0,
    duplicatePairs: 0,
    trainQueries: 0,
    testQueries: 0,
    badRows: 0,
    bad: [],
  };
  private finished = false;

  constructor(opts: CorpusFromRecordsOptions = {}, where: (line: number) => string = (l) => `line ${l}`) {
    const op = 'corpusFromRecords';
    if (opts === null || typeof opts !== 'object')
      throw new ArgumentError(op, `options must be an object, got ${describe(opts)}`);
    this.features = resolveFeatureConfig(opts.features ?? {});
    this.names = fieldNames(op, opts.fields);
    const tf = opts.testFraction ?? 0.05;
    if (typeof tf !== 'number' || !(tf >= 0 && tf <= 1))
      throw new ArgumentError(op, `testFraction must be a number in [0, 1], got ${describe(tf)}`);
    this.testFraction = tf;
    const ss = opts.splitSeed ?? this.features.seed;
    if (typeof ss !== 'number' || !Number.isInteger(ss) || ss < 0 || ss > 0xffffffff)
      throw new ArgumentError(op, `splitSeed must be an integer in [0, 2^32), got ${describe(ss)}`);
    this.splitSeed = ss;
    if (opts.skipBadRows !== undefined && typeof opts.skipBadRows !== 'boolean')
      throw new ArgumentError(op, `skipBadRows must be true or false, got ${describe(opts.skipBadRows)}`);
    this.skipBadRows = opts.skipBadRows ?? false;
    if (opts.source !== undefined && typeof opts.source !== 'string')
      throw new ArgumentError(op, `source must be a string, got ${describe(opts.source)}`);
    const src = opts.source;
    this.where = src === undefined ? where : (l) => `${src} ${where(l)}`;
  }

  private bad(line: number, reason: string): void {
    if (!this.skipBadRows) throw new ArgumentError('corpusFromRecords', `${this.where(line)}: ${reason}`);
    this.stats.badRows++;
    if (this.stats.bad.length < MAX_LISTED) this.stats.bad.push({ line, reason });
  }

  /** Adds one parsed row (a record or a parse error) found at `line`. */
  add(row: ParsedRow): void {
    if (this.finished) throw new ArgumentError('corpusFromRecords', 'the builder has finished');
    this.stats.rows++;
    if ('error' in row) {
      this.bad(row.line, row.error);
      return;
    }
    const { line, record } = row;
    if (record === null || typeof record !== 'object') {
      this.bad(line, `need a record {query?, document?, docId?}, got ${describe(record)}`);
      return;
    }
    const str = (name: string, v: unknown): string | null | undefined => {
      if (v === undefined || v === null) return null;
      if (typeof v !== 'string') {
        this.bad(line, `"${name}" must be a string, got ${describe(v)}`);
        return undefined;
      }
      return v.trim() === '' ? null : v;
    };
    const n = this.names;
    const query = str(n.query, record.query);
    const document = str(n.document, record.document);
    if (query === undefined || document === undefined) return;
    let docId: string | null;
    const rawId = record.docId;
    if (rawId === undefined || rawId === null || rawId === '') docId = null;
    else if (typeof rawId === 'string') docId = rawId;
    else if (typeof rawId === 'number' && Number.isSafeInteger(rawId)) docId = String(rawId);
    else {
      this.bad(line, `"${n.docId}" must be a string or an integer, got ${describe(rawId)}`);
      return;
    }
    if (document === null && docId === null) {
      this.bad(
        line,
        query === null
          ? `empty row: no "${n.query}", no "${n.document}"`
          : `missing "${n.document}" (and no "${n.docId}" naming one)`,
      );
      return;
    }
    let qIds: Int32Array | null = null;
    if (query !== null) {
      qIds = textFeatures(query, this.features, 'query');
      if (qIds.length === 0) {
        this.bad(line, `the query ${describe(query)} has no features (no letters or digits)`);
        return;
      }
    }
    // Find the document (by id, else by text); compute its features only when its text is new.
    const key = docId !== null ? 'i' + docId : 't' + document!;
    let d = this.docByKey.get(key);
    const known = d === undefined ? undefined : this.docs[d]!;
    if (known?.text !== undefined && document !== null && known.text !== document) {
      this.bad(
        line,
        `${n.docId} ${JSON.stringify(docId)} has a different ${n.document} text than at ${this.where(known.textLine)} (the first text stands)`,
      );
      return;
    }
    let dIds: Int32Array | null = null;
    if (document !== null && known?.text === undefined) {
      dIds = textFeatures(document, this.features, 'doc');
      if (dIds.length === 0) {
        this.bad(line, `the document ${describe(document)} has no features (no letters or digits)`);
        return;
      }
    }
    if (d === undefined) {
      d = this.docs.length;
      this.docs.push({
        id: docId ?? '',
        text: document ?? undefined,
        line,
        textLine: document !== null ? line : 0,
        ids: dIds,
        refLines: [],
      });
      this.docByKey.set(key, d);
    } else if (dIds !== null) {
      known!.text = document!;
      known!.textLine = line;
      known!.ids = dIds;
    }
    const e = this.docs[d]!;
    if (e.text === undefined) e.refLines.push(line);
    if (query !== null) {
      // Repeated (query, document) pairs: the query text maps to the documents it was already paired with.
      const seen = this.pairs.get(query);
      if (seen === d || (Array.isArray(seen) && seen.includes(d))) {
        this.stats.duplicatePairs++;
        return;
      }
      if (seen === undefined) this.pairs.set(query, d);
      else if (Array.isArray(seen)) seen.push(d);
      else this.pairs.set(query, [seen, d]);
      this.queryTexts.push(query);
      this.queryDoc.push(d);
      this.queryParts.push(qIds!);
    }
  }

  /** Adds an in-memory record (its position `index` is reported as `records[index]`). */
  addRecord(record: PairRecord, index: number): void {
    this.add({ line: index + 1, record });
  }

  /** Builds the corpus. Throws (or, with skipBadRows, drops with their queries) documents that never got a text. */
  finish(): LoadedCorpus {
    const op = 'corpusFromRecords';
    if (this.finished) throw new ArgumentError(op, 'the builder has finished');
    this.finished = true;
    // Documents referred to by id but never given a text.
    const keep = new Int32Array(this.docs.length).fill(-1);
    let numDocs = 0;
    for (let d = 0; d < this.docs.length; d++) {
      const e = this.docs[d]!;
      if (e.text === undefined) {
        for (const l of e.refLines) {
          this.stats.badRows++;
          if (!this.skipBadRows)
            throw new ArgumentError(
              op,
              `${this.where(l)}: docId ${JSON.stringify(e.id)} is never given a document text anywhere in the data`,
            );
          if (this.stats.bad.length < MAX_LISTED)
            this.stats.bad.push({ line: l, reason: `docId ${JSON.stringify(e.id)} is never given a document text` });
        }
        continue;
      }
      keep[d] = numDocs++;
    }
    // Automatic ids for documents without one; they must not collide with given ids.
    const docs: Required<CorpusDocument>[] = [];
    const given = new Map<string, number>();
    for (let d = 0; d < this.docs.length; d++)
      if (keep[d]! >= 0 && this.docs[d]!.id !== '') given.set(this.docs[d]!.id, d);
    for (let d = 0; d < this.docs.length; d++) {
      if (keep[d]! < 0) continue;
      const e = this.docs[d]!;
      let id = e.id;
      if (id === '') {
        id = `#${keep[d]}`;
        const other = given.get(id);
        if (other !== undefined)
          throw new ArgumentError(
            op,
            `${this.where(this.docs[other]!.line)}: docId ${JSON.stringify(id)} collides with the automatic id of the document without an id at ${this.where(e.line)}; give every document an id, or none a "#<number>" id`,
          );
      }
      docs.push({ id, text: e.text! });
    }
    const docOffsets = new Int32Array(numDocs + 1);
    for (let d = 0, k = 0; d < this.docs.length; d++) {
      if (keep[d]! < 0) continue;
      docOffsets[k + 1] = docOffsets[k]! + this.docs[d]!.ids!.length;
      k++;
    }
    const docIds = new Int32Array(docOffsets[numDocs]!);
    for (let d = 0, k = 0; d < this.docs.length; d++) {
      if (keep[d]! < 0) continue;
      docIds.set(this.docs[d]!.ids!, docOffsets[k]!);
      k++;
    }
    // Queries whose document survived.
    const qIndex: number[] = [];
    for (let q = 0; q < this.queryDoc.length; q++) if (keep[this.queryDoc[q]!]! >= 0) qIndex.push(q);
    const nq = qIndex.length;
    const queryOffsets = new Int32Array(nq + 1);
    const queryDoc = new Int32Array(nq);
    const queryTexts: string[] = new Array(nq);
    const train: number[] = [];
    const test: number[] = [];
    const hasQuery = new Uint8Array(numDocs);
    for (let k = 0; k < nq; k++) {
      const q = qIndex[k]!;
      queryOffsets[k + 1] = queryOffsets[k]! + this.queryParts[q]!.length;
      queryDoc[k] = keep[this.queryDoc[q]!]!;
      hasQuery[queryDoc[k]!] = 1;
      queryTexts[k] = this.queryTexts[q]!;
      (isTestId(queryTexts[k]!, this.splitSeed, this.testFraction) ? test : train).push(k);
    }
    const queryIds = new Int32Array(queryOffsets[nq]!);
    for (let k = 0; k < nq; k++) queryIds.set(this.queryParts[qIndex[k]!]!, queryOffsets[k]!);
    let withoutQuery = 0;
    for (let d = 0; d < numDocs; d++) if (!hasQuery[d]) withoutQuery++;
    Object.assign(this.stats, {
      queries: nq,
      documents: numDocs,
      documentsWithoutQuery: withoutQuery,
      trainQueries: train.length,
      testQueries: test.length,
    });
    if (numDocs === 0) throw new ArgumentError(op, `${this.stats.rows} rows read but no document in them`);
    const corpus: Corpus<Required<CorpusDocument>> = {
      docs,
      featureBuckets: this.features.buckets,
      seed: this.features.seed,
      docOffsets,
      docIds,
      queryOffsets,
      queryIds,
      queryDoc,
      trainQueries: Int32Array.from(train),
      testQueries: Int32Array.from(test),
      features: this.features,
      queryTexts,
    };
    return { corpus, stats: { ...this.stats, bad: this.stats.bad.slice() } };
  }
}

/**
 * A corpus from in-memory records (an array or any iterable), e.g.
 * `corpusFromRecords([{query: 'a barking pet', document: 'dog'}, ...])`.
 * Problems are reported as `records[i]`.
 */
export function corpusFromRecords(records: Iterable<PairRecord>, opts: CorpusFromRecordsOptions = {}): LoadedCorpus {
  if (records === null || typeof (records as Iterable<PairRecord>)?.[Symbol.iterator] !== 'function')
    throw new ArgumentError(
      'corpusFromRecords',
      `records must be an array or iterable of records, got ${describe(records)}`,
    );
  const b = new CorpusBuilder(opts, (l) => `records[${l - 1}]`);
  let i = 0;
  for (const r of records) b.addRecord(r, i++);
  return b.finish();
}

/** A corpus from an async iterable (or iterable) of records, e.g. rows streamed from a database. */
export async function corpusFromAsyncRecords(
  records: AsyncIterable<PairRecord> | Iterable<PairRecord>,
  opts: CorpusFromRecordsOptions = {},
): Promise<LoadedCorpus> {
  const b = new CorpusBuilder(opts, (l) => `records[${l - 1}]`);
  let i = 0;
  for await (const r of iterateChunks(records)) b.addRecord(r, i++);
  return b.finish();
}

/** Options of corpusFromText / corpusFromStream: the format and field names plus the builder's options. */
export interface CorpusFromTextOptions extends CorpusFromRecordsOptions, ParseOptions {}

/** A corpus from JSONL / CSV / TSV text: one string or its chunks (a synchronous stream). */
export function corpusFromText(text: string | Iterable<string>, opts: CorpusFromTextOptions): LoadedCorpus {
  if (opts === null || typeof opts !== 'object')
    throw new ArgumentError('corpusFromText', `options must be {format, ...}, got ${describe(opts)}`);
  const b = new CorpusBuilder(opts);
  for (const row of parseRecords(text, opts)) b.add(row);
  return b.finish();
}

/** A corpus from a stream of JSONL / CSV / TSV text or UTF-8 bytes (a fetch() body, a Node read stream). */
export async function corpusFromStream(
  chunks: AsyncIterable<string | Uint8Array> | Iterable<string | Uint8Array> | ReadableStream<Uint8Array>,
  opts: CorpusFromTextOptions,
): Promise<LoadedCorpus> {
  if (opts === null || typeof opts !== 'object')
    throw new ArgumentError('corpusFromStream', `options must be {format, ...}, got ${describe(opts)}`);
  const b = new CorpusBuilder(opts);
  for await (const row of parseRecordsAsync(chunks, opts)) b.add(row);
  return b.finish();
}

/** The format of a file name by its extension (.jsonl / .ndjson, .csv, .tsv / .tab), or null. */
export function formatOfPath(path: string): DataFormat | null {
  const m = /\.([a-z0-9]+)$/i.exec(path);
  const ext = m ? m[1]!.toLowerCase() : '';
  if (ext === 'jsonl' || ext === 'ndjson') return 'jsonl';
  if (ext === 'csv') return 'csv';
  if (ext === 'tsv' || ext === 'tab') return 'tsv';
  return null;
}
