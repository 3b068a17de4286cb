import { ArgumentError, describe } from '../errors.js';
import { Rng } from '../tensor/random.js';
import {
  checkFeatureConfig,
  docFeatures,
  hashString,
  queryFeatures,
  wordnetFeatureConfig,
  type FeatureConfig,
} from './text.js';

/**
 * The reverse-dictionary corpus: every WordNet synset is a document (its
 * lemmas) and the query for document i is its gloss (definition only). The
 * task is to retrieve the synset from its definition among all synsets.
 * Browser-safe: the WordNet files are read by `src/node/wordnet.ts`; this
 * module only parses text and builds feature arrays.
 */

/** Part of speech as written in WordNet's ss_type field ('s' = adjective satellite). */
export type Pos = 'n' | 'v' | 'a' | 's' | 'r';

/** One WordNet synset. */
export interface Synset {
  /** ss_type followed by the 8-digit byte offset, e.g. "n02086723" (dog); satellites are "s...". */
  id: string;
  pos: Pos;
  /** Lemmas as written in the file (underscores kept, case kept), adjective markers (a)/(p)/(ip) removed. */
  lemmas: string[];
  /** The definition part of the gloss, examples removed; may be empty. */
  gloss: string;
}

/** What the training stack needs to know of a document: a unique id (and, for user data, its text). */
export interface CorpusDocument {
  id: string;
  /** The document's text, where the corpus has one (user data); WordNet synsets carry lemmas instead. */
  text?: string;
}

/**
 * Documents and queries as bags of hashed feature ids in CSR form:
 * the ids of document i are `docIds[docOffsets[i] .. docOffsets[i+1])`,
 * the ids of query q are `queryIds[queryOffsets[q] .. queryOffsets[q+1])`,
 * and query q's positive is document `queryDoc[q]`. Several queries may share
 * a document; a document may have no query (it is still retrievable and, for
 * the full softmax over 'all' documents, a negative). In the WordNet corpus
 * query i is the gloss of document i (queryDoc[i] = i).
 */
export interface Corpus<D extends CorpusDocument = CorpusDocument> {
  docs: readonly D[];
  /** Number of hash buckets; every id is in [0, featureBuckets). */
  featureBuckets: number;
  /** Seed of the feature hash. */
  seed: number;
  docOffsets: Int32Array;
  docIds: Int32Array;
  queryOffsets: Int32Array;
  queryIds: Int32Array;
  /** [numQueries] the positive document of each query. */
  queryDoc: Int32Array;
  /** Indices of training queries, ascending. */
  trainQueries: Int32Array;
  /** Indices of held-out queries, ascending. */
  testQueries: Int32Array;
  /**
   * How the feature ids were made from text (buckets, seed and per-tower n-grams).
   * An exported model carries it, so that encoding new text gives exactly these ids.
   * Set by buildCorpus and the loaders; a hand-made corpus may leave it out (it then cannot be exported).
   */
  features?: FeatureConfig;
  /** The text of each query, where the corpus keeps it (the loaders do; WordNet queries are the synsets' glosses). */
  queryTexts?: readonly string[];
}

/**
 * A synset as document text for an exported WordNet model: its lemmas with
 * `_` as spaces, joined by ", " (the WordNet document tower splits at ",",
 * so `encodeDocuments([synsetText(s)])` sees exactly the features of `s`).
 */
export function synsetText(s: Pick<Synset, 'lemmas'>): string {
  return s.lemmas.map((l) => l.replace(/_/g, ' ')).join(', ');
}

/**
 * The corpus with each synset replaced by `{id, text}` (text = synsetText):
 * the same features, split and ids, without the synsets' glosses, lemma
 * arrays and parts of speech. Training reads only the feature arrays, so a
 * run on either corpus is bit-identical; what changes is the JS heap. The
 * synsets are ~65 MB of small objects, and every full garbage collection
 * marks all of them: a cache step allocates enough typed arrays to trigger
 * one every few steps (~28 ms each with the synsets, measured), which made
 * the whole-corpus cache step about a quarter slower on average.
 */
