/**
 * Functional transforms: grad, valueAndGrad, vjp, stopGradient.
 *
 * Semantics
 *  - `grad(f)(x, ...rest)` differentiates the scalar `f(x, ...rest)` with
 *    respect to the arguments in `argnums` (default 0). An argument may be a
 *    tensor or a tree (array/record) of tensors; the gradient has the same
 *    structure. Float leaves get a gradient (zeros when the output does not
 *    depend on them); int32/bool leaves get null (they are not differentiable).
 *  - Tensors that `f` closes over, or that are passed in other arguments,
 *    are constants: no gradient flows to them.
 *  - `stopGradient(x)` returns x's values as a constant: the value is
 *    unchanged, and no gradient flows back through it (so the gradient of
 *    `x * stopGradient(x)` is x).
 *  - Nothing is mutated: calling a transformed function twice gives the same
 *    result. There is no `.backward()` and no `.grad` field.
 *  - First order: the VJP rules run on constants, so gradients of gradients
 *    are not supported.
 */
import { ArgumentError, DTypeError, describe, fmtShape } from '../errors.js';
import { allocate, isFloat } from '../tensor/dtype.js';
import { isTensor, wrap, type Tensor } from '../tensor/tensor.js';
import { backward, detach, makeLeaf } from './engine.js';
import { add, castP } from './primitives.js';
import { bind } from './engine.js';
import { flatten, type TensorTree } from './tree.js';

export interface GradOptions {
  /** Which positional arguments to differentiate (default 0). An array returns an array of gradients. */
  argnums?: number | readonly number[];
}

export interface ValueAndGradOptions extends GradOptions {
  /** f returns `[value, aux]`; aux is passed through untouched (and not differentiated). */
  hasAux?: boolean;
}

export interface ValueAndGrad<A = unknown> {
  value: Tensor;
  grad: any;
  aux: A | undefined;
}

export function stopGradient<T extends Tensor>(x: T): Tensor {
  if (!isTensor(x)) throw new ArgumentError('stopGradient', `x must be a Tensor, got ${describe(x)}`);
  return detach(x);
}

const castLike = (x: Tensor, like: Tensor): Tensor => bind(castP, [x], { dtype: like.dtype });

function zerosLike(t: Tensor): Tensor {
  return wrap(allocate(t.dtype, t.size), t.shape, t.dtype);
}

function onesLike(t: Tensor): Tensor {
  const d = allocate(t.dtype, t.size);
  d.fill(1);
  return wrap(d, t.shape, t.dtype);
}

