/**
 * DistributedCacheClassificationLoss (the sharded cache), in one thread
 * (runInProcess) with R = 1..4 replicas, against the single-process loss on
 * the UNION of the shards: shards concatenated in replica order, queries
 * concatenated in replica order (global query g = r·b + i).
 *
 *  1. Values: interpretableLoss, probPos, hasNegative and the shard weights
 *     equal the single-process CacheClassificationLoss on the union and a
 *     plain-number float64 oracle (unequal shard sizes, topK with R not
 *     dividing it, empty-slot and false-negative masks spread over shards).
 *     The sampled item (selectedReplica, retrievedIndices) is one of that
 *     query's allowed candidates, and trainingLoss/staleness are those of
 *     exactly that item. Tolerance: |lib - ref| <= 1e-12·max(1, |ref|) in
 *     float64 (the logSumExp of per-shard logSumExps differs from the direct
 *     one by a few ulps), 2e-5·max(1, |ref|) in float32.
 *  2. Sampling: the global item (shard offset + retrievedIndices) is drawn
 *     from the softmax over the union: Pearson chi-square at fixed seeds,
 *     pooled over distinct queries, below the 0.999 quantile of its degrees
 *     of freedom; a control shows that a wrong (uniform-shard) law fails.
 *  3. Unbiasedness by exact enumeration: every (shard, item) pair is injected
 *     through `retrievalFn` (the item inside each shard) and
 *     `shardRetrievalFn` (the shard), each per-query training loss weighted
 *     by its union-softmax probability, and the summed gradient (w.r.t. the
 *     replica's own queries, positives and doc-network weights) compared
 *     with autodiff of the full-softmax loss over the union restricted to
 *     that replica's queries: float64, |lib - ref| <= 1e-9·||ref||∞ + 1e-12.
 *  4. Refresh routing: the refresh data each replica receives is the
 *     single-process refresh of the union restricted to its shard; applied
 *     with updateCache it changes exactly the sampled rows of its shard.
 *     refreshShards: false returns null per source (the reference).
 *
 * `grad` differentiates synchronous functions; the sharded loss awaits its
 * collectives. The engine keeps the graph on the tensors (no tape, no mode),
 * so `gradAsync` below marks the leaves, awaits the function and runs the
 * backward pass: the computation `grad` does, split around the awaits.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ArgumentError,
  CacheClassificationLoss,
  CacheManager,
  CollectiveAbortedError,
  DistributedCacheClassificationLoss,
  ReplicaGroupError,
  Rng,
  add,
  concat,
  gather,
  grad,
  logSumExp,
  matmul,
  maxScoreRetrievalFn,
  mul,
  normal,
  reshape,
  runInProcess,
  scaleTransform,
  sub,
  sum,
  tanh,
  tensor,
  zeros,
  type DistributedCacheClassificationLossOptions,
  type DistributedCacheLossReturn,
  type DocNetwork,
  type NegativeCache,
  type ScoreTransform,
  type Tensor,
  valueAndGradAsync,
} from '../../src/index.js';
import { params, runs } from '../util/props.js';

const TOL64 = 1e-12;
const TOL32 = 2e-5;
const GRAD_RTOL = 1e-9;
const GRAD_ATOL = 1e-12;
const FD = 2; // document feature width
const H = 3; // hidden width of the 2-layer doc network

type DType = 'float32' | 'float64';

// ---------------------------------------------------------------------------
// Autodiff across awaits

/** The gradient of an async scalar function of a record of tensors (see the file comment). */
async function gradAsync(
  f: (p: Record<string, Tensor>) => Promise<Tensor>,
  p: Record<string, Tensor>,
): Promise<Record<string, Tensor>> {
  return (await valueAndGradAsync(f)(p)).grad as Record<string, Tensor>;
}

// ---------------------------------------------------------------------------
// Scenarios

interface Transform {
  name: string;
  lib: ScoreTransform | undefined;
  num: (s: number) => number;
}

const TRANSFORMS: Transform[] = [
  { name: 'identity', lib: undefined, num: (s) => s },
  { name: 'scaleTransform(2.5)', lib: scaleTransform(2.5), num: (s) => 2.5 * s },
  { name: '3·tanh(s)', lib: (s: Tensor) => mul(tanh(s), 3), num: (s) => 3 * Math.tanh(s) },
];

interface Scenario {
  R: number;
  b: number;
  d: number;
  /** Shard sizes, in replica order (unequal in general). */
  sizes: number[];
  transform: Transform;
  docKind: 'linear' | '2-layer';
  /** The global topK: each shard keeps floor(topK / R) candidates. */
  topK?: number;
  maskEmptySlots: boolean;
  /** Per shard, the valid flags (undefined: no valid tensors at all). */
  valid?: boolean[][];
  /** falseNegativeKey 'id': per shard the cached ids, per replica the positives' ids. */
  ids?: { cache: number[][]; pos: number[][] };
  /** Cached embeddings perturbed away from docNetwork(features) (not for the gradient test). */
  stale: boolean;
  dtype: DType;
  seed: number;
}

type DocParams = Record<string, Tensor>;

