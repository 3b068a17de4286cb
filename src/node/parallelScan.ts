/**
 * The fused cache scan on several cores (Node only): the main thread and
 * `workers` worker_threads each scan a contiguous, SCAN_BLOCK-aligned share
 * of the cache rows, and the partials combine exactly as in the sharded
 * loss (combinePartials, src/scan/streaming.ts).
 *
 *   const parallel = createParallelScan();           // main thread + 1 worker
 *   const loss = new CacheClassificationLoss({ ..., scanner: parallel.scan });
 *   ...
 *   parallel.close();                                 // optional: the worker is unref'ed
 *
 * `scan` is SYNCHRONOUS (the loss calls its scanner synchronously): it
 * validates the arguments, copies what the workers need into shared memory,
 * posts each worker its job, scans rows [0, split) itself with
 * fusedCacheScanRange, then blocks in Atomics.wait (allowed on Node's main
 * thread) until every worker has written its partial, and returns
 * combinePartials(args, [mine, ...theirs]).
 *
 * Results. Max, group maxima and samples (every sampler, topKGroups,
 * rowValid, rowIds / queryExcludeIds) are IDENTICAL to fusedCacheScan: the
 * split is on SCAN_BLOCK boundaries, so every block is scored by the same
 * kernel on the same rows as in the single-thread scan, and the merge is
 * exact with ties to the lower row index; that holds for each of the
 * numSamples draws. logSumExp equals it up to float64 rounding of the sums
 * (the per-share sums are rescaled and added), softmaxMean up to the float32
 * rounding of the per-share accumulators (within the contract's bound). The split
 * depends only on n and the number of workers (balanced block counts,
 * splitScanRows), never on timing, so a run is reproducible bit for bit.
 *
 * Size. Small scans run on the main thread alone (exactly fusedCacheScan):
 * the fixed cost of a parallel scan (~0.15–0.2 ms: posting the job, waking
 * the worker, the shared copies) is then larger than what the second core
 * saves. By default the choice is by the scan's work b·n·d (see
 * DEFAULT_MIN_WORK, measured); `minRows` overrides it with a plain row
 * threshold, `workers: 0` makes every scan single-thread. The browser keeps
 * using fusedCacheScan (the loss's default scanner); this module is Node-only.
 *
 * Data. Per call the queries, the needed uniforms, queryExcludeIds and the
 * workers' rows of rowValid / rowIds are copied into one shared inputs
 * buffer (small). The cache rows the workers scan are large: if the cache
 * Float32Array is already backed by a SharedArrayBuffer it is handed over
 * as is (no copy); otherwise its workers' rows are copied into a shared
 * buffer kept per cache ARRAY (identity: a later scan of the same
 * Float32Array object reuses the copy). At most `cacheCopies` (default 1)
 * such copies are kept (least recently used goes; its buffer is reused for
 * the next array, so training — a new cache array every step — copies once
 * per step into the same memory: (n - split)·d·4 bytes, 16 MB at n = 65536,
 * d = 128, measured ~1.1 ms; 2 ms at n = 131072). Like makeResident, this
 * assumes the array is not mutated while it may be scanned again (negcache
 * tensors are immutable); `cacheCopies: 0` copies on every call instead.
 * The shared copy is allocated n·d·4 bytes long (the worker needs a
 * full-length view) but only the workers' rows are ever written, so only
 * they take physical memory (process.memoryUsage().arrayBuffers counts the
 * whole buffer, RSS only the rows). Each worker then copies its rows into
 * its own wasm memory, as the main thread does with its rows. Measured
 * (bench/step.ts, b = d = 128, n = 65536, 32 MB of cache embeddings): one
 * full loss step needs ~38 MB beyond the cache on one thread (the wasm copy
 * of the cache) and ~67 MB on two (main and worker wasm halves, the shared
 * half, the worker thread itself).
 *
 * Failure. A job that throws in the worker makes `scan` throw a
 * ParallelScanError (reason 'threw', the worker's message) and the scanner
 * stays usable. A worker that dies (process.exit, a crash, a failed start)
 * flags it in shared memory itself, so the blocked main thread wakes at once
 * and `scan` throws a ParallelScanError (reason 'exited'); a worker that
 * neither answers nor flags anything within `timeoutMs` of its job (a hang,
 * an abrupt death) gives reason 'timeout'. After 'exited' or 'timeout' the
 * workers are terminated and every later call throws (create a new scanner).
 * `scan` after `close()` throws (reason 'closed').
 *
 * Lifetime. The workers start when the scanner is created and are unref'ed:
 * they never keep the process alive, so close() is optional (it frees the
 * threads and their memory early). A scanner that is garbage collected
 * terminates its workers too.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { ArgumentError, NegcacheError, describe } from '../errors.js';
import {
  SCAN_BLOCK,
  categoricalUniformCount,
  splitScanRows,
  validateScanArgs,
  type FusedScanArgs,
  type FusedScanResult,
  type ScanPartial,
} from '../scan/contract.js';
import { combinePartials } from '../scan/streaming.js';
import { fusedCacheScan, fusedCacheScanRange } from '../scan/wasm.js';
import { kernelOptions } from '../tensor/kernels/wasm/index.js';
import {
  C,
  CONTROL_BYTES,
  STATUS_THREW,
  bootstrapSource,
  inputLayout,
  readMessage,
  resultLayout,
  writeMessage,
  type InputLayout,
  type ScanFault,
  type ScanJob,
  type ScanWorkerInit,
} from './parallelScanWorker.js';
import { builtSibling, resolveWorkerEntry } from './workerFiles.js';

const OP = 'parallelScan';

/**
 * The automatic size rule (when `minRows` is not given): scan in parallel iff
 * n >= 2·SCAN_BLOCK (two blocks: something to split) and the scan's work
 * b·n·d >= DEFAULT_MIN_WORK multiply-adds. A parallel scan has a fixed cost
 * of ~0.15–0.3 ms (the job message, waking the worker, the shared copies),
 * so what matters is the work, not n alone. Measured with
 * `node dist/bench/step.js --crossover` (Gumbel sampler, a new cache array
 * per call, 2-core AMD EPYC under KVM, otherwise idle, Node 20; speed-up of
 * main + 1 worker over 1 thread, two runs):
 *   work (Mi mul-adds)   1          2          4          8          16
 *   b=16,  d=32          0.68–1.04  0.76–1.42  0.93–1.55  1.50–1.57  1.52
 *   b=32,  d=64          0.84–0.87  1.01–1.06  1.18–1.30  1.43–1.47  1.56–1.65
 *   b=128, d=128                                          1.29       1.41–1.47   (n = 512, 1024)
 *   b=128, d=128, n=65536: 65 ms → 35 ms (1.84); n=131072: 130 → 70 ms
 * 8 Mi is where every shape measured won in both runs. On a loaded machine,
 * where the second core is busy anyway, the parallel scan costs up to ~5%
 * more than the single-thread one.
 */
