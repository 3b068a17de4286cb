/**
 * The worker side of `createTrainingPool` (trainingPool.ts) and the
 * shared-memory protocol both sides use. Node only.
 *
 * The worker starts from the COMPILED file (dist/src/node/
 * trainingPoolWorker.js) through a small eval bootstrap (`poolBootstrap`)
 * that imports it and calls `runTrainingPoolWorker(workerData)`; if the
 * import fails (a missing or stale build) the bootstrap flags the failure in
 * shared memory, so a main thread blocked in Atomics.wait learns about it at
 * once.
 *
 * Per worker one CONTROL block (SharedArrayBuffer as Int32Array, layout `P`):
 *   READY     1 once the worker has loaded (and compiled the wasm kernels)
 *   DONE      the number of the last job the worker finished (ok or failed)
 *   STATUS    outcome of job DONE: 0 ok, 1 threw (message in MSG)
 *   DEAD      1 once the worker is gone: set by its own 'exit' handler, by
 *             the bootstrap when the module fails to load, or by the main
 *             thread's 'exit' / 'error' handlers (which only run while the
 *             main thread is not blocked)
 *   JOB_US    the worker's time for job DONE in µs (diagnostics)
 *   MSG_LEN / MSG   UTF-8 text of the last error
 * Every change to DONE or DEAD is followed by Atomics.notify on DONE.
 *
 * A JOB is posted as a message (`PoolJob`); its inputs are SharedArrayBuffers
 * owned by the main thread, which does not touch them until DONE = seq; the
 * worker writes its results into the job's `out` buffer only.
 */
import { parentPort } from 'node:worker_threads';
import { wasmAvailable } from '../tensor/kernels/wasm/index.js';
import {
  rankGroupsRange,
  softmaxBackwardPanels,
  softmaxForwardPanels,
  type SoftmaxBlocksArgs,
  type SoftmaxPanelGrads,
} from '../tensor/kernels/scoreBlocks.js';

/** Int32 indices of the control block. */
export const P = { READY: 0, DONE: 1, STATUS: 2, DEAD: 3, JOB_US: 4, MSG_LEN: 5, MSG: 16 } as const;
export const POOL_MSG_BYTES = 2048;
export const POOL_CONTROL_BYTES = P.MSG * 4 + POOL_MSG_BYTES;

export interface PoolWorkerInit {
  readonly negcacheTrainingPool: 1;
  readonly control: SharedArrayBuffer;
  /** file: URL of this module in dist/. */
  readonly entry: string;
}

/** Test-only faults a job can carry (see TrainingPool._injectFault). */
export type PoolFault = 'throw' | 'exit';

/** The full softmax's inputs as shared arrays (the docs hold only the rows of the worker's panels). */
export interface SharedSoftmax {
  b: number;
  n: number;
  d: number;
  scale: number;
  queries: SharedArrayBuffer;
  docs: SharedArrayBuffer;
  targets: SharedArrayBuffer;
  exclDoc: SharedArrayBuffer;
  exclQuery: SharedArrayBuffer;
  /** Lengths of the exclusion lists (the buffers may be longer). */
  excl: number;
  /** The tower head (scoreBlocks.ts DocHead), or null: w [din, d] and bias [d] in shared buffers. */
  head: { w: SharedArrayBuffer; bias: SharedArrayBuffer; din: number; eps: number } | null;
}

/** Byte offsets of the backward's panel partials in an `out` buffer: dq, then dw and db with a head. */
export function gradLayout(a: { b: number; d: number; head: { din: number } | null }, panels: number) {
  const dq = panels * a.b * a.d,
    dw = a.head ? panels * a.head.din * a.d : 0,
    db = a.head ? panels * a.d : 0;
  return { dq: 0, dw: dq * 8, db: (dq + dw) * 8, lengths: { dq, dw, db }, bytes: (dq + dw + db) * 8 };
}

/** The panel partials as views of an `out` buffer (see gradLayout). */
export function gradViews(
  out: SharedArrayBuffer,
  a: { b: number; d: number; head: { din: number } | null },
  panels: number,
): SoftmaxPanelGrads {
  const L = gradLayout(a, panels);
  return {
    dq: new Float64Array(out, L.dq, L.lengths.dq),
    dw: a.head ? new Float64Array(out, L.dw, L.lengths.dw) : null,
    db: a.head ? new Float64Array(out, L.db, L.lengths.db) : null,
  };
}

export type PoolJob =
  | {
      seq: number;
      fault: PoolFault | null;
      kind: 'softmaxForward';
      a: SharedSoftmax;
      p0: number;
      p1: number;
      out: SharedArrayBuffer;
    }
  | {
      seq: number;
      fault: PoolFault | null;
      kind: 'softmaxBackward';
      a: SharedSoftmax;
      p0: number;
      p1: number;
      lse: SharedArrayBuffer;
      coef: SharedArrayBuffer;
      /** [n·din] float32: the worker writes its panels' rows. */
      dDocs: SharedArrayBuffer;
      out: SharedArrayBuffer;
    }
  | {
      seq: number;
      fault: PoolFault | null;
      kind: 'rank';
      m: number;
      n: number;
      d: number;
      queries: SharedArrayBuffer;
      docs: SharedArrayBuffer;
      targets: SharedArrayBuffer;
      order: SharedArrayBuffer;
      starts: SharedArrayBuffer;
      groups: number;
      g0: number;
      g1: number;
      out: SharedArrayBuffer;
    };

