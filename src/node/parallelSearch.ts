/**
 * Exact search on several cores (Node only):
 *
 *   const parallel = createParallelSearch();          // main thread + 1 worker
 *   const hits = await parallel.search(index, queries, 10);
 *   parallel.close();                                  // optional: the worker is unref'ed
 *
 * The rows are cut into equal contiguous ranges, one for the main thread
 * and one per worker; each side computes the top k of its range with
 * topKRange (the function Index.search runs over all rows) and the main
 * thread merges them with mergeTopK. Every (query, row) score comes from the
 * same kernel whichever range holds the row (see searchIndex.ts), and the
 * merge keeps the order (score descending, row ascending), so the results
 * are IDENTICAL to index.search(queries, k): same ids, same scores, same
 * order. The split depends only on the index size and the number of workers.
 *
 * Data. A worker reads the index rows from shared memory. An index created
 * with `{shared: true}` (or decoded with it) is already in a
 * SharedArrayBuffer and is handed over as is; otherwise the worker's rows
 * are copied once into a shared buffer kept for that index (identity) and
 * version, and copied again only after rows are added. Queries are copied
 * to the worker per call (small).
 *
 * Size. A search whose work nq·n·d is below `minWork` multiply-adds (default
 * 2^23, about 0.25 ms of kernel time) runs on the main thread alone: posting
 * the job and waking the worker costs ~0.1–0.2 ms.
 *
 * Failure. A job that throws in the worker rejects that search with a
 * ParallelSearchError (the searcher stays usable). A worker that exits or
 * crashes rejects the pending search and every later one. Calls run one at a
 * time (a second search waits for the first).
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { ArgumentError, NegcacheError, describe } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import {
  Index,
  mergeTopK,
  scoreKernel,
  topKRange,
  type SearchResult,
  type TopKPartial,
} from '../search/searchIndex.js';
import type { SearchJob, SearchWorkerInit } from './parallelSearchWorker.js';
import { builtSibling, resolveWorkerEntry } from './workerFiles.js';

/** A parallel search that could not complete. */
export class ParallelSearchError extends NegcacheError {}

export interface ParallelSearchOptions {
  /** Worker threads besides the main thread (default 1 on a machine with 2+ cores, else 0). */
  workers?: number;
  /** Below this many multiply-adds (nq · n · d) search on the main thread only (default 2^23). */
  minWork?: number;
  /** The compiled worker module (default: parallelSearchWorker.js beside this module, or dist/src/node/ from source). */
  workerEntry?: string | URL;
}

export interface ParallelSearchStats {
  /** Whether the last search used the workers. */
  parallel: boolean;
  /** Row ranges: [0] the main thread's, then one per worker. */
  ranges: [number, number][];
  /** Floats copied into shared memory by the last search (0 for a shared index or a reused copy). */
  copied: number;
}

export interface ParallelSearch {
  /** The same results as index.search(queries, k), computed on the main thread and the workers. */
  search(index: Index, queries: Tensor | Float32Array, k: number): Promise<SearchResult[]>;
  /** Terminates the workers (idempotent); later searches reject. */
  close(): void;
  readonly workers: number;
  readonly lastStats: ParallelSearchStats;
}

/** Where the compiled worker module lives. */
export function defaultSearchWorkerEntry(): URL {
  return builtSibling(import.meta.url, 'parallelSearchWorker.js');
}

interface Slot {
  worker: Worker;
  /** The index storage this worker holds a view of. */
  sent: { buffer: SharedArrayBuffer; length: number } | null;
  pending: Map<number, { resolve: (p: TopKPartial) => void; reject: (e: Error) => void; k: number }>;
  dead: string | null;
}

interface SharedCopy {
  version: number;
  buffer: SharedArrayBuffer;
  /** Rows [lo, hi) are filled. */
  lo: number;
  hi: number;
}