interface World {
  sc: Scenario;
  params: DocParams;
  docNet: (p: DocParams) => DocNetwork;
  feats: Tensor[];
  embs: Tensor[];
  q: Tensor[];
  pos: Tensor[];
  posIds: Tensor[] | null;
  shards: NegativeCache[];
  offsets: number[];
  N: number;
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
const values = (t: Tensor): number[] => Array.from(t.dataSync() as ArrayLike<number>, Number);
const rowsOf = (t: Tensor): number[][] => {
  const v = values(t);
  const n = t.shape[0]!,
    inner = n === 0 ? 0 : v.length / n;
  return range(n).map((i) => v.slice(i * inner, (i + 1) * inner));
};
const dot = (a: readonly number[], b: readonly number[]): number => a.reduce((s, v, k) => s + v * b[k]!, 0);

function makeWorld(sc: Scenario): World {
  const rng = new Rng(sc.seed);
  const f = { dtype: sc.dtype };
  const params: DocParams =
    sc.docKind === 'linear'
      ? { w1: normal([FD, sc.d], rng, f) }
      : { w1: normal([FD, H], rng, f), w2: normal([H, sc.d], rng, { ...f, std: 0.7 }) };
  const docNet =
    (p: DocParams): DocNetwork =>
    (x) =>
      p.w2 ? matmul(tanh(matmul(x.feat!, p.w1!)), p.w2) : matmul(x.feat!, p.w1!);
  const feats = sc.sizes.map((n) => normal([n, FD], rng, f));
  const q = range(sc.R).map(() => normal([sc.b, sc.d], rng, { ...f, std: 0.8 }));
  const pos = range(sc.R).map(() => normal([sc.b, sc.d], rng, f));
  // Staleness from its own generator, so a stale world differs from the fresh one only in the cached embeddings.
  const staleRng = new Rng(sc.seed + 1);
  const embs = feats.map((x) => {
    const fresh = docNet(params)({ feat: x });
    return sc.stale ? add(fresh, normal(fresh.shape, staleRng, { ...f, std: 0.3 })) : fresh;
  });
  const shards = sc.sizes.map((n, s): NegativeCache => ({
    data: { emb: embs[s]!, feat: feats[s]!, ...(sc.ids ? { id: tensor(sc.ids.cache[s]!, 'int32', [n]) } : {}) },
    age: zeros([n], 'int32'),
    ...(sc.valid ? { valid: tensor(sc.valid[s]!.map(Number), 'bool', [n]) } : {}),
  }));
  const offsets = sc.sizes.map((_, s) => sc.sizes.slice(0, s).reduce((a, v) => a + v, 0));
  return {
    sc,
    params,
    docNet,
    feats,
    embs,
    q,
    pos,
    shards,
    offsets,
    posIds: sc.ids ? sc.ids.pos.map((p) => tensor(p, 'int32', [sc.b])) : null,
    N: sc.sizes.reduce((a, v) => a + v, 0),
  };
}

function lossOptions(sc: Scenario): DistributedCacheClassificationLossOptions {
  return {
    embeddingKey: 'emb',
    dataKeys: ['feat'],
    reducer: 'none',
    maskEmptySlots: sc.maskEmptySlots,
    ...(sc.transform.lib ? { scoreTransform: sc.transform.lib } : {}),
    ...(sc.topK !== undefined ? { topK: sc.topK } : {}),
    ...(sc.ids ? { falseNegativeKey: 'id' } : {}),
  };
}

// ---------------------------------------------------------------------------
// The plain-number oracle over the union

interface Cand {
  s: number;
  /** Column in the scores shard s's sampler sees (the group with topK). */
  col: number;
  /** Row in shard s. */
  local: number;
  logit: number;
}

interface Oracle {
  /** Per global query: the candidates of every shard in shard order (-Infinity where excluded). */
  cands: Cand[][];
  /** Per global query, per shard: logSumExp of that shard's candidates. */
  weights: number[][];
  /** Per global query: the union softmax over cands. */
  P: number[][];
  sPos: number[];
  interpretable: number[];
  probPos: number[];
  hasNegative: boolean[];
  /** Per shard, per row: the fresh embedding docNetwork(features). */
  fresh: number[][][];
  cached: number[][][];
  qv: number[][];
}

function lse(xs: readonly number[]): number {
  const m = Math.max(...xs);
  if (m === -Infinity) return -Infinity;
  return m + Math.log(xs.reduce((a, v) => a + Math.exp(v - m), 0));
}

function softmaxRow(l: readonly number[]): number[] {
  const z = lse(l);
  return z === -Infinity ? l.map(() => 0) : l.map((v) => Math.exp(v - z));
}

function oracle(w: World): Oracle {
  const { sc } = w;
  const T = sc.transform.num;
  const qv = w.q.flatMap(rowsOf);
  const pv = w.pos.flatMap(rowsOf);
  const cached = w.embs.map(rowsOf);
  const fresh = w.feats.map((x) => rowsOf(w.docNet(w.params)({ feat: x })));
  const kk = sc.topK !== undefined ? Math.floor(sc.topK / sc.R) : 0;
  const o: Oracle = {
    cands: [],
    weights: [],
    P: [],
    sPos: [],
    interpretable: [],
    probPos: [],
    hasNegative: [],
    fresh,
    cached,
    qv,
  };
  for (let g = 0; g < sc.R * sc.b; g++) {
    const r = Math.floor(g / sc.b),
      i = g % sc.b;
    const cands: Cand[] = [];
    const weights: number[] = [];
    for (let s = 0; s < sc.R; s++) {
      const n = sc.sizes[s]!;
      const scores = range(n).map((j) => {
        const excluded =
          (sc.maskEmptySlots && sc.valid !== undefined && !sc.valid[s]![j]) ||
          (sc.ids !== undefined && sc.ids.cache[s]![j] === sc.ids.pos[r]![i]);
        return excluded ? -Infinity : T(dot(qv[g]!, cached[s]![j]!));
      });
      const mine: Cand[] = [];
      if (sc.topK === undefined) {
        scores.forEach((logit, j) => mine.push({ s, col: j, local: j, logit }));
      } else {
        const gsz = n / kk;
        for (let grp = 0; grp < kk; grp++) {
          let best = grp * gsz;
          for (let j = best + 1; j < (grp + 1) * gsz; j++) if (scores[j]! > scores[best]!) best = j;
          mine.push({ s, col: grp, local: best, logit: scores[best]! });
        }
      }
      weights.push(lse(mine.map((c) => c.logit)));
      cands.push(...mine);
    }
    const logits = cands.map((c) => c.logit);
    const sPos = T(dot(qv[g]!, pv[g]!));
    const z = lse([sPos, ...logits]);
    o.cands.push(cands);
    o.weights.push(weights);
    o.P.push(softmaxRow(logits));
    o.sPos.push(sPos);
    o.interpretable.push(z - sPos);
    o.probPos.push(Math.exp(sPos - z));
    o.hasNegative.push(logits.some((l) => l !== -Infinity));
  }
  return o;
}

/** The single-process loss on the union of the shards (queries and shards in replica order). */
function unionLoss(w: World, opts: { topK?: number; retrievalFn?: (s: Tensor) => Tensor; refresh?: boolean } = {}) {
  const { sc } = w;
  const union: NegativeCache = {
    data: {
      emb: concat(w.embs, 0),
      feat: concat(w.feats, 0),
      ...(sc.ids
        ? {
            id: concat(
              w.shards.map((c) => c.data.id!),
              0,
            ),
          }
        : {}),
    },
    age: zeros([w.N], 'int32'),
    ...(sc.valid
      ? {
          valid: concat(
            w.shards.map((c) => c.valid!),
            0,
          ),
        }
      : {}),
  };
  const loss = new CacheClassificationLoss({
    embeddingKey: 'emb',
    dataKeys: ['feat'],
    reducer: 'none',
    maskEmptySlots: sc.maskEmptySlots,
    ...(sc.transform.lib ? { scoreTransform: sc.transform.lib } : {}),
    ...(opts.topK !== undefined ? { topK: opts.topK } : {}),
    ...(sc.ids ? { falseNegativeKey: 'id' } : {}),
    retrievalFn: opts.retrievalFn ?? maxScoreRetrievalFn(),
  });
  return {
    union,
    out: loss.call(
      w.docNet(w.params),
      concat(w.q, 0),
      concat(w.pos, 0),
      { cache: union },
      w.posIds ? { positiveIds: concat(w.posIds, 0) } : {},
    ),
  };
}

function close(got: number, want: number, tol: number, what: string): void {
  if (want === -Infinity || got === -Infinity) {
    expect(got, what).toBe(want);
    return;
  }
  if (!(Math.abs(got - want) <= tol * Math.max(1, Math.abs(want)))) {
    throw new Error(
      `${what}: got ${got}, expected ${want} (|diff| ${Math.abs(got - want).toExponential(2)} > ${tol}·max(1, |expected|))`,
    );
  }
}

async function runSharded(
  w: World,
  perReplica: (r: number) => Partial<DistributedCacheClassificationLossOptions>,
  steps = 1,
): Promise<DistributedCacheLossReturn[][]> {
  const { sc } = w;
  return runInProcess(
    sc.R,
    async (ctx) => {
      const r = ctx.replicaId;
      const loss = new DistributedCacheClassificationLoss({ ...lossOptions(sc), ...perReplica(r) });
      const outs: DistributedCacheLossReturn[] = [];
      for (let t = 0; t < steps; t++) {
        outs.push(
          await loss.call(
            ctx,
            w.docNet(w.params),
            w.q[r]!,
            w.pos[r]!,
            { cache: w.shards[r]! },
            w.posIds ? { positiveIds: w.posIds[r]! } : {},
          ),
        );
      }
      return outs;
    },
    { timeoutMs: 10_000 },
  );
}

/** Every per-query output of one sharded step against the oracle (see 1. in the file comment). */
function checkStep(w: World, o: Oracle, outs: DistributedCacheLossReturn[], label: string): void {
  const { sc } = w;
  const tol = sc.dtype === 'float64' ? TOL64 : TOL32;
  const T = sc.transform.num;
  outs.forEach((out, r) => {
    for (const k of [
      'interpretableLoss',
      'trainingLoss',
      'staleness',
      'probPos',
      'selectedReplica',
      'retrievedIndices',
      'hasNegative',
    ] as const) {
      expect(out[k].shape, `${label} ${k}`).toEqual([sc.b]);
    }
    expect(out.shardWeights.shape).toEqual([sc.b, sc.R]);
    const interp = values(out.interpretableLoss),
      train = values(out.trainingLoss),
      stale = values(out.staleness),
      pp = values(out.probPos);
    const sel = values(out.selectedReplica),
      idx = values(out.retrievedIndices),
      hasNeg = values(out.hasNegative),
      wts = rowsOf(out.shardWeights);
    for (let i = 0; i < sc.b; i++) {
      const g = r * sc.b + i;
      const at = `${label} replica ${r} query ${i}`;
      close(interp[i]!, o.interpretable[g]!, tol, `${at} interpretableLoss`);
      close(pp[i]!, o.probPos[g]!, tol, `${at} probPos`);
      wts[i]!.forEach((v, s) => close(v, o.weights[g]![s]!, tol, `${at} shardWeights[${s}]`));
      expect(hasNeg[i], `${at} hasNegative`).toBe(o.hasNegative[g] ? 1 : 0);
      if (!o.hasNegative[g]) {
        expect(train[i]! + 0, `${at} trainingLoss without a negative`).toBe(0); // (1 - 1)·x, possibly -0
        expect(stale[i]! + 0, `${at} staleness without a negative`).toBe(0);
        continue;
      }
      const s = sel[i]!,
        j = idx[i]!;
      const cand = o.cands[g]!.find((c) => c.s === s && c.local === j && c.logit !== -Infinity);
      expect(cand, `${at}: sampled (shard ${s}, row ${j}) is not an allowed candidate`).toBeDefined();
      const fr = o.fresh[s]![j]!,
        ca = o.cached[s]![j]!;
      const sNeg = T(dot(o.qv[g]!, fr));
      close(train[i]!, (1 - o.probPos[g]!) * (sNeg - o.sPos[g]!), tol, `${at} trainingLoss of the sampled item`);
      const err = ca.reduce((a, v, k) => a + (v - fr[k]!) ** 2, 0),
        nrm = dot(fr, fr);
      close(stale[i]!, err / nrm, tol, `${at} staleness of the sampled item`);
    }
  });
}

// ---------------------------------------------------------------------------
// Arbitraries

function scenarioArb(opts: {
  topK: boolean;
  mask: boolean;
  dtype?: DType;
  stale?: boolean;
  maxR?: number;
}): fc.Arbitrary<Scenario> {
  return fc
    .record({
      R: fc.integer({ min: 1, max: opts.maxR ?? 4 }),
      b: fc.integer({ min: 1, max: 3 }),
      d: fc.integer({ min: 1, max: 3 }),
      kk: fc.integer({ min: 1, max: 2 }),
      transform: fc.constantFrom(...TRANSFORMS),
      docKind: fc.constantFrom<'linear' | '2-layer'>('linear', '2-layer'),
      seed: fc.integer({ min: 0, max: 2 ** 30 }),
    })
    .chain((base) => {
      const unit = base.kk;
      return fc
        .record({
          sizes: fc.array(
            opts.topK ? fc.integer({ min: 1, max: 3 }).map((m) => m * unit) : fc.integer({ min: 1, max: 5 }),
            { minLength: base.R, maxLength: base.R },
          ),
          extra: fc.integer({ min: 0, max: base.R - 1 }), // topK = R·kk + extra: R need not divide topK
          maskEmptySlots: opts.mask ? fc.boolean() : fc.constant(true),
          useValid: fc.boolean(),
          useIds: fc.boolean(),
          flags: fc.array(fc.boolean(), { minLength: 40, maxLength: 40 }),
          idVals: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 40, maxLength: 40 }),
        })
        .map((x): Scenario => {
          const sc: Scenario = {
            R: base.R,
            b: base.b,
            d: base.d,
            sizes: x.sizes,
            transform: base.transform,
            docKind: base.docKind,
            maskEmptySlots: x.maskEmptySlots,
            stale: opts.stale ?? true,
            dtype: opts.dtype ?? 'float64',
            seed: base.seed,
          };
          if (opts.topK) sc.topK = base.R * base.kk + x.extra;
          let k = 0;
          if (opts.mask && x.useValid) sc.valid = x.sizes.map((n) => range(n).map(() => x.flags[k++ % 40]!));
          if (opts.mask && x.useIds) {
            sc.ids = {
              cache: x.sizes.map((n) => range(n).map(() => x.idVals[k++ % 40]!)),
              pos: range(base.R).map(() => range(base.b).map(() => x.idVals[k++ % 40]!)),
            };
          }
          return sc;
        });
    });
}

