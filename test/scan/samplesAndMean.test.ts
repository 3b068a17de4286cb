/**
 * The two extensions of the fused scan (contract.ts): S samples per query
 * (numSamples, keys) and the softmax mean of the cached embeddings
 * (softmaxMean), on the reference, the TS streaming scan, the wasm scan and
 * block-aligned partial splits. (The two-thread scan is checked in
 * test/node/parallelScan.test.ts.)
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { ArgumentError } from '../../src/errors.js';
import { Rng } from '../../src/tensor/random.js';
import {
  SCAN_BLOCK,
  categoricalUniformCount,
  combinePartials,
  fusedScanRangeTS,
  fusedScanReference,
  fusedScanTS,
  type FusedScanArgs,
  type FusedScanResult,
} from '../../src/scan/index.js';
import { fusedCacheScanWasm, fusedCacheScanWasmRange } from '../../src/scan/wasm.js';
import { initWasm } from '../../src/tensor/kernels/wasm/index.js';
import { params } from '../util/props.js';
import { baseScanArgs, scanSpecFields, scoreOf, type ScanProblemSpec, type SpecOptions } from './problems.js';

beforeAll(async () => {
  expect(await initWasm()).toBe(true);
});

interface Spec extends ScanProblemSpec {
  S: number;
  mean: boolean;
}

function makeArgs(s: Spec): FusedScanArgs {
  const rng = new Rng(s.seed);
  const args = baseScanArgs(s, rng);
  if (s.S !== 1 || rng.uniform() < 0.5) args.numSamples = s.S;
  if (s.sampler === 'gumbel') args.keys = Array.from({ length: s.S }, () => [rng.nextUint32(), rng.nextUint32()]);
  if (s.sampler === 'categorical')
    args.uniforms = new Float64Array(categoricalUniformCount(s.b, s.n, args.topKGroups, s.S)).map(() =>
      rng.uniformOpen(),
    );
  if (s.mean) args.softmaxMean = true;
  return args;
}

const specArb = (o: SpecOptions = {}): fc.Arbitrary<Spec> =>
  fc.record({
    ...scanSpecFields({ bMax: 7, nExtra: [fc.constant(512)], ...o }),
    S: fc.integer({ min: 1, max: 4 }),
    mean: fc.boolean(),
  });

/**
 * The softmax mean in float64 from the dense score matrix, and the weights
 * Σ_j π_ij |c_jp| the error bound scales with. Candidates: the
 * non-excluded rows, or with topKGroups the first argmax of each non-empty group.
 */
function denseMean(args: FusedScanArgs): { mu: Float64Array; absMass: Float64Array } {
  const { b, d, n } = args;
  const mu = new Float64Array(b * d),
    absMass = new Float64Array(b * d);
  const k = args.topKGroups ?? 0;
  for (let i = 0; i < b; i++) {
    let cand: number[] = [];
    const s = Array.from({ length: n }, (_, j) => scoreOf(args, i, j));
    if (k > 0) {
      const g = n / k;
      for (let q = 0; q < k; q++) {
        let best = -1;
        for (let j = q * g; j < (q + 1) * g; j++) if (s[j]! > -Infinity && (best < 0 || s[j]! > s[best]!)) best = j;
        if (best >= 0) cand.push(best);
      }
    } else cand = s.flatMap((v, j) => (v > -Infinity ? [j] : []));
    if (cand.length === 0) continue;
    const m = Math.max(...cand.map((j) => s[j]!));
    const w = cand.map((j) => Math.exp(s[j]! - m));
    const z = w.reduce((a, v) => a + v, 0);
    cand.forEach((j, c) => {
      for (let p = 0; p < d; p++) {
        mu[i * d + p] += (w[c]! / z) * args.cache[j * d + p]!;
        absMass[i * d + p] += (w[c]! / z) * Math.abs(args.cache[j * d + p]!);
      }
    });
  }
  return { mu, absMass };
}

/**
 * The stated softmax-mean tolerance (contract.ts): (SCAN_BLOCK + B + 16)·2^-23·Σπ|c|
 * plus 2·δ·Σπ|c| for a score error δ.
 */
