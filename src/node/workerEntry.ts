/**
 * The entry point of every worker of a `runWorkers` group (run from the
 * compiled output, dist/src/node/workerEntry.js: Node 20 cannot start a
 * worker from a .ts file). It imports the replica module, calls the replica
 * function with a shared-memory ReplicaContext, and reports the outcome to
 * the main thread:
 *   { type: 'result', value }  value with tensors in PlainTensor form;
 *   { type: 'error', error }   { name, message, stack } of what it threw.
 * A failure is also written into the control block at once (claimAbort), so
 * peers waiting in a collective wake without a round trip through the main
 * thread.
 */
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { ArgumentError, describe } from '../errors.js';
import { errorText } from '../distributed/replicaContext.js';
import { SharedMemoryReplicaContext, decodeTensors, encodeTensors, type WorkerInit } from './sharedMemoryGroup.js';

/** An error as it crosses postMessage. */
export interface SerializedError {
  readonly name: string;
  readonly message: string;
  readonly stack?: string;
}

function serializeError(e: unknown): SerializedError {
  if (e instanceof Error)
    return { name: e.name, message: e.message, ...(e.stack !== undefined ? { stack: e.stack } : {}) };
  return { name: 'Error', message: `a thrown ${describe(e)}` };
}

async function main(init: WorkerInit): Promise<void> {
  const port = parentPort!;
  const ctx = new SharedMemoryReplicaContext(init);
  try {
    const mod = (await import(init.moduleUrl)) as Record<string, unknown>;
    const fn = mod[init.exportName];
    if (typeof fn !== 'function') {
      throw new ArgumentError(
        'runWorkers',
        `module ${init.moduleUrl} has no exported function "${init.exportName}" (found ${describe(fn)}); need export async function ${init.exportName}(ctx, args)`,
      );
    }
    const value = await (fn as (ctx: SharedMemoryReplicaContext, args: unknown) => unknown)(
      ctx,
      decodeTensors(init.args),
    );
    ctx.finish();
    port.postMessage({ type: 'result', value: encodeTensors(value) });
  } catch (e) {
    ctx.fail(`threw ${errorText(e)}`);
    port.postMessage({ type: 'error', error: serializeError(e) });
  }
}

const init = workerData as WorkerInit | undefined;
if (!isMainThread && init?.negcacheWorkerGroup === 1) await main(init);
