/**
 * The training kernels one by one, against their plain-TypeScript references
 * measured in the same run, at the sizes of the demo's steps:
 *
 *   npm run build && node dist/bench/trainKernels.js [--quick]
 *
 * Each figure is the median of several timed calls (CPU time of this
 * process, so a busy machine inflates it less than wall time) after warm-up
 * calls. The wasm kernels and the references compute the same bits (the
 * property tests check it), so the ratio is the speed-up of the kernel
 * alone. Throughput is given where one quantity limits the kernel: rows per
 * microsecond for random row updates (memory latency), GB/s for streaming
 * kernels, GFLOP/s for the score passes (the generic matmul).
 */
import { cpus } from 'node:os';
import { Rng } from '../src/tensor/random.js';
import { initWasm } from '../src/tensor/kernels/wasm/index.js';
import {
  HeapArray,
  adamParams,
  adamRows,
  adamRowsReference,
  gatherRows,
  scatterRows,
  scatterRowsReference,
} from '../src/tensor/kernels/sparse.js';
import { l2NormalizeRows, l2NormalizeRowsReference } from '../src/tensor/kernels/rowwise.js';
import { LOCAL_BLOCK_RUNNER, type SoftmaxBlocksArgs } from '../src/tensor/kernels/scoreBlocks.js';
import { medianOf, printTable } from './util.js';

const quick = process.argv.includes('--quick');
const RUNS = quick ? 5 : 15;
await initWasm();

function cpuMs(fn: () => void): number {
  const c = process.cpuUsage();
  fn();
  const d = process.cpuUsage(c);
  return (d.user + d.system) / 1000;
}

function median(fn: () => void, runs = RUNS, warm = 2): number {
  for (let i = 0; i < warm; i++) fn();
  return medianOf(Array.from({ length: runs }, () => cpuMs(fn)));
}

const rng = new Rng(1);
const rand = (len: number, s = 1): Float32Array => Float32Array.from({ length: len }, () => (rng.uniform() - 0.5) * s);
function distinctIds(vocab: number, n: number): Int32Array {
  const all = Int32Array.from({ length: vocab }, (_, i) => i);
  for (let i = vocab - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [all[i], all[j]] = [all[j]!, all[i]!];
  }
  return all.slice(0, n);
}

const V = 1 << 18,
  D = 64;
const rows: string[][] = [];
const fmt = (ms: number): string => `${ms.toFixed(2)} ms`;

// Adam on the rows of one step (cache step: ~4 400 rows) and of the full softmax (~146 000 rows), 2^18 × 64 tables.
{
  const theta = HeapArray.from(rand(V * D)),
    m = new HeapArray(V * D),
    v = new HeapArray(V * D);
  const thetaJ = theta.data.slice(),
    mJ = new Float32Array(V * D),
    vJ = new Float32Array(V * D);
  const p = adamParams({ lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, t: 3, gscale: 1 });
  for (const n of [4400, 145968]) {
    const ids = distinctIds(V, n),
      g = rand(n * D);
    const k = median(() => adamRows(theta, m, v, g, ids, D, p));
    const r = median(() => adamRowsReference(thetaJ, mJ, vJ, g, ids, n, D, p));
    rows.push([
      `Adam rows, ${n} random of 2^18 × 64`,
      fmt(k),
      fmt(r),
      (r / k).toFixed(2),
      `${(n / k / 1000).toFixed(2)} rows/µs`,
    ]);
  }
  // As in a training step: a fresh set of rows every call, none of them in cache (a 64 MB sweep in between, untimed).
  // The `cache` recipe's step updates ~10 900 rows (1 800 query-table, 9 100 doc-table).
  {
    const n = 10900,
      sets = Array.from({ length: RUNS + 2 }, () => distinctIds(V, n)),
      g = rand(n * D),
      sweep = new Float32Array(1 << 24);
    const cold = (fn: (ids: Int32Array) => void): number => {
      const ts = sets.map((ids) => {
        for (let i = 0; i < sweep.length; i += 16) sweep[i]! += 1;
        return cpuMs(() => fn(ids));
      });
      return medianOf(ts.slice(2));
    };
    const k = cold((ids) => adamRows(theta, m, v, g, ids, D, p));
    const r = cold((ids) => adamRowsReference(thetaJ, mJ, vJ, g, ids, n, D, p));
    rows.push([
      `Adam rows, ${n} fresh random rows of 2^18 × 64 per call, cold`,
      fmt(k),
      fmt(r),
      (r / k).toFixed(2),
      `${(n / k / 1000).toFixed(2)} rows/µs`,
    ]);
  }
  const ids = distinctIds(V, 4400);
  const k = median(() => gatherRows(theta, ids, D));
  const js = median(() => {
    const out = new Float32Array(ids.length * D);
    const d = theta.data;
    for (let q = 0; q < ids.length; q++) for (let c = 0; c < D; c++) out[q * D + c] = d[ids[q]! * D + c]!;
  });
  rows.push([
    'gather 4 400 random rows',
    fmt(k),
    fmt(js),
    (js / k).toFixed(2),
    `${(4400 / k / 1000).toFixed(2)} rows/µs`,
  ]);
}

