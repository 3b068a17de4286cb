import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { ArgumentError, DTypeError, ShapeError } from '../../src/errors.js';
import { Rng } from '../../src/tensor/random.js';
import {
  SCAN_BLOCK,
  categoricalUniformCount,
  combinePartials,
  fusedScanRangeTS,
  fusedScanReference,
  fusedScanTS,
  splitScanRows,
  type FusedScanArgs,
  type FusedScanResult,
  type ScanSampler,
} from '../../src/scan/index.js';
import { initWasm, isResident, releaseResident } from '../../src/tensor/kernels/wasm/index.js';
import { fusedCacheScan, fusedCacheScanWasm, fusedCacheScanWasmRange } from '../../src/scan/wasm.js';
import { params } from '../util/props.js';
import { baseScanArgs, scanSpecFields, scoreOf, type ScanProblemSpec, type SpecOptions } from './problems.js';

beforeAll(async () => {
  expect(await initWasm()).toBe(true);
});

type ProblemSpec = ScanProblemSpec;

function makeArgs(s: ProblemSpec): FusedScanArgs {
  const rng = new Rng(s.seed);
  const args = baseScanArgs(s, rng);
  args.key = [rng.nextUint32(), rng.nextUint32()];
  args.uniforms = new Float64Array(categoricalUniformCount(s.b, s.n, args.topKGroups)).map(() => rng.uniformOpen());
  return args;
}

const specArb = (opts: SpecOptions = {}): fc.Arbitrary<ProblemSpec> => fc.record(scanSpecFields(opts));

function expectLse(got: Float64Array, want: Float64Array, tol: number): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    if (want[i] === -Infinity) expect(got[i]).toBe(-Infinity);
    else if (Math.abs(got[i]! - want[i]!) > tol * (1 + Math.abs(want[i]!)))
      throw new Error(`logSumExp[${i}] = ${got[i]} vs ${want[i]}`);
  }
}

/** Structural checks every result must pass; `exact` when scores are exact in any summation order (integer embeddings). */
function expectValid(args: FusedScanArgs, r: FusedScanResult, exact: boolean): void {
  const { b } = args;
  expect(r.max.length).toBe(b);
  expect(r.logSumExp.length).toBe(b);
  if (args.sampler === 'none') expect(r.sample).toBeUndefined();
  for (let i = 0; i < b; i++) {
    if (r.max[i] === -Infinity) expect(r.logSumExp[i]).toBe(-Infinity);
    else expect(r.logSumExp[i]).toBeGreaterThanOrEqual(r.max[i]! - 1e-5);
    if (args.sampler !== 'none') {
      const j = r.sample![i]!;
      if (r.max[i] === -Infinity) {
        expect(j).toBe(-1);
        expect(r.sampleScore![i]).toBe(-Infinity);
      } else {
        expect(j).toBeGreaterThanOrEqual(0);
        const s = scoreOf(args, i, j);
        expect(s).not.toBe(-Infinity); // an excluded row is never sampled
        if (exact) expect(r.sampleScore![i]).toBe(s);
      }
    }
  }
}

