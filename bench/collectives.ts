/**
 * Latency of the collectives: allGather and allToAll of a [128,128] and a
 * [512,129] float32 tensor across 2 worker threads (shared memory), and the
 * same in one thread (runInProcess) for comparison. Median µs per call, as
 * seen by replica 0 (both replicas run in lockstep).
 *
 *   npx tsc -p tsconfig.build.json && node dist/bench/collectives.js [iterations]
 *
 * This file is also the replica module: the workers import it and run
 * `benchReplica` (the main part below only runs on the main thread).
 */
import { isMainThread } from 'node:worker_threads';
import { runInProcess } from '../src/distributed/inProcess.js';
import type { ReplicaContext } from '../src/distributed/replicaContext.js';
import { runWorkers } from '../src/node/workerGroup.js';
import { wrap, type Tensor } from '../src/tensor/tensor.js';

interface BenchArgs {
  readonly iterations: number;
  readonly warmup: number;
}

const SHAPES: readonly (readonly [number, number])[] = [
  [128, 128],
  [512, 129],
];

function median(xs: number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Times each collective; returns rows of [name, median µs, min µs]. */
export async function benchReplica(ctx: ReplicaContext, args: BenchArgs): Promise<[string, number, number][]> {
  const rows: [string, number, number][] = [];
  const R = ctx.numReplicas;
  for (const [n, d] of SHAPES) {
    const rowsN = n % R === 0 ? n : n - (n % R);
    const data = new Float32Array(rowsN * d);
    for (let i = 0; i < data.length; i++) data[i] = ctx.replicaId + i * 1e-3;
    const t: Tensor = wrap(data, [rowsN, d], 'float32');
    const ops: [string, () => Promise<unknown>][] = [
      [`allGather [${rowsN},${d}] f32 axis 0`, () => ctx.allGather(t)],
      [`allGather [${rowsN},${d}] f32 axis 1`, () => ctx.allGather(t, { axis: 1 })],
      [`allToAll [${rowsN},${d}] f32 split 0 concat 1`, () => ctx.allToAll(t, { splitAxis: 0, concatAxis: 1 })],
    ];
    for (const [name, run] of ops) {
      const times: number[] = [];
      for (let i = 0; i < args.warmup + args.iterations; i++) {
        await ctx.barrier(); // start every timed call together
        const t0 = performance.now();
        await run();
        const dt = performance.now() - t0;
        if (i >= args.warmup) times.push(dt * 1000);
      }
      rows.push([name, median(times), Math.min(...times)]);
    }
  }
  const times: number[] = [];
  for (let i = 0; i < args.warmup + args.iterations; i++) {
    const t0 = performance.now();
    await ctx.barrier();
    if (i >= args.warmup) times.push((performance.now() - t0) * 1000);
  }
  rows.push(['barrier (back to back)', median(times), Math.min(...times)]);
  return rows;
}

async function main(): Promise<void> {
  const iterations = Number(process.argv[2] ?? '300');
  const args: BenchArgs = { iterations, warmup: Math.min(50, iterations) };
  const print = (title: string, rows: [string, number, number][]): void => {
    console.log(title);
    for (const [name, med, min] of rows)
      console.log(
        `  ${name.padEnd(40)} median ${med.toFixed(1).padStart(8)} µs   min ${min.toFixed(1).padStart(8)} µs`,
      );
  };
  const workers = await runWorkers<[string, number, number][]>({
    numReplicas: 2,
    module: new URL(import.meta.url),
    exportName: 'benchReplica',
    args,
  });
  print(`2 worker threads (shared memory), ${iterations} iterations, replica 0:`, workers[0]!);
  const inProcess = await runInProcess(2, (ctx) => benchReplica(ctx, args));
  print(`2 replicas in one thread (runInProcess), ${iterations} iterations, replica 0:`, inProcess[0]!);
}

if (isMainThread) await main();
