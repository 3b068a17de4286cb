/**
 * The conformance vector format, version 1 ("negcache-conformance-v1").
 *
 * A vector set is a folder of files:
 *
 *   manifest.json           {format, seed, compare, vectors: [{name, kind, json, tensors, pins,
 *                            beyondReference, tolerance}, ...]} in generation order
 *   <name>.json             one vector: {format, name, kind, pins, beyondReference, config,
 *                            tensors, inputs: [...], expected: [...], beyondReferenceOutputs: [...],
 *                            tolerance: {atol, rtol}}
 *   <name>.safetensors      its tensors: `inputs/<input name>` and `expected/<output name>`
 *
 * `config` holds the kind's settings (plain JSON); `inputs` and `expected`
 * name the tensors. A port recomputes the expected outputs from the config
 * and the inputs. Comparison: float outputs within atol + rtol·|expected|
 * (elementwise, equal shapes; -Infinity must match exactly); int32 and bool
 * outputs exactly. `beyondReferenceOutputs` are outputs of negcache features
 * the reference does not have (e.g. the `valid` flags of a cache): a port
 * without the feature may skip them; every other output is required.
 * `beyondReference` lists the beyond-reference options the vector exercises
 * (empty: pure reference behaviour).
 *
 * Inputs are float32-representable (multiples of 1/8 or 1/16, exact in every
 * float type) so every port reads the very same numbers; expected float
 * outputs are computed by negcache in float64 and stored as F64, with
 * tolerances for a float64 port (`tolerance`) and advice for a float32 one
 * (`float32Tolerance` in the manifest).
 *
 * Deterministic: JSON is written with keys in a fixed order and no
 * whitespace variation, safetensors by `encodeSafetensors` (sorted names,
 * CRC-32 in the metadata), so the same seed gives the same bytes (on the
 * same JavaScript engine: transcendental functions may differ in the last
 * bit between engines).
 */
import { ArgumentError } from '../errors.js';
import type { Rng } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { decodeSafetensors, encodeSafetensors } from '../io/safetensors.js';

export const CONFORMANCE_FORMAT = 'negcache-conformance-v1';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface Tolerance {
  atol: number;
  rtol: number;
}

/** Tolerance of float outputs for a float64 port (the reference values are float64). */
export const FLOAT64_TOLERANCE: Tolerance = { atol: 1e-9, rtol: 1e-9 };
/** Exact: integer, bool and copied float outputs. */
export const EXACT: Tolerance = { atol: 0, rtol: 0 };
/** Advice for a float32 port of the float vectors (not used by the checkers). */
export const FLOAT32_TOLERANCE: Tolerance = { atol: 1e-4, rtol: 1e-3 };

/** One vector before serialisation. */
export interface Vector {
  name: string;
  kind: string;
  /** The reference behaviour it pins, in one or two sentences. */
  pins: string;
  /** Beyond-reference options the vector exercises (empty: pure reference). */
  beyondReference: string[];
  config: { [key: string]: Json };
  inputs: Record<string, Tensor>;
  expected: Record<string, Tensor>;
  /** Outputs of beyond-reference features (a port without them may skip these). */
  beyondReferenceOutputs: string[];
  tolerance: Tolerance;
}

/**
 * A vector kind: how its vectors are made and how negcache computes their
 * expected outputs from config and inputs (generation and re-checking share
 * `compute`). To add a kind: a module in kinds/ exporting one of these,
 * registered in index.ts, and a `run_<kind>` function in tools/check_vectors.py.
 */
export interface VectorKind {
  kind: string;
  generate(rng: Rng): Vector[] | Promise<Vector[]>;
  compute(
    config: { [key: string]: Json },
    inputs: Record<string, Tensor>,
  ): Record<string, Tensor> | Promise<Record<string, Tensor>>;
}

export interface ManifestEntry {
  name: string;
  kind: string;
  json: string;
  tensors: string;
  pins: string;
  beyondReference: string[];
  tolerance: Tolerance;
}

