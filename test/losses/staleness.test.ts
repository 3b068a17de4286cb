import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { staleness, stalenessComposed } from '../../src/losses/common.js';
import { unsafeData, wrap } from '../../src/tensor/tensor.js';
import { params } from '../util/props.js';

/**
 * The float32 bit patterns, with every NaN written as the one quiet NaN: the
 * sign and payload of a NaN made by arithmetic are not specified by
 * ECMAScript and differ between engines and JIT tiers (Node 24 gave
 * 0x7fc00000 where Node 20 gives 0xffc00000 for the same expression), so
 * "bit for bit" here means every non-NaN bit, and NaN exactly where NaN.
 */
const bits = (a: ArrayLike<number>) =>
  Array.from(new Uint32Array(Float32Array.from(a).buffer), (u) =>
    (u & 0x7f800000) === 0x7f800000 && (u & 0x007fffff) !== 0 ? 0x7fc00000 : u,
  );

/** Float32 values with the cases that matter: zeros (undefined ratio), NaN, infinities, tiny and huge magnitudes. */
const value = fc.oneof(
  { weight: 8, arbitrary: fc.float({ noDefaultInfinity: true, noNaN: true, min: -4, max: 4 }) },
  { weight: 2, arbitrary: fc.constant(0) },
  { weight: 1, arbitrary: fc.constantFrom(NaN, Infinity, -Infinity, 1e-30, -3e30) },
);

describe('staleness: the one-pass float32 path equals the tensor-op definition bit for bit', () => {
  it('random [b, d] float32 inputs, zero rows, special values and keep masks', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 9 }),
        fc.integer({ min: 1, max: 40 }),
        fc.infiniteStream(value),
        fc.infiniteStream(fc.boolean()),
        fc.boolean(),
        (b, d, vals, keeps, zeroRow) => {
          const c = new Float32Array(b * d).map(() => vals.next().value),
            f = new Float32Array(b * d).map(() => vals.next().value);
          if (zeroRow) f.fill(0, 0, d); // ||fresh||² = 0: staleness 0, not 0/0
          const keep = Uint8Array.from({ length: b }, () => (keeps.next().value ? 1 : 0));
          const C = wrap(c, [b, d], 'float32'),
            F = wrap(f, [b, d], 'float32'),
            K = wrap(keep, [b], 'bool');
          const got = staleness(C, F, K);
          const want = stalenessComposed(C, F, K);
          expect(got.dtype).toBe('float32');
          expect(got.shape).toEqual([b]);
          expect(bits(unsafeData(got))).toEqual(bits(unsafeData(want)));
          if (zeroRow) expect(unsafeData(got)[0]).toBe(0);
          for (let i = 0; i < b; i++) if (!keep[i]) expect(unsafeData(got)[i]).toBe(0);
        },
      ),
      params(200),
    );
  });

  it('a known value, and float64 inputs through the definition', () => {
    // cached (1, 0), fresh (2.5, 0): (1 - 2.5)² / 2.5² = 0.36
    for (const dtype of ['float32', 'float64'] as const) {
      const Arr = dtype === 'float32' ? Float32Array : Float64Array;
      const s = staleness(
        wrap(new Arr([1, 0, 3, 4]), [2, 2], dtype),
        wrap(new Arr([2.5, 0, 3, 4]), [2, 2], dtype),
        wrap(new Uint8Array([1, 1]), [2], 'bool'),
      );
      expect(s.dtype).toBe(dtype);
      expect(unsafeData(s)[0]).toBeCloseTo(0.36, 6);
      expect(unsafeData(s)[1]).toBe(0);
    }
  });
});
