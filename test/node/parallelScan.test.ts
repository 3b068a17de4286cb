import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArgumentError, ShapeError } from '../../src/errors.js';
import type { NegativeCache } from '../../src/cache/negativeCache.js';
import { CacheClassificationLoss } from '../../src/losses/cacheClassificationLoss.js';
import {
  createParallelScan,
  DEFAULT_MIN_ROWS,
  DEFAULT_MIN_WORK,
  ParallelScanError,
  type ParallelScan,
} from '../../src/node/parallelScan.js';
import { matmul } from '../../src/ops/index.js';
import {
  SCAN_BLOCK,
  categoricalUniformCount,
  type FusedScanArgs,
  type FusedScanResult,
  type ScanSampler,
} from '../../src/scan/index.js';
import { initWasm } from '../../src/tensor/kernels/wasm/index.js';
import { fusedCacheScan } from '../../src/scan/wasm.js';
import { Rng } from '../../src/tensor/random.js';
import { tensor } from '../../src/tensor/create.js';
import { unsafeData } from '../../src/tensor/tensor.js';
import { ROOT, ensureBuilt } from '../util/build.js';
import { params } from '../util/props.js';
import { baseScanArgs, type ScanProblemSpec } from '../scan/problems.js';

const open: ParallelScan[] = [];
function scanner(opts: Parameters<typeof createParallelScan>[0] = {}): ParallelScan {
  const p = createParallelScan(opts);
  open.push(p);
  return p;
}

beforeAll(async () => {
  expect(await initWasm()).toBe(true);
  ensureBuilt('dist/src/node/parallelScanWorker.js', 'dist/src/node/parallelScan.js');
}, 300_000);

afterAll(() => {
  for (const p of open) p.close();
});

type Spec = ScanProblemSpec;

function makeArgs(s: Spec): FusedScanArgs {
  const rng = new Rng(s.seed);
  const args = baseScanArgs(s, rng);
  args.key = [rng.nextUint32(), rng.nextUint32()];
  args.uniforms = new Float64Array(categoricalUniformCount(s.b, s.n, args.topKGroups)).map(() => rng.uniformOpen());
  return args;
}

const specArb = (nMin = 512, nMax = 4096): fc.Arbitrary<Spec> =>
  fc.record({
    b: fc.integer({ min: 1, max: 12 }),
    d: fc.integer({ min: 1, max: 9 }),
    n: fc.oneof(
      fc.integer({ min: nMin, max: nMax }),
      fc.integer({ min: nMin / SCAN_BLOCK, max: nMax / SCAN_BLOCK }).map((x) => x * SCAN_BLOCK),
    ),
    seed: fc.integer({ min: 0, max: 1e9 }),
    sampler: fc.constantFrom<ScanSampler>('none', 'gumbel', 'categorical'),
    integer: fc.boolean(),
    pValid: fc.constantFrom(1, 0.8, 0.3, 0.01, 0),
    ids: fc.boolean(),
    idRange: fc.constantFrom(0, 0, 2, 5),
    topKIndex: fc.integer({ min: -4, max: 8 }),
    scale: fc.constantFrom(1, 0.5, 3, -1),
  });

/** Max, samples and group results bit-identical; logSumExp to float64 rounding (`exactLse`: bit-identical). */
function expectSame(got: FusedScanResult, want: FusedScanResult, exactLse = false): void {
  expect(Array.from(got.max)).toEqual(Array.from(want.max));
  expect(got.sample === undefined).toBe(want.sample === undefined);
  if (want.sample) {
    expect(Array.from(got.sample!)).toEqual(Array.from(want.sample));
    expect(Array.from(got.sampleScore!)).toEqual(Array.from(want.sampleScore!));
  }
  expect(got.groupMax === undefined).toBe(want.groupMax === undefined);
  if (want.groupMax) {
    expect(Array.from(got.groupMax!)).toEqual(Array.from(want.groupMax));
    expect(Array.from(got.groupArg!)).toEqual(Array.from(want.groupArg!));
  }
  expect(got.logSumExp.length).toBe(want.logSumExp.length);
  for (let i = 0; i < want.logSumExp.length; i++) {
    const g = got.logSumExp[i]!,
      w = want.logSumExp[i]!;
    if (exactLse || !Number.isFinite(w)) {
      expect(g).toBe(w);
    } else if (Math.abs(g - w) > 1e-13 * Math.max(1, Math.abs(w))) {
      throw new Error(`logSumExp[${i}] = ${g}, single-thread ${w}`);
    }
  }
}

