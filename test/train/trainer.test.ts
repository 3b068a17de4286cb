/**
 * The trainer: a tiny end-to-end run of each method on a synthetic corpus
 * whose held-out recall@10 must rise far above chance; determinism under a
 * fixed seed (with an injected clock, so times are reproducible too); the
 * time budget and evaluation schedule; config validation; evalSubset.
 */
import { describe, expect, it } from 'vitest';
import {
  ArgumentError,
  DEFAULT_CONFIG,
  Trainer,
  buildCorpus,
  syntheticCorpus,
  train,
  type Method,
  type TrainConfig,
  type TrainResult,
} from '../../src/index.js';
import { contentKeys } from '../../src/train/trainer.js';
import {
  BUDGET_FIELDS,
  CONFIG_FIELDS,
  CONFIG_KEYS,
  METHODS,
  checkConfig,
  fieldAccepts,
  resumeMismatches,
} from '../../src/train/config.js';
import { edgeValues } from '../util/configEdges.js';
import { evalSubset, type Checkpoint } from '../../src/train/run.js';
import { embedAll } from '../../src/train/evaluate.js';
import type { Corpus } from '../../src/data/corpus.js';

/**
 * 600 documents over 80 lemma words (each word is in ~20 documents, so its
 * definition tokens can be learnt from the training queries), 20% held out.
 */
const corpus = syntheticCorpus({ numDocs: 600, vocab: 80, seed: 1, featureBuckets: 4096, testFraction: 0.2 });

const small: Omit<TrainConfig, 'method'> = {
  ...DEFAULT_CONFIG,
  steps: 200,
  batch: 32,
  cacheSize: 256,
  dim: 16,
  lr: 0.02,
  evalQueries: 100,
  evalEverySeconds: 0,
};

/** A clock that advances 125 ms per call: every step then "takes" 125 ms, exactly (binary fractions). */
function fakeClock(): () => number {
  let t = 0;
  return () => (t += 125);
}

describe('end-to-end: recall@10 rises far above chance for every method', () => {
  const chance = 10 / corpus.docs.length;
  const observed: string[] = [];

  for (const method of METHODS) {
    it(`${method}: 200 steps (batch 32, dim 16${method === 'cache' ? ', cache 256' : ''})`, () => {
      const r = train(corpus, { ...small, method });
      expect(r.steps).toBe(200);
      expect(r.history).toHaveLength(200);
      expect(r.final.count).toBe(corpus.testQueries.length);
      observed.push(
        `${method}: recall@10 ${r.final.recallAt10.toFixed(3)} recall@1 ${r.final.recallAt1.toFixed(3)} MRR ${r.final.mrr.toFixed(3)} (chance@10 ${chance.toFixed(4)})`,
      );
      // Chance is 10 / 600 ≈ 0.017; observed values are 0.4-0.6. Demand more than 10× chance.
      expect(r.final.recallAt10).toBeGreaterThan(10 * chance);
      expect(r.final.mrr).toBeGreaterThan(10 / corpus.docs.length);
      // The interpretable loss fell: the last 20 steps average well under the first 20.
      const avg = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
      const first = avg(r.history.slice(0, 20).map((h) => h.interpretableLoss));
      const last = avg(r.history.slice(-20).map((h) => h.interpretableLoss));
      expect(last).toBeLessThan(0.5 * first);
      for (const h of r.history) {
        expect(Number.isFinite(h.trainingLoss)).toBe(true);
        expect(Number.isFinite(h.staleness)).toBe(method === 'cache');
      }
      if (method === 'cache') expect(r.history.slice(20).some((h) => h.staleness > 0)).toBe(true);
      if (observed.length === METHODS.length) console.info(`[trainer e2e] ${observed.join('; ')}`);
    });
  }
});

