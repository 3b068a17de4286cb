/**
 * Random fused-scan problems shared by the scan tests (fusedScan.test.ts,
 * samplesAndMean.test.ts): the spec arbitrary, the arguments it describes
 * (queries, cache, validity, ids, top-k groups) and the contract's score.
 */
import fc from 'fast-check';
import type { Rng } from '../../src/tensor/random.js';
import type { FusedScanArgs, ScanSampler } from '../../src/scan/index.js';

export interface ScanProblemSpec {
  b: number;
  d: number;
  n: number;
  seed: number;
  sampler: ScanSampler;
  integer: boolean;
  pValid: number; // probability a row is valid (1 = no rowValid)
  ids: boolean;
  /** ids drawn from [0, idRange) (absent or 0: from [0, n/3)); small ranges exclude many rows per query. */
  idRange?: number;
  topKIndex: number; // -1 = none, else picks a divisor of n
  scale: number;
}

export interface SpecOptions {
  integer?: boolean;
  nMin?: number;
  nMax?: number;
  /** Largest batch (default 9). */
  bMax?: number;
  /** Extra cache sizes to mix into the default range. */
  nExtra?: fc.Arbitrary<number>[];
}

/** The fields of a ScanProblemSpec. */
export const scanSpecFields = (
  o: SpecOptions = {},
): { [K in keyof ScanProblemSpec]: fc.Arbitrary<ScanProblemSpec[K]> } => ({
  b: fc.integer({ min: 0, max: o.bMax ?? 9 }),
  d: fc.integer({ min: 0, max: 9 }),
  n:
    o.nMin !== undefined
      ? fc.integer({ min: o.nMin, max: o.nMax! })
      : fc.oneof(fc.integer({ min: 0, max: 20 }), fc.integer({ min: 200, max: 800 }), ...(o.nExtra ?? [])),
  seed: fc.integer({ min: 0, max: 1e9 }),
  sampler: fc.constantFrom<ScanSampler>('none', 'gumbel', 'categorical'),
  integer: o.integer === undefined ? fc.boolean() : fc.constant(o.integer),
  pValid: fc.constantFrom(1, 0.8, 0.3, 0),
  ids: fc.boolean(),
  topKIndex: fc.integer({ min: -3, max: 6 }),
  scale: fc.constantFrom(1, 0.5, 0.3, 2, -1),
});

export function divisors(n: number): number[] {
  const out: number[] = [];
  for (let k = 1; k <= n; k++) if (n % k === 0) out.push(k);
  return out;
}

/** The problem's queries, cache, validity, ids and top-k groups, drawn from `rng` (no sampler inputs). */
export function baseScanArgs(s: ScanProblemSpec, rng: Rng): FusedScanArgs {
  const val = (): number => (s.integer ? rng.int(7) - 3 : rng.uniform() * 2 - 1);
  const queries = new Float32Array(s.b * s.d).map(val);
  const cache = new Float32Array(s.n * s.d).map(val);
  const args: FusedScanArgs = { queries, b: s.b, d: s.d, cache, n: s.n, scale: s.scale, sampler: s.sampler };
  if (s.pValid < 1) args.rowValid = new Uint8Array(s.n).map(() => (rng.uniform() < s.pValid ? 1 : 0));
  if (s.ids) {
    const range = s.idRange ? s.idRange : Math.max(2, Math.floor(s.n / 3));
    args.rowIds = new Int32Array(s.n).map(() => rng.int(range));
    args.queryExcludeIds = new Int32Array(s.b).map(() => rng.int(range));
  }
  if (s.topKIndex >= 0 && s.n > 0) {
    const ds = divisors(s.n);
    args.topKGroups = ds[s.topKIndex % ds.length]!;
  }
  return args;
}

/** score(i, j) as the contract defines it (float64 dot rounded to float32), -Infinity if excluded. */
export function scoreOf(args: FusedScanArgs, i: number, j: number): number {
  if (args.rowValid && args.rowValid[j] === 0) return -Infinity;
  if (args.rowIds && args.rowIds[j] === args.queryExcludeIds![i]) return -Infinity;
  let dot = 0;
  for (let p = 0; p < args.d; p++) dot += args.queries[i * args.d + p]! * args.cache[j * args.d + p]!;
  return Math.fround(Math.fround(args.scale) * Math.fround(dot));
}
