import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { ArgumentError } from '../../src/errors.js';
import { decodeSafetensors, encodeSafetensors } from '../../src/io/safetensors.js';
import {
  FileIOError,
  loadSafetensors,
  loadSafetensorsSync,
  readFileStrict,
  readFileStrictSync,
  saveSafetensors,
  saveSafetensorsSync,
  writeFileAtomic,
  writeFileAtomicSync,
  removeStaleTempFilesSync,
  type AtomicWriteOptions,
  type AtomicWriteStep,
} from '../../src/node/atomicFile.js';
import { type Tensor, wrap } from '../../src/tensor/tensor.js';

const root = fs.mkdtempSync(join(tmpdir(), 'negcache-atomic-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

let dir = '';
let n = 0;
beforeEach(() => {
  dir = join(root, `case${n++}`);
  fs.mkdirSync(dir);
});

const bytes = (...v: number[]): Uint8Array => new Uint8Array(v);
const filled = (len: number, v: number): Uint8Array => new Uint8Array(len).fill(v);

function listing(): string[] {
  return fs.readdirSync(dir).sort();
}

async function caught(thunk: () => unknown): Promise<unknown> {
  try {
    await thunk();
  } catch (e) {
    return e;
  }
  return null;
}

type Writer = (path: string, data: Uint8Array, options?: AtomicWriteOptions) => void | Promise<void>;
type Reader = (path: string) => Uint8Array | Promise<Uint8Array>;
const variants: [string, Writer, Reader][] = [
  ['async', writeFileAtomic, readFileStrict],
  ['sync', writeFileAtomicSync, readFileStrictSync],
];

describe.each(variants)('writeFileAtomic / readFileStrict (%s)', (kind, write, read) => {
  const op = kind === 'async' ? 'writeFileAtomic' : 'writeFileAtomicSync';

  it('writes, reads back, overwrites, and leaves no temporary file', async () => {
    const p = join(dir, 'a.bin');
    await write(p, bytes(1, 2, 3));
    expect([...(await read(p))]).toEqual([1, 2, 3]);
    const big = new Uint8Array(1 << 18).map((_, i) => (i * 31) & 0xff);
    await write(p, big);
    expect(await read(p)).toEqual(big);
    await write(p, new Uint8Array(0));
    expect((await read(p)).length).toBe(0);
    expect(listing()).toEqual(['a.bin']);
  });

  it('returns a plain Uint8Array (not a Buffer) and accepts Buffer input', async () => {
    const p = join(dir, 'b.bin');
    await write(p, Buffer.from([9, 8, 7]));
    const got = await read(p);
    expect(Object.getPrototypeOf(got)).toBe(Uint8Array.prototype);
    expect([...got]).toEqual([9, 8, 7]);
  });

  it('accepts a relative path and a subarray view', async () => {
    const p = join(dir, 'rel.bin');
    const rel = relative(process.cwd(), p);
    expect(rel.startsWith('/')).toBe(false);
    const view = bytes(0, 1, 2, 3, 4).subarray(1, 4);
    await write(rel, view);
    expect([...(await read(p))]).toEqual([1, 2, 3]);
  });

  it('keeps the permission bits of the file it replaces', async () => {
    const p = join(dir, 'mode.bin');
    fs.writeFileSync(p, bytes(1));
    fs.chmodSync(p, 0o640);
    await write(p, bytes(2));
    expect(fs.statSync(p).mode & 0o777).toBe(0o640);
    expect([...(await read(p))]).toEqual([2]);
  });

  it('fails clearly when the directory does not exist, creating nothing', async () => {
    const p = join(dir, 'missing', 'x.bin');
    const e = await caught(() => write(p, bytes(1)));
    expect(e).toBeInstanceOf(FileIOError);
    const err = e as FileIOError;
    expect(err.op).toBe(op);
    expect(err.code).toBe('ENOENT');
    expect(err.path).toBe(p);
    expect(err.message).toContain(`could not write ${JSON.stringify(p)}: creating the temporary file`);
    expect(err.message).toContain('does the directory');
    expect(err.message).toContain('the target was not changed');
    expect(err.cause).toBeDefined();
    expect(listing()).toEqual([]);
  });

  it('refuses to replace a directory, leaving it intact', async () => {
    const p = join(dir, 'sub');
    fs.mkdirSync(p);
    fs.writeFileSync(join(p, 'keep'), 'k');
    const e = await caught(() => write(p, bytes(1)));
    expect(e).toBeInstanceOf(FileIOError);
    expect((e as Error).message).toMatch(/it is a directory; need a file path/);
    expect(fs.readFileSync(join(p, 'keep'), 'utf8')).toBe('k');
    expect(listing()).toEqual(['sub']);
  });

  it('rejects bad arguments with ArgumentError before touching the file', async () => {
    const p = join(dir, 'c.bin');
    fs.writeFileSync(p, bytes(5));
    for (const [path, data] of [
      ['', bytes(1)],
      [42, bytes(1)],
      ['a\0b', bytes(1)],
      [p, [1, 2]],
      [p, new ArrayBuffer(2)],
      [p, new Float32Array(2)],
    ] as [string, Uint8Array][]) {
      const e = await caught(() => write(path, data));
      expect(e).toBeInstanceOf(ArgumentError);
      expect((e as ArgumentError).op).toBe(op);
    }
    expect([...fs.readFileSync(p)]).toEqual([5]);
    expect(listing()).toEqual(['c.bin']);
  });

  const stepText: [AtomicWriteStep, string][] = [
    ['open', 'creating the temporary file'],
    ['write', 'writing the temporary file'],
    ['fsync', 'flushing \\(fsync\\) the temporary file'],
    ['close', 'closing the temporary file'],
    ['rename', 'renaming the temporary file over the target'],
  ];
  for (const [step, text] of stepText) {
    it(`a failure at step ${step} keeps the old content and removes the temp file`, async () => {
      const p = join(dir, 'old.bin');
      fs.writeFileSync(p, filled(100, 0xaa));
      const seen: AtomicWriteStep[] = [];
      const faults = (s: AtomicWriteStep): void => {
        seen.push(s);
        if (s === step) throw Object.assign(new Error(`injected EIO at ${s}`), { code: 'EIO' });
      };
      const e = await caught(() => write(p, filled(300, 0xbb), { faults }));
      expect(e).toBeInstanceOf(FileIOError);
      const err = e as FileIOError;
      expect(err.code).toBe('EIO');
      expect(err.message).toContain(`injected EIO at ${step}`);
      expect(err.message).toMatch(
        new RegExp(
          `could not write ".*old\\.bin": ${text} ".*\\.old\\.bin\\.${process.pid}\\.\\d+\\.tmp" failed: injected EIO`,
        ),
      );
      expect(seen[seen.length - 1]).toBe(step);
      expect(await read(p)).toEqual(filled(100, 0xaa));
      expect(listing()).toEqual(['old.bin']);
    });
  }

  it('tolerates a directory fsync that the file system does not support', async () => {
    const p = join(dir, 'd.bin');
    await write(p, bytes(1, 2), {
      faults: (s) => {
        if (s === 'fsync-dir') throw Object.assign(new Error('EINVAL'), { code: 'EINVAL' });
      },
    });
    expect([...(await read(p))]).toEqual([1, 2]);
  });

  it('reports any other directory fsync failure, with the new content in place', async () => {
    const p = join(dir, 'e.bin');
    fs.writeFileSync(p, bytes(0));
    const e = await caught(() =>
      write(p, bytes(7), {
        faults: (s) => {
          if (s === 'fsync-dir') throw Object.assign(new Error('disk on fire'), { code: 'EIO' });
        },
      }),
    );
    expect(e).toBeInstanceOf(FileIOError);
    expect((e as Error).message).toMatch(
      /but flushing \(fsync\) the directory .* failed: disk on fire; the new content is in place/,
    );
    expect([...(await read(p))]).toEqual([7]);
    expect(listing()).toEqual(['e.bin']);
  });

  it('the fault seam is an option of one call: bad options are refused, and other writes are unaffected', async () => {
    const p = join(dir, 'seam.bin');
    fs.writeFileSync(p, bytes(1));
    for (const options of [null, 5, [], { faults: 3 }, { fault: () => undefined }]) {
      const e = await caught(() => write(p, bytes(2), options as AtomicWriteOptions));
      expect(e, JSON.stringify(options)).toBeInstanceOf(ArgumentError);
      expect((e as ArgumentError).message).toMatch(
        new RegExp(`^${op}: (options must be|faults must be|unknown option)`),
      );
    }
    const failing = caught(() =>
      write(p, bytes(3), {
        faults: (s) => {
          if (s === 'rename') throw Object.assign(new Error('injected'), { code: 'EIO' });
        },
      }),
    );
    await write(join(dir, 'other.bin'), bytes(4)); // no seam: not affected by the other call's
    expect(await failing).toBeInstanceOf(FileIOError);
    expect([...(await read(p))]).toEqual([1]);
    expect([...(await read(join(dir, 'other.bin')))]).toEqual([4]);
    expect(listing()).toEqual(['other.bin', 'seam.bin']);
  });

  it('readFileStrict: missing files and directories are clear FileIOErrors', async () => {
    const rop = kind === 'async' ? 'readFileStrict' : 'readFileStrictSync';
    const missing = join(dir, 'nope.bin');
    const e1 = await caught(() => read(missing));
    expect(e1).toBeInstanceOf(FileIOError);
    expect((e1 as FileIOError).op).toBe(rop);
    expect((e1 as FileIOError).code).toBe('ENOENT');
    expect((e1 as Error).message).toContain(`could not read ${JSON.stringify(missing)}: opening it failed`);
    const e2 = await caught(() => read(dir));
    expect(e2).toBeInstanceOf(FileIOError);
    expect((e2 as Error).message).toMatch(/it is not a regular file|EISDIR/);
    const e3 = await caught(() => read('' as string));
    expect(e3).toBeInstanceOf(ArgumentError);
  });
});

describe('concurrent writers', () => {
  it('a reader only ever sees one complete version, never a mix or a prefix', async () => {
    const p = join(dir, 'race.bin');
    const A = filled(4096, 0xaa);
    const B = filled(65536 + 3, 0xbb);
    await writeFileAtomic(p, A);
    let writing = true;
    const writers = (async () => {
      for (let round = 0; round < 15; round++) {
        await Promise.all(Array.from({ length: 8 }, (_, i) => writeFileAtomic(p, i % 2 === 0 ? B : A)));
      }
      writing = false;
    })();
    let reads = 0;
    while (writing) {
      const got = fs.readFileSync(p);
      const ok =
        (got.length === A.length && got.every((b) => b === 0xaa)) ||
        (got.length === B.length && got.every((b) => b === 0xbb));
      expect(ok).toBe(true);
      reads++;
      await new Promise((r) => setImmediate(r));
    }
    await writers;
    expect(reads).toBeGreaterThan(0);
    expect(listing()).toEqual(['race.bin']);
  });
});

describe('saveSafetensors / loadSafetensors', () => {
  const tensors = (): Record<string, Tensor> => ({
    w: wrap(new Float32Array([1, -0, NaN, 3.5]), [2, 2], 'float32'),
    ids: wrap(new Int32Array([2 ** 24 + 1, -5]), [2], 'int32'),
    m: wrap(new Uint8Array([1, 0, 1]), [3], 'bool'),
  });

  it.each([
    ['async', saveSafetensors, loadSafetensors],
    ['sync', saveSafetensorsSync, loadSafetensorsSync],
  ] as const)('round-trips through a file (%s)', async (_kind, save, load) => {
    const p = join(dir, 'ckpt.safetensors');
    await save(p, tensors(), { step: '10' });
    const out = await load(p, { requireChecksum: true });
    expect(out.checksum).toBe('verified');
    expect(out.metadata).toEqual({ step: '10' });
    expect(out.tensors.ids!.toArray()).toEqual([2 ** 24 + 1, -5]);
    expect(out.tensors.m!.toArray()).toEqual([true, false, true]);
    const w = out.tensors.w!.dataSync();
    expect(Object.is(w[1], -0) && Number.isNaN(w[2])).toBe(true);
    expect(new Uint8Array(fs.readFileSync(p))).toEqual(encodeSafetensors(tensors(), { step: '10' }));
    expect(listing()).toEqual(['ckpt.safetensors']);
  });

  it('a corrupted checkpoint is an ArgumentError naming the file, caused by the decode error', async () => {
    const p = join(dir, 'bad.safetensors');
    await saveSafetensors(p, tensors());
    const raw = fs.readFileSync(p);
    raw[raw.length - 2]! ^= 0x10;
    fs.writeFileSync(p, raw);
    for (const load of [loadSafetensors, loadSafetensorsSync]) {
      const e = await caught(() => load(p));
      expect(e).toBeInstanceOf(ArgumentError);
      expect((e as ArgumentError).message).toContain(
        `${JSON.stringify(p)} is not a valid checkpoint: decodeSafetensors: checksum mismatch`,
      );
      expect((e as ArgumentError).cause).toBeInstanceOf(ArgumentError);
    }
    const truncated = join(dir, 'short.safetensors');
    fs.writeFileSync(truncated, raw.subarray(0, raw.length - 1));
    expect(await caught(() => loadSafetensors(truncated))).toBeInstanceOf(ArgumentError);
    expect(await caught(() => loadSafetensors(join(dir, 'absent.safetensors')))).toBeInstanceOf(FileIOError);
  });

  it('invalid tensors are rejected before the old checkpoint is touched', async () => {
    const p = join(dir, 'keep.safetensors');
    await saveSafetensors(p, tensors());
    const before = fs.readFileSync(p);
    const e = await caught(() => saveSafetensors(p, { w: [1, 2] as unknown as Tensor }));
    expect(e).toBeInstanceOf(ArgumentError);
    expect((e as ArgumentError).op).toBe('encodeSafetensors');
    expect(() => saveSafetensorsSync(p, tensors(), { k: 1 as unknown as string })).toThrow(ArgumentError);
    expect(fs.readFileSync(p)).toEqual(before);
    expect(decodeSafetensors(new Uint8Array(before)).checksum).toBe('verified');
    expect(listing()).toEqual(['keep.safetensors']);
  });
});

describe("removeStaleTempFilesSync: the temporary files of dead writers go, nobody else's", () => {
  /** A pid that certainly belonged to a process that has exited. */
  const deadPid = (): number => {
    const r = spawnSync(process.execPath, ['-e', ''], { stdio: 'ignore' });
    expect(r.status).toBe(0);
    return r.pid!;
  };

  it('removes those of a dead pid, keeps those of a live process, and never touches other files', async () => {
    const live = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    try {
      const dead = deadPid();
      expect(dead).not.toBe(live.pid);
      const put = (name: string, size = 3): string => {
        fs.writeFileSync(join(dir, name), new Uint8Array(size));
        return name;
      };
      const stale = [put(`.checkpoint.safetensors.${dead}.1.tmp`, 1 << 16), put(`.report.md.${dead}.7.tmp`)];
      const kept = [
        put(`.checkpoint.safetensors.${live.pid}.3.tmp`),
        put('checkpoint.safetensors'),
        put(`checkpoint.safetensors.${dead}.1.tmp`), // no leading dot: not ours
        put(`.checkpoint.safetensors.${dead}.x.tmp`),
        put(`.checkpoint.safetensors.${dead}.1.tmp.bak`),
      ];
      fs.mkdirSync(join(dir, `.dir.${dead}.2.tmp`)); // not a regular file
      kept.push(`.dir.${dead}.2.tmp`);
      const removed = removeStaleTempFilesSync(dir);
      expect(removed.map((x) => x.slice(dir.length + 1)).sort()).toEqual(stale.sort());
      expect(listing()).toEqual(kept.sort());
      expect(removeStaleTempFilesSync(dir)).toEqual([]);
    } finally {
      live.kill('SIGKILL');
    }
  });

  it('names limits it to the temporary files of those targets', () => {
    const dead = deadPid();
    fs.writeFileSync(join(dir, `.checkpoint.safetensors.${dead}.1.tmp`), 'x');
    fs.writeFileSync(join(dir, `.notes.txt.${dead}.1.tmp`), 'x');
    expect(removeStaleTempFilesSync(dir, ['checkpoint.safetensors']).map((x) => x.slice(dir.length + 1))).toEqual([
      `.checkpoint.safetensors.${dead}.1.tmp`,
    ]);
    expect(listing()).toEqual([`.notes.txt.${dead}.1.tmp`]);
  });

  it("this process's pid: a leftover of an earlier process with the same pid goes, a write in progress stays", async () => {
    const leftover = `.ckpt.bin.${process.pid}.999999999.tmp`;
    fs.writeFileSync(join(dir, leftover), 'old');
    const seenDuringWrite: string[][] = [];
    await writeFileAtomic(join(dir, 'ckpt.bin'), bytes(1, 2, 3), {
      faults: (s, temp) => {
        if (s !== 'rename') return;
        // The write's own temporary file exists now and is in flight: the cleanup must keep it.
        expect(fs.existsSync(temp)).toBe(true);
        seenDuringWrite.push(removeStaleTempFilesSync(dir).map((x) => x.slice(dir.length + 1)));
        expect(fs.existsSync(temp)).toBe(true);
      },
    });
    expect(seenDuringWrite).toEqual([[leftover]]);
    expect(listing()).toEqual(['ckpt.bin']);
    expect([...fs.readFileSync(join(dir, 'ckpt.bin'))]).toEqual([1, 2, 3]);
  });

  it('a missing folder has nothing to remove; bad arguments are ArgumentErrors', () => {
    expect(removeStaleTempFilesSync(join(dir, 'absent'))).toEqual([]);
    for (const [d, names] of [
      ['', undefined],
      [5, undefined],
      [dir, 'checkpoint.safetensors'],
      [dir, ['']],
    ] as [string, string[]][]) {
      expect(() => removeStaleTempFilesSync(d, names)).toThrow(ArgumentError);
    }
    fs.writeFileSync(join(dir, 'file'), 'x');
    expect(() => removeStaleTempFilesSync(join(dir, 'file'))).toThrow(FileIOError);
  });
});
