/**
 * ShardedCacheLossHandler and ReplicatedCacheLossHandler over seeded
 * multi-step runs: in one thread (runInProcess, R = 2 and 3) and on worker
 * threads (R = 2, fixture test/distributed/fixtures/shardedLossHandlers.mjs,
 * which mirrors `handlerRun` below; the two runs must agree bit for bit).
 *
 * Every step computes the loss, its gradient w.r.t. the doc network, and
 * commits. Expected caches come from the plain-array reference model
 * (test/util/cacheModel.ts), fed with the update each handler should apply:
 *  - replicated: every replica's new items and refreshes, in replica order;
 *    the copies must stay bit-identical (data, age, valid) after every commit;
 *  - sharded: the replica's own new items only, plus the refreshes routed to
 *    it, which must be exactly the items other replicas sampled from its
 *    shard (with their fresh embeddings).
 * A non-finite step on one replica is rejected by ReplicatedCacheLossHandler
 * on every replica with no copy changed, and so is a step that one replica
 * cannot commit (already committed); ShardedCacheLossHandler rejects routed
 * refreshes that are not finite.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../util/build.js';
import {
  ArgumentError,
  CacheClassificationLoss,
  CacheManager,
  DistributedCacheClassificationLoss,
  NonFiniteError,
  ReplicatedCacheLossHandler,
  Rng,
  ShardedCacheLossHandler,
  matmul,
  mul,
  normal,
  runInProcess,
  tensor,
  valueAndGrad,
  zeros,
  type DocNetwork,
  type ReplicaContext,
  type Tensor,
  valueAndGradAsync,
} from '../../src/index.js';
import { runWorkers } from '../../src/node/workerGroup.js';
import { modelInit, modelUpdate, type ModelCache } from '../util/cacheModel.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const FIXTURE = join(ROOT, 'test/distributed/fixtures/shardedLossHandlers.mjs');
const D = 3; // embedding width
const FD = 3; // feature width
const specs = {
  emb: { shape: [D], dtype: 'float32' as const },
  feat: { shape: [FD], dtype: 'float32' as const },
  id: { shape: [], dtype: 'int32' as const },
};

/** The gradient of an async scalar function (valueAndGradAsync: the graph lives on the tensors, so it spans awaits). */
async function gradAsync(
  f: (p: Record<string, Tensor>) => Promise<Tensor>,
  p: Record<string, Tensor>,
): Promise<Record<string, Tensor>> {
  return (await valueAndGradAsync(f)(p)).grad as Record<string, Tensor>;
}

interface Batch {
  q: Tensor;
  feat: Tensor;
  id: Tensor;
  p: Tensor;
}

interface RunArgs {
  mode: 'sharded' | 'replicated';
  batches: Batch[][];
  W: Tensor;
  cacheSize: number;
  seedBase: number;
  specs: typeof specs;
  nonFinite?: { step: number; replica: number };
}

interface Snapshot {
  emb: Tensor;
  feat: Tensor;
  id: Tensor;
  age: Tensor;
  valid: Tensor;
}

interface StepRecord {
  cache: Snapshot;
  step: number;
  grad: Tensor;
  rejected?: { name: string; message: string; unchanged: boolean } | null;
  out: {
    selectedReplica?: Tensor;
    retrievedIndices: Tensor;
    hasNegative: Tensor;
    emb: Tensor;
    idx: Tensor;
    mask: Tensor;
  };
}

/** Positives are fresh (docNet(W)(features)); ids are 1000·r + running index + 1, so an id names its replica. */
function makeArgs(
  mode: RunArgs['mode'],
  R: number,
  b: number,
  steps: number,
  cacheSize: number,
  seed: number,
): RunArgs {
  const rng = new Rng(seed);
  const W = normal([FD, D], rng);
  const batches = Array.from({ length: steps }, (_, t) =>
    Array.from({ length: R }, (_, r): Batch => {
      const feat = normal([b, FD], rng);
      return {
        q: normal([b, D], rng),
        feat,
        id: tensor(
          Array.from({ length: b }, (_, i) => 1000 * r + b * t + i + 1),
          'int32',
          [b],
        ),
        p: matmul(feat, W),
      };
    }),
  );
  return { mode, batches, W, cacheSize, seedBase: seed * 3 + 1, specs };
}

const snapshot = (c: { data: Readonly<Record<string, Tensor>>; age: Tensor; valid?: Tensor }): Snapshot => ({
  emb: c.data.emb!,
  feat: c.data.feat!,
  id: c.data.id!,
  age: c.age,
  valid: c.valid!,
});

