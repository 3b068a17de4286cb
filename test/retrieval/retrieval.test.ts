/**
 * Retrieval functions and the counter-based noise behind Gumbel-max.
 *
 * Statistical tests are seeded (fixed Rng seeds, so they are deterministic)
 * and use a chi-square goodness-of-fit test at significance 1e-3: the
 * critical value is the Wilson–Hilferty approximation of the chi-square
 * quantile, df·(1 - 2/(9df) + z·sqrt(2/(9df)))³ with z = 3.0902
 * (accurate to well under 1% for df >= 2). Bins whose expected count is
 * below 5 are pooled into one bin first.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ArgumentError,
  DTypeError,
  NonFiniteError,
  Rng,
  ShapeError,
  categoricalRetrievalFn,
  gumbelMaxRetrievalFn,
  maxScoreRetrievalFn,
  tensor,
  type RetrievalFn,
  type Tensor,
} from '../../src/index.js';
import { fmix32, gumbelAt, noiseKey, uniformAt } from '../../src/scan/noise.js';
import { params } from '../util/props.js';

const Z_1E3 = 3.0902;

function chiSquareCritical(df: number): number {
  const a = 2 / (9 * df);
  return df * (1 - a + Z_1E3 * Math.sqrt(a)) ** 3;
}

/** Chi-square statistic of counts against probabilities (sum 1), pooling bins with expected < 5. */
function chiSquare(counts: readonly number[], probs: readonly number[]): { stat: number; df: number } {
  const total = counts.reduce((a, b) => a + b, 0);
  let stat = 0,
    bins = 0,
    poolObs = 0,
    poolExp = 0;
  counts.forEach((c, k) => {
    const e = probs[k]! * total;
    if (e < 5) {
      poolObs += c;
      poolExp += e;
      return;
    }
    stat += (c - e) ** 2 / e;
    bins++;
  });
  if (poolExp > 0) {
    stat += (poolObs - poolExp) ** 2 / Math.max(poolExp, 1e-300);
    bins++;
  }
  return { stat, df: bins - 1 };
}

function expectFits(counts: readonly number[], probs: readonly number[], label: string): void {
  const { stat, df } = chiSquare(counts, probs);
  if (df === 0) return; // one bin: nothing to test
  const crit = chiSquareCritical(df);
  expect(
    stat,
    `${label}: chi-square ${stat.toFixed(2)} with df ${df} exceeds ${crit.toFixed(2)}; counts ${counts.join(',')}`,
  ).toBeLessThan(crit);
}

function softmaxRow(row: readonly number[], invTemp: number): number[] {
  const finite = row.map((s) => s !== -Infinity);
  const m = Math.max(...row.filter((_, j) => finite[j]).map((s) => invTemp * s));
  const e = row.map((s, j) => (finite[j] ? Math.exp(invTemp * s - m) : 0));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z);
}

const ROWS = [
  [0.3, -Infinity, 1.2, -0.7, 0.0, -Infinity, 2.0, -1.5],
  [-Infinity, -Infinity, 0.5, -Infinity, -Infinity, -Infinity, -Infinity, -Infinity], // one candidate: always drawn
  [1, 1, 1, 1, 1, 1, 1, 1], // all equal: uniform
];

/** N copies of ROWS stacked: [N * ROWS.length, 8]; returns counts per row pattern. */
function sampleCounts(fn: RetrievalFn, reps: number): number[][] {
  const n = ROWS[0]!.length;
  const data = new Float64Array(reps * ROWS.length * n);
  for (let r = 0; r < reps; r++) ROWS.forEach((row, k) => data.set(row, (r * ROWS.length + k) * n));
  const idx = fn(tensor(data, 'float64', [reps * ROWS.length, n]));
  expect(idx.shape).toEqual([reps * ROWS.length, 1]);
  expect(idx.dtype).toBe('int32');
  const out = idx.dataSync() as Int32Array;
  const counts = ROWS.map(() => new Array<number>(n).fill(0));
  for (let i = 0; i < out.length; i++) counts[i % ROWS.length]![out[i]!]!++;
  return counts;
}

