// The page logic of the browser example, without the DOM, so that Node can
// run exactly what the page runs (test/examples/browserApp.test.ts):
// stream the WordNet pairs into a corpus, make the trainer, and after
// training turn the model into an encoder + exact index with a search function.
import { DEFAULT_CONFIG, EncoderModel, Index, Trainer, corpusFromStream, evaluate } from '../../dist/src/index.js';

/** The page's training configuration (held-out recall@10 about 0.19 after 300 steps with seed 1). */
export const PAGE_CONFIG = { method: 'cache', batch: 64, cacheSize: 512, dim: 64, lr: 0.02 };
/** Hash buckets of the page's features (two 16384 × 64 tables: 4 MiB each). */
export const PAGE_BUCKETS = 16384;

/**
 * The corpus of a stream of JSONL bytes or text: a fetch() body in the
 * page, a file stream in Node.
 */
export async function loadPairs(stream) {
  return corpusFromStream(stream, { format: 'jsonl', features: { buckets: PAGE_BUCKETS } });
}

/** The trainer of the page. */
export function makeTrainer(corpus, { steps, seed }) {
  return new Trainer(corpus, { ...DEFAULT_CONFIG, ...PAGE_CONFIG, steps, seed });
}

/**
 * After training: held-out recall, and a search over every document.
 * search(text, k) encodes `text` with the query tower and returns the k best
 * documents as [{rank, id, text, score}], best first.
 */
export function finishTraining(trainer, corpus) {
  const recall = evaluate(trainer.model, corpus, corpus.testQueries);
  const model = EncoderModel.fromDualEncoder(trainer.model, corpus.features);
  const index = new Index(model.dim);
  index.add(
    corpus.docs.map((d) => d.id),
    model.encodeDocuments(corpus.docs.map((d) => d.text)),
    { texts: corpus.docs.map((d) => d.text) },
  );
  const search = (text, k = 10) => {
    const [hits] = index.search(model.encodeQueries([text]), k);
    return hits.ids.map((id, i) => ({ rank: i + 1, id, text: index.text(hits.rows[i]), score: hits.scores[i] }));
  };
  return { recall, search, documents: index.size };
}
