/**
 * checkGradients: compares reverse-mode gradients with central finite
 * differences taken in float64. Float32 finite differences are too noisy to
 * trust, so the function is re-evaluated on float64 copies of the inputs
 * (every op accepts float64, and float32 tensors the function closes over
 * are promoted), and by default the autodiff side runs in float64 too, so
 * the check measures the calculus, not float32 rounding.
 *
 * Two checks, each on a random output cotangent v:
 *  - adjoint (any size): for random directions u, ⟨v, J u⟩ (Richardson-
 *    extrapolated central difference of t ↦ ⟨v, f(x + t u)⟩) equals
 *    ⟨Jᵀ v, u⟩ (the VJP);
 *  - Jacobian (small inputs): every entry J[i, k] by differences, against
 *    the VJP with the i-th basis cotangent, so a bad entry is localised.
 * Error of a pair (a, n): |a - n| / max(1, |a|, |n|), compared with `tol`.
 */
import { ArgumentError, checkOptions, describe, optionRules, type OptionRule } from '../errors.js';
import { isFloat } from '../tensor/dtype.js';
import { Rng } from '../tensor/random.js';
import { isTensor, unsafeData, wrap, type Tensor } from '../tensor/tensor.js';
import { primitives } from './primitives.js';
import { bind } from './engine.js';
import { vjp } from './transforms.js';

export interface CheckGradientsOptions {
  /** Generator for directions and cotangents (default new Rng(0)). */
  rng?: Rng;
  /** Finite-difference step (default 1e-3; Richardson extrapolation makes the truncation error O(eps⁴)). */
  eps?: number;
  /** Number of random directions per check (default 3). */
  directions?: number;
  /** Full Jacobian check when (total input size) × (output size) ≤ this (default 2048); 0 disables. */
  maxJacobianEntries?: number;
  /** 'float64' (default): autodiff in float64 as well; 'native': autodiff at the inputs' own dtype. */
  precision?: 'float64' | 'native';
  /** Tolerance on the error measure (default 1e-6 for float64, 2e-3 for native float32). */
  tol?: number;
}

export interface GradientCheckEntry {
  kind: 'adjoint' | 'jacobian';
  /** Input index (jacobian) or -1 (adjoint over all inputs). */
  input: number;
  /** Flat index into the input (jacobian) and the output element. */
  element: number;
  outputElement: number;
  autodiff: number;
  numeric: number;
  error: number;
}

export interface GradientCheckReport {
  ok: boolean;
  maxError: number;
  tol: number;
  checks: number;
  /** The worst entries (at most 10), worst first. */
  worst: GradientCheckEntry[];
  summary: string;
}

function to64(t: Tensor): Tensor {
  return isFloat(t.dtype) && t.dtype !== 'float64' ? bind(primitives.cast, [t], { dtype: 'float64' }) : t;
}

function randomLike(t: Tensor, rng: Rng): Tensor {
  const d = new Float64Array(t.size);
  for (let i = 0; i < d.length; i++) d[i] = rng.normal();
  return wrap(d, t.shape, 'float64');
}

function dot(a: Tensor, b: Float64Array): number {
  const d = unsafeData(a);
  let s = 0;
  for (let i = 0; i < b.length; i++) s += d[i]! * b[i]!;
  return s;
}

/** The options and each option's range (a bad eps or tolerance would otherwise give a NaN report). */
const count: OptionRule = (v) => (Number.isSafeInteger(v) && (v as number) >= 0 ? undefined : 'an integer >= 0');
const OPTIONS: Record<keyof CheckGradientsOptions, OptionRule> = {
  rng: (v) => (v instanceof Rng ? undefined : 'a seeded Rng'),
  eps: (v) => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? undefined : 'a finite number > 0'),
  directions: count,
  maxJacobianEntries: count,
  precision: optionRules.oneOf(['float64', 'native']),
  tol: (v) => (typeof v === 'number' && v >= 0 ? undefined : 'a number >= 0'),
};

