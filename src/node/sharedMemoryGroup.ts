/**
 * The shared-memory protocol of the worker group (Node only; see
 * workerGroup.ts for the main-thread side and workerEntry.ts for the worker).
 *
 * Memory
 * ------
 * - One control block (a SharedArrayBuffer viewed as Int32Array), shared by
 *   the main thread and all R workers:
 *     EPOCH        bumped (Atomics.add + Atomics.notify) after every state
 *                  change; every wait is an Atomics.wait on EPOCH;
 *     ABORT        0, or 1 once the group is aborted;
 *     ABORT_LOCK   claimed with compareExchange(0 -> 1) by the first failure;
 *                  the winner writes ABORT_REPLICA (the replica to blame),
 *                  ABORT_CODE (threw / exited / timeout) and a UTF-8 reason
 *                  (up to 2 KiB) and then sets ABORT, so the first failure
 *                  is the one every replica reports;
 *     per replica r, a record: PUBLISHED (the last collective number whose
 *     header and outbox r has written), CONSUMED (the last collective whose
 *     inputs r has finished reading), DONE (1 + the number of collectives r
 *     made, once r's function returned), the header of r's current call
 *     (kind, dtype code, rank, shape up to 16 axes, the two axes) and
 *     ARENA_GEN (the generation of r's outbox arena).
 * - One outbox arena per replica (a SharedArrayBuffer only its owner writes).
 *   allGather: the owner's tensor bytes; allToAll: the R pieces along
 *   splitAxis, piece q contiguous at q * pieceBytes. Data moves with exactly
 *   one copy into the owner's arena and one copy out into each reader's
 *   fresh result storage (Uint8Array.set, so bit-exact for every dtype).
 *
 * Collective #s on replica r (all collectives are numbered from 1)
 * ----------------------------------------------------------------
 * 1. Wait until every replica has CONSUMED >= s - 1 (nobody still reads the
 *    arena r is about to overwrite).
 * 2. Write the header; if the outbox is too small, allocate a new
 *    SharedArrayBuffer (at least double), post it with its generation on
 *    r's MessagePort to every peer, and store ARENA_GEN. Copy the data in.
 * 3. Atomics.store(PUBLISHED_r, s), bump EPOCH (release).
 * 4. Wait until every replica has PUBLISHED >= s (acquire).
 * 5. Decode all R headers and run `planCollective` (the same check on every
 *    replica, so all reject a mismatched collective with the same error).
 * 6. For each peer whose ARENA_GEN is newer than the arena r holds, take
 *    the new arena from the peer's port with `receiveMessageOnPort`
 *    (synchronous; the message was posted before the peer's PUBLISHED store).
 *    Copy the pieces out.
 * 7. Atomics.store(CONSUMED_r, s), bump EPOCH.
 * One collective therefore costs two waits; the wait of step 1 is normally
 * already satisfied. A replica whose function returns sets DONE and then
 * waits until every peer has CONSUMED its last collective (so its arena and
 * growth messages are no longer needed) before reporting its result.
 *
 * Waiting: spin on EPOCH for up to 50 µs (peers usually arrive within
 * microseconds, and waking from a futex costs tens of them), then
 * `Atomics.wait(EPOCH, seen, <= 100 ms)` in a loop that re-checks the
 * condition, the peers' DONE, ABORT and the deadline (timeoutMs per wait).
 * The worker thread blocks while it waits (a collective looks async but
 * completes synchronously); anything that changes state bumps EPOCH and
 * notifies, including the main thread when it sees a worker exit or crash.
 */
import { receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { ArgumentError, describe } from '../errors.js';
import { isDType, type DType, type TypedArray } from '../tensor/dtype.js';
import { sizeOf } from '../tensor/shape.js';
import { isTensor, unsafeData, wrap, type Tensor } from '../tensor/tensor.js';
import {
  CollectiveAbortedError,
  CollectiveTimeoutError,
  allocateResult,
  bytesOf,
  bytesPerElement,
  copyBlockIn,
  copyPieceOut,
  makeHeader,
  planCollective,
  type CollectiveHeader,
  type CollectiveKind,
  type ReplicaContext,
} from '../distributed/replicaContext.js';

// ---------------------------------------------------------------------------
// Control block layout (Int32 indices)

const EPOCH = 0;
const ABORT = 1;
const ABORT_LOCK = 2;
const ABORT_REPLICA = 3;
const ABORT_CODE = 4;
const ABORT_MSG_LEN = 5;
const ABORT_MSG = 8; // byte offset ABORT_MSG * 4
const ABORT_MSG_BYTES = 2048;
const RECORDS = ABORT_MSG + ABORT_MSG_BYTES / 4;

/** Largest rank the transport's fixed headers can describe. */
export const MAX_RANK = 16;
const PUBLISHED = 0;
const CONSUMED = 1;
const DONE = 2;
const KIND = 3;
const TENSOR = 4; // 0 a tensor, 1 not a tensor, 2 rank above MAX_RANK
const DTYPE = 5;
const RANK = 6;
const AXIS_A = 7;
const AXIS_A_OK = 8;
const AXIS_B = 9;
const AXIS_B_OK = 10;
const ARENA_GEN = 11;
const SHAPE = 12;
const RECORD_INTS = SHAPE + MAX_RANK;

/** How long a waiting replica spins before it blocks in Atomics.wait, in ms. */
const SPIN_MS = 0.05;

const KINDS: readonly CollectiveKind[] = ['allGather', 'allToAll', 'barrier'];
const DTYPE_CODES: readonly DType[] = ['float32', 'float64', 'int32', 'bool'];

/** Why a group was aborted. */
export const AbortCode = { threw: 1, exited: 2, timeout: 3 } as const;
export type AbortCodeValue = (typeof AbortCode)[keyof typeof AbortCode];

/** Bytes of the control block of a group of R replicas. */
export function controlBytes(numReplicas: number): number {
  return (RECORDS + numReplicas * RECORD_INTS) * 4;
}

function rec(r: number): number {
  return RECORDS + r * RECORD_INTS;
}

function bump(ctrl: Int32Array): void {
  Atomics.add(ctrl, EPOCH, 1);
  Atomics.notify(ctrl, EPOCH);
}

/**
 * Marks the group aborted, blaming `replica`, unless another failure came
 * first. Safe from the main thread (it never waits) and from workers.
 * Returns whether this call won.
 */
export function claimAbort(ctrl: Int32Array, code: AbortCodeValue, replica: number, reason: string): boolean {
  if (Atomics.compareExchange(ctrl, ABORT_LOCK, 0, 1) !== 0) return false; // someone else reports the first failure

  const encoded = new TextEncoder().encode(reason);
  let len = Math.min(encoded.length, ABORT_MSG_BYTES);
  while (len > 0 && len < encoded.length && (encoded[len]! & 0xc0) === 0x80) len--; // do not cut a UTF-8 sequence
  new Uint8Array(ctrl.buffer, ABORT_MSG * 4, ABORT_MSG_BYTES).set(encoded.subarray(0, len));
  Atomics.store(ctrl, ABORT_MSG_LEN, len);
  Atomics.store(ctrl, ABORT_REPLICA, replica);
  Atomics.store(ctrl, ABORT_CODE, code);
  Atomics.store(ctrl, ABORT, 1);
  bump(ctrl);
  return true;
}

/**
 * Sets the abort flag without a reason: used by the main thread when the
 * abort lock was taken but the flag is still unset 50 ms later (the thread
 * holding the lock died while claiming).
 */
export function forceAbort(ctrl: Int32Array): void {
  if (Atomics.load(ctrl, ABORT) === 0) {
    Atomics.store(ctrl, ABORT, 1);
    bump(ctrl);
  }
}

/**
 * Waits (at most ABORT_PUBLISH_MS) until the abort flag is set: after losing
 * claimAbort, the winner publishes its reason within microseconds, or, if it
 * died while claiming, the main thread forces the flag after 50 ms.
 */
const ABORT_PUBLISH_MS = 200;
function awaitAbortFlag(ctrl: Int32Array): void {
  const until = performance.now() + ABORT_PUBLISH_MS;
  for (;;) {
    const epoch = Atomics.load(ctrl, EPOCH);
    if (Atomics.load(ctrl, ABORT) !== 0) return;
    const left = until - performance.now();
    if (left <= 0) return;
    Atomics.wait(ctrl, EPOCH, epoch, Math.min(left, 5)); // claimAbort and forceAbort bump EPOCH after setting the flag
  }
}

/** The recorded first failure, or null while the group is healthy. */
export function readAbort(ctrl: Int32Array): { replica: number; code: number; reason: string } | null {
  if (Atomics.load(ctrl, ABORT) === 0) return null;
  const code = Atomics.load(ctrl, ABORT_CODE);
  if (code === 0) return { replica: -1, code, reason: 'failed' }; // forced without a reason
  const len = Atomics.load(ctrl, ABORT_MSG_LEN);
  const bytes = new Uint8Array(ctrl.buffer, ABORT_MSG * 4, len).slice(); // TextDecoder rejects shared views
  return { replica: Atomics.load(ctrl, ABORT_REPLICA), code, reason: new TextDecoder().decode(bytes) };
}

// ---------------------------------------------------------------------------
// Tensors in messages (args and results)

/**
 * How a tensor crosses postMessage (args to the workers, results back):
 * `{ __negcacheTensor: 1, shape, dtype, data }`, data a typed array of the
 * dtype's storage type (structured clone copies it bit-exactly).
 */
export interface PlainTensor {
  readonly __negcacheTensor: 1;
  readonly shape: number[];
  readonly dtype: DType;
  readonly data: TypedArray;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object') return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * Replaces every Tensor inside arrays and plain objects by its PlainTensor
 * form (deep; shared references and cycles are kept). Other values are left
 * for structured clone.
 */
export function encodeTensors(value: unknown): unknown {
  const seen = new Map<object, unknown>();
  const walk = (v: unknown): unknown => {
    if (isTensor(v)) {
      const d = unsafeData(v);
      const data =
        d.byteOffset === 0 && d.byteLength === d.buffer.byteLength && !(d.buffer instanceof SharedArrayBuffer)
          ? d
          : d.slice();
      const plain: PlainTensor = { __negcacheTensor: 1, shape: v.shape.slice(), dtype: v.dtype, data };
      return plain;
    }
    if (Array.isArray(v)) {
      if (seen.has(v)) return seen.get(v);
      const out: unknown[] = [];
      seen.set(v, out);
      for (const x of v) out.push(walk(x));
      return out;
    }
    if (isPlainObject(v)) {
      if (seen.has(v)) return seen.get(v);
      const out: Record<string, unknown> = {};
      seen.set(v, out);
      for (const k of Object.keys(v)) out[k] = walk(v[k]);
      return out;
    }
    return v;
  };
  return walk(value);
}

const STORAGE: Record<DType, new (n: number) => TypedArray> = {
  float32: Float32Array,
  float64: Float64Array,
  int32: Int32Array,
  bool: Uint8Array,
};

/** The inverse of encodeTensors: PlainTensor objects become Tensors (owning the cloned storage). */
export function decodeTensors(value: unknown): unknown {
  const seen = new Map<object, unknown>();
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) {
      if (seen.has(v)) return seen.get(v);
      const out: unknown[] = [];
      seen.set(v, out);
      for (const x of v) out.push(walk(x));
      return out;
    }
    if (isPlainObject(v)) {
      if (seen.has(v)) return seen.get(v);
      if (v.__negcacheTensor === 1) {
        const { shape, dtype, data } = v as unknown as PlainTensor;
        if (
          !isDType(dtype) ||
          !(data instanceof STORAGE[dtype]) ||
          !Array.isArray(shape) ||
          sizeOf(shape) !== data.length
        ) {
          throw new ArgumentError(
            'decodeTensors',
            `malformed tensor message (shape ${describe(shape)}, dtype ${describe(dtype)}, data ${describe(data)}); need {shape, dtype, data} with matching storage`,
          );
        }
        const t = wrap(data, shape, dtype);
        seen.set(v, t);
        return t;
      }
      const out: Record<string, unknown> = {};
      seen.set(v, out);
      for (const k of Object.keys(v)) out[k] = walk(v[k]);
      return out;
    }
    return v;
  };
  return walk(value);
}

