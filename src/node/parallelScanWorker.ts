/**
 * The worker side of `createParallelScan` (parallelScan.ts), and the
 * shared-memory protocol both sides use. Node only.
 *
 * The worker is started from the COMPILED file
 * (dist/src/node/parallelScanWorker.js; Node 20 cannot run .ts in a worker)
 * through a tiny eval bootstrap (`bootstrapSource`) that imports this module
 * and calls `runParallelScanWorker(workerData)`; if the import itself fails
 * (missing or stale build) the bootstrap flags the failure in shared memory,
 * so the main thread, blocked in Atomics.wait, learns about it at once.
 *
 * Per worker one CONTROL block (SharedArrayBuffer as Int32Array, layout `C`):
 *   READY     1 once the worker has loaded and instantiated the wasm kernels
 *   DONE      the number of the last job the worker finished (ok or failed)
 *   STATUS    outcome of job DONE: STATUS_OK, or STATUS_THREW (message in MSG)
 *   DEAD      0 alive; 1 once the worker is gone or cannot work: set by the
 *             worker's own process 'exit' handler (process.exit, an uncaught
 *             exception), by the bootstrap when the module fails to load, or
 *             by the main thread's 'exit' / 'error' handlers (which only run
 *             while the main thread is NOT blocked in a scan)
 *   EXIT_CODE the worker's exit code when DEAD was set by an exit
 *   MSG_LEN / MSG   UTF-8 text of the last error (up to MSG_BYTES bytes)
 *   SCAN_US   the worker's time for job DONE in µs (diagnostics)
 *   WASM      1 if the worker scans with the wasm kernels, 2 if with the TS fallback
 * Every change to DONE or DEAD is followed by Atomics.notify on DONE, the one
 * word the main thread waits on.
 *
 * A JOB (message `ScanJob` on the worker's port, then the worker replies
 * through shared memory only):
 *   inputs   one SharedArrayBuffer (owned by the main thread, shared by all
 *            workers, only read by them) with the queries, the uniforms, the
 *            query exclude ids, rowValid and rowIds at the offsets of
 *            `inputLayout` (rowValid / rowIds / uniforms are full-length views
 *            of which only the rows the workers scan are filled: a range scan
 *            reads nothing else);
 *   cache    a SharedArrayBuffer holding the [n, d] cache at `cacheOffset`
 *            (again only the workers' rows need to be present);
 *   results  this worker's SharedArrayBuffer for its ScanPartial, at the
 *            offsets of `resultLayout`.
 * The worker scans rows [rowStart, rowEnd) with fusedCacheScanRange, writes
 * the partial, stores STATUS, SCAN_US and DONE = seq, and notifies. The main
 * thread never rewrites inputs / cache / results while a job is in flight.
 */
import { parentPort } from 'node:worker_threads';
import { fusedCacheScanRange, scanWasmAvailable } from '../scan/wasm.js';
import { setKernelOptions } from '../tensor/kernels/wasm/index.js';
import type { FusedScanArgs, ScanPartial, ScanSampler } from '../scan/contract.js';

/** Int32 indices of the control block. */
export const C = {
  READY: 0,
  DONE: 1,
  STATUS: 2,
  DEAD: 3,
  EXIT_CODE: 4,
  MSG_LEN: 5,
  SCAN_US: 6,
  WASM: 7,
  /** First int of the message bytes. */
  MSG: 16,
} as const;
export const STATUS_OK = 0;
export const STATUS_THREW = 1;
export const MSG_BYTES = 2048;
export const CONTROL_BYTES = C.MSG * 4 + MSG_BYTES;

/** What the worker gets as workerData. */
export interface ScanWorkerInit {
  readonly negcacheParallelScan: 1;
  readonly control: SharedArrayBuffer;
  /** file: URL of this module in dist/. */
  readonly entry: string;
  /** The main thread's kernel options (setKernelOptions), so both sides compute the same bits. */
  readonly fma: boolean;
}

/** Test-only faults a job can carry (see ParallelScan._injectFault). */
export type ScanFault = 'throw' | 'exit' | 'hang';

/** One scan job (posted to the worker; everything else crosses shared memory). */
export interface ScanJob {
  readonly seq: number;
  readonly b: number;
  readonly d: number;
  readonly n: number;
  readonly scale: number;
  readonly sampler: ScanSampler;
  /** 'gumbel': one key per draw. */
  readonly keys: [number, number][] | null;
  readonly topKGroups: number | null;
  readonly numSamples: number;
  readonly softmaxMean: boolean;
  readonly rowStart: number;
  readonly rowEnd: number;
  readonly inputs: SharedArrayBuffer;
  readonly layout: InputLayout;
  readonly cache: SharedArrayBuffer;
  readonly cacheOffset: number;
  readonly results: SharedArrayBuffer;
  readonly fault: ScanFault | null;
}

