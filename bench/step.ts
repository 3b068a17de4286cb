/**
 * One negative-cache step, side by side: negcache (forward + gradients, and
 * forward only), numpy (forward, bench/numpy_step.py), TensorFlow.js with its
 * CPU and WASM backends (forward + gradients), at batch 128, dimension 128,
 * cache 8192 / 65536 / 131072.
 *
 *   npm run build && node dist/bench/step.js [--quick] [--sizes 8192,65536] [--json] [--fma] [--no-memory] [--crossover]
 *
 * --json: the last line printed is one JSON object, {"cpu", "node", "fma",
 * "rows": [{"n", "fullStep1ThreadMs", "fullStep2ThreadsMs", "numpyForwardMs",
 * "scanGflops1T", "scanGflops2T", "numpySgemmGflops1T", "numpySgemmGflops2T",
 * "wasmCeilingGflops1T", "wasmCeilingGflops2T" (bench/simdPeak.ts), "outsideScan1ThreadMs",
 * "outsideScan2ThreadsMs" (per call: the full step's time minus its own scan's, median),
 * ...}]} (medians; the numpy fields are null when python3 / numpy are missing).
 * --fma: setKernelOptions({ fma: true }) first (relaxed-SIMD FMA where the
 * engine has it: Node 22+; Node 20 ignores it). --no-memory skips the memory table.
 *
 * numpy's sgemm on the scan's own product ([b × d]·[n × d]ᵀ, OpenBLAS pinned
 * to 1 thread with OPENBLAS_NUM_THREADS=1, then 2 threads) is timed beside
 * the scan in the same run, and the table gives the ratio scan / sgemm.
 * tfjs (optional: it may not be installed) is loaded dynamically; without it
 * its columns read n/a.
 *
 * The step: scores = 20·Q·Cᵀ over the cache, one negative per query drawn
 * from the softmax over the cache, the sampled items' features through a
 * linear document network, training loss (1 - probPos)·(s⁻ - s⁺),
 * interpretable loss and staleness; gradients with respect to Q, the
 * positives and the doc network's weights.
 *
 * negcache runs twice: with the default scanner (one thread) and with
 * `createParallelScan()` (src/node/parallelScan.ts: the main thread and one
 * worker each scan half of the cache). As in training, where the cache is a
 * new array after every update, each step gets a different cache array (two
 * cache records with the same contents, alternating), so the 2-thread step
 * pays its per-step copy of the worker's rows into shared memory.
 *
 * Second table, the scoring kernel alone (fusedCacheScan, Gumbel sampler):
 * GFLOP/s = 2·b·n·d / scan time, against the machine's peak, taken as
 * cores × clock (cpu MHz in /proc/cpuinfo) × 32 float32 FLOP/cycle (one
 * 512-bit FMA, or two 256-bit FMAs, per cycle and core). The kernels are wasm
 * 128-bit SIMD without FMA, whose own ceiling is well below that. That
 * ceiling is measured in the same run (bench/simdPeak.ts: a loop of nothing
 * but independent vector multiply-adds, in the form the kernels compile to:
 * mul + add, or relaxed_madd with --fma where the engine has it), and the
 * table gives "ceiling / sgemm": what no wasm kernel can exceed, as a
 * fraction of numpy's rate, beside the scan's own fraction.
 *
 * Third table, memory (Linux): each configuration runs in a fresh child
 * process (--memory-probe n single|parallel, node --expose-gc). After the
 * cache is built and gc(), the peak-RSS mark is reset (write 5 to
 * /proc/self/clear_refs) and VmRSS read; then one step, and VmHWM - VmRSS
 * is its peak beyond everything resident before it (the cache, the program):
 * "first step" includes the buffers that stay (wasm memories, the worker
 * thread, the shared copy); "later steps" is the largest per-step transient
 * of three more steps (the mark reset before each); "retained" is VmRSS after
 * the steps and gc() minus the baseline. RSS is process-wide, so the
 * worker's memory is included.
 *
 * --crossover: single- vs 2-thread scan time for small scans (how
 * DEFAULT_MIN_WORK in src/node/parallelScan.ts was chosen).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import {
  CacheClassificationLoss,
  Rng,
  matmul,
  scaleTransform,
  tensor,
  valueAndGrad,
  type NegativeCache,
  type Tensor,
} from '../src/index.js';
import { createParallelScan } from '../src/node/parallelScan.js';
import type { FusedScanArgs, FusedScanResult } from '../src/scan/contract.js';
import { fusedCacheScan } from '../src/scan/wasm.js';
import { initWasm, kernelOptions, setKernelOptions } from '../src/tensor/kernels/wasm/index.js';
import {
  cpuModel,
  fmtTiming,
  medianOf,
  printTable,
  randomFloats,
  runNumpy,
  timeIt,
  timedCalls,
  type Timing,
} from './util.js';
import { optionalPeer, peerEntry } from './peers.js';
import { measureSimdPeak } from './simdPeak.js';

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const asJson = argv.includes('--json');
if (argv.includes('--fma')) setKernelOptions({ fma: true });
const sizesArg = argv.indexOf('--sizes');
const SIZES = sizesArg >= 0 ? argv[sizesArg + 1]!.split(',').map(Number) : [8192, 65536, 131072];
const B = 128,
  D = 128,
  F = 128,
  SCALE = 20;
const RUNS = quick ? 3 : 5;

type Scanner = (args: FusedScanArgs) => FusedScanResult;

/**
 * The step at cache size n, with `scanner` (default: the single-thread fusedCacheScan). Each call of `full`
 * also records, in `outside`, its time minus the time spent in its own scan: the step's cost outside the scan,
 * measured inside the same call (not a difference of two medians timed apart).
 */
