/**
 * Fuzz Defs (see harness.ts and fuzz.test.ts) for the multi-cache handler and
 * the cross-replica API: MultiCacheLossHandler, DistributedCacheClassificationLoss,
 * ShardedCacheLossHandler and ReplicatedCacheLossHandler.
 *
 * The cross-replica calls run in a replica group of R = 2 under runInProcess
 * (`inGroup`). Every replica builds its own valid state (shard or copy, loss,
 * generator), snapshots it, and makes the malformed call (the same on every
 * replica, or on one replica only, as the kind says). The contract, checked
 * per replica: a replica's call either succeeds or throws a NegcacheError (a
 * CollectiveAbortedError when another replica's failure aborted a collective
 * it waits in), never a plain TypeError, and leaves that replica's state
 * bit-identical when it throws; the group then rejects with a
 * ReplicaGroupError (a NegcacheError naming the replica that failed first),
 * which is what the harness sees. Nothing may hang: a group that does not
 * settle within its timeout fails.
 */
import fc from 'fast-check';
import {
  ArgumentError,
  CacheClassificationLoss,
  CacheManager,
  DistributedCacheClassificationLoss,
  MultiCacheLossHandler,
  NegcacheError,
  NonFiniteError,
  ReplicatedCacheLossHandler,
  Rng,
  ShardedCacheLossHandler,
  ShapeError,
  gatherRows,
  runInProcess,
  scaleTransform,
  type DType,
  type NegativeCache,
  type ReplicaContext,
  type Tensor,
} from '../../src/index.js';
import { type Call, type Def, def, defAsync, garbage, ints, mk, seed, snap, withValue, nonFinite } from './harness.js';

const call = (c: Call): Call => c;
const DIM = 3;
const NUM_DOCS = 12;
const R = 2;
const SPECS = () => ({
  emb: { shape: [DIM], dtype: 'float32' as DType },
  id: { shape: [] as number[], dtype: 'int32' as DType },
});
const docEmb = (k: number): Tensor => mk([NUM_DOCS, DIM], 'float32', k + 100);
const docNetOf =
  (emb: Tensor) =>
  (f: Record<string, Tensor>): Tensor =>
    gatherRows(emb, f['id']!);

interface Batch {
  ids: Tensor;
  q: Tensor;
  p: Tensor;
}

function batchOf(emb: Tensor, k: number, b = 3): Batch {
  const ids = ints(Array.from({ length: b }, (_, i) => (k * 5 + i * 7) % NUM_DOCS));
  return { ids, q: mk([b, DIM], 'float32', k), p: docNetOf(emb)({ id: ids }) };
}

function lossOf(rng: Rng, extra: Record<string, unknown> = {}): CacheClassificationLoss {
  return new CacheClassificationLoss({
    embeddingKey: 'emb',
    dataKeys: ['id'],
    scoreTransform: scaleTransform(2),
    rng,
    ...extra,
  });
}

// ================================================================================================ multi-cache

interface MultiSetup {
  h: MultiCacheLossHandler;
  rng: Rng;
  emb: Tensor;
}

/** Two sources "a" and "b" with a few committed steps. */
function multiSetup(k: number): MultiSetup {
  const rng = new Rng(k);
  const h = new MultiCacheLossHandler({
    cacheManagers: {
      a: new CacheManager({ specs: SPECS(), cacheSize: 6 }),
      b: new CacheManager({ specs: SPECS(), cacheSize: 4 }),
    },
    loss: lossOf(rng, { sampler: k % 2 ? 'categorical' : 'gumbel' }),
  });
  const emb = docEmb(k);
  for (let w = 0; w < 2; w++) {
    const b = batchOf(emb, k + w + 1);
    h.updateCacheAndComputeLoss(docNetOf(emb), b.q, b.p, { a: { emb: b.p, id: b.ids }, b: { emb: b.p, id: b.ids } });
  }
  return { h, rng, emb };
}

