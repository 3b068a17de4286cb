/**
 * evaluate / embedAll and the dual-encoder model: hand-made models with
 * known retrieval results (perfect; shifted by one with pessimistic ties),
 * and consistency of evaluate's metrics with rankOfTarget on a random model.
 */
import { describe, expect, it } from 'vitest';
import {
  DualEncoder,
  RowSpace,
  embedAll,
  evaluate,
  makeBags,
  rankOfTarget,
  summarizeRanks,
  syntheticCorpus,
  tensor,
  tower,
} from '../../src/index.js';
import { unsafeData } from '../../src/tensor/tensor.js';
import type { Corpus } from '../../src/data/corpus.js';

const N = 4,
  VOCAB = 9,
  DIM = 4;

/**
 * Four documents and their queries: document i has the single feature i;
 * query i has the features 4 + i and 8 (feature 8 is given a zero row, so
 * the query's mean embedding is half its own row: normalisation must undo that).
 */
function tinyCorpus(): Corpus {
  return {
    docs: Array.from({ length: N }, (_, i) => ({ id: `n${i}`, pos: 'n' as const, lemmas: [`w${i}`], gloss: `g${i}` })),
    featureBuckets: VOCAB,
    seed: 0,
    docOffsets: Int32Array.from([0, 1, 2, 3, 4]),
    docIds: Int32Array.from([0, 1, 2, 3]),
    queryOffsets: Int32Array.from([0, 2, 4, 6, 8]),
    queryIds: Int32Array.from([4, 8, 5, 8, 6, 8, 7, 8]),
    queryDoc: Int32Array.from([0, 1, 2, 3]),
    trainQueries: Int32Array.from([0, 1]),
    testQueries: Int32Array.from([0, 1, 2, 3]),
  };
}

/** A model whose query i and document shift(i) both embed to the basis vector e_i. */
function handModel(shift: (i: number) => number): DualEncoder {
  const m = new DualEncoder({ vocab: VOCAB, dim: DIM, seed: 0 });
  const eye = tensor(Array.from({ length: DIM }, (_, i) => Array.from({ length: DIM }, (_, j) => (i === j ? 1 : 0))));
  const zero = tensor(new Float32Array(DIM));
  m.dense = { query: { w: eye, b: zero }, doc: { w: eye, b: zero } };
  const q = new Float32Array(VOCAB * DIM),
    d = new Float32Array(VOCAB * DIM);
  for (let i = 0; i < N; i++) {
    q[(4 + i) * DIM + i] = 3; // any positive length: the tower normalises
    d[shift(i) * DIM + i] = 0.5;
  }
  m.queryTable.load(tensor(q, 'float32', [VOCAB, DIM]));
  m.docTable.load(tensor(d, 'float32', [VOCAB, DIM]));
  return m;
}

describe('embedAll', () => {
  it('embeds a hand-made model to the expected unit vectors, on either side', () => {
    const c = tinyCorpus();
    const m = handModel((i) => i);
    const all = Int32Array.from([0, 1, 2, 3]);
    const want = Array.from({ length: N * DIM }, (_, k) => (Math.floor(k / DIM) === k % DIM ? 1 : 0));
    expect(Array.from(embedAll(m, 'query', c, all))).toEqual(want);
    expect(Array.from(embedAll(m, 'doc', c, all))).toEqual(want);
    expect(Array.from(embedAll(m, 'doc', c, [2, 0]))).toEqual([0, 0, 1, 0, 1, 0, 0, 0]);
  });

  it('chunking does not change the result and matches the tower applied to the whole list', () => {
    const c = syntheticCorpus({ numDocs: 60, vocab: 30, seed: 5, featureBuckets: 256 });
    const m = new DualEncoder({ vocab: c.featureBuckets, dim: 8, seed: 7 });
    const ex = Int32Array.from({ length: 60 }, (_, i) => (i * 7) % 60);
    for (const side of ['query', 'doc'] as const) {
      const whole = embedAll(m, side, c, ex);
      expect(whole).toHaveLength(60 * 8);
      expect(Array.from(embedAll(m, side, c, ex, 7))).toEqual(Array.from(whole));
      expect(Array.from(embedAll(m, side, c, ex, 1))).toEqual(Array.from(whole));
      const space = new RowSpace();
      const bags = makeBags(
        side === 'query' ? c.queryOffsets : c.docOffsets,
        side === 'query' ? c.queryIds : c.docIds,
        ex,
        c.featureBuckets,
        space,
      );
      const table = side === 'query' ? m.queryTable : m.docTable;
      const direct = tower(table.rows(space.ids()), bags, side === 'query' ? m.dense.query : m.dense.doc);
      expect(Array.from(unsafeData(direct))).toEqual(Array.from(whole));
      // Every embedding has unit length.
      for (let i = 0; i < 60; i++) {
        let s = 0;
        for (let j = 0; j < 8; j++) s += whole[i * 8 + j]! ** 2;
        expect(Math.abs(s - 1)).toBeLessThan(1e-5);
      }
    }
    expect(embedAll(m, 'doc', c, [])).toHaveLength(0);
  });
});

