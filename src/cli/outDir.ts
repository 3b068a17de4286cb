/**
 * The output folder of a command (`--out`): checked before any work starts,
 * so a run never trains for an hour and then dies because it cannot write
 * its results; and, if writing still fails at the end (the disk filled up,
 * the folder was removed), the results go to a fallback folder rather than
 * being lost.
 *
 * Checks, in order, each failure a one-line UsageError naming the flag:
 *   - not under a pseudo-file system (/proc, /sys, /dev, or any folder whose
 *     file system is procfs, sysfs, cgroup, debugfs, ...): there, creating
 *     folders fails in odd ways (Node's recursive mkdir spins forever under
 *     /proc) and nothing written is kept;
 *   - every existing component of the path is a folder (not a file, not a
 *     device such as /dev/null);
 *   - the missing folders can be created, one component at a time (a bounded
 *     loop, never a recursive mkdir);
 *   - a probe file can be created and removed in it;
 *   - every file the command will replace that already exists is a regular
 *     file that this process may write.
 */
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as nodePath from 'node:path';
import { writeFileAtomicSync, type AtomicWriteOptions } from '../node/atomicFile.js';
import { UsageError } from './args.js';

/** The results could not be written anywhere (exit status 1, not 2: the flags were fine). */
export class OutputError extends Error {}

/** Folders whose file systems hold no ordinary files. */
const PSEUDO_ROOTS = ['/proc', '/sys', '/dev'];

/**
 * statfs magic numbers of Linux pseudo-file systems (linux/magic.h): proc, sysfs,
 * debugfs, securityfs, cgroup, cgroup2, devpts, tracefs, pstore, bpf, configfs,
 * efivarfs, fusectl, binfmt_misc, mqueue, nsfs, hugetlbfs.
 */
const PSEUDO_FS = new Set([
  0x9fa0, 0x62656572, 0x64626720, 0x73636673, 0x27e0eb, 0x63677270, 0x1cd1, 0x74726163, 0x6165676c, 0xcafe4a11,
  0x62656570, 0xde5e81e4, 0x65735543, 0x42494e4d, 0x19800202, 0x6e736673, 0x958458f6,
]);

function errCode(e: unknown): string {
  const c = (e as { code?: unknown } | null)?.code;
  return typeof c === 'string' ? c : 'error';
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function under(path: string, root: string): boolean {
  return path === root || path.startsWith(root + nodePath.sep);
}

function kindOf(st: fs.Stats): string {
  if (st.isFile()) return 'a file';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isFIFO()) return 'a named pipe';
  if (st.isSocket()) return 'a socket';
  return 'not a folder';
}

function statOrNull(path: string): fs.Stats | null {
  try {
    return fs.statSync(path);
  } catch (e) {
    if (errCode(e) === 'ENOENT') return null;
    throw e;
  }
}

/**
 * Checks (and creates) the output folder `out` given with `--<flag>`, and
 * checks that every file already in it that the command will replace
 * (`replaces(name)` true) can be replaced. Returns the absolute path.
 * Throws a UsageError with a one-line reason.
 */
