/**
 * Handlers across replicas.
 *
 *  - ShardedCacheLossHandler: each replica holds one shard and the loss is
 *    the sharded DistributedCacheClassificationLoss. A replica's shard
 *    receives only its own new items (its batch's positives), and, with
 *    refreshShards, the refreshes of items sampled from it by any replica.
 *  - ReplicatedCacheLossHandler (the reference's cross-replica mode): every
 *    replica holds a full copy of the cache and computes the single-cache
 *    loss on its own queries; at commit, every replica's new items and
 *    refreshes are all-gathered (replica order) and applied by everyone, so
 *    the copies stay identical bit for bit.
 *
 * Both follow the two-phase protocol of CacheLossHandler (computeLoss, then
 * commit). Every replica must make the same calls in the same order.
 */
import { ArgumentError, NonFiniteError, checkOptions, describe, optionRules } from '../errors.js';
import { isFloat } from '../tensor/dtype.js';
import { isTensor, unsafeData, wrap, type Tensor } from '../tensor/tensor.js';
import { stopGradient } from '../autograd/transforms.js';
import type { CacheManager, CacheUpdate, NegativeCache } from '../cache/negativeCache.js';
import type { CacheClassificationLoss, CacheLossReturn } from '../losses/cacheClassificationLoss.js';
import type {
  DistributedCacheClassificationLoss,
  DistributedCacheLossReturn,
} from '../losses/distributedCacheClassificationLoss.js';
import type { DocNetwork } from '../losses/common.js';
import type { ReplicaContext } from '../distributed/replicaContext.js';
import { checkFinite, scalarOf, type HandlerOptions, type StepMetrics } from './handlers.js';

const SOURCE = 'cache';

interface Pending {
  base: NegativeCache;
  newItems: Record<string, Tensor>;
  committed: boolean;
}

function metricsOf(
  out: { trainingLoss: Tensor; interpretableLoss: Tensor; staleness: Tensor },
  step: number,
): StepMetrics {
  return {
    step,
    trainingLoss: scalarOf(out.trainingLoss),
    interpretableLoss: scalarOf(out.interpretableLoss),
    staleness: scalarOf(out.staleness),
  };
}

function checkStep(op: string, pending: Pending | undefined, current: NegativeCache): Pending {
  if (!pending) throw new ArgumentError(op, 'step must come from computeLoss');
  if (pending.committed) throw new ArgumentError(op, 'this step was already committed');
  if (pending.base !== current)
    throw new ArgumentError(op, 'this step was computed against an older cache; compute it again');
  return pending;
}

function newItemsOf(
  op: string,
  loss: { embeddingKey: string },
  features: Readonly<Record<string, Tensor>>,
  p: Tensor,
): Record<string, Tensor> {
  if (features === null || typeof features !== 'object')
    throw new ArgumentError(op, `features must be a record of tensors, got ${describe(features)}`);
  if (!isTensor(p)) throw new ArgumentError(op, `posDocEmbeddings must be a Tensor, got ${describe(p)}`);
  return { ...features, [loss.embeddingKey]: stopGradient(p) };
}

/**
 * The refreshes routed to a shard carry OTHER replicas' fresh embeddings,
 * which this replica's own loss values do not cover: every row that will be
 * written (mask true) must be finite. Rows are in replica order, R·b of them.
 */
function checkRoutedRefresh(op: string, data: Record<string, Tensor>, mask: Tensor, R: number): void {
  const m = unsafeData(mask);
  const b = m.length / R;
  for (const key of Object.keys(data).sort()) {
    const t = data[key]!;
    if (!isFloat(t.dtype)) continue;
    const d = unsafeData(t);
    const inner = m.length === 0 ? 0 : d.length / m.length;
    for (let i = 0; i < m.length; i++) {
      if (!m[i]) continue;
      for (let e = 0; e < inner; e++) {
        const v = d[i * inner + e]!;
        if (!Number.isFinite(v)) {
          throw new NonFiniteError(
            op,
            `updatedItemData.${key} has ${v} in row ${i} (a refresh routed from replica ${Math.floor(i / b)}); the step was rejected and the cache left unchanged`,
          );
        }
      }
    }
  }
}

/**
 * The constructor arguments of both handlers, checked before anything is
 * built (duck-typed, as BaseHandler does): a ReplicaContext, a CacheManager
 * with specs for the loss's embedding and data keys, and the options.
 */
