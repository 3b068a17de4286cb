/**
 * The differentiable primitives, each with its forward (kernels) and its VJP
 * right below it. Everything else differentiable (softmax, logSumExp, mean,
 * square, the losses) is composed from these in src/ops and above.
 *
 * Notation in the rules: x, y inputs; z the output; ḡ the output cotangent
 * (`ct`); x̄ the input cotangent. Binary primitives broadcast their inputs;
 * their VJP sums x̄ back to x's shape ("broadcast is sum in reverse": sumTo).
 *
 * The primitives trust their arguments: validation happens in the public
 * ops (src/ops), never inside a gradient rule.
 */
import { allocate, promote, type DType, type TypedArray } from '../tensor/dtype.js';
import { unsafeData, wrap, type Tensor } from '../tensor/tensor.js';
import { broadcastShapes, reducedShape, shapesEqual, sizeOf, type Shape } from '../tensor/shape.js';
import {
  broadcastTo as broadcastKernel,
  mapBinary,
  mapUnary,
  mapWhere,
  type ArithOp,
  type Binary,
  type Unary,
} from '../tensor/kernels/elementwise.js';
import { cumsumAxis, reduceAxis } from '../tensor/kernels/reduce.js';
import { matmul2d } from '../tensor/kernels/matmul.js';
import {
  concat as concatKernel,
  gather as gatherKernel,
  lastWriteWins,
  pad as padKernel,
  permute as permuteKernel,
  scatterAdd as scatterAddKernel,
  slice as sliceKernel,
} from '../tensor/kernels/layout.js';
import { bind, type Primitive } from './engine.js';
import { expWasm, wasmAvailable } from '../tensor/kernels/wasm/index.js';

type Floats = Float32Array | Float64Array;
const data = unsafeData;

function constant(dtype: DType, shape: Shape, fill?: (out: TypedArray) => void): Tensor {
  const out = allocate(dtype, sizeOf(shape));
  if (fill) fill(out);
  return wrap(out, shape, dtype);
}

/** [outer, n, inner] view of `shape` around `axis`. */
export function around(shape: Shape, axis: number): [number, number, number] {
  let outer = 1,
    inner = 1;
  for (let i = 0; i < axis; i++) outer *= shape[i]!;
  for (let i = axis + 1; i < shape.length; i++) inner *= shape[i]!;
  return [outer, shape[axis]!, inner];
}

// ---------------------------------------------------------------- unary

function unary(name: string, f: Unary, rule: (ct: Tensor, x: Tensor, z: Tensor) => Tensor): Primitive<null> {
  return {
    name,
    forward: ([x]) => constant(x!.dtype, x!.shape, (out) => mapUnary(data(x!), out, f)),
    vjp: (ct, { inputs: [x], output }) => [rule(ct, x!, output)],
  };
}

const signOf: Unary = (v) => (v > 0 ? 1 : v < 0 ? -1 : 0);
const stepOf: Unary = (v) => (v > 0 ? 1 : 0);
const sigmoidOf: Unary = (v) => (v >= 0 ? 1 / (1 + Math.exp(-v)) : Math.exp(v) / (1 + Math.exp(v)));

/** Elementwise constant computed from x (no gradient flows through it). */
function mapConst(x: Tensor, f: Unary): Tensor {
  return constant(x.dtype, x.shape, (out) => mapUnary(data(x), out, f));
}