export function prepareOutDir(out: string, replaces: (name: string) => boolean, flag = 'out'): string {
  const say = (what: string): UsageError => new UsageError(`--${flag} ${out} ${what}`);
  if (out.length === 0) throw new UsageError(`--${flag} needs a non-empty folder path`);
  if (out.includes('\0')) throw say('contains a NUL character');
  const dir = nodePath.resolve(out);
  // The nearest existing ancestor (or the folder itself), and the components to create below it.
  const missing: string[] = [];
  let existing = dir;
  let st: fs.Stats | null;
  for (;;) {
    try {
      st = statOrNull(existing);
    } catch (e) {
      if (errCode(e) === 'ENOTDIR') {
        // Some ancestor is a file: find it for the message.
        let p = nodePath.dirname(existing);
        while (p !== nodePath.dirname(p) && !(statOrNull(p)?.isFile() ?? false)) p = nodePath.dirname(p);
        throw say(`is under ${p}, which is a file, not a folder`);
      }
      throw say(`cannot be checked: ${errText(e)}`);
    }
    if (st !== null) break;
    missing.unshift(nodePath.basename(existing));
    const up = nodePath.dirname(existing);
    if (up === existing) throw say('has no existing ancestor folder'); // unreachable: "/" exists
    existing = up;
  }
  let real = existing;
  try {
    real = fs.realpathSync(existing);
  } catch {
    // keep the resolved path
  }
  for (const root of PSEUDO_ROOTS)
    if (under(dir, root) || under(real, root))
      throw say(`is under ${root}, a pseudo-file system, not a place for files; need a folder on a real disk`);
  let fsType: number | null = null;
  try {
    fsType = Number(fs.statfsSync(real).type);
  } catch {
    // statfs is not available everywhere (it is on Linux and macOS); the path checks above remain
  }
  if (fsType !== null && PSEUDO_FS.has(fsType))
    throw say(
      `is on a pseudo-file system (type 0x${fsType.toString(16)}), not a place for files; need a folder on a real disk`,
    );
  if (!st.isDirectory())
    throw missing.length === 0
      ? say(`is ${kindOf(st)}, not a folder`)
      : say(`is under ${existing}, which is ${kindOf(st)}, not a folder`);
  // Create the missing folders one component at a time: at most missing.length calls.
  let made = existing;
  for (const part of missing) {
    made = nodePath.join(made, part);
    try {
      fs.mkdirSync(made);
    } catch (e) {
      if (errCode(e) !== 'EEXIST' || !(statOrNull(made)?.isDirectory() ?? false))
        throw say(`cannot be created: ${errText(e)}`);
    }
  }
  const probe = nodePath.join(dir, `.negcache-probe.${process.pid}`);
  try {
    fs.writeFileSync(probe, '', { flag: 'wx' });
    fs.unlinkSync(probe);
  } catch (e) {
    throw say(`is not writable: ${errText(e)}`);
  }
  let names: string[];
  try {
    names = fs.readdirSync(dir).filter(replaces);
  } catch (e) {
    throw say(`cannot be listed: ${errText(e)}`);
  }
  for (const name of names.sort()) {
    const file = nodePath.join(dir, name);
    let fst: fs.Stats;
    try {
      fst = fs.statSync(file);
    } catch (e) {
      throw say(`holds ${name}, which cannot be checked: ${errText(e)}`);
    }
    if (!fst.isFile())
      throw say(`holds ${name}, which is ${fst.isDirectory() ? 'a folder' : kindOf(fst)}; need a file`);
    try {
      fs.accessSync(file, fs.constants.W_OK);
    } catch (e) {
      throw say(`holds ${name}, which cannot be replaced: ${errText(e)}`);
    }
  }
  return dir;
}

/**
 * Writes a command's output files, each atomically. If the folder cannot
 * take them (the check above passed, but something changed since: a full
 * disk, a removed folder), the same files go to a fresh fallback folder under
 * the system temp folder, and stay there for the rest of the run. `write`
 * returns the folder used; `failure` says why the asked-for one was left.
 * Throws an OutputError only if the fallback fails too.
 * `options` is passed to each atomic write (the test seam `faults`).
 */
export class OutputFolder {
  private fallback: string | null = null;
  /** Why the first write to the asked-for folder failed (null while none has). */
  failure: string | null = null;

  constructor(
    readonly dir: string,
    private readonly command: string,
    private readonly options: AtomicWriteOptions = {},
  ) {}

  /** The folder files are written to now. */
  get current(): string {
    return this.fallback ?? this.dir;
  }

  /** Writes `files` (name -> content); on failure switches to the fallback folder for good and writes there. */
  write(files: Readonly<Record<string, string | Uint8Array>>): string {
    const encode = (v: string | Uint8Array): Uint8Array => (typeof v === 'string' ? new TextEncoder().encode(v) : v);
    if (this.fallback === null) {
      try {
        for (const [name, v] of Object.entries(files))
          writeFileAtomicSync(nodePath.join(this.dir, name), encode(v), this.options);
        return this.dir;
      } catch (e) {
        this.failure = errText(e);
      }
    }
    try {
      this.fallback ??= fs.mkdtempSync(nodePath.join(tmpdir(), `negcache-${this.command}-`));
      for (const [name, v] of Object.entries(files))
        writeFileAtomicSync(nodePath.join(this.fallback, name), encode(v), this.options);
    } catch (e) {
      throw new OutputError(
        `could not write to ${this.dir} (${this.failure}) nor to a fallback folder ${this.fallback ?? `in ${tmpdir()}`} (${errText(e)})`,
      );
    }
    return this.fallback;
  }
}
