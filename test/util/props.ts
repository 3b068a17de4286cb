import fc from 'fast-check';

/**
 * Property run counts. Each property states its own base count; the
 * environment variable NEGCACHE_PROPERTY_RUNS scales all of them (e.g. 0.2
 * for a quick local run, 10 for a soak). Failures print fast-check's seed
 * and path, so a counterexample can be replayed with `{ seed, path }`.
 */
export function runs(base: number): number {
  const factor = Number(process.env.NEGCACHE_PROPERTY_RUNS ?? '1');
  const f = Number.isFinite(factor) && factor > 0 ? factor : 1;
  return Math.max(1, Math.round(base * f));
}

/** fast-check parameters with a scaled run count; the seed is printed on failure by fast-check. */
export function params(base: number): fc.Parameters<unknown> {
  const seed = process.env.NEGCACHE_PROPERTY_SEED;
  return { numRuns: runs(base), ...(seed !== undefined ? { seed: Number(seed) } : {}) } as fc.Parameters<unknown>;
}
