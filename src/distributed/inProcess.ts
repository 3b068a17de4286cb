/**
 * A replica group inside one thread: R async functions that meet at
 * collectives. For tests of sharded code and for running the sharded cache
 * in a browser; it has the same semantics and error messages as the worker
 * group (src/node/workerGroup.ts).
 *
 * Determinism: the replica functions start in replica order; a collective
 * completes synchronously inside the call of the last replica to arrive and
 * resolves the waiting replicas in replica order. Results are pure functions
 * of the inputs, so a deterministic replica function gives identical results
 * run to run. Replicas may receive the same (immutable) result tensor object.
 */
import { ArgumentError, describe } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import {
  CollectiveAbortedError,
  CollectiveTimeoutError,
  ReplicaGroupError,
  errorText,
  executePlan,
  makeHeader,
  planCollective,
  type CollectiveHeader,
  type CollectiveKind,
  type CollectivePlan,
  type ReplicaContext,
} from './replicaContext.js';

export interface RunInProcessOptions {
  /**
   * How long a replica may wait in a collective for the others, in ms
   * (default 30000). On expiry the waiting replicas reject with a
   * `CollectiveTimeoutError` naming the missing replicas and the group is
   * aborted.
   */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;

interface Arrival {
  readonly header: CollectiveHeader;
  readonly tensor: Tensor | null;
  readonly resolve: (t: Tensor | null) => void;
  readonly reject: (e: unknown) => void;
}

interface Rendezvous {
  readonly seq: number;
  readonly kind: CollectiveKind;
  readonly arrivals: (Arrival | undefined)[];
  count: number;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/** Why the group stopped: the replica to blame and a description. */
interface Failure {
  readonly replica: number;
  readonly reason: string;
  readonly error: unknown;
}

class InProcessGroup {
  readonly pending = new Map<number, Rendezvous>();
  failure: Failure | null = null;
  /** Per replica: the number of collectives it made before returning, or undefined while running. */
  readonly finishedAfter: (number | undefined)[];

  constructor(
    readonly numReplicas: number,
    readonly timeoutMs: number,
  ) {
    this.finishedAfter = new Array<number | undefined>(numReplicas).fill(undefined);
  }

  abortedError(op: string, seq: number, replica: number): CollectiveAbortedError {
    const f = this.failure!;
    if (f.error instanceof CollectiveTimeoutError) {
      return new CollectiveTimeoutError(
        op,
        `collective #${seq} on replica ${replica} was aborted: ${f.reason}`,
        f.error.missingReplicas,
        f.reason,
      );
    }
    return new CollectiveAbortedError(
      op,
      `collective #${seq} on replica ${replica} was aborted because replica ${f.replica} failed: ${f.reason}`,
      f.replica,
      f.reason,
    );
  }

  /** Marks the group failed (first failure wins) and rejects every pending collective. */
  fail(failure: Failure): void {
    if (this.failure !== null) return;
    this.failure = failure;
    for (const rv of [...this.pending.values()].sort((a, b) => a.seq - b.seq)) {
      this.pending.delete(rv.seq);
      if (rv.timer !== undefined) clearTimeout(rv.timer);
      rv.arrivals.forEach((a, r) => a?.reject(this.abortedError(rv.kind, rv.seq, r)));
    }
  }

  /** A replica returned: pending collectives it skipped can never complete. */
  finish(replica: number, collectives: number): void {
    this.finishedAfter[replica] = collectives;
    for (const rv of [...this.pending.values()].sort((a, b) => a.seq - b.seq)) {
      if (rv.arrivals[replica] !== undefined) continue;
      this.pending.delete(rv.seq);
      if (rv.timer !== undefined) clearTimeout(rv.timer);
      const err = skippedError(rv.kind, rv.seq, replica, collectives);
      rv.arrivals.forEach((a) => a?.reject(err));
    }
  }

