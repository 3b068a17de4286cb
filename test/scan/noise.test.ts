import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../../src/tensor/random.js';
import {
  bitsFromSeeds,
  fmix32,
  gumbelAt,
  gumbelFromBits,
  gumbelFromBitsExact,
  gumbelScreen,
  noiseKey,
  rowSeeds,
  uniformAt,
} from '../../src/scan/noise.js';
import { logf32 } from '../../src/tensor/kernels/f32math.js';
import { initWasm } from '../../src/tensor/kernels/wasm/index.js';
import { gumbelRowWasm, noiseBitsWasm } from '../../src/scan/wasm.js';
import { SCAN_EXP_FLUSH, buildScanModule, type ScanKernelExports } from '../../src/scan/wasmKernels.js';
import { webAssemblyApi } from '../../src/tensor/kernels/wasm/emitter.js';
import { CONST_POOL_BYTES } from '../../src/tensor/kernels/wasm/kernels.js';
import { params } from '../util/props.js';

beforeAll(async () => {
  expect(await initWasm()).toBe(true);
});

const K0 = 0x243f6a88,
  K1 = 0x85a308d3; // a fixed key (digits of pi)

/** Pearson chi-square of observed counts against equal expected counts. */
function chiSquareUniform(counts: ArrayLike<number>): number {
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i]!;
  const e = total / counts.length;
  let chi = 0;
  for (let i = 0; i < counts.length; i++) chi += (counts[i]! - e) ** 2 / e;
  return chi;
}
/** A generous upper bound for a chi-square with `df` degrees of freedom (about 5 standard deviations). */
function chiLimit(df: number): number {
  return df + 5 * Math.sqrt(2 * df);
}

describe('counter-based noise bits', () => {
  it('noiseKey draws two uint32 from the generator', () => {
    const rng = new Rng(9);
    const twin = rng.clone();
    const [a, b] = noiseKey(rng);
    expect([a, b]).toEqual([twin.nextUint32(), twin.nextUint32()]);
    expect(rng.nextUint32()).toBe(twin.nextUint32());
  });

  it('fmix32 is a bijection (no collisions on a million inputs) with fmix32(0) = 0', () => {
    expect(fmix32(0)).toBe(0);
    const seen = new Set<number>();
    for (let x = 0; x < 1 << 20; x++) seen.add(fmix32(Math.imul(x, 0x9e3779b1)));
    expect(seen.size).toBe(1 << 20);
  });

  it('uniformAt is a pure function of (key, i, j) and the wasm kernel computes the same bits', () => {
    fc.assert(
      fc.property(
        fc.nat({ max: 0xffffffff }),
        fc.nat({ max: 0xffffffff }),
        fc.nat({ max: 1 << 20 }),
        fc.nat({ max: 1 << 24 }),
        fc.integer({ min: 0, max: 37 }),
        (k0, k1, i, j0, len) => {
          const w = noiseBitsWasm(k0, k1, i, j0, len);
          const [r1, r2] = rowSeeds(k0, k1, i);
          for (let t = 0; t < len; t++) {
            const u = uniformAt(k0, k1, i, j0 + t);
            expect(u).toBe(bitsFromSeeds(r1, r2, j0 + t));
            expect(u).toBeGreaterThanOrEqual(0);
            expect(u).toBeLessThan(2 ** 32);
            expect(w[t]).toBe(u);
          }
        },
      ),
      params(100),
    );
  });

  it('is uniform: chi-square of the high and low bytes over 2^20 counters, and every bit is balanced', () => {
    const hi = new Float64Array(256),
      lo = new Float64Array(256),
      ones = new Float64Array(32);
    let n = 0;
    for (let i = 0; i < 64; i++) {
      const [r1, r2] = rowSeeds(K0, K1, i);
      for (let j = 0; j < 16384; j++) {
        const u = bitsFromSeeds(r1, r2, j);
        hi[u >>> 24]!++;
        lo[u & 0xff]!++;
        for (let bit = 0; bit < 32; bit++) ones[bit]! += (u >>> bit) & 1;
        n++;
      }
    }
    expect(chiSquareUniform(hi)).toBeLessThan(chiLimit(255));
    expect(chiSquareUniform(lo)).toBeLessThan(chiLimit(255));
    for (let bit = 0; bit < 32; bit++) expect(Math.abs(ones[bit]! - n / 2)).toBeLessThan((5 * Math.sqrt(n)) / 2);
  });

  it('neighbouring counters are independent: (j, j+1) and (i, i+1) pair tables, serial correlation', () => {
    const rowPairs = new Float64Array(256),
      colPairs = new Float64Array(256);
    let sxy = 0,
      sx = 0,
      sxx = 0,
      count = 0;
    for (let i = 0; i < 128; i++) {
      for (let j = 0; j < 4096; j++) {
        const a = uniformAt(K0, K1, i, j),
          b = uniformAt(K0, K1, i, j + 1),
          c = uniformAt(K0, K1, i + 1, j);
        rowPairs[((a >>> 28) << 4) | (b >>> 28)]!++;
        colPairs[((a >>> 28) << 4) | (c >>> 28)]!++;
        const x = a / 2 ** 32,
          y = b / 2 ** 32;
        sxy += x * y;
        sx += x;
        sxx += x * x;
        count++;
      }
    }
    expect(chiSquareUniform(rowPairs)).toBeLessThan(chiLimit(255));
    expect(chiSquareUniform(colPairs)).toBeLessThan(chiLimit(255));
    const mean = sx / count,
      varx = sxx / count - mean * mean;
    const corr = (sxy / count - mean * mean) / varx;
    expect(Math.abs(corr)).toBeLessThan(5 / Math.sqrt(count));
  });

  it('nearby keys give unrelated noise', () => {
    let equal = 0,
      sxy = 0;
    const n = 1 << 16;
    for (let j = 0; j < n; j++) {
      const a = uniformAt(K0, K1, 3, j),
        b = uniformAt(K0 + 1, K1, 3, j),
        c = uniformAt(K0, K1 + 1, 3, j);
      if (a === b || a === c) equal++;
      sxy += (a / 2 ** 32 - 0.5) * (b / 2 ** 32 - 0.5);
    }
    expect(equal).toBe(0);
    expect(Math.abs(sxy / n) / (1 / 12)).toBeLessThan(5 / Math.sqrt(n));
  });
});

