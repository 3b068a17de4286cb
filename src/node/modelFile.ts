/**
 * Model and index files on disk (Node only): thin wrappers over the
 * browser-safe bytes of src/model/encoder.ts and src/search/searchIndex.ts,
 * read strictly (readFileStrictSync) and written atomically (a crash never
 * leaves a torn file). Formats: docs/model-format.md.
 */
import { ArgumentError, describe } from '../errors.js';
import { EncoderModel, exportModel, loadModel } from '../model/encoder.js';
import { Index, decodeIndex, encodeIndex, type IndexOptions } from '../search/searchIndex.js';
import type { FeatureConfig } from '../data/text.js';
import type { DualEncoder } from '../train/model.js';
import { readFileStrictSync, writeFileAtomicSync } from './atomicFile.js';

/** Loads a model file (`negcache export`, `train --export`, `saveModelFile`). */
export function loadModelFile(path: string): EncoderModel {
  if (typeof path !== 'string')
    throw new ArgumentError('loadModelFile', `path must be a string, got ${describe(path)}`);
  return loadModel(readFileStrictSync(path));
}

/** Writes a model file atomically: an EncoderModel, or a trained DualEncoder with its corpus's features. */
export function saveModelFile(path: string, model: EncoderModel | DualEncoder, features?: FeatureConfig): void {
  if (typeof path !== 'string')
    throw new ArgumentError('saveModelFile', `path must be a string, got ${describe(path)}`);
  writeFileAtomicSync(path, exportModel(model, features));
}

/** Loads an index file (`negcache encode`, `saveIndexFile`); `{shared: true}` for createParallelSearch without a copy. */
export function loadIndexFile(path: string, opts: IndexOptions = {}): Index {
  if (typeof path !== 'string')
    throw new ArgumentError('loadIndexFile', `path must be a string, got ${describe(path)}`);
  return decodeIndex(readFileStrictSync(path), opts);
}

/** Writes an index file atomically. */
export function saveIndexFile(path: string, index: Index): void {
  if (typeof path !== 'string')
    throw new ArgumentError('saveIndexFile', `path must be a string, got ${describe(path)}`);
  writeFileAtomicSync(path, encodeIndex(index));
}