describe('evaluate', () => {
  it('a model that embeds each query exactly as its document has recall@1 = 1 and MRR = 1', () => {
    const r = evaluate(
      handModel((i) => i),
      tinyCorpus(),
      [0, 1, 2, 3],
    );
    expect(r).toEqual({ recallAt1: 1, recallAt10: 1, recallAt100: 1, mrr: 1, count: 4 });
  });

  it('a model that matches query i with document i-1 ranks every target last (ties against it)', () => {
    // query i = e_i, document j = e_{j+1}: the target i scores 0 and ties with two others, one document scores 1.
    const r = evaluate(
      handModel((i) => (i + N - 1) % N),
      tinyCorpus(),
      [0, 1, 2, 3],
    );
    expect(r).toEqual({ recallAt1: 0, recallAt10: 1, recallAt100: 1, mrr: 0.25, count: 4 });
    const one = evaluate(
      handModel((i) => (i + N - 1) % N),
      tinyCorpus(),
      [2],
    );
    expect(one.count).toBe(1);
    expect(one.mrr).toBe(0.25);
  });

  it('agrees with rankOfTarget on scores computed from embedAll (random model), with or without precomputed documents', () => {
    const c = syntheticCorpus({ numDocs: 150, vocab: 40, seed: 8, featureBuckets: 512, testFraction: 0.3 });
    const m = new DualEncoder({ vocab: c.featureBuckets, dim: 8, seed: 9 });
    const nDocs = c.docs.length;
    const D = embedAll(
      m,
      'doc',
      c,
      Int32Array.from({ length: nDocs }, (_, i) => i),
    );
    const Q = embedAll(m, 'query', c, c.testQueries);
    const ranks = Array.from(c.testQueries, (q, k) => {
      const scores = new Float64Array(nDocs);
      for (let j = 0; j < nDocs; j++) {
        let s = 0;
        for (let t = 0; t < 8; t++) s += Q[k * 8 + t]! * D[j * 8 + t]!;
        scores[j] = s;
      }
      return rankOfTarget(scores, q);
    });
    const want = summarizeRanks(ranks);
    const got = evaluate(m, c, c.testQueries);
    expect(got.count).toBe(c.testQueries.length);
    expect(got.recallAt1).toBeCloseTo(want.recallAt1, 12);
    expect(got.recallAt10).toBeCloseTo(want.recallAt10, 12);
    expect(got.recallAt100).toBeCloseTo(want.recallAt100, 12);
    expect(got.mrr).toBeCloseTo(want.mrr, 6);
    expect(evaluate(m, c, c.testQueries, D)).toEqual(got);
    // An untrained model is near chance: recall@10 is far from 1.
    expect(got.recallAt10).toBeLessThan(0.5);
  });

  it('no queries: count 0 and NaN rates', () => {
    const r = evaluate(
      handModel((i) => i),
      tinyCorpus(),
      [],
    );
    expect(r.count).toBe(0);
    expect(r.recallAt10).toBeNaN();
    expect(r.mrr).toBeNaN();
  });
});

describe('DualEncoder', () => {
  it('is a deterministic function of its seed; the two towers have separate tables', () => {
    const a = new DualEncoder({ vocab: 32, dim: 4, seed: 12 });
    const b = new DualEncoder({ vocab: 32, dim: 4, seed: 12 });
    const c = new DualEncoder({ vocab: 32, dim: 4, seed: 13 });
    expect(Array.from(a.queryTable.data)).toEqual(Array.from(b.queryTable.data));
    expect(Array.from(a.docTable.data)).toEqual(Array.from(b.docTable.data));
    expect(Array.from(a.dense.doc.w.dataSync())).toEqual(Array.from(b.dense.doc.w.dataSync()));
    expect(Array.from(a.queryTable.data)).not.toEqual(Array.from(a.docTable.data));
    expect(Array.from(a.dense.query.w.dataSync())).not.toEqual(Array.from(a.dense.doc.w.dataSync()));
    expect(Array.from(a.queryTable.data)).not.toEqual(Array.from(c.queryTable.data));
    expect(a.dense.query.w.shape).toEqual([4, 4]);
    expect(Array.from(a.dense.query.b.dataSync())).toEqual([0, 0, 0, 0]);
    expect(a.config).toEqual({ vocab: 32, dim: 4, seed: 12 });
  });
});