export const negP = unary(
  'neg',
  (v) => -v,
  (ct) => neg(ct),
); //                        x̄ = -ḡ
export const expP: Primitive<null> = {
  //                                                  x̄ = ḡ·z
  name: 'exp',
  forward: ([x]) =>
    constant(x!.dtype, x!.shape, (out) => {
      const src = data(x!);
      // Large float32 arrays use the vectorised wasm exp (max relative error 8.2e-8, see wasm/kernels.ts).
      if (src instanceof Float32Array && src.length >= WASM_MIN_ELEMENTS && wasmAvailable())
        expWasm(src, out as Float32Array);
      else mapUnary(src, out, Math.exp);
    }),
  vjp: (ct, { output }) => [mul(ct, output)],
};
export const logP = unary('log', Math.log, (ct, x) => div(ct, x)); //                   x̄ = ḡ/x
export const sqrtP = unary('sqrt', Math.sqrt, (ct, _x, z) => div(ct, mul(z, scalarLike(z, 2)))); // x̄ = ḡ/(2z)
export const absP = unary('abs', Math.abs, (ct, x) => mul(ct, mapConst(x, signOf))); //  x̄ = ḡ·sign(x)
export const tanhP = unary('tanh', Math.tanh, (ct, _x, z) =>
  mul(
    ct,
    mapConst(z, (t) => 1 - t * t),
  ),
); // x̄ = ḡ·(1-z²)
export const sigmoidP = unary('sigmoid', sigmoidOf, (ct, _x, z) =>
  mul(
    ct,
    mapConst(z, (s) => s * (1 - s)),
  ),
); // x̄ = ḡ·z(1-z)
export const reluP = unary(
  'relu',
  (v) => (v > 0 ? v : v === v ? 0 : v),
  (ct, x) => mul(ct, mapConst(x, stepOf)),
); // x̄ = ḡ·[x>0]

export const neg = (x: Tensor): Tensor => bind(negP, [x], null);
export const exp = (x: Tensor): Tensor => bind(expP, [x], null);
export const log = (x: Tensor): Tensor => bind(logP, [x], null);

export function scalarLike(x: Tensor, v: number): Tensor {
  return constant(x.dtype, [], (out) => {
    out[0] = v;
  });
}

/** Elementwise float32 work at or above this size goes to the wasm kernels. */
const WASM_MIN_ELEMENTS = 4096;

// ---------------------------------------------------------------- binary

function binary(
  name: string,
  f: Binary | ArithOp,
  rule: (ct: Tensor, x: Tensor, y: Tensor, z: Tensor, needs: readonly boolean[]) => [Tensor | null, Tensor | null],
): Primitive<null> {
  return {
    name,
    forward: ([x, y]) => {
      const shape = broadcastShapes(name, x!.shape, y!.shape);
      const dtype = promote(x!.dtype, y!.dtype)!;
      return constant(dtype, shape, (out) => mapBinary(data(x!), x!.shape, data(y!), y!.shape, shape, out, f));
    },
    vjp: (ct, { inputs: [x, y], output }, needs) => {
      const [gx, gy] = rule(ct, x!, y!, output, needs);
      return [gx && sumTo(gx, x!.shape), gy && sumTo(gy, y!.shape)];
    },
  };
}

const half = (a: number, b: number, win: boolean): number => (a === b ? 0.5 : win ? 1 : 0);