const SAMPLERS: { name: string; make: (rng: Rng, invTemp: number) => RetrievalFn }[] = [
  { name: 'gumbelMaxRetrievalFn', make: (rng, invTemp) => gumbelMaxRetrievalFn({ rng, invTemp }) },
  { name: 'categoricalRetrievalFn', make: (rng, invTemp) => categoricalRetrievalFn({ rng, invTemp }) },
];

describe.each(SAMPLERS)('$name', ({ name, make }) => {
  it.each([0, 0.5, 1, 3])(
    'frequencies match softmax(invTemp · scores), invTemp = %s (chi-square, seed 11, 12000 draws per row)',
    (invTemp) => {
      const counts = sampleCounts(make(new Rng(11), invTemp), 12000);
      ROWS.forEach((row, k) => {
        const p = softmaxRow(row, invTemp);
        row.forEach((s, j) => {
          if (s === -Infinity) expect(counts[k]![j], `${name}: row ${k} sampled the -Infinity column ${j}`).toBe(0);
        });
        expectFits(counts[k]!, p, `${name} invTemp ${invTemp} row ${k}`);
      });
    },
  );

  it('defaults to invTemp = 1 and draws from the given generator (same seed, same indices)', () => {
    const a = sampleCounts(make(new Rng(5), 1), 300);
    const b = sampleCounts(
      name === 'gumbelMaxRetrievalFn'
        ? gumbelMaxRetrievalFn({ rng: new Rng(5) })
        : categoricalRetrievalFn({ rng: new Rng(5) }),
      300,
    );
    expect(a).toEqual(b);
  });

  it('returns 0 for rows with no finite score, and never an excluded index (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5 }).chain((n) =>
          fc.array(
            fc.array(fc.oneof(fc.constant(-Infinity), fc.double({ min: -5, max: 5, noNaN: true })), {
              minLength: n,
              maxLength: n,
            }),
            { minLength: 1, maxLength: 6 },
          ),
        ),
        fc.integer({ min: 0, max: 1000 }),
        (rows, seed) => {
          const n = rows[0]!.length;
          const out = make(new Rng(seed), 1)(tensor(rows.flat(), 'float64', [rows.length, n])).dataSync() as Int32Array;
          rows.forEach((row, i) => {
            if (row.every((s) => s === -Infinity)) expect(out[i]).toBe(0);
            else expect(row[out[i]!]).not.toBe(-Infinity);
          });
        },
      ),
      params(100),
    );
  });

  it('rejects NaN and +Infinity scores with NonFiniteError naming the entry', () => {
    const fn = make(new Rng(0), 1);
    const op = name === 'gumbelMaxRetrievalFn' ? 'gumbelMaxRetrieval' : 'categoricalRetrieval';
    expect(() =>
      fn(
        tensor([
          [0, 1, 2],
          [0, NaN, 1],
        ]),
      ),
    ).toThrow(NonFiniteError);
    expect(() =>
      fn(
        tensor([
          [0, 1, 2],
          [0, NaN, 1],
        ]),
      ),
    ).toThrow(`${op}: scores[1, 1] is NaN`);
    expect(() => fn(tensor([[Infinity, 1]]))).toThrow(`${op}: scores[0, 0] is Infinity`);
  });

  it('validates its arguments', () => {
    expect(() => make(undefined as unknown as Rng, 1)).toThrow(ArgumentError);
    expect(() => make(new Rng(0), -1)).toThrow(/invTemp must be a finite number >= 0, got -1/);
    expect(() => make(new Rng(0), NaN)).toThrow(ArgumentError);
    const fn = make(new Rng(0), 1);
    expect(() => fn(tensor([1, 2]))).toThrow(ShapeError);
    expect(() => fn(tensor([[1, 2]], 'int32'))).toThrow(DTypeError);
    expect(() => fn(tensor(new Float32Array(0), 'float32', [2, 0]))).toThrow(ShapeError);
  });
});

