/**
 * Streaming passes over a large [n, d] matrix of document embeddings, one
 * block of SCORE_BLOCK documents at a time, on the WebAssembly SIMD kernels:
 *
 *  - the full softmax (src/losses/softmax.ts, fullSoftmaxLoss): forward
 *    statistics and the vector-Jacobian product of
 *      lossᵢ = logSumExp_{j not excluded} s(i, j) - s(i, tᵢ),  s = scale · Q·Dᵀ
 *    without ever holding more than one [b, SCORE_BLOCK] block of scores;
 *  - exact ranking for evaluation (src/train/evaluate.ts): how many
 *    documents score at least as high as each query's own.
 *
 * Work is cut into PANELS of PANEL_DOCS documents (the full softmax) or into
 * query GROUPS (the ranking), and every result is a deterministic function
 * of panel / group order only: a panel's partial statistics and its query
 * cotangent are computed block by block in document order, and partials are
 * combined in panel order (combineSoftmaxPanels, sumPanels). A caller may
 * therefore hand panels or groups to different threads (src/node/
 * trainingPool.ts) and get bit-identical results to doing them all here
 * (LOCAL_BLOCK_RUNNER), as long as each is computed by one thread.
 *
 * Arithmetic: scores are the generic matmul kernel's f32(scale · f32(dot))
 * (wasm/kernels.ts); exp is the f32x4 Cephes polynomial; block statistics are
 * f32 and are combined across blocks and panels in float64. So the fused
 * full softmax differs from the plain composition (float64 sums over a
 * materialised score matrix) by float32 rounding only; the tests bound it.
 */
import { ArgumentError, NonFiniteError } from '../../errors.js';
import { Temps, gemmNBlocked, packedBytes } from './wasm/index.js';
import { trainingKernels } from './sparse.js';

/** Documents per score block ([b, SCORE_BLOCK] scores, 512 KB for b = 128). A multiple of 4. */
export const SCORE_BLOCK = 1024;
/** Documents per panel of the full softmax: the unit of work a thread takes. */
export const PANEL_DOCS = 8 * SCORE_BLOCK;

/** Whether the block passes can run (they need the wasm kernels). */
export function scoreBlocksAvailable(): boolean {
  return trainingKernels() !== null;
}

function requireKernels(op: string) {
  const k = trainingKernels();
  if (k === null) throw new ArgumentError(op, 'the WebAssembly kernels are not available (await initWasm())');
  return k;
}

/**
 * C[m, n] = alpha · A[m, k]·B[n, k]ᵀ on wasm pointers, rows of A, B, C at
 * strides lda, ldb, ldc (elements): the only call into the generic matmul
 * kernel (wasm/kernels.ts), whose interface belongs to the matmul part of
 * the library. Every product of these passes goes through here.
 */
function ntProduct(
  k: KernelState,
  a: number,
  b: number,
  c: number,
  m: number,
  n: number,
  kk: number,
  lda: number,
  ldb: number,
  ldc: number,
  alpha: number,
): void {
  // B's rows packed into the gemm's V panels (scratch on the wasm heap), A's rows read in place as the S operand
  const pv = k.st.heap.alloc(packedBytes(n, kk));
  try {
    k.st.exports.packRows(b, ldb, n, kk, pv);
    gemmNBlocked(k.st.exports, pv, n, a, lda, m, kk, c, ldc, alpha);
  } finally {
    k.st.heap.free(pv);
  }
}

// ---------------------------------------------------------------------------
// Full softmax
// ---------------------------------------------------------------------------

/**
 * The last layers of the document tower, applied inside the passes:
 * D = l2normalize(X·w + bias) row by row, X being the passes' `docs`
 * ([n, din]). Computing D per panel (and recomputing it in the VJP) keeps
 * the [n, d] embeddings and their cotangent out of memory, and spreads the
 * head's work over the threads with the rest.
 */
export interface DocHead {
  /** [din, d] */
  w: Float32Array;
  /** [d] */
  bias: Float32Array;
  din: number;
  /** The normalisation's eps (as l2Normalize: x / sqrt(Σx² + eps)). */
  eps: number;
}