export function compactCorpus(corpus: Corpus<Synset>): Corpus {
  return { ...corpus, docs: corpus.docs.map((s) => ({ id: s.id, text: synsetText(s) })) };
}

const POS_BY_FILE: Record<string, readonly Pos[]> = {
  n: ['n'],
  v: ['v'],
  a: ['a', 's'],
  s: ['a', 's'],
  r: ['r'],
};

/**
 * The definition part of a WordNet gloss, examples removed.
 *
 * A gloss is `definition; "example one"; "example two"` with a few irregular
 * variants (`definition: "example"`, `definition; e.g. "example"`,
 * `... as in "example"`). The definition ends at the first double quote that
 * is outside parentheses and is preceded (ignoring spaces) by the start of the
 * gloss, `;`, `:`, `e.g.` or `as in`. Quotes elsewhere are part of the
 * definition (`a demand especially in the phrase "the call of duty"`,
 * `(e.g., "he said ...")`). Trailing spaces, `;`, `:`, `,` and a dangling
 * `e.g.` / `as in` are removed.
 */
export function stripExamples(gloss: string): string {
  if (typeof gloss !== 'string') {
    throw new ArgumentError('stripExamples', `gloss must be a string, got ${describe(gloss)}`);
  }
  let def = gloss.slice(0, definitionEnd(gloss));
  for (;;) {
    const next = def.replace(/[\s;:,]+$/, '').replace(/(?:\be\.g\.|\bas in)$/, '');
    if (next === def) break;
    def = next;
  }
  return def.trim();
}

/**
 * A WordNet gloss split into its definition ({@link stripExamples}) and its
 * example sentences: every double-quoted passage after the definition, in
 * order, trimmed, empty ones dropped.
 */
export function splitGloss(gloss: string): { definition: string; examples: string[] } {
  if (typeof gloss !== 'string') {
    throw new ArgumentError('splitGloss', `gloss must be a string, got ${describe(gloss)}`);
  }
  const rest = gloss.slice(definitionEnd(gloss));
  const examples = [...rest.matchAll(/"([^"]*)"/g)].map((m) => m[1]!.trim()).filter((x) => x !== '');
  return { definition: stripExamples(gloss), examples };
}

/** Where the definition of a gloss ends: the first example-opening quote (see stripExamples), or its length. */
function definitionEnd(gloss: string): number {
  let depth = 0;
  let cut = gloss.length;
  for (let i = 0; i < gloss.length; i++) {
    const c = gloss[i];
    if (c === '(') depth++;
    else if (c === ')') depth = Math.max(0, depth - 1);
    else if (c === '"' && depth === 0) {
      const before = gloss.slice(0, i).trimEnd();
      if (before === '' || /(?:[;:]|\be\.g\.|\bas in)$/.test(before)) {
        cut = i;
        break;
      }
    }
  }
  return cut;
}

/** Strips an adjective syntactic marker (a), (p) or (ip) from a data.adj word. */
function stripMarker(word: string): string {
  return word.replace(/\((?:a|p|ip)\)$/, '');
}

/**
 * Parses a WordNet `data.*` file (data.noun, data.verb, data.adj, data.adv).
 *
 * Lines starting with two spaces (the license header) and blank lines are
 * skipped. Each other line is
 * `offset lex_filenum ss_type w_cnt(2 hex) {word lex_id(hex)}×w_cnt
 *  p_cnt(3 dec) {symbol offset pos source/target}×p_cnt
 *  [f_cnt {+ f_num w_num}×f_cnt  (verbs only)] | gloss`.
 * Only id, pos, lemmas and the definition are kept. If `pos` is given, every
 * line's ss_type must belong to that file ('a' and 's' both belong to 'a').
 * A malformed line throws an ArgumentError naming its line number.
 */
