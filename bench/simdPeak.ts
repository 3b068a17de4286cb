/**
 * The machine's ceiling for ANY WebAssembly float32 kernel: the multiply-add
 * rate of 128-bit SIMD measured on a loop that does nothing else (no loads,
 * no stores, no branches but the loop's; 12, 16 and 24 independent
 * accumulator chains, enough to cover the latency of a multiply and an add
 * on every CPU we know, and the best of the three is taken, so that a
 * register spill of the engine's code generator does not lower the ceiling;
 * on the Xeon of docs/training-speed.md they were within 10 %). Two forms:
 *
 *   - `mul+add`: f32x4.mul then f32x4.add (the SIMD128 kernels' form, and the
 *     only one Node 20 has). Counted as 2 FLOP per lane.
 *   - `relaxed_madd`: f32x4.relaxed_madd, a fused multiply-add where the
 *     engine has relaxed SIMD and the CPU has FMA (Node 22+). 2 FLOP per lane.
 *
 * On one thread, and on `threads` threads at once (worker_threads running the
 * same loop, timed from the first start to the last finish). A scan, a matrix
 * product or anything else written in wasm cannot exceed these rates on this
 * machine; bench/step.ts prints them beside numpy's sgemm, so the ratio
 * "ceiling / sgemm" bounds what "scan / sgemm" can reach here.
 *
 *   npm run build && node dist/bench/simdPeak.js [--json]
 */
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { FunctionBuilder, ModuleBuilder, webAssemblyApi } from '../src/tensor/kernels/wasm/emitter.js';
import { relaxedSimdSupported } from '../src/tensor/kernels/wasm/index.js';

/** Independent accumulator chains per loop iteration: the variants tried. */
const CHAINS = [12, 16, 24];

/**
 * peak(iters) -> f32: iters × chains vector multiply-adds acc_k = acc_k·m + c,
 * with m just below 1 and c small, so the values stay finite and normal.
 * The lanes of the accumulators are summed into the result, so the loop
 * cannot be dropped.
 */
export function peakModule(fma: boolean, chains: number): Uint8Array {
  const fn = new FunctionBuilder('peak', ['i32'], ['f32']);
  const iters = fn.param(0);
  const m = fn.local('v128'),
    c = fn.local('v128'),
    sum = fn.local('v128');
  const acc = Array.from({ length: chains }, () => fn.local('v128'));
  fn.f32Const(0.999).f32x4Splat().set(m);
  fn.f32Const(1e-3).f32x4Splat().set(c);
  acc.forEach((a, k) =>
    fn
      .f32Const(k / chains)
      .f32x4Splat()
      .set(a),
  );
  fn.block((exit) => {
    fn.loop((top) => {
      fn.get(iters).i32Eqz().brIf(exit);
      for (const a of acc) {
        if (fma) fn.get(a).get(m).get(c).f32x4RelaxedMadd().set(a);
        else fn.get(a).get(m).f32x4Mul().get(c).f32x4Add().set(a);
      }
      fn.get(iters).i32Const(1).i32Sub().set(iters);
      fn.br(top);
    });
  });
  for (const a of acc) fn.get(sum).get(a).f32x4Add().set(sum);
  fn.get(sum).f32x4ExtractLane(0);
  const mod = new ModuleBuilder();
  mod.add(fn);
  return mod.emit();
}

/** FLOP of peak(iters) with `chains` chains. */
export const peakFlop = (iters: number, chains: number): number => iters * chains * 4 * 2;

type PeakFn = (iters: number) => number;

function instantiate(bytes: Uint8Array): PeakFn {
  const api = webAssemblyApi()!;
  return new api.Instance(new api.Module(bytes), {}).exports['peak'] as PeakFn;
}

/** Iterations per timed call: ~20 ms at 16 chains on a machine doing 30 GFLOP/s. */
const ITERS = 5_000_000;

/**
 * Calls `fn` for at least 300 ms: long enough for the engine to tier the loop
 * up to its optimising compiler (V8 compiles it on a background thread and
 * swaps it in at a later call; until then the baseline code runs slower).
 */
function warmUp(fn: PeakFn): void {
  for (const t = performance.now(); performance.now() - t < 300;) fn(ITERS / 10);
}

