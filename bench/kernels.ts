/**
 * Benchmarks of the WebAssembly SIMD kernels against plain JS, single thread.
 *
 *   npx tsc -p tsconfig.build.json && node dist/bench/kernels.js [--quick]
 *
 * Each figure is the median of >= 5 timed runs after warm-up runs (the first
 * calls of a wasm function run in V8's baseline compiler until TurboFan
 * tiers it up). Wrapper timings include copying inputs into and results out
 * of wasm memory; "resident" rows keep the big operand in wasm memory
 * (makeResident), as a training loop does with the cache.
 */
import { Rng } from '../src/tensor/random.js';
import { categoricalUniformCount, type FusedScanArgs, type ScanSampler } from '../src/scan/contract.js';
import { fusedScanTS, matmulNTJs } from '../src/scan/tsBackend.js';
import { fusedCacheScanWasm } from '../src/scan/wasm.js';
import {
  expWasm,
  initWasm,
  makeResident,
  matmulNNWasm,
  matmulNTWasm,
  releaseResident,
} from '../src/tensor/kernels/wasm/index.js';

const quick = process.argv.includes('--quick');
const RUNS = quick ? 3 : 5;

function median(xs: number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Median ms of `runs` timed calls after `warm` untimed ones. */
function time(fn: () => void, runs = RUNS, warm = 2): number {
  for (let i = 0; i < warm; i++) fn();
  const ts: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    fn();
    ts.push(performance.now() - t0);
  }
  return median(ts);
}

function randomArray(rng: Rng, len: number, scale = 1): Float32Array {
  const a = new Float32Array(len);
  for (let i = 0; i < len; i++) a[i] = (rng.uniform() * 2 - 1) * scale;
  return a;
}

const rows: string[][] = [];
function row(...cells: string[]): void {
  rows.push(cells);
  console.log(cells.join('  |  '));
}

async function main(): Promise<void> {
  const ok = await initWasm();
  if (!ok) {
    console.log('WebAssembly SIMD unavailable; nothing to benchmark');
    return;
  }
  const rng = new Rng(42);
  console.log(`node ${process.version}, ${RUNS} runs per figure (median)\n`);

  // --- matmulNT [128x128]·[65536x128]ᵀ -----------------------------------
  {
    const m = 128,
      n = 65536,
      k = 128;
    const a = randomArray(rng, m * k),
      b = randomArray(rng, n * k),
      c = new Float32Array(m * n);
    const flops = 2 * m * n * k;
    const tw = time(() => matmulNTWasm(a, b, m, n, k, c));
    makeResident(b);
    const tr = time(() => matmulNTWasm(a, b, m, n, k, c));
    releaseResident(b);
    const tj = time(() => matmulNTJs(a, b, m, n, k, c), quick ? 1 : 5, 1);
    row(
      'matmulNT 128x128 · (65536x128)ᵀ',
      `wasm ${tw.toFixed(1)} ms = ${(flops / tw / 1e6).toFixed(1)} GFLOP/s`,
      `wasm resident B ${tr.toFixed(1)} ms = ${(flops / tr / 1e6).toFixed(1)} GFLOP/s`,
      `JS 4x4 tile ${tj.toFixed(1)} ms = ${(flops / tj / 1e6).toFixed(2)} GFLOP/s`,
    );
  }

  // --- matmulNN 1024³ -----------------------------------------------------
  {
    const m = 1024,
      n = 1024,
      k = 1024;
    const a = randomArray(rng, m * k),
      b = randomArray(rng, k * n),
      c = new Float32Array(m * n);
    const flops = 2 * m * n * k;
    const tw = time(() => matmulNNWasm(a, b, m, n, k, c));
    const bt = new Float32Array(n * k);
    const tj = time(
      () => {
        for (let p = 0; p < k; p++) for (let j = 0; j < n; j++) bt[j * k + p] = b[p * n + j]!;
        matmulNTJs(a, bt, m, n, k, c);
      },
      quick ? 1 : 5,
      1,
    );
    row(
      'matmulNN 1024³',
      `wasm ${tw.toFixed(1)} ms = ${(flops / tw / 1e6).toFixed(1)} GFLOP/s`,
      `JS (transpose + 4x4 tile) ${tj.toFixed(1)} ms = ${(flops / tj / 1e6).toFixed(2)} GFLOP/s`,
    );
  }

  // --- exp over 8M --------------------------------------------------------
  {
    const len = 8 * 1024 * 1024;
    const x = randomArray(rng, len, 30),
      y = new Float32Array(len);
    const tw = time(() => expWasm(x, y));
    const tj = time(() => {
      for (let i = 0; i < len; i++) y[i] = Math.exp(x[i]!);
    });
    row(
      'exp over 8M floats',
      `wasm ${((tw * 1e6) / len).toFixed(2)} ns/elem (${tw.toFixed(1)} ms, with copies)`,
      `Math.exp loop ${((tj * 1e6) / len).toFixed(2)} ns/elem (${tj.toFixed(1)} ms)`,
    );
  }

  // --- fused scan -------------------------------------------------------
  const b = 128,
    d = 128;
  const queries = randomArray(rng, b * d, 0.3);
  for (const n of [8192, 65536, 131072]) {
    const cache = randomArray(rng, n * d, 0.3);
    for (const sampler of ['none', 'gumbel', 'categorical'] as ScanSampler[]) {
      for (const topKGroups of [undefined, 64]) {
        if (topKGroups !== undefined && sampler !== 'gumbel') continue;
        const args: FusedScanArgs = {
          queries,
          b,
          d,
          cache,
          n,
          scale: 20,
          sampler,
          key: [rng.nextUint32(), rng.nextUint32()],
          uniforms: new Float64Array(categoricalUniformCount(b, n, topKGroups)).map(() => rng.uniformOpen()),
          topKGroups,
        };
        const tw = time(() => fusedCacheScanWasm(args));
        makeResident(cache);
        const tr = time(() => fusedCacheScanWasm(args));
        releaseResident(cache);
        const cells = [
          `fused scan b=128 d=128 n=${n} ${sampler}${topKGroups ? ` topK=${topKGroups}` : ''}`,
          `wasm ${tw.toFixed(1)} ms`,
          `wasm resident cache ${tr.toFixed(1)} ms`,
        ];
        if (n === 8192) cells.push(`TS streaming ${time(() => fusedScanTS(args), quick ? 1 : 5, 1).toFixed(1)} ms`);
        row(...cells);
      }
    }
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