export function parseDataFile(text: string, pos?: Pos): Synset[] {
  const op = 'parseDataFile';
  if (typeof text !== 'string') throw new ArgumentError(op, `text must be a string, got ${describe(text)}`);
  if (pos !== undefined && !(pos in POS_BY_FILE)) {
    throw new ArgumentError(op, `pos must be one of n, v, a, s, r, got ${describe(pos)}`);
  }
  const allowed = pos === undefined ? undefined : POS_BY_FILE[pos]!;
  const out: Synset[] = [];
  let lineNo = 0;
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    lineNo++;
    let line = text.slice(start, end);
    start = end + 1;
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (line.startsWith('  ') || line.trim() === '') continue;
    const fail = (what: string): never => {
      throw new ArgumentError(op, `line ${lineNo}: ${what}, got ${describe(line)}`);
    };
    const bar = line.indexOf(' | ');
    let head: string;
    let gloss: string;
    if (bar >= 0) {
      head = line.slice(0, bar);
      gloss = line.slice(bar + 3);
    } else if (/ \|\s*$/.test(line)) {
      head = line.slice(0, line.lastIndexOf(' |'));
      gloss = '';
    } else {
      head = line;
      gloss = '';
      fail('missing the " | " gloss separator');
    }
    const f = head.trim().split(/ +/);
    if (f.length < 6) fail('too few fields before the gloss');
    const offset = f[0]!;
    if (!/^\d{8}$/.test(offset)) fail(`synset_offset must be 8 digits (found ${JSON.stringify(offset)})`);
    const ssType = f[2]!;
    if (!(ssType in POS_BY_FILE)) fail(`ss_type must be n, v, a, s or r (found ${JSON.stringify(ssType)})`);
    if (allowed !== undefined && !allowed.includes(ssType as Pos)) {
      fail(`ss_type ${ssType} does not belong in a data file of pos ${pos}`);
    }
    const wCntText = f[3]!;
    if (!/^[0-9a-fA-F]{2}$/.test(wCntText)) fail(`w_cnt must be 2 hex digits (found ${JSON.stringify(wCntText)})`);
    const wCnt = parseInt(wCntText, 16);
    if (wCnt < 1) fail('w_cnt must be at least 1');
    if (f.length < 4 + 2 * wCnt + 1) fail(`w_cnt is ${wCnt} but the line has too few fields for that many words`);
    const lemmas: string[] = [];
    for (let w = 0; w < wCnt; w++) {
      const word = stripMarker(f[4 + 2 * w]!);
      if (word === '') fail(`word ${w + 1} is empty`);
      lemmas.push(word);
    }
    const pCntText = f[4 + 2 * wCnt]!;
    if (!/^\d{3}$/.test(pCntText)) fail(`p_cnt must be 3 digits (found ${JSON.stringify(pCntText)})`);
    const pCnt = parseInt(pCntText, 10);
    const afterPtrs = 4 + 2 * wCnt + 1 + 4 * pCnt;
    if (f.length < afterPtrs) fail(`p_cnt is ${pCnt} but the line has too few fields for that many pointers`);
    if (f.length > afterPtrs) {
      // Verb frames: f_cnt then f_cnt triples "+ f_num w_num".
      const fCnt = Number(f[afterPtrs]);
      if (!Number.isInteger(fCnt) || f.length !== afterPtrs + 1 + 3 * fCnt) {
        fail('unexpected fields between the pointers and the gloss');
      }
    }
    out.push({ id: ssType + offset, pos: ssType as Pos, lemmas, gloss: stripExamples(gloss.trim()) });
  }
  return out;
}

/** Options of {@link buildCorpus}. */
export interface BuildCorpusOptions {
  /** Number of hash buckets for both towers (default 2^18). */
  featureBuckets?: number;
  /** Seed of the feature hash and (unless splitSeed is given) of the split (default 0). */
  seed?: number;
  /** Fraction of queries held out for testing, in [0, 1] (default 0.05). */
  testFraction?: number;
  /** Seed of the train/test split hash (default: seed). */
  splitSeed?: number;
  /** Deduplicate ids within one example (default true, see text.ts). */
  dedup?: boolean;
}

