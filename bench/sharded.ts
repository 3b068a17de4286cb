/**
 * One sharded training step on worker threads: DistributedCacheClassificationLoss
 * forward plus the gradient w.r.t. the queries and a linear doc network, at
 * batch 128 per replica, dimension 128, a total cache of 131072 items split
 * over R = 1 and R = 2 replicas (R = 1 runs the same code with trivial
 * collectives). Prints per R the median step time, the median time spent in
 * collectives (every ReplicaContext method wrapped with a timer inside the
 * replica; it includes waiting for the slower replica), and the speed-up.
 *
 *   npx tsc -p tsconfig.build.json && node dist/bench/sharded.js [steps] [totalCache]
 *
 * Every replica scores ALL R·b gathered queries against its N/R items, so the
 * scoring work per replica is b·N·d whatever R is: sharding spreads the cache
 * (memory) and multiplies the batch, it does not shorten a step. The fair
 * speed-up is therefore throughput: R·b queries per step time against b per
 * step time at R = 1; the plain step-time ratio is printed too.
 *
 * This file is also the replica module: the workers import it and run
 * `benchReplica` (the main part only runs on the main thread).
 */
import { availableParallelism, loadavg } from 'node:os';
import { isMainThread } from 'node:worker_threads';
import { backward, makeLeaf } from '../src/autograd/engine.js';
import type { ReplicaContext } from '../src/distributed/replicaContext.js';
import { DistributedCacheClassificationLoss } from '../src/losses/distributedCacheClassificationLoss.js';
import { scaleTransform, type DocNetwork } from '../src/losses/common.js';
import { runWorkers } from '../src/node/workerGroup.js';
import { add, cast } from '../src/ops/elementwise.js';
import { matmul } from '../src/ops/linalg.js';
import { normal, tensor, zeros } from '../src/tensor/create.js';
import { Rng } from '../src/tensor/random.js';
import type { Tensor } from '../src/tensor/tensor.js';

interface BenchArgs {
  readonly totalCache: number;
  readonly batch: number;
  readonly dim: number;
  readonly featureDim: number;
  readonly steps: number;
  readonly warmup: number;
}

interface ReplicaTimes {
  /** ms per timed step */
  step: number[];
  /** ms per timed step inside collectives */
  collectives: number[];
  /** ms per timed step by collective kind */
  byKind: Record<string, number[]>;
  setupMs: number;
}

