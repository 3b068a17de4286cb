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
 *
 * `fullSoftmaxLoss` is the same loss as softmaxRetrievalLoss for a LARGE
 * candidate set (the full softmax over ~112 000 documents, where the
 * [b, n] score matrix alone is 57 MB), as one fused primitive: its forward
 * streams blocks of candidates and keeps per-query log-sum-exp statistics,
 * its VJP recomputes each block's scores and produces both cotangents, and
 * nothing larger than one [b, block] score block is held
 * (src/tensor/kernels/scoreBlocks.ts). softmaxRetrievalLoss stays the plain
 * composition and the reference it is tested against.
 */
import { ArgumentError, DTypeError, ShapeError, describe, fmtShape } from '../errors.js';
import { isFloat } from '../tensor/dtype.js';
import { shapesEqual } from '../tensor/shape.js';
import { isTensor, unsafeData, wrap, type Tensor } from '../tensor/tensor.js';
import { add, div, mul, neg, sqrt, where } from '../ops/elementwise.js';
import { logSoftmax, sum } from '../ops/reduce.js';
import { gather, reshape } from '../ops/layout.js';
import { matmul } from '../ops/linalg.js';
import { bind, type Primitive } from '../autograd/engine.js';
import {
  LOCAL_BLOCK_RUNNER,
  scoreBlocksAvailable,
  type BlockRunner,
  type SoftmaxBlocksArgs,
} from '../tensor/kernels/scoreBlocks.js';
import { applyReducer, checkReducer, type Reducer } from './common.js';

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
  candidateShape?: readonly [number, number],
): { b: number; n: number } {
  for (const [name, t] of [
    ['queries', q],
    ['candidates', c],
  ] as const) {
    if (name === 'candidates' && candidateShape !== undefined) continue;
    if (!isTensor(t)) throw new ArgumentError(op, `${name} must be a Tensor, got ${describe(t)}`);
    if (!isFloat(t.dtype)) throw new DTypeError(op, `${name} must be float, got ${t.dtype}`);
    if (t.rank !== 2) throw new ShapeError(op, `${name} must be [rows, dim], got ${fmtShape(t.shape)}`);
  }
  const qt = q as Tensor;
  const cShape = candidateShape ?? (c as Tensor).shape;
  if (qt.shape[1] !== cShape[1]) {
    throw new ShapeError(
      op,
      `queries are ${fmtShape(qt.shape)} but candidates are ${fmtShape(cShape)}; need the same dimension`,
    );
  }
  const b = qt.shape[0]!,
    n = cShape[0]!;
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

/** Options of fullSoftmaxLoss. */
export interface FullSoftmaxOptions {
  /** Score scale (inverse temperature): s = scale · <q, d>. */
  scale: number;
  /**
   * Candidates that are not negatives, as (query, candidate) pairs: the
   * sparse form of softmaxRetrievalLoss's bool mask (never a query's own
   * target). Repeated pairs are allowed.
   */
  excluded?: { query: Int32Array; candidate: Int32Array };
  /** 'mean' (default), 'none' (per query) or a function. */
  reducer?: Reducer;
  /** Who runs the block passes: this thread by default; createTrainingPool() (negcache/node) uses two cores. */
  runner?: BlockRunner;
}

/**
 * Candidates given as the last layers of a tower, evaluated inside the
 * fused passes: candidates = normalize(features·w + b), i.e.
 * l2Normalize(linear({w, b}, features), eps) of src/nn/layers.ts.
 */
export interface CandidateHead {
  /** [n, din] */
  features: Tensor;
  /** [din, d] */
  w: Tensor;
  /** [d] */
  b: Tensor;
  /** Default 1e-12, as l2Normalize. */
  eps?: number;
}

interface FullSoftmaxAttrs {
  args: SoftmaxBlocksArgs;
  runner: BlockRunner;
  /** Written by the forward: log Σ_j exp(s(i, j)) per query, for the VJP. */
  lse: Float64Array | null;
}

/**
 * The fused full softmax, per query:
 *   zᵢ = lseᵢ - s(i, tᵢ),  lseᵢ = log Σ_{j not excluded} exp(s(i, j)),  s = scale · Q·Cᵀ
 *   Q̄ = G·C,  C̄ = Gᵀ·Q,  G = scale · ḡ ⊙ (softmax(s) - onehot(t))   (ḡ per row)
 * Inputs [Q, C], or with a head [Q, X, w, b] and C = normalize(X·w + b),
 * whose cotangents X̄, w̄, b̄ follow C̄ through the head (scoreBlocks.ts).
 * Both passes stream blocks of candidates; the forward records lse for the
 * VJP, which recomputes each block's scores (and the head's outputs).
 */
const fullSoftmaxP: Primitive<FullSoftmaxAttrs> = {
  name: 'fullSoftmax',
  arity: null, // [Q, C] or, with a head, [Q, X, w, b]
  forward: (_inputs, attrs) => {
    const { lse, targetScore } = attrs.runner.softmaxForward(attrs.args);
    attrs.lse = lse;
    const out = new Float32Array(attrs.args.b);
    for (let i = 0; i < out.length; i++) out[i] = lse[i]! - targetScore[i]!;
    return wrap(out, [attrs.args.b], 'float32');
  },
  // one streamed backward pass gives every cotangent (Q̄, C̄ or X̄, w̄, b̄); it runs once, when the first is asked for
  vjp: ({ g, attrs }) => {
    const all = once(() => fullSoftmaxGrads(g, attrs));
    return (attrs.args.head ? [0, 1, 2, 3] : [0, 1]).map((i) => () => all()[i]!);
  },
};

/** Every cotangent of the fused full softmax from one streamed backward pass. */
function fullSoftmaxGrads(ct: Tensor, attrs: FullSoftmaxAttrs): Tensor[] {
  const a = attrs.args;
  const g = unsafeData(ct);
  const coef = new Float32Array(a.b);
  for (let i = 0; i < a.b; i++) coef[i] = g[i]! * a.scale;
  const r = attrs.runner.softmaxBackward(a, attrs.lse!, coef);
  const dq = wrap(r.dq, [a.b, a.d], 'float32');
  if (!a.head) return [dq, wrap(r.dDocs, [a.n, a.d], 'float32')];
  const din = a.head.din;
  return [dq, wrap(r.dDocs, [a.n, din], 'float32'), wrap(r.dw!, [din, a.d], 'float32'), wrap(r.db!, [a.d], 'float32')];
}

/** f, evaluated on the first call only. */
function once<T>(f: () => T): () => T {
  let done = false,
    v: T | undefined;
  return () => {
    if (!done) {
      v = f();
      done = true;
    }
    return v as T;
  };
}

/** The head's candidates as the plain composition normalize(features·w + b) (the reference path). */
function headCandidates(h: CandidateHead, eps: number): Tensor {
  const y = add(matmul(h.features, h.w), h.b);
  return div(y, sqrt(add(sum(mul(y, y), { axis: -1, keepDims: true }), eps)));
}

/**
 * Softmax cross-entropy of targets[i] among all candidates for query i,
 * like softmaxRetrievalLoss, fused and streamed (see the module comment).
 * queries float32 [b, d]; candidates float32 [n, d], or a CandidateHead
 * (features [n, din], w [din, d], b [d]) whose normalised outputs are the
 * candidates; targets int32 [b] in [0, n). Float64 inputs, or an engine
 * without the wasm kernels, take the plain composition
 * (softmaxRetrievalLoss, with the head composed of ops and the pairs as a
 * bool mask). The fused result equals the composition up to float32
 * rounding (the tests bound it); it is a deterministic function of its
 * inputs, the same on one thread or two.
 */
export function fullSoftmaxLoss(
  queries: Tensor,
  candidates: Tensor | CandidateHead,
  targets: Tensor,
  opts: FullSoftmaxOptions,
): Tensor {
  const op = 'fullSoftmaxLoss';
  if (opts === null || typeof opts !== 'object')
    throw new ArgumentError(op, `options must be an object, got ${describe(opts)}`);
  let head: CandidateHead | null = null;
  let eps = 1e-12;
  if (!isTensor(candidates)) {
    const h = candidates as Partial<CandidateHead> | null;
    if (h === null || typeof h !== 'object' || !isTensor(h.features) || !isTensor(h.w) || !isTensor(h.b))
      throw new ArgumentError(op, `candidates must be a Tensor or {features, w, b}, got ${describe(candidates)}`);
    if (h.eps !== undefined && (typeof h.eps !== 'number' || !Number.isFinite(h.eps) || h.eps < 0))
      throw new ArgumentError(op, `candidates.eps must be a finite number >= 0, got ${describe(h.eps)}`);
    const { features: f, w, b } = h;
    if (f.rank !== 2 || w.rank !== 2 || b.rank !== 1 || f.shape[1] !== w.shape[0] || w.shape[1] !== b.shape[0])
      throw new ShapeError(
        op,
        `candidates {features, w, b} need [n, din], [din, d], [d]; got ${fmtShape(f.shape)}, ${fmtShape(w.shape)}, ${fmtShape(b.shape)}`,
      );
    head = h as CandidateHead;
    eps = h.eps ?? 1e-12;
  }
  // The shapes and targets as the composition sees them: [n, d] candidates (the head's output shape).
  const { b, n } = checkSoftmaxArgs(
    op,
    queries,
    head ? null : candidates,
    targets,
    { scale: opts.scale },
    head ? [head.features.shape[0]!, head.w.shape[1]!] : undefined,
  );
  if (head && [head.features, head.w, head.b].some((t) => !isFloat(t.dtype)))
    throw new DTypeError(op, 'candidates {features, w, b} must be float tensors');
  const reducer = checkReducer(op, opts.reducer ?? 'mean');
  const runner = opts.runner ?? LOCAL_BLOCK_RUNNER;
  if (
    runner === null ||
    typeof runner !== 'object' ||
    typeof runner.softmaxForward !== 'function' ||
    typeof runner.softmaxBackward !== 'function'
  )
    throw new ArgumentError(op, `runner must be a BlockRunner, got ${describe(runner)}`);
  const td = unsafeData(targets) as Int32Array;
  let exclQuery = new Int32Array(0),
    exclDoc = new Int32Array(0);
  const ex = opts.excluded;
  if (ex !== undefined) {
    if (
      ex === null ||
      typeof ex !== 'object' ||
      !(ex.query instanceof Int32Array) ||
      !(ex.candidate instanceof Int32Array) ||
      ex.query.length !== ex.candidate.length
    )
      throw new ArgumentError(
        op,
        `excluded must be {query, candidate}: Int32Arrays of equal length, got ${describe(ex)}`,
      );
    for (let k = 0; k < ex.query.length; k++) {
      const i = ex.query[k]!,
        j = ex.candidate[k]!;
      if (!(i >= 0 && i < b && j >= 0 && j < n))
        throw new ArgumentError(
          op,
          `excluded pair ${k} is (${i}, ${j}); need 0 <= query < ${b}, 0 <= candidate < ${n}`,
        );
      if (td[i] === j) throw new ArgumentError(op, `excluded pair ${k} masks query ${i}'s own target ${j}`);
    }
    const order = Int32Array.from(ex.query.keys()).sort(
      (x, y) => ex.candidate[x]! - ex.candidate[y]! || ex.query[x]! - ex.query[y]!,
    );
    exclQuery = Int32Array.from(order, (k) => ex.query[k]!);
    exclDoc = Int32Array.from(order, (k) => ex.candidate[k]!);
  }
  const inputs = head ? [queries, head.features, head.w, head.b] : [queries, candidates as Tensor];
  if (inputs.some((t) => t.dtype !== 'float32') || !scoreBlocksAvailable()) {
    let excluded: Tensor | undefined;
    if (exclQuery.length > 0) {
      const mask = new Uint8Array(b * n);
      for (let k = 0; k < exclQuery.length; k++) mask[exclQuery[k]! * n + exclDoc[k]!] = 1;
      excluded = wrap(mask, [b, n], 'bool');
    }
    return softmaxRetrievalLoss(queries, head ? headCandidates(head, eps) : (candidates as Tensor), targets, {
      scale: opts.scale,
      reducer,
      ...(excluded ? { excluded } : {}),
    });
  }
  const args: SoftmaxBlocksArgs = {
    queries: unsafeData(queries) as Float32Array,
    docs: unsafeData(inputs[1]!) as Float32Array,
    b,
    n,
    d: queries.shape[1]!,
    scale: opts.scale,
    targets: td.slice(),
    exclDoc,
    exclQuery,
    head: head
      ? {
          w: unsafeData(head.w) as Float32Array,
          bias: unsafeData(head.b) as Float32Array,
          din: head.w.shape[0]!,
          eps,
        }
      : null,
  };
  return applyReducer(reducer, bind(fullSoftmaxP, inputs, { args, runner, lse: null }));
}
