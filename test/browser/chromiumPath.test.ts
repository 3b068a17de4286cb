/**
 * The browser tests' Chromium lookup (test/browser/chromiumPath.ts): the
 * order NEGCACHE_CHROMIUM, /usr/bin/chromium, @sparticuz/chromium; the tar
 * reader against archives written by GNU tar (GNU and pax formats, long
 * names); concurrent first use inflating one complete copy; and the real
 * npm Chromium inflating to a binary that runs with no system libraries
 * beyond libc.
 */
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { chromiumEnv, extractChromium, findChromium, untar } from './chromiumPath.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const scratch = mkdtempSync(join(tmpdir(), 'negcache-chromium-test-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** A folder with the given files (path → contents), tarred by GNU tar in `format`. */
function tarOf(files: Record<string, string>, format: 'gnu' | 'posix'): Buffer {
  const src = mkdtempSync(join(scratch, 'src-'));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(src, path)), { recursive: true });
    writeFileSync(join(src, path), text);
  }
  chmodSync(join(src, Object.keys(files)[0]!), 0o755);
  return execFileSync('tar', [`--format=${format}`, '-cf', '-', '-C', src, ...Object.keys(files)], {
    maxBuffer: 1 << 26,
  });
}

const longName = `fonts/${'a'.repeat(90)}/${'b'.repeat(60)}.ttf`;
const FILES = { 'lib/libdemo.so.1': 'ELF?', 'lib/notes.chk': 'checksum', [longName]: 'glyphs' };

describe('untar', () => {
  for (const format of ['gnu', 'posix'] as const) {
    it(`reads ${format} archives from GNU tar: contents, folders, modes, a ${longName.length}-character name`, () => {
      const dest = mkdtempSync(join(scratch, `untar-${format}-`));
      untar(tarOf(FILES, format), dest);
      for (const [path, text] of Object.entries(FILES)) expect(readFileSync(join(dest, path), 'utf8')).toBe(text);
      expect(statSync(join(dest, 'lib/libdemo.so.1')).mode & 0o111).not.toBe(0);
      expect(statSync(join(dest, 'lib/notes.chk')).mode & 0o111).toBe(0);
      expect(readdirSync(join(dest, 'lib')).sort()).toEqual(['libdemo.so.1', 'notes.chk']);
    });
  }

  it('refuses entries outside the destination, links and truncated archives', () => {
    const header = (name: string, type: string, size: number): Buffer => {
      const h = Buffer.alloc(512);
      h.write(name, 0);
      h.write('0000644\0', 100);
      h.write(size.toString(8).padStart(11, '0') + '\0', 124);
      h.write(type, 156);
      h.write('ustar\u000000', 257, 'latin1');
      return h;
    };
    const dest = mkdtempSync(join(scratch, 'evil-'));
    const data = Buffer.alloc(512, 'x');
    expect(() => untar(Buffer.concat([header('../escape', '0', 1), data, Buffer.alloc(1024)]), dest)).toThrow(
      /outside/,
    );
    expect(existsSync(join(dest, '..', 'escape'))).toBe(false);
    expect(() => untar(Buffer.concat([header('link', '2', 0), Buffer.alloc(1024)]), dest)).toThrow(/type '2'/);
    expect(() => untar(header('big', '0', 4096), dest)).toThrow(/truncated/);
  });
});

/** A stand-in for the package's bin/ folder: the same three archives, small. */
function fakeBin(): string {
  const bin = mkdtempSync(join(scratch, 'bin-'));
  writeFileSync(join(bin, 'chromium.br'), brotliCompressSync(Buffer.from('#!/bin/sh\necho fake chromium\n')));
  writeFileSync(join(bin, 'al2023.tar.br'), brotliCompressSync(tarOf({ 'lib/libnss3.so': 'nss' }, 'gnu')));
  writeFileSync(
    join(bin, 'fonts.tar.br'),
    brotliCompressSync(tarOf({ 'fonts.conf': '<fontconfig/>', 'fonts/Open_Sans/x.ttf': 'ttf' }, 'gnu')),
  );
  return bin;
}

