/**
 * Which Chromium the browser tests drive, first match wins:
 *  1. NEGCACHE_CHROMIUM, a path to a Chromium or Chrome executable, when set
 *     (a set path that does not exist is an error, not a fall-through);
 *  2. Debian's /usr/bin/chromium, when present;
 *  3. the Chromium inside the npm package @sparticuz/chromium, a
 *     devDependency, so a plain `npm ci` brings it: no root, no system
 *     packages, no download at test time (never `npx playwright install`).
 *
 * The package ships brotli-compressed files (bin/chromium.br, the headless
 * shell; bin/al2023.tar.br, the NSS and expat libraries it links against;
 * bin/fonts.tar.br, Open Sans and a fontconfig file). Its own
 * `executablePath()` inflates them into os.tmpdir() under fixed names, shared
 * by every user and every version and visible half-written to a concurrent
 * caller, so it is not used; `extractChromium` below inflates them instead
 * into a folder per package version, node_modules/.cache/negcache-chromium/
 * <version>/ (writable by whoever ran `npm ci`; `npm ci` starts it afresh;
 * os.tmpdir()/negcache-chromium-<uid>/ when node_modules is read-only):
 *
 *   chromium             the executable (197 MB for 147.0.0, 2 to 5 s to inflate, once)
 *   lib/                 libnss3, libnspr4, libexpat, ... (LD_LIBRARY_PATH)
 *   fontconfig/fonts/    Open Sans; fontconfig/fonts.conf names only this folder (FONTCONFIG_FILE)
 *
 * Concurrent first use (two test workers, two checkouts sharing a cache) is
 * safe without a lock: each caller inflates into its own
 * `<version>.partial-<pid>-<random>` folder and renames it to `<version>`;
 * rename(2) of a folder onto a non-empty one fails, so the first complete
 * copy wins, later ones delete theirs and use it, and `<version>` only ever
 * exists complete. Partial folders left by a killed process (its pid no
 * longer running) are removed on the next call. The swiftshader archive
 * (software WebGL) is not inflated: the tests run with --disable-gpu and
 * draw on a 2D canvas.
 */