describe('Gumbel noise', () => {
  it('matches -log(-log1p(-(bits+0.5)/2^32)) within 3e-6 on random and extreme bits', () => {
    const rng = new Rng(1);
    const extremes = [
      0,
      1,
      2,
      3,
      255,
      2 ** 24,
      2 ** 31 - 1,
      2 ** 31,
      2 ** 31 + 1,
      2 ** 32 - 256,
      2 ** 32 - 3,
      2 ** 32 - 2,
      2 ** 32 - 1,
    ];
    let worst = 0;
    const check = (bits: number): void => {
      const g = gumbelFromBits(bits),
        e = gumbelFromBitsExact(bits);
      expect(Number.isFinite(g)).toBe(true);
      worst = Math.max(worst, Math.abs(g - e));
    };
    for (const b of extremes) check(b);
    for (let t = 0; t < 300_000; t++) check(rng.nextUint32());
    expect(worst).toBeLessThan(3e-6);
    expect(gumbelFromBits(0)).toBeCloseTo(-Math.log(0.5 / 2 ** 32), 4); // ≈ 22.87, the largest value
    expect(gumbelFromBits(2 ** 32 - 1)).toBeCloseTo(-Math.log(-Math.log(0.5 / 2 ** 32)), 4); // ≈ -3.10, the smallest
  });

  it('is standard Gumbel: mean γ, variance π²/6, and the CDF exp(-exp(-x)) at several points', () => {
    const n = 1 << 20;
    let s = 0,
      ss = 0;
    const xs = [-1.5, -0.5, 0, 1, 2, 4];
    const below = new Float64Array(xs.length);
    for (let i = 0; i < 64; i++) {
      for (let j = 0; j < n / 64; j++) {
        const g = gumbelAt(K0, K1, i, j);
        s += g;
        ss += g * g;
        for (let q = 0; q < xs.length; q++) if (g <= xs[q]!) below[q]!++;
      }
    }
    const mean = s / n,
      variance = ss / n - mean * mean;
    const sd = Math.PI / Math.sqrt(6);
    expect(Math.abs(mean - 0.5772156649)).toBeLessThan((5 * sd) / Math.sqrt(n));
    expect(Math.abs(variance - sd * sd)).toBeLessThan(5 * sd * sd * Math.sqrt(4.4 / n));
    for (let q = 0; q < xs.length; q++) {
      const p = Math.exp(-Math.exp(-xs[q]!));
      expect(Math.abs(below[q]! / n - p)).toBeLessThan(5 * Math.sqrt((p * (1 - p)) / n));
    }
  });

  it('the wasm kernel computes the same float32 values bit for bit', () => {
    fc.assert(
      fc.property(
        fc.nat({ max: 0xffffffff }),
        fc.nat({ max: 0xffffffff }),
        fc.nat({ max: 1 << 16 }),
        fc.nat({ max: 1 << 24 }),
        fc.integer({ min: 0, max: 300 }),
        (k0, k1, i, j0, len) => {
          const w = gumbelRowWasm(k0, k1, i, j0, len);
          for (let t = 0; t < len; t++) {
            const g = gumbelAt(k0, k1, i, j0 + t);
            if (w[t] !== g) throw new Error(`G(${i}, ${j0 + t}): wasm ${w[t]} vs TS ${g}`);
          }
        },
      ),
      params(60),
    );
  });

  it('logf32 is accurate (relative error < 1.2e-7) on the noise domain', () => {
    const rng = new Rng(2);
    for (let t = 0; t < 100_000; t++) {
      const x = Math.fround(Math.exp(-25 + 30 * rng.uniform()));
      const e = Math.log(x);
      expect(Math.abs(logf32(x) - e)).toBeLessThanOrEqual(1.2e-7 * Math.max(Math.abs(e), 1e-30));
    }
    expect(logf32(1)).toBe(0);
  });

  it('gumbelScreen(t) is conservative: no bits above the threshold give G > t, and it is not loose', () => {
    const rng = new Rng(4);
    for (let t = -2.4; t < 25; t += 0.37) {
      const x = gumbelScreen(t);
      expect(x).toBeGreaterThanOrEqual(0);
      expect(x).toBeLessThanOrEqual(0xffffffff);
      if (x === 0xffffffff) continue;
      // every bits value just above the threshold, and random ones further up
      for (let bits = x + 1; bits <= Math.min(x + 20000, 0xffffffff); bits++) {
        if (gumbelFromBits(bits) > t)
          throw new Error(`t=${t}: bits ${bits} > screen ${x} but G = ${gumbelFromBits(bits)}`);
      }
      for (let q = 0; q < 2000; q++) {
        const bits = x + 1 + Math.floor(rng.uniform() * (0xffffffff - x));
        expect(gumbelFromBits(bits)).toBeLessThanOrEqual(t);
      }
      // tightness: the screen lets through at most the bits with G > t - 0.01, plus its 1e-5 relative margin
      const loose = -Math.expm1(-Math.exp(-(t - 0.01))) * 2 ** 32 * (1 + 2e-5) + 1000;
      expect(x).toBeLessThanOrEqual(loose);
    }
    expect(gumbelScreen(-Infinity)).toBe(0xffffffff);
    expect(gumbelScreen(NaN)).toBe(0xffffffff);
    expect(gumbelScreen(40)).toBeLessThan(1000);
  });
});

