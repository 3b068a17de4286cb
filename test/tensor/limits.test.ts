/**
 * Huge or odd input gets a typed error with a clear message, checked before
 * anything is allocated (never a RangeError from the engine, a stack
 * overflow or a garbled message): results over 2^31-1 elements, more than 64
 * axes, nesting 10 000 arrays deep, a self-containing array, a DataView, and
 * a wasm memory that cannot grow.
 */
import { describe, expect, it } from 'vitest';
import {
  ArgumentError,
  InvalidArgumentError,
  add,
  broadcastTo,
  expandDims,
  gather,
  gatherRows,
  matmul,
  pad,
  reshape,
  tensor,
  where,
  zeros,
} from '../../src/index.js';
import { MAX_ELEMENTS, MAX_RANK, checkSize } from '../../src/tensor/shape.js';
import { fitsInWasm, matmul2d } from '../../src/tensor/kernels/matmul.js';
import { matmulNTWasm, wasmAvailable } from '../../src/tensor/kernels/wasm/index.js';

/** The error `f` throws, which must be an ArgumentError with exactly `message`. */
function expectArgumentError(f: () => unknown, message: string | RegExp): void {
  let caught: unknown;
  try {
    f();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(ArgumentError);
  expect(caught).toBeInstanceOf(InvalidArgumentError);
  if (typeof message === 'string') expect((caught as Error).message).toBe(message);
  else expect((caught as Error).message).toMatch(message);
}

describe('checkSize', () => {
  it('returns the element count within the limits and names the op, shape, size and bytes beyond them', () => {
    expect(checkSize('op', [2, 3], 'float32')).toBe(6);
    expect(checkSize('op', [MAX_ELEMENTS], 'bool')).toBe(MAX_ELEMENTS);
    expect(checkSize('op', new Array(MAX_RANK).fill(1), 'int32')).toBe(1);
    expectArgumentError(
      () => checkSize('op', [65536, 32768], 'float64'),
      'op: the result would be a [65536,32768] float64 tensor of 2147483648 elements (16.0 GiB); need at most 2^31-1 elements',
    );
    expectArgumentError(
      () => checkSize('op', new Array(MAX_RANK + 1).fill(1), 'float32'),
      'op: the result would have 65 axes; need at most 64',
    );
  });
});

describe('results too large to allocate are ArgumentErrors naming the op', () => {
  it('matmul of [100000,1]·[1,100000] (was RangeError: Invalid typed array length)', () => {
    expectArgumentError(
      () => matmul(zeros([100000, 1]), zeros([1, 100000])),
      'matmul: the result would be a [100000,100000] float32 tensor of 10000000000 elements (37.3 GiB); need at most 2^31-1 elements',
    );
  });

  it('matmul of [65536,1]·[1,65536] (was RangeError from WebAssembly.Memory.grow())', () => {
    expectArgumentError(
      () => matmul(zeros([65536, 1]), zeros([1, 65536])),
      'matmul: the result would be a [65536,65536] float32 tensor of 4294967296 elements (16.0 GiB); need at most 2^31-1 elements',
    );
    // batched: the batch axes count too
    expectArgumentError(() => matmul(zeros([3000, 1, 1000, 1]), zeros([1, 1000, 1, 1000])), /^matmul: the result/);
  });

  it('broadcasting binary ops and where', () => {
    const col = zeros([50000, 1]),
      row = zeros([1, 50000]);
    expectArgumentError(
      () => add(col, row),
      'add: shapes [50000,1] and [1,50000] broadcast to [50000,50000] = 2500000000 elements; need at most 2^31-1',
    );
    expectArgumentError(() => where(tensor([true]), col, row), /^where: shapes \[50000,1\] and \[1,50000\] broadcast/);
    expectArgumentError(() => broadcastTo(zeros([1]), [50000, 50000]), /^broadcastTo: shape \[50000,50000\] has/);
  });

  it('pad, gather and gatherRows', () => {
    expectArgumentError(
      () => pad(zeros([2]), [0], [2 ** 31 - 1]),
      'pad: the result would be a [2147483649] float32 tensor of 2147483649 elements (8.0 GiB); need at most 2^31-1 elements',
    );
    const idx = zeros([50000], 'int32');
    expectArgumentError(() => gather(zeros([1, 50000]), idx), /^gather: the result would be a \[50000,50000\]/);
    expectArgumentError(() => gatherRows(zeros([1, 50000]), idx), /^gatherRows: the result would be a \[50000,50000\]/);
  });

  it('tensor() of nested arrays that share rows (2.5e9 values) fails before walking them', () => {
    const rowOf = new Array<number>(50000).fill(0);
    expectArgumentError(
      () => tensor(new Array(50000).fill(rowOf)),
      'tensor: the result would be a [50000,50000] float32 tensor of 2500000000 elements (9.3 GiB); need at most 2^31-1 elements',
    );
  });
});

describe('odd input to tensor() and shapes', () => {
  it('10 000 nested arrays (was a stack overflow) and a self-containing array (was an endless loop)', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 10000; i++) deep = [deep];
    const msg = 'tensor: values are nested more than 64 arrays deep; a tensor has at most 64 axes';
    expectArgumentError(() => tensor(deep as never), msg);
    const cyclic: unknown[] = [];
    cyclic.push(cyclic);
    expectArgumentError(() => tensor(cyclic as never), msg);
    // 64 levels is fine
    let ok: unknown = 7;
    for (let i = 0; i < 64; i++) ok = [ok];
    expect(tensor(ok as never).shape).toEqual(new Array(64).fill(1));
  });

  it('a DataView or a BigInt64Array (was "shape [] needs NaN values")', () => {
    const need =
      'values must be nested arrays or a typed array of numbers (Float32Array, Float64Array, Int32Array, Uint8Array, ...)';
    expectArgumentError(() => tensor(new DataView(new ArrayBuffer(8)) as never), `tensor: ${need}, got a DataView`);
    expectArgumentError(() => tensor(new BigInt64Array(2) as never), `tensor: ${need}, got a BigInt64Array`);
    // other numeric typed arrays still work
    expect(tensor(new Int16Array([1, -2]) as never).toArray()).toEqual([1, -2]);
  });

  it('more than 64 axes in zeros, reshape and expandDims', () => {
    const ones65 = new Array<number>(65).fill(1);
    expectArgumentError(() => zeros(ones65), 'zeros: shape has 65 axes; need at most 64');
    expectArgumentError(() => reshape(zeros([1]), ones65), 'reshape: shape has 65 axes; need at most 64');
    const rank64 = zeros(new Array(64).fill(1));
    expectArgumentError(() => expandDims(rank64, 0), 'expandDims: x already has 64 axes, the most a tensor may have');
  });
});

