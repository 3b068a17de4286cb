/**
 * createTrainingPool (src/node/trainingPool.ts): the two-thread full softmax
 * and ranking give BIT-identical results to one thread, and failures are
 * loud (a throwing job, a dead worker, a closed pool).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArgumentError } from '../../src/errors.js';
import { createTrainingPool, TrainingPoolError, type TrainingPool } from '../../src/node/trainingPool.js';
import { Rng } from '../../src/tensor/random.js';
import { initWasm } from '../../src/tensor/kernels/wasm/index.js';
import { LOCAL_BLOCK_RUNNER, PANEL_DOCS, type SoftmaxBlocksArgs } from '../../src/tensor/kernels/scoreBlocks.js';
import { DEFAULT_CONFIG, Trainer, evaluate, syntheticCorpus } from '../../src/index.js';
import { ensureBuilt } from '../util/build.js';

const open: TrainingPool[] = [];
function pool(opts: Parameters<typeof createTrainingPool>[0] = {}): TrainingPool {
  const p = createTrainingPool({ workers: 1, ...opts });
  open.push(p);
  return p;
}

beforeAll(async () => {
  expect(await initWasm()).toBe(true);
  ensureBuilt('dist/src/node/trainingPoolWorker.js', 'dist/src/node/trainingPool.js');
}, 300_000);

afterAll(() => {
  for (const p of open) p.close();
});

const hex = (a: Float32Array | Float64Array | Int32Array): string =>
  Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('hex');

function rows(rng: Rng, n: number, d: number): Float32Array {
  return Float32Array.from({ length: n * d }, () => rng.normal() / Math.sqrt(d));
}

function softmaxArgs(seed: number, b: number, n: number, d: number): SoftmaxBlocksArgs {
  const rng = new Rng(seed);
  const targets = Int32Array.from({ length: b }, () => rng.int(n));
  const pairs = Array.from({ length: 20 }, () => [rng.int(b), rng.int(n)] as const)
    .filter(([i, j]) => targets[i] !== j)
    .sort((x, y) => x[1] - y[1] || x[0] - y[0]);
  return {
    queries: rows(rng, b, d),
    docs: rows(rng, n, d),
    b,
    n,
    d,
    scale: 20,
    targets,
    exclDoc: Int32Array.from(pairs, (p) => p[1]),
    exclQuery: Int32Array.from(pairs, (p) => p[0]),
  };
}

describe('createTrainingPool: bit-identical to one thread', () => {
  it('full softmax forward and VJP over 2 to 4 panels', () => {
    const p = pool();
    for (const n of [PANEL_DOCS + 5, 3 * PANEL_DOCS + 999]) {
      const a = softmaxArgs(n, 6, n, 8);
      const one = LOCAL_BLOCK_RUNNER.softmaxForward(a),
        two = p.softmaxForward(a);
      expect(hex(two.lse)).toBe(hex(one.lse));
      expect(hex(two.targetScore)).toBe(hex(one.targetScore));
      const coef = Float32Array.from({ length: a.b }, (_, i) => Math.fround((i + 1) / 7));
      const x = LOCAL_BLOCK_RUNNER.softmaxBackward(a, one.lse, coef),
        y = p.softmaxBackward(a, one.lse, coef);
      expect(hex(y.dq)).toBe(hex(x.dq));
      expect(hex(y.dDocs)).toBe(hex(x.dDocs));
      expect(p.lastStats.workerMs).toBeGreaterThan(0);
    }
  });

  it('ranking of a few hundred queries over several score blocks', () => {
    const p = pool();
    const rng = new Rng(5);
    const m = 400,
      n = 5000,
      d = 16;
    const q = rows(rng, m, d),
      D = rows(rng, n, d);
    const targets = Int32Array.from({ length: m }, () => rng.int(n));
    expect(hex(p.rank(q, D, m, n, d, targets))).toBe(hex(LOCAL_BLOCK_RUNNER.rank(q, D, m, n, d, targets)));
  });

  it('a full-softmax Trainer and its evaluation: the same losses, parameters and metrics with the pool', () => {
    const corpus = syntheticCorpus({ numDocs: 2 * PANEL_DOCS + 100, vocab: 3000, seed: 3, featureBuckets: 4096 });
    const config = { ...DEFAULT_CONFIG, method: 'full' as const, batch: 16, dim: 8, fullDocs: 'all' as const };
    const p = pool();
    const a = new Trainer(corpus, config),
      b = new Trainer(corpus, config, { runner: p });
    for (let s = 0; s < 3; s++) expect(b.step().trainingLoss).toBe(a.step().trainingLoss);
    expect(hex(b.model.docTable.data)).toBe(hex(a.model.docTable.data));
    expect(hex(b.model.queryTable.data)).toBe(hex(a.model.queryTable.data));
    const qs = corpus.testQueries.slice(0, 300);
    expect(evaluate(b.model, corpus, qs, undefined, { runner: p })).toEqual(evaluate(a.model, corpus, qs));
  });

  it('workers: 0 runs everything on this thread', () => {
    const p = pool({ workers: 0 });
    const a = softmaxArgs(1, 3, 2 * PANEL_DOCS, 4);
    expect(hex(p.softmaxForward(a).lse)).toBe(hex(LOCAL_BLOCK_RUNNER.softmaxForward(a).lse));
  });
});

describe('createTrainingPool: failures are loud', () => {
  it('a throwing job is a TrainingPoolError (threw); the pool stays usable', () => {
    const p = pool();
    const a = softmaxArgs(2, 3, 2 * PANEL_DOCS, 4);
    p._injectFault('throw');
    let err: unknown = null;
    try {
      p.softmaxForward(a);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TrainingPoolError);
    expect((err as TrainingPoolError).reason).toBe('threw');
    expect((err as Error).message).toMatch(/injected fault/);
    expect(hex(p.softmaxForward(a).lse)).toBe(hex(LOCAL_BLOCK_RUNNER.softmaxForward(a).lse));
  });

  it('a worker that exits fails the call at once (exited), and every later call', () => {
    const p = pool();
    const a = softmaxArgs(3, 3, 2 * PANEL_DOCS, 4);
    p._injectFault('exit');
    expect(() => p.softmaxForward(a)).toThrow(/pool worker is gone/);
    let err: unknown = null;
    try {
      p.softmaxForward(a);
    } catch (e) {
      err = e;
    }
    expect((err as TrainingPoolError).reason).toBe('exited');
  });

  it('after close() calls throw (closed); bad options are ArgumentErrors', () => {
    const p = pool();
    p.close();
    expect(() => p.softmaxForward(softmaxArgs(4, 2, 2 * PANEL_DOCS, 4))).toThrow(/the pool was closed/);
    expect(() => createTrainingPool({ workers: 3 })).toThrow(ArgumentError);
    expect(() => createTrainingPool({ timeoutMs: 0 })).toThrow(ArgumentError);
    expect(() => createTrainingPool({ workerEntry: '/nonexistent/worker.js' })).toThrow(/does not exist; build first/);
  });
});
