/**
 * The float64 reference ("oracle") for every tensor op, written as plain
 * loops over JS number arrays, plus the test-side generators and assertions
 * that compare the library with it.
 *
 * The oracle is deliberately naive and independent of the library: it never
 * imports a kernel, a primitive or a shape helper from src/. Every op walks
 * the output's coordinates one by one and computes where each value comes
 * from; there are no strides tricks, no fast paths, no blocking. Values are
 * float64 throughout, so the library's float32 results are compared with an
 * exact-ish reference, and finite differences (fdGrad) are taken here, in
 * float64, never in float32.
 *
 * The only library imports are the Tensor type and `tensor()` to move data
 * in and out (toTensor/fromTensor), plus checkGradients in the assertion
 * helper at the bottom.
 */
import fc from 'fast-check';
import { expect } from 'vitest';
import { tensor } from '../../src/tensor/create.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import type { DType } from '../../src/tensor/dtype.js';
import { checkGradients, type CheckGradientsOptions } from '../../src/autograd/checkGradients.js';

// =====================================================================
// Arrays: {shape, data} with row-major float64 data
// =====================================================================

export interface Arr {
  shape: number[];
  data: number[];
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function arr(shape: readonly number[], data: readonly number[]): Arr {
  if (numel(shape) !== data.length) throw new Error(`oracle: ${data.length} values for shape [${shape.join(',')}]`);
  return { shape: shape.slice(), data: data.slice() };
}

export function filled(shape: readonly number[], v: number): Arr {
  return arr(shape, new Array<number>(numel(shape)).fill(v));
}

/** Coordinates of a flat row-major index. */
export function unravel(flat: number, shape: readonly number[]): number[] {
  const c = new Array<number>(shape.length).fill(0);
  for (let a = shape.length - 1; a >= 0; a--) {
    const d = shape[a]!;
    c[a] = flat % d;
    flat = Math.floor(flat / d);
  }
  return c;
}

/** Flat row-major index of coordinates. */
export function ravel(coords: readonly number[], shape: readonly number[]): number {
  let flat = 0;
  for (let a = 0; a < shape.length; a++) flat = flat * shape[a]! + coords[a]!;
  return flat;
}

export function at(a: Arr, coords: readonly number[]): number {
  return a.data[ravel(coords, a.shape)]!;
}

/** An Arr from a library tensor (bool as 0/1). */
export function fromTensor(t: Tensor): Arr {
  return arr(t.shape, Array.from(t.dataSync() as ArrayLike<number>, Number));
}

export function toTensor(a: Arr, dtype: DType = 'float32'): Tensor {
  const data =
    dtype === 'float32'
      ? Float32Array.from(a.data)
      : dtype === 'float64'
        ? Float64Array.from(a.data)
        : dtype === 'int32'
          ? Int32Array.from(a.data)
          : Uint8Array.from(a.data);
  return tensor(data, dtype, a.shape);
}

/** Nested arrays of an Arr (a number for rank 0). */
export function toNested(a: Arr): unknown {
  if (a.shape.length === 0) return a.data[0];
  const build = (axis: number, prefix: number[]): unknown[] => {
    const out: unknown[] = [];
    for (let i = 0; i < a.shape[axis]!; i++) {
      const c = [...prefix, i];
      out.push(axis === a.shape.length - 1 ? at(a, c) : build(axis + 1, c));
    }
    return out;
  };
  return build(0, []);
}

// =====================================================================
// Elementwise with broadcasting
// =====================================================================

export function broadcastShape(...shapes: (readonly number[])[]): number[] {
  const rank = Math.max(0, ...shapes.map((s) => s.length));
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    let d = 1;
    for (const s of shapes) {
      const v = s[s.length - rank + i] ?? 1;
      if (v === 1) continue;
      if (d !== 1 && d !== v) throw new Error(`oracle: shapes do not broadcast`);
      d = v;
    }
    out.push(d);
  }
  return out;
}

/** The value of `a` at output coordinates of a broadcast result. */
function bcastAt(a: Arr, outCoords: readonly number[]): number {
  const lead = outCoords.length - a.shape.length;
  const c = a.shape.map((d, i) => (d === 1 ? 0 : outCoords[lead + i]!));
  return at(a, c);
}

export function map1(a: Arr, f: (x: number) => number): Arr {
  return arr(
    a.shape,
    a.data.map((x) => f(x)),
  );
}

