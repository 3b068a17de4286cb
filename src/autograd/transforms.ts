/**
 * Functional transforms: grad, valueAndGrad, valueAndGradAsync, vjp, stopGradient.
 *
 * Semantics
 *  - `grad(f)(x, ...rest)` differentiates the scalar `f(x, ...rest)` with
 *    respect to the arguments in `argnums` (default 0). An argument may be a
 *    tensor or a tree (array/record) of tensors; the gradient has the same
 *    structure (its type is `Grad<typeof argument>`). Float leaves get a
 *    gradient (zeros when the output does not depend on them); int32/bool
 *    leaves get null (they are not differentiable).
 *  - Tensors that `f` closes over, or that are passed in other arguments,
 *    are constants: no gradient flows to them.
 *  - `stopGradient(x)` returns x's values as a constant: the value is
 *    unchanged, and no gradient flows back through it (so the gradient of
 *    `x * stopGradient(x)` is x).
 *  - Nothing is mutated: calling a transformed function twice gives the same
 *    result. There is no `.backward()` and no `.grad` field.
 *  - First order only: the VJP rules run on constants, so gradients of
 *    gradients are not supported, and negcache refuses them rather than
 *    answer wrongly. While a transform's function runs, the values it traces
 *    belong to that call; a nested transform throws UnsupportedError when it
 *    is asked to differentiate such a value (grad of grad), when its own
 *    function combines one with its own traced values (an inner grad whose
 *    function closes over the outer argument), when its function's value
 *    depends on one, or (vjp) when its cotangent is one. A nested transform
 *    that only sees constants is fine: its result is a constant for the outer
 *    one, and that is exact (e.g. an inner grad of a fixed function at a
 *    fixed point, used as a weight). To use an outer value as a constant in
 *    an inner transform on purpose, pass it through stopGradient().
 */
import { ArgumentError, DTypeError, UnsupportedError, checkOptions, describe, fmtShape } from '../errors.js';
import { allocate, isFloat } from '../tensor/dtype.js';
import { isTensor, wrap, type Tensor } from '../tensor/tensor.js';
import { backward, beginTrace, bind, detach, endTrace, makeLeaf, openTraceOf, transformOf } from './engine.js';
import { primitives } from './primitives.js';
import { flatten, type TensorTree } from './tree.js';

// ------------------------------------------------------------------ types

/**
 * A tensor whose static type says it is int32 or bool (e.g.
 * `tensor(ids, 'int32') as IntTensor`): its gradient is null by type.
 */
export type NonFloatTensor = Tensor & { readonly dtype: 'int32' | 'bool' };

/**
 * The gradient of a value of type T: the same tree structure (arrays and
 * records), a Tensor for every tensor leaf. Leaves typed NonFloatTensor map
 * to null; a leaf typed plain `Tensor` maps to Tensor, and is null at run
 * time if it holds int32 or bool values (the Tensor type does not carry the
 * dtype).
 */
export type Grad<T> = T extends NonFloatTensor
  ? null
  : T extends Tensor
    ? Tensor
    : T extends readonly unknown[]
      ? { -readonly [K in keyof T]: Grad<T[K]> }
      : T extends object
        ? { -readonly [K in keyof T]: Grad<T[K]> }
        : never;

/** Which arguments to differentiate: a position, or a list of positions. */
export type Argnums = number | readonly number[];

/** One gradient per argument of a tuple P (what vjp's pullback returns). */
export type Grads<P extends readonly unknown[]> = { -readonly [K in keyof P]: Grad<P[K]> };

/** The gradients for `argnums` N of arguments Args: one gradient for a number, a tuple for a list. */
export type ArgGrads<Args extends readonly unknown[], N extends Argnums> = N extends number
  ? Grad<Args[N]>
  : { -readonly [K in keyof N]: Grad<Args[N[K] & number]> };

export interface GradOptions<N extends Argnums = Argnums> {
  /** Which positional arguments to differentiate (default 0). An array returns an array of gradients. */
  argnums?: N;
}

export interface ValueAndGradOptions<N extends Argnums = Argnums, H extends boolean = boolean> extends GradOptions<N> {
  /** f returns `[value, aux]`; aux is passed through untouched (and not differentiated). */
  hasAux?: H;
}

