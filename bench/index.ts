/**
 * `npm run bench [-- names...] [-- --quick]`: runs the benchmarks one after
 * another, each in its own process (so one's memory and JIT state cannot
 * skew the next), and prints their tables. matmul and step compare against
 * TensorFlow.js, which is bench/'s own package (bench/package.json, kept out
 * of negcache's install): the first run that needs it installs it
 * (`npm ci --prefix bench`, about 300 MB; the registry is needed once).
 *
 *   matmul       matmul and exp vs tfjs-cpu (single thread)
 *   kernels      the wasm SIMD kernels vs plain JS, the fused scan
 *   step         one negative-cache step vs numpy, tfjs-cpu, tfjs-wasm (1 and 2 threads)
 *   scaling      training step time vs corpus size for the three losses
 *   sharded      the sharded loss on 1 and 2 worker replicas
 *   collectives  all-gather / all-to-all latency across worker threads
 *   search       exact Index search (1 and 2 threads) vs numpy
 *   train        training steps (cache, in-batch, full softmax) and evaluation on WordNet, against --baseline <ref>
 *   trainkernels the training kernels (Adam rows, bag products, normalisation, full softmax passes) vs their references
 *   simdpeak     the machine's ceiling for any wasm SIMD128 kernel (mul + add, relaxed FMA), 1 and 2 threads
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BENCH_DIR, installPeers, peersInstalled } from './peers.js';

const ALL = [
  'matmul',
  'kernels',
  'step',
  'scaling',
  'sharded',
  'collectives',
  'search',
  'train',
  'trainkernels',
  'simdpeak',
];
const NEEDS_PEERS = ['matmul', 'step'];
/** The file of each benchmark whose name is not its file's (the command-line names are lower case). */
const FILE: Record<string, string> = { trainkernels: 'trainKernels', simdpeak: 'simdPeak' };
const args = process.argv.slice(2);
const flags = args.filter((a) => a.startsWith('--'));
const names = args.filter((a) => !a.startsWith('--'));
const unknown = names.filter((n) => !ALL.includes(n));
if (unknown.length > 0) {
  console.error(`unknown benchmark ${unknown.join(', ')}; choose from ${ALL.join(', ')}`);
  process.exit(2);
}
const here = dirname(fileURLToPath(import.meta.url));
const selected = names.length > 0 ? names : ALL;
// matmul and step compare against TensorFlow.js, which lives in bench/'s own package: install it on first use.
if (selected.some((n) => NEEDS_PEERS.includes(n)) && !peersInstalled()) {
  console.log(`bench: installing the TensorFlow.js peers into ${BENCH_DIR}/node_modules (npm ci --prefix bench, once)`);
  if (!installPeers()) console.error(`bench: the peers did not install; matmul fails and step reports tfjs as n/a`);
}
let failed = 0;
for (const name of selected) {
  console.log(`\n=== bench/${name} ===\n`);
  const r = spawnSync(process.execPath, [join(here, `${FILE[name] ?? name}.js`), ...flags], { stdio: 'inherit' });
  if (r.status !== 0) {
    failed++;
    console.error(`bench/${name} exited with ${r.status ?? r.signal}`);
  }
}
process.exit(failed > 0 ? 1 : 0);
