/**
 * Layers as pure functions of (params, inputs). Parameters are records of
 * tensors, so `grad` differentiates a whole model at once.
 */
import { ArgumentError, ShapeError, describe, fmtShape } from '../errors.js';
import { isTensor, unsafeData, wrap, type Tensor } from '../tensor/tensor.js';
import type { Rng } from '../tensor/random.js';
import { isFloat } from '../tensor/dtype.js';
import { scatterRows } from '../tensor/kernels/sparse.js';
import { bind, type Primitive } from '../autograd/engine.js';
import { add } from '../ops/elementwise.js';
import { matmul } from '../ops/linalg.js';
import { matmul2d } from '../tensor/kernels/matmul.js';
import { l2NormalizeRows, l2NormalizeRowsVjp } from '../tensor/kernels/rowwise.js';
import { glorotUniform, zerosInit } from './init.js';

type Floats = Float32Array | Float64Array;

export interface LinearParams {
  /** [inDim, outDim] */
  w: Tensor;
  /** [outDim] */
  b: Tensor;
}

export function initLinear(rng: Rng, inDim: number, outDim: number): LinearParams {
  return { w: glorotUniform(rng, inDim, outDim), b: zerosInit([outDim]) };
}

/**
 * x·w + b for x [batch, inDim], as one primitive (linearP) so the bias is
 * added in one pass instead of a broadcasting op, and its cotangent is a
 * column sum:
 *   y = x·w + b;  x̄ = ȳ·wᵀ;  w̄ = xᵀ·ȳ;  b̄ = Σ_rows ȳ   (float64 sums, rounded once)
 * The products are the library's matmul kernels (matmul2d), exactly as
 * matmul(x, w) computes them.
 */
export function linear(params: LinearParams, x: Tensor): Tensor {
  if (!params || !isTensor(params.w) || !isTensor(params.b))
    throw new ArgumentError('linear', `params must be {w, b} tensors, got ${describe(params)}`);
  const { w, b } = params;
  if (!isTensor(x) || x.rank !== 2 || x.shape[1] !== w.shape[0]) {
    throw new ShapeError(
      'linear',
      `x must be [batch, ${w.shape[0]}] to match w ${fmtShape(w.shape)}, got ${describe(x)}`,
    );
  }
  if (w.rank !== 2 || b.rank !== 1 || b.shape[0] !== w.shape[1])
    throw new ShapeError(
      'linear',
      `need w [inDim, outDim] and b [outDim], got w ${fmtShape(w.shape)}, b ${fmtShape(b.shape)}`,
    );
  if (!isFloat(x.dtype) || !isFloat(w.dtype) || !isFloat(b.dtype) || x.dtype !== w.dtype || w.dtype !== b.dtype)
    return add(matmul(x, w), b); // mixed dtypes: the general ops promote
  return bind(linearP, [x, w, b], null);
}

const linearP: Primitive<null> = {
  name: 'linear',
  arity: 3,
  forward: ([x, w, b]) => {
    const [m, k] = x!.shape as [number, number],
      n = w!.shape[1]!;
    const out = x!.dtype === 'float64' ? new Float64Array(m * n) : new Float32Array(m * n);
    matmul2d(unsafeData(x!) as Floats, unsafeData(w!) as Floats, m, n, k, false, false, out);
    const bd = unsafeData(b!);
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) out[i * n + j] = out[i * n + j]! + bd[j]!;
    return wrap(out, [m, n], x!.dtype);
  },
  // x̄ = ḡ·wᵀ,  w̄ = xᵀ·ḡ,  b̄ = Σ_rows ḡ   (each computed only when its input needs it)
  vjp: ({ g: ct, x, y: w }) => {
    const [m, k] = x.shape as [number, number],
      n = w.shape[1]!;
    const g = unsafeData(ct) as Floats;
    const like = (len: number): Floats => (x.dtype === 'float64' ? new Float64Array(len) : new Float32Array(len));
    const xd = unsafeData(x) as Floats,
      wd = unsafeData(w) as Floats;
    return [
      () => wrap(matmul2d(g, wd, m, k, n, false, true, like(m * k)), [m, k], x.dtype),
      () => wrap(matmul2d(xd, g, k, n, m, true, false, like(k * n)), [k, n], x.dtype),
      () => {
        const acc = new Float64Array(n);
        for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) acc[j] = acc[j]! + g[i * n + j]!;
        return wrap(x.dtype === 'float64' ? acc : Float32Array.from(acc), [n], x.dtype);
      },
    ];
  },
};

