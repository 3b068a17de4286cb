/**
 * The full softmax's block passes and the evaluation's ranking on two cores
 * (Node only): a BlockRunner (src/tensor/kernels/scoreBlocks.ts) that runs
 * part of the work on the main thread and the rest on `workers`
 * worker_threads.
 *
 *   const pool = createTrainingPool();                 // main thread + 1 worker
 *   new Trainer(corpus, config, { runner: pool });     // full softmax on both cores
 *   evaluate(model, corpus, queries, undefined, { runner: pool });
 *   pool.close();                                      // optional: the worker is unref'ed
 *
 * Results are BIT-IDENTICAL to LOCAL_BLOCK_RUNNER (one thread): the work is
 * split on the same units the single thread walks (panels of PANEL_DOCS
 * documents for the full softmax, query groups for the ranking), each unit
 * is computed by exactly one thread with the same kernels, and the partials
 * are combined in unit order by the same functions (combineSoftmaxPanels,
 * sumPanels). The split depends on the sizes only, never on timing.
 *
 * Every call is SYNCHRONOUS (the autodiff calls its primitives
 * synchronously): it copies what the worker needs into shared memory, posts
 * the job, does its own share, and blocks in Atomics.wait until the worker
 * is done. Copies per full-softmax step: the worker's half of the document
 * embeddings in (~15 MB at the demo's size) and its half of their cotangent
 * out; per evaluation: all document embeddings in (~30 MB).
 *
 * Failure: a job that throws in the worker makes the call throw a
 * TrainingPoolError (reason 'threw', the worker's message; the pool stays
 * usable). A worker that dies flags it in shared memory itself, so the
 * blocked main thread wakes at once (reason 'exited'); no answer within
 * `timeoutMs` gives 'timeout'. After 'exited' or 'timeout' the workers are
 * terminated and every later call throws; after close(), calls throw
 * ('closed'). Loud, never a silent fallback to one thread.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { ArgumentError, NegcacheError, describe } from '../errors.js';
import {
  LOCAL_BLOCK_RUNNER,
  PANEL_DOCS,
  combineSoftmaxGrads,
  combineSoftmaxPanels,
  panelGrads,
  rankGroups,
  rankGroupsRange,
  softmaxBackwardPanels,
  softmaxForwardPanels,
  softmaxPanelCount,
  type BlockRunner,
  type SoftmaxBlocksArgs,
  type SoftmaxPanelStats,
} from '../tensor/kernels/scoreBlocks.js';
import {
  P,
  POOL_CONTROL_BYTES,
  gradLayout,
  gradViews,
  poolBootstrap,
  readPoolMessage,
  type PoolFault,
  type PoolJob,
  type PoolWorkerInit,
  type SharedSoftmax,
} from './trainingPoolWorker.js';
import { builtSibling, resolveWorkerEntry } from './workerFiles.js';

const OP = 'trainingPool';
const DEFAULT_TIMEOUT_MS = 120_000;

export type TrainingPoolFailure = 'threw' | 'exited' | 'timeout' | 'closed';

/** A pooled computation that could not complete (see the module comment). */
export class TrainingPoolError extends NegcacheError {
  readonly reason: TrainingPoolFailure;
  constructor(message: string, reason: TrainingPoolFailure) {
    super(OP, message);
    this.reason = reason;
  }
}

export interface TrainingPoolOptions {
  /** Worker threads besides the main thread (default 1 on a multi-core machine, else 0: everything on this thread). At most 1. */
  workers?: number;
  /** How long the main thread waits for the worker after posting a job, ms (default 120000). */
  timeoutMs?: number;
  /** The compiled worker module (default: trainingPoolWorker.js next to this module, or dist/src/node/ from source). */
  workerEntry?: string | URL;
}

export interface TrainingPool extends BlockRunner {
  /** Worker threads besides the main thread (0 or 1). */
  readonly workers: number;
  /** Terminates the worker (idempotent); later calls throw. */
  close(): void;
  /** Milliseconds of the last call: the main thread's share, the wait for the worker, the worker's own time. */
  readonly lastStats: { mainMs: number; waitMs: number; workerMs: number };
  /** @internal Test hook: the worker's next job fails this way. */
  _injectFault(kind: PoolFault): void;
}

