/** The training recipes (src/train/config.ts): tuned defaults per method, overrides, and the reference kept as such. */
import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG, RECIPES, RECIPE_NAMES, checkConfig, recipeConfig } from '../../src/train/config.js';

describe('recipes', () => {
  it('every recipe is a valid config: DEFAULT_CONFIG with the recipe defaults and its method', () => {
    for (const name of RECIPE_NAMES) {
      const c = recipeConfig(name);
      expect(() => checkConfig({ ...c })).not.toThrow();
      expect(c.method).toBe(RECIPES[name].method);
      for (const [k, v] of Object.entries(RECIPES[name].defaults))
        expect(c[k as keyof typeof c], `${name}.${k}`).toBe(v);
      expect(c.batch).toBe(DEFAULT_CONFIG.batch);
    }
  });

  it('overrides win over the recipe defaults', () => {
    const c = recipeConfig('cache', { lr: 0.05, numNegatives: 2, batch: 32 });
    expect([c.lr, c.numNegatives, c.batch]).toEqual([0.05, 2, 32]);
    expect(recipeConfig('inbatch', { lr: 0.2 }).lr).toBe(0.2);
  });

  it('cache-reference keeps the reference estimator whatever is asked, but takes other overrides', () => {
    const c = recipeConfig('cache-reference', {
      numNegatives: 8,
      inBatchNegatives: true,
      queryGradient: 'exact',
      lr: 0.02,
    });
    expect([c.numNegatives, c.inBatchNegatives, c.queryGradient]).toEqual([1, false, 'sampled']);
    expect(c.lr).toBe(0.02);
    expect(c.method).toBe('cache');
  });

  it('a given method cannot be overridden by a recipe override', () => {
    expect(recipeConfig('full', { method: 'cache' }).method).toBe('full');
  });
});
