/** Pieces shared by the single-process and the sharded cache losses. */
import { ArgumentError, DTypeError, ShapeError, describe, fmtShape } from '../errors.js';
import { isFloat } from '../tensor/dtype.js';
import { Rng } from '../tensor/random.js';
import { isTensor, unsafeData, wrap, type Tensor } from '../tensor/tensor.js';
import { shapesEqual } from '../tensor/shape.js';
import { div, greater, logicalAnd, mul, sub, where } from '../ops/elementwise.js';
import { mean, sum } from '../ops/reduce.js';
import { categoricalRetrievalFn, gumbelMaxRetrievalFn, type RetrievalFn } from '../retrieval/retrieval.js';

/** The document tower: features of b items -> embeddings [b, d]. */
export type DocNetwork = (features: Record<string, Tensor>) => Tensor;

/** An elementwise map applied to raw dot-product scores, e.g. scaleTransform(20). */
export type ScoreTransform = ((scores: Tensor) => Tensor) & { readonly scale?: number };

/**
 * score ↦ c·score. The returned function carries `scale`, which lets the
 * fused scoring kernels recognise it; any other function takes the general
 * (materialised) path.
 */
export function scaleTransform(c: number): ScoreTransform {
  if (typeof c !== 'number' || !Number.isFinite(c))
    throw new ArgumentError('scaleTransform', `scale must be a finite number, got ${describe(c)}`);
  const f = (s: Tensor): Tensor => mul(s, c);
  return Object.assign(f, { scale: c });
}

/** T(x), or x without a transform; checks that T keeps the shape and returns floats. */
export function transformScores(t: ScoreTransform | undefined, scores: Tensor): Tensor {
  if (!t) return scores;
  const out = t(scores);
  if (!isTensor(out) || !isFloat(out.dtype) || !shapesEqual(out.shape, scores.shape)) {
    throw new ArgumentError(
      'CacheClassificationLoss',
      `scoreTransform must map scores ${fmtShape(scores.shape)} to a float tensor of the same shape, got ${describe(out)}`,
    );
  }
  return out;
}

export type Reducer = 'mean' | 'none' | ((perQuery: Tensor) => Tensor);

export function applyReducer(reducer: Reducer, x: Tensor): Tensor {
  if (reducer === 'none') return x;
  if (reducer === 'mean') return mean(x);
  const out = reducer(x);
  if (!isTensor(out) || !isFloat(out.dtype))
    throw new ArgumentError('CacheClassificationLoss', `reducer must return a float tensor, got ${describe(out)}`);
  return out;
}

export function checkReducer(op: string, reducer: unknown): Reducer {
  if (reducer === undefined) return 'mean';
  if (reducer === 'mean' || reducer === 'none' || typeof reducer === 'function') return reducer as Reducer;
  throw new ArgumentError(op, `reducer must be 'mean', 'none' or a function, got ${describe(reducer)}`);
}

export type Sampler = 'gumbel' | 'categorical';

/** The retrieval function from the options: an explicit one, or a sampler over an explicit Rng. */
export function retrievalFrom(
  op: string,
  opts: { retrievalFn?: RetrievalFn; rng?: Rng; sampler?: Sampler },
): RetrievalFn {
  if (opts.retrievalFn !== undefined) {
    if (typeof opts.retrievalFn !== 'function')
      throw new ArgumentError(
        op,
        `retrievalFn must be a function (scores) => indices, got ${describe(opts.retrievalFn)}`,
      );
    return opts.retrievalFn;
  }
  if (!(opts.rng instanceof Rng)) {
    throw new ArgumentError(
      op,
      `needs a seeded generator: pass rng (e.g. new Rng(0)) or a retrievalFn, got rng ${describe(opts.rng)}`,
    );
  }
  const sampler = opts.sampler ?? 'gumbel';
  if (sampler === 'gumbel') return gumbelMaxRetrievalFn({ rng: opts.rng });
  if (sampler === 'categorical') return categoricalRetrievalFn({ rng: opts.rng });
  throw new ArgumentError(op, `sampler must be 'gumbel' or 'categorical', got ${describe(sampler)}`);
}

