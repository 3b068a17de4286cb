/**
 * Matmul and elementwise throughput, single thread, with the same matmuls in
 * @tensorflow/tfjs-core on @tensorflow/tfjs-backend-cpu in the same run.
 *
 *   npx tsc -p tsconfig.build.json && node dist/bench/matmul.js
 *
 * Prints, for each case, the median of several timed runs with the min/max
 * spread (after one untimed warm-up run):
 *  - matmul [128×128]·[65536×128]ᵀ  (cache scoring: queries against a 65536-entry cache)
 *  - matmul [1024×1024]·[1024×1024]
 *  - exp over 8M float32 elements (ns/element)
 * and the ratio negcache / tfjs-cpu (> 1 means negcache is faster).
 * Environment: BENCH_RUNS (negcache, default 5), BENCH_TF_RUNS (tfjs, default 3).
 */
import * as os from 'node:os';
import { Rng, exp, matmul, uniform, type Tensor } from '../src/index.js';
import { INSTALL_HINT, importPeer, peersInstalled, type Tf, type TfTensor } from './peers.js';

// The peer lives in bench/'s own package (bench/peers.ts); importing the CPU backend registers it with tfjs-core.
if (!peersInstalled()) {
  console.error(`bench/matmul compares against TensorFlow.js, which is not installed: ${INSTALL_HINT}`);
  process.exit(1);
}
const tf = await importPeer<Tf>('@tensorflow/tfjs-core');
await importPeer('@tensorflow/tfjs-backend-cpu');

const RUNS = Math.max(5, Number(process.env.BENCH_RUNS ?? 5) | 0);
const TF_RUNS = Math.max(3, Number(process.env.BENCH_TF_RUNS ?? 3) | 0);

interface Timing {
  median: number;
  min: number;
  max: number;
  runs: number;
}

/** Times `f` (ms): one warm-up call, then `runs` timed calls. */
function time(f: () => void, runs: number): Timing {
  f();
  const ts: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    f();
    ts.push(performance.now() - t0);
  }
  ts.sort((a, b) => a - b);
  const mid = ts.length >> 1;
  const median = ts.length % 2 ? ts[mid]! : (ts[mid - 1]! + ts[mid]!) / 2;
  return { median, min: ts[0]!, max: ts[ts.length - 1]!, runs };
}

const gflops = (flop: number, ms: number): number => flop / (ms * 1e6);
const fmt = (v: number, digits = 2): string => v.toFixed(digits);

function reportMatmul(label: string, flop: number, ours: Timing, theirs: Timing): void {
  const o = gflops(flop, ours.median),
    t = gflops(flop, theirs.median);
  console.log(label);
  console.log(
    `  negcache : ${fmt(o)} GFLOP/s median (${fmt(gflops(flop, ours.max))}–${fmt(gflops(flop, ours.min))}; ${fmt(ours.median, 0)} ms; n=${ours.runs})`,
  );
  console.log(
    `  tfjs-cpu : ${fmt(t)} GFLOP/s median (${fmt(gflops(flop, theirs.max))}–${fmt(gflops(flop, theirs.min))}; ${fmt(theirs.median, 0)} ms; n=${theirs.runs})`,
  );
  console.log(`  ratio negcache/tfjs: ${fmt(o / t)}×`);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

async function main(): Promise<void> {
  await tf.setBackend('cpu');
  await tf.ready();
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  console.log(
    `negcache matmul benchmark — single thread, node ${process.version}, ${cpu}; tfjs-core ${tf.version_core} on ${tf.getBackend()}`,
  );
  console.log(`timed runs: negcache ${RUNS}, tfjs ${TF_RUNS} (after one warm-up each); spread is min–max\n`);
  const rng = new Rng(2021);

  // 1. cache scoring: Q [128,128] · C [65536,128]ᵀ
  {
    const q = uniform([128, 128], rng, { low: -1, high: 1 });
    const c = uniform([65536, 128], rng, { low: -1, high: 1 });
    let out: Tensor | null = null;
    const ours = time(() => {
      out = matmul(q, c, { transposeB: true });
    }, RUNS);
    const tq = tf.tensor2d(q.dataSync() as Float32Array, [128, 128]);
    const tc = tf.tensor2d(c.dataSync() as Float32Array, [65536, 128]);
    let tout: TfTensor | null = null;
    const theirs = time(() => {
      tout?.dispose();
      tout = tf.matMul(tq, tc, false, true);
      tout.dataSync();
    }, TF_RUNS);
    reportMatmul('matmul [128×128]·[65536×128]ᵀ', 2 * 128 * 65536 * 128, ours, theirs);
    console.log(
      `  max |negcache - tfjs| = ${maxAbsDiff((out as unknown as Tensor).dataSync(), (tout as unknown as TfTensor).dataSync()).toExponential(2)}\n`,
    );
    tf.dispose([tq, tc, tout as unknown as TfTensor]);
  }

  // 2. square: [1024,1024] · [1024,1024]
  {
    const a = uniform([1024, 1024], rng, { low: -1, high: 1 });
    const b = uniform([1024, 1024], rng, { low: -1, high: 1 });
    let out: Tensor | null = null;
    const ours = time(() => {
      out = matmul(a, b);
    }, RUNS);
    const ta = tf.tensor2d(a.dataSync() as Float32Array, [1024, 1024]);
    const tb = tf.tensor2d(b.dataSync() as Float32Array, [1024, 1024]);
    let tout: TfTensor | null = null;
    const theirs = time(() => {
      tout?.dispose();
      tout = tf.matMul(ta, tb);
      tout.dataSync();
    }, TF_RUNS);
    reportMatmul('matmul [1024×1024]·[1024×1024]', 2 * 1024 ** 3, ours, theirs);
    console.log(
      `  max |negcache - tfjs| = ${maxAbsDiff((out as unknown as Tensor).dataSync(), (tout as unknown as TfTensor).dataSync()).toExponential(2)}\n`,
    );
    tf.dispose([ta, tb, tout as unknown as TfTensor]);
  }

  // 3. elementwise exp over 8M float32 elements
  {
    const n = 8 * 1024 * 1024;
    const x = uniform([n], rng, { low: -4, high: 4 });
    const ours = time(() => {
      exp(x);
    }, RUNS);
    const tx = tf.tensor1d(x.dataSync() as Float32Array);
    const theirs = time(() => {
      const y = tf.exp(tx);
      y.dataSync();
      y.dispose();
    }, TF_RUNS);
    console.log(`exp over ${n.toLocaleString('en-US')} float32 elements`);
    console.log(
      `  negcache : ${fmt((ours.median * 1e6) / n)} ns/element median (${fmt((ours.min * 1e6) / n)}–${fmt((ours.max * 1e6) / n)}; n=${ours.runs})`,
    );
    console.log(
      `  tfjs-cpu : ${fmt((theirs.median * 1e6) / n)} ns/element median (${fmt((theirs.min * 1e6) / n)}–${fmt((theirs.max * 1e6) / n)}; n=${theirs.runs})`,
    );
    console.log(`  ratio negcache/tfjs (throughput): ${fmt(theirs.median / ours.median)}×`);
    tx.dispose();
  }
}

await main();