/** Creates a parallel searcher (see the module comment). Throws an ArgumentError for bad options or a missing build. */
export function createParallelSearch(opts: ParallelSearchOptions = {}): ParallelSearch {
  const op = 'createParallelSearch';
  if (opts === null || typeof opts !== 'object')
    throw new ArgumentError(op, `options must be an object, got ${describe(opts)}`);
  const W = opts.workers ?? (availableParallelism() > 1 ? 1 : 0);
  if (!Number.isInteger(W) || W < 0 || W > 64)
    throw new ArgumentError(op, `workers must be an integer in [0, 64], got ${describe(W)}`);
  const minWork = opts.minWork ?? 2 ** 23;
  if (typeof minWork !== 'number' || !(minWork >= 0))
    throw new ArgumentError(op, `minWork must be a number >= 0, got ${describe(minWork)}`);
  const slots: Slot[] = [];
  if (W > 0) {
    const entry = resolveWorkerEntry(op, 'search worker', opts.workerEntry, defaultSearchWorkerEntry);
    for (let w = 0; w < W; w++) {
      const init: SearchWorkerInit = { negcacheParallelSearch: 1 };
      const worker = new Worker(entry, { workerData: init });
      worker.unref();
      const slot: Slot = { worker, sent: null, pending: new Map(), dead: null };
      const die = (why: string): void => {
        if (slot.dead !== null) return;
        slot.dead = why;
        for (const p of slot.pending.values()) p.reject(new ParallelSearchError('parallelSearch', why));
        slot.pending.clear();
      };
      worker.on(
        'message',
        (m: { seq: number; error?: string; scores?: Float32Array; rows?: Int32Array; counts?: Int32Array }) => {
          const p = slot.pending.get(m.seq);
          if (!p) return;
          slot.pending.delete(m.seq);
          if (m.error !== undefined)
            p.reject(new ParallelSearchError('parallelSearch', `search worker ${w} threw ${m.error}`));
          else p.resolve({ scores: m.scores!, rows: m.rows!, counts: m.counts!, k: p.k });
        },
      );
      worker.on('error', (err: unknown) =>
        die(
          `search worker ${w} crashed: ${err instanceof Error ? err.message : String(err)}; create a new parallel search`,
        ),
      );
      worker.on('exit', (code: number) =>
        die(`search worker ${w} exited with code ${code}; create a new parallel search`),
      );
      slots.push(slot);
    }
  }

  let closed = false;
  let seq = 0;
  let queue: Promise<unknown> = Promise.resolve();
  const copies = new WeakMap<Index, SharedCopy>();
  const stats: ParallelSearchStats = { parallel: false, ranges: [], copied: 0 };

  /** The shared buffer holding rows [lo, hi) of the index (the index's own, or a copy). */
  const sharedRows = (index: Index, lo: number, hi: number): SharedArrayBuffer => {
    const all = index.embeddings();
    if (all.buffer instanceof SharedArrayBuffer) return all.buffer;
    const d = index.dim;
    let c = copies.get(index);
    if (!c || c.version !== index.version || c.lo !== lo || c.hi !== hi) {
      const buffer = c && c.buffer.byteLength >= all.byteLength ? c.buffer : new SharedArrayBuffer(all.byteLength);
      new Float32Array(buffer, lo * d * 4, (hi - lo) * d).set(all.subarray(lo * d, hi * d));
      stats.copied += (hi - lo) * d;
      c = { version: index.version, buffer, lo, hi };
      copies.set(index, c);
    }
    return c.buffer;
  };

  const run = (index: Index, queries: Tensor | Float32Array, k: number): Promise<SearchResult[]> => {
    if (closed) return Promise.reject(new ParallelSearchError('parallelSearch', 'the parallel search is closed'));
    if (!(index instanceof Index))
      return Promise.reject(new ArgumentError('parallelSearch', `index must be an Index, got ${describe(index)}`));
    let checked;
    try {
      checked = index.checkSearch('parallelSearch', queries, k);
    } catch (e) {
      return Promise.reject(e);
    }
    const { q, nq, kk } = checked;
    const n = index.size,
      d = index.dim;
    stats.copied = 0;
    const live = slots.filter((s) => s.dead === null);
    const deadSlot = slots.find((s) => s.dead !== null);
    if (deadSlot) return Promise.reject(new ParallelSearchError('parallelSearch', deadSlot.dead!));
    const parts = live.length + 1;
    if (live.length === 0 || nq * n * d < minWork || n < parts || kk === 0) {
      stats.parallel = false;
      stats.ranges = [[0, n]];
      return Promise.resolve(index.search(q, k));
    }
    const bounds = Array.from({ length: parts + 1 }, (_, i) => Math.round((i * n) / parts));
    stats.parallel = true;
    stats.ranges = bounds.slice(1).map((end, i) => [bounds[i]!, end] as [number, number]);
    const kernel = scoreKernel();
    // One shared buffer holds every worker's rows, [bounds[1], n).
    const buffer = sharedRows(index, bounds[1]!, n);
    const waits: Promise<TopKPartial>[] = live.map((slot, w) => {
      const lo = bounds[w + 1]!,
        hi = bounds[w + 2]!;
      const length = n * d;
      if (!slot.sent || slot.sent.buffer !== buffer || slot.sent.length !== length) {
        slot.worker.postMessage({ data: buffer, length });
        slot.sent = { buffer, length };
      }
      const s = ++seq;
      const job: SearchJob = { seq: s, queries: q.slice(), nq, d, k: kk, rowStart: lo, rowEnd: hi, kernel };
      return new Promise<TopKPartial>((res, rej) => {
        slot.pending.set(s, { resolve: res, reject: rej, k: kk });
        slot.worker.postMessage(job, [job.queries.buffer as ArrayBuffer]);
      });
    });
    // The main thread's share, while the workers run theirs.
    const mine = topKRange(q, nq, index.embeddings(), d, 0, bounds[1]!, kk, kernel);
    return Promise.all(waits).then((theirs) => index.results(mergeTopK([mine, ...theirs], nq, kk), nq));
  };

  return {
    search(index, queries, k) {
      const p = queue.then(() => run(index, queries, k));
      queue = p.catch(() => undefined);
      return p;
    },
    close() {
      if (closed) return;
      closed = true;
      for (const s of slots) {
        s.dead ??= 'the parallel search is closed';
        void s.worker.terminate().catch(() => undefined);
      }
    },
    workers: W,
    lastStats: stats,
  };
}
