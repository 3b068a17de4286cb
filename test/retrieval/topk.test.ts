/**
 * approximateTopKWithIndices against a straightforward reference: each row
 * cut into k consecutive groups of n/k columns, the group maximum (first on
 * ties) with its column in the original row, in group order. Values are
 * compared exactly (the op gathers, it does not compute).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ArgumentError,
  DTypeError,
  ShapeError,
  approximateTopKWithIndices,
  tensor,
  vjp,
  type Tensor,
} from '../../src/index.js';
import { params } from '../util/props.js';

function reference(rows: number[][], k: number): { values: number[][]; indices: number[][] } {
  const n = rows[0]!.length,
    g = n / k;
  const values: number[][] = [],
    indices: number[][] = [];
  for (const row of rows) {
    const v: number[] = [],
      ix: number[] = [];
    for (let c = 0; c < k; c++) {
      let best = c * g;
      for (let j = c * g + 1; j < (c + 1) * g; j++) if (row[j]! > row[best]!) best = j;
      v.push(row[best]!);
      ix.push(best);
    }
    values.push(v);
    indices.push(ix);
  }
  return { values, indices };
}

/** b rows of n = k·g values drawn from `val`. */
const caseArb = (val: fc.Arbitrary<number>) =>
  fc
    .record({ b: fc.integer({ min: 1, max: 4 }), k: fc.integer({ min: 1, max: 5 }), g: fc.integer({ min: 1, max: 5 }) })
    .chain(({ b, k, g }) =>
      fc.record({
        k: fc.constant(k),
        rows: fc.array(fc.array(val, { minLength: k * g, maxLength: k * g }), { minLength: b, maxLength: b }),
      }),
    );

function check(rows: number[][], k: number, dtype: 'float32' | 'float64'): void {
  const n = rows[0]!.length;
  const { values, indices } = approximateTopKWithIndices(tensor(rows.flat(), dtype, [rows.length, n]), k);
  const want = reference(rows, k);
  expect(values.shape).toEqual([rows.length, k]);
  expect(values.dtype).toBe(dtype);
  expect(indices.shape).toEqual([rows.length, k]);
  expect(indices.dtype).toBe('int32');
  expect(values.toArray()).toEqual(want.values);
  expect(indices.toArray()).toEqual(want.indices);
}

describe('approximateTopKWithIndices', () => {
  it('matches the reference on distinct values (property, float64)', () => {
    fc.assert(
      fc.property(caseArb(fc.double({ min: -100, max: 100, noNaN: true, noDefaultInfinity: true })), ({ rows, k }) =>
        check(rows, k, 'float64'),
      ),
      params(150),
    );
  });

  it('matches the reference with many ties and -Infinity (first on ties; property, float32)', () => {
    fc.assert(
      fc.property(caseArb(fc.constantFrom(-Infinity, 0, 1, 2)), ({ rows, k }) => check(rows, k, 'float32')),
      params(200),
    );
  });

  it('explicit example: groups in order, original column indices, first on ties', () => {
    const s = tensor([
      [1, 3, 3, 0, -1, -1],
      [5, 4, -Infinity, -Infinity, 2, 9],
    ]);
    const r = approximateTopKWithIndices(s, 3);
    expect(r.values.toArray()).toEqual([
      [3, 3, -1],
      [5, -Infinity, 9],
    ]);
    expect(r.indices.toArray()).toEqual([
      [1, 2, 4],
      [0, 2, 5],
    ]);
    const one = approximateTopKWithIndices(s, 1);
    expect(one.indices.toArray()).toEqual([[1], [5]]);
    const all = approximateTopKWithIndices(s, 6);
    expect(all.indices.toArray()).toEqual([
      [0, 1, 2, 3, 4, 5],
      [0, 1, 2, 3, 4, 5],
    ]);
  });

  it("the values' gradient flows to the chosen entries only (property: VJP is a scatter of the cotangent)", () => {
    fc.assert(
      fc.property(
        caseArb(fc.constantFrom(-3, -1, 0, 0.5, 2)),
        fc.integer({ min: 0, max: 1e6 }),
        ({ rows, k }, seed) => {
          const n = rows[0]!.length,
            b = rows.length;
          const x = tensor(rows.flat(), 'float64', [b, n]);
          const { value, vjp: back } = vjp((s: Tensor) => approximateTopKWithIndices(s, k).values, x);
          const ct = Array.from({ length: b * k }, (_, i) => ((seed + 7 * i) % 13) - 6 + 0.25);
          const [g] = back(tensor(ct, 'float64', [b, k])) as [Tensor];
          const want = new Array<number>(b * n).fill(0);
          const idx = reference(rows, k).indices;
          for (let i = 0; i < b; i++) for (let c = 0; c < k; c++) want[i * n + idx[i]![c]!]! += ct[i * k + c]!;
          expect(Array.from(g.dataSync() as Float64Array)).toEqual(want);
          expect(value.toArray()).toEqual(reference(rows, k).values);
        },
      ),
      params(100),
    );
  });

  it('rejects k not dividing n, bad k, and bad scores with typed errors', () => {
    const s = tensor([[1, 2, 3, 4, 5, 6]]);
    expect(() => approximateTopKWithIndices(s, 4)).toThrow(ArgumentError);
    expect(() => approximateTopKWithIndices(s, 4)).toThrow(
      'approximateTopKWithIndices: n = 6 is not divisible by k = 4',
    );
    expect(() => approximateTopKWithIndices(s, 0)).toThrow(
      'approximateTopKWithIndices: k must be an integer in [1, 6], got 0',
    );
    expect(() => approximateTopKWithIndices(s, 7)).toThrow(ArgumentError);
    expect(() => approximateTopKWithIndices(s, 1.5)).toThrow(ArgumentError);
    expect(() => approximateTopKWithIndices(tensor([1, 2]), 1)).toThrow(ShapeError);
    expect(() => approximateTopKWithIndices(tensor([[1, 2]], 'int32'), 1)).toThrow(DTypeError);
  });
});