/** What valueAndGrad returns: the value, the gradient (G follows the arguments' trees) and, with hasAux, aux. */
export interface ValueAndGrad<A = unknown, G = any> {
  value: Tensor;
  grad: G;
  aux: A | undefined;
}

/** The aux type of f's result R under hasAux H. */
type AuxOf<R, H> = H extends true ? (R extends readonly [unknown, infer A] ? A : unknown) : undefined;

// ------------------------------------------------------------------ stopGradient

export function stopGradient<T extends Tensor>(x: T): Tensor {
  if (!isTensor(x)) throw new ArgumentError('stopGradient', `x must be a Tensor, got ${describe(x)}`);
  return detach(x);
}

// ------------------------------------------------------------------ the core

const castLike = (x: Tensor, like: Tensor): Tensor => bind(primitives.cast, [x], { dtype: like.dtype });
const addCotangents = (a: Tensor, b: Tensor): Tensor => bind(primitives.add, [a, b], null);

function zerosLike(t: Tensor): Tensor {
  return wrap(allocate(t.dtype, t.size), t.shape, t.dtype);
}

function onesLike(t: Tensor): Tensor {
  const d = allocate(t.dtype, t.size);
  d.fill(1);
  return wrap(d, t.shape, t.dtype);
}

function checkFunction(op: string, f: unknown): void {
  if (typeof f !== 'function') throw new ArgumentError(op, `f must be a function, got ${describe(f)}`);
}

function parseArgnums(op: string, argnums: unknown, nargs: number): { list: number[]; single: boolean } {
  const single = argnums === undefined || typeof argnums === 'number';
  const list =
    argnums === undefined ? [0] : typeof argnums === 'number' ? [argnums] : Array.isArray(argnums) ? argnums : null;
  if (list === null || list.some((a) => !Number.isInteger(a) || a < 0 || a >= nargs)) {
    throw new ArgumentError(
      op,
      `argnums ${JSON.stringify(argnums)} must name arguments in [0, ${nargs - 1}] (f was called with ${nargs} arguments)`,
    );
  }
  if (new Set(list).size !== list.length)
    throw new ArgumentError(op, `argnums ${JSON.stringify(argnums)} repeats an argument; each may appear once`);
  return { list: list as number[], single };
}

/**
 * One call of a transform: the arguments with the differentiated float
 * leaves replaced by tracked leaves of a fresh trace. `close()` ends the
 * trace (always, in a finally, once f has returned).
 */
class TracedCall {
  readonly trace: number;
  readonly args: unknown[];
  private readonly flats: ReturnType<typeof flatten>[];
  private readonly leavesPerArg: Tensor[][];

  constructor(
    readonly op: string,
    args: readonly unknown[],
    argnums: readonly number[],
  ) {
    this.flats = argnums.map((a) => flatten(op, args[a], `argument ${a}`));
    // Differentiating a value that an enclosing transform is tracing would need a second-order graph.
    this.flats.forEach((f, i) => {
      for (const t of f.leaves) {
        const outer = isFloat(t.dtype) ? openTraceOf(t) : 0;
        if (outer !== 0) throw nestedArgument(op, argnums[i]!, transformOf(outer));
      }
    });
    this.trace = beginTrace(op);
    this.args = args.slice();
    this.leavesPerArg = this.flats.map((f, i) => {
      const leaves = f.leaves.map((t) => (isFloat(t.dtype) ? makeLeaf(t, this.trace) : t));
      this.args[argnums[i]!] = f.rebuild(leaves);
      return leaves;
    });
  }

  close(): void {
    endTrace(this.trace);
  }

  /** Refuses a function value that depends on a tensor traced by an enclosing transform. */
  checkValue(out: Tensor): void {
    const outer = openTraceOf(out);
    if (outer !== 0 && outer !== this.trace) {
      throw new UnsupportedError(
        this.op,
        `f's value depends on a tensor that an enclosing ${transformOf(outer)} is differentiating; ` +
          `nested differentiation is not supported (${this.op} would return that dependence as a constant, ` +
          `and the outer gradient would be wrong). Pass the outer value through stopGradient() to make it a constant.`,
      );
    }
  }

