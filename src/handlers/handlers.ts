/**
 * Handlers (reference: handlers.CacheLossHandler and MultiCacheLossHandler)
 * own the cache between steps.
 *
 * One step: the loss against the CURRENT cache, metrics recorded, then the
 * cache updated: the batch's positives (their embeddings under embeddingKey
 * and their features under dataKeys) become new items, and the sampled items
 * get their fresh embeddings.
 *
 * Because the training loss must be differentiated, a step has two phases:
 *   const step = handler.computeLoss(docNet, q, p, features);  // pure
 *   ... take gradients of step.trainingLoss ...
 *   handler.commit(step, {gradients});                         // updates the cache
 * `updateCacheAndComputeLoss` does both at once, as the reference does.
 * `commit` refuses a step whose loss or gradients are not finite (option
 * `rejectNonFinite`, default true), naming the bad tensor and leaving the
 * cache untouched; it also refuses a step computed against an older cache.
 */
import { ArgumentError, NonFiniteError, checkOptions, describe } from '../errors.js';
import { isFloat } from '../tensor/dtype.js';
import { isTensor, unsafeData, type Tensor } from '../tensor/tensor.js';
import { stopGradient } from '../autograd/transforms.js';
import { flatten } from '../autograd/tree.js';
import type { CacheManager, NegativeCache } from '../cache/negativeCache.js';
import { firstNonFinite } from '../tensor/kernels/sparse.js';
import type { CacheLoss, CacheLossReturn, CacheLossCallOptions } from '../losses/cacheClassificationLoss.js';
import { checkQueryAndPositives, type DocNetwork } from '../losses/common.js';
import type { NewItemsFilter } from '../filters/isInCache.js';

export interface StepMetrics {
  step: number;
  trainingLoss: number;
  interpretableLoss: number;
  staleness: number;
}

export interface HandlerStep extends CacheLossReturn {
  /** Scalar metrics of this step (means over the batch). */
  metrics: StepMetrics;
  /** @internal what commit applies */
  readonly pending: PendingUpdate;
}

interface PendingUpdate {
  base: Readonly<Record<string, NegativeCache>>;
  newItems: Record<string, Record<string, Tensor>>;
  newItemsMask: Record<string, Tensor | undefined>;
  committed: boolean;
}

export interface HandlerOptions {
  /** Reject steps with non-finite loss, metrics or gradients (default true). */
  rejectNonFinite?: boolean;
  /** Called on every committed step with its scalar metrics. */
  onMetrics?: (m: StepMetrics) => void;
}

export function scalarOf(t: Tensor): number {
  const d = unsafeData(t);
  if (d.length === 1) return d[0]!;
  let s = 0;
  for (let i = 0; i < d.length; i++) s += d[i]!;
  return s / d.length;
}

export function checkFinite(op: string, name: string, tree: unknown): void {
  if (tree === undefined || tree === null) return;
  const { leaves } = flatten(op, tree, name);
  leaves.forEach((t, k) => {
    if (!isFloat(t.dtype)) return;
    const d = unsafeData(t) as Float32Array | Float64Array;
    const i = firstNonFinite(d); // the wasm kernel for long float32 arrays
    if (i >= 0) {
      throw new NonFiniteError(
        op,
        `${name}${leaves.length > 1 ? ` (leaf ${k} in sorted-key order)` : ''} has ${d[i]} at flat index ${i}; the step was rejected and the cache left unchanged`,
      );
    }
  });
}

/** Shared machinery of the single- and multi-cache handlers. */
abstract class BaseHandler {
  protected caches: Record<string, NegativeCache>;
  protected stepCount = 0;
  readonly rejectNonFinite: boolean;
  readonly onMetrics: ((m: StepMetrics) => void) | undefined;