export function map2(a: Arr, b: Arr, f: (x: number, y: number) => number): Arr {
  const shape = broadcastShape(a.shape, b.shape);
  const out: number[] = [];
  for (let i = 0; i < numel(shape); i++) {
    const c = unravel(i, shape);
    out.push(f(bcastAt(a, c), bcastAt(b, c)));
  }
  return arr(shape, out);
}

export function where(c: Arr, a: Arr, b: Arr): Arr {
  const shape = broadcastShape(c.shape, a.shape, b.shape);
  const out: number[] = [];
  for (let i = 0; i < numel(shape); i++) {
    const k = unravel(i, shape);
    out.push(bcastAt(c, k) !== 0 ? bcastAt(a, k) : bcastAt(b, k));
  }
  return arr(shape, out);
}

export const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));

export function broadcastTo(a: Arr, shape: readonly number[]): Arr {
  const out: number[] = [];
  for (let i = 0; i < numel(shape); i++) out.push(bcastAt(a, unravel(i, shape)));
  return arr(shape, out);
}

// =====================================================================
// Reductions
// =====================================================================

export function normAxes(axis: number | readonly number[] | undefined, rank: number): number[] {
  if (axis === undefined) return Array.from({ length: rank }, (_, i) => i);
  const list = typeof axis === 'number' ? [axis] : axis;
  return [...new Set(list.map((a) => (a < 0 ? a + rank : a)))].sort((x, y) => x - y);
}

function reducedShape(shape: readonly number[], axes: readonly number[], keepDims: boolean): number[] {
  const out: number[] = [];
  shape.forEach((d, i) => {
    if (!axes.includes(i)) out.push(d);
    else if (keepDims) out.push(1);
  });
  return out;
}

/** Groups the input values by output element: groups[o] lists the values reduced into o, in index order. */
function groups(a: Arr, axes: readonly number[], keepDims: boolean): { shape: number[]; groups: number[][] } {
  const shape = reducedShape(a.shape, axes, keepDims);
  const keptShape = reducedShape(a.shape, axes, true);
  const gs: number[][] = Array.from({ length: numel(shape) }, () => []);
  for (let i = 0; i < a.data.length; i++) {
    const c = unravel(i, a.shape).map((v, ax) => (axes.includes(ax) ? 0 : v));
    gs[ravel(c, keptShape)]!.push(a.data[i]!);
  }
  return { shape, groups: gs };
}

export type ReduceKind = 'sum' | 'mean' | 'max' | 'min' | 'any' | 'all' | 'logSumExp';

export function reduce(a: Arr, kind: ReduceKind, axis?: number | readonly number[], keepDims = false): Arr {
  const axes = normAxes(axis, a.shape.length);
  const { shape, groups: gs } = groups(a, axes, keepDims);
  const f = (g: number[]): number => {
    switch (kind) {
      case 'sum':
        return g.reduce((s, v) => s + v, 0);
      case 'mean':
        return g.reduce((s, v) => s + v, 0) / g.length;
      case 'max':
        return g.some(Number.isNaN) ? NaN : g.reduce((m, v) => (v > m ? v : m), -Infinity);
      case 'min':
        return g.some(Number.isNaN) ? NaN : g.reduce((m, v) => (v < m ? v : m), Infinity);
      case 'any':
        return g.some((v) => v !== 0) ? 1 : 0;
      case 'all':
        return g.every((v) => v !== 0) ? 1 : 0;
      case 'logSumExp': {
        const m = g.reduce((mx, v) => (v > mx ? v : mx), -Infinity);
        if (m === -Infinity) return -Infinity;
        return m + Math.log(g.reduce((s, v) => s + Math.exp(v - m), 0));
      }
    }
  };
  return arr(shape, gs.map(f));
}

export function softmax(a: Arr, axis = -1): Arr {
  const ax = axis < 0 ? axis + a.shape.length : axis;
  const lse = reduce(a, 'logSumExp', ax, true);
  return map2(a, lse, (x, l) => Math.exp(x - l));
}

export function logSoftmax(a: Arr, axis = -1): Arr {
  const ax = axis < 0 ? axis + a.shape.length : axis;
  const lse = reduce(a, 'logSumExp', ax, true);
  return map2(a, lse, (x, l) => x - l);
}

