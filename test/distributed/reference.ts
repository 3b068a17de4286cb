/**
 * Test helpers for the collectives: tensors with arbitrary bit patterns, and
 * a straightforward element-by-element reference of allGather / allToAll
 * (index arithmetic only, independent of the block copies the library uses).
 */
import fc from 'fast-check';
import type { DType, TypedArray } from '../../src/tensor/dtype.js';
import { Rng } from '../../src/tensor/random.js';
import { unsafeData, wrap, type Tensor } from '../../src/tensor/tensor.js';

export const DTYPES: readonly DType[] = ['float32', 'float64', 'int32', 'bool'];

const ELT: Record<DType, number> = { float32: 4, float64: 8, int32: 4, bool: 1 };
const STORAGE: Record<DType, new (n: number) => TypedArray> = {
  float32: Float32Array,
  float64: Float64Array,
  int32: Int32Array,
  bool: Uint8Array,
};

function size(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function strides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

function bytes(t: Tensor): Uint8Array {
  const d = unsafeData(t);
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

/** A tensor whose elements are random bit patterns (floats include NaNs with payloads, infinities, subnormals, -0). */
export function randomTensor(dtype: DType, shape: readonly number[], seed: number): Tensor {
  const rng = new Rng(seed);
  const data = new STORAGE[dtype](size(shape));
  if (dtype === 'bool') {
    for (let i = 0; i < data.length; i++) data[i] = rng.nextUint32() & 1;
  } else {
    const words = new Uint32Array(data.buffer);
    for (let i = 0; i < words.length; i++) words[i] = rng.nextUint32();
  }
  return wrap(data, shape.slice(), dtype);
}

/** A 1-d tensor of awkward values of a dtype: NaN payloads, -0, infinities, int32 above 2^24. */
export function specialTensor(dtype: DType): Tensor {
  switch (dtype) {
    case 'float32': {
      const words = Uint32Array.of(
        0x7fc00001,
        0xffc12345,
        0x7f800001,
        0x80000000,
        0x7f800000,
        0xff800000,
        0x00000001,
        0x3f800000,
      );
      return wrap(new Float32Array(words.buffer), [8], 'float32');
    }
    case 'float64': {
      const words = Uint32Array.of(
        0x00000001,
        0x7ff80000,
        0xdeadbeef,
        0xfff12345,
        0,
        0x80000000,
        0,
        0x7ff00000,
        1,
        0,
        0xffffffff,
        0x7fefffff,
        0,
        0x3ff00000,
        5,
        0,
      );
      return wrap(new Float64Array(words.buffer), [8], 'float64');
    }
    case 'int32':
      return wrap(
        Int32Array.of(2 ** 24 + 1, -(2 ** 31), 2 ** 31 - 1, 16777217, -16777217, 123456789, 0, -1),
        [8],
        'int32',
      );
    case 'bool':
      return wrap(Uint8Array.of(1, 0, 0, 1, 1, 1, 0, 1), [8], 'bool');
  }
}

/** Bit-exact equality of dtype, shape and bytes. */
export function sameBits(a: Tensor, b: Tensor): boolean {
  if (a.dtype !== b.dtype || a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i]))
    return false;
  const x = bytes(a);
  const y = bytes(b);
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/** A readable description of a mismatch for failing assertions. */
export function describeTensor(t: Tensor): string {
  return `${t.dtype} [${t.shape.join(',')}] bytes ${Array.from(bytes(t)).join(' ')}`;
}

/** Builds an output by copying one element's bytes at a time from `source(outIndex)`. */
function build(
  dtype: DType,
  outShape: readonly number[],
  source: (idx: number[]) => { t: Tensor; idx: number[] },
): Tensor {
  const elt = ELT[dtype];
  const out = new STORAGE[dtype](size(outShape));
  const outBytes = new Uint8Array(out.buffer);
  const outStrides = strides(outShape);
  for (let flat = 0; flat < out.length; flat++) {
    const idx = outStrides.map((s, i) => Math.floor(flat / s) % outShape[i]!);
    const src = source(idx);
    const st = strides(src.t.shape);
    const srcFlat = src.idx.reduce((acc, v, i) => acc + v * st[i]!, 0);
    const b = bytes(src.t);
    for (let k = 0; k < elt; k++) outBytes[flat * elt + k] = b[srcFlat * elt + k]!;
  }
  return wrap(out, outShape.slice(), dtype);
}

/** Reference allGather: concatenation of inputs[0..R) along `axis`. */
export function refAllGather(inputs: readonly Tensor[], axis: number): Tensor {
  const rank = inputs[0]!.shape.length;
  const ax = axis < 0 ? axis + rank : axis;
  const outShape = inputs[0]!.shape.slice();
  outShape[ax] = inputs.reduce((a, t) => a + t.shape[ax]!, 0);
  return build(inputs[0]!.dtype, outShape, (idx) => {
    let i = idx[ax]!;
    let r = 0;
    while (i >= inputs[r]!.shape[ax]!) {
      i -= inputs[r]!.shape[ax]!;
      r++;
    }
    const j = idx.slice();
    j[ax] = i;
    return { t: inputs[r]!, idx: j };
  });
}

/**
 * Reference allToAll for receiver `me`: out[idx] with q = idx[concat] / c
 * (c the piece size along concatAxis) comes from replica q's input at the
 * same index, except idx[concat] mod c along concatAxis and + me * m along
 * splitAxis (m = shape[split] / R).
 */
export function refAllToAll(inputs: readonly Tensor[], splitAxis: number, concatAxis: number, me: number): Tensor {
  const R = inputs.length;
  const rank = inputs[0]!.shape.length;
  const sa = splitAxis < 0 ? splitAxis + rank : splitAxis;
  const ca = concatAxis < 0 ? concatAxis + rank : concatAxis;
  const piece = inputs[0]!.shape.slice();
  const m = piece[sa]! / R;
  piece[sa] = m;
  const c = piece[ca]!;
  const outShape = piece.slice();
  outShape[ca] = c * R;
  return build(inputs[0]!.dtype, outShape, (idx) => {
    const q = Math.floor(idx[ca]! / c);
    const j = idx.slice();
    j[ca] = idx[ca]! % c;
    j[sa] = j[sa]! + me * m;
    return { t: inputs[q]!, idx: j };
  });
}

export interface GatherCase {
  readonly R: number;
  readonly dtype: DType;
  readonly axis: number;
  /** One input per replica: equal shapes except along axis. */
  readonly inputs: readonly Tensor[];
}

export interface AllToAllCase {
  readonly R: number;
  readonly dtype: DType;
  readonly splitAxis: number;
  readonly concatAxis: number;
  readonly inputs: readonly Tensor[];
}

/** Random allGather cases: rank 1-4, dims 0-4, per-replica sizes along the axis, any dtype, negative axes too. */
export function gatherCaseArb(R: number | fc.Arbitrary<number>): fc.Arbitrary<GatherCase> {
  const rArb = typeof R === 'number' ? fc.constant(R) : R;
  return fc
    .record({
      R: rArb,
      rank: fc.integer({ min: 1, max: 4 }),
      dtype: fc.constantFrom(...DTYPES),
      seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
    })
    .chain(({ R, rank, dtype, seed }) =>
      fc
        .record({
          dims: fc.array(fc.integer({ min: 0, max: 4 }), { minLength: rank, maxLength: rank }),
          axis: fc.integer({ min: -rank, max: rank - 1 }),
          sizes: fc.array(fc.integer({ min: 0, max: 4 }), { minLength: R, maxLength: R }),
        })
        .map(({ dims, axis, sizes }) => {
          const ax = axis < 0 ? axis + rank : axis;
          const inputs = sizes.map((n, r) => {
            const shape = dims.slice();
            shape[ax] = n;
            return randomTensor(dtype, shape, seed + r);
          });
          return { R, dtype, axis, inputs };
        }),
    );
}

/** Random allToAll cases: shapes with shape[splitAxis] divisible by R (the same shape on every replica). */
export function allToAllCaseArb(R: number | fc.Arbitrary<number>): fc.Arbitrary<AllToAllCase> {
  const rArb = typeof R === 'number' ? fc.constant(R) : R;
  return fc
    .record({
      R: rArb,
      rank: fc.integer({ min: 1, max: 4 }),
      dtype: fc.constantFrom(...DTYPES),
      seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
    })
    .chain(({ R, rank, dtype, seed }) =>
      fc
        .record({
          dims: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: rank, maxLength: rank }),
          splitAxis: fc.integer({ min: -rank, max: rank - 1 }),
          concatAxis: fc.integer({ min: -rank, max: rank - 1 }),
          k: fc.integer({ min: 0, max: 3 }),
        })
        .map(({ dims, splitAxis, concatAxis, k }) => {
          const shape = dims.slice();
          shape[splitAxis < 0 ? splitAxis + rank : splitAxis] = k * R;
          const inputs = Array.from({ length: R }, (_, r) => randomTensor(dtype, shape, seed + r));
          return { R, dtype, splitAxis, concatAxis, inputs };
        }),
    );
}