describe('the wasm memory limit', () => {
  it('products whose copies exceed the 4 GiB wasm memory stay on the plain loops', () => {
    expect(fitsInWasm(1024, 1024, 1024)).toBe(true);
    expect(fitsInWasm(33000, 33000, 1)).toBe(false); // 4.36 GB of result alone
    expect(fitsInWasm(1, 1, 300_000_000)).toBe(false); // 2.4 GB of operands, twice (copies and transposes)
  });

  it('a failed grow is a typed ArgumentError, and the kernels keep working afterwards', () => {
    expect(wasmAvailable()).toBe(true); // Node 20 has WebAssembly SIMD
    // The 4.36 GB result array is reserved but never touched (zero pages), so this costs no real memory.
    const a = new Float32Array(33000).fill(1);
    expectArgumentError(
      () => matmulNTWasm(a, a, 33000, 33000, 1),
      /^wasm: cannot grow the WebAssembly memory from \d+ to \d+ bytes for a 4356000000-byte buffer \(a 32-bit WebAssembly memory holds at most 4 GiB\)/,
    );
    const x = Float32Array.from({ length: 64 * 64 }, (_, i) => (i % 7) - 3);
    const viaWasm = matmulNTWasm(x, x, 64, 64, 64);
    const viaLoops = matmul2d(
      Float64Array.from(x),
      Float64Array.from(x),
      64,
      64,
      64,
      false,
      true,
      new Float64Array(64 * 64),
    );
    expect(Array.from(viaWasm)).toEqual(Array.from(viaLoops)); // small integers: exact in both
  });
});
