/**
 * The sharded loss on worker threads (runWorkers; shared-memory collectives),
 * R = 1..4. The replica functions are test/distributed/fixtures/shardedLoss.mjs
 * (plain JavaScript over the build in dist/, rebuilt here when stale).
 *
 *  - Transport: the workers' outputs (every loss term, the sampled shard and
 *    item, the routed refresh data) are bit-identical to the same replica
 *    function run in one thread (dist's runInProcess) with the same seeds.
 *  - Values: interpretableLoss, probPos and hasNegative equal the
 *    single-process CacheClassificationLoss on the union of the shards
 *    (|diff| <= 1e-12·max(1, |ref|), float64), with unequal shards and masks,
 *    and with topK when R does not divide it.
 *  - Sampling: a smaller chi-square run than the in-process one (below the
 *    0.999 quantile), on the workers' draws.
 *  - Faults inside the loss step: a replica that throws, exits, never
 *    arrives, or computes forever: every replica fails with an error naming
 *    it within the 2 s collective timeout (plus the abort grace), and every
 *    worker is gone afterwards.
 */
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../util/build.js';
import {
  CacheClassificationLoss,
  ReplicaGroupError,
  Rng,
  concat,
  gather,
  matmul,
  maxScoreRetrievalFn,
  normal,
  scaleTransform,
  tensor,
  zeros,
  type NegativeCache,
  type Tensor,
} from '../../src/index.js';
import { runWorkers } from '../../src/node/workerGroup.js';
import { encodeTensors } from '../../src/node/sharedMemoryGroup.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const FIXTURE = join(ROOT, 'test/distributed/fixtures/shardedLoss.mjs');
const TOL = 1e-12;
const FD = 2;

beforeAll(() => ensureBuilt('dist/src/losses/distributedCacheClassificationLoss.js'), 300_000);

type Summary = Record<string, Tensor | { emb: Tensor; idx: Tensor; mask: Tensor } | null>;
type DistModule = Record<string, any>;

async function importDist(path: string): Promise<DistModule> {
  return (await import(pathToFileURL(join(ROOT, path)).href)) as DistModule;
}

