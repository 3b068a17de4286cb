/** Shared benchmark helpers: timing with warm-up, medians and spread, a table printer. */

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
  ts.sort((a, b) => a - b);
  return { median: ts[Math.floor(ts.length / 2)]!, min: ts[0]!, max: ts[ts.length - 1]!, runs };
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