export const addP = binary('add', 'add', (ct) => [ct, ct]); //                    x̄ = ḡ, ȳ = ḡ
export const subP = binary('sub', 'sub', (ct, _x, _y, _z, n) => [ct, n[1] ? neg(ct) : null]); // ȳ = -ḡ
export const mulP = binary('mul', 'mul', (ct, x, y, _z, n) => [n[0] ? mul(ct, y) : null, n[1] ? mul(ct, x) : null]); // x̄ = ḡy, ȳ = ḡx
export const divP = binary('div', 'div', (ct, _x, y, z, n) => [
  //                x̄ = ḡ/y, ȳ = -ḡ·z/y
  n[0] ? div(ct, y) : null,
  n[1] ? neg(div(mul(ct, z), y)) : null,
]);
/** x̄ = ḡ·y·x^(y-1); ȳ = ḡ·z·log(x), taken as 0 where x <= 0 (as JAX does). */
export const powP = binary('pow', Math.pow, (ct, x, y, z, n) => [
  n[0] ? mul(ct, mul(y, bind(powP, [x, sub(y, scalarLike(y, 1))], null))) : null,
  n[1]
    ? mul(
        ct,
        mul(
          z,
          constant(x.dtype, x.shape, (out) => mapUnary(data(x), out, (v) => (v > 0 ? Math.log(v) : 0))),
        ),
      )
    : null,
]);
/** Ties split the cotangent evenly (½ each), so the rule is symmetric. */
export const maximumP = binary(
  'maximum',
  (a, b) => (a !== a || b !== b ? NaN : Math.max(a, b)),
  (ct, x, y) => [
    mul(
      ct,
      selectMask(x, y, (a, b) => half(a, b, a > b)),
    ),
    mul(
      ct,
      selectMask(x, y, (a, b) => half(a, b, b > a)),
    ),
  ],
);
export const minimumP = binary(
  'minimum',
  (a, b) => (a !== a || b !== b ? NaN : Math.min(a, b)),
  (ct, x, y) => [
    mul(
      ct,
      selectMask(x, y, (a, b) => half(a, b, a < b)),
    ),
    mul(
      ct,
      selectMask(x, y, (a, b) => half(a, b, b < a)),
    ),
  ],
);

function selectMask(x: Tensor, y: Tensor, f: Binary): Tensor {
  const shape = broadcastShapes('mask', x.shape, y.shape);
  return constant(promote(x.dtype, y.dtype)!, shape, (out) =>
    mapBinary(data(x), x.shape, data(y), y.shape, shape, out, f),
  );
}

export const add = (x: Tensor, y: Tensor): Tensor => bind(addP, [x, y], null);
export const sub = (x: Tensor, y: Tensor): Tensor => bind(subP, [x, y], null);
export const mul = (x: Tensor, y: Tensor): Tensor => bind(mulP, [x, y], null);
export const div = (x: Tensor, y: Tensor): Tensor => bind(divP, [x, y], null);

/** where(c, x, y): x̄ = ḡ where c else 0; ȳ = ḡ where not c else 0; c gets none (bool). */
export const whereP: Primitive<null> = {
  name: 'where',
  forward: ([c, x, y]) => {
    const shape = broadcastShapes('where', broadcastShapes('where', c!.shape, x!.shape), y!.shape);
    const dtype = promote(x!.dtype, y!.dtype)!;
    return constant(dtype, shape, (out) =>
      mapWhere(data(c!), c!.shape, data(x!), x!.shape, data(y!), y!.shape, shape, out),
    );
  },
  vjp: (ct, { inputs: [c, x, y] }, needs) => {
    const zero = scalarLike(ct, 0);
    return [
      null,
      needs[1] ? sumTo(bind(whereP, [c!, ct, zero], null), x!.shape) : null,
      needs[2] ? sumTo(bind(whereP, [c!, zero, ct], null), y!.shape) : null,
    ];
  },
};

// ---------------------------------------------------------------- shape

/** broadcastTo(x, shape): x̄ = sumTo(ḡ, x.shape). */
export const broadcastToP: Primitive<{ shape: readonly number[] }> = {
  name: 'broadcastTo',
  forward: ([x], { shape }) => constant(x!.dtype, shape, (out) => broadcastKernel(data(x!), x!.shape, shape, out)),
  vjp: (ct, { inputs: [x] }) => [sumTo(ct, x!.shape)],
};

/** reshape: x̄ = reshape(ḡ, x.shape). Shares storage (tensors are immutable). */
export const reshapeP: Primitive<{ shape: readonly number[] }> = {
  name: 'reshape',
  forward: ([x], { shape }) => wrap(data(x!), shape, x!.dtype),
  vjp: (ct, { inputs: [x] }) => [reshape(ct, x!.shape)],
};
export const reshape = (x: Tensor, shape: Shape): Tensor =>
  shapesEqual(x.shape, shape) ? x : bind(reshapeP, [x], { shape });