function checkUint32(op: string, name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) {
    throw new ArgumentError(op, `${name} must be an integer in [0, 2^32), got ${describe(v)}`);
  }
  return v;
}

/**
 * True iff the synset with this id is a test query: hashString(id, splitSeed) / 2^32 < testFraction.
 * The decision depends only on the id, so it is stable as the corpus grows or is reordered.
 */
export function isTestId(id: string, splitSeed: number, testFraction: number): boolean {
  return hashString(id, splitSeed) / 4294967296 < testFraction;
}

/**
 * Builds hashed features for every synset (documents from lemmas, queries
 * from glosses) and the train/test split of the queries. Every synset is a
 * document; a synset with an empty gloss has an empty query and is in neither
 * query set. Ids must be unique.
 */
export function buildCorpus(synsets: readonly Synset[], opts: BuildCorpusOptions = {}): Corpus<Synset> {
  const op = 'buildCorpus';
  if (!Array.isArray(synsets)) throw new ArgumentError(op, `synsets must be an array, got ${describe(synsets)}`);
  if (typeof opts !== 'object' || opts === null)
    throw new ArgumentError(op, `options must be an object, got ${describe(opts)}`);
  const featureBuckets = opts.featureBuckets ?? 1 << 18;
  if (!Number.isInteger(featureBuckets) || featureBuckets < 1 || featureBuckets > 0x7fffffff) {
    throw new ArgumentError(op, `featureBuckets must be an integer in [1, 2^31 - 1], got ${describe(featureBuckets)}`);
  }
  const seed = checkUint32(op, 'seed', opts.seed ?? 0);
  const splitSeed = checkUint32(op, 'splitSeed', opts.splitSeed ?? seed);
  const testFraction = opts.testFraction ?? 0.05;
  if (typeof testFraction !== 'number' || !(testFraction >= 0 && testFraction <= 1)) {
    throw new ArgumentError(op, `testFraction must be a number in [0, 1], got ${describe(testFraction)}`);
  }
  const dedup = opts.dedup ?? true;
  const seen = new Set<string>();
  for (let i = 0; i < synsets.length; i++) {
    const s = synsets[i] as Synset | undefined;
    if (
      typeof s !== 'object' ||
      s === null ||
      typeof s.id !== 'string' ||
      typeof s.gloss !== 'string' ||
      !Array.isArray(s.lemmas)
    ) {
      throw new ArgumentError(op, `synsets[${i}] must be a Synset { id, pos, lemmas, gloss }, got ${describe(s)}`);
    }
    if (seen.has(s.id))
      throw new ArgumentError(op, `synsets[${i}].id ${JSON.stringify(s.id)} is a duplicate; ids must be unique`);
    seen.add(s.id);
  }

  const n = synsets.length;
  const fo = { buckets: featureBuckets, seed, dedup };
  const docOffsets = new Int32Array(n + 1);
  const queryOffsets = new Int32Array(n + 1);
  const docParts: Int32Array[] = new Array(n);
  const queryParts: Int32Array[] = new Array(n);
  const train: number[] = [];
  const test: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = synsets[i]!;
    const d = docFeatures(s.lemmas, fo);
    const q = queryFeatures(s.gloss, fo);
    docParts[i] = d;
    queryParts[i] = q;
    docOffsets[i + 1] = docOffsets[i]! + d.length;
    queryOffsets[i + 1] = queryOffsets[i]! + q.length;
    if (s.gloss.trim() !== '') (isTestId(s.id, splitSeed, testFraction) ? test : train).push(i);
  }
  const docIds = new Int32Array(docOffsets[n]!);
  const queryIds = new Int32Array(queryOffsets[n]!);
  for (let i = 0; i < n; i++) {
    docIds.set(docParts[i]!, docOffsets[i]!);
    queryIds.set(queryParts[i]!, queryOffsets[i]!);
  }
  return {
    docs: synsets.slice(),
    featureBuckets,
    seed,
    docOffsets,
    docIds,
    queryOffsets,
    queryIds,
    queryDoc: Int32Array.from({ length: n }, (_, i) => i),
    trainQueries: Int32Array.from(train),
    testQueries: Int32Array.from(test),
    features: wordnetFeatureConfig({ buckets: featureBuckets, seed, dedup }),
  };
}