const label = (sc: Scenario): string =>
  `R=${sc.R} b=${sc.b} d=${sc.d} sizes=${sc.sizes.join(',')} T=${sc.transform.name} doc=${sc.docKind} topK=${sc.topK} mask=${sc.maskEmptySlots} valid=${JSON.stringify(sc.valid)} ids=${JSON.stringify(sc.ids)} ${sc.dtype} seed=${sc.seed}`;

// ---------------------------------------------------------------------------
// 1. Values against the union

describe('DistributedCacheClassificationLoss: values equal the single-process loss on the union of the shards', () => {
  it.each([1, 2, 3, 4])(
    'R = %i, unequal shards: interpretableLoss, probPos, hasNegative equal CacheClassificationLoss on the union; the sampled item is consistent',
    async (R) => {
      for (const sampler of ['gumbel', 'categorical'] as const) {
        const sc: Scenario = {
          R,
          b: 3,
          d: 3,
          sizes: [4, 1, 6, 3].slice(0, R),
          transform: TRANSFORMS[1]!,
          docKind: '2-layer',
          maskEmptySlots: true,
          stale: true,
          dtype: 'float64',
          seed: 100 + R,
        };
        const w = makeWorld(sc);
        const o = oracle(w);
        const outs = await runSharded(w, (r) => ({ rng: new Rng(1000 + r), sampler }), 3);
        const { out: u } = unionLoss(w);
        for (let t = 0; t < 3; t++)
          checkStep(
            w,
            o,
            outs.map((x) => x[t]!),
            `${label(sc)} ${sampler} step ${t}`,
          );
        const first = outs.map((x) => x[0]!);
        const cat = (k: 'interpretableLoss' | 'probPos' | 'hasNegative'): number[] =>
          first.flatMap((x) => values(x[k]));
        values(u.interpretableLoss).forEach((v, g) =>
          close(cat('interpretableLoss')[g]!, v, TOL64, `union interpretableLoss[${g}]`),
        );
        values(u.probPos).forEach((v, g) => close(cat('probPos')[g]!, v, TOL64, `union probPos[${g}]`));
        expect(cat('hasNegative')).toEqual(values(u.hasNegative));
      }
    },
  );

  it('property: unequal shards, masks (valid flags, falseNegativeKey) across shards, every transform and R = 1..4', async () => {
    await fc.assert(
      fc.asyncProperty(
        scenarioArb({ topK: false, mask: true }),
        fc.constantFrom('gumbel', 'categorical'),
        async (sc, sampler) => {
          const w = makeWorld(sc);
          const o = oracle(w);
          const outs = (await runSharded(w, (r) => ({ rng: new Rng(sc.seed + 7919 * r), sampler }))).map((x) => x[0]!);
          checkStep(w, o, outs, label(sc));
          const { out: u } = unionLoss(w);
          const interp = outs.flatMap((x) => values(x.interpretableLoss));
          values(u.interpretableLoss).forEach((v, g) =>
            close(interp[g]!, v, TOL64, `${label(sc)} union interpretableLoss[${g}]`),
          );
          expect(outs.flatMap((x) => values(x.hasNegative))).toEqual(values(u.hasNegative));
        },
      ),
      params(200),
    );
  });

  it('property: topK with floor(topK / R) candidates per shard (R need not divide topK), with masks', async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb({ topK: true, mask: true }), async (sc) => {
        const w = makeWorld(sc);
        const o = oracle(w);
        const outs = (await runSharded(w, (r) => ({ rng: new Rng(sc.seed + r) }))).map((x) => x[0]!);
        checkStep(w, o, outs, label(sc));
        // With equal shard sizes the union's own top-k groups are the shards' groups.
        if (sc.sizes.every((n) => n === sc.sizes[0])) {
          const kk = Math.floor(sc.topK! / sc.R);
          const { out: u } = unionLoss(w, { topK: sc.R * kk });
          const interp = outs.flatMap((x) => values(x.interpretableLoss));
          values(u.interpretableLoss).forEach((v, g) =>
            close(interp[g]!, v, TOL64, `${label(sc)} union(topK ${sc.R * kk}) interpretableLoss[${g}]`),
          );
        }
      }),
      params(200),
    );
  });

  it('explicit topK cases where R does not divide topK: the union restricted to per-shard groups', async () => {
    const cases: [number, number, number[]][] = [
      [2, 5, [4, 6]], // 2 per shard
      [3, 7, [2, 4, 6]], // 2 per shard
      [3, 4, [3, 1, 2]], // 1 per shard
      [4, 6, [1, 3, 2, 5]], // 1 per shard
    ];
    for (const [R, topK, sizes] of cases) {
      const sc: Scenario = {
        R,
        b: 2,
        d: 2,
        sizes,
        topK,
        transform: TRANSFORMS[2]!,
        docKind: 'linear',
        maskEmptySlots: true,
        stale: true,
        dtype: 'float64',
        seed: R * 31 + topK,
      };
      const w = makeWorld(sc);
      const o = oracle(w);
      const outs = (await runSharded(w, (r) => ({ rng: new Rng(5 + r) }))).map((x) => x[0]!);
      checkStep(w, o, outs, label(sc));
      // The per-shard candidate count is floor(topK / R): check the oracle saw that many.
      for (const c of o.cands) expect(c.length).toBe(R * Math.floor(topK / R));
    }
  });

  it('float32, on the fused streaming scan and on the plain path: equals the float32 union loss up to float32 rounding', async () => {
    for (const [R, fused] of [
      [2, true],
      [3, true],
      [3, false],
    ] as const) {
      const sc: Scenario = {
        R,
        b: 4,
        d: 3,
        sizes: [5, 2, 7].slice(0, R),
        transform: TRANSFORMS[1]!,
        docKind: 'linear',
        maskEmptySlots: true,
        stale: true,
        dtype: 'float32',
        seed: 9 + R,
        valid: [
          [true, true, false, true, true],
          [false, true],
          [true, true, true, true, true, true, false],
        ].slice(0, R),
      };
      const w = makeWorld(sc);
      const o = oracle(w);
      const outs = (await runSharded(w, (r) => ({ rng: new Rng(r), fused }))).map((x) => x[0]!);
      checkStep(w, o, outs, `${label(sc)} fused=${fused}`);
      const { out: u } = unionLoss(w);
      expect(outs[0]!.interpretableLoss.dtype).toBe('float32');
      const interp = outs.flatMap((x) => values(x.interpretableLoss));
      values(u.interpretableLoss).forEach((v, g) =>
        close(interp[g]!, v, TOL32, `float32 union interpretableLoss[${g}]`),
      );
    }
  });

  it('a query whose negatives are all masked on every shard: weights all -Infinity, loss terms 0', async () => {
    const sc: Scenario = {
      R: 3,
      b: 2,
      d: 2,
      sizes: [2, 3, 1],
      transform: TRANSFORMS[0]!,
      docKind: 'linear',
      maskEmptySlots: true,
      stale: true,
      dtype: 'float64',
      seed: 3,
      ids: {
        cache: [[7, 7], [7, 7, 7], [7]],
        pos: [
          [7, 1],
          [1, 7],
          [7, 7],
        ],
      },
    };
    const w = makeWorld(sc);
    const o = oracle(w);
    const outs = (await runSharded(w, (r) => ({ rng: new Rng(r) }))).map((x) => x[0]!);
    checkStep(w, o, outs, label(sc));
    expect(rowsOf(outs[0]!.shardWeights)[0]).toEqual([-Infinity, -Infinity, -Infinity]);
    expect(values(outs[0]!.interpretableLoss)[0]! + 0).toBe(0); // -(s⁺ - s⁺) may be -0
    expect(values(outs[0]!.hasNegative)).toEqual([0, 1]);
  });

  it('rejects topK < R (floor(topK / R) = 0 candidates per shard) on every replica', async () => {
    const sc: Scenario = {
      R: 3,
      b: 1,
      d: 2,
      sizes: [2, 2, 2],
      topK: 2,
      transform: TRANSFORMS[0]!,
      docKind: 'linear',
      maskEmptySlots: true,
      stale: false,
      dtype: 'float64',
      seed: 1,
    };
    const w = makeWorld(sc);
    let err: unknown;
    try {
      await runSharded(w, (r) => ({ rng: new Rng(r) }));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ReplicaGroupError);
    const errors = (err as ReplicaGroupError).errors;
    for (const e of errors) {
      expect(e).toBeInstanceOf(ArgumentError);
      expect(e!.message).toBe(
        'DistributedCacheClassificationLoss: topK = 2 gives floor(topK / R) = 0 candidates per shard with R = 3 replicas; need topK >= R',
      );
    }
  });
});