export const DEFAULT_MIN_WORK = 8 * 2 ** 20;
/** The smallest n the automatic rule scans in parallel (two blocks). */
export const DEFAULT_MIN_ROWS = 2 * SCAN_BLOCK;
const DEFAULT_TIMEOUT_MS = 30_000;

/** Why a parallel scan failed. */
export type ParallelScanFailure = 'threw' | 'exited' | 'timeout' | 'closed';

/** A parallel scan that could not complete (see the module comment). */
export class ParallelScanError extends NegcacheError {
  /** 'threw': the worker's job threw (the scanner stays usable); 'exited' / 'timeout': the worker is gone; 'closed': after close(). */
  readonly reason: ParallelScanFailure;
  /** The worker's own error text, if any. */
  readonly workerMessage: string;
  constructor(op: string, message: string, reason: ParallelScanFailure, workerMessage = '') {
    super(op, message);
    this.reason = reason;
    this.workerMessage = workerMessage;
  }
}

export interface ParallelScanOptions {
  /** Worker threads besides the main thread (default 1: main + 1 worker = 2 cores; 0 on a 1-core machine). 0 = always single-thread. */
  workers?: number;
  /**
   * Below this many cache rows, scan on the main thread only. Default: the
   * automatic rule, parallel iff n >= DEFAULT_MIN_ROWS and b·n·d >= DEFAULT_MIN_WORK.
   * Given, it replaces the rule (minRows: 0 = always parallel when n spans two blocks).
   */
  minRows?: number;
  /** How long the main thread waits for a worker's partial after posting its job, in ms (default 30000). */
  timeoutMs?: number;
  /** How many shared copies of (non-shared) cache arrays to keep for reuse by identity (default 1; 0 = copy every call). */
  cacheCopies?: number;
  /** The compiled worker module (default: parallelScanWorker.js next to this module, or dist/src/node/ when running from source). */
  workerEntry?: string | URL;
}

