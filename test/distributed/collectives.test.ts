import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ArgumentError, DTypeError, ShapeError } from '../../src/errors.js';
import { runInProcess } from '../../src/distributed/inProcess.js';
import {
  CollectiveAbortedError,
  CollectiveTimeoutError,
  ReplicaGroupError,
  allGatherRecord,
  allToAllRecord,
  type ReplicaContext,
} from '../../src/distributed/replicaContext.js';
import { gradNode, unsafeData, wrap, type Tensor } from '../../src/tensor/tensor.js';
import { params } from '../util/props.js';
import {
  DTYPES,
  allToAllCaseArb,
  describeTensor,
  gatherCaseArb,
  randomTensor,
  refAllGather,
  refAllToAll,
  sameBits,
  specialTensor,
} from './reference.js';

const REPLICAS = [1, 2, 3, 4];

function expectBits(actual: Tensor, expected: Tensor): void {
  if (!sameBits(actual, expected)) expect(describeTensor(actual)).toBe(describeTensor(expected));
}

/** Settles a promise into a value or the error it rejected with. */
async function outcome<T>(p: Promise<T>): Promise<{ value?: T; error?: unknown }> {
  try {
    return { value: await p };
  } catch (error) {
    return { error };
  }
}

describe('runInProcess: allGather', () => {
  it.each(REPLICAS)('gathers every dtype bit-exactly along axes 0 and 1 (R = %i)', async (R) => {
    for (const dtype of DTYPES) {
      const special = specialTensor(dtype); // [8]
      const inputs = Array.from({ length: R }, (_, r) => {
        const t = randomTensor(dtype, [2, 3 + r], 100 + r);
        return { t, special: wrap(unsafeData(special).slice(), [2, 4], dtype) };
      });
      const results = await runInProcess(R, async (ctx) => {
        const mine = inputs[ctx.replicaId]!;
        return {
          axis1: await ctx.allGather(mine.t, { axis: 1 }),
          axisMinus1: await ctx.allGather(mine.t, { axis: -1 }),
          axis0: await ctx.allGather(mine.special),
        };
      });
      const ref1 = refAllGather(
        inputs.map((x) => x.t),
        1,
      );
      const ref0 = refAllGather(
        inputs.map((x) => x.special),
        0,
      );
      for (const res of results) {
        expectBits(res.axis1, ref1);
        expectBits(res.axisMinus1, ref1);
        expectBits(res.axis0, ref0);
      }
      // NaN payloads and int32 values above 2^24 survive (checked on the bytes above; spelled out here).
      const got = unsafeData(results[R - 1]!.axis0);
      if (dtype === 'float32') expect(new Uint32Array(got.buffer)[0]).toBe(0x7fc00001);
      if (dtype === 'int32') expect(got[0]).toBe(2 ** 24 + 1);
    }
  });

  it('matches the reference on random shapes, axes, per-replica sizes and dtypes', async () => {
    await fc.assert(
      fc.asyncProperty(gatherCaseArb(fc.integer({ min: 1, max: 4 })), async (c) => {
        const results = await runInProcess(c.R, (ctx) => ctx.allGather(c.inputs[ctx.replicaId]!, { axis: c.axis }));
        const ref = refAllGather(c.inputs, c.axis);
        for (const r of results) expect(sameBits(r, ref)).toBe(true);
      }),
      params(60),
    );
  });

  it('returns constants for autodiff, even for a tracked input', async () => {
    const node = { id: 1, inputs: [], vjp: null };
    const tracked = wrap(Float32Array.of(1, 2), [2], 'float32', node);
    expect(gradNode(tracked)).toBe(node);
    const [out] = await runInProcess(1, async (ctx) => [
      await ctx.allGather(tracked),
      await ctx.allToAll(tracked, { splitAxis: 0, concatAxis: 0 }),
    ]);
    expect(gradNode(out![0]!)).toBeNull();
    expect(gradNode(out![1]!)).toBeNull();
    expect(Array.from(unsafeData(out![0]!))).toEqual([1, 2]);
  });
});

