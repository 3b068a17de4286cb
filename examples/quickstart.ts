/**
 * A small runnable tour: tensors, grad, and one negative-cache training
 * loop on random data. Run it with `npm run example`.
 */
import {
  add,
  CacheClassificationLoss,
  l2Normalize,
  CacheLossHandler,
  CacheManager,
  Rng,
  grad,
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

// A linear dual encoder trained with the negative cache on random features.
const rng = new Rng(0);
const dim = 8,
  featDim = 16,
  batch = 16;
let params = { q: normal([featDim, dim], rng, { std: 0.3 }), d: normal([featDim, dim], rng, { std: 0.3 }) };
const cacheManager = new CacheManager({
  specs: { embedding: { shape: [dim], dtype: 'float32' }, features: { shape: [featDim], dtype: 'float32' } },
  cacheSize: 256,
});
const loss = new CacheClassificationLoss({
  embeddingKey: 'embedding',
  dataKeys: ['features'],
  scoreTransform: scaleTransform(10),
  rng: new Rng(1),
});
const handler = new CacheLossHandler({ cacheManager, loss });
const lr = 0.5;
for (let step = 1; step <= 60; step++) {
  const docFeatures = normal([batch, featDim], rng);
  const queryFeatures = docFeatures; // toy task: a query is its document's features
  const { grad: g, aux } = valueAndGrad(
    (p: typeof params) => {
      const docNetwork = (f: Record<string, Tensor>) => l2Normalize(matmul(f['features']!, p.d));
      const s = handler.computeLoss(
        docNetwork,
        l2Normalize(matmul(queryFeatures, p.q)),
        docNetwork({ features: docFeatures }),
        { features: docFeatures },
      );
      return [s.trainingLoss, s];
    },
    { hasAux: true },
  )(params);
  const s = aux as HandlerStep;
  handler.commit(s, { gradients: g });
  params = { q: add(params.q, mul(g.q, -lr)), d: add(params.d, mul(g.d, -lr)) }; // plain SGD
  if (step % 10 === 0) {
    console.log(
      `step ${step}: interpretable loss ${s.metrics.interpretableLoss.toFixed(3)}, staleness ${s.metrics.staleness.toExponential(2)}`,
    );
  }
}
