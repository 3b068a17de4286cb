/**
 * negcache/testing: fast-check arbitraries for property tests of code that
 * uses the negative cache, or of another implementation of it, and
 * `checkGradients` (reverse-mode gradients against float64 finite differences).
 *
 * A separate entry: it imports `fast-check` (an optional peer dependency of
 * negcache), so the main entry keeps zero dependencies. Browser-safe.
 * See README "negcache/testing" and examples/testing.test.ts.
 */
export {
  arbShape,
  arbScalar,
  arbTensor,
  arbTensorOf,
  arbFeatureSpecs,
  arbCacheSpec,
  arbCache,
  arbCacheUpdate,
  arbCacheScenario,
  arbQueryBatch,
  arbScores,
  arbRetrieval,
  arbLossProblem,
  fixedRetrievalFn,
  type ValueOptions,
  type ShapeOptions,
  type TensorArbOptions,
  type FeatureSpecsOptions,
  type CacheSpecOptions,
  type CacheLayout,
  type CacheArbOptions,
  type CacheUpdateArbOptions,
  type CacheScenario,
  type SizeOption,
  type QueryBatchOptions,
  type ScoresOptions,
  type RetrievalArb,
  type LossProblemOptions,
  type LossProblem,
} from './arbitraries.js';
export {
  checkGradients,
  type CheckGradientsOptions,
  type GradientCheckReport,
  type GradientCheckEntry,
} from '../autograd/checkGradients.js';
