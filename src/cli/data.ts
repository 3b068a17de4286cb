/**
 * `--data <file>` for train and compare: your own (query, document) pairs
 * from a JSONL, CSV or TSV file, with the feature configuration as flags.
 * main.ts spreads DATA_FLAGS into its flags and asks loadDataFlags for the
 * corpus when --data names a file.
 *
 * Feature flags (defaults: DEFAULT_TEXT_FEATURES in src/data/text.ts):
 *   --buckets N               hash buckets per tower (default 262144 = 2^18)
 *   --query-word-ngrams 1,2   word n-gram orders of the query tower ("none" for none)
 *   --query-char-ngrams none  character n-gram lengths of the query tower
 *   --doc-word-ngrams 1,2     ... of the document tower
 *   --doc-char-ngrams 3,4
 * The hash and split seeds are the run's --seed, as for WordNet.
 */
import { basename } from 'node:path';
import { DEFAULT_TEXT_FEATURES, type FeatureConfig, type FeatureOverrides } from '../data/text.js';
import type { Corpus } from '../data/corpus.js';
import type { DataFormat, FieldNames, LoadStats } from '../data/loaders.js';
import { loadCorpusFileSync } from '../node/dataFile.js';
import { UsageError, type FlagSpec } from './args.js';

/** The built-in data sets; anything else given to --data is a file. */
export const BUILTIN_DATA = ['wordnet', 'synthetic'] as const;

const FILE_ONLY = [
  'format',
  'query-field',
  'doc-field',
  'id-field',
  'skip-bad-rows',
  'test-fraction',
  'buckets',
  'query-word-ngrams',
  'query-char-ngrams',
  'doc-word-ngrams',
  'doc-char-ngrams',
] as const;

const list = (xs: readonly number[]): string => (xs.length ? xs.join(',') : 'none');

/** The data flags of train and compare (main.ts's --data is replaced by this one). */
export const DATA_FLAGS: Record<string, FlagSpec> = {
  data: {
    kind: 'string',
    help: 'wordnet (default), synthetic, or a .jsonl/.csv/.tsv file of (query, document) pairs',
  },
  format: { kind: 'string', help: 'the file format (default: from the extension)', choices: ['jsonl', 'csv', 'tsv'] },
  'query-field': { kind: 'string', help: 'the JSON key / column of the query (default query)' },
  'doc-field': { kind: 'string', help: 'the JSON key / column of the document (default document)' },
  'id-field': { kind: 'string', help: 'the JSON key / column of the document id (default docId; optional)' },
  'skip-bad-rows': { kind: 'bool', help: 'skip malformed rows (counted and listed) instead of stopping at the first' },
  'test-fraction': { kind: 'number', help: 'fraction of query texts held out (default 0.05)', min: 0, max: 1 },
  buckets: { kind: 'int', help: `feature hash buckets per tower (default ${DEFAULT_TEXT_FEATURES.buckets})`, min: 1 },
  'query-word-ngrams': {
    kind: 'string',
    help: `query word n-gram orders (default ${list(DEFAULT_TEXT_FEATURES.query.wordNgrams)})`,
  },
  'query-char-ngrams': {
    kind: 'string',
    help: `query character n-gram lengths (default ${list(DEFAULT_TEXT_FEATURES.query.charNgrams)})`,
  },
  'doc-word-ngrams': {
    kind: 'string',
    help: `document word n-gram orders (default ${list(DEFAULT_TEXT_FEATURES.doc.wordNgrams)})`,
  },
  'doc-char-ngrams': {
    kind: 'string',
    help: `document character n-gram lengths (default ${list(DEFAULT_TEXT_FEATURES.doc.charNgrams)})`,
  },
};

type Flags = Record<string, string | number | boolean>;

/** Whether --data names a file (not a built-in data set). */
export function isDataFile(flags: Flags): boolean {
  const d = flags['data'];
  return typeof d === 'string' && !(BUILTIN_DATA as readonly string[]).includes(d);
}

/** "1,2" -> [1, 2]; "none" or "" -> []. */
function orders(flag: string, v: string, hi: number): number[] {
  if (v.trim() === '' || v.trim() === 'none') return [];
  const parts = v.split(',').map((x) => x.trim());
  const out = parts.map((x) => (/^\d+$/.test(x) ? Number(x) : NaN));
  if (out.some((x) => !(x >= 1 && x <= hi)))
    throw new UsageError(`--${flag} needs comma-separated whole numbers in [1, ${hi}] or "none", got "${v}"`);
  if (out.some((x, i) => i > 0 && x <= out[i - 1]!))
    throw new UsageError(`--${flag} must be ascending without repeats, got "${v}"`);
  return out;
}

