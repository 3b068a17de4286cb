/**
 * The model commands: from a training run to search results.
 *
 *   negcache export --checkpoint DIR --out model.safetensors
 *   negcache encode --model model.safetensors --input docs.jsonl --out index.safetensors
 *   negcache search --model model.safetensors --index index.safetensors "query text" ... [-k 10] [--json]
 *
 * `encode` reads the same files as `train --data` (JSONL, CSV, TSV; rows
 * with or without a query), keeps the distinct documents exactly as the
 * trainer does (by id, else by text; automatic ids `#n`), encodes them with
 * the model's document tower and writes an index file: the embeddings plus
 * the ids and (unless --no-texts) the texts, and the model's CRC-32 so that
 * `search` refuses an index made with another model. `search` encodes each
 * query with the query tower and prints rank, id, score (cosine) and text.
 * Formats: docs/model-format.md. Bad input: a message and exit status 2.
 */
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { NegcacheError } from '../errors.js';
import { crc32 } from '../io/safetensors.js';
import type { Corpus } from '../data/corpus.js';
import type { DataFormat } from '../data/loaders.js';
import type { DualEncoder } from '../train/model.js';
import type { TrainConfig } from '../train/config.js';
import { EncoderModel, exportModel, loadModel, modelFromCheckpoint } from '../model/encoder.js';
import { Index, decodeIndex, encodeIndex } from '../search/searchIndex.js';
import { loadSafetensorsSync, writeFileAtomicSync, readFileStrictSync } from '../node/atomicFile.js';
import { loadCorpusFileSync } from '../node/dataFile.js';
import { UsageError, parseFlags, usageOf, type FlagSpec } from './args.js';

/** The checkpoint file inside a run's folder (as main.ts writes it). */
const CHECKPOINT_FILE = 'checkpoint.safetensors';

export const MODEL_COMMANDS: Record<string, { summary: string; flags: Record<string, FlagSpec> }> = {
  export: {
    summary: 'write a model file (towers + feature configuration) from a training checkpoint',
    flags: {
      checkpoint: { kind: 'string', help: 'a run folder (with checkpoint.safetensors) or a checkpoint file' },
      out: { kind: 'string', help: 'the model file to write (e.g. model.safetensors)' },
    },
  },
  encode: {
    summary: 'encode the documents of a .jsonl/.csv/.tsv file into an index file',
    flags: {
      model: { kind: 'string', help: 'the model file (from negcache export or train --export)' },
      input: { kind: 'string', help: 'documents: the same formats as train --data (a query column is optional)' },
      out: { kind: 'string', help: 'the index file to write (e.g. index.safetensors)' },
      format: {
        kind: 'string',
        help: 'the input format (default: from the extension)',
        choices: ['jsonl', 'csv', 'tsv'],
      },
      'doc-field': { kind: 'string', help: 'the JSON key / column of the document (default document)' },
      'id-field': { kind: 'string', help: 'the JSON key / column of the document id (default docId)' },
      'query-field': { kind: 'string', help: 'the JSON key / column of the query (default query; ignored)' },
      'skip-bad-rows': { kind: 'bool', help: 'skip malformed rows instead of stopping at the first' },
      'no-texts': { kind: 'bool', help: 'do not store the document texts in the index (search then prints ids only)' },
    },
  },
  search: {
    summary: 'search an index for one or more queries: negcache search --model M --index I "query" [-k 10]',
    flags: {
      model: { kind: 'string', help: 'the model file' },
      index: { kind: 'string', help: 'the index file (from negcache encode)' },
      k: { kind: 'int', help: 'results per query (default 10; also -k)', min: 1 },
      json: { kind: 'bool', help: 'print one JSON object per query instead of a table' },
    },
  },
};

/** train --export FILE. */
export const exportFlag: Record<string, FlagSpec> = {
  export: { kind: 'string', help: 'after training, write the model file here (as negcache export does)' },
};

/** Writes a file atomically, creating its folder first. */
function writeOut(path: string, bytes: Uint8Array): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileAtomicSync(path, bytes);
}

/** Writes the model file of a trained model (train --export). */
export function writeModelFile(
  path: string,
  model: DualEncoder,
  corpus: Corpus,
  config: TrainConfig,
  quiet: boolean,
): void {
  if (!corpus.features) throw new UsageError('this corpus has no feature configuration, so it cannot be exported');
  const finite = (_k: string, v: unknown): unknown => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v);
  const bytes = exportModel(model, corpus.features, { 'negcache.train': JSON.stringify(config, finite) });
  writeOut(path, bytes);
  if (!quiet) process.stdout.write(`   model written to ${path} (${mb(bytes.length)})\n`);
}

