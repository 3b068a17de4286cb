/**
 * Shared pieces of the exact-enumeration tests of the cache loss
 * (cacheClassificationLoss.unbiased.test.ts, .estimators.test.ts): small
 * float64 scenarios (query tower, positives, a linear or 2-layer doc
 * network), the candidate logits a sampler sees, and the gradient comparison.
 */
import fc from 'fast-check';
import { expect } from 'vitest';
import {
  Rng,
  matmul,
  mul,
  normal,
  scaleTransform,
  tanh,
  tensor,
  type NegativeCache,
  type ScoreTransform,
  type Tensor,
} from '../../src/index.js';

export const RTOL = 1e-9;
export const ATOL = 1e-12;

export interface Transform {
  name: string;
  lib: ScoreTransform | undefined;
  num: (s: number) => number;
}

export const TRANSFORMS: Transform[] = [
  { name: 'identity', lib: undefined, num: (s) => s },
  { name: 'scaleTransform(2.5)', lib: scaleTransform(2.5), num: (s) => 2.5 * s },
  { name: '3·tanh(s)', lib: (s: Tensor) => mul(tanh(s), 3), num: (s) => 3 * Math.tanh(s) },
];

export type DocKind = 'linear' | '2-layer';

export interface Params {
  wq: Tensor;
  pos: Tensor;
  w1: Tensor;
  w2?: Tensor;
}

export interface Scenario {
  b: number;
  n: number;
  d: number;
  transform: Transform;
  docKind: DocKind;
  topK?: number;
  /** maskEmptySlots with this valid vector (undefined: no valid flags at all). */
  valid?: boolean[];
  maskEmptySlots: boolean;
  /** falseNegativeKey 'id' with these cache ids and positive ids. */
  ids?: { cache: number[]; pos: number[] };
  seed: number;
}

const FQ = 3; // query feature width
const FD = 2; // document feature width
const H = 3; // hidden width of the 2-layer doc network

export function setup(sc: Scenario) {
  const rng = new Rng(sc.seed);
  const f64 = { dtype: 'float64' as const };
  const xq = normal([sc.b, FQ], rng, f64);
  const xc = normal([sc.n, FD], rng, f64);
  const p: Params = {
    wq: normal([FQ, sc.d], rng, { ...f64, std: 0.8 }),
    pos: normal([sc.b, sc.d], rng, f64),
    w1: sc.docKind === 'linear' ? normal([FD, sc.d], rng, f64) : normal([FD, H], rng, f64),
    ...(sc.docKind === '2-layer' ? { w2: normal([H, sc.d], rng, { ...f64, std: 0.7 }) } : {}),
  };
  const queryTower = (q: Params): Tensor => tanh(matmul(xq, q.wq));
  const docNet =
    (q: Params) =>
    (features: Record<string, Tensor>): Tensor => {
      const x = features.feat!;
      return q.w2 ? matmul(tanh(matmul(x, q.w1)), q.w2) : matmul(x, q.w1);
    };
  return { xq, xc, p, queryTower, docNet };
}

export const rows = (t: Tensor): number[][] => t.toArray() as number[][];

/**
 * Per query: the candidate logits the sampler sees (-Infinity where excluded)
 * and each candidate's column in the cache. Plain float64 from the tower outputs.
 */
export function candidates(sc: Scenario, qv: number[][], cv: number[][]): { logits: number[][]; cols: number[][] } {
  const logits: number[][] = [],
    cols: number[][] = [];
  for (let i = 0; i < sc.b; i++) {
    const s = cv.map((c, j) => {
      const excluded =
        (sc.maskEmptySlots && sc.valid !== undefined && !sc.valid[j]) ||
        (sc.ids !== undefined && sc.ids.cache[j] === sc.ids.pos[i]);
      return excluded ? -Infinity : sc.transform.num(c.reduce((acc, v, k) => acc + v * qv[i]![k]!, 0));
    });
    if (sc.topK === undefined) {
      logits.push(s);
      cols.push(s.map((_, j) => j));
    } else {
      const g = sc.n / sc.topK;
      const l: number[] = [],
        c: number[] = [];
      for (let grp = 0; grp < sc.topK; grp++) {
        let best = grp * g;
        for (let j = grp * g + 1; j < (grp + 1) * g; j++) if (s[j]! > s[best]!) best = j;
        l.push(s[best]!);
        c.push(best);
      }
      logits.push(l);
      cols.push(c);
    }
  }
  return { logits, cols };
}

