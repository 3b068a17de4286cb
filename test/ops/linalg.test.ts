/**
 * matmul: the op (2-D, batched, broadcast batch axes, all four transpose
 * combinations) against the triple-loop oracle and checkGradients; and the
 * blocked kernels (NT: 4×4 register tiles; NN: 4-row rank-1 updates blocked
 * by KC = 128 over k and NC = 512 over n) at sizes that cross every block
 * boundary (k > 128, n > 512, m not a multiple of 4).
 *
 * Tolerances: the plain-loop kernels accumulate in float64 and round once,
 * so float32 results match the float64 triple loop to 1e-6 + 1e-6·|want|
 * (values in [-1, 1] or [-3, 3]); float64 results to 1e-12 (summation order
 * only). Large float32 products go to the WebAssembly SIMD kernels
 * (matmul2d, WASM_MIN_WORK), which accumulate in float32 lanes: for them
 * the standard dot-product bound applies, |error| <= k·2⁻²³·Σₚ|aᵢₚ||bₚⱼ|
 * (twice the unit roundoff per term, a safe constant), see f32DotTol.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { matmul, tensor, type Tensor } from '../../src/index.js';
import { matmul2d, matmulNN, matmulNT } from '../../src/tensor/kernels/matmul.js';
import { Rng } from '../../src/tensor/random.js';
import { params } from '../util/props.js';
import * as O from '../util/oracle.js';
import { arrOfShape, broadcastShapesArb, expectClose, expectGradientsOk, toTensor } from '../util/oracle.js';

const F32 = { rtol: 1e-6, atol: 1e-6 };
const F64 = { rtol: 1e-12, atol: 1e-12 };

/** The float32 dot-product error bound k·2⁻²³·max Σₚ|a||b| (values here are in [-1, 1], so Σ ≤ k). */
function f32DotTol(k: number): { rtol: number; atol: number } {
  return { rtol: 1e-6, atol: Math.max(1e-6, k * k * 2 ** -23) };
}

/** Operands for matmul: broadcasting batch shapes, m/n/k, transposes. */
function matmulArb(o: { minDim: number; maxDim: number; maxBatchRank: number; maxBatch: number }) {
  return fc
    .record({
      batch: broadcastShapesArb(2, {
        maxRank: o.maxBatchRank,
        maxDim: 3,
        maxSize: o.maxBatch,
        minDim: o.minDim === 0 ? 0 : 1,
      }),
      m: fc.integer({ min: o.minDim, max: o.maxDim }),
      n: fc.integer({ min: o.minDim, max: o.maxDim }),
      k: fc.integer({ min: o.minDim, max: o.maxDim }),
      transA: fc.boolean(),
      transB: fc.boolean(),
    })
    .chain(({ batch, m, n, k, transA, transB }) =>
      fc.record({
        a: arrOfShape([...batch.shapes[0]!, ...(transA ? [k, m] : [m, k])]),
        b: arrOfShape([...batch.shapes[1]!, ...(transB ? [n, k] : [k, n])]),
        transA: fc.constant(transA),
        transB: fc.constant(transB),
      }),
    );
}

describe('matmul op', () => {
  it('forward matches the triple loop: 2-D and batched, broadcast batch, all transposes, zero sizes', () => {
    fc.assert(
      fc.property(matmulArb({ minDim: 0, maxDim: 6, maxBatchRank: 3, maxBatch: 8 }), ({ a, b, transA, transB }) => {
        const want = O.matmul(a, b, transA, transB);
        const o = { transposeA: transA, transposeB: transB };
        expectClose(matmul(toTensor(a), toTensor(b), o), want, F32, 'matmul f32');
        const y64 = matmul(toTensor(a, 'float64'), toTensor(b, 'float64'), o);
        expect(y64.dtype).toBe('float64');
        expectClose(y64, want, F64, 'matmul f64');
        const mixed = matmul(toTensor(a, 'float32'), toTensor(b, 'float64'), o);
        expect(mixed.dtype).toBe('float64');
        expectClose(mixed, want, F64, 'matmul mixed');
      }),
      params(150),
    );
  });

  it('gradients pass checkGradients for all four transpose combinations and broadcast batches', () => {
    fc.assert(
      fc.property(matmulArb({ minDim: 1, maxDim: 3, maxBatchRank: 2, maxBatch: 3 }), ({ a, b, transA, transB }) => {
        expectGradientsOk(
          (x, y) => matmul(x, y, { transposeA: transA, transposeB: transB }),
          [toTensor(a), toTensor(b)],
        );
      }),
      params(100),
    );
  });

  it('a 2-D operand is shared by every batch entry (explicit example)', () => {
    const a = tensor([[[1, 2]], [[3, 4]]]); // [2,1,2]
    const b = tensor([
      [1, 0],
      [0, 10],
    ]); // [2,2]
    expect(matmul(a, b).toArray()).toEqual([[[1, 20]], [[3, 40]]]);
    expect(matmul(b, a, { transposeB: true }).toArray()).toEqual([
      [[1], [20]],
      [[3], [40]],
    ]);
  });
});

