import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { ArgumentError } from '../../src/errors.js';
import { ReplicaGroupError } from '../../src/distributed/replicaContext.js';
import { runWorkers } from '../../src/node/workerGroup.js';
import { Tensor, unsafeData, wrap } from '../../src/tensor/tensor.js';
import {
  DTYPES,
  allToAllCaseArb,
  type AllToAllCase,
  type GatherCase,
  describeTensor,
  gatherCaseArb,
  randomTensor,
  refAllGather,
  refAllToAll,
  sameBits,
  specialTensor,
} from '../distributed/reference.js';
import { params } from '../util/props.js';
import { ensureBuilt } from '../util/build.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const FIXTURES = join(ROOT, 'test/distributed/fixtures/replicas.mjs');
const REPLICAS = [1, 2, 3, 4];

beforeAll(() => ensureBuilt('dist/src/node/workerEntry.js'), 300_000);

/**
 * Cases are sampled up front (one worker group runs a whole batch), from a
 * fixed seed unless NEGCACHE_PROPERTY_SEED is set, so a failure is replayable.
 */
function sampleParams<T>(base: number): fc.Parameters<T> {
  return { seed: 20211206, ...params(base) } as fc.Parameters<T>;
}

function expectBits(actual: Tensor, expected: Tensor): void {
  expect(actual).toBeInstanceOf(Tensor);
  if (!sameBits(actual, expected)) expect(describeTensor(actual)).toBe(describeTensor(expected));
}

async function rejection(p: Promise<unknown>): Promise<ReplicaGroupError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ReplicaGroupError);
    return e as ReplicaGroupError;
  }
  throw new Error('expected a rejection');
}

/** Whether a heartbeat counter (bumped every 5 ms by a live worker) stands still. */
async function heartbeatStopped(hb: SharedArrayBuffer): Promise<boolean> {
  const before = Atomics.load(new Int32Array(hb), 0);
  await new Promise((r) => setTimeout(r, 150));
  return Atomics.load(new Int32Array(hb), 0) === before;
}

describe('runWorkers: allGather and allToAll', () => {
  it.each(REPLICAS)('gathers every dtype bit-exactly along axes 0, 1 and -1, and random cases (R = %i)', async (R) => {
    const cases: { inputs: Tensor[]; axis: number }[] = [];
    for (const dtype of DTYPES) {
      const special = unsafeData(specialTensor(dtype));
      cases.push({ inputs: Array.from({ length: R }, () => wrap(special.slice(), [2, 4], dtype)), axis: 0 });
      cases.push({
        inputs: Array.from({ length: R }, (_, r) => randomTensor(dtype, [3, 1 + r, 2], 10 * r + 3)),
        axis: 1,
      });
      cases.push({
        inputs: Array.from({ length: R }, (_, r) => randomTensor(dtype, [2, 2 + r], 10 * r + 4)),
        axis: -1,
      });
    }
    for (const c of fc.sample(gatherCaseArb(R), sampleParams<GatherCase>(30)))
      cases.push({ inputs: c.inputs.slice(), axis: c.axis });
    const results = await runWorkers<Tensor[]>({
      numReplicas: R,
      module: FIXTURES,
      exportName: 'gather',
      args: { cases },
      timeoutMs: 10_000,
    });
    expect(results).toHaveLength(R);
    cases.forEach((c, i) => {
      const ref = refAllGather(c.inputs, c.axis);
      for (const res of results) expectBits(res[i]!, ref);
    });
    // Spelled out: a float32 NaN payload and an int32 above 2^24 survived the trip.
    const f32 = unsafeData(results[R - 1]![0]!);
    expect(new Uint32Array(f32.buffer, f32.byteOffset, 1)[0]).toBe(0x7fc00001);
    expect(unsafeData(results[R - 1]![6]!)[0]).toBe(2 ** 24 + 1);
  });

  it.each(REPLICAS)(
    'allToAll matches the reference on random shapes divisible by R, every dtype (R = %i)',
    async (R) => {
      const cases = fc
        .sample(allToAllCaseArb(R), sampleParams<AllToAllCase>(30))
        .map((c) => ({ inputs: c.inputs.slice(), splitAxis: c.splitAxis, concatAxis: c.concatAxis }));
      for (const dtype of DTYPES) {
        cases.push({
          inputs: Array.from({ length: R }, (_, r) => randomTensor(dtype, [2 * R, 3], 5 * r)),
          splitAxis: 0,
          concatAxis: 1,
        });
      }
      const results = await runWorkers<Tensor[]>({
        numReplicas: R,
        module: FIXTURES,
        exportName: 'allToAll',
        args: { cases },
        timeoutMs: 10_000,
      });
      cases.forEach((c, i) => {
        results.forEach((res, r) => expectBits(res[i]!, refAllToAll(c.inputs, c.splitAxis, c.concatAxis, r)));
      });
    },
  );

  it('grows the arenas for large tensors (one growth message per size step), many collectives in a row', async () => {
    const R = 3;
    const sizes = [1, 100, 5000, 20_000, 3, 40_000, 7];
    const results = await runWorkers<number[]>({
      numReplicas: R,
      module: FIXTURES,
      exportName: 'growing',
      args: { sizes },
      arenaBytes: 1024,
      timeoutMs: 10_000,
    });
    // Expected checksums: gather = every value of every replica; allToAll = replica r's piece from each replica.
    results.forEach((sums, r) => {
      sizes.forEach((n, k) => {
        let expected = 0;
        for (let q = 0; q < R; q++) for (let i = 0; i < n * R; i++) expected += q * 1e6 + i;
        for (let q = 0; q < R; q++) for (let i = r * n; i < (r + 1) * n; i++) expected += q * 1e6 + i;
        expect(sums[k]).toBe(expected);
      });
    });
  });
});

