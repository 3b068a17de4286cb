/**
 * Conformance vectors: they round-trip through files bit for bit, the same
 * seed writes the same bytes (in-process and through the CLI), negcache
 * re-checks every vector, the upstream examples among them carry the
 * upstream tests' expected values, the cache-update vectors agree with the
 * plain-array model of test/util/cacheModel.ts, and the independent Python
 * checker (tools/check_vectors.py) passes every vector and fails exactly a
 * deliberately wrong one.
 *
 * The Python part needs python3 with numpy. Without it that test asserts
 * that numpy is really absent, and says so in its name; with
 * NEGCACHE_REQUIRE_NUMPY=1 (CI where numpy is expected) absence fails.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeSafetensors, encodeSafetensors, neg, tensor, type Tensor } from '../../src/index.js';
import {
  buildConformanceVectors,
  compareOutputs,
  encodeConformanceVectors,
  generateConformanceVectors,
  readConformanceVectors,
  verifyConformanceVectors,
  type Vector,
} from '../../src/conformance/index.js';
import { runConformance } from '../../src/cli/conformance.js';
import { cacheToModel, modelUpdate, type ModelUpdate } from '../util/cacheModel.js';
import { ROOT, ensureBuilt } from '../util/build.js';

const tmp = mkdtempSync(join(tmpdir(), 'negcache-conformance-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let vectors: Vector[];
let files: Record<string, Uint8Array>;
beforeAll(async () => {
  vectors = await buildConformanceVectors({ seed: 0 });
  files = encodeConformanceVectors(vectors, 0);
});

function writeSet(dir: string, set: Record<string, Uint8Array>): void {
  mkdirSync(dir, { recursive: true });
  for (const [name, data] of Object.entries(set)) writeFileSync(join(dir, name), data);
}

function readSet(dir: string): Record<string, Uint8Array> {
  return Object.fromEntries(readdirSync(dir).map((f) => [f, new Uint8Array(readFileSync(join(dir, f)))]));
}

/** The storage bytes of a tensor (bit patterns, so -0, NaN payloads and -Infinity compare exactly). */
function bits(t: Tensor): Uint8Array {
  const d = t.dataSync();
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

const byName = (name: string): Vector => vectors.find((v) => v.name === name)!;
const vals = (t: Tensor): number[] => Array.from(t.dataSync() as ArrayLike<number>, Number);

function expectClose(got: Tensor, want: readonly number[], tol: number, label: string): void {
  const g = vals(got);
  expect(g.length, label).toBe(want.length);
  g.forEach((x, i) =>
    expect(Math.abs(x - want[i]!), `${label}[${i}]: ${x} vs ${want[i]}`).toBeLessThanOrEqual(
      tol + tol * Math.abs(want[i]!),
    ),
  );
}

describe('the vector set', () => {
  it('covers every kind, names every vector uniquely and states inputs, outputs, pins and tolerance', () => {
    const kinds = new Map<string, number>();
    for (const v of vectors) kinds.set(v.kind, (kinds.get(v.kind) ?? 0) + 1);
    expect([...kinds.keys()]).toEqual([
      'cache_update',
      'retrieval_max_score',
      'retrieval_gumbel',
      'approx_top_k',
      'cache_loss',
      'cache_loss_estimators',
      'sharded_loss',
      'is_in_cache',
    ]);
    expect(new Set(vectors.map((v) => v.name)).size).toBe(vectors.length);
    for (const v of vectors) {
      expect(v.name.startsWith(`${v.kind}.`)).toBe(true);
      expect(v.pins.length, v.name).toBeGreaterThan(40);
      expect(Object.keys(v.inputs).length, v.name).toBeGreaterThan(0);
      expect(Object.keys(v.expected).length, v.name).toBeGreaterThan(0);
      for (const k of v.beyondReferenceOutputs) expect(v.expected[k], `${v.name}: ${k}`).toBeDefined();
      expect(v.tolerance.atol).toBeGreaterThanOrEqual(0);
    }
    const { manifest } = readConformanceVectors(files);
    expect(manifest.format).toBe('negcache-conformance-v1');
    expect(manifest.vectors.map((e) => e.name)).toEqual(vectors.map((v) => v.name));
    expect(manifest.vectors.every((e) => files[e.json] && files[e.tensors])).toBe(true);
  });

  it('round-trips through files: every config, tensor name, dtype, shape and bit survives write -> read', () => {
    const dir = join(tmp, 'roundtrip');
    writeSet(dir, files);
    const back = readConformanceVectors(readSet(dir)).vectors;
    expect(back.length).toBe(vectors.length);
    back.forEach((b, i) => {
      const v = vectors[i]!;
      expect({ ...b, inputs: null, expected: null }).toEqual({ ...v, inputs: null, expected: null });
      for (const part of ['inputs', 'expected'] as const) {
        expect(Object.keys(b[part])).toEqual(Object.keys(v[part]));
        for (const [k, t] of Object.entries(v[part])) {
          const u = b[part][k]!;
          expect([u.dtype, u.shape], `${v.name} ${part}/${k}`).toEqual([t.dtype, t.shape]);
          expect(bits(u), `${v.name} ${part}/${k}`).toEqual(bits(t));
        }
      }
    });
    // -Infinity entries (excluded candidates) survive too
    expect(vals(back.find((v) => v.name === 'retrieval_max_score.excluded')!.inputs['scores']!)).toContain(-Infinity);
  });

  it('the same seed writes the same bytes; another seed changes the random vectors only', async () => {
    const again = await generateConformanceVectors({ seed: 0 });
    expect(Object.keys(again)).toEqual(Object.keys(files));
    for (const [k, b] of Object.entries(files)) expect(again[k], k).toEqual(b);
    const other = await generateConformanceVectors({ seed: 7 });
    expect(other['cache_loss.upstream.safetensors']).toEqual(files['cache_loss.upstream.safetensors']);
    expect(other['cache_loss.scale_mean.safetensors']).not.toEqual(files['cache_loss.scale_mean.safetensors']);
    await expect(generateConformanceVectors({ seed: -1 })).rejects.toThrow(/seed must be an integer/);
  });

  it('negcache re-checks every vector (read back from disk) and passes', async () => {
    const results = await verifyConformanceVectors(readSet(join(tmp, 'roundtrip')));
    expect(results.filter((r) => !r.ok)).toEqual([]);
    expect(results.length).toBe(vectors.length);
  });

  it('the comparison catches a flipped gradient sign, a wrong index and a missing required output', () => {
    const v = byName('cache_loss.scale_mean');
    const got = { ...v.expected, 'grad/queries': neg(v.expected['grad/queries']!) };
    expect(compareOutputs(v, got)).toEqual([expect.stringMatching(/^grad\/queries\[0\]: got -?[0-9.e-]+, expected/)]);
    const idx = vals(v.expected['refresh/cache/indices']!);
    idx[1] = idx[1]! + 1;
    expect(compareOutputs(v, { ...v.expected, 'refresh/cache/indices': tensor(idx, 'int32') })).toEqual([
      `refresh/cache/indices[1]: got ${idx[1]}, expected ${idx[1]! - 1}`,
    ]);
    const wrong = { ...v.expected };
    delete (wrong as Record<string, Tensor>)['staleness'];
    delete (wrong as Record<string, Tensor>)['probPos']; // beyond the reference: may be left out
    expect(compareOutputs(v, wrong)).toEqual(['staleness: missing']);
  });
});

describe('independent anchors', () => {
  it("the upstream examples carry the upstream tests' expected values", () => {
    // losses_test.py: probPos [0.0420101, 0.705385, 0.499381], score differences [1, -3, 0] for retrieval [0, 1, 0]
    const up = byName('cache_loss.upstream').expected;
    const pp = [0.0420101, 0.705385, 0.499381];
    expectClose(up['trainingLoss']!, [(1 - pp[0]!) * 1, (1 - pp[1]!) * -3, 0], 1e-6, 'trainingLoss');
    expectClose(up['interpretableLoss']!, [3.169846, 0.349012, 0.694385], 1e-6, 'interpretableLoss');
    const topk = byName('cache_loss.upstream_top_k').expected;
    expectClose(topk['interpretableLoss']!, [3.0949229, 1.407605964], 1e-6, 'interpretableLoss top-k');
    expectClose(topk['trainingLoss']!, [(1 - 0.045278503) * 3, (1 - 0.2447284712) * -1], 1e-6, 'trainingLoss top-k');
    expect(vals(topk['refresh/cache/indices']!)).toEqual([1, 0]);
    // distributed_losses_test.py (TPU tolerance 1e-4)
    const sh = byName('sharded_loss.upstream').expected;
    expectClose(sh['replica0/trainingLoss']!, [0.9874058, -2.35795], 1e-4, 'replica 0');
    expectClose(sh['replica1/trainingLoss']!, [-0.589488, -2.35795], 1e-4, 'replica 1');
    expectClose(sh['replica0/interpretableLoss']!, [4.37452, 0.89035], 1e-4, 'replica 0 interpretable');
    expectClose(sh['replica1/interpretableLoss']!, [0.89035, 0.89035], 1e-4, 'replica 1 interpretable');
    // retrieval_fns_test.py, util_test.py, filter_fns_test.py
    expect(vals(byName('retrieval_max_score.upstream').expected['indices']!)).toEqual([1, 2, 0]);
    expect(vals(byName('retrieval_gumbel.upstream_mock').expected['indices']!)).toEqual([0, 0, 2]);
    expect(vals(byName('retrieval_gumbel.upstream_temperature').expected['indices']!)).toEqual([1]);
    expect(vals(byName('approx_top_k.upstream').expected['indices']!)).toEqual([1, 3, 0, 3, 0, 2]);
    expect(vals(byName('approx_top_k.upstream').expected['values']!)).toEqual([2, 4, 2, 4, 4, 3]);
    expect(vals(byName('is_in_cache.upstream_two_keys').expected['mask']!)).toEqual([0, 1, 0, 1, 1]);
    expect(vals(byName('is_in_cache.upstream_one_key').expected['mask']!)).toEqual([0, 0, 0, 1, 1]);
  });

  it('every cache_update vector agrees with the plain-array model of REFERENCE.md (test/util/cacheModel.ts)', () => {
    const rows = (t: Tensor): number[][] => {
      const d = vals(t);
      const n = t.shape[0]!;
      const w = n === 0 ? 0 : d.length / n;
      return Array.from({ length: n }, (_, i) => d.slice(i * w, (i + 1) * w));
    };
    const updates = vectors.filter((v) => v.kind === 'cache_update');
    expect(updates.length).toBeGreaterThanOrEqual(5);
    for (const v of updates) {
      const c = v.config as unknown as {
        specs: Record<string, unknown>;
        useLru: boolean;
        steps: { newItemsMask: boolean; refresh: null | { keys: string[]; mask: boolean } }[];
      };
      const keys = Object.keys(c.specs);
      let model = cacheToModel({
        data: Object.fromEntries(keys.map((k) => [k, v.inputs[`initial/data/${k}`]!])),
        age: v.inputs['initial/age']!,
        ...(v.inputs['initial/valid'] ? { valid: v.inputs['initial/valid'] } : {}),
      });
      c.steps.forEach((s, i) => {
        const p = `step${i}/`;
        const u: ModelUpdate = {
          newItems: Object.fromEntries(keys.map((k) => [k, rows(v.inputs[`${p}newItems/${k}`]!)])),
        };
        if (s.newItemsMask) u.newItemsMask = vals(v.inputs[`${p}newItemsMask`]!).map(Boolean);
        if (s.refresh) {
          u.updatedItemData = Object.fromEntries(
            s.refresh.keys.map((k) => [k, rows(v.inputs[`${p}updatedItemData/${k}`]!)]),
          );
          u.updatedItemIndices = vals(v.inputs[`${p}updatedItemIndices`]!);
          if (s.refresh.mask) u.updatedItemMask = vals(v.inputs[`${p}updatedItemMask`]!).map(Boolean);
        }
        model = modelUpdate(model, u, c.useLru);
        expect(vals(v.expected[`${p}age`]!), `${v.name} step ${i} age`).toEqual(model.age);
        expect(vals(v.expected[`${p}valid`]!).map(Boolean), `${v.name} step ${i} valid`).toEqual(model.valid);
        for (const k of keys)
          expect(rows(v.expected[`${p}data/${k}`]!), `${v.name} step ${i} ${k}`).toEqual(model.data[k]);
      });
    }
  });
});

describe('negcache conformance (CLI)', () => {
  beforeAll(() => ensureBuilt('dist/src/cli/main.js'), 300_000);
  const cli = (args: string[]) =>
    spawnSync(process.execPath, [join(ROOT, 'dist/src/cli/main.js'), ...args], { encoding: 'utf8', timeout: 120_000 });

  it('--out writes the set; the same command twice writes the same bytes; --check passes it', () => {
    const a = join(tmp, 'cli-a'),
      b = join(tmp, 'cli-b');
    const r = cli(['conformance', '--out', a, '--seed', '3']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^wrote \d+ vectors \(\d+ files, \d+ KiB, format negcache-conformance-v1, seed 3\) to /);
    expect(cli(['conformance', '--out', b, '--seed', '3']).status).toBe(0);
    const sa = readSet(a),
      sb = readSet(b);
    expect(Object.keys(sa).sort()).toEqual(Object.keys(sb).sort());
    for (const k of Object.keys(sa)) expect(sa[k], k).toEqual(sb[k]);
    const c = cli(['conformance', '--check', a]);
    expect(c.status, c.stdout).toBe(0);
    expect(c.stdout).toMatch(/\n\d+ passed, 0 failed \(of \d+ vectors\)\n$/);
  });

  it('bad usage exits 2 with a message; --check of a tampered set exits 1 naming the vector', async () => {
    const lines: string[] = [];
    const io = { stdout: (s: string) => lines.push(s), stderr: (s: string) => lines.push(s) };
    expect(await runConformance([], io)).toBe(2);
    expect(lines.join('')).toMatch(/^negcache conformance: give --out DIR or --check DIR\n/);
    expect(await runConformance(['--check', join(tmp, 'nowhere')], io)).toBe(2);
    expect(await runConformance(['--check', 'x', '--seed', '1'], io)).toBe(2);
    const dir = join(tmp, 'tampered');
    writeSet(dir, flipSign(files, 'cache_loss.tanh_none', 'grad/W'));
    lines.length = 0;
    expect(await runConformance(['--check', dir], io)).toBe(1);
    const fails = lines
      .join('')
      .split('\n')
      .filter((l) => l.startsWith('FAIL'));
    expect(fails).toEqual([expect.stringMatching(/^FAIL cache_loss\.tanh_none: grad\/W\[/)]);
  });
});

/** A copy of the set with one expected tensor negated (re-encoded, so its checksum is valid: a wrong vector, not a corrupt file). */
function flipSign(set: Record<string, Uint8Array>, vector: string, output: string): Record<string, Uint8Array> {
  const file = `${vector}.safetensors`;
  const { tensors, metadata } = decodeSafetensors(set[file]!);
  tensors[`expected/${output}`] = neg(tensors[`expected/${output}`]!);
  return { ...set, [file]: encodeSafetensors(tensors, metadata) };
}

const hasNumpy = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0;

describe('the independent Python checker (tools/check_vectors.py)', () => {
  const run = (dir: string) =>
    spawnSync('python3', [join(ROOT, 'tools/check_vectors.py'), dir], { encoding: 'utf8', timeout: 120_000 });

  if (hasNumpy) {
    it('passes every vector of a fresh set, and fails exactly a vector with one flipped gradient sign', () => {
      const good = join(tmp, 'py-good');
      writeSet(good, files);
      const r = run(good);
      expect(r.status, r.stdout + r.stderr).toBe(0);
      const lines = r.stdout.trim().split('\n');
      expect(lines.filter((l) => l.startsWith('PASS ')).length).toBe(vectors.length);
      expect(lines.at(-1)).toBe(
        `${vectors.length} passed, 0 failed (of ${vectors.length} vectors, format negcache-conformance-v1)`,
      );

      const bad = join(tmp, 'py-bad');
      writeSet(bad, flipSign(files, 'sharded_loss.r3_uneven_scale_mean', 'replica1/grad/queries'));
      const f = run(bad);
      expect(f.status).toBe(1);
      const fails = f.stdout.split('\n').filter((l) => l.startsWith('FAIL'));
      expect(fails).toEqual([
        expect.stringMatching(/^FAIL sharded_loss\.r3_uneven_scale_mean: replica1\/grad\/queries\[0\]: got /),
      ]);
      expect(f.stdout).toContain(`${vectors.length - 1} passed, 1 failed`);

      // a corrupted byte is caught by the checksum (the vector fails, the others still run)
      const corrupt = join(tmp, 'py-corrupt');
      const name = 'cache_update.masks.safetensors';
      const bytes = files[name]!.slice();
      bytes[bytes.length - 1] ^= 1;
      writeSet(corrupt, { ...files, [name]: bytes });
      const c = run(corrupt);
      expect(c.status).toBe(1);
      expect(c.stdout.split('\n').filter((l) => l.startsWith('FAIL'))).toEqual([
        'FAIL cache_update.masks: ValueError: CRC-32 mismatch: the file is corrupted',
      ]);
    });
  } else {
    it('numpy absent: the Python checker is NOT run here (only the TypeScript checks above ran)', () => {
      expect(
        process.env['NEGCACHE_REQUIRE_NUMPY'],
        'NEGCACHE_REQUIRE_NUMPY=1 but python3 cannot import numpy',
      ).not.toBe('1');
      expect(hasNumpy).toBe(false);
    });
  }
});
