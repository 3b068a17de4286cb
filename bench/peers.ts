/**
 * The benchmarks' comparison peers: TensorFlow.js (@tensorflow/tfjs-core with
 * its CPU and WASM backends, and the union package @tensorflow/tfjs, which
 * registers the gradients). They are not dependencies of negcache: they live
 * in bench/'s own package (bench/package.json, bench/package-lock.json; about
 * 300 MB in bench/node_modules), which `npm run bench` installs on first use
 * (`npm ci --prefix bench` does it by hand). So the root install, typecheck
 * and build never need them: they are resolved here from bench/package.json
 * at run time, by a computed specifier, and typed by the few signatures the
 * benchmarks use (below) instead of tfjs's own declarations.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** bench/ in the source tree (this file runs as dist/bench/peers.js). */
export const BENCH_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench');

export const PEERS = [
  '@tensorflow/tfjs',
  '@tensorflow/tfjs-core',
  '@tensorflow/tfjs-backend-cpu',
  '@tensorflow/tfjs-backend-wasm',
] as const;
export type Peer = (typeof PEERS)[number];

export const INSTALL_HINT = 'run `npm ci --prefix bench` (`npm run bench` does it on first use)';

/** A tfjs tensor, as far as the benchmarks use it. */
export interface TfTensor {
  dataSync(): Float32Array | Int32Array | Uint8Array;
  dispose(): void;
}

type Operand = TfTensor | number;

/** The tfjs functions the benchmarks call (tfjs-core's signatures, narrowed to these uses). */
export interface Tf {
  version_core: string;
  setBackend(name: string): Promise<boolean>;
  ready(): Promise<void>;
  getBackend(): string;
  tensor1d(values: Float32Array): TfTensor;
  tensor2d(values: Float32Array, shape: [number, number]): TfTensor;
  variable(initial: TfTensor): TfTensor;
  randomUniform(shape: number[], min: number, max: number): TfTensor;
  matMul(a: TfTensor, b: TfTensor, transposeA?: boolean, transposeB?: boolean): TfTensor;
  mul(a: Operand, b: Operand): TfTensor;
  sub(a: Operand, b: Operand): TfTensor;
  exp(x: TfTensor): TfTensor;
  log(x: TfTensor): TfTensor;
  neg(x: TfTensor): TfTensor;
  square(x: TfTensor): TfTensor;
  sum(x: TfTensor, axis?: number): TfTensor;
  mean(x: TfTensor, axis?: number): TfTensor;
  argMax(x: TfTensor, axis?: number): TfTensor;
  logSumExp(x: TfTensor, axis?: number): TfTensor;
  expandDims(x: TfTensor, axis?: number): TfTensor;
  concat(xs: TfTensor[], axis?: number): TfTensor;
  gather(x: TfTensor, indices: TfTensor): TfTensor;
  tidy<T>(fn: () => T): T;
  dispose(x: TfTensor | TfTensor[]): void;
  variableGrads(f: () => TfTensor, vars?: TfTensor[]): { value: TfTensor; grads: Record<string, TfTensor> };
}

/** @tensorflow/tfjs-backend-wasm: where its .wasm files are. */
export interface TfWasm {
  setWasmPaths(prefix: string): void;
}

/** The file a peer's entry resolves to from bench/, or null when bench/ has not been installed. */
export function peerEntry(name: Peer): string | null {
  try {
    return createRequire(join(BENCH_DIR, 'package.json')).resolve(name);
  } catch {
    return null;
  }
}

/** True when every peer resolves from bench/. */
export function peersInstalled(): boolean {
  return PEERS.every((p) => peerEntry(p) !== null);
}

/**
 * Loads a peer from bench/node_modules; throws with the install command when
 * it is missing. The peers are CommonJS: their exports are the namespace's default.
 */
export async function importPeer<T>(name: Peer): Promise<T> {
  const entry = peerEntry(name);
  if (entry === null) throw new Error(`${name} is not installed in bench/: ${INSTALL_HINT}`);
  const ns = (await import(pathToFileURL(entry).href)) as { default?: T };
  return ns.default ?? (ns as T);
}

/** A peer, or null (with a one-line message) when bench/'s package is not installed: its columns are skipped. */
export async function optionalPeer<T>(name: Peer): Promise<T | null> {
  if (peerEntry(name) === null) {
    console.log(`${name}: not installed in bench/, its columns are skipped (${INSTALL_HINT})`);
    return null;
  }
  return importPeer<T>(name);
}

/**
 * Installs bench/'s locked peers (`npm ci --prefix bench`) with the npm that
 * runs this script (npm_execpath under `npm run`), else the npm on PATH.
 * Returns whether it succeeded.
 */
export function installPeers(): boolean {
  const args = ['ci', '--prefix', BENCH_DIR, '--no-audit', '--no-fund'];
  const npmCli = process.env['npm_execpath'];
  const r =
    npmCli !== undefined && existsSync(npmCli) && npmCli.endsWith('.js')
      ? spawnSync(process.execPath, [npmCli, ...args], { stdio: 'inherit' })
      : spawnSync('npm', args, { stdio: 'inherit', shell: process.platform === 'win32' });
  return r.status === 0 && peersInstalled();
}
