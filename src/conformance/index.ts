/**
 * Conformance vectors: a versioned, seeded set of test vectors that pins the
 * reference behaviour of the negative cache, for checking other
 * implementations (PyTorch, JAX, another JS library) against negcache.
 * See format.ts for the file layout and tools/check_vectors.py for an
 * independent checker.
 *
 * Browser-safe: `generateConformanceVectors` returns {file name: bytes};
 * the CLI (`negcache conformance --out DIR`) writes them.
 */
import { ArgumentError, describe } from '../errors.js';
import { Rng } from '../tensor/random.js';
import { isFloat } from '../tensor/dtype.js';
import { unsafeData, type Tensor } from '../tensor/tensor.js';
import {
  COMPARE_RULE,
  CONFORMANCE_FORMAT,
  FLOAT32_TOLERANCE,
  decodeVector,
  encodeVector,
  jsonBytes,
  manifestEntry,
  type Manifest,
  type Vector,
  type VectorKind,
} from './format.js';
import { cacheUpdate } from './kinds/cacheUpdate.js';
import { gumbel, maxScore } from './kinds/retrieval.js';
import { approxTopK } from './kinds/topK.js';
import { cacheLoss } from './kinds/cacheLoss.js';
import { cacheLossEstimators } from './kinds/cacheLossEstimators.js';
import { shardedLoss } from './kinds/shardedLoss.js';
import { isInCache } from './kinds/isInCache.js';

export { CONFORMANCE_FORMAT, decodeVector, type Manifest, type Vector, type VectorKind } from './format.js';

/** Every vector kind, in generation order. */
export const VECTOR_KINDS: readonly VectorKind[] = [
  cacheUpdate,
  maxScore,
  gumbel,
  approxTopK,
  cacheLoss,
  cacheLossEstimators,
  shardedLoss,
  isInCache,
];

export const MANIFEST_FILE = 'manifest.json';

/**
 * The vectors for `seed`, in generation order. Each kind draws from its own
 * generator seeded from `seed` and the kind's name, so adding a kind does
 * not change the others.
 */
export async function buildConformanceVectors(opts: { seed?: number } = {}): Promise<Vector[]> {
  const seed = opts.seed ?? 0;
  if (!Number.isSafeInteger(seed) || seed < 0 || seed > 2 ** 31 - 1)
    throw new ArgumentError('conformance', `seed must be an integer in [0, 2^31 - 1], got ${describe(seed)}`);
  const vectors: Vector[] = [];
  const names = new Set<string>();
  for (const k of VECTOR_KINDS) {
    const rng = new Rng(seed * 1000 + kindSalt(k.kind));
    for (const v of await k.generate(rng)) {
      if (names.has(v.name)) throw new ArgumentError('conformance', `two vectors are named "${v.name}"`);
      names.add(v.name);
      vectors.push(v);
    }
  }
  return vectors;
}

/** The files of a vector set: manifest.json and, per vector, <name>.json and <name>.safetensors. */
export function encodeConformanceVectors(vectors: readonly Vector[], seed: number): Record<string, Uint8Array> {
  const files: Record<string, Uint8Array> = {};
  for (const v of vectors) Object.assign(files, encodeVector(v));
  const manifest: Manifest = {
    format: CONFORMANCE_FORMAT,
    seed,
    compare: COMPARE_RULE,
    float32Tolerance: FLOAT32_TOLERANCE,
    vectors: vectors.map(manifestEntry),
  };
  return { [MANIFEST_FILE]: jsonBytes(manifest), ...files };
}

/** The vector set for `seed` as {file name: bytes} (what `negcache conformance --out` writes). */
export async function generateConformanceVectors(opts: { seed?: number } = {}): Promise<Record<string, Uint8Array>> {
  const seed = opts.seed ?? 0;
  return encodeConformanceVectors(await buildConformanceVectors({ seed }), seed);
}

/** A stable small number per kind name (FNV-1a), so each kind's draws depend only on the seed and its name. */
function kindSalt(kind: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < kind.length; i++) h = Math.imul(h ^ kind.charCodeAt(i), 0x01000193) >>> 0;
  return h % 1000;
}

/** Reads every vector of a set (as written by generateConformanceVectors) back. */
export function readConformanceVectors(files: Readonly<Record<string, Uint8Array>>): {
  manifest: Manifest;
  vectors: Vector[];
} {
  const m = files[MANIFEST_FILE];
  if (!m) throw new ArgumentError('readConformanceVectors', `no ${MANIFEST_FILE} among the files`);
  const manifest = JSON.parse(new TextDecoder().decode(m)) as Manifest;
  if (manifest.format !== CONFORMANCE_FORMAT)
    throw new ArgumentError('readConformanceVectors', `format "${manifest.format}", need "${CONFORMANCE_FORMAT}"`);
  const vectors = manifest.vectors.map((e) => {
    const json = files[e.json],
      tensors = files[e.tensors];
    if (!json || !tensors)
      throw new ArgumentError('readConformanceVectors', `${e.name}: missing ${e.json} or ${e.tensors}`);
    return decodeVector(json, tensors);
  });
  return { manifest, vectors };
}

export interface VectorCheck {
  name: string;
  ok: boolean;
  /** Why it failed (empty when ok). */
  problems: string[];
}

/** Compares outputs with a vector's expected ones under its tolerance (the rule in format.ts). */
export function compareOutputs(v: Vector, got: Readonly<Record<string, Tensor>>): string[] {
  const problems: string[] = [];
  for (const [name, want] of Object.entries(v.expected)) {
    const g = got[name];
    if (!g) {
      if (!v.beyondReferenceOutputs.includes(name)) problems.push(`${name}: missing`);
      continue;
    }
    if (g.shape.join(',') !== want.shape.join(',')) {
      problems.push(`${name}: shape [${g.shape.join(', ')}], expected [${want.shape.join(', ')}]`);
      continue;
    }
    const a = unsafeData(g),
      b = unsafeData(want);
    const float = isFloat(want.dtype);
    for (let i = 0; i < b.length; i++) {
      const x = Number(a[i]),
        y = Number(b[i]);
      const ok = float ? x === y || Math.abs(x - y) <= v.tolerance.atol + v.tolerance.rtol * Math.abs(y) : x === y;
      if (!ok) {
        problems.push(`${name}[${i}]: got ${x}, expected ${y}`);
        break;
      }
    }
  }
  return problems;
}

/** Recomputes every vector with this negcache and compares (a regression check of a stored set). */
export async function verifyConformanceVectors(files: Readonly<Record<string, Uint8Array>>): Promise<VectorCheck[]> {
  const { vectors } = readConformanceVectors(files);
  const out: VectorCheck[] = [];
  for (const v of vectors) {
    const kind = VECTOR_KINDS.find((k) => k.kind === v.kind);
    if (!kind) {
      out.push({ name: v.name, ok: false, problems: [`unknown kind "${v.kind}"`] });
      continue;
    }
    let problems: string[];
    try {
      problems = compareOutputs(v, await kind.compute(v.config, v.inputs));
    } catch (e) {
      problems = [`negcache threw: ${(e as Error).message}`];
    }
    out.push({ name: v.name, ok: problems.length === 0, problems });
  }
  return out;
}