function negcacheStep(
  n: number,
  scanner: Scanner = fusedCacheScan,
): { full: () => void; forward: () => void; outside: number[] } {
  const q = tensor(randomFloats(B * D, 1, 0.1), 'float32', [B, D]);
  const p = tensor(randomFloats(B * D, 2, 0.1), 'float32', [B, D]);
  const w = tensor(randomFloats(F * D, 3, 0.1), 'float32', [F, D]);
  const emb = randomFloats(n * D, 4, 0.1),
    feats = randomFloats(n * F, 5, 0.1);
  // Two records with the same contents but different arrays, alternating per
  // step: like training, where every update makes a new cache array.
  const records = [0, 1].map((): Record<string, NegativeCache> => ({
    cache: {
      data: { embedding: tensor(emb, 'float32', [n, D]), features: tensor(feats, 'float32', [n, F]) },
      age: tensor(new Int32Array(n), 'int32', [n]),
    },
  }));
  let flip = 0;
  const timed = timedCalls(scanner);
  const loss = new CacheClassificationLoss({
    embeddingKey: 'embedding',
    dataKeys: ['features'],
    scoreTransform: scaleTransform(SCALE),
    rng: new Rng(0),
    sampler: 'gumbel',
    scanner: timed.call,
  });
  const outside: number[] = [];
  const run = (params: { q: Tensor; p: Tensor; w: Tensor }) => {
    const out = loss.call((f) => matmul(f['features']!, params.w), params.q, params.p, records[flip++ % 2]!);
    return [out.trainingLoss, out] as const;
  };
  return {
    full: () => {
      timed.ms = 0;
      const t = performance.now();
      valueAndGrad((ps: { q: Tensor; p: Tensor; w: Tensor }) => run(ps), { hasAux: true })({ q, p, w });
      outside.push(performance.now() - t - timed.ms);
    },
    forward: () => {
      run({ q, p, w });
    },
    outside,
  };
}