describe('extractChromium', () => {
  it('inflates one complete copy under concurrent first use, and reuses it', async () => {
    const bin = fakeBin();
    const cache = join(scratch, 'cache-concurrent');
    const dirs = await Promise.all([1, 2, 3, 4].map(() => extractChromium(bin, cache, '1.2.3')));
    const final = join(cache, '1.2.3');
    expect(dirs).toEqual([final, final, final, final]);
    // Only the finished folder remains: the losers' partial copies are gone.
    expect(readdirSync(cache)).toEqual(['1.2.3']);
    expect(readFileSync(join(final, 'chromium'), 'utf8')).toBe('#!/bin/sh\necho fake chromium\n');
    expect(statSync(join(final, 'chromium')).mode & 0o700).toBe(0o700);
    expect(readFileSync(join(final, 'lib/libnss3.so'), 'utf8')).toBe('nss');
    expect(readFileSync(join(final, 'fontconfig/fonts/Open_Sans/x.ttf'), 'utf8')).toBe('ttf');
    // The fonts.conf written names the final folder (not the partial one it was written in).
    const conf = readFileSync(join(final, 'fontconfig/fonts.conf'), 'utf8');
    expect(conf).toContain(`<dir>${join(final, 'fontconfig', 'fonts')}</dir>`);
    expect(conf).not.toContain('.partial-');
    // Reuse: a second call does not inflate again (the file keeps its identity).
    const ino = statSync(join(final, 'chromium')).ino;
    expect(await extractChromium(bin, cache, '1.2.3')).toBe(final);
    expect(statSync(join(final, 'chromium')).ino).toBe(ino);
  });

  it('removes partial copies of dead processes and keeps those of live ones', async () => {
    const bin = fakeBin();
    const cache = join(scratch, 'cache-stale');
    // A pid above the kernel's pid_max (4194304) is never running.
    mkdirSync(join(cache, '1.2.3.partial-4194305-abc'), { recursive: true });
    mkdirSync(join(cache, `1.2.3.partial-${process.ppid}-def`), { recursive: true });
    await extractChromium(bin, cache, '1.2.3');
    expect(readdirSync(cache).sort()).toEqual(['1.2.3', `1.2.3.partial-${process.ppid}-def`]);
  });
});

describe('findChromium', () => {
  const exe = join(scratch, 'some-chromium');
  writeFileSync(exe, '');

  it('takes NEGCACHE_CHROMIUM first, and fails when it names nothing', async () => {
    expect(await findChromium(ROOT, { override: exe, debianPath: exe })).toEqual({
      executablePath: exe,
      source: 'NEGCACHE_CHROMIUM',
      env: {},
    });
    await expect(findChromium(ROOT, { override: join(scratch, 'missing') })).rejects.toThrow(/does not exist/);
  });

  it("takes Debian's chromium next, then the npm package, and fails (not skips) without any", async () => {
    expect((await findChromium(ROOT, { override: undefined, debianPath: exe })).executablePath).toBe(exe);
    const bare = mkdtempSync(join(scratch, 'project-'));
    writeFileSync(join(bare, 'package.json'), '{"name":"bare","private":true}');
    await expect(findChromium(bare, { override: undefined, debianPath: join(scratch, 'no-chromium') })).rejects.toThrow(
      /@sparticuz\/chromium is not installed \(run `npm ci`\)/,
    );
  });

  it('inflates the npm Chromium into node_modules/.cache; it runs on its bundled NSS', async () => {
    const found = await findChromium(ROOT, { override: undefined, debianPath: join(scratch, 'no-chromium') });
    const dir = dirname(found.executablePath);
    expect(found.source).toMatch(/^@sparticuz\/chromium \d+\.\d+\.\d+ /);
    // node_modules/.cache when writable, else the per-user folder in the temporary directory.
    const caches = [join(ROOT, 'node_modules', '.cache', 'negcache-chromium'), join(tmpdir(), 'negcache-chromium-')];
    expect(
      caches.some((c) => dir.startsWith(c)),
      dir,
    ).toBe(true);
    expect(found.env).toEqual(chromiumEnv(dir));
    for (const lib of ['libnss3.so', 'libnspr4.so', 'libexpat.so.1'])
      expect(existsSync(join(dir, 'lib', lib)), lib).toBe(true);
    const version = execFileSync(found.executablePath, ['--version'], {
      env: { ...process.env, ...found.env },
      encoding: 'utf8',
    });
    expect(version).toMatch(/^Chromium \d+\.\d+\.\d+\.\d+/);
    // Every library it links against that is not part of libc/libgcc resolves inside the inflated folder.
    const ldd = execFileSync('ldd', [found.executablePath], {
      env: { ...process.env, ...found.env },
      encoding: 'utf8',
    });
    const outside = ldd
      .split('\n')
      .filter((l) => l.includes('=>') && !l.includes(join(dir, 'lib')))
      .map((l) => l.trim().split(' ')[0]!)
      .filter(
        (name) => !/^(libc|libm|libdl|libpthread|librt|libgcc_s)\.so/.test(name) && !name.startsWith('linux-vdso'),
      );
    expect(outside).toEqual([]);
  });
});
