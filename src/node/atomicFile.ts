/**
 * Crash-safe file writes and strict reads (Node only), and safetensors
 * checkpoint save/load on top of them.
 *
 * `writeFileAtomic(path, bytes)` replaces `path` so that, after any crash or
 * error, the file holds either its complete old content or its complete new
 * content, never a mix or a prefix:
 *   1. write the bytes to a fresh temporary file in the same directory
 *      (`.<name>.<pid>.<counter>.tmp`, created with O_EXCL so no two writers share one),
 *   2. fsync the temporary file and close it,
 *   3. rename it over the target (atomic within one file system, POSIX),
 *   4. fsync the directory, so the rename itself survives a power loss.
 * On an error in steps 1-3 the temporary file is removed, the target is left
 * untouched, and a `FileIOError` names the path, the failed step and the
 * system error. Directory fsync is best effort on file systems/platforms that
 * do not support it (EINVAL, ENOTSUP, EISDIR, EPERM, EACCES are ignored, e.g. on
 * Windows); any other failure there is reported, although the new content is
 * then already in place.
 *
 * Notes: an existing target keeps its permission bits (not its owner); a
 * symlink at the target is replaced by a regular file rather than followed;
 * a process killed between steps 1 and 3 can leave a `.tmp` file behind (never
 * a damaged target), which `removeStaleTempFilesSync` removes once its writer
 * is dead. Concurrent writers to the same path are safe (last rename wins) but
 * not ordered. Fault injection for tests is an option of each write
 * (`{faults}`), never a module-global setting.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as nodePath from 'node:path';
import { ArgumentError, NegcacheError, checkOptions, describe, optionRules } from '../errors.js';
import {
  decodeSafetensors,
  encodeSafetensors,
  type DecodedSafetensors,
  type DecodeSafetensorsOptions,
  type EncodeSafetensorsOptions,
} from '../io/safetensors.js';
import type { Tensor } from '../tensor/tensor.js';

/** A file-system operation failed. `code` is the system error code (ENOENT, EACCES, ...) when there is one. */
export class FileIOError extends NegcacheError {
  /** The file the operation was about. */
  readonly path: string;
  /** The errno code of the underlying error, e.g. 'ENOENT'. */
  readonly code: string | undefined;
  constructor(op: string, message: string, path: string, cause?: unknown) {
    super(op, message);
    this.path = path;
    this.code = errCode(cause);
    if (cause !== undefined) this.cause = cause;
  }
}

/** The steps of an atomic write, in order (named in error messages). */
export type AtomicWriteStep = 'stat' | 'open' | 'write' | 'fsync' | 'close' | 'rename' | 'fsync-dir';

const STEP_TEXT: Record<AtomicWriteStep, string> = {
  stat: 'checking the existing target',
  open: 'creating the temporary file',
  write: 'writing the temporary file',
  fsync: 'flushing (fsync) the temporary file',
  close: 'closing the temporary file',
  rename: 'renaming the temporary file over the target',
  'fsync-dir': 'flushing (fsync) the directory',
};

/**
 * Options of an atomic write. `faults` is the fault-injection seam for tests:
 * called before each step with the temporary file's path; if it throws, that
 * step fails with the thrown error (exactly as if the system call had).
 */
export interface AtomicWriteOptions {
  faults?: (step: AtomicWriteStep, tempPath: string) => void;
}

function checkWriteOptions(op: string, options: unknown): AtomicWriteOptions['faults'] {
  checkOptions(op, options, { faults: optionRules.function });
  return (options as AtomicWriteOptions | undefined)?.faults;
}

/**
 * The temporary files (basenames; the counter makes them unique in this
 * process) this process is writing right now. A temporary file
 * named with this process's pid but not in this set was left by an earlier
 * process that had the same pid (pids are reused), so it is stale.
 */
const inFlight = new Set<string>();