async function tfjsStep(backend: 'cpu' | 'wasm', n: number): Promise<(() => void) | null> {
  try {
    // The union package registers every gradient (tfjs-core alone has none in Node) and the CPU backend.
    const tf = await optionalPeer<any>('@tensorflow/tfjs');
    if (tf === null) return null;
    if (backend === 'wasm') {
      const wasm = await optionalPeer<any>('@tensorflow/tfjs-backend-wasm');
      if (wasm === null) return null;
      // its .wasm files sit beside the entry that bench/'s install resolves (not one resolved from dist/bench)
      const dir = join(dirname(peerEntry('@tensorflow/tfjs-backend-wasm')!), '/');
      wasm.setWasmPaths(dir);
    }
    if (!(await tf.setBackend(backend))) return null;
    await tf.ready();
    const q = tf.variable(tf.tensor2d(randomFloats(B * D, 1, 0.1), [B, D]));
    const p = tf.variable(tf.tensor2d(randomFloats(B * D, 2, 0.1), [B, D]));
    const w = tf.variable(tf.tensor2d(randomFloats(F * D, 3, 0.1), [F, D]));
    const emb = tf.tensor2d(randomFloats(n * D, 4, 0.1), [n, D]);
    const feats = tf.tensor2d(randomFloats(n * F, 5, 0.1), [n, F]);
    return () => {
      tf.tidy(() => {
        // sampling and probPos are constants of the gradient: computed outside it, as stop_gradient does
        const scores = tf.mul(tf.matMul(q, emb, false, true), SCALE);
        const u = tf.randomUniform([B, n], 1e-7, 1 - 1e-7);
        const idx = tf.argMax(tf.sub(scores, tf.log(tf.neg(tf.log(u)))), 1);
        const sPos0 = tf.mul(tf.sum(tf.mul(q, p), 1), SCALE);
        const all = tf.concat([tf.expandDims(sPos0, 1), scores], 1);
        const probPos = tf.exp(tf.sub(sPos0, tf.logSumExp(all, 1)));
        const sampled = tf.gather(feats, idx);
        const cached = tf.gather(emb, idx);
        const { grads } = tf.variableGrads(() => {
          const fresh = tf.matMul(sampled, w);
          const sPos = tf.mul(tf.sum(tf.mul(q, p), 1), SCALE);
          const sNeg = tf.mul(tf.sum(tf.mul(q, fresh), 1), SCALE);
          return tf.mean(tf.mul(tf.sub(1, probPos), tf.sub(sNeg, sPos))) as ReturnType<typeof tf.scalar>;
        }, [q, p, w]);
        tf.sum(tf.square(tf.sub(cached, tf.matMul(sampled, w))), 1).dataSync();
        Object.values(grads).forEach((g) => (g as { dataSync(): unknown }).dataSync());
      });
    };
  } catch (e) {
    console.log(`tfjs-${backend}: unavailable (${(e as Error).message})`);
    return null;
  }
}

function numpyStep(n: number, runs = RUNS): Timing | null {
  return runNumpy([String(B), String(D), String(n), String(F), String(runs)]);
}

/** numpy's sgemm on the scan's product [B × D]·[n × D]ᵀ, GFLOP/s, on `threads` OpenBLAS threads. */
function numpySgemm(n: number, threads: number): number | null {
  return runNumpy(['sgemm', String(B), String(n), String(D), 'nt', String(quick ? 5 : 9)], threads)?.gflops ?? null;
}

// ---------------------------------------------------------------------------
// Memory probe (a child process per configuration)