/** The Int32Array fields of a Corpus (its features, positives and split). */
export const CORPUS_ARRAYS = [
  'docOffsets',
  'docIds',
  'queryOffsets',
  'queryIds',
  'queryDoc',
  'trainQueries',
  'testQueries',
] as const;

/**
 * Checks that `corpus` is a consistent Corpus: CSR arrays whose offsets are
 * non-decreasing and end at the id arrays' lengths, feature ids in
 * [0, featureBuckets), one positive document per query, and train/test
 * query indices in range. O(size of the corpus); the trainer calls it once.
 */
export function checkCorpus(op: string, corpus: unknown): asserts corpus is Corpus {
  const c = corpus as Partial<Corpus> | null;
  if (
    c === null ||
    typeof c !== 'object' ||
    !Array.isArray(c.docs) ||
    !Number.isInteger(c.featureBuckets) ||
    (c.featureBuckets as number) < 1 ||
    CORPUS_ARRAYS.some((k) => !(c[k] instanceof Int32Array))
  ) {
    throw new ArgumentError(
      op,
      `corpus must be a Corpus {docs, featureBuckets, docOffsets, docIds, queryOffsets, queryIds, queryDoc, trainQueries, testQueries} (from buildCorpus, syntheticCorpus or a loader), got ${describe(corpus)}`,
    );
  }
  const numDocs = c.docs!.length;
  const csr = (name: string, offsets: Int32Array, ids: Int32Array, rows: number): void => {
    if (offsets.length !== rows + 1 || offsets[0] !== 0 || offsets[rows] !== ids.length) {
      throw new ArgumentError(
        op,
        `corpus.${name}Offsets must have ${rows + 1} entries from 0 to ${name}Ids.length = ${ids.length}, got length ${offsets.length} ending at ${offsets[offsets.length - 1]}`,
      );
    }
    for (let i = 0; i < rows; i++) {
      if (offsets[i + 1]! < offsets[i]!) throw new ArgumentError(op, `corpus.${name}Offsets decreases at row ${i}`);
    }
    for (let k = 0; k < ids.length; k++) {
      if (!(ids[k]! >= 0 && ids[k]! < c.featureBuckets!)) {
        throw new ArgumentError(
          op,
          `corpus.${name}Ids[${k}] is ${ids[k]}; need a feature id in [0, ${c.featureBuckets})`,
        );
      }
    }
  };
  csr('doc', c.docOffsets!, c.docIds!, numDocs);
  const numQueries = c.queryDoc!.length;
  csr('query', c.queryOffsets!, c.queryIds!, numQueries);
  for (let q = 0; q < numQueries; q++) {
    const d = c.queryDoc![q]!;
    if (!(d >= 0 && d < numDocs))
      throw new ArgumentError(op, `corpus.queryDoc[${q}] is ${d}; need a document index in [0, ${numDocs})`);
  }
  for (const k of ['trainQueries', 'testQueries'] as const) {
    const a = c[k]!;
    for (let i = 0; i < a.length; i++) {
      if (!(a[i]! >= 0 && a[i]! < numQueries))
        throw new ArgumentError(op, `corpus.${k}[${i}] is ${a[i]}; need a query index in [0, ${numQueries})`);
    }
  }
  if (c.features !== undefined) {
    const f = checkFeatureConfig(op, c.features);
    if (f.buckets !== c.featureBuckets)
      throw new ArgumentError(
        op,
        `corpus.features.buckets is ${f.buckets} but corpus.featureBuckets is ${c.featureBuckets}; they must agree`,
      );
  }
  if (c.queryTexts !== undefined && (!Array.isArray(c.queryTexts) || c.queryTexts.length !== numQueries))
    throw new ArgumentError(
      op,
      `corpus.queryTexts must be an array of ${numQueries} strings, got ${describe(c.queryTexts)}`,
    );
}