function errCode(e: unknown): string | undefined {
  const c = (e as { code?: unknown } | null | undefined)?.code;
  return typeof c === 'string' ? c : undefined;
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

let counter = 0;

function tempPathFor(target: string): string {
  counter = (counter + 1) % Number.MAX_SAFE_INTEGER;
  const base = nodePath.basename(target).slice(0, 180);
  return nodePath.join(nodePath.dirname(target), `.${base}.${process.pid}.${counter}.tmp`);
}

/** `.<name>.<pid>.<counter>.tmp`: the temporary files of writes to `<name>` (name as tempPathFor truncates it). */
const TEMP_NAME = /^\.(.+)\.(\d+)\.(\d+)\.tmp$/;

/** Whether process `pid` exists (EPERM: it exists but belongs to another user). */
function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errCode(e) !== 'ESRCH';
  }
}

/**
 * Removes the temporary files that killed writers left in `dir` (a process
 * killed between creating its temporary file and the rename leaves one behind;
 * for a checkpoint that is its full size). A temporary file
 * `.<name>.<pid>.<n>.tmp` is stale when process `pid` no longer exists, or
 * when it is this process's pid but not a write in progress here (an earlier
 * process had the pid). Files of other live processes are never touched, nor
 * anything that is not a regular file. `names` limits the cleanup to the
 * temporary files of those targets (basenames, e.g. ['checkpoint.safetensors']).
 * Returns the paths removed; a missing `dir` has nothing to remove.
 *
 * @throws ArgumentError for a bad dir or names; FileIOError if the directory
 *   cannot be listed or a stale file cannot be removed.
 */
export function removeStaleTempFilesSync(dir: string, names?: readonly string[]): string[] {
  const op = 'removeStaleTempFilesSync';
  checkPath(op, dir);
  if (names !== undefined && (!Array.isArray(names) || names.some((n) => typeof n !== 'string' || n.length === 0)))
    throw new ArgumentError(op, `names must be an array of non-empty file names, got ${describe(names)}`);
  const wanted = names && new Set(names.map((n) => n.slice(0, 180)));
  let entries: string[];
  try {
    entries = fs.readdirSync(dir);
  } catch (e) {
    if (errCode(e) === 'ENOENT') return [];
    throw new FileIOError(op, `could not list ${JSON.stringify(dir)}: ${errText(e)}`, dir, e);
  }
  const removed: string[] = [];
  for (const entry of entries) {
    const m = TEMP_NAME.exec(entry);
    if (!m || (wanted && !wanted.has(m[1]!))) continue;
    const pid = Number(m[2]);
    const path = nodePath.join(nodePath.resolve(dir), entry);
    if (pid === process.pid ? inFlight.has(entry) : pidAlive(pid)) continue;
    try {
      if (!fs.lstatSync(path).isFile()) continue;
      fs.unlinkSync(path);
      removed.push(path);
    } catch (e) {
      if (errCode(e) === 'ENOENT') continue; // another cleaner was first
      throw new FileIOError(
        op,
        `could not remove the stale temporary file ${JSON.stringify(path)}: ${errText(e)}`,
        path,
        e,
      );
    }
  }
  return removed;
}

function checkPath(op: string, path: unknown): asserts path is string {
  if (typeof path !== 'string' || path.length === 0 || path.includes('\0')) {
    throw new ArgumentError(op, `path must be a non-empty string without NUL characters, got ${describe(path)}`);
  }
}

function checkBytes(op: string, bytes: unknown): asserts bytes is Uint8Array {
  if (!(bytes instanceof Uint8Array)) {
    throw new ArgumentError(op, `bytes must be a Uint8Array, got ${describe(bytes)}`);
  }
}

const DIR_SYNC_UNSUPPORTED = new Set(['EINVAL', 'ENOTSUP', 'EISDIR', 'EPERM', 'EACCES', 'EBADF']);

function stepError(op: string, target: string, step: AtomicWriteStep, temp: string, e: unknown): FileIOError {
  const hint =
    step === 'open' && errCode(e) === 'ENOENT'
      ? ` (does the directory ${JSON.stringify(nodePath.dirname(target))} exist?)`
      : '';
  const tempText = step === 'stat' ? '' : ` ${JSON.stringify(temp)}`;
  return new FileIOError(
    op,
    `could not write ${JSON.stringify(target)}: ${STEP_TEXT[step]}${tempText} failed: ${errText(e)}${hint}; the target was not changed`,
    target,
    e,
  );
}