describe('maxScoreRetrievalFn', () => {
  it('picks the first arg-max of each row (property with many ties and -Infinity)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 7 }).chain((n) =>
          fc.array(fc.array(fc.constantFrom(-Infinity, -1, 0, 0.5, 2), { minLength: n, maxLength: n }), {
            minLength: 1,
            maxLength: 6,
          }),
        ),
        (rows) => {
          const n = rows[0]!.length;
          const out = Array.from(
            maxScoreRetrievalFn()(tensor(rows.flat(), 'float32', [rows.length, n])).dataSync() as Int32Array,
          );
          const want = rows.map((row) => {
            const m = Math.max(...row);
            return m === -Infinity ? 0 : row.indexOf(m);
          });
          expect(out).toEqual(want);
        },
      ),
      params(200),
    );
  });

  it('rejects NaN / +Infinity', () => {
    expect(() => maxScoreRetrievalFn()(tensor([[1, NaN]]))).toThrow('maxScoreRetrieval: scores[0, 1] is NaN');
    expect(() => maxScoreRetrievalFn()(tensor([[Infinity, 1]]))).toThrow(NonFiniteError);
  });
});

describe('counter-based noise (noise.ts)', () => {
  const KEYS = [[0, 0], [0x12345678, 0x9abcdef0], noiseKey(new Rng(3)), noiseKey(new Rng(4))] as const;

  it('U(key, i, j) is uniform: top 4 bits and low 4 bits, 256 x 256 counters per key (chi-square, df 15)', () => {
    for (const [k0, k1] of KEYS) {
      const hi = new Array<number>(16).fill(0),
        lo = new Array<number>(16).fill(0);
      let badBits = 0;
      for (let i = 0; i < 256; i++) {
        for (let j = 0; j < 256; j++) {
          const bits = uniformAt(k0, k1, i, j);
          if (!(bits >= 0 && bits < 2 ** 32 && Number.isInteger(bits))) badBits++;
          hi[Math.floor(((bits + 0.5) / 2 ** 32) * 16)]!++;
          lo[bits & 15]!++;
        }
      }
      expect(badBits, 'values outside the uint32 range').toBe(0);
      expectFits(hi, new Array(16).fill(1 / 16), `top bits, key ${k0},${k1}`);
      expectFits(lo, new Array(16).fill(1 / 16), `low bits, key ${k0},${k1}`);
    }
  });

  it('neighbouring counters are independent: pairs (i, j)/(i, j+1) and (i, j)/(i+1, j) over a 4 x 4 grid (chi-square, df 15)', () => {
    for (const [k0, k1] of KEYS) {
      const alongJ = new Array<number>(16).fill(0),
        alongI = new Array<number>(16).fill(0);
      const q = (b: number): number => Math.floor(((b + 0.5) / 2 ** 32) * 4);
      for (let i = 0; i < 128; i++) {
        for (let j = 0; j < 128; j++) {
          const u = q(uniformAt(k0, k1, i, j));
          alongJ[u * 4 + q(uniformAt(k0, k1, i, j + 1))]!++;
          alongI[u * 4 + q(uniformAt(k0, k1, i + 1, j))]!++;
        }
      }
      expectFits(alongJ, new Array(16).fill(1 / 16), `pairs along j, key ${k0},${k1}`);
      expectFits(alongI, new Array(16).fill(1 / 16), `pairs along i, key ${k0},${k1}`);
    }
  });

  it('different keys give unrelated noise; Gumbel noise has mean γ and variance π²/6 (65536 draws, tolerance 6σ)', () => {
    let same = 0;
    let s = 0,
      s2 = 0,
      nonFinite = 0;
    const N = 256 * 256;
    for (let i = 0; i < 256; i++) {
      for (let j = 0; j < 256; j++) {
        if (uniformAt(1, 2, i, j) === uniformAt(1, 3, i, j)) same++;
        const g = gumbelAt(7, 9, i, j);
        if (!Number.isFinite(g)) nonFinite++;
        s += g;
        s2 += g * g;
      }
    }
    expect(nonFinite).toBe(0);
    expect(same).toBeLessThan(3);
    const mean = s / N,
      variance = s2 / N - mean * mean;
    // sd of the mean: sqrt(π²/6 / N) = 0.005; sd of the variance estimate: sqrt((μ4 - σ⁴)/N) with μ4 = 14.6 → 0.0135
    expect(Math.abs(mean - 0.5772156649)).toBeLessThan(0.03);
    expect(Math.abs(variance - Math.PI ** 2 / 6)).toBeLessThan(0.081);
    expect(fmix32(0)).toBe(0);
  });

  it('gumbelMaxRetrievalFn depends only on the key: it is argmax_j(invTemp·s_ij + gumbelAt(key, i, j)) with the key drawn from the rng', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 0, max: 2 ** 31 }),
        fc.constantFrom(0.5, 1, 4),
        fc.integer({ min: 0, max: 2 ** 31 }),
        (b, n, seed, invTemp, dataSeed) => {
          const r = new Rng(dataSeed);
          const scores = Array.from({ length: b * n }, () => (r.uniform() < 0.15 ? -Infinity : r.normal()));
          const t = tensor(scores, 'float64', [b, n]);
          const rng = new Rng(seed);
          const twin = rng.clone();
          const other = new Rng(seed); // a different object in the same state
          const got = Array.from(gumbelMaxRetrievalFn({ rng, invTemp })(t).dataSync() as Int32Array);
          expect(Array.from(gumbelMaxRetrievalFn({ rng: other, invTemp })(t).dataSync() as Int32Array)).toEqual(got);
          const [k0, k1] = noiseKey(twin); // exactly the two draws the call made
          expect(rng.getState()).toEqual(twin.getState());
          const want = [];
          for (let i = 0; i < b; i++) {
            let best = -Infinity,
              arg = 0;
            for (let j = 0; j < n; j++) {
              const s = scores[i * n + j]!;
              if (s === -Infinity) continue;
              const v = invTemp * s + gumbelAt(k0, k1, i, j);
              if (v > best) {
                best = v;
                arg = j;
              }
            }
            want.push(arg);
          }
          expect(got).toEqual(want);
          // a row's draw does not depend on the rows after it (same key, prefix of the batch)
          const prefix = Array.from(
            gumbelMaxRetrievalFn({ rng: new Rng(seed), invTemp })(
              tensor(scores.slice(0, n), 'float64', [1, n]),
            ).dataSync() as Int32Array,
          );
          expect(prefix).toEqual(got.slice(0, 1));
          // float32 scores equal to the float64 ones give the same draws
          const f32 = tensor(Float32Array.from(scores), 'float32', [b, n]);
          const t32 = tensor(Array.from(Float32Array.from(scores)), 'float64', [b, n]);
          expect(
            Array.from(gumbelMaxRetrievalFn({ rng: new Rng(seed), invTemp })(f32).dataSync() as Int32Array),
          ).toEqual(Array.from(gumbelMaxRetrievalFn({ rng: new Rng(seed), invTemp })(t32).dataSync() as Int32Array));
        },
      ),
      params(100),
    );
  });

  it('successive calls use fresh keys (the same uniform row gives different draws)', () => {
    const fn = gumbelMaxRetrievalFn({ rng: new Rng(1) });
    const t: Tensor = tensor(new Float64Array(64 * 16), 'float64', [64, 16]);
    const a = Array.from(fn(t).dataSync() as Int32Array);
    const b = Array.from(fn(t).dataSync() as Int32Array);
    expect(a).not.toEqual(b);
  });
});

