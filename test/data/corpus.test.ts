import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ArgumentError } from '../../src/errors.js';
import {
  CORPUS_ARRAYS,
  buildCorpus,
  compactCorpus,
  csrRow,
  isTestId,
  parseDataFile,
  stripExamples,
  syntheticCorpus,
  type Corpus,
  type Synset,
} from '../../src/data/corpus.js';
import { docFeatures, queryFeatures, tokenize } from '../../src/data/text.js';
import { loadWordNet } from '../../src/node/wordnet.js';
import { params } from '../util/props.js';
import { recipeConfig } from '../../src/train/config.js';
import { train } from '../../src/train/run.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/wordnet/', import.meta.url));
const fixture = (name: string): string => readFileSync(FIXTURES + name, 'utf8');

describe('stripExamples', () => {
  it('removes ;-separated quoted examples', () => {
    expect(stripExamples('informal term for a man; "you lucky dog"')).toBe('informal term for a man');
    expect(
      stripExamples('draw air into, and expel out of, the lungs; "I can breathe"; "The patient is respiring"'),
    ).toBe('draw air into, and expel out of, the lungs');
    expect(stripExamples('occurs in many breeds; often kept; "the dog barked"')).toBe(
      'occurs in many breeds; often kept',
    );
    expect(stripExamples('no examples here')).toBe('no examples here');
    expect(stripExamples('')).toBe('');
    expect(stripExamples('"only an example"')).toBe('');
  });

  it('handles the irregular separators found in WordNet', () => {
    expect(stripExamples('furnished with or authorized by a certificate: "certificated teachers"')).toBe(
      'furnished with or authorized by a certificate',
    );
    expect(stripExamples('incapable of being changed; e.g. "frozen prices"; "living on fixed incomes"')).toBe(
      'incapable of being changed',
    );
    expect(stripExamples('(of a binary operation) independent of order; as in e.g. "a x b = b x a"')).toBe(
      '(of a binary operation) independent of order',
    );
    expect(stripExamples('killed; `slain\' is formal or literary as in "slain warriors"; "the slain dragon"')).toBe(
      "killed; `slain' is formal or literary",
    );
  });

  it('keeps quotes that belong to the definition', () => {
    expect(stripExamples('a demand especially in the phrase "the call of duty"')).toBe(
      'a demand especially in the phrase "the call of duty"',
    );
    expect(stripExamples('spread by scattering ("straw" is archaic); "strew toys all over the carpet"')).toBe(
      'spread by scattering ("straw" is archaic)',
    );
    expect(stripExamples('a report of the exact words (e.g., "he said `I am a fool\'")')).toBe(
      'a report of the exact words (e.g., "he said `I am a fool\'")',
    );
  });
});