  constructor(
    readonly managers: Readonly<Record<string, CacheManager>>,
    readonly loss: CacheLoss,
    opts: HandlerOptions,
  ) {
    // Validate before touching anything (duck-typed, so two copies of the library still work together).
    const op = new.target.name;
    for (const [s, m] of Object.entries(managers)) {
      if (
        m === null ||
        typeof m !== 'object' ||
        typeof (m as Partial<CacheManager>).initCache !== 'function' ||
        typeof (m as Partial<CacheManager>).specs !== 'object'
      ) {
        throw new ArgumentError(op, `the cache manager for "${s}" must be a CacheManager, got ${describe(m)}`);
      }
    }
    if (
      loss === null ||
      typeof loss !== 'object' ||
      typeof loss.call !== 'function' ||
      typeof loss.embeddingKey !== 'string' ||
      !Array.isArray(loss.dataKeys)
    ) {
      throw new ArgumentError(
        op,
        `loss must be a CacheLoss {embeddingKey, dataKeys, call} (e.g. a CacheClassificationLoss), got ${describe(loss)}`,
      );
    }
    if (opts.rejectNonFinite !== undefined && typeof opts.rejectNonFinite !== 'boolean')
      throw new ArgumentError(op, `rejectNonFinite must be true or false, got ${describe(opts.rejectNonFinite)}`);
    if (opts.onMetrics !== undefined && typeof opts.onMetrics !== 'function')
      throw new ArgumentError(op, `onMetrics must be a function, got ${describe(opts.onMetrics)}`);
    this.caches = Object.fromEntries(Object.entries(managers).map(([s, m]) => [s, m.initCache()]));
    this.rejectNonFinite = opts.rejectNonFinite ?? true;
    this.onMetrics = opts.onMetrics;
    for (const [s, m] of Object.entries(managers)) {
      const spec = m.specs[loss.embeddingKey];
      if (!spec)
        throw new ArgumentError(
          this.constructor.name,
          `cache "${s}" has no spec for the loss's embeddingKey "${loss.embeddingKey}"`,
        );
      for (const k of loss.dataKeys)
        if (!m.specs[k]) throw new ArgumentError(this.constructor.name, `cache "${s}" has no spec for data key "${k}"`);
    }
  }

  /** Samples this step's negatives from the current cache (see CacheClassificationLoss.retrieve). */
  retrieve(queryEmbeddings: Tensor, opts: Omit<CacheLossCallOptions, 'retrieval'> = {}) {
    if (typeof this.loss.retrieve !== 'function')
      throw new ArgumentError(
        `${this.constructor.name}.retrieve`,
        'the loss has no retrieve method; only call() is available',
      );
    return this.loss.retrieve(queryEmbeddings, this.caches, opts);
  }

  /** Number of committed steps. */
  get step(): number {
    return this.stepCount;
  }

  protected build(
    op: string,
    docNetwork: DocNetwork,
    q: Tensor,
    p: Tensor,
    newItems: Record<string, Record<string, Tensor>>,
    newItemsMask: Record<string, Tensor | undefined>,
    opts: CacheLossCallOptions | undefined,
  ): HandlerStep {
    const base = this.caches;
    // Validate the new items first, so a bad batch fails before any sampling (the loss's
    // generator does not move) or gradient work.
    checkQueryAndPositives(op, q, p);
    for (const s of Object.keys(base)) {
      if (!(s in newItems)) throw new ArgumentError(op, `no new items for cache "${s}"`);
      const mask = newItemsMask[s];
      this.managers[s]!.validateUpdate(base[s]!, { newItems: newItems[s]!, ...(mask ? { newItemsMask: mask } : {}) });
    }
    const out = this.loss.call(docNetwork, q, p, base, opts);
    const metrics: StepMetrics = {
      step: this.stepCount + 1,
      trainingLoss: scalarOf(out.trainingLoss),
      interpretableLoss: scalarOf(out.interpretableLoss),
      staleness: scalarOf(out.staleness),
    };
    return { ...out, metrics, pending: { base, newItems, newItemsMask, committed: false } };
  }

