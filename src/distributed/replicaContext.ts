/**
 * Collectives for a group of `R` replicas (the sharded negative cache).
 *
 * The sharded loss (REFERENCE.md, "The distributed (sharded) loss") needs two
 * collectives per step: an all-gather of the queries of all replicas and an
 * all-to-all that hands each replica, for its own queries, the weight and the
 * sampled item of every shard. A `ReplicaContext` is one replica's handle on
 * the group; two implementations exist:
 *   - `runInProcess` (src/distributed/inProcess.ts): R async functions in one
 *     thread, for tests and for the browser;
 *   - `runWorkers` (src/node/workerGroup.ts, Node only): R worker threads that
 *     exchange tensors through SharedArrayBuffers.
 *
 * Contract of every collective:
 *   - Every replica calls the same collectives in the same order. The k-th
 *     collective call of one replica meets the k-th call of every other
 *     replica ("collective #k", counted from 1). A collective completes when
 *     all R replicas have called it.
 *   - Arguments are checked collectively: every replica sees every replica's
 *     kind, dtype, shape and axes, and all of them reject the same collective
 *     with the same error when they disagree (or one replica's argument is
 *     invalid). Such an error leaves the group usable: the collective counts
 *     as done on every replica.
 *   - Tensors of every dtype travel bit-exactly (bytes are copied, so NaN
 *     payloads, -0 and int32 values above 2^24 survive).
 *   - **No gradient crosses a collective.** The results are constants for
 *     autodiff (fresh tensors without a graph node), even when the input is
 *     tracked inside `grad`. The reference needs none: in the sharded loss
 *     only `probPos` and the sampled shard index depend on other replicas,
 *     and both are stop-gradient.
 *   - If a replica fails (throws, exits, or does not arrive within the
 *     timeout), every other replica waiting in a collective, or entering one
 *     later, gets a `CollectiveAbortedError` / `CollectiveTimeoutError`
 *     naming the failed replica, and the group runner rejects with a
 *     `ReplicaGroupError` naming it. A timed-out or aborted group is not
 *     usable any more.
 */
import { ArgumentError, DTypeError, NegcacheError, ShapeError, describe, fmtShape } from '../errors.js';
import { allocate, type DType, type TypedArray } from '../tensor/dtype.js';
import { sizeOf } from '../tensor/shape.js';
import { isTensor, unsafeData, wrap, type Tensor } from '../tensor/tensor.js';

/** One replica's view of the group. */
export interface ReplicaContext {
  /** R, the number of replicas in the group (>= 1). */
  readonly numReplicas: number;
  /** This replica's index in [0, R). */
  readonly replicaId: number;
  /**
   * The concatenation of every replica's `t` along `axis` (default 0), in
   * replica order. Dtypes and ranks must agree, shapes must agree except
   * along `axis` (replicas may contribute different sizes along it); rank >= 1.
   * The result is a constant for autodiff.
   */
  allGather(t: Tensor, opts?: { axis?: number }): Promise<Tensor>;
  /**
   * Splits `t` along `splitAxis` into R equal pieces and sends piece r to
   * replica r; the R pieces a replica receives are concatenated along
   * `concatAxis` in replica order (the semantics of tf.raw_ops.AllToAll with
   * split_count = R). Every replica must pass the same shape and dtype, and
   * `shape[splitAxis]` must be divisible by R. The result has shape
   * `shape` with `shape[splitAxis] / R` and then `shape[concatAxis] * R`.
   * The result is a constant for autodiff.
   */
  allToAll(t: Tensor, opts: { splitAxis: number; concatAxis: number }): Promise<Tensor>;
  /** Resolves once every replica has called it (the same collective number). */
  barrier(): Promise<void>;
}

export type CollectiveKind = 'allGather' | 'allToAll' | 'barrier';

// ---------------------------------------------------------------------------
// Errors

/**
 * A collective could not complete because another replica failed (threw,
 * exited, or did not arrive in time). Thrown on every replica that is waiting
 * in a collective or enters one after the failure.
 */
export class CollectiveAbortedError extends NegcacheError {
  /** The replica whose failure aborted the group. */
  readonly failedReplica: number;
  /** A description of that replica's failure (its error message, exit code or timeout). */
  readonly reason: string;
  constructor(op: string, message: string, failedReplica: number, reason: string) {
    super(op, message);
    this.failedReplica = failedReplica;
    this.reason = reason;
  }
}

