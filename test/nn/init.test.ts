/**
 * Initialisers: glorotUniform stays in [-a, a], a = sqrt(6 / (fanIn + fanOut)),
 * with the uniform distribution's mean and variance (a²/3); every
 * initialiser is a deterministic function of its Rng.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ArgumentError, Rng, glorotUniform, normalInit, zerosInit } from '../../src/index.js';
import { unsafeData } from '../../src/tensor/tensor.js';
import { params } from '../util/props.js';

describe('glorotUniform', () => {
  it('has shape [fanIn, fanOut], float32, every value in [-a, a], and is reproducible from the seed', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 1, max: 40 }),
        (seed, fanIn, fanOut) => {
          const t = glorotUniform(new Rng(seed), fanIn, fanOut);
          expect(t.shape).toEqual([fanIn, fanOut]);
          expect(t.dtype).toBe('float32');
          const a = Math.sqrt(6 / (fanIn + fanOut));
          for (const v of unsafeData(t)) expect(Math.abs(v)).toBeLessThanOrEqual(Math.fround(a));
          expect(Array.from(unsafeData(glorotUniform(new Rng(seed), fanIn, fanOut)))).toEqual(
            Array.from(unsafeData(t)),
          );
        },
      ),
      params(40),
    );
  });

  it('different seeds give different values; the moments are those of U(-a, a)', () => {
    const t = unsafeData(glorotUniform(new Rng(1), 100, 200));
    const u = unsafeData(glorotUniform(new Rng(2), 100, 200));
    expect(Array.from(t)).not.toEqual(Array.from(u));
    const a = Math.sqrt(6 / 300);
    let s = 0,
      s2 = 0,
      mx = -Infinity,
      mn = Infinity;
    for (const v of t) {
      s += v;
      s2 += v * v;
      mx = Math.max(mx, v);
      mn = Math.min(mn, v);
    }
    const n = t.length;
    // n = 20000: the sample mean has sd a/sqrt(3n) ≈ 0.0006; the variance a²/3 = 0.00667 within ±3%.
    expect(Math.abs(s / n)).toBeLessThan(0.003);
    expect(s2 / n / ((a * a) / 3)).toBeGreaterThan(0.97);
    expect(s2 / n / ((a * a) / 3)).toBeLessThan(1.03);
    // The extremes come close to ±a (the support is the whole interval).
    expect(mx).toBeGreaterThan(0.99 * a);
    expect(mn).toBeLessThan(-0.99 * a);
  });

  it('rejects a missing Rng and non-positive or fractional sizes with ArgumentError', () => {
    expect(() => glorotUniform(undefined as never, 2, 3)).toThrow(ArgumentError);
    expect(() => glorotUniform(new Rng(0), 0, 3)).toThrow(/glorotUniform: dimensions must be positive integers/);
    expect(() => glorotUniform(new Rng(0), 2, 1.5)).toThrow(ArgumentError);
  });
});

describe('normalInit and zerosInit', () => {
  it('normalInit scales N(0,1) draws of the same Rng by std', () => {
    const t = unsafeData(normalInit(new Rng(9), [3, 4], 0.5));
    const r = new Rng(9);
    const want = Array.from({ length: 12 }, () => Math.fround(0.5 * r.normal()));
    expect(Array.from(t)).toEqual(want);
    expect(() => normalInit(new Rng(0), [2, 0], 1)).toThrow(ArgumentError);
  });

  it('zerosInit is all zeros of the given shape', () => {
    const z = zerosInit([2, 3]);
    expect(z.shape).toEqual([2, 3]);
    expect(z.dtype).toBe('float32');
    expect(Array.from(unsafeData(z))).toEqual([0, 0, 0, 0, 0, 0]);
  });
});
