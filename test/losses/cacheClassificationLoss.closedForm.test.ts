/**
 * CacheClassificationLoss on small hand-derived examples (d = 1, identity
 * transform unless stated). Tolerance 1e-6 absolute (float32 tensors; the
 * hand values are exact expressions of e^x evaluated in float64).
 *
 * The running example: cache embeddings c = [1, -1], queries q = [-1, 1, 3],
 * positives p = [2, 2, 1]. Scores s⁺ = q·p = [-2, 2, 3] and cache scores
 * s_ij = q_i·c_j:
 *   query 0: s⁺ = -2, s = [-1,  1]  → probPos = e⁻²/(e⁻² + e⁻¹ + e¹)   = 0.0420100661
 *   query 1: s⁺ =  2, s = [ 1, -1]  → probPos = e²/(e² + e¹ + e⁻¹)     = 0.7053845127
 *   query 2: s⁺ =  3, s = [ 3, -3]  → probPos = e³/(2e³ + e⁻³) = 1/(2 + e⁻⁶) = 0.4993810790
 * interpretable = -log probPos = [3.1698460196, 0.3490122168, 0.6943857893].
 * With the doc network = identity on features equal to the embeddings
 * (a fresh cache), trainingLoss_i(j) = (1 - probPos_i)(q_i·c_j - s⁺_i):
 *   j = 0 for all: [(1-pp0)·1, (1-pp1)·(-1), (1-pp2)·0] = [0.9579899339, -0.2946154873, 0]
 *   j = 1 for all: [(1-pp0)·3, (1-pp1)·(-3), (1-pp2)·(-6)] = [2.8739698016, -0.8838464619, -3.0037135258]
 */
import { describe, expect, it } from 'vitest';
import {
  CacheClassificationLoss,
  add,
  grad,
  mul,
  scaleTransform,
  sum,
  tensor,
  type DocNetwork,
  type NegativeCache,
  type Tensor,
} from '../../src/index.js';

const TOL = 1e-6;
const PP = [0.042010066134066056, 0.7053845126982412, 0.49938107903168216];
const INTERP = [3.1698460195562856, 0.34901221676818633, 0.6943857892557275];

const Q = tensor([[-1], [1], [3]]);
const P = tensor([[2], [2], [1]]);
const identityDoc: DocNetwork = (f) => f.feat!;

function cache(
  emb: number[],
  opts: { valid?: boolean[]; feat?: number[]; ids?: number[] } = {},
): Record<string, NegativeCache> {
  const n = emb.length;
  return {
    src: {
      data: {
        emb: tensor(emb.map((v) => [v])),
        feat: tensor((opts.feat ?? emb).map((v) => [v])),
        ...(opts.ids ? { id: tensor(opts.ids, 'int32') } : {}),
      },
      age: tensor(new Array<number>(n).fill(0), 'int32'),
      valid: tensor(opts.valid ?? new Array<boolean>(n).fill(true)),
    },
  };
}

const inject = (idx: number[]) => () =>
  tensor(
    idx.map((i) => [i]),
    'int32',
  );

function expectValues(t: Tensor, want: number[], label: string): void {
  const got = Array.from(t.dataSync() as ArrayLike<number>, Number);
  expect(got.length, label).toBe(want.length);
  got.forEach((v, i) =>
    expect(Math.abs(v - want[i]!), `${label}[${i}]: got ${v}, want ${want[i]}`).toBeLessThanOrEqual(TOL),
  );
}

