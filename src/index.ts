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