export function multiCacheHandlerDefs(): Def[] {
  const out: Def[] = [];
  const H = (o: unknown): MultiCacheLossHandler => new MultiCacheLossHandler(o as never);
  const managers = (): Record<string, CacheManager> => ({
    a: new CacheManager({ specs: SPECS(), cacheSize: 4 }),
    b: new CacheManager({ specs: SPECS(), cacheSize: 4 }),
  });
  out.push(
    def('MultiCacheLossHandler', 'opts:wrong-kind', 'throws', garbage(), (o) =>
      call({ run: () => H(o), errorClass: ArgumentError }),
    ),
    def(
      'MultiCacheLossHandler',
      'cacheManagers:empty-or-wrong-kind',
      'throws',
      fc.tuple(fc.oneof(garbage(), fc.constant({})), seed()),
      ([g, k]) => call({ run: () => H({ cacheManagers: g, loss: lossOf(new Rng(k)) }), errorClass: ArgumentError }),
    ),
    def('MultiCacheLossHandler', 'cacheManagers:entry-wrong-kind', 'throws', fc.tuple(garbage(), seed()), ([g, k]) =>
      call({
        run: () => H({ cacheManagers: { ...managers(), b: g }, loss: lossOf(new Rng(k)) }),
        errorClass: ArgumentError,
      }),
    ),
    def('MultiCacheLossHandler', 'loss:wrong-kind', 'throws', garbage(), (g) =>
      call({ run: () => H({ cacheManagers: managers(), loss: g }), errorClass: ArgumentError }),
    ),
    def(
      'MultiCacheLossHandler',
      'specs:missing-loss-key',
      'throws',
      fc.tuple(fc.constantFrom('emb', 'id'), fc.constantFrom('a', 'b'), seed()),
      ([missing, source, k]) => {
        const specs = SPECS() as Record<string, unknown>;
        delete specs[missing];
        const m = { ...managers(), [source]: new CacheManager({ specs: specs as never, cacheSize: 4 }) };
        return call({ run: () => H({ cacheManagers: m, loss: lossOf(new Rng(k)) }), errorClass: ArgumentError });
      },
    ),
    def(
      'MultiCacheLossHandler',
      'options:bad',
      'throws',
      fc.tuple(
        fc.constantFrom<[string, unknown]>(
          ['rejectNonFinite', 'no'],
          ['rejectNonFinite', 0],
          ['onMetrics', 1],
          ['onMetrics', {}],
        ),
        seed(),
      ),
      ([[key, v], k]) =>
        call({
          run: () => H({ cacheManagers: managers(), loss: lossOf(new Rng(k)), [key]: v }),
          errorClass: ArgumentError,
        }),
    ),
  );
  // computeLoss + commit with one thing broken.
  type S = {
    s: MultiSetup;
    docNet: unknown;
    q: unknown;
    p: unknown;
    newItems: Record<string, unknown>;
    mask: unknown;
    opts: unknown;
    commit: (h: MultiCacheLossHandler, step: unknown) => void;
  };
  const base = (k: number): S => {
    const s = multiSetup(k);
    const b = batchOf(s.emb, k + 50);
    return {
      s,
      docNet: docNetOf(s.emb),
      q: b.q,
      p: b.p,
      newItems: { a: { emb: b.p, id: b.ids }, b: { emb: b.p, id: b.ids } },
      mask: {},
      opts: undefined,
      commit: (h, step) => h.commit(step as never),
    };
  };
  // afterSampling: rejected after the negatives were drawn (by design the generator moved; the handler must not).
  const mc = (
    kind: string,
    mode: 'throws' | 'either' | 'valid',
    mutate: fc.Arbitrary<(c: S) => void>,
    afterSampling = false,
    errorClass?: typeof ArgumentError | typeof ShapeError | typeof NonFiniteError,
  ): Def =>
    def('MultiCacheLossHandler.computeLoss+commit', kind, mode, fc.tuple(mutate, seed()), ([f, k]) => {
      const c = base(k);
      f(c);
      return call({
        run: () => {
          const step = c.s.h.computeLoss(
            c.docNet as never,
            c.q as Tensor,
            c.p as Tensor,
            c.newItems as never,
            c.mask as never,
            c.opts as never,
          );
          c.commit(c.s.h, step);
          return step.metrics;
        },
        inputs: [c.q, c.p, c.newItems, c.mask],
        state: afterSampling ? c.s.h : [c.s.h, c.s.rng],
        ...(errorClass ? { errorClass } : {}),
      });
    });
  out.push(
    mc(
      'valid',
      'either',
      fc.constant(() => undefined),
    ),
    mc(
      'newItems:wrong-kind',
      'throws',
      garbage()
        .filter((g) => g !== undefined)
        .map((g) => (c) => {
          c.newItems = g as never;
        }),
    ),
    mc(
      'newItems:missing-or-unknown-source',
      'throws',
      fc.constantFrom<(c: S) => void>(
        (c) => {
          delete c.newItems['b'];
        },
        (c) => {
          c.newItems = {};
        },
        (c) => {
          c.newItems['c'] = c.newItems['a'];
        },
      ),
      false,
      ArgumentError,
    ),
    mc(
      'newItems:source-wrong-kind',
      'throws',
      fc.tuple(garbage(), fc.constantFrom('a', 'b')).map(([g, s]) => (c) => {
        c.newItems[s] = g;
      }),
    ),
    mc(
      'newItems:key-missing-or-extra',
      'throws',
      fc.constantFrom<(c: S) => void>(
        (c) => {
          delete (c.newItems['a'] as Record<string, unknown>)['id'];
        },
        (c) => {
          c.newItems['b'] = { ...(c.newItems['b'] as object), extra: mk([3]) };
        },
      ),
    ),
    mc(
      'newItems:wrong-shape-or-dtype',
      'throws',
      fc
        .constantFrom<[string, Tensor]>(
          ['emb', mk([3, DIM + 1])],
          ['emb', mk([2, DIM])],
          ['id', mk([3], 'float32')],
          ['id', ints([1, 2, 3, 4])],
          ['emb', mk([3, DIM], 'int32')],
        )
        .map(([key, t]) => (c) => {
          c.newItems['b'] = { ...(c.newItems['b'] as object), [key]: t };
        }),
    ),
    mc(
      'newItems:non-finite',
      'throws',
      fc.tuple(nonFinite(), fc.nat(8)).map(([v, at]) => (c) => {
        const a = c.newItems['a'] as Record<string, Tensor>;
        c.newItems['a'] = { ...a, emb: withValue(a['emb']!, v, at) };
      }),
      true,
      NonFiniteError,
    ),
    mc(
      'newItemsMask:bad',
      'throws',
      fc.constantFrom<unknown>(mk([3]), ints([1, 0, 1]), mk([2], 'bool'), 'x', 3).map((v) => (c) => {
        c.mask = { a: v };
      }),
    ),
    mc(
      'q-or-p:wrong-kind-or-shape',
      'throws',
      fc
        .tuple(fc.oneof(garbage(), fc.constantFrom<unknown>(mk([3, DIM + 1]), mk([0, DIM]), mk([3]))), fc.boolean())
        .map(([g, first]) => (c) => {
          if (first) c.q = g;
          else c.p = g;
        }),
    ),
    mc(
      'docNetwork:wrong-kind',
      'throws',
      garbage()
        .filter((g) => typeof g !== 'function') // a function returning garbage is its own kind
        .map((g) => (c) => {
          c.docNet = g;
        }),
    ),
    mc(
      'docNetwork:returns-garbage',
      'throws',
      fc.constantFrom<unknown>(undefined, 1, mk([3, DIM + 1]), mk([2, DIM])).map((g) => (c) => {
        c.docNet = () => g;
      }),
      true,
    ),
    mc(
      'opts:bad',
      'throws',
      fc
        .constantFrom<unknown>('x', 3, [], { positiveIds: mk([3]) }, { positiveIds: ints([1, 2]) }, { bogus: 1 })
        .map((o) => (c) => {
          c.opts = o;
        }),
    ),
    mc(
      'commit:step-or-options-wrong-kind',
      'throws',
      fc
        .tuple(
          // commit(step, undefined) is commit(step), and an object without own keys is empty options
          garbage().filter(
            (g) =>
              g !== undefined &&
              !(typeof g === 'object' && g !== null && !Array.isArray(g) && Object.keys(g).length === 0),
          ),
          fc.boolean(),
        )
        .map(([g, asStep]) => (c) => {
          c.commit = (h, step) => (asStep ? h.commit(g as never) : h.commit(step as never, g as never));
        }),
      true,
    ),
    mc(
      'commit:gradients-non-finite',
      'throws',
      fc.tuple(nonFinite(), fc.nat(5)).map(([v, at]) => (c) => {
        c.commit = (h, step) => h.commit(step as never, { gradients: { w: withValue(mk([2, 3]), v, at) } });
      }),
      true,
      NonFiniteError,
    ),
  );
  // A step committed twice, or after another step was committed: the state after the valid commits must stay.
  out.push(
    def(
      'MultiCacheLossHandler.commit',
      'step:already-committed-or-stale',
      'throws',
      fc.tuple(fc.boolean(), seed()),
      ([stale, k]) => {
        const c = base(k);
        const step = c.s.h.computeLoss(docNetOf(c.s.emb), c.q as Tensor, c.p as Tensor, c.newItems as never);
        if (stale) {
          const b = batchOf(c.s.emb, 99);
          c.s.h.updateCacheAndComputeLoss(docNetOf(c.s.emb), b.q, b.p, {
            a: { emb: b.p, id: b.ids },
            b: { emb: b.p, id: b.ids },
          });
        } else c.s.h.commit(step);
        return call({ run: () => c.s.h.commit(step), state: [c.s.h, c.s.rng], errorClass: ArgumentError });
      },
    ),
  );
  // setState
  out.push(
    def(
      'MultiCacheLossHandler.setState',
      'caches-or-step:bad',
      'throws',
      fc.tuple(
        fc.constantFrom<(s: MultiSetup) => [unknown, unknown]>(
          (s) => [null, 1],
          (s) => ['x', 1],
          (s) => [{ a: s.h.cache['a'] }, 1],
          (s) => [{ ...s.h.cache, a: { data: {}, age: ints([0]) } }, 1],
          (s) => [
            { ...s.h.cache, a: { ...s.h.cache['a']!, data: { emb: mk([6, DIM + 1]), id: ints([0, 1, 2, 3, 4, 5]) } } },
            1,
          ],
          (s) => [s.h.cache, -1],
          (s) => [s.h.cache, 1.5],
          (s) => [s.h.cache, NaN],
          (s) => [s.h.cache, '3'],
        ),
        seed(),
      ),
      ([f, k]) => {
        const s = multiSetup(k);
        const [caches, step] = f(s);
        return call({
          run: () => s.h.setState(caches as never, step as never),
          inputs: caches,
          state: s.h,
        });
      },
      10,
    ),
  );
  return out;
}

