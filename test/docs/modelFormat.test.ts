/**
 * docs/model-format.md is the format: its Python reader (numpy only, run
 * here as written in the document) reads negcache's model files and
 * reproduces the library's encodings from the documented feature strings,
 * hash and tower maths, for the user defaults, the WordNet configuration
 * and a configuration using every option; it also reads index files.
 * Needs python3 with numpy (as the safetensors cross-check does).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT } from '../util/build.js';
import { DEFAULT_CONFIG } from '../../src/train/config.js';
import { Trainer } from '../../src/train/trainer.js';
import { corpusFromRecords } from '../../src/data/loaders.js';
import { wordnetFeatureConfig, type FeatureOverrides } from '../../src/data/text.js';
import { exportModel, loadModel } from '../../src/model/encoder.js';
import { Index, encodeIndex } from '../../src/search/searchIndex.js';

const DOC = readFileSync(join(ROOT, 'docs/model-format.md'), 'utf8');
const python = [...DOC.matchAll(/^```python\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
const HARNESS = `
import sys
model_path, role, texts_path = sys.argv[1], sys.argv[2], sys.argv[3]
with open(texts_path, encoding='utf-8') as f:
    texts = json.load(f)
if role == 'index':
    tensors, meta = read_safetensors(model_path)
    print(json.dumps({'shape': list(tensors['embeddings'].shape), 'ids': json.loads(meta['negcache.ids']), 'first': tensors['embeddings'][0].tolist()}))
else:
    print(json.dumps(encode(model_path, texts, role).tolist()))
`;
const probe = spawnSync('python3', ['-c', 'import numpy, json, struct, re'], { encoding: 'utf8' });
const havePython = probe.status === 0;
if (!havePython)
  console.warn(
    `NOTE: python3 with numpy not found; skipping the Python model reader (${probe.error?.message ?? probe.stderr})`,
  );
const dir = mkdtempSync(join(tmpdir(), 'negcache-model-format-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const TEXTS = [
  'A domestic animal that barks',
  "the child's toy, a jack-o'-lantern; Don’t!",
  'Café naïve Ärger straße 2024 ²',
  'dog, domestic dog, Canis familiaris',
  'repeat repeat repeat the the',
  '',
  '... !!! ---',
  'x',
  'one, two three, , four five six seven',
];

function runPython(args: string[]): unknown {
  const r = spawnSync('python3', ['-c', python[0]! + HARNESS, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return JSON.parse(r.stdout);
}

describe('docs/model-format.md', () => {
  it('has exactly one Python block', () => {
    expect(python).toHaveLength(1);
  });

  const configs: [string, FeatureOverrides | 'wordnet'][] = [
    ['the user defaults', { buckets: 4096 }],
    ['the WordNet configuration (phrases, segments)', 'wordnet'],
    [
      'every option (trigrams, odd char lengths, no dedup, a seed)',
      {
        buckets: 1000,
        seed: 77,
        dedup: false,
        query: { wordNgrams: [1, 3], charNgrams: [2, 5], phrase: true },
        doc: { wordNgrams: [2, 4], charNgrams: [1], segmentSeparator: ';' },
      },
    ],
  ];
  for (const [name, features] of configs) {
    it.runIf(havePython)(`its Python encoder reproduces the library's embeddings: ${name}`, () => {
      const { corpus } = corpusFromRecords(
        [
          { query: 'a barking pet', document: 'dog' },
          { query: 'a purring pet', document: 'cat' },
        ],
        { features: features === 'wordnet' ? { buckets: 2048 } : features },
      );
      if (features === 'wordnet') corpus.features = wordnetFeatureConfig({ buckets: 2048, seed: 3 });
      const trainer = new Trainer(corpus, { ...DEFAULT_CONFIG, method: 'inbatch', dim: 8, batch: 2, steps: 1 });
      const path = join(dir, `model-${configs.findIndex((c) => c[0] === name)}.safetensors`);
      const bytes = exportModel(trainer.model, corpus.features);
      writeFileSync(path, bytes);
      const model = loadModel(bytes);
      const textsPath = join(dir, 'texts.json');
      writeFileSync(textsPath, JSON.stringify(TEXTS));
      for (const role of ['query', 'doc'] as const) {
        const py = runPython([path, role, textsPath]) as number[][];
        const js = (
          role === 'query' ? model.encodeQueries(TEXTS) : model.encodeDocuments(TEXTS)
        ).toArray() as number[][];
        expect(py).toHaveLength(TEXTS.length);
        let worst = 0;
        for (let i = 0; i < TEXTS.length; i++)
          for (let j = 0; j < 8; j++) worst = Math.max(worst, Math.abs(py[i]![j]! - js[i]![j]!));
        expect(worst, `${role}: max |python - negcache|`).toBeLessThan(1e-5);
      }
    });
  }

  it.runIf(havePython)('its reader reads index files', () => {
    const index = new Index(3);
    index.add(['a', 'b'], new Float32Array([1, 2, 3, 4, 5, 6]), { texts: ['x', null] });
    const path = join(dir, 'index.safetensors');
    writeFileSync(path, encodeIndex(index));
    writeFileSync(join(dir, 'none.json'), '[]');
    expect(runPython([path, 'index', join(dir, 'none.json')])).toEqual({
      shape: [2, 3],
      ids: ['a', 'b'],
      first: [1, 2, 3],
    });
  });
});
