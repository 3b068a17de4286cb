/**
 * The sharded cache classification loss (reference:
 * losses.DistributedCacheClassificationLoss). Every replica holds one shard
 * of the cache; together they behave as one cache whose items are the
 * shards concatenated in replica order. Per step, on every replica:
 *
 *  1. all-gather the queries of all replicas: [R·b, d] in replica order;
 *  2. retrieve from the local shard for ALL gathered queries (with topK,
 *     floor(topK / R) candidates per shard): per query a locally sampled
 *     item (its data and cached embedding) and w = logSumExp of the query's
 *     local candidate scores;
 *  3. all-to-all: each replica receives, for its own b queries, the R weights
 *     [b, R] and the R locally sampled items [b, R, ...];
 *  4. pick one shard per query by sampling over the R weights (Gumbel-max as
 *     in the reference, or exact categorical). Drawing a shard by its total
 *     softmax mass exp(w_r) and then an item within it by its local softmax is
 *     drawing from the softmax over the union;
 *  5. the loss as in CacheClassificationLoss with the R weights in place of
 *     the cache scores in probPos: logSumExp over [s⁺, w_1..w_R] is the
 *     logSumExp over [s⁺, all union scores].
 *
 * Collectives carry no gradient. None is needed: only probPos and the
 * sampled item depend on other replicas, and both are constants; the
 * gradient of the training loss flows through this replica's own queries,
 * positives and doc network.
 *
 * Beyond the reference, which returns no refresh data from the sharded loss
 * (`refreshShards: false` reproduces that): with `refreshShards` (default
 * true) the fresh embedding of every sampled item is routed back, with one
 * more all-to-all, to the replica whose shard holds it, so each replica gets
 * refresh data (indices into its own shard) for the items sampled from it.
 */
import { ArgumentError, ShapeError, checkOptions, describe } from '../errors.js';
import { shapesEqual } from '../tensor/shape.js';
import { isTensor, unsafeData, wrap, type Tensor } from '../tensor/tensor.js';
import type { Rng } from '../tensor/random.js';
import { stopGradient } from '../autograd/transforms.js';
import { logSumExp } from '../ops/reduce.js';
import { reshape } from '../ops/layout.js';
import type { NegativeCache } from '../cache/negativeCache.js';
import type { RetrievalFn } from '../retrieval/retrieval.js';
import type { ReplicaContext } from '../distributed/replicaContext.js';
import {
  CacheClassificationLoss,
  type CacheLossReturn,
  type CacheClassificationLossOptions,
} from './cacheClassificationLoss.js';
import { checkCaches } from './validate.js';
import { refreshData } from './refresh.js';
import { checkQueryAndPositives, retrievalFrom, type DocNetwork, type Sampler } from './common.js';

export interface DistributedCacheClassificationLossOptions extends CacheClassificationLossOptions {
  /** Route refresh data back to the shard that holds each sampled item (default true; false = the reference). */
  refreshShards?: boolean;
  /** Samples the shard from the weights [b, R] (default: the loss's sampler over `rng`). */
  shardRetrievalFn?: RetrievalFn;
}

/**
 * As CacheLossReturn, except: `retrievedIndices` is the sampled item's index
 * within the selected replica's shard (see `selectedReplica`), and the
 * refresh data is for this replica's own shard.
 */
export interface DistributedCacheLossReturn extends Omit<
  CacheLossReturn,
  'updatedItemData' | 'updatedItemIndices' | 'updatedItemMask'
> {
  /** With refreshShards: refresh data for THIS replica's shard (per data source); otherwise null per source. */
  updatedItemData: Record<string, Record<string, Tensor> | null>;
  updatedItemIndices: Record<string, Tensor | null>;
  updatedItemMask: Record<string, Tensor | null>;
  /** int32 [b]: the shard (replica) each query's negative came from. */
  selectedReplica: Tensor;
  /** float [b, R]: the shards' logSumExp weights (constants). */
  shardWeights: Tensor;
}

export class DistributedCacheClassificationLoss {
  /** Local retrieval and the loss arithmetic are the single-cache loss's. */
  readonly local: CacheClassificationLoss;
  readonly shardRetrievalFn: RetrievalFn;
  readonly refreshShards: boolean;
  readonly topK: number | undefined;