  arrive(replica: number, seq: number, header: CollectiveHeader, tensor: Tensor | null): Promise<Tensor | null> {
    const op = header.kind;
    // A replica that returned can never arrive: the precise reason, even after an abort.
    const done = this.finishedAfter.findIndex((n) => n !== undefined && n < seq);
    if (done >= 0) return Promise.reject(skippedError(op, seq, done, this.finishedAfter[done]!));
    if (this.failure !== null) return Promise.reject(this.abortedError(op, seq, replica));
    let rv = this.pending.get(seq);
    if (rv === undefined) {
      const fresh: Rendezvous = {
        seq,
        kind: op,
        arrivals: new Array<Arrival | undefined>(this.numReplicas).fill(undefined),
        count: 0,
        timer: undefined,
      };
      fresh.timer = setTimeout(() => this.timeout(fresh), this.timeoutMs);
      this.pending.set(seq, fresh);
      rv = fresh;
    }
    const promise = new Promise<Tensor | null>((resolve, reject) => {
      rv.arrivals[replica] = { header, tensor, resolve, reject };
    });
    rv.count++;
    if (rv.count === this.numReplicas) this.complete(rv);
    return promise;
  }

  complete(rv: Rendezvous): void {
    this.pending.delete(rv.seq);
    if (rv.timer !== undefined) clearTimeout(rv.timer);
    const arrivals = rv.arrivals as Arrival[];
    let plan: CollectivePlan;
    try {
      plan = planCollective(
        rv.seq,
        arrivals.map((a) => a.header),
      );
    } catch (e) {
      // Every replica rejects the same collective with the same error; the group stays usable.
      for (const a of arrivals) a.reject(e);
      return;
    }
    const inputs = arrivals.map((a) => a.tensor!);
    if (plan.kind === 'allGather') {
      const out = executePlan(plan, inputs, 0); // the same for every replica
      for (const a of arrivals) a.resolve(out);
    } else {
      arrivals.forEach((a, r) => a.resolve(executePlan(plan, inputs, r)));
    }
  }

  timeout(rv: Rendezvous): void {
    if (this.pending.get(rv.seq) !== rv) return;
    const missing: number[] = [];
    rv.arrivals.forEach((a, r) => {
      if (a === undefined) missing.push(r);
    });
    const reason = `replica${missing.length > 1 ? 's' : ''} ${missing.join(', ')} did not arrive at collective #${rv.seq} (${rv.kind}) within ${this.timeoutMs} ms`;
    const error = new CollectiveTimeoutError(rv.kind, `collective #${rv.seq}: timed out: ${reason}`, missing, reason);
    this.pending.delete(rv.seq);
    rv.timer = undefined;
    // The arrived replicas get the timeout error itself; everything else is aborted with it.
    const arrivals = rv.arrivals.slice();
    this.fail({ replica: missing[0]!, reason, error });
    arrivals.forEach((a) => a?.reject(error));
  }

  dispose(): void {
    for (const rv of this.pending.values()) if (rv.timer !== undefined) clearTimeout(rv.timer);
  }
}

function skippedError(op: string, seq: number, replica: number, collectives: number): ArgumentError {
  return new ArgumentError(
    op,
    `collective #${seq}: replica ${replica} returned after ${collectives} collective${collectives === 1 ? '' : 's'} without calling collective #${seq}; every replica must call the same collectives in the same order`,
  );
}

class InProcessContext implements ReplicaContext {
  #seq = 0;
  constructor(
    readonly numReplicas: number,
    readonly replicaId: number,
    private readonly group: InProcessGroup,
  ) {}

  get collectives(): number {
    return this.#seq;
  }

