/**
 * Every code block of README.md runs as written.
 *
 * The README's fenced blocks are extracted and run, each in a scratch
 * folder where `negcache` resolves to this repository (node_modules/negcache
 * is a symlink to the root, so `import ... from 'negcache'` and
 * 'negcache/node' load the build through the package's exports;
 * node_modules/.bin/negcache runs the built CLI, so `npx negcache` works
 * offline) and `examples/` is a symlink to the repository's examples:
 *   ```ts    type-checked against the built declarations, transpiled, run with node;
 *   ```sh    run with bash -e (npm's offline mode on);
 *   ```html  its <script type="module"> runs in node (requestAnimationFrame
 *            shimmed with setTimeout);
 * each must exit 0 with nothing on stderr. Blocks in other languages, or
 * none (directory trees, sample output), are not code and are skipped.
 *
 * A block that cannot run here (long jobs, package installs) is marked on
 * the line before its fence, with a reason:
 *     <!-- not run: the demo trains for five minutes -->
 * Use it sparingly: every marked block is listed in the test output.
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, ensureBuilt } from '../util/build.js';

interface Block {
  lang: string;
  /** 1-based line of the opening fence. */
  line: number;
  code: string;
  /** The reason given by a `<!-- not run: ... -->` marker, or null. */
  notRun: string | null;
}

/** The fenced code blocks of a Markdown text. */
function codeBlocks(markdown: string): Block[] {
  const lines = markdown.split('\n');
  const out: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)\s*$/.exec(lines[i]!);
    if (!open) continue;
    let j = i + 1;
    while (j < lines.length && !/^```\s*$/.test(lines[j]!)) j++;
    let p = i - 1;
    while (p >= 0 && lines[p]!.trim() === '') p--;
    const marker = p >= 0 ? /^<!-- not run: (.+?) -->$/.exec(lines[p]!.trim()) : null;
    out.push({
      lang: open[1]!,
      line: i + 1,
      code: lines.slice(i + 1, j).join('\n'),
      notRun: marker ? marker[1]! : null,
    });
    i = j;
  }
  return out;
}

const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const blocks = codeBlocks(README);
const RUNNABLE = new Set(['ts', 'sh', 'html']);
const tmp = mkdtempSync(join(tmpdir(), 'negcache-readme-'));

beforeAll(() => {
  ensureBuilt('dist/src/index.js', 'dist/src/node/index.js', 'dist/src/cli/main.js');
  mkdirSync(join(tmp, 'node_modules/.bin'), { recursive: true });
  symlinkSync(ROOT, join(tmp, 'node_modules/negcache'), 'dir');
  symlinkSync(join(ROOT, 'examples'), join(tmp, 'examples'), 'dir');
  const bin = join(tmp, 'node_modules/.bin/negcache');
  writeFileSync(bin, `#!/bin/sh\nexec "${process.execPath}" "${join(ROOT, 'dist/src/cli/main.js')}" "$@"\n`);
  chmodSync(bin, 0o755);
}, 300_000);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Runs a command in the scratch folder (asynchronously: a block may take a minute, and the test worker must stay responsive). */
function run(cmd: string, args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: tmp,
      env: {
        ...process.env,
        PATH: `${join(tmp, 'node_modules/.bin')}:${process.env['PATH'] ?? ''}`,
        npm_config_offline: 'true',
        npm_config_update_notifier: 'false',
      },
    });
    let stdout = '',
      stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 300_000);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

/** Type errors of a TypeScript block against the built package's declarations (not strict: snippets may leave types implicit). */
function typeErrors(file: string): string[] {
  const program = ts.createProgram([file], {
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'],
    types: ['node'],
    typeRoots: [join(ROOT, 'node_modules/@types')],
    skipLibCheck: true,
    strict: false,
  });
  return ts
    .getPreEmitDiagnostics(program)
    .filter((d) => d.file?.fileName === file)
    .map((d) => {
      const { line } = d.file!.getLineAndCharacterOfPosition(d.start ?? 0);
      return `line ${line + 1}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
    });
}

describe('README.md: every code block runs as written', () => {
  it('has runnable blocks, and every skipped one says why', () => {
    expect(blocks.filter((b) => b.lang === 'ts' && b.notRun === null).length).toBeGreaterThanOrEqual(3);
    const skipped = blocks.filter((b) => b.notRun !== null);
    for (const b of skipped) expect(b.notRun!.length, `the marker before line ${b.line}`).toBeGreaterThan(10);
    console.log(
      `README blocks: ${blocks.length} (${blocks.filter((b) => RUNNABLE.has(b.lang) && b.notRun === null).length} run); not run: ${skipped.map((b) => `line ${b.line} (${b.notRun})`).join('; ') || 'none'}`,
    );
  });

  for (const [n, b] of blocks.entries()) {
    if (!RUNNABLE.has(b.lang) || b.notRun !== null) continue;
    it(`block ${n + 1}: \`\`\`${b.lang} at README.md line ${b.line}`, async () => {
      let r;
      if (b.lang === 'ts') {
        const file = join(tmp, `block-${n + 1}.mts`);
        writeFileSync(file, b.code + '\n');
        expect(typeErrors(file), 'type errors').toEqual([]);
        const js = ts.transpileModule(b.code, {
          compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
        }).outputText;
        writeFileSync(join(tmp, `block-${n + 1}.mjs`), js);
        r = await run(process.execPath, [`block-${n + 1}.mjs`]);
      } else if (b.lang === 'html') {
        const m = /<script type="module">([\s\S]*?)<\/script>/.exec(b.code);
        expect(m, 'an html block holds a <script type="module">').not.toBe(null);
        const shim = 'globalThis.requestAnimationFrame ??= (f) => setTimeout(() => f(performance.now()), 0);\n';
        writeFileSync(join(tmp, `block-${n + 1}.mjs`), shim + m![1]!);
        r = await run(process.execPath, [`block-${n + 1}.mjs`]);
      } else {
        r = await run('bash', ['-e', '-o', 'pipefail', '-c', b.code]);
      }
      expect(r.stderr, `stderr of the block at line ${b.line}`).toBe('');
      expect(r.status, `exit status of the block at line ${b.line}; stdout:\n${r.stdout.slice(-2000)}`).toBe(0);
    });
  }
});

describe('codeBlocks', () => {
  it('finds fences, languages, lines and markers', () => {
    const md = 'x\n```ts\na\nb\n```\n\n<!-- not run: needs a GPU cluster -->\n\n```sh\nc\n```\n```\ntree\n```\n';
    expect(codeBlocks(md)).toEqual([
      { lang: 'ts', line: 2, code: 'a\nb', notRun: null },
      { lang: 'sh', line: 9, code: 'c', notRun: 'needs a GPU cluster' },
      { lang: '', line: 12, code: 'tree', notRun: null },
    ]);
  });
});