  constructor(opts: DistributedCacheClassificationLossOptions) {
    const op = 'DistributedCacheClassificationLoss';
    if (opts === null || typeof opts !== 'object')
      throw new ArgumentError(op, `options must be an object, got ${describe(opts)}`);
    const { refreshShards, shardRetrievalFn, ...single } = opts;
    if (refreshShards !== undefined && typeof refreshShards !== 'boolean')
      throw new ArgumentError(op, `refreshShards must be true or false, got ${describe(refreshShards)}`);
    this.local = new CacheClassificationLoss(single);
    const e = this.local.estimator;
    if (e.numNegatives !== 1 || e.inBatchNegatives || e.queryGradient !== 'sampled')
      throw new ArgumentError(
        op,
        'the sharded loss implements the reference estimator only: numNegatives must be 1, inBatchNegatives false and queryGradient sampled',
      );
    this.topK = single.topK;
    this.refreshShards = refreshShards ?? true;
    this.shardRetrievalFn =
      shardRetrievalFn !== undefined
        ? retrievalFrom(op, { retrievalFn: shardRetrievalFn })
        : single.retrievalFn !== undefined && single.rng === undefined
          ? single.retrievalFn
          : retrievalFrom(op, { rng: single.rng as Rng, sampler: (single.sampler ?? 'gumbel') as Sampler });
  }

