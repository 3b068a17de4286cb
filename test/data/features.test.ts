/**
 * The feature configuration (FeatureConfig, textFeatures): validation, the
 * strings each option produces, and — the point of it — that the WordNet
 * configuration reproduces the original query/document extractors bit for
 * bit (ids AND their order, which the embedding bag's float sums depend
 * on), so the demo's numbers do not move. The oracle below is the
 * extractor code as it was before the configuration existed (main cc620e2).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ArgumentError } from '../../src/errors.js';
import {
  DEFAULT_TEXT_FEATURES,
  WORDNET_DOC_FEATURES,
  WORDNET_QUERY_FEATURES,
  checkFeatureConfig,
  docFeatures,
  hashString,
  queryFeatures,
  resolveFeatureConfig,
  textFeatures,
  tokenize,
  towerFeatureStrings,
  wordnetFeatureConfig,
} from '../../src/data/text.js';
import { buildCorpus, synsetText } from '../../src/data/corpus.js';
import { loadWordNet } from '../../src/node/wordnet.js';
import { params } from '../util/props.js';

/** The query extractor before FeatureConfig: `u:` unigrams then `b:` bigrams. */
function oldQueryStrings(gloss: string): string[] {
  const toks = tokenize(gloss);
  const out: string[] = [];
  for (const t of toks) out.push('u:' + t);
  for (let i = 0; i + 1 < toks.length; i++) out.push('b:' + toks[i] + ' ' + toks[i + 1]);
  return out;
}

/** The document extractor before FeatureConfig: per lemma `l:`, then per word `w:` and `c:` 3/4-grams. */
function oldDocStrings(lemmas: readonly string[]): string[] {
  const out: string[] = [];
  for (const lemma of lemmas) {
    const words = tokenize(lemma.replace(/_/g, ' '));
    if (words.length >= 2) out.push('l:' + words.join(' '));
    for (const w of words) {
      out.push('w:' + w);
      const cps = Array.from('#' + w + '#');
      for (let n = 3; n <= 4; n++) {
        for (let i = 0; i + n <= cps.length; i++) out.push('c:' + cps.slice(i, i + n).join(''));
      }
    }
  }
  return out;
}

/** Hash + first-occurrence dedup, as the old featureIds did. */
function oldIds(strings: string[], buckets: number, seed: number, dedup: boolean): number[] {
  const out: number[] = [];
  const seen = new Set<number>();
  for (const s of strings) {
    const id = hashString(s, seed) % buckets;
    if (dedup && seen.has(id)) continue;
    seen.add(id);
    out.push(id);
  }
  return out;
}

