/**
 * Shared machinery of the reliability fuzz suite: deterministic tensor
 * builders, a pool of wrong-kind values, a deep bitwise snapshot of anything
 * stateful (tensors, caches, handlers, optimisers, tables, generators), and
 * `attempt`, which runs one generated call and checks the contract:
 *
 *   - it throws an instance of NegcacheError (never a plain TypeError /
 *     RangeError / Error from inside a kernel), whose message starts with its
 *     op, OR it succeeds (a call that happens to be valid);
 *   - the arguments are bit-identical before and after, whatever happened;
 *   - when it throws, every stateful object it could touch (cache, handler,
 *     optimiser, embedding table, generator, row space) is bit-identical to
 *     what it was before the call.
 *
 * Every attempt is counted per (entry point, malformation kind), so the suite
 * can report how many distinct malformed calls it tried. Calls that return a
 * promise (collectives, async handlers) are Defs made with `defAsync`: the
 * promise is awaited and a rejection counts as a throw.
 */
import fc from 'fast-check';
import { expect } from 'vitest';
import { NegcacheError } from '../../src/errors.js';
import { Tensor, unsafeData, wrap } from '../../src/tensor/tensor.js';
import { allocate, type DType } from '../../src/tensor/dtype.js';
import { Rng } from '../../src/tensor/random.js';
import { EmbeddingTable } from '../../src/nn/table.js';
import { RowSpace } from '../../src/nn/layers.js';
import { SGD, Adam } from '../../src/optim/optimizers.js';
import { CacheLossHandler, MultiCacheLossHandler } from '../../src/handlers/handlers.js';
import { CacheManager } from '../../src/cache/negativeCache.js';

// ---------------------------------------------------------------------------------------------- tensors

export const DTYPES: readonly DType[] = ['float32', 'float64', 'int32', 'bool'];

/** A deterministic tensor: small exact values (multiples of 1/8 in [-4, 4] for floats, [-8, 8] for int32, parity for bool). */
export function mk(shape: readonly number[], dtype: DType = 'float32', seed = 0): Tensor {
  const n = shape.reduce((p, d) => p * d, 1);
  const out = allocate(dtype, n);
  let x = (seed * 2654435761 + 12345) >>> 0;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    const r = x >>> 16;
    if (dtype === 'bool') out[i] = r & 1;
    else if (dtype === 'int32') out[i] = (r % 17) - 8;
    else out[i] = ((r % 65) - 32) / 8;
  }
  return wrap(out, shape.slice(), dtype);
}

/** int32 tensor with the given values. */
export function ints(values: readonly number[], shape: readonly number[] = [values.length]): Tensor {
  return wrap(Int32Array.from(values), shape.slice(), 'int32');
}

/** A copy of t with flat element `at` (mod size) replaced by v (float tensors). */
export function withValue(t: Tensor, v: number, at: number): Tensor {
  const d = unsafeData(t).slice();
  if (d.length > 0) d[((at % d.length) + d.length) % d.length] = v;
  return wrap(d, t.shape.slice(), t.dtype);
}

// ---------------------------------------------------------------------------------------------- wrong kinds

/** Values of the wrong kind for any argument: nothing here is a Tensor. */
export const GARBAGE: readonly unknown[] = [
  undefined,
  null,
  'abc',
  '',
  '2',
  0,
  -1,
  1.5,
  NaN,
  Infinity,
  -Infinity,
  2 ** 31,
  2 ** 53,
  1e300,
  -0,
  true,
  false,
  3n,
  Symbol('s'),
  [],
  [1, 2],
  [[1], [2, 3]],
  {},
  { shape: [2], dtype: 'float32', size: 2 },
  () => 0,
  new Float32Array(2),
  new Int32Array([1, 2]),
  new Map(),
  Object.create(null),
  new Date(0),
];

/** Not a valid size / index / axis / count (wrong kind or out of every range). */
export const BAD_NUMBERS: readonly unknown[] = [
  -1,
  -(2 ** 31),
  1.5,
  -0.5,
  NaN,
  Infinity,
  -Infinity,
  2 ** 31,
  2 ** 32,
  2 ** 53,
  1e300,
  '1',
  null,
  3n,
  true,
  {},
  [1],
];