describe('createParallelScan: identical to fusedCacheScan', () => {
  it('random inputs, every sampler, topKGroups, rowValid, false-negative ids; main + 1 and main + 2 workers', () => {
    const two = scanner({ minRows: 0 });
    const three = scanner({ minRows: 0, workers: 2 });
    let parallelRuns = 0;
    fc.assert(
      fc.property(specArb(), (spec) => {
        const args = makeArgs(spec);
        const want = fusedCacheScan(args);
        for (const p of [two, three]) {
          expectSame(p.scan(args), want);
          expect(p.lastStats.parallel).toBe(true);
          const r = p.lastStats.ranges;
          expect(r[0]![0]).toBe(0);
          expect(r[r.length - 1]![1]).toBe(args.n);
          for (let q = 0; q < r.length; q++) {
            expect(r[q]![0] % SCAN_BLOCK).toBe(0);
            if (q > 0) expect(r[q]![0]).toBe(r[q - 1]![1]);
          }
          parallelRuns++;
        }
      }),
      params(60),
    );
    expect(parallelRuns).toBeGreaterThan(0);
  });

  it('several samples (numSamples, keys) and the softmax mean: samples identical, mean within the stated bound', () => {
    const two = scanner({ minRows: 0 });
    const three = scanner({ minRows: 0, workers: 2 });
    fc.assert(
      fc.property(specArb(), fc.integer({ min: 1, max: 4 }), fc.boolean(), (spec, S, mean) => {
        const base = makeArgs(spec);
        const rng = new Rng(spec.seed + 1);
        const args: FusedScanArgs = { ...base, numSamples: S, softmaxMean: mean };
        delete args.key;
        if (spec.sampler === 'gumbel')
          args.keys = Array.from({ length: S }, () => [rng.nextUint32(), rng.nextUint32()]);
        args.uniforms = new Float64Array(categoricalUniformCount(spec.b, spec.n, args.topKGroups, S)).map(() =>
          rng.uniformOpen(),
        );
        const want = fusedCacheScan(args);
        for (const p of [two, three]) {
          const got = p.scan(args);
          expect(p.lastStats.parallel).toBe(true);
          expectSame({ ...got, softmaxMean: undefined }, { ...want, softmaxMean: undefined });
          if (!mean) {
            expect(got.softmaxMean).toBeUndefined();
            continue;
          }
          // both within (SCAN_BLOCK + B + 16)·2^-23·Σπ|c| (+ score error) of the float64 mean, so of each other
          // within twice that; Σπ|c| <= max|c| = 3 (integer) or 1
          const tol = 2 * (SCAN_BLOCK + Math.ceil(spec.n / SCAN_BLOCK) + 16) * 2 ** -23 * (spec.integer ? 3 : 1);
          expect(got.softmaxMean!.length).toBe(spec.b * spec.d);
          for (let q = 0; q < got.softmaxMean!.length; q++)
            expect(Math.abs(got.softmaxMean![q]! - want.softmaxMean![q]!)).toBeLessThanOrEqual(tol);
        }
      }),
      params(30),
    );
  });

  it('n not much above one block: every worker that gets rows scans them; ragged last block', () => {
    const p = scanner({ minRows: 0, workers: 2 });
    for (const n of [257, 300, 511, 512, 513, 767, 769]) {
      for (const sampler of ['none', 'gumbel', 'categorical'] as const) {
        const args = makeArgs({
          b: 5,
          d: 7,
          n,
          seed: n,
          sampler,
          integer: false,
          pValid: 0.7,
          ids: true,
          topKIndex: -1,
          scale: 2,
        });
        expectSame(p.scan(args), fusedCacheScan(args));
        expect(p.lastStats.ranges.length).toBe(Math.min(3, Math.ceil(n / SCAN_BLOCK)));
      }
    }
  });

  it('a cache backed by a SharedArrayBuffer is handed over without a copy', () => {
    const p = scanner({ minRows: 0 });
    const args = makeArgs({
      b: 4,
      d: 8,
      n: 2000,
      seed: 5,
      sampler: 'gumbel',
      integer: false,
      pValid: 1,
      ids: false,
      topKIndex: -1,
      scale: 1,
    });
    const shared = new Float32Array(new SharedArrayBuffer(args.cache.byteLength + 64), 16, args.cache.length);
    shared.set(args.cache);
    const sharedArgs = { ...args, cache: shared };
    expectSame(p.scan(sharedArgs), fusedCacheScan(args));
    expect(p.lastStats.copiedElements).toBe(0);
  });

  it('does not keep the cache arrays it scanned alive within one synchronous loop (regression: WeakRef leak)', () => {
    // A training loop is one synchronous job and scans a new cache array every step. Each 4 MB array
    // below must be collectable as soon as the loop drops it; a WeakRef to it would keep all 24 alive
    // until the job ends (about 96 MB).
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const p = scanner({ minRows: 0 });
    const base = makeArgs({
      b: 2,
      d: 16,
      n: 65536,
      seed: 9,
      sampler: 'none',
      integer: false,
      pValid: 1,
      ids: false,
      topKIndex: -1,
      scale: 1,
    });
    // gc() twice: V8 frees array-buffer memory in a sweep that may still run concurrently after one
    // collection (arrayBuffers then lags, more so on a loaded machine); the next collection waits for it
    const collect = (): void => {
      gc();
      gc();
    };
    p.scan(base);
    collect();
    const before = process.memoryUsage().arrayBuffers;
    for (let i = 0; i < 24; i++) {
      const cache = base.cache.slice(); // a new array, as after every cache update
      p.scan({ ...base, cache });
    }
    collect();
    const grown = (process.memoryUsage().arrayBuffers - before) / 2 ** 20;
    expect(grown, `arrayBuffers grew by ${grown.toFixed(1)} MB over 24 scans of new 4 MB arrays`).toBeLessThan(24);
  });
});

