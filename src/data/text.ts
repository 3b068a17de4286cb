import { ArgumentError, describe } from '../errors.js';

/**
 * Text features for the reverse-dictionary experiment: a tokenizer, a stable
 * 32-bit string hash and the hashed feature extractors for queries (glosses)
 * and documents (synset lemmas). Browser-safe; no dependencies.
 *
 * Feature strings carry a namespace prefix so that the same text in
 * different roles hashes to unrelated buckets:
 *
 *   queries   `u:<word>`          every token of the gloss
 *             `b:<w1> <w2>`       every pair of adjacent tokens
 *   documents `w:<word>`          every word of every lemma (lemma split on `_`
 *                                 and then tokenized like a gloss)
 *             `l:<w1> <w2> ...`   the whole lemma, only when it has two or
 *                                 more words (a one-word lemma is its `w:`)
 *             `c:<n-gram>`        character 3-grams and 4-grams of every lemma
 *                                 word padded as `#word#` (code points, so
 *                                 non-ASCII letters count once); "dog" gives
 *                                 #do dog og# #dog dog#, "a" gives only #a#
 *
 * Each feature string is hashed with {@link hashString} (MurmurHash3 x86_32
 * over UTF-8) and reduced modulo the bucket count.
 *
 * Duplicates: by default an example's ids are a SET — each bucket id appears
 * at most once, in order of first occurrence. Sum/mean bags then do not let
 * words repeated in a long gloss ("a", "of", "the") or n-grams shared by
 * several lemmas of one synset ("dog", "domestic_dog") dominate the bag. Pass
 * `dedup: false` to keep every occurrence (term-frequency bags).
 */

/** Options shared by {@link queryFeatures} and {@link docFeatures}. */
export interface FeatureOptions {
  /** Number of hash buckets (embedding rows), an integer in [1, 2^31 - 1]. */
  buckets: number;
  /** Hash seed, an integer in [0, 2^32). */
  seed: number;
  /** Remove repeated bucket ids within one example (default true). */
  dedup?: boolean;
}