// ---------------------------------------------------------------------------
// 2. The sampled global item follows the union softmax

/** Upper quantile of chi-square with k degrees of freedom (Wilson–Hilferty; z = 3.0902 for 0.999). */
function chiSquareQuantile(k: number, z = 3.0902): number {
  const c = 2 / (9 * k);
  return k * (1 - c + z * Math.sqrt(c)) ** 3;
}

/** Pearson statistic of observed counts against probabilities; cells with expected count < 5 are pooled. */
function pearson(counts: readonly number[], probs: readonly number[], total: number): { stat: number; df: number } {
  const cells: { o: number; e: number }[] = [];
  let pool = { o: 0, e: 0 };
  probs.forEach((p, k) => {
    if (p === 0) {
      expect(counts[k], `an item of probability 0 was drawn`).toBe(0);
      return;
    }
    if (p * total < 5) pool = { o: pool.o + counts[k]!, e: pool.e + p * total };
    else cells.push({ o: counts[k]!, e: p * total });
  });
  if (pool.e > 0) {
    if (pool.e >= 5 || cells.length === 0) cells.push(pool);
    else {
      cells.sort((a, b) => a.e - b.e);
      cells[0] = { o: cells[0]!.o + pool.o, e: cells[0]!.e + pool.e };
    }
  }
  return { stat: cells.reduce((a, c) => a + (c.o - c.e) ** 2 / c.e, 0), df: cells.length - 1 };
}