/** First index of the max (min) along `axis`; NaN counts as the max and the min (first NaN wins). */
export function argReduce(a: Arr, mode: 'max' | 'min', axis = -1, keepDims = false): Arr {
  const ax = axis < 0 ? axis + a.shape.length : axis;
  const { shape, groups: gs } = groups(a, [ax], keepDims);
  return arr(
    shape,
    gs.map((g) => {
      let best = 0;
      for (let k = 0; k < g.length; k++) {
        if (Number.isNaN(g[k]!)) return k;
        if (mode === 'max' ? g[k]! > g[best]! : g[k]! < g[best]!) best = k;
      }
      return best;
    }),
  );
}

export function cumsum(a: Arr, axis = -1, reverse = false): Arr {
  const ax = axis < 0 ? axis + a.shape.length : axis;
  const out: number[] = [];
  for (let i = 0; i < a.data.length; i++) {
    const c = unravel(i, a.shape);
    let s = 0;
    const n = a.shape[ax]!;
    for (let k = 0; k < n; k++) {
      if (reverse ? k < c[ax]! : k > c[ax]!) continue;
      const cc = c.slice();
      cc[ax] = k;
      s += at(a, cc);
    }
    out.push(s);
  }
  return arr(a.shape, out);
}

// =====================================================================
// Matmul: batched, broadcast batch axes, transposes; a triple loop
// =====================================================================

export function matmul(a: Arr, b: Arr, transA = false, transB = false): Arr {
  const ra = a.shape.length,
    rb = b.shape.length;
  const m = transA ? a.shape[ra - 1]! : a.shape[ra - 2]!;
  const k = transA ? a.shape[ra - 2]! : a.shape[ra - 1]!;
  const kb = transB ? b.shape[rb - 1]! : b.shape[rb - 2]!;
  const n = transB ? b.shape[rb - 2]! : b.shape[rb - 1]!;
  if (k !== kb) throw new Error('oracle: matmul inner dims');
  const batchA = a.shape.slice(0, -2),
    batchB = b.shape.slice(0, -2);
  const batch = broadcastShape(batchA, batchB);
  const shape = [...batch, m, n];
  const out: number[] = [];
  const batchCoord = (bc: number[], own: number[]): number[] => {
    const lead = bc.length - own.length;
    return own.map((d, i) => (d === 1 ? 0 : bc[lead + i]!));
  };
  for (let f = 0; f < numel(shape); f++) {
    const c = unravel(f, shape);
    const bc = c.slice(0, -2),
      i = c[c.length - 2]!,
      j = c[c.length - 1]!;
    const ca = batchCoord(bc, batchA),
      cb = batchCoord(bc, batchB);
    let s = 0;
    for (let p = 0; p < k; p++) {
      const x = at(a, [...ca, ...(transA ? [p, i] : [i, p])]);
      const y = at(b, [...cb, ...(transB ? [j, p] : [p, j])]);
      s += x * y;
    }
    out.push(s);
  }
  return arr(shape, out);
}

/**
 * Plain 2-D triple loop on flat row-major data (for the large block-boundary
 * cases, where the coordinate-walking `matmul` above would be slow):
 * out[m,n] = op(A)·op(B), A stored [m,k] ([k,m] with transA), B [k,n] ([n,k] with transB).
 */
export function matmulFlat(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  m: number,
  n: number,
  k: number,
  transA = false,
  transB = false,
): number[] {
  const out = new Array<number>(m * n).fill(0);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += a[transA ? p * m + i : i * k + p]! * b[transB ? j * k + p : p * n + j]!;
      out[i * n + j] = s;
    }
  }
  return out;
}

// =====================================================================
// Layout
// =====================================================================

export function reshape(a: Arr, shape: readonly number[]): Arr {
  return arr(shape, a.data);
}

export function transpose(a: Arr, perm?: readonly number[]): Arr {
  const p = perm ?? a.shape.map((_, i) => a.shape.length - 1 - i);
  const shape = p.map((q) => a.shape[q]!);
  const out: number[] = [];
  for (let i = 0; i < numel(shape); i++) {
    const c = unravel(i, shape);
    const src = new Array<number>(c.length);
    p.forEach((q, k) => {
      src[q] = c[k]!;
    });
    out.push(at(a, src));
  }
  return arr(shape, out);
}

export function slice(a: Arr, begin: readonly number[], size: readonly number[]): Arr {
  const out: number[] = [];
  for (let i = 0; i < numel(size); i++) {
    const c = unravel(i, size);
    out.push(
      at(
        a,
        c.map((v, ax) => v + begin[ax]!),
      ),
    );
  }
  return arr(size, out);
}