  /**
   * Applies a step's cache update: refreshes of the sampled items first,
   * then the new items (per cache, in one updateCache call). Throws, leaving
   * the cache as it was, if the step is stale, already committed, or (with
   * rejectNonFinite) its loss, metrics or the given gradients are not finite.
   */
  commit(step: HandlerStep, opts: { gradients?: unknown } = {}): void {
    const op = `${this.constructor.name}.commit`;
    if (step === null || typeof step !== 'object' || !step.pending)
      throw new ArgumentError(op, `step must come from computeLoss, got ${describe(step)}`);
    checkOptions(op, opts, ['gradients'], { required: true });
    const pending = step.pending;
    if (pending.committed) throw new ArgumentError(op, 'this step was already committed');
    if (pending.base !== this.caches)
      throw new ArgumentError(
        op,
        'this step was computed against an older cache (another step was committed since); compute it again',
      );
    if (this.rejectNonFinite) {
      checkFinite(op, 'trainingLoss', step.trainingLoss);
      checkFinite(op, 'interpretableLoss', step.interpretableLoss);
      checkFinite(op, 'gradients', opts.gradients);
      for (const [s, items] of Object.entries(pending.newItems)) checkFinite(op, `newItems.${s}`, items);
      for (const [s, data] of Object.entries(step.updatedItemData)) checkFinite(op, `updatedItemData.${s}`, data);
    }
    const next: Record<string, NegativeCache> = {};
    for (const s of Object.keys(this.caches)) {
      const mask = pending.newItemsMask[s];
      next[s] = this.managers[s]!.updateCache(this.caches[s]!, {
        newItems: pending.newItems[s]!,
        ...(mask ? { newItemsMask: mask } : {}),
        updatedItemData: step.updatedItemData[s]!,
        updatedItemIndices: step.updatedItemIndices[s]!,
        updatedItemMask: step.updatedItemMask[s]!,
      });
    }
    this.caches = next;
    pending.committed = true;
    this.stepCount++;
    this.onMetrics?.(step.metrics);
  }

  /** Replaces the cache state (e.g. from a checkpoint); validated against the managers. */
  protected setCaches(caches: Record<string, NegativeCache>, step: number): void {
    if (caches === null || typeof caches !== 'object')
      throw new ArgumentError('setState', `caches must map each source to its cache, got ${describe(caches)}`);
    for (const [s, m] of Object.entries(this.managers)) m.checkCache('setState', caches[s]!, `caches.${s}`);
    if (!Number.isInteger(step) || step < 0)
      throw new ArgumentError('setState', `step must be a non-negative integer, got ${describe(step)}`);
    this.caches = { ...caches };
    this.stepCount = step;
  }
}

export interface CacheLossHandlerOptions extends HandlerOptions {
  cacheManager: CacheManager;
  loss: CacheLoss;
  /** Optional new-item filter (e.g. isInCacheFilter(['id'])) giving newItemsMask. */
  filter?: NewItemsFilter;
}

/** The single-cache handler. Its one cache is the data source named "cache". */
export class CacheLossHandler extends BaseHandler {
  static readonly SOURCE = 'cache';
  readonly filter: NewItemsFilter | undefined;

  constructor(opts: CacheLossHandlerOptions) {
    if (opts === null || typeof opts !== 'object')
      throw new ArgumentError('CacheLossHandler', `options must be {cacheManager, loss, ...}, got ${describe(opts)}`);
    if (opts.filter !== undefined && typeof opts.filter !== 'function')
      throw new ArgumentError(
        'CacheLossHandler',
        `filter must be a function (cache, newItems) => mask, e.g. isInCacheFilter(['id']), got ${describe(opts.filter)}`,
      );
    super({ [CacheLossHandler.SOURCE]: opts.cacheManager }, opts.loss, opts);
    this.filter = opts.filter;
  }

  get cache(): NegativeCache {
    return this.caches[CacheLossHandler.SOURCE]!;
  }

  /** Restores a cache and step counter (e.g. after loading a checkpoint). */
  setState(cache: NegativeCache, step: number): void {
    this.setCaches({ [CacheLossHandler.SOURCE]: cache }, step);
  }

  /**
   * The loss for this batch against the current cache, and the update that
   * `commit` will apply. `features` holds the positives' features under the
   * loss's dataKeys (plus any other cache keys, e.g. ids), each [b, ...].
   */
  computeLoss(
    docNetwork: DocNetwork,
    queryEmbeddings: Tensor,
    posDocEmbeddings: Tensor,
    features: Readonly<Record<string, Tensor>>,
    opts?: CacheLossCallOptions,
  ): HandlerStep {
    const op = 'CacheLossHandler.computeLoss';
    if (features === null || typeof features !== 'object')
      throw new ArgumentError(op, `features must be a record of tensors, got ${describe(features)}`);
    if (!isTensor(posDocEmbeddings))
      throw new ArgumentError(op, `posDocEmbeddings must be a Tensor, got ${describe(posDocEmbeddings)}`);
    const items: Record<string, Tensor> = { ...features, [this.loss.embeddingKey]: stopGradient(posDocEmbeddings) };
    const mask = this.filter ? this.filter(this.cache, items) : undefined;
    return this.build(
      op,
      docNetwork,
      queryEmbeddings,
      posDocEmbeddings,
      { [CacheLossHandler.SOURCE]: items },
      { [CacheLossHandler.SOURCE]: mask },
      opts,
    );
  }

