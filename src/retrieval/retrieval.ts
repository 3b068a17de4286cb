/**
 * Retrieval functions (reference: retrieval_fns). A retrieval function maps
 * scores [b, n] to int32 indices [b, 1]. Randomness is a constructor
 * argument (an explicit seeded Rng), so tests inject a generator, or a fixed
 * retrieval function, instead of patching anything.
 *
 * Scores of -Infinity mark excluded candidates (empty slots, false
 * negatives): they are never drawn while the row has a finite score. A row
 * with no finite score returns index 0 (what arg-max over equal values gives;
 * the loss marks such queries as having no negative). NaN or +Infinity
 * scores are rejected with a NonFiniteError rather than sampled.
 */
import { ArgumentError, DTypeError, NonFiniteError, ShapeError, checkOptions, describe, fmtShape } from '../errors.js';
import { isFloat } from '../tensor/dtype.js';
import { Rng } from '../tensor/random.js';
import { isTensor, unsafeData, wrap, type Tensor } from '../tensor/tensor.js';
import { gumbelAt, noiseKey } from '../scan/noise.js';

export type RetrievalFn = (scores: Tensor) => Tensor;

function checkScores(op: string, scores: unknown): { d: ArrayLike<number>; b: number; n: number } {
  if (!isTensor(scores)) throw new ArgumentError(op, `scores must be a Tensor, got ${describe(scores)}`);
  if (!isFloat(scores.dtype)) throw new DTypeError(op, `scores must be float, got ${scores.dtype}`);
  if (scores.rank !== 2) throw new ShapeError(op, `scores must be [batch, n], got ${fmtShape(scores.shape)}`);
  const [b, n] = scores.shape as [number, number];
  if (n === 0) throw new ShapeError(op, `scores has no candidates (shape ${fmtShape(scores.shape)}); need n >= 1`);
  const d = unsafeData(scores);
  for (let i = 0; i < d.length; i++) {
    const v = d[i]!;
    if (v !== v || v === Infinity) {
      throw new NonFiniteError(
        op,
        `scores[${Math.floor(i / n)}, ${i % n}] is ${v}; need finite scores (or -Infinity to exclude a candidate)`,
      );
    }
  }
  return { d, b, n };
}

function checkInvTemp(op: string, invTemp: unknown): number {
  if (typeof invTemp !== 'number' || !Number.isFinite(invTemp) || invTemp < 0) {
    throw new ArgumentError(op, `invTemp must be a finite number >= 0, got ${describe(invTemp)}`);
  }
  return invTemp;
}

function checkRng(op: string, rng: unknown): Rng {
  if (!(rng instanceof Rng))
    throw new ArgumentError(op, `rng must be a seeded Rng (e.g. new Rng(0)), got ${describe(rng)}`);
  return rng;
}

/** The arg-max of each row, first index on ties (reference: MaxScoreRetrievalFn). */
export function maxScoreRetrievalFn(): RetrievalFn {
  return (scores) => {
    const { d, b, n } = checkScores('maxScoreRetrieval', scores);
    const out = new Int32Array(b);
    for (let i = 0; i < b; i++) {
      let best = -Infinity,
        arg = 0;
      for (let j = 0; j < n; j++)
        if (d[i * n + j]! > best) {
          best = d[i * n + j]!;
          arg = j;
        }
      out[i] = arg;
    }
    return wrap(out, [b, 1], 'int32');
  };
}

export interface SamplerOptions {
  /** The seeded generator the draws come from. */
  rng: Rng;
  /** Inverse temperature: samples from softmax(invTemp * scores) (default 1). */
  invTemp?: number;
}

/**
 * Injected Gumbel noise: given the shape [b, n] of the scores, returns G as a
 * float tensor of that shape (finite values). It plays the part of the
 * reference's `_sample_gumbel(shape)`, which its tests mock; a caller that
 * holds uniforms U in (0, 1) passes `G = -log(-log U)`.
 */
export type GumbelNoise = (shape: readonly [number, number]) => Tensor;

export interface GumbelMaxOptions {
  /** The seeded generator the draws come from (give this or `noise`). */
  rng?: Rng;
  /**
   * Injected Gumbel noise instead of `rng` (give one of the two). Called once
   * per call of the retrieval function with the scores' shape; the draw is
   * argmax_j (invTemp·s_ij + G_ij). For tests, conformance vectors and
   * ports that must reproduce a given noise draw exactly.
   */
  noise?: GumbelNoise;
  /** Inverse temperature: samples from softmax(invTemp * scores) (default 1). */
  invTemp?: number;
}

/**
 * Gumbel-max sampling (reference: GumbelMaxRetrievalFn): index
 * argmax_j (invTemp·s_ij + G_ij), G_ij = -log(-log U_ij), U_ij strictly in
 * (0, 1); first index on ties. This draws j with probability
 * softmax(invTemp·s_i)_j. Excluded entries (s_ij = -Infinity) are skipped,
 * whatever their noise.
 *
 * With `rng`, the noise is counter-based: each call draws a 64-bit key from
 * `rng`, and U_ij is a hash of (key, i, j) (src/scan/noise.ts).
 * The same key therefore gives the same noise in any traversal order, which
 * lets the fused, blocked and multi-threaded kernels reproduce this
 * function's indices exactly. Two draws of `rng` per call.
 *
 * With `noise`, G is whatever the function returns for the scores' shape
 * (one call per call, as the reference calls `_sample_gumbel` once); the sum
 * invTemp·s + G is formed in float64. The loss's fused scan never applies
 * to such a sampler: the loss sees a custom retrievalFn and takes its
 * straightforward path.
 */