/** The SoftmaxBlocksArgs view of shared inputs. */
export function softmaxArgsOf(a: SharedSoftmax): SoftmaxBlocksArgs {
  const din = a.head ? a.head.din : a.d;
  return {
    queries: new Float32Array(a.queries, 0, a.b * a.d),
    docs: new Float32Array(a.docs, 0, a.n * din),
    b: a.b,
    n: a.n,
    d: a.d,
    scale: a.scale,
    targets: new Int32Array(a.targets, 0, a.b),
    exclDoc: new Int32Array(a.exclDoc, 0, a.excl),
    exclQuery: new Int32Array(a.exclQuery, 0, a.excl),
    head: a.head
      ? {
          w: new Float32Array(a.head.w, 0, a.head.din * a.d),
          bias: new Float32Array(a.head.bias, 0, a.d),
          din: a.head.din,
          eps: a.head.eps,
        }
      : null,
  };
}

/** Writes an error text into the control block (truncated on a UTF-8 boundary). */
export function writePoolMessage(ctrl: Int32Array, text: string): void {
  const encoded = new TextEncoder().encode(text);
  let len = Math.min(encoded.length, POOL_MSG_BYTES);
  while (len > 0 && len < encoded.length && (encoded[len]! & 0xc0) === 0x80) len--;
  new Uint8Array(ctrl.buffer, P.MSG * 4, POOL_MSG_BYTES).set(encoded.subarray(0, len));
  Atomics.store(ctrl, P.MSG_LEN, len);
}

/** The error text in the control block. */
export function readPoolMessage(ctrl: Int32Array): string {
  const len = Atomics.load(ctrl, P.MSG_LEN);
  return new TextDecoder().decode(new Uint8Array(ctrl.buffer, P.MSG * 4, len).slice());
}

/** The eval source that starts a worker: imports the compiled module and runs it; a failed import is flagged. */
export function poolBootstrap(): string {
  return `
import('node:worker_threads').then(({ workerData }) => {
  const fail = (e) => {
    const c = new Int32Array(workerData.control);
    const text = 'the training pool worker could not start from ' + workerData.entry + ': ' + ((e && e.stack) || String(e));
    const bytes = new TextEncoder().encode(text).subarray(0, ${POOL_MSG_BYTES});
    new Uint8Array(workerData.control, ${P.MSG * 4}, ${POOL_MSG_BYTES}).set(bytes);
    Atomics.store(c, ${P.MSG_LEN}, bytes.length);
    Atomics.store(c, ${P.DEAD}, 1);
    Atomics.notify(c, ${P.DONE});
  };
  return import(workerData.entry).then((m) => m.runTrainingPoolWorker(workerData)).catch(fail);
});
`;
}

function errorText(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : `a thrown ${String(e)}`;
}

/** Runs one job; results go to the job's shared output buffers (layouts in trainingPool.ts). */
function runJob(job: PoolJob): void {
  if (job.fault === 'throw') throw new Error('injected fault: the training pool worker throws (test hook)');
  if (job.fault === 'exit') process.exit(7);
  if (job.kind === 'softmaxForward') {
    const a = softmaxArgsOf(job.a);
    const part = softmaxForwardPanels(a, job.p0, job.p1);
    const len = part.max.length;
    new Float64Array(job.out, 0, len).set(part.max);
    new Float64Array(job.out, len * 8, len).set(part.sum);
    new Float32Array(job.out, len * 16, a.b).set(part.targetScore);
  } else if (job.kind === 'softmaxBackward') {
    const a = softmaxArgsOf(job.a);
    const grads = gradViews(job.out, job.a, job.p1 - job.p0);
    for (const g of [grads.dq, grads.dw, grads.db]) g?.fill(0);
    softmaxBackwardPanels(
      a,
      new Float64Array(job.lse, 0, a.b),
      new Float32Array(job.coef, 0, a.b),
      job.p0,
      job.p1,
      new Float32Array(job.dDocs, 0, a.n * (a.head ? a.head.din : a.d)),
      grads,
    );
  } else {
    const groups = {
      order: new Int32Array(job.order, 0, job.m),
      starts: new Int32Array(job.starts, 0, job.groups + 1),
    };
    rankGroupsRange(
      new Float32Array(job.queries, 0, job.m * job.d),
      new Float32Array(job.docs, 0, job.n * job.d),
      job.m,
      job.n,
      job.d,
      new Int32Array(job.targets, 0, job.m),
      groups,
      job.g0,
      job.g1,
      new Int32Array(job.out, 0, job.m),
    );
  }
}

/** The worker's main: serves jobs until terminated. */
export function runTrainingPoolWorker(init: PoolWorkerInit): void {
  const ctrl = new Int32Array(init.control);
  const flagDead = (text: string): void => {
    if (Atomics.load(ctrl, P.MSG_LEN) === 0) writePoolMessage(ctrl, text);
    Atomics.store(ctrl, P.DEAD, 1);
    Atomics.notify(ctrl, P.DONE);
  };
  process.on('exit', (code) => flagDead(`the training pool worker exited with code ${code}`));
  process.on('uncaughtException', (e) => {
    writePoolMessage(ctrl, `the training pool worker crashed: ${errorText(e)}`);
    process.exit(1);
  });
  wasmAvailable(); // compile the kernels now, not on the first job
  Atomics.store(ctrl, P.READY, 1);
  Atomics.notify(ctrl, P.READY);
  parentPort!.on('message', (job: PoolJob) => {
    const t0 = performance.now();
    Atomics.store(ctrl, P.MSG_LEN, 0);
    try {
      runJob(job);
      Atomics.store(ctrl, P.STATUS, 0);
    } catch (e) {
      writePoolMessage(ctrl, errorText(e));
      Atomics.store(ctrl, P.STATUS, 1);
    }
    Atomics.store(ctrl, P.JOB_US, Math.min(2 ** 31 - 1, Math.round((performance.now() - t0) * 1000)));
    Atomics.store(ctrl, P.DONE, job.seq);
    Atomics.notify(ctrl, P.DONE);
  });
}