describe('createParallelScan: size threshold', () => {
  it('below minRows the main thread scans alone (exactly fusedCacheScan); from minRows on, in parallel', () => {
    const p = scanner({ minRows: 1024 });
    for (const [n, parallel] of [
      [1023, false],
      [512, false],
      [1024, true],
      [3000, true],
    ] as const) {
      const args = makeArgs({
        b: 6,
        d: 5,
        n,
        seed: n,
        sampler: 'categorical',
        integer: false,
        pValid: 0.9,
        ids: true,
        topKIndex: -1,
        scale: 1,
      });
      const got = p.scan(args);
      expect(p.lastStats.parallel).toBe(parallel);
      expectSame(got, fusedCacheScan(args), !parallel);
    }
  });

  it('the automatic rule: parallel iff n >= DEFAULT_MIN_ROWS and b·n·d >= DEFAULT_MIN_WORK; workers: 0 never starts a thread', () => {
    const p = scanner({ workers: 1 });
    expect(p.minRows).toBe('auto');
    expect(scanner().workers).toBe(availableParallelism() > 1 ? 1 : 0);
    const spec = {
      seed: 1,
      sampler: 'gumbel' as const,
      integer: false,
      pValid: 1,
      ids: false,
      topKIndex: -1,
      scale: 1,
    };
    const cases: [b: number, d: number, n: number][] = [
      [128, 128, DEFAULT_MIN_ROWS - 1],
      [128, 128, DEFAULT_MIN_ROWS], // enough work, but under two blocks
      [16, 32, DEFAULT_MIN_WORK / 512 - 1],
      [16, 32, DEFAULT_MIN_WORK / 512], // n large enough, little work per row
    ];
    for (const [b, d, n] of cases) {
      const args = makeArgs({ ...spec, b, d, n });
      const parallel = n >= DEFAULT_MIN_ROWS && b * n * d >= DEFAULT_MIN_WORK;
      expectSame(p.scan(args), fusedCacheScan(args), !parallel);
      expect(p.lastStats.parallel).toBe(parallel);
    }
    expect(cases.map(([b, d, n]) => n >= DEFAULT_MIN_ROWS && b * n * d >= DEFAULT_MIN_WORK)).toEqual([
      false,
      true,
      false,
      true,
    ]);

    const big = makeArgs({ ...spec, b: 3, d: 4, n: 3000 });
    const none = scanner({ workers: 0, minRows: 0 });
    expectSame(none.scan(big), fusedCacheScan(big), true);
    expect(none.lastStats.parallel).toBe(false);
  });

  it('b = 0, d = 0 and n = 0 take the single-thread path', () => {
    const p = scanner({ minRows: 0 });
    for (const [b, d, n] of [
      [0, 3, 1000],
      [2, 0, 1000],
      [2, 3, 0],
    ] as const) {
      const args = makeArgs({
        b,
        d,
        n,
        seed: 3,
        sampler: 'gumbel',
        integer: false,
        pValid: 1,
        ids: false,
        topKIndex: -1,
        scale: 1,
      });
      expectSame(p.scan(args), fusedCacheScan(args), true);
      expect(p.lastStats.parallel).toBe(false);
    }
  });
});