function median(xs: readonly number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Wraps every collective of `ctx` with a timer accumulating into `acc`. */
function timed(ctx: ReplicaContext, acc: { total: number; byKind: Record<string, number> }): ReplicaContext {
  const time = async <T>(kind: string, p: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try {
      return await p();
    } finally {
      const dt = performance.now() - t0;
      acc.total += dt;
      acc.byKind[kind] = (acc.byKind[kind] ?? 0) + dt;
    }
  };
  return {
    numReplicas: ctx.numReplicas,
    replicaId: ctx.replicaId,
    allGather: (t, opts) => time('allGather', () => ctx.allGather(t, opts)),
    allToAll: (t, opts) => time('allToAll', () => ctx.allToAll(t, opts)),
    barrier: () => time('barrier', () => ctx.barrier()),
  };
}

/**
 * The gradient of an async scalar function: `grad` needs a synchronous f,
 * the sharded loss awaits its collectives; the engine's graph lives on the
 * tensors, so marking leaves, awaiting and running backward is the same.
 */
async function gradAsync(
  f: (p: Record<string, Tensor>) => Promise<Tensor>,
  p: Record<string, Tensor>,
): Promise<{ value: Tensor; grads: Record<string, Tensor | null> }> {
  const keys = Object.keys(p);
  const leaves = keys.map((k) => makeLeaf(p[k]!));
  const out = await f(Object.fromEntries(keys.map((k, i) => [k, leaves[i]!])));
  const cts = backward(
    out,
    tensor(1, out.dtype, out.shape),
    leaves,
    (a, b) => add(a, b),
    (x, like) => cast(x, like.dtype),
  );
  return { value: out, grads: Object.fromEntries(keys.map((k, i) => [k, cts[i] ?? null])) };
}

export async function benchReplica(ctx: ReplicaContext, args: BenchArgs): Promise<ReplicaTimes> {
  const t0 = performance.now();
  const R = ctx.numReplicas,
    r = ctx.replicaId;
  const n = args.totalCache / R;
  const rng = new Rng(1000 + r);
  const shard = {
    data: { emb: normal([n, args.dim], rng, { std: 0.1 }), feat: normal([n, args.featureDim], rng) },
    age: zeros([n], 'int32'),
  };
  const W = normal([args.featureDim, args.dim], new Rng(7), { std: 0.1 }); // the same doc network on every replica
  const loss = new DistributedCacheClassificationLoss({
    embeddingKey: 'emb',
    dataKeys: ['feat'],
    scoreTransform: scaleTransform(20),
    rng: new Rng(50 + r),
  });
  const docNet =
    (w: Tensor): DocNetwork =>
    (f) =>
      matmul(f.feat!, w);
  const acc = { total: 0, byKind: {} as Record<string, number> };
  const tctx = timed(ctx, acc);
  const setupMs = performance.now() - t0;
  const times: ReplicaTimes = { step: [], collectives: [], byKind: {}, setupMs };
  for (let s = 0; s < args.warmup + args.steps; s++) {
    const q = normal([args.batch, args.dim], rng, { std: 0.1 });
    const pos = normal([args.batch, args.dim], rng, { std: 0.1 });
    await ctx.barrier(); // start every step together (untimed)
    acc.total = 0;
    acc.byKind = {};
    const start = performance.now();
    const { value, grads } = await gradAsync(
      async (p) => (await loss.call(tctx, docNet(p.w!), p.q!, pos, { cache: shard })).trainingLoss,
      { q, w: W },
    );
    const dt = performance.now() - start;
    if (!Number.isFinite(Number(value.item())) || grads.q === null || grads.w === null)
      throw new Error('benchmark step produced no finite loss or gradient');
    if (s >= args.warmup) {
      times.step.push(dt);
      times.collectives.push(acc.total);
      for (const [k, v] of Object.entries(acc.byKind)) (times.byKind[k] ??= []).push(v);
    }
  }
  return times;
}

async function main(): Promise<void> {
  const steps = Math.max(5, Number(process.argv[2] ?? '7'));
  const totalCache = Number(process.argv[3] ?? String(131072));
  const args: BenchArgs = { totalCache, batch: 128, dim: 128, featureDim: 128, steps, warmup: 2 };
  console.log(
    `sharded step: loss forward + gradient w.r.t. queries and a linear doc network [${args.featureDim}, ${args.dim}]`,
  );
  console.log(
    `${availableParallelism()} cores, load average ${loadavg()[0]!.toFixed(2)} (R = 2 needs two free cores to show its throughput)`,
  );
  console.log(
    `batch ${args.batch} per replica, dimension ${args.dim}, total cache ${totalCache} (float32, scaleTransform(20), Gumbel-max), ${steps} timed steps after ${args.warmup} warm-up`,
  );
  const rows: { R: number; step: number; coll: number; byKind: Record<string, number> }[] = [];
  for (const R of [1, 2]) {
    const res = await runWorkers<ReplicaTimes>({
      numReplicas: R,
      module: new URL(import.meta.url),
      exportName: 'benchReplica',
      args,
      timeoutMs: 120_000,
    });
    // A step ends when the slowest replica ends: per step, the maximum over replicas.
    const step = median(res[0]!.step.map((_, s) => Math.max(...res.map((x) => x.step[s]!))));
    const coll = median(res.map((x) => median(x.collectives)));
    const byKind = Object.fromEntries(
      Object.keys(res[0]!.byKind).map((k) => [k, median(res.map((x) => median(x.byKind[k]!)))]),
    );
    rows.push({ R, step, coll, byKind });
    console.log(
      `R = ${R}: ${totalCache / R} items per shard, median step ${step.toFixed(1)} ms, in collectives ${coll.toFixed(1)} ms (${((100 * coll) / step).toFixed(0)}%: ` +
        `${Object.entries(byKind)
          .map(([k, v]) => `${k} ${v.toFixed(1)} ms`)
          .join(', ')}); set-up ${Math.max(...res.map((x) => x.setupMs)).toFixed(0)} ms`,
    );
  }
  const [one, two] = rows as [(typeof rows)[0], (typeof rows)[0]];
  console.log(
    `speed-up R = 2 vs R = 1: throughput (queries per second) ×${((2 * one.step) / two.step).toFixed(2)}, step time ×${(one.step / two.step).toFixed(2)}`,
  );
}

if (isMainThread) await main();
