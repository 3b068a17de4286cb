import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ArgumentError } from '../../src/errors.js';
import {
  docFeatureStrings,
  docFeatures,
  hashFeatures,
  hashString,
  queryFeatureStrings,
  queryFeatures,
  tokenize,
} from '../../src/data/text.js';
import { params } from '../util/props.js';

/** Reference MurmurHash3 x86_32 over a byte array, written straight from the C source. */
function murmurBytes(data: Uint8Array, seed: number): number {
  const c1 = 0xcc9e2d51;
  const c2 = 0x1b873593;
  let h = seed | 0;
  const nblocks = data.length >> 2;
  for (let i = 0; i < nblocks; i++) {
    let k = data[4 * i]! | (data[4 * i + 1]! << 8) | (data[4 * i + 2]! << 16) | (data[4 * i + 3]! << 24);
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  let k = 0;
  const tail = nblocks * 4;
  const rem = data.length & 3;
  if (rem >= 3) k ^= data[tail + 2]! << 16;
  if (rem >= 2) k ^= data[tail + 1]! << 8;
  if (rem >= 1) {
    k ^= data[tail]!;
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
  }
  h ^= data.length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const enc = new TextEncoder();

describe('tokenize', () => {
  it('lowercases and splits on non-alphanumerics', () => {
    expect(tokenize('The  Dog, barked!')).toEqual(['the', 'dog', 'barked']);
    expect(tokenize('cesarean_delivery C-section A.D.')).toEqual(['cesarean', 'delivery', 'c', 'section', 'a', 'd']);
    expect(tokenize('')).toEqual([]);
    expect(tokenize(' ;:--() ')).toEqual([]);
    expect(tokenize('in AD 200')).toEqual(['in', 'ad', '200']);
  });

  it('keeps apostrophes only inside words', () => {
    expect(tokenize("a child's term")).toEqual(['a', "child's", 'term']);
    expect(tokenize('Don\u2019t')).toEqual(["don't"]);
    expect(tokenize("jack-o'-lantern")).toEqual(['jack', 'o', 'lantern']);
    expect(tokenize("(usually followed by `to')")).toEqual(['usually', 'followed', 'by', 'to']);
    expect(tokenize("'quoted' rock'n'roll")).toEqual(['quoted', "rock'n'roll"]);
  });

  it('handles non-ASCII letters', () => {
    expect(tokenize('Café Señor Ärger')).toEqual(['café', 'señor', 'ärger']);
  });

  it('tokens are non-empty, lowercase, and free of separators', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 60 }), (s) => {
        for (const t of tokenize(s)) {
          expect(t.length).toBeGreaterThan(0);
          expect(t).toBe(t.toLowerCase());
          expect(/[\s_\-.,;:"`()]/.test(t)).toBe(false);
          expect(t.startsWith("'") || t.endsWith("'")).toBe(false);
        }
      }),
      params(200),
    );
  });

  it('rejects non-strings', () => {
    expect(() => tokenize(3 as unknown as string)).toThrow(ArgumentError);
  });
});

describe('hashString (MurmurHash3 x86_32 over UTF-8)', () => {
  it('matches published test vectors', () => {
    expect(hashString('', 0)).toBe(0);
    expect(hashString('', 1)).toBe(0x514e28b7);
    expect(hashString('hello', 0)).toBe(0x248bfa47);
    expect(hashString('hello')).toBe(0x248bfa47);
    expect(hashString('The quick brown fox jumps over the lazy dog', 0)).toBe(0x2e4ff723);
    expect(hashString('The quick brown fox jumps over the lazy dog', 0x9747b28c)).toBe(0x2fa826cd);
    expect(hashString('Hello, world!', 1234)).toBe(0xfaf6cdb3);
  });

  it('encodes non-ASCII as UTF-8 (value checked with an independent Python implementation)', () => {
    expect(hashString('héllo wörld 😀', 42)).toBe(0x3e766bcd);
    expect(hashString('u:dog', 7)).toBe(0xe2f96ba3);
  });

  it('equals the byte-level reference on TextEncoder output for any string, lone surrogates included', () => {
    const anyUtf16 = fc
      .array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 20 })
      .map((cs) => String.fromCharCode(...cs));
    const str = fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), anyUtf16, fc.string({ maxLength: 40 }));
    fc.assert(
      fc.property(str, fc.integer({ min: 0, max: 0xffffffff }), (s, seed) => {
        expect(hashString(s, seed)).toBe(murmurBytes(enc.encode(s), seed));
      }),
      params(500),
    );
  });

  it('returns unsigned 32-bit integers and depends on the seed', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 30 }), fc.integer({ min: 0, max: 0xffffffff }), (s, seed) => {
        const h = hashString(s, seed);
        expect(Number.isInteger(h) && h >= 0 && h <= 0xffffffff).toBe(true);
        expect(hashString(s, seed)).toBe(h);
      }),
      params(200),
    );
    expect(hashString('dog', 1)).not.toBe(hashString('dog', 2));
  });

  it('validates the seed', () => {
    expect(() => hashString('x', -1)).toThrow(ArgumentError);
    expect(() => hashString('x', 2 ** 32)).toThrow(ArgumentError);
    expect(() => hashString('x', 1.5)).toThrow(/seed must be an integer/);
  });
});

