/**
 * The streaming block passes (src/tensor/kernels/scoreBlocks.ts):
 *  - the full-softmax statistics and VJP against a float64 recomputation of
 *    the same scores (a stated float32 bound);
 *  - panel splits: any split of the panels, combined in order, is
 *    bit-identical to one pass over all of them (what lets the two-thread
 *    pool give the one-thread results);
 *  - the ranking against rankOfTarget on full score rows, and group splits.
 * The block kernels themselves (softmaxStats, softmaxScale, countAtLeast)
 * are exercised through these passes.
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { NonFiniteError } from '../../../src/errors.js';
import { Rng } from '../../../src/tensor/random.js';
import { initWasm, matmulNTWasm } from '../../../src/tensor/kernels/wasm/index.js';
import {
  LOCAL_BLOCK_RUNNER,
  PANEL_DOCS,
  SCORE_BLOCK,
  combineSoftmaxPanels,
  rankGroups,
  rankGroupsRange,
  scoreBlocksAvailable,
  softmaxBackwardPanels,
  softmaxForwardPanels,
  softmaxPanelCount,
  combineSoftmaxGrads,
  panelGrads,
  type SoftmaxBlocksArgs,
} from '../../../src/tensor/kernels/scoreBlocks.js';
import { rankOfTarget } from '../../../src/eval/metrics.js';
import { params } from '../../util/props.js';

beforeAll(async () => {
  expect(await initWasm()).toBe(true);
  expect(scoreBlocksAvailable()).toBe(true);
});

const bits = (a: Float32Array | Float64Array): string =>
  Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('hex');

/** Unit-norm rows (as the towers produce). */
function unitRows(rng: Rng, rows: number, d: number): Float32Array {
  const a = new Float32Array(rows * d);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let k = 0; k < d; k++) {
      const v = rng.normal();
      a[r * d + k] = v;
      s += v * v;
    }
    for (let k = 0; k < d; k++) a[r * d + k] = a[r * d + k]! / Math.sqrt(s);
  }
  return a;
}

function makeArgs(seed: number, b: number, n: number, d: number, nExcl: number, scale = 20): SoftmaxBlocksArgs {
  const rng = new Rng(seed);
  const targets = Int32Array.from({ length: b }, () => rng.int(n));
  const pairs: [number, number][] = [];
  for (let k = 0; k < nExcl; k++) {
    const i = rng.int(b),
      j = rng.int(n);
    if (targets[i] !== j) pairs.push([i, j]);
  }
  pairs.sort((x, y) => x[1] - y[1] || x[0] - y[0]);
  return {
    queries: unitRows(rng, b, d),
    docs: unitRows(rng, n, d),
    b,
    n,
    d,
    scale,
    targets,
    exclDoc: Int32Array.from(pairs, (p) => p[1]),
    exclQuery: Int32Array.from(pairs, (p) => p[0]),
  };
}

/**
 * float64 oracle over the kernel's own scores (matmulNTWasm·scale, rounded as
 * the kernel rounds): lse, target scores, and the VJP for a cotangent g.
 */
function oracle(a: SoftmaxBlocksArgs, g: Float64Array) {
  const { b, n, d } = a;
  const raw = matmulNTWasm(a.queries, a.docs, b, n, d);
  const s = Float64Array.from(raw, (x) => Math.fround(a.scale * x));
  for (let k = 0; k < a.exclDoc.length; k++) s[a.exclQuery[k]! * n + a.exclDoc[k]!] = -Infinity;
  const lse = new Float64Array(b),
    ts = new Float64Array(b);
  const dq = new Float64Array(b * d),
    dd = new Float64Array(n * d);
  for (let i = 0; i < b; i++) {
    let m = -Infinity;
    for (let j = 0; j < n; j++) m = Math.max(m, s[i * n + j]!);
    let z = 0;
    for (let j = 0; j < n; j++) z += Math.exp(s[i * n + j]! - m);
    lse[i] = m + Math.log(z);
    ts[i] = s[i * n + a.targets[i]!]!;
    for (let j = 0; j < n; j++) {
      const gij = g[i]! * a.scale * (Math.exp(s[i * n + j]! - lse[i]!) - (j === a.targets[i] ? 1 : 0));
      for (let k = 0; k < d; k++) {
        dq[i * d + k] += gij * a.docs[j * d + k]!;
        dd[j * d + k] += gij * a.queries[i * d + k]!;
      }
    }
  }
  return { lse, ts, dq, dd };
}

const sizes = fc.record({
  seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  b: fc.integer({ min: 1, max: 9 }),
  n: fc.oneof(fc.integer({ min: 1, max: 40 }), fc.integer({ min: SCORE_BLOCK - 3, max: 2 * SCORE_BLOCK + 5 })),
  d: fc.integer({ min: 1, max: 19 }),
  nExcl: fc.integer({ min: 0, max: 12 }),
});