/**
 * Counts, for each distinct query of each replica (the batch repeats Q
 * distinct queries, so one step gives many independent draws), how often each
 * of its union candidates was drawn.
 */
function countDraws(
  w: World,
  o: Oracle,
  Q: number,
  steps: readonly { selectedReplica: Tensor; retrievedIndices: Tensor }[][],
): { counts: number[][]; totals: number[] } {
  const { sc } = w;
  const counts = range(sc.R * Q).map((k) =>
    new Array<number>(o.cands[Math.floor(k / Q) * sc.b + (k % Q)]!.length).fill(0),
  );
  const totals = new Array<number>(sc.R * Q).fill(0);
  for (const outs of steps) {
    outs.forEach((out, r) => {
      const sel = values(out.selectedReplica),
        idx = values(out.retrievedIndices);
      for (let i = 0; i < sc.b; i++) {
        const k = r * Q + (i % Q);
        const cands = o.cands[r * sc.b + (i % Q)]!;
        const c = cands.findIndex((x) => x.s === sel[i] && x.local === idx[i] && x.logit !== -Infinity);
        expect(
          c,
          `replica ${r} query ${i} drew (shard ${sel[i]}, row ${idx[i]}), not a candidate`,
        ).toBeGreaterThanOrEqual(0);
        counts[k]![c]!++;
        totals[k]!++;
      }
    });
  }
  return { counts, totals };
}

/** A world whose replicas each repeat Q distinct queries m times (b = Q·m). */
function repeatedWorld(sc: Scenario, Q: number): World {
  const w = makeWorld(sc);
  const tile = (t: Tensor): Tensor =>
    gather(
      t,
      tensor(
        range(sc.b).map((i) => i % Q),
        'int32',
      ),
    );
  return { ...w, q: w.q.map(tile), pos: w.pos.map(tile), posIds: w.posIds ? w.posIds.map(tile) : null };
}

describe('DistributedCacheClassificationLoss: the sampled global item follows the softmax over the union', () => {
  const configs: { name: string; sc: Omit<Scenario, 'b'>; sampler: 'gumbel' | 'categorical' }[] = [
    {
      name: 'R = 3, unequal shards, Gumbel-max',
      sampler: 'gumbel',
      sc: {
        R: 3,
        d: 3,
        sizes: [5, 3, 7],
        transform: TRANSFORMS[0]!,
        docKind: 'linear',
        maskEmptySlots: true,
        stale: true,
        dtype: 'float64',
        seed: 11,
      },
    },
    {
      name: 'R = 4, unequal shards, categorical',
      sampler: 'categorical',
      sc: {
        R: 4,
        d: 2,
        sizes: [2, 6, 1, 4],
        transform: TRANSFORMS[0]!,
        docKind: '2-layer',
        maskEmptySlots: true,
        stale: true,
        dtype: 'float64',
        seed: 12,
      },
    },
    {
      name: 'R = 3, float32 (the fused streaming scan), Gumbel-max',
      sampler: 'gumbel',
      sc: {
        R: 3,
        d: 3,
        sizes: [4, 7, 2],
        transform: TRANSFORMS[1]!,
        docKind: 'linear',
        maskEmptySlots: true,
        stale: true,
        dtype: 'float32',
        seed: 14,
      },
    },
    {
      name: 'R = 2, float32 (the fused streaming scan), topK = 5 with valid flags, categorical',
      sampler: 'categorical',
      sc: {
        R: 2,
        d: 2,
        sizes: [6, 4],
        topK: 5,
        transform: TRANSFORMS[0]!,
        docKind: 'linear',
        maskEmptySlots: true,
        stale: true,
        dtype: 'float32',
        seed: 15,
        valid: [
          [true, true, true, false, true, true],
          [true, false, true, true],
        ],
      },
    },
    {
      name: 'R = 2, topK = 5 (2 per shard) with valid flags and false-negative ids, Gumbel-max',
      sampler: 'gumbel',
      sc: {
        R: 2,
        d: 3,
        sizes: [6, 4],
        topK: 5,
        transform: TRANSFORMS[2]!,
        docKind: 'linear',
        maskEmptySlots: true,
        stale: true,
        dtype: 'float64',
        seed: 13,
        valid: [
          [true, false, true, true, true, true],
          [true, true, false, true],
        ],
        ids: {
          cache: [
            [1, 2, 3, 4, 5, 6],
            [7, 8, 9, 1],
          ],
          pos: [
            [1, 9],
            [8, 3],
          ],
        },
      },
    },
  ];
  const Q = 2;
  for (const { name, sc: base, sampler } of configs) {
    it(`${name}: chi-square below the 0.999 quantile; a uniform-shard law is rejected`, async () => {
      const m = Math.max(50, Math.round(runs(800)));
      const steps = 8;
      const sc: Scenario = { ...base, b: Q * m };
      if (sc.ids) sc.ids = { cache: sc.ids.cache, pos: sc.ids.pos.map((p) => range(sc.b).map((i) => p[i % Q]!)) };
      const w = repeatedWorld(sc, Q);
      const o = oracle(w);
      const outs = await runSharded(w, (r) => ({ rng: new Rng(20211206 + 7919 * r), sampler }), steps);
      const { counts, totals } = countDraws(
        w,
        o,
        Q,
        range(steps).map((t) => outs.map((x) => x[t]!)),
      );
      let stat = 0,
        df = 0,
        wrongStat = 0;
      counts.forEach((c, k) => {
        const g = Math.floor(k / Q) * sc.b + (k % Q);
        const x = pearson(c, o.P[g]!, totals[k]!);
        stat += x.stat;
        df += x.df;
        // Control: the shard drawn uniformly among shards with candidates, then the item by its in-shard softmax.
        const live = range(sc.R).filter((s) => o.weights[g]![s] !== -Infinity);
        const wrong = o.cands[g]!.map((cand) =>
          cand.logit === -Infinity ? 0 : Math.exp(cand.logit - o.weights[g]![cand.s]!) / live.length,
        );
        wrongStat += pearson(c, wrong, totals[k]!).stat;
      });
      expect(df).toBeGreaterThan(5);
      const limit = chiSquareQuantile(df);
      expect(stat, `chi-square ${stat.toFixed(1)} with ${df} df (0.999 quantile ${limit.toFixed(1)})`).toBeLessThan(
        limit,
      );
      expect(wrongStat, 'the control statistic must be far above the threshold').toBeGreaterThan(3 * limit);
    });
  }
});