describe('closed forms', () => {
  it('probPos, interpretable loss and training loss for injected indices (reducer none)', () => {
    for (const [j, want] of [
      [0, [0.9579899338659339, -0.2946154873017588, 0]],
      [1, [2.8739698015978017, -0.8838464619052764, -3.003713525809907]],
    ] as const) {
      const loss = new CacheClassificationLoss({
        embeddingKey: 'emb',
        dataKeys: ['feat'],
        reducer: 'none',
        retrievalFn: inject([j, j, j]),
      });
      const out = loss.call(identityDoc, Q, P, cache([1, -1]));
      expectValues(out.probPos, PP, 'probPos');
      expectValues(out.interpretableLoss, INTERP, 'interpretableLoss');
      expectValues(out.trainingLoss, [...want], `trainingLoss j=${j}`);
      expectValues(out.staleness, [0, 0, 0], 'staleness (fresh)');
      expect(Array.from(out.retrievedIndices.dataSync())).toEqual([j, j, j]);
      expect(Array.from(out.hasNegative.dataSync())).toEqual([1, 1, 1]);
      // refresh data for the single source: the sampled indices, all unmasked, the fresh embeddings
      expect(Array.from(out.updatedItemIndices.src!.dataSync())).toEqual([j, j, j]);
      expect(Array.from(out.updatedItemMask.src!.dataSync())).toEqual([1, 1, 1]);
      expectValues(out.updatedItemData.src!.emb!, j === 0 ? [1, 1, 1] : [-1, -1, -1], 'fresh embeddings');
    }
  });

  it('the same with maskEmptySlots: false and no valid flags (the reference behaviour)', () => {
    const c = cache([1, -1]);
    const bare = { src: { data: c.src!.data, age: c.src!.age } };
    const loss = new CacheClassificationLoss({
      embeddingKey: 'emb',
      dataKeys: ['feat'],
      reducer: 'none',
      maskEmptySlots: false,
      retrievalFn: inject([0, 0, 0]),
    });
    const out = loss.call(identityDoc, Q, P, bare);
    expectValues(out.probPos, PP, 'probPos');
    expectValues(out.trainingLoss, [0.9579899338659339, -0.2946154873017588, 0], 'trainingLoss');
  });

  it('mixed indices, the mean reducer (default) and a custom reducer', () => {
    // per query j = [1, 0, 1]: [2.8739698016, -0.2946154873, -3.0037135258]
    const per = [2.8739698015978017, -0.2946154873017588, -3.003713525809907];
    const mean = new CacheClassificationLoss({
      embeddingKey: 'emb',
      dataKeys: ['feat'],
      retrievalFn: inject([1, 0, 1]),
    });
    const out = mean.call(identityDoc, Q, P, cache([1, -1]));
    expect(out.trainingLoss.shape).toEqual([]);
    expectValues(out.trainingLoss, [(per[0]! + per[1]! + per[2]!) / 3], 'mean trainingLoss');
    expectValues(out.interpretableLoss, [(INTERP[0]! + INTERP[1]! + INTERP[2]!) / 3], 'mean interpretableLoss');
    const summed = new CacheClassificationLoss({
      embeddingKey: 'emb',
      dataKeys: ['feat'],
      reducer: (x) => sum(x),
      retrievalFn: inject([1, 0, 1]),
    });
    expectValues(
      summed.call(identityDoc, Q, P, cache([1, -1])).trainingLoss,
      [per[0]! + per[1]! + per[2]!],
      'summed trainingLoss',
    );
  });

  it('gradients of the mean training loss (j = 0): d/dq_i = (1-pp_i)(c_0 - p_i)/3, d/dp_i = -(1-pp_i)q_i/3', () => {
    const loss = new CacheClassificationLoss({
      embeddingKey: 'emb',
      dataKeys: ['feat'],
      retrievalFn: inject([0, 0, 0]),
    });
    const [gq, gp] = grad((q: Tensor, p: Tensor) => loss.call(identityDoc, q, p, cache([1, -1])).trainingLoss, {
      argnums: [0, 1],
    })(Q, P) as [Tensor, Tensor];
    expectValues(gq, [-(1 - PP[0]!) / 3, -(1 - PP[1]!) / 3, 0], 'd/dq');
    expectValues(gp, [(1 - PP[0]!) / 3, -(1 - PP[1]!) / 3, -(1 - PP[2]!)], 'd/dp'); // q = [-1, 1, 3]
  });

  it('staleness and training loss with a stale cache (doc network g(x) = 2x + 0.5, cached embeddings = features)', () => {
    // fresh(c=1) = 2.5: staleness (1 - 2.5)²/2.5² = 0.36; fresh(c=-1) = -1.5: (-1 + 1.5)²/1.5² = 1/9.
    // j = 0: trainingLoss = (1-pp)(q·2.5 - s⁺) = [-0.5(1-pp0), 0.5(1-pp1), 4.5(1-pp2)]; probPos uses the cached embeddings.
    const doc: DocNetwork = (f) => add(mul(f.feat!, 2), 0.5);
    for (const [j, stale] of [
      [0, 0.36],
      [1, 1 / 9],
    ] as const) {
      const loss = new CacheClassificationLoss({
        embeddingKey: 'emb',
        dataKeys: ['feat'],
        reducer: 'none',
        retrievalFn: inject([j, j, j]),
      });
      const out = loss.call(doc, Q, P, cache([1, -1]));
      expectValues(out.staleness, [stale, stale, stale], `staleness j=${j}`);
      expectValues(out.probPos, PP, 'probPos');
      if (j === 0)
        expectValues(out.trainingLoss, [-0.47899496693296695, 0.1473077436508794, 2.2527851443574303], 'trainingLoss');
      expectValues(out.updatedItemData.src!.emb!, j === 0 ? [2.5, 2.5, 2.5] : [-1.5, -1.5, -1.5], 'fresh embeddings');
    }
    const mean = new CacheClassificationLoss({
      embeddingKey: 'emb',
      dataKeys: ['feat'],
      retrievalFn: inject([0, 1, 1]),
    });
    expectValues(mean.call(doc, Q, P, cache([1, -1])).staleness, [(0.36 + 2 / 9) / 3], 'mean staleness');
  });

  it('maskEmptySlots: an invalid slot drops out of probPos and sampling', () => {
    // valid = [T, F]: only c = 1 remains. query 0: e⁻²/(e⁻² + e⁻¹) = 0.2689414214;
    // query 1: e²/(e² + e) = 1/(1 + e⁻¹) = 0.7310585786; query 2: e³/(e³ + e³) = 0.5.
    const loss = new CacheClassificationLoss({
      embeddingKey: 'emb',
      dataKeys: ['feat'],
      reducer: 'none',
      retrievalFn: inject([0, 0, 0]),
    });
    const out = loss.call(identityDoc, Q, P, cache([1, -1], { valid: [true, false] }));
    expectValues(out.probPos, [0.2689414213699951, 0.7310585786300049, 0.5], 'probPos');
    expectValues(
      out.interpretableLoss,
      [-Math.log(0.2689414213699951), -Math.log(0.7310585786300049), Math.log(2)],
      'interpretable',
    );
    // the same numbers with maskEmptySlots: false include the slot again
    const off = new CacheClassificationLoss({
      embeddingKey: 'emb',
      dataKeys: ['feat'],
      reducer: 'none',
      maskEmptySlots: false,
      retrievalFn: inject([0, 0, 0]),
    });
    expectValues(off.call(identityDoc, Q, P, cache([1, -1], { valid: [true, false] })).probPos, PP, 'probPos unmasked');
  });

  it("falseNegativeKey: the row with the positive's id drops out for that query only; an all-masked query has no negative", () => {
    // cache ids [5, 6]; positive ids [6, 5, 7]: query 0 loses c = -1 (s = 1) → e⁻²/(e⁻² + e⁻¹) = 0.2689414214;
    // query 1 loses c = 1 (s = 1) → e²/(e² + e⁻¹) = 0.9525741268; query 2 keeps both → 0.4993810790.
    const loss = new CacheClassificationLoss({
      embeddingKey: 'emb',
      dataKeys: ['feat'],
      reducer: 'none',
      falseNegativeKey: 'id',
      retrievalFn: inject([0, 1, 0]),
    });
    const out = loss.call(identityDoc, Q, P, cache([1, -1], { ids: [5, 6] }), {
      positiveIds: tensor([6, 5, 7], 'int32'),
    });
    expectValues(out.probPos, [0.2689414213699951, 0.9525741268224331, PP[2]!], 'probPos');
    // all masked: ids [6, 6] and positive 6 → probPos 1, every loss 0, no refresh
    const allMasked = new CacheClassificationLoss({
      embeddingKey: 'emb',
      dataKeys: ['feat'],
      reducer: 'none',
      falseNegativeKey: 'id',
      retrievalFn: inject([0, 0, 0]),
    });
    const o2 = allMasked.call(identityDoc, Q, P, cache([1, -1], { ids: [6, 6] }), {
      positiveIds: tensor([6, 6, 5], 'int32'),
    });
    expectValues(o2.probPos, [1, 1, PP[2]!], 'probPos');
    expectValues(o2.trainingLoss, [0, 0, 0], 'trainingLoss'); // query 2: j = 0 gives (1-pp2)·0
    expectValues(o2.interpretableLoss, [0, 0, INTERP[2]!], 'interpretable');
    expectValues(o2.staleness, [0, 0, 0], 'staleness');
    expect(Array.from(o2.hasNegative.dataSync())).toEqual([0, 0, 1]);
    expect(Array.from(o2.updatedItemMask.src!.dataSync())).toEqual([0, 0, 1]);
  });

  it('topK: sampling among the group maxima, indices mapped back to the cache', () => {
    // cache [1, -1, 2, 0], topK 2: groups [1, -1] → 1 (col 0) and [2, 0] → 2 (col 2).
    // q = 1, p = 1: s⁺ = 1, candidates [1, 2]: probPos = e/(e + e + e²) = 1/(2 + e) = 0.2119415576.
    // candidate 1 → cache index 2: trainingLoss = (1 - pp)(2 - 1) = 0.7880584424.
    const loss = new CacheClassificationLoss({
      embeddingKey: 'emb',
      dataKeys: ['feat'],
      reducer: 'none',
      topK: 2,
      retrievalFn: inject([1]),
    });
    const out = loss.call(identityDoc, tensor([[1]]), tensor([[1]]), cache([1, -1, 2, 0]));
    expectValues(out.probPos, [0.21194155761708547], 'probPos');
    expectValues(out.trainingLoss, [0.7880584423829146], 'trainingLoss');
    expect(Array.from(out.retrievedIndices.dataSync())).toEqual([2]);
    expect(Array.from(out.updatedItemIndices.src!.dataSync())).toEqual([2]);
  });

  it('a score transform applies to positive, cache and sampled scores alike', () => {
    // T(s) = 2s: query 1 (q = 1, p = 2): s⁺ = 4, s = [2, -2] → probPos = e⁴/(e⁴ + e² + e⁻²) = 0.8805854311;
    // j = 0: trainingLoss = (1 - pp)(2 - 4).
    const loss = new CacheClassificationLoss({
      embeddingKey: 'emb',
      dataKeys: ['feat'],
      reducer: 'none',
      scoreTransform: scaleTransform(2),
      retrievalFn: inject([0]),
    });
    const out = loss.call(identityDoc, tensor([[1]]), tensor([[2]]), cache([1, -1]));
    const pp = Math.exp(4) / (Math.exp(4) + Math.exp(2) + Math.exp(-2));
    expectValues(out.probPos, [pp], 'probPos');
    expectValues(out.trainingLoss, [(1 - pp) * -2], 'trainingLoss');
  });
});