describe('parseDataFile on real WordNet 3.1 lines', () => {
  it('parses nouns (hex w_cnt, multi-word and apostrophe lemmas)', () => {
    const s = parseDataFile(fixture('data.noun'), 'n');
    expect(s.map((x) => x.id)).toEqual([
      'n00001740',
      'n00075610',
      'n00186627',
      'n02086723',
      'n03596028',
      'n07206789',
      'n10042764',
    ]);
    expect(s.every((x) => x.pos === 'n')).toBe(true);
    expect(s[0]).toEqual({
      id: 'n00001740',
      pos: 'n',
      lemmas: ['entity'],
      gloss: 'that which is perceived or known or inferred to have its own distinct existence (living or nonliving)',
    });
    expect(s[1]!.lemmas).toEqual([
      'blunder',
      'blooper',
      'bloomer',
      'bungle',
      'pratfall',
      'foul-up',
      'fuckup',
      'flub',
      'botch',
      'boner',
      'boo-boo',
    ]);
    expect(s[1]!.gloss).toBe('an embarrassing mistake');
    expect(s[2]!.lemmas.length).toBe(13);
    expect(s[2]!.lemmas[7]).toBe('C-section');
    expect(s[3]).toEqual({
      id: 'n02086723',
      pos: 'n',
      lemmas: ['dog', 'domestic_dog', 'Canis_familiaris'],
      gloss:
        'a member of the genus Canis (probably descended from the common wolf) that has been domesticated by man ' +
        'since prehistoric times; occurs in many breeds',
    });
    expect(s[4]!.lemmas).toEqual(["jack-o'-lantern"]);
    expect(s[5]).toEqual({
      id: 'n07206789',
      pos: 'n',
      lemmas: ['call', 'claim'],
      gloss: 'a demand especially in the phrase "the call of duty"',
    });
    expect(s[6]).toEqual({ id: 'n10042764', pos: 'n', lemmas: ['dog'], gloss: 'informal term for a man' });
  });

  it('parses verbs with frames', () => {
    const s = parseDataFile(fixture('data.verb'), 'v');
    expect(s).toEqual([
      {
        id: 'v00001740',
        pos: 'v',
        lemmas: ['breathe', 'take_a_breath', 'respire', 'suspire'],
        gloss: 'draw air into, and expel out of, the lungs',
      },
      { id: 'v00002573', pos: 'v', lemmas: ['respire'], gloss: 'breathe easily again, as after exertion or anxiety' },
      { id: 'v01380788', pos: 'v', lemmas: ['strew', 'straw'], gloss: 'spread by scattering ("straw" is archaic)' },
    ]);
  });

  it('parses adjectives and satellites, stripping (a), (p), (ip)', () => {
    const s = parseDataFile(fixture('data.adj'), 'a');
    expect(s).toEqual([
      {
        id: 'a00001740',
        pos: 'a',
        lemmas: ['able'],
        gloss:
          "(usually followed by `to') having the necessary means or skill or know-how or authority to do something",
      },
      { id: 's00014377', pos: 's', lemmas: ['abounding', 'galore'], gloss: 'existing in abundance' },
      { id: 's00019769', pos: 's', lemmas: ['handy', 'ready_to_hand'], gloss: 'easy to reach' },
      { id: 's00020141', pos: 's', lemmas: ['outback', 'remote'], gloss: 'inaccessible and sparsely populated' },
      { id: 'a00077529', pos: 'a', lemmas: ['afloat'], gloss: 'borne on the water; floating' },
      { id: 's00343524', pos: 's', lemmas: ['certificated'], gloss: 'furnished with or authorized by a certificate' },
    ]);
  });

  it('parses adverbs', () => {
    expect(parseDataFile(fixture('data.adv'), 'r')).toEqual([
      { id: 'r00001740', pos: 'r', lemmas: ['a_cappella', 'a_capella'], gloss: 'without musical accompaniment' },
      {
        id: 'r00001885',
        pos: 'r',
        lemmas: ['AD', 'A.D.', 'anno_Domini'],
        gloss: 'in the Christian era; used before dates after the supposed year Christ was born',
      },
    ]);
  });

  it('accepts CRLF line ends, no header and a missing pos', () => {
    const text = fixture('data.adv').replace(/\n/g, '\r\n');
    expect(parseDataFile(text)).toEqual(parseDataFile(fixture('data.adv'), 'r'));
    expect(parseDataFile('')).toEqual([]);
    expect(parseDataFile('00000001 00 n 01 x 0 000 | \n')).toEqual([
      { id: 'n00000001', pos: 'n', lemmas: ['x'], gloss: '' },
    ]);
  });

  it('rejects malformed lines with the line number', () => {
    expect(() => parseDataFile(fixture('data.adv'), 'n')).toThrow(/line 4: ss_type r does not belong/);
    expect(() => parseDataFile('  header\n00000001 00 n 01 x 0 000 no bar\n')).toThrow(
      /line 2: missing the " \| " gloss separator/,
    );
    expect(() => parseDataFile('00000001 00 n 03 x 0 000 | g\n')).toThrow(/too few fields/);
    expect(() => parseDataFile('00000001 00 n 01 x 0 002 @ 00000002 n 0000 | g\n')).toThrow(/pointers/);
    expect(() => parseDataFile('0001 00 n 01 x 0 000 | g\n')).toThrow(ArgumentError);
    expect(() => parseDataFile('00000001 00 q 01 x 0 000 | g\n')).toThrow(/ss_type/);
    expect(() => parseDataFile('00000001 00 v 01 x 0 000 07 + 01 00 | g\n')).toThrow(/unexpected fields/);
    expect(() => parseDataFile('x', 'z' as 'n')).toThrow(/pos must be one of/);
  });
});

