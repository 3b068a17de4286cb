/**
 * `negcache conformance`: writes the conformance vector set, or re-checks a
 * written one against this negcache.
 *
 *   negcache conformance --out DIR [--seed N]   manifest.json, <name>.json, <name>.safetensors
 *   negcache conformance --check DIR            recompute every vector with negcache: PASS/FAIL per vector
 *
 * Check another implementation with `python3 tools/check_vectors.py DIR`
 * (README "Checking your own implementation against negcache").
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NegcacheError } from '../errors.js';
import type { Manifest } from '../conformance/index.js';
import { UsageError, parseFlags, usageOf, type FlagSpec } from './args.js';

export const CONFORMANCE_SUMMARY =
  'write the conformance test vectors (--out DIR) for checking other implementations, or re-check a set (--check DIR)';

const FLAGS: Record<string, FlagSpec> = {
  out: { kind: 'string', help: 'write the vector set into this folder (created if missing)' },
  seed: { kind: 'int', help: 'seed of the random vectors (default 0)', min: 0, max: 2 ** 31 - 1 },
  check: { kind: 'string', help: 'recompute the vector set in this folder with this negcache and report' },
};

interface Out {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

const STD: Out = { stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s) };

/** The manifest's file name (as src/conformance/index.ts writes it; that module loads only when the command runs). */
const MANIFEST_FILE = 'manifest.json';

/** Runs the command; resolves to the exit status (0 ok, 1 a vector failed, 2 bad usage). */
export async function runConformance(argv: readonly string[], out: Out = STD): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    out.stdout(usageOf('conformance', CONFORMANCE_SUMMARY, FLAGS));
    return 0;
  }
  // Loaded here, not at the top: other commands do not pay for the vector generator's modules.
  const { generateConformanceVectors, readConformanceVectors, verifyConformanceVectors } =
    await import('../conformance/index.js');
  try {
    const flags = parseFlags(argv, FLAGS);
    const dirOut = flags['out'] as string | undefined;
    const dirCheck = flags['check'] as string | undefined;
    if ((dirOut === undefined) === (dirCheck === undefined)) throw new UsageError('give --out DIR or --check DIR');
    if (dirCheck !== undefined && flags['seed'] !== undefined)
      throw new UsageError('--seed applies to --out (a written set records its seed)');
    if (dirOut !== undefined) {
      const files = await generateConformanceVectors({ seed: (flags['seed'] as number | undefined) ?? 0 });
      mkdirSync(dirOut, { recursive: true });
      let bytes = 0;
      for (const [name, data] of Object.entries(files)) {
        writeFileSync(join(dirOut, name), data);
        bytes += data.length;
      }
      const { manifest } = readConformanceVectors(files);
      const kinds = new Map<string, number>();
      for (const v of manifest.vectors) kinds.set(v.kind, (kinds.get(v.kind) ?? 0) + 1);
      out.stdout(
        `wrote ${manifest.vectors.length} vectors (${Object.keys(files).length} files, ${(bytes / 1024).toFixed(0)} KiB, format ${manifest.format}, seed ${manifest.seed}) to ${dirOut}\n` +
          [...kinds].map(([k, n]) => `  ${k.padEnd(22)}${n}\n`).join('') +
          `check an implementation with: python3 tools/check_vectors.py ${dirOut}\n`,
      );
      return 0;
    }
    const files = readSet(dirCheck!);
    const results = await verifyConformanceVectors(files);
    let failed = 0;
    for (const r of results) {
      if (r.ok) out.stdout(`PASS ${r.name}\n`);
      else {
        failed++;
        out.stdout(`FAIL ${r.name}: ${r.problems.slice(0, 3).join('; ')}\n`);
      }
    }
    out.stdout(`${results.length - failed} passed, ${failed} failed (of ${results.length} vectors)\n`);
    return failed > 0 ? 1 : 0;
  } catch (e) {
    if (e instanceof UsageError || e instanceof NegcacheError) {
      out.stderr(`negcache conformance: ${e.message}\n`);
      if (e instanceof UsageError) out.stderr('run "negcache conformance --help" for the flags\n');
      return 2;
    }
    throw e;
  }
}

/** The manifest and every file it names. */
function readSet(dir: string): Record<string, Uint8Array> {
  let manifestBytes: Uint8Array;
  try {
    manifestBytes = readFileSync(join(dir, MANIFEST_FILE));
  } catch {
    throw new UsageError(`--check: no ${MANIFEST_FILE} in ${dir} (write a set with --out first)`);
  }
  const manifest = JSON.parse(new TextDecoder().decode(manifestBytes)) as Manifest;
  const files: Record<string, Uint8Array> = { [MANIFEST_FILE]: manifestBytes };
  for (const v of manifest.vectors ?? [])
    for (const f of [v.json, v.tensors]) {
      try {
        files[f] = readFileSync(join(dir, f));
      } catch {
        throw new UsageError(`--check: ${dir} lacks ${f}, which the manifest lists`);
      }
    }
  return files;
}

/**
 * The hook for main(): starts the command and returns 0 at once; the exit
 * status is set on process.exitCode when the (asynchronous) work ends, so
 * the process exits with it.
 */
export function conformanceCommand(argv: readonly string[]): number {
  runConformance(argv).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`negcache conformance: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exitCode = 1;
    },
  );
  return 0;
}
