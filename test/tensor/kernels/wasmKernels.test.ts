import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { ShapeError } from '../../../src/errors.js';
import { Rng } from '../../../src/tensor/random.js';
import { logf32 } from '../../../src/tensor/kernels/f32math.js';
import { matmulNT } from '../../../src/tensor/kernels/matmul.js';
import { FunctionBuilder, ModuleBuilder, webAssemblyApi } from '../../../src/tensor/kernels/wasm/emitter.js';
import {
  defineWasmExtension,
  expWasm,
  initWasm,
  isResident,
  logWasm,
  makeResident,
  matmulNNWasm,
  matmulNTWasm,
  matmulTNWasm,
  releaseResident,
  wasmBytesInUse,
  wasmReady,
  wasmSimdSupported,
} from '../../../src/tensor/kernels/wasm/index.js';
import {
  CONST_POOL_BYTES,
  ConstPool,
  buildKernelModule,
  type KernelConfig,
  type KernelExports,
} from '../../../src/tensor/kernels/wasm/kernels.js';
import { params } from '../../util/props.js';

beforeAll(async () => {
  expect(wasmSimdSupported()).toBe(true); // Node >= 20 has WebAssembly SIMD
  expect(await initWasm()).toBe(true);
  expect(wasmReady()).toBe(true);
});

function rand(rng: Rng, len: number): Float32Array {
  const a = new Float32Array(len);
  for (let i = 0; i < len; i++) a[i] = rng.uniform() * 2 - 1;
  return a;
}

/**
 * Checks C = A·Bᵀ (A [m,k] via a(i,p), B [n,k] via b(j,p)) against a float64
 * reference: |C - ref| <= (k + 4)·2^-23·Σ_p |a||b| (the float32 summation
 * bound, with room for the lane-split order), elementwise.
 */
function expectProduct(
  c: Float32Array,
  m: number,
  n: number,
  k: number,
  a: (i: number, p: number) => number,
  b: (j: number, p: number) => number,
): void {
  let worst = 0;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0,
        sa = 0;
      for (let p = 0; p < k; p++) {
        const x = a(i, p) * b(j, p);
        s += x;
        sa += Math.abs(x);
      }
      const err = Math.abs(c[i * n + j]! - s);
      const tol = (k + 4) * 2 ** -23 * sa + 1e-30;
      if (err > tol)
        throw new Error(`C[${i},${j}] = ${c[i * n + j]} vs ${s} (err ${err} > tol ${tol}), m=${m} n=${n} k=${k}`);
      worst = Math.max(worst, sa > 0 ? err / sa : 0);
    }
  }
  expect(worst).toBeLessThan((k + 4) * 2 ** -23 + 1e-30);
}

const dims = fc.oneof(fc.integer({ min: 0, max: 9 }), fc.integer({ min: 10, max: 70 }));

