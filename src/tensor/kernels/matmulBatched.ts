/**
 * Batched matrix products: z[b] = op(x[b])·op(y[b]) over the last two axes,
 * where the leading (batch) axes of x and y broadcast like NumPy's. Each
 * batch entry is one matmul2d call (matmul.ts) on subarray views; a batch
 * axis of size 1 is reused through index arithmetic, never copied.
 */
import type { Shape } from '../shape.js';
import { sizeOf } from '../shape.js';
import { matmul2d } from './matmul.js';

type Floats = Float32Array | Float64Array;

/**
 * out [...batch, m, n] = op(x)·op(y) for x [...xBatch, m, k] (or [..., k, m]
 * with transA) and y [...yBatch, k, n] (or [..., n, k] with transB); `batch`
 * is the broadcast of xBatch and yBatch. x and y have out's element type.
 */
export function matmulBatched(
  x: Floats,
  xBatch: Shape,
  y: Floats,
  yBatch: Shape,
  batch: Shape,
  m: number,
  n: number,
  k: number,
  transA: boolean,
  transB: boolean,
  out: Floats,
): Floats {
  const nb = sizeOf(batch);
  if (nb === 1) return matmul2d(x, y, m, n, k, transA, transB, out);
  const xShared = sizeOf(xBatch) === 1,
    yShared = sizeOf(yBatch) === 1;
  const xs = broadcastIndex(xBatch, batch),
    ys = broadcastIndex(yBatch, batch);
  for (let b = 0; b < nb; b++) {
    const xo = xShared ? 0 : xs(b) * m * k,
      yo = yShared ? 0 : ys(b) * k * n;
    const xv = x.subarray(xo, xo + m * k),
      yv = y.subarray(yo, yo + k * n);
    matmul2d(xv, yv, m, n, k, transA, transB, out.subarray(b * m * n, (b + 1) * m * n));
  }
  return out;
}

/** Maps a flat index into `outShape` to the flat index into `shape`, which broadcasts to it. */
export function broadcastIndex(shape: Shape, outShape: Shape): (i: number) => number {
  const rank = outShape.length;
  const pad = rank - shape.length;
  return (flat) => {
    let idx = 0,
      mult = 1;
    for (let a = rank - 1; a >= 0; a--) {
      const d = outShape[a]!;
      const coord = flat % d;
      flat = (flat - coord) / d;
      if (a >= pad) {
        const s = shape[a - pad]!;
        idx += (s === 1 ? 0 : coord) * mult;
        mult *= s;
      }
    }
    return idx;
  };
}