describe('determinism', () => {
  const short = (method: Method, seed = 3): TrainConfig => ({
    ...small,
    method,
    steps: 12,
    evalEverySeconds: 0.5,
    evalQueries: 40,
    seed,
  });
  const fingerprint = (r: TrainResult) => ({
    history: r.history,
    evals: r.evals,
    final: r.final,
    steps: r.steps,
    trainSeconds: r.trainSeconds,
    medianStepMs: r.medianStepMs,
    q: Array.from(r.model.queryTable.data),
    d: Array.from(r.model.docTable.data),
    dense: [r.model.dense.query.w, r.model.dense.query.b, r.model.dense.doc.w, r.model.dense.doc.b].map((t) =>
      Array.from(t.dataSync()),
    ),
  });

  for (const method of METHODS) {
    it(`${method}: the same seed gives bit-identical history, evaluations, metrics and parameters`, () => {
      const a = fingerprint(train(corpus, short(method), { now: fakeClock() }));
      const b = fingerprint(train(corpus, short(method), { now: fakeClock() }));
      expect(b).toEqual(a);
      const c = fingerprint(train(corpus, short(method, 4), { now: fakeClock() }));
      expect(c.history.map((h) => h.trainingLoss)).not.toEqual(a.history.map((h) => h.trainingLoss));
    });
  }

  it('the schedule under an injected clock: evaluations every 0.5 s of training (steps 0, 4, 8) plus the final one', () => {
    const evals: number[] = [];
    const steps: number[] = [];
    const r = train(corpus, short('inbatch'), {
      now: fakeClock(),
      onEval: (e) => evals.push(e.step),
      onStep: (s) => steps.push(s.step),
    });
    expect(r.evals.map((e) => e.step)).toEqual([0, 4, 8, 12]);
    expect(r.evals.map((e) => e.time)).toEqual([0, 0.5, 1, 1.5]);
    expect(r.evals.every((e) => e.count === 40)).toBe(true);
    expect(evals).toEqual([0, 4, 8, 12]);
    expect(steps).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    expect(r.history.map((h) => h.stepMs)).toEqual(new Array(12).fill(125));
    expect(r.history.at(-1)!.time).toBe(1.5);
    expect(r.trainSeconds).toBe(1.5);
    expect(r.medianStepMs).toBe(125);
  });

  it('evalEverySteps: evaluations at steps 0, 5, 10 plus the final one; with a time schedule too, each step is evaluated once', () => {
    const r = train(corpus, { ...short('cache'), evalEverySeconds: 0, evalEverySteps: 5 }, { now: fakeClock() });
    expect(r.evals.map((e) => e.step)).toEqual([0, 5, 10, 12]);
    // Time says 0, 4, 8; steps say 0, 5, 10; step 0 once, and the final one.
    const both = train(corpus, { ...short('inbatch'), evalEverySteps: 5 }, { now: fakeClock() });
    expect(both.evals.map((e) => e.step)).toEqual([0, 4, 5, 8, 10, 12]);
    // A step-only schedule still gives identical recall at a step as a time schedule evaluating there.
    const t = train(corpus, short('inbatch'), { now: fakeClock() });
    expect(both.evals.find((e) => e.step === 8)).toEqual(t.evals.find((e) => e.step === 8));
  });

  it('the time budget stops training (evaluation excluded)', () => {
    const r = train(
      corpus,
      { ...short('inbatch'), steps: 1000, timeBudgetSeconds: 1, evalEverySeconds: 0 },
      { now: fakeClock() },
    );
    expect(r.steps).toBe(8);
    expect(r.trainSeconds).toBe(1);
    expect(r.evals).toEqual([]);
  });
});