/** A replica waited longer than the group's timeout for the others to arrive at a collective. */
export class CollectiveTimeoutError extends CollectiveAbortedError {
  /** The replicas that had not arrived (the first one is `failedReplica`). */
  readonly missingReplicas: readonly number[];
  constructor(op: string, message: string, missingReplicas: readonly number[], reason: string) {
    super(op, message, missingReplicas[0] ?? -1, reason);
    this.missingReplicas = missingReplicas.slice();
  }
}

/**
 * The rejection of a group runner (`runInProcess`, `runWorkers`): names the
 * replica whose failure came first (the root cause) and carries every
 * replica's outcome.
 */
export class ReplicaGroupError extends NegcacheError {
  /** The replica that failed first (the root cause). */
  readonly failedReplica: number;
  /** Per replica: its error, or undefined if it returned normally (or was still running when the group gave up). */
  readonly errors: readonly (Error | undefined)[];
  constructor(
    op: string,
    message: string,
    failedReplica: number,
    errors: readonly (Error | undefined)[],
    cause?: unknown,
  ) {
    super(op, message);
    this.failedReplica = failedReplica;
    this.errors = errors.slice();
    if (cause !== undefined) (this as { cause?: unknown }).cause = cause;
  }
}

/** Short text of an error for messages: `Name: message` (or a description of a non-Error value). */
export function errorText(e: unknown): string {
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  return `a thrown ${describe(e)}`;
}

// ---------------------------------------------------------------------------
// Helpers built on the collectives

function keysOf(op: string, record: unknown): string[] {
  if (record === null || typeof record !== 'object' || Array.isArray(record)) {
    throw new ArgumentError(op, `record must be an object of tensors, got ${describe(record)}`);
  }
  const keys = Object.keys(record).sort();
  for (const k of keys) {
    const v = (record as Record<string, unknown>)[k];
    if (!isTensor(v)) throw new ArgumentError(op, `record["${k}"] must be a tensor, got ${describe(v)}`);
  }
  return keys;
}

/** 32-bit FNV-1a over the UTF-16 code units of a string. */
function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h | 0;
}

/**
 * Checks that every replica passes a record with the same keys: one extra
 * all-gather of [1, 2] int32 (key count, hash of the sorted key list).
 */
async function checkSameKeys(ctx: ReplicaContext, op: string, keys: readonly string[]): Promise<void> {
  const mine = wrap(Int32Array.of(keys.length, hashString(JSON.stringify(keys))), [1, 2], 'int32');
  const all = unsafeData(await ctx.allGather(mine));
  for (let r = 0; r < ctx.numReplicas; r++) {
    if (all[2 * r] !== all[0] || all[2 * r + 1] !== all[1]) {
      throw new ArgumentError(
        op,
        `replica ${r} passed a record with different keys than replica 0 (this is replica ${ctx.replicaId} with keys ${JSON.stringify(keys)}); every replica must pass the same keys`,
      );
    }
  }
}

/**
 * `allGather` of every tensor of a record (e.g. the features of a batch),
 * key by key in sorted key order. Every replica must pass the same keys
 * (checked collectively first, with one extra small all-gather).
 */
export async function allGatherRecord(
  ctx: ReplicaContext,
  record: Readonly<Record<string, Tensor>>,
  opts?: { axis?: number },
): Promise<Record<string, Tensor>> {
  const keys = keysOf('allGatherRecord', record);
  await checkSameKeys(ctx, 'allGatherRecord', keys);
  const out: Record<string, Tensor> = {};
  for (const k of keys) out[k] = await ctx.allGather(record[k]!, opts);
  return out;
}

/** `allToAll` of every tensor of a record, key by key in sorted key order (same keys on every replica, checked). */
export async function allToAllRecord(
  ctx: ReplicaContext,
  record: Readonly<Record<string, Tensor>>,
  opts: { splitAxis: number; concatAxis: number },
): Promise<Record<string, Tensor>> {
  const keys = keysOf('allToAllRecord', record);
  await checkSameKeys(ctx, 'allToAllRecord', keys);
  const out: Record<string, Tensor> = {};
  for (const k of keys) out[k] = await ctx.allToAll(record[k]!, opts);
  return out;
}

