/**
 * Printing tensors, NumPy style (used by Tensor.toString and Node's
 * util.inspect / console.log):
 *
 *   tensor([[1, 2],
 *           [3, 4]], shape=[2,2], dtype=float32)
 *   tensor([  true, false], shape=[2], dtype=bool)      (elements right-aligned to a common width)
 *   tensor(3.5, shape=[], dtype=float64)                (a scalar)
 *   tensor([], shape=[2,0], dtype=int32)                (no elements)
 *
 * Elements: int32 as integers; bool as true/false; floats in the shortest
 * form that reads back to the same value in the tensor's dtype (a float32
 * 0.1 prints as 0.1, not 0.10000000149011612), integral floats without a
 * decimal point, and NaN, Infinity, -Infinity and -0 spelled out. Axes
 * after the first start on a new line aligned under their bracket, with one
 * blank line per extra level between blocks (as NumPy); rows longer than
 * 100 characters wrap. Tensors with more than 1000 elements are summarised:
 * every axis longer than 6 shows its first 3 and last 3 entries with `...`
 * between (NumPy's threshold and edgeitems).
 */
import type { DType, TypedArray } from './dtype.js';
import { stridesOf, type Shape } from './shape.js';

/** Tensors with more elements than this are summarised. */
export const PRINT_THRESHOLD = 1000;
/** Entries kept at each end of a summarised axis. */
export const PRINT_EDGE_ITEMS = 3;
/** Rows wrap beyond this many characters. */
export const PRINT_LINE_WIDTH = 100;

/** One element as text (see the module comment). */
export function formatElement(v: number, dtype: DType): string {
  if (dtype === 'bool') return v !== 0 ? 'true' : 'false';
  if (dtype === 'int32') return String(v);
  if (Object.is(v, -0)) return '-0';
  if (!Number.isFinite(v) || dtype === 'float64') return String(v);
  // float32: the fewest significant digits that round back to the same float32.
  for (let p = 1; p < 9; p++) {
    const short = Number(v.toPrecision(p));
    if (Math.fround(short) === v) return String(short);
  }
  return String(Number(v.toPrecision(9)));
}

/** The text of a tensor with storage `data`, `shape` and `dtype`. */
export function formatTensor(data: TypedArray, shape: Shape, dtype: DType): string {
  const prefix = 'tensor(';
  const suffix = `, shape=[${shape.join(',')}], dtype=${dtype})`;
  if (shape.length === 0) return `${prefix}${formatElement(data[0]!, dtype)}${suffix}`;
  if (data.length === 0) return `${prefix}[]${suffix}`;
  const rank = shape.length;
  const summarise = data.length > PRINT_THRESHOLD;
  // The entries shown along an axis of size n; -1 marks the `...`.
  const shown = (n: number): number[] => {
    if (!summarise || n <= 2 * PRINT_EDGE_ITEMS) return Array.from({ length: n }, (_, i) => i);
    const head = Array.from({ length: PRINT_EDGE_ITEMS }, (_, i) => i);
    return [...head, -1, ...head.map((i) => n - PRINT_EDGE_ITEMS + i)];
  };
  const picks = shape.map(shown);
  const strides = stridesOf(shape);
  // Text of every shown element, and their common width.
  const text = new Map<number, string>();
  const collect = (axis: number, offset: number): void => {
    for (const i of picks[axis]!) {
      if (i < 0) continue;
      const at = offset + i * strides[axis]!;
      if (axis === rank - 1) text.set(at, formatElement(data[at]!, dtype));
      else collect(axis + 1, at);
    }
  };
  collect(0, 0);
  let width = 0;
  for (const s of text.values()) width = Math.max(width, s.length);
  // `column` is where this level's '[' sits.
  const render = (axis: number, offset: number, column: number): string => {
    if (axis === rank - 1) {
      const items = picks[axis]!.map((i) => (i < 0 ? '...' : text.get(offset + i)!.padStart(width)));
      const lines: string[] = [];
      let line = '';
      for (const item of items) {
        if (line !== '' && column + 1 + line.length + 2 + item.length + 2 > PRINT_LINE_WIDTH) {
          lines.push(line + ',');
          line = item;
        } else line = line === '' ? item : `${line}, ${item}`;
      }
      lines.push(line);
      return `[${lines.join('\n' + ' '.repeat(column + 1))}]`;
    }
    const sep = ',' + '\n'.repeat(rank - axis - 1) + ' '.repeat(column + 1);
    const parts = picks[axis]!.map((i) => (i < 0 ? '...' : render(axis + 1, offset + i * strides[axis]!, column + 1)));
    return `[${parts.join(sep)}]`;
  };
  return prefix + render(0, 0, prefix.length) + suffix;
}