function expectMean(got: Float32Array | undefined, args: FusedScanArgs, delta = 0, what = ''): void {
  const { mu, absMass } = denseMean(args);
  expect(got, what).toBeDefined();
  expect(got!.length).toBe(args.b * args.d);
  const B = Math.ceil(args.n / SCAN_BLOCK);
  const rel = (SCAN_BLOCK + B + 16) * 2 ** -23 + 2 * delta;
  for (let q = 0; q < mu.length; q++) {
    const err = Math.abs(got![q]! - mu[q]!);
    if (!(err <= rel * absMass[q]! + 1e-30))
      throw new Error(`${what} softmaxMean[${q}] = ${got![q]} vs ${mu[q]} (err ${err} > ${rel * absMass[q]!})`);
  }
}

/** A single-sample scan of the same problem with key keys[t] (gumbel). */
function singleKey(args: FusedScanArgs, t: number): FusedScanArgs {
  const { keys: _keys, numSamples: _s, softmaxMean: _m, ...rest } = args;
  return { ...rest, key: args.keys![t]! };
}

/** The categorical problem as b·S queries (query i repeated S times), one sample each, the same uniforms. */
function replicated(args: FusedScanArgs): FusedScanArgs {
  const S = args.numSamples ?? 1;
  const { b, d } = args;
  const queries = new Float32Array(b * S * d);
  for (let v = 0; v < b * S; v++)
    queries.set(args.queries.subarray(Math.floor(v / S) * d, (Math.floor(v / S) + 1) * d), v * d);
  const { numSamples: _s, softmaxMean: _m, ...rest } = args;
  const out: FusedScanArgs = { ...rest, queries, b: b * S };
  if (args.queryExcludeIds)
    out.queryExcludeIds = Int32Array.from({ length: b * S }, (_, v) => args.queryExcludeIds![Math.floor(v / S)]!);
  return out;
}

const arr = (x: ArrayLike<number> | undefined): number[] => Array.from(x ?? []);

