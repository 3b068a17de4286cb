/**
 * Exact search speed: an Index of 117 791 unit vectors of dimension 64 (the
 * size of the WordNet demo's document index), 1000 queries, k = 10, on one
 * thread (Index.search) and on two (createParallelSearch: main + 1 worker),
 * with numpy in the same run as the peer (blocked Q·Dᵀ with OpenBLAS and
 * argpartition + sort of the top k, the usual numpy exact search).
 *
 *   npm run build && node dist/bench/search.js [--quick]
 *
 * Prints medians with min–max spreads (after one warm-up), ms per query and
 * the index's memory (4·n·d bytes of embeddings plus the ids).
 */
import { spawnSync } from 'node:child_process';
import * as os from 'node:os';
import { Index, Rng, l2Normalize, normal } from '../src/index.js';
import { createParallelSearch } from '../src/node/index.js';

const quick = process.argv.includes('--quick');
const RUNS = quick ? 3 : 7;
const N = 117_791,
  D = 64,
  NQ = 1000,
  K = 10;

function stats(ts: number[]): { median: number; min: number; max: number } {
  const s = ts.slice().sort((a, b) => a - b);
  const m = s.length >> 1;
  return { median: s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2, min: s[0]!, max: s[s.length - 1]! };
}

async function timeAsync(f: () => Promise<unknown> | unknown): Promise<{ median: number; min: number; max: number }> {
  await f();
  const ts: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    await f();
    ts.push(performance.now() - t0);
  }
  return stats(ts);
}

const NUMPY = `
import json, sys, time
import numpy as np
n, d, nq, k, runs = ${N}, ${D}, ${NQ}, ${K}, ${RUNS}
rng = np.random.default_rng(0)
D = rng.standard_normal((n, d), dtype=np.float32); D /= np.linalg.norm(D, axis=1, keepdims=True)
Q = rng.standard_normal((nq, d), dtype=np.float32); Q /= np.linalg.norm(Q, axis=1, keepdims=True)
def search():
    out = []
    for s in range(0, nq, 256):
        S = Q[s:s+256] @ D.T
        top = np.argpartition(-S, k, axis=1)[:, :k]
        sc = np.take_along_axis(S, top, axis=1)
        order = np.argsort(-sc, axis=1, kind='stable')
        out.append(np.take_along_axis(top, order, axis=1))
    return out
search()
ts = []
for _ in range(runs):
    t0 = time.perf_counter(); search(); ts.append(1000 * (time.perf_counter() - t0))
print(json.dumps({"ts": ts, "numpy": np.__version__}))
`;

async function main(): Promise<void> {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  console.log(
    `exact search: ${N} × ${D} index, ${NQ} queries, k = ${K}; node ${process.version}, ${os.cpus().length} × ${cpu}, load average ${os.loadavg()[0]!.toFixed(2)}`,
  );
  const rng = new Rng(7);
  const docs = l2Normalize(normal([N, D], rng));
  const queries = l2Normalize(normal([NQ, D], rng));
  const ids = Array.from({ length: N }, (_, i) => `doc${i}`);
  const index = new Index(D, { shared: true });
  index.add(ids, docs);
  const embBytes = 4 * N * D;
  const idBytes = ids.reduce((s, id) => s + 2 * id.length, 0);
  console.log(
    `memory: embeddings ${(embBytes / 2 ** 20).toFixed(1)} MiB (4·n·d) + ids ~${(idBytes / 2 ** 20).toFixed(1)} MiB (UTF-16 strings, plus a Map from id to row)`,
  );

  const one = await timeAsync(() => index.search(queries, K));
  const parallel = createParallelSearch({ workers: 1 });
  const check = await parallel.search(index, queries, K);
  const same = JSON.stringify(check) === JSON.stringify(index.search(queries, K));
  const two = await timeAsync(() => parallel.search(index, queries, K));
  parallel.close();

  const py = spawnSync('python3', ['-c', NUMPY], { encoding: 'utf8' });
  const np = py.status === 0 ? (JSON.parse(py.stdout) as { ts: number[]; numpy: string }) : null;
  const npStats = np ? stats(np.ts) : null;

  const row = (label: string, s: { median: number; min: number; max: number }): string =>
    `  ${label.padEnd(30)} ${s.median.toFixed(0).padStart(6)} ms (${s.min.toFixed(0)}–${s.max.toFixed(0)})   ${((1000 * s.median) / NQ).toFixed(0).padStart(4)} µs/query   ${((2 * N * D * NQ) / (s.median * 1e6)).toFixed(1)} GFLOP/s`;
  console.log(`\n${RUNS} timed runs each (after a warm-up); medians, min–max:`);
  console.log(row('negcache Index.search, 1 thread', one));
  console.log(row('negcache parallel, 2 threads', two));
  if (npStats) console.log(row(`numpy ${np!.numpy} (OpenBLAS)`, npStats));
  else console.log(`  numpy: not run (${py.stderr.trim().split('\n').pop() ?? 'python3 failed'})`);
  console.log(`\n2 threads / 1 thread: ${(one.median / two.median).toFixed(2)}× faster; identical results: ${same}`);
  if (npStats)
    console.log(
      `negcache / numpy: 1 thread ${(npStats.median / one.median).toFixed(2)}, 2 threads ${(npStats.median / two.median).toFixed(2)} (> 1: negcache faster)`,
    );
}

await main();