describe('matmuls (wasm SIMD) against a float64 loop', () => {
  it('matmulNT on random shapes incl. zero, ragged and non-multiple-of-tile sizes', () => {
    fc.assert(
      fc.property(dims, dims, dims, fc.integer({ min: 0, max: 1e6 }), (m, n, k, seed) => {
        const rng = new Rng(seed);
        const a = rand(rng, m * k),
          b = rand(rng, n * k);
        const c = matmulNTWasm(a, b, m, n, k);
        expect(c.length).toBe(m * n);
        expectProduct(
          c,
          m,
          n,
          k,
          (i, p) => a[i * k + p]!,
          (j, p) => b[j * k + p]!,
        );
      }),
      params(120),
    );
  });

  it('matmulNN and matmulTN on random shapes', () => {
    fc.assert(
      fc.property(dims, dims, dims, fc.integer({ min: 0, max: 1e6 }), (m, n, k, seed) => {
        const rng = new Rng(seed);
        const a = rand(rng, m * k),
          b = rand(rng, k * n);
        const c = matmulNNWasm(a, b, m, n, k);
        expectProduct(
          c,
          m,
          n,
          k,
          (i, p) => a[i * k + p]!,
          (j, p) => b[p * n + j]!,
        );
        const at = rand(rng, k * m);
        const c2 = matmulTNWasm(at, b, m, n, k);
        expectProduct(
          c2,
          m,
          n,
          k,
          (i, p) => at[p * m + i]!,
          (j, p) => b[p * n + j]!,
        );
      }),
      params(80),
    );
  });

  it('larger shapes crossing the cache blocks, into a given output, with k = 0 giving zeros', () => {
    const rng = new Rng(7);
    const m = 67,
      n = 301,
      k = 131;
    const a = rand(rng, m * k),
      b = rand(rng, n * k);
    const out = new Float32Array(m * n).fill(99);
    expect(matmulNTWasm(a, b, m, n, k, out)).toBe(out);
    expectProduct(
      out,
      m,
      n,
      k,
      (i, p) => a[i * k + p]!,
      (j, p) => b[j * k + p]!,
    );
    const z = matmulNTWasm(new Float32Array(0), new Float32Array(0), 3, 5, 0, new Float32Array(15).fill(7));
    expect(Array.from(z)).toEqual(new Array(15).fill(0));
  });

  it('every tile configuration of the generator computes the same product', () => {
    const WA = webAssemblyApi()!;
    const configs: KernelConfig[] = [
      { mr: 1, nr: 1, nc: 8 },
      { mr: 2, nr: 2, nc: 64, unroll: 2, sets: 1 },
      { mr: 3, nr: 4, nc: 96, unroll: 2, sets: 2 },
      { mr: 4, nr: 4, nc: 16, unroll: 4, sets: 4 },
      { mr: 4, nr: 2, nc: 2, unroll: 1, sets: 1 },
    ];
    const rng = new Rng(11);
    for (const cfg of configs) {
      const memory = new WA.Memory({ initial: 4 });
      const ex = new WA.Instance(new WA.Module(buildKernelModule(cfg)), { env: { memory } })
        .exports as unknown as KernelExports;
      for (const [m, n, k] of [
        [1, 1, 1],
        [5, 7, 3],
        [9, 13, 37],
        [8, 8, 8],
        [3, 30, 17],
      ] as const) {
        const a = rand(rng, m * k),
          b = rand(rng, n * k);
        const f = new Float32Array(memory.buffer);
        f.set(a, 1024); // above the constant pool
        f.set(b, 4096);
        ex.matmulNT(4096, 4096 * 4, 32768 * 4, m, n, k, k, k, n, 1);
        const c = new Float32Array(memory.buffer, 32768 * 4, m * n).slice();
        expectProduct(
          c,
          m,
          n,
          k,
          (i, p) => a[i * k + p]!,
          (j, p) => b[j * k + p]!,
        );
      }
    }
  });

  it('uses resident copies without changing results, and frees them', () => {
    const rng = new Rng(3);
    const m = 6,
      n = 50,
      k = 33;
    const a = rand(rng, m * k),
      b = rand(rng, n * k);
    const before = matmulNTWasm(a, b, m, n, k);
    const inUse = wasmBytesInUse();
    expect(makeResident(b)).not.toBeNull();
    expect(isResident(b)).toBe(true);
    expect(wasmBytesInUse()).toBeGreaterThan(inUse);
    expect(Array.from(matmulNTWasm(a, b, m, n, k))).toEqual(Array.from(before));
    releaseResident(b);
    expect(isResident(b)).toBe(false);
    expect(wasmBytesInUse()).toBe(inUse);
  });

  it('the plain-JS baseline agrees with the float64 loop', () => {
    const rng = new Rng(5);
    const m = 7,
      n = 10,
      k = 19;
    const a = rand(rng, m * k),
      b = rand(rng, n * k);
    const c = matmulNT(a, b, m, n, k, new Float32Array(m * n)) as Float32Array;
    expectProduct(
      c,
      m,
      n,
      k,
      (i, p) => a[i * k + p]!,
      (j, p) => b[j * k + p]!,
    );
  });

  it('rejects operands of the wrong length before touching memory', () => {
    expect(() => matmulNTWasm(new Float32Array(5), new Float32Array(6), 2, 2, 3)).toThrow(ShapeError);
    expect(() => matmulNNWasm(new Float32Array(6), new Float32Array(6), 2, 2, 3, new Float32Array(3))).toThrow(
      ShapeError,
    );
  });
});

/** Floats whose bit patterns are spread evenly (every `stride`-th pattern) and that lie in [lo, hi]. */
function floatSweep(lo: number, hi: number, stride: number): Float32Array {
  const f = new Float32Array(1),
    u = new Uint32Array(f.buffer);
  const out: number[] = [];
  for (let bits = 0; bits < 0x7f800000; bits += stride) {
    u[0] = bits;
    if (f[0]! >= lo && f[0]! <= hi) out.push(f[0]!);
    u[0] = bits | 0x80000000;
    if (f[0]! >= lo && f[0]! <= hi) out.push(f[0]!);
  }
  return Float32Array.from(out);
}

