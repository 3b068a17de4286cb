/**
 * Typed errors. Every message names the operation, the argument, what it got
 * and what it needed, e.g.
 *   matmul: inner dimensions differ (a is [2,3], b is [4,5]; need a.shape[1] === b.shape[0])
 * Errors are thrown by public wrappers before any state changes, so a caught
 * error never leaves a half-updated tensor, cache or optimiser behind.
 *
 * The hierarchy (every class carries `op`, the public operation that threw):
 *
 *   NegcacheError                 anything negcache throws on purpose
 *   ├─ InvalidArgumentError       the caller passed a value the op cannot accept (Python's ValueError):
 *   │  ├─ ShapeError              shapes or ranks that do not fit together
 *   │  ├─ DTypeError              a tensor of the wrong dtype
 *   │  └─ ArgumentError           any other bad value: axes, sizes, indices, options, keys, sizes too large
 *   ├─ NonFiniteError             a loss, gradient or embedding that must be finite is not
 *   ├─ UnsupportedError           a valid request negcache does not do (e.g. gradients of gradients)
 *   └─ InternalError              a broken invariant inside negcache (a bug: please report it)
 *
 * Catch `InvalidArgumentError` to handle every "bad input" case at once;
 * other modules add their own subclasses of NegcacheError (e.g. the
 * collectives' CollectiveTimeoutError).
 */
export class NegcacheError extends Error {
  /** The public operation that rejected its input, e.g. `matmul`. */
  readonly op: string;
  constructor(op: string, message: string) {
    super(`${op}: ${message}`);
    this.op = op;
    this.name = new.target.name;
  }
}

/** The caller passed a value the operation cannot accept. Base class of ShapeError, DTypeError and ArgumentError. */
export class InvalidArgumentError extends NegcacheError {}

/** Shapes or ranks that do not fit together. */
export class ShapeError extends InvalidArgumentError {}

/** A tensor of the wrong dtype (e.g. float where int32 indices are needed). */
export class DTypeError extends InvalidArgumentError {}

/** A value out of range or of the wrong kind: axes, sizes, indices, options, keys; a result too large to allocate. */
export class ArgumentError extends InvalidArgumentError {}

/** Something that must be finite (a loss, a gradient, an embedding) is not. */
export class NonFiniteError extends NegcacheError {}

/**
 * A request that is well-formed but that negcache does not support, e.g.
 * differentiating a function that itself calls grad on the traced values
 * (second-order differentiation). Thrown instead of returning a wrong number.
 */
export class UnsupportedError extends NegcacheError {}

/** A broken internal invariant (e.g. a gradient rule returning the wrong number of cotangents): a bug in negcache. */
export class InternalError extends NegcacheError {}

/** Formats a shape for messages: [2,3]. */
export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}

/** Describes any JS value briefly for messages ("a string", "NaN", "[2,3] float32 tensor"). */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'number') return Number.isNaN(value) ? 'NaN' : String(value);
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value);
  if (typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (typeof value === 'symbol') return value.toString();
  if (typeof value === 'function') return 'a function';
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  const v = value as { shape?: unknown; dtype?: unknown };
  if (Array.isArray(v.shape) && typeof v.dtype === 'string')
    return `a ${fmtShape(v.shape as number[])} ${v.dtype} tensor`;
  if (ArrayBuffer.isView(value)) return `a ${(value as object).constructor.name}`;
  return `an object (${
    Object.keys(value as object)
      .slice(0, 5)
      .join(', ') || 'no keys'
  })`;
}

// ------------------------------------------------------------------ options

/**
 * Checks one option's value: returns undefined when it is acceptable, else
 * what was needed (e.g. `'true or false'`), which becomes the message
 * `op: key must be <need>, got <value>`.
 */
export type OptionRule = (value: unknown) => string | undefined;

/**
 * The options an operation accepts: a list of keys, or a record from each
 * key to a rule for its value (null: any value; the op checks it itself).
 * Rules run only on keys that are present with a value other than undefined.
 */
export type OptionSchema = readonly string[] | { readonly [key: string]: OptionRule | null };

/**
 * Checks an options argument: undefined (unless `required`), or a plain
 * object (`{...}`, not an array, class instance or tensor) whose keys are all
 * known, and whose values pass the schema's rules. A misspelt key is an
 * error, never silently ignored:
 *   op: options must be an object like {a, b}, got 3
 *   op: unknown option "axes"; allowed: axis, keepDims
 *   op: keepDims must be true or false, got 1
 * Throws ArgumentError; use it in every public function that takes options
 * (constructors whose options are mandatory pass `{required: true}`).
 */
export function checkOptions(
  op: string,
  opts: unknown,
  schema: OptionSchema,
  { required = false }: { required?: boolean } = {},
): void {
  const keys: readonly string[] = Array.isArray(schema) ? schema : Object.keys(schema);
  if (opts === undefined && !required) return;
  const proto = opts !== null && typeof opts === 'object' ? Object.getPrototypeOf(opts) : undefined;
  if (proto !== Object.prototype && proto !== null) {
    throw new ArgumentError(op, `options must be an object like {${keys.join(', ')}}, got ${describe(opts)}`);
  }
  const record = opts as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!keys.includes(key)) throw new ArgumentError(op, `unknown option "${key}"; allowed: ${keys.join(', ')}`);
  }
  if (Array.isArray(schema)) return;
  for (const key of keys) {
    const rule = (schema as { readonly [key: string]: OptionRule | null })[key];
    const value = record[key];
    if (rule === null || rule === undefined || value === undefined) continue;
    const need = rule(value);
    if (need !== undefined) throw new ArgumentError(op, `${key} must be ${need}, got ${describe(value)}`);
  }
}

/** Common option rules for checkOptions schemas. */
export const optionRules = {
  boolean: ((v) => (typeof v === 'boolean' ? undefined : 'true or false')) as OptionRule,
  /** A finite number. */
  finite: ((v) => (typeof v === 'number' && Number.isFinite(v) ? undefined : 'a finite number')) as OptionRule,
  /** An integer in [min, max]. */
  integer(min: number, max = 2 ** 31 - 1): OptionRule {
    return (v) =>
      typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max
        ? undefined
        : `an integer in [${min}, ${max}]`;
  },
  /** A function. */
  function: ((v) => (typeof v === 'function' ? undefined : 'a function')) as OptionRule,
  /** One of the listed values. */
  oneOf(values: readonly unknown[]): OptionRule {
    return (v) => (values.includes(v) ? undefined : `one of ${values.map((x) => JSON.stringify(x)).join(', ')}`);
  },
};