/** Query and positive embeddings: float [b, d], equal shapes, b >= 1. */
export function checkQueryAndPositives(op: string, q: unknown, p: unknown): { b: number; d: number } {
  for (const [name, t] of [
    ['queryEmbeddings', q],
    ['posDocEmbeddings', p],
  ] as const) {
    if (!isTensor(t)) throw new ArgumentError(op, `${name} must be a Tensor, got ${describe(t)}`);
    if (!isFloat(t.dtype)) throw new DTypeError(op, `${name} must be float, got ${t.dtype}`);
    if (t.rank !== 2) throw new ShapeError(op, `${name} must be [batch, dim], got ${fmtShape(t.shape)}`);
  }
  const qt = q as Tensor,
    pt = p as Tensor;
  if (qt.shape[0] !== pt.shape[0] || qt.shape[1] !== pt.shape[1]) {
    throw new ShapeError(
      op,
      `queryEmbeddings is ${fmtShape(qt.shape)} but posDocEmbeddings is ${fmtShape(pt.shape)}; need equal shapes (one positive per query)`,
    );
  }
  if (qt.shape[0] === 0)
    throw new ShapeError(op, 'the batch is empty (queryEmbeddings has 0 rows); need at least one query');
  return { b: qt.shape[0]!, d: qt.shape[1]! };
}

/** Row-wise dot product <a_i, b_i> → [b]. */
export function rowDot(a: Tensor, b: Tensor): Tensor {
  return sum(mul(a, b), { axis: 1 });
}

/**
 * staleness_i = ||cached_i - fresh_i||² / ||fresh_i||², a metric (no
 * gradient needed; callers pass constants). 0 where `keep` is false (queries
 * that had no negative to sample) and where the fresh embedding is the zero
 * vector (the ratio is undefined there), so no 0/0 appears.
 */
export function staleness(cached: Tensor, fresh: Tensor, keep: Tensor): Tensor {
  const [b, d] = cached.shape;
  if (
    cached.dtype === 'float32' &&
    fresh.dtype === 'float32' &&
    keep.dtype === 'bool' &&
    cached.rank === 2 &&
    shapesEqual(cached.shape, fresh.shape) &&
    keep.rank === 1 &&
    keep.shape[0] === b
  )
    return wrap(
      stalenessRowsF32(unsafeData(cached) as Float32Array, unsafeData(fresh) as Float32Array, unsafeData(keep), b!, d!),
      [b!],
      'float32',
    );
  return stalenessComposed(cached, fresh, keep);
}

/**
 * staleness for float32 [b, d] inputs in one pass over the rows, with the
 * arithmetic of the composition below (the step's metric, computed every
 * step, was ten tensor ops): float32 rounding after the subtraction, each
 * square and the division; the two row sums in float64, rounded once, as
 * sum() does. Bit-identical to stalenessComposed (tested).
 */
function stalenessRowsF32(
  c: Float32Array,
  f: Float32Array,
  keep: ArrayLike<number>,
  b: number,
  d: number,
): Float32Array {
  const fr = Math.fround;
  const out = new Float32Array(b);
  for (let i = 0; i < b; i++) {
    let sq = 0,
      norm = 0;
    for (let k = i * d, end = k + d; k < end; k++) {
      const e = fr(c[k]! - f[k]!);
      sq += fr(e * e);
      norm += fr(f[k]! * f[k]!);
    }
    const n32 = fr(norm);
    out[i] = keep[i] && n32 > 0 ? fr(fr(sq) / n32) : 0;
  }
  return out;
}

/** staleness as tensor ops (any float dtypes, broadcasting as the ops do): the definition. */
export function stalenessComposed(cached: Tensor, fresh: Tensor, keep: Tensor): Tensor {
  const err = sub(cached, fresh);
  const sq = sum(mul(err, err), { axis: 1 });
  const norm = sum(mul(fresh, fresh), { axis: 1 });
  const defined = logicalAnd(keep, greater(norm, 0));
  return where(defined, div(sq, where(defined, norm, 1)), 0);
}