describe('fused cache scan: reference vs TS streaming vs wasm', () => {
  it('integer embeddings: max, group maxima and Gumbel samples are IDENTICAL; logSumExp within tolerance', () => {
    let catTotal = 0,
      catAgree = 0;
    fc.assert(
      fc.property(specArb({ integer: true }), (spec) => {
        const args = makeArgs(spec);
        const r = fusedScanReference(args),
          t = fusedScanTS(args),
          w = fusedCacheScanWasm(args);
        for (const x of [r, t, w]) expectValid(args, x, true);
        expect(Array.from(t.max)).toEqual(Array.from(r.max));
        expect(Array.from(w.max)).toEqual(Array.from(r.max));
        expectLse(t.logSumExp, r.logSumExp, 1e-12);
        expectLse(w.logSumExp, r.logSumExp, 1e-5);
        if (args.topKGroups !== undefined) {
          expect(Array.from(t.groupMax!)).toEqual(Array.from(r.groupMax!));
          expect(Array.from(w.groupMax!)).toEqual(Array.from(r.groupMax!));
          expect(Array.from(t.groupArg!)).toEqual(Array.from(r.groupArg!));
          expect(Array.from(w.groupArg!)).toEqual(Array.from(r.groupArg!));
        } else {
          expect(t.groupMax).toBeUndefined();
        }
        if (args.sampler === 'gumbel') {
          expect(Array.from(t.sample!)).toEqual(Array.from(r.sample!));
          expect(Array.from(w.sample!)).toEqual(Array.from(r.sample!));
          expect(Array.from(w.sampleScore!)).toEqual(Array.from(r.sampleScore!));
        }
        if (args.sampler === 'categorical') {
          // same uniforms, same rule; the TS scan's float64 statistics reproduce the reference,
          // the wasm scan's float32 block sums may move a draw sitting within ~1e-7 of a CDF step
          expect(Array.from(t.sample!)).toEqual(Array.from(r.sample!));
          for (let i = 0; i < args.b; i++) {
            catTotal++;
            if (w.sample![i] === r.sample![i]) catAgree++;
          }
        }
      }),
      params(150),
    );
    expect(catAgree).toBeGreaterThanOrEqual(catTotal - Math.max(1, Math.floor(catTotal / 100)));
  });

  it('float embeddings: wasm max within the float32 dot-product bound, logSumExp within 1e-5; samples valid', () => {
    fc.assert(
      fc.property(specArb({ integer: false }), (spec) => {
        const args = makeArgs(spec);
        const r = fusedScanReference(args),
          w = fusedCacheScanWasm(args),
          t = fusedScanTS(args);
        expectValid(args, w, false);
        expectValid(args, t, false);
        const bound = (args.d + 4) * 2 ** -23 * args.d * Math.abs(args.scale) + 1e-7;
        for (let i = 0; i < args.b; i++) {
          if (r.max[i] === -Infinity) expect(w.max[i]).toBe(-Infinity);
          else expect(Math.abs(w.max[i]! - r.max[i]!)).toBeLessThanOrEqual(bound);
        }
        expectLse(w.logSumExp, r.logSumExp, 1e-5 + bound);
      }),
      params(100),
    );
  });

  it('crosses the query chunk and block sizes: b = 130, n = 1000, d = 33', () => {
    const args = makeArgs({
      b: 130,
      d: 33,
      n: 1000,
      seed: 5,
      sampler: 'gumbel',
      integer: true,
      pValid: 0.9,
      ids: true,
      topKIndex: -1,
      scale: 0.5,
    });
    const r = fusedScanReference(args),
      w = fusedCacheScanWasm(args),
      t = fusedScanTS(args);
    expect(Array.from(w.sample!)).toEqual(Array.from(r.sample!));
    expect(Array.from(t.sample!)).toEqual(Array.from(r.sample!));
    expect(Array.from(w.max)).toEqual(Array.from(r.max));
    expectLse(w.logSumExp, r.logSumExp, 1e-5);
    // the resident-cache path gives the same bits
    const wr = fusedCacheScanWasm(args, { residentCache: true });
    expect(isResident(args.cache)).toBe(true);
    expect(Array.from(wr.sample!)).toEqual(Array.from(w.sample!));
    expect(Array.from(wr.logSumExp)).toEqual(Array.from(w.logSumExp));
    releaseResident(args.cache);
    // the dispatcher picks wasm here
    expect(Array.from(fusedCacheScan(args).logSumExp)).toEqual(Array.from(w.logSumExp));
  });
});

