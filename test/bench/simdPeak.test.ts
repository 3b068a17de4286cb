import { describe, expect, it } from 'vitest';
import { peakFlop, peakModule } from '../../bench/simdPeak.js';
import { webAssemblyApi } from '../../src/tensor/kernels/wasm/emitter.js';
import { relaxedSimdSupported } from '../../src/tensor/kernels/wasm/index.js';

/**
 * The ceiling loop of bench/simdPeak.ts does the work its FLOP count claims:
 * after `iters` iterations every lane of chain k holds the float32 recurrence
 * a ← a·0.999 + 0.001 from a₀ = k / chains, and the result is the sum of the
 * chains' first lanes. (A loop that ran fewer multiply-adds, or that the
 * engine could drop, would overstate the ceiling.)
 */
function expected(iters: number, chains: number, fused: boolean): number {
  const f = Math.fround;
  const m = f(0.999),
    c = f(1e-3);
  let sum = 0;
  for (let k = 0; k < chains; k++) {
    let a = f(k / chains);
    for (let i = 0; i < iters; i++) a = fused ? f(a * m + c) : f(f(a * m) + c);
    sum = f(sum + a);
  }
  return sum;
}

describe('bench/simdPeak: the ceiling loop', () => {
  const api = webAssemblyApi()!;
  const run = (bytes: Uint8Array, iters: number): number =>
    (new api.Instance(new api.Module(bytes), {}).exports['peak'] as (n: number) => number)(iters);

  it('mul + add: iters × chains multiply-adds per lane, each rounded twice', () => {
    for (const chains of [12, 16, 24])
      for (const iters of [0, 1, 7, 1000]) {
        expect(run(peakModule(false, chains), iters)).toBe(expected(iters, chains, false));
        expect(peakFlop(iters, chains)).toBe(iters * chains * 8);
      }
  });

  it('relaxed_madd (where the engine has it): the same recurrence, fused or not', () => {
    if (!relaxedSimdSupported()) {
      // Node 20: the module must not validate (it uses relaxed SIMD), which is what measureSimdPeak checks first.
      expect(api.validate(peakModule(true, 12))).toBe(false);
      return;
    }
    // relaxed_madd may fuse or round twice (the engine's choice); either is the recurrence.
    const got = run(peakModule(true, 16), 1000);
    expect([expected(1000, 16, true), expected(1000, 16, false)]).toContain(got);
  });
});