// ---------------------------------------------------------------------------
// @internal Collective planning, shared by every implementation so that all
// replicas (and all implementations) reject the same calls with the same
// messages.

/** @internal What one replica passed to a collective. */
export interface CollectiveHeader {
  readonly kind: CollectiveKind;
  /** dtype and shape of the tensor argument, or `invalid`: a description of what was passed instead. */
  readonly tensor: { readonly dtype: DType; readonly shape: readonly number[] } | { readonly invalid: string } | null;
  /** allGather: axis; allToAll: splitAxis. A string describes a non-integer value. */
  readonly axisA: number | string;
  /** allToAll: concatAxis. */
  readonly axisB: number | string;
}

/** @internal The agreed layout of a collective (every replica computes the same plan). */
export type CollectivePlan =
  | { readonly kind: 'barrier' }
  | {
      readonly kind: 'allGather';
      readonly dtype: DType;
      readonly axis: number;
      /** Each replica's input shape. */
      readonly shapes: readonly (readonly number[])[];
      readonly outShape: readonly number[];
    }
  | {
      readonly kind: 'allToAll';
      readonly dtype: DType;
      readonly splitAxis: number;
      readonly concatAxis: number;
      readonly inShape: readonly number[];
      /** The shape of one piece (inShape with shape[splitAxis] / R). */
      readonly pieceShape: readonly number[];
      readonly outShape: readonly number[];
    };

/** @internal Integer code of a non-integer axis value in headers. */
export function axisValue(v: unknown): number | string {
  return typeof v === 'number' && Number.isInteger(v) ? v : describe(v);
}

/** @internal The header of one call, from the raw arguments. */
export function makeHeader(kind: CollectiveKind, t: unknown, opts: unknown): CollectiveHeader {
  if (kind === 'barrier') return { kind, tensor: null, axisA: 0, axisB: 0 };
  const tensor = isTensor(t) ? { dtype: t.dtype, shape: t.shape } : { invalid: describe(t) };
  const o = (opts ?? {}) as { axis?: unknown; splitAxis?: unknown; concatAxis?: unknown };
  if (opts !== undefined && (opts === null || typeof opts !== 'object')) {
    return { kind, tensor, axisA: `options ${describe(opts)}`, axisB: `options ${describe(opts)}` };
  }
  if (kind === 'allGather') return { kind, tensor, axisA: o.axis === undefined ? 0 : axisValue(o.axis), axisB: 0 };
  return { kind, tensor, axisA: axisValue(o.splitAxis), axisB: axisValue(o.concatAxis) };
}

function checkAxis(op: string, seq: number, r: number, name: string, axis: number | string, rank: number): number {
  if (typeof axis === 'string' || axis < -rank || axis >= rank) {
    throw new ArgumentError(
      op,
      `collective #${seq}: replica ${r} passed ${name} ${typeof axis === 'string' ? axis : String(axis)} for a tensor of rank ${rank}; need an integer in [${-rank}, ${rank - 1}]`,
    );
  }
  return axis < 0 ? axis + rank : axis;
}

/**
 * @internal Checks what all R replicas passed to collective #seq and returns
 * the plan, or throws the error every replica reports. `op` names the
 * operation in the message (the caller's kind).
 */