/** Timings of the last scan (diagnostics and benchmarks). */
export interface ParallelScanStats {
  /** Whether the last scan ran on the workers too. */
  parallel: boolean;
  /** The row ranges: [0] the main thread's, then one per worker. */
  ranges: [number, number][];
  /** Elements of the cache copied into shared memory by this call (0 on reuse or a shared cache). */
  copiedElements: number;
  /** ms spent copying inputs and cache rows into shared memory. */
  copyMs: number;
  /** ms of the main thread's own range scan. */
  mainMs: number;
  /** ms the main thread then waited for the workers. */
  waitMs: number;
  /** Each worker's own time for its job, ms. */
  workerMs: number[];
}

export interface ParallelScan {
  /** The fused scan (same contract and arguments as fusedCacheScan), on main + workers when n >= minRows. */
  readonly scan: (args: FusedScanArgs) => FusedScanResult;
  /** Terminates the workers (idempotent); later scans throw. */
  close(): void;
  readonly workers: number;
  /** The row threshold, or 'auto' for the automatic rule (see ParallelScanOptions.minRows). */
  readonly minRows: number | 'auto';
  /** Timings of the last scan. */
  readonly lastStats: ParallelScanStats;
  /** @internal Test hook: the next job of worker `w` (default 0) fails this way. */
  _injectFault(kind: ScanFault, w?: number): void;
  /** @internal Test hook: resolves with the workers' exit codes once every worker thread has exited. */
  _whenExited(): Promise<number[]>;
  /** @internal Test hook: resolves once every worker has loaded and compiled its kernels (READY). */
  _whenReady(): Promise<void>;
}

/** Where the compiled worker module lives. */
export function defaultScanWorkerEntry(): URL {
  return builtSibling(import.meta.url, 'parallelScanWorker.js');
}

function count(name: string, v: unknown, fallback: number): number {
  const x = v ?? fallback;
  if (typeof x !== 'number' || !Number.isInteger(x) || x < 0)
    throw new ArgumentError('createParallelScan', `${name} must be a non-negative integer, got ${describe(x)}`);
  return x;
}

interface Slot {
  worker: Worker;
  exited: Promise<number>;
  ctrl: Int32Array;
  results: SharedArrayBuffer;
  fault: ScanFault | null;
}

interface CacheCopy {
  /** Bumped whenever the buffer is handed to another array (invalidates older `owners` entries). */
  generation: number;
  sab: SharedArrayBuffer;
  /** Elements [lo, length) of the array are in sab. */
  lo: number;
  length: number;
}

/**
 * Creates a parallel fused scan (see the module comment). Throws an
 * ArgumentError for bad options or a missing worker build.
 */