/** Byte offsets in the inputs buffer (-1 = absent). */
export interface InputLayout {
  queries: number;
  uniforms: number;
  uniformCount: number;
  excludeIds: number;
  rowValid: number;
  rowIds: number;
  bytes: number;
}

const align8 = (x: number): number => Math.ceil(x / 8) * 8;

export function inputLayout(
  b: number,
  d: number,
  n: number,
  uniformCount: number,
  hasValid: boolean,
  hasIds: boolean,
): InputLayout {
  let at = 0;
  const take = (bytes: number): number => {
    const p = at;
    at = align8(at + bytes);
    return p;
  };
  const uniforms = uniformCount > 0 ? take(uniformCount * 8) : -1;
  const queries = take(b * d * 4);
  const excludeIds = hasIds ? take(b * 4) : -1;
  const rowIds = hasIds ? take(n * 4) : -1;
  const rowValid = hasValid ? take(n) : -1;
  return { queries, uniforms, uniformCount, excludeIds, rowValid, rowIds, bytes: Math.max(8, at) };
}

/** Byte offsets of a ScanPartial in a results buffer (-1 = absent). */
export interface ResultLayout {
  max: number;
  sumExp: number;
  /** [b·S] each, or -1. */
  sample: number;
  sampleScore: number;
  sampleKey: number;
  groupMax: number;
  groupArg: number;
  /** [b·d] float64, or -1. */
  meanAcc: number;
  bytes: number;
}

/** Where a partial's arrays go: S draws per query, `mean` with the softmax-mean accumulator [b·d]. */
export function resultLayout(b: number, k: number, sampler: ScanSampler, S = 1, mean = false, d = 0): ResultLayout {
  let at = 0;
  const take = (bytes: number): number => {
    const p = at;
    at = align8(at + bytes);
    return p;
  };
  const samples = k === 0 && sampler !== 'none';
  const sumExp = take(b * 8);
  const sampleKey = samples ? take(b * S * 8) : -1;
  const meanAcc = mean && k === 0 ? take(b * d * 8) : -1;
  const max = take(b * 4);
  const sample = samples ? take(b * S * 4) : -1;
  const sampleScore = samples ? take(b * S * 4) : -1;
  const groupMax = k > 0 ? take(b * k * 4) : -1;
  const groupArg = k > 0 ? take(b * k * 4) : -1;
  return { max, sumExp, sample, sampleScore, sampleKey, groupMax, groupArg, meanAcc, bytes: Math.max(8, at) };
}

/** Writes an error text into the control block (truncated on a UTF-8 boundary). */
export function writeMessage(ctrl: Int32Array, text: string): void {
  const encoded = new TextEncoder().encode(text);
  let len = Math.min(encoded.length, MSG_BYTES);
  while (len > 0 && len < encoded.length && (encoded[len]! & 0xc0) === 0x80) len--;
  new Uint8Array(ctrl.buffer, C.MSG * 4, MSG_BYTES).set(encoded.subarray(0, len));
  Atomics.store(ctrl, C.MSG_LEN, len);
}

/** The error text in the control block. */
export function readMessage(ctrl: Int32Array): string {
  const len = Atomics.load(ctrl, C.MSG_LEN);
  const bytes = new Uint8Array(ctrl.buffer, C.MSG * 4, len).slice(); // TextDecoder rejects shared views
  return new TextDecoder().decode(bytes);
}

/**
 * The eval source that starts a worker: imports the compiled module and runs
 * it; a failure to load is flagged (DEAD + message) without a round trip.
 */
export function bootstrapSource(): string {
  // Only dynamic import(): the source must run as CommonJS and as ESM (a
  // worker inherits execArgv, e.g. --input-type=module from \`node -e\`).
  return `
import('node:worker_threads').then(({ workerData }) => {
  const fail = (e) => {
    const c = new Int32Array(workerData.control);
    const text = 'the scan worker could not start from ' + workerData.entry + ': ' + ((e && e.stack) || String(e));
    const bytes = new TextEncoder().encode(text).subarray(0, ${MSG_BYTES});
    new Uint8Array(workerData.control, ${C.MSG * 4}, ${MSG_BYTES}).set(bytes);
    Atomics.store(c, ${C.MSG_LEN}, bytes.length);
    Atomics.store(c, ${C.DEAD}, 1);
    Atomics.notify(c, ${C.DONE});
  };
  return import(workerData.entry).then((m) => m.runParallelScanWorker(workerData)).catch(fail);
});
`;
}