describe('hashFeatures', () => {
  it('maps each string to hash % buckets, in order, duplicates kept', () => {
    const ids = hashFeatures(['a', 'b', 'a'], 1000, 3);
    expect(Array.from(ids)).toEqual([hashString('a', 3) % 1000, hashString('b', 3) % 1000, hashString('a', 3) % 1000]);
  });

  it('ids are always in [0, buckets)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.string({ maxLength: 12 }), { maxLength: 20 }),
        fc.integer({ min: 1, max: 0x7fffffff }),
        fc.integer({ min: 0, max: 0xffffffff }),
        (strs, buckets, seed) => {
          const ids = hashFeatures(strs, buckets, seed);
          expect(ids.length).toBe(strs.length);
          for (const id of ids) expect(id >= 0 && id < buckets).toBe(true);
        },
      ),
      params(200),
    );
  });

  it('validates its arguments', () => {
    expect(() => hashFeatures(['a'], 0, 0)).toThrow(ArgumentError);
    expect(() => hashFeatures(['a'], 2 ** 31, 0)).toThrow(/buckets/);
    expect(() => hashFeatures([1 as unknown as string], 10, 0)).toThrow(/strings\[0\]/);
  });
});

describe('query features', () => {
  it('are u: unigrams then b: bigrams', () => {
    expect(queryFeatureStrings('The dog, the DOG')).toEqual([
      'u:the',
      'u:dog',
      'u:the',
      'u:dog',
      'b:the dog',
      'b:dog the',
      'b:the dog',
    ]);
    expect(queryFeatureStrings('dog')).toEqual(['u:dog']);
    expect(queryFeatureStrings('')).toEqual([]);
  });

  it('hash the strings, deduplicated in first-occurrence order by default', () => {
    const o = { buckets: 1 << 20, seed: 5 };
    const expected = [...new Set(hashFeatures(queryFeatureStrings('The dog, the DOG'), o.buckets, o.seed))];
    expect(Array.from(queryFeatures('The dog, the DOG', o))).toEqual(expected);
    expect(expected.length).toBe(4);
    const all = queryFeatures('The dog, the DOG', { ...o, dedup: false });
    expect(Array.from(all)).toEqual(
      Array.from(hashFeatures(queryFeatureStrings('The dog, the DOG'), o.buckets, o.seed)),
    );
    expect(queryFeatures('', o).length).toBe(0);
  });

  it('keep unigrams and bigrams in separate namespaces', () => {
    fc.assert(
      fc.property(fc.array(fc.stringMatching(/^[a-z]{1,6}$/), { maxLength: 8 }), (words) => {
        const strs = queryFeatureStrings(words.join(' '));
        const uni = strs.filter((s) => s.startsWith('u:'));
        const bi = strs.filter((s) => s.startsWith('b:'));
        expect(uni.length + bi.length).toBe(strs.length);
        expect(uni.length).toBe(words.length);
        expect(bi.length).toBe(Math.max(0, words.length - 1));
        for (const u of uni) expect(u.includes(' ')).toBe(false);
        for (const b of bi) expect(b.split(' ').length).toBe(2);
      }),
      params(100),
    );
    // The same text in different roles hashes to different buckets.
    const o = { buckets: 0x7fffffff, seed: 0 };
    expect(queryFeatures('dog', o)[0]).not.toBe(docFeatures(['dog'], o)[1]);
    expect(hashString('u:new york', 0)).not.toBe(hashString('b:new york', 0));
  });

  it('are deterministic and in range', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), fc.integer({ min: 1, max: 5000 }), fc.nat(), (g, buckets, seed) => {
        const a = queryFeatures(g, { buckets, seed });
        const b = queryFeatures(g, { buckets, seed });
        expect(Array.from(a)).toEqual(Array.from(b));
        expect(new Set(a).size).toBe(a.length);
        for (const id of a) expect(id >= 0 && id < buckets).toBe(true);
      }),
      params(200),
    );
  });
});

describe('document features', () => {
  it('are the whole multi-word lemma, the words and their #-padded character 3/4-grams', () => {
    expect(docFeatureStrings(['dog'])).toEqual(['w:dog', 'c:#do', 'c:dog', 'c:og#', 'c:#dog', 'c:dog#']);
    expect(docFeatureStrings(['Canis_familiaris']).slice(0, 2)).toEqual(['l:canis familiaris', 'w:canis']);
    expect(docFeatureStrings(['a'])).toEqual(['w:a', 'c:#a#']);
    expect(docFeatureStrings(['A.D.'])).toEqual(['l:a d', 'w:a', 'c:#a#', 'w:d', 'c:#d#']);
    expect(docFeatureStrings(['é'])).toEqual(['w:é', 'c:#é#']);
    expect(docFeatureStrings([])).toEqual([]);
  });

  it('count n-grams as expected for every word', () => {
    fc.assert(
      fc.property(fc.array(fc.stringMatching(/^[a-z]{1,9}(_[a-z]{1,9}){0,2}$/), { maxLength: 4 }), (lemmas) => {
        const strs = docFeatureStrings(lemmas);
        let expected = 0;
        for (const l of lemmas) {
          const words = l.split('_');
          if (words.length > 1) expected++;
          for (const w of words) expected += 1 + (w.length + 2 - 2) + Math.max(0, w.length + 2 - 3);
        }
        expect(strs.length).toBe(expected);
        const ids = docFeatures(lemmas, { buckets: 97, seed: 1 });
        expect(new Set(ids).size).toBe(ids.length);
        expect(Array.from(ids)).toEqual([...new Set(hashFeatures(strs, 97, 1))]);
      }),
      params(100),
    );
  });

  it('validate options', () => {
    expect(() => docFeatures(['dog'], { buckets: 0, seed: 0 })).toThrow(ArgumentError);
    expect(() => docFeatures(['dog'], { buckets: 10, seed: -3 })).toThrow(/seed/);
    expect(() => docFeatures('dog' as unknown as string[], { buckets: 10, seed: 0 })).toThrow(/lemmas/);
    expect(() => queryFeatures('dog', null as unknown as { buckets: number; seed: number })).toThrow(/options/);
  });
});