// Embedding-bag product: the full softmax's documents (112 021 bags, 3.24 M entries) as random bags of 29 features.
{
  const nRows = 145968,
    nOut = 112021,
    per = 29;
  const nnz = nOut * per;
  const from = Int32Array.from({ length: nnz }, () => rng.int(nRows));
  const to = Int32Array.from({ length: nnz }, (_, k) => Math.floor(k / per));
  const w = new Float32Array(nnz).fill(1 / per);
  const src = rand(nRows * D);
  const k = median(() => scatterRows('bench', src, nRows, from, to, w, nOut, D), quick ? 3 : 7);
  const r = median(() => scatterRowsReference(src, new Float32Array(nOut * D), from, to, w, D), quick ? 3 : 5, 1);
  rows.push([
    `bag product, ${(nnz / 1e6).toFixed(2)} M entries × 64`,
    fmt(k),
    fmt(r),
    (r / k).toFixed(2),
    `${((nnz * D * 8) / k / 1e6).toFixed(1)} GB/s read`,
  ]);
}

// Row normalisation of the full softmax's [112 021, 64] embeddings.
{
  const n = 112021;
  const x = rand(n * D);
  const k = median(() => l2NormalizeRows(x, n, D, 1e-12));
  const y = new Float32Array(n * D);
  const r = median(() => l2NormalizeRowsReference(x, y, n, D, Math.fround(1e-12)));
  rows.push([
    'l2 normalise 112 021 × 64',
    fmt(k),
    fmt(r),
    (r / k).toFixed(2),
    `${((n * D * 8) / k / 1e6).toFixed(1)} GB/s`,
  ]);
}

// The fused full softmax's two passes at the demo's size (no reference here: the plain composition is a different algorithm).
{
  const b = 128,
    n = 112021;
  // Unit rows, as the towers produce: scores in [-20, 20].
  const unit = (rows: number): Float32Array => {
    const x = rand(rows * D);
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let c = 0; c < D; c++) s += x[r * D + c]! ** 2;
      for (let c = 0; c < D; c++) x[r * D + c] = x[r * D + c]! / Math.sqrt(s);
    }
    return x;
  };
  const a: SoftmaxBlocksArgs = {
    queries: unit(b),
    docs: unit(n),
    b,
    n,
    d: D,
    scale: 20,
    targets: Int32Array.from({ length: b }, () => rng.int(n)),
    exclDoc: new Int32Array(0),
    exclQuery: new Int32Array(0),
  };
  let lse: Float64Array = new Float64Array(b);
  const f = median(
    () => {
      lse = LOCAL_BLOCK_RUNNER.softmaxForward(a).lse;
    },
    quick ? 3 : 5,
  );
  const coef = new Float32Array(b).fill(1 / b);
  const bw = median(() => LOCAL_BLOCK_RUNNER.softmaxBackward(a, lse, coef), quick ? 3 : 5);
  const flop = 2 * b * n * D;
  rows.push(['full softmax forward, 128 × 112 021 × 64', fmt(f), '', '', `${(flop / f / 1e6).toFixed(1)} GFLOP/s`]);
  rows.push(['full softmax VJP (3 products)', fmt(bw), '', '', `${((3 * flop) / bw / 1e6).toFixed(1)} GFLOP/s`]);
  const m = 1000;
  const t = median(
    () =>
      LOCAL_BLOCK_RUNNER.rank(
        rand(m * D),
        a.docs,
        m,
        n,
        D,
        Int32Array.from({ length: m }, () => rng.int(n)),
      ),
    quick ? 2 : 3,
    1,
  );
  rows.push([
    `exact ranking, ${m} queries × 112 021`,
    fmt(t),
    '',
    '',
    `${((2 * m * n * D) / t / 1e6).toFixed(1)} GFLOP/s`,
  ]);
}

console.log(
  `\nTraining kernels, CPU ms per call (median of ${RUNS}); ${cpus()[0]?.model} × ${cpus().length}, Node ${process.version}\n`,
);
printTable(['kernel', 'wasm', 'TS reference', 'ratio', 'throughput (wasm)'], rows);