function fixtureSynsets(): Synset[] {
  return [
    ...parseDataFile(fixture('data.noun'), 'n'),
    ...parseDataFile(fixture('data.verb'), 'v'),
    ...parseDataFile(fixture('data.adj'), 'a'),
    ...parseDataFile(fixture('data.adv'), 'r'),
  ];
}

function checkCorpusShape(c: Corpus): void {
  const n = c.docs.length;
  expect(c.docOffsets.length).toBe(n + 1);
  expect(c.queryOffsets.length).toBe(n + 1);
  expect(c.docOffsets[0]).toBe(0);
  expect(c.queryOffsets[0]).toBe(0);
  expect(c.docOffsets[n]).toBe(c.docIds.length);
  expect(c.queryOffsets[n]).toBe(c.queryIds.length);
  for (let i = 0; i < n; i++) {
    expect(c.docOffsets[i + 1]! >= c.docOffsets[i]!).toBe(true);
    expect(c.queryOffsets[i + 1]! >= c.queryOffsets[i]!).toBe(true);
  }
  for (const id of c.docIds) expect(id >= 0 && id < c.featureBuckets).toBe(true);
  for (const id of c.queryIds) expect(id >= 0 && id < c.featureBuckets).toBe(true);
}

describe('buildCorpus', () => {
  it('stores per-document and per-query features in CSR form', () => {
    const syn = fixtureSynsets();
    const c = buildCorpus(syn, { featureBuckets: 4096, seed: 9, testFraction: 0.3 });
    checkCorpusShape(c);
    expect(c.docs).toEqual(syn);
    expect(c.featureBuckets).toBe(4096);
    expect(c.seed).toBe(9);
    for (let i = 0; i < syn.length; i++) {
      expect(Array.from(csrRow(c.docOffsets, c.docIds, i))).toEqual(
        Array.from(docFeatures(syn[i]!.lemmas, { buckets: 4096, seed: 9 })),
      );
      expect(Array.from(csrRow(c.queryOffsets, c.queryIds, i))).toEqual(
        Array.from(queryFeatures(syn[i]!.gloss, { buckets: 4096, seed: 9 })),
      );
    }
    // Split is by hash of the id, and covers every query exactly once.
    const test = new Set(c.testQueries);
    const train = new Set(c.trainQueries);
    for (let i = 0; i < syn.length; i++) {
      expect(test.has(i) !== train.has(i)).toBe(true);
      expect(test.has(i)).toBe(isTestId(syn[i]!.id, 9, 0.3));
    }
    expect(Array.from(c.trainQueries)).toEqual(Array.from(c.trainQueries).sort((a, b) => a - b));
  });

  it('keeps empty-gloss synsets as documents but not as queries', () => {
    const syn: Synset[] = [
      { id: 'n1', pos: 'n', lemmas: ['a'], gloss: '' },
      { id: 'n2', pos: 'n', lemmas: ['b'], gloss: 'bee' },
      { id: 'n3', pos: 'n', lemmas: ['c'], gloss: '  ' },
    ];
    for (const testFraction of [0, 1]) {
      const c = buildCorpus(syn, { testFraction });
      expect(c.docs.length).toBe(3);
      expect(c.docOffsets[1]! > 0).toBe(true);
      expect([...c.trainQueries, ...c.testQueries]).toEqual([1]);
      expect(testFraction === 0 ? c.trainQueries.length : c.testQueries.length).toBe(1);
    }
  });

  it('the split depends only on the ids, not on order or the other synsets', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.stringMatching(/^[nvar][0-9]{8}$/), { minLength: 1, maxLength: 40 }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (ids, seed, frac) => {
          const syn = ids.map((id) => ({ id, pos: 'n' as const, lemmas: ['x'], gloss: 'y' }));
          const a = buildCorpus(syn, { featureBuckets: 64, seed, testFraction: frac });
          const rev = buildCorpus(syn.slice().reverse(), { featureBuckets: 64, seed, testFraction: frac });
          const testIds = (c: Corpus): string[] => Array.from(c.testQueries, (i) => c.docs[i]!.id).sort();
          expect(testIds(rev)).toEqual(testIds(a));
          expect(a.trainQueries.length + a.testQueries.length).toBe(ids.length);
        },
      ),
      params(100),
    );
  });

  it('validates its input', () => {
    const s: Synset = { id: 'n1', pos: 'n', lemmas: ['a'], gloss: 'g' };
    expect(() => buildCorpus([s, { ...s }])).toThrow(/duplicate/);
    expect(() => buildCorpus([s], { testFraction: 1.5 })).toThrow(/testFraction/);
    expect(() => buildCorpus([s], { featureBuckets: 0 })).toThrow(/featureBuckets/);
    expect(() => buildCorpus([s], { seed: -1 })).toThrow(/seed/);
    expect(() => buildCorpus([{ id: 'n2' } as Synset])).toThrow(/synsets\[0\]/);
    expect(() => csrRow(new Int32Array([0, 1]), new Int32Array([5]), 1)).toThrow(ArgumentError);
  });
});