/** The replica function (the fixture's twin, on the sources). */
async function handlerRun(ctx: ReplicaContext, args: RunArgs): Promise<StepRecord[]> {
  const r = ctx.replicaId;
  const manager = new CacheManager({ specs: args.specs, cacheSize: args.cacheSize });
  const opts = { embeddingKey: 'emb', dataKeys: ['feat'], rng: new Rng(args.seedBase + 7919 * r) };
  const docNet =
    (w: Tensor): DocNetwork =>
    (f) =>
      matmul(f.feat!, w);
  const records: StepRecord[] = [];
  if (args.mode === 'sharded') {
    const handler = new ShardedCacheLossHandler(ctx, manager, new DistributedCacheClassificationLoss(opts));
    for (let t = 0; t < args.batches.length; t++) {
      const { q, feat, id, p } = args.batches[t]![r]!;
      let step!: Awaited<ReturnType<ShardedCacheLossHandler['computeLoss']>>;
      const grads = await gradAsync(
        async (x) => {
          step = await handler.computeLoss(docNet(x.w!), q, p, { feat, id });
          return step.trainingLoss;
        },
        { w: args.W },
      );
      handler.commit(step, { gradients: grads });
      records.push({
        cache: snapshot(handler.cache),
        step: handler.step,
        grad: grads.w!,
        out: {
          selectedReplica: step.selectedReplica,
          retrievedIndices: step.retrievedIndices,
          hasNegative: step.hasNegative,
          emb: step.updatedItemData.cache!.emb!,
          idx: step.updatedItemIndices.cache!,
          mask: step.updatedItemMask.cache!,
        },
      });
    }
    return records;
  }
  const handler = new ReplicatedCacheLossHandler(ctx, manager, new CacheClassificationLoss(opts));
  for (let t = 0; t < args.batches.length; t++) {
    const { q, feat, id, p } = args.batches[t]![r]!;
    const compute = () =>
      valueAndGrad(
        (w: Tensor) => {
          const s = handler.computeLoss(docNet(w), q, p, { feat, id });
          return [s.trainingLoss, s];
        },
        { hasAux: true },
      )(args.W) as { grad: Tensor; aux: ReturnType<ReplicatedCacheLossHandler['computeLoss']> };
    let { grad, aux: step } = compute();
    let rejected: StepRecord['rejected'] = null;
    if (args.nonFinite && args.nonFinite.step === t) {
      const before = handler.cache;
      const gradients = { w: r === args.nonFinite.replica ? mul(grad, NaN) : grad };
      try {
        await handler.commit(step, { gradients });
      } catch (e) {
        rejected = {
          name: (e as Error).name,
          message: (e as Error).message,
          unchanged: handler.cache === before && handler.step === t,
        };
      }
      ({ grad, aux: step } = compute());
    }
    await handler.commit(step, { gradients: { w: grad } });
    records.push({
      cache: snapshot(handler.cache),
      step: handler.step,
      grad,
      rejected,
      out: {
        retrievedIndices: step.retrievedIndices,
        hasNegative: step.hasNegative,
        emb: step.updatedItemData.cache!.emb!,
        idx: step.updatedItemIndices.cache!,
        mask: step.updatedItemMask.cache!,
      },
    });
  }
  return records;
}

// ---------------------------------------------------------------------------
// Checks

type Syncable = {
  dataSync(): ArrayLike<number> & { buffer: ArrayBufferLike };
  shape: readonly number[];
  dtype: string;
};

function sameBits(a: Syncable, b: Syncable): boolean {
  return (
    a.dtype === b.dtype &&
    a.shape.join() === b.shape.join() &&
    Buffer.from(a.dataSync().buffer).equals(Buffer.from(b.dataSync().buffer))
  );
}

const values = (t: Syncable): number[] => Array.from(t.dataSync(), Number);
const rowsOf = (t: Syncable): number[][] => {
  const v = values(t);
  const n = t.shape[0]!,
    inner = n === 0 ? 0 : v.length / n;
  return Array.from({ length: n }, (_, i) => v.slice(i * inner, (i + 1) * inner));
};

function expectSnapshotMatchesModel(s: Snapshot, m: ModelCache, label: string): void {
  expect(values(s.age), `${label} age`).toEqual(m.age);
  expect(
    values(s.valid).map((v) => v === 1),
    `${label} valid`,
  ).toEqual(m.valid);
  for (const k of ['emb', 'feat', 'id'] as const) expect(rowsOf(s[k]), `${label} ${k}`).toEqual(m.data[k]);
}