export const garbage = (): fc.Arbitrary<unknown> => fc.constantFrom(...GARBAGE);
export const badNumber = (): fc.Arbitrary<unknown> => fc.constantFrom(...BAD_NUMBERS);
export const nonFinite = (): fc.Arbitrary<number> => fc.constantFrom(NaN, Infinity, -Infinity);
export const seed = (): fc.Arbitrary<number> => fc.integer({ min: 0, max: 1 << 20 });
export const smallShape = (maxRank = 3, maxDim = 4): fc.Arbitrary<number[]> =>
  fc.array(fc.integer({ min: 0, max: maxDim }), { maxLength: maxRank });
export const posShape = (minRank = 1, maxRank = 3, maxDim = 4): fc.Arbitrary<number[]> =>
  fc.array(fc.integer({ min: 1, max: maxDim }), { minLength: minRank, maxLength: maxRank });
export const dtype = (): fc.Arbitrary<DType> => fc.constantFrom(...DTYPES);

/** A shape that is not a valid shape: wrong kind, or an entry that is negative/fractional/NaN/huge/not a number. */
export const badShape = (): fc.Arbitrary<unknown> =>
  fc.oneof(
    garbage().filter((g) => !Array.isArray(g) || (g as unknown[]).some((v) => typeof v !== 'number' || v > 2 ** 31)),
    fc.tuple(fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 2 }), badNumber(), fc.nat(2)).map(([s, b, at]) => {
      const out: unknown[] = s.slice();
      out.splice(Math.min(at, out.length), 0, b);
      return out;
    }),
    fc.constant([2 ** 16, 2 ** 16]), // each entry fine, more than 2^31-1 elements
    fc.constant([2 ** 31 - 1, 2]),
  );

// ---------------------------------------------------------------------------------------------- snapshots

function bytesHex(a: ArrayBufferView): string {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('hex');
}

/**
 * A deep, bitwise, comparable picture of a value: tensors by dtype, shape and
 * raw bytes (so NaN payloads and -0 count), stateful library objects by their
 * state, records by sorted keys. Cycles are cut.
 */
export function snap(x: unknown, seen: Set<unknown> = new Set()): unknown {
  if (x === null || x === undefined) return String(x);
  const t = typeof x;
  if (t === 'number') return Object.is(x, -0) ? 'n:-0' : `n:${String(x)}`;
  if (t === 'bigint') return `b:${String(x)}`;
  if (t === 'symbol') return `s:${String((x as symbol).description)}`;
  if (t === 'string' || t === 'boolean') return x;
  if (t === 'function') return 'fn';
  if (seen.has(x)) return 'cycle';
  seen.add(x);
  try {
    if (x instanceof Tensor) return `T:${x.dtype}:[${x.shape.join(',')}]:${bytesHex(unsafeData(x))}`;
    if (ArrayBuffer.isView(x)) return `A:${x.constructor.name}:${bytesHex(x)}`;
    if (x instanceof Rng) return `R:${Array.from(x.getState()).join(',')}`;
    if (x instanceof EmbeddingTable) return { table: snap(x.snapshot(), seen) };
    if (x instanceof RowSpace) return { rowSpace: Array.from(x.ids()) };
    if (x instanceof SGD || x instanceof Adam) return { optimizer: snap(x.getState(), seen), steps: x.steps };
    if (x instanceof CacheLossHandler || x instanceof MultiCacheLossHandler)
      return { handler: snap(x.cache, seen), step: x.step };
    if (x instanceof CacheManager) return { manager: snap(x.specs, seen), size: x.cacheSize, lru: x.useLru };
    if (x instanceof Map) return { map: [...x.entries()].map(([k, v]) => [snap(k, seen), snap(v, seen)]) };
    if (x instanceof Date) return `D:${x.getTime()}`;
    if (Array.isArray(x)) return x.map((v) => snap(v, seen));
    const keys = Object.keys(x as object).sort();
    const out: Record<string, unknown> = {};
    for (const k of keys) out[k] = snap((x as Record<string, unknown>)[k], seen);
    return out;
  } finally {
    seen.delete(x);
  }
}

// ---------------------------------------------------------------------------------------------- attempts

export type ErrorClass = abstract new (...args: never[]) => Error;