describe('runInProcess: allToAll', () => {
  it('matches the reference (tf.raw_ops.AllToAll) on random shapes divisible by R', async () => {
    await fc.assert(
      fc.asyncProperty(allToAllCaseArb(fc.integer({ min: 1, max: 4 })), async (c) => {
        const results = await runInProcess(c.R, (ctx) =>
          ctx.allToAll(c.inputs[ctx.replicaId]!, { splitAxis: c.splitAxis, concatAxis: c.concatAxis }),
        );
        results.forEach((res, r) =>
          expect(sameBits(res, refAllToAll(c.inputs, c.splitAxis, c.concatAxis, r))).toBe(true),
        );
      }),
      params(60),
    );
  });

  it('is the exchange of the sharded loss: [R*b] per replica, split 0 concat 1 after expandDims, gives [b, R]', async () => {
    // Replica q holds w[q][i] for all R*b gathered queries; replica r gets, for its own b queries, the R weights.
    const R = 3;
    const b = 2;
    const w = (q: number, i: number): number => 100 * q + i;
    const results = await runInProcess(R, (ctx) => {
      const mine = wrap(
        Float32Array.from({ length: R * b }, (_, i) => w(ctx.replicaId, i)),
        [R * b, 1],
        'float32',
      );
      return ctx.allToAll(mine, { splitAxis: 0, concatAxis: 1 });
    });
    results.forEach((res, r) => {
      expect(res.shape).toEqual([b, R]);
      expect(res.toArray()).toEqual(
        Array.from({ length: b }, (_, i) => Array.from({ length: R }, (_, q) => w(q, r * b + i))),
      );
    });
  });

  it.each(REPLICAS)('moves every dtype bit-exactly (R = %i)', async (R) => {
    for (const dtype of DTYPES) {
      const inputs = Array.from({ length: R }, (_, r) => randomTensor(dtype, [2 * R, 3], 7 * r + 1));
      const results = await runInProcess(R, (ctx) =>
        ctx.allToAll(inputs[ctx.replicaId]!, { splitAxis: 0, concatAxis: 1 }),
      );
      results.forEach((res, r) => expectBits(res, refAllToAll(inputs, 0, 1, r)));
    }
  });
});

describe('runInProcess: ordering and determinism', () => {
  it.each(REPLICAS)('a barrier is passed only after every replica reached it (R = %i)', async (R) => {
    const log: string[] = [];
    await runInProcess(R, async (ctx) => {
      for (let round = 0; round < 3; round++) {
        // Replicas arrive in a different order each round.
        for (let k = 0; k < ((ctx.replicaId + round) % R) * 3; k++) await Promise.resolve();
        log.push(`before ${round}`);
        await ctx.barrier();
        log.push(`after ${round}`);
      }
    });
    for (let round = 0; round < 3; round++) {
      const lastBefore = log.lastIndexOf(`before ${round}`);
      const firstAfter = log.indexOf(`after ${round}`);
      expect(log.filter((x) => x === `before ${round}`)).toHaveLength(R);
      expect(lastBefore).toBeLessThan(firstAfter);
    }
  });

  it('gives identical results run to run', async () => {
    const run = (): Promise<unknown[]> =>
      runInProcess(4, async (ctx) => {
        const t = randomTensor('float32', [8, 2], ctx.replicaId);
        const g = await ctx.allGather(t);
        const a = await ctx.allToAll(g, { splitAxis: 0, concatAxis: 1 });
        return [Array.from(unsafeData(g)), Array.from(unsafeData(a)), a.shape];
      });
    expect(await run()).toEqual(await run());
  });

  it('allGatherRecord / allToAllRecord move every key; different keys are rejected on every replica', async () => {
    const results = await runInProcess(2, async (ctx) => {
      const rec = {
        ids: wrap(Int32Array.of(2 ** 30 + ctx.replicaId, 5), [2], 'int32'),
        emb: wrap(Float32Array.of(ctx.replicaId, 1, 2, 3), [2, 2], 'float32'),
      };
      const g = await allGatherRecord(ctx, rec);
      const a = await allToAllRecord(ctx, rec, { splitAxis: 0, concatAxis: 0 });
      return { g, a };
    });
    expect(results[1]!.g['ids']!.toArray()).toEqual([2 ** 30, 5, 2 ** 30 + 1, 5]);
    expect(results[0]!.g['emb']!.shape).toEqual([4, 2]);
    expect(results[0]!.a['ids']!.toArray()).toEqual([2 ** 30, 2 ** 30 + 1]);
    expect(results[1]!.a['ids']!.toArray()).toEqual([5, 5]);

    const errors = await runInProcess(2, async (ctx) => {
      const rec: Record<string, Tensor> = {
        [ctx.replicaId === 0 ? 'a' : 'b']: wrap(Float32Array.of(1), [1], 'float32'),
      };
      return outcome(allGatherRecord(ctx, rec));
    });
    for (const e of errors) {
      expect(e.error).toBeInstanceOf(ArgumentError);
      expect(String(e.error)).toMatch(/allGatherRecord: replica 1 passed a record with different keys/);
    }
  });
});

