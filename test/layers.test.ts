/**
 * The source tree's layering (docs/CONVENTIONS.md), checked on the import
 * graph of every file under src/ (static imports and re-exports, type-only
 * ones included — a type import from a layer above is still a dependency on
 * it — and literal dynamic import()s):
 *
 *   errors → tensor → io → autograd → ops → scan
 *     → cache, retrieval, losses, handlers, filters, distributed
 *     → nn, optim, data, eval, report, train → index (the browser entry)
 *     → node → cli
 *
 * A file may import files of its own layer or of layers to its left, never
 * to its right; there is no import cycle at all (between files, in any
 * layer); and a top-level folder missing from the table fails the test
 * (a new folder must be placed). src/tensor/kernels/ in particular never
 * imports src/scan/ (the scan's wasm kernels are a second module registered
 * with the generic runtime, not part of it).
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { importsOf } from './util/imports.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SRC = join(ROOT, 'src');

/** Layer ranks: a file may import ranks <= its own. */
export const LAYERS: Readonly<Record<string, number>> = {
  errors: 0,
  tensor: 1,
  io: 2,
  autograd: 3,
  ops: 4,
  scan: 5,
  cache: 6,
  retrieval: 6,
  losses: 6,
  handlers: 6,
  filters: 6,
  distributed: 6,
  nn: 7,
  optim: 7,
  data: 7,
  eval: 7,
  report: 7,
  train: 7,
  conformance: 7,
  model: 7,
  search: 7,
  index: 8,
  testing: 8,
  node: 9,
  cli: 10,
};

/** The layer of a path relative to src/ ('tensor/kernels/matmul.ts' -> 'tensor', 'errors.ts' -> 'errors'). */
export function layerOf(path: string): string {
  const parts = path.split('/');
  return parts.length === 1 ? parts[0]!.replace(/\.ts$/, '') : parts[0]!;
}

/** file (relative to src/) -> the files it imports (relative to src/). */
export type Graph = Map<string, string[]>;

/** The import graph of every .ts file under src/. */
function sourceGraph(): Graph {
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) files.push(p);
    }
  };
  walk(SRC);
  const graph: Graph = new Map();
  for (const f of files) {
    const targets: string[] = [];
    for (const imp of importsOf(readFileSync(f, 'utf8')).imports) {
      if (!imp.specifier.startsWith('./') && !imp.specifier.startsWith('../')) continue;
      const t = resolve(dirname(f), imp.specifier).replace(/\.js$/, '.ts');
      targets.push(relative(SRC, t).split('\\').join('/'));
    }
    graph.set(relative(SRC, f).split('\\').join('/'), targets);
  }
  return graph;
}

/** Imports that point to a higher layer, and files whose layer is not in the table. */
export function layerViolations(graph: Graph, layers: Readonly<Record<string, number>> = LAYERS): string[] {
  const out: string[] = [];
  for (const [file, targets] of graph) {
    const from = layerOf(file);
    if (layers[from] === undefined) {
      out.push(`${file}: layer '${from}' is not in the layer table`);
      continue;
    }
    for (const t of targets) {
      const to = layerOf(t);
      if (layers[to] === undefined) out.push(`${file} imports ${t}: layer '${to}' is not in the layer table`);
      else if (layers[to]! > layers[from]!) out.push(`${file} (${from}) imports ${t} (${to}): upward`);
    }
  }
  return out;
}