describe('runWorkers: ordering and errors', () => {
  it.each([2, 3, 4])('nobody passes a barrier before everyone reached it (R = %i)', async (R) => {
    const counter = new SharedArrayBuffer(4);
    const rounds = 20;
    const results = await runWorkers<number[]>({
      numReplicas: R,
      module: FIXTURES,
      exportName: 'barrierOrder',
      args: { counter, rounds, delayMs: 3 },
    });
    for (const seen of results) expect(seen).toEqual(Array.from({ length: rounds }, (_, i) => R * (i + 1)));
  });

  it('mismatched shapes: the same clear error on every replica, and the group stays usable', async () => {
    const results = await runWorkers<{ message: string; after: number[] }>({
      numReplicas: 3,
      module: FIXTURES,
      exportName: 'mismatch',
    });
    for (const res of results) {
      expect(res.message).toBe(
        'ShapeError: allGather: collective #1: replica 1 passed shape [2,4] but replica 0 passed [2,3]; shapes must agree on every axis except the gather axis 0',
      );
      expect(res.after).toEqual([0, 1, 2]);
    }
  });

  it('a replica that returns while the others wait in a collective: they fail naming it', async () => {
    const e = await rejection(
      runWorkers({ numReplicas: 3, module: FIXTURES, exportName: 'early', args: { early: 1 }, timeoutMs: 5000 }),
    );
    for (const r of [0, 2]) {
      expect(e.errors[r]!.message).toBe(
        'barrier: collective #2: replica 1 returned after 1 collective without calling collective #2; every replica must call the same collectives in the same order',
      );
    }
  });

  it('takes the worker entry as a path, a file: URL or a file: URL string; a missing one is an ArgumentError', async () => {
    const built = join(ROOT, 'dist/src/node/workerEntry.js');
    for (const workerEntry of [built, pathToFileURL(built), pathToFileURL(built).href]) {
      const out = await runWorkers<Tensor[]>({
        numReplicas: 2,
        module: FIXTURES,
        exportName: 'gather',
        args: {
          cases: [
            {
              inputs: [wrap(new Float32Array([1]), [1], 'float32'), wrap(new Float32Array([2]), [1], 'float32')],
              axis: 0,
            },
          ],
        },
        workerEntry,
      });
      for (const r of out) expect(Array.from(unsafeData(r[0]!))).toEqual([1, 2]);
    }
    const missing = join(ROOT, 'no-such-worker.js');
    for (const workerEntry of [missing, pathToFileURL(missing).href])
      await expect(runWorkers({ numReplicas: 2, module: FIXTURES, workerEntry })).rejects.toThrow(
        /runWorkers: the compiled worker entry .*no-such-worker\.js does not exist; build first/,
      );
  });

  it('rejects bad options before starting any worker', async () => {
    await expect(runWorkers({ numReplicas: 0, module: FIXTURES })).rejects.toThrow(ArgumentError);
    await expect(
      runWorkers({ numReplicas: 2, module: join(ROOT, 'test/distributed/fixtures/missing.mjs') }),
    ).rejects.toThrow(/missing\.mjs does not exist/);
    await expect(runWorkers({ numReplicas: 2, module: FIXTURES, timeoutMs: 0 })).rejects.toThrow(
      /timeoutMs must be a positive finite number, got 0/,
    );
  });

  it('a missing export and an unclonable result fail clearly', async () => {
    const e = await rejection(runWorkers({ numReplicas: 2, module: FIXTURES, exportName: 'notAFunction' }));
    expect(e.message).toMatch(
      /^runWorkers: replica [01] failed: threw ArgumentError: runWorkers: module file:.*replicas\.mjs has no exported function "notAFunction" \(found 42\)/,
    );
    const u = await rejection(runWorkers({ numReplicas: 2, module: FIXTURES, exportName: 'unclonable' }));
    expect(u.message).toMatch(/^runWorkers: replica [01] failed: threw DataCloneError/);
  });
});

