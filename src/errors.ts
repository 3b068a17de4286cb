/**
 * Typed errors. Every message names the operation, the argument, what it got
 * and what it needed, e.g.
 *   matmul: inner dimensions differ (a is [2,3], b is [4,5]; need a.shape[1] === b.shape[0])
 * Errors are thrown by public wrappers before any state changes, so a caught
 * error never leaves a half-updated tensor, cache or optimiser behind.
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

/** Shapes or ranks that do not fit together. */
export class ShapeError extends NegcacheError {}

/** A tensor of the wrong dtype (e.g. float where int32 indices are needed). */
export class DTypeError extends NegcacheError {}

/** A value out of range or of the wrong kind: axes, sizes, indices, options, keys. */
export class ArgumentError extends NegcacheError {}

/** Something that must be finite (a loss, a gradient, an embedding) is not. */
export class NonFiniteError extends NegcacheError {}

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