describe('runInProcess: mismatched collectives fail on every replica', () => {
  async function allFail(R: number, call: (ctx: ReplicaContext) => Promise<unknown>): Promise<unknown[]> {
    const results = await runInProcess(R, async (ctx) => {
      const o = await outcome(call(ctx));
      // The group stays usable after a rejected collective.
      const after = await ctx.allGather(wrap(Int32Array.of(ctx.replicaId), [1], 'int32'));
      expect(Array.from(unsafeData(after))).toEqual(Array.from({ length: R }, (_, i) => i));
      return o.error;
    });
    for (const e of results) expect(e).toBe(results[0]); // the very same error on every replica
    return results;
  }

  it('shapes that differ off the gather axis', async () => {
    const [e] = await allFail(3, (ctx) =>
      ctx.allGather(
        wrap(new Float32Array(2 * (ctx.replicaId === 2 ? 4 : 3)), [2, ctx.replicaId === 2 ? 4 : 3], 'float32'),
      ),
    );
    expect(e).toBeInstanceOf(ShapeError);
    expect((e as Error).message).toBe(
      'allGather: collective #1: replica 2 passed shape [2,4] but replica 0 passed [2,3]; shapes must agree on every axis except the gather axis 0',
    );
  });

  it('dtypes, ranks, axes, kinds, non-tensors, scalars and indivisible splits', async () => {
    const f32 = (shape: number[]): Tensor => wrap(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape, 'float32');
    const i32 = (shape: number[]): Tensor => wrap(new Int32Array(shape.reduce((a, b) => a * b, 1)), shape, 'int32');
    const cases: [(ctx: ReplicaContext) => Promise<unknown>, new (...a: never[]) => Error, RegExp][] = [
      [
        (ctx) => ctx.allGather(ctx.replicaId === 1 ? i32([2]) : f32([2])),
        DTypeError,
        /replica 1 passed a int32 tensor but replica 0 passed float32/,
      ],
      [(ctx) => ctx.allGather(ctx.replicaId === 1 ? f32([2, 1]) : f32([2])), ShapeError, /ranks must agree/],
      [
        (ctx) => ctx.allGather(f32([2, 2]), { axis: ctx.replicaId }),
        ArgumentError,
        /replica 1 gathers along axis 1 but replica 0 along axis 0/,
      ],
      [
        (ctx) => ctx.allGather(f32([2, 2]), { axis: ctx.replicaId === 1 ? 2 : 0 }),
        ArgumentError,
        /replica 1 passed axis 2 for a tensor of rank 2/,
      ],
      [(ctx) => ctx.allGather(f32([2]), { axis: 0.5 }), ArgumentError, /replica 0 passed axis 0.5/],
      [
        (ctx) => (ctx.replicaId === 1 ? ctx.barrier() : ctx.allGather(f32([2]))),
        ArgumentError,
        /replicas called different collectives \(replica 0: allGather, replica 1: barrier\)/,
      ],
      [
        (ctx) => ctx.allGather((ctx.replicaId === 1 ? [1, 2] : f32([2])) as Tensor),
        ArgumentError,
        /replica 1 passed an array of length 2 instead of a tensor/,
      ],
      [(ctx) => ctx.allGather(wrap(Float32Array.of(1), [], 'float32')), ShapeError, /scalars/],
      [
        (ctx) => ctx.allToAll(f32([3, 2]), { splitAxis: 0, concatAxis: 1 }),
        ShapeError,
        /3 entries along splitAxis 0, not divisible by numReplicas 2/,
      ],
      [
        (ctx) => ctx.allToAll(f32([2, 2 + ctx.replicaId]), { splitAxis: 0, concatAxis: 0 }),
        ShapeError,
        /every replica must pass the same shape/,
      ],
      [
        (ctx) => ctx.allToAll(f32([2, 2]), { splitAxis: 0, concatAxis: ctx.replicaId }),
        ArgumentError,
        /replica 1 passed splitAxis 0, concatAxis 1/,
      ],
      [(ctx) => ctx.allToAll(f32([2, 2]), undefined as never), ArgumentError, /replica 0 passed splitAxis undefined/],
    ];
    for (const [call, type, pattern] of cases) {
      const [e] = await allFail(2, call);
      expect(e).toBeInstanceOf(type);
      expect((e as Error).message).toMatch(pattern);
    }
  });

  it('a replica that returns while the others wait: they fail naming it', async () => {
    const err = await outcome(
      runInProcess(3, async (ctx) => {
        if (ctx.replicaId === 2) return 'done early';
        await ctx.allGather(wrap(Float32Array.of(1), [1], 'float32'));
        return 'done';
      }),
    );
    expect(err.error).toBeInstanceOf(ReplicaGroupError);
    const e = err.error as ReplicaGroupError;
    for (const r of [0, 1])
      expect(e.errors[r]!.message).toBe(
        'allGather: collective #1: replica 2 returned after 0 collectives without calling collective #1; every replica must call the same collectives in the same order',
      );
  });
});