// ================================================================================================ replica groups

/**
 * Runs `body` on every replica of a group of R, returning the replicas'
 * results; see the module comment for what is checked per replica. `build`
 * makes a replica's valid state (it may use collectives), `state` picks what
 * must be unchanged after a rejection, `act` makes the call (calling
 * `rebase()` after a valid first part, e.g. the first of two commits, so that
 * the state after it is what must stay unchanged).
 */
function inGroup<S>(
  build: (ctx: ReplicaContext) => Promise<S> | S,
  state: (s: S) => unknown,
  act: (s: S, ctx: ReplicaContext, rebase: () => void) => unknown,
): () => Promise<unknown[]> {
  return async () => {
    const violations: string[] = [];
    try {
      return await runInProcess(
        R,
        async (ctx) => {
          let s: S;
          try {
            s = await build(ctx);
          } catch (e) {
            violations.push(`replica ${ctx.replicaId}: test setup failed: ${String(e)}`);
            throw e;
          }
          let before = JSON.stringify(snap(state(s)));
          const rebase = (): void => {
            before = JSON.stringify(snap(state(s)));
          };
          try {
            return await act(s, ctx, rebase);
          } catch (e) {
            if (!(e instanceof NegcacheError))
              violations.push(
                `replica ${ctx.replicaId} threw a plain ${e instanceof Error ? `${e.name}: ${e.message}\n${e.stack?.split('\n').slice(1, 5).join('\n')}` : String(e)}`,
              );
            else if (JSON.stringify(snap(state(s))) !== before)
              violations.push(`replica ${ctx.replicaId}: a rejected call (${e.message}) changed its state`);
            throw e;
          }
        },
        { timeoutMs: 10_000 },
      );
    } catch (e) {
      if (violations.length > 0) throw new Error(violations.join('\n'));
      throw e;
    }
  };
}