describe('full softmax block passes', () => {
  it('forward and VJP equal a float64 recomputation within float32 bounds', () => {
    fc.assert(
      fc.property(sizes, ({ seed, b, n, d, nExcl }) => {
        const a = makeArgs(seed, b, n, d, nExcl);
        const g = Float64Array.from({ length: b }, (_, i) => Math.fround(0.5 + i / b));
        const o = oracle(a, g);
        const f = LOCAL_BLOCK_RUNNER.softmaxForward(a);
        for (let i = 0; i < b; i++) {
          // f32 block sums of ≤ SCORE_BLOCK terms and a polynomial exp: relative error of Σ well under 1e-4
          expect(Math.abs(f.lse[i]! - o.lse[i]!)).toBeLessThanOrEqual(1e-4);
          expect(f.targetScore[i]).toBe(o.ts[i]);
        }
        const coef = Float32Array.from(g, (x) => Math.fround(x * a.scale));
        const { dq, dDocs } = LOCAL_BLOCK_RUNNER.softmaxBackward(a, f.lse, coef);
        // |G| <= |g|·scale per entry; G·D sums carry float32 rounding of the probabilities (rel 1e-4) and of the products
        const gmax = Math.max(...g) * a.scale;
        for (let k = 0; k < b * d; k++) expect(Math.abs(dq[k]! - o.dq[k]!)).toBeLessThanOrEqual(2e-4 * gmax + 1e-6);
        for (let k = 0; k < n * d; k++) expect(Math.abs(dDocs[k]! - o.dd[k]!)).toBeLessThanOrEqual(2e-4 * gmax + 1e-6);
      }),
      params(25),
    );
  });

  it('any split of the panels, combined in order, is bit-identical to one pass (several panels, with and without a head)', () => {
    for (const withHead of [false, true]) splitCase(withHead);
  });

  function splitCase(withHead: boolean): void {
    const a0 = makeArgs(11, 5, 2 * PANEL_DOCS + 1234, 7, 30);
    const rng = new Rng(12);
    const din = 6;
    const a: SoftmaxBlocksArgs = withHead
      ? {
          ...a0,
          docs: Float32Array.from({ length: a0.n * din }, () => rng.normal()),
          head: {
            w: Float32Array.from({ length: din * a0.d }, () => rng.normal()),
            bias: Float32Array.from({ length: a0.d }, () => rng.normal()),
            din,
            eps: 1e-12,
          },
        }
      : a0;
    const P = softmaxPanelCount(a.n);
    expect(P).toBe(3);
    const whole = LOCAL_BLOCK_RUNNER.softmaxForward(a);
    const coef = Float32Array.from({ length: a.b }, (_, i) => Math.fround(0.3 * (i + 1)));
    const back = LOCAL_BLOCK_RUNNER.softmaxBackward(a, whole.lse, coef);
    for (const split of [1, 2]) {
      const parts = [softmaxForwardPanels(a, 0, split), softmaxForwardPanels(a, split, P)];
      const c = combineSoftmaxPanels(a.b, parts);
      expect(bits(c.lse)).toBe(bits(whole.lse));
      expect(bits(c.targetScore)).toBe(bits(whole.targetScore));
      const dDocs = new Float32Array(a.n * (withHead ? din : a.d));
      const g0 = panelGrads(a, 0, split),
        g1 = panelGrads(a, split, P);
      softmaxBackwardPanels(a, whole.lse, coef, split, P, dDocs, g1); // the second half first: order of work is free
      softmaxBackwardPanels(a, whole.lse, coef, 0, split, dDocs, g0);
      const sums = combineSoftmaxGrads(a, [g0, g1], dDocs);
      expect(bits(sums.dq)).toBe(bits(back.dq));
      expect(bits(dDocs)).toBe(bits(back.dDocs));
      if (withHead) {
        expect(bits(sums.dw!)).toBe(bits(back.dw!));
        expect(bits(sums.db!)).toBe(bits(back.db!));
      }
    }
  }

  it('an excluded candidate gets no probability and no cotangent', () => {
    const a = makeArgs(5, 2, 50, 4, 0);
    const j = (a.targets[0]! + 1) % 50;
    const masked: SoftmaxBlocksArgs = { ...a, exclDoc: Int32Array.of(j), exclQuery: Int32Array.of(0) };
    const f = LOCAL_BLOCK_RUNNER.softmaxForward(masked);
    const { dDocs } = LOCAL_BLOCK_RUNNER.softmaxBackward(masked, f.lse, Float32Array.of(1, 0));
    for (let k = 0; k < a.d; k++) expect(dDocs[j * a.d + k]).toBe(0);
    expect(f.lse[0]).toBeLessThan(LOCAL_BLOCK_RUNNER.softmaxForward(a).lse[0]!);
  });
});

describe('ranking', () => {
  it('equals rankOfTarget on full score rows (ties against the target), for any split of the groups', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        fc.integer({ min: 1, max: 300 }),
        fc.integer({ min: 1, max: 2 * SCORE_BLOCK + 77 }),
        fc.integer({ min: 1, max: 9 }),
        fc.boolean(),
        (seed, m, n, d, twins) => {
          const rng = new Rng(seed);
          const q = unitRows(rng, m, d),
            D = unitRows(rng, n, d);
          if (twins) for (let j = 1; j < n; j += 3) D.copyWithin(j * d, (j - 1) * d, j * d); // exact ties
          const targets = Int32Array.from({ length: m }, () => rng.int(n));
          const scores = matmulNTWasm(q, D, m, n, d);
          const want = Int32Array.from({ length: m }, (_, i) =>
            rankOfTarget(scores.subarray(i * n, (i + 1) * n), targets[i]!),
          );
          expect(Array.from(LOCAL_BLOCK_RUNNER.rank(q, D, m, n, d, targets))).toEqual(Array.from(want));
          const groups = rankGroups(targets);
          const G = groups.starts.length - 1;
          const split = rng.int(G + 1);
          const ranks = new Int32Array(m).fill(-1);
          rankGroupsRange(q, D, m, n, d, targets, groups, split, G, ranks);
          rankGroupsRange(q, D, m, n, d, targets, groups, 0, split, ranks);
          expect(Array.from(ranks)).toEqual(Array.from(want));
        },
      ),
      params(25),
    );
  });

  it('a NaN score is a NonFiniteError', () => {
    const q = Float32Array.of(1, NaN),
      D = Float32Array.of(1, 0, 0, 1);
    expect(() => LOCAL_BLOCK_RUNNER.rank(q, D, 1, 2, 2, Int32Array.of(0))).toThrow(NonFiniteError);
  });
});
