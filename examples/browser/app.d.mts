/** Types of app.mjs (a plain-JavaScript module). */
import type { Corpus, CorpusDocument, Trainer, evaluate } from '../../src/index.js';

export declare const PAGE_CONFIG: { method: 'cache'; batch: number; cacheSize: number; dim: number; lr: number };
export declare const PAGE_BUCKETS: number;
export declare function loadPairs(
  stream: AsyncIterable<string | Uint8Array> | ReadableStream<Uint8Array>,
): Promise<{ corpus: Corpus<Required<CorpusDocument>> }>;
export declare function makeTrainer(corpus: Corpus, opts: { steps: number; seed: number }): Trainer;
export interface Hit {
  rank: number;
  id: string;
  text: string | null;
  score: number;
}
export declare function finishTraining(
  trainer: Trainer,
  corpus: Corpus,
): { recall: ReturnType<typeof evaluate>; search: (text: string, k?: number) => Hit[]; documents: number };