export function gumbelMaxRetrievalFn(opts: GumbelMaxOptions): RetrievalFn {
  const op = 'gumbelMaxRetrieval';
  checkOptions(op, opts, ['rng', 'noise', 'invTemp'], { required: true });
  const invTemp = checkInvTemp(op, opts.invTemp ?? 1);
  if (opts.noise !== undefined) {
    if (opts.rng !== undefined)
      throw new ArgumentError(op, 'give rng or noise, not both (noise replaces the generator)');
    if (typeof opts.noise !== 'function')
      throw new ArgumentError(op, `noise must be a function (shape) => Tensor, got ${describe(opts.noise)}`);
    return injectedGumbelMax(op, opts.noise, invTemp);
  }
  const rng = checkRng(op, opts.rng);
  return (scores) => {
    const { d, b, n } = checkScores(op, scores);
    const [k0, k1] = noiseKey(rng);
    const out = new Int32Array(b);
    for (let i = 0; i < b; i++) {
      let best = -Infinity,
        arg = 0;
      for (let j = 0; j < n; j++) {
        const s = d[i * n + j]!;
        if (s === -Infinity) continue;
        const v = invTemp * s + gumbelAt(k0, k1, i, j);
        if (v > best) {
          best = v;
          arg = j;
        }
      }
      out[i] = arg;
    }
    return wrap(out, [b, 1], 'int32');
  };
}

/** Gumbel-max over injected noise: the same arg-max rule as the seeded path. */
function injectedGumbelMax(op: string, noise: GumbelNoise, invTemp: number): RetrievalFn {
  return (scores) => {
    const { d, b, n } = checkScores(op, scores);
    const g = noise([b, n]);
    if (!isTensor(g) || !isFloat(g.dtype) || g.rank !== 2 || g.shape[0] !== b || g.shape[1] !== n) {
      throw new ShapeError(
        op,
        `noise must return float Gumbel noise of the scores' shape [${b}, ${n}], got ${describe(g)}`,
      );
    }
    const gd = unsafeData(g);
    for (let k = 0; k < gd.length; k++) {
      if (!Number.isFinite(gd[k]!))
        throw new NonFiniteError(op, `noise[${Math.floor(k / n)}, ${k % n}] is ${gd[k]}; need finite Gumbel noise`);
    }
    const out = new Int32Array(b);
    for (let i = 0; i < b; i++) {
      let best = -Infinity,
        arg = 0;
      for (let j = 0; j < n; j++) {
        const s = d[i * n + j]!;
        if (s === -Infinity) continue;
        const v = invTemp * s + gd[i * n + j]!;
        if (v > best) {
          best = v;
          arg = j;
        }
      }
      out[i] = arg;
    }
    return wrap(out, [b, 1], 'int32');
  };
}

/**
 * Exact categorical sampling (beyond the reference): one uniform u per row
 * and the running sum of p_j = exp(invTemp·s_ij - max): the first j whose
 * cumulative mass exceeds u·Σp. Same distribution as Gumbel-max with one
 * random number per query instead of one per candidate.
 */
export function categoricalRetrievalFn(opts: SamplerOptions): RetrievalFn {
  const op = 'categoricalRetrieval';
  if (opts === null || typeof opts !== 'object')
    throw new ArgumentError(op, `options must be {rng, invTemp?}, got ${describe(opts)}`);
  const rng = checkRng(op, opts.rng);
  const invTemp = checkInvTemp(op, opts.invTemp ?? 1);
  return (scores) => {
    const { d, b, n } = checkScores(op, scores);
    const out = new Int32Array(b);
    const p = new Float64Array(n);
    for (let i = 0; i < b; i++) {
      const u = rng.uniformOpen();
      let m = -Infinity;
      // Skip excluded entries: with invTemp = 0, 0 · -Infinity would be NaN.
      for (let j = 0; j < n; j++) if (d[i * n + j]! !== -Infinity) m = Math.max(m, invTemp * d[i * n + j]!);
      if (m === -Infinity) {
        out[i] = 0;
        continue;
      }
      let total = 0;
      for (let j = 0; j < n; j++) {
        const s = d[i * n + j]!;
        p[j] = s === -Infinity ? 0 : Math.exp(invTemp * s - m);
        total += p[j]!;
      }
      const target = u * total;
      let acc = 0,
        arg = -1,
        last = 0;
      for (let j = 0; j < n; j++) {
        if (p[j] === 0) continue;
        last = j;
        acc += p[j]!;
        if (acc > target) {
          arg = j;
          break;
        }
      }
      out[i] = arg === -1 ? last : arg; // rounding at the very end of the row
    }
    return wrap(out, [b, 1], 'int32');
  };
}
