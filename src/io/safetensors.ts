/**
 * The safetensors checkpoint format (https://github.com/huggingface/safetensors),
 * byte-compatible with the reference Rust/Python implementation, plus an
 * optional CRC-32 integrity check carried in the metadata.
 *
 * File layout
 *   bytes [0, 8)        N, the header length, an unsigned 64-bit little-endian integer
 *   bytes [8, 8+N)      the header: UTF-8 JSON
 *                         {"__metadata__": {"key": "value", ...},
 *                          "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
 *                       padded with spaces (0x20) so that 8+N is a multiple of 8
 *   bytes [8+N, end)    the data buffer: every tensor's elements, row-major,
 *                       little-endian; `data_offsets` are relative to the start
 *                       of the data buffer.
 *
 * dtypes: float32 <-> "F32", float64 <-> "F64", int32 <-> "I32", bool <-> "BOOL"
 * (one byte per element, 0 or 1). Other safetensors dtypes (F16, BF16, I64, U8, ...)
 * cannot be represented by negcache tensors and are rejected by name.
 *
 * Writing (`encodeSafetensors`) is deterministic: the same tensors and metadata give
 * the same bytes. The header is compact JSON; `__metadata__` comes first (omitted when
 * there is no metadata and no checksum), its keys sorted, then the tensors sorted by
 * name (JavaScript string order, i.e. by UTF-16 code units); the data buffer holds the
 * tensors in that same order, back to back. (The reference writer orders tensors by
 * dtype and then name; readers do not depend on the order.)
 *
 * Reading (`decodeSafetensors`) enforces what the Rust implementation enforces, and a
 * little more: header length <= 100 MB and within the file; header valid UTF-8 and
 * starting with `{`; strict JSON (no duplicate keys, integers written as plain digits,
 * only whitespace after the object); every entry exactly {dtype, shape, data_offsets};
 * byte length = product(shape) * itemsize; the ranges, sorted, must be contiguous,
 * start at 0 and end exactly at the end of the file (no overlaps, gaps or trailing
 * bytes); `__metadata__` (if present and not null) maps strings to strings; bool bytes
 * are 0 or 1. A header whose length is not a multiple of 8 is accepted (other writers
 * may not pad). Data is copied out: the returned tensors own aligned storage and do
 * not keep the input bytes alive.
 *
 * Integrity (`negcache.crc32`)
 *   By default the writer stores in `__metadata__["negcache.crc32"]` the CRC-32
 *   (IEEE 802.3 polynomial, the same function as zlib.crc32 / Python's
 *   `zlib.crc32`) of the WHOLE file - length prefix, header and data - computed with
 *   the 8 hex digits of this very value replaced by eight ASCII '0' characters. It is
 *   written as 8 lowercase hex digits. The reader verifies it when present. Python's
 *   safetensors ignores unknown metadata, so the files stay readable there; to verify
 *   in Python, replace the 8 digits in the raw bytes by b'00000000' and compare
 *   `zlib.crc32(raw)`.
 *
 *   What is detected (checksum present and verified):
 *     - any change of a single byte, and any corrupted run of up to 32 consecutive
 *       bits, anywhere in the file (header, padding, data) - with certainty (CRC-32
 *       property);
 *     - any other random corruption, except with probability about 2^-32;
 *     - truncation and appended bytes (always: the data ranges must end exactly at
 *       the end of the file, whether or not a checksum is present);
 *     - a flip inside the checksum value itself (mismatch or malformed value).
 *   What is NOT detected:
 *     - a corruption that damages the key "negcache.crc32" itself, so that the
 *       checksum is no longer found: the file then reads as an unchecked file (its
 *       tensors are unchanged; the damaged key shows up as ordinary metadata). Pass
 *       `{ requireChecksum: true }` to reject files without a checksum.
 *     - deliberate modification (CRC-32 is not a cryptographic hash: anyone can
 *       recompute it).
 *     - files written without a checksum (by other tools, or with
 *       `{ checksum: false }`): then only structural damage is caught - most header
 *       corruption breaks the JSON, the offsets or the length checks, but a changed
 *       tensor name, a changed metadata string, a dtype swapped for one of the same
 *       item size (F32 <-> I32) and ANY change of the data bytes (except bool bytes
 *       becoming >1) decode silently into different values.
 *   A file re-saved by another tool that copied the metadata carries a stale
 *   checksum and is rejected as corrupted; pass `{ verifyChecksum: false }` to read it.
 *
 * Byte order: the format is little-endian. On a little-endian host (every mainstream
 * platform) storage is copied byte for byte; on a big-endian host every 32-bit word
 * goes through a DataView. Both paths move integer bit patterns, never float values,
 * so NaN payloads, -0 and subnormals survive bit-exactly.
 *
 * Browser-safe: no Node built-ins.
 */
