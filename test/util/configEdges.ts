/**
 * Edge values of a TrainConfig field's range (CONFIG_FIELDS): the bounds and
 * the nearest values beyond them, each with whether the spec accepts it. The
 * config tests check checkConfig against them, the CLI tests check that the
 * flags accept exactly the same.
 */
import type { FieldSpec } from '../../src/train/config.js';

/** Values at and just beyond the edges of a field's range, each with whether the spec accepts it. */
export function edgeValues(spec: FieldSpec): [unknown, boolean][] {
  const up = (x: number): number => (x === 0 ? Number.MIN_VALUE : x + Math.max(Math.abs(x) * 2 ** -52, 2 ** -1074));
  switch (spec.kind) {
    case 'int':
      return [
        [spec.min, true],
        [spec.min - 1, false],
        [spec.max, true],
        ...(Number.isSafeInteger(spec.max + 1) ? ([[spec.max + 1, false]] as [number, boolean][]) : []),
        [spec.min + 0.5, false],
      ];
    case 'number':
      return [
        [spec.min, !spec.minOpen],
        [spec.min - 1e-9, false],
        [up(spec.min), true],
        ...(spec.max === Infinity
          ? ([
              [1e300, true],
              [Infinity, true],
            ] as [number, boolean][])
          : ([
              [spec.max, true],
              [spec.max * (1 + 2 ** -50), false],
              [Infinity, false],
            ] as [number, boolean][])),
        [NaN, false],
      ];
    case 'choice':
      return [...spec.choices.map((c): [unknown, boolean] => [c, true]), ['nope', false], [1, false]];
    case 'bool':
      return [
        [true, true],
        [false, true],
        ['true', false],
      ];
  }
}
