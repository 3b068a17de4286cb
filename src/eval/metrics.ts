import { ArgumentError, NonFiniteError, describe } from '../errors.js';

/**
 * Retrieval metrics from ranks. The rank of a query is the 0-based position
 * of its correct document in the score-sorted list (0 = retrieved first).
 *
 * Ties are counted PESSIMISTICALLY: every other document whose score equals
 * the target's is placed before the target. A degenerate model that scores
 * everything alike therefore gets the worst rank (n - 1), never a flattering
 * one, and a collapsed embedding cannot look good in a report.
 */

type Ranks = ArrayLike<number>;

function checkRanks(op: string, ranks: unknown): Ranks {
  if (
    ranks === null ||
    typeof ranks !== 'object' ||
    !(Array.isArray(ranks) || ArrayBuffer.isView(ranks)) ||
    ranks instanceof DataView
  ) {
    throw new ArgumentError(
      op,
      `ranks must be an array or typed array of non-negative integers, got ${describe(ranks)}`,
    );
  }
  const r = ranks as Ranks;
  for (let i = 0; i < r.length; i++) {
    const v = r[i]!;
    if (!Number.isInteger(v) || v < 0) {
      throw new ArgumentError(op, `ranks[${i}] must be a non-negative integer, got ${describe(v)}`);
    }
  }
  return r;
}

function recallUnchecked(r: Ranks, k: number): number {
  if (r.length === 0) return NaN;
  let hit = 0;
  for (let i = 0; i < r.length; i++) if (r[i]! < k) hit++;
  return hit / r.length;
}

function mrrUnchecked(r: Ranks): number {
  if (r.length === 0) return NaN;
  let s = 0;
  for (let i = 0; i < r.length; i++) s += 1 / (r[i]! + 1);
  return s / r.length;
}

/** Fraction of queries whose correct document is among the top k (rank < k). NaN for no queries. */
export function recallAtK(ranks: Ranks, k: number): number {
  const r = checkRanks('recallAtK', ranks);
  if (!Number.isInteger(k) || k < 1)
    throw new ArgumentError('recallAtK', `k must be a positive integer, got ${describe(k)}`);
  return recallUnchecked(r, k);
}

/** Mean over queries of 1 / (rank + 1). NaN for no queries. */
export function meanReciprocalRank(ranks: Ranks): number {
  return mrrUnchecked(checkRanks('meanReciprocalRank', ranks));
}

/**
 * The 0-based rank of document `target` under `scores` (higher = better),
 * with ties against the target: #(score > s_t) + #(score == s_t, index != t).
 * Any NaN score throws a NonFiniteError (a NaN would otherwise silently
 * compare as neither better nor worse); ±Infinity is ordered normally.
 */
export function rankOfTarget(scores: Float32Array | Float64Array, target: number): number {
  const op = 'rankOfTarget';
  if (!(scores instanceof Float32Array || scores instanceof Float64Array)) {
    throw new ArgumentError(op, `scores must be a Float32Array or Float64Array, got ${describe(scores)}`);
  }
  if (!Number.isInteger(target) || target < 0 || target >= scores.length) {
    throw new ArgumentError(op, `target must be an integer in [0, ${scores.length}), got ${describe(target)}`);
  }
  return rankInRow(op, scores, 0, scores.length, target);
}

function rankInRow(op: string, scores: Float32Array | Float64Array, start: number, n: number, target: number): number {
  const st = scores[start + target]!;
  let rank = 0;
  for (let j = 0; j < n; j++) {
    const s = scores[start + j]!;
    if (s !== s) throw new NonFiniteError(op, `scores[${start + j}] is NaN; every score must be a number`);
    if (s > st || (s === st && j !== target)) rank++;
  }
  return rank;
}

/**
 * Ranks for a batch: `scores` is a row-major [targets.length, numDocs] score
 * matrix and row q's correct document is `targets[q]`. Same tie rule as
 * {@link rankOfTarget}.
 */
export function ranksFromScoreMatrix(
  scores: Float32Array | Float64Array,
  numDocs: number,
  targets: ArrayLike<number>,
): Int32Array {
  const op = 'ranksFromScoreMatrix';
  if (!(scores instanceof Float32Array || scores instanceof Float64Array)) {
    throw new ArgumentError(op, `scores must be a Float32Array or Float64Array, got ${describe(scores)}`);
  }
  if (!Number.isInteger(numDocs) || numDocs < 1) {
    throw new ArgumentError(op, `numDocs must be a positive integer, got ${describe(numDocs)}`);
  }
  if (scores.length !== targets.length * numDocs) {
    throw new ArgumentError(
      op,
      `scores has ${scores.length} entries, need targets.length * numDocs = ${targets.length} * ${numDocs}`,
    );
  }
  for (let q = 0; q < targets.length; q++) {
    const t = targets[q]!;
    if (!Number.isInteger(t) || t < 0 || t >= numDocs) {
      throw new ArgumentError(op, `targets[${q}] must be an integer in [0, ${numDocs}), got ${describe(t)}`);
    }
  }
  const out = new Int32Array(targets.length);
  for (let q = 0; q < targets.length; q++) out[q] = rankInRow(op, scores, q * numDocs, numDocs, targets[q]!);
  return out;
}

/** Summary of a set of ranks. Rates are NaN when count is 0. */
export interface RankSummary {
  recallAt1: number;
  recallAt10: number;
  recallAt100: number;
  mrr: number;
  count: number;
}

/** Recall@1, @10, @100, MRR and the number of queries. */
export function summarizeRanks(ranks: Ranks): RankSummary {
  const r = checkRanks('summarizeRanks', ranks);
  return {
    recallAt1: recallUnchecked(r, 1),
    recallAt10: recallUnchecked(r, 10),
    recallAt100: recallUnchecked(r, 100),
    mrr: mrrUnchecked(r),
    count: r.length,
  };
}