import { ArgumentError, describe, fmtShape } from '../errors.js';
import { allocate, type DType, type TypedArray } from '../tensor/dtype.js';
import { isTensor, type Tensor, unsafeData, wrap } from '../tensor/tensor.js';

/** The metadata key holding the CRC-32 of the file (see the module comment). */
export const SAFETENSORS_CHECKSUM_KEY = 'negcache.crc32';

/** Largest header accepted, as in the reference implementation (100 MB). */
export const SAFETENSORS_MAX_HEADER_BYTES = 100_000_000;

export interface EncodeSafetensorsOptions {
  /** Store the CRC-32 of the file under `negcache.crc32` in `__metadata__` (default true). */
  checksum?: boolean;
  /**
   * Element bytes through DataView, the big-endian-safe path (default: only
   * on big-endian hosts). Both paths write the same bytes; this is the seam
   * that lets a little-endian test machine run the portable one.
   */
  portableByteOrder?: boolean;
}

export interface DecodeSafetensorsOptions {
  /** Verify `negcache.crc32` when the file carries it (default true). */
  verifyChecksum?: boolean;
  /** Reject files that carry no `negcache.crc32` (default false: files from other tools have none). */
  requireChecksum?: boolean;
  /** Read element bytes through DataView (default: only on big-endian hosts); see EncodeSafetensorsOptions. */
  portableByteOrder?: boolean;
}

export interface DecodedSafetensors {
  /** The tensors by name (inserted in sorted order; JS objects still list integer-like keys such as "0" first). */
  tensors: Record<string, Tensor>;
  /** `__metadata__` without the `negcache.crc32` entry. */
  metadata: Record<string, string>;
  /** 'verified': checksum present and correct; 'absent': none in the file; 'unchecked': present, verification disabled. */
  checksum: 'verified' | 'absent' | 'unchecked';
}

const ENC_OP = 'encodeSafetensors';
const DEC_OP = 'decodeSafetensors';
const METADATA_KEY = '__metadata__';

const TO_ST: Record<DType, string> = { float32: 'F32', float64: 'F64', int32: 'I32', bool: 'BOOL' };
const FROM_ST: ReadonlyMap<string, DType> = new Map([
  ['F32', 'float32'],
  ['F64', 'float64'],
  ['I32', 'int32'],
  ['BOOL', 'bool'],
]);
const ITEMSIZE: Record<DType, number> = { float32: 4, float64: 8, int32: 4, bool: 1 };
/** safetensors dtypes that exist in the format but have no negcache counterpart. */
const UNSUPPORTED_ST: ReadonlySet<string> = new Set([
  'F16',
  'BF16',
  'F8_E4M3',
  'F8_E5M2',
  'F8_E8M0',
  'E8M0',
  'F6_E2M3',
  'F6_E3M2',
  'F4',
  'I8',
  'U8',
  'I16',
  'U16',
  'U32',
  'I64',
  'U64',
  'C64',
]);

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
/** The default byte path: DataView (portable) only where the host is big-endian. */
const PORTABLE_DEFAULT = !HOST_LITTLE_ENDIAN;

// ---------------------------------------------------------------------------
// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), slicing-by-8.

const CRC_TABLE = (() => {
  const t = new Uint32Array(256 * 8);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  for (let n = 0; n < 256; n++) {
    let c = t[n]!;
    for (let k = 1; k < 8; k++) {
      c = (t[c & 0xff]! ^ (c >>> 8)) >>> 0;
      t[k * 256 + n] = c;
    }
  }
  return t;
})();

/**
 * CRC-32 of `bytes` (the zlib / PNG / gzip CRC). Chains: `crc32(b, crc32(a))`
 * equals the CRC-32 of `a` followed by `b`. Returns an unsigned 32-bit integer.
 */