/** The same fixture function in one thread over dist's runInProcess (args converted to dist tensors). */
async function runDistInProcess<T>(R: number, exportName: string, args: unknown): Promise<T[]> {
  const { runInProcess } = await importDist('dist/src/distributed/inProcess.js');
  const { decodeTensors } = await importDist('dist/src/node/sharedMemoryGroup.js');
  const fixture = await import(pathToFileURL(FIXTURE).href);
  const distArgs = decodeTensors(encodeTensors(args));
  return runInProcess(R, (ctx: unknown) => fixture[exportName](ctx, distArgs), { timeoutMs: 10_000 }) as Promise<T[]>;
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
const values = (t: { dataSync(): ArrayLike<number> }): number[] => Array.from(t.dataSync(), Number);

function sameBits(
  a: { dataSync(): ArrayLike<number> & { buffer: ArrayBufferLike }; shape: readonly number[]; dtype: string },
  b: typeof a,
): boolean {
  const x = a.dataSync(),
    y = b.dataSync();
  return (
    a.dtype === b.dtype && a.shape.join() === b.shape.join() && Buffer.from(x.buffer).equals(Buffer.from(y.buffer))
  );
}

function expectSameSummaries(workers: Summary[][], inProcess: Summary[][]): void {
  expect(workers.length).toBe(inProcess.length);
  workers.forEach((steps, r) =>
    steps.forEach((s, t) => {
      for (const [k, v] of Object.entries(s)) {
        const other = inProcess[r]![t]![k];
        if (v === null) {
          expect(other, `replica ${r} step ${t} ${k}`).toBeNull();
          continue;
        }
        const pairs: [string, any, any][] =
          'dataSync' in v
            ? [[k, v, other]]
            : Object.entries(v).map(([kk, vv]) => [`${k}.${kk}`, vv, (other as any)[kk]]);
        for (const [name, x, y] of pairs)
          expect(sameBits(x, y), `replica ${r} step ${t} ${name}: workers and in-process differ`).toBe(true);
      }
    }),
  );
}

interface Config {
  R: number;
  b: number;
  d: number;
  sizes: number[];
  scale: number;
  topK?: number;
  masks: boolean;
  /** Repeat this many distinct queries per replica (b must be a multiple). */
  distinct?: number;
  seed: number;
}

function makeArgs(c: Config, steps: number, sampler: 'gumbel' | 'categorical' = 'gumbel') {
  const rng = new Rng(c.seed);
  const f64 = { dtype: 'float64' as const };
  const w1 = normal([FD, c.d], rng, f64);
  const feats = c.sizes.map((n) => normal([n, FD], rng, f64));
  const embs = feats.map((x) => normal([x.shape[0]!, c.d], rng, f64)); // stale on purpose: any cached values
  const tile = (t: Tensor): Tensor =>
    c.distinct
      ? gather(
          t,
          tensor(
            range(c.b).map((i) => i % c.distinct!),
            'int32',
          ),
        )
      : t;
  const q = range(c.R).map(() => tile(normal([c.b, c.d], rng, { ...f64, std: 0.8 })));
  const pos = range(c.R).map(() => tile(normal([c.b, c.d], rng, f64)));
  const idOf = (): number => Math.floor(rng.uniform() * 4);
  const shards: NegativeCache[] = c.sizes.map((n, s) => ({
    data: { emb: embs[s]!, feat: feats[s]!, ...(c.masks ? { id: tensor(range(n).map(idOf), 'int32', [n]) } : {}) },
    age: zeros([n], 'int32'),
    ...(c.masks
      ? {
          valid: tensor(
            range(n).map(() => (rng.uniform() < 0.8 ? 1 : 0)),
            'bool',
            [n],
          ),
        }
      : {}),
  }));
  const posIds = c.masks ? range(c.R).map(() => tile(tensor(range(c.b).map(idOf), 'int32', [c.b]))) : undefined;
  return {
    shards,
    q,
    pos,
    w1,
    steps,
    ...(posIds ? { posIds } : {}),
    opts: {
      scale: c.scale,
      seedBase: c.seed * 13 + 1,
      sampler,
      ...(c.topK !== undefined ? { topK: c.topK } : {}),
      ...(c.masks ? { falseNegativeKey: 'id' } : {}),
    },
  };
}

/** The single-process loss on the union (shards and queries concatenated in replica order). */
function unionLoss(c: Config, args: ReturnType<typeof makeArgs>, topK?: number) {
  const union: NegativeCache = {
    data: {
      emb: concat(
        args.shards.map((s) => s.data.emb!),
        0,
      ),
      feat: concat(
        args.shards.map((s) => s.data.feat!),
        0,
      ),
      ...(c.masks
        ? {
            id: concat(
              args.shards.map((s) => s.data.id!),
              0,
            ),
          }
        : {}),
    },
    age: zeros([c.sizes.reduce((a, v) => a + v, 0)], 'int32'),
    ...(c.masks
      ? {
          valid: concat(
            args.shards.map((s) => s.valid!),
            0,
          ),
        }
      : {}),
  };
  const loss = new CacheClassificationLoss({
    embeddingKey: 'emb',
    dataKeys: ['feat'],
    reducer: 'none',
    scoreTransform: scaleTransform(c.scale),
    retrievalFn: maxScoreRetrievalFn(),
    ...(topK !== undefined ? { topK } : {}),
    ...(c.masks ? { falseNegativeKey: 'id' } : {}),
  });
  return loss.call(
    (f) => matmul(f.feat!, args.w1),
    concat(args.q, 0),
    concat(args.pos, 0),
    { cache: union },
    args.posIds ? { positiveIds: concat(args.posIds, 0) } : {},
  );
}

function expectUnionValues(c: Config, args: ReturnType<typeof makeArgs>, res: Summary[][], topK?: number): void {
  const u = unionLoss(c, args, topK);
  for (let t = 0; t < args.steps; t++) {
    const cat = (k: string): number[] => res.flatMap((steps) => values(steps[t]![k] as Tensor));
    const want = { interpretableLoss: values(u.interpretableLoss), probPos: values(u.probPos) };
    for (const [k, ref] of Object.entries(want)) {
      cat(k).forEach((v, g) => {
        if (!(Math.abs(v - ref[g]!) <= TOL * Math.max(1, Math.abs(ref[g]!))))
          throw new Error(`step ${t} ${k}[${g}] = ${v}, union ${ref[g]}`);
      });
    }
    expect(cat('hasNegative')).toEqual(values(u.hasNegative));
  }
}

describe('sharded loss on worker threads: same results as in one thread, equal to the union loss', () => {
  it.each([1, 2, 3, 4])(
    'R = %i, unequal shards with valid flags and false-negative ids',
    async (R) => {
      const c: Config = { R, b: 3, d: 3, sizes: [5, 2, 7, 4].slice(0, R), scale: 2, masks: true, seed: 50 + R };
      const args = makeArgs(c, 3, R % 2 === 0 ? 'categorical' : 'gumbel');
      const res = await runWorkers<Summary[]>({
        numReplicas: R,
        module: FIXTURE,
        exportName: 'lossSteps',
        args,
        timeoutMs: 10_000,
      });
      expectSameSummaries(res, await runDistInProcess<Summary[]>(R, 'lossSteps', args));
      expectUnionValues(c, args, res);
      // The draws differ between steps (the generators advance), and refresh data came back.
      expect(
        res.some(
          (steps) =>
            values(steps[0]!.retrievedIndices as Tensor).join() !==
              values(steps[1]!.retrievedIndices as Tensor).join() || R === 1,
        ),
      ).toBe(true);
      for (const steps of res) expect((steps[0]!.refresh as { mask: Tensor }).mask.shape).toEqual([R * c.b]);
    },
    30_000,
  );

  it('R = 3, topK = 7 (2 per shard, R does not divide topK), equal shards: the union with its own top-k groups', async () => {
    const c: Config = { R: 3, b: 2, d: 2, sizes: [4, 4, 4], scale: 1.5, topK: 7, masks: false, seed: 77 };
    const args = makeArgs(c, 2);
    const res = await runWorkers<Summary[]>({
      numReplicas: 3,
      module: FIXTURE,
      exportName: 'lossSteps',
      args,
      timeoutMs: 10_000,
    });
    expectSameSummaries(res, await runDistInProcess<Summary[]>(3, 'lossSteps', args));
    expectUnionValues(c, args, res, 6);
  }, 30_000);

  it("R = 2: chi-square of the workers' draws against the union softmax is below the 0.999 quantile", async () => {
    const Q = 2,
      m = 300,
      steps = 4;
    const c: Config = { R: 2, b: Q * m, d: 3, sizes: [6, 3], scale: 0.7, masks: false, distinct: Q, seed: 5 };
    const args = makeArgs(c, steps);
    const res = await runWorkers<Summary[]>({
      numReplicas: 2,
      module: FIXTURE,
      exportName: 'lossSteps',
      args,
      timeoutMs: 10_000,
    });
    const offsets = [0, c.sizes[0]!];
    const N = c.sizes[0]! + c.sizes[1]!;
    const emb = concat(
      args.shards.map((s) => s.data.emb!),
      0,
    );
    let stat = 0,
      df = 0;
    for (let r = 0; r < c.R; r++) {
      const scores = (matmul(args.q[r]!, emb, { transposeB: true }).toArray() as number[][]).map((row) =>
        row.map((v) => c.scale * v),
      );
      for (let k = 0; k < Q; k++) {
        const row = scores[k]!;
        const mx = Math.max(...row);
        const e = row.map((v) => Math.exp(v - mx));
        const z = e.reduce((a, v) => a + v, 0);
        const counts = new Array<number>(N).fill(0);
        let total = 0;
        for (const s of res[r]!) {
          const sel = values(s.selectedReplica as Tensor),
            idx = values(s.retrievedIndices as Tensor);
          for (let i = k; i < c.b; i += Q) {
            counts[offsets[sel[i]!]! + idx[i]!]!++;
            total++;
          }
        }
        e.forEach((v, j) => {
          const expected = (v / z) * total;
          expect(expected).toBeGreaterThan(5); // no pooling needed at these scores
          stat += (counts[j]! - expected) ** 2 / expected;
        });
        df += N - 1;
      }
    }
    const cdf = 2 / (9 * df);
    const limit = df * (1 - cdf + 3.0902 * Math.sqrt(cdf)) ** 3;
    expect(stat, `chi-square ${stat.toFixed(1)} with ${df} df (0.999 quantile ${limit.toFixed(1)})`).toBeLessThan(
      limit,
    );
  }, 30_000);
});

async function rejection(p: Promise<unknown>): Promise<ReplicaGroupError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ReplicaGroupError);
    return e as ReplicaGroupError;
  }
  throw new Error('expected a rejection');
}

