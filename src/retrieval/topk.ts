import { ArgumentError, DTypeError, ShapeError, describe, fmtShape } from '../errors.js';
import { isFloat } from '../tensor/dtype.js';
import { isTensor, unsafeData, wrap, type Tensor } from '../tensor/tensor.js';
import { gather, reshape } from '../ops/layout.js';

/**
 * Approximate top-k (reference: util.approximate_top_k_with_indices). Each
 * row of scores [b, n] is cut into k consecutive groups of n/k columns; from
 * each group the largest score (first on ties) and its column in the
 * original row are returned, both [b, k], in group order. n must be
 * divisible by k. The values carry gradient (a gather of the scores).
 */
export function approximateTopKWithIndices(scores: Tensor, k: number): { values: Tensor; indices: Tensor } {
  const op = 'approximateTopKWithIndices';
  if (!isTensor(scores)) throw new ArgumentError(op, `scores must be a Tensor, got ${describe(scores)}`);
  if (!isFloat(scores.dtype)) throw new DTypeError(op, `scores must be float, got ${scores.dtype}`);
  if (scores.rank !== 2) throw new ShapeError(op, `scores must be [batch, n], got ${fmtShape(scores.shape)}`);
  const [b, n] = scores.shape as [number, number];
  if (!Number.isInteger(k) || k < 1 || k > n)
    throw new ArgumentError(op, `k must be an integer in [1, ${n}], got ${describe(k)}`);
  if (n % k !== 0)
    throw new ArgumentError(op, `n = ${n} is not divisible by k = ${k}; need n % k === 0 (groups of equal size n / k)`);
  const g = n / k;
  const d = unsafeData(scores);
  const idx = new Int32Array(b * k);
  for (let i = 0; i < b; i++) {
    for (let c = 0; c < k; c++) {
      const start = i * n + c * g;
      let best = d[start]!,
        arg = 0;
      for (let j = 1; j < g; j++) {
        const v = d[start + j]!;
        if (v > best || (v !== v && best === best)) {
          best = v;
          arg = j;
        }
      }
      idx[i * k + c] = c * g + arg;
    }
  }
  const flat = new Int32Array(b * k);
  for (let i = 0; i < b; i++) for (let c = 0; c < k; c++) flat[i * k + c] = i * n + idx[i * k + c]!;
  const values = reshape(gather(reshape(scores, [b * n]), wrap(flat, [b * k], 'int32')), [b, k]);
  return { values, indices: wrap(idx, [b, k], 'int32') };
}