export function checkGradients(
  f: (...xs: Tensor[]) => Tensor,
  inputs: readonly Tensor[],
  opts: CheckGradientsOptions = {},
): GradientCheckReport {
  const op = 'checkGradients';
  if (typeof f !== 'function') throw new ArgumentError(op, `f must be a function, got ${describe(f)}`);
  if (!Array.isArray(inputs) || !inputs.every(isTensor))
    throw new ArgumentError(op, `inputs must be an array of tensors, got ${describe(inputs)}`);
  checkOptions(op, opts, OPTIONS);
  const rng = opts.rng ?? new Rng(0);
  const eps = opts.eps ?? 1e-3;
  const precision = opts.precision ?? 'float64';
  const native32 = precision === 'native' && inputs.some((t) => t.dtype === 'float32');
  const tol = opts.tol ?? (native32 ? 2e-3 : 1e-6);
  const maxJ = opts.maxJacobianEntries ?? 2048;
  const x64 = inputs.map(to64);
  const diffIdx = inputs.map((t, i) => (isFloat(t.dtype) ? i : -1)).filter((i) => i >= 0);

  const evalAt = (perturb: (i: number) => Float64Array | null, t: number): Float64Array => {
    const xs = x64.map((x, i) => {
      const u = perturb(i);
      if (u === null) return x;
      const base = unsafeData(x);
      const d = new Float64Array(x.size);
      for (let k = 0; k < d.length; k++) d[k] = base[k]! + t * u[k]!;
      return wrap(d, x.shape, 'float64');
    });
    const y = f(...xs);
    if (!isTensor(y) || !isFloat(y.dtype))
      throw new ArgumentError(op, `f must return a float tensor, got ${describe(y)}`);
    return Float64Array.from(unsafeData(y));
  };
  /** d/dt ⟨v, f(x + t u)⟩ at 0, Richardson-extrapolated central difference. */
  const directional = (perturb: (i: number) => Float64Array | null, v: Float64Array): number => {
    const central = (h: number): number => {
      const yp = evalAt(perturb, h),
        ym = evalAt(perturb, -h);
      let s = 0;
      for (let k = 0; k < v.length; k++) s += v[k]! * (yp[k]! - ym[k]!);
      return s / (2 * h);
    };
    const d1 = central(eps),
      d2 = central(eps / 2);
    return (4 * d2 - d1) / 3;
  };

  const adInputs = precision === 'float64' ? x64 : inputs.slice();
  const { value, vjp: pullback } = vjp((...xs: Tensor[]) => f(...xs), ...adInputs);
  const outSize = value.size;
  const entries: GradientCheckEntry[] = [];
  const record = (e: Omit<GradientCheckEntry, 'error'>): void => {
    entries.push({
      ...e,
      error: Math.abs(e.autodiff - e.numeric) / Math.max(1, Math.abs(e.autodiff), Math.abs(e.numeric)),
    });
  };

  // Adjoint checks with random v and u.
  const ndir = opts.directions ?? 3;
  for (let r = 0; r < ndir; r++) {
    const v = randomLike(value, rng);
    const grads = pullback(wrap(unsafeData(v), value.shape, 'float64')) as (Tensor | null)[];
    const us = inputs.map((t) => (isFloat(t.dtype) ? Float64Array.from(unsafeData(randomLike(t, rng))) : null));
    let ad = 0;
    diffIdx.forEach((i) => {
      ad += dot(grads[i]!, us[i]!);
    });
    record({
      kind: 'adjoint',
      input: -1,
      element: -1,
      outputElement: -1,
      autodiff: ad,
      numeric: directional((i) => us[i] ?? null, Float64Array.from(unsafeData(v))),
    });
  }

  // Full Jacobian on small problems.
  const inSize = diffIdx.reduce((s, i) => s + inputs[i]!.size, 0);
  if (inSize * outSize <= maxJ && inSize > 0 && outSize > 0) {
    const rows: (Tensor | null)[][] = [];
    for (let o = 0; o < outSize; o++) {
      const e = new Float64Array(outSize);
      e[o] = 1;
      rows.push(pullback(wrap(e, value.shape, 'float64')) as (Tensor | null)[]);
    }
    for (const i of diffIdx) {
      for (let k = 0; k < inputs[i]!.size; k++) {
        const u = new Float64Array(inputs[i]!.size);
        u[k] = 1;
        // column k of J by central differences: all outputs at once
        const yp = evalAt((j) => (j === i ? u : null), eps),
          ym = evalAt((j) => (j === i ? u : null), -eps);
        const yp2 = evalAt((j) => (j === i ? u : null), eps / 2),
          ym2 = evalAt((j) => (j === i ? u : null), -eps / 2);
        for (let o = 0; o < outSize; o++) {
          const d1 = (yp[o]! - ym[o]!) / (2 * eps),
            d2 = (yp2[o]! - ym2[o]!) / eps;
          const numeric = (4 * d2 - d1) / 3;
          const autodiff = unsafeData(rows[o]![i]!)[k]!;
          record({ kind: 'jacobian', input: i, element: k, outputElement: o, autodiff, numeric });
        }
      }
    }
  }

  entries.sort((a, b) => b.error - a.error || (Number.isNaN(a.error) ? -1 : 0));
  const maxError = entries.reduce((m, e) => (Number.isNaN(e.error) ? NaN : Math.max(m, e.error)), 0);
  const ok = !Number.isNaN(maxError) && maxError <= tol;
  const worst = entries.slice(0, 10);
  const fmt = (e: GradientCheckEntry): string =>
    e.kind === 'adjoint'
      ? `adjoint: autodiff ${e.autodiff.toExponential(6)} vs numeric ${e.numeric.toExponential(6)} (error ${e.error.toExponential(2)})`
      : `J[out ${e.outputElement}, input ${e.input} elem ${e.element}]: autodiff ${e.autodiff.toExponential(6)} vs numeric ${e.numeric.toExponential(6)} (error ${e.error.toExponential(2)})`;
  const summary = `${ok ? 'gradients match' : 'GRADIENT MISMATCH'}: ${entries.length} checks, max error ${maxError.toExponential(2)} (tol ${tol})${ok ? '' : '\n  ' + worst.slice(0, 5).map(fmt).join('\n  ')}`;
  return { ok, maxError, tol, checks: entries.length, worst, summary };
}