// ---------------------------------------------------------------------------
// The worker-side context

/** What a worker gets from the main thread (workerData). */
export interface WorkerInit {
  readonly negcacheWorkerGroup: 1;
  readonly numReplicas: number;
  readonly replicaId: number;
  readonly control: SharedArrayBuffer;
  /** The initial (generation 0) outbox arena of every replica. */
  readonly arenas: readonly SharedArrayBuffer[];
  /** ports[q]: the channel to replica q (null for this replica). */
  readonly ports: readonly (MessagePort | null)[];
  readonly timeoutMs: number;
  readonly moduleUrl: string;
  readonly exportName: string;
  readonly args: unknown;
}

interface ArenaMessage {
  readonly gen: number;
  readonly arena: SharedArrayBuffer;
}

function skippedError(op: string, seq: number, replica: number, collectives: number): ArgumentError {
  return new ArgumentError(
    op,
    `collective #${seq}: replica ${replica} returned after ${collectives} collective${collectives === 1 ? '' : 's'} without calling collective #${seq}; every replica must call the same collectives in the same order`,
  );
}

/** A ReplicaContext over the shared control block (one per worker). */
export class SharedMemoryReplicaContext implements ReplicaContext {
  readonly numReplicas: number;
  readonly replicaId: number;
  readonly #ctrl: Int32Array;
  readonly #arenas: SharedArrayBuffer[];
  readonly #gens: number[];
  readonly #ports: readonly (MessagePort | null)[];
  readonly #timeoutMs: number;
  #seq = 0;