/** permute(x, perm): x̄ = permute(ḡ, perm⁻¹). */
export const permuteP: Primitive<{ perm: readonly number[] }> = {
  name: 'transpose',
  forward: ([x], { perm }) =>
    constant(
      x!.dtype,
      perm.map((p) => x!.shape[p]!),
      (out) => permuteKernel(data(x!), x!.shape, perm, out),
    ),
  vjp: (ct, { attrs: { perm } }) => {
    const inv = new Array<number>(perm.length);
    perm.forEach((p, i) => {
      inv[p] = i;
    });
    return [bind(permuteP, [ct], { perm: inv })];
  },
};

/** slice(x, begin, size): x̄ = pad(ḡ, begin, x.shape). */
export const sliceP: Primitive<{ begin: readonly number[]; size: readonly number[] }> = {
  name: 'slice',
  forward: ([x], { begin, size }) =>
    constant(x!.dtype, size, (out) => sliceKernel(data(x!), x!.shape, begin, size, out)),
  vjp: (ct, { inputs: [x], attrs: { begin } }) => [bind(padP, [ct], { begin, shape: x!.shape })],
};

/** pad(x, begin, shape) (zeros around x): x̄ = slice(ḡ, begin, x.shape). */
export const padP: Primitive<{ begin: readonly number[]; shape: readonly number[] }> = {
  name: 'pad',
  forward: ([x], { begin, shape }) =>
    constant(x!.dtype, shape, (out) => padKernel(data(x!), x!.shape, begin, shape, out)),
  vjp: (ct, { inputs: [x], attrs: { begin } }) => [bind(sliceP, [ct], { begin, size: x!.shape })],
};

/** concat(xs, axis): x̄ᵢ = the i-th slice of ḡ along axis. */
export const concatP: Primitive<{ axis: number }> = {
  name: 'concat',
  forward: (xs, { axis }) => {
    const dtype = xs.map((x) => x.dtype).reduce((a, b) => promote(a, b)!);
    const shape = xs[0]!.shape.slice();
    shape[axis] = xs.reduce((s, x) => s + x.shape[axis]!, 0);
    const [outer, , inner] = around(shape, axis);
    const parts = xs.map((x) => (x.dtype === dtype ? data(x) : castData(data(x), dtype)));
    return constant(dtype, shape, (out) =>
      concatKernel(
        parts,
        outer,
        xs.map((x) => x.shape[axis]!),
        inner,
        out,
      ),
    );
  },
  vjp: (ct, { inputs, attrs: { axis } }, needs) => {
    let offset = 0;
    return inputs.map((x, i) => {
      const begin = new Array<number>(ct.rank).fill(0);
      begin[axis] = offset;
      offset += x.shape[axis]!;
      return needs[i] ? bind(sliceP, [ct], { begin, size: x.shape }) : null;
    });
  },
};

// ---------------------------------------------------------------- reductions

/** sum over axes: x̄ = broadcast(ḡ with the reduced axes kept as 1) to x.shape. */
export const sumP: Primitive<{ axes: readonly number[]; keepDims: boolean }> = {
  name: 'sum',
  forward: ([x], { axes, keepDims }) => reduce(x!, axes, keepDims, 'sum'),
  vjp: (ct, { inputs: [x], attrs: { axes } }) => [
    bind(broadcastToP, [reshape(ct, reducedShape(x!.shape, axes, true))], { shape: x!.shape }),
  ],
};

/**
 * max over axes: x̄ = ḡ·[x = z]/count(x = z). Ties share the cotangent
 * evenly, so the rule is the average of the one-sided derivatives.
 */