/** Replica r's batch (its own ids, so the replicas' items differ). */
const replicaBatch = (emb: Tensor, k: number, r: number, b = 3): Batch => batchOf(emb, k * 3 + r * 11, b);

/** A replica's shard manager with some items in the shard. */
function warmShard(k: number, r: number, size = 4): { m: CacheManager; shard: NegativeCache } {
  const m = new CacheManager({ specs: SPECS(), cacheSize: size });
  const b = replicaBatch(docEmb(k), k + 7, r);
  return { m, shard: m.updateCache(m.initCache(), { newItems: { emb: b.p, id: b.ids } }) };
}

// ------------------------------------------------------------------------ DistributedCacheClassificationLoss

export function distributedLossDefs(): Def[] {
  const out: Def[] = [];
  const L = (o: unknown): DistributedCacheClassificationLoss => new DistributedCacheClassificationLoss(o as never);
  const good = (k: number): Record<string, unknown> => ({ embeddingKey: 'emb', dataKeys: ['id'], rng: new Rng(k) });
  out.push(
    def('DistributedCacheClassificationLoss', 'opts:wrong-kind', 'throws', garbage(), (o) =>
      call({ run: () => L(o), errorClass: ArgumentError }),
    ),
    def(
      'DistributedCacheClassificationLoss',
      'options:bad',
      'throws',
      fc.tuple(
        fc.constantFrom<[string, unknown]>(
          ['refreshShards', 'yes'],
          ['refreshShards', 1],
          ['shardRetrievalFn', 3],
          ['shardRetrievalFn', 'gumbel'],
          ['embeddingKey', undefined],
          ['embeddingKey', ''],
          ['dataKeys', 'id'],
          ['rng', 3],
          ['sampler', 'greedy'],
          ['topK', 0],
          ['bogus', 1],
        ),
        seed(),
      ),
      ([[key, v], k]) => {
        const o = good(k);
        if (v === undefined) delete o[key];
        else o[key] = v;
        return call({ run: () => L(o), state: o['rng'], errorClass: ArgumentError });
      },
    ),
  );
  // call in a group: every replica with its own shard, generator and batch; `mutate` breaks it on replica r.
  type C = {
    loss: DistributedCacheClassificationLoss;
    rng: Rng;
    shard: NegativeCache;
    ctx: unknown;
    docNet: unknown;
    q: unknown;
    p: unknown;
    cache: unknown;
    opts: unknown;
  };
  const dl = (
    kind: string,
    mode: 'throws' | 'either' | 'valid',
    mutate: fc.Arbitrary<(c: C, r: number) => void>,
    lossOpts: (k: number) => Record<string, unknown> = () => ({}),
    afterSampling = false,
  ): Def =>
    defAsync(
      'DistributedCacheClassificationLoss.call',
      kind,
      mode,
      fc.tuple(mutate, seed()),
      ([f, k]) => {
        const emb = docEmb(k);
        const batches = Array.from({ length: R }, (_, r) => replicaBatch(emb, k, r));
        return call({
          run: inGroup(
            (ctx): C => {
              const r = ctx.replicaId;
              const rng = new Rng(k * 31 + r);
              const { shard } = warmShard(k, r);
              const loss = new DistributedCacheClassificationLoss({
                embeddingKey: 'emb',
                dataKeys: ['id'],
                rng,
                sampler: k % 2 ? 'categorical' : 'gumbel',
                ...lossOpts(k),
              });
              const b = batches[r]!;
              const c: C = {
                loss,
                rng,
                shard,
                ctx,
                docNet: docNetOf(emb),
                q: b.q,
                p: b.p,
                cache: { cache: shard },
                opts: {},
              };
              f(c, r);
              return c;
            },
            // After sampling (a user callback returning garbage) the generator has moved by design.
            (c) => (afterSampling ? [c.shard] : [c.shard, c.rng]),
            (c) =>
              c.loss
                .call(
                  c.ctx as never,
                  c.docNet as never,
                  c.q as Tensor,
                  c.p as Tensor,
                  c.cache as never,
                  c.opts as never,
                )
                .then((o) => o.trainingLoss),
          ),
          inputs: batches,
        });
      },
      8,
    );
  const one = (f: (c: C) => void) => (c: C, r: number) => {
    if (r === 0) f(c);
  };
  out.push(
    dl(
      'valid',
      'valid',
      fc.constant(() => undefined),
    ),
    dl(
      'ctx:wrong-kind',
      'throws',
      garbage().map((g) => (c: C) => {
        c.ctx = g;
      }),
    ),
    dl(
      'docNetwork:wrong-kind',
      'throws',
      garbage()
        .filter((g) => typeof g !== 'function') // a function returning garbage is its own kind
        .map((g) => (c: C) => {
          c.docNet = g;
        }),
    ),
    dl(
      'q-or-p:wrong-kind-or-shape (one replica)',
      'throws',
      fc
        .tuple(fc.oneof(garbage(), fc.constantFrom<unknown>(mk([3, DIM + 1]), mk([0, DIM]), mk([3]))), fc.boolean())
        .map(([g, first]) =>
          one((c) => {
            if (first) c.q = g;
            else c.p = g;
          }),
        ),
    ),
    dl(
      'batch:unequal-across-replicas',
      'throws',
      fc.constant(
        one((c) => {
          c.q = mk([2, DIM]);
          c.p = mk([2, DIM], 'float32', 5);
        }),
      ),
    ),
    dl(
      'cache:wrong-kind-or-keys',
      'throws',
      fc
        .oneof(
          garbage(),
          fc.constantFrom<unknown>({}, { cache: null }, { cache: { data: {}, age: ints([0]) } }, { other: 1 }),
        )
        .map((g) => (c: C) => {
          c.cache = g;
        }),
    ),
    dl(
      'opts:bad',
      'throws',
      fc.constantFrom<unknown>('x', 3, { positiveIds: mk([3]) }, { positiveIds: ints([1, 2]) }).map((o) => (c: C) => {
        c.opts = o;
      }),
    ),
    dl(
      'topK:fewer-candidates-than-replicas',
      'throws',
      fc.constant(() => undefined),
      () => ({ topK: 1 }),
    ),
    dl(
      'shardRetrievalFn:returns-garbage',
      'throws',
      fc.constant(() => undefined),
      (k) => ({ shardRetrievalFn: () => [ints([0]), mk([3, 1], 'float32'), ints([5, 5, 5], [3, 1]), 'x'][k % 4] }),
      true,
    ),
    dl(
      'docNetwork:returns-garbage',
      'throws',
      fc.constantFrom<unknown>(undefined, 1, mk([3, DIM + 1]), mk([2, DIM])).map((g) => (c: C) => {
        c.docNet = () => g;
      }),
      () => ({}),
      true,
    ),
  );
  return out;
}