/**
 * x / sqrt(Σ x² + eps) along the last axis. eps (default 1e-12) keeps the
 * zero vector finite (it maps to zero) without changing non-tiny rows.
 * One primitive (l2NormalizeP): float32 runs the row kernels of
 * src/tensor/kernels/rowwise.ts (wasm, bit-identical to their reference),
 * float64 a float64 loop; the VJP is x̄ = (ȳ - y·Σ ȳ·y) / sqrt(Σ x² + eps).
 */
export function l2Normalize(x: Tensor, eps = 1e-12): Tensor {
  if (!isTensor(x) || x.rank < 1)
    throw new ArgumentError('l2Normalize', `x must be a tensor of rank >= 1, got ${describe(x)}`);
  if (typeof eps !== 'number' || !Number.isFinite(eps) || eps < 0)
    throw new ArgumentError('l2Normalize', `eps must be a finite number >= 0, got ${describe(eps)}`);
  if (!isFloat(x.dtype)) throw new ArgumentError('l2Normalize', `x must be float, got ${x.dtype}`);
  return bind(l2NormalizeP, [x], { eps });
}

const l2NormalizeP: Primitive<{ eps: number }> = {
  name: 'l2Normalize',
  arity: 1,
  forward: ([x], { eps }) => {
    const dim = x!.shape[x!.rank - 1]!,
      rows = dim === 0 ? 0 : x!.size / dim;
    const xd = unsafeData(x!);
    if (xd instanceof Float32Array) return wrap(l2NormalizeRows(xd, rows, dim, eps), x!.shape, 'float32');
    const y = new Float64Array(x!.size);
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let k = 0; k < dim; k++) s += xd[r * dim + k]! * xd[r * dim + k]!;
      const norm = Math.sqrt(s + eps);
      for (let k = 0; k < dim; k++) y[r * dim + k] = xd[r * dim + k]! / norm;
    }
    return wrap(y, x!.shape, 'float64');
  },
  // x̄ = (ḡ - z·Σ ḡ·z) / sqrt(Σ x² + eps)
  vjp: ({ g: ct, x, z, attrs: { eps } }) => [() => l2NormalizeGrad(ct, x, z, eps)],
};

/** The cotangent of l2Normalize: x̄ = (ḡ - y·Σ ḡ·y) / sqrt(Σ x² + eps) per row. */
function l2NormalizeGrad(ct: Tensor, x: Tensor, output: Tensor, eps: number): Tensor {
  const dim = x.shape[x.rank - 1]!,
    rows = dim === 0 ? 0 : x.size / dim;
  const xd = unsafeData(x),
    yd = unsafeData(output),
    g = unsafeData(ct);
  if (xd instanceof Float32Array && yd instanceof Float32Array && g instanceof Float32Array)
    return wrap(l2NormalizeRowsVjp(xd, yd, g, rows, dim, eps), x.shape, 'float32');
  const out = new Float64Array(x.size);
  for (let r = 0; r < rows; r++) {
    let s = 0,
      c = 0;
    for (let k = 0; k < dim; k++) {
      s += xd[r * dim + k]! * xd[r * dim + k]!;
      c += g[r * dim + k]! * yd[r * dim + k]!;
    }
    const norm = Math.sqrt(s + eps);
    for (let k = 0; k < dim; k++) out[r * dim + k] = (g[r * dim + k]! - yd[r * dim + k]! * c) / norm;
  }
  return wrap(out, x.shape, x.dtype === 'float64' ? 'float64' : 'float32');
}

/**
 * The distinct global ids (e.g. hashed features) a step touches, each given
 * a row number in first-use order. Bags built against one RowSpace index
 * into one row block, `table.rows(space.ids())`: only these rows are ever
 * gathered, differentiated and updated (a sparse gradient).
 *
 * An open-addressing hash table of int32 keys (multiplicative hashing,
 * linear probing, at most half full), so a step's few thousand lookups
 * allocate nothing per id.
 */
export class RowSpace {
  // 4096 slots: a training step's few thousand ids need at most one rehash.
  private keys = new Int32Array(4096);
  /** Row + 1 per slot (0 = empty slot). */
  private slots = new Int32Array(4096);
  private list = new Int32Array(2048);
  private count = 0;
  private shift = 20; // 32 - log2(capacity)