// ---------------------------------------------------------------------------
// 3. Unbiasedness by exact enumeration

interface GradResult {
  grads: Record<string, Tensor>;
  seenLocal: number[][][];
  seenShard: number[][][];
}

/** Per replica: Σ over every (shard, candidate) pair t, Σ_i P_i(t)·trainingLoss_i(t), differentiated. */
async function enumeratedGradients(w: World, o: Oracle): Promise<GradResult[]> {
  const { sc } = w;
  const pairs = o.cands[0]!.map((c) => [c.s, c.col] as const); // the same (shard, column) layout for every query
  return runInProcess(
    sc.R,
    async (ctx) => {
      const r = ctx.replicaId;
      let t = 0;
      const seenLocal: number[][][] = [],
        seenShard: number[][][] = [];
      const loss = new DistributedCacheClassificationLoss({
        ...lossOptions(sc),
        retrievalFn: (scores) => {
          seenLocal.push(scores.toArray() as number[][]);
          const [s, col] = pairs[t]!;
          return tensor(new Array<number>(sc.R * sc.b).fill(s === r ? col : 0), 'int32', [sc.R * sc.b, 1]);
        },
        shardRetrievalFn: (weights) => {
          seenShard.push(weights.toArray() as number[][]);
          return tensor(new Array<number>(sc.b).fill(pairs[t]![0]), 'int32', [sc.b, 1]);
        },
      });
      const grads = await gradAsync(
        async (p) => {
          const { q, pos, ...doc } = p;
          let total: Tensor = tensor(0, 'float64');
          for (t = 0; t < pairs.length; t++) {
            const out = await loss.call(
              ctx,
              w.docNet(doc),
              q!,
              pos!,
              { cache: w.shards[r]! },
              w.posIds ? { positiveIds: w.posIds[r]! } : {},
            );
            expect(values(out.selectedReplica)).toEqual(new Array<number>(sc.b).fill(pairs[t]![0]));
            const weight = tensor(
              range(sc.b).map((i) => o.P[r * sc.b + i]![t]!),
              'float64',
              [sc.b],
            );
            total = add(total, sum(mul(out.trainingLoss, weight)));
          }
          return total;
        },
        { q: w.q[r]!, pos: w.pos[r]!, ...w.params },
      );
      return { grads, seenLocal, seenShard };
    },
    { timeoutMs: 10_000 },
  );
}

/** Autodiff of the full-softmax loss over the union for replica r's queries, cache embeddings WITH gradient. */
function unionGradient(w: World, o: Oracle, r: number): Record<string, Tensor> {
  const { sc } = w;
  const Tl = (x: Tensor): Tensor => (sc.transform.lib ? sc.transform.lib(x) : x);
  const full = (p: Record<string, Tensor>): Tensor => {
    const { q, pos, ...doc } = p;
    const emb = concat(
      w.feats.map((x) => w.docNet(doc)({ feat: x })),
      0,
    ); // [N, d], fresh: the true objective
    const sPos = Tl(sum(mul(q!, pos!), { axis: 1 }));
    const S = reshape(Tl(matmul(q!, emb, { transposeB: true })), [sc.b * w.N]);
    let total: Tensor = tensor(0, 'float64');
    for (let i = 0; i < sc.b; i++) {
      const allowed = o.cands[r * sc.b + i]!.filter((c) => c.logit !== -Infinity).map(
        (c) => i * w.N + w.offsets[c.s]! + c.local,
      );
      if (allowed.length === 0) continue; // -log softmax([s⁺])₀ = 0
      const sp = gather(sPos, tensor([i], 'int32'));
      total = add(total, sub(logSumExp(concat([sp, gather(S, tensor(allowed, 'int32'))])), reshape(sp, [])));
    }
    return total;
  };
  return grad(full)({ q: w.q[r]!, pos: w.pos[r]!, ...w.params }) as Record<string, Tensor>;
}

function expectGradsClose(lib: Record<string, Tensor>, ref: Record<string, Tensor>, what: string): void {
  expect(Object.keys(lib).sort()).toEqual(Object.keys(ref).sort());
  for (const k of Object.keys(ref)) {
    const a = values(lib[k]!),
      e = values(ref[k]!);
    expect(lib[k]!.dtype).toBe('float64');
    expect(a.length).toBe(e.length);
    const scale = Math.max(...e.map(Math.abs));
    e.forEach((want, n) => {
      const err = Math.abs(a[n]! - want);
      if (!(err <= GRAD_RTOL * scale + GRAD_ATOL)) {
        throw new Error(
          `${what}: d/d${k}[${n}] = ${a[n]} (expected gradient of trainingLoss) vs ${want} (union full softmax); |diff| ${err.toExponential(2)} > ${GRAD_RTOL}·${scale.toExponential(2)} + ${GRAD_ATOL}`,
        );
      }
    });
  }
}

async function compareGradients(
  sc: Scenario,
): Promise<{ lib: Record<string, Tensor>[]; ref: Record<string, Tensor>[] }> {
  const w = makeWorld(sc);
  const o = oracle(w);
  const res = await enumeratedGradients(w, o);
  const lib: Record<string, Tensor>[] = [],
    ref: Record<string, Tensor>[] = [];
  res.forEach((x, r) => {
    // The samplers saw exactly the logits the weights P were computed from.
    for (const scores of x.seenLocal) {
      scores.forEach((row, g) =>
        row.forEach((v, col) => {
          const c = o.cands[g]!.find((cc) => cc.s === r && cc.col === col)!;
          close(v, c.logit, 1e-12, `${label(sc)} replica ${r} local score [${g}, ${col}]`);
        }),
      );
    }
    for (const wts of x.seenShard)
      wts.forEach((row, i) =>
        row.forEach((v, s) =>
          close(v, o.weights[r * sc.b + i]![s]!, 1e-12, `${label(sc)} replica ${r} shard weight [${i}, ${s}]`),
        ),
      );
    expect(x.seenShard.length).toBe(o.cands[0]!.length);
    lib.push(x.grads);
    ref.push(unionGradient(w, o, r));
    expectGradsClose(x.grads, ref[r]!, `${label(sc)} replica ${r}`);
  });
  return { lib, ref };
}

