/**
 * Explicit release of wasm memory: a process that trains run after run
 * (`negcache compare --seeds ...`) must not wait for finalizers, which run only
 * between tasks; with a 4 GiB wasm memory, twelve whole-corpus runs filled it.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { InternalError } from '../../src/errors.js';
import { syntheticCorpus } from '../../src/data/corpus.js';
import { recipeConfig } from '../../src/train/config.js';
import { train } from '../../src/train/run.js';
import { HeapArray, adamParams, adamRows } from '../../src/tensor/kernels/sparse.js';
import { initWasm, wasmBytesInUse } from '../../src/tensor/kernels/wasm/index.js';

beforeAll(async () => {
  expect(await initWasm()).toBe(true);
});

describe('HeapArray.release', () => {
  it('frees the block at once; any later use is an InternalError; releasing twice is harmless', () => {
    const before = wasmBytesInUse();
    const a = new HeapArray(1 << 16);
    expect(a.onHeap).toBe(true);
    expect(wasmBytesInUse()).toBeGreaterThanOrEqual(before + 4 * (1 << 16));
    a.data[7] = 3;
    a.release();
    expect(wasmBytesInUse()).toBe(before);
    expect(a.isReleased).toBe(true);
    expect(() => a.data).toThrow(InternalError);
    expect(() => a.onHeap).toThrow(/used after release/);
    const m = new HeapArray(1 << 16),
      v = new HeapArray(1 << 16);
    const p = adamParams({ lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, t: 1, gscale: 1 });
    expect(() => adamRows(a, m, v, new Float32Array(64), Int32Array.of(0), 64, p)).toThrow(InternalError);
    a.release();
    m.release();
    v.release();
    expect(wasmBytesInUse()).toBe(before);
  });
});

describe('train() and DualEncoder.release', () => {
  it('after each run (optimiser state freed by train, the model by release) the wasm memory in use is back where it was', () => {
    const corpus = syntheticCorpus({ numDocs: 300, vocab: 450, seed: 1 });
    const cfg = recipeConfig('cache', { steps: 5, batch: 16, cacheSize: 32, dim: 8, evalQueries: 20 });
    const before = wasmBytesInUse();
    for (let run = 0; run < 3; run++) {
      const r = train(corpus, { ...cfg, seed: run });
      // the model's two tables are all that train() leaves in wasm memory
      const tables = 2 * r.model.queryTable.vocab * r.model.config.dim * 4;
      expect(wasmBytesInUse() - before).toBeGreaterThanOrEqual(tables);
      expect(wasmBytesInUse() - before).toBeLessThan(2 * tables);
      r.model.release();
      expect(wasmBytesInUse()).toBe(before);
      expect(() => r.model.queryTable.data).toThrow(InternalError);
    }
  });
});