describe("the scan's row statistics kernel (exp of non-positive arguments)", () => {
  it('exp(x - max) within 2.5e-7 relative of Math.exp on [-87.33, 0], exactly 0 below (and for -Infinity); the sums', () => {
    const WA = webAssemblyApi()!;
    const memory = new WA.Memory({ initial: 4 });
    const ex = new WA.Instance(new WA.Module(buildScanModule(CONST_POOL_BYTES)), { env: { memory } })
      .exports as unknown as ScanKernelExports;
    const rng = new Rng(3);
    const rows = 64,
      cols = 37,
      ld = 40;
    const f = new Float32Array(memory.buffer);
    const S = 4096,
      E = 16384,
      MX = 32768,
      SM = 33792; // element offsets
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < ld; c++) {
        const u = rng.uniform();
        // arguments spread over [-100, 0] around a row max of 3, some -Infinity (excluded rows), padding -Infinity
        f[S + r * ld + c] =
          c >= cols || u < 0.05 ? -Infinity : Math.fround(3 - (r === 0 ? 0 : 100 * rng.uniform() ** 2));
      }
      f[S + r * ld + (r % cols)] = 3;
    }
    ex.rowStats(S * 4, rows, cols, ld, MX * 4, SM * 4, E * 4);
    let worst = 0;
    for (let r = 0; r < rows; r++) {
      expect(f[MX + r]).toBe(3);
      let sum = 0;
      for (let c = 0; c < ld; c++) {
        const x = Math.fround(f[S + r * ld + c]! - 3); // the kernel subtracts in float32
        const got = f[E + r * ld + c]!;
        sum += got;
        if (x < SCAN_EXP_FLUSH) expect(got).toBe(0);
        else {
          const want = Math.exp(x);
          worst = Math.max(worst, Math.abs(got - want) / want);
        }
      }
      expect(Math.abs(f[SM + r]! - sum) / sum).toBeLessThan(1e-6);
    }
    expect(worst).toBeLessThan(2.5e-7);
    expect(worst).toBeGreaterThan(0); // (it is an approximation: the check compares something)
  });
});
