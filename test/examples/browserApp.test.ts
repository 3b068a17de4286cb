/**
 * The browser example's page logic (examples/browser/app.mjs), run in Node:
 * the same module the page imports, on the same data and seed, so what is
 * checked here is what the page shows (the Chromium test then checks the
 * page itself): the smoothed cache cross-entropy falls far below its peak,
 * held-out recall beats chance, and the query box's search finds the
 * document of a training definition first.
 */
import { createReadStream } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../util/build.js';
import type { Hit } from '../../examples/browser/app.mjs';

const DATA = fileURLToPath(new URL('../../examples/data/wordnet-pairs.jsonl', import.meta.url));

beforeAll(() => ensureBuilt('dist/src/index.js'), 300_000);

describe('examples/browser/app.mjs in Node', () => {
  it('trains 300 steps (seed 1) to a falling loss and recall far above chance; the search answers', async () => {
    const { loadPairs, makeTrainer, finishTraining } = await import('../../examples/browser/app.mjs');
    const { corpus } = await loadPairs(createReadStream(DATA));
    expect(corpus.docs).toHaveLength(1800);
    const trainer = makeTrainer(corpus, { steps: 300, seed: 1 });
    let ema: number | null = null;
    const smoothed: number[] = [];
    for (let s = 0; s < 300; s++) {
      const r = trainer.step();
      ema = ema === null ? r.interpretableLoss : 0.9 * ema + 0.1 * r.interpretableLoss;
      smoothed.push(ema);
    }
    const peak = Math.max(...smoothed);
    expect(peak).toBeGreaterThan(1);
    expect(smoothed[299]!).toBeLessThan(0.5 * peak);
    const { recall, search, documents } = finishTraining(trainer, corpus);
    expect(documents).toBe(1800);
    expect(recall.recallAt10).toBeGreaterThan(0.1); // chance: 10 / 1800
    const hits: Hit[] = search('work together on a common enterprise of project', 10);
    expect(hits).toHaveLength(10);
    expect(hits.map((h) => h.rank)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(hits[0]).toMatchObject({ id: 'v02421408', text: 'collaborate, join forces, cooperate, get together' });
    for (let i = 1; i < 10; i++) expect(hits[i]!.score).toBeLessThanOrEqual(hits[i - 1]!.score);
  });
});
