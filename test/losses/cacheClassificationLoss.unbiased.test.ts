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
  stopGradient,
  sub,
  sum,
  tensor,
  type Tensor,
} from '../../src/index.js';
import { params } from '../util/props.js';
import {
  RTOL,
  TRANSFORMS,
  candidates,
  expectGradsClose,
  label,
  makeCache,
  rows,
  scenarioArb,
  setup,
  softmaxRow,
  type Params,
  type Scenario,
} from '../util/enumeration.js';

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