describe('several samples per query', () => {
  it('integer embeddings: reference, TS and wasm draw the same S Gumbel samples; each draw equals a single-key scan', () => {
    fc.assert(
      fc.property(specArb({ integer: true }), (spec) => {
        const args = makeArgs({ ...spec, sampler: 'gumbel' });
        const S = spec.S;
        const r = fusedScanReference(args),
          t = fusedScanTS(args),
          w = fusedCacheScanWasm(args);
        for (const x of [r, t, w]) {
          expect(x.sample!.length).toBe(args.b * S);
          expect(x.sampleScore!.length).toBe(args.b * S);
        }
        expect(arr(t.sample)).toEqual(arr(r.sample));
        expect(arr(w.sample)).toEqual(arr(r.sample));
        expect(arr(w.sampleScore)).toEqual(arr(r.sampleScore));
        for (let m = 0; m < S; m++) {
          const one = fusedCacheScanWasm(singleKey(args, m));
          const oneT = fusedScanTS(singleKey(args, m));
          for (let i = 0; i < args.b; i++) {
            expect(w.sample![i * S + m]).toBe(one.sample![i]);
            expect(w.sampleScore![i * S + m]).toBe(one.sampleScore![i]);
            expect(t.sample![i * S + m]).toBe(oneT.sample![i]);
          }
          // the statistics do not depend on the samples or the mean
          expect(arr(w.max)).toEqual(arr(one.max));
          expect(arr(w.logSumExp)).toEqual(arr(one.logSumExp));
        }
      }),
      params(60),
    );
  });

  it('categorical: draw m of query i is the single-sample draw of "query i·S + m" (same uniforms), on every implementation', () => {
    fc.assert(
      fc.property(specArb(), (spec) => {
        const args = makeArgs({ ...spec, sampler: 'categorical' });
        const rep = replicated(args);
        for (const [name, scan] of [
          ['reference', fusedScanReference],
          ['TS', fusedScanTS],
          ['wasm', fusedCacheScanWasm],
        ] as const) {
          const many = scan(args),
            one = scan(rep);
          expect(arr(many.sample), name).toEqual(arr(one.sample));
          expect(arr(many.sampleScore), name).toEqual(arr(one.sampleScore));
          for (let i = 0; i < args.b; i++) {
            expect(many.max[i]).toBe(one.max[i * spec.S]);
            expect(many.logSumExp[i]).toBe(one.logSumExp[i * spec.S]);
          }
        }
      }),
      params(60),
    );
  });

  it('S = 1 with keys: [key] and softmaxMean leave every other output bit-identical', () => {
    fc.assert(
      fc.property(specArb(), (spec) => {
        const args = makeArgs({ ...spec, S: 1, mean: false });
        const base: FusedScanArgs = { ...args };
        delete base.numSamples;
        if (args.keys) {
          delete base.keys;
          base.key = args.keys[0]!;
        }
        const ext: FusedScanArgs = { ...args, numSamples: 1, softmaxMean: true };
        for (const scan of [fusedScanTS, fusedCacheScanWasm, fusedScanReference]) {
          const a = scan(base),
            e = scan(ext);
          expect(arr(e.max)).toEqual(arr(a.max));
          expect(arr(e.logSumExp)).toEqual(arr(a.logSumExp));
          expect(arr(e.sample)).toEqual(arr(a.sample));
          expect(arr(e.sampleScore)).toEqual(arr(a.sampleScore));
          expect(arr(e.groupMax)).toEqual(arr(a.groupMax));
          expect(a.softmaxMean).toBeUndefined();
          expect(e.softmaxMean!.length).toBe(args.b * args.d);
        }
      }),
      params(40),
    );
  });

  it('partials of any block-aligned split combine to the unsplit draws and mean (TS and wasm)', () => {
    fc.assert(
      fc.property(
        specArb({ nMin: 0, nMax: 1300 }),
        fc.array(fc.integer({ min: 0, max: 6 }), { maxLength: 4 }),
        (spec, cutBlocks) => {
          const args = makeArgs(spec);
          const n = args.n;
          const cuts = [...new Set(cutBlocks.map((c) => Math.min(n, c * SCAN_BLOCK)))].sort((a, b) => a - b);
          const bounds = [0, ...cuts.filter((c) => c > 0 && c < n), n];
          const ranges = bounds.slice(0, -1).map((s, q) => [s, bounds[q + 1]!] as const);
          for (const [impl, whole, part] of [
            ['TS', fusedScanTS(args), (s: number, e: number) => fusedScanRangeTS(args, s, e)],
            ['wasm', fusedCacheScanWasm(args), (s: number, e: number) => fusedCacheScanWasmRange(args, s, e)],
          ] as const) {
            const got = combinePartials(args, ranges.map(([s, e]) => part(s, e)).reverse());
            expect(arr(got.sample), `${impl} sample`).toEqual(arr(whole.sample));
            expect(arr(got.sampleScore)).toEqual(arr(whole.sampleScore));
            if (spec.mean) {
              expect(got.softmaxMean).toBeDefined();
              if (spec.integer) expectMean(got.softmaxMean, args, 0, `${impl} split`);
            } else expect(got.softmaxMean).toBeUndefined();
          }
        },
      ),
      params(60),
    );
  });

  it('validates numSamples, key / keys and the uniform count', () => {
    const args = makeArgs({
      b: 2,
      d: 3,
      n: 300,
      S: 2,
      seed: 1,
      sampler: 'gumbel',
      integer: true,
      pValid: 1,
      ids: false,
      topKIndex: -1,
      scale: 1,
      mean: false,
    });
    for (const bad of [
      { numSamples: 0 },
      { numSamples: 1.5 },
      { numSamples: 3 }, // 2 keys
      { keys: undefined, key: [1, 2] as [number, number] }, // key is for S = 1
      { key: [1, 2] as [number, number] }, // key and keys
      { keys: [[1, 2]] as [number, number][] },
      {
        keys: [
          [1, 2],
          [3, 2 ** 33],
        ] as [number, number][],
      },
      { softmaxMean: 1 as unknown as boolean },
    ]) {
      expect(() => fusedCacheScanWasm({ ...args, ...bad }), JSON.stringify(bad)).toThrow(ArgumentError);
      expect(() => fusedScanReference({ ...args, ...bad })).toThrow(ArgumentError);
    }
    const cat: FusedScanArgs = {
      ...args,
      sampler: 'categorical',
      keys: undefined,
      uniforms: new Float64Array(4 * 2 * 2 - 1).fill(0.5),
    };
    expect(() => fusedScanTS(cat)).toThrow(/at least 16 values/);
    expect(categoricalUniformCount(2, 300, undefined, 2)).toBe(16);
    expect(categoricalUniformCount(2, 300, 3, 2)).toBe(4);
    expect(categoricalUniformCount(2, 300)).toBe(8);
  });
});

