/**
 * A replica group of R `worker_threads` workers (Node only). Each worker
 * imports a module and runs one of its exported functions as a replica:
 *
 *   // replica.mjs (compiled JavaScript; it must import negcache from the same
 *   // copy the worker entry uses, e.g. dist/src/..., so tensors are recognised)
 *   export async function step(ctx, args) {
 *     const all = await ctx.allGather(args.queries[ctx.replicaId]);
 *     return all;            // structured-cloneable; tensors allowed
 *   }
 *
 *   const results = await runWorkers({ numReplicas: 2, module: './replica.mjs', exportName: 'step', args });
 *
 * Tensors move between replicas through SharedArrayBuffers synchronised with
 * Atomics (the protocol is described in sharedMemoryGroup.ts). `args` (the
 * same for every replica) and the results cross postMessage: they must be
 * structured-cloneable, and Tensors anywhere inside arrays and plain objects
 * are converted to a plain `{ shape, dtype, data }` form and back to Tensors
 * on the other side (bit-exact).
 *
 * Failure: a replica that throws, exits (process.exit, a crash, an uncaught
 * exception) or does not arrive at a collective within `timeoutMs` aborts the
 * group: every replica waiting in a collective, or entering one later, fails
 * with a CollectiveAbortedError / CollectiveTimeoutError naming it. The
 * group then waits at most `abortGraceMs` for the other replicas to report,
 * terminates every worker, and rejects with a ReplicaGroupError naming the
 * replica that failed first. No worker is left running once the promise
 * settles (also on success). A replica that computes forever outside any
 * collective, while no other replica fails, is not interrupted.
 */
import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { ArgumentError, describe } from '../errors.js';
import { ReplicaGroupError, errorText } from '../distributed/replicaContext.js';
import {
  AbortCode,
  claimAbort,
  controlBytes,
  decodeTensors,
  encodeTensors,
  forceAbort,
  readAbort,
  type WorkerInit,
} from './sharedMemoryGroup.js';
import type { SerializedError } from './workerEntry.js';
import { builtSibling, resolveWorkerEntry } from './workerFiles.js';