export function planCollective(seq: number, headers: readonly CollectiveHeader[]): CollectivePlan {
  const R = headers.length;
  const h0 = headers[0]!;
  const op = h0.kind;
  for (let r = 1; r < R; r++) {
    if (headers[r]!.kind !== op) {
      const calls = headers.map((h, i) => `replica ${i}: ${h.kind}`).join(', ');
      throw new ArgumentError(
        op,
        `collective #${seq}: replicas called different collectives (${calls}); every replica must call the same collectives in the same order`,
      );
    }
  }
  if (op === 'barrier') return { kind: 'barrier' };
  const shapes: (readonly number[])[] = [];
  for (let r = 0; r < R; r++) {
    const t = headers[r]!.tensor;
    if (t === null || 'invalid' in t) {
      throw new ArgumentError(
        op,
        `collective #${seq}: replica ${r} passed ${t === null ? 'nothing' : t.invalid} instead of a tensor; need a Tensor`,
      );
    }
    shapes.push(t.shape);
  }
  const dtypes = headers.map((h) => (h.tensor as { dtype: DType }).dtype);
  for (let r = 1; r < R; r++) {
    if (dtypes[r] !== dtypes[0]) {
      throw new DTypeError(
        op,
        `collective #${seq}: replica ${r} passed a ${dtypes[r]} tensor but replica 0 passed ${dtypes[0]}; every replica must pass the same dtype`,
      );
    }
  }
  const dtype = dtypes[0]!;
  const rank = shapes[0]!.length;
  for (let r = 1; r < R; r++) {
    if (shapes[r]!.length !== rank) {
      throw new ShapeError(
        op,
        `collective #${seq}: replica ${r} passed a tensor of shape ${fmtShape(shapes[r]!)} but replica 0 passed ${fmtShape(shapes[0]!)}; ranks must agree`,
      );
    }
  }
  if (rank === 0) {
    throw new ShapeError(
      op,
      `collective #${seq}: the tensors are scalars (shape []); need rank >= 1 (reshape to [1] first)`,
    );
  }

  if (op === 'allGather') {
    const axes = headers.map((h, r) => checkAxis(op, seq, r, 'axis', h.axisA, rank));
    for (let r = 1; r < R; r++) {
      if (axes[r] !== axes[0]) {
        throw new ArgumentError(
          op,
          `collective #${seq}: replica ${r} gathers along axis ${axes[r]} but replica 0 along axis ${axes[0]}; every replica must pass the same axis`,
        );
      }
    }
    const axis = axes[0]!;
    let total = 0;
    for (let r = 0; r < R; r++) {
      for (let i = 0; i < rank; i++) {
        if (i !== axis && shapes[r]![i] !== shapes[0]![i]) {
          throw new ShapeError(
            op,
            `collective #${seq}: replica ${r} passed shape ${fmtShape(shapes[r]!)} but replica 0 passed ${fmtShape(shapes[0]!)}; shapes must agree on every axis except the gather axis ${axis}`,
          );
        }
      }
      total += shapes[r]![axis]!;
    }
    const outShape = shapes[0]!.slice();
    outShape[axis] = total;
    if (sizeOf(outShape) > 2 ** 31 - 1) {
      throw new ShapeError(
        op,
        `collective #${seq}: the gathered shape ${fmtShape(outShape)} has ${sizeOf(outShape)} elements; need at most 2^31-1`,
      );
    }
    return { kind: op, dtype, axis, shapes, outShape };
  }

  const splits = headers.map((h, r) => checkAxis(op, seq, r, 'splitAxis', h.axisA, rank));
  const concats = headers.map((h, r) => checkAxis(op, seq, r, 'concatAxis', h.axisB, rank));
  for (let r = 1; r < R; r++) {
    if (splits[r] !== splits[0] || concats[r] !== concats[0]) {
      throw new ArgumentError(
        op,
        `collective #${seq}: replica ${r} passed splitAxis ${splits[r]}, concatAxis ${concats[r]} but replica 0 passed splitAxis ${splits[0]}, concatAxis ${concats[0]}; every replica must pass the same axes`,
      );
    }
  }
  const splitAxis = splits[0]!;
  const concatAxis = concats[0]!;
  for (let r = 1; r < R; r++) {
    for (let i = 0; i < rank; i++) {
      if (shapes[r]![i] !== shapes[0]![i]) {
        throw new ShapeError(
          op,
          `collective #${seq}: replica ${r} passed shape ${fmtShape(shapes[r]!)} but replica 0 passed ${fmtShape(shapes[0]!)}; every replica must pass the same shape`,
        );
      }
    }
  }
  const inShape = shapes[0]!;
  if (inShape[splitAxis]! % R !== 0) {
    throw new ShapeError(
      op,
      `collective #${seq}: shape ${fmtShape(inShape)} has ${inShape[splitAxis]} entries along splitAxis ${splitAxis}, not divisible by numReplicas ${R}; need shape[splitAxis] % ${R} === 0`,
    );
  }
  const pieceShape = inShape.slice();
  pieceShape[splitAxis] = inShape[splitAxis]! / R;
  const outShape = pieceShape.slice();
  outShape[concatAxis] = pieceShape[concatAxis]! * R;
  if (sizeOf(outShape) > 2 ** 31 - 1) {
    throw new ShapeError(
      op,
      `collective #${seq}: the result shape ${fmtShape(outShape)} has ${sizeOf(outShape)} elements; need at most 2^31-1`,
    );
  }
  return { kind: op, dtype, splitAxis, concatAxis, inShape, pieceShape, outShape };
}