function dirSyncError(op: string, target: string, e: unknown): FileIOError {
  return new FileIOError(
    op,
    `wrote ${JSON.stringify(target)}, but ${STEP_TEXT['fsync-dir']} ${JSON.stringify(nodePath.dirname(target))} failed: ${errText(e)}; the new content is in place but may not survive a crash`,
    target,
    e,
  );
}

/** The permission bits to give the new file: those of an existing regular target, or null if there is none. */
function modeOf(op: string, target: string, st: fs.Stats | null): number | null {
  if (st === null) return null;
  if (st.isDirectory()) {
    throw new FileIOError(op, `could not write ${JSON.stringify(target)}: it is a directory; need a file path`, target);
  }
  if (!st.isFile()) {
    throw new FileIOError(
      op,
      `could not write ${JSON.stringify(target)}: it exists and is not a regular file; need a file path`,
      target,
    );
  }
  return st.mode & 0o7777;
}

/**
 * Atomically replaces (or creates) the file at `path` with `bytes`: after any
 * error or crash the file holds either the old or the new content, complete.
 * See the module comment for the protocol.
 *
 * @throws ArgumentError for a bad path or non-Uint8Array bytes (nothing touched);
 *   FileIOError when a file-system step fails (target unchanged, temp file removed).
 */
export async function writeFileAtomic(path: string, bytes: Uint8Array, options?: AtomicWriteOptions): Promise<void> {
  const op = 'writeFileAtomic';
  checkPath(op, path);
  checkBytes(op, bytes);
  const faultHook = checkWriteOptions(op, options);
  const target = nodePath.resolve(path);
  let step: AtomicWriteStep = 'stat';
  let temp = '';
  let created = false;
  let fh: fsp.FileHandle | null = null;
  try {
    faultHook?.(step, temp);
    const st = await fsp.stat(target).catch((e: unknown) => {
      if (errCode(e) === 'ENOENT') return null;
      throw e;
    });
    const mode = modeOf(op, target, st);
    step = 'open';
    for (let attempt = 0; ; attempt++) {
      temp = tempPathFor(target);
      inFlight.add(nodePath.basename(temp));
      try {
        faultHook?.(step, temp);
        fh = await fsp.open(temp, 'wx', mode ?? 0o666);
        created = true;
        break;
      } catch (e) {
        inFlight.delete(nodePath.basename(temp));
        if (errCode(e) === 'EEXIST' && attempt < 100) continue;
        throw e;
      }
    }
    step = 'write';
    faultHook?.(step, temp);
    if (mode !== null) await fh.chmod(mode);
    await fh.writeFile(bytes);
    step = 'fsync';
    faultHook?.(step, temp);
    await fh.sync();
    step = 'close';
    faultHook?.(step, temp);
    const handle = fh;
    fh = null;
    await handle.close();
    step = 'rename';
    faultHook?.(step, temp);
    await fsp.rename(temp, target);
    created = false;
  } catch (e) {
    if (e instanceof FileIOError) throw e;
    if (fh !== null) await fh.close().catch(() => undefined);
    if (created) await fsp.unlink(temp).catch(() => undefined);
    throw stepError(op, target, step, temp, e);
  } finally {
    inFlight.delete(nodePath.basename(temp));
  }
  try {
    faultHook?.('fsync-dir', temp);
    const dh = await fsp.open(nodePath.dirname(target), 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close().catch(() => undefined);
    }
  } catch (e) {
    if (!DIR_SYNC_UNSUPPORTED.has(errCode(e) ?? '')) throw dirSyncError(op, target, e);
  }
}