export interface RunWorkersOptions {
  /** R, the number of workers (>= 1). */
  numReplicas: number;
  /**
   * The replica module (compiled JavaScript): a file path (absolute, or
   * relative to the current directory), a `file:` URL (string or URL), or a
   * bare package specifier (resolved from negcache's own location).
   */
  module: string | URL;
  /** The exported function to run, `async (ctx: ReplicaContext, args) => result` (default 'default'). */
  exportName?: string;
  /** Passed to every replica (structured-cloneable; tensors allowed). */
  args?: unknown;
  /** How long a replica waits in a collective for the others, in ms (default 30000). */
  timeoutMs?: number;
  /** After the first failure, how long to wait for the other replicas to report before terminating them (default min(1000, timeoutMs)). */
  abortGraceMs?: number;
  /** Initial size of each replica's outbox arena in bytes (default 256 KiB; it grows on demand). */
  arenaBytes?: number;
  /**
   * The compiled worker entry: a path, or a `file:` URL (string or URL) (default: workerEntry.js next to this
   * module, or dist/src/node/workerEntry.js when running from source).
   */
  workerEntry?: string | URL;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_ARENA_BYTES = 256 * 1024;

/** Where the compiled worker entry lives. */
export function defaultWorkerEntry(): URL {
  return builtSibling(import.meta.url, 'workerEntry.js');
}

function moduleUrl(module: string | URL): string {
  if (module instanceof URL) return module.href;
  if (/^[a-zA-Z][a-zA-Z0-9+.-]+:/.test(module) && !/^[a-zA-Z]:[\\/]/.test(module)) return module; // file:, data:, node: ...
  if (module.startsWith('.') || isAbsolute(module)) return pathToFileURL(resolve(module)).href;
  return module; // bare specifier
}

function positive(op: string, name: string, v: unknown, fallback: number): number {
  const x = v ?? fallback;
  if (typeof x !== 'number' || !Number.isFinite(x) || !(x > 0)) {
    throw new ArgumentError(op, `${name} must be a positive finite number, got ${describe(x)}`);
  }
  return x;
}

function reviveError(e: SerializedError): Error {
  const err = new Error(e.message);
  err.name = e.name;
  if (e.stack !== undefined) err.stack = e.stack;
  return err;
}

type Outcome = { kind: 'running' } | { kind: 'result'; value: unknown } | { kind: 'failed'; error: Error };

/**
 * Runs the exported function `exportName` of `module` in R worker threads
 * and resolves with their results in replica order (see the module comment
 * for the failure semantics).
 */
export async function runWorkers<T = unknown>(options: RunWorkersOptions): Promise<T[]> {
  const op = 'runWorkers';
  if (options === null || typeof options !== 'object')
    throw new ArgumentError(op, `options must be an object, got ${describe(options)}`);
  const R = options.numReplicas;
  if (typeof R !== 'number' || !Number.isInteger(R) || R < 1) {
    throw new ArgumentError(op, `numReplicas must be a positive integer, got ${describe(R)}`);
  }
  if (typeof options.module !== 'string' && !(options.module instanceof URL)) {
    throw new ArgumentError(op, `module must be a path or URL of a JavaScript module, got ${describe(options.module)}`);
  }
  const exportName = options.exportName ?? 'default';
  if (typeof exportName !== 'string')
    throw new ArgumentError(op, `exportName must be a string, got ${describe(exportName)}`);
  const timeoutMs = positive(op, 'timeoutMs', options.timeoutMs, DEFAULT_TIMEOUT_MS);
  const graceMs = positive(op, 'abortGraceMs', options.abortGraceMs, Math.min(1000, timeoutMs));
  const arenaBytes = Math.ceil(positive(op, 'arenaBytes', options.arenaBytes, DEFAULT_ARENA_BYTES) / 8) * 8;
  const entry = resolveWorkerEntry(op, 'worker entry', options.workerEntry, defaultWorkerEntry);
  const url = moduleUrl(options.module);
  if (url.startsWith('file:') && !existsSync(fileURLToPath(url))) {
    throw new ArgumentError(op, `module ${fileURLToPath(url)} does not exist; need a compiled JavaScript module`);
  }
  const args = encodeTensors(options.args);

  const control = new SharedArrayBuffer(controlBytes(R));
  const ctrl = new Int32Array(control);
  const arenas = Array.from({ length: R }, () => new SharedArrayBuffer(arenaBytes));
  const ports: (MessagePort | null)[][] = Array.from({ length: R }, () => new Array<MessagePort | null>(R).fill(null));
  for (let i = 0; i < R; i++) {
    for (let j = i + 1; j < R; j++) {
      const { port1, port2 } = new MessageChannel();
      ports[i]![j] = port1;
      ports[j]![i] = port2;
    }
  }

  const outcomes: Outcome[] = Array.from({ length: R }, () => ({ kind: 'running' }));
  const workers: Worker[] = [];
  let firstFailure: number | null = null;
  let pending = R;
  let grace: ReturnType<typeof setTimeout> | undefined;
  let terminating = false;
  let finish!: () => void;
  const finished = new Promise<void>((res) => (finish = res));

  const settle = (r: number, outcome: Outcome): void => {
    if (outcomes[r]!.kind !== 'running') return;
    outcomes[r] = outcome;
    if (outcome.kind === 'failed' && firstFailure === null) {
      firstFailure = r;
      grace = setTimeout(finish, graceMs);
    }
    if (--pending === 0) finish();
  };
  const failed = (r: number, code: (typeof AbortCode)[keyof typeof AbortCode], reason: string, error: Error): void => {
    if (terminating || outcomes[r]!.kind !== 'running') return;
    // Wake every waiting replica at once (a worker that threw has usually
    // claimed the abort itself already; then this is a no-op).
    // If another thread holds the abort lock it sets the flag within
    // microseconds; force it later only in case that thread died mid-claim.
    if (!claimAbort(ctrl, code, r, reason)) setTimeout(() => forceAbort(ctrl), 50).unref();
    settle(r, { kind: 'failed', error });
  };

  try {
    for (let r = 0; r < R; r++) {
      const init: WorkerInit = {
        negcacheWorkerGroup: 1,
        numReplicas: R,
        replicaId: r,
        control,
        arenas,
        ports: ports[r]!,
        timeoutMs,
        moduleUrl: url,
        exportName,
        args,
      };
      const w = new Worker(entry, {
        workerData: init,
        transferList: ports[r]!.filter((p): p is MessagePort => p !== null),
      });
      workers.push(w);
      w.on('message', (m: { type: 'result'; value: unknown } | { type: 'error'; error: SerializedError }) => {
        if (m.type === 'result') {
          try {
            settle(r, { kind: 'result', value: decodeTensors(m.value) });
          } catch (e) {
            failed(r, AbortCode.threw, `returned a malformed result: ${errorText(e)}`, e as Error);
          }
        } else {
          const err = reviveError(m.error);
          failed(r, AbortCode.threw, `threw ${errorText(err)}`, err);
        }
      });
      w.on('error', (e: unknown) => {
        const err = e instanceof Error ? e : new Error(errorText(e));
        failed(r, AbortCode.exited, `crashed with ${errorText(err)}`, err);
      });
      w.on('exit', (code: number) => {
        const reason = `exited with code ${code} before returning a result`;
        failed(r, AbortCode.exited, reason, new Error(`replica ${r} ${reason}`));
      });
    }
    await finished;
  } finally {
    if (grace !== undefined) clearTimeout(grace);
    terminating = true; // exits caused by terminate() are not failures
    await Promise.all(workers.map((w) => w.terminate()));
  }

  if (firstFailure === null) return outcomes.map((o) => (o as { value: unknown }).value as T);
  // The root cause is the failure recorded in the control block (the first
  // claim), which may differ from the first event the main thread saw.
  const info = readAbort(ctrl);
  const recorded = info !== null && info.replica >= 0 && info.replica < R ? info : null;
  const root = recorded?.replica ?? firstFailure;
  const reason = recorded?.reason ?? errorText((outcomes[root] as { error: Error }).error);
  const errors = outcomes.map((o) => (o.kind === 'failed' ? o.error : undefined));
  const others = outcomes
    .map((o, r) =>
      r === root
        ? null
        : o.kind === 'failed'
          ? `replica ${r}: ${errorText(o.error)}`
          : o.kind === 'running'
            ? `replica ${r}: still running, terminated`
            : null,
    )
    .filter((s): s is string => s !== null);
  throw new ReplicaGroupError(
    op,
    `replica ${root} failed: ${reason}${others.length > 0 ? ` (${others.join('; ')})` : ''}`,
    root,
    errors,
    errors[root],
  );
}