export function pad(a: Arr, before: readonly number[], after: readonly number[]): Arr {
  const shape = a.shape.map((d, i) => d + before[i]! + after[i]!);
  const out: number[] = [];
  for (let i = 0; i < numel(shape); i++) {
    const c = unravel(i, shape).map((v, ax) => v - before[ax]!);
    out.push(c.every((v, ax) => v >= 0 && v < a.shape[ax]!) ? at(a, c) : 0);
  }
  return arr(shape, out);
}

export function concat(parts: readonly Arr[], axis = 0): Arr {
  const ax = axis < 0 ? axis + parts[0]!.shape.length : axis;
  const shape = parts[0]!.shape.slice();
  shape[ax] = parts.reduce((s, p) => s + p.shape[ax]!, 0);
  const out: number[] = [];
  for (let i = 0; i < numel(shape); i++) {
    const c = unravel(i, shape);
    let pos = c[ax]!,
      p = 0;
    while (pos >= parts[p]!.shape[ax]!) {
      pos -= parts[p]!.shape[ax]!;
      p++;
    }
    const cc = c.slice();
    cc[ax] = pos;
    out.push(at(parts[p]!, cc));
  }
  return arr(shape, out);
}

export function stack(parts: readonly Arr[], axis = 0): Arr {
  const rank = parts[0]!.shape.length + 1;
  const ax = axis < 0 ? axis + rank : axis;
  const shape = parts[0]!.shape.slice();
  shape.splice(ax, 0, parts.length);
  const out: number[] = [];
  for (let i = 0; i < numel(shape); i++) {
    const c = unravel(i, shape);
    const p = c[ax]!;
    c.splice(ax, 1);
    out.push(at(parts[p]!, c));
  }
  return arr(shape, out);
}

/** out[..., j..., ...] = a[..., idx[j...], ...] */
export function gather(a: Arr, idx: Arr, axis = 0): Arr {
  const ax = axis < 0 ? axis + a.shape.length : axis;
  const shape = [...a.shape.slice(0, ax), ...idx.shape, ...a.shape.slice(ax + 1)];
  const out: number[] = [];
  for (let i = 0; i < numel(shape); i++) {
    const c = unravel(i, shape);
    const ic = c.slice(ax, ax + idx.shape.length);
    const src = [...c.slice(0, ax), at(idx, ic), ...c.slice(ax + idx.shape.length)];
    out.push(at(a, src));
  }
  return arr(shape, out);
}

/** a with rows idx[j] replaced by u[j], in order (the last write wins). */
export function scatterRows(a: Arr, idx: readonly number[], u: Arr): Arr {
  const rowSize = numel(a.shape.slice(1));
  const out = a.data.slice();
  idx.forEach((r, j) => {
    for (let q = 0; q < rowSize; q++) out[r * rowSize + q] = u.data[j * rowSize + q]!;
  });
  return arr(a.shape, out);
}

/** Scatter-add of rows: zeros(n, ...) with u[j] added to row idx[j]. */
export function scatterAddRows(n: number, idx: readonly number[], u: Arr): Arr {
  const rowShape = u.shape.slice(1);
  const rowSize = numel(rowShape);
  const out = new Array<number>(n * rowSize).fill(0);
  idx.forEach((r, j) => {
    for (let q = 0; q < rowSize; q++) out[r * rowSize + q] += u.data[j * rowSize + q]!;
  });
  return arr([n, ...rowShape], out);
}

/**
 * Top-k along the last axis by repeated selection: each step takes the
 * largest remaining value, the smallest index among equals; NaN is largest.
 */
export function topK(a: Arr, k: number): { values: Arr; indices: Arr } {
  const n = a.shape[a.shape.length - 1]!;
  const rows = n === 0 ? numel(a.shape.slice(0, -1)) : a.data.length / n;
  const values: number[] = [],
    indices: number[] = [];
  const better = (x: number, y: number): boolean => (Number.isNaN(x) ? !Number.isNaN(y) : !Number.isNaN(y) && x > y);
  for (let r = 0; r < rows; r++) {
    const row = a.data.slice(r * n, (r + 1) * n);
    const taken = new Array<boolean>(n).fill(false);
    for (let s = 0; s < k; s++) {
      let best = -1;
      for (let j = 0; j < n; j++) {
        if (taken[j]) continue;
        if (best === -1 || better(row[j]!, row[best]!)) best = j;
      }
      taken[best] = true;
      values.push(row[best]!);
      indices.push(best);
    }
  }
  const shape = [...a.shape.slice(0, -1), k];
  return { values: arr(shape, values), indices: arr(shape, indices) };
}