describe('runInProcess: failures', () => {
  it.each([2, 3, 4])(
    'a replica that throws aborts every waiting and later collective, naming it (R = %i)',
    async (R) => {
      const seen: unknown[] = new Array(R);
      const laterSeen: unknown[] = new Array(R);
      const err = await outcome(
        runInProcess(R, async (ctx) => {
          const t = wrap(Float32Array.of(ctx.replicaId), [1], 'float32');
          await ctx.allGather(t);
          if (ctx.replicaId === 1) {
            await Promise.resolve();
            throw new Error('boom');
          }
          // Replica 0 waits in collective #2; the others enter it after a few ticks.
          if (ctx.replicaId > 1) for (let i = 0; i < 10; i++) await Promise.resolve();
          const o = await outcome(ctx.allGather(t));
          seen[ctx.replicaId] = o.error;
          laterSeen[ctx.replicaId] = (await outcome(ctx.barrier())).error;
          throw o.error;
        }),
      );
      const e = err.error as ReplicaGroupError;
      expect(e).toBeInstanceOf(ReplicaGroupError);
      expect(e.failedReplica).toBe(1);
      expect(e.message).toMatch(/^runInProcess: replica 1 failed: threw Error: boom/);
      expect(e.errors[1]!.message).toBe('boom');
      for (let r = 0; r < R; r++) {
        if (r === 1) continue;
        const a = seen[r] as CollectiveAbortedError;
        expect(a).toBeInstanceOf(CollectiveAbortedError);
        expect(a.failedReplica).toBe(1);
        expect(a.message).toBe(
          `allGather: collective #2 on replica ${r} was aborted because replica 1 failed: threw Error: boom`,
        );
        expect((laterSeen[r] as Error).message).toBe(
          `barrier: collective #3 on replica ${r} was aborted because replica 1 failed: threw Error: boom`,
        );
        expect(e.errors[r]).toBe(a);
      }
    },
  );

  it('a replica that never arrives: the waiting ones time out naming it, and later collectives fail too', async () => {
    let release!: () => void;
    const stuck = new Promise<void>((res) => (release = res));
    const errors: unknown[] = [];
    const err = await outcome(
      runInProcess(
        3,
        async (ctx) => {
          if (ctx.replicaId === 2) {
            await stuck; // never arrives while the others wait
            return (await outcome(ctx.allGather(wrap(Float32Array.of(2), [1], 'float32')))).error;
          }
          const o = await outcome(ctx.allGather(wrap(Float32Array.of(ctx.replicaId), [1], 'float32')));
          errors[ctx.replicaId] = o.error;
          if (ctx.replicaId === 0) release();
          throw o.error;
        },
        { timeoutMs: 200 },
      ),
    );
    const e = err.error as ReplicaGroupError;
    expect(e.failedReplica).toBe(2);
    expect(e.message).toMatch(
      /^runInProcess: replica 2 failed: replica 2 did not arrive at collective #1 \(allGather\) within 200 ms/,
    );
    for (const r of [0, 1]) {
      const t = errors[r] as CollectiveTimeoutError;
      expect(t).toBeInstanceOf(CollectiveTimeoutError);
      expect(t.missingReplicas).toEqual([2]);
      expect(t.message).toBe(
        'allGather: collective #1: timed out: replica 2 did not arrive at collective #1 (allGather) within 200 ms',
      );
    }
  });

  it('a replica stuck outside collectives after another failed is abandoned after the timeout', async () => {
    const err = await outcome(
      runInProcess(
        2,
        async (ctx) => {
          if (ctx.replicaId === 0) throw new TypeError('bad input');
          await new Promise(() => {});
        },
        { timeoutMs: 100 },
      ),
    );
    const e = err.error as ReplicaGroupError;
    expect(e.failedReplica).toBe(0);
    expect(e.message).toBe(
      'runInProcess: replica 0 failed: threw TypeError: bad input (replica 1: still running, abandoned)',
    );
  });

  it('rejects bad arguments', async () => {
    await expect(runInProcess(0, async () => 1)).rejects.toThrow(/numReplicas must be a positive integer, got 0/);
    await expect(runInProcess(2, async () => 1, { timeoutMs: -1 })).rejects.toThrow(
      /timeoutMs must be a positive finite number/,
    );
  });
});
