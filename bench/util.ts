/** Shared benchmark helpers: timing with warm-up, medians and spread, a table printer, numpy, optional imports. */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Timing {
  median: number;
  min: number;
  max: number;
  runs: number;
}

/** Times `fn` (ms): `warm` untimed calls, then `runs` timed calls. */
export async function timeIt(fn: () => unknown | Promise<unknown>, runs = 5, warm = 1): Promise<Timing> {
  for (let i = 0; i < warm; i++) await fn();
  const ts: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    ts.push(performance.now() - t0);
  }
  return { median: medianOf(ts), min: Math.min(...ts), max: Math.max(...ts), runs };
}

/** The median of `xs` (the upper one of an even count), without reordering `xs`. */
export function medianOf(xs: readonly number[]): number {
  return xs.slice().sort((a, b) => a - b)[xs.length >> 1]!;
}

/**
 * `fn`, wrapped to add the wall time of every call to `ms` (set it to 0 before a measurement): the time a step
 * spends inside one of its parts, e.g. the cache scan passed to it as its scanner.
 */
export function timedCalls<A extends unknown[], R>(fn: (...args: A) => R): { call: (...args: A) => R; ms: number } {
  const t = {
    ms: 0,
    call: (...args: A): R => {
      const start = performance.now();
      try {
        return fn(...args);
      } finally {
        t.ms += performance.now() - start;
      }
    },
  };
  return t;
}

export function fmtTiming(t: Timing | null, unit = 'ms'): string {
  if (t === null) return 'n/a';
  return `${t.median.toFixed(1)} ${unit} (${t.min.toFixed(1)}–${t.max.toFixed(1)}, n=${t.runs})`;
}

export function printTable(headers: string[], rows: string[][]): void {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  console.log(line(headers));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
}

/** Deterministic pseudo-random floats in [-scale, scale) (LCG; benchmarks only). */
export function randomFloats(n: number, seed: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = ((s / 4294967296) * 2 - 1) * scale;
  }
  return out;
}

/** numpy's timings (bench/numpy_step.py), or null with a message when python3 / numpy are missing. */
export interface NumpyTiming extends Timing {
  gflops?: number;
}

/**
 * Runs bench/numpy_step.py with `args` and parses its JSON line. `threads`
 * pins OpenBLAS (OPENBLAS_NUM_THREADS, set before numpy loads); without it
 * OpenBLAS uses every core. Returns null (after printing why) when python3
 * or numpy are unavailable.
 */
export function runNumpy(args: string[], threads?: number): NumpyTiming | null {
  const script = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'numpy_step.py');
  if (!existsSync(script)) {
    console.log(`numpy: skipped (${script} not found)`);
    return null;
  }
  const env = { ...process.env };
  delete env['OPENBLAS_CORETYPE'];
  delete env['OPENBLAS_L2_SIZE'];
  if (threads !== undefined) env['OPENBLAS_NUM_THREADS'] = String(threads);
  else delete env['OPENBLAS_NUM_THREADS'];
  try {
    const out = execFileSync('python3', [script, ...args], {
      env,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return JSON.parse(out.trim().split('\n').pop()!) as NumpyTiming;
  } catch (e) {
    console.log(`numpy: skipped (${(e as Error).message.split('\n')[0]})`);
    return null;
  }
}

/** The CPU model (Linux /proc/cpuinfo, else os.cpus()). */
export function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) return m[1]!.trim();
  } catch {
    // not Linux
  }
  return cpus()[0]?.model ?? 'unknown CPU';
}