describe('gumbelMaxRetrievalFn with injected noise', () => {
  it('with the noise the seeded path would draw, it picks what the seeded path picks (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 7 }),
        fc.integer({ min: 0, max: 2 ** 31 }),
        fc.constantFrom(0, 0.5, 1, 4),
        fc.integer({ min: 0, max: 2 ** 31 }),
        (b, n, seed, invTemp, dataSeed) => {
          const r = new Rng(dataSeed);
          const scores = Array.from({ length: b * n }, () => (r.uniform() < 0.2 ? -Infinity : r.normal()));
          const t = tensor(scores, 'float32', [b, n]);
          const seeded = Array.from(gumbelMaxRetrievalFn({ rng: new Rng(seed), invTemp })(t).dataSync());
          const [k0, k1] = noiseKey(new Rng(seed));
          const shapes: number[][] = [];
          const noise = (shape: readonly [number, number]): Tensor => {
            shapes.push(shape.slice());
            const g = new Float64Array(b * n);
            for (let i = 0; i < b; i++) for (let j = 0; j < n; j++) g[i * n + j] = gumbelAt(k0, k1, i, j);
            return tensor(g, 'float64', [b, n]);
          };
          const injected = Array.from(gumbelMaxRetrievalFn({ noise, invTemp })(t).dataSync());
          expect(injected).toEqual(seeded);
          expect(shapes).toEqual([[b, n]]);
        },
      ),
      params(100),
    );
  });

  it('is argmax_j(invTemp·s_ij + G_ij), first on ties, skipping -Infinity whatever its noise', () => {
    const scores = tensor([
      [1, -Infinity, 0],
      [0, 0, 0],
      [-Infinity, -Infinity, -Infinity],
      [2, 1, 0],
    ]);
    const g = tensor([
      [0, 100, 0.5],
      [0.25, 0.25, 0.25],
      [1, 2, 3],
      [-1, 0.5, 3.5],
    ]);
    const pick = (invTemp: number): number[] =>
      Array.from(gumbelMaxRetrievalFn({ noise: () => g, invTemp })(scores).dataSync());
    // invTemp 1: row 0: [1, skip, 0.5] -> 0; row 1: tie -> 0; row 2: nothing finite -> 0; row 3: [1, 1.5, 3.5] -> 2
    expect(pick(1)).toEqual([0, 0, 0, 2]);
    // invTemp 0: the noise alone decides (row 0 still skips the -Infinity column)
    expect(pick(0)).toEqual([2, 0, 0, 2]);
    // invTemp 4: row 3: [7, 4.5, 3.5] -> 0
    expect(pick(4)).toEqual([0, 0, 0, 0]);
  });

  it('a uniform source U gives the reference noise through G = -log(-log U)', () => {
    const u = [
      [0.1, 0.9, 0.5],
      [0.99, 0.01, 0.5],
    ];
    const noise = (): Tensor =>
      tensor(
        u.map((row) => row.map((x) => -Math.log(-Math.log(x)))),
        'float64',
      );
    // G = [[-0.834, 2.250, 0.367], [4.600, -1.527, 0.367]]; scores add [0, 0, 2] -> [[-0.834, 2.250, 2.367], [4.600, -1.527, 2.367]]
    expect(
      Array.from(
        gumbelMaxRetrievalFn({ noise })(
          tensor([
            [0, 0, 2],
            [0, 0, 2],
          ]),
        ).dataSync(),
      ),
    ).toEqual([2, 0]);
  });

  it('validates the noise and the options', () => {
    const scores = tensor([[0, 1]]);
    expect(() => gumbelMaxRetrievalFn({ noise: () => tensor([[0, 1]]), rng: new Rng(0) })).toThrow(
      'gumbelMaxRetrieval: give rng or noise, not both',
    );
    expect(() => gumbelMaxRetrievalFn({ noise: 3 as unknown as () => Tensor })).toThrow(ArgumentError);
    expect(() => gumbelMaxRetrievalFn({ rng: new Rng(0), temp: 1 } as never)).toThrow(
      'gumbelMaxRetrieval: unknown option "temp"',
    );
    expect(() => gumbelMaxRetrievalFn({ noise: () => tensor([[0, 1]]), invTemp: -1 })).toThrow(ArgumentError);
    expect(() => gumbelMaxRetrievalFn({ noise: () => tensor([0, 1]) })(scores)).toThrow(ShapeError);
    expect(() => gumbelMaxRetrievalFn({ noise: () => tensor([[0, 1, 2]]) })(scores)).toThrow(
      "noise must return float Gumbel noise of the scores' shape [1, 2]",
    );
    expect(() => gumbelMaxRetrievalFn({ noise: () => tensor([[0, 1]], 'int32') })(scores)).toThrow(ShapeError);
    expect(() => gumbelMaxRetrievalFn({ noise: () => tensor([[0, Infinity]]) })(scores)).toThrow(
      'gumbelMaxRetrieval: noise[0, 1] is Infinity',
    );
    expect(() => gumbelMaxRetrievalFn({ noise: () => tensor([[NaN, 0]]) })(scores)).toThrow(NonFiniteError);
    // the scores are checked first, as on the seeded path
    expect(() => gumbelMaxRetrievalFn({ noise: () => tensor([[0, 0]]) })(tensor([[NaN, 0]]))).toThrow(
      'gumbelMaxRetrieval: scores[0, 0] is NaN',
    );
  });
});
