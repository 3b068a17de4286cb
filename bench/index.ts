/**
 * `npm run bench [-- names...] [-- --quick]`: runs the benchmarks one after
 * another, each in its own process (so one's memory and JIT state cannot
 * skew the next), and prints their tables.
 *
 *   matmul       matmul and exp vs tfjs-cpu (single thread)
 *   kernels      the wasm SIMD kernels vs plain JS, the fused scan
 *   step         one negative-cache step vs numpy, tfjs-cpu, tfjs-wasm (1 and 2 threads)
 *   scaling      training step time vs corpus size for the three losses
 *   sharded      the sharded loss on 1 and 2 worker replicas
 *   collectives  all-gather / all-to-all latency across worker threads
 *   train        training steps (cache, in-batch, full softmax) and evaluation on WordNet, against --baseline <ref>
 *   trainkernels the training kernels (Adam rows, bag products, normalisation, full softmax passes) vs their references
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ALL = ['matmul', 'kernels', 'step', 'scaling', 'sharded', 'collectives', 'train', 'trainkernels'];
const args = process.argv.slice(2);
const flags = args.filter((a) => a.startsWith('--'));
const names = args.filter((a) => !a.startsWith('--'));
const unknown = names.filter((n) => !ALL.includes(n));
if (unknown.length > 0) {
  console.error(`unknown benchmark ${unknown.join(', ')}; choose from ${ALL.join(', ')}`);
  process.exit(2);
}
const here = dirname(fileURLToPath(import.meta.url));
let failed = 0;
for (const name of names.length > 0 ? names : ALL) {
  console.log(`\n=== bench/${name} ===\n`);
  const r = spawnSync(process.execPath, [join(here, `${name}.js`), ...flags], { stdio: 'inherit' });
  if (r.status !== 0) {
    failed++;
    console.error(`bench/${name} exited with ${r.status ?? r.signal}`);
  }
}
process.exit(failed > 0 ? 1 : 0);