describe('createParallelScan: reuse across calls', () => {
  it('many calls with changing and repeated cache arrays give the right results (no stale copies)', () => {
    for (const cacheCopies of [0, 1, 2]) {
      const p = scanner({ minRows: 0, cacheCopies });
      const base = {
        b: 5,
        d: 6,
        n: 1500,
        sampler: 'gumbel' as const,
        integer: false,
        pValid: 1,
        ids: false,
        topKIndex: -1,
        scale: 1,
      };
      const arrays = [0, 1, 2].map((s) => makeArgs({ ...base, seed: 100 + s }));
      const order = [0, 0, 1, 0, 0, 2, 1, 2, 2, 0, 1, 1, 0];
      // the model: identity-keyed copies, least recently used evicted
      const lru: number[] = [];
      for (const a of order) {
        // the same queries / key each time, so only the cache array changes
        const args = { ...arrays[0]!, cache: arrays[a]!.cache };
        expectSame(p.scan(args), fusedCacheScan(args));
        const lo = p.lastStats.ranges[1]![0];
        const hit = lru.includes(a);
        expect(p.lastStats.copiedElements).toBe(hit ? 0 : (base.n - lo) * base.d);
        if (hit) lru.splice(lru.indexOf(a), 1);
        else if (lru.length >= cacheCopies) lru.pop();
        if (cacheCopies > 0) lru.unshift(a);
      }
    }
  });

  it('inputs of different sizes and kinds in sequence (buffers grow and shrink)', () => {
    const p = scanner({ minRows: 0 });
    fc.assert(
      fc.property(fc.array(specArb(256, 2048), { minLength: 2, maxLength: 6 }), (specs) => {
        for (const s of specs) {
          const args = makeArgs(s);
          expectSame(p.scan(args), fusedCacheScan(args));
        }
      }),
      params(8),
    );
  });

  it('as the scanner of CacheClassificationLoss: the same samples and losses as the default scanner', () => {
    const p = scanner({ minRows: 0 });
    const rng = new Rng(9);
    const B = 8,
      D = 16,
      N = 3000;
    const rnd = (len: number): Float32Array => new Float32Array(len).map(() => rng.uniform() - 0.5);
    const q = tensor(rnd(B * D), 'float32', [B, D]);
    const pos = tensor(rnd(B * D), 'float32', [B, D]);
    const w = tensor(rnd(D * D), 'float32', [D, D]);
    const valid = new Uint8Array(N).map((_, j) => (j % 7 === 3 ? 0 : 1));
    const cache: Record<string, NegativeCache> = {
      c: {
        data: { emb: tensor(rnd(N * D), 'float32', [N, D]), feat: tensor(rnd(N * D), 'float32', [N, D]) },
        age: tensor(new Int32Array(N), 'int32', [N]),
        valid: tensor(valid, 'bool', [N]),
      },
    };
    for (const sampler of ['gumbel', 'categorical'] as const) {
      for (const topK of [undefined, 10]) {
        const mk = (scan?: ParallelScan['scan']) =>
          new CacheClassificationLoss({
            embeddingKey: 'emb',
            dataKeys: ['feat'],
            rng: new Rng(4),
            sampler,
            reducer: 'none',
            ...(topK !== undefined ? { topK } : {}),
            ...(scan ? { scanner: scan } : {}),
          });
        const a = mk().call((f) => matmul(f['feat']!, w), q, pos, cache);
        const b = mk(p.scan).call((f) => matmul(f['feat']!, w), q, pos, cache);
        expect(p.lastStats.parallel).toBe(true);
        expect(Array.from(unsafeData(b.retrievedIndices))).toEqual(Array.from(unsafeData(a.retrievedIndices)));
        const la = unsafeData(a.trainingLoss),
          lb = unsafeData(b.trainingLoss);
        for (let i = 0; i < B; i++)
          expect(Math.abs(lb[i]! - la[i]!)).toBeLessThanOrEqual(1e-6 * (1 + Math.abs(la[i]!)));
      }
    }
  });
});

