/**
 * Printing tensors (src/tensor/format.ts): NumPy-style values with shape and
 * dtype, from toString() and Node's util.inspect. Exact strings for the
 * layouts; properties for the element format (floats print in the shortest
 * form that reads back to the same value of the dtype) and for the values
 * (small tensors print every element, in order).
 */
import { inspect } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { arange, reshape, tensor, zeros } from '../../src/index.js';
import { formatElement, formatTensor } from '../../src/tensor/format.js';
import { params } from '../util/props.js';
import { arrOfShape, shapeArb, toTensor } from '../util/oracle.js';

describe('Tensor.toString', () => {
  it('ints, right-aligned, with shape and dtype', () => {
    expect(
      String(
        tensor(
          [
            [1, 20],
            [-3, 4],
          ],
          'int32',
        ),
      ),
    ).toBe('tensor([[ 1, 20],\n        [-3,  4]], shape=[2,2], dtype=int32)');
  });

  it('bools', () => {
    expect(String(tensor([true, false, true]))).toBe('tensor([ true, false,  true], shape=[3], dtype=bool)');
  });

  it('floats: integral values without a point, NaN, ±Infinity and -0 spelled out', () => {
    expect(String(tensor([1, 2.5, NaN, Infinity, -Infinity, -0, 0]))).toBe(
      'tensor([        1,       2.5,       NaN,  Infinity, -Infinity,        -0,         0], shape=[7], dtype=float32)',
    );
  });

  it('float32 values in their shortest round-trip form; float64 as JavaScript prints them', () => {
    expect(String(tensor([0.1, 1 / 3, 1e-8, 3e38]))).toBe(
      'tensor([       0.1, 0.33333334,       1e-8,      3e+38], shape=[4], dtype=float32)',
    );
    expect(String(tensor([0.1, 1 / 3], 'float64'))).toBe(
      'tensor([               0.1, 0.3333333333333333], shape=[2], dtype=float64)',
    );
  });

  it('scalars and empty tensors', () => {
    expect(String(tensor(3.5, 'float64'))).toBe('tensor(3.5, shape=[], dtype=float64)');
    expect(String(tensor(true))).toBe('tensor(true, shape=[], dtype=bool)');
    expect(String(zeros([0]))).toBe('tensor([], shape=[0], dtype=float32)');
    expect(String(zeros([2, 0, 3], 'int32'))).toBe('tensor([], shape=[2,0,3], dtype=int32)');
  });

  it('rank 3: one blank line between the outer blocks, inner rows aligned under their bracket', () => {
    expect(String(reshape(arange(12), [2, 2, 3]))).toBe(
      [
        'tensor([[[ 0,  1,  2],',
        '         [ 3,  4,  5]],',
        '',
        '        [[ 6,  7,  8],',
        '         [ 9, 10, 11]]], shape=[2,2,3], dtype=int32)',
      ].join('\n'),
    );
  });

  it('more than 1000 elements: the first and last 3 entries of every long axis, with ...', () => {
    expect(String(arange(1001))).toBe('tensor([   0,    1,    2, ...,  998,  999, 1000], shape=[1001], dtype=int32)');
    expect(String(reshape(arange(2000), [40, 50]))).toBe(
      [
        'tensor([[   0,    1,    2, ...,   47,   48,   49],',
        '        [  50,   51,   52, ...,   97,   98,   99],',
        '        [ 100,  101,  102, ...,  147,  148,  149],',
        '        ...,',
        '        [1850, 1851, 1852, ..., 1897, 1898, 1899],',
        '        [1900, 1901, 1902, ..., 1947, 1948, 1949],',
        '        [1950, 1951, 1952, ..., 1997, 1998, 1999]], shape=[40,50], dtype=int32)',
      ].join('\n'),
    );
    // exactly 1000 elements: printed in full (wrapped), nothing elided
    const full = String(arange(1000));
    expect(full).not.toContain('...');
    expect(full.match(/\d+/g)!.slice(0, 1000).map(Number)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
  });

  it('long rows wrap at 100 characters, continuation lines aligned after the bracket', () => {
    const lines = String(arange(100)).split('\n');
    expect(lines.length).toBeGreaterThan(1);
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(100);
    expect(lines[1]!.startsWith('        ')).toBe(true);
  });

  it("is what Node's util.inspect and console.log show (no Node import in the library)", () => {
    const t = tensor([
      [1, 2],
      [3, 4],
    ]);
    expect(inspect(t)).toBe(t.toString());
    expect(inspect({ t })).toContain('tensor([[1, 2],');
  });
});

describe('element format properties', () => {
  it('a float32 prints in the fewest significant digits that read back to the same float32', () => {
    fc.assert(
      fc.property(fc.float({ noNaN: true, noDefaultInfinity: true }), (v) => {
        const s = formatElement(v, 'float32');
        expect(Math.fround(Number(s))).toBe(Object.is(v, -0) ? -0 : v);
        // significant digits: the mantissa without sign, point, leading and trailing zeros
        const digits = s
          .replace(/^-/, '')
          .replace(/e.*$/, '')
          .replace('.', '')
          .replace(/^0+/, '')
          .replace(/0+$/, '').length;
        if (digits > 1 && !Object.is(v, -0)) expect(Math.fround(Number(v.toPrecision(digits - 1)))).not.toBe(v);
      }),
      params(2000),
    );
  });

  it('a float64 prints exactly as JavaScript does (which reads back exactly)', () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true }), (v) => {
        const s = formatElement(v, 'float64');
        expect(Number(s)).toBe(v);
        if (!Object.is(v, -0)) expect(s).toBe(String(v));
      }),
      params(1000),
    );
  });

  it('a tensor of at most 1000 elements prints every value, in row-major order, with its shape and dtype', () => {
    fc.assert(
      fc.property(
        shapeArb({ minRank: 1, maxRank: 4, maxSize: 60 }).chain((s) => arrOfShape(s)),
        fc.constantFrom('float32' as const, 'float64' as const),
        (a, dtype) => {
          const t = toTensor(a, dtype);
          const text = formatTensor(t.dataSync(), t.shape, dtype);
          expect(text.endsWith(`, shape=[${t.shape.join(',')}], dtype=${dtype})`)).toBe(true);
          const body = text.slice('tensor('.length, text.lastIndexOf(', shape='));
          const printed = body
            .replace(/[[\]\s]/g, '')
            .split(',')
            .map((v) => (dtype === 'float32' ? Math.fround(Number(v)) : Number(v)));
          expect(printed).toEqual(Array.from(t.dataSync()));
        },
      ),
      params(200),
    );
  });
});