export function crc32(bytes: Uint8Array, previous = 0): number {
  if (!(bytes instanceof Uint8Array)) {
    throw new ArgumentError('crc32', `bytes must be a Uint8Array, got ${describe(bytes)}`);
  }
  if (typeof previous !== 'number' || !Number.isInteger(previous) || previous < 0 || previous > 0xffffffff) {
    throw new ArgumentError('crc32', `previous must be an unsigned 32-bit integer, got ${describe(previous)}`);
  }
  const t = CRC_TABLE;
  let c = (previous ^ 0xffffffff) | 0;
  const n = bytes.length;
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const a = c ^ (bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24));
    c =
      t[1792 + (a & 0xff)]! ^
      t[1536 + ((a >>> 8) & 0xff)]! ^
      t[1280 + ((a >>> 16) & 0xff)]! ^
      t[1024 + (a >>> 24)]! ^
      t[768 + bytes[i + 4]!]! ^
      t[512 + bytes[i + 5]!]! ^
      t[256 + bytes[i + 6]!]! ^
      t[bytes[i + 7]!]!;
  }
  for (; i < n; i++) c = t[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const CHECKSUM_PLACEHOLDER = new Uint8Array(8).fill(0x30); // "00000000"

/** CRC-32 of `file` with the 8 bytes at `at` read as ASCII '0'. */
function fileChecksum(file: Uint8Array, at: number): number {
  let c = crc32(file.subarray(0, at));
  c = crc32(CHECKSUM_PLACEHOLDER, c);
  return crc32(file.subarray(at + 8), c);
}

function hex8(x: number): string {
  return x.toString(16).padStart(8, '0');
}

// ---------------------------------------------------------------------------
// Encoding.

/** True if `s` has no unpaired UTF-16 surrogate (so it encodes to UTF-8 unchanged). */
function isWellFormed(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdfff) continue;
    if (c >= 0xdc00) return false;
    const d = s.charCodeAt(i + 1);
    if (!(d >= 0xdc00 && d <= 0xdfff)) return false;
    i++;
  }
  return true;
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function isPlainRecord(x: unknown): x is Record<string, unknown> {
  return (
    typeof x === 'object' &&
    x !== null &&
    !Array.isArray(x) &&
    !isTensor(x) &&
    !ArrayBuffer.isView(x) &&
    !(x instanceof Map)
  );
}

/** Writes the elements of `arr` little-endian into `out` at `pos`. */
function writeElements(arr: TypedArray, dtype: DType, out: Uint8Array, pos: number, portable: boolean): void {
  if (dtype === 'bool') {
    for (let i = 0; i < arr.length; i++) out[pos + i] = arr[i] !== 0 ? 1 : 0;
    return;
  }
  if (!portable) {
    out.set(new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength), pos);
    return;
  }
  const words = new Uint32Array(arr.buffer, arr.byteOffset, arr.byteLength >>> 2);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  if (dtype === 'float64') {
    // Each float64 is two host-order words; the low word goes first in the file.
    const loFirst = HOST_LITTLE_ENDIAN;
    for (let i = 0; i < words.length; i += 2) {
      view.setUint32(pos + 4 * i, loFirst ? words[i]! : words[i + 1]!, true);
      view.setUint32(pos + 4 * i + 4, loFirst ? words[i + 1]! : words[i]!, true);
    }
  } else {
    for (let i = 0; i < words.length; i++) view.setUint32(pos + 4 * i, words[i]!, true);
  }
}

/**
 * Serialises tensors (and optional string metadata) to a safetensors file.
 * Tensors are written sorted by name; see the module comment for the exact
 * layout and for the `negcache.crc32` checksum added by default.
 *
 * @throws ArgumentError for a non-tensor value, the reserved name `__metadata__`,
 *   non-string metadata, the reserved key `negcache.crc32`, or strings with unpaired
 *   surrogates (they have no UTF-8 encoding).
 */