describe('softmax mean', () => {
  it('integer embeddings (exact scores): within (SCAN_BLOCK + B + 16)·2^-23·Σπ|c| of the float64 dense mean, every implementation', () => {
    fc.assert(
      fc.property(specArb({ integer: true }), (spec) => {
        const args = makeArgs({ ...spec, mean: true });
        for (const [name, scan] of [
          ['reference', fusedScanReference],
          ['TS', fusedScanTS],
          ['wasm', fusedCacheScanWasm],
        ] as const)
          expectMean(scan(args).softmaxMean, args, 0, name);
      }),
      params(100),
    );
  });

  it('float embeddings: within the bound plus 2δ·Σπ|c|, δ the float32 dot-product error of the scores', () => {
    fc.assert(
      fc.property(specArb({ integer: false }), (spec) => {
        const args = makeArgs({ ...spec, mean: true });
        const delta = (args.d + 4) * 2 ** -23 * args.d * Math.abs(args.scale) + 2 ** -22;
        expectMean(fusedCacheScanWasm(args).softmaxMean, args, delta, 'wasm');
        expectMean(fusedScanTS(args).softmaxMean, args, delta, 'TS');
      }),
      params(60),
    );
  });

  it('larger shapes: b = 130 (two query chunks), d = 33, n = 1000 (ragged last block), masks; and a query with no candidate gets zeros', () => {
    const spec: Spec = {
      b: 130,
      d: 33,
      n: 1000,
      S: 3,
      seed: 9,
      sampler: 'gumbel',
      integer: true,
      pValid: 0.9,
      ids: true,
      topKIndex: -1,
      scale: 0.3,
      mean: true,
    };
    const args = makeArgs(spec);
    args.queryExcludeIds![7] = 123456; // (ids are < n/3: excludes nothing)
    const w = fusedCacheScanWasm(args);
    expectMean(w.softmaxMean, args, 0, 'wasm');
    expectMean(fusedScanTS(args).softmaxMean, args, 0, 'TS');
    const none: FusedScanArgs = { ...args, rowValid: new Uint8Array(args.n) };
    for (const scan of [fusedCacheScanWasm, fusedScanTS, fusedScanReference]) {
      const r = scan(none);
      expect(r.softmaxMean!.every((v) => v === 0)).toBe(true);
      expect(arr(r.sample).every((j) => j === -1)).toBe(true);
    }
  });
});

// ---------------------------------------------------------------------------
// Distribution of the draws

/**
 * The chi-square upper-tail critical value at probability p (Wilson–Hilferty;
 * relative error < 1% for df >= 20): reject when chi2 exceeds it.
 */
function chiCritical(df: number, z: number): number {
  const a = 2 / (9 * df);
  return df * (1 - a + z * Math.sqrt(a)) ** 3;
}
/** z for an upper-tail probability of 1e-4 (each test below fails by chance with p = 1e-4 at its fixed seed). */
const Z_1E4 = 3.719;

/** Pearson chi-square with bins of consecutive categories merged until each expects >= 40 counts. */
function chiSquare(counts: ArrayLike<number>, probs: ArrayLike<number>, total: number): [number, number] {
  let chi = 0,
    df = -1,
    o = 0,
    e = 0;
  for (let j = 0; j < probs.length; j++) {
    if (probs[j] === 0) {
      expect(counts[j]).toBe(0);
      continue;
    }
    o += counts[j]!;
    e += probs[j]! * total;
    if (e >= 40) {
      chi += (o - e) ** 2 / e;
      df++;
      o = e = 0;
    }
  }
  if (e > 0) {
    chi += (o - e) ** 2 / e;
    df++;
  }
  return [chi, df];
}