const word = fc.stringMatching(/^[a-zA-Z0-9'éßÄ\u2019-]{0,9}$/);
const lemma = fc.array(word, { maxLength: 4 }).map((ws) => ws.join('_'));
const glossArb = fc.array(fc.oneof(word, fc.constantFrom(' ', ', ', '; ', '(', ')', ' "x" ', '_')), { maxLength: 20 });

describe('the WordNet configuration reproduces the original extractors', () => {
  it('on random glosses and lemma lists (strings, ids, order; dedup on and off)', () => {
    fc.assert(
      fc.property(
        glossArb.map((p) => p.join('')),
        fc.array(lemma, { maxLength: 5 }),
        fc.integer({ min: 1, max: 5000 }),
        fc.nat(),
        fc.boolean(),
        (gloss, lemmas, buckets, seed, dedup) => {
          expect(towerFeatureStrings(gloss, WORDNET_QUERY_FEATURES, 'query')).toEqual(oldQueryStrings(gloss));
          expect(towerFeatureStrings(lemmas, WORDNET_DOC_FEATURES, 'doc')).toEqual(oldDocStrings(lemmas));
          const cfg = wordnetFeatureConfig({ buckets, seed, dedup });
          expect(Array.from(queryFeatures(gloss, { buckets, seed, dedup }))).toEqual(
            oldIds(oldQueryStrings(gloss), buckets, seed, dedup),
          );
          expect(Array.from(textFeatures(gloss, cfg, 'query'))).toEqual(
            oldIds(oldQueryStrings(gloss), buckets, seed, dedup),
          );
          expect(Array.from(docFeatures(lemmas, { buckets, seed, dedup }))).toEqual(
            oldIds(oldDocStrings(lemmas), buckets, seed, dedup),
          );
          // The text form of a lemma list ("a, b c") gives the same ids as the list (no lemma holds a comma).
          expect(Array.from(textFeatures(lemmas.join(', '), cfg, 'doc'))).toEqual(
            oldIds(oldDocStrings(lemmas), buckets, seed, dedup),
          );
        },
      ),
      params(300),
    );
  });

  it('on all 117 791 WordNet synsets: buildCorpus ids equal the old extractors, and synsetText encodes to the same ids', () => {
    const synsets = loadWordNet();
    const corpus = buildCorpus(synsets, { seed: 0 });
    const cfg = corpus.features!;
    expect(cfg).toEqual(wordnetFeatureConfig({ buckets: 1 << 18, seed: 0 }));
    let qMismatch = 0,
      dMismatch = 0,
      tMismatch = 0;
    for (let i = 0; i < synsets.length; i++) {
      const s = synsets[i]!;
      const q = corpus.queryIds.subarray(corpus.queryOffsets[i]!, corpus.queryOffsets[i + 1]!);
      const d = corpus.docIds.subarray(corpus.docOffsets[i]!, corpus.docOffsets[i + 1]!);
      const oq = oldIds(oldQueryStrings(s.gloss), 1 << 18, 0, true);
      const od = oldIds(oldDocStrings(s.lemmas), 1 << 18, 0, true);
      if (q.length !== oq.length || q.some((v, k) => v !== oq[k])) qMismatch++;
      if (d.length !== od.length || d.some((v, k) => v !== od[k])) dMismatch++;
      const t = textFeatures(synsetText(s), cfg, 'doc');
      if (t.length !== od.length || t.some((v, k) => v !== od[k])) tMismatch++;
    }
    expect([qMismatch, dMismatch, tMismatch]).toEqual([0, 0, 0]);
    expect(synsetText(synsets.find((s) => s.id === 'n02086723')!)).toBe('dog, domestic dog, Canis familiaris');
  });
});

describe('towerFeatureStrings: what each option produces', () => {
  const tower = (o: Partial<typeof WORDNET_QUERY_FEATURES>) => ({
    wordNgrams: [],
    charNgrams: [],
    phrase: false,
    segmentSeparator: null,
    ...o,
  });

  it('word n-grams of any order, within segments, in ascending order after the per-word features', () => {
    expect(towerFeatureStrings('The cat sat down', tower({ wordNgrams: [1, 2, 3] }), 'query')).toEqual([
      'u:the',
      'u:cat',
      'u:sat',
      'u:down',
      'b:the cat',
      'b:cat sat',
      'b:sat down',
      'g3:the cat sat',
      'g3:cat sat down',
    ]);
    expect(towerFeatureStrings('a b; c d', tower({ wordNgrams: [2], segmentSeparator: ';' }), 'doc')).toEqual([
      'b:a b',
      'b:c d',
    ]);
  });

  it('character n-grams of #word#, the phrase, and the document unigram namespace', () => {
    expect(towerFeatureStrings('Dog', tower({ wordNgrams: [1], charNgrams: [2, 4] }), 'doc')).toEqual([
      'w:dog',
      'c:#d',
      'c:do',
      'c:og',
      'c:g#',
      'c:#dog',
      'c:dog#',
    ]);
    expect(towerFeatureStrings('hot dog', tower({ phrase: true }), 'query')).toEqual(['l:hot dog']);
    expect(towerFeatureStrings('dog', tower({ phrase: true }), 'query')).toEqual([]);
    expect(towerFeatureStrings('', DEFAULT_TEXT_FEATURES.doc, 'doc')).toEqual([]);
  });

  it('the user defaults: word unigrams, bigrams and character 3/4-grams in both towers', () => {
    expect(towerFeatureStrings('Red fox', DEFAULT_TEXT_FEATURES.query, 'query')).toEqual([
      'u:red',
      'c:#re',
      'c:red',
      'c:ed#',
      'c:#red',
      'c:red#',
      'u:fox',
      'c:#fo',
      'c:fox',
      'c:ox#',
      'c:#fox',
      'c:fox#',
      'b:red fox',
    ]);
    expect(towerFeatureStrings('Red fox', DEFAULT_TEXT_FEATURES.doc, 'doc')).toEqual([
      'w:red',
      'c:#re',
      'c:red',
      'c:ed#',
      'c:#red',
      'c:red#',
      'w:fox',
      'c:#fo',
      'c:fox',
      'c:ox#',
      'c:#fox',
      'c:fox#',
      'b:red fox',
    ]);
  });
});

describe('checkFeatureConfig / resolveFeatureConfig', () => {
  it('accepts the shipped configurations and round-trips through JSON', () => {
    for (const c of [DEFAULT_TEXT_FEATURES, wordnetFeatureConfig({ buckets: 1000, seed: 3 })]) {
      const checked = checkFeatureConfig('t', c);
      expect(checkFeatureConfig('t', JSON.parse(JSON.stringify(checked)))).toEqual(checked);
    }
  });

  it('merges overrides tower by tower', () => {
    const c = resolveFeatureConfig({ buckets: 4096, doc: { charNgrams: [3] } });
    expect(c.buckets).toBe(4096);
    expect(c.seed).toBe(0);
    expect(c.doc).toEqual({ ...DEFAULT_TEXT_FEATURES.doc, charNgrams: [3] });
    expect(c.query).toEqual(DEFAULT_TEXT_FEATURES.query);
  });

  it('rejects bad values, naming the field', () => {
    const bad: [unknown, RegExp][] = [
      [{ buckets: 0 }, /buckets must be an integer in \[1, 2\^31 - 1\], got 0/],
      [{ seed: -1 }, /seed must be an integer in \[0, 2\^32\), got -1/],
      [{ query: { wordNgrams: [2, 1] } }, /features\.query\.wordNgrams must be ascending without repeats, got \[2,1\]/],
      [{ doc: { charNgrams: [0] } }, /features\.doc\.charNgrams must be an array of integers in \[1, 16\], got \[0\]/],
      [{ doc: { wordNgrams: [], charNgrams: [] } }, /features\.doc has no features/],
      [{ query: { segmentSeparator: '' } }, /segmentSeparator must be a non-empty string or null/],
      [{ query: { bigrams: true } }, /features\.query has an unknown field "bigrams"/],
      [{ dedup: 'yes' }, /features\.dedup must be true or false/],
    ];
    for (const [o, re] of bad) expect(() => resolveFeatureConfig(o as never), JSON.stringify(o)).toThrow(re);
    expect(() => resolveFeatureConfig({ buckets: 0 })).toThrow(ArgumentError);
    expect(() => checkFeatureConfig('op', { ...DEFAULT_TEXT_FEATURES, extra: 1 })).toThrow(
      /op: features has an unknown field "extra"/,
    );
    expect(() => textFeatures(3 as never, DEFAULT_TEXT_FEATURES, 'query')).toThrow(/text must be a string/);
    expect(() => textFeatures('x', DEFAULT_TEXT_FEATURES, 'both' as never)).toThrow(/role must be 'query' or 'doc'/);
  });
});