describe('DistributedCacheClassificationLoss is unbiased for the union (exact enumeration over shard and item)', () => {
  it('property: E[∇ trainingLoss] = ∇ full softmax over the union, per replica, w.r.t. its queries, positives and the doc network', async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb({ topK: false, mask: false, stale: false }), async (sc) => {
        await compareGradients(sc);
      }),
      params(100),
    );
  });

  it('property: with topK (R need not divide it) and masks across shards', async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb({ topK: true, mask: true, stale: false }), async (sc) => {
        await compareGradients(sc);
      }),
      params(100),
    );
  });

  it('property: masks across unequal shards without topK', async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb({ topK: false, mask: true, stale: false }), async (sc) => {
        await compareGradients(sc);
      }),
      params(80),
    );
  });

  it('explicit: R = 1..4, every transform and doc network, non-trivial gradients', async () => {
    for (const R of [1, 2, 3, 4]) {
      for (const transform of TRANSFORMS) {
        const sc: Scenario = {
          R,
          b: 2,
          d: 3,
          sizes: [3, 1, 4, 2].slice(0, R),
          transform,
          docKind: R % 2 === 0 ? '2-layer' : 'linear',
          maskEmptySlots: true,
          stale: false,
          dtype: 'float64',
          seed: 40 + R,
        };
        const { ref } = await compareGradients(sc);
        for (const g of ref) {
          for (const k of Object.keys(g))
            expect(Math.max(...values(g[k]!).map(Math.abs)), `${k} gradient is trivially zero`).toBeGreaterThan(1e-3);
        }
      }
    }
  });

  it('control: with a STALE cache the expected gradient differs from the union gradient (so the comparison can fail)', async () => {
    const sc: Scenario = {
      R: 2,
      b: 2,
      d: 2,
      sizes: [3, 2],
      transform: TRANSFORMS[1]!,
      docKind: 'linear',
      maskEmptySlots: true,
      stale: true,
      dtype: 'float64',
      seed: 7,
    };
    const w = makeWorld(sc);
    const o = oracle(w);
    const res = await enumeratedGradients(w, o);
    // The union reference with fresh embeddings (the true objective).
    const fresh = makeWorld({ ...sc, stale: false });
    let diff = 0;
    res.forEach((x, r) => {
      const ref = unionGradient(fresh, oracle(fresh), r);
      for (const k of Object.keys(ref))
        values(ref[k]!).forEach((v, n) => (diff = Math.max(diff, Math.abs(values(x.grads[k]!)[n]! - v))));
    });
    expect(diff).toBeGreaterThan(1e-3);
  });
});

// ---------------------------------------------------------------------------
// 4. Refresh routing

interface RefreshCase {
  R: number;
  b: number;
  /** Per shard, the sizes of its two data sources 'a' and 'b'. */
  sizes: [number, number][];
  topK?: number;
  seed: number;
}