function checkReplicated(args: RunArgs, res: StepRecord[][]): void {
  const R = res.length;
  let model = modelInit(specs, args.cacheSize);
  args.batches.forEach((batch, t) => {
    // Bit-identical copies after every commit.
    for (let r = 1; r < R; r++) {
      for (const k of ['emb', 'feat', 'id', 'age', 'valid'] as const) {
        expect(
          sameBits(res[r]![t]!.cache[k], res[0]![t]!.cache[k]),
          `step ${t}: replica ${r}'s ${k} differs from replica 0's`,
        ).toBe(true);
      }
      expect(res[r]![t]!.step).toBe(t + 1);
    }
    // Every replica's new items and refreshes, in replica order.
    model = modelUpdate(
      model,
      {
        newItems: {
          emb: batch.flatMap((x) => rowsOf(x.p)),
          feat: batch.flatMap((x) => rowsOf(x.feat)),
          id: batch.flatMap((x) => rowsOf(x.id)),
        },
        updatedItemData: { emb: res.flatMap((x) => rowsOf(x[t]!.out.emb)) },
        updatedItemIndices: res.flatMap((x) => values(x[t]!.out.idx)),
        updatedItemMask: res.flatMap((x) => values(x[t]!.out.mask).map((v) => v === 1)),
      },
      true,
    );
    expectSnapshotMatchesModel(res[0]![t]!.cache, model, `step ${t}`);
  });
  // The run filled and recycled the cache.
  expect(model.valid.every(Boolean)).toBe(true);
  expect(args.batches.length * R * args.batches[0]![0]!.q.shape[0]!).toBeGreaterThan(args.cacheSize);
}

function checkSharded(args: RunArgs, res: StepRecord[][]): void {
  const R = res.length;
  const b = args.batches[0]![0]!.q.shape[0]!;
  const models = res.map(() => modelInit(specs, args.cacheSize));
  let sampledAcross = 0;
  args.batches.forEach((batch, t) => {
    // Routing: query i of replica r that sampled (s, j) refreshes row j of shard s at position r·b + i.
    for (let r = 0; r < R; r++) {
      const out = res[r]![t]!.out;
      const sel = values(out.selectedReplica!),
        idx = values(out.retrievedIndices),
        hasNeg = values(out.hasNegative);
      for (let i = 0; i < b; i++) {
        for (let s = 0; s < R; s++) {
          const mask = values(res[s]![t]!.out.mask)[r * b + i];
          expect(mask, `step ${t}: replica ${s}'s refresh of replica ${r}'s query ${i}`).toBe(
            hasNeg[i] && sel[i] === s ? 1 : 0,
          );
        }
        if (!hasNeg[i]) continue;
        const s = sel[i]!,
          j = idx[i]!;
        if (s !== r) sampledAcross++;
        const shardBefore = models[s]!;
        expect(shardBefore.valid[j], `step ${t}: replica ${r} sampled an empty slot ${j} of shard ${s}`).toBe(true);
        expect(values(res[s]![t]!.out.idx)[r * b + i]).toBe(j);
        const fresh = rowsOf(matmul(tensor([shardBefore.data.feat![j]!], 'float32'), args.W))[0]!;
        rowsOf(res[s]![t]!.out.emb)[r * b + i]!.forEach((v, e) =>
          expect(Math.abs(v - fresh[e]!)).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(fresh[e]!))),
        );
      }
    }
    // Each shard: its own new items, and the refreshes routed to it.
    for (let r = 0; r < R; r++) {
      const x = batch[r]!,
        out = res[r]![t]!.out;
      models[r] = modelUpdate(
        models[r]!,
        {
          newItems: { emb: rowsOf(x.p), feat: rowsOf(x.feat), id: rowsOf(x.id) },
          updatedItemData: { emb: rowsOf(out.emb) },
          updatedItemIndices: values(out.idx),
          updatedItemMask: values(out.mask).map((v) => v === 1),
        },
        true,
      );
      expectSnapshotMatchesModel(res[r]![t]!.cache, models[r]!, `step ${t} shard ${r}`);
      // Only this replica's own items ever enter its shard.
      const ids = values(res[r]![t]!.cache.id).filter((_, j) => models[r]!.valid[j]);
      expect(ids.length).toBeGreaterThan(0);
      for (const id of ids)
        expect(Math.floor((id - 1) / 1000), `shard ${r} holds item ${id} of another replica`).toBe(r);
    }
  });
  expect(sampledAcross, "some queries must sample from another replica's shard").toBeGreaterThan(0);
}

