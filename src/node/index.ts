/**
 * negcache/node: the Node-only parts (file system, worker threads, WordNet).
 * The browser-safe core is the package's main entry.
 */
export { loadWordNet, wordnetDictDir } from './wordnet.js';
export { loadCorpusFile, loadCorpusFileSync, type LoadCorpusFileOptions } from './dataFile.js';
export { loadModelFile, saveModelFile, loadIndexFile, saveIndexFile } from './modelFile.js';
export {
  writeFileAtomic,
  writeFileAtomicSync,
  readFileStrict,
  readFileStrictSync,
  saveSafetensors,
  saveSafetensorsSync,
  loadSafetensors,
  loadSafetensorsSync,
  removeStaleTempFilesSync,
  FileIOError,
  type AtomicWriteOptions,
  type AtomicWriteStep,
  type SaveSafetensorsOptions,
} from './atomicFile.js';
export { runWorkers } from './workerGroup.js';
export {
  createParallelScan,
  ParallelScanError,
  DEFAULT_MIN_ROWS,
  DEFAULT_MIN_WORK,
  type ParallelScan,
  type ParallelScanOptions,
  type ParallelScanStats,
} from './parallelScan.js';
export {
  createParallelSearch,
  ParallelSearchError,
  type ParallelSearch,
  type ParallelSearchOptions,
  type ParallelSearchStats,
} from './parallelSearch.js';
export {
  createTrainingPool,
  TrainingPoolError,
  type TrainingPool,
  type TrainingPoolOptions,
  type TrainingPoolFailure,
} from './trainingPool.js';