/**
 * The highest GFLOP/s of `reps` timed calls on this thread, after warmUp. The
 * best, not the median: a ceiling is what the machine can do, and every
 * disturbance (an interrupt, a compile, the other thread) only lowers a rate.
 */
function rateHere(fn: PeakFn, chains: number, reps: number): number {
  warmUp(fn);
  const rates: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    fn(ITERS);
    rates.push(peakFlop(ITERS, chains) / (performance.now() - t) / 1e6);
  }
  return Math.max(...rates);
}

/** The loop run by `threads` workers at once: the combined rate, the best of `reps` rounds (as rateHere). */
async function rateThreads(bytes: Uint8Array, chains: number, threads: number, reps: number): Promise<number> {
  const src = `
    const { parentPort, workerData } = require('node:worker_threads');
    const peak = new WebAssembly.Instance(new WebAssembly.Module(workerData.bytes)).exports.peak;
    for (const t = performance.now(); performance.now() - t < 300; ) peak(${ITERS / 10});
    const flag = new Int32Array(workerData.go);
    parentPort.on('message', (round) => {
      while (Atomics.load(flag, 0) < round) Atomics.wait(flag, 0, round - 1, 5);
      const t0 = performance.now();
      peak(${ITERS});
      parentPort.postMessage({ t0: performance.timeOrigin + t0, t1: performance.timeOrigin + performance.now() });
    });
    parentPort.postMessage('ready');`;
  const go = new SharedArrayBuffer(4);
  const flag = new Int32Array(go);
  const workers = Array.from({ length: threads }, () => new Worker(src, { eval: true, workerData: { bytes, go } }));
  const next = (w: Worker): Promise<unknown> => new Promise((res) => w.once('message', res));
  await Promise.all(workers.map(next)); // ready
  const rates: number[] = [];
  try {
    for (let r = 1; r <= reps; r++) {
      const done = workers.map(next) as Promise<{ t0: number; t1: number }>[];
      for (const w of workers) w.postMessage(r);
      await new Promise((res) => setTimeout(res, 20)); // every worker is waiting on the flag
      Atomics.store(flag, 0, r);
      Atomics.notify(flag, 0);
      const spans = await Promise.all(done);
      const ms = Math.max(...spans.map((s) => s.t1)) - Math.min(...spans.map((s) => s.t0));
      rates.push((threads * peakFlop(ITERS, chains)) / ms / 1e6);
    }
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  return Math.max(...rates);
}

export interface SimdPeak {
  /** mul+add (SIMD128), GFLOP/s on one thread and on `threads` threads. */
  mulAdd1T: number;
  mulAdd2T: number;
  /** relaxed_madd, null where the engine has no relaxed SIMD. */
  fma1T: number | null;
  fma2T: number | null;
}

/** The best rate over the chain counts, on one thread and on two. */
async function best(fma: boolean, reps: number): Promise<[number, number]> {
  let one = 0,
    two = 0;
  for (const chains of CHAINS) {
    const bytes = peakModule(fma, chains);
    one = Math.max(one, rateHere(instantiate(bytes), chains, reps));
    two = Math.max(two, await rateThreads(bytes, chains, 2, reps));
  }
  return [one, two];
}

/** Measures both forms on 1 and 2 threads (~6 s). */
export async function measureSimdPeak(reps = 5): Promise<SimdPeak> {
  const [mulAdd1T, mulAdd2T] = await best(false, reps);
  const [fma1T, fma2T] = relaxedSimdSupported() ? await best(true, reps) : [null, null];
  return { mulAdd1T, mulAdd2T, fma1T, fma2T };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const p = await measureSimdPeak();
  const f = (x: number | null): string => (x === null ? 'n/a (no relaxed SIMD in this engine)' : `${x.toFixed(1)}`);
  console.log(
    `wasm SIMD128 ceiling, Node ${process.version}: GFLOP/s (the best of 5 calls at each of 12/16/24 chains)`,
  );
  console.log(`  mul+add       1 thread ${f(p.mulAdd1T)}   2 threads ${f(p.mulAdd2T)}`);
  console.log(`  relaxed_madd  1 thread ${f(p.fma1T)}   2 threads ${f(p.fma2T)}`);
  if (process.argv.includes('--json')) console.log(JSON.stringify({ node: process.version, ...p }));
}