const TOKEN_RE = /[\p{L}\p{N}]+(?:'[\p{L}\p{N}]+)*/gu;

/**
 * Splits text into lowercase word tokens. A token is a maximal run of Unicode
 * letters and digits; an apostrophe (' or ’) is kept only between two such
 * runs, so "child's" and "jack-o'-lantern" give `child's` and `jack o' lantern`
 * -> ["jack", "o", "lantern"]; quote-like apostrophes (`` `to' ``) vanish.
 * Everything else (spaces, punctuation, `_`, `-`) separates tokens.
 */
export function tokenize(text: string): string[] {
  if (typeof text !== 'string') {
    throw new ArgumentError('tokenize', `text must be a string, got ${describe(text)}`);
  }
  const normalized = text.toLowerCase().replace(/\u2019/g, "'");
  return normalized.match(TOKEN_RE) ?? [];
}

function checkSeed(op: string, seed: unknown): number {
  if (typeof seed !== 'number' || !Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new ArgumentError(op, `seed must be an integer in [0, 2^32), got ${describe(seed)}`);
  }
  return seed >>> 0;
}

function checkBuckets(op: string, buckets: unknown): number {
  if (typeof buckets !== 'number' || !Number.isInteger(buckets) || buckets < 1 || buckets > 0x7fffffff) {
    throw new ArgumentError(op, `buckets must be an integer in [1, 2^31 - 1], got ${describe(buckets)}`);
  }
  return buckets;
}

/**
 * MurmurHash3 x86_32 (Austin Appleby, public domain) of the UTF-8 encoding of
 * `s`, as an unsigned 32-bit integer. The UTF-8 bytes are produced on the fly
 * from the UTF-16 code units (surrogate pairs combined; a lone surrogate is
 * encoded as U+FFFD, exactly like TextEncoder), so the result equals the
 * reference C implementation run on `new TextEncoder().encode(s)` and is the
 * same on every engine (only Math.imul and 32-bit integer operations).
 *
 * Known values: hashString("", 0) = 0, hashString("", 1) = 0x514e28b7,
 * hashString("hello", 0) = 0x248bfa47,
 * hashString("The quick brown fox jumps over the lazy dog", 0) = 0x2e4ff723.
 */
export function hashString(s: string, seed = 0): number {
  if (typeof s !== 'string') {
    throw new ArgumentError('hashString', `s must be a string, got ${describe(s)}`);
  }
  return murmur3Utf8(s, checkSeed('hashString', seed));
}

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

function murmur3Utf8(s: string, seed: number): number {
  let h = seed | 0;
  let k = 0; // pending little-endian block
  let nb = 0; // bytes in the pending block (0..3)
  let len = 0; // total byte length

  const n = s.length;
  for (let i = 0; i < n; i++) {
    let c = s.charCodeAt(i);
    let bytes: number; // up to 4 bytes packed little-endian (first byte lowest)
    let count: number;
    if (c < 0x80) {
      bytes = c;
      count = 1;
    } else if (c < 0x800) {
      bytes = 0xc0 | (c >>> 6) | ((0x80 | (c & 0x3f)) << 8);
      count = 2;
    } else {
      if (c >= 0xd800 && c <= 0xdfff) {
        const d = i + 1 < n ? s.charCodeAt(i + 1) : 0;
        if (c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
          c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
          i++;
        } else {
          c = 0xfffd;
        }
      }
      if (c < 0x10000) {
        bytes = 0xe0 | (c >>> 12) | ((0x80 | ((c >>> 6) & 0x3f)) << 8) | ((0x80 | (c & 0x3f)) << 16);
        count = 3;
      } else {
        bytes =
          0xf0 |
          (c >>> 18) |
          ((0x80 | ((c >>> 12) & 0x3f)) << 8) |
          ((0x80 | ((c >>> 6) & 0x3f)) << 16) |
          ((0x80 | (c & 0x3f)) << 24);
        count = 4;
      }
    }
    for (let j = 0; j < count; j++) {
      k |= ((bytes >>> (8 * j)) & 0xff) << (8 * nb);
      nb++;
      len++;
      if (nb === 4) {
        k = Math.imul(k, C1);
        k = (k << 15) | (k >>> 17);
        k = Math.imul(k, C2);
        h ^= k;
        h = (h << 13) | (h >>> 19);
        h = (Math.imul(h, 5) + 0xe6546b64) | 0;
        k = 0;
        nb = 0;
      }
    }
  }
  if (nb > 0) {
    k = Math.imul(k, C1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, C2);
    h ^= k;
  }
  h ^= len;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Hashes each string to a bucket id `hashString(s, seed) % buckets` in
 * [0, buckets), in input order, duplicates kept.
 */
export function hashFeatures(strings: readonly string[], buckets: number, seed: number): Int32Array {
  if (!Array.isArray(strings)) {
    throw new ArgumentError('hashFeatures', `strings must be an array of strings, got ${describe(strings)}`);
  }
  const b = checkBuckets('hashFeatures', buckets);
  const sd = checkSeed('hashFeatures', seed);
  const out = new Int32Array(strings.length);
  for (let i = 0; i < strings.length; i++) {
    const s = strings[i];
    if (typeof s !== 'string') {
      throw new ArgumentError('hashFeatures', `strings[${i}] must be a string, got ${describe(s)}`);
    }
    out[i] = murmur3Utf8(s, sd) % b;
  }
  return out;
}

/** The feature strings of a query (a gloss): `u:` unigrams then `b:` bigrams, duplicates kept. */
export function queryFeatureStrings(gloss: string): string[] {
  if (typeof gloss !== 'string') {
    throw new ArgumentError('queryFeatures', `gloss must be a string, got ${describe(gloss)}`);
  }
  const toks = tokenize(gloss);
  const out: string[] = [];
  for (const t of toks) out.push('u:' + t);
  for (let i = 0; i + 1 < toks.length; i++) out.push('b:' + toks[i] + ' ' + toks[i + 1]);
  return out;
}

/**
 * The feature strings of a document (a synset's lemmas), lemma by lemma:
 * `l:` whole multi-word lemma, then per word `w:` word followed by its
 * `c:` 3-grams and 4-grams. Duplicates kept.
 */
export function docFeatureStrings(lemmas: readonly string[]): string[] {
  if (!Array.isArray(lemmas)) {
    throw new ArgumentError('docFeatures', `lemmas must be an array of strings, got ${describe(lemmas)}`);
  }
  const out: string[] = [];
  for (let li = 0; li < lemmas.length; li++) {
    const lemma = lemmas[li];
    if (typeof lemma !== 'string') {
      throw new ArgumentError('docFeatures', `lemmas[${li}] must be a string, got ${describe(lemma)}`);
    }
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

function featureIds(op: string, strings: string[], opts: FeatureOptions): Int32Array {
  if (typeof opts !== 'object' || opts === null) {
    throw new ArgumentError(op, `options must be an object { buckets, seed }, got ${describe(opts)}`);
  }
  const b = checkBuckets(op, opts.buckets);
  const sd = checkSeed(op, opts.seed);
  const dedup = opts.dedup ?? true;
  if (typeof dedup !== 'boolean') {
    throw new ArgumentError(op, `dedup must be a boolean, got ${describe(dedup)}`);
  }
  const ids = new Int32Array(strings.length);
  let m = 0;
  if (dedup) {
    const seen = new Set<number>();
    for (const s of strings) {
      const id = murmur3Utf8(s, sd) % b;
      if (!seen.has(id)) {
        seen.add(id);
        ids[m++] = id;
      }
    }
    return m === ids.length ? ids : ids.slice(0, m);
  }
  for (const s of strings) ids[m++] = murmur3Utf8(s, sd) % b;
  return ids;
}

/**
 * Bucket ids of a query: hashed `u:` unigrams and `b:` bigrams of the gloss
 * tokens, deduplicated (first occurrence order) unless `dedup: false`.
 * An empty gloss gives an empty array.
 */
export function queryFeatures(gloss: string, opts: FeatureOptions): Int32Array {
  return featureIds('queryFeatures', queryFeatureStrings(gloss), opts);
}

/**
 * Bucket ids of a document: hashed `l:` whole lemmas, `w:` lemma words and
 * `c:` character 3/4-grams of `#word#`, deduplicated (first occurrence order)
 * unless `dedup: false`.
 */
export function docFeatures(lemmas: readonly string[], opts: FeatureOptions): Int32Array {
  return featureIds('docFeatures', docFeatureStrings(lemmas), opts);
}
