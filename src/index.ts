/**
 * negcache: the negative cache for dual-encoder retrieval training, on a
 * dependency-free Float32Array tensor library with reverse-mode autodiff.
 * This entry point is browser-safe (no Node built-ins); Node-only parts live
 * under `negcache/node`.
 */
export {
  NegcacheError,
  InvalidArgumentError,
  ShapeError,
  DTypeError,
  ArgumentError,
  NonFiniteError,
  UnsupportedError,
  InternalError,
} from './errors.js';
export { Tensor, isTensor } from './tensor/tensor.js';
export type { DType, FloatDType, TypedArray } from './tensor/dtype.js';
export { Rng, rng } from './tensor/random.js';
export { tensor, zeros, ones, full, arange, uniform, normal, type NestedArray } from './tensor/create.js';
export * from './ops/index.js';
export * from './autograd/index.js';

// The negative cache
export {
  CacheManager,
  oldestSlots,
  type NegativeCache,
  type CacheUpdate,
  type FeatureSpec,
  type CacheManagerOptions,
} from './cache/negativeCache.js';
export {
  maxScoreRetrievalFn,
  gumbelMaxRetrievalFn,
  categoricalRetrievalFn,
  type RetrievalFn,
  type SamplerOptions,
  type GumbelMaxOptions,
  type GumbelNoise,
} from './retrieval/retrieval.js';
export { approximateTopKWithIndices } from './retrieval/topk.js';
export { scaleTransform, type DocNetwork, type ScoreTransform, type Reducer, type Sampler } from './losses/common.js';
export { softmaxRetrievalLoss, inBatchSoftmaxLoss, type SoftmaxLossOptions } from './losses/softmax.js';
export {
  CacheClassificationLoss,
  type CacheLoss,
  type Retrieval,
  type CacheClassificationLossOptions,
  type CacheLossReturn,
  type CacheLossCallOptions,
} from './losses/cacheClassificationLoss.js';
export {
  CacheLossHandler,
  MultiCacheLossHandler,
  type HandlerStep,
  type StepMetrics,
  type HandlerOptions,
  type CacheLossHandlerOptions,
  type MultiCacheLossHandlerOptions,
} from './handlers/handlers.js';
export { isInCacheFilter, type NewItemsFilter } from './filters/isInCache.js';
export {
  DistributedCacheClassificationLoss,
  type DistributedCacheClassificationLossOptions,
  type DistributedCacheLossReturn,
} from './losses/distributedCacheClassificationLoss.js';
export {
  ShardedCacheLossHandler,
  ReplicatedCacheLossHandler,
  type ShardedStep,
  type ReplicatedStep,
} from './handlers/distributed.js';

// Checkpoint format (browser-safe bytes; file I/O is in negcache/node)
export { encodeSafetensors, decodeSafetensors, crc32, type DecodedSafetensors } from './io/safetensors.js';

// Conformance vectors for checking other implementations (negcache conformance; tools/check_vectors.py)
export {
  generateConformanceVectors,
  buildConformanceVectors,
  encodeConformanceVectors,
  readConformanceVectors,
  verifyConformanceVectors,
  compareOutputs as compareConformanceOutputs,
  CONFORMANCE_FORMAT,
  VECTOR_KINDS,
  type Vector as ConformanceVector,
  type VectorKind as ConformanceVectorKind,
  type VectorCheck as ConformanceVectorCheck,
  type Manifest as ConformanceManifest,
} from './conformance/index.js';

// Replicas and collectives (the in-process group is browser-safe; worker threads are in negcache/node)
export { runInProcess, type RunInProcessOptions } from './distributed/inProcess.js';
export {
  allGatherRecord,
  allToAllRecord,
  CollectiveAbortedError,
  CollectiveTimeoutError,
  ReplicaGroupError,
  type ReplicaContext,
} from './distributed/replicaContext.js';

// Training stack
export { glorotUniform, normalInit, zerosInit } from './nn/init.js';
export {
  linear,
  initLinear,
  l2Normalize,
  embeddingBag,
  makeBags,
  RowSpace,
  type LinearParams,
  type Bags,
} from './nn/layers.js';
export { EmbeddingTable } from './nn/table.js';
export {
  SGD,
  Adam,
  AdamW,
  globalNorm,
  clipFactor,
  type SparseGrad,
  type SGDOptions,
  type AdamOptions,
} from './optim/optimizers.js';
export {
  tokenize,
  hashString,
  hashFeatures,
  queryFeatures,
  docFeatures,
  textFeatures,
  towerFeatureStrings,
  checkFeatureConfig,
  resolveFeatureConfig,
  wordnetFeatureConfig,
  DEFAULT_TEXT_FEATURES,
  WORDNET_QUERY_FEATURES,
  WORDNET_DOC_FEATURES,
  type FeatureConfig,
  type FeatureOverrides,
  type TowerFeatureConfig,
} from './data/text.js';
export {
  parseDataFile,
  buildCorpus,
  syntheticCorpus,
  synsetText,
  compactCorpus,
  splitGloss,
  stripExamples,
  isTestId,
  type Corpus,
  type CorpusDocument,
  type Synset,
} from './data/corpus.js';
export {
  corpusFromRecords,
  corpusFromAsyncRecords,
  corpusFromText,
  corpusFromStream,
  parseRecords,
  parseRecordsAsync,
  formatOfPath,
  RecordParser,
  CorpusBuilder,
  type PairRecord,
  type ParsedRow,
  type DataFormat,
  type FieldNames,
  type ParseOptions,
  type CorpusFromRecordsOptions,
  type CorpusFromTextOptions,
  type LoadedCorpus,
  type LoadStats,
} from './data/loaders.js';
export { recallAtK, meanReciprocalRank, rankOfTarget, summarizeRanks } from './eval/metrics.js';
export { lineChart } from './report/svg.js';
export { DualEncoder, tower } from './train/model.js';
export { Trainer } from './train/trainer.js';
export { DEFAULT_CONFIG, RECIPES, recipeConfig, type Recipe, type TrainConfig, type Method } from './train/config.js';
export { train, type TrainResult } from './train/run.js';
export { evaluate, embedAll } from './train/evaluate.js';

// A usable model out: encode text, search an exact index (file formats: docs/model-format.md)
export {
  EncoderModel,
  exportModel,
  loadModel,
  modelFromCheckpoint,
  MODEL_FORMAT,
  type ModelFile,
  type EncodeOptions,
} from './model/encoder.js';
export {
  Index,
  encodeIndex,
  decodeIndex,
  INDEX_FORMAT,
  type SearchResult,
  type IndexOptions,
  type AddOptions,
} from './search/searchIndex.js';

// Kernels: WebAssembly SIMD is used automatically where available. On a browser main thread
// call `await initWasm()` once at start-up (Chromium forbids compiling it synchronously there);
// Node compiles it synchronously on first use. `setKernelOptions({ fma: true })` before that opts
// into relaxed-SIMD fused multiply-adds where the engine has them (Node 22+, Chrome 114+): faster
// products, but results then differ in their last bits from engines without (e.g. Node 20).
export {
  initWasm,
  wasmReady,
  wasmAvailable,
  setKernelOptions,
  kernelOptions,
  type KernelOptions,
} from './tensor/kernels/wasm/index.js';
export { fusedCacheScan } from './scan/wasm.js';
export { fusedScanReference } from './scan/reference.js';
export { type FusedScanArgs, type FusedScanResult, type ScanSampler } from './scan/contract.js';
