export * from './elementwise.js';
export * from './reduce.js';
export * from './layout.js';
export * from './linalg.js';
export type { TensorLike } from './util.js';