// ------------------------------------------------------------------------ the sharded and replicated handlers

/** A stand-in context for the constructors and setState (they make no collective). */
const LONE_CTX: ReplicaContext = {
  numReplicas: 1,
  replicaId: 0,
  allGather: () => Promise.reject(new Error('unused')),
  allToAll: () => Promise.reject(new Error('unused')),
  barrier: () => Promise.reject(new Error('unused')),
};

type HandlerKind = 'Sharded' | 'Replicated';

function handlerCtorDefs(kind: HandlerKind): Def[] {
  const name = `${kind}CacheLossHandler`;
  const make = (ctx: unknown, m: unknown, loss: unknown, opts?: unknown): unknown =>
    kind === 'Sharded'
      ? new ShardedCacheLossHandler(ctx as never, m as never, loss as never, opts as never)
      : new ReplicatedCacheLossHandler(ctx as never, m as never, loss as never, opts as never);
  const lossFor = (k: number): unknown =>
    kind === 'Sharded'
      ? new DistributedCacheClassificationLoss({ embeddingKey: 'emb', dataKeys: ['id'], rng: new Rng(k) })
      : lossOf(new Rng(k));
  const manager = (): CacheManager => new CacheManager({ specs: SPECS(), cacheSize: 4 });
  return [
    def(name, 'ctx:wrong-kind', 'throws', fc.tuple(garbage(), seed()), ([g, k]) =>
      call({ run: () => make(g, manager(), lossFor(k)), errorClass: ArgumentError }),
    ),
    def(name, 'cacheManager:wrong-kind', 'throws', fc.tuple(garbage(), seed()), ([g, k]) =>
      call({ run: () => make(LONE_CTX, g, lossFor(k)), errorClass: ArgumentError }),
    ),
    def(name, 'loss:wrong-kind', 'throws', garbage(), (g) =>
      call({ run: () => make(LONE_CTX, manager(), g), errorClass: ArgumentError }),
    ),
    def(name, 'specs:missing-loss-key', 'throws', fc.tuple(fc.constantFrom('emb', 'id'), seed()), ([missing, k]) => {
      const specs = SPECS() as Record<string, unknown>;
      delete specs[missing];
      return call({
        run: () => make(LONE_CTX, new CacheManager({ specs: specs as never, cacheSize: 4 }), lossFor(k)),
        errorClass: ArgumentError,
      });
    }),
    def(
      name,
      'options:bad',
      'throws',
      fc.tuple(
        fc.constantFrom<unknown>(
          null,
          'x',
          3,
          { rejectNonFinite: 'no' },
          { rejectNonFinite: 0 },
          { onMetrics: 1 },
          { onMetrics: {} },
          { bogus: true },
        ),
        seed(),
      ),
      ([o, k]) => call({ run: () => make(LONE_CTX, manager(), lossFor(k), o), errorClass: ArgumentError }),
    ),
  ];
}