describe('compactCorpus', () => {
  it('keeps every feature array, the split and the ids; documents become {id, text}; training is bit-identical', () => {
    const syn = loadWordNet().slice(0, 600);
    const full = buildCorpus(syn, { featureBuckets: 1 << 12, seed: 3, testFraction: 0.2 });
    const slim = compactCorpus(full);
    for (const k of CORPUS_ARRAYS) expect(slim[k]).toBe(full[k]);
    expect(slim.features).toEqual(full.features);
    expect(slim.docs).toEqual(
      syn.map((s) => ({ id: s.id, text: s.lemmas.map((l) => l.replace(/_/g, ' ')).join(', ') })),
    );
    expect(slim.docs.some((d) => d.text!.includes(' '))).toBe(true); // '_' became ' ' somewhere
    const cfg = recipeConfig('cache', { steps: 12, batch: 16, cacheSize: 64, dim: 8, evalQueries: 40 });
    const a = train(full, cfg);
    const b = train(slim, cfg);
    expect(b.final).toEqual(a.final);
    expect(b.model.queryTable.data).toEqual(a.model.queryTable.data);
    expect(b.model.docTable.data).toEqual(a.model.docTable.data);
  });
});

describe('syntheticCorpus', () => {
  const opts = { numDocs: 400, vocab: 150, seed: 11 };

  it('has the Corpus shape and is deterministic', () => {
    const c = syntheticCorpus(opts);
    checkCorpusShape(c);
    expect(c.docs.length).toBe(400);
    expect(new Set(c.docs.map((d) => d.id)).size).toBe(400);
    expect(c.trainQueries.length + c.testQueries.length).toBe(400);
    expect(c.testQueries.length).toBeGreaterThan(10);
    const again = syntheticCorpus(opts);
    expect(again.docs).toEqual(c.docs);
    expect(Array.from(again.queryIds)).toEqual(Array.from(c.queryIds));
    expect(syntheticCorpus({ ...opts, seed: 12 }).docs).not.toEqual(c.docs);
    for (const d of c.docs) {
      const words = d.lemmas[0]!.split('_');
      expect(words.length >= 2 && words.length <= 4).toBe(true);
      expect(d.lemmas.slice(1)).toEqual(words);
      expect(tokenize(d.gloss).length).toBe(2 * words.length + 2);
    }
  });

  it('is learnable: word -> definition-token co-occurrence from train queries retrieves test queries', () => {
    const c = syntheticCorpus(opts);
    // P(query token | lemma word), estimated on training pairs only.
    const pair = new Map<string, Map<string, number>>();
    const wordCount = new Map<string, number>();
    const words = (i: number): string[] => c.docs[i]!.lemmas.slice(1);
    for (const i of c.trainQueries) {
      for (const w of words(i)) {
        wordCount.set(w, (wordCount.get(w) ?? 0) + 1);
        let m = pair.get(w);
        if (m === undefined) pair.set(w, (m = new Map()));
        for (const t of new Set(tokenize(c.docs[i]!.gloss))) m.set(t, (m.get(t) ?? 0) + 1);
      }
    }
    let hits = 0;
    for (const q of c.testQueries) {
      const toks = new Set(tokenize(c.docs[q]!.gloss));
      const score = (d: number): number => {
        let s = 0;
        for (const w of words(d)) {
          const m = pair.get(w);
          if (m === undefined) continue;
          for (const t of toks) s += (m.get(t) ?? 0) / wordCount.get(w)!;
        }
        return s / words(d).length;
      };
      const st = score(q);
      let rank = 0;
      for (let d = 0; d < c.docs.length; d++) if (d !== q && score(d) >= st) rank++;
      if (rank < 10) hits++;
    }
    // Chance level is 10 / 400 = 2.5%.
    expect(hits / c.testQueries.length).toBeGreaterThan(0.6);
  });

  it('validates options', () => {
    expect(() => syntheticCorpus({ numDocs: 0, vocab: 10, seed: 1 })).toThrow(/numDocs/);
    expect(() => syntheticCorpus({ numDocs: 10_000, vocab: 5, seed: 1 })).toThrow(/distinct documents/);
    expect(() => syntheticCorpus({ numDocs: 10, vocab: 50, seed: 1, wordsPerDoc: [3, 2] })).toThrow(/wordsPerDoc/);
  });
});