export interface Call {
  /** The call; for an async Def (defAsync) it may return a promise, awaited before the checks. */
  run: () => unknown;
  /** The arguments: bit-identical after the call, whatever happened. */
  inputs?: unknown;
  /** Stateful objects the call may touch: bit-identical after a rejected call. */
  state?: unknown;
  /** When the call throws, it must be an instance of this class (default NegcacheError). */
  errorClass?: ErrorClass;
  /** Checks on a successful result. */
  check?: (out: unknown) => void;
}

/** 'throws': certainly malformed, must be rejected; 'either': may happen to be valid; 'valid': a baseline that must succeed. */
export type Mode = 'throws' | 'either' | 'valid';

export interface Labeled {
  label: string;
  build: () => Call;
}

export interface Def {
  entry: string;
  kind: string;
  mode: Mode;
  arb: fc.Arbitrary<Labeled>;
  runs: number;
  /** The call returns a promise (collectives, async handlers): awaited, and rejections count as throws. */
  async?: boolean;
}

/** One generated call per value of `arb`; `build` must create fresh stateful objects on every invocation. */
export function def<T>(
  entry: string,
  kind: string,
  mode: Mode,
  arb: fc.Arbitrary<T>,
  build: (v: T) => Call,
  runs = 20,
): Def {
  return {
    entry,
    kind,
    mode,
    runs,
    arb: arb.map((v) => ({ label: safeStringify(v), build: () => build(v) })),
  };
}

/** As `def`, for calls that return a promise (e.g. a replica group under runInProcess). */
export function defAsync<T>(
  entry: string,
  kind: string,
  mode: Mode,
  arb: fc.Arbitrary<T>,
  build: (v: T) => Call,
  runs = 20,
): Def {
  return { ...def(entry, kind, mode, arb, build, runs), async: true };
}

function safeStringify(v: unknown): string {
  try {
    const s = fc.stringify(v);
    return s.length > 300 ? s.slice(0, 300) + '…' : s;
  } catch {
    return '(unprintable)';
  }
}

interface PairStats {
  mode: Mode;
  calls: number;
  rejected: number;
  accepted: number;
  classes: Set<string>;
}

export const STATS = new Map<string, PairStats>();

function record(entry: string, kind: string, mode: Mode, outcome: 'rejected' | 'accepted', cls?: string): void {
  const key = `${entry} | ${kind}`;
  let s = STATS.get(key);
  if (!s) {
    s = { mode, calls: 0, rejected: 0, accepted: 0, classes: new Set() };
    STATS.set(key, s);
  }
  s.calls++;
  if (outcome === 'rejected') {
    s.rejected++;
    s.classes.add(cls!);
  } else s.accepted++;
}

function errorText(e: unknown): string {
  if (e instanceof Error)
    return `${e.constructor.name}: ${e.message}\n${(e.stack ?? '').split('\n').slice(1, 6).join('\n')}`;
  try {
    return `non-Error thrown: ${String(e)}`;
  } catch {
    return 'non-Error thrown';
  }
}

interface Begun {
  where: string;
  call: Call;
  inputsBefore: unknown;
  stateBefore: unknown;
}

function begin(d: Def, l: Labeled): Begun {
  const where = `${d.entry} [${d.kind}] with ${l.label}`;
  let call: Call;
  try {
    call = l.build();
  } catch (e) {
    throw new Error(`test setup failed for ${where}: ${errorText(e)}`);
  }
  return { where, call, inputsBefore: snap(call.inputs), stateBefore: snap(call.state) };
}

function finish(d: Def, b: Begun, threw: boolean, error: unknown, out: unknown): void {
  const { where, call } = b;
  if (threw) {
    if (!(error instanceof NegcacheError)) {
      expect.fail(
        `${where}: threw a plain ${errorText(error)}\n(need a NegcacheError: ShapeError, DTypeError, ArgumentError or NonFiniteError)`,
      );
    }
    const ne = error as NegcacheError;
    expect(ne.message.startsWith(`${ne.op}: `), `${where}: message does not start with its op: ${ne.message}`).toBe(
      true,
    );
    if (call.errorClass) expect(error, `${where}: ${errorText(error)}`).toBeInstanceOf(call.errorClass);
    if (d.mode === 'valid') expect.fail(`${where}: a valid baseline call was rejected: ${errorText(error)}`);
    record(d.entry, d.kind, d.mode, 'rejected', ne.constructor.name);
  } else {
    if (d.mode === 'throws') expect.fail(`${where}: a malformed call was accepted (returned ${safeStringify(out)})`);
    call.check?.(out);
    record(d.entry, d.kind, d.mode, 'accepted');
  }
  expect(snap(call.inputs), `${where}: the call changed its arguments`).toEqual(b.inputsBefore);
  if (threw) expect(snap(call.state), `${where}: a rejected call changed state`).toEqual(b.stateBefore);
}