describe('distribution of the S draws (seeded chi-square, each test p = 1e-4)', () => {
  // many identical queries, each with its own noise / uniforms: one call gives b·S draws
  const B = 3000,
    N = 700,
    D = 2,
    S = 3;
  const rng = new Rng(4242);
  const q = new Float32Array(B * D);
  for (let i = 0; i < B; i++) q.set([0.8, -0.6], i * D);
  const cache = new Float32Array(N * D).map(() => rng.uniform() * 2 - 1);
  const rowValid = new Uint8Array(N).map((_, j) => (j % 41 === 3 ? 0 : 1));
  const scale = 1.7;
  const probs = (() => {
    const s = Array.from({ length: N }, (_, j) => {
      if (!rowValid[j]) return -Infinity;
      const dot = Math.fround(0.8) * cache[2 * j]! + Math.fround(-0.6) * cache[2 * j + 1]!;
      return Math.fround(Math.fround(scale) * Math.fround(dot));
    });
    const m = Math.max(...s);
    const w = s.map((v) => Math.exp(v - m));
    const z = w.reduce((a, v) => a + v, 0);
    return Float64Array.from(w, (v) => v / z);
  })();

  const draw = (sampler: 'gumbel' | 'categorical', scan: (a: FusedScanArgs) => FusedScanResult, r: Rng): Int32Array => {
    const args: FusedScanArgs = { queries: q, b: B, d: D, cache, n: N, scale, rowValid, sampler, numSamples: S };
    if (sampler === 'gumbel') args.keys = Array.from({ length: S }, () => [r.nextUint32(), r.nextUint32()]);
    else args.uniforms = new Float64Array(categoricalUniformCount(B, N, undefined, S)).map(() => r.uniformOpen());
    return scan(args).sample!;
  };

  for (const sampler of ['gumbel', 'categorical'] as const) {
    for (const [impl, scan, calls] of [
      ['wasm', fusedCacheScanWasm, 8],
      ['TS streaming', fusedScanTS, 2],
    ] as const) {
      it(`${sampler}, ${impl}: each of the ${S} draws is distributed as the softmax, and draws 0 and 1 are independent`, () => {
        const r = new Rng(sampler === 'gumbel' ? 17 : 18);
        const counts = Array.from({ length: S }, () => new Float64Array(N));
        // independence: rows cut into 8 bins of about equal probability, (bin of draw 0, bin of draw 1) pairs
        const binOf = new Int32Array(N);
        const binP = new Float64Array(8);
        let cum = 0;
        for (let j = 0; j < N; j++) {
          binOf[j] = Math.min(7, Math.floor(cum * 8));
          cum += probs[j]!;
          binP[binOf[j]!] += probs[j]!;
        }
        const pairs = new Float64Array(64);
        for (let c = 0; c < calls; c++) {
          const s = draw(sampler, scan, r);
          for (let i = 0; i < B; i++) {
            for (let m = 0; m < S; m++) counts[m]![s[i * S + m]!]!++;
            pairs[binOf[s[i * S]!]! * 8 + binOf[s[i * S + 1]!]!]!++;
          }
        }
        const total = calls * B;
        for (let m = 0; m < S; m++) {
          const [chi, df] = chiSquare(counts[m]!, probs, total);
          expect(df).toBeGreaterThan(calls >= 8 ? 200 : 100);
          expect(chi, `draw ${m}: chi2 ${chi.toFixed(1)} on ${df} df`).toBeLessThan(chiCritical(df, Z_1E4));
        }
        const pairP = Float64Array.from({ length: 64 }, (_, x) => binP[Math.floor(x / 8)]! * binP[x % 8]!);
        const [chi, df] = chiSquare(pairs, pairP, total);
        expect(df).toBeGreaterThanOrEqual(60);
        expect(chi, `pairs: chi2 ${chi.toFixed(1)} on ${df} df`).toBeLessThan(chiCritical(df, Z_1E4));
        // and the draws are not copies of each other
        let same = 0;
        for (let i = 0; i < counts[0]!.length; i++) same += Math.min(counts[0]![i]!, counts[1]![i]!);
        expect(same).toBeGreaterThan(0);
      });
    }
  }

  it('the pair test can fail: S copies of one draw (the same key twice) are rejected', () => {
    const r = new Rng(5);
    const key: [number, number] = [r.nextUint32(), r.nextUint32()];
    const args: FusedScanArgs = {
      queries: q,
      b: B,
      d: D,
      cache,
      n: N,
      scale,
      rowValid,
      sampler: 'gumbel',
      numSamples: 2,
      keys: [key, key],
    };
    const s = fusedCacheScanWasm(args).sample!;
    const binOf = (j: number): number => Math.min(7, Math.floor(j / (N / 8)));
    const pairs = new Float64Array(64);
    const bin = new Float64Array(8);
    for (let i = 0; i < B; i++) {
      pairs[binOf(s[2 * i]!) * 8 + binOf(s[2 * i + 1]!)]!++;
      bin[binOf(s[2 * i]!)]!++;
    }
    const pairP = Float64Array.from({ length: 64 }, (_, x) => (bin[Math.floor(x / 8)]! / B) * (bin[x % 8]! / B));
    const [chi, df] = chiSquare(pairs, pairP, B);
    expect(chi).toBeGreaterThan(chiCritical(df, Z_1E4));
  });
});