describe('corpus split on the real WordNet', () => {
  it('is disjoint, covering, near the requested fraction, and keeps all documents', () => {
    const syn = loadWordNet();
    const c = buildCorpus(syn, { featureBuckets: 1 << 18, seed: 0, testFraction: 0.05 });
    expect(c.docs.length).toBe(117791);
    expect(c.docOffsets.length).toBe(117792);
    const n = c.docs.length;
    const mark = new Uint8Array(n);
    for (const i of c.trainQueries) mark[i]! += 1;
    for (const i of c.testQueries) mark[i]! += 2;
    let both = 0,
      none = 0;
    for (let i = 0; i < n; i++) {
      if (mark[i] === 3) both++;
      if (mark[i] === 0 && c.docs[i]!.gloss !== '') none++;
    }
    expect(both).toBe(0);
    expect(none).toBe(0);
    // Every WordNet 3.1 synset has a non-empty definition.
    expect(c.trainQueries.length + c.testQueries.length).toBe(n);
    // Binomial(117791, 0.05): sd ≈ 75 queries ≈ 0.0006; allow 4 sd.
    const frac = c.testQueries.length / n;
    expect(Math.abs(frac - 0.05)).toBeLessThan(0.0026);
    // Deterministic: the same ids are held out for the same seed, recomputed from scratch.
    expect(Array.from(c.testQueries).every((i) => isTestId(c.docs[i]!.id, 0, 0.05))).toBe(true);
    expect(c.testQueries.length).toBe(syn.filter((s) => isTestId(s.id, 0, 0.05)).length);
    // Every document has features; the average bag sizes are sensible.
    let emptyDocs = 0;
    for (let i = 0; i < n; i++) if (c.docOffsets[i + 1]! <= c.docOffsets[i]!) emptyDocs++;
    expect(emptyDocs).toBe(0);
    expect(c.docIds.length / n).toBeGreaterThan(10);
    expect(c.queryIds.length / n).toBeGreaterThan(10);
  });
});