describe('matmul kernels across block boundaries', () => {
  const fill = (n: number, rng: Rng): Float32Array => {
    const d = new Float32Array(n);
    for (let i = 0; i < n; i++) d[i] = rng.uniform() * 2 - 1;
    return d;
  };

  /** Checks NT, NN and all four matmul2d combinations at one size. */
  function checkSize(m: number, n: number, k: number, seed: number): void {
    const rng = new Rng(seed);
    const a = fill(m * k, rng),
      b = fill(k * n, rng);
    const label = `m=${m} n=${n} k=${k}`;
    // NN: A [m,k], B [k,n]
    const nn = matmulNN(a, b, m, n, k, new Float32Array(m * n));
    expectClose(O.arr([m, n], Array.from(nn)), O.arr([m, n], O.matmulFlat(a, b, m, n, k)), F32, `NN ${label}`);
    // NT: the same b read as B [n,k]
    const nt = matmulNT(a, b, m, n, k, new Float32Array(m * n));
    expectClose(
      O.arr([m, n], Array.from(nt)),
      O.arr([m, n], O.matmulFlat(a, b, m, n, k, false, true)),
      F32,
      `NT ${label}`,
    );
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const out = matmul2d(a, b, m, n, k, transA, transB, new Float32Array(m * n));
        expectClose(
          O.arr([m, n], Array.from(out)),
          O.arr([m, n], O.matmulFlat(a, b, m, n, k, transA, transB)),
          f32DotTol(k),
          `matmul2d tA=${transA} tB=${transB} ${label}`,
        );
      }
    }
    // float64 path of the same kernels
    const a64 = Float64Array.from(a),
      b64 = Float64Array.from(b);
    const o64 = matmul2d(a64, b64, m, n, k, false, false, new Float64Array(m * n));
    expectClose(O.arr([m, n], Array.from(o64)), O.arr([m, n], O.matmulFlat(a, b, m, n, k)), F64, `f64 ${label}`);
  }

  it.each([
    [13, 520, 130], // m % 4 = 1, n crosses NC = 512, k crosses KC = 128
    [7, 1030, 257], // two NC panels plus a remainder, three KC panels
    [4, 512, 128], // exactly one block
    [5, 513, 129], // one past each boundary
    [6, 3, 300], // tiny n (NT remainder columns), deep k
    [1, 600, 1], // single row, k = 1
    [3, 1, 129], // m < 4: no full tile
  ])('m=%i n=%i k=%i match the triple loop', (m, n, k) => {
    checkSize(m, n, k, m * 1000 + n + k);
  });

  it('random sizes around the boundaries match the triple loop', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 11 }),
        fc.integer({ min: 500, max: 530 }),
        fc.integer({ min: 120, max: 140 }),
        fc.nat(),
        (m, n, k, seed) => checkSize(m, n, k, seed),
      ),
      params(10),
    );
  });

  it('k = 0 gives zeros and m or n = 0 gives an empty result', () => {
    const y = matmul(tensor(new Float32Array(0), 'float32', [3, 0]), tensor(new Float32Array(0), 'float32', [0, 2]));
    expect(y.toArray()).toEqual([
      [0, 0],
      [0, 0],
      [0, 0],
    ]);
    const e: Tensor = matmul(
      tensor(new Float32Array(0), 'float32', [0, 4]),
      tensor(new Float32Array(8), 'float32', [4, 2]),
    );
    expect(e.shape).toEqual([0, 2]);
  });

  it('the public op at a block-crossing size matches the oracle, with transposeB (Q·Cᵀ)', () => {
    const rng = new Rng(7);
    const q = fill(9 * 200, rng),
      c = fill(600 * 200, rng);
    const y = matmul(tensor(q, 'float32', [9, 200]), tensor(c, 'float32', [600, 200]), { transposeB: true });
    expectClose(y, O.arr([9, 600], O.matmulFlat(q, c, 9, 600, 200, false, true)), f32DotTol(200), 'Q·Cᵀ');
  });
});
