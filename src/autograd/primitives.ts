/**
 * The differentiable primitives, as one typed table: each entry is the
 * primitive's forward (a call into the kernels of src/tensor/kernels) with
 * its VJP right under it, one line of maths then one line of code.
 * Everything else differentiable (softmax, logSumExp, mean, square, the
 * losses) is composed from these in src/ops and above. The table's type
 * lists every primitive with its attributes, so an entry without a forward
 * or a VJP does not compile, and each entry's `name` is its key (read by the
 * engine's error messages and by describeGraph).
 *
 * Vocabulary
 *   primal     a value the forward pass computes
 *   cotangent  ∂L/∂(a value) for the scalar L being differentiated; same shape as the value
 *   VJP        vector-Jacobian product: maps the output cotangent ḡ to the input cotangents x̄, ȳ
 * Notation: x, y the inputs; z the output; ḡ (`g` in code) its cotangent;
 * x̄, ȳ the inputs' cotangents; ᵀ a transpose over the last two axes. In code
 * each input's cotangent is a thunk `() => ...`, evaluated only if that input
 * needs one, or null for an input that never gets one (int32 indices, bool
 * conditions).
 *
 * Binary primitives broadcast their inputs, and `binary` sums x̄, ȳ back to
 * the input shapes ("broadcast is sum in reverse": sumTo), so their rules
 * are written as for equal shapes.
 *
 * The primitives trust their arguments: validation happens in the public ops
 * (src/ops), never inside a gradient rule. The unchecked helpers the rules
 * use (neg, mul, reshape, ...) are private to this module; the validated
 * public ops of those names are in src/ops.
 */
import {
  allocateFor,
  around,
  broadcastShapes,
  reducedShape,
  shapesEqual,
  sizeOf,
  type Shape,
} from '../tensor/shape.js';
import { promote, type DType, type TypedArray } from '../tensor/dtype.js';
import { unsafeData as data, wrap, type Tensor } from '../tensor/tensor.js';
import {
  broadcastTo as broadcastKernel,
  castInto,
  expArray,
  mapBinary,
  mapUnary,
  mapWhere,
  type ArithOp,
  type Binary,
  type Unary,
} from '../tensor/kernels/elementwise.js';
import { cumsumAxis, reduceAxes } from '../tensor/kernels/reduce.js';
import { matmulBatched } from '../tensor/kernels/matmulBatched.js';
import { logSoftmaxAxis, logSoftmaxBackward } from '../tensor/kernels/softmax.js';
import {
  concat as concatKernel,
  gather as gatherKernel,
  lastWriteWins,
  pad as padKernel,
  permute as permuteKernel,
  scatterAdd as scatterAddKernel,
  scatterRows as scatterRowsKernel,
  slice as sliceKernel,
  sparseRows as sparseRowsKernel,
  zeroRows,
} from '../tensor/kernels/layout.js';
import { bind, type Cotangent, type Primitive, type VjpArgs } from './engine.js';

export interface ReduceAttrs {
  /** The reduced axes, sorted, unique. */
  axes: readonly number[];
  keepDims: boolean;
}

export interface MatmulAttrs {
  transA: boolean;
  transB: boolean;
}

export interface SparseRowsAttrs {
  /** For every entry k: the input row it reads. */
  from: Int32Array;
  /** For every entry k: the output row it adds into. */
  to: Int32Array;
  /** Optional per-entry weight (1 when null). */
  weight: Float64Array | null;
  /** Number of output rows. */
  rows: number;
}

/** Every primitive and the type of its attributes (null: none). */
export interface PrimitiveAttrs {
  neg: null;
  exp: null;
  log: null;
  sqrt: null;
  abs: null;
  tanh: null;
  sigmoid: null;
  relu: null;
  add: null;
  sub: null;
  mul: null;
  div: null;
  pow: null;
  maximum: null;
  minimum: null;
  where: null;
  broadcastTo: { shape: Shape };
  reshape: { shape: Shape };
  permute: { perm: readonly number[] };
  slice: { begin: readonly number[]; size: readonly number[] };
  pad: { begin: readonly number[]; shape: Shape };
  concat: { axis: number };
  sum: ReduceAttrs;
  max: ReduceAttrs;
  cumsum: { axis: number; reverse: boolean };
  logSoftmax: { axis: number };
  matmul: MatmulAttrs;
  gather: { axis: number };
  scatterAdd: { axis: number; size: number };
  scatterRows: null;
  sparseRows: SparseRowsAttrs;
  cast: { dtype: DType };
}