export function encodeSafetensors(
  tensors: Record<string, Tensor>,
  metadata?: Record<string, string>,
  options?: EncodeSafetensorsOptions,
): Uint8Array {
  // ---- validate everything before allocating
  if (!isPlainRecord(tensors)) {
    throw new ArgumentError(ENC_OP, `tensors must be an object mapping names to tensors, got ${describe(tensors)}`);
  }
  const names = Object.keys(tensors).sort(compareStrings);
  for (const name of names) {
    if (name === METADATA_KEY) {
      throw new ArgumentError(
        ENC_OP,
        `tensor name "${METADATA_KEY}" is reserved by the safetensors format; need another name`,
      );
    }
    if (!isWellFormed(name)) {
      throw new ArgumentError(
        ENC_OP,
        `tensor name ${describe(name)} contains an unpaired UTF-16 surrogate; need a string that encodes to UTF-8`,
      );
    }
    const t = tensors[name];
    if (!isTensor(t)) {
      throw new ArgumentError(ENC_OP, `tensors[${describe(name)}] must be a Tensor, got ${describe(t)}`);
    }
  }
  let metaKeys: string[] = [];
  if (metadata !== undefined && metadata !== null) {
    if (!isPlainRecord(metadata)) {
      throw new ArgumentError(
        ENC_OP,
        `metadata must be an object mapping strings to strings, got ${describe(metadata)}`,
      );
    }
    metaKeys = Object.keys(metadata).sort(compareStrings);
    for (const k of metaKeys) {
      const v = (metadata as Record<string, unknown>)[k];
      if (typeof v !== 'string') {
        throw new ArgumentError(
          ENC_OP,
          `metadata[${describe(k)}] must be a string, got ${describe(v)}; safetensors metadata maps strings to strings`,
        );
      }
      if (k === SAFETENSORS_CHECKSUM_KEY) {
        throw new ArgumentError(
          ENC_OP,
          `metadata key "${SAFETENSORS_CHECKSUM_KEY}" is reserved for the checksum the writer adds; need another key`,
        );
      }
      if (!isWellFormed(k) || !isWellFormed(v)) {
        throw new ArgumentError(
          ENC_OP,
          `metadata entry ${describe(k)} contains an unpaired UTF-16 surrogate; need strings that encode to UTF-8`,
        );
      }
    }
  }
  if (options !== undefined && (typeof options !== 'object' || options === null)) {
    throw new ArgumentError(ENC_OP, `options must be an object, got ${describe(options)}`);
  }
  const checksum = options?.checksum ?? true;
  if (typeof checksum !== 'boolean') {
    throw new ArgumentError(ENC_OP, `options.checksum must be a boolean, got ${describe(checksum)}`);
  }
  const portable = options?.portableByteOrder ?? PORTABLE_DEFAULT;
  if (typeof portable !== 'boolean')
    throw new ArgumentError(ENC_OP, `options.portableByteOrder must be a boolean, got ${describe(portable)}`);

  // ---- header JSON
  let offset = 0;
  const entries: string[] = [];
  for (const name of names) {
    const t = tensors[name]!;
    const bytes = t.size * ITEMSIZE[t.dtype];
    entries.push(
      `${JSON.stringify(name)}:{"dtype":"${TO_ST[t.dtype]}","shape":[${t.shape.join(',')}],"data_offsets":[${offset},${offset + bytes}]}`,
    );
    offset += bytes;
  }
  const dataBytes = offset;
  const metaEntries = metaKeys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(metadata![k])}`);
  // The checksum goes first in __metadata__ so that its position is a fixed prefix.
  const prefix = checksum ? `{"${METADATA_KEY}":{"${SAFETENSORS_CHECKSUM_KEY}":"` : '';
  let json: string;
  if (checksum) {
    json = `${prefix}00000000"${metaEntries.length > 0 ? ',' : ''}${metaEntries.join(',')}}${entries.length > 0 ? ',' : ''}${entries.join(',')}}`;
  } else if (metaEntries.length > 0) {
    json = `{"${METADATA_KEY}":{${metaEntries.join(',')}}${entries.length > 0 ? ',' : ''}${entries.join(',')}}`;
  } else {
    json = `{${entries.join(',')}}`;
  }
  const encoder = new TextEncoder();
  const jsonBytes = encoder.encode(json);
  const headerLength = Math.ceil(jsonBytes.length / 8) * 8;
  if (headerLength > SAFETENSORS_MAX_HEADER_BYTES) {
    throw new ArgumentError(
      ENC_OP,
      `the header would be ${headerLength} bytes (${names.length} tensors, ${metaKeys.length} metadata entries); readers accept at most ${SAFETENSORS_MAX_HEADER_BYTES}`,
    );
  }
  const total = 8 + headerLength + dataBytes;
  let file: Uint8Array;
  try {
    file = new Uint8Array(total);
  } catch (e) {
    throw new ArgumentError(
      ENC_OP,
      `the file would be ${total} bytes, more than this engine can allocate in one buffer (${(e as Error).message})`,
    );
  }

  // ---- assemble
  const view = new DataView(file.buffer);
  view.setUint32(0, headerLength, true);
  view.setUint32(4, 0, true);
  file.set(jsonBytes, 8);
  file.fill(0x20, 8 + jsonBytes.length, 8 + headerLength);
  let pos = 8 + headerLength;
  for (const name of names) {
    const t = tensors[name]!;
    writeElements(unsafeData(t), t.dtype, file, pos, portable);
    pos += t.size * ITEMSIZE[t.dtype];
  }
  if (checksum) {
    const at = 8 + prefix.length; // the prefix is ASCII: characters = bytes
    file.set(encoder.encode(hex8(fileChecksum(file, at))), at);
  }
  return file;
}

// ---------------------------------------------------------------------------
// A strict JSON parser that keeps positions, rejects duplicate keys and keeps
// the literal text of numbers (so 1e2, 1.0 or 2^53+1 are not taken as integers).

type JNode =
  | { kind: 'object'; pos: number; members: Map<string, JNode> }
  | { kind: 'array'; pos: number; items: JNode[] }
  | { kind: 'string'; pos: number; end: number; value: string }
  | { kind: 'number'; pos: number; text: string }
  | { kind: 'literal'; pos: number; text: 'true' | 'false' | 'null' };

const MAX_JSON_DEPTH = 64;

function charDesc(s: string, i: number): string {
  if (i >= s.length) return 'the end of the header';
  const c = s.codePointAt(i)!;
  return c >= 0x20 && c < 0x7f ? `'${String.fromCharCode(c)}'` : `U+${c.toString(16).toUpperCase().padStart(4, '0')}`;
}

class StrictJson {
  private i = 0;
  constructor(private readonly s: string) {}

  private fail(what: string, at = this.i): never {
    throw new ArgumentError(DEC_OP, `header JSON is invalid at character ${at}: ${what}`);
  }

  private ws(): void {
    const s = this.s;
    while (this.i < s.length) {
      const c = s.charCodeAt(this.i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) this.i++;
      else break;
    }
  }

  /** Parses the whole text: one object, then only whitespace. */
  document(): JNode & { kind: 'object' } {
    const root = this.value(0);
    this.ws();
    if (this.i < this.s.length)
      this.fail(
        `unexpected ${charDesc(this.s, this.i)} after the end of the header object; need only whitespace padding`,
      );
    return root as JNode & { kind: 'object' };
  }

  private value(depth: number): JNode {
    if (depth > MAX_JSON_DEPTH) this.fail(`nesting deeper than ${MAX_JSON_DEPTH} levels`);
    this.ws();
    const c = this.s.charCodeAt(this.i);
    if (c === 0x7b) return this.object(depth);
    if (c === 0x5b) return this.array(depth);
    if (c === 0x22) return this.string();
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) return this.number();
    for (const text of ['true', 'false', 'null'] as const) {
      if (this.s.startsWith(text, this.i)) {
        const pos = this.i;
        this.i += text.length;
        return { kind: 'literal', pos, text };
      }
    }
    return this.fail(`unexpected ${charDesc(this.s, this.i)}; need a JSON value`);
  }

  private object(depth: number): JNode {
    const pos = this.i++;
    const members = new Map<string, JNode>();
    this.ws();
    if (this.s.charCodeAt(this.i) === 0x7d) {
      this.i++;
      return { kind: 'object', pos, members };
    }
    for (;;) {
      this.ws();
      if (this.s.charCodeAt(this.i) !== 0x22) this.fail(`unexpected ${charDesc(this.s, this.i)}; need a quoted key`);
      const key = this.string();
      if (members.has(key.value)) this.fail(`duplicate key ${describe(key.value)}; keys must be unique`, key.pos);
      this.ws();
      if (this.s.charCodeAt(this.i) !== 0x3a) this.fail(`unexpected ${charDesc(this.s, this.i)}; need ':'`);
      this.i++;
      members.set(key.value, this.value(depth + 1));
      this.ws();
      const c = this.s.charCodeAt(this.i);
      if (c === 0x2c) {
        this.i++;
        continue;
      }
      if (c === 0x7d) {
        this.i++;
        return { kind: 'object', pos, members };
      }
      this.fail(`unexpected ${charDesc(this.s, this.i)}; need ',' or '}'`);
    }
  }

  private array(depth: number): JNode {
    const pos = this.i++;
    const items: JNode[] = [];
    this.ws();
    if (this.s.charCodeAt(this.i) === 0x5d) {
      this.i++;
      return { kind: 'array', pos, items };
    }
    for (;;) {
      items.push(this.value(depth + 1));
      this.ws();
      const c = this.s.charCodeAt(this.i);
      if (c === 0x2c) {
        this.i++;
        continue;
      }
      if (c === 0x5d) {
        this.i++;
        return { kind: 'array', pos, items };
      }
      this.fail(`unexpected ${charDesc(this.s, this.i)}; need ',' or ']'`);
    }
  }

  private hex4(at: number): number {
    const h = this.s.slice(at, at + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(h)) this.fail(`bad \\u escape; need four hex digits`, at - 2);
    return parseInt(h, 16);
  }

  private string(): JNode & { kind: 'string' } {
    const s = this.s;
    const pos = this.i++;
    let out = '';
    let run = this.i;
    for (;;) {
      if (this.i >= s.length) this.fail('unterminated string', pos);
      const c = s.charCodeAt(this.i);
      if (c === 0x22) {
        out += s.slice(run, this.i);
        this.i++;
        return { kind: 'string', pos, end: this.i, value: out };
      }
      if (c < 0x20) this.fail(`raw control character ${charDesc(s, this.i)} in a string; need it escaped`);
      if (c !== 0x5c) {
        this.i++;
        continue;
      }
      out += s.slice(run, this.i);
      const e = s.charCodeAt(this.i + 1);
      switch (e) {
        case 0x22:
          out += '"';
          break;
        case 0x5c:
          out += '\\';
          break;
        case 0x2f:
          out += '/';
          break;
        case 0x62:
          out += '\b';
          break;
        case 0x66:
          out += '\f';
          break;
        case 0x6e:
          out += '\n';
          break;
        case 0x72:
          out += '\r';
          break;
        case 0x74:
          out += '\t';
          break;
        case 0x75: {
          const u = this.hex4(this.i + 2);
          if (u >= 0xdc00 && u <= 0xdfff) this.fail('unpaired low surrogate escape; need a valid UTF-16 pair');
          if (u >= 0xd800 && u <= 0xdbff) {
            const low = s.startsWith('\\u', this.i + 6) ? this.hex4(this.i + 8) : -1;
            if (!(low >= 0xdc00 && low <= 0xdfff))
              this.fail('unpaired high surrogate escape; need a valid UTF-16 pair');
            out += String.fromCharCode(u, low);
            this.i += 6;
          } else out += String.fromCharCode(u);
          this.i += 4;
          break;
        }
        default:
          this.fail(`bad escape '\\${this.i + 1 < s.length ? s[this.i + 1] : ''}'`);
      }
      this.i += 2;
      run = this.i;
    }
  }

  private number(): JNode {
    const m = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
    m.lastIndex = this.i;
    const r = m.exec(this.s);
    if (r === null) this.fail('malformed number');
    const pos = this.i;
    this.i += r[0].length;
    return { kind: 'number', pos, text: r[0] };
  }
}