  /** The row of `id` (an int32), adding it if new. */
  rowOf(id: number): number {
    if (!Number.isInteger(id) || id < -(2 ** 31) || id >= 2 ** 31)
      throw new ArgumentError('RowSpace.rowOf', `id must be an int32, got ${describe(id)}`);
    return this.row(id);
  }

  /** rowOf without the check (ids known to be int32). */
  private row(id: number): number {
    const mask = this.keys.length - 1;
    let h = Math.imul(id, 0x9e3779b1) >>> this.shift;
    for (;;) {
      const r = this.slots[h]!;
      if (r === 0) break;
      if (this.keys[h] === id) return r - 1;
      h = (h + 1) & mask;
    }
    const row = this.count++;
    if (row === this.list.length) {
      const grown = new Int32Array(2 * this.list.length);
      grown.set(this.list);
      this.list = grown;
    }
    this.list[row] = id;
    this.keys[h] = id;
    this.slots[h] = row + 1;
    if (2 * this.count > this.keys.length) this.rehash();
    return row;
  }

  private rehash(): void {
    const cap = 2 * this.keys.length;
    this.keys = new Int32Array(cap);
    this.slots = new Int32Array(cap);
    this.shift--;
    const mask = cap - 1;
    for (let r = 0; r < this.count; r++) {
      const id = this.list[r]!;
      let h = Math.imul(id, 0x9e3779b1) >>> this.shift;
      while (this.slots[h] !== 0) h = (h + 1) & mask;
      this.keys[h] = id;
      this.slots[h] = r + 1;
    }
  }

  get size(): number {
    return this.count;
  }

  /** The global ids in row order. */
  ids(): Int32Array {
    return this.list.slice(0, this.count);
  }

  /** @internal Registers ids[from..to) in order, writing each one's row to out[at..]. */
  registerAll(ids: Int32Array, from: number, to: number, out: Int32Array, at: number): void {
    for (let k = from; k < to; k++) out[at++] = this.row(ids[k]!);
  }
}

/**
 * A batch of bags: example e sums (or averages) rows local[k] of a row block
 * for the feature occurrences k that belong to it.
 */
export interface Bags {
  /** For every feature occurrence, its row in the row block. */
  local: Int32Array;
  /** For every feature occurrence, its example. */
  segment: Int32Array;
  /** Number of examples. */
  count: number;
  /** Features per example (for the mean). */
  sizes: Int32Array;
}

/** Bags that makeBags built (so they passed its checks), with the mean weights once computed. */
const madeBags = new WeakMap<Bags, { rowsNeeded: number; meanWeights: Float32Array | null }>();

/**
 * Builds Bags for `examples` from CSR features (offsets [N+1], ids [nnz]),
 * registering their ids in `space`. Ids are checked against `vocab`.
 */
export function makeBags(
  offsets: Int32Array,
  ids: Int32Array,
  examples: ArrayLike<number>,
  vocab: number,
  space: RowSpace,
): Bags {
  const op = 'makeBags';
  if (!(offsets instanceof Int32Array))
    throw new ArgumentError(op, `offsets must be an Int32Array (CSR row offsets), got ${describe(offsets)}`);
  if (!(ids instanceof Int32Array))
    throw new ArgumentError(op, `ids must be an Int32Array (CSR feature ids), got ${describe(ids)}`);
  if (!(Array.isArray(examples) || (ArrayBuffer.isView(examples) && !(examples instanceof DataView))))
    throw new ArgumentError(op, `examples must be an array of example indices, got ${describe(examples)}`);
  if (!Number.isInteger(vocab) || vocab < 1)
    throw new ArgumentError(op, `vocab must be a positive integer, got ${describe(vocab)}`);
  if (!(space instanceof RowSpace)) throw new ArgumentError(op, `space must be a RowSpace, got ${describe(space)}`);
  const sizes = new Int32Array(examples.length);
  // Validate everything before registering any id, so a rejected call leaves `space` unchanged.
  let nnz = 0;
  for (let e = 0; e < examples.length; e++) {
    const ex = examples[e]!;
    if (!Number.isInteger(ex) || ex < 0 || ex + 1 >= offsets.length)
      throw new ArgumentError(op, `examples[${e}] = ${ex} is out of range; need 0 <= example < ${offsets.length - 1}`);
    const lo = offsets[ex]!,
      hi = offsets[ex + 1]!;
    if (!(lo >= 0 && lo <= hi && hi <= ids.length)) {
      throw new ArgumentError(
        op,
        `offsets[${ex}..${ex + 1}] = [${lo}, ${hi}] is not a range of ids; need 0 <= offsets[i] <= offsets[i+1] <= ${ids.length}`,
      );
    }
    for (let k = lo; k < hi; k++) {
      const id = ids[k]!;
      if (!(id >= 0 && id < vocab))
        throw new ArgumentError(op, `feature id ${id} of example ${ex} is out of range for a vocabulary of ${vocab}`);
    }
    sizes[e] = hi - lo;
    nnz += hi - lo;
  }
  const local = new Int32Array(nnz),
    segment = new Int32Array(nnz);
  let at = 0;
  for (let e = 0; e < examples.length; e++) {
    const ex = examples[e]!;
    const lo = offsets[ex]!,
      hi = offsets[ex + 1]!;
    space.registerAll(ids, lo, hi, local, at);
    segment.fill(e, at, at + hi - lo);
    at += hi - lo;
  }
  let rowsNeeded = 0;
  for (let k = 0; k < nnz; k++) if (local[k]! >= rowsNeeded) rowsNeeded = local[k]! + 1;
  const bags: Bags = { local, segment, count: examples.length, sizes };
  madeBags.set(bags, { rowsNeeded, meanWeights: null });
  return bags;
}