async function heartbeatStopped(hb: SharedArrayBuffer): Promise<boolean> {
  const before = Atomics.load(new Int32Array(hb), 0);
  await new Promise((r) => setTimeout(r, 150));
  return Atomics.load(new Int32Array(hb), 0) === before;
}

describe('sharded loss on worker threads: a failing replica fails the step on every replica, nothing hangs', () => {
  // One step makes 8 collectives with dataKeys ['feat'] and no false-negative ids:
  // #1 allGather(queries), #2..#5 allToAll(weights, feat, cached embeddings, local indices),
  // then the doc network, then #6..#8 allToAll(refresh embeddings, indices, mask).
  const PER_STEP = 8;
  const failStep = 1; // the second step: the first one completed on every replica
  const TIMEOUT = 2000;
  const GRACE = 300;

  const cases = [
    {
      R: 2,
      mode: 'throw',
      reason: 'threw Error: doc network failed on replica 1',
      failing: 1,
      kind: 'aborted',
      at: PER_STEP * failStep + 6,
      coll: 'allToAll',
    },
    {
      R: 3,
      mode: 'throw',
      reason: 'threw Error: doc network failed on replica 2',
      failing: 2,
      kind: 'aborted',
      at: PER_STEP * failStep + 6,
      coll: 'allToAll',
    },
    {
      R: 3,
      mode: 'exit',
      reason: 'exited with code 3 before returning a result',
      failing: 0,
      kind: 'aborted',
      at: PER_STEP * failStep + 6,
      coll: 'allToAll',
    },
    {
      R: 2,
      mode: 'hang',
      reason: `replica 1 did not arrive at collective #${PER_STEP * failStep + 1} (allGather) within ${TIMEOUT} ms`,
      failing: 1,
      kind: 'timeout',
      at: PER_STEP * failStep + 1,
      coll: 'allGather',
    },
    {
      R: 3,
      mode: 'spin',
      reason: `replica 1 did not arrive at collective #${PER_STEP * failStep + 6} (allToAll) within ${TIMEOUT} ms`,
      failing: 1,
      kind: 'timeout',
      at: PER_STEP * failStep + 6,
      coll: 'allToAll',
    },
  ] as const;

  for (const c of cases) {
    it(`R = ${c.R}: replica ${c.failing} ${c.mode}s in step 2 of the loss: every replica fails naming it`, async () => {
      const cfg: Config = { R: c.R, b: 2, d: 2, sizes: [3, 4, 2].slice(0, c.R), scale: 1, masks: false, seed: 9 };
      const heartbeat = new SharedArrayBuffer(4);
      const args = { ...makeArgs(cfg, 3), mode: c.mode, failing: c.failing, failStep, heartbeat };
      const t0 = performance.now();
      const e = await rejection(
        runWorkers({
          numReplicas: c.R,
          module: FIXTURE,
          exportName: 'faulty',
          args,
          timeoutMs: TIMEOUT,
          abortGraceMs: GRACE,
        }),
      );
      const elapsed = performance.now() - t0;
      expect(e.failedReplica).toBe(c.failing);
      expect(e.message.startsWith(`runWorkers: replica ${c.failing} failed: ${c.reason}`), e.message).toBe(true);
      for (let r = 0; r < c.R; r++) {
        if (r === c.failing) continue;
        const err = e.errors[r]!;
        if (c.kind === 'aborted') {
          expect(err.name).toBe('CollectiveAbortedError');
          expect(err.message).toBe(
            `${c.coll}: collective #${c.at} on replica ${r} was aborted because replica ${c.failing} failed: ${c.reason}`,
          );
        } else {
          expect(err.name).toBe('CollectiveTimeoutError');
          expect(err.message).toContain(c.reason);
        }
      }
      // Failures that are reported need no timeout; the missing replica is detected by it (plus the abort grace).
      expect(elapsed).toBeLessThan(c.kind === 'timeout' ? TIMEOUT + GRACE + 5000 : 5000);
      if (c.mode === 'hang' || c.mode === 'spin') {
        expect(Atomics.load(new Int32Array(heartbeat), 0)).toBeGreaterThan(0); // it was alive ...
        expect(await heartbeatStopped(heartbeat)).toBe(true); // ... and is terminated now
      }
    }, 20_000);
  }
});