/** Options must be a plain object with known keys (a misspelt `argnums` would otherwise silently differentiate argument 0). */
function checkTransformOptions(op: string, opts: unknown, allowed: readonly string[]): void {
  if (opts === undefined) return;
  if (typeof opts !== 'object' || opts === null || Array.isArray(opts)) {
    throw new ArgumentError(op, `options must be an object like {${allowed.join(', ')}}, got ${describe(opts)}`);
  }
  for (const key of Object.keys(opts)) {
    if (!allowed.includes(key)) throw new ArgumentError(op, `unknown option "${key}"; allowed: ${allowed.join(', ')}`);
  }
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

/** Replaces the differentiated arguments by tracked leaves; returns what backward needs. */
function trace(op: string, args: unknown[], argnums: readonly number[]) {
  const flats = argnums.map((a) => flatten(op, args[a], `argument ${a}`));
  const traced = args.slice();
  const leavesPerArg = flats.map((f, i) => {
    const leaves = f.leaves.map((t) => (isFloat(t.dtype) ? makeLeaf(t) : t));
    traced[argnums[i]!] = f.rebuild(leaves);
    return leaves;
  });
  return { traced, flats, leavesPerArg };
}

function gradients(
  out: Tensor,
  seed: Tensor,
  flats: ReturnType<typeof flatten>[],
  leavesPerArg: Tensor[][],
): unknown[] {
  const all = leavesPerArg.flat().filter((t) => isFloat(t.dtype));
  const cts = backward(out, seed, all, (a, b) => add(a, b), castLike);
  const byLeaf = new Map<Tensor, Tensor | null>();
  all.forEach((l, i) => byLeaf.set(l, cts[i] ?? null));
  return flats.map((f, i) =>
    f.rebuild(leavesPerArg[i]!.map((l) => (isFloat(l.dtype) ? detach(byLeaf.get(l) ?? zerosLike(l)) : null))),
  );
}

function checkScalarOutput(op: string, out: unknown): Tensor {
  if (!isTensor(out))
    throw new ArgumentError(
      op,
      `f must return a scalar float Tensor, got ${describe(out)}${op === 'valueAndGrad' ? ' (with hasAux, return [value, aux])' : ''}`,
    );
  if (out.size !== 1)
    throw new ArgumentError(
      op,
      `f must return a scalar, got shape ${fmtShape(out.shape)}; reduce it (e.g. mean) or use vjp for non-scalar outputs`,
    );
  if (!isFloat(out.dtype)) throw new DTypeError(op, `f must return a float tensor, got ${out.dtype}`);
  return out;
}

/** valueAndGrad(f, opts)(...args) → { value, grad, aux }. */
export function valueAndGrad<Args extends unknown[]>(
  f: (...args: Args) => unknown,
  opts: ValueAndGradOptions = {},
): (...args: Args) => ValueAndGrad {
  if (typeof f !== 'function') throw new ArgumentError('valueAndGrad', `f must be a function, got ${describe(f)}`);
  checkTransformOptions('valueAndGrad', opts, ['argnums', 'hasAux']);
  if (opts.hasAux !== undefined && typeof opts.hasAux !== 'boolean')
    throw new ArgumentError('valueAndGrad', `hasAux must be true or false, got ${describe(opts.hasAux)}`);
  return (...args: Args) => {
    const { list, single } = parseArgnums('valueAndGrad', opts.argnums, args.length);
    const { traced, flats, leavesPerArg } = trace('valueAndGrad', args, list);
    const result = f(...(traced as Args));
    let value: unknown = result,
      aux: unknown;
    if (opts.hasAux) {
      if (!Array.isArray(result) || result.length !== 2)
        throw new ArgumentError('valueAndGrad', `with hasAux, f must return [value, aux], got ${describe(result)}`);
      [value, aux] = result;
    }
    const out = checkScalarOutput('valueAndGrad', value);
    const grads = gradients(out, onesLike(detach(out)), flats, leavesPerArg);
    return { value: detach(out), grad: single ? grads[0] : grads, aux };
  };
}

/**
 * valueAndGradAsync: valueAndGrad for an async `f` (e.g. one that awaits
 * collectives, as the sharded loss does). The engine keeps no global tape
 * (the graph lives on the tensors), so awaiting inside `f` is safe, and
 * other work interleaved with it neither joins nor disturbs its graph.
 */
export function valueAndGradAsync<Args extends unknown[]>(
  f: (...args: Args) => Promise<unknown>,
  opts: ValueAndGradOptions = {},
): (...args: Args) => Promise<ValueAndGrad> {
  if (typeof f !== 'function') throw new ArgumentError('valueAndGradAsync', `f must be a function, got ${describe(f)}`);
  checkTransformOptions('valueAndGradAsync', opts, ['argnums', 'hasAux']);
  if (opts.hasAux !== undefined && typeof opts.hasAux !== 'boolean')
    throw new ArgumentError('valueAndGradAsync', `hasAux must be true or false, got ${describe(opts.hasAux)}`);
  return async (...args: Args) => {
    const { list, single } = parseArgnums('valueAndGradAsync', opts.argnums, args.length);
    const { traced, flats, leavesPerArg } = trace('valueAndGradAsync', args, list);
    const result = await f(...(traced as Args));
    let value: unknown = result,
      aux: unknown;
    if (opts.hasAux) {
      if (!Array.isArray(result) || result.length !== 2)
        throw new ArgumentError(
          'valueAndGradAsync',
          `with hasAux, f must resolve to [value, aux], got ${describe(result)}`,
        );
      [value, aux] = result;
    }
    const out = checkScalarOutput('valueAndGradAsync', value);
    const grads = gradients(out, onesLike(detach(out)), flats, leavesPerArg);
    return { value: detach(out), grad: single ? grads[0] : grads, aux };
  };
}

/** grad(f, opts)(...args) → the gradient of the scalar f with respect to args[argnums]. */
export function grad<Args extends unknown[]>(
  f: (...args: Args) => unknown,
  opts: GradOptions = {},
): (...args: Args) => any {
  if (typeof f !== 'function') throw new ArgumentError('grad', `f must be a function, got ${describe(f)}`);
  checkTransformOptions('grad', opts, ['argnums']);
  return (...args: Args) => {
    const { list, single } = parseArgnums('grad', opts.argnums, args.length);
    const { traced, flats, leavesPerArg } = trace('grad', args, list);
    const out = checkScalarOutput('grad', f(...(traced as Args)));
    const grads = gradients(out, onesLike(detach(out)), flats, leavesPerArg);
    return single ? grads[0] : grads;
  };
}

/**
 * vjp(f, ...primals) → { value, vjp }: `value = f(...primals)` (a tensor of
 * any shape), and `vjp(cotangent)` returns one gradient tree per primal,
 * Σ cotangent ⊙ ∂value/∂primal. The returned function may be called many times.
 */
export function vjp(
  f: (...args: any[]) => Tensor,
  ...primals: TensorTree[]
): { value: Tensor; vjp: (cotangent: Tensor) => any[] } {
  if (typeof f !== 'function') throw new ArgumentError('vjp', `f must be a function, got ${describe(f)}`);
  const { traced, flats, leavesPerArg } = trace(
    'vjp',
    primals,
    primals.map((_, i) => i),
  );
  const out = f(...traced);
  if (!isTensor(out)) throw new ArgumentError('vjp', `f must return a Tensor, got ${describe(out)}`);
  if (!isFloat(out.dtype)) throw new DTypeError('vjp', `f must return a float tensor, got ${out.dtype}`);
  return {
    value: detach(out),
    vjp: (cotangent: Tensor) => {
      if (!isTensor(cotangent))
        throw new ArgumentError('vjp', `cotangent must be a Tensor, got ${describe(cotangent)}`);
      if (cotangent.shape.length !== out.shape.length || cotangent.shape.some((d, i) => d !== out.shape[i])) {
        throw new ArgumentError(
          'vjp',
          `cotangent is ${fmtShape(cotangent.shape)}; need the output's shape ${fmtShape(out.shape)}`,
        );
      }
      if (!isFloat(cotangent.dtype)) throw new DTypeError('vjp', `cotangent must be float, got ${cotangent.dtype}`);
      const seed = detach(cotangent.dtype === out.dtype ? cotangent : castLike(cotangent, out));
      return gradients(out, seed, flats, leavesPerArg);
    },
  };
}
