/**
 * Kind `cache_update`: CacheManager.updateCache over a sequence of updates.
 *
 * config: {specs: {key: {shape, dtype}}, cacheSize, useLru,
 *          steps: [{newItems: n, newItemsMask: bool,
 *                   refresh: null | {keys: [...], rows: m, mask: bool}}]}
 * inputs: initial/data/<key>, initial/age, initial/valid (when the initial
 *         cache has valid flags), and per step i: step<i>/newItems/<key>,
 *         step<i>/newItemsMask, step<i>/updatedItemData/<key>,
 *         step<i>/updatedItemIndices, step<i>/updatedItemMask (as the config says)
 * expected: per step i, the cache after it: step<i>/data/<key>, step<i>/age,
 *           step<i>/valid (beyond the reference)
 * All exact.
 */
import type { Rng } from '../../tensor/random.js';
import type { Tensor } from '../../tensor/tensor.js';
import { CacheManager, type CacheUpdate, type FeatureSpec, type NegativeCache } from '../../cache/negativeCache.js';
import { EXACT, type Json, type Vector, type VectorKind } from '../format.js';
import { boolValues, featureValues, intValues, lit } from '../values.js';

export const KIND = 'cache_update';

interface StepConfig {
  newItems: number;
  newItemsMask: boolean;
  refresh: null | { keys: string[]; rows: number; mask: boolean };
}

interface Config {
  specs: Record<string, { shape: number[]; dtype: FeatureSpec['dtype'] }>;
  cacheSize: number;
  useLru: boolean;
  steps: StepConfig[];
}

const PIN_STEPS =
  "REFERENCE.md 'Cache manager': in order, (2) refreshes overwrite row updatedItemIndices[i] of every key in updatedItemData unless updatedItemMask[i] is false (with LRU the row's age becomes -1); (3) the n new items go to the n slots of largest age, ties to the smallest index, the k-th unmasked item to the k-th slot, age -1; (4) every age + 1.";

/** Runs the steps with negcache; returns the expected outputs. */
export function compute(config: { [k: string]: Json }, inputs: Record<string, Tensor>): Record<string, Tensor> {
  const c = config as unknown as Config;
  const manager = new CacheManager({ specs: c.specs, cacheSize: c.cacheSize, useLru: c.useLru });
  const keys = Object.keys(c.specs);
  let cache: NegativeCache = {
    data: Object.fromEntries(keys.map((k) => [k, inputs[`initial/data/${k}`]!])),
    age: inputs['initial/age']!,
    ...(inputs['initial/valid'] ? { valid: inputs['initial/valid'] } : {}),
  };
  const out: Record<string, Tensor> = {};
  c.steps.forEach((s, i) => {
    const p = `step${i}/`;
    const update: CacheUpdate = { newItems: Object.fromEntries(keys.map((k) => [k, inputs[`${p}newItems/${k}`]!])) };
    if (s.newItemsMask) update.newItemsMask = inputs[`${p}newItemsMask`]!;
    if (s.refresh) {
      update.updatedItemData = Object.fromEntries(s.refresh.keys.map((k) => [k, inputs[`${p}updatedItemData/${k}`]!]));
      update.updatedItemIndices = inputs[`${p}updatedItemIndices`]!;
      if (s.refresh.mask) update.updatedItemMask = inputs[`${p}updatedItemMask`]!;
    }
    cache = manager.updateCache(cache, update);
    for (const k of keys) out[`${p}data/${k}`] = cache.data[k]!;
    out[`${p}age`] = cache.age;
    out[`${p}valid`] = cache.valid!;
  });
  return out;
}

interface Case {
  name: string;
  pins: string;
  beyondReference: string[];
  config: Config;
  inputs: Record<string, Tensor>;
}

/** Inputs for `steps` drawn at random (rows, masks, indices) for the given layout. */
function randomInputs(rng: Rng, config: Config, initial: Record<string, Tensor>): Record<string, Tensor> {
  const inputs: Record<string, Tensor> = { ...initial };
  config.steps.forEach((s, i) => {
    const p = `step${i}/`;
    for (const [k, spec] of Object.entries(config.specs))
      inputs[`${p}newItems/${k}`] = featureValues(rng, [s.newItems, ...spec.shape], spec.dtype);
    if (s.newItemsMask) inputs[`${p}newItemsMask`] = boolValues(rng, [s.newItems], 2, 3);
    if (s.refresh) {
      for (const k of s.refresh.keys)
        inputs[`${p}updatedItemData/${k}`] = featureValues(
          rng,
          [s.refresh.rows, ...config.specs[k]!.shape],
          config.specs[k]!.dtype,
        );
      inputs[`${p}updatedItemIndices`] = intValues(rng, [s.refresh.rows], 0, config.cacheSize - 1);
      if (s.refresh.mask) inputs[`${p}updatedItemMask`] = boolValues(rng, [s.refresh.rows], 2, 3);
    }
  });
  return inputs;
}