describe('createParallelScan: failures', () => {
  const args = makeArgs({
    b: 4,
    d: 8,
    n: 2048,
    seed: 7,
    sampler: 'gumbel',
    integer: false,
    pValid: 1,
    ids: false,
    topKIndex: -1,
    scale: 1,
  });

  function failure(p: ParallelScan): { error: ParallelScanError; ms: number } {
    const t0 = performance.now();
    try {
      p.scan(args);
    } catch (e) {
      expect(e).toBeInstanceOf(ParallelScanError);
      return { error: e as ParallelScanError, ms: performance.now() - t0 };
    }
    throw new Error('the scan did not throw');
  }

  it('a job that throws in the worker: a ParallelScanError with its message; the scanner stays usable', () => {
    const p = scanner({ minRows: 0 });
    expectSame(p.scan(args), fusedCacheScan(args));
    p._injectFault('throw');
    const { error } = failure(p);
    expect(error.reason).toBe('threw');
    expect(error.message).toMatch(
      /^parallelScan: scan worker 0 threw while scanning rows \[1024, 2048\): Error: injected fault/,
    );
    expectSame(p.scan(args), fusedCacheScan(args));
    expect(p.lastStats.parallel).toBe(true);
  });

  it('a worker that exits mid-job: an error at once (not the timeout); later calls throw too', async () => {
    const p = scanner({ minRows: 0, timeoutMs: 60_000 });
    expectSame(p.scan(args), fusedCacheScan(args));
    p._injectFault('exit');
    const { error, ms } = failure(p);
    expect(error.reason).toBe('exited');
    expect(error.message).toMatch(/scan worker 0 is gone .*exited with code 7/);
    expect(ms).toBeLessThan(20_000);
    const again = failure(p).error;
    expect(again.message).toMatch(/failed earlier and is unusable/);
    expect(await p._whenExited()).toHaveLength(1); // 7, or 1 if terminate() (after the failure) came first
  });

  it('a worker that hangs: a timeout error after timeoutMs, and the worker is terminated', async () => {
    const p = scanner({ minRows: 0, timeoutMs: 300 });
    await p._whenReady(); // the worker's start-up (module load, kernel compilation) is not part of the 300 ms
    expectSame(p.scan(args), fusedCacheScan(args));
    p._injectFault('hang');
    const { error, ms } = failure(p);
    expect(error.reason).toBe('timeout');
    expect(error.message).toMatch(/did not deliver its partial within 300 ms/);
    expect(ms).toBeGreaterThanOrEqual(290);
    expect(ms).toBeLessThan(20_000);
    await p._whenExited();
    expect(failure(p).error.message).toMatch(/unusable/);
  });

  it('a worker whose module fails to load: an error naming it, without waiting for the timeout', () => {
    const dir = mkdtempSync(join(tmpdir(), 'negcache-scan-'));
    try {
      const bad = join(dir, 'broken.mjs');
      writeFileSync(bad, 'throw new Error("broken worker module");\n');
      const p = scanner({ minRows: 0, timeoutMs: 60_000, workerEntry: pathToFileURL(bad) });
      const { error, ms } = failure(p);
      expect(error.reason).toBe('exited');
      expect(error.message).toMatch(/could not start from .*broken\.mjs: Error: broken worker module/);
      expect(ms).toBeLessThan(20_000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('close() terminates the workers; later scans throw; close is idempotent', async () => {
    const p = scanner({ minRows: 0, workers: 2 });
    expectSame(p.scan(args), fusedCacheScan(args));
    p.close();
    p.close();
    const codes = await p._whenExited();
    expect(codes).toHaveLength(2);
    const { error } = failure(p);
    expect(error.reason).toBe('closed');
  });

  it('argument errors are those of the single-thread scan; bad options are ArgumentErrors', () => {
    const p = scanner({ minRows: 0 });
    expect(() => p.scan({ ...args, cache: new Float32Array(5) })).toThrow(ShapeError);
    expect(() => p.scan({ ...args, sampler: 'gumbel', key: undefined })).toThrow(ArgumentError);
    expectSame(p.scan(args), fusedCacheScan(args)); // still usable
    expect(() => createParallelScan({ workers: -1 })).toThrow(ArgumentError);
    expect(() => createParallelScan({ minRows: 1.5 })).toThrow(ArgumentError);
    expect(() => createParallelScan({ timeoutMs: 0 })).toThrow(ArgumentError);
    expect(() => createParallelScan({ workerEntry: join(ROOT, 'no-such-worker.js') })).toThrow(
      /does not exist; build first/,
    );
  });

  it('the workers do not keep the process alive: a script that never calls close() exits', () => {
    const mod = pathToFileURL(join(ROOT, 'dist/src/node/parallelScan.js')).href;
    const script = `
      const { createParallelScan } = await import(${JSON.stringify(mod)});
      const p = createParallelScan({ minRows: 0 });
      const n = 1024, d = 4, b = 2;
      const r = p.scan({ queries: new Float32Array(b * d).fill(1), b, d, cache: new Float32Array(n * d).map((_, i) => i % 5), n, scale: 1, sampler: 'none' });
      console.log(JSON.stringify({ parallel: p.lastStats.parallel, max: Array.from(r.max) }));
    `;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(JSON.parse(out.trim())).toEqual({ parallel: true, max: [10, 10] });
  });
});