/** Row i of a CSR bag: `ids[offsets[i] .. offsets[i+1])` as a view (no copy). */
export function csrRow(offsets: Int32Array, ids: Int32Array, i: number): Int32Array {
  if (!Number.isInteger(i) || i < 0 || i + 1 >= offsets.length) {
    throw new ArgumentError('csrRow', `row must be an integer in [0, ${offsets.length - 1}), got ${describe(i)}`);
  }
  return ids.subarray(offsets[i]!, offsets[i + 1]!);
}

/** Options of {@link syntheticCorpus}. */
export interface SyntheticCorpusOptions {
  /** Number of documents (synsets), >= 1. */
  numDocs: number;
  /** Number of distinct lemma words documents are built from, >= 4. */
  vocab: number;
  /** Generator seed; also the feature hash seed. */
  seed: number;
  /** Definition tokens per lemma word (default 3). */
  defsPerWord?: number;
  /** Size of the definition-token vocabulary (default 2 * vocab). */
  defVocab?: number;
  /** Of a word's definition tokens, how many appear in each query (default 2, at most defsPerWord). */
  defsPerQueryWord?: number;
  /** Minimum and maximum number of lemma words per document (default [2, 4]). */
  wordsPerDoc?: [number, number];
  /** Noise tokens ("stop words") added to each query (default 2). */
  noiseTokens?: number;
  /** Size of the noise vocabulary (default 20). */
  noiseVocab?: number;
  /** Hash buckets (default 2^14). */
  featureBuckets?: number;
  /** Held-out fraction (default 0.1). */
  testFraction?: number;
}

const SYLLABLES = (() => {
  const cons = 'bdfgklmnprstvz';
  const vows = 'aeiou';
  const out: string[] = [];
  for (const c of cons) for (const v of vows) out.push(c + v);
  return out;
})();

function uniqueWords(rng: Rng, count: number, minSyl: number, maxSyl: number, taken: Set<string>): string[] {
  const out: string[] = [];
  let guard = 0;
  while (out.length < count) {
    if (++guard > count * 100 + 1000) {
      throw new ArgumentError('syntheticCorpus', `cannot generate ${count} distinct words; ask for fewer`);
    }
    const k = minSyl + rng.int(maxSyl - minSyl + 1);
    let w = '';
    for (let j = 0; j < k; j++) w += SYLLABLES[rng.int(SYLLABLES.length)]!;
    if (taken.has(w)) continue;
    taken.add(w);
    out.push(w);
  }
  return out;
}

/** k distinct values of [0, n) in random order (partial Fisher-Yates over a sparse map). */
function sampleDistinct(rng: Rng, n: number, k: number): number[] {
  const swapped = new Map<number, number>();
  const out: number[] = [];
  for (let i = 0; i < k; i++) {
    const j = i + rng.int(n - i);
    const vj = swapped.get(j) ?? j;
    const vi = swapped.get(i) ?? i;
    swapped.set(j, vi);
    out.push(vj);
  }
  return out;
}

/**
 * A small learnable reverse-dictionary-like corpus with the same shape as
 * the WordNet one. There are `vocab` random lemma words; each has a fixed
 * random "definition" of `defsPerWord` tokens drawn from a definition
 * vocabulary. A document is 2-4 distinct lemma words (distinct sets across
 * documents) forming its lemmas: the whole set as one multi-word lemma plus
 * each word alone. Its query (gloss) contains, for each of its words,
 * `defsPerQueryWord` of that word's definition tokens, plus `noiseTokens`
 * noise tokens, shuffled. A bag-of-features model can therefore learn the
 * word -> definition mapping. Deterministic in `seed`; ids are "n" + an
 * 8-digit index. Split and features as in {@link buildCorpus}.
 */