  allGather(t: Tensor, opts?: { axis?: number }): Promise<Tensor> {
    return this.group.arrive(this.replicaId, ++this.#seq, makeHeader('allGather', t, opts), t) as Promise<Tensor>;
  }

  allToAll(t: Tensor, opts: { splitAxis: number; concatAxis: number }): Promise<Tensor> {
    return this.group.arrive(this.replicaId, ++this.#seq, makeHeader('allToAll', t, opts), t) as Promise<Tensor>;
  }

  async barrier(): Promise<void> {
    await this.group.arrive(this.replicaId, ++this.#seq, makeHeader('barrier', null, undefined), null);
  }
}

/**
 * Runs `fn` as R concurrent replicas in this thread and resolves with their
 * results in replica order.
 *
 * Failure: if a replica throws (or its promise rejects), every replica
 * waiting in a collective, or entering one later, rejects with a
 * `CollectiveAbortedError` naming it and its error. runInProcess then waits
 * for the other replicas to settle (at most `timeoutMs` more: an async
 * function cannot be killed, so a replica stuck outside collectives is
 * abandoned) and rejects with a `ReplicaGroupError` naming the replica that
 * failed first. A replica that never arrives at a collective makes the
 * waiting ones reject with a `CollectiveTimeoutError` after `timeoutMs`.
 */
export async function runInProcess<T>(
  numReplicas: number,
  fn: (ctx: ReplicaContext) => Promise<T>,
  opts: RunInProcessOptions = {},
): Promise<T[]> {
  if (typeof numReplicas !== 'number' || !Number.isInteger(numReplicas) || numReplicas < 1) {
    throw new ArgumentError('runInProcess', `numReplicas must be a positive integer, got ${describe(numReplicas)}`);
  }
  if (typeof fn !== 'function')
    throw new ArgumentError('runInProcess', `fn must be a function (ctx) => Promise<result>, got ${describe(fn)}`);
  if (opts === null || typeof opts !== 'object')
    throw new ArgumentError('runInProcess', `opts must be an object, got ${describe(opts)}`);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (typeof timeoutMs !== 'number' || !(timeoutMs > 0) || !Number.isFinite(timeoutMs)) {
    throw new ArgumentError(
      'runInProcess',
      `timeoutMs must be a positive finite number of milliseconds, got ${describe(timeoutMs)}`,
    );
  }

  const group = new InProcessGroup(numReplicas, timeoutMs);
  const results = new Array<T>(numReplicas);
  const errors = new Array<Error | undefined>(numReplicas).fill(undefined);
  const settled = new Array<boolean>(numReplicas).fill(false);
  let firstThrown: number | null = null;

  const outcome = new Promise<void>((resolveAll) => {
    let remaining = numReplicas;
    let grace: ReturnType<typeof setTimeout> | undefined;
    const settle = (): void => {
      if (--remaining === 0) {
        if (grace !== undefined) clearTimeout(grace);
        resolveAll();
      }
    };
    for (let r = 0; r < numReplicas; r++) {
      const ctx = new InProcessContext(numReplicas, r, group);
      Promise.resolve()
        .then(() => fn(ctx))
        .then(
          (value) => {
            results[r] = value;
            settled[r] = true;
            group.finish(r, ctx.collectives);
            settle();
          },
          (e: unknown) => {
            errors[r] = e instanceof Error ? e : new Error(errorText(e));
            settled[r] = true;
            firstThrown ??= r;
            group.fail({ replica: r, reason: `threw ${errorText(e)}`, error: e });
            if (grace === undefined) grace = setTimeout(resolveAll, timeoutMs);
            settle();
          },
        );
    }
  });
  await outcome;
  group.dispose();

  if (firstThrown === null) return results;
  // The root cause: the first failure the group recorded (a thrown error or a
  // timeout blaming a missing replica).
  const f = group.failure!;
  const others = errors
    .map((e, r) =>
      r === f.replica
        ? null
        : e !== undefined
          ? `replica ${r}: ${errorText(e)}`
          : !settled[r]
            ? `replica ${r}: still running, abandoned`
            : null,
    )
    .filter((s): s is string => s !== null);
  const message = `replica ${f.replica} failed: ${f.reason}${others.length > 0 ? ` (${others.join('; ')})` : ''}`;
  throw new ReplicaGroupError('runInProcess', message, f.replica, errors, f.error);
}