  /**
   * Computes this replica's losses. Every replica must call it in the same
   * step with its own queries, positives and shard (`cache`: data source ->
   * this replica's NegativeCache). Returns once the collectives complete.
   */
  async call(
    ctx: ReplicaContext,
    docNetwork: DocNetwork,
    queryEmbeddings: Tensor,
    posDocEmbeddings: Tensor,
    cache: Readonly<Record<string, NegativeCache>>,
    opts: { positiveIds?: Tensor } = {},
  ): Promise<DistributedCacheLossReturn> {
    const op = 'DistributedCacheClassificationLoss';
    checkOptions(op, opts, ['positiveIds'], { required: true });
    if (ctx === null || typeof ctx !== 'object' || typeof ctx.allGather !== 'function')
      throw new ArgumentError(op, `ctx must be a ReplicaContext, got ${describe(ctx)}`);
    if (typeof docNetwork !== 'function')
      throw new ArgumentError(
        op,
        `docNetwork must be a function (features) => embeddings, got ${describe(docNetwork)}`,
      );
    const R = ctx.numReplicas;
    const { b, d } = checkQueryAndPositives(op, queryEmbeddings, posDocEmbeddings);
    const loss = this.local;
    const sources = checkCaches(op, cache, loss.embeddingKey, loss.dataKeys, d, loss.falseNegativeKey);
    const posIds = loss.checkPositiveIds(op, opts.positiveIds, b);
    let topK: number | undefined;
    if (this.topK !== undefined) {
      topK = Math.floor(this.topK / R);
      if (topK < 1)
        throw new ArgumentError(
          op,
          `topK = ${this.topK} gives floor(topK / R) = 0 candidates per shard with R = ${R} replicas; need topK >= R`,
        );
    }

    // 1. all queries (and positive ids, for false-negative masking), replica order
    const allQ = await ctx.allGather(stopGradient(queryEmbeddings));
    if (allQ.shape[0] !== R * b)
      throw new ShapeError(
        op,
        `replicas must have equal batch sizes: gathered ${allQ.shape[0]} queries, need ${R} × ${b}`,
      );
    const allIds = posIds ? (unsafeData(await ctx.allGather(wrap(posIds.slice(), [b], 'int32'))) as Int32Array) : null;

    // 2. local retrieval for all R·b queries; w = logSumExp of local candidate scores
    const r = loss.retrieveFrom(allQ, cache, sources, allIds, topK);
    const w = logSumExp(r.scores, { axis: 1 }); // [R·b], -Infinity where the shard has no candidate

    // 3. all-to-all: [R·b, 1, ...] split on axis 0, concatenated on axis 1 -> [b, R, ...]
    const toLocal = (t: Tensor): Promise<Tensor> =>
      ctx.allToAll(reshape(t, [R * b, 1, ...t.shape.slice(1)]), { splitAxis: 0, concatAxis: 1 });
    const weights = reshape(await toLocal(w), [b, R]);
    const data: Record<string, Tensor> = {};
    for (const key of loss.dataKeys) data[key] = await toLocal(r.retrievedData[key]!);
    const cachedEmb = await toLocal(r.retrievedCacheEmbeddings);
    const localIdx = reshape(await toLocal(wrap(r.indices.slice(), [R * b], 'int32')), [b, R]);

    // 4. one shard per query, by its mass
    const picked = this.shardRetrievalFn(weights);
    if (!isTensor(picked) || picked.dtype !== 'int32' || !shapesEqual(picked.shape, [b, 1])) {
      throw new ArgumentError(op, `shardRetrievalFn must return int32 [${b}, 1], got ${describe(picked)}`);
    }
    const shard = Int32Array.from(unsafeData(picked) as Int32Array);
    const wd = unsafeData(weights);
    const hasNegative = new Uint8Array(b);
    for (let i = 0; i < b; i++) {
      if (shard[i]! < 0 || shard[i]! >= R)
        throw new ArgumentError(op, `shardRetrievalFn returned ${shard[i]} for query ${i}; need 0 <= shard < ${R}`);
      for (let s = 0; s < R; s++)
        if (wd[i * R + s] !== -Infinity) {
          hasNegative[i] = 1;
          break;
        }
    }
    const pick = (t: Tensor): Tensor => {
      // row i of the result = t[i, shard[i], ...]
      const inner = t.size / (b * R);
      const src = unsafeData(t);
      const out = src.slice(0, b * inner);
      for (let i = 0; i < b; i++)
        out.set(src.subarray((i * R + shard[i]!) * inner, (i * R + shard[i]! + 1) * inner), i * inner);
      return wrap(out, [b, ...t.shape.slice(2)], t.dtype);
    };
    const retrievedData: Record<string, Tensor> = {};
    for (const key of loss.dataKeys) retrievedData[key] = pick(data[key]!);
    const retrievedCacheEmbeddings = pick(cachedEmb);
    const li = unsafeData(localIdx) as Int32Array;
    const chosenLocal = Int32Array.from({ length: b }, (_, i) => li[i * R + shard[i]!]!);

    // 5. the loss with the R weights standing in for the cache scores
    const fresh = docNetwork(retrievedData);
    if (!isTensor(fresh) || !shapesEqual(fresh.shape, [b, d]))
      throw new ShapeError(op, `docNetwork must return [${b}, ${d}] embeddings, got ${describe(fresh)}`);
    const terms = loss.lossTerms(queryEmbeddings, posDocEmbeddings, fresh, {
      scores: weights,
      hasNegative,
      retrievedCacheEmbeddings,
      indices: chosenLocal,
    });

    let refresh: Pick<DistributedCacheLossReturn, 'updatedItemData' | 'updatedItemIndices' | 'updatedItemMask'>;
    if (this.refreshShards) {
      // Route (fresh embedding, local index, mask) of query i to replica shard[i]:
      // piece t of the [R·b] send buffers holds this replica's b queries, masked to those that chose shard t.
      const fr = unsafeData(stopGradient(fresh));
      const sendEmb = new (fr.constructor as Float32ArrayConstructor)(R * b * d);
      const sendIdx = new Int32Array(R * b);
      const sendMask = new Uint8Array(R * b);
      for (let t = 0; t < R; t++) {
        sendEmb.set(fr as Float32Array, t * b * d);
        for (let i = 0; i < b; i++) {
          sendIdx[t * b + i] = chosenLocal[i]!;
          sendMask[t * b + i] = hasNegative[i] && shard[i] === t ? 1 : 0;
        }
      }
      const recvEmb = await ctx.allToAll(wrap(sendEmb, [R * b, d], fresh.dtype), { splitAxis: 0, concatAxis: 0 });
      const recvIdx = unsafeData(
        await ctx.allToAll(wrap(sendIdx, [R * b], 'int32'), { splitAxis: 0, concatAxis: 0 }),
      ) as Int32Array;
      const recvMask = unsafeData(
        await ctx.allToAll(wrap(sendMask, [R * b], 'bool'), { splitAxis: 0, concatAxis: 0 }),
      ) as Uint8Array;
      refresh = refreshData(cache, sources, loss.embeddingKey, recvIdx, recvMask, recvEmb);
    } else {
      refresh = {
        updatedItemData: Object.fromEntries(sources.map((s) => [s, null])),
        updatedItemIndices: Object.fromEntries(sources.map((s) => [s, null])),
        updatedItemMask: Object.fromEntries(sources.map((s) => [s, null])),
      };
    }
    return { ...terms, ...refresh, selectedReplica: wrap(shard, [b], 'int32'), shardWeights: weights };
  }
}
