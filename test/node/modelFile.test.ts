/** Model and index files on disk: save → load round trips, and clear errors for missing or wrong files. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { corpusFromRecords } from '../../src/data/loaders.js';
import { DEFAULT_CONFIG } from '../../src/train/config.js';
import { Trainer } from '../../src/train/trainer.js';
import { Index } from '../../src/search/searchIndex.js';
import { loadIndexFile, loadModelFile, saveIndexFile, saveModelFile } from '../../src/node/modelFile.js';

const dir = mkdtempSync(join(tmpdir(), 'negcache-model-file-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('loadModelFile / saveModelFile / loadIndexFile / saveIndexFile', () => {
  it('round-trip a trained model and an index', () => {
    const { corpus } = corpusFromRecords(
      [
        { query: 'a barking pet', document: 'dog' },
        { query: 'a purring pet', document: 'cat' },
      ],
      { features: { buckets: 512 } },
    );
    const trainer = new Trainer(corpus, { ...DEFAULT_CONFIG, method: 'inbatch', dim: 8, batch: 2, steps: 1 });
    const path = join(dir, 'model.safetensors');
    saveModelFile(path, trainer.model, corpus.features);
    const model = loadModelFile(path);
    expect(model.features).toEqual(corpus.features);
    const texts = corpus.docs.map((d) => d.text);
    const index = new Index(model.dim, {});
    index.add(['dog', 'cat'], model.encodeDocuments(texts), { texts });
    saveIndexFile(join(dir, 'index.safetensors'), index);
    const back = loadIndexFile(join(dir, 'index.safetensors'), { shared: true });
    expect(back.embeddings().buffer).toBeInstanceOf(SharedArrayBuffer);
    const q = model.encodeQueries(['a barking pet']);
    expect(back.search(q, 2)).toEqual(index.search(q, 2));
    saveModelFile(join(dir, 'again.safetensors'), model);
    expect(loadModelFile(join(dir, 'again.safetensors')).encodeQueries(['pet']).toArray()).toEqual(
      model.encodeQueries(['pet']).toArray(),
    );
  });

  it('name missing and wrong files', () => {
    expect(() => loadModelFile(join(dir, 'nope.safetensors'))).toThrow(/nope\.safetensors/);
    writeFileSync(join(dir, 'junk.safetensors'), 'not a safetensors file');
    expect(() => loadModelFile(join(dir, 'junk.safetensors'))).toThrow();
    expect(() => loadIndexFile(3 as never)).toThrow(/path must be a string/);
  });
});
