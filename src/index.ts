/**
 * negcache: the negative cache for dual-encoder retrieval training, on a
 * dependency-free Float32Array tensor library with reverse-mode autodiff.
 * This entry point is browser-safe (no Node built-ins); Node-only parts live
 * under `negcache/node`.
 */
export { NegcacheError, ShapeError, DTypeError, ArgumentError, NonFiniteError } from './errors.js';
export { Tensor, isTensor } from './tensor/tensor.js';
export type { DType, FloatDType, TypedArray } from './tensor/dtype.js';
export { Rng, rng } from './tensor/random.js';
export { tensor, zeros, ones, full, arange, uniform, normal, type NestedArray } from './tensor/create.js';
export * from './ops/index.js';
export * from './autograd/index.js';

// The negative cache
export { CacheManager, oldestSlots, type NegativeCache, type CacheUpdate, type FeatureSpec, type CacheManagerOptions } from './cache/negativeCache.js';
export { maxScoreRetrievalFn, gumbelMaxRetrievalFn, categoricalRetrievalFn, type RetrievalFn, type SamplerOptions } from './retrieval/retrieval.js';
export { approximateTopKWithIndices } from './retrieval/topk.js';
export { scaleTransform, type DocNetwork, type ScoreTransform, type Reducer, type Sampler } from './losses/common.js';
export { CacheClassificationLoss, type CacheClassificationLossOptions, type CacheLossReturn, type CacheLossCallOptions } from './losses/cacheClassificationLoss.js';
export { CacheLossHandler, MultiCacheLossHandler, type HandlerStep, type StepMetrics, type HandlerOptions, type CacheLossHandlerOptions, type MultiCacheLossHandlerOptions } from './handlers/handlers.js';
export { isInCacheFilter, type NewItemsFilter } from './filters/isInCache.js';

// Checkpoint format (browser-safe bytes; file I/O is in negcache/node)
export { encodeSafetensors, decodeSafetensors, crc32, type DecodedSafetensors } from './io/safetensors.js';