export const maxP: Primitive<{ axes: readonly number[]; keepDims: boolean }> = {
  name: 'max',
  forward: ([x], { axes, keepDims }) => reduce(x!, axes, keepDims, 'max'),
  vjp: (ct, { inputs: [x], output, attrs: { axes } }) => {
    const kept = reducedShape(x!.shape, axes, true);
    const z = reshape(output, kept);
    const hit = selectMask(x!, z, (a, b) => (a === b ? 1 : 0));
    const count = reduce(hit, axes, true, 'sum');
    return [mul(hit, div(reshape(ct, kept), count))];
  },
};

/** Reduces the given sorted axes one at a time ([outer, n, inner] views). */
export function reduce(
  x: Tensor,
  axes: readonly number[],
  keepDims: boolean,
  op: 'sum' | 'max' | 'min' | 'any' | 'all',
): Tensor {
  let src = data(x);
  const shape = x.shape.slice();
  for (let a = axes.length - 1; a >= 0; a--) {
    const axis = axes[a]!;
    const [outer, n, inner] = around(shape, axis);
    const out = allocate(x.dtype, outer * inner);
    reduceAxis(src, outer, n, inner, op, out);
    src = out;
    shape[axis] = 1;
  }
  if (axes.length === 0) src = src.slice();
  return wrap(src, reducedShape(x.shape, axes, keepDims), x.dtype);
}

/** Sums `x` down to `shape` (the adjoint of broadcasting to x.shape). */
export function sumTo(x: Tensor, shape: Shape): Tensor {
  if (shapesEqual(x.shape, shape)) return x;
  const lead = x.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < x.rank; i++) {
    if (i < lead || (shape[i - lead] === 1 && x.shape[i] !== 1)) axes.push(i);
  }
  return reshape(bind(sumP, [x], { axes, keepDims: false }), shape);
}

// ---------------------------------------------------------------- linear algebra

export interface MatmulAttrs {
  transA: boolean;
  transB: boolean;
}

/**
 * Batched matmul z = op(x)·op(y) over the last two axes; leading (batch)
 * axes broadcast. VJP (for the untransposed case x̄ = ḡ·yᵀ, ȳ = xᵀ·ḡ; the
 * transposed cases follow by transposing both sides):
 *   tA tB | x̄ (stored)    | ȳ (stored)
 *   -  -  | ḡ·yᵀ          | xᵀ·ḡ
 *   -  T  | ḡ·y           | ḡᵀ·x
 *   T  -  | y·ḡᵀ          | x·ḡ
 *   T  T  | yᵀ·ḡᵀ         | ḡᵀ·xᵀ
 */
export const matmulP: Primitive<MatmulAttrs> = {
  name: 'matmul',
  forward: ([x, y], { transA, transB }) => matmulForward(x!, y!, transA, transB),
  vjp: (ct, { inputs: [x, y], attrs: { transA, transB } }, needs) => {
    const mm = (a: Tensor, b: Tensor, tA: boolean, tB: boolean): Tensor =>
      bind(matmulP, [a, b], { transA: tA, transB: tB });
    let gx: Tensor | null = null,
      gy: Tensor | null = null;
    if (needs[0])
      gx = !transA
        ? !transB
          ? mm(ct, y!, false, true)
          : mm(ct, y!, false, false)
        : !transB
          ? mm(y!, ct, false, true)
          : mm(y!, ct, true, true);
    if (needs[1])
      gy = !transB
        ? !transA
          ? mm(x!, ct, true, false)
          : mm(x!, ct, false, false)
        : !transA
          ? mm(ct, x!, true, false)
          : mm(ct, x!, true, true);
    return [gx && sumTo(gx, x!.shape), gy && sumTo(gy, y!.shape)];
  },
};

