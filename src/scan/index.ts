/**
 * The fused negative-cache scan (contract.ts): scores of every cached
 * embedding against every query, their softmax statistics and samples, in
 * one streaming pass. Layer: above ops/, below the cache, retrieval and
 * losses; it uses the generic kernels of src/tensor/kernels/ (matmul, the
 * wasm runtime), which never import it.
 */
export {
  SCAN_BLOCK,
  SCAN_QUERY_CHUNK,
  categoricalUniformCount,
  checkScanRange,
  splitScanRows,
  validateScanArgs,
  type FusedScanArgs,
  type FusedScanResult,
  type ScanPartial,
  type ScanSampler,
  type ScanShape,
} from './contract.js';
export { fusedScanReference } from './reference.js';
export { combinePartials, runScanRange, type ScanBackend } from './streaming.js';
export { createJsBackend, fusedScanRangeTS, fusedScanTS, matmulNTJs } from './tsBackend.js';
export {
  fusedCacheScan,
  fusedCacheScanRange,
  fusedCacheScanWasm,
  fusedCacheScanWasmRange,
  gumbelRowWasm,
  noiseBitsWasm,
  scanWasmAvailable,
  type WasmScanOptions,
} from './wasm.js';
export {
  NOISE_CONST,
  bitsFromSeeds,
  fmix32,
  gumbelAt,
  gumbelFromBits,
  gumbelFromBitsExact,
  gumbelScreen,
  noiseKey,
  rowSeeds,
  uniformAt,
} from './noise.js';