describe('extension modules (defineWasmExtension)', () => {
  it('share the memory and allocator, get their own constant-pool slot, and are covered by initWasm / wasmReady', async () => {
    const built: number[] = [];
    const ext = defineWasmExtension<{ sumAt(ptr: number, len: number): number; poolConst(): number }>(
      'test-extension',
      (constBase) => {
        built.push(constBase);
        const mod = new ModuleBuilder().importMemory('env', 'memory', 1);
        const K = new ConstPool(constBase);
        const sum = new FunctionBuilder('sumAt', ['i32', 'i32'], ['f32']);
        const [ptr, len] = [sum.param(0), sum.param(1)];
        const i = sum.local('i32'),
          acc = sum.local('f32');
        sum.forLoop(
          i,
          () => sum.i32Const(0),
          () => sum.get(len),
          1,
          () => {
            sum.get(acc).get(ptr).get(i).i32Const(4).i32Mul().i32Add().f32Load().f32Add().set(acc);
          },
        );
        sum.get(acc);
        mod.add(sum);
        const pc = new FunctionBuilder('poolConst', [], ['f32']);
        K.f32(pc, 2.5);
        pc.f32x4ExtractLane(0);
        mod.add(pc);
        mod.data(K.base, K.bytes());
        return mod.emit();
      },
    );
    expect(defineWasmExtension('test-extension', () => new Uint8Array(0))).toMatchObject({ name: 'test-extension' });
    expect(wasmReady()).toBe(false); // registered, not yet compiled
    expect(await initWasm()).toBe(true);
    expect(wasmReady()).toBe(true);
    expect(ext.ready()).toBe(true);
    // one slot above the generic pool, never the generic module's (address 0)
    expect(built).toHaveLength(1);
    expect(built[0]! % CONST_POOL_BYTES).toBe(0);
    expect(built[0]!).toBeGreaterThanOrEqual(CONST_POOL_BYTES);
    const x = new Float32Array([1, 2, 3.5, -4]);
    const buf = makeResident(x)!;
    expect(ext.exports()!.sumAt(buf.ptr, 4)).toBe(2.5);
    expect(ext.exports()!.poolConst()).toBe(2.5);
    releaseResident(x);
    // the generic kernels' own constants are intact after the extension's data segment was written
    expect(Array.from(expWasm(new Float32Array([0, 1])))).toEqual([1, Math.fround(Math.E)]);
  });
});

describe('vector exp', () => {
  it('max relative error < 1.2e-7 (measured 8.2e-8) on [-87.33, 88.72], sweeping the float range', () => {
    const x = floatSweep(-87.33, 88.72, 1009);
    expect(x.length).toBeGreaterThan(1_000_000);
    const y = expWasm(x);
    let worst = 0;
    for (let i = 0; i < x.length; i++) {
      const e = Math.exp(x[i]!);
      worst = Math.max(worst, Math.abs(y[i]! - e) / e);
    }
    expect(worst).toBeLessThan(1.2e-7);
  });

  it('the subnormal range [-104, -87.33] is within one subnormal ulp', () => {
    const x = floatSweep(-104, -87.33, 31);
    const y = expWasm(x);
    let worst = 0;
    for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(y[i]! - Math.exp(x[i]!)));
    expect(worst).toBeLessThanOrEqual(2 ** -149);
  });

  it('edge cases: exact 0 below -103.98, +Inf above 88.72, NaN propagates, exp(0) = 1; ragged lengths, in place', () => {
    const x = Float32Array.of(-Infinity, -1e30, -200, -104, 0, -0, 88.8, 1000, Infinity, NaN, 1);
    const y = expWasm(x);
    expect(Array.from(y.subarray(0, 10))).toEqual([0, 0, 0, 0, 1, 1, Infinity, Infinity, Infinity, NaN]);
    expect(Math.abs(y[10]! - Math.E) / Math.E).toBeLessThan(1.2e-7);
    for (const len of [0, 1, 2, 3, 5, 7]) {
      const v = new Float32Array(len).map((_, i) => i - 2);
      const want = v.map((t) => Math.exp(t));
      expWasm(v, v); // in place
      for (let i = 0; i < len; i++) expect(Math.abs(v[i]! - want[i]!) / want[i]!).toBeLessThan(1.2e-7);
    }
  });
});

describe('vector log', () => {
  it('max relative error < 1.2e-7 (measured 8.0e-8) over all positive floats incl. subnormals', () => {
    const x = floatSweep(1e-45, 3.5e38, 1009);
    const y = logWasm(x);
    let worst = 0;
    for (let i = 0; i < x.length; i++) {
      const e = Math.log(x[i]!);
      if (e !== 0) worst = Math.max(worst, Math.abs(y[i]! - e) / Math.abs(e));
    }
    expect(worst).toBeLessThan(1.2e-7);
  });

  it('edge cases: log 0 = -Inf, log of negatives and NaN = NaN, log Inf = Inf, log 1 = 0', () => {
    const y = logWasm(Float32Array.of(0, -0, -1, -Infinity, NaN, Infinity, 1));
    expect(Array.from(y)).toEqual([-Infinity, -Infinity, NaN, NaN, NaN, Infinity, 0]);
  });

  it('is bit-identical to the TypeScript logf32 on positive normal floats', () => {
    const x = floatSweep(1.2e-38, 3.4e38, 40009);
    const y = logWasm(x);
    for (let i = 0; i < x.length; i++)
      if (y[i] !== logf32(x[i]!)) throw new Error(`log(${x[i]}): wasm ${y[i]} vs TS ${logf32(x[i]!)}`);
    expect(x.length).toBeGreaterThan(50_000);
  });
});