import { randomBytes } from 'node:crypto';
import {
  accessSync,
  constants,
  createReadStream,
  createWriteStream,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { rename, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { brotliDecompressSync, createBrotliDecompress } from 'node:zlib';

export interface ChromiumChoice {
  executablePath: string;
  /** Where it came from, for the test log. */
  source: string;
  /** Extra environment for the browser process (the bundled libraries and fonts), or none. */
  env: Record<string, string>;
}

export const DEBIAN_CHROMIUM = '/usr/bin/chromium';
export const NPM_CHROMIUM = '@sparticuz/chromium';

/**
 * The Chromium to launch, in the order above. `root` is the project folder
 * (where @sparticuz/chromium resolves from and node_modules/.cache lives).
 * Throws with what to do when none is available: the browser tests fail,
 * they do not skip.
 */
export async function findChromium(
  root: string,
  opts: { override?: string | undefined; debianPath?: string } = {},
): Promise<ChromiumChoice> {
  const override = 'override' in opts ? opts.override : process.env['NEGCACHE_CHROMIUM'];
  if (override !== undefined && override !== '') {
    if (!existsSync(override))
      throw new Error(`NEGCACHE_CHROMIUM is ${override}, which does not exist; unset it to use the default Chromium`);
    return { executablePath: override, source: 'NEGCACHE_CHROMIUM', env: {} };
  }
  const debian = opts.debianPath ?? DEBIAN_CHROMIUM;
  if (existsSync(debian)) return { executablePath: debian, source: debian, env: {} };
  let pkgDir: string;
  try {
    pkgDir = packageDir(createRequire(join(root, 'package.json')).resolve(NPM_CHROMIUM), NPM_CHROMIUM);
  } catch {
    throw new Error(
      `no Chromium for the browser tests: NEGCACHE_CHROMIUM is unset, ${debian} does not exist and the devDependency ${NPM_CHROMIUM} is not installed (run \`npm ci\`). Do not use \`npx playwright install\`.`,
    );
  }
  const version = readManifest(pkgDir).version!;
  const dir = await extractChromium(join(pkgDir, 'bin'), cacheRoot(root, version), version);
  return {
    executablePath: join(dir, 'chromium'),
    source: `${NPM_CHROMIUM} ${version} (inflated in ${dir})`,
    env: chromiumEnv(dir),
  };
}

function readManifest(dir: string): { name?: string; version?: string } {
  return JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
}

/** The folder of package `name` holding `entry` (the entry's depth differs between versions): its archives sit in bin/. */
function packageDir(entry: string, name: string): string {
  for (let dir = dirname(entry); dir !== dirname(dir); dir = dirname(dir))
    if (existsSync(join(dir, 'package.json')) && readManifest(dir).name === name) return dir;
  throw new Error(`no package.json of ${name} above ${entry}`);
}

/**
 * node_modules/.cache/negcache-chromium when writable (or when it already
 * holds this version), else a folder of this user's own in os.tmpdir().
 */
function cacheRoot(root: string, version: string): string {
  const preferred = join(root, 'node_modules', '.cache', 'negcache-chromium');
  try {
    if (existsSync(join(preferred, version, 'chromium'))) return preferred;
    mkdirSync(preferred, { recursive: true });
    accessSync(preferred, constants.W_OK);
    return preferred;
  } catch {
    const uid = process.getuid?.();
    const fallback = join(tmpdir(), `negcache-chromium-${uid ?? 'user'}`);
    mkdirSync(fallback, { recursive: true, mode: 0o700 });
    if (uid !== undefined && statSync(fallback).uid !== uid)
      throw new Error(`${fallback} belongs to another user; set NEGCACHE_CHROMIUM or make node_modules writable`);
    return fallback;
  }
}

/** The browser's environment: the inflated libraries first on the search path, only the bundled fonts. */
export function chromiumEnv(dir: string): Record<string, string> {
  const ld = process.env['LD_LIBRARY_PATH'];
  return {
    LD_LIBRARY_PATH: ld ? `${join(dir, 'lib')}:${ld}` : join(dir, 'lib'),
    FONTCONFIG_FILE: join(dir, 'fontconfig', 'fonts.conf'),
    FONTCONFIG_PATH: join(dir, 'fontconfig'),
  };
}

/**
 * Inflates the package's archives in `binDir` into `<cache>/<version>/` and
 * returns that folder; returns at once when it already exists. Safe under
 * concurrent calls (see the file comment).
 */
export async function extractChromium(binDir: string, cache: string, version: string): Promise<string> {
  const final = join(cache, version);
  if (existsSync(join(final, 'chromium'))) return final;
  mkdirSync(cache, { recursive: true });
  await removeAbandoned(cache, version);
  const work = join(cache, `${version}.partial-${process.pid}-${randomBytes(6).toString('hex')}`);
  mkdirSync(work);
  try {
    await pipeline(
      createReadStream(join(binDir, 'chromium.br')),
      createBrotliDecompress(),
      createWriteStream(join(work, 'chromium'), { mode: 0o755 }),
    );
    untar(brotliDecompressSync(readFileSync(join(binDir, 'al2023.tar.br'))), work);
    untar(brotliDecompressSync(readFileSync(join(binDir, 'fonts.tar.br'))), join(work, 'fontconfig'));
    // The package's fonts.conf names Lambda's folders; this one names the fonts inflated here, and only them.
    await writeFile(
      join(work, 'fontconfig', 'fonts.conf'),
      `<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n<fontconfig>\n  <dir>${xmlText(join(final, 'fontconfig', 'fonts'))}</dir>\n  <cachedir>${xmlText(join(final, 'fontconfig', 'cache'))}</cachedir>\n</fontconfig>\n`,
    );
    await rename(work, final);
  } catch (e) {
    await rm(work, { recursive: true, force: true });
    // Another caller renamed its complete copy first (ENOTEMPTY/EEXIST): use that one.
    if (existsSync(join(final, 'chromium'))) return final;
    throw e;
  }
  return final;
}

/** Removes `<version>.partial-<pid>-*` folders whose process is gone (a killed earlier run). */
async function removeAbandoned(cache: string, version: string): Promise<void> {
  const prefix = `${version}.partial-`;
  for (const name of readdirSync(cache)) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(name.slice(prefix.length).split('-')[0]);
    if (!Number.isInteger(pid) || pid === process.pid || isRunning(pid)) continue;
    await rm(join(cache, name), { recursive: true, force: true });
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function xmlText(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * Writes the regular files and folders of a tar archive under `dest`:
 * 512-byte header blocks, the name at offset 0 (with the prefix at 345 in
 * POSIX ustar, magic "ustar\0"), octal mode at 100 and size at 124, the type
 * flag at 156, the data padded to 512 bytes. A long name comes from a
 * preceding GNU 'L' entry or a pax 'x' record "path=..."; pax global
 * headers ('g') are skipped. Other entry types (links, devices) are refused
 * rather than silently dropped, and no entry may resolve outside `dest`.
 */
export function untar(archive: Uint8Array, dest: string): void {
  const buf = Buffer.from(archive.buffer, archive.byteOffset, archive.byteLength);
  const base = resolve(dest);
  mkdirSync(base, { recursive: true });
  const text = (h: Buffer, at: number, len: number): string =>
    h
      .subarray(at, at + len)
      .toString('utf8')
      .replace(/\0.*$/s, '');
  let longName: string | null = null;
  let off = 0;
  while (off + 512 <= buf.length) {
    const h = buf.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break;
    const posix = h.toString('latin1', 257, 263) === 'ustar\0';
    const prefix = posix ? text(h, 345, 155) : '';
    const name = longName ?? (prefix !== '' ? `${prefix}/${text(h, 0, 100)}` : text(h, 0, 100));
    const size = parseInt(text(h, 124, 12).trim() || '0', 8);
    const mode = parseInt(text(h, 100, 8).trim() || '644', 8) & 0o777;
    const type = String.fromCharCode(h[156]!);
    if (!Number.isFinite(size) || off + 512 + size > buf.length) throw new Error(`untar: ${name}: truncated archive`);
    const data = buf.subarray(off + 512, off + 512 + size);
    off += 512 + Math.ceil(size / 512) * 512;
    if (type === 'L') {
      longName = data.toString('utf8').replace(/\0.*$/s, '');
      continue;
    }
    if (type === 'x') {
      longName = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(data.toString('utf8'))?.[1] ?? null;
      continue;
    }
    longName = null;
    if (type === 'g') continue;
    const path = resolve(base, name);
    if (path !== base && !path.startsWith(base + sep)) throw new Error(`untar: ${name} lies outside ${dest}`);
    if (type === '5') mkdirSync(path, { recursive: true });
    else if (type === '0' || type === '\0') {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, data, { mode });
    } else throw new Error(`untar: ${name}: entry type '${type}' is not supported`);
  }
}