function errorText(e: unknown): string {
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  return `a thrown ${typeof e === 'string' ? JSON.stringify(e) : String(e)}`;
}

function writePartial(job: ScanJob, k: number, part: ScanPartial): void {
  const S = job.numSamples;
  const L = resultLayout(job.b, k, job.sampler, S, job.softmaxMean, job.d);
  const r = job.results,
    b = job.b;
  new Float32Array(r, L.max, b).set(part.max);
  new Float64Array(r, L.sumExp, b).set(part.sumExp);
  if (L.sample >= 0) {
    new Int32Array(r, L.sample, b * S).set(part.sample!);
    new Float32Array(r, L.sampleScore, b * S).set(part.sampleScore!);
    new Float64Array(r, L.sampleKey, b * S).set(part.sampleKey!);
  }
  if (L.meanAcc >= 0) new Float64Array(r, L.meanAcc, b * job.d).set(part.meanAcc!);
  if (L.groupMax >= 0) {
    new Float32Array(r, L.groupMax, b * k).set(part.groupMax!);
    new Int32Array(r, L.groupArg, b * k).set(part.groupArg!);
  }
}

function argsOf(job: ScanJob): FusedScanArgs {
  const { b, d, n, layout: L, inputs } = job;
  const args: FusedScanArgs = {
    queries: new Float32Array(inputs, L.queries, b * d),
    b,
    d,
    cache: new Float32Array(job.cache, job.cacheOffset, n * d),
    n,
    scale: job.scale,
    sampler: job.sampler,
  };
  if (L.rowValid >= 0) args.rowValid = new Uint8Array(inputs, L.rowValid, n);
  if (L.rowIds >= 0) {
    args.rowIds = new Int32Array(inputs, L.rowIds, n);
    args.queryExcludeIds = new Int32Array(inputs, L.excludeIds, b);
  }
  if (job.keys) args.keys = job.keys;
  if (L.uniforms >= 0) args.uniforms = new Float64Array(inputs, L.uniforms, L.uniformCount);
  if (job.topKGroups !== null) args.topKGroups = job.topKGroups;
  if (job.numSamples !== 1) args.numSamples = job.numSamples;
  if (job.softmaxMean) args.softmaxMean = true;
  return args;
}

function fault(kind: ScanFault): void {
  if (kind === 'throw') throw new Error('injected fault: the scan worker throws (test hook)');
  if (kind === 'exit') process.exit(7);
  // 'hang': compute forever (until terminate()).
  for (;;) {
    /* spin */
  }
}

/** The worker's main: serves ScanJobs until terminated. */
export function runParallelScanWorker(init: ScanWorkerInit): void {
  const ctrl = new Int32Array(init.control);
  const flagDead = (code: number, text: string | null): void => {
    if (text !== null && Atomics.load(ctrl, C.MSG_LEN) === 0) writeMessage(ctrl, text);
    Atomics.store(ctrl, C.EXIT_CODE, code);
    Atomics.store(ctrl, C.DEAD, 1);
    Atomics.notify(ctrl, C.DONE);
  };
  // The main thread may be blocked in Atomics.wait (its 'exit' handler cannot
  // run): flag our own end in shared memory.
  process.on('exit', (code) => flagDead(code, `the scan worker exited with code ${code}`));
  process.on('uncaughtException', (e) => {
    writeMessage(ctrl, `the scan worker crashed: ${errorText(e)}`);
    process.exit(1);
  });
  setKernelOptions({ fma: init.fma });
  Atomics.store(ctrl, C.WASM, scanWasmAvailable() ? 1 : 2); // compile the kernels now, not on the first job
  Atomics.store(ctrl, C.READY, 1);
  Atomics.notify(ctrl, C.READY);
  parentPort!.on('message', (job: ScanJob) => {
    const t0 = performance.now();
    Atomics.store(ctrl, C.MSG_LEN, 0);
    try {
      if (job.fault !== null) fault(job.fault);
      const args = argsOf(job);
      const part = fusedCacheScanRange(args, job.rowStart, job.rowEnd);
      writePartial(job, job.topKGroups ?? 0, part);
      Atomics.store(ctrl, C.STATUS, STATUS_OK);
    } catch (e) {
      writeMessage(ctrl, errorText(e));
      Atomics.store(ctrl, C.STATUS, STATUS_THREW);
    }
    Atomics.store(ctrl, C.SCAN_US, Math.min(2 ** 31 - 1, Math.round((performance.now() - t0) * 1000)));
    Atomics.store(ctrl, C.DONE, job.seq);
    Atomics.notify(ctrl, C.DONE);
  });
}