function procStatus(): { rss: number; hwm: number } {
  const st = readFileSync('/proc/self/status', 'utf8');
  const kb = (key: string): number =>
    Number(/\s(\d+) kB/.exec(st.split('\n').find((l) => l.startsWith(key + ':')) ?? '')?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

function resetPeak(): void {
  writeFileSync('/proc/self/clear_refs', '5');
}

interface MemoryProbe {
  firstMB: number;
  laterMB: number;
  retainedMB: number;
  arrayBuffersMB: number;
}

async function memoryProbe(n: number, mode: 'single' | 'parallel'): Promise<MemoryProbe> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('--memory-probe needs node --expose-gc');
  await initWasm();
  const MB = 1024 * 1024;
  // The scanner (and its worker thread) is created after the baseline: it counts as memory of the step.
  let parallel: ReturnType<typeof createParallelScan> | null = null;
  const step = negcacheStep(n, mode === 'parallel' ? (args) => parallel!.scan(args) : undefined);
  gc();
  const ab0 = process.memoryUsage().arrayBuffers;
  resetPeak();
  const base = procStatus().rss;
  if (mode === 'parallel') parallel = createParallelScan();
  step.full();
  const first = procStatus().hwm - base;
  let later = 0;
  for (let i = 0; i < 3; i++) {
    resetPeak();
    const b0 = procStatus().rss;
    step.full();
    later = Math.max(later, procStatus().hwm - b0);
  }
  gc();
  const retained = procStatus().rss - base;
  const ab = process.memoryUsage().arrayBuffers - ab0;
  parallel?.close();
  return { firstMB: first / MB, laterMB: later / MB, retainedMB: retained / MB, arrayBuffersMB: ab / MB };
}

function runMemoryProbe(n: number, mode: 'single' | 'parallel'): MemoryProbe | null {
  if (!existsSync('/proc/self/clear_refs')) return null;
  try {
    const out = execFileSync(
      process.execPath,
      ['--expose-gc', fileURLToPath(import.meta.url), '--memory-probe', String(n), mode],
      { encoding: 'utf8' },
    );
    return JSON.parse(out.trim().split('\n').pop()!) as MemoryProbe;
  } catch (e) {
    console.log(`memory probe ${n} ${mode}: failed (${(e as Error).message.split('\n')[0]})`);
    return null;
  }
}

// ---------------------------------------------------------------------------
// The scoring kernel alone

function scanArgs(n: number, seed: number, b = B, d = D): [FusedScanArgs, FusedScanArgs] {
  const queries = randomFloats(b * d, seed, 0.1);
  const cache = randomFloats(n * d, seed + 1, 0.1);
  const a: FusedScanArgs = { queries, b, d, cache, n, scale: SCALE, sampler: 'gumbel', key: [seed, 7] };
  return [a, { ...a, cache: cache.slice() }];
}

function cpuPeak(): { gflops: number; text: string } {
  let model = 'unknown CPU',
    mhz = NaN,
    avx512 = false;
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    model = /^model name\s*:\s*(.*)$/m.exec(info)?.[1] ?? model;
    mhz = Number(/^cpu MHz\s*:\s*([\d.]+)$/m.exec(info)?.[1]);
    avx512 = /^flags\s*:.*\bavx512f\b/m.test(info);
  } catch {
    // not Linux
  }
  const cores = availableParallelism();
  const gflops = cores * (mhz / 1000) * 32;
  return {
    gflops,
    text: `peak assumed: ${cores} cores × ${(mhz / 1000).toFixed(2)} GHz (${model}, cpu MHz from /proc/cpuinfo${avx512 ? ', avx512f' : ', NO avx512f flag'}) × 32 float32 FLOP/cycle (AVX-512 FMA) = ${gflops.toFixed(0)} GFLOP/s; one core ${(gflops / cores).toFixed(0)}`,
  };
}

async function crossover(): Promise<void> {
  await initWasm();
  const parallel = createParallelScan({ minRows: 0 });
  const rows: string[][] = [];
  for (const [b, d] of [
    [16, 32],
    [32, 64],
    [B, D],
  ] as const) {
    for (const n of [512, 1024, 2048, 4096, 8192, 16384]) {
      const [a, a2] = scanArgs(n, 11, b, d);
      const reps = 41;
      const one = await timeIt(() => fusedCacheScan(a), reps, 5);
      let flip = 0;
      const two = await timeIt(() => parallel.scan(flip++ % 2 ? a : a2), reps, 5);
      rows.push([
        String(b),
        String(d),
        String(n),
        ((b * n * d) / 2 ** 20).toFixed(1),
        one.median.toFixed(3),
        two.median.toFixed(3),
        (one.median / two.median).toFixed(2),
      ]);
    }
  }
  parallel.close();
  console.log(
    '\nFused scan (Gumbel): one thread vs main + 1 worker (a new cache array each call); medians of 41, ms\n',
  );
  printTable(['b', 'd', 'cache', 'work (Mi mul-adds)', '1 thread', '2 threads', 'speed-up'], rows);
}

// ---------------------------------------------------------------------------

const probeAt = argv.indexOf('--memory-probe');
if (probeAt >= 0) {
  const r = await memoryProbe(Number(argv[probeAt + 1]), argv[probeAt + 2] === 'parallel' ? 'parallel' : 'single');
  console.log(JSON.stringify(r));
} else if (argv.includes('--crossover')) {
  await crossover();
} else {
  await main();
}