/** A Bags record as makeBags builds it: parallel local/segment arrays, segments in [0, count), one size per example. */
function checkBags(op: string, bags: unknown, mode: 'sum' | 'mean'): asserts bags is Bags {
  if (bags === null || typeof bags !== 'object')
    throw new ArgumentError(op, `bags must be {local, segment, count, sizes} from makeBags, got ${describe(bags)}`);
  const b = bags as Partial<Bags>;
  if (!(b.local instanceof Int32Array) || !(b.segment instanceof Int32Array) || !(b.sizes instanceof Int32Array)) {
    throw new ArgumentError(
      op,
      `bags.local, bags.segment and bags.sizes must be Int32Arrays (from makeBags), got ${describe(b.local)}, ${describe(b.segment)}, ${describe(b.sizes)}`,
    );
  }
  if (b.local.length !== b.segment.length)
    throw new ShapeError(
      op,
      `bags.local has ${b.local.length} entries but bags.segment has ${b.segment.length}; need one segment per entry`,
    );
  const count = b.count;
  if (typeof count !== 'number' || !Number.isInteger(count) || count < 0 || count > 2 ** 31 - 1)
    throw new ArgumentError(op, `bags.count must be a non-negative integer, got ${describe(count)}`);
  if (b.sizes.length !== count)
    throw new ShapeError(
      op,
      `bags.sizes has ${b.sizes.length} entries but bags.count is ${count}; need one size per example`,
    );
  // Bags from makeBags were checked when built (their rows are checked again by the kernel, see bagRowsP).
  if (madeBags.has(b as Bags)) return;
  for (let k = 0; k < b.segment.length; k++) {
    const e = b.segment[k]!;
    if (!(e >= 0 && e < count))
      throw new ArgumentError(op, `bags.segment[${k}] = ${e} is out of range; need 0 <= segment < ${count}`);
    if (mode === 'mean' && !(b.sizes[e]! > 0))
      throw new ArgumentError(
        op,
        `bags.sizes[${e}] = ${b.sizes[e]} but example ${e} has features; need its feature count for the mean`,
      );
  }
}

interface BagRowsAttrs {
  /** Source row of every entry. */
  from: Int32Array;
  /** Destination row of every entry. */
  to: Int32Array;
  /** Per-entry weights for float32 inputs (null: 1). */
  weight32: Float32Array | null;
  /** The same weights in float64 for float64 inputs (null: 1). */
  weight64: Float64Array | null;
  /** Rows of the output. */
  rows: number;
}

/**
 * The sparse row product of embedding bags, a primitive:
 *   z[to[k]] += w_k · x[from[k]]   (rows of x's width, k in order)
 *   x̄[from[k]] += w_k · ḡ[to[k]]   (the same product with from and to swapped)
 * Float32 inputs run the WebAssembly SIMD kernel or its plain reference,
 * bit-identical (scatterRows, src/tensor/kernels/sparse.ts): float32
 * arithmetic, one rounding per multiply and per add, entries in order.
 * Float64 inputs (gradient checks) run a float64 loop. Every row index is
 * checked against x and z (ShapeError), whatever built the entries.
 */