/** Where the compiled worker module lives. */
export function defaultPoolWorkerEntry(): URL {
  return builtSibling(import.meta.url, 'trainingPoolWorker.js');
}

/** A growable SharedArrayBuffer slot. */
class SharedSlot {
  sab = new SharedArrayBuffer(8);
  at(bytes: number): SharedArrayBuffer {
    if (this.sab.byteLength < bytes) this.sab = new SharedArrayBuffer(Math.max(bytes, 8));
    return this.sab;
  }
}

/**
 * Creates the pool (see the module comment). Throws an ArgumentError for bad
 * options or a missing worker build.
 */
export function createTrainingPool(opts: TrainingPoolOptions = {}): TrainingPool {
  if (opts === null || typeof opts !== 'object')
    throw new ArgumentError('createTrainingPool', `options must be an object, got ${describe(opts)}`);
  const W = opts.workers ?? (availableParallelism() > 1 ? 1 : 0);
  if (W !== 0 && W !== 1)
    throw new ArgumentError('createTrainingPool', `workers must be 0 or 1, got ${describe(opts.workers)}`);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (typeof timeoutMs !== 'number' || !(timeoutMs > 0))
    throw new ArgumentError('createTrainingPool', `timeoutMs must be a positive number, got ${describe(timeoutMs)}`);
  const entry =
    W > 0 ? resolveWorkerEntry('createTrainingPool', 'pool worker', opts.workerEntry, defaultPoolWorkerEntry) : null;

  let worker: Worker | null = null;
  let ctrl: Int32Array | null = null;
  if (W > 0) {
    const control = new SharedArrayBuffer(POOL_CONTROL_BYTES);
    ctrl = new Int32Array(control);
    const c = ctrl;
    const init: PoolWorkerInit = { negcacheTrainingPool: 1, control, entry: entry!.href };
    worker = new Worker(poolBootstrap(), { eval: true, workerData: init });
    worker.unref();
    const markDead = (text: string): void => {
      if (Atomics.load(c, P.DEAD) !== 0) return;
      if (Atomics.load(c, P.MSG_LEN) === 0) {
        const bytes = new TextEncoder().encode(text).subarray(0, 2048);
        new Uint8Array(control, P.MSG * 4, 2048).set(bytes);
        Atomics.store(c, P.MSG_LEN, bytes.length);
      }
      Atomics.store(c, P.DEAD, 1);
    };
    worker.on('error', (e: unknown) =>
      markDead(`the pool worker crashed: ${e instanceof Error ? e.message : String(e)}`),
    );
    worker.on('exit', (code: number) => markDead(`the pool worker exited with code ${code}`));
  }

  let closed = false;
  let failure: TrainingPoolError | null = null;
  let seq = 0;
  let fault: PoolFault | null = null;
  const stats = { mainMs: 0, waitMs: 0, workerMs: 0 };
  const slots = {
    queries: new SharedSlot(),
    docs: new SharedSlot(),
    targets: new SharedSlot(),
    exclDoc: new SharedSlot(),
    exclQuery: new SharedSlot(),
    lse: new SharedSlot(),
    coef: new SharedSlot(),
    dDocs: new SharedSlot(),
    out: new SharedSlot(),
    order: new SharedSlot(),
    starts: new SharedSlot(),
    headW: new SharedSlot(),
    headB: new SharedSlot(),
  };

  const fail = (err: TrainingPoolError): never => {
    failure = err;
    void worker?.terminate().catch(() => undefined);
    throw err;
  };

  const usable = (): void => {
    if (failure !== null)
      throw new TrainingPoolError(
        `the pool failed earlier and is unusable: ${(failure as TrainingPoolError).message}`,
        (failure as TrainingPoolError).reason,
      );
    if (closed) throw new TrainingPoolError('the pool was closed', 'closed');
  };

  /** Posts `job`, runs `mine`, waits for the worker; rethrows mine's error after the wait. */
  const run = <T>(job: PoolJob, mine: () => T): T => {
    const c = ctrl!;
    if (Atomics.load(c, P.DEAD) !== 0)
      fail(new TrainingPoolError(`the pool worker is gone: ${readPoolMessage(c)}`, 'exited'));
    job.fault = fault;
    fault = null;
    worker!.postMessage(job);
    const t0 = performance.now();
    let result: T | undefined;
    let error: unknown = null;
    try {
      result = mine();
    } catch (e) {
      error = e;
    }
    const t1 = performance.now();
    const deadline = t1 + timeoutMs;
    for (;;) {
      const done = Atomics.load(c, P.DONE);
      if (done === job.seq) break;
      if (Atomics.load(c, P.DEAD) !== 0)
        fail(new TrainingPoolError(`the pool worker is gone (job ${job.seq}): ${readPoolMessage(c)}`, 'exited'));
      const left = deadline - performance.now();
      if (left <= 0)
        fail(
          new TrainingPoolError(
            `the pool worker did not finish job ${job.seq} within ${timeoutMs} ms; it was terminated`,
            'timeout',
          ),
        );
      Atomics.wait(c, P.DONE, done, Math.min(left, 100));
    }
    Object.assign(stats, {
      mainMs: t1 - t0,
      waitMs: performance.now() - t1,
      workerMs: Atomics.load(c, P.JOB_US) / 1000,
    });
    if (error !== null) throw error;
    if (Atomics.load(c, P.STATUS) !== 0)
      throw new TrainingPoolError(`the pool worker's job threw: ${readPoolMessage(c)}`, 'threw');
    return result!;
  };

  /** The softmax inputs in shared memory; the docs rows from panel `p0` on only. */
  const shareSoftmax = (a: SoftmaxBlocksArgs, p0: number): SharedSoftmax => {
    const { b, n, d } = a;
    const din = a.head ? a.head.din : d;
    const q = slots.queries.at(b * d * 4);
    new Float32Array(q, 0, b * d).set(a.queries);
    const docs = slots.docs.at(n * din * 4);
    const from = Math.min(n, p0 * PANEL_DOCS) * din;
    new Float32Array(docs, 0, n * din).set(a.docs.subarray(from), from);
    let head: SharedSoftmax['head'] = null;
    if (a.head) {
      const w = slots.headW.at(din * d * 4),
        bias = slots.headB.at(d * 4);
      new Float32Array(w, 0, din * d).set(a.head.w);
      new Float32Array(bias, 0, d).set(a.head.bias);
      head = { w, bias, din, eps: a.head.eps };
    }
    const t = slots.targets.at(b * 4);
    new Int32Array(t, 0, b).set(a.targets);
    const e = a.exclDoc.length;
    const ed = slots.exclDoc.at(e * 4),
      eq = slots.exclQuery.at(e * 4);
    new Int32Array(ed, 0, e).set(a.exclDoc);
    new Int32Array(eq, 0, e).set(a.exclQuery);
    return { b, n, d, scale: a.scale, queries: q, docs, targets: t, exclDoc: ed, exclQuery: eq, excl: e, head };
  };

  const api: TrainingPool = {
    workers: W,
    get lastStats() {
      return { ...stats };
    },
    close(): void {
      if (closed) return;
      closed = true;
      void worker?.terminate().catch(() => undefined);
    },
    _injectFault(kind: PoolFault): void {
      fault = kind;
    },

    softmaxForward(a) {
      usable();
      const panels = softmaxPanelCount(a.n);
      if (W === 0 || panels < 2) return LOCAL_BLOCK_RUNNER.softmaxForward(a);
      const split = Math.floor(panels / 2);
      const shared = shareSoftmax(a, split);
      const len = (panels - split) * a.b;
      const out = slots.out.at(len * 16 + a.b * 4);
      const mine = run({ seq: ++seq, fault: null, kind: 'softmaxForward', a: shared, p0: split, p1: panels, out }, () =>
        softmaxForwardPanels(a, 0, split),
      );
      const theirs: SoftmaxPanelStats = {
        max: new Float64Array(out, 0, len).slice(),
        sum: new Float64Array(out, len * 8, len).slice(),
        targetScore: new Float32Array(out, len * 16, a.b).slice(),
      };
      return combineSoftmaxPanels(a.b, [mine, theirs]);
    },

    softmaxBackward(a, lse, coef) {
      usable();
      const panels = softmaxPanelCount(a.n);
      if (W === 0 || panels < 2) return LOCAL_BLOCK_RUNNER.softmaxBackward(a, lse, coef);
      const { b, n } = a;
      const din = a.head ? a.head.din : a.d;
      const split = Math.floor(panels / 2);
      const shared = shareSoftmax(a, split);
      const l = slots.lse.at(b * 8),
        cf = slots.coef.at(b * 4);
      new Float64Array(l, 0, b).set(lse);
      new Float32Array(cf, 0, b).set(coef);
      const dd = slots.dDocs.at(n * din * 4);
      const out = slots.out.at(gradLayout(shared, panels - split).bytes);
      const dDocs = new Float32Array(n * din);
      const mine = panelGrads(a, 0, split);
      run(
        {
          seq: ++seq,
          fault: null,
          kind: 'softmaxBackward',
          a: shared,
          p0: split,
          p1: panels,
          lse: l,
          coef: cf,
          dDocs: dd,
          out,
        },
        () => softmaxBackwardPanels(a, lse, coef, 0, split, dDocs, mine),
      );
      const from = split * PANEL_DOCS * din;
      dDocs.set(new Float32Array(dd, from * 4, n * din - from), from);
      const v = gradViews(out, shared, panels - split);
      const theirs = { dq: v.dq.slice(), dw: v.dw ? v.dw.slice() : null, db: v.db ? v.db.slice() : null };
      return combineSoftmaxGrads(a, [mine, theirs], dDocs);
    },

    rank(queries, docs, m, n, d, targets) {
      usable();
      const groups = rankGroups(targets);
      const G = groups.starts.length - 1;
      if (W === 0 || G < 2) return LOCAL_BLOCK_RUNNER.rank(queries, docs, m, n, d, targets);
      // Split the groups at half the queries.
      let split = 1;
      while (split < G - 1 && groups.starts[split]! < m / 2) split++;
      const q = slots.queries.at(m * d * 4);
      new Float32Array(q, 0, m * d).set(queries);
      const D = slots.docs.at(n * d * 4);
      new Float32Array(D, 0, n * d).set(docs);
      const t = slots.targets.at(m * 4);
      new Int32Array(t, 0, m).set(targets);
      const o = slots.order.at(m * 4);
      new Int32Array(o, 0, m).set(groups.order);
      const s = slots.starts.at((G + 1) * 4);
      new Int32Array(s, 0, G + 1).set(groups.starts);
      const out = slots.out.at(m * 4);
      const ranks = new Int32Array(m);
      run(
        {
          seq: ++seq,
          fault: null,
          kind: 'rank',
          m,
          n,
          d,
          queries: q,
          docs: D,
          targets: t,
          order: o,
          starts: s,
          groups: G,
          g0: split,
          g1: G,
          out,
        },
        () => rankGroupsRange(queries, docs, m, n, d, targets, groups, 0, split, ranks),
      );
      const theirs = new Int32Array(out, 0, m);
      for (let k = groups.starts[split]!; k < m; k++) {
        const i = groups.order[k]!;
        ranks[i] = theirs[i]!;
      }
      return ranks;
    },
  };
  if (worker !== null) reaper?.register(api, worker);
  return api;
}

/** Terminates the worker of a pool that was garbage collected without close(). */
const reaper =
  typeof FinalizationRegistry === 'function'
    ? new FinalizationRegistry<Worker>((w) => {
        void w.terminate().catch(() => undefined);
      })
    : null;
