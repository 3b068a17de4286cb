/**
 * Where the compiled worker modules of negcache/node are, one rule for every
 * worker (the parallel scan, the training pool, the parallel search, the
 * replica group).
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ArgumentError } from '../errors.js';

/**
 * The compiled module `file` beside the module at `here` (its import.meta.url).
 * Running from source (a .ts module, e.g. under vitest), the sibling would be
 * a .ts file a worker cannot run, so it is the build's copy under dist/src/node.
 */
export function builtSibling(here: string, file: string): URL {
  return here.endsWith('.ts') ? new URL(`../../dist/src/node/${file}`, here) : new URL(`./${file}`, here);
}

/**
 * A `workerEntry` option as a URL: undefined gives `fallback()`; a URL or a
 * `file:` string is taken as it is; any other string is a path (resolved
 * against the working directory). A file that does not exist is an
 * ArgumentError of `op` naming `what` and the build command.
 */
export function resolveWorkerEntry(
  op: string,
  what: string,
  entry: string | URL | undefined,
  fallback: () => URL,
): URL {
  const url =
    entry === undefined
      ? fallback()
      : entry instanceof URL
        ? entry
        : /^file:/.test(entry)
          ? new URL(entry)
          : pathToFileURL(resolve(entry));
  if (url.protocol === 'file:' && !existsSync(fileURLToPath(url)))
    throw new ArgumentError(
      op,
      `the compiled ${what} ${fileURLToPath(url)} does not exist; build first (npx tsc -p tsconfig.build.json)`,
    );
  return url;
}