function checkArgs(
  op: string,
  ctx: unknown,
  cacheManager: unknown,
  keys: { embeddingKey: unknown; dataKeys: unknown } | null,
  lossKind: string,
  opts: unknown,
): void {
  const c = ctx as Partial<ReplicaContext> | null;
  if (
    c === null ||
    typeof c !== 'object' ||
    typeof c.allGather !== 'function' ||
    typeof c.allToAll !== 'function' ||
    !Number.isInteger(c.numReplicas) ||
    c.numReplicas! < 1 ||
    !Number.isInteger(c.replicaId) ||
    c.replicaId! < 0 ||
    c.replicaId! >= c.numReplicas!
  )
    throw new ArgumentError(op, `ctx must be a ReplicaContext (from runInProcess or runWorkers), got ${describe(ctx)}`);
  const m = cacheManager as Partial<CacheManager> | null;
  if (m === null || typeof m !== 'object' || typeof m.initCache !== 'function' || typeof m.specs !== 'object')
    throw new ArgumentError(op, `cacheManager must be a CacheManager, got ${describe(cacheManager)}`);
  if (keys === null || typeof keys.embeddingKey !== 'string' || !Array.isArray(keys.dataKeys))
    throw new ArgumentError(op, `loss must be a ${lossKind}, got ${describe(keys)}`);
  for (const k of [keys.embeddingKey, ...(keys.dataKeys as unknown[])])
    if (typeof k !== 'string' || !m.specs![k])
      throw new ArgumentError(op, `the cache manager has no spec for the loss's key ${describe(k)}`);
  checkOptions(op, opts, { rejectNonFinite: optionRules.boolean, onMetrics: optionRules.function }, { required: true });
}

/** commit's options: an object with at most `gradients`. */
function checkCommitOptions(op: string, opts: unknown): void {
  checkOptions(op, opts, ['gradients'], { required: true });
}

/** The loss's keys if it looks like the loss named (duck-typed), else null. */
function keysOf(loss: unknown): { embeddingKey: unknown; dataKeys: unknown } | null {
  const l = loss as { call?: unknown; embeddingKey?: unknown; dataKeys?: unknown } | null;
  return l !== null && typeof l === 'object' && typeof l.call === 'function'
    ? { embeddingKey: l.embeddingKey, dataKeys: l.dataKeys }
    : null;
}

export interface ShardedStep extends DistributedCacheLossReturn {
  metrics: StepMetrics;
  readonly pending: Pending;
}

export class ShardedCacheLossHandler {
  private shard: NegativeCache;
  private count = 0;
  readonly rejectNonFinite: boolean;
  readonly onMetrics: ((m: StepMetrics) => void) | undefined;

  constructor(
    readonly ctx: ReplicaContext,
    readonly cacheManager: CacheManager,
    readonly loss: DistributedCacheClassificationLoss,
    opts: HandlerOptions = {},
  ) {
    const local = (loss as Partial<DistributedCacheClassificationLoss> | null)?.local;
    checkArgs(
      'ShardedCacheLossHandler',
      ctx,
      cacheManager,
      keysOf(loss) && keysOf(local),
      'DistributedCacheClassificationLoss',
      opts,
    );
    this.shard = cacheManager.initCache();
    this.rejectNonFinite = opts.rejectNonFinite ?? true;
    this.onMetrics = opts.onMetrics;
  }

  /** This replica's shard. */
  get cache(): NegativeCache {
    return this.shard;
  }

  get step(): number {
    return this.count;
  }

  setState(shard: NegativeCache, step: number): void {
    this.cacheManager.checkCache('setState', shard, 'shard');
    if (!Number.isInteger(step) || step < 0)
      throw new ArgumentError('setState', `step must be a non-negative integer, got ${describe(step)}`);
    this.shard = shard;
    this.count = step;
  }

  async computeLoss(
    docNetwork: DocNetwork,
    q: Tensor,
    p: Tensor,
    features: Readonly<Record<string, Tensor>>,
    opts: { positiveIds?: Tensor } = {},
  ): Promise<ShardedStep> {
    const op = 'ShardedCacheLossHandler.computeLoss';
    if (opts === null || typeof opts !== 'object' || Array.isArray(opts))
      throw new ArgumentError(op, `options must be an object like {positiveIds}, got ${describe(opts)}`);
    const newItems = newItemsOf(op, this.loss.local, features, p);
    this.cacheManager.validateUpdate(this.shard, { newItems });
    const base = this.shard;
    const out = await this.loss.call(this.ctx, docNetwork, q, p, { [SOURCE]: base }, opts);
    return { ...out, metrics: metricsOf(out, this.count + 1), pending: { base, newItems, committed: false } };
  }

  /** Local: own new items, plus the routed refreshes of this shard's sampled items. */
  commit(step: ShardedStep, opts: { gradients?: unknown } = {}): void {
    const op = 'ShardedCacheLossHandler.commit';
    const pending = checkStep(op, step?.pending, this.shard);
    checkCommitOptions(op, opts);
    const data = step.updatedItemData[SOURCE];
    if (this.rejectNonFinite) {
      for (const k of ['trainingLoss', 'interpretableLoss'] as const) checkFinite(op, k, step[k]);
      checkFinite(op, 'gradients', opts.gradients);
      checkFinite(op, 'newItems', pending.newItems);
      if (data) checkRoutedRefresh(op, data, step.updatedItemMask[SOURCE]!, this.ctx.numReplicas);
    }
    const update: CacheUpdate = { newItems: pending.newItems };
    if (data) {
      update.updatedItemData = data;
      update.updatedItemIndices = step.updatedItemIndices[SOURCE]!;
      update.updatedItemMask = step.updatedItemMask[SOURCE]!;
    }
    this.shard = this.cacheManager.updateCache(this.shard, update);
    pending.committed = true;
    this.count++;
    this.onMetrics?.(step.metrics);
  }
}

