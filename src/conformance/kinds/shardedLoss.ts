/**
 * Kind `sharded_loss`: DistributedCacheClassificationLoss on R in-process
 * replicas, forward and gradients for fixed per-replica picks.
 *
 * config: {replicas: R, batch: b (queries per replica), transform, topK
 *   (global; each shard keeps floor(topK / R) candidates) | null, reducer,
 *   docNetwork: 'linear', maskEmptySlots, falseNegativeKey: 'id' | null}
 * inputs: shard<t>/emb [n_t, d], shard<t>/feat [n_t, F], shard<t>/valid,
 *   shard<t>/id (when used) for every replica t; W [F, d] (shared);
 *   per replica r: replica<r>/queries [b, d], replica<r>/positives [b, d],
 *   replica<r>/positiveIds [b] (with falseNegativeKey),
 *   replica<r>/localRetrieved int32 [R·b, 1] (what replica r's local
 *   retrieval returns for ALL gathered queries, in replica order: an index
 *   into its shard's candidates), replica<r>/shardRetrieved int32 [b, 1]
 *   (the shard picked for each of its queries from the [b, R] weights),
 *   replica<r>/cotangent
 * expected, per replica r: replica<r>/trainingLoss, /interpretableLoss,
 *   /staleness, /probPos, /shardWeights [b, R] (logSumExp of each shard's
 *   candidate scores), /selectedReplica, /retrievedIndices (the index within
 *   the selected shard), /hasNegative, /grad/queries, /grad/positives,
 *   /grad/W (replica r's gradients of sum(cotangent * trainingLoss)).
 * The reference returns no refresh data from the sharded loss; neither do these vectors.
 */
import type { Rng } from '../../tensor/random.js';
import type { Tensor } from '../../tensor/tensor.js';
import { valueAndGradAsync } from '../../autograd/transforms.js';
import { runInProcess } from '../../distributed/inProcess.js';
import {
  DistributedCacheClassificationLoss,
  type DistributedCacheLossReturn,
} from '../../losses/distributedCacheClassificationLoss.js';
import { FLOAT64_TOLERANCE, type Json, type Vector, type VectorKind } from '../format.js';
import { as64, gridValues, lit, nums } from '../values.js';
import {
  buildCache,
  fixedRetrieval,
  linearDoc,
  nonZeroCotangent,
  objective,
  picks,
  transformOf,
  type TransformConfig,
} from './cacheLoss.js';

interface ShardConfig {
  replicas: number;
  batch: number;
  transform: TransformConfig;
  topK: number | null;
  reducer: 'mean' | 'none';
  docNetwork: 'linear';
  maskEmptySlots: boolean;
  falseNegativeKey: 'id' | null;
}

const OUTPUTS = [
  'trainingLoss',
  'interpretableLoss',
  'staleness',
  'probPos',
  'shardWeights',
  'selectedReplica',
  'retrievedIndices',
  'hasNegative',
] as const;

export async function compute(
  config: { [k: string]: Json },
  inputs: Record<string, Tensor>,
): Promise<Record<string, Tensor>> {
  const c = config as unknown as ShardConfig;
  const R = c.replicas;
  const scoreTransform = transformOf(c.transform);
  const results = await runInProcess(R, async (ctx) => {
    const r = ctx.replicaId;
    const loss = new DistributedCacheClassificationLoss({
      embeddingKey: 'emb',
      dataKeys: ['feat'],
      reducer: c.reducer,
      maskEmptySlots: c.maskEmptySlots,
      refreshShards: false,
      retrievalFn: fixedRetrieval(inputs[`replica${r}/localRetrieved`]!),
      shardRetrievalFn: fixedRetrieval(inputs[`replica${r}/shardRetrieved`]!),
      ...(scoreTransform ? { scoreTransform } : {}),
      ...(c.topK !== null ? { topK: c.topK } : {}),
      ...(c.falseNegativeKey !== null ? { falseNegativeKey: c.falseNegativeKey } : {}),
    });
    const cache = buildCache(['cache'], inputs, () => `shard${r}/`);
    const cot = as64(inputs[`replica${r}/cotangent`]!);
    const f = async (q: Tensor, p: Tensor, W: Tensor): Promise<[Tensor, DistributedCacheLossReturn]> => {
      const out = await loss.call(
        ctx,
        linearDoc(W),
        q,
        p,
        cache,
        c.falseNegativeKey !== null ? { positiveIds: inputs[`replica${r}/positiveIds`]! } : {},
      );
      return [objective(out.trainingLoss, cot, c.reducer), out];
    };
    return valueAndGradAsync(f, { argnums: [0, 1, 2], hasAux: true })(
      as64(inputs[`replica${r}/queries`]!),
      as64(inputs[`replica${r}/positives`]!),
      as64(inputs['W']!),
    );
  });
  const expected: Record<string, Tensor> = {};
  results.forEach(({ grad, aux }, r) => {
    const out = aux as DistributedCacheLossReturn;
    for (const k of OUTPUTS) expected[`replica${r}/${k}`] = out[k];
    const [gq, gp, gW] = grad as Tensor[];
    expected[`replica${r}/grad/queries`] = gq!;
    expected[`replica${r}/grad/positives`] = gp!;
    expected[`replica${r}/grad/W`] = gW!;
  });
  return expected;
}