function expectSameRecords(a: StepRecord[][], b: StepRecord[][]): void {
  expect(a.length).toBe(b.length);
  a.forEach((steps, r) =>
    steps.forEach((x, t) => {
      const y = b[r]![t]!;
      for (const k of ['emb', 'feat', 'id', 'age', 'valid'] as const)
        expect(sameBits(x.cache[k], y.cache[k]), `replica ${r} step ${t} cache.${k}`).toBe(true);
      for (const k of Object.keys(x.out) as (keyof StepRecord['out'])[])
        expect(sameBits(x.out[k]!, y.out[k]!), `replica ${r} step ${t} out.${k}`).toBe(true);
      expect(sameBits(x.grad, y.grad), `replica ${r} step ${t} gradient`).toBe(true);
      expect(x.step).toBe(y.step);
      expect(x.rejected ?? null).toEqual(y.rejected ?? null);
    }),
  );
}

// ---------------------------------------------------------------------------

describe('ReplicatedCacheLossHandler (in one thread)', () => {
  it.each([2, 3])(
    "R = %i: copies stay bit-identical after every commit and equal the model fed with every replica's items",
    async (R) => {
      const args = makeArgs('replicated', R, 3, 6, 10, 10 + R);
      const res = await runInProcess(R, (ctx) => handlerRun(ctx, args), { timeoutMs: 10_000 });
      checkReplicated(args, res);
      // Replicas sample independently (their own generators), yet apply the same update.
      expect(res.some((x) => values(x[3]!.out.idx).join() !== values(res[0]![3]!.out.idx).join())).toBe(true);
    },
  );

  it.each([2, 3])(
    'R = %i: a non-finite step on replica 1 is rejected on every replica, no copy changed; the retried step commits',
    async (R) => {
      const args = { ...makeArgs('replicated', R, 3, 5, 10, 20 + R), nonFinite: { step: 2, replica: 1 } };
      const res = await runInProcess(R, (ctx) => handlerRun(ctx, args), { timeoutMs: 10_000 });
      res.forEach((steps, r) => {
        const rej = steps[2]!.rejected!;
        expect(rej.unchanged, `replica ${r}: the copy or the step count changed`).toBe(true);
        if (r === 1) {
          expect(rej.name).toBe('NonFiniteError');
          expect(rej.message).toBe(
            'ReplicatedCacheLossHandler.commit: gradients has NaN at flat index 0; the step was rejected and the cache left unchanged',
          );
        } else {
          expect(rej.name).toBe('ArgumentError');
          expect(rej.message).toBe(
            'ReplicatedCacheLossHandler.commit: replica 1 rejected its step (non-finite values); no replica updated its cache',
          );
        }
        for (const t of [0, 1, 3, 4]) expect(steps[t]!.rejected).toBeNull();
      });
      checkReplicated(args, res);
    },
  );

  it('a replica that commits a step it cannot commit (already committed): every replica rejects at once, the group stays usable', async () => {
    const args = makeArgs('replicated', 2, 2, 3, 6, 31);
    const results = await runInProcess(
      2,
      async (ctx) => {
        const r = ctx.replicaId;
        const manager = new CacheManager({ specs, cacheSize: args.cacheSize });
        const handler = new ReplicatedCacheLossHandler(
          ctx,
          manager,
          new CacheClassificationLoss({ embeddingKey: 'emb', dataKeys: ['feat'], rng: new Rng(r) }),
        );
        const net: DocNetwork = (f) => matmul(f.feat!, args.W);
        const compute = (t: number) => {
          const { q, feat, id, p } = args.batches[t]![r]!;
          return handler.computeLoss(net, q, p, { feat, id });
        };
        const first = compute(0);
        await handler.commit(first);
        const second = compute(1);
        const before = handler.cache;
        let error: Error | null = null;
        try {
          await handler.commit(r === 0 ? first : second); // replica 0 re-commits step 1 by mistake
        } catch (e) {
          error = e as Error;
        }
        const unchanged = handler.cache === before && handler.step === 1;
        await handler.commit(second); // everyone commits the right step
        return { error, unchanged, cache: snapshot(handler.cache), step: handler.step };
      },
      { timeoutMs: 2000 },
    );
    expect(results[0]!.error).toBeInstanceOf(ArgumentError);
    expect(results[0]!.error!.message).toBe('ReplicatedCacheLossHandler.commit: this step was already committed');
    expect(results[1]!.error).toBeInstanceOf(ArgumentError);
    expect(results[1]!.error!.message).toBe(
      'ReplicatedCacheLossHandler.commit: replica 0 rejected its step (not a step it could commit); no replica updated its cache',
    );
    for (const x of results) {
      expect(x.unchanged).toBe(true);
      expect(x.step).toBe(2);
    }
    for (const k of ['emb', 'feat', 'id', 'age', 'valid'] as const)
      expect(sameBits(results[0]!.cache[k], results[1]!.cache[k])).toBe(true);
  });
});

