/**
 * Reading (query, document) files from disk (Node only): JSONL, CSV or TSV,
 * streamed in 1 MiB chunks through the browser-safe parser and corpus
 * builder of src/data/loaders.ts. The raw text is never held whole: only
 * the current chunk and the current row, plus what the corpus keeps (each
 * distinct document text once, each query text, their feature ids).
 */
import { closeSync, createReadStream, openSync, readSync, statSync } from 'node:fs';
import { ArgumentError, describe } from '../errors.js';
import {
  CorpusBuilder,
  formatOfPath,
  parseRecords,
  parseRecordsAsync,
  type CorpusFromRecordsOptions,
  type DataFormat,
  type FieldNames,
  type LoadedCorpus,
} from '../data/loaders.js';

/** Options of {@link loadCorpusFile}: the builder's options plus the format (default: by extension) and field names. */
export interface LoadCorpusFileOptions extends CorpusFromRecordsOptions {
  /** jsonl, csv or tsv (default: from the extension: .jsonl/.ndjson, .csv, .tsv/.tab). */
  format?: DataFormat;
  fields?: FieldNames;
  /** A CSV/TSV header must have the query column (default true; false for files of documents only). */
  needQuery?: boolean;
}

const CHUNK = 1 << 20;

function resolveFormat(op: string, path: unknown, opts: LoadCorpusFileOptions): DataFormat {
  if (typeof path !== 'string' || path === '')
    throw new ArgumentError(op, `path must be a file name, got ${describe(path)}`);
  if (opts === null || typeof opts !== 'object')
    throw new ArgumentError(op, `options must be an object, got ${describe(opts)}`);
  const format = opts.format ?? formatOfPath(path);
  if (format === null)
    throw new ArgumentError(
      op,
      `cannot tell the format of ${path} from its extension; name it .jsonl, .csv or .tsv, or pass format (--format jsonl|csv|tsv)`,
    );
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    throw new ArgumentError(op, `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (!st.isFile()) throw new ArgumentError(op, `${path} is not a file`);
  return format;
}

/** The file's text as a synchronous stream of decoded chunks (UTF-8, a character split across reads handled). */
function* readChunksSync(op: string, path: string): Generator<string> {
  const fd = openSync(path, 'r');
  const buf = Buffer.allocUnsafe(CHUNK);
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let offset = 0;
  try {
    for (;;) {
      const n = readSync(fd, buf, 0, CHUNK, null);
      try {
        if (n === 0) {
          yield decoder.decode();
          return;
        }
        yield decoder.decode(buf.subarray(0, n), { stream: true });
      } catch (e) {
        if (e instanceof TypeError) throw new ArgumentError(op, `${path} is not valid UTF-8 (near byte ${offset + n})`);
        throw e;
      }
      offset += n;
    }
  } finally {
    closeSync(fd);
  }
}

/** A header problem (thrown by the parser, not a row error) names the file. */
function withPath(op: string, path: string, e: unknown): unknown {
  if (e instanceof ArgumentError && e.op === 'RecordParser')
    return new ArgumentError(op, `${path} ${e.message.replace(/^RecordParser: /, '')}`);
  if (e instanceof ArgumentError && /not valid UTF-8|ends inside a UTF-8/.test(e.message) && e.op !== op)
    return new ArgumentError(op, `${path}: ${e.message.replace(/^parseRecordsAsync: /, '')}`);
  return e;
}

/**
 * Loads a corpus from a JSONL / CSV / TSV file, synchronously, streaming it
 * in chunks. Problems are reported as `<path> line N: ...` (see loaders.ts).
 */
export function loadCorpusFileSync(path: string, opts: LoadCorpusFileOptions = {}): LoadedCorpus {
  const op = 'loadCorpusFile';
  const format = resolveFormat(op, path, opts);
  const b = new CorpusBuilder({ source: path, ...opts });
  try {
    for (const row of parseRecords(readChunksSync(op, path), {
      format,
      ...(opts.fields ? { fields: opts.fields } : {}),
      ...(opts.needQuery !== undefined ? { needQuery: opts.needQuery } : {}),
    }))
      b.add(row);
  } catch (e) {
    throw withPath(op, path, e);
  }
  return b.finish();
}

/** The same as {@link loadCorpusFileSync}, reading with a stream (the event loop stays free between chunks). */
export async function loadCorpusFile(path: string, opts: LoadCorpusFileOptions = {}): Promise<LoadedCorpus> {
  const op = 'loadCorpusFile';
  const format = resolveFormat(op, path, opts);
  const b = new CorpusBuilder({ source: path, ...opts });
  const stream = createReadStream(path, { highWaterMark: CHUNK });
  try {
    for await (const row of parseRecordsAsync(stream as AsyncIterable<Uint8Array>, {
      format,
      ...(opts.fields ? { fields: opts.fields } : {}),
      ...(opts.needQuery !== undefined ? { needQuery: opts.needQuery } : {}),
    }))
      b.add(row);
  } catch (e) {
    throw withPath(op, path, e);
  } finally {
    stream.destroy();
  }
  return b.finish();
}
