/**
 * Tests that run the build (worker threads, child processes, the CLI) need
 * dist/ to match src/. `npm test` builds first; when a test file runs on its
 * own, `ensureBuilt` rebuilds if any source is newer than its output. Test
 * files run in parallel processes, so the build holds a lock directory
 * (mkdir is atomic): one process builds, the others wait and re-check.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Sources under src/ whose compiled output is missing or older. */
export function staleFiles(): string[] {
  const out: string[] = [];
  for (const f of readdirSync(join(ROOT, 'src'), { recursive: true }) as string[]) {
    if (!f.endsWith('.ts') || f.endsWith('.d.ts')) continue;
    const built = join(ROOT, 'dist/src', f.replace(/\.ts$/, '.js'));
    if (!existsSync(built) || statSync(built).mtimeMs < statSync(join(ROOT, 'src', f)).mtimeMs) out.push(f);
  }
  return out;
}

/** Rebuilds dist/ if stale, then checks that every `needed` file (relative to the root) exists. */
export function ensureBuilt(...needed: string[]): void {
  mkdirSync(join(ROOT, 'dist'), { recursive: true });
  const lock = join(ROOT, 'dist/.negcache-build-lock');
  const sleep = new Int32Array(new SharedArrayBuffer(4));
  const deadline = Date.now() + 120_000;
  while (staleFiles().length > 0) {
    try {
      mkdirSync(lock);
    } catch {
      if (Date.now() > deadline)
        rmSync(lock, { recursive: true, force: true }); // a lock left by a crashed run
      else Atomics.wait(sleep, 0, 0, 200);
      continue;
    }
    try {
      execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'pipe' });
    } catch {
      // tsc still emits when some unrelated file has type errors; the existence check below decides.
    } finally {
      rmSync(lock, { recursive: true, force: true });
    }
    break;
  }
  for (const f of needed) if (!existsSync(join(ROOT, f))) throw new Error(`the build did not produce ${f}`);
}