/** The inputs of the full-softmax passes (validated by the caller). */
export interface SoftmaxBlocksArgs {
  /** [b, d] float32 */
  queries: Float32Array;
  /** [n, d] float32 document embeddings, or with `head` the head's input [n, head.din]. */
  docs: Float32Array;
  b: number;
  n: number;
  d: number;
  scale: number;
  /** [b]: query i's positive is document targets[i]. */
  targets: Int32Array;
  /** Excluded (query, document) pairs, sorted by document: exclDoc[k] is not a negative of query exclQuery[k]. */
  exclDoc: Int32Array;
  exclQuery: Int32Array;
  /** Optional tower head (see DocHead). */
  head?: DocHead | null;
}

/** The width of a row of `docs`. */
function docWidth(a: SoftmaxBlocksArgs): number {
  return a.head ? a.head.din : a.d;
}

/** Number of panels over n documents. */
export function softmaxPanelCount(n: number): number {
  return Math.ceil(n / PANEL_DOCS);
}

/** Per-panel statistics: for panel p (of the range) and query i, max[p·b + i] and Σ exp(s - max) in sum[p·b + i]. */
export interface SoftmaxPanelStats {
  max: Float64Array;
  sum: Float64Array;
  /** s(i, tᵢ) for the queries whose target lies in the range (NaN for the others). */
  targetScore: Float32Array;
}

/** Adds (m2, s2) into the running (max, sum) of query i: a log-sum-exp merge in float64. */
function merge(max: Float64Array, sum: Float64Array, i: number, m2: number, s2: number): void {
  if (m2 === -Infinity) return;
  const m1 = max[i]!;
  if (m2 > m1) {
    sum[i] = (m1 === -Infinity ? 0 : sum[i]! * Math.exp(m1 - m2)) + s2;
    max[i] = m2;
  } else sum[i] = sum[i]! + s2 * Math.exp(m2 - m1);
}

/** Queries ordered by target (for walking blocks in document order). */
function byTarget(targets: Int32Array): Int32Array {
  return Int32Array.from(targets.keys()).sort((x, y) => targets[x]! - targets[y]! || x - y);
}

type KernelState = NonNullable<ReturnType<typeof trainingKernels>>;

/** Wasm addresses of one thread's walk (byte offsets). */
interface Walk {
  /** Queries [b, d]. */
  pq: number;
  /** One score block [b, SCORE_BLOCK]. */
  ps: number;
  /** The panel's rows of `docs` [PANEL_DOCS, din]. */
  px: number;
  /** The panel's embeddings D [PANEL_DOCS, d] (px itself without a head). */
  pd: number;
  /** With a head: X·w + bias before normalisation [PANEL_DOCS, d], and wᵀ [d, din]. */
  py: number;
  pwT: number;
  pbias: number;
}

/**
 * One thread's walk over panels [p0, p1): per panel, its documents' rows
 * into wasm memory (and, with a head, D = normalize(X·w + bias)); per block
 * of the panel, the scores S = scale · Q·D_blockᵀ padded to whole vectors
 * with -Inf and with excluded pairs set to -Inf, then `visit`; after the
 * panel's blocks, `panelDone`.
 */
