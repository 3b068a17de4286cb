/**
 * One negative-cache step, side by side: negcache (forward + gradients, and
 * forward only), numpy (forward, bench/numpy_step.py), TensorFlow.js with its
 * CPU and WASM backends (forward + gradients), at batch 128, dimension 128,
 * cache 8192 / 65536 / 131072.
 *
 *   npm run build && node dist/bench/step.js [--quick] [--sizes 8192,65536]
 *
 * The step: scores = 20·Q·Cᵀ over the cache, one negative per query drawn
 * from the softmax over the cache, the sampled items' features through a
 * linear document network, training loss (1 - probPos)·(s⁻ - s⁺),
 * interpretable loss and staleness; gradients with respect to Q, the
 * positives and the doc network's weights.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import {
  CacheClassificationLoss, Rng, matmul, scaleTransform, tensor, valueAndGrad, type NegativeCache, type Tensor,
} from '../src/index.js';
import { fmtTiming, printTable, randomFloats, timeIt, type Timing } from './util.js';

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const sizesArg = argv.indexOf('--sizes');
const SIZES = sizesArg >= 0 ? argv[sizesArg + 1]!.split(',').map(Number) : [8192, 65536, 131072];
const B = 128, D = 128, F = 128, SCALE = 20;
const RUNS = quick ? 3 : 5;

function negcacheStep(n: number): { full: () => void; forward: () => void } {
  const q = tensor(randomFloats(B * D, 1, 0.1), 'float32', [B, D]);
  const p = tensor(randomFloats(B * D, 2, 0.1), 'float32', [B, D]);
  const w = tensor(randomFloats(F * D, 3, 0.1), 'float32', [F, D]);
  const cache: Record<string, NegativeCache> = {
    cache: {
      data: { embedding: tensor(randomFloats(n * D, 4, 0.1), 'float32', [n, D]), features: tensor(randomFloats(n * F, 5, 0.1), 'float32', [n, F]) },
      age: tensor(new Int32Array(n), 'int32', [n]),
    },
  };
  const loss = new CacheClassificationLoss({
    embeddingKey: 'embedding', dataKeys: ['features'], scoreTransform: scaleTransform(SCALE), rng: new Rng(0), sampler: 'gumbel',
  });
  const run = (params: { q: Tensor; p: Tensor; w: Tensor }) => {
    const out = loss.call((f) => matmul(f['features']!, params.w), params.q, params.p, cache);
    return [out.trainingLoss, out] as const;
  };
  return {
    full: () => { valueAndGrad((ps: { q: Tensor; p: Tensor; w: Tensor }) => run(ps), { hasAux: true })({ q, p, w }); },
    forward: () => { run({ q, p, w }); },
  };
}

async function tfjsStep(backend: 'cpu' | 'wasm', n: number): Promise<(() => void) | null> {
  try {
    // The union package registers every gradient (tfjs-core alone has none in Node) and the CPU backend.
    const tf = await import('@tensorflow/tfjs');
    if (backend === 'wasm') {
      const wasm = await import('@tensorflow/tfjs-backend-wasm');
      const dir = join(dirname(fileURLToPath(import.meta.resolve('@tensorflow/tfjs-backend-wasm'))), '/');
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
        Object.values(grads).forEach((g) => g.dataSync());
      });
    };
  } catch (e) {
    console.log(`tfjs-${backend}: unavailable (${(e as Error).message})`);
    return null;
  }
}

function numpyStep(n: number): Timing | null {
  const script = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'numpy_step.py');
  if (!existsSync(script)) return null;
  try {
    const env = { ...process.env };
    delete env['OPENBLAS_CORETYPE'];
    delete env['OPENBLAS_L2_SIZE'];
    const out = execFileSync('python3', [script, String(B), String(D), String(n), String(F), String(RUNS)], { env, encoding: 'utf8' });
    const r = JSON.parse(out.trim().split('\n').pop()!) as Timing;
    return r;
  } catch (e) {
    console.log(`numpy: skipped (${(e as Error).message.split('\n')[0]})`);
    return null;
  }
}

const rows: string[][] = [];
for (const n of SIZES) {
  const nc = negcacheStep(n);
  const full = await timeIt(nc.full, RUNS, 1);
  const fwd = await timeIt(nc.forward, RUNS, 1);
  const np = numpyStep(n);
  const cpuFn = await tfjsStep('cpu', n);
  const cpu = cpuFn ? await timeIt(cpuFn, quick || n > 8192 ? 2 : 3, 1) : null;
  const wasmFn = await tfjsStep('wasm', n);
  const wasm = wasmFn ? await timeIt(wasmFn, RUNS, 1) : null;
  const ratio = (a: Timing | null, b: Timing | null): string => (a && b ? (a.median / b.median).toFixed(2) : 'n/a');
  rows.push([String(n), fmtTiming(full), fmtTiming(fwd), fmtTiming(np), fmtTiming(cpu), fmtTiming(wasm),
    ratio(full, np), ratio(cpu, full), ratio(wasm, full)]);
  console.log(`cache ${n}: done`);
}
console.log(`\nOne negative-cache step, batch ${B}, dim ${D}, doc-network input ${F}; medians (min–max, runs)\n`);
printTable(['cache', 'negcache full step', 'negcache forward', 'numpy forward', 'tfjs-cpu full', 'tfjs-wasm full', 'negcache full / numpy fwd', 'tfjs-cpu / negcache', 'tfjs-wasm / negcache'], rows);