// ---------------------------------------------------------------------------
// Decoding.

function nodeDesc(n: JNode | undefined): string {
  if (n === undefined) return 'nothing';
  switch (n.kind) {
    case 'object':
      return 'an object';
    case 'array':
      return `an array of length ${n.items.length}`;
    case 'string':
      return describe(n.value);
    case 'number':
      return n.text;
    case 'literal':
      return n.text;
  }
}

/** A JSON number node that is a plain non-negative integer literal within 2^53. */
function asIndex(n: JNode | undefined): number | null {
  if (n === undefined || n.kind !== 'number' || !/^(?:0|[1-9][0-9]*)$/.test(n.text)) return null;
  const v = Number(n.text);
  return Number.isSafeInteger(v) ? v : null;
}

interface Entry {
  name: string;
  dtype: DType;
  shape: number[];
  size: number;
  begin: number;
  end: number;
}

function readEntry(name: string, node: JNode, dataLength: number): Entry {
  const where = `tensor ${describe(name)}`;
  if (node.kind !== 'object') {
    throw new ArgumentError(
      DEC_OP,
      `${where}: entry is ${nodeDesc(node)}; need an object {dtype, shape, data_offsets}`,
    );
  }
  for (const key of node.members.keys()) {
    if (key !== 'dtype' && key !== 'shape' && key !== 'data_offsets') {
      throw new ArgumentError(
        DEC_OP,
        `${where}: unexpected key ${describe(key)}; need exactly dtype, shape, data_offsets`,
      );
    }
  }
  for (const key of ['dtype', 'shape', 'data_offsets']) {
    if (!node.members.has(key)) {
      throw new ArgumentError(DEC_OP, `${where}: missing "${key}"; need exactly dtype, shape, data_offsets`);
    }
  }
  const dt = node.members.get('dtype')!;
  if (dt.kind !== 'string') {
    throw new ArgumentError(DEC_OP, `${where}: dtype is ${nodeDesc(dt)}; need one of "F32", "F64", "I32", "BOOL"`);
  }
  const dtype = FROM_ST.get(dt.value);
  if (dtype === undefined) {
    if (UNSUPPORTED_ST.has(dt.value)) {
      throw new ArgumentError(
        DEC_OP,
        `${where}: dtype "${dt.value}" is a safetensors dtype negcache cannot represent; need one of "F32", "F64", "I32", "BOOL" (convert the checkpoint first)`,
      );
    }
    throw new ArgumentError(
      DEC_OP,
      `${where}: unknown dtype ${describe(dt.value)}; need one of "F32", "F64", "I32", "BOOL"`,
    );
  }
  const sh = node.members.get('shape')!;
  if (sh.kind !== 'array') {
    throw new ArgumentError(DEC_OP, `${where}: shape is ${nodeDesc(sh)}; need an array of non-negative integers`);
  }
  const shape: number[] = [];
  let size = 1;
  for (let k = 0; k < sh.items.length; k++) {
    const d = asIndex(sh.items[k]);
    if (d === null) {
      throw new ArgumentError(DEC_OP, `${where}: shape[${k}] is ${nodeDesc(sh.items[k])}; need a non-negative integer`);
    }
    shape.push(d);
    size *= d;
  }
  if (size > 2 ** 31 - 1) {
    throw new ArgumentError(DEC_OP, `${where}: shape ${fmtShape(shape)} has ${size} elements; need at most 2^31-1`);
  }
  const off = node.members.get('data_offsets')!;
  if (off.kind !== 'array' || off.items.length !== 2) {
    throw new ArgumentError(
      DEC_OP,
      `${where}: data_offsets is ${nodeDesc(off)}; need [begin, end], two non-negative integers`,
    );
  }
  const begin = asIndex(off.items[0]);
  const end = asIndex(off.items[1]);
  if (begin === null || end === null) {
    throw new ArgumentError(
      DEC_OP,
      `${where}: data_offsets is [${nodeDesc(off.items[0])}, ${nodeDesc(off.items[1])}]; need two non-negative integers`,
    );
  }
  if (begin > end) {
    throw new ArgumentError(DEC_OP, `${where}: data_offsets [${begin}, ${end}] has begin > end; need begin <= end`);
  }
  const need = size * ITEMSIZE[dtype];
  if (end - begin !== need) {
    throw new ArgumentError(
      DEC_OP,
      `${where}: data_offsets [${begin}, ${end}] span ${end - begin} bytes; need ${need} for shape ${fmtShape(shape)} ${dt.value} (${size} elements x ${ITEMSIZE[dtype]} bytes)`,
    );
  }
  if (end > dataLength) {
    throw new ArgumentError(
      DEC_OP,
      `${where}: data_offsets [${begin}, ${end}] lie outside the data buffer (${dataLength} bytes; file truncated?); need end <= ${dataLength}`,
    );
  }
  return { name, dtype, shape, size, begin, end };
}

