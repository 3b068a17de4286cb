import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ArgumentError, NonFiniteError } from '../../src/errors.js';
import {
  meanReciprocalRank,
  rankOfTarget,
  ranksFromScoreMatrix,
  recallAtK,
  summarizeRanks,
} from '../../src/eval/metrics.js';
import { params } from '../util/props.js';

describe('recallAtK and meanReciprocalRank', () => {
  const ranks = [0, 3, 0, 12, 150, 9];

  it('give exact values on a hand-made ranking', () => {
    expect(recallAtK(ranks, 1)).toBe(2 / 6);
    expect(recallAtK(ranks, 4)).toBe(3 / 6);
    expect(recallAtK(ranks, 10)).toBe(4 / 6);
    expect(recallAtK(ranks, 100)).toBe(5 / 6);
    expect(recallAtK(ranks, 151)).toBe(1);
    expect(meanReciprocalRank(ranks)).toBeCloseTo((1 + 1 / 4 + 1 + 1 / 13 + 1 / 151 + 1 / 10) / 6, 15);
    expect(meanReciprocalRank(Int32Array.of(0, 0))).toBe(1);
    expect(meanReciprocalRank([1])).toBe(0.5);
  });

  it('summarizeRanks collects them', () => {
    expect(summarizeRanks(Int32Array.from(ranks))).toEqual({
      recallAt1: 2 / 6,
      recallAt10: 4 / 6,
      recallAt100: 5 / 6,
      mrr: meanReciprocalRank(ranks),
      count: 6,
    });
  });

  it('are NaN with no queries', () => {
    expect(recallAtK([], 5)).toBeNaN();
    expect(meanReciprocalRank(new Int32Array(0))).toBeNaN();
    const s = summarizeRanks([]);
    expect(s.count).toBe(0);
    expect(s.mrr).toBeNaN();
  });

  it('are monotone in k and bounded', () => {
    fc.assert(
      fc.property(
        fc.array(fc.nat({ max: 500 }), { minLength: 1, maxLength: 50 }),
        fc.integer({ min: 1, max: 600 }),
        (r, k) => {
          const a = recallAtK(r, k);
          expect(a >= 0 && a <= 1).toBe(true);
          expect(recallAtK(r, k + 1)).toBeGreaterThanOrEqual(a);
          const m = meanReciprocalRank(r);
          expect(m > 0 && m <= 1).toBe(true);
          expect(m).toBeGreaterThanOrEqual(recallAtK(r, 1) - 1e-12);
        },
      ),
      params(200),
    );
  });

  it('validate ranks and k', () => {
    expect(() => recallAtK([0, -1], 1)).toThrow(/ranks\[1\]/);
    expect(() => recallAtK([0.5], 1)).toThrow(ArgumentError);
    expect(() => recallAtK([0], 0)).toThrow(/k must be/);
    expect(() => meanReciprocalRank('abc' as unknown as number[])).toThrow(ArgumentError);
    expect(() => summarizeRanks([NaN])).toThrow(ArgumentError);
  });
});

describe('rankOfTarget', () => {
  it('counts strictly higher scores', () => {
    const s = Float32Array.of(0.1, 0.9, 0.5, 0.7);
    expect(rankOfTarget(s, 1)).toBe(0);
    expect(rankOfTarget(s, 3)).toBe(1);
    expect(rankOfTarget(s, 2)).toBe(2);
    expect(rankOfTarget(s, 0)).toBe(3);
  });

  it('counts ties against the target (pessimistic)', () => {
    const s = Float32Array.of(0.5, 0.9, 0.5, 0.5, 0.1);
    expect(rankOfTarget(s, 0)).toBe(3);
    expect(rankOfTarget(s, 2)).toBe(3);
    expect(rankOfTarget(s, 3)).toBe(3);
    expect(rankOfTarget(new Float32Array(7), 4)).toBe(6); // constant scores: worst rank
    expect(rankOfTarget(Float32Array.of(1), 0)).toBe(0);
    expect(rankOfTarget(Float64Array.of(Infinity, Infinity, -Infinity), 0)).toBe(1);
    expect(rankOfTarget(Float64Array.of(Infinity, 3, -Infinity), 2)).toBe(2);
  });

  it('equals the position in a stable descending sort that puts the target last among equals', () => {
    fc.assert(
      fc.property(
        fc
          .array(fc.integer({ min: -3, max: 3 }), { minLength: 1, maxLength: 30 })
          .chain((v) => fc.tuple(fc.constant(v), fc.nat({ max: v.length - 1 }))),
        ([vals, t]) => {
          const scores = Float32Array.from(vals);
          const order = vals
            .map((v, i) => ({ v, i }))
            .sort((a, b) => b.v - a.v || (a.i === t ? 1 : b.i === t ? -1 : a.i - b.i));
          expect(rankOfTarget(scores, t)).toBe(order.findIndex((o) => o.i === t));
        },
      ),
      params(200),
    );
  });

  it('rejects NaN scores and bad targets', () => {
    expect(() => rankOfTarget(Float32Array.of(0, NaN), 0)).toThrow(NonFiniteError);
    expect(() => rankOfTarget(Float32Array.of(0, 1), 2)).toThrow(/target must be an integer in \[0, 2\)/);
    expect(() => rankOfTarget([1, 2] as unknown as Float32Array, 0)).toThrow(ArgumentError);
  });
});

describe('ranksFromScoreMatrix', () => {
  it('ranks every row against its target', () => {
    const scores = Float32Array.of(
      0.1,
      0.9,
      0.5, //
      0.3,
      0.3,
      0.3, //
      2.0,
      1.0,
      0.0,
    );
    expect(Array.from(ranksFromScoreMatrix(scores, 3, [1, 0, 0]))).toEqual([0, 2, 0]);
    expect(Array.from(ranksFromScoreMatrix(scores, 3, Int32Array.of(0, 2, 2)))).toEqual([2, 2, 2]);
    expect(ranksFromScoreMatrix(new Float32Array(0), 4, []).length).toBe(0);
  });

  it('validates shapes and targets', () => {
    expect(() => ranksFromScoreMatrix(new Float32Array(5), 3, [0, 1])).toThrow(/targets.length \* numDocs/);
    expect(() => ranksFromScoreMatrix(new Float32Array(6), 3, [0, 3])).toThrow(/targets\[1\]/);
    expect(() => ranksFromScoreMatrix(new Float32Array(6), 0, [])).toThrow(/numDocs/);
  });
});
