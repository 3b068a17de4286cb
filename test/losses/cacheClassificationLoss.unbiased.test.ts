/**
 * The paper's central claim, checked exactly: with fresh cache embeddings
 * (cached embedding of every slot = docNetwork(features of that slot)),
 *
 *   E_j[∇ trainingLoss] = ∇ (full cache-softmax cross-entropy),
 *
 * where the expectation over the sampled index is computed by enumeration,
 * not by sampling: with reducer 'none' and a retrievalFn that returns the
 * injected candidate c for every query,
 *
 *   E[∇ mean_i loss_i] = (1/b) Σ_i Σ_c P_ic ∇ loss_i(c),
 *
 * P_ic = softmax over query i's candidate scores (computed here in plain
 * float64 from the tower outputs). The reference is a hand-written full
 * softmax loss, (1/b) Σ_i [logSumExp([s⁺_i, s_ij for allowed j]) - s⁺_i],
 * differentiated by autodiff with the cache embeddings computed as
 * docNetwork(features) WITH gradient (the library's interpretableLoss is a
 * constant and is not used for the gradient).
 *
 * Gradients are taken with respect to the query-tower weights, the positive
 * embeddings and the document-network weights (linear, or 2-layer tanh),
 * under three score transforms (identity, scaleTransform(2.5), 3·tanh(s)),
 * with topK (reference: full softmax over [s⁺, the k group maxima]) and with
 * masking (maskEmptySlots with invalid slots; falseNegativeKey with ids; the
 * reference then leaves the masked rows out).
 *
 * Everything runs in float64. Tolerance: per gradient tensor,
 * |lib - ref| <= 1e-9·||ref||∞ + 1e-12 elementwise (the two sides differ
 * only by float64 rounding, ~1e-15 relative; 1e-9 leaves ample headroom but
 * fails on any real bias, see the stale-cache control at the end).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CacheClassificationLoss,
  Rng,
  add,
  concat,
  div,
  gather,
  grad,
  logSumExp,
  matmul,
  mul,
  normal,
  reshape,
  scaleTransform,
  stopGradient,
  sub,
  sum,
  tanh,
  tensor,
  type NegativeCache,
  type ScoreTransform,
  type Tensor,
} from '../../src/index.js';
import { params } from '../util/props.js';

const RTOL = 1e-9;
const ATOL = 1e-12;

interface Transform {
  name: string;
  lib: ScoreTransform | undefined;
  num: (s: number) => number;
}

const TRANSFORMS: Transform[] = [
  { name: 'identity', lib: undefined, num: (s) => s },
  { name: 'scaleTransform(2.5)', lib: scaleTransform(2.5), num: (s) => 2.5 * s },
  { name: '3·tanh(s)', lib: (s: Tensor) => mul(tanh(s), 3), num: (s) => 3 * Math.tanh(s) },
];

type DocKind = 'linear' | '2-layer';

interface Params {
  wq: Tensor;
  pos: Tensor;
  w1: Tensor;
  w2?: Tensor;
}

interface Scenario {
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

function setup(sc: Scenario) {
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

const rows = (t: Tensor): number[][] => t.toArray() as number[][];

/**
 * Per query: the candidate logits the sampler sees (-Infinity where excluded)
 * and each candidate's column in the cache. Plain float64 from the tower outputs.
 */
function candidates(sc: Scenario, qv: number[][], cv: number[][]): { logits: number[][]; cols: number[][] } {
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

function softmaxRow(l: readonly number[]): number[] {
  const m = Math.max(...l);
  if (m === -Infinity) return l.map(() => 0); // no negative: the loss is 0 whatever is injected
  const e = l.map((v) => Math.exp(v - m));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z);
}