  /** computeLoss + commit (the reference's single call). Returns the step. */
  updateCacheAndComputeLoss(
    docNetwork: DocNetwork,
    queryEmbeddings: Tensor,
    posDocEmbeddings: Tensor,
    features: Readonly<Record<string, Tensor>>,
    opts?: CacheLossCallOptions,
  ): HandlerStep {
    const step = this.computeLoss(docNetwork, queryEmbeddings, posDocEmbeddings, features, opts);
    this.commit(step);
    return step;
  }
}

export interface MultiCacheLossHandlerOptions extends HandlerOptions {
  /** One manager per data source. */
  cacheManagers: Readonly<Record<string, CacheManager>>;
  loss: CacheLoss;
}

/**
 * The multi-cache handler: one cache per data source, the loss over all of
 * them (sources concatenated in sorted order), new items given per source.
 */
export class MultiCacheLossHandler extends BaseHandler {
  constructor(opts: MultiCacheLossHandlerOptions) {
    if (
      opts === null ||
      typeof opts !== 'object' ||
      opts.cacheManagers === null ||
      typeof opts.cacheManagers !== 'object' ||
      Object.keys(opts.cacheManagers).length === 0
    ) {
      throw new ArgumentError(
        'MultiCacheLossHandler',
        `options must be {cacheManagers: {source: CacheManager, ...}, loss}, got ${describe(opts)}`,
      );
    }
    super(opts.cacheManagers, opts.loss, opts);
  }

  get cache(): Readonly<Record<string, NegativeCache>> {
    return this.caches;
  }

  setState(caches: Record<string, NegativeCache>, step: number): void {
    this.setCaches(caches, step);
  }

  /**
   * `newItems[source]` holds that source's new items (all of its cache keys,
   * embeddings included); `newItemsMask[source]` optionally masks them.
   */
  computeLoss(
    docNetwork: DocNetwork,
    queryEmbeddings: Tensor,
    posDocEmbeddings: Tensor,
    newItems: Readonly<Record<string, Readonly<Record<string, Tensor>>>>,
    newItemsMask: Readonly<Record<string, Tensor>> = {},
    opts?: CacheLossCallOptions,
  ): HandlerStep {
    const op = 'MultiCacheLossHandler.computeLoss';
    if (newItems === null || typeof newItems !== 'object')
      throw new ArgumentError(op, `newItems must map each source to its new items, got ${describe(newItems)}`);
    for (const [s, r] of Object.entries(newItems))
      if (r === null || typeof r !== 'object')
        throw new ArgumentError(op, `newItems.${s} must be a record of tensors, got ${describe(r)}`);
    const extra = Object.keys(newItems).filter((s) => !(s in this.managers));
    if (extra.length > 0)
      throw new ArgumentError(
        op,
        `newItems has unknown sources ${JSON.stringify(extra)}; sources are ${JSON.stringify(Object.keys(this.managers))}`,
      );
    const items = Object.fromEntries(
      Object.entries(newItems).map(([s, r]) => [
        s,
        Object.fromEntries(Object.entries(r).map(([k, t]) => [k, isTensor(t) ? stopGradient(t) : t])),
      ]),
    ) as Record<string, Record<string, Tensor>>;
    return this.build(op, docNetwork, queryEmbeddings, posDocEmbeddings, items, { ...newItemsMask }, opts);
  }

  updateCacheAndComputeLoss(
    docNetwork: DocNetwork,
    queryEmbeddings: Tensor,
    posDocEmbeddings: Tensor,
    newItems: Readonly<Record<string, Readonly<Record<string, Tensor>>>>,
    newItemsMask: Readonly<Record<string, Tensor>> = {},
    opts?: CacheLossCallOptions,
  ): HandlerStep {
    const step = this.computeLoss(docNetwork, queryEmbeddings, posDocEmbeddings, newItems, newItemsMask, opts);
    this.commit(step);
    return step;
  }
}