function zeroCache(specs: Config['specs'], size: number, valid: boolean): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const [k, s] of Object.entries(specs)) {
    const n = s.shape.reduce((a, b) => a * b, size);
    out[`initial/data/${k}`] = lit(new Array<number>(n).fill(0), [size, ...s.shape], s.dtype);
  }
  out['initial/age'] = lit(new Array<number>(size).fill(0), [size], 'int32');
  if (valid) out['initial/valid'] = lit(new Array<number>(size).fill(0), [size], 'bool');
  return out;
}

function cases(rng: Rng): Case[] {
  const out: Case[] = [];
  const specs: Config['specs'] = { emb: { shape: [2], dtype: 'float32' }, id: { shape: [], dtype: 'int32' } };
  const step = (newItems: number, newItemsMask = false, refresh: StepConfig['refresh'] = null): StepConfig => ({
    newItems,
    newItemsMask,
    refresh,
  });

  // FIFO: fill, wrap around, refreshes that leave ages alone
  {
    const config: Config = {
      specs,
      cacheSize: 4,
      useLru: false,
      steps: [step(3), step(3), step(2, false, { keys: ['emb'], rows: 2, mask: false }), step(1)],
    };
    out.push({
      name: 'cache_update.fifo_wraparound',
      pins: `${PIN_STEPS} Without LRU (useLru false) refreshed rows keep their age, so the cache is a FIFO.`,
      beyondReference: [],
      config,
      inputs: randomInputs(rng, config, zeroCache(specs, 4, false)),
    });
  }
  // LRU: a refresh in the same update as new items makes its row young BEFORE the slots are chosen
  {
    const config: Config = {
      specs,
      cacheSize: 4,
      useLru: true,
      steps: [step(4), step(0), step(2, false, { keys: ['emb', 'id'], rows: 1, mask: false }), step(2)],
    };
    const inputs = randomInputs(rng, config, zeroCache(specs, 4, false));
    // after step 1 all ages are equal (1); step 2 refreshes slot 0, so the new items go to slots 1 and 2
    inputs['step2/updatedItemIndices'] = lit([0], [1], 'int32');
    out.push({
      name: 'cache_update.lru_refresh_before_insert',
      pins: `${PIN_STEPS} Refreshes happen before new items choose their slots: a refreshed row (age -1) is not replaced in the same update.`,
      beyondReference: [],
      config,
      inputs,
    });
  }
  // masks: mixed new-item and refresh masks, then everything masked (no row changes, ages still grow)
  {
    const config: Config = {
      specs,
      cacheSize: 5,
      useLru: true,
      steps: [
        step(4, true),
        step(3, true, { keys: ['emb', 'id'], rows: 3, mask: true }),
        step(2, true, { keys: ['id'], rows: 2, mask: true }),
      ],
    };
    const inputs = randomInputs(rng, config, zeroCache(specs, 5, false));
    inputs['step0/newItemsMask'] = lit([1, 0, 1, 1], [4], 'bool');
    inputs['step1/newItemsMask'] = lit([0, 1, 0], [3], 'bool');
    inputs['step1/updatedItemMask'] = lit([1, 0, 1], [3], 'bool');
    inputs['step2/newItemsMask'] = lit([0, 0], [2], 'bool');
    inputs['step2/updatedItemMask'] = lit([0, 0], [2], 'bool');
    out.push({
      name: 'cache_update.masks',
      pins: `${PIN_STEPS} Masked new items and masked refreshes write nothing (the k-th UNMASKED item takes the k-th slot); with everything masked no row changes but every age still grows.`,
      beyondReference: [],
      config,
      inputs,
    });
  }
  // key subsets, repeated indices (the last unmasked row wins), a refresh with no keys (LRU: ages only)
  {
    const config: Config = {
      specs,
      cacheSize: 4,
      useLru: true,
      steps: [
        step(4),
        step(0, false, { keys: ['id'], rows: 3, mask: false }),
        step(0, false, { keys: ['emb'], rows: 3, mask: true }),
        step(0, false, { keys: [], rows: 2, mask: false }),
        step(1),
      ],
    };
    const inputs = randomInputs(rng, config, zeroCache(specs, 4, false));
    inputs['step1/updatedItemIndices'] = lit([2, 1, 2], [3], 'int32');
    inputs['step2/updatedItemIndices'] = lit([3, 3, 0], [3], 'int32');
    inputs['step2/updatedItemMask'] = lit([1, 0, 1], [3], 'bool');
    inputs['step3/updatedItemIndices'] = lit([0, 3], [2], 'int32');
    out.push({
      name: 'cache_update.partial_keys_and_repeats',
      pins: `${PIN_STEPS} A key absent from updatedItemData keeps its rows; repeated indices are written in order (the last unmasked row wins); a refresh with no keys still makes its rows youngest under LRU.`,
      beyondReference: [],
      config,
      inputs,
    });
  }
  // a hand-built cache of another size than cacheSize, with ages and no valid flags, mixed dtypes
  {
    const hs: Config['specs'] = {
      a: { shape: [1], dtype: 'int32' },
      b: { shape: [2, 1], dtype: 'float64' },
      c: { shape: [], dtype: 'bool' },
    };
    const config: Config = {
      specs: hs,
      cacheSize: 2,
      useLru: true,
      steps: [step(1, false, { keys: ['a'], rows: 1, mask: false }), step(2)],
    };
    const initial: Record<string, Tensor> = {
      'initial/data/a': lit([0, 0, 3], [3, 1], 'int32'),
      'initial/data/b': lit([1, 2, 3, 4, 5, 6], [3, 2, 1], 'float64'),
      'initial/data/c': lit([1, 0, 1], [3], 'bool'),
      'initial/age': lit([2, 1, 0], [3], 'int32'),
    };
    const inputs = randomInputs(rng, config, initial);
    inputs['step0/updatedItemIndices'] = lit([0], [1], 'int32');
    out.push({
      name: 'cache_update.hand_built',
      pins: `${PIN_STEPS} The cache size comes from the cache's own tensors, not from cacheSize (a hand-built cache works); a cache without valid flags counts every slot as valid.`,
      beyondReference: [],
      config,
      inputs,
    });
  }
  // random sequences over mixed specs, from initCache (with valid flags), LRU and FIFO
  for (let r = 0; r < 4; r++) {
    const rs: Config['specs'] = {
      emb: { shape: [3], dtype: 'float32' },
      tok: { shape: [2, 2], dtype: 'int32' },
      flag: { shape: [1], dtype: 'bool' },
      wide: { shape: [], dtype: 'float64' },
    };
    const size = 3 + rng.int(5);
    const steps: StepConfig[] = [];
    for (let s = 0; s < 6; s++) {
      const keys = Object.keys(rs).filter(() => rng.int(2) === 0);
      steps.push(
        step(
          rng.int(size + 1),
          rng.int(2) === 0,
          rng.int(2) === 0 ? { keys, rows: 1 + rng.int(4), mask: rng.int(2) === 0 } : null,
        ),
      );
    }
    const config: Config = { specs: rs, cacheSize: size, useLru: r % 2 === 0, steps };
    out.push({
      name: `cache_update.random_${r}`,
      pins: `${PIN_STEPS} Random sequences from initCache (all four dtypes, multi-dimensional items, masks, key subsets, repeated indices), ${config.useLru ? 'LRU' : 'FIFO'}.`,
      beyondReference: ['valid flags of initCache (all false) as an input'],
      config,
      inputs: randomInputs(rng, config, zeroCache(rs, size, true)),
    });
  }
  return out;
}

export function generate(rng: Rng): Vector[] {
  return cases(rng).map((c) => {
    const config = c.config as unknown as { [k: string]: Json };
    const expected = compute(config, c.inputs);
    return {
      name: c.name,
      kind: KIND,
      pins: c.pins,
      beyondReference: c.beyondReference,
      config,
      inputs: c.inputs,
      expected,
      beyondReferenceOutputs: Object.keys(expected).filter((k) => k.endsWith('/valid')),
      tolerance: EXACT,
    };
  });
}

export const cacheUpdate: VectorKind = { kind: KIND, generate, compute };
