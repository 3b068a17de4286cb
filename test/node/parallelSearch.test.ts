/**
 * The two-core search returns exactly what Index.search returns (ids,
 * scores, order), for shared and copied indexes, after rows are added, with
 * one and two workers; small searches stay on the main thread.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../../src/tensor/random.js';
import { Index } from '../../src/search/searchIndex.js';
import { createParallelSearch, type ParallelSearch } from '../../src/node/parallelSearch.js';
import { ensureBuilt } from '../util/build.js';

function rows(rng: Rng, n: number, d: number): Float32Array {
  const out = new Float32Array(n * d);
  // Three levels: many exact ties, so the insertion-order tie-break matters across the split.
  for (let i = 0; i < out.length; i++) out[i] = rng.int(3) - 1;
  return out;
}

const searchers: ParallelSearch[] = [];
beforeAll(() => ensureBuilt('dist/src/node/parallelSearchWorker.js', 'dist/src/search/searchIndex.js'), 300_000);
afterAll(() => {
  for (const s of searchers) s.close();
});

describe('createParallelSearch', () => {
  it('equals Index.search exactly: shared and copied storage, growing index, 1 and 2 workers', async () => {
    const rng = new Rng(11);
    for (const workers of [1, 2]) {
      const parallel = createParallelSearch({ workers, minWork: 0 });
      searchers.push(parallel);
      for (const shared of [false, true]) {
        const d = 24;
        const index = new Index(d, { shared });
        let n = 0;
        for (const add of [3001, 1777, 5]) {
          index.add(
            Array.from({ length: add }, (_, i) => `id${n + i}`),
            rows(rng, add, d),
          );
          n += add;
          for (const [nq, k] of [
            [1, 1],
            [37, 10],
            [300, 25],
          ] as const) {
            const q = rows(rng, nq, d);
            const got = await parallel.search(index, q, k);
            expect(parallel.lastStats.parallel).toBe(true);
            expect(parallel.lastStats.ranges).toHaveLength(workers + 1);
            expect(got).toEqual(index.search(q, k));
          }
          if (shared) expect(parallel.lastStats.copied).toBe(0);
        }
      }
    }
  });

  it('copies a non-shared index once per version; small searches stay on the main thread', async () => {
    const parallel = createParallelSearch({ workers: 1 });
    searchers.push(parallel);
    const rng = new Rng(5);
    const index = new Index(8);
    index.add(['a', 'b', 'c'], rows(rng, 3, 8));
    const q = rows(rng, 2, 8);
    expect(await parallel.search(index, q, 2)).toEqual(index.search(q, 2));
    expect(parallel.lastStats.parallel).toBe(false);
    const big = new Index(64);
    big.add(
      Array.from({ length: 20000 }, (_, i) => String(i)),
      rows(rng, 20000, 64),
    );
    const qb = rows(rng, 16, 64);
    expect(await parallel.search(big, qb, 5)).toEqual(big.search(qb, 5));
    expect(parallel.lastStats.parallel).toBe(true);
    expect(parallel.lastStats.copied).toBe(10000 * 64);
    expect(await parallel.search(big, qb, 5)).toEqual(big.search(qb, 5));
    expect(parallel.lastStats.copied).toBe(0);
  });

  it('rejects bad arguments and searches after close, with a message', async () => {
    const parallel = createParallelSearch({ workers: 1, minWork: 0 });
    const index = new Index(2);
    index.add(['x', 'y'], new Float32Array([1, 0, 0, 1]));
    await expect(parallel.search(index, new Float32Array([1, 0]), 0)).rejects.toThrow(/k must be a positive integer/);
    await expect(parallel.search({} as never, new Float32Array(2), 1)).rejects.toThrow(/index must be an Index/);
    expect((await parallel.search(index, new Float32Array([1, 0]), 1))[0]!.ids).toEqual(['x']);
    parallel.close();
    await expect(parallel.search(index, new Float32Array([1, 0]), 1)).rejects.toThrow(/the parallel search is closed/);
    expect(() => createParallelSearch({ workers: -1 })).toThrow(/workers must be an integer in \[0, 64\]/);
    expect(() => createParallelSearch({ workerEntry: '/nonexistent/worker.js' })).toThrow(
      /the compiled search worker .* does not exist/,
    );
  });
});
