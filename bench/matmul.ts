/**
 * Matmul and elementwise throughput, single thread, against numpy's sgemm
 * (OpenBLAS pinned to one thread) and, if installed, @tensorflow/tfjs-core on
 * @tensorflow/tfjs-backend-cpu, in the same run.
 *
 *   npx tsc -p tsconfig.build.json && node dist/bench/matmul.js [--quick] [--fma]
 *
 * Prints, for each case, the median of several timed runs with the min/max
 * spread (after one untimed warm-up run):
 *  - matmul [128×128]·[65536×128]ᵀ  (cache scoring: queries against a 65536-entry cache)
 *  - matmul [1024×128]·[117791×128]ᵀ (evaluation: queries against every document; --quick: 16384 documents)
 *  - matmul [1024×1024]·[1024×1024]  (NN)
 *  - exp over 8M float32 elements (ns/element)
 * and the ratios negcache / numpy and negcache / tfjs (> 1 means negcache is faster).
 * Environment: BENCH_RUNS (negcache, default 5), BENCH_TF_RUNS (tfjs, default 3).
 * --fma: setKernelOptions({ fma: true }) (relaxed-SIMD FMA where the engine has it).
 */
import { Rng, exp, matmul, uniform, type Tensor } from '../src/index.js';
import { kernelOptions, setKernelOptions } from '../src/tensor/kernels/wasm/index.js';
import { cpuModel, runNumpy } from './util.js';
import { optionalPeer } from './peers.js';

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
if (argv.includes('--fma')) setKernelOptions({ fma: true });
const RUNS = Math.max(quick ? 3 : 5, Number(process.env.BENCH_RUNS ?? 5) | 0);
const TF_RUNS = Math.max(quick ? 2 : 3, Number(process.env.BENCH_TF_RUNS ?? 3) | 0);

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

/** The tfjs-core CPU backend, if installed (it may live in bench's own package, or nowhere). */
// The tfjs types are not needed (nor necessarily installed): a minimal shape of what is used.
interface TfTensor {
  dataSync(): ArrayLike<number>;
  dispose(): void;
}
interface Tf {
  setBackend(name: string): Promise<boolean>;
  ready(): Promise<void>;
  getBackend(): string;
  version_core: string;
  tensor1d(values: Float32Array): TfTensor;
  tensor2d(values: Float32Array, shape: [number, number]): TfTensor;
  matMul(a: TfTensor, b: TfTensor, transposeA?: boolean, transposeB?: boolean): TfTensor;
  exp(x: TfTensor): TfTensor;
  dispose(t: TfTensor[]): void;
}

async function loadTf(): Promise<Tf | null> {
  const tf = await optionalPeer<Tf>('@tensorflow/tfjs-core');
  if (tf === null || (await optionalPeer('@tensorflow/tfjs-backend-cpu')) === null) return null;
  await tf.setBackend('cpu');
  await tf.ready();
  return tf;
}

function line(label: string, flop: number, t: Timing | null, ms?: number): string {
  if (t === null && ms === undefined) return `  ${label}: n/a`;
  if (t === null) return `  ${label}: ${fmt(gflops(flop, ms!))} GFLOP/s median (${fmt(ms!, 0)} ms)`;
  return `  ${label}: ${fmt(gflops(flop, t.median))} GFLOP/s median (${fmt(gflops(flop, t.max))}–${fmt(gflops(flop, t.min))}; ${fmt(t.median, 0)} ms; n=${t.runs})`;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

async function product(
  tf: Tf | null,
  rng: Rng,
  label: string,
  m: number,
  n: number,
  k: number,
  nt: boolean,
): Promise<void> {
  const a = uniform([m, k], rng, { low: -1, high: 1 });
  const b = uniform(nt ? [n, k] : [k, n], rng, { low: -1, high: 1 });
  const flop = 2 * m * n * k;
  let out: Tensor | null = null;
  const ours = time(() => {
    out = matmul(a, b, { transposeB: nt });
  }, RUNS);
  const np = runNumpy(['sgemm', String(m), String(n), String(k), nt ? 'nt' : 'nn', String(RUNS)], 1);
  console.log(label);
  console.log(line('negcache     ', flop, ours));
  console.log(np ? line('numpy sgemm 1T', flop, null, np.median) : '  numpy sgemm 1T: n/a');
  if (np) console.log(`  ratio negcache / numpy: ${fmt(np.median / ours.median)}`);
  if (tf !== null && flop <= 2 * 1024 ** 3 * 2) {
    const ta = tf.tensor2d(a.dataSync() as Float32Array, [m, k]);
    const tb = tf.tensor2d(b.dataSync() as Float32Array, nt ? [n, k] : [k, n]);
    let tout: TfTensor | null = null;
    const theirs = time(() => {
      tout?.dispose();
      tout = tf.matMul(ta, tb, false, nt);
      tout.dataSync();
    }, TF_RUNS);
    console.log(line('tfjs-cpu     ', flop, theirs));
    console.log(`  ratio negcache / tfjs: ${fmt(theirs.median / ours.median)}`);
    console.log(
      `  max |negcache - tfjs| = ${maxAbsDiff((out as unknown as Tensor).dataSync(), (tout as unknown as TfTensor).dataSync()).toExponential(2)}`,
    );
    tf.dispose([ta, tb, tout as unknown as TfTensor]);
  }
  console.log('');
}

async function main(): Promise<void> {
  const tf = await loadTf();
  const ko = kernelOptions();
  console.log(
    `negcache matmul benchmark — single thread, node ${process.version}, ${cpuModel()}; kernels ${ko.fmaInUse ? 'relaxed-SIMD FMA' : 'SIMD128 mul + add'}${tf ? `; tfjs-core ${tf.version_core} on ${tf.getBackend()}` : ''}`,
  );
  console.log(
    `timed runs: negcache ${RUNS}, numpy ${RUNS}, tfjs ${TF_RUNS} (after one warm-up each); spread is min–max\n`,
  );
  const rng = new Rng(2021);
  await product(tf, rng, 'matmul [128×128]·[65536×128]ᵀ (NT)', 128, 65536, 128, true);
  const docs = quick ? 16384 : 117791;
  await product(tf, rng, `matmul [1024×128]·[${docs}×128]ᵀ (NT, evaluation)`, 1024, docs, 128, true);
  await product(tf, rng, 'matmul [1024×1024]·[1024×1024] (NN)', 1024, 1024, 1024, false);

  // elementwise exp over 8M float32 elements
  const n = 8 * 1024 * 1024;
  const x = uniform([n], rng, { low: -4, high: 4 });
  const ours = time(() => {
    exp(x);
  }, RUNS);
  console.log(`exp over ${n.toLocaleString('en-US')} float32 elements`);
  console.log(
    `  negcache : ${fmt((ours.median * 1e6) / n)} ns/element median (${fmt((ours.min * 1e6) / n)}–${fmt((ours.max * 1e6) / n)}; n=${ours.runs})`,
  );
  if (tf !== null) {
    const tx = tf.tensor1d(x.dataSync() as Float32Array);
    const theirs = time(() => {
      const y = tf.exp(tx);
      y.dataSync();
      y.dispose();
    }, TF_RUNS);
    console.log(
      `  tfjs-cpu : ${fmt((theirs.median * 1e6) / n)} ns/element median (${fmt((theirs.min * 1e6) / n)}–${fmt((theirs.max * 1e6) / n)}; n=${theirs.runs})`,
    );
    console.log(`  ratio negcache/tfjs (throughput): ${fmt(theirs.median / ours.median)}×`);
    tx.dispose();
  }
}

await main();
