/**
 * The worker side of createParallelSearch (parallelSearch.ts), run from the
 * compiled output (dist/src/node/parallelSearchWorker.js). It keeps a view
 * of the index's rows in shared memory (sent once per index version) and
 * answers each job — top k of a row range for a batch of queries — with
 * topKRange, the same function the main thread runs on its own range.
 *
 * Messages in:  { data: SharedArrayBuffer, length }     (a new or grown index)
 *               { seq, queries, nq, d, k, rowStart, rowEnd, kernel }
 * Messages out: { seq, scores, rows, counts } | { seq, error }
 */
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { scoreKernel, topKRange } from '../search/searchIndex.js';

export interface SearchJob {
  seq: number;
  queries: Float32Array;
  nq: number;
  d: number;
  k: number;
  rowStart: number;
  rowEnd: number;
  kernel: 'wasm' | 'ts';
}

export interface SearchWorkerInit {
  negcacheParallelSearch: 1;
}

function serve(): void {
  const port = parentPort!;
  let data: Float32Array = new Float32Array(0);
  port.on('message', (m: { data?: SharedArrayBuffer; length?: number } | SearchJob) => {
    if ('data' in m && m.data !== undefined) {
      data = new Float32Array(m.data, 0, m.length);
      return;
    }
    const job = m as SearchJob;
    try {
      // Both sides must score with the same kernel, or equal inputs could rank differently.
      if (job.kernel !== scoreKernel())
        throw new Error(
          `the worker scores with the ${scoreKernel()} kernel but the main thread with ${job.kernel}; results would differ`,
        );
      const r = topKRange(job.queries, job.nq, data, job.d, job.rowStart, job.rowEnd, job.k, job.kernel);
      port.postMessage({ seq: job.seq, scores: r.scores, rows: r.rows, counts: r.counts }, [
        r.scores.buffer as ArrayBuffer,
        r.rows.buffer as ArrayBuffer,
        r.counts.buffer as ArrayBuffer,
      ]);
    } catch (e) {
      port.postMessage({ seq: job.seq, error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) });
    }
  });
}

if (!isMainThread && (workerData as SearchWorkerInit | undefined)?.negcacheParallelSearch === 1) serve();