export function createParallelScan(opts: ParallelScanOptions = {}): ParallelScan {
  if (opts === null || typeof opts !== 'object')
    throw new ArgumentError('createParallelScan', `options must be an object, got ${describe(opts)}`);
  const W = count('workers', opts.workers, availableParallelism() > 1 ? 1 : 0);
  const minRows = opts.minRows === undefined ? null : count('minRows', opts.minRows, 0);
  const maxCopies = count('cacheCopies', opts.cacheCopies, 1);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (typeof timeoutMs !== 'number' || !(timeoutMs > 0))
    throw new ArgumentError('createParallelScan', `timeoutMs must be a positive number, got ${describe(timeoutMs)}`);
  const entry =
    W > 0 ? resolveWorkerEntry('createParallelScan', 'scan worker', opts.workerEntry, defaultScanWorkerEntry) : null;

  const slots: Slot[] = [];
  let closed = false;
  let failure: ParallelScanError | null = null;
  let seq = 0;
  let inputs = new SharedArrayBuffer(64);
  const copies: CacheCopy[] = [];
  // Which copy holds which array, by identity. A WeakMap rather than WeakRefs: a WeakRef keeps its
  // target alive until the current synchronous job ends, and a training loop is one long synchronous
  // job, so every step's cache array would be kept (a leak of one cache per step).
  const owners = new WeakMap<Float32Array, { copy: CacheCopy; generation: number }>();
  const stats: ParallelScanStats = {
    parallel: false,
    ranges: [],
    copiedElements: 0,
    copyMs: 0,
    mainMs: 0,
    waitMs: 0,
    workerMs: [],
  };

  const terminateAll = (): void => {
    for (const s of slots) void s.worker.terminate().catch(() => undefined);
  };

  for (let w = 0; w < W; w++) {
    const control = new SharedArrayBuffer(CONTROL_BYTES);
    const ctrl = new Int32Array(control);
    const init: ScanWorkerInit = { negcacheParallelScan: 1, control, entry: entry!.href, fma: kernelOptions().fma };
    const worker = new Worker(bootstrapSource(), { eval: true, workerData: init });
    worker.unref();
    // These run only while the main thread is not blocked in a scan; during
    // a scan the worker flags its own exit (see parallelScanWorker.ts).
    const markDead = (text: string, code: number): void => {
      if (Atomics.load(ctrl, C.DEAD) !== 0) return;
      if (Atomics.load(ctrl, C.MSG_LEN) === 0) writeMessage(ctrl, text);
      Atomics.store(ctrl, C.EXIT_CODE, code);
      Atomics.store(ctrl, C.DEAD, 1);
    };
    worker.on('error', (e: unknown) =>
      markDead(`the scan worker crashed: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`, 1),
    );
    const exited = new Promise<number>((res) => worker.once('exit', res));
    worker.on('exit', (code: number) => markDead(`the scan worker exited with code ${code}`, code));
    slots.push({ worker, exited, ctrl, results: new SharedArrayBuffer(64), fault: null });
  }

  const fail = (err: ParallelScanError): never => {
    failure = err;
    terminateAll();
    throw err;
  };

  const deadError = (w: number, during: string): ParallelScanError => {
    const msg = readMessage(slots[w]!.ctrl);
    return new ParallelScanError(
      OP,
      `scan worker ${w} is gone (${during}): ${msg || 'no reason recorded'}; create a new parallel scan`,
      'exited',
      msg,
    );
  };

  /** Blocks until worker w finished job `s`; throws (and fails the scanner) on death or timeout. */
  const waitDone = (w: number, s: number, deadline: number): void => {
    const ctrl = slots[w]!.ctrl;
    for (;;) {
      const done = Atomics.load(ctrl, C.DONE);
      if (done === s) return;
      if (Atomics.load(ctrl, C.DEAD) !== 0) fail(deadError(w, `while scanning job ${s}`));
      const left = deadline - performance.now();
      if (left <= 0) {
        fail(
          new ParallelScanError(
            OP,
            `scan worker ${w} did not deliver its partial within ${timeoutMs} ms (job ${s}); it was terminated; create a new parallel scan`,
            'timeout',
          ),
        );
      }
      Atomics.wait(ctrl, C.DONE, done, Math.min(left, 100));
    }
  };

  /** A SharedArrayBuffer holding cache elements [lo, cache.length) at `offset` bytes in. */
  const cacheBuffer = (cache: Float32Array, lo: number): { sab: SharedArrayBuffer; offset: number; copied: number } => {
    if (cache.buffer instanceof SharedArrayBuffer) return { sab: cache.buffer, offset: cache.byteOffset, copied: 0 };
    const len = cache.length;
    let e: CacheCopy | undefined;
    let at = -1;
    if (maxCopies > 0) {
      const o = owners.get(cache);
      if (o !== undefined && o.generation === o.copy.generation && o.copy.length === len) {
        at = copies.indexOf(o.copy);
        e = at >= 0 ? o.copy : undefined;
      }
    }
    let copied = 0;
    const fill = (sab: SharedArrayBuffer, from: number, to: number): void => {
      new Float32Array(sab, 0, len).set(cache.subarray(from, to), from);
      copied += to - from;
    };
    if (e !== undefined) {
      copies.splice(at, 1);
      if (lo < e.lo) {
        fill(e.sab, lo, e.lo);
        e.lo = lo;
      }
    } else {
      // A miss: reuse the least recently used buffer (or a new one).
      e =
        copies.length >= Math.max(1, maxCopies)
          ? copies.pop()!
          : { generation: 0, sab: new SharedArrayBuffer(8), lo: 0, length: 0 };
      if (e.sab.byteLength < len * 4) e.sab = new SharedArrayBuffer(len * 4); // zero pages: only the rows written are committed
      fill(e.sab, lo, len);
      e.generation++;
      if (maxCopies > 0) owners.set(cache, { copy: e, generation: e.generation });
      e.lo = lo;
      e.length = len;
    }
    copies.unshift(e);
    return { sab: e.sab, offset: 0, copied };
  };

  const single = (args: FusedScanArgs, n: number): FusedScanResult => {
    const t0 = performance.now();
    const res = fusedCacheScan(args);
    Object.assign(stats, {
      parallel: false,
      ranges: [[0, n]],
      copiedElements: 0,
      copyMs: 0,
      mainMs: performance.now() - t0,
      waitMs: 0,
      workerMs: [],
    });
    return res;
  };

  const scan = (args: FusedScanArgs): FusedScanResult => {
    if (failure !== null)
      throw new ParallelScanError(
        OP,
        `the parallel scan failed earlier and is unusable: ${failure.message}`,
        failure.reason === 'timeout' ? 'timeout' : 'exited',
        failure.workerMessage,
      );
    if (closed) throw new ParallelScanError(OP, 'the parallel scan was closed', 'closed');
    const sh = validateScanArgs(args, OP);
    const { b, d, n, k, S } = sh;
    const big = minRows === null ? n >= DEFAULT_MIN_ROWS && b * n * d >= DEFAULT_MIN_WORK : n >= minRows;
    if (W === 0 || !big || b === 0 || d === 0) return single(args, n);
    const ranges = splitScanRows(n, W + 1);
    if (ranges.length < 2) return single(args, n);
    const used = ranges.length - 1;
    for (let w = 0; w < used; w++)
      if (Atomics.load(slots[w]!.ctrl, C.DEAD) !== 0) fail(deadError(w, 'before this scan'));

    // Inputs and cache rows into shared memory (no job is in flight: every
    // earlier scan waited for its workers before returning or throwing).
    const t0 = performance.now();
    const lo = ranges[1]![0];
    const sampler = args.sampler;
    const uniformCount = sampler === 'categorical' ? categoricalUniformCount(b, n, args.topKGroups, S) : 0;
    const L: InputLayout = inputLayout(b, d, n, uniformCount, args.rowValid !== undefined, args.rowIds !== undefined);
    if (inputs.byteLength < L.bytes) inputs = new SharedArrayBuffer(Math.max(L.bytes, 2 * inputs.byteLength));
    new Float32Array(inputs, L.queries, b * d).set(args.queries);
    if (L.uniforms >= 0 && k === 0) {
      // draw t of query i, block β reads uniforms[(i·S+t)·2B + 2β], [.. + 1]: copy the workers' blocks only
      const perQuery = 2 * sh.blocks,
        from = 2 * (lo / SCAN_BLOCK);
      const dst = new Float64Array(inputs, L.uniforms, uniformCount);
      for (let v = 0; v < b * S; v++)
        dst.set(args.uniforms!.subarray(v * perQuery + from, (v + 1) * perQuery), v * perQuery + from);
    } // with topKGroups the uniforms are only read by combinePartials, on this thread
    if (L.rowValid >= 0) new Uint8Array(inputs, L.rowValid, n).set(args.rowValid!.subarray(lo, n), lo);
    if (L.rowIds >= 0) {
      new Int32Array(inputs, L.rowIds, n).set(args.rowIds!.subarray(lo, n), lo);
      new Int32Array(inputs, L.excludeIds, b).set(args.queryExcludeIds!);
    }
    const cache = cacheBuffer(args.cache, lo * d);
    const RL = resultLayout(b, k, sampler, S, sh.mean, d);

    // Post the jobs.
    const s = ++seq;
    const t1 = performance.now();
    for (let w = 0; w < used; w++) {
      const slot = slots[w]!;
      if (slot.results.byteLength < RL.bytes)
        slot.results = new SharedArrayBuffer(Math.max(RL.bytes, 2 * slot.results.byteLength));
      const job: ScanJob = {
        seq: s,
        b,
        d,
        n,
        scale: args.scale,
        sampler,
        keys: sampler === 'gumbel' ? Array.from({ length: S }, (_, t) => [sh.keys[2 * t]!, sh.keys[2 * t + 1]!]) : null,
        topKGroups: k > 0 ? k : null,
        numSamples: S,
        softmaxMean: sh.mean,
        rowStart: ranges[w + 1]![0],
        rowEnd: ranges[w + 1]![1],
        inputs,
        layout: L,
        cache: cache.sab,
        cacheOffset: cache.offset,
        results: slot.results,
        fault: slot.fault,
      };
      slot.fault = null;
      slot.worker.postMessage(job);
    }
    const deadline = performance.now() + timeoutMs;

    // My share, then wait for everyone (also when mine threw: the next scan
    // must not rewrite buffers a worker still reads).
    let mine: ScanPartial | null = null;
    let mineError: unknown = null;
    try {
      mine = fusedCacheScanRange(args, 0, ranges[0]![1]);
    } catch (e) {
      mineError = e;
    }
    const t2 = performance.now();
    for (let w = 0; w < used; w++) waitDone(w, s, deadline);
    const t3 = performance.now();
    if (mineError !== null) throw mineError;

    const parts: ScanPartial[] = [mine!];
    const workerMs: number[] = [];
    for (let w = 0; w < used; w++) {
      const slot = slots[w]!;
      workerMs.push(Atomics.load(slot.ctrl, C.SCAN_US) / 1000);
      if (Atomics.load(slot.ctrl, C.STATUS) === STATUS_THREW) {
        const msg = readMessage(slot.ctrl);
        throw new ParallelScanError(
          OP,
          `scan worker ${w} threw while scanning rows [${ranges[w + 1]![0]}, ${ranges[w + 1]![1]}): ${msg}`,
          'threw',
          msg,
        );
      }
      const r = slot.results;
      const part: ScanPartial = {
        rowStart: ranges[w + 1]![0],
        rowEnd: ranges[w + 1]![1],
        max: new Float32Array(r, RL.max, b).slice(),
        sumExp: new Float64Array(r, RL.sumExp, b).slice(),
      };
      if (RL.sample >= 0) {
        part.sample = new Int32Array(r, RL.sample, b * S).slice();
        part.sampleScore = new Float32Array(r, RL.sampleScore, b * S).slice();
        part.sampleKey = new Float64Array(r, RL.sampleKey, b * S).slice();
      }
      if (RL.meanAcc >= 0) part.meanAcc = new Float64Array(r, RL.meanAcc, b * d).slice();
      if (RL.groupMax >= 0) {
        part.groupMax = new Float32Array(r, RL.groupMax, b * k).slice();
        part.groupArg = new Int32Array(r, RL.groupArg, b * k).slice();
      }
      parts.push(part);
    }
    Object.assign(stats, {
      parallel: true,
      ranges,
      copiedElements: cache.copied,
      copyMs: t1 - t0,
      mainMs: t2 - t1,
      waitMs: t3 - t2,
      workerMs,
    });
    return combinePartials(args, parts);
  };

  const api: ParallelScan = {
    scan,
    close(): void {
      if (closed) return;
      closed = true;
      terminateAll();
      copies.length = 0;
    },
    workers: W,
    minRows: minRows ?? 'auto',
    get lastStats(): ParallelScanStats {
      return {
        ...stats,
        ranges: stats.ranges.map((r) => [r[0], r[1]] as [number, number]),
        workerMs: stats.workerMs.slice(),
      };
    },
    _injectFault(kind: ScanFault, w = 0): void {
      if (w < 0 || w >= slots.length)
        throw new ArgumentError(
          'parallelScan._injectFault',
          `worker must be in [0, ${slots.length}), got ${describe(w)}`,
        );
      slots[w]!.fault = kind;
    },
    _whenExited(): Promise<number[]> {
      return Promise.all(slots.map((s) => s.exited));
    },
    async _whenReady(): Promise<void> {
      while (!slots.every((s) => Atomics.load(s.ctrl, C.READY) === 1 || Atomics.load(s.ctrl, C.DEAD) !== 0))
        await new Promise((res) => setTimeout(res, 5));
    },
  };
  // Keyed on the scan function (what a loss holds), which api.scan keeps alive too.
  if (slots.length > 0)
    reaper?.register(
      scan,
      slots.map((s) => s.worker),
    );
  return api;
}

/** Terminates the workers of a scanner that was garbage collected without close(). */
const reaper =
  typeof FinalizationRegistry === 'function'
    ? new FinalizationRegistry<Worker[]>((workers) => {
        for (const w of workers) void w.terminate().catch(() => undefined);
      })
    : null;
