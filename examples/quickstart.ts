/**
 * A small runnable tour: tensors and grad, then a dual encoder trained with
 * the negative cache that visibly learns. Run it with `npm run example`
 * (`node dist/examples/quickstart.js [steps]` after a build; default 300).
 *
 * The task: 32-dimensional random "documents"; a document's query is a
 * noisy copy of it (noise 0.7). Each tower is linear + L2 normalisation
 * with its own random initial weights, so at first a query's embedding has
 * nothing to do with its document's; training has to align the towers.
 * Every 50 steps it prints the two losses (averaged over those 50 steps)
 * and recall@1 on 1000 held-out (query, document) pairs it never trains on.
 */
import {
  AdamW,
  CacheClassificationLoss,
  CacheLossHandler,
  CacheManager,
  Index,
  Rng,
  add,
  grad,
  l2Normalize,
  matmul,
  mul,
  normal,
  scaleTransform,
  sum,
  tensor,
  valueAndGrad,
  type HandlerStep,
  type Tensor,
} from '../src/index.js';

// Tensors and grad: d/dx sum(x * x) = 2x
const x = tensor([
  [1, 2],
  [3, 4],
]);
const dx = grad((x: Tensor) => sum(mul(x, x)))(x);
console.log('x =', x.toArray(), ' d/dx sum(x²) =', dx.toArray());

const STEPS = Number(process.argv[2] ?? 300);
const features = 32,
  dim = 16,
  batch = 32,
  noise = 0.7;
type Params = { query: Tensor; doc: Tensor };
const queryTower = (p: Params, x: Tensor): Tensor => l2Normalize(matmul(x, p.query));
const docTower = (p: Params, x: Tensor): Tensor => l2Normalize(matmul(x, p.doc));

const rng = new Rng(0);
let params: Params = { query: normal([features, dim], rng), doc: normal([features, dim], rng) };
const cacheManager = new CacheManager({
  specs: { embedding: { shape: [dim], dtype: 'float32' }, features: { shape: [features], dtype: 'float32' } },
  cacheSize: 1024,
});
const loss = new CacheClassificationLoss({
  embeddingKey: 'embedding',
  dataKeys: ['features'],
  scoreTransform: scaleTransform(20),
  rng: new Rng(1),
  sampler: 'categorical',
});
const handler = new CacheLossHandler({ cacheManager, loss });
const optimizer = new AdamW({ lr: 0.01, weightDecay: 0 });

// Held-out pairs: recall@1 = how often a query's own document is the best of the 1000 (chance: 0.1 %).
const evalRng = new Rng(99);
const evalDocs = normal([1000, features], evalRng);
const evalQueries = add(evalDocs, mul(normal([1000, features], evalRng), noise));
function recallAt1(p: Params): number {
  const index = new Index(dim);
  index.add(
    Array.from({ length: 1000 }, (_, i) => String(i)),
    docTower(p, evalDocs),
  );
  const hits = index.search(queryTower(p, evalQueries), 1);
  return hits.filter((h, i) => h.ids[0] === String(i)).length / 1000;
}

console.log(`
Training a dual encoder with the negative cache (batch ${batch}, cache 1024, ${STEPS} steps).
  training loss      (1 - p+) * (s- - s+): the cache loss's surrogate, whose gradient is an unbiased
                     estimate of the gradient of the interpretable loss (s+ the positive's score, s- the
                     score of one negative sampled from the cache). It is not a loss value: it is negative
                     whenever the sampled negative scores below the positive, and tends to 0 as p+ -> 1.
  interpretable loss -log p+, the softmax cross-entropy of the positive against every cached document:
                     the loss the cache approximates. It rises while the empty cache fills (more
                     negatives), then falls as the model learns.
  recall@1           over 1000 held-out pairs (chance 0.001).
`);
console.log('  step   training loss   interpretable loss   recall@1');
console.log(`     0               -                    -   ${recallAt1(params).toFixed(3)}`);
let sumTrain = 0,
  sumInterp = 0;
for (let step = 1; step <= STEPS; step++) {
  const docs = normal([batch, features], rng);
  const queries = add(docs, mul(normal([batch, features], rng), noise));
  const { grad: g, aux } = valueAndGrad(
    (p: Params) => {
      const docNetwork = (items: Record<string, Tensor>): Tensor => docTower(p, items['features']!);
      const s = handler.computeLoss(docNetwork, queryTower(p, queries), docTower(p, docs), { features: docs });
      return [s.trainingLoss, s];
    },
    { hasAux: true },
  )(params);
  const s = aux as HandlerStep;
  handler.commit(s, { gradients: g });
  params = optimizer.step(params, g);
  sumTrain += s.metrics.trainingLoss;
  sumInterp += s.metrics.interpretableLoss;
  if (step % 50 === 0 || step === STEPS) {
    const n = step % 50 === 0 ? 50 : step % 50;
    console.log(
      `${String(step).padStart(6)}   ${(sumTrain / n).toFixed(4).padStart(13)}   ${(sumInterp / n).toFixed(4).padStart(18)}   ${recallAt1(params).toFixed(3)}`,
    );
    sumTrain = sumInterp = 0;
  }
}