function matmulForward(x: Tensor, y: Tensor, transA: boolean, transB: boolean): Tensor {
  const dtype = promote(x.dtype, y.dtype)!;
  const xr = x.rank,
    yr = y.rank;
  const m = transA ? x.shape[xr - 1]! : x.shape[xr - 2]!;
  const k = transA ? x.shape[xr - 2]! : x.shape[xr - 1]!;
  const n = transB ? y.shape[yr - 2]! : y.shape[yr - 1]!;
  const batch = broadcastShapes('matmul', x.shape.slice(0, -2), y.shape.slice(0, -2));
  const nb = sizeOf(batch);
  const outShape = [...batch, m, n];
  const xd = (x.dtype === dtype ? data(x) : castData(data(x), dtype)) as Floats;
  const yd = (y.dtype === dtype ? data(y) : castData(data(y), dtype)) as Floats;
  const out = allocate(dtype, nb * m * n) as Floats;
  const xb = sizeOf(x.shape.slice(0, -2)) === 1 ? 0 : m * k;
  const yb = sizeOf(y.shape.slice(0, -2)) === 1 ? 0 : k * n;
  if (nb === 1) matmul2d(xd, yd, m, n, k, transA, transB, out);
  else {
    // Batch axes that broadcast are expanded through index arithmetic.
    const xs = broadcastIndex(x.shape.slice(0, -2), batch),
      ys = broadcastIndex(y.shape.slice(0, -2), batch);
    for (let bI = 0; bI < nb; bI++) {
      const xo = xb === 0 ? 0 : xs(bI) * m * k,
        yo = yb === 0 ? 0 : ys(bI) * k * n;
      matmul2d(
        xd.subarray(xo, xo + m * k),
        yd.subarray(yo, yo + k * n),
        m,
        n,
        k,
        transA,
        transB,
        out.subarray(bI * m * n, (bI + 1) * m * n),
      );
    }
  }
  return wrap(out, outShape, dtype);
}