const mb = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MB`;

/**
 * Splits argv into flags and positional arguments (search takes its queries
 * as positionals): `--name value`, `--name=value`, `-k N` (= --k N); a bare
 * `--` ends the flags.
 */
function splitArgs(
  argv: readonly string[],
  specs: Record<string, FlagSpec>,
): { flags: string[]; positional: string[] } {
  const flags: string[] = [];
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i]!;
    if (a === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (a === '-k') a = '--k';
    if (a.startsWith('--')) {
      flags.push(a);
      const name = a.slice(2).split('=')[0]!;
      const spec = Object.hasOwn(specs, name) ? specs[name] : undefined;
      if (spec && spec.kind !== 'bool' && !a.includes('=') && i + 1 < argv.length) flags.push(argv[++i]!);
    } else positional.push(a);
  }
  return { flags, positional };
}

function need(flags: Record<string, unknown>, command: string, ...names: string[]): void {
  for (const n of names) if (flags[n] === undefined) throw new UsageError(`${command} needs --${n}`);
}

function readModel(path: string): { model: EncoderModel; digest: string } {
  if (!existsSync(path)) throw new UsageError(`--model: no file at ${path}`);
  const bytes = readFileStrictSync(path);
  return { model: loadModel(bytes), digest: crc32(bytes).toString(16).padStart(8, '0') };
}

function exportCommand(flags: Record<string, string | number | boolean>): void {
  need(flags, 'export', 'checkpoint', 'out');
  let file = flags['checkpoint'] as string;
  if (existsSync(file) && statSync(file).isDirectory()) file = join(file, CHECKPOINT_FILE);
  if (!existsSync(file)) throw new UsageError(`--checkpoint: no checkpoint at ${file}`);
  const { tensors, metadata } = loadSafetensorsSync(file);
  const model = modelFromCheckpoint({ tensors, metadata });
  const bytes = exportModel(model);
  writeOut(flags['out'] as string, bytes);
  const step = tensors['train.step']?.item();
  process.stdout.write(
    `model written to ${flags['out']} (${mb(bytes.length)}; dim ${model.dim}, ${model.features.buckets} buckets${step !== undefined ? `, step ${step}` : ''})\n`,
  );
}

function encodeCommand(flags: Record<string, string | number | boolean>): void {
  need(flags, 'encode', 'model', 'input', 'out');
  const { model, digest } = readModel(flags['model'] as string);
  const input = flags['input'] as string;
  const t0 = performance.now();
  // The corpus builder with the model's own features: the same documents, ids and drops as in training.
  const { corpus, stats } = loadCorpusFileSync(input, {
    ...(flags['format'] !== undefined ? { format: flags['format'] as DataFormat } : {}),
    fields: {
      ...(flags['query-field'] !== undefined ? { query: flags['query-field'] as string } : {}),
      ...(flags['doc-field'] !== undefined ? { document: flags['doc-field'] as string } : {}),
      ...(flags['id-field'] !== undefined ? { docId: flags['id-field'] as string } : {}),
    },
    needQuery: false,
    features: model.features,
    testFraction: 0,
    skipBadRows: flags['skip-bad-rows'] === true,
  });
  const texts = corpus.docs.map((d) => d.text);
  const emb = model.encodeDocuments(texts);
  const index = new Index(model.dim);
  index.add(
    corpus.docs.map((d) => d.id),
    emb,
    flags['no-texts'] === true ? {} : { texts },
  );
  index.metadata = { 'negcache.model': digest };
  const bytes = encodeIndex(index);
  writeOut(flags['out'] as string, bytes);
  if (stats.badRows > 0) process.stdout.write(`skipped ${stats.badRows} bad rows of ${input}\n`);
  process.stdout.write(
    `encoded ${index.size} documents of ${input} in ${((performance.now() - t0) / 1000).toFixed(1)} s; index written to ${flags['out']} (${mb(bytes.length)})\n`,
  );
}

function searchCommand(flags: Record<string, string | number | boolean>, queries: string[]): void {
  need(flags, 'search', 'model', 'index');
  if (queries.length === 0)
    throw new UsageError('search needs at least one query: negcache search --model M --index I "query text"');
  const { model, digest } = readModel(flags['model'] as string);
  const indexPath = flags['index'] as string;
  if (!existsSync(indexPath)) throw new UsageError(`--index: no file at ${indexPath}`);
  const index = decodeIndex(readFileStrictSync(indexPath));
  const made = index.metadata['negcache.model'];
  if (made !== undefined && made !== digest)
    throw new UsageError(
      `the index ${indexPath} was encoded with another model (CRC-32 ${made}; ${flags['model']} is ${digest}); encode it again with this model`,
    );
  if (index.dim !== model.dim) throw new UsageError(`the index has dimension ${index.dim} but the model ${model.dim}`);
  const k = (flags['k'] as number | undefined) ?? 10;
  const results = index.search(model.encodeQueries(queries), k);
  const out: string[] = [];
  results.forEach((r, qi) => {
    if (flags['json'] === true) {
      out.push(
        JSON.stringify({
          query: queries[qi],
          results: r.ids.map((id, i) => ({ rank: i + 1, id, score: r.scores[i], text: index.text(r.rows[i]!) })),
        }),
      );
      return;
    }
    if (qi > 0) out.push('');
    out.push(`query: ${queries[qi]}`);
    const idWidth = Math.max(2, ...r.ids.map((id) => id.length));
    r.ids.forEach((id, i) => {
      const text = index.text(r.rows[i]!);
      out.push(
        `${String(i + 1).padStart(4)}  ${id.padEnd(idWidth)}  ${r.scores[i]!.toFixed(4).padStart(7)}${text !== null ? `  ${text.replace(/\s+/g, ' ')}` : ''}`,
      );
    });
  });
  process.stdout.write(out.join('\n') + '\n');
}

/** Runs export / encode / search; returns the exit status (2 for bad input, with a message). */
export function runModelCommand(command: string, argv: readonly string[]): number {
  const spec = MODEL_COMMANDS[command]!;
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(usageOf(command, spec.summary, spec.flags));
    return 0;
  }
  try {
    const { flags: flagArgs, positional } = splitArgs(argv, spec.flags);
    const flags = parseFlags(flagArgs, spec.flags);
    if (command !== 'search' && positional.length > 0)
      throw new UsageError(`unexpected argument "${positional[0]}"; flags look like --name value`);
    if (command === 'export') exportCommand(flags);
    else if (command === 'encode') encodeCommand(flags);
    else searchCommand(flags, positional);
    return 0;
  } catch (e) {
    if (e instanceof UsageError || e instanceof NegcacheError) {
      process.stderr.write(`negcache ${command}: ${e.message}\n`);
      if (e instanceof UsageError) process.stderr.write(`run "negcache ${command} --help" for the flags\n`);
      return 2;
    }
    throw e;
  }
}