export interface Manifest {
  format: string;
  seed: number;
  compare: string;
  float32Tolerance: Tolerance;
  vectors: ManifestEntry[];
}

export const COMPARE_RULE =
  'float outputs: |got - expected| <= atol + rtol * |expected| elementwise with equal shapes (-Infinity must match exactly); int32 and bool outputs: exactly equal';

const NAME_RE = /^[a-z0-9_]+\.[a-z0-9_]+$/;

const encoder = new TextEncoder();

/** JSON text, two-space indented, ending in a newline (keys in insertion order). */
export function jsonBytes(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value, null, 2) + '\n');
}

/** The files of one vector: {<name>.json, <name>.safetensors}. */
export function encodeVector(v: Vector): Record<string, Uint8Array> {
  if (!NAME_RE.test(v.name) || !v.name.startsWith(`${v.kind}.`))
    throw new ArgumentError('conformance', `vector name "${v.name}" must be "<kind>.<case>" in [a-z0-9_]`);
  const tensors: Record<string, Tensor> = {};
  for (const [k, t] of Object.entries(v.inputs)) tensors[`inputs/${k}`] = t;
  for (const [k, t] of Object.entries(v.expected)) tensors[`expected/${k}`] = t;
  for (const k of v.beyondReferenceOutputs)
    if (!(k in v.expected))
      throw new ArgumentError('conformance', `${v.name}: beyond-reference output "${k}" is not an output`);
  const meta = {
    format: CONFORMANCE_FORMAT,
    name: v.name,
    kind: v.kind,
    pins: v.pins,
    beyondReference: v.beyondReference,
    config: v.config,
    tensors: `${v.name}.safetensors`,
    inputs: Object.keys(v.inputs),
    expected: Object.keys(v.expected),
    beyondReferenceOutputs: v.beyondReferenceOutputs,
    tolerance: v.tolerance,
  };
  return {
    [`${v.name}.json`]: jsonBytes(meta),
    [`${v.name}.safetensors`]: encodeSafetensors(tensors, { format: CONFORMANCE_FORMAT, vector: v.name }),
  };
}

export function manifestEntry(v: Vector): ManifestEntry {
  return {
    name: v.name,
    kind: v.kind,
    json: `${v.name}.json`,
    tensors: `${v.name}.safetensors`,
    pins: v.pins,
    beyondReference: v.beyondReference,
    tolerance: v.tolerance,
  };
}

const decoder = new TextDecoder('utf-8', { fatal: true });

/** Reads a vector back from its files (as `encodeVector` wrote them). */
export function decodeVector(json: Uint8Array, safetensors: Uint8Array): Vector {
  const meta = JSON.parse(decoder.decode(json)) as {
    format: string;
    name: string;
    kind: string;
    pins: string;
    beyondReference: string[];
    config: { [key: string]: Json };
    inputs: string[];
    expected: string[];
    beyondReferenceOutputs: string[];
    tolerance: Tolerance;
  };
  if (meta.format !== CONFORMANCE_FORMAT)
    throw new ArgumentError('conformance', `${meta.name}: format "${meta.format}", need "${CONFORMANCE_FORMAT}"`);
  const { tensors } = decodeSafetensors(safetensors, { requireChecksum: true });
  const pick = (prefix: string, names: string[]): Record<string, Tensor> => {
    const out: Record<string, Tensor> = {};
    for (const n of names) {
      const t = tensors[`${prefix}/${n}`];
      if (!t) throw new ArgumentError('conformance', `${meta.name}: the tensors file has no "${prefix}/${n}"`);
      out[n] = t;
    }
    return out;
  };
  return {
    name: meta.name,
    kind: meta.kind,
    pins: meta.pins,
    beyondReference: meta.beyondReference,
    config: meta.config,
    inputs: pick('inputs', meta.inputs),
    expected: pick('expected', meta.expected),
    beyondReferenceOutputs: meta.beyondReferenceOutputs,
    tolerance: meta.tolerance,
  };
}