export type PrimitiveName = keyof PrimitiveAttrs;

/** A table entry: a primitive without its name (the key supplies it). */
type Entry<A> = Omit<Primitive<A>, 'name'>;

// ------------------------------------------------------------------ authoring helpers

/** A unary elementwise primitive z = f(x) (x's dtype and shape), from a scalar map or an array kernel. */
function unary(def: {
  map?: Unary;
  kernel?: (src: TypedArray, out: TypedArray) => TypedArray;
  vjp: (a: VjpArgs<null>) => [Cotangent];
}): Entry<null> {
  const kernel = def.kernel ?? ((src: TypedArray, out: TypedArray) => mapUnary(src, out, def.map!));
  return {
    arity: 1,
    forward: ([x], _, op) => wrap(kernel(data(x), allocateFor(op, x.shape, x.dtype)), x.shape, x.dtype),
    vjp: def.vjp,
  };
}

/** A broadcasting binary primitive z = f(x, y); its rule's cotangents are summed back to x's and y's shapes. */
function binary(def: { map: Binary | ArithOp; vjp: (a: VjpArgs<null>) => [Cotangent, Cotangent] }): Entry<null> {
  return {
    arity: 2,
    forward: ([x, y], _, op) => {
      const shape = broadcastShapes(op, x.shape, y.shape);
      const dtype = promote(x.dtype, y.dtype)!;
      const out = allocateFor(op, shape, dtype);
      return wrap(mapBinary(data(x), x.shape, data(y), y.shape, shape, out, def.map), shape, dtype);
    },
    vjp: (a) => {
      const [gx, gy] = def.vjp(a);
      return [gx && (() => sumTo(gx(), a.x.shape)), gy && (() => sumTo(gy(), a.y.shape))];
    },
  };
}

/** A primitive of one input with attributes. */
function unaryWith<A>(def: {
  forward: (x: Tensor, attrs: A, op: string) => Tensor;
  vjp: (a: VjpArgs<A>) => [Cotangent];
}): Entry<A> {
  return { arity: 1, forward: ([x], attrs, op) => def.forward(x, attrs, op), vjp: def.vjp };
}

/** Names each entry by its key. */
function table(entries: { [K in PrimitiveName]: Entry<PrimitiveAttrs[K]> }): {
  readonly [K in PrimitiveName]: Primitive<PrimitiveAttrs[K]>;
} {
  const out: Record<string, Primitive<unknown>> = {};
  for (const [name, entry] of Object.entries(entries)) out[name] = Object.freeze({ name, ...entry });
  return Object.freeze(out) as { readonly [K in PrimitiveName]: Primitive<PrimitiveAttrs[K]> };
}

// Scalar functions of the forwards and rules (named, so each rule stays one line).
const relu: Unary = (v) => (v > 0 ? v : v === v ? 0 : v); // NaN propagates
const sigmoid: Unary = (v) => (v >= 0 ? 1 / (1 + Math.exp(-v)) : Math.exp(v) / (1 + Math.exp(v)));
const maximum: Binary = (a, b) => (a !== a || b !== b ? NaN : Math.max(a, b));
const minimum: Binary = (a, b) => (a !== a || b !== b ? NaN : Math.min(a, b));
const oneMinusSquare: Unary = (t) => 1 - t * t;
const timesOneMinus: Unary = (s) => s * (1 - s);
const positive: Unary = (v) => (v > 0 ? 1 : 0);
const sign: Unary = (v) => (v > 0 ? 1 : v < 0 ? -1 : 0); // 0 at 0 and NaN
const greater = (a: number, b: number): boolean => a > b;
const less = (a: number, b: number): boolean => a < b;

// ------------------------------------------------------------------ the table

