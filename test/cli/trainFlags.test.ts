/**
 * One range per flag: every flag that sets a TrainConfig field accepts
 * exactly what the library accepts, at every edge of the field's range (the
 * bounds and the nearest values beyond them), and says so in the library's
 * words; messages about a field name its flag; a resumed run is checked
 * against its checkpoint with the flags named.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG, train, syntheticCorpus, type TrainConfig } from '../../src/index.js';
import { CONFIG_FIELDS, CONFIG_KEYS, checkConfig } from '../../src/train/config.js';
import { UsageError, parseFlags } from '../../src/cli/args.js';
import {
  CONFIG_FLAGS,
  FIELD_FLAGS,
  checkConfigFlags,
  checkResumable,
  configFrom,
  flagName,
  parseSeeds,
} from '../../src/cli/trainFlags.js';
import type { Checkpoint } from '../../src/train/checkpoint.js';
import { edgeValues } from '../util/configEdges.js';

function outcome(thunk: () => unknown): string {
  try {
    thunk();
    return 'accepted';
  } catch (e) {
    return `refused: ${(e as Error).message}`;
  }
}

describe('every config flag accepts exactly what the library accepts', () => {
  // inbatch (no batch <= cacheSize rule) and the largest cache, so topK's edges divide it.
  const base: TrainConfig = { ...DEFAULT_CONFIG, method: 'inbatch', cacheSize: 2 ** 24 };

  it('every TrainConfig field but method has a flag (and method has --loss)', () => {
    const flagged = Object.values(FIELD_FLAGS).map((f) => f.field);
    expect([...flagged, 'method'].sort()).toEqual([...CONFIG_KEYS].sort());
    expect(new Set(flagged).size).toBe(flagged.length);
  });

  for (const [flag, { field }] of Object.entries(FIELD_FLAGS)) {
    it(`--${flag} (${field})`, () => {
      const spec = CONFIG_FIELDS[field];
      const values: unknown[] = edgeValues(spec).map(([v]) => v);
      if (spec.kind === 'bool') values.splice(0, values.length, 'true', 'false', 'yes', '1');
      let compared = 0;
      for (const v of values) {
        // Infinity / NaN have no CLI spelling (a missing flag is "no limit"); every other edge must agree.
        if (typeof v === 'number' && !Number.isFinite(v)) continue;
        const text = String(v);
        const lib = spec.kind === 'bool' ? (text === 'true' ? true : text === 'false' ? false : text) : v;
        const cli = outcome(() => parseFlags([`--${flag}`, text], CONFIG_FLAGS));
        const library = outcome(() => checkConfig({ ...base, [field]: lib } as TrainConfig));
        expect(cli === 'accepted', `--${flag} ${text}: CLI ${cli}; library ${library}`).toBe(library === 'accepted');
        if (library !== 'accepted' && typeof v === 'number' && (spec.kind === 'int' || spec.kind === 'number')) {
          // The same range in the same words: "--lr must be X, got v" and "train: lr must be X, got v".
          const range = library.match(
            new RegExp(`^refused: train: ${field} must be (.*?)( \\(or undefined: off\\))?, got `),
          );
          expect(range, library).not.toBeNull();
          if (Number.isInteger(v) || spec.kind === 'number')
            expect(cli).toContain(`--${flag} must be ${range![1]}, got ${text}`);
        }
        compared++;
      }
      expect(compared).toBeGreaterThanOrEqual(3);
    });
  }

  it("--loss takes the methods; --seeds takes --seed's range", () => {
    for (const m of CONFIG_FIELDS.method.kind === 'choice' ? CONFIG_FIELDS.method.choices : [])
      expect(
        parseFlags(['--loss', m], { loss: { kind: 'string', help: '', choices: ['cache', 'inbatch', 'full'] } }),
      ).toEqual({ loss: m });
    expect(parseSeeds('0,9007199254740991')).toEqual([0, 9007199254740991]);
    for (const bad of ['9007199254740992', '-1', '0x1', '1e3', '', '1,,2', '1,1'])
      expect(() => parseSeeds(bad), bad).toThrow(UsageError);
  });
});

describe('library messages about a field name its flag', () => {
  it('cross-field rules are checked on the resolved config (defaults included)', () => {
    const flags = parseFlags(['--top-k', '3'], CONFIG_FLAGS);
    expect(() => checkConfigFlags(configFrom(flags, 'cache', 60))).toThrow(/^--top-k 3 must divide --cache-size 4096$/);
    const big = parseFlags(['--batch', '8192'], CONFIG_FLAGS);
    expect(() => checkConfigFlags(configFrom(big, 'cache', 60))).toThrow(
      /^--batch 8192 is larger than --cache-size 4096; the cache must hold at least one batch of new items$/,
    );
    expect(() => checkConfigFlags(configFrom(big, 'inbatch', 60))).not.toThrow();
  });

  it('flagName maps every field to the flag that sets it', () => {
    for (const k of CONFIG_KEYS) expect(flagName(k)).toMatch(/^--[a-z-]+$/);
    expect(flagName('cacheSize')).toBe('--cache-size');
    expect(flagName('timeBudgetSeconds')).toBe('--seconds');
    expect(flagName('method')).toBe('--loss');
  });
});

describe('checkResumable: the resume rule and "nothing to train", with flags named', () => {
  const corpus = syntheticCorpus({ numDocs: 120, vocab: 180, seed: 3, featureBuckets: 512 });
  const config: TrainConfig = { ...DEFAULT_CONFIG, method: 'inbatch', steps: 4, batch: 8, dim: 8, evalQueries: 16 };
  let ckpt: Checkpoint | undefined;
  train(corpus, config, { checkpointEvery: 4, onCheckpoint: (c) => (ckpt = c) });

  it('a changed trajectory flag is refused naming the flag; budget flags may change', () => {
    expect(() => checkResumable(ckpt!, { ...config, clipNorm: 1, steps: 9 }, 'D')).toThrow(
      /^--clip-norm 1 differs from the checkpoint's off \(D\); a resumed run keeps every setting that changes training, only --steps, --seconds, --eval-every, --eval-every-steps, --eval-queries may change$/,
    );
    expect(() => checkResumable(ckpt!, { ...config, lr: 0.5, steps: 9 }, 'D')).toThrow(
      /^--lr 0\.5 differs from the checkpoint's 0\.01/,
    );
    expect(checkResumable(ckpt!, { ...config, steps: 9, evalEverySteps: 3, evalQueries: 5 }, 'D')).toBe(4);
  });

  it('nothing to train', () => {
    expect(() => checkResumable(ckpt!, { ...config, steps: 4 }, 'D')).toThrow(
      /^--steps 4 is not above the checkpoint's step 4 \(D\): nothing to train; give --steps above 4$/,
    );
    expect(() => checkResumable(ckpt!, { ...config, steps: 100, timeBudgetSeconds: Number.MIN_VALUE }, 'D')).toThrow(
      /^--seconds 5e-324 is not above the checkpoint's .* s of training \(D\): nothing to train/,
    );
  });
});