describe('runWorkers: failures reach every replica and terminate every worker', () => {
  const modes = [
    ['throw', /^runWorkers: replica (\d) failed: threw Error: boom from replica \1/],
    ['exit', /^runWorkers: replica (\d) failed: exited with code 7 before returning a result/],
    ['crash', /^runWorkers: replica (\d) failed: crashed with Error: uncaught crash/],
  ] as const;
  for (const [mode, pattern] of modes) {
    it.each([2, 3, 4])(
      `a replica that ${mode}s: every other replica's collective fails naming it (R = %i)`,
      async (R) => {
        const failing = R - 1;
        const e = await rejection(
          runWorkers({
            numReplicas: R,
            module: FIXTURES,
            exportName: 'faulty',
            args: { failing, mode },
            timeoutMs: 2000,
          }),
        );
        expect(e.message).toMatch(pattern);
        expect(e.failedReplica).toBe(failing);
        for (let r = 0; r < R; r++) {
          if (r === failing) continue;
          expect(e.errors[r]!.name).toBe('CollectiveAbortedError');
          expect(e.errors[r]!.message).toMatch(
            new RegExp(`^allGather: collective #1 on replica ${r} was aborted because replica ${failing} failed: `),
          );
        }
      },
      20_000,
    );
  }

  it.each([
    [2, 'hang', 1],
    [3, 'hang', 1],
    [3, 'hangLater', 2],
    [4, 'hangLater', 2],
  ] as const)(
    'R = %i, %s: the waiting replicas time out naming the missing one, which is terminated',
    async (R, mode, collective) => {
      const failing = 1;
      const heartbeat = new SharedArrayBuffer(4);
      const e = await rejection(
        runWorkers({
          numReplicas: R,
          module: FIXTURES,
          exportName: 'faulty',
          args: { failing, mode, heartbeat },
          timeoutMs: 2000,
          abortGraceMs: 300,
        }),
      );
      const reason = `replica 1 did not arrive at collective #${collective} (allGather) within 2000 ms`;
      expect(e.failedReplica).toBe(failing);
      expect(e.message.startsWith(`runWorkers: replica 1 failed: ${reason}`)).toBe(true);
      expect(e.errors[failing]).toBeUndefined();
      for (let r = 0; r < R; r++) {
        if (r === failing) continue;
        expect(e.errors[r]!.name).toBe('CollectiveTimeoutError');
        expect(e.errors[r]!.message).toContain(reason);
      }
      expect(Atomics.load(new Int32Array(heartbeat), 0)).toBeGreaterThan(0); // it was alive ...
      expect(await heartbeatStopped(heartbeat)).toBe(true); // ... and is gone now
    },
    20_000,
  );

  it('no worker outlives a successful run either', async () => {
    const heartbeat = new SharedArrayBuffer(4);
    const results = await runWorkers({
      numReplicas: 3,
      module: FIXTURES,
      exportName: 'lingering',
      args: { heartbeat },
    });
    expect(results).toEqual([0, 1, 2]);
    expect(Atomics.load(new Int32Array(heartbeat), 0)).toBeGreaterThan(0);
    expect(await heartbeatStopped(heartbeat)).toBe(true);
  });
});