/** Synchronous `writeFileAtomic` (same protocol and errors). */
export function writeFileAtomicSync(path: string, bytes: Uint8Array, options?: AtomicWriteOptions): void {
  const op = 'writeFileAtomicSync';
  checkPath(op, path);
  checkBytes(op, bytes);
  const faultHook = checkWriteOptions(op, options);
  const target = nodePath.resolve(path);
  let step: AtomicWriteStep = 'stat';
  let temp = '';
  let created = false;
  let fd: number | null = null;
  try {
    faultHook?.(step, temp);
    let st: fs.Stats | null;
    try {
      st = fs.statSync(target);
    } catch (e) {
      if (errCode(e) !== 'ENOENT') throw e;
      st = null;
    }
    const mode = modeOf(op, target, st);
    step = 'open';
    for (let attempt = 0; ; attempt++) {
      temp = tempPathFor(target);
      inFlight.add(nodePath.basename(temp));
      try {
        faultHook?.(step, temp);
        fd = fs.openSync(temp, 'wx', mode ?? 0o666);
        created = true;
        break;
      } catch (e) {
        inFlight.delete(nodePath.basename(temp));
        if (errCode(e) === 'EEXIST' && attempt < 100) continue;
        throw e;
      }
    }
    step = 'write';
    faultHook?.(step, temp);
    if (mode !== null) fs.fchmodSync(fd, mode);
    for (let done = 0; done < bytes.length;) {
      done += fs.writeSync(fd, bytes, done, bytes.length - done);
    }
    step = 'fsync';
    faultHook?.(step, temp);
    fs.fsyncSync(fd);
    step = 'close';
    faultHook?.(step, temp);
    const handle = fd;
    fd = null;
    fs.closeSync(handle);
    step = 'rename';
    faultHook?.(step, temp);
    fs.renameSync(temp, target);
    created = false;
  } catch (e) {
    if (e instanceof FileIOError) throw e;
    if (fd !== null) {
      try {
        fs.closeSync(fd);
      } catch {
        // already failing; the original error is reported
      }
    }
    if (created) {
      try {
        fs.unlinkSync(temp);
      } catch {
        // best effort
      }
    }
    throw stepError(op, target, step, temp, e);
  } finally {
    inFlight.delete(nodePath.basename(temp));
  }
  try {
    faultHook?.('fsync-dir', temp);
    const dfd = fs.openSync(nodePath.dirname(target), 'r');
    try {
      fs.fsyncSync(dfd);
    } finally {
      fs.closeSync(dfd);
    }
  } catch (e) {
    if (!DIR_SYNC_UNSUPPORTED.has(errCode(e) ?? '')) throw dirSyncError(op, target, e);
  }
}

function readError(op: string, path: string, what: string, e?: unknown): FileIOError {
  return new FileIOError(
    op,
    `could not read ${JSON.stringify(path)}: ${what}${e !== undefined ? `: ${errText(e)}` : ''}`,
    path,
    e,
  );
}

function allocateFor(op: string, path: string, size: number): Uint8Array {
  try {
    return new Uint8Array(size);
  } catch (e) {
    throw readError(op, path, `the file is ${size} bytes, more than fits in one buffer`, e);
  }
}

/**
 * Reads a whole regular file into a fresh Uint8Array (not a Buffer), checking
 * that exactly as many bytes were read as the file had when opened: a file
 * that shrinks or grows during the read is an error, not a silent short read.
 *
 * @throws ArgumentError for a bad path; FileIOError if the file is missing, is
 *   not a regular file, or changes or fails while being read.
 */