async function main(): Promise<void> {
  await initWasm();
  const parallel = createParallelScan();
  const peak = cpuPeak();
  // The wasm ceiling in the form the kernels were compiled to (before anything else loads the cores).
  const simd = await measureSimdPeak();
  const fmaKernels = kernelOptions().fmaInUse;
  const ceil1 = fmaKernels ? simd.fma1T! : simd.mulAdd1T,
    ceil2 = fmaKernels ? simd.fma2T! : simd.mulAdd2T;
  const rows: string[][] = [];
  const kernelRows: string[][] = [];
  const memRows: string[][] = [];
  const jsonRows: Record<string, number | null>[] = [];
  const noMemory = argv.includes('--no-memory');
  for (const n of SIZES) {
    // Short steps (small caches) vary more from call to call (the worker's wake-up, the collector), and five calls
    // after one warm-up gave medians 30 % apart between runs: time them over more calls after a longer warm-up.
    const [stepRuns, stepWarm] = n <= 16384 ? [quick ? 9 : 31, 10] : [RUNS, 1];
    const nc = negcacheStep(n);
    const full = await timeIt(nc.full, stepRuns, stepWarm);
    const fwd = await timeIt(nc.forward, stepRuns, stepWarm);
    // The worker's first scans at a size are slow (its JIT, its wasm memory growing): warm it like the main thread is.
    const [wa, wa2] = scanArgs(n, 31);
    for (let i = 0; i < 4; i++) parallel.scan(i % 2 ? wa : wa2);
    const nc2 = negcacheStep(n, parallel.scan);
    const full2 = await timeIt(nc2.full, stepRuns, stepWarm);
    const fwd2 = await timeIt(nc2.forward, stepRuns, stepWarm);
    const np = numpyStep(n, stepRuns);
    const cpuFn = await tfjsStep('cpu', n);
    const cpu = cpuFn ? await timeIt(cpuFn, quick || n > 8192 ? 2 : 3, 1) : null;
    const wasmFn = await tfjsStep('wasm', n);
    const wasm = wasmFn ? await timeIt(wasmFn, RUNS, 1) : null;
    const ratio = (a: Timing | null, b: Timing | null): string => (a && b ? (a.median / b.median).toFixed(2) : 'n/a');
    rows.push([
      String(n),
      fmtTiming(full),
      fmtTiming(full2),
      fmtTiming(fwd),
      fmtTiming(fwd2),
      fmtTiming(np),
      fmtTiming(cpu),
      fmtTiming(wasm),
      ratio(full, np),
      ratio(full2, np),
      ratio(cpu, full),
      ratio(wasm, full),
    ]);

    // The scoring kernel alone.
    const [a, a2] = scanArgs(n, 21);
    const reps = quick ? 5 : 9;
    const one = await timeIt(() => fusedCacheScan(a), reps, 1);
    let flip = 0;
    const twoNew = await timeIt(() => parallel.scan(flip++ % 2 ? a : a2), reps, 1);
    const copyMs = parallel.lastStats.copyMs;
    const twoSame = await timeIt(() => parallel.scan(a), reps, 1);
    // the step outside its scan, over the timed calls
    const out1 = medianOf(nc.outside.slice(-stepRuns)),
      out2 = medianOf(nc2.outside.slice(-stepRuns));
    const flop = 2 * B * n * D;
    const rate = (t: Timing): number => flop / t.median / 1e6;
    const gf = (t: Timing): string =>
      `${rate(t).toFixed(1)} (${((100 * flop) / t.median / 1e6 / peak.gflops).toFixed(1)}%)`;
    // numpy's sgemm on the same product, pinned to 1 and to 2 OpenBLAS threads, in this run
    const np1 = numpySgemm(n, 1),
      np2 = numpySgemm(n, 2);
    const vs = (ours: number, theirs: number | null): string => (theirs ? (ours / theirs).toFixed(2) : 'n/a');
    kernelRows.push([
      String(n),
      fmtTiming(one),
      gf(one),
      np1 === null ? 'n/a' : np1.toFixed(1),
      vs(rate(one), np1),
      vs(ceil1, np1),
      fmtTiming(twoNew),
      gf(twoNew),
      np2 === null ? 'n/a' : np2.toFixed(1),
      vs(rate(twoNew), np2),
      vs(ceil2, np2),
      copyMs.toFixed(1),
      fmtTiming(twoSame),
      gf(twoSame),
      `${out1.toFixed(1)} / ${out2.toFixed(1)}`,
    ]);
    jsonRows.push({
      n,
      fullStep1ThreadMs: full.median,
      fullStep2ThreadsMs: full2.median,
      numpyForwardMs: np ? np.median : null,
      scanGflops1T: rate(one),
      scanGflops2T: rate(twoNew),
      numpySgemmGflops1T: np1,
      numpySgemmGflops2T: np2,
      forward1ThreadMs: fwd.median,
      forward2ThreadsMs: fwd2.median,
      scan1ThreadMs: one.median,
      scan2ThreadsMs: twoNew.median,
      outsideScan1ThreadMs: out1,
      outsideScan2ThreadsMs: out2,
      wasmCeilingGflops1T: ceil1,
      wasmCeilingGflops2T: ceil2,
    });

    const m1 = noMemory ? null : runMemoryProbe(n, 'single'),
      m2 = noMemory ? null : runMemoryProbe(n, 'parallel');
    const mb = (m: MemoryProbe | null, k: keyof MemoryProbe): string => (m ? m[k].toFixed(1) : 'n/a');
    memRows.push([
      String(n),
      ((n * D * 4) / 2 ** 20).toFixed(0),
      mb(m1, 'firstMB'),
      mb(m2, 'firstMB'),
      mb(m1, 'laterMB'),
      mb(m2, 'laterMB'),
      mb(m1, 'retainedMB'),
      mb(m2, 'retainedMB'),
      mb(m1, 'arrayBuffersMB'),
      mb(m2, 'arrayBuffersMB'),
    ]);
    console.log(`cache ${n}: done`);
  }
  parallel.close();
  console.log(
    `\nOne negative-cache step, batch ${B}, dim ${D}, doc-network input ${F}; medians (min–max, runs); 2 threads = scanner: createParallelScan().scan\n`,
  );
  printTable(
    [
      'cache',
      'negcache full step',
      'negcache full step (2 threads)',
      'negcache forward',
      'negcache forward (2 threads)',
      'numpy forward',
      'tfjs-cpu full',
      'tfjs-wasm full',
      'negcache full / numpy fwd',
      'negcache full (2 threads) / numpy fwd',
      'tfjs-cpu / negcache',
      'tfjs-wasm / negcache',
    ],
    rows,
  );
  console.log(
    `\nThe scoring kernel alone (fused scan, Gumbel sampler): GFLOP/s = 2·b·n·d / time (share of peak); ${peak.text}` +
      `\nwasm SIMD128 ceiling measured in this run (bench/simdPeak.ts, ${fmaKernels ? 'relaxed_madd' : 'mul + add'}, the kernels' form): ` +
      `${ceil1.toFixed(1)} GFLOP/s on 1 thread, ${ceil2.toFixed(1)} on 2 (mul + add ${simd.mulAdd1T.toFixed(1)} / ${simd.mulAdd2T.toFixed(1)}` +
      `${simd.fma1T === null ? ', no relaxed SIMD in this engine' : `; relaxed_madd ${simd.fma1T.toFixed(1)} / ${simd.fma2T!.toFixed(1)}`})\n`,
  );
  printTable(
    [
      'cache',
      'scan 1 thread',
      'GFLOP/s',
      'numpy sgemm 1T GFLOP/s',
      'scan / sgemm 1T',
      'wasm ceiling / sgemm 1T',
      'scan 2 threads, new cache array',
      'GFLOP/s',
      'numpy sgemm 2T GFLOP/s',
      'scan / sgemm 2T',
      'wasm ceiling / sgemm 2T',
      'of which copy ms',
      'scan 2 threads, same array',
      'GFLOP/s',
      'full step outside its scan, 1T / 2T ms',
    ],
    kernelRows,
  );
  if (!noMemory) {
    console.log(
      '\nMemory of one full step beyond what is resident before it (MB; fresh process per cell, see the header comment)\n',
    );
    printTable(
      [
        'cache',
        'cache emb. MB',
        'first step 1T',
        'first step 2T',
        'later steps 1T',
        'later steps 2T',
        'retained 1T',
        'retained 2T',
        'arrayBuffers 1T',
        'arrayBuffers 2T',
      ],
      memRows,
    );
  }
  const ko = kernelOptions();
  console.log(
    `\n${cpuModel()}, node ${process.version}; kernels: ${ko.fmaInUse ? 'relaxed-SIMD FMA' : 'SIMD128 mul + add'}${ko.fma && !ko.relaxedSimd ? ' (--fma asked, but this engine has no relaxed SIMD)' : ''}`,
  );
  if (asJson) console.log(JSON.stringify({ cpu: cpuModel(), node: process.version, fma: ko.fmaInUse, rows: jsonRows }));
}
