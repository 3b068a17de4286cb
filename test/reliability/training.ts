/**
 * Helpers shared by the resume and crash tests: a tiny synthetic corpus and
 * configs for every method, bitwise comparison of trainer states, and the
 * per-step metrics that must repeat exactly (step, trainingLoss,
 * interpretableLoss, staleness; never the wall-clock fields).
 */
import { expect } from 'vitest';
import { DEFAULT_CONFIG, syntheticCorpus, type Corpus, type Tensor, type TrainConfig } from '../../src/index.js';
import { unsafeData } from '../../src/tensor/tensor.js';

/** 120 documents (about 104 training queries: an epoch is 13 steps of 8), 512 feature buckets. */
export function tinyCorpus(seed = 3): Corpus {
  return syntheticCorpus({ numDocs: 120, vocab: 180, seed, featureBuckets: 512 });
}

export const BASE: Omit<TrainConfig, 'method' | 'steps'> = {
  ...DEFAULT_CONFIG,
  timeBudgetSeconds: Infinity,
  batch: 8,
  cacheSize: 32,
  dim: 8,
  evalEverySeconds: 0,
  evalQueries: 16,
};

/** The configurations resume must reproduce: every method, both samplers, top-k, clipping and weight decay. */
export const CONFIGS: readonly [string, Omit<TrainConfig, 'steps'>][] = [
  ['cache (categorical)', { ...BASE, method: 'cache' }],
  [
    'cache (gumbel, topK 4, clipNorm, weightDecay)',
    { ...BASE, method: 'cache', sampler: 'gumbel', topK: 4, clipNorm: 0.5, weightDecay: 0.01, seed: 7 },
  ],
  ['inbatch', { ...BASE, method: 'inbatch', seed: 1 }],
  ['full', { ...BASE, method: 'full', seed: 2, lr: 0.01 }],
];

/** A number as an exact, comparable string (every double prints round-trip exactly; NaN and -0 kept). */
export function exact(v: number): string {
  return Object.is(v, -0) ? '-0' : String(v);
}

/** The metrics of a step that must be bit-identical across runs (not stepMs / time). */
export function metricsOf(
  h: readonly { step: number; trainingLoss: number; interpretableLoss: number; staleness: number }[],
): string[] {
  return h.map((r) => `${r.step}: ${exact(r.trainingLoss)} ${exact(r.interpretableLoss)} ${exact(r.staleness)}`);
}

function bytesOf(t: Tensor): Uint8Array {
  const d = unsafeData(t);
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

/** Names of the tensors that differ (dtype, shape or any bit), or that only one side has. */
export function stateDiff(a: Readonly<Record<string, Tensor>>, b: Readonly<Record<string, Tensor>>): string[] {
  const out: string[] = [];
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const x = a[k],
      y = b[k];
    if (x === undefined || y === undefined) {
      out.push(`${k} (only in ${x === undefined ? 'the second' : 'the first'})`);
      continue;
    }
    if (x.dtype !== y.dtype || x.shape.join() !== y.shape.join()) {
      out.push(`${k} (${x.dtype} [${x.shape}] vs ${y.dtype} [${y.shape}])`);
      continue;
    }
    const p = bytesOf(x),
      q = bytesOf(y);
    let i = 0;
    while (i < p.length && p[i] === q[i]) i++;
    if (i < p.length) out.push(`${k} (first differing byte ${i})`);
  }
  return out.sort();
}

export function expectSameState(
  a: Readonly<Record<string, Tensor>>,
  b: Readonly<Record<string, Tensor>>,
  what: string,
): void {
  expect(stateDiff(a, b), `${what}: tensors that differ`).toEqual([]);
  // The groups the resume contract names, so a missing group cannot pass silently.
  const keys = Object.keys(a);
  for (const prefix of [
    'model.queryTable',
    'model.docTable',
    'model.dense.',
    'optim.t',
    'optim.dense.',
    'optim.table.',
    'rng.',
    'train.order',
    'train.cursor',
    'train.step',
  ]) {
    expect(
      keys.some((k) => k.startsWith(prefix)),
      `${what}: the state has no ${prefix}*`,
    ).toBe(true);
  }
}
