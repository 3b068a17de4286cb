/**
 * Stable top-k along the last axis: the k largest values of each row in
 * descending order; ties go to the smaller index first. NaN sorts above
 * every number (as in NumPy/TF, so a NaN is never silently dropped).
 */
import type { TypedArray } from '../dtype.js';

export function topK(
  src: TypedArray,
  rows: number,
  n: number,
  k: number,
  values: TypedArray,
  indices: Int32Array,
): void {
  const order = new Int32Array(n);
  for (let r = 0; r < rows; r++) {
    const base = r * n;
    for (let j = 0; j < n; j++) order[j] = j;
    const cmp = (x: number, y: number): number => {
      const vx = src[base + x]!,
        vy = src[base + y]!;
      const nx = vx !== vx,
        ny = vy !== vy;
      if (nx || ny) return nx && ny ? x - y : nx ? -1 : 1;
      return vx > vy ? -1 : vx < vy ? 1 : x - y;
    };
    let chosen: Int32Array;
    if (k * 8 < n) {
      // partial selection: keep a sorted buffer of the best k seen so far
      const best: number[] = [];
      for (let j = 0; j < n; j++) {
        if (best.length < k) {
          insertSorted(best, j, cmp);
          continue;
        }
        if (cmp(j, best[k - 1]!) < 0) {
          best.pop();
          insertSorted(best, j, cmp);
        }
      }
      chosen = Int32Array.from(best);
    } else {
      chosen = order.sort(cmp).subarray(0, k);
    }
    for (let j = 0; j < k; j++) {
      indices[r * k + j] = chosen[j]!;
      values[r * k + j] = src[base + chosen[j]!]!;
    }
  }
}

function insertSorted(best: number[], j: number, cmp: (x: number, y: number) => number): void {
  let lo = 0,
    hi = best.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cmp(best[mid]!, j) <= 0) lo = mid + 1;
    else hi = mid;
  }
  best.splice(lo, 0, j);
}