/** One replica's handler with a warm cache (two committed steps), its generator and batch. */
type HS = {
  h: ShardedCacheLossHandler | ReplicatedCacheLossHandler;
  rng: Rng;
  emb: Tensor;
  docNet: unknown;
  q: unknown;
  p: unknown;
  features: unknown;
  opts: unknown;
  /** How the step is committed (default: once, no options). */
  commit: (h: HS['h'], step: unknown, rebase: () => void) => Promise<void> | void;
};

async function handlerSetup(kind: HandlerKind, ctx: ReplicaContext, k: number, batches: Batch[]): Promise<HS> {
  const r = ctx.replicaId;
  const rng = new Rng(k * 31 + r);
  // The replicated copy takes every replica's new items at each commit (R · b of them).
  const m = new CacheManager({ specs: SPECS(), cacheSize: kind === 'Sharded' ? 4 : 8 });
  const h =
    kind === 'Sharded'
      ? new ShardedCacheLossHandler(
          ctx,
          m,
          new DistributedCacheClassificationLoss({ embeddingKey: 'emb', dataKeys: ['id'], rng }),
        )
      : new ReplicatedCacheLossHandler(ctx, m, lossOf(rng));
  const emb = docEmb(k);
  const docNet = docNetOf(emb);
  for (let w = 0; w < 2; w++) {
    const b = replicaBatch(emb, k + w + 1, r);
    if (h instanceof ShardedCacheLossHandler) h.commit(await h.computeLoss(docNet, b.q, b.p, { id: b.ids }));
    else await h.commit(h.computeLoss(docNet, b.q, b.p, { id: b.ids }));
  }
  const b = batches[r]!;
  return {
    h,
    rng,
    emb,
    docNet,
    q: b.q,
    p: b.p,
    features: { id: b.ids },
    opts: {},
    commit: (hh, step) => hh.commit(step as never),
  };
}