/** Rounds every value to float32 (what a float32 tensor stores). */
export function f32(a: Arr): Arr {
  return map1(a, Math.fround);
}

// =====================================================================
// Finite differences in float64, on the oracle
// =====================================================================

/**
 * ∂f/∂xs by central differences with step h (float64, Richardson-extrapolated:
 * truncation error O(h⁴)). `f` maps flat inputs to a scalar.
 */
export function fdGrad(f: (xs: number[][]) => number, xs: readonly (readonly number[])[], h = 1e-4): number[][] {
  const base = xs.map((x) => x.slice());
  const evalWith = (i: number, k: number, t: number): number => {
    const ys = base.map((x) => x.slice());
    ys[i]![k] = base[i]![k]! + t;
    return f(ys);
  };
  return base.map((x, i) =>
    x.map((_, k) => {
      const d1 = (evalWith(i, k, h) - evalWith(i, k, -h)) / (2 * h);
      const d2 = (evalWith(i, k, h / 2) - evalWith(i, k, -h / 2)) / h;
      return (4 * d2 - d1) / 3;
    }),
  );
}

/** Σ w ⊙ y: a scalar from a non-scalar output with fixed weights. */
export function weightedSum(y: Arr, w: readonly number[]): number {
  let s = 0;
  for (let i = 0; i < y.data.length; i++) s += w[i]! * y.data[i]!;
  return s;
}

// =====================================================================
// Generators (fast-check)
// =====================================================================

export interface ShapeOpts {
  minRank?: number;
  maxRank?: number;
  minDim?: number;
  maxDim?: number;
  /** Dims are lowered until the size is at most this. */
  maxSize?: number;
}

function capSize(shape: number[], maxSize: number, minDim: number): number[] {
  const s = shape.slice();
  while (numel(s) > maxSize) {
    let big = 0;
    for (let i = 1; i < s.length; i++) if (s[i]! > s[big]!) big = i;
    if (s[big]! <= Math.max(minDim, 1)) break;
    s[big]!--;
  }
  return s;
}

export function shapeArb(o: ShapeOpts = {}): fc.Arbitrary<number[]> {
  const minDim = o.minDim ?? 1,
    maxDim = o.maxDim ?? 4,
    maxSize = o.maxSize ?? 24;
  return fc
    .array(fc.integer({ min: minDim, max: maxDim }), { minLength: o.minRank ?? 0, maxLength: o.maxRank ?? 3 })
    .map((s) => capSize(s, maxSize, minDim));
}

export interface ValueOpts {
  min?: number;
  max?: number;
  /** Keep |x| >= this (kinks at 0: abs, relu). Values are sign * [awayFromZero, max]. */
  awayFromZero?: number;
}

/** `n` float32-representable values. */
export function valuesArb(n: number, o: ValueOpts = {}): fc.Arbitrary<number[]> {
  const min = o.min ?? -3,
    max = o.max ?? 3;
  const v =
    o.awayFromZero !== undefined
      ? fc.tuple(fc.boolean(), fc.double({ min: o.awayFromZero, max, noNaN: true })).map(([neg, m]) => (neg ? -m : m))
      : fc.double({ min, max, noNaN: true });
  return fc.array(
    v.map((x) => Math.fround(x) + 0),
    { minLength: n, maxLength: n },
  );
}

export function arrOfShape(shape: readonly number[], o: ValueOpts = {}): fc.Arbitrary<Arr> {
  return valuesArb(numel(shape), o).map((d) => arr(shape, d));
}

export function arrArb(s: ShapeOpts = {}, v: ValueOpts = {}): fc.Arbitrary<Arr> {
  return shapeArb(s).chain((shape) => arrOfShape(shape, v));
}

/**
 * Values that are pairwise distinct by at least 0.25 (no ties for max/min/
 * topK): a random permutation of ranks, scaled, plus a small jitter.
 */