/** Runs one generated call and checks the contract (see the module comment). */
export function attempt(d: Def, l: Labeled): void {
  const b = begin(d, l);
  let error: unknown;
  let threw = false;
  let out: unknown;
  try {
    out = b.call.run();
  } catch (e) {
    threw = true;
    error = e;
  }
  finish(d, b, threw, error, out);
}

/** `attempt` for an async Def: the call's promise is awaited; a rejection is a throw. */
export async function attemptAsync(d: Def, l: Labeled): Promise<void> {
  const b = begin(d, l);
  let error: unknown;
  let threw = false;
  let out: unknown;
  try {
    out = await b.call.run();
  } catch (e) {
    threw = true;
    error = e;
  }
  finish(d, b, threw, error, out);
}

/** Runs every def with its scaled run count (async defs with fast-check's asyncProperty). */
export async function runDefs(defs: readonly Def[], scaled: (n: number) => fc.Parameters<unknown>): Promise<void> {
  // Every pair runs even when an earlier one fails, so one run reports every broken entry point.
  const failures: string[] = [];
  for (const d of defs) {
    try {
      if (d.async)
        await fc.assert(
          fc.asyncProperty(d.arb, (l) => attemptAsync(d, l)),
          scaled(d.runs) as fc.Parameters<[Labeled]>,
        );
      else
        fc.assert(
          fc.property(d.arb, (l) => attempt(d, l)),
          scaled(d.runs) as fc.Parameters<[Labeled]>,
        );
    } catch (e) {
      const cause = e instanceof Error && e.cause instanceof Error ? `\n${e.cause.message}` : '';
      const text = e instanceof Error ? e.message.replace(/\nHint: .*/s, '') : String(e);
      failures.push(`--- ${d.entry} [${d.kind}]\n${text.slice(0, 1500)}${cause.slice(0, 1500)}`);
    }
  }
  if (failures.length > 0)
    throw new Error(
      `${failures.length} of ${defs.length} (entry point, malformation) pairs failed:\n${failures.join('\n')}`,
    );
}

// ---------------------------------------------------------------------------------------------- result checks

/** A well-formed tensor: integer non-negative dims whose product is its size, storage of its dtype. */
export function expectWellFormed(x: unknown, what = 'result'): void {
  expect(x, `${what} is not a Tensor`).toBeInstanceOf(Tensor);
  const t = x as Tensor;
  expect(
    t.shape.every((v) => Number.isInteger(v) && v >= 0),
    `${what} has shape [${t.shape.join(',')}]`,
  ).toBe(true);
  expect(t.dataSync().length).toBe(t.shape.reduce((p, v) => p * v, 1));
  expect(DTYPES).toContain(t.dtype);
}

/** Every tensor leaf of a tree is well formed and nothing is undefined. */
export function expectWellFormedTree(x: unknown, what = 'result'): void {
  if (x instanceof Tensor) return expectWellFormed(x, what);
  expect(x, `${what} is undefined`).not.toBeUndefined();
  if (Array.isArray(x)) x.forEach((v, i) => expectWellFormedTree(v, `${what}[${i}]`));
  else if (x !== null && typeof x === 'object' && Object.getPrototypeOf(x) === Object.prototype) {
    for (const [k, v] of Object.entries(x)) if (v !== undefined) expectWellFormedTree(v, `${what}.${k}`);
  }
}

/** No NaN in a float tensor (for ops that cannot create NaN from finite inputs). */
export function expectNoNaN(x: unknown, what = 'result'): void {
  expectWellFormed(x, what);
  const d = unsafeData(x as Tensor);
  for (let i = 0; i < d.length; i++)
    if (Number.isNaN(d[i]!)) expect.fail(`${what} has NaN at flat index ${i} although every input was finite`);
}