function handlerStepDefs(kind: HandlerKind): Def[] {
  const entry = `${kind}CacheLossHandler.computeLoss+commit`;
  const hs = (
    k0: string,
    mode: 'throws' | 'either' | 'valid',
    mutate: fc.Arbitrary<(c: HS, r: number) => void>,
    afterSampling = false,
  ): Def =>
    defAsync(
      entry,
      k0,
      mode,
      fc.tuple(mutate, seed()),
      ([f, k]) => {
        const emb = docEmb(k);
        const batches = Array.from({ length: R }, (_, r) => replicaBatch(emb, k + 50, r));
        return call({
          run: inGroup(
            async (ctx) => {
              const c = await handlerSetup(kind, ctx, k, batches);
              f(c, ctx.replicaId);
              return c;
            },
            // After sampling the generator has moved by design; the handler (its cache and step) must not.
            (c) => (afterSampling ? [c.h.cache, c.h.step] : [c.h.cache, c.h.step, c.rng]),
            async (c, _ctx, rebase) => {
              const step = await c.h.computeLoss(
                c.docNet as never,
                c.q as Tensor,
                c.p as Tensor,
                c.features as never,
                c.opts as never,
              );
              await c.commit(c.h, step, rebase);
              return c.h.step;
            },
          ),
          inputs: batches,
        });
      },
      6,
    );
  const all =
    (f: (c: HS) => void) =>
    (c: HS): void =>
      f(c);
  return [
    hs(
      'valid',
      'valid',
      fc.constant(() => undefined),
    ),
    hs(
      'features:wrong-kind',
      'throws',
      garbage().map((g) =>
        all((c) => {
          c.features = g;
        }),
      ),
    ),
    hs(
      'features:key-missing-or-wrong',
      'throws',
      fc
        .constantFrom<unknown>({}, { id: mk([3]) }, { id: ints([1, 2]) }, { id: ints([1, 2, 3]), extra: mk([3]) })
        .map((v) =>
          all((c) => {
            c.features = v;
          }),
        ),
    ),
    hs(
      'q-or-p:wrong-kind-or-shape',
      'throws',
      fc
        .tuple(fc.oneof(garbage(), fc.constantFrom<unknown>(mk([3, DIM + 1]), mk([0, DIM]), mk([3]))), fc.boolean())
        .map(([g, first]) =>
          all((c) => {
            if (first) c.q = g;
            else c.p = g;
          }),
        ),
    ),
    hs(
      'docNetwork:wrong-kind',
      'throws',
      garbage()
        .filter((g) => typeof g !== 'function') // a function returning garbage is its own kind
        .map((g) =>
          all((c) => {
            c.docNet = g;
          }),
        ),
    ),
    hs(
      'opts:bad',
      'throws',
      fc.constantFrom<unknown>('x', 3, { positiveIds: mk([3]) }, { positiveIds: ints([1, 2]) }).map((o) =>
        all((c) => {
          c.opts = o;
        }),
      ),
    ),
    hs(
      'p:non-finite (the new items)',
      'throws',
      fc.tuple(nonFinite(), fc.nat(8)).map(([v, at]) =>
        all((c) => {
          c.p = withValue(c.p as Tensor, v, at);
        }),
      ),
      true,
    ),
    hs(
      'commit:twice',
      'throws',
      fc.constant(
        all((c) => {
          c.commit = async (h, step, rebase) => {
            await h.commit(step as never);
            rebase();
            await h.commit(step as never);
          };
        }),
      ),
      true,
    ),
    hs(
      'commit:step-wrong-kind',
      'throws',
      garbage().map((g) =>
        all((c) => {
          c.commit = (h) => h.commit(g as never);
        }),
      ),
      true,
    ),
    hs(
      'commit:options-wrong-kind',
      'throws',
      fc.constantFrom<unknown>(null, 'x', 3, [], { gradient: 1 }, { bogus: 1 }).map((o) =>
        all((c) => {
          c.commit = (h, step) => h.commit(step as never, o as never);
        }),
      ),
      true,
    ),
    hs(
      'commit:gradients-non-finite (one replica)',
      'throws',
      fc.tuple(nonFinite(), fc.nat(5)).map(([v, at]) => (c: HS, r: number) => {
        c.commit = (h, step) =>
          h.commit(step as never, { gradients: { w: r === 0 ? withValue(mk([2, 3]), v, at) : mk([2, 3]) } });
      }),
      true,
    ),
  ];
}