interface ShardCase {
  name: string;
  extra: string;
  beyond: string[];
  R: number;
  b: number;
  d: number;
  F: number;
  sizes: number[];
  transform: TransformConfig;
  topK: number | null;
  reducer: 'mean' | 'none';
  valid?: number[][];
  ids?: { shards: number[][]; positives: number[][] };
}

const PIN =
  "REFERENCE.md 'The distributed (sharded) loss': queries all-gathered in replica order; each shard retrieves for all of them (floor(topK / R) candidates per shard with topK) and weighs them by w = logSumExp of its candidate scores; each replica picks one shard per query from its [b, R] weights; probPos = softmax([s+, w_1..w_R])_0; the loss terms as in the single-cache loss; gradients stay on the replica.";

function vectorFromInputs(
  kind: string,
  sc: ShardCase,
  config: ShardConfig,
  inputs: Record<string, Tensor>,
  expected: Record<string, Tensor>,
): Vector {
  const beyondOutputs: string[] = [];
  for (let r = 0; r < sc.R; r++)
    for (const k of ['probPos', 'shardWeights', 'selectedReplica', 'retrievedIndices', 'hasNegative'])
      beyondOutputs.push(`replica${r}/${k}`);
  return {
    name: `${kind}.${sc.name}`,
    kind,
    pins: `${PIN}${sc.extra}`,
    beyondReference: sc.beyond,
    config: config as unknown as { [k: string]: Json },
    inputs,
    expected,
    beyondReferenceOutputs: beyondOutputs,
    tolerance: FLOAT64_TOLERANCE,
  };
}

function configOf(sc: ShardCase): ShardConfig {
  return {
    replicas: sc.R,
    batch: sc.b,
    transform: sc.transform,
    topK: sc.topK,
    reducer: sc.reducer,
    docNetwork: 'linear',
    maskEmptySlots: true,
    falseNegativeKey: sc.ids ? 'id' : null,
  };
}

/** Random inputs and valid picks for a case. */
function randomInputs(rng: Rng, sc: ShardCase): Record<string, Tensor> {
  const { R, b, d, F } = sc;
  const inputs: Record<string, Tensor> = {};
  for (let t = 0; t < R; t++) {
    const n = sc.sizes[t]!;
    const v = sc.valid?.[t];
    const zeroInvalid = (x: Tensor): Tensor => {
      if (!v) return x;
      const w = x.shape[1]!;
      const data = nums(x);
      v.forEach((ok, j) => {
        if (!ok) data.fill(0, j * w, (j + 1) * w);
      });
      return lit(data, x.shape);
    };
    inputs[`shard${t}/emb`] = zeroInvalid(gridValues(rng, [n, d]));
    inputs[`shard${t}/feat`] = zeroInvalid(gridValues(rng, [n, F]));
    if (v) inputs[`shard${t}/valid`] = lit(v, [n], 'bool');
    if (sc.ids) inputs[`shard${t}/id`] = lit(sc.ids.shards[t]!, [n], 'int32');
  }
  inputs['W'] = gridValues(rng, [F, d], { lo: -8, hi: 8 });
  for (let r = 0; r < R; r++) {
    inputs[`replica${r}/queries`] = gridValues(rng, [b, d]);
    inputs[`replica${r}/positives`] = gridValues(rng, [b, d]);
    if (sc.ids) inputs[`replica${r}/positiveIds`] = lit(sc.ids.positives[r]!, [b], 'int32');
    inputs[`replica${r}/cotangent`] = sc.reducer === 'none' ? nonZeroCotangent(rng, b) : lit([1], [], 'float32');
  }
  // excluded(t, g, j): row j of shard t for gathered query g (g = r·b + i)
  const excluded = (t: number, g: number, j: number): boolean =>
    (sc.valid !== undefined && !sc.valid[t]![j]) ||
    (sc.ids !== undefined && sc.ids.shards[t]![j] === sc.ids.positives[Math.floor(g / b)]![g % b]);
  const perShard = sc.topK !== null ? Math.floor(sc.topK / R) : null;
  for (let t = 0; t < R; t++)
    inputs[`replica${t}/localRetrieved`] = picks(rng, R * b, sc.sizes[t]!, perShard, (g, j) => excluded(t, g, j));
  for (let r = 0; r < R; r++) {
    // shard t is a candidate for query (r, i) when it has a non-excluded row (a finite weight)
    inputs[`replica${r}/shardRetrieved`] = picks(rng, b, R, null, (i, t) => {
      for (let j = 0; j < sc.sizes[t]!; j++) if (!excluded(t, r * b + i, j)) return false;
      return true;
    });
  }
  return inputs;
}