/** Checks the data flags before anything runs: file-only flags need a file; the n-gram lists parse. */
export function checkDataFlags(flags: Flags): void {
  if (!isDataFile(flags)) {
    const stray = FILE_ONLY.filter((k) => flags[k] !== undefined);
    if (stray.length > 0)
      throw new UsageError(
        `--${stray[0]} applies to --data <file> only (data is ${String(flags['data'] ?? 'wordnet')})`,
      );
    return;
  }
  if (flags['max-docs'] !== undefined)
    throw new UsageError('--max-docs applies to --data wordnet and synthetic only; pass a smaller file instead');
  featureOverrides(flags, 0);
}

function featureOverrides(flags: Flags, seed: number): FeatureOverrides {
  const tower = (side: 'query' | 'doc') => {
    const o: { wordNgrams?: number[]; charNgrams?: number[] } = {};
    const w = flags[`${side}-word-ngrams`];
    const c = flags[`${side}-char-ngrams`];
    if (w !== undefined) o.wordNgrams = orders(`${side}-word-ngrams`, String(w), 8);
    if (c !== undefined) o.charNgrams = orders(`${side}-char-ngrams`, String(c), 16);
    return o;
  };
  const f: FeatureOverrides = { seed, query: tower('query'), doc: tower('doc') };
  if (flags['buckets'] !== undefined) f.buckets = flags['buckets'] as number;
  return f;
}

/** The --data file as a corpus, its description for the report, and its load stats. */
export function loadDataFlags(flags: Flags, seed: number): { corpus: Corpus; description: string; stats: LoadStats } {
  const path = flags['data'] as string;
  const fields: FieldNames = {};
  if (flags['query-field'] !== undefined) fields.query = flags['query-field'] as string;
  if (flags['doc-field'] !== undefined) fields.document = flags['doc-field'] as string;
  if (flags['id-field'] !== undefined) fields.docId = flags['id-field'] as string;
  const { corpus, stats } = loadCorpusFileSync(path, {
    ...(flags['format'] !== undefined ? { format: flags['format'] as DataFormat } : {}),
    fields,
    features: featureOverrides(flags, seed),
    testFraction: (flags['test-fraction'] as number | undefined) ?? 0.05,
    skipBadRows: flags['skip-bad-rows'] === true,
  });
  if (corpus.trainQueries.length === 0)
    throw new UsageError(
      `${path}: no training queries (${stats.queries} queries, ${stats.testQueries} held out); every row needs a query, or lower --test-fraction`,
    );
  const f = corpus.features!;
  return {
    corpus,
    stats,
    description: `${basename(path)}: ${stats.documents} documents (${stats.documentsWithoutQuery} without a query), ${stats.queries} queries (${stats.trainQueries} train / ${stats.testQueries} held out), ${stats.rows} rows${stats.duplicatePairs ? `, ${stats.duplicatePairs} repeated pairs dropped` : ''}${stats.badRows ? `, ${stats.badRows} bad rows skipped` : ''}; features: ${describeFeatures(f)}`,
  };
}

/** A one-line summary of a feature configuration. */
export function describeFeatures(f: FeatureConfig): string {
  const t = (x: FeatureConfig['query']): string =>
    `word n-grams ${list(x.wordNgrams)}, char n-grams ${list(x.charNgrams)}${x.phrase ? ', phrases' : ''}${x.segmentSeparator !== null ? `, segments split at "${x.segmentSeparator}"` : ''}`;
  return `${f.buckets} buckets; query: ${t(f.query)}; document: ${t(f.doc)}`;
}

/** The lines a run prints about skipped bad rows (at most 10). */
export function badRowLines(path: string, stats: LoadStats): string[] {
  if (stats.badRows === 0) return [];
  return [
    `skipped ${stats.badRows} bad row${stats.badRows === 1 ? '' : 's'} of ${path}:`,
    ...stats.bad.slice(0, 10).map((b) => `  line ${b.line}: ${b.reason}`),
    ...(stats.badRows > 10 ? [`  ... and ${stats.badRows - 10} more`] : []),
  ];
}
