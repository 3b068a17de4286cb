/**
 * The two softmax baselines the negative cache is compared against, as plain
 * losses over embeddings (the trainer builds the embeddings and the masks).
 *
 * Both are the softmax cross-entropy of each query's positive among a set of
 * candidate documents, scored s(i, j) = scale · <qᵢ, dⱼ>:
 *
 *   lossᵢ = -log softmax(s(i, ·) with excluded entries at -∞)_{targetᵢ}
 *         = logSumExp_{j not excluded} s(i, j) - s(i, targetᵢ)
 *
 *  - in-batch: the candidates are the batch's own positives (query i's target
 *    is column i; the other queries' documents are its negatives);
 *  - full: the candidates are a fixed set of documents (the trainer passes
 *    every training document), the target is the positive's position in it.
 *
 * `excluded` (bool [b, n], optional) removes candidates that must not be
 * negatives: a second copy of the query's own document or, with the
 * trainer's maskDuplicates, its identical twins. The target itself must not
 * be excluded. Gradients flow to both towers through every candidate.
 */
import { ArgumentError, DTypeError, ShapeError, describe, fmtShape } from '../errors.js';
import { isFloat } from '../tensor/dtype.js';
import { shapesEqual } from '../tensor/shape.js';
import { isTensor, unsafeData, wrap, type Tensor } from '../tensor/tensor.js';
import { mul, neg, where } from '../ops/elementwise.js';
import { logSoftmax } from '../ops/reduce.js';
import { gather, reshape } from '../ops/layout.js';
import { matmul } from '../ops/linalg.js';
import { applyReducer, type Reducer } from './common.js';

export interface SoftmaxLossOptions {
  /** Score scale (inverse temperature): s = scale · <q, d>. */
  scale: number;
  /** bool [b, n]: candidates that are not negatives for that query (never the target). */
  excluded?: Tensor;
  /** 'mean' (default), 'none' (per query) or a function. */
  reducer?: Reducer;
}

/**
 * Softmax cross-entropy of targets[i] among `candidates` for query i.
 * queries float [b, d], candidates float [n, d], targets int32 [b] in [0, n).
 */
export function softmaxRetrievalLoss(
  queries: Tensor,
  candidates: Tensor,
  targets: Tensor,
  opts: SoftmaxLossOptions,
): Tensor {
  const op = 'softmaxRetrievalLoss';
  const { b, n } = checkSoftmaxArgs(op, queries, candidates, targets, opts);
  const scores = mul(matmul(queries, candidates, { transposeB: true }), opts.scale);
  const logp = logSoftmax(opts.excluded ? where(opts.excluded, -Infinity, scores) : scores, { axis: 1 });
  const t = unsafeData(targets) as Int32Array;
  const flatTargets = wrap(
    Int32Array.from({ length: b }, (_, i) => i * n + t[i]!),
    [b],
    'int32',
  );
  return applyReducer(opts.reducer ?? 'mean', neg(gather(reshape(logp, [b * n]), flatTargets)));
}

/** In-batch softmax: query i's target is positives[i]; the other rows of `positives` are its negatives. */
export function inBatchSoftmaxLoss(queries: Tensor, positives: Tensor, opts: SoftmaxLossOptions): Tensor {
  if (!isTensor(queries) || queries.rank !== 2) {
    throw new ShapeError('inBatchSoftmaxLoss', `queries must be a [batch, dim] tensor, got ${describe(queries)}`);
  }
  const b = queries.shape[0]!;
  const targets = wrap(
    Int32Array.from({ length: b }, (_, i) => i),
    [b],
    'int32',
  );
  if (!isTensor(positives) || !shapesEqual(positives.shape, queries.shape)) {
    throw new ShapeError(
      'inBatchSoftmaxLoss',
      `positives must have the queries' shape ${fmtShape(queries.shape)} (one positive per query), got ${describe(positives)}`,
    );
  }
  return softmaxRetrievalLoss(queries, positives, targets, opts);
}

function checkSoftmaxArgs(
  op: string,
  q: unknown,
  c: unknown,
  targets: unknown,
  opts: SoftmaxLossOptions,
): { b: number; n: number } {
  for (const [name, t] of [
    ['queries', q],
    ['candidates', c],
  ] as const) {
    if (!isTensor(t)) throw new ArgumentError(op, `${name} must be a Tensor, got ${describe(t)}`);
    if (!isFloat(t.dtype)) throw new DTypeError(op, `${name} must be float, got ${t.dtype}`);
    if (t.rank !== 2) throw new ShapeError(op, `${name} must be [rows, dim], got ${fmtShape(t.shape)}`);
  }
  const qt = q as Tensor,
    ct = c as Tensor;
  if (qt.shape[1] !== ct.shape[1]) {
    throw new ShapeError(
      op,
      `queries are ${fmtShape(qt.shape)} but candidates are ${fmtShape(ct.shape)}; need the same dimension`,
    );
  }
  const b = qt.shape[0]!,
    n = ct.shape[0]!;
  if (b === 0 || n === 0) throw new ShapeError(op, `need at least one query and one candidate, got b=${b}, n=${n}`);
  if (!isTensor(targets) || targets.dtype !== 'int32' || !shapesEqual(targets.shape, [b])) {
    throw new ArgumentError(op, `targets must be an int32 [${b}] tensor, got ${describe(targets)}`);
  }
  const td = unsafeData(targets) as Int32Array;
  for (let i = 0; i < b; i++) {
    if (!(td[i]! >= 0 && td[i]! < n)) throw new ArgumentError(op, `targets[${i}] is ${td[i]}; need 0 <= target < ${n}`);
  }
  if (opts === null || typeof opts !== 'object')
    throw new ArgumentError(op, `options must be an object, got ${describe(opts)}`);
  if (typeof opts.scale !== 'number' || !Number.isFinite(opts.scale)) {
    throw new ArgumentError(op, `scale must be a finite number, got ${describe(opts.scale)}`);
  }
  const ex = opts.excluded;
  if (ex !== undefined) {
    if (!isTensor(ex) || ex.dtype !== 'bool' || !shapesEqual(ex.shape, [b, n])) {
      throw new ArgumentError(op, `excluded must be a bool [${b}, ${n}] tensor, got ${describe(ex)}`);
    }
    const e = unsafeData(ex) as Uint8Array;
    for (let i = 0; i < b; i++) {
      if (e[i * n + td[i]!]) throw new ArgumentError(op, `excluded[${i}, ${td[i]}] masks query ${i}'s own target`);
    }
  }
  return { b, n };
}