function handlerSetStateDefs(kind: HandlerKind): Def[] {
  if (kind === 'Replicated') return []; // no setState
  return [
    def(
      'ShardedCacheLossHandler.setState',
      'shard-or-step:bad',
      'throws',
      fc.tuple(
        fc.constantFrom<(h: ShardedCacheLossHandler, other: NegativeCache) => [unknown, unknown]>(
          () => [null, 1],
          () => ['x', 1],
          () => [{ data: {}, age: ints([0]) }, 1],
          (_h, other) => [{ ...other, data: { ...other.data, emb: mk([6, DIM], 'float64') } }, 1],
          (h) => [h.cache, -1],
          (h) => [h.cache, 1.5],
          (h) => [h.cache, NaN],
          (h) => [h.cache, '3'],
        ),
        seed(),
      ),
      ([f, k]) => {
        const m = new CacheManager({ specs: SPECS(), cacheSize: 4 });
        const h = new ShardedCacheLossHandler(
          LONE_CTX,
          m,
          new DistributedCacheClassificationLoss({ embeddingKey: 'emb', dataKeys: ['id'], rng: new Rng(k) }),
        );
        h.setState(warmShard(k, 0).shard, 2);
        const [shard, step] = f(h, warmShard(k, 1, 6).shard);
        return call({
          run: () => h.setState(shard as never, step as never),
          inputs: shard,
          state: [h.cache, h.step],
        });
      },
      10,
    ),
  ];
}

export function shardedHandlerDefs(): Def[] {
  return [...handlerCtorDefs('Sharded'), ...handlerStepDefs('Sharded'), ...handlerSetStateDefs('Sharded')];
}

export function replicatedHandlerDefs(): Def[] {
  return [...handlerCtorDefs('Replicated'), ...handlerStepDefs('Replicated'), ...handlerSetStateDefs('Replicated')];
}