export const primitives = table({
  // ---------------------------------------------------------------- unary elementwise: z = f(x)

  /** z = -x */
  neg: unary({
    map: (v) => -v,
    // x̄ = -ḡ
    vjp: ({ g }) => [() => neg(g)],
  }),
  /** z = eˣ (large float32 arrays on the wasm kernel) */
  exp: unary({
    kernel: expArray,
    // x̄ = ḡ·z
    vjp: ({ g, z }) => [() => mul(g, z)],
  }),
  /** z = log x */
  log: unary({
    map: Math.log,
    // x̄ = ḡ/x
    vjp: ({ g, x }) => [() => div(g, x)],
  }),
  /** z = √x */
  sqrt: unary({
    map: Math.sqrt,
    // x̄ = ḡ/(2z)
    vjp: ({ g, z }) => [() => div(g, scale(z, 2))],
  }),
  /** z = |x| */
  abs: unary({
    map: Math.abs,
    // x̄ = ḡ·sign(x)
    vjp: ({ g, x }) => [() => mul(g, pointwise(x, sign))],
  }),
  /** z = tanh x */
  tanh: unary({
    map: Math.tanh,
    // x̄ = ḡ·(1 - z²)
    vjp: ({ g, z }) => [() => mul(g, pointwise(z, oneMinusSquare))],
  }),
  /** z = 1/(1 + e⁻ˣ), evaluated without overflow */
  sigmoid: unary({
    map: sigmoid,
    // x̄ = ḡ·z·(1 - z)
    vjp: ({ g, z }) => [() => mul(g, pointwise(z, timesOneMinus))],
  }),
  /** z = max(x, 0) (NaN propagates) */
  relu: unary({
    map: relu,
    // x̄ = ḡ·[x > 0]
    vjp: ({ g, x }) => [() => mul(g, pointwise(x, positive))],
  }),

  // ---------------------------------------------------------------- binary elementwise: z = f(x, y), broadcast

  /** z = x + y */
  add: binary({
    map: 'add',
    // x̄ = ḡ,  ȳ = ḡ
    vjp: ({ g }) => [() => g, () => g],
  }),
  /** z = x - y */
  sub: binary({
    map: 'sub',
    // x̄ = ḡ,  ȳ = -ḡ
    vjp: ({ g }) => [() => g, () => neg(g)],
  }),
  /** z = x·y */
  mul: binary({
    map: 'mul',
    // x̄ = ḡ·y,  ȳ = ḡ·x
    vjp: ({ g, x, y }) => [() => mul(g, y), () => mul(g, x)],
  }),
  /** z = x/y */
  div: binary({
    map: 'div',
    // x̄ = ḡ/y,  ȳ = -ḡ·z/y
    vjp: ({ g, y, z }) => [() => div(g, y), () => neg(div(mul(g, z), y))],
  }),
  /** z = xʸ */
  pow: binary({
    map: Math.pow,
    // x̄ = ḡ·y·x^(y-1),  ȳ = ḡ·z·log(x) with log(x) taken as 0 where x <= 0 (as JAX does)
    vjp: ({ g, x, y, z }) => [() => mul(g, mul(y, pow(x, shift(y, -1)))), () => mul(g, mul(z, logOrZero(x)))],
  }),
  /** z = max(x, y) (NaN propagates) */
  maximum: binary({
    map: maximum,
    // x̄ = ḡ·([x > y] + ½[x = y]),  ȳ = ḡ·([y > x] + ½[x = y]): ties split the cotangent evenly
    vjp: ({ g, x, y }) => [() => mul(g, share(x, y, greater)), () => mul(g, share(y, x, greater))],
  }),
  /** z = min(x, y) (NaN propagates) */
  minimum: binary({
    map: minimum,
    // x̄ = ḡ·([x < y] + ½[x = y]),  ȳ = ḡ·([y < x] + ½[x = y])
    vjp: ({ g, x, y }) => [() => mul(g, share(x, y, less)), () => mul(g, share(y, x, less))],
  }),

  /** z = c ? x : y, all three broadcast; c is bool and gets no cotangent. */
  where: {
    arity: 3,
    forward: ([c, x, y], _, op) => select(op, c, x, y),
    // c̄ = none,  x̄ = ḡ where c else 0,  ȳ = ḡ where not c else 0
    vjp: ({ g, inputs: [c, x, y] }) => [null, () => gradWhere(c, g, true, x), () => gradWhere(c, g, false, y)],
  },

  // ---------------------------------------------------------------- shape and layout

  /** z = x broadcast to attrs.shape (NumPy rules). */
  broadcastTo: unaryWith({
    forward: (x, { shape }, op) => {
      const out = broadcastKernel(data(x), x.shape, shape, allocateFor(op, shape, x.dtype));
      return wrap(out, shape, x.dtype);
    },
    // x̄ = sumTo(ḡ, x.shape)
    vjp: ({ g, x }) => [() => sumTo(g, x.shape)],
  }),
  /** z = x with a new shape of the same size; shares x's storage (tensors are immutable). */
  reshape: unaryWith({
    forward: (x, { shape }) => wrap(data(x), shape, x.dtype),
    // x̄ = reshape(ḡ, x.shape)
    vjp: ({ g, x }) => [() => reshape(g, x.shape)],
  }),
  /** z = x with axes permuted: z.shape[i] = x.shape[perm[i]]. */
  permute: unaryWith({
    forward: (x, { perm }, op) => {
      const shape = perm.map((p) => x.shape[p]!);
      return wrap(permuteKernel(data(x), x.shape, perm, allocateFor(op, shape, x.dtype)), shape, x.dtype);
    },
    // x̄ = permute(ḡ, perm⁻¹)
    vjp: ({ g, attrs: { perm } }) => [() => bind(primitives.permute, [g], { perm: inverse(perm) })],
  }),
  /** z = the box of x starting at `begin` with extent `size`. */
  slice: unaryWith({
    forward: (x, { begin, size }, op) => {
      const out = sliceKernel(data(x), x.shape, begin, size, allocateFor(op, size, x.dtype));
      return wrap(out, size, x.dtype);
    },
    // x̄ = pad(ḡ, begin, x.shape): zeros around the slice
    vjp: ({ g, x, attrs: { begin } }) => [() => bind(primitives.pad, [g], { begin, shape: x.shape })],
  }),
  /** z = zeros of attrs.shape with x placed at `begin` (the adjoint of slice). */
  pad: unaryWith({
    forward: (x, { begin, shape }, op) => {
      const out = padKernel(data(x), x.shape, begin, shape, allocateFor(op, shape, x.dtype));
      return wrap(out, shape, x.dtype);
    },
    // x̄ = slice(ḡ, begin, x.shape)
    vjp: ({ g, x, attrs: { begin } }) => [() => bind(primitives.slice, [g], { begin, size: x.shape })],
  }),
  /** z = x₀, x₁, ... joined along `axis` (any number of inputs; dtypes promote). */
  concat: {
    arity: null,
    forward: (xs, { axis }, op) => concatForward(op, xs, axis),
    // x̄ᵢ = the slice of ḡ along axis where xᵢ sits
    vjp: ({ g, inputs, attrs: { axis } }) => concatSlices(g, inputs, axis),
  },

  // ---------------------------------------------------------------- reductions and scans

  /** z = Σ of x over `axes`. */
  sum: unaryWith({
    forward: (x, { axes, keepDims }) => reduce(x, axes, keepDims, 'sum'),
    // x̄ = ḡ broadcast back over the summed axes
    vjp: ({ g, x, attrs: { axes } }) => [() => broadcastTo(reshape(g, reducedShape(x.shape, axes, true)), x.shape)],
  }),
  /** z = max of x over `axes` (NaN propagates). */
  max: unaryWith({
    forward: (x, { axes, keepDims }) => reduce(x, axes, keepDims, 'max'),
    // x̄ = ḡ·[x = z] / #{x = z}: ties share the cotangent evenly (the mean of the one-sided derivatives)
    vjp: ({ g, x, z, attrs: { axes } }) => [() => shareAmongMaxima(g, x, z, axes)],
  }),
  /** z = the inclusive cumulative sum along `axis` (from the end with `reverse`). */
  cumsum: unaryWith({
    forward: (x, { axis, reverse }, op) => {
      const [outer, n, inner] = around(x.shape, axis);
      const out = cumsumAxis(data(x), outer, n, inner, reverse, allocateFor(op, x.shape, x.dtype));
      return wrap(out, x.shape, x.dtype);
    },
    // x̄ = cumsum(ḡ) in the opposite direction: each input feeds every later output
    vjp: ({ g, attrs: { axis, reverse } }) => [() => bind(primitives.cumsum, [g], { axis, reverse: !reverse })],
  }),
  /**
   * z = x - m - log Σ exp(x - m) along `axis`, m = max(x) (stable). A
   * primitive rather than a composite so that a [b, N] score matrix is read
   * twice instead of through six temporaries (kernels/softmax.ts).
   */
  logSoftmax: unaryWith({
    forward: (x, { axis }, op) => {
      const [outer, n, inner] = around(x.shape, axis);
      const out = logSoftmaxAxis(data(x), outer, n, inner, allocateFor(op, x.shape, x.dtype));
      return wrap(out, x.shape, x.dtype);
    },
    // x̄ = ḡ - exp(z)·Σ_axis ḡ
    vjp: ({ g, z, attrs: { axis } }) => [() => logSoftmaxGrad(g, z, axis)],
  }),

  // ---------------------------------------------------------------- linear algebra

  /**
   * z = op(x)·op(y) over the last two axes, op = transpose when transA /
   * transB; leading (batch) axes broadcast. The cotangents, each in the
   * layout its input is stored in (so a transposed operand gets a transposed
   * cotangent):
   *   tA tB | x̄         | ȳ
   *   -  -  | ḡ·yᵀ      | xᵀ·ḡ
   *   -  T  | ḡ·y       | ḡᵀ·x
   *   T  -  | y·ḡᵀ      | x·ḡ
   *   T  T  | yᵀ·ḡᵀ     | ḡᵀ·xᵀ
   */
  matmul: {
    arity: 2,
    forward: ([x, y], { transA, transB }, op) => matmulForward(op, x, y, transA, transB),
    // x̄, ȳ from the table above, summed over broadcast batch axes
    vjp: ({ g, x, y, attrs }) => [() => matmulGradX(g, x, y, attrs), () => matmulGradY(g, x, y, attrs)],
  },

  // ---------------------------------------------------------------- indexing

  /** z[..., j, ...] = x[..., idx[j], ...] along `axis` (idx int32, any shape). */
  gather: {
    arity: 2,
    forward: ([x, idx], { axis }, op) => gatherForward(op, x, idx, axis),
    // x̄ = scatterAdd(ḡ, idx) along axis: an entry picked several times accumulates;  idx gets none
    vjp: ({ g, x, y: idx, attrs: { axis } }) => [() => scatterAddAlong(g, idx, axis, x.shape), null],
  },
  /** z = zeros with attrs.size entries along `axis`, and u's slices added at idx (the adjoint of gather). */
  scatterAdd: {
    arity: 2,
    forward: ([u, idx], { axis, size }, op) => scatterAddForward(op, u, idx, axis, size),
    // ū = gather(ḡ, idx) along axis;  idx gets none
    vjp: ({ g, x: u, y: idx, attrs: { axis } }) => [() => reshape(gatherAlong(g, idx, axis), u.shape), null],
  },
  /** z = x with rows idx[j] (axis 0) replaced by u[j]; with repeated indices the last write wins. */
  scatterRows: {
    arity: 3,
    forward: ([x, idx, u], _, op) => scatterRowsForward(op, x, idx, u),
    // x̄ = ḡ with the overwritten rows zeroed;  idx gets none;  ū[j] = ḡ[idx[j]] if write j won, else 0
    vjp: ({ g, inputs: [, idx, u] }) => [() => withRowsZeroed(g, idx), null, () => winningRows(g, idx, u)],
  },
  /**
   * z = S·x for the sparse matrix S[to[k], from[k]] = weight[k] (repeated
   * pairs add): a gather followed by a segment sum, without the
   * [entries, dim] intermediate.
   */
  sparseRows: unaryWith({
    forward: (x, { from, to, weight, rows }, op) => {
      const shape = [rows, ...x.shape.slice(1)];
      const inner = x.rank <= 1 ? 1 : sizeOf(x.shape.slice(1));
      const out = sparseRowsKernel(data(x), inner, from, to, weight, allocateFor(op, shape, x.dtype));
      return wrap(out, shape, x.dtype);
    },
    // x̄ = Sᵀ·ḡ: the same primitive with from and to swapped
    vjp: ({ g, x, attrs }) => [() => sparseRowsTransposed(g, attrs, x.shape[0]!)],
  }),

  // ---------------------------------------------------------------- dtype

  /** z = x converted to a float dtype (casts to int32/bool are not differentiable and are not bound). */
  cast: unaryWith({
    forward: (x, { dtype }, op) => wrap(castStorage(op, x, dtype), x.shape, dtype),
    // x̄ = cast(ḡ, x.dtype)
    vjp: ({ g, x }) => [() => bind(primitives.cast, [g], { dtype: x.dtype })],
  }),
});