const bagRowsP: Primitive<BagRowsAttrs> = {
  name: 'bagRows',
  arity: 1,
  forward: ([x], { from, to, weight32, weight64, rows }) => {
    const dim = x!.shape[1]!,
      n = x!.shape[0]!;
    const src = unsafeData(x!);
    if (src instanceof Float32Array)
      return wrap(scatterRows('embeddingBag', src, n, from, to, weight32, rows, dim), [rows, dim], 'float32');
    for (let k = 0; k < from.length; k++) {
      if (!(from[k]! >= 0 && from[k]! < n) || !(to[k]! >= 0 && to[k]! < rows))
        throw new ShapeError(
          'embeddingBag',
          `entry ${k} maps row ${from[k]} to row ${to[k]}; need rows < ${n} and < ${rows}`,
        );
    }
    const out = new Float64Array(rows * dim);
    for (let k = 0; k < from.length; k++) {
      const s = from[k]! * dim,
        d = to[k]! * dim,
        w = weight64 ? weight64[k]! : 1;
      for (let i = 0; i < dim; i++) out[d + i] += w * src[s + i]!;
    }
    return wrap(out, [rows, dim], 'float64');
  },
  // x̄[from[k]] += w_k · ḡ[to[k]]: the same product with from and to swapped
  vjp: ({ g, x, attrs: { from, to, weight32, weight64 } }) => [
    () => bind(bagRowsP, [g], { from: to, to: from, weight32, weight64, rows: x.shape[0]! }),
  ],
};

/**
 * Embedding bag: out[e] = Σ_{k ∈ bag e} rows[local[k]] ('sum'), or
 * Σ_k (1/size_e)·rows[local[k]] ('mean'; the weight 1/size_e is rounded to
 * float32 for float32 rows; an empty bag gives zeros). One sparse product
 * (bagRowsP), so its gradient with respect to `rows` is the scatter-add of
 * the output cotangent onto the rows the batch used ([space size, dim]),
 * never a dense [vocab, dim] gradient, and no [entries, dim] intermediate.
 */
export function embeddingBag(rows: Tensor, bags: Bags, mode: 'sum' | 'mean' = 'mean'): Tensor {
  const op = 'embeddingBag';
  if (!isTensor(rows) || rows.rank !== 2)
    throw new ShapeError(op, `rows must be [numRows, dim], got ${describe(rows)}`);
  if (!isFloat(rows.dtype)) throw new ArgumentError(op, `rows must be float32 or float64, got ${rows.dtype}`);
  if (mode !== 'sum' && mode !== 'mean')
    throw new ArgumentError(op, `mode must be 'sum' or 'mean', got ${describe(mode)}`);
  checkBags(op, bags, mode);
  const made = madeBags.get(bags);
  if (made !== undefined) {
    if (made.rowsNeeded > rows.shape[0]!)
      throw new ShapeError(
        op,
        `bag row ${made.rowsNeeded - 1} is beyond the ${rows.shape[0]} rows given; build rows from the same RowSpace after all bags`,
      );
  } else {
    for (let k = 0; k < bags.local.length; k++) {
      if (bags.local[k]! < 0)
        throw new ArgumentError(op, `bags.local[${k}] = ${bags.local[k]} is negative; need a row index`);
      if (bags.local[k]! >= rows.shape[0]!)
        throw new ShapeError(
          op,
          `bag row ${bags.local[k]} is beyond the ${rows.shape[0]} rows given; build rows from the same RowSpace after all bags`,
        );
    }
  }
  let weight32: Float32Array | null = null,
    weight64: Float64Array | null = null;
  if (mode === 'mean') {
    if (rows.dtype === 'float32') {
      weight32 = made?.meanWeights ?? meanWeights32(bags);
      if (made) made.meanWeights = weight32;
    } else {
      weight64 = new Float64Array(bags.local.length);
      for (let k = 0; k < weight64.length; k++) weight64[k] = 1 / bags.sizes[bags.segment[k]!]!;
    }
  }
  return bind(bagRowsP, [rows], { from: bags.local, to: bags.segment, weight32, weight64, rows: bags.count });
}

/** fround(1 / size) of each entry's example. */
function meanWeights32(bags: Bags): Float32Array {
  const w = new Float32Array(bags.local.length);
  for (let k = 0; k < w.length; k++) w[k] = 1 / bags.sizes[bags.segment[k]!]!;
  return w;
}

/** Reads a tensor's values as a fresh Float32Array (for stores that own their memory). */
export function toFloat32(t: Tensor): Float32Array {
  return Float32Array.from(unsafeData(t));
}