function walkBlocks(
  a: SoftmaxBlocksArgs,
  p0: number,
  p1: number,
  t: Temps,
  k: KernelState,
  extra: (t: Temps, w: Walk) => void,
  visit: (w: Walk, pdBlock: number, j0: number, cols: number, S: Float32Array) => void,
  panelDone: (w: Walk, start: number, rows: number) => void = () => undefined,
): void {
  const kst = k;
  const { st, ex } = k;
  const { b, d, n } = a;
  const din = docWidth(a);
  const h = a.head ?? null;
  const w: Walk = {
    pq: t.input(a.queries),
    ps: t.alloc(b * SCORE_BLOCK * 4),
    px: t.alloc(PANEL_DOCS * din * 4),
    pd: 0,
    py: 0,
    pwT: 0,
    pbias: 0,
  };
  if (h) {
    w.py = t.alloc(PANEL_DOCS * d * 4);
    w.pd = t.alloc(PANEL_DOCS * d * 4);
    w.pwT = t.alloc(d * din * 4);
    w.pbias = t.input(h.bias);
    st.exports.transpose(t.input(h.w), w.pwT, din, d);
  } else w.pd = w.px;
  extra(t, w);
  let e = lowerBound(a.exclDoc, p0 * PANEL_DOCS);
  for (let p = p0; p < p1; p++) {
    const start = p * PANEL_DOCS,
      stop = Math.min(n, start + PANEL_DOCS),
      rows = stop - start;
    new Float32Array(st.memory.buffer, w.px, rows * din).set(a.docs.subarray(start * din, stop * din));
    if (h) {
      // The head exactly as linear + l2Normalize compute it: X·w by the NT kernel against wᵀ, + bias, normalise.
      ntProduct(kst, w.px, w.pwT, w.py, rows, d, din, din, din, d, 1);
      ex.addRowVector(w.py, rows, d, w.pbias);
      ex.l2NormalizeRows(w.py, w.pd, rows, d, Math.fround(h.eps));
    }
    for (let j0 = start; j0 < stop; j0 += SCORE_BLOCK) {
      const cols = Math.min(SCORE_BLOCK, stop - j0);
      const pdBlock = w.pd + (j0 - start) * d * 4;
      ntProduct(kst, w.pq, pdBlock, w.ps, b, cols, d, d, d, SCORE_BLOCK, a.scale);
      const S = new Float32Array(st.memory.buffer, w.ps, b * SCORE_BLOCK);
      const padTo = (cols + 3) & ~3;
      if (padTo > cols) for (let i = 0; i < b; i++) S.fill(-Infinity, i * SCORE_BLOCK + cols, i * SCORE_BLOCK + padTo);
      for (; e < a.exclDoc.length && a.exclDoc[e]! < j0 + cols; e++)
        S[a.exclQuery[e]! * SCORE_BLOCK + a.exclDoc[e]! - j0] = -Infinity;
      visit(w, pdBlock, j0, cols, S);
    }
    panelDone(w, start, rows);
  }
}