// ------------------------------------------------------------------ unchecked helpers for the rules (module-private)

function neg(x: Tensor): Tensor {
  return bind(primitives.neg, [x], null);
}
function mul(x: Tensor, y: Tensor): Tensor {
  return bind(primitives.mul, [x, y], null);
}
function div(x: Tensor, y: Tensor): Tensor {
  return bind(primitives.div, [x, y], null);
}
function pow(x: Tensor, y: Tensor): Tensor {
  return bind(primitives.pow, [x, y], null);
}
function reshape(x: Tensor, shape: Shape): Tensor {
  return shapesEqual(x.shape, shape) ? x : bind(primitives.reshape, [x], { shape });
}
function broadcastTo(x: Tensor, shape: Shape): Tensor {
  return shapesEqual(x.shape, shape) ? x : bind(primitives.broadcastTo, [x], { shape });
}
/** x·s for a number s. */
function scale(x: Tensor, s: number): Tensor {
  return mul(x, filled(x.dtype, [], s));
}
/** x + s for a number s. */
function shift(x: Tensor, s: number): Tensor {
  return bind(primitives.add, [x, filled(x.dtype, [], s)], null);
}

/** A constant of `shape` filled with v. */
function filled(dtype: DType, shape: Shape, v: number): Tensor {
  const out = allocateFor('fill', shape, dtype);
  out.fill(v);
  return wrap(out, shape, dtype);
}