// ---------------------------------------------------------------------------
// @internal Byte-level layout helpers. Everything is copied as bytes
// (Uint8Array.set is a memmove), so every dtype travels bit-exactly.

/** @internal Bytes per element of a dtype. */
export function bytesPerElement(dtype: DType): number {
  return dtype === 'float64' ? 8 : dtype === 'bool' ? 1 : 4;
}

/** @internal A byte view of a typed array's elements. */
export function bytesOf(a: TypedArray): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function prod(shape: readonly number[], from: number, to: number): number {
  let n = 1;
  for (let i = from; i < to; i++) n *= shape[i]!;
  return n;
}

/**
 * @internal Copies piece `r` of `R` along `splitAxis` of a row-major tensor
 * (bytes `src`, shape `shape`) contiguously into `dst` at byte `dstOffset`.
 */
export function copyPieceOut(
  src: Uint8Array,
  shape: readonly number[],
  elt: number,
  splitAxis: number,
  r: number,
  R: number,
  dst: Uint8Array,
  dstOffset: number,
): void {
  const outer = prod(shape, 0, splitAxis);
  const rowBytes = shape[splitAxis]! * prod(shape, splitAxis + 1, shape.length) * elt; // one outer index
  const pieceBytes = rowBytes / R;
  if (pieceBytes === 0) return;
  for (let o = 0; o < outer; o++) {
    const s = o * rowBytes + r * pieceBytes;
    dst.set(src.subarray(s, s + pieceBytes), dstOffset + o * pieceBytes);
  }
}

/**
 * @internal Copies a contiguous row-major block (bytes `src`, shape `shape`)
 * into a larger tensor `dst` of shape `dstShape` (equal to `shape` except
 * along `axis`), starting at index `at` along `axis`.
 */
export function copyBlockIn(
  src: Uint8Array,
  shape: readonly number[],
  elt: number,
  axis: number,
  dst: Uint8Array,
  dstShape: readonly number[],
  at: number,
): void {
  const outer = prod(shape, 0, axis);
  const inner = prod(shape, axis + 1, shape.length) * elt;
  const srcRow = shape[axis]! * inner;
  const dstRow = dstShape[axis]! * inner;
  if (srcRow === 0) return;
  if (outer === 1 || srcRow === dstRow) {
    dst.set(src.subarray(0, outer * srcRow), at * inner);
    return;
  }
  for (let o = 0; o < outer; o++) dst.set(src.subarray(o * srcRow, (o + 1) * srcRow), o * dstRow + at * inner);
}

/** @internal Fresh storage for a result tensor, with its byte view. */
export function allocateResult(dtype: DType, shape: readonly number[]): { data: TypedArray; bytes: Uint8Array } {
  const data = allocate(dtype, sizeOf(shape));
  return { data, bytes: bytesOf(data) };
}

/**
 * @internal Reference execution of a planned collective for replica `me`,
 * given every replica's input tensor (used by the in-process group).
 */
export function executePlan(plan: CollectivePlan, inputs: readonly Tensor[], me: number): Tensor | null {
  if (plan.kind === 'barrier') return null;
  const elt = bytesPerElement(plan.dtype);
  const { data, bytes } = allocateResult(plan.dtype, plan.outShape);
  if (plan.kind === 'allGather') {
    let at = 0;
    for (let r = 0; r < inputs.length; r++) {
      copyBlockIn(bytesOf(unsafeData(inputs[r]!)), plan.shapes[r]!, elt, plan.axis, bytes, plan.outShape, at);
      at += plan.shapes[r]![plan.axis]!;
    }
  } else {
    const R = inputs.length;
    const piece = new Uint8Array(sizeOf(plan.pieceShape) * elt);
    const c = plan.pieceShape[plan.concatAxis]!;
    for (let q = 0; q < R; q++) {
      copyPieceOut(bytesOf(unsafeData(inputs[q]!)), plan.inShape, elt, plan.splitAxis, me, R, piece, 0);
      copyBlockIn(piece, plan.pieceShape, elt, plan.concatAxis, bytes, plan.outShape, q * c);
    }
  }
  return wrap(data, plan.outShape, plan.dtype);
}
