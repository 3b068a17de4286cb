/**
 * How the cost of a training step grows with the corpus: median step time
 * of the negative cache, in-batch and full softmax on WordNet subsets of
 * 10k, 30k and all (~118k) synsets, same model and batch.
 *
 *   npm run build && node dist/bench/scaling.js [--quick]
 *
 * The cache step does not grow with the corpus (it grows with the cache
 * size, fixed here); the full-softmax step runs every document through the
 * document tower and grows linearly.
 */
import { loadWordNet } from '../src/node/wordnet.js';
import { buildCorpus, type Synset } from '../src/data/corpus.js';
import { hashString } from '../src/data/text.js';
import { Trainer } from '../src/train/trainer.js';
import { DEFAULT_CONFIG, type Method } from '../src/train/config.js';
import { printTable } from './util.js';

const quick = process.argv.includes('--quick');
const all = loadWordNet();
const subset = (n: number): Synset[] =>
  n >= all.length
    ? all
    : all
        .map((s) => ({ s, h: hashString(s.id, 7919) }))
        .sort((a, b) => a.h - b.h || (a.s.id < b.s.id ? -1 : 1))
        .slice(0, n)
        .map((x) => x.s);

function medianStepMs(trainer: Trainer, steps: number): number {
  trainer.step(); // warm-up
  const ts: number[] = [];
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    trainer.step();
    ts.push(performance.now() - t0);
  }
  ts.sort((a, b) => a - b);
  return ts[Math.floor(ts.length / 2)]!;
}

const rows: string[][] = [];
for (const n of [10000, 30000, all.length]) {
  const corpus = buildCorpus(subset(n), { seed: 0 });
  const ms: Record<Method, number> = { cache: 0, inbatch: 0, full: 0 };
  for (const method of ['cache', 'inbatch', 'full'] as const) {
    const steps = method === 'full' ? (quick ? 2 : 4) : quick ? 10 : 30;
    ms[method] = medianStepMs(new Trainer(corpus, { ...DEFAULT_CONFIG, method }), steps);
  }
  rows.push([
    String(corpus.docs.length),
    ms.cache.toFixed(1),
    ms.inbatch.toFixed(1),
    ms.full.toFixed(1),
    (ms.full / ms.cache).toFixed(1),
  ]);
}
console.log(
  `\nMedian step time (ms), batch ${DEFAULT_CONFIG.batch}, dim ${DEFAULT_CONFIG.dim}, cache ${DEFAULT_CONFIG.cacheSize} slots\n`,
);
printTable(['documents', 'cache', 'in-batch', 'full softmax', 'full / cache'], rows);