describe('exclusions', () => {
  it('logSumExp and max equal those of the cache with the excluded rows removed', () => {
    fc.assert(
      fc.property(specArb({ integer: false }), (spec) => {
        const args = makeArgs({ ...spec, sampler: 'none', topKIndex: -1 });
        const w = fusedCacheScanWasm(args),
          t = fusedScanTS(args);
        for (let i = 0; i < args.b; i++) {
          const keep: number[] = [];
          for (let j = 0; j < args.n; j++) {
            if (args.rowValid && args.rowValid[j] === 0) continue;
            if (args.rowIds && args.rowIds[j] === args.queryExcludeIds![i]) continue;
            keep.push(j);
          }
          const cache = new Float32Array(keep.length * args.d);
          keep.forEach((j, q) => cache.set(args.cache.subarray(j * args.d, (j + 1) * args.d), q * args.d));
          const single = fusedScanReference({
            queries: args.queries.slice(i * args.d, (i + 1) * args.d),
            b: 1,
            d: args.d,
            cache,
            n: keep.length,
            scale: args.scale,
            sampler: 'none',
          });
          expect(t.max[i]).toBe(single.max[0]);
          if (single.max[0] === -Infinity) {
            expect(w.logSumExp[i]).toBe(-Infinity);
            expect(t.logSumExp[i]).toBe(-Infinity);
          } else {
            expect(Math.abs(t.logSumExp[i]! - single.logSumExp[0]!)).toBeLessThan(1e-9);
            expect(Math.abs(w.logSumExp[i]! - single.logSumExp[0]!)).toBeLessThan(2e-5);
          }
        }
      }),
      params(60),
    );
  });

  it('all rows excluded: -Infinity statistics, sample -1, empty groups', () => {
    for (const sampler of ['gumbel', 'categorical', 'none'] as const) {
      for (const topKIndex of [-1, 2]) {
        const args = makeArgs({
          b: 3,
          d: 4,
          n: 300,
          seed: 1,
          sampler,
          integer: true,
          pValid: 0,
          ids: false,
          topKIndex,
          scale: 1,
        });
        for (const r of [fusedScanReference(args), fusedScanTS(args), fusedCacheScanWasm(args)]) {
          expect(Array.from(r.max)).toEqual([-Infinity, -Infinity, -Infinity]);
          expect(Array.from(r.logSumExp)).toEqual([-Infinity, -Infinity, -Infinity]);
          if (sampler !== 'none') {
            expect(Array.from(r.sample!)).toEqual([-1, -1, -1]);
            expect(Array.from(r.sampleScore!)).toEqual([-Infinity, -Infinity, -Infinity]);
          }
          if (topKIndex >= 0) {
            expect(r.groupMax!.every((v) => v === -Infinity)).toBe(true);
            expect(r.groupArg!.every((v) => v === -1)).toBe(true);
          }
        }
      }
    }
    // one query whose excluded id is on every row; the others see all rows
    const args = makeArgs({
      b: 3,
      d: 4,
      n: 300,
      seed: 2,
      sampler: 'gumbel',
      integer: true,
      pValid: 1,
      ids: false,
      topKIndex: -1,
      scale: 1,
    });
    args.rowIds = new Int32Array(300).fill(7);
    args.queryExcludeIds = Int32Array.of(1, 7, 2);
    for (const r of [fusedScanReference(args), fusedScanTS(args), fusedCacheScanWasm(args)]) {
      expect(r.sample![1]).toBe(-1);
      expect(r.max[1]).toBe(-Infinity);
      expect(r.sample![0]).toBeGreaterThanOrEqual(0);
      expect(r.sample![2]).toBeGreaterThanOrEqual(0);
    }
  });

  it('empty shapes: b = 0, n = 0, d = 0', () => {
    const e = fusedCacheScanWasm({
      queries: new Float32Array(0),
      b: 0,
      d: 3,
      cache: new Float32Array(6),
      n: 2,
      scale: 1,
      sampler: 'gumbel',
      key: [1, 2],
    });
    expect(e.max.length).toBe(0);
    expect(e.sample!.length).toBe(0);
    const z = fusedCacheScanWasm({
      queries: new Float32Array(6),
      b: 2,
      d: 3,
      cache: new Float32Array(0),
      n: 0,
      scale: 1,
      sampler: 'categorical',
      uniforms: new Float64Array(0),
    });
    expect(Array.from(z.max)).toEqual([-Infinity, -Infinity]);
    expect(Array.from(z.sample!)).toEqual([-1, -1]);
    // d = 0: every score is 0, logSumExp = log n
    const d0 = fusedCacheScanWasm({
      queries: new Float32Array(0),
      b: 2,
      d: 0,
      cache: new Float32Array(0),
      n: 5,
      scale: 3,
      sampler: 'none',
    });
    expect(Array.from(d0.max)).toEqual([0, 0]);
    expect(Math.abs(d0.logSumExp[0]! - Math.log(5))).toBeLessThan(1e-6);
  });
});