function lowerBound(sorted: Int32Array, x: number): number {
  let lo = 0,
    hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Forward statistics of panels [p0, p1) (see SoftmaxPanelStats). */
export function softmaxForwardPanels(a: SoftmaxBlocksArgs, p0: number, p1: number): SoftmaxPanelStats {
  const k = requireKernels('fullSoftmaxLoss');
  const { st, ex } = k;
  const b = a.b;
  const out: SoftmaxPanelStats = {
    max: new Float64Array((p1 - p0) * b).fill(-Infinity),
    sum: new Float64Array((p1 - p0) * b),
    targetScore: new Float32Array(b).fill(NaN),
  };
  const order = byTarget(a.targets);
  let next = lowerBoundBy(order, a.targets, p0 * PANEL_DOCS);
  const t = new Temps(st);
  let pmax = 0,
    psum = 0;
  try {
    walkBlocks(
      a,
      p0,
      p1,
      t,
      k,
      (t) => {
        pmax = t.alloc(b * 4);
        psum = t.alloc(b * 4);
      },
      (w, _pd, j0, cols, S) => {
        for (; next < b && a.targets[order[next]!]! < j0 + cols; next++) {
          const i = order[next]!;
          out.targetScore[i] = S[i * SCORE_BLOCK + a.targets[i]! - j0]!;
        }
        ex.softmaxStats(w.ps, b, cols, SCORE_BLOCK, pmax, psum);
        const mx = new Float32Array(st.memory.buffer, pmax, b),
          sm = new Float32Array(st.memory.buffer, psum, b);
        const off = (Math.floor(j0 / PANEL_DOCS) - p0) * b;
        const pm = out.max.subarray(off, off + b),
          pw = out.sum.subarray(off, off + b);
        for (let i = 0; i < b; i++) merge(pm, pw, i, mx[i]!, sm[i]!);
      },
    );
  } finally {
    t.free();
  }
  return out;
}

function lowerBoundBy(order: Int32Array, key: Int32Array, x: number): number {
  let lo = 0,
    hi = order.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (key[order[mid]!]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Combines panel statistics in panel order (the parts cover panels 0.. in
 * order) into lseᵢ = log Σ_j exp(s(i, j)) and the target scores; every
 * target must have been seen.
 */
export function combineSoftmaxPanels(
  b: number,
  parts: readonly SoftmaxPanelStats[],
): { lse: Float64Array; targetScore: Float32Array } {
  const max = new Float64Array(b).fill(-Infinity),
    sum = new Float64Array(b);
  const targetScore = new Float32Array(b).fill(NaN);
  for (const part of parts) {
    const panels = part.max.length / b;
    for (let p = 0; p < panels; p++)
      for (let i = 0; i < b; i++) merge(max, sum, i, part.max[p * b + i]!, part.sum[p * b + i]!);
    for (let i = 0; i < b; i++) if (!Number.isNaN(part.targetScore[i]!)) targetScore[i] = part.targetScore[i]!;
  }
  const lse = new Float64Array(b);
  for (let i = 0; i < b; i++) lse[i] = max[i]! + Math.log(sum[i]!);
  return { lse, targetScore };
}

/** Per-panel float64 partials of the VJP (panel p of the range at offset (p - p0)·size). */
export interface SoftmaxPanelGrads {
  /** [(p1-p0)·b·d] the queries' cotangent. */
  dq: Float64Array;
  /** With a head: [(p1-p0)·din·d] and [(p1-p0)·d], the head's weight and bias cotangents. */
  dw: Float64Array | null;
  db: Float64Array | null;
}

/** Zeroed partials for panels [p0, p1). */
export function panelGrads(a: SoftmaxBlocksArgs, p0: number, p1: number): SoftmaxPanelGrads {
  const P = p1 - p0;
  return {
    dq: new Float64Array(P * a.b * a.d),
    dw: a.head ? new Float64Array(P * a.head.din * a.d) : null,
    db: a.head ? new Float64Array(P * a.d) : null,
  };
}

/**
 * The VJP pass over panels [p0, p1): with coefᵢ = ḡᵢ·scale (ḡ the
 * cotangent of lossᵢ) and P = softmax probabilities recomputed from lse,
 * the score cotangent of a block is G = coef·(P - onehot(t)), and
 *   dQ += G·D_block   (per panel, float64, blocks in order)
 *   D̄_block = Gᵀ·Q
 * Without a head, dDocs[rows of the panel] = D̄. With one, per panel
 * Ȳ = normalizeVJP(Y, D, D̄) (rowwise.ts), dDocs[rows] = X̄ = Ȳ·wᵀ,
 * w̄ += Xᵀ·Ȳ and b̄ += Σ_rows Ȳ (float64 panel partials). The rows of
 * dDocs outside the panels are not touched.
 */
export function softmaxBackwardPanels(
  a: SoftmaxBlocksArgs,
  lse: Float64Array,
  coef: Float32Array,
  p0: number,
  p1: number,
  dDocs: Float32Array,
  grads: SoftmaxPanelGrads,
): void {
  const k = requireKernels('fullSoftmaxLoss');
  const kst = k;
  const { st, ex } = k;
  const { b, d } = a;
  const din = docWidth(a);
  const h = a.head ?? null;
  const order = byTarget(a.targets);
  let next = lowerBoundBy(order, a.targets, p0 * PANEL_DOCS);
  const t = new Temps(st);
  let pqT = 0,
    psT = 0,
    pdT = 0,
    pdq = 0,
    pdD = 0,
    plse = 0,
    pcoef = 0,
    pdY = 0,
    pdX = 0,
    pxT = 0,
    pdYT = 0,
    pdw = 0,
    pdb = 0,
    pw = 0;
  try {
    walkBlocks(
      a,
      p0,
      p1,
      t,
      k,
      (t, w) => {
        pqT = t.alloc(d * b * 4);
        psT = t.alloc(SCORE_BLOCK * b * 4);
        pdT = t.alloc(d * SCORE_BLOCK * 4);
        pdq = t.alloc(b * d * 4);
        pdD = t.alloc(PANEL_DOCS * d * 4);
        plse = t.alloc(b * 4);
        pcoef = t.alloc(b * 4);
        if (h) {
          pdY = t.alloc(PANEL_DOCS * d * 4);
          pdX = t.alloc(PANEL_DOCS * din * 4);
          pxT = t.alloc(din * PANEL_DOCS * 4);
          pdYT = t.alloc(d * PANEL_DOCS * 4);
          pdw = t.alloc(din * d * 4);
          pdb = t.alloc(d * 8);
          pw = t.input(h.w);
        }
        new Float32Array(st.memory.buffer, plse, b).set(lse);
        new Float32Array(st.memory.buffer, pcoef, b).set(coef);
        // Qᵀ [d, b] once: D̄_block = Gᵀ·Q is the NT product of Gᵀ [cols, b] and Qᵀ.
        st.exports.transpose(w.pq, pqT, b, d);
      },
      (w, pdBlock, j0, cols, S) => {
        ex.softmaxScale(w.ps, b, cols, SCORE_BLOCK, plse, pcoef);
        for (; next < b && a.targets[order[next]!]! < j0 + cols; next++) {
          const i = order[next]!,
            at = i * SCORE_BLOCK + a.targets[i]! - j0;
          S[at] = S[at]! - coef[i]!;
        }
        const g = st.exports;
        // dQ_block = G·D_block = G · (D_blockᵀ)ᵀ
        g.transpose(pdBlock, pdT, cols, d);
        ntProduct(kst, w.ps, pdT, pdq, b, d, cols, SCORE_BLOCK, cols, d, 1);
        const dqBlock = new Float32Array(st.memory.buffer, pdq, b * d);
        const off = (Math.floor(j0 / PANEL_DOCS) - p0) * b * d;
        const dq = grads.dq;
        for (let q = 0; q < b * d; q++) dq[off + q] = dq[off + q]! + dqBlock[q]!;
        // D̄_block = Gᵀ·Q into the panel's D̄ (the transposed rows past cols are stale and never read)
        g.transpose(w.ps, psT, b, SCORE_BLOCK);
        ntProduct(kst, psT, pqT, pdD + (j0 % PANEL_DOCS) * d * 4, cols, d, b, b, b, d, 1);
      },
      (w, start, rows) => {
        const g = st.exports;
        if (!h) {
          dDocs.set(new Float32Array(st.memory.buffer, pdD, rows * d), start * d);
          return;
        }
        const p = Math.floor(start / PANEL_DOCS) - p0;
        ex.l2NormalizeRowsVjp(w.py, w.pd, pdD, pdY, rows, d, Math.fround(h.eps));
        // X̄ = Ȳ·wᵀ: the NT product of Ȳ [rows, d] and w [din, d]
        ntProduct(kst, pdY, pw, pdX, rows, din, d, d, d, din, 1);
        dDocs.set(new Float32Array(st.memory.buffer, pdX, rows * din), start * din);
        // w̄ += Xᵀ·Ȳ: the NT product of Xᵀ [din, rows] and Ȳᵀ [d, rows]
        g.transpose(w.px, pxT, rows, din);
        g.transpose(pdY, pdYT, rows, d);
        ntProduct(kst, pxT, pdYT, pdw, din, d, rows, rows, rows, d, 1);
        const dw = new Float32Array(st.memory.buffer, pdw, din * d);
        const gw = grads.dw!;
        for (let q = 0; q < din * d; q++) gw[p * din * d + q] = gw[p * din * d + q]! + dw[q]!;
        // b̄ += Σ_rows Ȳ, in float64 (rows in order)
        const db = new Float64Array(st.memory.buffer, pdb, d);
        db.set(grads.db!.subarray(p * d, (p + 1) * d));
        ex.addColumnSums(pdY, rows, d, pdb);
        grads.db!.set(new Float64Array(st.memory.buffer, pdb, d), p * d);
      },
    );
  } finally {
    t.free();
  }
}

/** Σ over panels (in order) of per-panel [b·d] float64 partials, rounded to float32. */
export function sumPanels(bd: number, parts: readonly Float64Array[]): Float32Array {
  const acc = new Float64Array(bd);
  for (const part of parts) {
    const panels = part.length / bd;
    for (let p = 0; p < panels; p++) for (let k = 0; k < bd; k++) acc[k] = acc[k]! + part[p * bd + k]!;
  }
  return Float32Array.from(acc);
}

// ---------------------------------------------------------------------------
// Ranking (evaluation)
// ---------------------------------------------------------------------------

/** Queries per ranking group at most (the row count of one score block). */
export const RANK_GROUP = 128;

/**
 * The evaluation's query groups: queries ordered by the score block of
 * their target (then by index), cut where the block changes and every
 * RANK_GROUP queries. Returns the order and the group starts (plus the end).
 */
export function rankGroups(targets: Int32Array): { order: Int32Array; starts: Int32Array } {
  const order = Int32Array.from(targets.keys()).sort(
    (x, y) => Math.floor(targets[x]! / SCORE_BLOCK) - Math.floor(targets[y]! / SCORE_BLOCK) || x - y,
  );
  const starts: number[] = [];
  for (let k = 0; k < order.length; k++) {
    const blk = Math.floor(targets[order[k]!]! / SCORE_BLOCK);
    const s = starts[starts.length - 1];
    if (s === undefined || k - s >= RANK_GROUP || Math.floor(targets[order[s]!]! / SCORE_BLOCK) !== blk) starts.push(k);
  }
  starts.push(order.length);
  return { order, starts: Int32Array.from(starts) };
}

/**
 * Ranks of groups [g0, g1): for each query i in them, rank[i] = #{j ≠ tᵢ :
 * s(i, j) >= s(i, tᵢ)} with s = Q·Dᵀ (ties count against the target, as
 * rankOfTarget). The group's target block is scored first, so s(i, tᵢ) is
 * the kernel's own score at its place among the others. A NaN score throws
 * a NonFiniteError. Writes ranks[i] for the group's queries only.
 */
export function rankGroupsRange(
  queries: Float32Array,
  docs: Float32Array,
  m: number,
  n: number,
  d: number,
  targets: Int32Array,
  groups: { order: Int32Array; starts: Int32Array },
  g0: number,
  g1: number,
  ranks: Int32Array,
): void {
  const kst = requireKernels('evaluate');
  const { st, ex } = kst;
  const t = new Temps(st);
  try {
    const pD = t.input(docs, 0, n * d);
    const pq = t.alloc(RANK_GROUP * d * 4),
      ps = t.alloc(RANK_GROUP * SCORE_BLOCK * 4),
      pthr = t.alloc(RANK_GROUP * 4),
      pcnt = t.alloc(RANK_GROUP * 4);
    const blocks = Math.ceil(n / SCORE_BLOCK);
    for (let g = g0; g < g1; g++) {
      const k0 = groups.starts[g]!,
        rows = groups.starts[g + 1]! - k0;
      const Q = new Float32Array(st.memory.buffer, pq, rows * d);
      for (let r = 0; r < rows; r++) {
        const i = groups.order[k0 + r]!;
        Q.set(queries.subarray(i * d, (i + 1) * d), r * d);
      }
      new Int32Array(st.memory.buffer, pcnt, rows).fill(0);
      const home = Math.floor(targets[groups.order[k0]!]! / SCORE_BLOCK);
      let nan = 0;
      for (let q = 0; q < blocks; q++) {
        const blk = q === 0 ? home : q <= home ? q - 1 : q; // the target block first, then the others in order
        const j0 = blk * SCORE_BLOCK,
          cols = Math.min(SCORE_BLOCK, n - j0);
        ntProduct(kst, pq, pD + j0 * d * 4, ps, rows, cols, d, d, d, SCORE_BLOCK, 1);
        const S = new Float32Array(st.memory.buffer, ps, rows * SCORE_BLOCK);
        const padTo = (cols + 3) & ~3;
        if (padTo > cols)
          for (let r = 0; r < rows; r++) S.fill(-Infinity, r * SCORE_BLOCK + cols, r * SCORE_BLOCK + padTo);
        if (q === 0) {
          const thr = new Float32Array(st.memory.buffer, pthr, rows);
          for (let r = 0; r < rows; r++) thr[r] = S[r * SCORE_BLOCK + targets[groups.order[k0 + r]!]! - j0]!;
        }
        nan += ex.countAtLeast(ps, rows, cols, SCORE_BLOCK, pthr, pcnt);
      }
      if (nan > 0)
        throw new NonFiniteError(
          'evaluate',
          `${nan} scores of queries ${groups.order[k0]}.. are NaN; the model's embeddings are not finite`,
        );
      const cnt = new Int32Array(st.memory.buffer, pcnt, rows);
      // The target counts itself once (s(i, tᵢ) >= s(i, tᵢ)).
      for (let r = 0; r < rows; r++) ranks[groups.order[k0 + r]!] = cnt[r]! - 1;
    }
  } finally {
    t.free();
  }
}

// ---------------------------------------------------------------------------
// Runners
// ---------------------------------------------------------------------------

/**
 * Who runs the passes: LOCAL_BLOCK_RUNNER does everything on this thread;
 * negcache/node's createTrainingPool splits panels and groups over worker
 * threads with bit-identical results.
 */
export interface SoftmaxBackwardResult {
  /** [b, d] */
  dq: Float32Array;
  /** [n, d], or with a head [n, din]: the cotangent of `docs`. */
  dDocs: Float32Array;
  /** With a head: [din, d] and [d]. */
  dw: Float32Array | null;
  db: Float32Array | null;
}

/** Sums the panel partials (parts in panel order) into the backward's result. */
export function combineSoftmaxGrads(
  a: SoftmaxBlocksArgs,
  parts: readonly SoftmaxPanelGrads[],
  dDocs: Float32Array,
): SoftmaxBackwardResult {
  const dh = a.head ? a.head.din * a.d : 0;
  return {
    dq: sumPanels(
      a.b * a.d,
      parts.map((p) => p.dq),
    ),
    dDocs,
    dw: a.head
      ? sumPanels(
          dh,
          parts.map((p) => p.dw!),
        )
      : null,
    db: a.head
      ? sumPanels(
          a.d,
          parts.map((p) => p.db!),
        )
      : null,
  };
}

export interface BlockRunner {
  softmaxForward(a: SoftmaxBlocksArgs): { lse: Float64Array; targetScore: Float32Array };
  softmaxBackward(a: SoftmaxBlocksArgs, lse: Float64Array, coef: Float32Array): SoftmaxBackwardResult;
  rank(queries: Float32Array, docs: Float32Array, m: number, n: number, d: number, targets: Int32Array): Int32Array;
}

export const LOCAL_BLOCK_RUNNER: BlockRunner = {
  softmaxForward(a) {
    return combineSoftmaxPanels(a.b, [softmaxForwardPanels(a, 0, softmaxPanelCount(a.n))]);
  },
  softmaxBackward(a, lse, coef) {
    const panels = softmaxPanelCount(a.n);
    const dDocs = new Float32Array(a.n * docWidth(a));
    const grads = panelGrads(a, 0, panels);
    softmaxBackwardPanels(a, lse, coef, 0, panels, dDocs, grads);
    return combineSoftmaxGrads(a, [grads], dDocs);
  },
  rank(queries, docs, m, n, d, targets) {
    const groups = rankGroups(targets);
    const ranks = new Int32Array(m);
    rankGroupsRange(queries, docs, m, n, d, targets, groups, 0, groups.starts.length - 1, ranks);
    return ranks;
  },
};