export const shardedLoss: VectorKind = {
  kind: 'sharded_loss',
  compute,
  async generate(rng: Rng): Promise<Vector[]> {
    const out: Vector[] = [];
    // the upstream example (distributed_losses_test.py testTrainingLoss / testInterpretableLoss)
    {
      const sc: ShardCase = {
        name: 'upstream',
        extra:
          " The upstream tests' example: 2 replicas, shards [1, 2] and [-1, -2], local picks [0, 1, 0, 1], shard picks [0, 1].",
        beyond: [],
        R: 2,
        b: 2,
        d: 1,
        F: 1,
        sizes: [2, 2],
        transform: { kind: 'identity' },
        topK: null,
        reducer: 'none',
      };
      const inputs: Record<string, Tensor> = {
        'shard0/emb': lit([1, 2], [2, 1]),
        'shard0/feat': lit([1, 2], [2, 1]),
        'shard1/emb': lit([-1, -2], [2, 1]),
        'shard1/feat': lit([-1, -2], [2, 1]),
        W: lit([1], [1, 1]),
        'replica0/queries': lit([-1, 1], [2, 1]),
        'replica0/positives': lit([2, 2], [2, 1]),
        'replica1/queries': lit([1, 1], [2, 1]),
        'replica1/positives': lit([2, 2], [2, 1]),
      };
      for (let r = 0; r < 2; r++) {
        inputs[`replica${r}/localRetrieved`] = lit([0, 1, 0, 1], [4, 1], 'int32');
        inputs[`replica${r}/shardRetrieved`] = lit([0, 1], [2, 1], 'int32');
        inputs[`replica${r}/cotangent`] = lit([1, 1], [2]);
      }
      const config = configOf(sc);
      out.push(vectorFromInputs(this.kind, sc, config, inputs, await compute(config as never, inputs)));
    }
    const cases: ShardCase[] = [
      {
        name: 'r3_uneven_scale_mean',
        extra: ' Three replicas with shards of 3, 2 and 4 items, T(s) = 2s, reducer mean.',
        beyond: [],
        R: 3,
        b: 2,
        d: 2,
        F: 3,
        sizes: [3, 2, 4],
        transform: { kind: 'scale', scale: 2 },
        topK: null,
        reducer: 'mean',
      },
      {
        name: 'r2_topk_tanh_none',
        extra: ' topK 4 over 2 replicas: 2 candidates per shard; T(s) = tanh(s).',
        beyond: [],
        R: 2,
        b: 3,
        d: 2,
        F: 2,
        sizes: [4, 6],
        transform: { kind: 'tanh' },
        topK: 4,
        reducer: 'none',
      },
      {
        name: 'r3_topk_not_divisible',
        extra: ' topK 5 over 3 replicas: floor(5 / 3) = 1 candidate per shard (R need not divide topK).',
        beyond: [],
        R: 3,
        b: 2,
        d: 2,
        F: 2,
        sizes: [2, 3, 1],
        transform: { kind: 'identity' },
        topK: 5,
        reducer: 'mean',
      },
      {
        name: 'r3_empty_slots_none',
        extra:
          ' Empty slots excluded on every shard; shard 1 holds no item, so its weight is -Infinity and it is never picked.',
        beyond: ['maskEmptySlots (valid flags)'],
        R: 3,
        b: 2,
        d: 2,
        F: 2,
        sizes: [3, 2, 3],
        valid: [
          [1, 0, 1],
          [0, 0],
          [1, 1, 0],
        ],
        transform: { kind: 'scale', scale: 2 },
        topK: null,
        reducer: 'none',
      },
      {
        name: 'r2_false_negatives_none',
        extra: " Rows carrying the query's positive id are excluded on every shard (for that query only).",
        beyond: ['falseNegativeKey'],
        R: 2,
        b: 2,
        d: 2,
        F: 2,
        sizes: [3, 2],
        ids: {
          shards: [
            [4, 5, 4],
            [4, 6],
          ],
          positives: [
            [4, 6],
            [9, 5],
          ],
        },
        transform: { kind: 'identity' },
        topK: null,
        reducer: 'none',
      },
      {
        name: 'r2_no_negative_mean',
        extra:
          " Replica 0's query 0 and replica 1's query 1 find every valid row on every shard carrying their positive id: all weights are -Infinity, so they have no negative (zero loss terms and gradients).",
        beyond: ['falseNegativeKey', 'maskEmptySlots (valid flags)'],
        R: 2,
        b: 2,
        d: 2,
        F: 2,
        sizes: [2, 2],
        valid: [
          [1, 0],
          [1, 1],
        ],
        ids: {
          shards: [
            [4, 2],
            [4, 4],
          ],
          positives: [
            [4, 7],
            [7, 4],
          ],
        },
        transform: { kind: 'scale', scale: 2 },
        topK: null,
        reducer: 'mean',
      },
    ];
    for (const sc of cases) {
      const inputs = randomInputs(rng, sc);
      const config = configOf(sc);
      out.push(vectorFromInputs(this.kind, sc, config, inputs, await compute(config as never, inputs)));
    }
    return out;
  },
};