describe('row ranges and combinePartials', () => {
  it('combining the partials of any block-aligned split equals the unsplit result (TS and wasm)', () => {
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
            // partials in reverse order: the merge does not depend on the order
            const parts = ranges.map(([s, e]) => part(s, e)).reverse();
            const got = combinePartials(args, parts);
            expect(Array.from(got.max), `${impl} max`).toEqual(Array.from(whole.max));
            expectLse(got.logSumExp, whole.logSumExp, 1e-12);
            if (whole.sample) {
              expect(Array.from(got.sample!), `${impl} sample`).toEqual(Array.from(whole.sample));
              expect(Array.from(got.sampleScore!)).toEqual(Array.from(whole.sampleScore!));
            }
            if (whole.groupMax) {
              expect(Array.from(got.groupMax!)).toEqual(Array.from(whole.groupMax));
              expect(Array.from(got.groupArg!)).toEqual(Array.from(whole.groupArg!));
            }
          }
        },
      ),
      params(80),
    );
  });

  it('partials from different implementations combine (integer embeddings: same Gumbel sample)', () => {
    const args = makeArgs({
      b: 5,
      d: 6,
      n: 900,
      seed: 8,
      sampler: 'gumbel',
      integer: true,
      pValid: 0.7,
      ids: true,
      topKIndex: -1,
      scale: 0.5,
    });
    const mixed = combinePartials(args, [fusedScanRangeTS(args, 0, 512), fusedCacheScanWasmRange(args, 512, 900)]);
    expect(Array.from(mixed.sample!)).toEqual(Array.from(fusedScanReference(args).sample!));
  });

  it('splitScanRows gives contiguous block-aligned ranges covering [0, n) that combine to the whole', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 5000 }), fc.integer({ min: 1, max: 8 }), (n, parts) => {
        const r = splitScanRows(n, parts);
        expect(r.length).toBeGreaterThanOrEqual(1);
        expect(r.length).toBeLessThanOrEqual(parts);
        expect(r[0]![0]).toBe(0);
        expect(r[r.length - 1]![1]).toBe(n);
        for (let q = 0; q < r.length; q++) {
          if (q > 0) expect(r[q]![0]).toBe(r[q - 1]![1]);
          expect(r[q]![0] % SCAN_BLOCK).toBe(0);
          if (n > 0) expect(r[q]![1]).toBeGreaterThan(r[q]![0]);
        }
      }),
      params(200),
    );
    const args = makeArgs({
      b: 4,
      d: 5,
      n: 1500,
      seed: 3,
      sampler: 'categorical',
      integer: false,
      pValid: 0.9,
      ids: true,
      topKIndex: -1,
      scale: 3,
    });
    const parts = splitScanRows(args.n, 2).map(([s, e]) => fusedCacheScanWasmRange(args, s, e));
    expect(Array.from(combinePartials(args, parts).sample!)).toEqual(Array.from(fusedCacheScanWasm(args).sample!));
  });

  it('rejects ranges that split a block', () => {
    const args = makeArgs({
      b: 2,
      d: 3,
      n: 600,
      seed: 1,
      sampler: 'none',
      integer: true,
      pValid: 1,
      ids: false,
      topKIndex: -1,
      scale: 1,
    });
    expect(() => fusedScanRangeTS(args, 100, 600)).toThrow(ArgumentError);
    expect(() => fusedCacheScanWasmRange(args, 0, 300)).toThrow(ArgumentError);
    expect(() => fusedCacheScanWasmRange(args, 512, 256)).toThrow(ArgumentError);
    expect(() => combinePartials(args, [])).toThrow(ArgumentError);
    expect(fusedCacheScanWasmRange(args, 512, 600).rowEnd).toBe(600);
  });
});

/**
 * Chi-square of sampled rows against exact probabilities, bins of consecutive
 * candidates merged until each expects >= 40 draws; returns [chi2, df].
 */
function chiSquare(counts: Float64Array, probs: Float64Array, draws: number): [number, number] {
  let chi = 0,
    df = -1,
    binObs = 0,
    binExp = 0;
  for (let j = 0; j < probs.length; j++) {
    if (probs[j] === 0) {
      expect(counts[j]).toBe(0); // excluded rows are never drawn
      continue;
    }
    binObs += counts[j]!;
    binExp += probs[j]! * draws;
    if (binExp >= 40) {
      chi += (binObs - binExp) ** 2 / binExp;
      df++;
      binObs = 0;
      binExp = 0;
    }
  }
  if (binExp > 0) {
    chi += (binObs - binExp) ** 2 / binExp;
    df++;
  }
  return [chi, df];
}