export function distinctArrOfShape(shape: readonly number[], scale = 0.25): fc.Arbitrary<Arr> {
  const n = numel(shape);
  return fc
    .tuple(
      fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: n, maxLength: n }),
      fc.array(fc.double({ min: 0, max: 0.5, noNaN: true }), { minLength: n, maxLength: n }),
    )
    .map(([keys, jitter]) => {
      const order = keys
        .map((k, i) => [k, i] as const)
        .sort((x, y) => x[0] - y[0] || x[1] - y[1])
        .map((p) => p[1]);
      const rank = new Array<number>(n);
      order.forEach((i, r) => {
        rank[i] = r;
      });
      return arr(
        shape,
        rank.map((r, i) => Math.fround((r - n / 2) * scale + jitter[i]! * scale * 0.5)),
      );
    });
}

/**
 * Two (or more) shapes that broadcast: a common output shape, each operand
 * drops some leading axes and turns some axes into 1.
 */
export function broadcastShapesArb(
  count: number,
  o: ShapeOpts = {},
): fc.Arbitrary<{ out: number[]; shapes: number[][] }> {
  return shapeArb(o).chain((out) => {
    const one = fc
      .tuple(
        fc.integer({ min: 0, max: out.length }),
        fc.array(fc.boolean(), { minLength: out.length, maxLength: out.length }),
      )
      .map(([drop, ones]) => out.slice(drop).map((d, i) => (ones[drop + i] ? 1 : d)));
    return fc
      .array(one, { minLength: count, maxLength: count })
      .map((shapes) => ({ out: broadcastShape(...shapes), shapes }));
  });
}

/** A random subset of axes (as an axis option: undefined, a number, or a list, negatives allowed). */
export function axisOptArb(rank: number): fc.Arbitrary<number | number[] | undefined> {
  if (rank === 0) return fc.constantFrom(undefined, [] as number[]);
  return fc.oneof(
    fc.constant(undefined),
    fc.integer({ min: -rank, max: rank - 1 }),
    fc
      .subarray(Array.from({ length: rank }, (_, i) => i))
      .chain((axes) =>
        fc
          .array(fc.boolean(), { minLength: axes.length, maxLength: axes.length })
          .map((neg) => axes.map((a, i) => (neg[i] ? a - rank : a))),
      ),
  );
}

// =====================================================================
// Assertions
// =====================================================================

export interface Tol {
  rtol: number;
  atol: number;
}

/**
 * Asserts equal shapes and |actual - expected| <= atol + rtol·|expected|
 * elementwise (NaN matches NaN, ±Infinity must match exactly). The failure
 * message names the first bad element.
 */
export function expectClose(actual: Tensor | Arr, expected: Arr, tol: Tol, label = ''): void {
  const a = 'dataSync' in actual ? fromTensor(actual) : actual;
  expect(a.shape, `${label} shape`).toEqual(expected.shape);
  let worst = -1,
    worstErr = 0;
  for (let i = 0; i < expected.data.length; i++) {
    const x = a.data[i]!,
      y = expected.data[i]!;
    if (Number.isNaN(y) && Number.isNaN(x)) continue;
    if (!Number.isFinite(y) || !Number.isFinite(x)) {
      if (x !== y) {
        worst = i;
        worstErr = Infinity;
        break;
      }
      continue;
    }
    const err = Math.abs(x - y) / (tol.atol + tol.rtol * Math.abs(y));
    if (!(err <= 1) && err > worstErr) {
      worst = i;
      worstErr = err;
    }
  }
  if (worst >= 0) {
    throw new Error(
      `${label} element ${worst} (coords [${unravel(worst, expected.shape).join(',')}]): got ${a.data[worst]}, expected ${expected.data[worst]} (rtol ${tol.rtol}, atol ${tol.atol})`,
    );
  }
}

/** Exact equality of shape and values (-0 counts as 0, NaN as NaN). */
export function expectExact(actual: Tensor | Arr, expected: Arr, label = ''): void {
  const a = 'dataSync' in actual ? fromTensor(actual) : actual;
  expect(a.shape, `${label} shape`).toEqual(expected.shape);
  expect(
    a.data.map((v) => v + 0),
    `${label} values`,
  ).toEqual(expected.data.map((v) => v + 0));
}

/** Runs checkGradients and fails with its summary unless report.ok. */
export function expectGradientsOk(
  f: (...xs: Tensor[]) => Tensor,
  inputs: readonly Tensor[],
  opts: CheckGradientsOptions = {},
): void {
  const report = checkGradients(f, inputs, opts);
  if (!report.ok) throw new Error(report.summary);
  expect(report.checks).toBeGreaterThan(0);
}