export interface ReplicatedStep extends CacheLossReturn {
  metrics: StepMetrics;
  readonly pending: Pending;
}

export class ReplicatedCacheLossHandler {
  private copy: NegativeCache;
  private count = 0;
  readonly rejectNonFinite: boolean;
  readonly onMetrics: ((m: StepMetrics) => void) | undefined;

  constructor(
    readonly ctx: ReplicaContext,
    readonly cacheManager: CacheManager,
    readonly loss: CacheClassificationLoss,
    opts: HandlerOptions = {},
  ) {
    checkArgs('ReplicatedCacheLossHandler', ctx, cacheManager, keysOf(loss), 'CacheClassificationLoss', opts);
    this.copy = cacheManager.initCache();
    this.rejectNonFinite = opts.rejectNonFinite ?? true;
    this.onMetrics = opts.onMetrics;
  }

  get cache(): NegativeCache {
    return this.copy;
  }

  get step(): number {
    return this.count;
  }

  computeLoss(
    docNetwork: DocNetwork,
    q: Tensor,
    p: Tensor,
    features: Readonly<Record<string, Tensor>>,
    opts: { positiveIds?: Tensor } = {},
  ): ReplicatedStep {
    const op = 'ReplicatedCacheLossHandler.computeLoss';
    const newItems = newItemsOf(op, this.loss, features, p);
    this.cacheManager.validateUpdate(this.copy, { newItems });
    const base = this.copy;
    const out = this.loss.call(docNetwork, q, p, { [SOURCE]: base }, opts);
    return { ...out, metrics: metricsOf(out, this.count + 1), pending: { base, newItems, committed: false } };
  }

  /**
   * All-gathers every replica's new items and refreshes, then applies them
   * (replica order) to this replica's copy: all copies stay identical. A
   * non-finite step on any replica (or one it cannot commit: stale or
   * already committed) is rejected on every replica (the check result is
   * all-gathered too), leaving every copy unchanged.
   */
  async commit(step: ReplicatedStep, opts: { gradients?: unknown } = {}): Promise<void> {
    const op = 'ReplicatedCacheLossHandler.commit';
    // Every check is folded into the all-gathered flag (1: non-finite values,
    // 2: not a step it could commit), so a replica that rejects never leaves
    // the others waiting in the collective, and all of them reject together.
    let pending: Pending | undefined;
    let bad: unknown = null;
    let flag = 0;
    try {
      pending = checkStep(op, step?.pending, this.copy);
      checkCommitOptions(op, opts);
    } catch (e) {
      bad = e;
      flag = 2;
    }
    if (bad === null && pending !== undefined && this.rejectNonFinite) {
      try {
        for (const k of ['trainingLoss', 'interpretableLoss'] as const) checkFinite(op, k, step[k]);
        checkFinite(op, 'gradients', opts.gradients);
        checkFinite(op, 'newItems', pending.newItems);
        checkFinite(op, 'updatedItemData', step.updatedItemData[SOURCE]);
      } catch (e) {
        bad = e;
        flag = 1;
      }
    }
    const flags = Array.from(unsafeData(await this.ctx.allGather(wrap(Int32Array.of(flag), [1], 'int32'))));
    if (bad !== null) throw bad;
    const failed = flags.findIndex((v) => v !== 0);
    if (failed >= 0) {
      throw new ArgumentError(
        op,
        `replica ${failed} rejected its step (${flags[failed] === 1 ? 'non-finite values' : 'not a step it could commit'}); no replica updated its cache`,
      );
    }
    if (pending === undefined) throw new ArgumentError(op, 'step must come from computeLoss'); // unreachable: bad was set
    const keys = Object.keys(pending.newItems).sort();
    const gathered: Record<string, Tensor> = {};
    for (const k of keys) gathered[k] = await this.ctx.allGather(pending.newItems[k]!);
    const emb = this.loss.embeddingKey;
    const refData = await this.ctx.allGather(step.updatedItemData[SOURCE]![emb]!);
    const refIdx = await this.ctx.allGather(step.updatedItemIndices[SOURCE]!);
    const refMask = await this.ctx.allGather(step.updatedItemMask[SOURCE]!);
    this.copy = this.cacheManager.updateCache(this.copy, {
      newItems: gathered,
      updatedItemData: { [emb]: refData },
      updatedItemIndices: refIdx,
      updatedItemMask: refMask,
    });
    pending.committed = true;
    this.count++;
    this.onMetrics?.(step.metrics);
  }
}