function makeCache(sc: Scenario, emb: Tensor, xc: Tensor): NegativeCache {
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

/** Runs one scenario; returns the library and reference gradients (and asserts the side facts). */
function compare(
  sc: Scenario,
  opts: { stale?: number } = {},
): { lib: Record<string, Tensor>; ref: Record<string, Tensor> } {
  const { xc, p, queryTower, docNet } = setup(sc);
  const qv = rows(queryTower(p));
  const freshCv = docNet(p)({ feat: xc });
  // A stale cache (negative control only): embeddings perturbed by `stale`.
  const staleShift = opts.stale
    ? normal([sc.n, sc.d], new Rng(sc.seed + 1), { dtype: 'float64', std: opts.stale })
    : null;
  const cv = rows(staleShift ? add(freshCv, staleShift) : freshCv);
  const { logits, cols } = candidates(sc, qv, cv);
  const width = logits[0]!.length;
  const P = logits.map(softmaxRow);

  let injected = 0;
  const seenScores: number[][][] = [];
  const loss = new CacheClassificationLoss({
    embeddingKey: 'emb',
    dataKeys: ['feat'],
    reducer: 'none',
    maskEmptySlots: sc.maskEmptySlots,
    ...(sc.transform.lib ? { scoreTransform: sc.transform.lib } : {}),
    ...(sc.topK !== undefined ? { topK: sc.topK } : {}),
    ...(sc.ids ? { falseNegativeKey: 'id' } : {}),
    retrievalFn: (scores) => {
      seenScores.push(scores.toArray() as number[][]);
      return tensor(new Array<number>(sc.b).fill(injected), 'int32', [sc.b, 1]);
    },
  });
  const callOpts = sc.ids ? { positiveIds: tensor(sc.ids.pos, 'int32', [sc.b]) } : {};

  // E[∇ mean_i loss_i] by enumeration of the injected candidate.
  let interpretable: number[] = [];
  const expected = (q: Params): Tensor => {
    const doc = docNet(q);
    const emb = stopGradient(staleShift ? add(doc({ feat: xc }), staleShift) : doc({ feat: xc }));
    const cache = { only: makeCache(sc, emb, xc) };
    let total: Tensor = tensor(0, 'float64');
    for (let c = 0; c < width; c++) {
      injected = c;
      const out = loss.call(doc, queryTower(q), q.pos, cache, callOpts);
      expect(out.trainingLoss.shape).toEqual([sc.b]);
      const w = tensor(
        P.map((row) => row[c]!),
        'float64',
        [sc.b],
      );
      total = add(total, sum(mul(out.trainingLoss, w)));
      interpretable = Array.from(out.interpretableLoss.dataSync() as Float64Array);
      expect(Array.from(out.hasNegative.dataSync() as Uint8Array)).toEqual(
        logits.map((l) => (l.some((v) => v !== -Infinity) ? 1 : 0)),
      );
      const idx = Array.from(out.retrievedIndices.dataSync() as Int32Array);
      expect(idx).toEqual(cols.map((cc) => cc[c]!));
    }
    return div(total, sc.b);
  };

  // The hand-written full softmax loss over the allowed rows, cache embeddings WITH gradient.
  let fullValue = 0;
  const full = (q: Params): Tensor => {
    const T = (s: Tensor): Tensor => (sc.transform.lib ? sc.transform.lib(s) : s);
    const qe = queryTower(q);
    const emb = docNet(q)({ feat: xc }); // always the fresh embeddings: the true objective
    const sPos = T(sum(mul(qe, q.pos), { axis: 1 })); // [b]
    const S = reshape(T(matmul(qe, emb, { transposeB: true })), [sc.b * sc.n]);
    let total: Tensor = tensor(0, 'float64');
    for (let i = 0; i < sc.b; i++) {
      const allowed = cols[i]!.filter((_, c) => logits[i]![c] !== -Infinity);
      if (allowed.length === 0) continue; // -log softmax([s⁺])₀ = 0
      const pos = gather(sPos, tensor([i], 'int32'));
      const neg = gather(
        S,
        tensor(
          allowed.map((j) => i * sc.n + j),
          'int32',
        ),
      );
      total = add(total, sub(logSumExp(concat([pos, neg])), reshape(pos, [])));
    }
    const out = div(total, sc.b);
    fullValue = Number(stopGradient(out).item());
    return out;
  };

  const lib = grad(expected)(p) as Record<string, Tensor>;
  const ref = grad(full)(p) as Record<string, Tensor>;

  // The retrieval function saw exactly the logits P was computed from (so a
  // sampler that draws from softmax(its input) makes the estimate unbiased).
  for (const s of seenScores) {
    s.forEach((row, i) =>
      row.forEach((v, c) => {
        const want = logits[i]![c]!;
        if (want === -Infinity) expect(v).toBe(-Infinity);
        else expect(Math.abs(v - want)).toBeLessThanOrEqual(1e-12 * Math.max(1, Math.abs(want)));
      }),
    );
  }
  // With a fresh cache the (constant) interpretable loss is the full softmax loss's value.
  if (!opts.stale) {
    const mean = interpretable.reduce((a, v) => a + v, 0) / sc.b;
    expect(Math.abs(mean - fullValue)).toBeLessThanOrEqual(RTOL * Math.max(1, Math.abs(fullValue)));
  }
  return { lib, ref };
}

function expectGradsClose(lib: Record<string, Tensor>, ref: Record<string, Tensor>, label: string): void {
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

const label = (sc: Scenario): string =>
  `b=${sc.b} n=${sc.n} d=${sc.d} T=${sc.transform.name} doc=${sc.docKind} topK=${sc.topK} mask=${sc.maskEmptySlots} valid=${sc.valid?.map(Number).join('')} ids=${JSON.stringify(sc.ids)} seed=${sc.seed}`;

/** Scenario generator; `features` selects topK and masking. */
function scenarioArb(features: { topK: boolean; mask: boolean }): fc.Arbitrary<Scenario> {
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

describe('CacheClassificationLoss is unbiased (exact expectation over the sampled index)', () => {
  it('E[∇ trainingLoss] = ∇ full softmax loss: query tower, positives, doc network (property)', () => {
    fc.assert(
      fc.property(scenarioArb({ topK: false, mask: false }), (sc) => {
        const { lib, ref } = compare(sc);
        expectGradsClose(lib, ref, label(sc));
      }),
      params(300),
    );
  });

  it('with topK: equals the gradient of the full softmax over [s⁺, the k group maxima] (property)', () => {
    fc.assert(
      fc.property(scenarioArb({ topK: true, mask: false }), (sc) => {
        const { lib, ref } = compare(sc);
        expectGradsClose(lib, ref, label(sc));
      }),
      params(200),
    );
  });

  it('with masking (maskEmptySlots, falseNegativeKey): the reference leaves the masked rows out (property)', () => {
    fc.assert(
      fc.property(scenarioArb({ topK: false, mask: true }), (sc) => {
        const { lib, ref } = compare(sc);
        expectGradsClose(lib, ref, label(sc));
      }),
      params(200),
    );
  });

  it('with topK and masking together (property)', () => {
    fc.assert(
      fc.property(scenarioArb({ topK: true, mask: true }), (sc) => {
        const { lib, ref } = compare(sc);
        expectGradsClose(lib, ref, label(sc));
      }),
      params(150),
    );
  });

  it('explicit: every transform and doc network on one mid-sized case, with non-trivial gradients', () => {
    for (const transform of TRANSFORMS) {
      for (const docKind of ['linear', '2-layer'] as const) {
        const sc: Scenario = { b: 4, n: 8, d: 3, transform, docKind, maskEmptySlots: true, seed: 42 };
        const { lib, ref } = compare(sc);
        expectGradsClose(lib, ref, label(sc));
        for (const k of Object.keys(ref)) {
          expect(
            Math.max(...Array.from(ref[k]!.dataSync() as Float64Array, Math.abs)),
            `${k} gradient is trivially zero`,
          ).toBeGreaterThan(1e-3);
        }
      }
    }
  });

  it('control: with a STALE cache the expected gradient differs from the full softmax gradient (so the test can fail)', () => {
    const sc: Scenario = {
      b: 3,
      n: 6,
      d: 2,
      transform: TRANSFORMS[1]!,
      docKind: 'linear',
      maskEmptySlots: true,
      seed: 7,
    };
    const { lib, ref } = compare(sc, { stale: 0.5 });
    const diff = Math.max(
      ...Object.keys(ref).flatMap((k) => {
        const a = lib[k]!.dataSync() as Float64Array,
          r = ref[k]!.dataSync() as Float64Array;
        return Array.from(r, (v, e) => Math.abs(a[e]! - v));
      }),
    );
    expect(diff).toBeGreaterThan(1e-3);
  });
});