/** Maps a flat index into `outShape` to the flat index into a broadcast `shape`. */
function broadcastIndex(shape: Shape, outShape: Shape): (i: number) => number {
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

// ---------------------------------------------------------------- indexing

/** gather(x, idx, axis): z[..., j, ...] = x[..., idx[j], ...]; x̄ = scatterAdd(ḡ, idx) (repeats accumulate). */
export const gatherP: Primitive<{ axis: number }> = {
  name: 'gather',
  forward: ([x, idx], { axis }) => {
    const [outer, n, inner] = around(x!.shape, axis);
    const shape = [...x!.shape.slice(0, axis), ...idx!.shape, ...x!.shape.slice(axis + 1)];
    return constant(x!.dtype, shape, (out) => gatherKernel(data(x!), outer, n, inner, data(idx!) as Int32Array, out));
  },
  vjp: (ct, { inputs: [x, idx], attrs: { axis } }) => [
    bind(scatterAddP, [reshape(ct, [...x!.shape.slice(0, axis), idx!.size, ...x!.shape.slice(axis + 1)]), idx!], {
      axis,
      size: x!.shape[axis]!,
    }),
  ],
};

/** scatterAdd(u, idx, axis, size): zeros with u's slices added at idx; ū = gather(ḡ, idx). */
export const scatterAddP: Primitive<{ axis: number; size: number }> = {
  name: 'scatterAdd',
  forward: ([u, idx], { axis, size }) => {
    const shape = u!.shape.slice();
    shape[axis] = size;
    const [outer, , inner] = around(shape, axis);
    return constant(u!.dtype, shape, (out) =>
      scatterAddKernel(data(u!), outer, size, inner, data(idx!) as Int32Array, out),
    );
  },
  vjp: (ct, { inputs: [u, idx], attrs: { axis } }) => [reshape(bind(gatherP, [ct, idx!], { axis }), u!.shape)],
};

/**
 * scatterRows(x, idx, u): x with rows idx[j] (axis 0) replaced by u[j];
 * with repeated indices the last write wins.
 *   x̄ = ḡ with the written rows zeroed;  ū[j] = ḡ[idx[j]] if update j won, else 0.
 */
export const scatterRowsP: Primitive<null> = {
  name: 'scatterRows',
  forward: ([x, idx, u]) => {
    const dtype = promote(x!.dtype, u!.dtype)!;
    const src = x!.dtype === dtype ? data(x!).slice() : castData(data(x!), dtype);
    const ud = u!.dtype === dtype ? data(u!) : castData(data(u!), dtype);
    const inner = x!.rank === 0 ? 1 : sizeOf(x!.shape.slice(1));
    const id = data(idx!) as Int32Array;
    for (let j = 0; j < id.length; j++) src.set(ud.subarray(j * inner, (j + 1) * inner), id[j]! * inner);
    return wrap(src, x!.shape, dtype);
  },
  vjp: (ct, { inputs: [x, idx, u] }, needs) => {
    const id = data(idx!) as Int32Array;
    const inner = sizeOf(x!.shape.slice(1));
    let gx: Tensor | null = null,
      gu: Tensor | null = null;
    if (needs[0]) {
      const g = data(ct).slice();
      for (let j = 0; j < id.length; j++) g.fill(0, id[j]! * inner, (id[j]! + 1) * inner);
      gx = wrap(g, ct.shape, ct.dtype);
    }
    if (needs[2]) {
      const wins = lastWriteWins(id);
      const winMask = constant(ct.dtype, [id.length, ...x!.shape.slice(1).map(() => 1)], (out) => {
        for (let j = 0; j < id.length; j++) out[j] = wins[j]!;
      });
      gu = mul(reshape(bind(gatherP, [ct, idx!], { axis: 0 }), u!.shape), winMask);
    }
    return [gx, null, gu];
  },
};

/** cumsum along axis: x̄ = reverse-cumsum(ḡ) (each input feeds every later output). */
export const cumsumP: Primitive<{ axis: number; reverse: boolean }> = {
  name: 'cumsum',
  forward: ([x], { axis, reverse }) => {
    const [outer, n, inner] = around(x!.shape, axis);
    return constant(x!.dtype, x!.shape, (out) => cumsumAxis(data(x!), outer, n, inner, reverse, out));
  },
  vjp: (ct, { attrs: { axis, reverse } }) => [bind(cumsumP, [ct], { axis, reverse: !reverse })],
};

// ---------------------------------------------------------------- dtype

/** cast between float dtypes: x̄ = cast(ḡ, x.dtype). Casts to int32/bool carry no gradient. */
export const castP: Primitive<{ dtype: DType }> = {
  name: 'cast',
  forward: ([x], { dtype }) => wrap(castData(data(x!), dtype), x!.shape, dtype),
  vjp: (ct, { inputs: [x] }) => [bind(castP, [ct], { dtype: x!.dtype })],
};

/** Converts storage; float -> int32 truncates toward zero, -> bool is `!= 0`. */
export function castData(src: TypedArray, dtype: DType): TypedArray {
  const out = allocate(dtype, src.length);
  if (dtype === 'bool') for (let i = 0; i < src.length; i++) out[i] = src[i] !== 0 ? 1 : 0;
  else if (dtype === 'int32') for (let i = 0; i < src.length; i++) out[i] = Math.trunc(src[i]!);
  else out.set(src);
  return out;
}

// ---------------------------------------------------------------- sparse

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

/**
 * sparseRows(x): z[to[k]] += weight[k] · x[from[k]] for every entry k, i.e.
 * z = S·x for the sparse matrix S[to[k], from[k]] = weight[k] (repeated
 * pairs add). This is a gather followed by a segment sum, without the
 * [entries, dim] intermediate. Its VJP is the same primitive with `from`
 * and `to` swapped: x̄ = Sᵀ·ḡ.
 */
export const sparseRowsP: Primitive<SparseRowsAttrs> = {
  name: 'sparseRows',
  forward: ([x], { from, to, weight, rows }) => {
    const inner = x!.rank <= 1 ? 1 : sizeOf(x!.shape.slice(1));
    return constant(x!.dtype, [rows, ...x!.shape.slice(1)], (out) => {
      const src = data(x!);
      for (let k = 0; k < from.length; k++) {
        const s = from[k]! * inner,
          d = to[k]! * inner,
          w = weight ? weight[k]! : 1;
        if (w === 1) for (let i = 0; i < inner; i++) out[d + i] += src[s + i]!;
        else for (let i = 0; i < inner; i++) out[d + i] += w * src[s + i]!;
      }
    });
  },
  vjp: (ct, { inputs: [x], attrs: { from, to, weight } }) => [
    bind(sparseRowsP, [ct], { from: to, to: from, weight, rows: x!.shape[0]! }),
  ],
};

// ---------------------------------------------------------------- softmax

/**
 * logSoftmax along one axis: z = x - m - log Σ exp(x - m), m = max(x) per
 * row (stable). A primitive rather than a composite so that a [b, N] score
 * matrix is read twice instead of through six temporaries.
 *   x̄ = ḡ - softmax(x) · Σ_axis ḡ,  softmax(x) = exp(z).
 * A row that is entirely -Infinity gives NaN (the distribution is undefined).
 */
export const logSoftmaxP: Primitive<{ axis: number }> = {
  name: 'logSoftmax',
  forward: ([x], { axis }) => {
    const [outer, n, inner] = around(x!.shape, axis);
    return constant(x!.dtype, x!.shape, (out) => {
      const src = data(x!);
      const row = inner === 1 ? null : new Float64Array(n);
      for (let o = 0; o < outer; o++) {
        for (let i = 0; i < inner; i++) {
          const base = o * n * inner + i;
          let m = -Infinity;
          for (let k = 0; k < n; k++) {
            const v = src[base + k * inner]!;
            if (v > m || v !== v) m = v;
          }
          if (inner === 1) {
            // contiguous row: shift into out, exp in place via a scratch row
            for (let k = 0; k < n; k++) out[base + k] = src[base + k]! - m;
            const e = expRow(out, base, n);
            let sum = 0;
            for (let k = 0; k < n; k++) sum += e[k]!;
            const ls = Math.log(sum);
            for (let k = 0; k < n; k++) out[base + k] = out[base + k]! - ls;
          } else {
            let sum = 0;
            for (let k = 0; k < n; k++) {
              row![k] = src[base + k * inner]! - m;
              sum += Math.exp(row![k]!);
            }
            const ls = Math.log(sum);
            for (let k = 0; k < n; k++) out[base + k * inner] = row![k]! - ls;
          }
        }
      }
    });
  },
  vjp: (ct, { output, attrs: { axis } }) => {
    const [outer, n, inner] = around(output.shape, axis);
    return [
      constant(ct.dtype, ct.shape, (out) => {
        const g = data(ct),
          z = data(output);
        for (let o = 0; o < outer; o++) {
          for (let i = 0; i < inner; i++) {
            const base = o * n * inner + i;
            let gs = 0;
            for (let k = 0; k < n; k++) gs += g[base + k * inner]!;
            if (inner === 1) {
              const e = expRow(z, base, n);
              for (let k = 0; k < n; k++) out[base + k] = g[base + k]! - e[k]! * gs;
            } else {
              for (let k = 0; k < n; k++)
                out[base + k * inner] = g[base + k * inner]! - Math.exp(z[base + k * inner]!) * gs;
            }
          }
        }
      }),
    ];
  },
};

/** exp of src[base .. base+n) into a fresh row (wasm for long float32 rows). */
function expRow(src: TypedArray, base: number, n: number): Float32Array | Float64Array {
  if (src instanceof Float32Array && n >= WASM_MIN_ELEMENTS && wasmAvailable())
    return expWasm(src.subarray(base, base + n));
  const out = src instanceof Float32Array ? new Float32Array(n) : new Float64Array(n);
  for (let k = 0; k < n; k++) out[k] = Math.exp(src[base + k]!);
  return out;
}
