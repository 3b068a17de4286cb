/**
 * Your own data, from a file to search results, with the library:
 * load (query, document) pairs, train with the negative cache, export the
 * model file, load it back, encode the documents into an exact index, save
 * the index, and search it.
 *
 *   npm run build && node dist/examples/own-data.js [data.jsonl] [steps]
 *
 * Default data: examples/data/wordnet-pairs.jsonl (WordNet 3.1 definitions
 * and example sentences as queries, synsets' lemmas as documents). Files
 * go to a temporary folder whose path is printed.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_CONFIG, Index, decodeIndex, encodeIndex, exportModel, loadModel, train } from '../src/index.js';
import { createParallelSearch, loadCorpusFileSync, readFileStrictSync } from '../src/node/index.js';

const file = process.argv[2] ?? fileURLToPath(new URL('../../examples/data/wordnet-pairs.jsonl', import.meta.url));
const steps = Number(process.argv[3] ?? 300);

// 1. Data in: the file is streamed; malformed rows are skipped and listed.
const { corpus, stats } = loadCorpusFileSync(file, { features: { buckets: 1 << 16 }, skipBadRows: true });
console.log(
  `${file}: ${stats.documents} documents (${stats.documentsWithoutQuery} without a query), ${stats.queries} queries (${stats.trainQueries} train / ${stats.testQueries} held out), ${stats.badRows} bad rows`,
);

// 2. Train with the negative cache, evaluating held-out recall every 100 steps.
const result = train(
  corpus,
  { ...DEFAULT_CONFIG, method: 'cache', steps, evalEverySteps: 100 },
  {
    onEval: (e) =>
      console.log(
        `  step ${String(e.step).padStart(4)}: held-out recall@10 ${(100 * e.recallAt10).toFixed(1)} % (chance ${(1000 / stats.documents).toFixed(2)} %)`,
      ),
  },
);
console.log(
  `trained ${result.steps} steps in ${result.trainSeconds.toFixed(1)} s; held-out recall@1 ${(100 * result.final.recallAt1).toFixed(1)} %, recall@10 ${(100 * result.final.recallAt10).toFixed(1)} %, MRR ${result.final.mrr.toFixed(3)}`,
);

// 3. A usable model out: the model file (towers + feature configuration), then back from the bytes.
const dir = mkdtempSync(join(tmpdir(), 'negcache-own-data-'));
const modelPath = join(dir, 'model.safetensors');
writeFileSync(modelPath, exportModel(result.model, corpus.features));
const model = loadModel(readFileStrictSync(modelPath));

// 4. Encode every document into an exact index (with texts), save it, load it back.
const index = new Index(model.dim);
index.add(
  corpus.docs.map((d) => d.id),
  model.encodeDocuments(corpus.docs.map((d) => d.text)),
  { texts: corpus.docs.map((d) => d.text) },
);
const indexPath = join(dir, 'index.safetensors');
writeFileSync(indexPath, encodeIndex(index));
const loaded = decodeIndex(readFileStrictSync(indexPath));
console.log(`model and index written to ${dir}`);

// 5. Search: the first three held-out queries (never trained on), their top 5 and their true documents' ranks.
const held = Array.from(corpus.testQueries.slice(0, 3));
const texts = held.map((q) => corpus.queryTexts![q]!);
const parallel = createParallelSearch();
const results = await parallel.search(loaded, model.encodeQueries(texts), 100);
parallel.close();
results.forEach((r, i) => {
  const want = corpus.docs[corpus.queryDoc[held[i]!]!]!;
  const rank = r.ids.indexOf(want.id);
  console.log(
    `\nquery: ${texts[i]}\n  its document: ${want.id} "${want.text}", ranked ${rank >= 0 ? rank + 1 : 'below 100'} of ${loaded.size}`,
  );
  r.ids
    .slice(0, 5)
    .forEach((id, j) =>
      console.log(
        `  ${j + 1}. ${id.padEnd(10)} ${r.scores[j]!.toFixed(4)}  ${loaded.text(r.rows[j]!)}${id === want.id ? '   <- the answer' : ''}`,
      ),
    );
});