describe('ShardedCacheLossHandler (in one thread)', () => {
  it.each([2, 3])(
    'R = %i: each shard receives only its own new items and exactly the refreshes of the items sampled from it',
    async (R) => {
      const args = makeArgs('sharded', R, 3, 6, 5, 40 + R);
      const res = await runInProcess(R, (ctx) => handlerRun(ctx, args), { timeoutMs: 10_000 });
      checkSharded(args, res);
    },
  );

  it('rejects refreshes routed from another replica that are not finite, leaving its shard unchanged', async () => {
    const args = makeArgs('sharded', 2, 2, 2, 4, 51);
    const results = await runInProcess(
      2,
      async (ctx) => {
        const r = ctx.replicaId;
        const manager = new CacheManager({ specs, cacheSize: args.cacheSize });
        // Every query samples from shard 0.
        const loss = new DistributedCacheClassificationLoss({
          embeddingKey: 'emb',
          dataKeys: ['feat'],
          rng: new Rng(r),
          shardRetrievalFn: (w) => zeros([w.shape[0]!, 1], 'int32'),
        });
        const handler = new ShardedCacheLossHandler(ctx, manager, loss);
        const good: DocNetwork = (f) => matmul(f.feat!, args.W);
        const bad: DocNetwork = (f) => mul(matmul(f.feat!, args.W), NaN);
        const errors: (Error | null)[] = [];
        for (let t = 0; t < 2; t++) {
          const { q, feat, id, p } = args.batches[t]![r]!;
          const step = await handler.computeLoss(t === 1 && r === 1 ? bad : good, q, p, { feat, id });
          const before = handler.cache;
          try {
            handler.commit(step);
            errors.push(null);
          } catch (e) {
            errors.push(e as Error);
            expect(handler.cache).toBe(before);
          }
        }
        return { errors, step: handler.step };
      },
      { timeoutMs: 10_000 },
    );
    expect(results[0]!.errors[0]).toBeNull();
    expect(results[1]!.errors[0]).toBeNull();
    // Replica 0's own loss is finite; the refreshes replica 1 routed to it are not.
    expect(results[0]!.errors[1]).toBeInstanceOf(NonFiniteError);
    expect(results[0]!.errors[1]!.message).toBe(
      'ShardedCacheLossHandler.commit: updatedItemData.emb has NaN in row 2 (a refresh routed from replica 1); the step was rejected and the cache left unchanged',
    );
    expect(results[1]!.errors[1]).toBeInstanceOf(NonFiniteError);
    expect(results[1]!.errors[1]!.message).toMatch(/^ShardedCacheLossHandler\.commit: trainingLoss has NaN/);
    expect(results.map((x) => x.step)).toEqual([1, 1]);
  });
});

// ---------------------------------------------------------------------------
// Worker threads

describe('distributed handlers on worker threads (R = 2)', () => {
  beforeAll(() => ensureBuilt('dist/src/handlers/distributed.js'), 300_000);

  it('replicated: bit-identical copies, the model, and the same results as in one thread', async () => {
    const args = { ...makeArgs('replicated', 2, 3, 5, 10, 61), nonFinite: { step: 3, replica: 0 } };
    const res = await runWorkers<StepRecord[]>({
      numReplicas: 2,
      module: FIXTURE,
      exportName: 'handlerRun',
      args,
      timeoutMs: 10_000,
    });
    checkReplicated(args, res);
    expect(res[1]![3]!.rejected!.message).toBe(
      'ReplicatedCacheLossHandler.commit: replica 0 rejected its step (non-finite values); no replica updated its cache',
    );
    expectSameRecords(res, await runInProcess(2, (ctx) => handlerRun(ctx, args)));
  }, 30_000);

  it('sharded: own items only, routed refreshes, and the same results as in one thread', async () => {
    const args = makeArgs('sharded', 2, 3, 6, 5, 62);
    const res = await runWorkers<StepRecord[]>({
      numReplicas: 2,
      module: FIXTURE,
      exportName: 'handlerRun',
      args,
      timeoutMs: 10_000,
    });
    checkSharded(args, res);
    expectSameRecords(res, await runInProcess(2, (ctx) => handlerRun(ctx, args)));
  }, 30_000);
});
