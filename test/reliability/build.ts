/**
 * Child processes run the build (dist/), which must match the sources the
 * in-process reference runs. Rebuilds when any source is newer than its
 * output (tsc still emits when an unrelated file has type errors; the
 * existence check afterwards decides).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function staleFiles(): string[] {
  const out: string[] = [];
  for (const f of readdirSync(join(ROOT, 'src'), { recursive: true }) as string[]) {
    if (!f.endsWith('.ts') || f.endsWith('.d.ts')) continue;
    const src = join(ROOT, 'src', f);
    const built = join(ROOT, 'dist/src', f.replace(/\.ts$/, '.js'));
    if (!existsSync(built) || statSync(built).mtimeMs < statSync(src).mtimeMs) out.push(f);
  }
  return out;
}

export function ensureBuilt(needed: readonly string[]): void {
  if (staleFiles().length > 0) {
    try {
      execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'pipe' });
    } catch {
      // see the module comment
    }
  }
  for (const f of needed) if (!existsSync(join(ROOT, f))) throw new Error(`the build did not produce ${f}`);
  // Someone may edit a source while this runs; the bitwise comparisons catch any divergence that matters.
  const still = staleFiles();
  if (still.length > 0) console.warn(`[reliability] dist/ is older than src/ for ${still.slice(0, 5).join(', ')} (edited during the build?)`);
}