  /** One gradient tree per differentiated argument: Σ seed ⊙ ∂out/∂leaf (zeros where out does not depend on a leaf). */
  gradients(out: Tensor, seed: Tensor): unknown[] {
    const all = this.leavesPerArg.flat().filter((t) => isFloat(t.dtype));
    const cts = backward(out, seed, all, addCotangents, castLike);
    const byLeaf = new Map<Tensor, Tensor | null>();
    all.forEach((l, i) => byLeaf.set(l, cts[i] ?? null));
    return this.flats.map((f, i) =>
      f.rebuild(this.leavesPerArg[i]!.map((l) => (isFloat(l.dtype) ? detach(byLeaf.get(l) ?? zerosLike(l)) : null))),
    );
  }
}

function nestedArgument(op: string, argnum: number, outer: string): UnsupportedError {
  return new UnsupportedError(
    op,
    `argument ${argnum} is being differentiated by an enclosing ${outer}: gradients of gradients ` +
      `(second-order differentiation) are not supported, and negcache refuses them rather than return a wrong ` +
      `number (its gradient rules run on constants). Write the derivative in closed form, or pass the value ` +
      `through stopGradient() to differentiate at a constant point.`,
  );
}

function checkScalarOutput(op: string, out: unknown, withAux: boolean): Tensor {
  if (!isTensor(out))
    throw new ArgumentError(
      op,
      `f must return a scalar float Tensor, got ${describe(out)}${withAux ? ' (with hasAux, return [value, aux])' : ''}`,
    );
  if (out.size !== 1)
    throw new ArgumentError(
      op,
      `f must return a scalar, got shape ${fmtShape(out.shape)}; reduce it (e.g. mean) or use vjp for non-scalar outputs`,
    );
  if (!isFloat(out.dtype)) throw new DTypeError(op, `f must return a float tensor, got ${out.dtype}`);
  return out;
}

/**
 * The one core of grad, valueAndGrad and valueAndGradAsync: validates the
 * transform's options once, and per call opens the trace (`start`) and turns
 * f's result into {value, grad, aux} (`finish`). Only how f's result arrives
 * (returned or awaited) differs between the three.
 */
function valueAndGradCore(op: string, f: unknown, opts: unknown, allowAux: boolean) {
  checkFunction(op, f);
  checkOptions(op, opts, allowAux ? { argnums: null, hasAux: optionBoolean } : { argnums: null });
  const o = (opts ?? {}) as ValueAndGradOptions;
  const hasAux = o.hasAux === true;
  return {
    start(args: readonly unknown[]): { call: TracedCall; single: boolean } {
      const { list, single } = parseArgnums(op, o.argnums, args.length);
      return { call: new TracedCall(op, args, list), single };
    },
    finish(call: TracedCall, single: boolean, result: unknown): ValueAndGrad {
      let value: unknown = result,
        aux: unknown;
      if (hasAux) {
        if (!Array.isArray(result) || result.length !== 2)
          throw new ArgumentError(
            op,
            `with hasAux, f must ${op === 'valueAndGradAsync' ? 'resolve to' : 'return'} [value, aux], got ${describe(result)}`,
          );
        [value, aux] = result;
      }
      const out = checkScalarOutput(op, value, op !== 'grad');
      call.checkValue(out);
      const grads = call.gradients(out, onesLike(detach(out)));
      return { value: detach(out), grad: single ? grads[0] : grads, aux };
    },
  };
}

const optionBoolean = (v: unknown): string | undefined => (typeof v === 'boolean' ? undefined : 'true or false');

// ------------------------------------------------------------------ the transforms

/** valueAndGrad(f, opts)(...args) → { value, grad, aux }. */
export function valueAndGrad<Args extends unknown[], R, const N extends Argnums = 0, const H extends boolean = false>(
  f: (...args: Args) => R,
  opts?: ValueAndGradOptions<N, H>,
): (...args: Args) => ValueAndGrad<AuxOf<R, H>, ArgGrads<Args, N>> {
  const core = valueAndGradCore('valueAndGrad', f, opts, true);
  return (...args: Args) => {
    const { call, single } = core.start(args);
    try {
      return core.finish(call, single, f(...(call.args as Args))) as ValueAndGrad<AuxOf<R, H>, ArgGrads<Args, N>>;
    } finally {
      call.close();
    }
  };
}