describe('DistributedCacheClassificationLoss: refresh data is routed to the shard that holds each sampled item', () => {
  const cases: RefreshCase[] = [
    { R: 1, b: 4, sizes: [[3, 2]], seed: 1 },
    {
      R: 2,
      b: 3,
      sizes: [
        [2, 3],
        [4, 1],
      ],
      seed: 2,
    },
    {
      R: 3,
      b: 4,
      sizes: [
        [1, 2],
        [3, 3],
        [2, 1],
      ],
      seed: 3,
    },
    {
      R: 4,
      b: 2,
      sizes: [
        [2, 2],
        [1, 1],
        [3, 1],
        [1, 2],
      ],
      seed: 4,
    },
    {
      R: 3,
      b: 3,
      sizes: [
        [2, 2],
        [1, 1],
        [3, 3],
      ],
      topK: 7,
      seed: 5,
    }, // 2 per shard
  ];
  for (const rc of cases) {
    it(`R = ${rc.R}, two sources per shard${rc.topK ? `, topK = ${rc.topK}` : ''}: each replica receives the union's refresh restricted to its shard`, async () => {
      const d = 3;
      const rng = new Rng(rc.seed);
      const W = normal([FD, d], rng, { dtype: 'float64' });
      const docNet: DocNetwork = (x) => matmul(x.feat!, W);
      const make = (n: number, validFrom: number): NegativeCache => {
        const feat = normal([n, FD], rng, { dtype: 'float64' });
        const emb = add(docNet({ feat }), normal([n, d], rng, { dtype: 'float64', std: 0.5 })); // stale: refreshes change rows
        return {
          data: { emb, feat },
          age: tensor(
            range(n).map((j) => j + 1),
            'int32',
            [n],
          ),
          valid: tensor(
            range(n).map((j) => (j >= validFrom ? 1 : 0)),
            'bool',
            [n],
          ),
        };
      };
      const shards = rc.sizes.map(([na, nb]) => ({ a: make(na, 0), b: make(nb, nb > 1 ? 1 : 0) })); // slot 0 of a multi-slot 'b' is empty
      const q = range(rc.R).map(() => normal([rc.b, d], rng, { dtype: 'float64' }));
      const pos = range(rc.R).map(() => normal([rc.b, d], rng, { dtype: 'float64' }));
      const kk = rc.topK ? Math.floor(rc.topK / rc.R) : 0;
      // Per global query: a random allowed (shard, item); the item's column in the sampler's input (its group with topK).
      const validRows = shards.map((sh) => [...values(sh.a.valid!), ...values(sh.b.valid!)]);
      const shardSize = rc.sizes.map(([na, nb]) => na + nb);
      const offsets = shardSize.map((_, s) => shardSize.slice(0, s).reduce((a, v) => a + v, 0));
      const choice = range(rc.R * rc.b).map(() => {
        for (;;) {
          const s = Math.floor(rng.uniform() * rc.R);
          const j = Math.floor(rng.uniform() * shardSize[s]!);
          if (validRows[s]![j]) return { s, j };
        }
      });
      // With topK the sampler picks a group; to inject item j we need j to be its group's maximum, so only check the
      // routing of whatever local item the loss reports (retrievedIndices), not a preselected one.
      const outs = await runInProcess(rc.R, async (ctx) => {
        const r = ctx.replicaId;
        const loss = new DistributedCacheClassificationLoss({
          embeddingKey: 'emb',
          dataKeys: ['feat'],
          reducer: 'none',
          ...(rc.topK ? { topK: rc.topK } : {}),
          retrievalFn: (scores) =>
            tensor(
              choice.map((c) => (c.s === r ? (kk ? Math.floor(c.j / (shardSize[r]! / kk)) : c.j) : 0)),
              'int32',
              [rc.R * rc.b, 1],
            ),
          shardRetrievalFn: () =>
            tensor(
              range(rc.b).map((i) => choice[r * rc.b + i]!.s),
              'int32',
              [rc.b, 1],
            ),
        });
        return loss.call(ctx, docNet, q[r]!, pos[r]!, shards[r]!);
      });
      // The sampled union index of every global query, as the sharded loss reports it.
      const unionIdx = outs.flatMap((out) => {
        const sel = values(out.selectedReplica),
          idx = values(out.retrievedIndices);
        return sel.map((s, i) => offsets[s]! + idx[i]!);
      });
      if (!rc.topK) unionIdx.forEach((u, g) => expect(u).toBe(offsets[choice[g]!.s]! + choice[g]!.j));
      // The single-process loss on the union (sources in replica-major, source-minor order), drawing the same items.
      const unionCache: NegativeCache = {
        data: {
          emb: concat(
            shards.flatMap((sh) => [sh.a.data.emb!, sh.b.data.emb!]),
            0,
          ),
          feat: concat(
            shards.flatMap((sh) => [sh.a.data.feat!, sh.b.data.feat!]),
            0,
          ),
        },
        age: concat(
          shards.flatMap((sh) => [sh.a.age, sh.b.age]),
          0,
        ),
        valid: concat(
          shards.flatMap((sh) => [sh.a.valid!, sh.b.valid!]),
          0,
        ),
      };
      const single = new CacheClassificationLoss({
        embeddingKey: 'emb',
        dataKeys: ['feat'],
        reducer: 'none',
        retrievalFn: () => tensor(unionIdx, 'int32', [rc.R * rc.b, 1]),
      });
      const u = single.call(docNet, concat(q, 0), concat(pos, 0), { cache: unionCache });
      const uIdx = values(u.updatedItemIndices.cache!),
        uMask = values(u.updatedItemMask.cache!),
        uEmb = rowsOf(u.updatedItemData.cache!.emb!);
      expect(uMask.every((v) => v === 1)).toBe(true);
      // Each replica's refresh, per source, position k = the k-th global query.
      outs.forEach((out, s) => {
        const [na, nb] = rc.sizes[s]!;
        const ranges = { a: [offsets[s]!, offsets[s]! + na], b: [offsets[s]! + na, offsets[s]! + na + nb] } as const;
        for (const src of ['a', 'b'] as const) {
          const idx = values(out.updatedItemIndices[src]!),
            mask = values(out.updatedItemMask[src]!),
            emb = rowsOf(out.updatedItemData[src]!.emb!);
          expect(idx.length).toBe(rc.R * rc.b);
          for (let k = 0; k < rc.R * rc.b; k++) {
            const [lo, hi] = ranges[src];
            const mine = uMask[k] === 1 && uIdx[k]! >= lo && uIdx[k]! < hi;
            expect(mask[k], `replica ${s} source ${src} position ${k}`).toBe(mine ? 1 : 0);
            if (!mine) continue;
            expect(idx[k]).toBe(uIdx[k]! - lo);
            emb[k]!.forEach((v, e) =>
              close(v, uEmb[k]![e]!, 1e-14, `replica ${s} source ${src} refresh row ${k}[${e}]`),
            );
          }
        }
      });
      // Applied: each shard changes exactly where the union changes, restricted to it.
      const specs = {
        emb: { shape: [d], dtype: 'float64' as const },
        feat: { shape: [FD], dtype: 'float64' as const },
      };
      const none = { emb: zeros([0, d], 'float64'), feat: zeros([0, FD], 'float64') };
      const unionAfter = new CacheManager({ specs, cacheSize: unionCache.age.shape[0]! }).updateCache(unionCache, {
        newItems: none,
        updatedItemData: u.updatedItemData.cache!,
        updatedItemIndices: u.updatedItemIndices.cache!,
        updatedItemMask: u.updatedItemMask.cache!,
      });
      let at = 0;
      outs.forEach((out, s) => {
        for (const src of ['a', 'b'] as const) {
          const before = shards[s]![src];
          const n = before.age.shape[0]!;
          const after = new CacheManager({ specs, cacheSize: n }).updateCache(before, {
            newItems: none,
            updatedItemData: out.updatedItemData[src]!,
            updatedItemIndices: out.updatedItemIndices[src]!,
            updatedItemMask: out.updatedItemMask[src]!,
          });
          const slice = (t: Tensor): number[] => {
            const inner = t.size / t.shape[0]!;
            return values(t).slice(at * inner, (at + n) * inner);
          };
          expect(values(after.age), `shard ${s} ${src} age`).toEqual(slice(unionAfter.age));
          expect(values(after.valid!)).toEqual(slice(unionAfter.valid!));
          values(after.data.emb!).forEach((v, e) =>
            close(v, slice(unionAfter.data.emb!)[e]!, 1e-14, `shard ${s} ${src} emb after refresh [${e}]`),
          );
          at += n;
        }
      });
    });
  }

  it('refreshShards: false returns null refresh data per source (the reference), with the same losses', async () => {
    const sc: Scenario = {
      R: 3,
      b: 2,
      d: 2,
      sizes: [2, 3, 4],
      transform: TRANSFORMS[0]!,
      docKind: 'linear',
      maskEmptySlots: true,
      stale: true,
      dtype: 'float64',
      seed: 8,
    };
    const w = makeWorld(sc);
    const routed = (await runSharded(w, (r) => ({ rng: new Rng(r) }))).map((x) => x[0]!);
    const plain = (await runSharded(w, (r) => ({ rng: new Rng(r), refreshShards: false }))).map((x) => x[0]!);
    plain.forEach((out, r) => {
      expect(out.updatedItemData).toEqual({ cache: null });
      expect(out.updatedItemIndices).toEqual({ cache: null });
      expect(out.updatedItemMask).toEqual({ cache: null });
      expect(values(out.interpretableLoss)).toEqual(values(routed[r]!.interpretableLoss));
      expect(values(out.selectedReplica)).toEqual(values(routed[r]!.selectedReplica));
      expect(values(out.retrievedIndices)).toEqual(values(routed[r]!.retrievedIndices));
      expect(routed[r]!.updatedItemMask.cache!.shape).toEqual([sc.R * sc.b]);
    });
  });
});

// ---------------------------------------------------------------------------
// Faults inside the loss step (in one thread; the worker versions are in the .workers test)

describe('DistributedCacheClassificationLoss: a failing replica fails the step on every replica', () => {
  it('a doc network that throws on one replica: the others get a CollectiveAbortedError naming it', async () => {
    const sc: Scenario = {
      R: 3,
      b: 2,
      d: 2,
      sizes: [2, 2, 2],
      transform: TRANSFORMS[0]!,
      docKind: 'linear',
      maskEmptySlots: true,
      stale: false,
      dtype: 'float64',
      seed: 2,
    };
    const w = makeWorld(sc);
    let err: unknown;
    try {
      await runInProcess(
        sc.R,
        async (ctx) => {
          const loss = new DistributedCacheClassificationLoss({ ...lossOptions(sc), rng: new Rng(ctx.replicaId) });
          const net: DocNetwork =
            ctx.replicaId === 1
              ? () => {
                  throw new Error('doc network failed on replica 1');
                }
              : w.docNet(w.params);
          return loss.call(ctx, net, w.q[ctx.replicaId]!, w.pos[ctx.replicaId]!, { cache: w.shards[ctx.replicaId]! });
        },
        { timeoutMs: 2000 },
      );
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ReplicaGroupError);
    const g = err as ReplicaGroupError;
    expect(g.failedReplica).toBe(1);
    expect(g.message).toMatch(/^runInProcess: replica 1 failed: threw Error: doc network failed on replica 1/);
    for (const r of [0, 2]) {
      expect(g.errors[r]).toBeInstanceOf(CollectiveAbortedError);
      expect(g.errors[r]!.message).toMatch(
        new RegExp(
          `^allToAll: collective #\\d+ on replica ${r} was aborted because replica 1 failed: threw Error: doc network failed on replica 1`,
        ),
      );
    }
  });
});