export async function readFileStrict(path: string): Promise<Uint8Array> {
  const op = 'readFileStrict';
  checkPath(op, path);
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(path, 'r');
  } catch (e) {
    throw readError(op, path, 'opening it failed', e);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw readError(op, path, 'it is not a regular file');
    const size = st.size;
    const out = allocateFor(op, path, size);
    let got = 0;
    while (got < size) {
      const { bytesRead } = await fh.read(out, got, size - got, got);
      if (bytesRead === 0) throw readError(op, path, `the file shrank while being read (${got} of ${size} bytes)`);
      got += bytesRead;
    }
    const extra = await fh.read(new Uint8Array(1), 0, 1, size);
    if (extra.bytesRead > 0) throw readError(op, path, `the file grew while being read (beyond ${size} bytes)`);
    return out;
  } catch (e) {
    if (e instanceof FileIOError) throw e;
    throw readError(op, path, 'reading failed', e);
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/** Synchronous `readFileStrict`. */
export function readFileStrictSync(path: string): Uint8Array {
  const op = 'readFileStrictSync';
  checkPath(op, path);
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (e) {
    throw readError(op, path, 'opening it failed', e);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw readError(op, path, 'it is not a regular file');
    const size = st.size;
    const out = allocateFor(op, path, size);
    let got = 0;
    while (got < size) {
      const n = fs.readSync(fd, out, got, size - got, got);
      if (n === 0) throw readError(op, path, `the file shrank while being read (${got} of ${size} bytes)`);
      got += n;
    }
    if (fs.readSync(fd, new Uint8Array(1), 0, 1, size) > 0) {
      throw readError(op, path, `the file grew while being read (beyond ${size} bytes)`);
    }
    return out;
  } catch (e) {
    if (e instanceof FileIOError) throw e;
    throw readError(op, path, 'reading failed', e);
  } finally {
    try {
      fs.closeSync(fd);
    } catch {
      // nothing useful to do
    }
  }
}

function rethrowDecode(op: string, path: string, e: unknown): never {
  if (e instanceof ArgumentError) {
    const wrapped = new ArgumentError(op, `${JSON.stringify(path)} is not a valid checkpoint: ${e.message}`);
    wrapped.cause = e;
    throw wrapped;
  }
  throw e;
}

/** Options of saveSafetensors: the encoder's (checksum) and the atomic writer's (faults). */
export type SaveSafetensorsOptions = EncodeSafetensorsOptions & AtomicWriteOptions;

function splitSaveOptions(
  op: string,
  options: unknown,
): { encode: EncodeSafetensorsOptions | undefined; write: AtomicWriteOptions | undefined } {
  if (options === undefined) return { encode: undefined, write: undefined };
  if (options === null || typeof options !== 'object' || Array.isArray(options))
    throw new ArgumentError(op, `options must be an object {checksum?, faults?}, got ${describe(options)}`);
  const { faults, ...encode } = options as SaveSafetensorsOptions;
  return { encode, write: faults === undefined ? undefined : { faults } };
}

/**
 * Encodes `tensors` (+ string metadata) as safetensors (with the negcache.crc32
 * checksum unless `options.checksum` is false) and writes it atomically
 * (`options.faults`: see AtomicWriteOptions).
 * Tensors and metadata are validated before the file system is touched.
 */
export async function saveSafetensors(
  path: string,
  tensors: Record<string, Tensor>,
  metadata?: Record<string, string>,
  options?: SaveSafetensorsOptions,
): Promise<void> {
  checkPath('saveSafetensors', path);
  const { encode, write } = splitSaveOptions('saveSafetensors', options);
  await writeFileAtomic(path, encodeSafetensors(tensors, metadata, encode), write);
}

/** Synchronous `saveSafetensors`. */
export function saveSafetensorsSync(
  path: string,
  tensors: Record<string, Tensor>,
  metadata?: Record<string, string>,
  options?: SaveSafetensorsOptions,
): void {
  checkPath('saveSafetensorsSync', path);
  const { encode, write } = splitSaveOptions('saveSafetensorsSync', options);
  writeFileAtomicSync(path, encodeSafetensors(tensors, metadata, encode), write);
}

/**
 * Reads and strictly decodes a safetensors file (verifying negcache.crc32 when
 * present). A malformed or corrupted file throws an ArgumentError (op
 * `loadSafetensors`) naming the path, whose `cause` is the decodeSafetensors error.
 */
export async function loadSafetensors(path: string, options?: DecodeSafetensorsOptions): Promise<DecodedSafetensors> {
  checkPath('loadSafetensors', path);
  const bytes = await readFileStrict(path);
  try {
    return decodeSafetensors(bytes, options);
  } catch (e) {
    return rethrowDecode('loadSafetensors', path, e);
  }
}

/** Synchronous `loadSafetensors`. */
export function loadSafetensorsSync(path: string, options?: DecodeSafetensorsOptions): DecodedSafetensors {
  checkPath('loadSafetensorsSync', path);
  const bytes = readFileStrictSync(path);
  try {
    return decodeSafetensors(bytes, options);
  } catch (e) {
    return rethrowDecode('loadSafetensorsSync', path, e);
  }
}