/** f(x) elementwise, as a constant (no gradient flows through it). */
function pointwise(x: Tensor, f: Unary): Tensor {
  return wrap(mapUnary(data(x), allocateFor('pointwise', x.shape, x.dtype), f), x.shape, x.dtype);
}

/** log(x) where x > 0, else 0: the factor of ȳ in pow's rule. */
function logOrZero(x: Tensor): Tensor {
  return pointwise(x, (v) => (v > 0 ? Math.log(v) : 0));
}

/** f(a, b) elementwise with broadcasting, as a constant (no gradient flows through it). */
function pointwise2(a: Tensor, b: Tensor, f: Binary): Tensor {
  const shape = broadcastShapes('pointwise', a.shape, b.shape);
  const dtype = promote(a.dtype, b.dtype)!;
  const out = mapBinary(data(a), a.shape, data(b), b.shape, shape, allocateFor('pointwise', shape, dtype), f);
  return wrap(out, shape, dtype);
}

/** The constant [a beats b] + ½[a = b]: a's share of the cotangent of maximum/minimum(a, b). */
function share(a: Tensor, b: Tensor, beats: (u: number, v: number) => boolean): Tensor {
  return pointwise2(a, b, (u, v) => (u === v ? 0.5 : beats(u, v) ? 1 : 0));
}