describe('checkpoint and resume', () => {
  for (const method of ['cache', 'inbatch'] as const) {
    it(`${method}: resuming from the step-6 checkpoint reproduces the uninterrupted 12-step run bit for bit`, () => {
      const config: TrainConfig = { ...small, method, steps: 12, evalEverySeconds: 0.5, evalQueries: 40, seed: 5 };
      const checkpoints: Checkpoint[] = [];
      const full = train(corpus, config, {
        now: fakeClock(),
        checkpointEvery: 6,
        onCheckpoint: (c) => checkpoints.push(c),
      });
      expect(checkpoints).toHaveLength(2);
      expect(checkpoints[0]!.tensors['train.step']!.item()).toBe(6);
      const resumed = train(corpus, config, { now: fakeClock(), resume: checkpoints[0]! });
      expect(resumed.steps).toBe(12);
      expect(resumed.history).toEqual(full.history);
      expect(resumed.evals).toEqual(full.evals);
      expect(resumed.final).toEqual(full.final);
      expect(Array.from(resumed.model.queryTable.data)).toEqual(Array.from(full.model.queryTable.data));
      expect(Array.from(resumed.model.docTable.data)).toEqual(Array.from(full.model.docTable.data));
      expect(Array.from(resumed.model.dense.doc.w.dataSync())).toEqual(Array.from(full.model.dense.doc.w.dataSync()));
      // A different config cannot resume that checkpoint.
      expect(() => train(corpus, { ...config, lr: 0.03 }, { resume: checkpoints[0]! })).toThrow(
        /cannot resume: the checkpoint was trained with lr = 0.02, this run has 0.03/,
      );
    });
  }
});

describe('Trainer', () => {
  it('nextBatch walks a shuffled epoch of the training queries without repeats', () => {
    const t = new Trainer(corpus, { ...small, method: 'inbatch', batch: 50 });
    const n = corpus.trainQueries.length;
    const seen = new Set<number>();
    const train = new Set(corpus.trainQueries);
    for (let k = 0; k < Math.floor(n / 50); k++) {
      const b = t.nextBatch();
      expect(b).toHaveLength(50);
      for (const q of b) {
        expect(train.has(q)).toBe(true);
        expect(seen.has(q)).toBe(false);
        seen.add(q);
      }
    }
    expect(seen.size).toBe(Math.floor(n / 50) * 50);
    // The order is a shuffle, not the sorted list.
    expect(Array.from(new Trainer(corpus, { ...small, method: 'inbatch', batch: 50 }).nextBatch())).not.toEqual(
      Array.from(corpus.trainQueries.slice(0, 50)),
    );
  });

  it('a batch larger than the training set is clipped to it', () => {
    const tiny = syntheticCorpus({ numDocs: 30, vocab: 20, seed: 2, featureBuckets: 512, testFraction: 0.2 });
    const t = new Trainer(tiny, { ...small, method: 'full', batch: 1000, cacheSize: 1000 });
    expect(t.nextBatch()).toHaveLength(tiny.trainQueries.length);
    const r = t.step();
    expect(Number.isFinite(r.trainingLoss)).toBe(true);
    expect(r.trainingLoss).toBe(r.interpretableLoss);
    expect(t.stepCount).toBe(1);
    expect(t.optimizer.steps).toBe(1);
  });

  for (const fullDocs of ['train', 'all'] as const) {
    for (const maskDuplicates of [true, false]) {
      it(`full softmax over fullDocs '${fullDocs}' (maskDuplicates ${maskDuplicates}): the first loss equals a float64 recomputation`, () => {
        // 300 synsets over 40 one-word lemma sets, so identical twins exist and the mask matters.
        const words = Array.from({ length: 40 }, (_, i) => `w${i}`);
        const synsets = Array.from({ length: 300 }, (_, i) => ({
          id: `n${String(i).padStart(8, '0')}`,
          pos: 'n' as const,
          lemmas: [words[(i * 7) % 40]!],
          gloss: `${words[i % 13]} of ${words[(i * 3) % 17]} and ${words[(i * 5) % 29]}`,
        }));
        const c = buildCorpus(synsets, { seed: 5, testFraction: 0.25, featureBuckets: 2048 });
        const config: TrainConfig = { ...small, method: 'full', batch: 40, fullDocs, maskDuplicates };
        const t = new Trainer(c, config);
        const batch = new Trainer(c, config).nextBatch(); // the same seed gives the same first batch
        const dim = config.dim;
        const docs =
          fullDocs === 'all' ? Array.from({ length: c.docs.length }, (_, i) => i) : Array.from(c.trainQueries);
        const D = embedAll(t.model, 'doc', c, docs);
        const Q = embedAll(t.model, 'query', c, batch);
        const key = maskDuplicates ? contentKeys(c) : Int32Array.from({ length: c.docs.length }, (_, i) => i);
        let loss = 0,
          masked = 0;
        batch.forEach((pos, i) => {
          const s = docs.map((_, j) => {
            let dot = 0;
            for (let k = 0; k < dim; k++) dot += Q[i * dim + k]! * D[j * dim + k]!;
            return config.scale * dot;
          });
          const keep = docs.map((d) => d === pos || key[d] !== key[pos]);
          masked += keep.filter((k) => !k).length;
          const m = Math.max(...s.filter((_, j) => keep[j]));
          const lse = m + Math.log(s.reduce((a, v, j) => a + (keep[j] ? Math.exp(v - m) : 0), 0));
          loss += lse - s[docs.indexOf(pos)]!;
        });
        if (maskDuplicates) expect(masked).toBeGreaterThan(0);
        expect(t.step().trainingLoss).toBeCloseTo(loss / batch.length, 4);
        // The held-out documents are in the softmax exactly when fullDocs is 'all'.
        expect(docs.length).toBe(fullDocs === 'all' ? c.docs.length : c.trainQueries.length);
        expect(c.testQueries.length).toBeGreaterThan(0);
      });
    }
  }

  it('a corpus without training queries is rejected', () => {
    const noTrain: Corpus = { ...corpus, trainQueries: new Int32Array(0) };
    expect(() => new Trainer(noTrain, { ...small, method: 'inbatch' })).toThrow(
      /train: the corpus has no training queries/,
    );
  });
});

