/**
 * The core entry (the package's "." export) must run unchanged in a browser:
 * nothing reachable from it may import a Node built-in (or any bare
 * specifier: negcache has no runtime dependencies, and a browser cannot
 * resolve bare names), use `Buffer`, `process` or `require`, or reach the
 * Node-only code under src/node/ and src/cli/ (docs/CONVENTIONS.md).
 *
 * The import graph is walked twice: over the TypeScript sources from
 * src/index.ts (`./x.js` resolved to `./x.ts`; type-only imports skipped,
 * as tsc erases them) and over the built files from dist/src/index.js
 * (what a browser actually loads; `npm test` builds first).
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { importsOf, stripSource } from '../util/imports.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const rel = (f: string): string => relative(ROOT, f).split('\\').join('/');

const NODE_BUILTINS = new Set(builtinModules.flatMap((m) => [m, m.split('/')[0]!]));

/** Runtime uses of Node globals in code already stripped of comments and literals. */
export function nodeGlobalUses(code: string): string[] {
  const found: string[] = [];
  const patterns: [RegExp, string][] = [
    [/(?<![\w$.])Buffer\s*(\.|\[|\()/g, 'Buffer'],
    [/\bnew\s+Buffer\b/g, 'new Buffer'],
    [/(?<![\w$.])process\s*(\.|\[)/g, 'process'],
    [/(?<![\w$.])require\s*\(/g, 'require()'],
    [/(?<![\w$.])(__dirname|__filename)\b/g, '__dirname/__filename'],
    [/\bglobalThis\s*\.\s*(process|Buffer|require)\b/g, 'globalThis.<node global>'],
  ];
  for (const [re, what] of patterns) {
    for (const m of code.matchAll(re)) {
      const line = code.slice(0, m.index).split('\n').length;
      found.push(`${what} at line ${line}`);
    }
  }
  return found;
}

function isBuiltin(spec: string): boolean {
  return spec.startsWith('node:') || NODE_BUILTINS.has(spec) || NODE_BUILTINS.has(spec.split('/')[0]!);
}

interface Walk {
  reached: Set<string>;
  problems: string[];
  edges: number;
}

/**
 * Walks the relative import graph from `entry`; `resolveSpec` maps a relative specifier to a file.
 * `allowedBare` lists the bare specifiers the entry may import (the testing entry's peer, fast-check).
 */
function walk(
  entry: string,
  resolveSpec: (from: string, spec: string) => string,
  followTypeOnly: boolean,
  allowedBare: ReadonlySet<string> = new Set(),
): Walk {
  const reached = new Set<string>();
  const problems: string[] = [];
  const queue = [entry];
  const via = new Map<string, string>();
  let edges = 0;
  const chain = (f: string): string => {
    const out = [rel(f)];
    for (let p = via.get(f); p !== undefined; p = via.get(p)) out.push(rel(p));
    return out.reverse().join(' → ');
  };
  while (queue.length > 0) {
    const file = queue.shift()!;
    if (reached.has(file)) continue;
    reached.add(file);
    if (!existsSync(file)) {
      problems.push(`${chain(file)}: the imported file does not exist`);
      continue;
    }
    const { imports, nonLiteralDynamic, code } = importsOf(readFileSync(file, 'utf8'));
    if (nonLiteralDynamic > 0)
      problems.push(
        `${chain(file)}: ${nonLiteralDynamic} dynamic import() with a computed specifier (cannot be checked; use a literal relative path)`,
      );
    for (const use of nodeGlobalUses(code)) problems.push(`${chain(file)}: uses the Node global ${use}`);
    for (const imp of imports) {
      if (imp.typeOnly && !followTypeOnly) continue;
      if (imp.specifier.startsWith('./') || imp.specifier.startsWith('../')) {
        const target = resolveSpec(file, imp.specifier);
        edges++;
        if (!via.has(target) && target !== entry) via.set(target, file);
        if (!reached.has(target)) queue.push(target);
      } else if (isBuiltin(imp.specifier)) {
        problems.push(
          `${chain(file)}: imports the Node built-in '${imp.specifier}'${imp.dynamic ? ' (dynamically)' : ''}`,
        );
      } else if (!allowedBare.has(imp.specifier)) {
        problems.push(
          `${chain(file)}: imports the bare specifier '${imp.specifier}' (a browser cannot resolve it, and negcache has no runtime dependencies)`,
        );
      }
    }
  }
  return { reached, problems, edges };
}

const fromSource = (from: string, spec: string): string => {
  const target = resolve(dirname(from), spec);
  if (target.endsWith('.js')) return target.slice(0, -3) + '.ts';
  if (target.endsWith('.mjs')) return target.slice(0, -4) + '.mts';
  return target;
};
const fromBuilt = (from: string, spec: string): string => resolve(dirname(from), spec);

function filesUnder(dir: string, ext: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? filesUnder(p, ext) : p.endsWith(ext) && !p.endsWith('.d.ts') ? [p] : [];
  });
}

const SRC_ENTRY = join(ROOT, 'src/index.ts');
const DIST_ENTRY = join(ROOT, 'dist/src/index.js');
const SRC_TESTING = join(ROOT, 'src/testing/index.ts');
const DIST_TESTING = join(ROOT, 'dist/src/testing/index.js');

describe('the scanner itself', () => {
  it('ignores comments and literals, and finds every import form', () => {
    const src = [
      "// import x from 'node:fs'  and process.env in a comment",
      "/* Buffer.from('x') */",
      "import { a, type B } from './a.js';",
      "import type { C } from './c.js';",
      "import { type D } from './d.js';",
      "import * as e from './e.js';",
      "import './side.js';",
      "export { f } from './f.js';",
      "export * from './g.js';",
      "export type { H } from './h.js';",
      "const s = 'process.env and // not a comment';",
      "const t = `Buffer.alloc(${n}) ${'process.x'}`;",
      'const r = /\\/\\/ process.exit /g;',
      'const half = shape[axis]! / 2; const third = (n) / 3;',
      "const k = await import('./k.js');",
      'const l = await import(name);',
      "const ratio = a / b / c; import('node:os');",
      "export const q = 'y';",
    ].join('\n');
    const { imports, nonLiteralDynamic, code } = importsOf(src);
    expect(imports.map((i) => `${i.specifier}${i.typeOnly ? ' (type)' : ''}${i.dynamic ? ' (dynamic)' : ''}`)).toEqual([
      './a.js',
      './c.js (type)',
      './d.js (type)',
      './e.js',
      './side.js',
      './f.js',
      './g.js',
      './h.js (type)',
      './k.js (dynamic)',
      'node:os (dynamic)',
    ]);
    expect(nonLiteralDynamic).toBe(1);
    expect(nodeGlobalUses(code)).toEqual([]);
    expect(
      nodeGlobalUses(stripSource("const x = process.env.HOME; Buffer.from('a'); const y = require('fs');").code),
    ).toEqual(['Buffer at line 1', 'process at line 1', 'require() at line 1']);
    expect(nodeGlobalUses(stripSource('obj.process.x; myBuffer.from(1); const processed = 1;').code)).toEqual([]);
  });

  it('does find the Node built-ins of the Node-only entry (the check can fail)', () => {
    const w = walk(join(ROOT, 'src/node/index.ts'), fromSource, false);
    expect(w.problems.some((p) => /imports the Node built-in 'node:(fs|worker_threads)/.test(p))).toBe(true);
  });
});

describe('the browser-safe core entry', () => {
  it('reaches no Node built-in, bare specifier or Node global from src/index.ts', () => {
    const w = walk(SRC_ENTRY, fromSource, false);
    expect(w.reached.size).toBeGreaterThan(30);
    expect(w.problems).toEqual([]);
  });

  it('reaches no Node built-in, bare specifier or Node global from the built dist/src/index.js', () => {
    expect(existsSync(DIST_ENTRY), 'dist/src/index.js is missing: run `npm run build` (npm test builds first)').toBe(
      true,
    );
    const w = walk(DIST_ENTRY, fromBuilt, true);
    expect(w.reached.size).toBeGreaterThan(30);
    expect(w.problems).toEqual([]);
  });

  it('reaches no file under src/node/ or src/cli/ (not even through type-only imports)', () => {
    const src = walk(SRC_ENTRY, fromSource, true).reached;
    const nodeOnly = [...filesUnder(join(ROOT, 'src/node'), '.ts'), ...filesUnder(join(ROOT, 'src/cli'), '.ts')];
    expect(nodeOnly.length).toBeGreaterThan(0);
    expect(nodeOnly.filter((f) => src.has(f)).map(rel)).toEqual([]);
    const dist = walk(DIST_ENTRY, fromBuilt, true).reached;
    const builtNodeOnly = [
      ...filesUnder(join(ROOT, 'dist/src/node'), '.js'),
      ...filesUnder(join(ROOT, 'dist/src/cli'), '.js'),
    ];
    expect(builtNodeOnly.length).toBeGreaterThan(0);
    expect(builtNodeOnly.filter((f) => dist.has(f)).map(rel)).toEqual([]);
    // Every reached source file lies in src/, outside the Node-only folders and the testing entry (it imports fast-check).
    for (const f of src) expect(rel(f)).toMatch(/^src\/(?!node\/|cli\/|testing\/).+\.ts$/);
    for (const f of dist) expect(rel(f)).not.toMatch(/^dist\/src\/testing\//);
  });

  it('is the package\'s "." export, with the Node-only parts exported separately as "./node"', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      main?: string;
      exports: Record<string, string | { default?: string; types?: string; import?: string }>;
    };
    const target = (key: string): string | undefined => {
      const e = pkg.exports[key];
      return typeof e === 'string' ? e : (e?.default ?? e?.import);
    };
    expect(target('.')).toBe('./dist/src/index.js');
    expect(target('./node')).toBe('./dist/src/node/index.js');
    expect(target('./testing')).toBe('./dist/src/testing/index.js');
    expect(pkg.main).toBe('./dist/src/index.js');
    // No other export points into the Node-only code, and "." has no Node-only condition.
    for (const key of Object.keys(pkg.exports)) {
      if (key !== './node') expect(target(key) ?? '', key).not.toMatch(/\/(node|cli)\//);
    }
    const dot = pkg.exports['.'];
    expect(typeof dot === 'object' ? Object.keys(dot).sort() : []).toEqual(['default', 'types']);
  });
});

describe('the testing entry (negcache/testing)', () => {
  const FAST_CHECK = new Set(['fast-check']);

  it('reaches no Node built-in or Node global, and no bare specifier but its peer fast-check (sources and built files)', () => {
    const src = walk(SRC_TESTING, fromSource, false, FAST_CHECK);
    expect(src.reached.size).toBeGreaterThan(5);
    expect(src.problems).toEqual([]);
    expect(existsSync(DIST_TESTING), 'dist/src/testing/index.js is missing: run `npm run build`').toBe(true);
    const dist = walk(DIST_TESTING, fromBuilt, true, FAST_CHECK);
    expect(dist.problems).toEqual([]);
    // without the allowance the walker does see fast-check (the check can fail)
    expect(walk(SRC_TESTING, fromSource, false).problems.some((p) => p.includes("bare specifier 'fast-check'"))).toBe(
      true,
    );
  });

  it('reaches no file under src/node/ or src/cli/', () => {
    const reached = walk(SRC_TESTING, fromSource, true, FAST_CHECK).reached;
    for (const f of reached) expect(rel(f)).toMatch(/^src\/(?!node\/|cli\/).+\.ts$/);
  });

  it('fast-check is an optional peer dependency (and a devDependency), never a runtime dependency', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      dependencies?: Record<string, string>;
      devDependencies: Record<string, string>;
      peerDependencies?: Record<string, string>;
      peerDependenciesMeta?: Record<string, { optional?: boolean }>;
    };
    expect(pkg.dependencies ?? {}).toEqual({});
    expect(pkg.peerDependencies?.['fast-check']).toBeDefined();
    expect(pkg.peerDependenciesMeta?.['fast-check']?.optional).toBe(true);
    expect(pkg.devDependencies['fast-check']).toBeDefined();
  });
});