export function softmaxRow(l: readonly number[]): number[] {
  const m = Math.max(...l);
  if (m === -Infinity) return l.map(() => 0); // no negative: the loss is 0 whatever is injected
  const e = l.map((v) => Math.exp(v - m));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z);
}

export function makeCache(sc: Scenario, emb: Tensor, xc: Tensor): NegativeCache {
  return {
    data: {
      emb,
      feat: xc,
      ...(sc.ids ? { id: tensor(sc.ids.cache, 'int32', [sc.n]) } : {}),
    },
    age: tensor(new Array<number>(sc.n).fill(0), 'int32', [sc.n]),
    ...(sc.valid
      ? {
          valid: tensor(
            sc.valid.map((v) => (v ? 1 : 0)),
            'bool',
            [sc.n],
          ),
        }
      : {}),
  };
}

export function expectGradsClose(lib: Record<string, Tensor>, ref: Record<string, Tensor>, label: string): void {
  expect(Object.keys(lib).sort()).toEqual(Object.keys(ref).sort());
  for (const k of Object.keys(ref)) {
    const a = Array.from(lib[k]!.dataSync() as Float64Array);
    const r = Array.from(ref[k]!.dataSync() as Float64Array);
    expect(lib[k]!.dtype).toBe('float64');
    expect(a.length).toBe(r.length);
    const scale = Math.max(...r.map(Math.abs));
    r.forEach((want, e) => {
      const err = Math.abs(a[e]! - want);
      if (!(err <= RTOL * scale + ATOL)) {
        throw new Error(
          `${label}: d/d${k}[${e}] = ${a[e]} (expected gradient of trainingLoss) vs ${want} (full softmax); |diff| ${err.toExponential(2)} > ${RTOL}·${scale.toExponential(2)} + ${ATOL}`,
        );
      }
    });
  }
}

export const label = (sc: Scenario): string =>
  `b=${sc.b} n=${sc.n} d=${sc.d} T=${sc.transform.name} doc=${sc.docKind} topK=${sc.topK} mask=${sc.maskEmptySlots} valid=${sc.valid?.map(Number).join('')} ids=${JSON.stringify(sc.ids)} seed=${sc.seed}`;

/** Scenario generator; `features` selects topK and masking. */
export function scenarioArb(features: { topK: boolean; mask: boolean }): fc.Arbitrary<Scenario> {
  return fc
    .record({
      b: fc.integer({ min: 1, max: 4 }),
      n: fc.integer({ min: 2, max: 8 }),
      d: fc.integer({ min: 1, max: 4 }),
      transform: fc.constantFrom(...TRANSFORMS),
      docKind: fc.constantFrom<DocKind>('linear', '2-layer'),
      seed: fc.integer({ min: 0, max: 2 ** 30 }),
    })
    .chain((base) => {
      const divisors = Array.from({ length: base.n }, (_, i) => i + 1).filter((k) => base.n % k === 0);
      return fc
        .record({
          topK: features.topK ? fc.constantFrom(...divisors) : fc.constant(undefined),
          maskEmptySlots: features.mask ? fc.boolean() : fc.constant(true),
          valid: features.mask
            ? fc.option(fc.array(fc.boolean(), { minLength: base.n, maxLength: base.n }), { nil: undefined })
            : fc.constant(undefined),
          ids: features.mask
            ? fc.option(
                fc.record({
                  cache: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: base.n, maxLength: base.n }),
                  pos: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: base.b, maxLength: base.b }),
                }),
                { nil: undefined },
              )
            : fc.constant(undefined),
        })
        .map((extra) => {
          const sc: Scenario = { ...base, maskEmptySlots: extra.maskEmptySlots };
          if (extra.topK !== undefined) sc.topK = extra.topK;
          if (extra.valid !== undefined) sc.valid = extra.valid;
          if (extra.ids !== undefined) sc.ids = extra.ids;
          return sc;
        });
    });
}