describe('checkConfig', () => {
  const ok: TrainConfig = { ...small, method: 'cache' };

  it('accepts the defaults and the small config', () => {
    expect(checkConfig({ ...DEFAULT_CONFIG, method: 'cache' })).toEqual({ ...DEFAULT_CONFIG, method: 'cache' });
    expect(checkConfig(ok)).toBe(ok);
    expect(() => checkConfig({ ...ok, topK: 16 })).not.toThrow();
    expect(() => checkConfig({ ...ok, method: 'inbatch', batch: 512 })).not.toThrow(); // no cache: any batch
  });

  const bad: [string, Partial<TrainConfig>, RegExp][] = [
    ['an unknown method', { method: 'softmax' as Method }, /method must be one of cache, inbatch, full, got "softmax"/],
    ['topK that does not divide cacheSize', { topK: 3 }, /topK 3 must divide cacheSize 256/],
    ['topK 0', { topK: 0 }, /topK must be an integer/],
    ['batch > cacheSize for the cache method', { batch: 257 }, /batch 257 is larger than cacheSize 256/],
    ['steps 0', { steps: 0 }, /steps must be an integer in \[1,/],
    ['fractional batch', { batch: 2.5 }, /batch must be an integer/],
    ['dim 0', { dim: 0 }, /dim must be an integer/],
    ['lr 0', { lr: 0 }, /lr must be a number in \(0, 1000000\], got 0/],
    ['NaN scale', { scale: NaN }, /scale must be a number in \(0, 1000000\], got NaN/],
    ['negative weight decay', { weightDecay: -0.1 }, /weightDecay must be a number in \[0, 1000000\], got -0.1/],
    ['clipNorm 0', { clipNorm: 0 }, /clipNorm must be a number > 0/],
    ['a bad fullDocs', { fullDocs: 'test' as never }, /fullDocs must be one of train, all, got "test"/],
    ['a bad sampler', { sampler: 'greedy' as never }, /sampler must be one of gumbel, categorical, got "greedy"/],
    ['a zero time budget', { timeBudgetSeconds: 0 }, /timeBudgetSeconds must be a number > 0/],
    ['fractional evalEverySteps', { evalEverySteps: 1.5 }, /evalEverySteps must be an integer in \[0,/],
    ['negative evalEverySeconds', { evalEverySeconds: -1 }, /evalEverySeconds must be a number >= 0/],
    ['evalQueries 0', { evalQueries: 0 }, /evalQueries must be an integer/],
    ['a negative seed', { seed: -1 }, /seed must be an integer/],
  ];
  for (const [name, patch, msg] of bad) {
    it(`rejects ${name} with ArgumentError (also from the Trainer and train)`, () => {
      const c = { ...ok, ...patch };
      expect(() => checkConfig(c)).toThrow(ArgumentError);
      expect(() => checkConfig(c)).toThrow(msg);
      expect(() => new Trainer(corpus, c)).toThrow(ArgumentError);
      expect(() => train(corpus, c)).toThrow(ArgumentError);
    });
  }
});

describe('checkConfig: unknown keys are refused, as by every other options object', () => {
  const ok: TrainConfig = { ...small, method: 'inbatch' };
  const cases: [string, Record<string, unknown>, RegExp][] = [
    [
      'a misspelt lr',
      { lR: 5 },
      /^train: unknown config key "lR" \(did you mean "lr"\?\); the keys are method, steps,/,
    ],
    [
      'a lower-case cacheSize',
      { cachesize: 3 },
      /^train: unknown config key "cachesize" \(did you mean "cacheSize"\?\)/,
    ],
    ['a dashed flag name', { 'cache-size': 3 }, /unknown config key "cache-size" \(did you mean "cacheSize"\?\)/],
    ['one letter off', { bach: 3 }, /unknown config key "bach" \(did you mean "batch"\?\)/],
    ['no near key', { momentum: 0.9 }, /unknown config key "momentum"; the keys are/],
  ];
  for (const [name, extra, msg] of cases) {
    it(`${name}: ${JSON.stringify(extra)}, from checkConfig, the Trainer and train`, () => {
      const c = { ...ok, ...extra } as TrainConfig;
      expect(() => checkConfig(c)).toThrow(msg);
      expect(() => new Trainer(corpus, c)).toThrow(ArgumentError);
      expect(() => new Trainer(corpus, c)).toThrow(msg);
      expect(() => train(corpus, c)).toThrow(msg);
    });
  }

  it('every key of the defaults has a spec, and the spec accepts its default', () => {
    expect([...CONFIG_KEYS].sort()).toEqual([...Object.keys(DEFAULT_CONFIG), 'method'].sort());
    for (const k of Object.keys(DEFAULT_CONFIG) as (keyof typeof DEFAULT_CONFIG)[])
      expect(fieldAccepts(CONFIG_FIELDS[k], DEFAULT_CONFIG[k]), k).toBe(true);
  });
});

describe('checkConfig follows CONFIG_FIELDS at every edge of every field', () => {
  // inbatch (no batch <= cacheSize rule) and the largest cache, so topK's edges divide it.
  const base: TrainConfig = { ...DEFAULT_CONFIG, method: 'inbatch', cacheSize: 2 ** 24 };
  for (const k of CONFIG_KEYS) {
    it(k, () => {
      for (const [v, accepted] of edgeValues(CONFIG_FIELDS[k])) {
        if (k === 'method' && v === 'cache') continue; // the cache method adds the batch rule; checked above
        const c = { ...base, [k]: v } as TrainConfig;
        if (accepted) expect(() => checkConfig(c), `${k} = ${String(v)}`).not.toThrow();
        else expect(() => checkConfig(c), `${k} = ${String(v)}`).toThrow(new RegExp(`^train: ${k} must be `));
      }
      if ('optional' in CONFIG_FIELDS[k]) expect(() => checkConfig({ ...base, [k]: undefined })).not.toThrow();
      else expect(() => checkConfig({ ...base, [k]: undefined })).toThrow(new RegExp(`^train: ${k} must be `));
    });
  }
});

describe('the resume rule: every field but the budget fields must equal the checkpoint', () => {
  const config: TrainConfig = { ...small, method: 'cache', steps: 4, batch: 8, cacheSize: 32, dim: 8 };
  let checkpoint: Checkpoint | undefined;
  const take = (): Checkpoint => {
    if (checkpoint) return checkpoint;
    train(corpus, config, { checkpointEvery: 4, onCheckpoint: (c) => (checkpoint = c) });
    return checkpoint!;
  };
  /** A valid value different from config[k] (the rule is about any change, so any valid one will do). */
  const other = (k: keyof TrainConfig): unknown => {
    const spec = CONFIG_FIELDS[k];
    const v = config[k];
    if (k === 'method') return 'inbatch';
    if (k === 'topK') return 4;
    if (k === 'cacheSize') return 64;
    if (spec.kind === 'choice') return spec.choices.find((c) => c !== v);
    if (spec.kind === 'bool') return !v;
    if (v === undefined) return 0.5;
    if (v === Infinity) return 1e9;
    return (v as number) + 1;
  };

  it('the budget fields are steps, timeBudgetSeconds and the evaluation schedule', () => {
    expect([...BUDGET_FIELDS]).toEqual([
      'steps',
      'timeBudgetSeconds',
      'evalEverySeconds',
      'evalEverySteps',
      'evalQueries',
    ]);
  });

  it('resumeMismatches: every key of the config is compared unless it is a budget field (so new fields are covered)', () => {
    for (const k of CONFIG_KEYS) {
      const changed = { ...config, [k]: other(k) } as TrainConfig;
      expect(() => checkConfig({ ...changed }), `${k}: the changed value must be valid`).not.toThrow();
      const diff = resumeMismatches(config, changed).map((m) => m.field);
      expect(diff, k).toEqual(BUDGET_FIELDS.includes(k) ? [] : [k]);
    }
  });

  it('train refuses each changed trajectory field and accepts each changed budget field', () => {
    const ckpt = take();
    for (const k of CONFIG_KEYS) {
      const changed = { ...config, steps: 6, [k]: other(k) } as TrainConfig;
      if (k === 'steps') changed.steps = 7;
      if (BUDGET_FIELDS.includes(k)) {
        const r = train(corpus, changed, { resume: ckpt });
        expect(r.steps, k).toBe(changed.steps);
      } else {
        expect(() => train(corpus, changed, { resume: ckpt }), k).toThrow(
          new RegExp(
            `^train: cannot resume: the checkpoint was trained with ${k} = .* \\(only steps, timeBudgetSeconds`,
          ),
        );
      }
    }
  });

  it('clipNorm is trajectory-relevant: a changed or added clip norm is refused', () => {
    const ckpt = take();
    expect(() => train(corpus, { ...config, steps: 6, clipNorm: 1 }, { resume: ckpt })).toThrow(
      /cannot resume: the checkpoint was trained with clipNorm = undefined, this run has 1/,
    );
  });

  it('nothing to train: steps at or below the checkpoint step, or the time budget already spent', () => {
    const ckpt = take();
    expect(() => train(corpus, { ...config, steps: 3 }, { resume: ckpt })).toThrow(
      /^train: nothing to train: the checkpoint is at step 4 and steps is 3; need steps > 4 to continue$/,
    );
    expect(() => train(corpus, { ...config, steps: 4 }, { resume: ckpt })).toThrow(/nothing to train/);
    const spent = Number(ckpt.metadata['negcache.trainSeconds']);
    expect(() => train(corpus, { ...config, steps: 9, timeBudgetSeconds: spent }, { resume: ckpt })).toThrow(
      /^train: nothing to train: the checkpoint has .* s of training and timeBudgetSeconds is/,
    );
  });
});

describe('evalSubset', () => {
  it('takes every k-th held-out query, deterministically and in order', () => {
    const test = Int32Array.from({ length: 10 }, (_, i) => 100 + 3 * i);
    expect(Array.from(evalSubset(test, 5))).toEqual([100, 106, 112, 118, 124]);
    expect(Array.from(evalSubset(test, 4))).toEqual([100, 106, 115, 121]); // floor(i · 2.5)
    expect(Array.from(evalSubset(test, 3))).toEqual(Array.from(evalSubset(test, 3)));
    expect(Array.from(evalSubset(test, 10))).toEqual(Array.from(test));
    expect(Array.from(evalSubset(test, 50))).toEqual(Array.from(test));
  });

  it('on the real split: distinct held-out queries, the requested count', () => {
    const s = evalSubset(corpus.testQueries, 37);
    expect(s).toHaveLength(37);
    expect(new Set(s).size).toBe(37);
    const held = new Set(corpus.testQueries);
    expect(Array.from(s).every((q) => held.has(q))).toBe(true);
    expect(Array.from(s)).toEqual(
      Array.from(s)
        .slice()
        .sort((a, b) => a - b),
    );
  });
});