/** c ? x : y with numbers as scalars of the other operand's dtype; all broadcast. */
function select(op: string, c: Tensor, x: Tensor | number, y: Tensor | number): Tensor {
  const xt = typeof x === 'number' ? filled((y as Tensor).dtype, [], x) : x;
  const yt = typeof y === 'number' ? filled(xt.dtype, [], y) : y;
  const shape = broadcastShapes(op, broadcastShapes(op, c.shape, xt.shape), yt.shape);
  const dtype = promote(xt.dtype, yt.dtype)!;
  const out = mapWhere(data(c), c.shape, data(xt), xt.shape, data(yt), yt.shape, shape, allocateFor(op, shape, dtype));
  return wrap(out, shape, dtype);
}

/** where's cotangent for `input`: ḡ where c equals `side`, else 0, summed to the input's shape. */
function gradWhere(c: Tensor, g: Tensor, side: boolean, input: Tensor): Tensor {
  return sumTo(side ? select('where', c, g, 0) : select('where', c, 0, g), input.shape);
}

/** Sums `x` down to `shape` (the adjoint of broadcasting to x.shape). */
function sumTo(x: Tensor, shape: Shape): Tensor {
  if (shapesEqual(x.shape, shape)) return x;
  const lead = x.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < x.rank; i++) {
    if (i < lead || (shape[i - lead] === 1 && x.shape[i] !== 1)) axes.push(i);
  }
  return reshape(bind(primitives.sum, [x], { axes, keepDims: false }), shape);
}