export function syntheticCorpus(opts: SyntheticCorpusOptions): Corpus<Synset> {
  const op = 'syntheticCorpus';
  if (typeof opts !== 'object' || opts === null)
    throw new ArgumentError(op, `options must be an object, got ${describe(opts)}`);
  const intIn = (name: string, v: unknown, lo: number, hi: number): number => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) {
      throw new ArgumentError(op, `${name} must be an integer in [${lo}, ${hi}], got ${describe(v)}`);
    }
    return v;
  };
  const numDocs = intIn('numDocs', opts.numDocs, 1, 10_000_000);
  const vocab = intIn('vocab', opts.vocab, 4, 1_000_000);
  const seed = checkUint32(op, 'seed', opts.seed);
  const defsPerWord = intIn('defsPerWord', opts.defsPerWord ?? 3, 1, 64);
  const defVocab = intIn('defVocab', opts.defVocab ?? 2 * vocab, defsPerWord, 10_000_000);
  const defsPerQueryWord = intIn('defsPerQueryWord', opts.defsPerQueryWord ?? Math.min(2, defsPerWord), 1, defsPerWord);
  const [minW, maxW] = opts.wordsPerDoc ?? [2, 4];
  intIn('wordsPerDoc[0]', minW, 1, vocab);
  intIn('wordsPerDoc[1]', maxW, minW, vocab);
  const noiseTokens = intIn('noiseTokens', opts.noiseTokens ?? 2, 0, 1000);
  const noiseVocab = intIn('noiseVocab', opts.noiseVocab ?? 20, 1, 1_000_000);
  // Number of distinct word sets available; refuse requests that cannot have distinct documents.
  let combos = 0;
  for (let k = minW; k <= maxW; k++) {
    let c = 1;
    for (let j = 0; j < k; j++) c = (c * (vocab - j)) / (j + 1);
    combos += c;
  }
  if (combos < 2 * numDocs) {
    throw new ArgumentError(
      op,
      `vocab ${vocab} with ${minW}-${maxW} words per document gives only ${Math.floor(combos)} distinct documents; need at least 2 * numDocs = ${2 * numDocs}`,
    );
  }

  const rng = new Rng(seed);
  const taken = new Set<string>();
  const words = uniqueWords(rng, vocab, 2, 3, taken);
  const defTokens = uniqueWords(rng, defVocab, 2, 4, taken);
  const noise = uniqueWords(rng, noiseVocab, 1, 1, taken);
  const definitions = words.map(() => sampleDistinct(rng, defVocab, defsPerWord));

  const synsets: Synset[] = [];
  const usedSets = new Set<string>();
  while (synsets.length < numDocs) {
    const k = minW + rng.int(maxW - minW + 1);
    const ws = sampleDistinct(rng, vocab, k);
    const key = ws
      .slice()
      .sort((a, b) => a - b)
      .join(',');
    if (usedSets.has(key)) continue;
    usedSets.add(key);
    const tokens: string[] = [];
    for (const w of ws) {
      const def = definitions[w]!;
      for (const j of sampleDistinct(rng, def.length, defsPerQueryWord)) tokens.push(defTokens[def[j]!]!);
    }
    for (let j = 0; j < noiseTokens; j++) tokens.push(noise[rng.int(noise.length)]!);
    for (let j = tokens.length - 1; j > 0; j--) {
      const r = rng.int(j + 1);
      const t = tokens[j]!;
      tokens[j] = tokens[r]!;
      tokens[r] = t;
    }
    const lemmaWords = ws.map((w) => words[w]!);
    synsets.push({
      id: 'n' + String(synsets.length).padStart(8, '0'),
      pos: 'n',
      lemmas: [lemmaWords.join('_'), ...lemmaWords],
      gloss: tokens.join(' '),
    });
  }
  return buildCorpus(synsets, {
    featureBuckets: opts.featureBuckets ?? 1 << 14,
    seed,
    testFraction: opts.testFraction ?? 0.1,
  });
}