describe('sampling distribution (chi-square against the exact softmax at a fixed seed)', () => {
  // many identical queries: each gets its own uniforms / noise, so one call gives b independent draws
  const B = 4000,
    N = 700,
    D = 2;
  const rng = new Rng(2024);
  const q = new Float32Array(B * D);
  for (let i = 0; i < B; i++) q.set([0.8, -0.6], i * D);
  const cache = new Float32Array(N * D).map(() => rng.uniform() * 2 - 1);
  const rowValid = new Uint8Array(N).map((_, j) => (j % 37 === 5 ? 0 : 1));
  const scale = 1.7;
  const baseArgs = { queries: q, b: B, d: D, cache, n: N, scale, rowValid };

  function exactProbs(topK?: number): { probs: Float64Array; index: (j: number) => number } {
    // the scores as the contract defines them (float32 query values, float32 rounding)
    const s = new Float64Array(N).fill(-Infinity);
    for (let j = 0; j < N; j++) {
      if (!rowValid[j]) continue;
      const dot = Math.fround(0.8) * cache[2 * j]! + Math.fround(-0.6) * cache[2 * j + 1]!;
      s[j] = Math.fround(Math.fround(scale) * Math.fround(dot));
    }
    if (topK === undefined) {
      const m = Math.max(...s);
      const p = s.map((v) => Math.exp(v - m));
      const z = p.reduce((a, v) => a + v, 0);
      return { probs: p.map((v) => v / z), index: (j) => j };
    }
    const gs = N / topK;
    const gm = new Float64Array(topK).fill(-Infinity);
    for (let j = 0; j < N; j++) gm[Math.floor(j / gs)] = Math.max(gm[Math.floor(j / gs)]!, s[j]!);
    const m = Math.max(...gm);
    const p = gm.map((v) => Math.exp(v - m));
    const z = p.reduce((a, v) => a + v, 0);
    return { probs: p.map((v) => v / z), index: (j) => Math.floor(j / gs) };
  }

  for (const sampler of ['categorical', 'gumbel'] as const) {
    for (const topK of [undefined, 35]) {
      for (const [impl, scan, calls] of [
        ['wasm', fusedCacheScanWasm, 10],
        ['TS streaming', fusedScanTS, 3],
        ['reference', fusedScanReference, 2],
      ] as const) {
        it(`${sampler}${topK ? ` over ${topK} group maxima` : ''}, ${impl}`, () => {
          const { probs, index } = exactProbs(topK);
          const counts = new Float64Array(probs.length);
          const r = new Rng(77);
          const total = calls;
          for (let c = 0; c < total; c++) {
            const args: FusedScanArgs = {
              ...baseArgs,
              sampler,
              topKGroups: topK,
              key: [r.nextUint32(), r.nextUint32()],
              uniforms:
                sampler === 'categorical'
                  ? new Float64Array(categoricalUniformCount(B, N, topK)).map(() => r.uniformOpen())
                  : undefined,
            };
            const res = scan(args);
            for (let i = 0; i < B; i++) counts[index(res.sample![i]!)]!++;
          }
          const [chi, df] = chiSquare(counts, probs, total * B);
          expect(df).toBeGreaterThan(topK ? 20 : 100);
          expect(chi).toBeLessThan(df + 5 * Math.sqrt(2 * df));
        });
      }
    }
  }
});

describe('argument validation', () => {
  const ok = (): FusedScanArgs =>
    makeArgs({
      b: 2,
      d: 3,
      n: 10,
      seed: 1,
      sampler: 'gumbel',
      integer: true,
      pValid: 1,
      ids: true,
      topKIndex: -1,
      scale: 1,
    });
  it('rejects bad shapes, types and options before scanning', () => {
    for (const scan of [fusedScanReference, fusedScanTS, (a: FusedScanArgs) => fusedCacheScanWasm(a)]) {
      expect(() => scan({ ...ok(), queries: new Float32Array(5) })).toThrow(ShapeError);
      expect(() => scan({ ...ok(), cache: new Float32Array(29) })).toThrow(ShapeError);
      expect(() => scan({ ...ok(), queries: new Float64Array(6) as unknown as Float32Array })).toThrow(DTypeError);
      expect(() => scan({ ...ok(), rowValid: new Uint8Array(9) })).toThrow(ShapeError);
      expect(() => scan({ ...ok(), queryExcludeIds: undefined })).toThrow(ArgumentError);
      expect(() => scan({ ...ok(), sampler: 'max' as ScanSampler })).toThrow(ArgumentError);
      expect(() => scan({ ...ok(), key: undefined })).toThrow(ArgumentError);
      expect(() => scan({ ...ok(), key: [1.5, 2] })).toThrow(ArgumentError);
      expect(() => scan({ ...ok(), sampler: 'categorical', uniforms: new Float64Array(3) })).toThrow(ArgumentError);
      expect(() => scan({ ...ok(), topKGroups: 3 })).toThrow(ArgumentError);
      expect(() => scan({ ...ok(), scale: NaN })).toThrow(ArgumentError);
      expect(() => scan({ ...ok(), b: -1 })).toThrow(ArgumentError);
    }
  });
  it('counts uniforms: 2 per query per block, or 1 per query with topKGroups', () => {
    expect(categoricalUniformCount(3, 1000)).toBe(3 * 2 * 4);
    expect(categoricalUniformCount(3, 1000, 10)).toBe(3);
    expect(categoricalUniformCount(3, 0)).toBe(0);
  });
});