/**
 * valueAndGradAsync: valueAndGrad for an async `f` (e.g. one that awaits
 * collectives, as the sharded loss does). The engine keeps no global tape
 * (the graph lives on the tensors), so awaiting inside `f` is safe, and
 * other work interleaved with it neither joins nor disturbs its graph.
 */
export function valueAndGradAsync<
  Args extends unknown[],
  R,
  const N extends Argnums = 0,
  const H extends boolean = false,
>(
  f: (...args: Args) => Promise<R>,
  opts?: ValueAndGradOptions<N, H>,
): (...args: Args) => Promise<ValueAndGrad<AuxOf<R, H>, ArgGrads<Args, N>>> {
  const core = valueAndGradCore('valueAndGradAsync', f, opts, true);
  return async (...args: Args) => {
    const { call, single } = core.start(args);
    try {
      const result = await f(...(call.args as Args));
      return core.finish(call, single, result) as ValueAndGrad<AuxOf<R, H>, ArgGrads<Args, N>>;
    } finally {
      call.close();
    }
  };
}

/** grad(f, opts)(...args) → the gradient of the scalar f with respect to args[argnums]. */
export function grad<Args extends unknown[], const N extends Argnums = 0>(
  f: (...args: Args) => unknown,
  opts?: GradOptions<N>,
): (...args: Args) => ArgGrads<Args, N> {
  const core = valueAndGradCore('grad', f, opts, false);
  return (...args: Args) => {
    const { call, single } = core.start(args);
    try {
      return core.finish(call, single, f(...(call.args as Args))).grad as ArgGrads<Args, N>;
    } finally {
      call.close();
    }
  };
}

/**
 * vjp(f, ...primals) → { value, vjp }: `value = f(...primals)` (a tensor of
 * any shape), and `vjp(cotangent)` returns one gradient tree per primal,
 * Σ cotangent ⊙ ∂value/∂primal. The returned function may be called many times.
 */
export function vjp<P extends TensorTree[]>(
  f: (...args: P) => Tensor,
  ...primals: P
): { value: Tensor; vjp: (cotangent: Tensor) => Grads<P> } {
  checkFunction('vjp', f);
  const call = new TracedCall(
    'vjp',
    primals,
    primals.map((_, i) => i),
  );
  let out: unknown;
  try {
    out = f(...(call.args as P));
    if (!isTensor(out)) throw new ArgumentError('vjp', `f must return a Tensor, got ${describe(out)}`);
    if (!isFloat(out.dtype)) throw new DTypeError('vjp', `f must return a float tensor, got ${out.dtype}`);
    call.checkValue(out);
  } finally {
    call.close();
  }
  const value = out;
  return {
    value: detach(value),
    vjp: (cotangent: Tensor) => {
      if (!isTensor(cotangent))
        throw new ArgumentError('vjp', `cotangent must be a Tensor, got ${describe(cotangent)}`);
      if (cotangent.shape.length !== value.shape.length || cotangent.shape.some((d, i) => d !== value.shape[i])) {
        throw new ArgumentError(
          'vjp',
          `cotangent is ${fmtShape(cotangent.shape)}; need the output's shape ${fmtShape(value.shape)}`,
        );
      }
      if (!isFloat(cotangent.dtype)) throw new DTypeError('vjp', `cotangent must be float, got ${cotangent.dtype}`);
      const outer = openTraceOf(cotangent);
      if (outer !== 0)
        throw new UnsupportedError(
          'vjp',
          `the cotangent is being differentiated by an enclosing ${transformOf(outer)}; differentiating through ` +
            `a vjp (second-order differentiation) is not supported and would give a wrong gradient. Pass the ` +
            `cotangent through stopGradient() to use it as a constant.`,
        );
      const seed = detach(cotangent.dtype === value.dtype ? cotangent : castLike(cotangent, value));
      return call.gradients(value, seed) as unknown as Grads<P>;
    },
  };
}