/** Every import cycle, as the files of each strongly connected component with more than one file (or a self-import). */
export function importCycles(graph: Graph): string[][] {
  // Tarjan's algorithm, iterative (no recursion limit on deep chains).
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  for (const root of graph.keys()) {
    if (index.has(root)) continue;
    const work: { v: string; next: number }[] = [{ v: root, next: 0 }];
    index.set(root, counter);
    low.set(root, counter++);
    stack.push(root);
    onStack.add(root);
    while (work.length > 0) {
      const top = work[work.length - 1]!;
      const succ = graph.get(top.v) ?? [];
      if (top.next < succ.length) {
        const w = succ[top.next++]!;
        if (!index.has(w)) {
          index.set(w, counter);
          low.set(w, counter++);
          stack.push(w);
          onStack.add(w);
          work.push({ v: w, next: 0 });
        } else if (onStack.has(w)) {
          low.set(top.v, Math.min(low.get(top.v)!, index.get(w)!));
        }
        continue;
      }
      work.pop();
      if (work.length > 0) {
        const parent = work[work.length - 1]!.v;
        low.set(parent, Math.min(low.get(parent)!, low.get(top.v)!));
      }
      if (low.get(top.v) === index.get(top.v)) {
        const comp: string[] = [];
        let w: string;
        do {
          w = stack.pop()!;
          onStack.delete(w);
          comp.push(w);
        } while (w !== top.v);
        if (comp.length > 1 || (graph.get(top.v) ?? []).includes(top.v)) out.push(comp.sort());
      }
    }
  }
  return out;
}

describe('the checks themselves', () => {
  it('find a cycle and an upward import in a made-up graph, and nothing in a clean one', () => {
    const bad: Graph = new Map([
      ['tensor/kernels/matmul.ts', ['tensor/kernels/wasm/index.ts']],
      ['tensor/kernels/wasm/index.ts', ['scan/contract.ts']],
      ['scan/contract.ts', ['tensor/kernels/matmul.ts', 'errors.ts']],
      ['errors.ts', []],
      ['ops/a.ts', ['ops/a.ts']],
      ['newthing/x.ts', ['errors.ts']],
    ]);
    expect(importCycles(bad)).toEqual([
      ['scan/contract.ts', 'tensor/kernels/matmul.ts', 'tensor/kernels/wasm/index.ts'],
      ['ops/a.ts'],
    ]);
    expect(layerViolations(bad)).toEqual([
      'tensor/kernels/wasm/index.ts (tensor) imports scan/contract.ts (scan): upward',
      "newthing/x.ts: layer 'newthing' is not in the layer table",
    ]);
    const good: Graph = new Map([
      ['scan/contract.ts', ['tensor/kernels/matmul.ts', 'errors.ts']],
      ['tensor/kernels/matmul.ts', ['tensor/kernels/wasm/index.ts']],
      ['tensor/kernels/wasm/index.ts', ['errors.ts']],
      ['errors.ts', []],
      ['node/x.ts', ['losses/y.ts', 'index.ts']],
      ['losses/y.ts', ['retrieval/z.ts']],
      ['retrieval/z.ts', []],
      ['index.ts', []],
    ]);
    expect(importCycles(good)).toEqual([]);
    expect(layerViolations(good)).toEqual([]);
    expect(layerViolations(new Map([['index.ts', ['node/x.ts']]]))).toEqual([
      'index.ts (index) imports node/x.ts (node): upward',
    ]);
  });
});

describe('src/ layering', () => {
  const graph = sourceGraph();

  it('has no import cycle', () => {
    expect(graph.size).toBeGreaterThan(50);
    expect(importCycles(graph)).toEqual([]);
  });

  it('never imports a layer above (type-only imports included); every folder is placed', () => {
    expect(layerViolations(graph)).toEqual([]);
  });

  it('the generic kernels (src/tensor/kernels/, incl. wasm/) never import src/scan/', () => {
    const kernels = [...graph.keys()].filter((f) => f.startsWith('tensor/kernels/'));
    expect(kernels).toContain('tensor/kernels/wasm/index.ts');
    for (const f of kernels) expect(graph.get(f)!.filter((t) => t.startsWith('scan/'))).toEqual([]);
    // and the scan does use them (the check is about something real)
    expect(graph.get('scan/wasm.ts')).toContain('tensor/kernels/wasm/index.ts');
  });
});