/** The inverse permutation. */
function inverse(perm: readonly number[]): number[] {
  const inv = new Array<number>(perm.length);
  perm.forEach((p, i) => {
    inv[p] = i;
  });
  return inv;
}

/** x's storage in `dtype` (x's own storage when it already has that dtype). */
function castStorage(op: string, x: Tensor, dtype: DType): TypedArray {
  return x.dtype === dtype ? data(x) : castInto(data(x), allocateFor(op, x.shape, dtype));
}

/** Reduces the sorted `axes` of x with `op` (kernels/reduce.ts). */
function reduce(x: Tensor, axes: readonly number[], keepDims: boolean, op: 'sum' | 'max'): Tensor {
  return wrap(reduceAxes(data(x), x.shape, axes, op), reducedShape(x.shape, axes, keepDims), x.dtype);
}

/** max's x̄: ḡ·[x = z] / #{x = z} along the reduced axes. */
function shareAmongMaxima(g: Tensor, x: Tensor, z: Tensor, axes: readonly number[]): Tensor {
  const kept = reducedShape(x.shape, axes, true);
  const hit = pointwise2(x, reshape(z, kept), (u, v) => (u === v ? 1 : 0));
  const count = reduce(hit, axes, true, 'sum');
  return mul(hit, div(reshape(g, kept), count));
}

/** logSoftmax's x̄ = ḡ - exp(z)·Σ_axis ḡ, computed by the kernel (a constant: the engine is first order). */
function logSoftmaxGrad(g: Tensor, z: Tensor, axis: number): Tensor {
  const [outer, n, inner] = around(z.shape, axis);
  const out = logSoftmaxBackward(data(g), data(z), outer, n, inner, allocateFor('logSoftmax', g.shape, g.dtype));
  return wrap(out, g.shape, g.dtype);
}

function concatForward(op: string, xs: readonly Tensor[], axis: number): Tensor {
  const dtype = xs.map((x) => x.dtype).reduce((a, b) => promote(a, b)!);
  const shape = xs[0]!.shape.slice();
  shape[axis] = xs.reduce((s, x) => s + x.shape[axis]!, 0);
  const out = allocateFor(op, shape, dtype);
  const [outer, , inner] = around(shape, axis);
  const parts = xs.map((x) => castStorage(op, x, dtype));
  concatKernel(
    parts,
    outer,
    xs.map((x) => x.shape[axis]!),
    inner,
    out,
  );
  return wrap(out, shape, dtype);
}

/** concat's cotangents: input i gets the slice of ḡ at its offset along axis. */
function concatSlices(g: Tensor, inputs: readonly Tensor[], axis: number): Cotangent[] {
  let offset = 0;
  return inputs.map((x) => {
    const begin = new Array<number>(g.rank).fill(0);
    begin[axis] = offset;
    offset += x.shape[axis]!;
    return () => bind(primitives.slice, [g], { begin, size: x.shape });
  });
}

function matmulForward(op: string, x: Tensor, y: Tensor, transA: boolean, transB: boolean): Tensor {
  const dtype = promote(x.dtype, y.dtype)!;
  const xr = x.rank,
    yr = y.rank;
  const m = transA ? x.shape[xr - 1]! : x.shape[xr - 2]!;
  const k = transA ? x.shape[xr - 2]! : x.shape[xr - 1]!;
  const n = transB ? y.shape[yr - 2]! : y.shape[yr - 1]!;
  const xBatch = x.shape.slice(0, -2),
    yBatch = y.shape.slice(0, -2);
  const batch = broadcastShapes(op, xBatch, yBatch);
  const shape = [...batch, m, n];
  const out = allocateFor(op, shape, dtype) as Float32Array | Float64Array;
  const xd = castStorage(op, x, dtype) as Float32Array | Float64Array;
  const yd = castStorage(op, y, dtype) as Float32Array | Float64Array;
  matmulBatched(xd, xBatch, yd, yBatch, batch, m, n, k, transA, transB, out);
  return wrap(out, shape, dtype);
}