  constructor(init: WorkerInit) {
    this.numReplicas = init.numReplicas;
    this.replicaId = init.replicaId;
    this.#ctrl = new Int32Array(init.control);
    this.#arenas = init.arenas.slice();
    this.#gens = init.arenas.map(() => 0);
    this.#ports = init.ports;
    this.#timeoutMs = init.timeoutMs;
    for (const p of this.#ports) p?.unref();
  }

  async allGather(t: Tensor, opts?: { axis?: number }): Promise<Tensor> {
    return this.#collective('allGather', t, opts) as Tensor;
  }

  async allToAll(t: Tensor, opts: { splitAxis: number; concatAxis: number }): Promise<Tensor> {
    return this.#collective('allToAll', t, opts) as Tensor;
  }

  async barrier(): Promise<void> {
    this.#collective('barrier', null, undefined);
  }

  /** Called by the worker entry when the replica function returned: publish DONE, then wait until no peer needs our arena. */
  finish(): void {
    const ctrl = this.#ctrl;
    Atomics.store(ctrl, rec(this.replicaId) + DONE, this.#seq + 1);
    bump(ctrl);
    const s = this.#seq;
    if (s > 0) this.#waitAll('finish', s + 1, 'drain', (q) => Atomics.load(ctrl, rec(q) + CONSUMED) >= s);
  }

  /** Called by the worker entry when the replica function failed. */
  fail(reason: string): void {
    claimAbort(this.#ctrl, AbortCode.threw, this.replicaId, reason);
  }

  #collective(kind: CollectiveKind, t: unknown, opts: unknown): Tensor | null {
    const ctrl = this.#ctrl;
    const me = this.replicaId;
    const R = this.numReplicas;
    const s = ++this.#seq;
    const base = rec(me);
    // 1. Nobody still reads the arena of collective s - 1.
    if (s > 1) this.#waitAll(kind, s, 'drain', (q) => Atomics.load(ctrl, rec(q) + CONSUMED) >= s - 1);

    // 2. Header and outbox.
    const header = makeHeader(kind, t, opts);
    ctrl[base + KIND] = KINDS.indexOf(kind);
    ctrl[base + AXIS_A_OK] = encodeAxis(header.axisA) === null ? 0 : 1;
    ctrl[base + AXIS_A] = encodeAxis(header.axisA) ?? 0;
    ctrl[base + AXIS_B_OK] = encodeAxis(header.axisB) === null ? 0 : 1;
    ctrl[base + AXIS_B] = encodeAxis(header.axisB) ?? 0;
    const tensor = header.tensor !== null && 'dtype' in header.tensor ? (t as Tensor) : null;
    if (tensor === null) {
      ctrl[base + TENSOR] = 1;
    } else if (tensor.rank > MAX_RANK) {
      ctrl[base + TENSOR] = 2;
      ctrl[base + RANK] = tensor.rank;
    } else {
      ctrl[base + TENSOR] = 0;
      ctrl[base + DTYPE] = DTYPE_CODES.indexOf(tensor.dtype);
      ctrl[base + RANK] = tensor.rank;
      for (let i = 0; i < tensor.rank; i++) ctrl[base + SHAPE + i] = tensor.shape[i]!;
      this.#writeOutbox(kind, tensor, header);
    }
    // 3. Publish.
    Atomics.store(ctrl, base + PUBLISHED, s);
    bump(ctrl);
    // 4. Wait for everyone.
    this.#waitAll(kind, s, 'arrive', (q) => Atomics.load(ctrl, rec(q) + PUBLISHED) >= s);
    // 5-7. Check, read, release.
    try {
      const headers: CollectiveHeader[] = [];
      for (let q = 0; q < R; q++) headers.push(this.#readHeader(q));
      const plan = planCollective(s, headers);
      if (plan.kind === 'barrier') return null;
      const elt = bytesPerElement(plan.dtype);
      const { data, bytes } = allocateResult(plan.dtype, plan.outShape);
      if (plan.kind === 'allGather') {
        let at = 0;
        for (let q = 0; q < R; q++) {
          const shape = plan.shapes[q]!;
          const n = sizeOf(shape) * elt;
          if (n > 0)
            copyBlockIn(new Uint8Array(this.#arena(q, kind, s), 0, n), shape, elt, plan.axis, bytes, plan.outShape, at);
          at += shape[plan.axis]!;
        }
      } else {
        const pieceBytes = sizeOf(plan.pieceShape) * elt;
        const c = plan.pieceShape[plan.concatAxis]!;
        if (pieceBytes > 0) {
          for (let q = 0; q < R; q++) {
            const piece = new Uint8Array(this.#arena(q, kind, s), me * pieceBytes, pieceBytes);
            copyBlockIn(piece, plan.pieceShape, elt, plan.concatAxis, bytes, plan.outShape, q * c);
          }
        }
      }
      return wrap(data, plan.outShape, plan.dtype);
    } finally {
      Atomics.store(ctrl, base + CONSUMED, s);
      bump(ctrl);
    }
  }

  /** Copies this replica's contribution into its outbox (growing the arena if needed). */
  #writeOutbox(kind: CollectiveKind, tensor: Tensor, header: CollectiveHeader): void {
    const R = this.numReplicas;
    const elt = bytesPerElement(tensor.dtype);
    const n = tensor.size * elt;
    if (n === 0) return;
    const src = bytesOf(unsafeData(tensor));
    if (kind === 'allGather') {
      new Uint8Array(this.#ensureArena(n), 0, n).set(src);
      return;
    }
    // allToAll: only a locally valid split can be laid out; otherwise every
    // replica rejects the collective in planCollective and nobody reads it.
    const rank = tensor.rank;
    if (typeof header.axisA !== 'number' || header.axisA < -rank || header.axisA >= rank) return;
    const splitAxis = header.axisA < 0 ? header.axisA + rank : header.axisA;
    if (tensor.shape[splitAxis]! % R !== 0) return;
    const arena = new Uint8Array(this.#ensureArena(n), 0, n);
    const pieceBytes = n / R;
    for (let q = 0; q < R; q++) copyPieceOut(src, tensor.shape, elt, splitAxis, q, R, arena, q * pieceBytes);
  }

  /** This replica's arena, at least `bytes` long: a bigger one is allocated and posted to every peer. */
  #ensureArena(bytes: number): SharedArrayBuffer {
    const me = this.replicaId;
    const current = this.#arenas[me]!;
    if (current.byteLength >= bytes) return current;
    const size = Math.ceil(Math.max(bytes, 2 * current.byteLength, 65536) / 65536) * 65536;
    const arena = new SharedArrayBuffer(size);
    const gen = this.#gens[me]! + 1;
    const message: ArenaMessage = { gen, arena };
    for (const port of this.#ports) port?.postMessage(message);
    this.#arenas[me] = arena;
    this.#gens[me] = gen;
    Atomics.store(this.#ctrl, rec(me) + ARENA_GEN, gen);
    return arena;
  }

  /** Peer q's current arena (taking a newer generation from q's port if q grew it). */
  #arena(q: number, op: string, seq: number): SharedArrayBuffer {
    const gen = Atomics.load(this.#ctrl, rec(q) + ARENA_GEN);
    if (gen === this.#gens[q]) return this.#arenas[q]!;
    const port = this.#ports[q]!;
    const deadline = performance.now() + this.#timeoutMs;
    const sleeper = new Int32Array(new SharedArrayBuffer(4));
    for (;;) {
      const got = receiveMessageOnPort(port);
      if (got !== undefined) {
        const m = got.message as ArenaMessage;
        this.#arenas[q] = m.arena;
        this.#gens[q] = m.gen;
        if (m.gen === gen) return m.arena;
        continue;
      }
      // The message is posted before the peer publishes, so it is normally
      // there already; poll briefly in case delivery lags.
      if (performance.now() > deadline) {
        throw new CollectiveAbortedError(
          op,
          `collective #${seq} on replica ${this.replicaId}: the grown arena of replica ${q} (generation ${gen}) never arrived on its port`,
          q,
          'lost arena message',
        );
      }
      Atomics.wait(sleeper, 0, 0, 1);
    }
  }

  #readHeader(q: number): CollectiveHeader {
    const c = this.#ctrl;
    const b = rec(q);
    const kind = KINDS[c[b + KIND]!]!;
    const axisA = c[b + AXIS_A_OK] === 1 ? c[b + AXIS_A]! : 'a non-integer or out-of-range value';
    const axisB = c[b + AXIS_B_OK] === 1 ? c[b + AXIS_B]! : 'a non-integer or out-of-range value';
    if (kind === 'barrier') return { kind, tensor: null, axisA, axisB };
    const tag = c[b + TENSOR];
    if (tag === 1) return { kind, tensor: { invalid: 'a non-tensor value' }, axisA, axisB };
    const rank = c[b + RANK]!;
    if (tag === 2)
      return {
        kind,
        tensor: { invalid: `a tensor of rank ${rank} (the worker transport supports rank <= ${MAX_RANK})` },
        axisA,
        axisB,
      };
    const shape: number[] = [];
    for (let i = 0; i < rank; i++) shape.push(c[b + SHAPE + i]!);
    return { kind, tensor: { dtype: DTYPE_CODES[c[b + DTYPE]!]!, shape }, axisA, axisB };
  }

  /**
   * Waits until `ready(q)` holds for every replica q, failing on abort, on a
   * peer that returned without reaching collective `seq`, or after timeoutMs.
   */
  #waitAll(op: string, seq: number, stage: 'arrive' | 'drain', ready: (q: number) => boolean): void {
    const ctrl = this.#ctrl;
    const R = this.numReplicas;
    const deadline = performance.now() + this.#timeoutMs;
    let spinUntil = 0;
    for (;;) {
      const epoch = Atomics.load(ctrl, EPOCH);
      const missing: number[] = [];
      for (let q = 0; q < R; q++) if (!ready(q)) missing.push(q);
      if (missing.length === 0) return;
      // A peer that returned can never arrive; that is the precise reason
      // even if the group was aborted meanwhile (so report it first).
      if (stage === 'arrive') {
        for (const q of missing) {
          const done = Atomics.load(ctrl, rec(q) + DONE);
          if (done !== 0 && done - 1 < seq) throw skippedError(op, seq, q, done - 1);
        }
      }
      if (Atomics.load(ctrl, ABORT) !== 0) throw this.#aborted(op, seq);
      const left = deadline - performance.now();
      if (left <= 0) {
        const who = `replica${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`;
        const reason =
          stage === 'arrive'
            ? `${who} did not arrive at collective #${seq} (${op}) within ${this.#timeoutMs} ms`
            : `${who} did not finish collective #${seq - 1} within ${this.#timeoutMs} ms`;
        if (!claimAbort(ctrl, AbortCode.timeout, missing[0]!, reason)) {
          // Another failure holds the abort lock but may not have published its reason yet (two replicas
          // timing out together): wait for the flag, so this replica reports that reason, not an unknown one.
          awaitAbortFlag(ctrl);
          throw this.#aborted(op, seq);
        }
        throw new CollectiveTimeoutError(op, `collective #${seq}: timed out: ${reason}`, missing, reason);
      }
      // Spin briefly first: a peer usually arrives within microseconds, and
      // waking from Atomics.wait costs tens of microseconds.
      if (spinUntil === 0) spinUntil = performance.now() + SPIN_MS;
      if (performance.now() < spinUntil) {
        while (Atomics.load(ctrl, EPOCH) === epoch && performance.now() < spinUntil);
        continue;
      }
      Atomics.wait(ctrl, EPOCH, epoch, Math.min(left, 100));
    }
  }

  #aborted(op: string, seq: number): CollectiveAbortedError {
    const info = readAbort(this.#ctrl) ?? { replica: -1, code: 0, reason: 'failed' };
    if (info.code === 0) {
      // Forced by the main thread without a recorded reason (see forceAbort).
      return new CollectiveAbortedError(
        op,
        `collective #${seq} on replica ${this.replicaId} was aborted because another replica failed`,
        -1,
        'unknown',
      );
    }
    if (info.code === AbortCode.timeout) {
      return new CollectiveTimeoutError(
        op,
        `collective #${seq} on replica ${this.replicaId} was aborted: ${info.reason}`,
        [info.replica],
        info.reason,
      );
    }
    return new CollectiveAbortedError(
      op,
      `collective #${seq} on replica ${this.replicaId} was aborted because replica ${info.replica} failed: ${info.reason}`,
      info.replica,
      info.reason,
    );
  }
}

function encodeAxis(v: number | string): number | null {
  return typeof v === 'number' && v >= -(2 ** 31) && v < 2 ** 31 ? v : null;
}