function readElements(data: Uint8Array, e: Entry, portable: boolean): TypedArray {
  const out = allocate(e.dtype, e.size);
  const src = data.subarray(e.begin, e.end);
  if (e.dtype === 'bool') {
    for (let i = 0; i < src.length; i++) {
      const b = src[i]!;
      if (b > 1) {
        throw new ArgumentError(
          DEC_OP,
          `tensor ${describe(e.name)}: bool element ${i} is stored as byte ${b}; need 0 or 1`,
        );
      }
      out[i] = b;
    }
    return out;
  }
  if (!portable) {
    new Uint8Array(out.buffer).set(src);
    return out;
  }
  const words = new Uint32Array(out.buffer);
  const view = new DataView(src.buffer, src.byteOffset, src.byteLength);
  if (e.dtype === 'float64') {
    const loFirst = HOST_LITTLE_ENDIAN;
    for (let i = 0; i < words.length; i += 2) {
      const lo = view.getUint32(4 * i, true);
      const hi = view.getUint32(4 * i + 4, true);
      words[i] = loFirst ? lo : hi;
      words[i + 1] = loFirst ? hi : lo;
    }
  } else {
    for (let i = 0; i < words.length; i++) words[i] = view.getUint32(4 * i, true);
  }
  return out;
}

function setOwn<T>(obj: Record<string, T>, key: string, value: T): void {
  // defineProperty so that a key such as "__proto__" becomes an ordinary own property.
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

/**
 * Parses a safetensors file with strict validation (see the module comment for
 * every rule) and verifies the `negcache.crc32` checksum when present.
 *
 * @throws ArgumentError naming the problem for anything malformed, corrupted,
 *   truncated or not representable (e.g. a F16 tensor).
 */
export function decodeSafetensors(bytes: Uint8Array, options?: DecodeSafetensorsOptions): DecodedSafetensors {
  if (!(bytes instanceof Uint8Array)) {
    throw new ArgumentError(DEC_OP, `bytes must be a Uint8Array, got ${describe(bytes)}`);
  }
  if (options !== undefined && (typeof options !== 'object' || options === null)) {
    throw new ArgumentError(DEC_OP, `options must be an object, got ${describe(options)}`);
  }
  const verify = options?.verifyChecksum ?? true;
  const requireChecksum = options?.requireChecksum ?? false;
  if (typeof verify !== 'boolean')
    throw new ArgumentError(DEC_OP, `options.verifyChecksum must be a boolean, got ${describe(verify)}`);
  if (typeof requireChecksum !== 'boolean')
    throw new ArgumentError(DEC_OP, `options.requireChecksum must be a boolean, got ${describe(requireChecksum)}`);
  const portable = options?.portableByteOrder ?? PORTABLE_DEFAULT;
  if (typeof portable !== 'boolean')
    throw new ArgumentError(DEC_OP, `options.portableByteOrder must be a boolean, got ${describe(portable)}`);

  // ---- length prefix
  if (bytes.length < 8) {
    throw new ArgumentError(
      DEC_OP,
      `file is ${bytes.length} bytes; need at least 8 (the header length) - not a safetensors file, or truncated`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lo = view.getUint32(0, true);
  const hi = view.getUint32(4, true);
  if (hi !== 0 || lo > SAFETENSORS_MAX_HEADER_BYTES) {
    const n = (BigInt(hi) << 32n) | BigInt(lo);
    throw new ArgumentError(
      DEC_OP,
      `header length ${n} (bytes 0-7) exceeds the ${SAFETENSORS_MAX_HEADER_BYTES}-byte limit; not a safetensors file, or corrupted`,
    );
  }
  const headerLength = lo;
  if (8 + headerLength > bytes.length) {
    throw new ArgumentError(
      DEC_OP,
      `header length ${headerLength} (bytes 0-7) runs past the end of the file (${bytes.length} bytes); need 8 + header length <= file size - truncated or corrupted`,
    );
  }
  if (headerLength === 0) {
    throw new ArgumentError(DEC_OP, `header length is 0; need a JSON object`);
  }

  // ---- header text
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes.subarray(8, 8 + headerLength));
  } catch {
    throw new ArgumentError(DEC_OP, `header (${headerLength} bytes) is not valid UTF-8`);
  }
  if (text.charCodeAt(0) !== 0x7b) {
    throw new ArgumentError(DEC_OP, `header starts with ${charDesc(text, 0)}; need '{' (a JSON object)`);
  }
  const root = new StrictJson(text).document();

  // ---- metadata
  const metadata: Record<string, string> = {};
  let checksumNode: (JNode & { kind: 'string' }) | undefined;
  const metaNode = root.members.get(METADATA_KEY);
  if (metaNode !== undefined && !(metaNode.kind === 'literal' && metaNode.text === 'null')) {
    if (metaNode.kind !== 'object') {
      throw new ArgumentError(
        DEC_OP,
        `__metadata__ is ${nodeDesc(metaNode)}; need an object mapping strings to strings`,
      );
    }
    const keys = [...metaNode.members.keys()].sort(compareStrings);
    for (const k of keys) {
      const v = metaNode.members.get(k)!;
      if (v.kind !== 'string') {
        throw new ArgumentError(DEC_OP, `__metadata__[${describe(k)}] is ${nodeDesc(v)}; need a string`);
      }
      if (k === SAFETENSORS_CHECKSUM_KEY) checksumNode = v;
      else setOwn(metadata, k, v.value);
    }
  }

  // ---- checksum (before the tensor entries, so corruption is reported as such)
  let checksum: DecodedSafetensors['checksum'] = 'absent';
  if (checksumNode !== undefined) {
    if (checksumNode.end - checksumNode.pos !== 10 || !/^[0-9a-f]{8}$/.test(checksumNode.value)) {
      throw new ArgumentError(
        DEC_OP,
        `__metadata__["${SAFETENSORS_CHECKSUM_KEY}"] is ${describe(checksumNode.value)}; need 8 lowercase hex digits, written without escapes (corrupted?)`,
      );
    }
    if (verify) {
      const at = 8 + new TextEncoder().encode(text.slice(0, checksumNode.pos + 1)).length;
      const actual = fileChecksum(bytes, at);
      if (hex8(actual) !== checksumNode.value) {
        throw new ArgumentError(
          DEC_OP,
          `checksum mismatch: ${SAFETENSORS_CHECKSUM_KEY} says ${checksumNode.value}, the file hashes to ${hex8(actual)}; the file is corrupted (or was rewritten by a tool that copied the metadata - pass { verifyChecksum: false } to read it anyway)`,
        );
      }
      checksum = 'verified';
    } else checksum = 'unchecked';
  } else if (requireChecksum) {
    throw new ArgumentError(
      DEC_OP,
      `no "${SAFETENSORS_CHECKSUM_KEY}" in __metadata__ but requireChecksum is set; need a file written by encodeSafetensors with its checksum`,
    );
  }

  // ---- tensor entries
  const dataStart = 8 + headerLength;
  const data = bytes.subarray(dataStart);
  const entries: Entry[] = [];
  for (const [name, node] of root.members) {
    if (name === METADATA_KEY) continue;
    entries.push(readEntry(name, node, data.length));
  }
  const byOffset = entries.slice().sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  let prev: Entry | null = null;
  for (const e of byOffset) {
    if (e.begin < covered) {
      throw new ArgumentError(
        DEC_OP,
        `tensors ${describe(prev!.name)} [${prev!.begin}, ${prev!.end}] and ${describe(e.name)} [${e.begin}, ${e.end}] overlap; need disjoint, contiguous data ranges`,
      );
    }
    if (e.begin > covered) {
      throw new ArgumentError(
        DEC_OP,
        `data bytes [${covered}, ${e.begin}) belong to no tensor (gap before ${describe(e.name)}); need the data ranges to be contiguous from 0`,
      );
    }
    covered = e.end;
    prev = e;
  }
  if (covered !== data.length) {
    throw new ArgumentError(
      DEC_OP,
      `data bytes [${covered}, ${data.length}) at the end of the file belong to no tensor (${data.length - covered} trailing bytes); need the tensors to cover the data buffer exactly`,
    );
  }

  // ---- copy out
  const tensors: Record<string, Tensor> = {};
  for (const e of entries.sort((a, b) => compareStrings(a.name, b.name))) {
    setOwn(tensors, e.name, wrap(readElements(data, e, portable), e.shape, e.dtype));
  }
  return { tensors, metadata, checksum };
}