function mm(a: Tensor, b: Tensor, transA: boolean, transB: boolean): Tensor {
  return bind(primitives.matmul, [a, b], { transA, transB });
}

/** matmul's x̄ in x's layout (the table at the matmul entry): ḡ·op(y)ᵀ, or op(y)·ḡᵀ when x is transposed. */
function matmulGradX(g: Tensor, x: Tensor, y: Tensor, { transA, transB }: MatmulAttrs): Tensor {
  return sumTo(transA ? mm(y, g, transB, true) : mm(g, y, false, !transB), x.shape);
}

/** matmul's ȳ in y's layout (the table at the matmul entry): op(x)ᵀ·ḡ, or ḡᵀ·op(x) when y is transposed. */
function matmulGradY(g: Tensor, x: Tensor, y: Tensor, { transA, transB }: MatmulAttrs): Tensor {
  return sumTo(transB ? mm(g, x, true, transA) : mm(x, g, !transA, false), y.shape);
}

/** Sᵀ·ḡ for sparseRows' S: the same primitive with from and to swapped, giving `rows` rows. */
function sparseRowsTransposed(g: Tensor, { from, to, weight }: SparseRowsAttrs, rows: number): Tensor {
  return bind(primitives.sparseRows, [g], { from: to, to: from, weight, rows });
}

function gatherForward(op: string, x: Tensor, idx: Tensor, axis: number): Tensor {
  const [outer, n, inner] = around(x.shape, axis);
  const shape = [...x.shape.slice(0, axis), ...idx.shape, ...x.shape.slice(axis + 1)];
  const out = gatherKernel(data(x), outer, n, inner, data(idx) as Int32Array, allocateFor(op, shape, x.dtype));
  return wrap(out, shape, x.dtype);
}

function gatherAlong(x: Tensor, idx: Tensor, axis: number): Tensor {
  return bind(primitives.gather, [x, idx], { axis });
}

/** gather's x̄: ḡ (idx's axes flattened to one) scattered back with repeats adding up, shaped like x. */
function scatterAddAlong(g: Tensor, idx: Tensor, axis: number, xShape: Shape): Tensor {
  const flat = reshape(g, [...xShape.slice(0, axis), idx.size, ...xShape.slice(axis + 1)]);
  return bind(primitives.scatterAdd, [flat, idx], { axis, size: xShape[axis]! });
}

function scatterAddForward(op: string, u: Tensor, idx: Tensor, axis: number, size: number): Tensor {
  const shape = u.shape.slice();
  shape[axis] = size;
  const [outer, , inner] = around(shape, axis);
  const out = scatterAddKernel(data(u), outer, size, inner, data(idx) as Int32Array, allocateFor(op, shape, u.dtype));
  return wrap(out, shape, u.dtype);
}

function scatterRowsForward(op: string, x: Tensor, idx: Tensor, u: Tensor): Tensor {
  const dtype = promote(x.dtype, u.dtype)!;
  const out = allocateFor(op, x.shape, dtype);
  castInto(data(x), out);
  const inner = x.rank === 0 ? 1 : sizeOf(x.shape.slice(1));
  scatterRowsKernel(castStorage(op, u, dtype), data(idx) as Int32Array, inner, out);
  return wrap(out, x.shape, dtype);
}

/** scatterRows' x̄: ḡ with the rows that were overwritten set to zero. */
function withRowsZeroed(g: Tensor, idx: Tensor): Tensor {
  const out = data(g).slice();
  zeroRows(data(idx) as Int32Array, g.rank === 0 ? 1 : sizeOf(g.shape.slice(1)), out);
  return wrap(out, g.shape, g.dtype);
}

/** scatterRows' ū: row j is ḡ[idx[j]] if update j was the last write to that row, else 0. */
function winningRows(g: Tensor, idx: Tensor, u: Tensor): Tensor {
  const wins = lastWriteWins(data(idx) as Int32Array);
  const maskShape = [idx.size, ...u.shape.slice(1).map(() => 1)];
  const mask = allocateFor('scatterRows', maskShape, g.dtype);
  mask.set(wins);
  return mul(reshape(gatherAlong(g, idx, 0), u.shape), wrap(mask, maskShape, g.dtype));
}
