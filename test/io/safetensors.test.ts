import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as zlib from 'node:zlib';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { ArgumentError } from '../../src/errors.js';
import {
  SAFETENSORS_CHECKSUM_KEY,
  crc32,
  decodeSafetensors,
  encodeSafetensors,
  type DecodeSafetensorsOptions,
} from '../../src/io/safetensors.js';
import type { DType } from '../../src/tensor/dtype.js';
import { type Tensor, unsafeData, wrap } from '../../src/tensor/tensor.js';
import { params } from '../util/props.js';

// ---------------------------------------------------------------------------
// helpers

function bytesOf(t: Tensor): Uint8Array {
  const d = unsafeData(t);
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

function sameTensor(a: Tensor, b: Tensor): boolean {
  if (a.dtype !== b.dtype || a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i]))
    return false;
  const x = bytesOf(a);
  const y = bytesOf(b);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

function sameTensors(a: Record<string, Tensor>, b: Record<string, Tensor>): boolean {
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && sameTensor(a[k]!, b[k]!));
}

function record<T>(entries: Iterable<readonly [string, T]>): Record<string, T> {
  const out: Record<string, T> = {};
  for (const [k, v] of entries)
    Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  return out;
}

function f32(values: number[], shape: number[]): Tensor {
  return wrap(new Float32Array(values), shape, 'float32');
}
function i32(values: number[], shape: number[]): Tensor {
  return wrap(new Int32Array(values), shape, 'int32');
}
function bool(values: boolean[], shape: number[]): Tensor {
  return wrap(new Uint8Array(values.map((v) => (v ? 1 : 0))), shape, 'bool');
}

/** Builds a file by hand: header JSON text (padded with spaces to a multiple of 8 unless `pad` is false) + data. */
function file(header: string | object, data: number[] | Uint8Array = [], pad = true): Uint8Array {
  const text = typeof header === 'string' ? header : JSON.stringify(header);
  let h = new TextEncoder().encode(text);
  if (pad && h.length % 8 !== 0) {
    const p = new Uint8Array(Math.ceil(h.length / 8) * 8).fill(0x20);
    p.set(h);
    h = p;
  }
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setUint32(0, h.length, true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

function rejects(bytes: Uint8Array, pattern: RegExp, options?: DecodeSafetensorsOptions): ArgumentError {
  let caught: unknown = null;
  try {
    decodeSafetensors(bytes, options);
  } catch (e) {
    caught = e;
  }
  expect(caught, `expected rejection matching ${pattern}`).toBeInstanceOf(ArgumentError);
  const err = caught as ArgumentError;
  expect(err.op).toBe('decodeSafetensors');
  expect(err.message).toMatch(/^decodeSafetensors: /);
  expect(err.message).toMatch(pattern);
  return err;
}

function encodeRejects(thunk: () => unknown, pattern: RegExp): void {
  let caught: unknown = null;
  try {
    thunk();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(ArgumentError);
  expect((caught as ArgumentError).op).toBe('encodeSafetensors');
  expect((caught as ArgumentError).message).toMatch(pattern);
}

const entry = (dtype: string, shape: unknown, offsets: unknown): object => ({ dtype, shape, data_offsets: offsets });

// ---------------------------------------------------------------------------
// arbitraries

const F32_SPECIAL = [
  0x7fc00000, 0xffc00000, 0x7f800001, 0x7fbfffff, 0x7f800000, 0xff800000, 0x80000000, 0, 1, 0x807fffff, 0x7f7fffff,
];
const F64_SPECIAL: [number, number][] = [
  [0, 0x7ff80000],
  [1, 0x7ff00000],
  [0, 0x7ff00000],
  [0, 0xfff00000],
  [0, 0x80000000],
  [1, 0],
  [0xffffffff, 0x7fefffff],
  [0x12345678, 0xfff80000],
];
const INT_SPECIAL = [2 ** 24 + 1, -(2 ** 24) - 1, 2 ** 31 - 1, -(2 ** 31), -1, 0, 123456789];

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const dtypeArb = fc.constantFrom<DType>('float32', 'float64', 'int32', 'bool');
const shapeArb = fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 4 });

const tensorArb: fc.Arbitrary<Tensor> = fc.tuple(dtypeArb, shapeArb).chain(([dtype, shape]) => {
  const n = shape.reduce((a, b) => a * b, 1);
  const len = { minLength: n, maxLength: n };
  switch (dtype) {
    case 'float32':
      return fc
        .array(fc.oneof(u32, fc.constantFrom(...F32_SPECIAL)), len)
        .map((bits) => wrap(new Float32Array(new Uint32Array(bits).buffer), shape, dtype));
    case 'float64':
      return fc
        .array(fc.oneof(fc.tuple(u32, u32), fc.constantFrom(...F64_SPECIAL)), len)
        .map((pairs) => wrap(new Float64Array(new Uint32Array(pairs.flat()).buffer), shape, dtype));
    case 'int32':
      return fc
        .array(fc.oneof(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), fc.constantFrom(...INT_SPECIAL)), len)
        .map((v) => wrap(new Int32Array(v), shape, dtype));
    case 'bool':
      return fc.array(fc.boolean(), len).map((v) => wrap(new Uint8Array(v.map(Number)), shape, dtype));
  }
});

const nameArb = fc
  .oneof(
    fc.string({ unit: 'binary', maxLength: 8 }),
    fc.string({ maxLength: 8 }),
    fc.constantFrom('__proto__', 'constructor', 'a"b\\c', '\u0000\n\t', 'négcache.😀', 'model.layers.0.weight', ''),
  )
  .filter((s) => s !== '__metadata__');

const tensorsArb = fc
  .uniqueArray(fc.tuple(nameArb, tensorArb), { maxLength: 6, selector: ([k]) => k })
  .map((pairs) => record(pairs));

const metadataArb = fc
  .uniqueArray(fc.tuple(nameArb, fc.string({ unit: 'binary', maxLength: 12 })), { maxLength: 4, selector: ([k]) => k })
  .map((pairs) => record(pairs.filter(([k]) => k !== SAFETENSORS_CHECKSUM_KEY)));

// ---------------------------------------------------------------------------

describe('crc32', () => {
  it('matches the standard check values', () => {
    expect(crc32(new Uint8Array(0))).toBe(0);
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
    expect(crc32(new TextEncoder().encode('The quick brown fox jumps over the lazy dog'))).toBe(0x414fa339);
  });

  it('agrees with zlib and chains', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(), (bytes, cut) => {
        const expected = zlib.crc32(bytes) >>> 0;
        expect(crc32(bytes)).toBe(expected);
        const k = bytes.length === 0 ? 0 : cut % (bytes.length + 1);
        expect(crc32(bytes.subarray(k), crc32(bytes.subarray(0, k)))).toBe(expected);
      }),
      params(200),
    );
  });

  it('rejects bad arguments with ArgumentError', () => {
    expect(() => crc32([1, 2] as unknown as Uint8Array)).toThrow(ArgumentError);
    expect(() => crc32(new Uint8Array(1), -1)).toThrow(ArgumentError);
  });
});

describe('encodeSafetensors byte layout', () => {
  const tensors = { b: i32([1, -2], [2]), a: f32([1.5], []), c: bool([true, false, true], [3]) };
  const header =
    '{"__metadata__":{"format":"pt"},' +
    '"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]},' +
    '"b":{"dtype":"I32","shape":[2],"data_offsets":[4,12]},' +
    '"c":{"dtype":"BOOL","shape":[3],"data_offsets":[12,15]}}';
  const data = [0x00, 0x00, 0xc0, 0x3f, 0x01, 0x00, 0x00, 0x00, 0xfe, 0xff, 0xff, 0xff, 0x01, 0x00, 0x01];

  it('writes the hand-computed bytes (no checksum)', () => {
    const bytes = encodeSafetensors(tensors, { format: 'pt' }, { checksum: false });
    expect(header.length).toBe(194); // padded with 6 spaces to 200
    expect(bytes.length).toBe(8 + 200 + 15);
    expect([...bytes.subarray(0, 8)]).toEqual([200, 0, 0, 0, 0, 0, 0, 0]);
    expect(new TextDecoder().decode(bytes.subarray(8, 208))).toBe(header + '      ');
    expect([...bytes.subarray(208)]).toEqual(data);
    expect(bytes).toEqual(file(header, data));
  });

  it('writes the hand-computed checksum (value computed with Python zlib.crc32)', () => {
    const bytes = encodeSafetensors(tensors, { format: 'pt' });
    const withCrc = header.replace('{"__metadata__":{', '{"__metadata__":{"negcache.crc32":"ec9c5e5b",');
    expect(withCrc.length).toBe(222); // padded with 2 spaces to 224
    expect([...bytes.subarray(0, 8)]).toEqual([224, 0, 0, 0, 0, 0, 0, 0]);
    expect(new TextDecoder().decode(bytes.subarray(8, 232))).toBe(withCrc + '  ');
    expect([...bytes.subarray(232)]).toEqual(data);
    const decoded = decodeSafetensors(bytes);
    expect(decoded.checksum).toBe('verified');
    expect(decoded.metadata).toEqual({ format: 'pt' });
    expect(decoded.tensors.a!.item()).toBe(1.5);
    expect(decoded.tensors.b!.toArray()).toEqual([1, -2]);
    expect(decoded.tensors.c!.toArray()).toEqual([true, false, true]);
  });

  it('writes an empty file as {} padded to 8, and no __metadata__ when there is none', () => {
    const bytes = encodeSafetensors({}, undefined, { checksum: false });
    expect([...bytes]).toEqual([8, 0, 0, 0, 0, 0, 0, 0, 0x7b, 0x7d, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20]);
    expect(decodeSafetensors(bytes)).toEqual({ tensors: {}, metadata: {}, checksum: 'absent' });
    const text = new TextDecoder().decode(encodeSafetensors({ x: f32([1], [1]) }, {}, { checksum: false }).subarray(8));
    expect(text.startsWith('{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}')).toBe(true);
  });

  it('stores bool storage bytes other than 0 as 1', () => {
    const t = wrap(new Uint8Array([0, 2, 255]), [3], 'bool');
    const bytes = encodeSafetensors({ m: t }, undefined, { checksum: false });
    expect([...bytes.subarray(bytes.length - 3)]).toEqual([0, 1, 1]);
  });

  it('keeps special float and int values bit-exactly', () => {
    const f = new Float32Array(new Uint32Array(F32_SPECIAL).buffer);
    const d = new Float64Array(new Uint32Array(F64_SPECIAL.flat()).buffer);
    const t = {
      f: wrap(f, [f.length], 'float32'),
      d: wrap(d, [d.length], 'float64'),
      i: i32(INT_SPECIAL, [INT_SPECIAL.length]),
    };
    for (const portableByteOrder of [false, true]) {
      const out = decodeSafetensors(encodeSafetensors(t, {}, { portableByteOrder }), { portableByteOrder }).tensors;
      expect(sameTensors(out, t)).toBe(true);
      expect(Object.is(out.f!.dataSync()[6], -0)).toBe(true);
      expect(out.i!.toArray()).toEqual(INT_SPECIAL);
    }
  });
});

describe('round trip', () => {
  it('decode(encode(x)) is x, bit-exact, for every dtype and shape; encoding is deterministic', () => {
    fc.assert(
      fc.property(tensorsArb, metadataArb, fc.boolean(), (tensors, metadata, checksum) => {
        const bytes = encodeSafetensors(tensors, metadata, { checksum });
        expect(bytes.length - dataLength(tensors)).toBeGreaterThanOrEqual(16);
        expect((bytes.length - dataLength(tensors)) % 8).toBe(0); // 8 + padded header
        expect(encodeSafetensors(tensors, metadata, { checksum })).toEqual(bytes);
        const out = decodeSafetensors(bytes, { requireChecksum: checksum });
        expect(out.checksum).toBe(checksum ? 'verified' : 'absent');
        expect(sameTensors(out.tensors, tensors)).toBe(true);
        expect(Object.keys(out.tensors).sort()).toEqual(Object.keys(tensors).sort());
        expect(Object.keys(out.metadata).sort()).toEqual(Object.keys(metadata).sort());
        for (const k of Object.keys(metadata)) expect(out.metadata[k]).toBe(metadata[k]);
        // the returned tensors own aligned storage, independent of the input bytes
        for (const t of Object.values(out.tensors)) {
          const d = unsafeData(t);
          expect(d.byteOffset).toBe(0);
          expect(d.buffer).not.toBe(bytes.buffer);
        }
      }),
      params(200),
    );
  });

  it('the portable (DataView, big-endian-safe) byte path writes and reads the same bytes', () => {
    fc.assert(
      fc.property(tensorsArb, (tensors) => {
        const fast = encodeSafetensors(tensors, {}, { portableByteOrder: false });
        expect(encodeSafetensors(tensors, {}, { portableByteOrder: true })).toEqual(fast);
        expect(sameTensors(decodeSafetensors(fast, { portableByteOrder: true }).tensors, tensors)).toBe(true);
        expect(sameTensors(decodeSafetensors(fast, { portableByteOrder: false }).tensors, tensors)).toBe(true);
      }),
      params(100),
    );
  });

  it('reads a file whose bytes sit at an odd offset of a larger buffer', () => {
    const bytes = encodeSafetensors({ w: f32([1, 2, 3], [3]), d: wrap(new Float64Array([Math.PI]), [1], 'float64') });
    const big = new Uint8Array(bytes.length + 3);
    big.set(bytes, 3);
    const out = decodeSafetensors(big.subarray(3)).tensors;
    expect(out.w!.toArray()).toEqual([1, 2, 3]);
    expect(out.d!.toArray()).toEqual([Math.PI]);
  });
});

function dataLength(tensors: Record<string, Tensor>): number {
  const item = { float32: 4, float64: 8, int32: 4, bool: 1 };
  return Object.values(tensors).reduce((s, t) => s + t.size * item[t.dtype], 0);
}

describe('decodeSafetensors accepts what the reference accepts', () => {
  it('any tensor order in the data buffer, zero-size tensors anywhere in the sequence, unpadded headers, whitespace, escapes, null metadata', () => {
    const data = new Uint8Array(4 + 8 + 1);
    new DataView(data.buffer).setInt32(0, -7, true);
    new DataView(data.buffer).setFloat64(4, 2.5, true);
    data[12] = 1;
    const header = {
      __metadata__: null,
      z: entry('I32', [1], [0, 4]),
      '\u00e9': entry('F64', [], [4, 12]),
      a: entry('BOOL', [1, 1], [12, 13]),
      empty1: entry('F32', [0, 5], [0, 0]),
      empty2: entry('F64', [3, 0], [12, 12]),
      empty3: entry('I32', [0], [13, 13]),
    };
    for (const pad of [true, false]) {
      const out = decodeSafetensors(file(header, data, pad));
      expect(Object.keys(out.tensors)).toEqual(['a', 'empty1', 'empty2', 'empty3', 'z', '\u00e9']);
      expect(out.tensors.z!.toArray()).toEqual([-7]);
      expect(out.tensors['\u00e9']!.item()).toBe(2.5);
      expect(out.tensors.a!.toArray()).toEqual([[true]]);
      expect(out.tensors.empty1!.shape).toEqual([0, 5]);
      expect(out.metadata).toEqual({});
    }
    const spaced =
      '{ "x" : { "data_offsets" : [ 0 , 4 ] , "shape" : [ 1 ] , "dtype" : "\\u0049\\u0033\\u0032" } ,\n\t"__metadata__":{"k\\n":"\\ud83d\\ude00"}}';
    const out = decodeSafetensors(file(spaced, [5, 0, 0, 0]));
    expect(out.tensors.x!.toArray()).toEqual([5]);
    expect(out.metadata).toEqual({ 'k\n': '😀' });
  });

  it('names such as __proto__ become ordinary own keys', () => {
    const out = decodeSafetensors(file({ __proto__x: entry('F32', [], [0, 4]) }, [0, 0, 128, 63]));
    expect(out.tensors.__proto__x!.item()).toBe(1);
    const raw = '{"__proto__":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"__metadata__":{"__proto__":"v"}}';
    const res = decodeSafetensors(file(raw, [0, 0, 128, 63]));
    expect(Object.keys(res.tensors)).toEqual(['__proto__']);
    expect(Object.getPrototypeOf(res.tensors)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(res.metadata, '__proto__')?.value).toBe('v');
  });

  it('reads with verifyChecksum: false a file whose data no longer matches its checksum', () => {
    const bytes = encodeSafetensors({ x: f32([1], [1]) });
    bytes[bytes.length - 1] ^= 0x01;
    rejects(bytes, /checksum mismatch/);
    const out = decodeSafetensors(bytes, { verifyChecksum: false });
    expect(out.checksum).toBe('unchecked');
    expect(out.tensors.x!.item()).not.toBe(1);
  });
});

describe('decodeSafetensors rejects malformed files with ArgumentError', () => {
  const one = (dtype = 'F32', shape: unknown = [1], offsets: unknown = [0, 4]): object => ({
    x: entry(dtype, shape, offsets),
  });
  const four = [0, 0, 0, 0];

  it('bad arguments', () => {
    rejects(new ArrayBuffer(16) as unknown as Uint8Array, /bytes must be a Uint8Array, got/);
    rejects([1, 2, 3] as unknown as Uint8Array, /bytes must be a Uint8Array/);
    rejects(new Uint8Array(16), /options must be an object/, 5 as unknown as DecodeSafetensorsOptions);
    rejects(new Uint8Array(16), /options.verifyChecksum must be a boolean/, {
      verifyChecksum: 1 as unknown as boolean,
    });
  });

  it('files shorter than 8 bytes', () => {
    rejects(new Uint8Array(0), /file is 0 bytes; need at least 8/);
    rejects(new Uint8Array(7), /file is 7 bytes; need at least 8/);
  });

  it('header length beyond the file, absurd, or zero', () => {
    const f = file(one(), four);
    new DataView(f.buffer).setUint32(0, f.length - 7, true);
    rejects(f, /header length \d+ \(bytes 0-7\) runs past the end of the file \(\d+ bytes\)/);
    const g = new Uint8Array(16);
    new DataView(g.buffer).setUint32(0, 100_000_001, true);
    rejects(g, /header length 100000001 .* exceeds the 100000000-byte limit/);
    new DataView(g.buffer).setUint32(0, 0, true);
    new DataView(g.buffer).setUint32(4, 256, true);
    rejects(g, /header length 1099511627776 .* exceeds/);
    rejects(new Uint8Array(8), /header length is 0/);
  });

  it('headers that are not UTF-8, not JSON or not an object', () => {
    const bad = file('{"x":1}');
    bad[10] = 0xff;
    rejects(bad, /header \(8 bytes\) is not valid UTF-8/);
    const bom = file('\ufeff{}');
    rejects(bom, /header starts with U\+FEFF; need '\{'/);
    rejects(file(' {}'), /header starts with ' '; need '\{'/);
    rejects(file('[]'), /header starts with '\['; need '\{'/);
    rejects(file('"x"'), /header starts with '"'/);
    rejects(
      file('{"x":'),
      /header JSON is invalid at character \d+: unexpected the end of the header; need a JSON value/,
    );
    rejects(file('{"x":{}} x'), /unexpected 'x' after the end of the header object; need only whitespace padding/);
    rejects(file('{}\u0000\u0000\u0000\u0000\u0000\u0000'), /unexpected U\+0000 after the end of the header object/);
    rejects(file("{'x':1}"), /need a quoted key/);
    rejects(file('{"x":{"dtype":"F32",}}'), /need a quoted key/);
    rejects(file('{"x" 1}'), /need ':'/);
    rejects(file('{"x":[1 2]}'), /need ',' or '\]'/);
    rejects(file('{"x":"a\u0001"}'), /raw control character U\+0001 in a string/);
    rejects(file('{"x":"\\q"}'), /bad escape '\\q'/);
    rejects(file('{"x":"\\u12g4"}'), /bad \\u escape/);
    rejects(file('{"x":"\\udc00"}'), /unpaired low surrogate/);
    rejects(file('{"x":"\\ud800x"}'), /unpaired high surrogate/);
    rejects(file('{"x":"abc'), /unterminated string/);
    rejects(file('{"x":-}'), /malformed number/);
    rejects(file('{"x":tru}'), /need a JSON value/);
    const deep = `{"x":${'['.repeat(5000)}${']'.repeat(5000)}}`;
    rejects(file(deep), /nesting deeper than 64 levels/);
    rejects(
      file(
        '{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}',
        new Uint8Array(8),
      ),
      /duplicate key "x"; keys must be unique/,
    );
  });

  it('entries that are not objects, miss keys or have extra keys', () => {
    rejects(file({ x: 5 }), /tensor "x": entry is 5; need an object \{dtype, shape, data_offsets\}/);
    rejects(file({ x: [1] }), /tensor "x": entry is an array of length 1/);
    rejects(file({ x: { shape: [1], data_offsets: [0, 4] } }, four), /tensor "x": missing "dtype"/);
    rejects(file({ x: { dtype: 'F32', data_offsets: [0, 4] } }, four), /tensor "x": missing "shape"/);
    rejects(file({ x: { dtype: 'F32', shape: [1] } }, four), /tensor "x": missing "data_offsets"/);
    rejects(
      file({ x: { ...entry('F32', [1], [0, 4]), offsets: 1 } }, four),
      /tensor "x": unexpected key "offsets"; need exactly dtype, shape, data_offsets/,
    );
  });

  it('dtypes that are unknown or not representable, naming them', () => {
    rejects(file(one('F33'), four), /tensor "x": unknown dtype "F33"; need one of "F32", "F64", "I32", "BOOL"/);
    rejects(file(one('f32'), four), /unknown dtype "f32"/);
    for (const dt of ['F16', 'BF16', 'I64', 'U8', 'I8', 'U64', 'F8_E4M3']) {
      rejects(
        file(one(dt), four),
        new RegExp(`tensor "x": dtype "${dt}" is a safetensors dtype negcache cannot represent`),
      );
    }
    rejects(file(one(7 as unknown as string), four), /tensor "x": dtype is 7; need one of/);
  });

  it('shapes that are not arrays of non-negative integers', () => {
    rejects(file(one('F32', 4), four), /tensor "x": shape is 4; need an array of non-negative integers/);
    rejects(file(one('F32', [-1]), four), /tensor "x": shape\[0\] is -1; need a non-negative integer/);
    rejects(file(one('F32', [1, 1.5]), four), /shape\[1\] is 1.5; need a non-negative integer/);
    rejects(
      file('{"x":{"dtype":"F32","shape":[1e0],"data_offsets":[0,4]}}', four),
      /shape\[0\] is 1e0; need a non-negative integer/,
    );
    rejects(file('{"x":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}}', four), /shape\[0\] is 1.0/);
    rejects(file('{"x":{"dtype":"F32","shape":[-0],"data_offsets":[0,0]}}'), /shape\[0\] is -0/);
    rejects(
      file('{"x":{"dtype":"F32","shape":[9007199254740993],"data_offsets":[0,4]}}', four),
      /shape\[0\] is 9007199254740993/,
    );
    rejects(file(one('F32', ['1']), four), /shape\[0\] is "1"/);
    rejects(file(one('F32', [null]), four), /shape\[0\] is null/);
    rejects(
      file(one('BOOL', [65536, 65536], [0, 0])),
      /shape \[65536,65536\] has 4294967296 elements; need at most 2\^31-1/,
    );
  });

  it('data_offsets that are not two integers with begin <= end', () => {
    rejects(file(one('F32', [1], 4), four), /data_offsets is 4; need \[begin, end\]/);
    rejects(file(one('F32', [1], [0, 4, 8]), four), /data_offsets is an array of length 3; need \[begin, end\]/);
    rejects(file(one('F32', [1], [-4, 0]), four), /data_offsets is \[-4, 0\]; need two non-negative integers/);
    rejects(file(one('F32', [1], [0, 4.5]), four), /data_offsets is \[0, 4.5\]/);
    rejects(file(one('F32', [1], [0, '4']), four), /data_offsets is \[0, "4"\]/);
    rejects(file(one('F32', [0], [4, 0]), four), /data_offsets \[4, 0\] has begin > end; need begin <= end/);
  });

  it('byte lengths that do not match the shape and dtype', () => {
    rejects(
      file(one('F32', [2], [0, 4]), four),
      /data_offsets \[0, 4\] span 4 bytes; need 8 for shape \[2\] F32 \(2 elements x 4 bytes\)/,
    );
    rejects(file(one('F64', [1], [0, 4]), four), /span 4 bytes; need 8 for shape \[1\] F64/);
    rejects(file(one('BOOL', [3], [0, 4]), four), /span 4 bytes; need 3/);
  });

  it('offsets outside the data buffer', () => {
    rejects(
      file(one('F32', [1], [0, 4]), [0, 0]),
      /data_offsets \[0, 4\] lie outside the data buffer \(2 bytes; file truncated\?\); need end <= 2/,
    );
    rejects(file(one('F32', [0], [9, 9]), four), /data_offsets \[9, 9\] lie outside the data buffer/);
  });

  it('overlapping ranges, gaps, trailing bytes', () => {
    const eight = new Uint8Array(8);
    rejects(
      file({ a: entry('F32', [1], [0, 4]), b: entry('F32', [1], [0, 4]) }, four),
      /tensors "a" \[0, 4\] and "b" \[0, 4\] overlap/,
    );
    rejects(
      file({ a: entry('F64', [1], [0, 8]), b: entry('F32', [1], [4, 8]) }, eight),
      /tensors "a" \[0, 8\] and "b" \[4, 8\] overlap; need disjoint, contiguous data ranges/,
    );
    rejects(
      file({ a: entry('F64', [1], [0, 8]), b: entry('F32', [0], [4, 4]) }, eight),
      /tensors "a" \[0, 8\] and "b" \[4, 4\] overlap/,
    );
    rejects(
      file({ a: entry('F32', [1], [4, 8]) }, eight),
      /data bytes \[0, 4\) belong to no tensor \(gap before "a"\)/,
    );
    rejects(
      file({ a: entry('F32', [1], [0, 4]), b: entry('BOOL', [1], [5, 6]) }, new Uint8Array(6)),
      /data bytes \[4, 5\) belong to no tensor \(gap before "b"\)/,
    );
    rejects(
      file({ a: entry('F32', [1], [0, 4]) }, eight),
      /data bytes \[4, 8\) at the end of the file belong to no tensor \(4 trailing bytes\)/,
    );
    rejects(file({}, [1]), /data bytes \[0, 1\) at the end of the file belong to no tensor/);
  });

  it('__metadata__ that does not map strings to strings', () => {
    rejects(
      file({ __metadata__: [] }),
      /__metadata__ is an array of length 0; need an object mapping strings to strings/,
    );
    rejects(file({ __metadata__: 'x' }), /__metadata__ is "x"; need an object/);
    rejects(file({ __metadata__: { a: 1 } }), /__metadata__\["a"\] is 1; need a string/);
    rejects(file({ __metadata__: { a: null } }), /__metadata__\["a"\] is null; need a string/);
    rejects(file({ __metadata__: { a: {} } }), /__metadata__\["a"\] is an object; need a string/);
  });

  it('bool bytes other than 0 or 1', () => {
    rejects(
      file({ m: entry('BOOL', [3], [0, 3]) }, [1, 0, 2]),
      /tensor "m": bool element 2 is stored as byte 2; need 0 or 1/,
    );
  });

  it('bad, mismatched or missing checksums', () => {
    const good = encodeSafetensors({ x: f32([1, 2], [2]) }, { k: 'v' });
    const text = new TextDecoder().decode(good.subarray(8, 8 + good[0]!));
    const hex = /"negcache\.crc32":"([0-9a-f]{8})"/.exec(text)![1]!;
    const upper = file(text.replace(hex, hex.toUpperCase()).trimEnd(), good.subarray(8 + good[0]!));
    rejects(upper, /__metadata__\["negcache.crc32"\] is "[0-9A-F]{8}"; need 8 lowercase hex digits/);
    rejects(file({ __metadata__: { 'negcache.crc32': '1234' } }), /need 8 lowercase hex digits/);
    rejects(
      file('{"__metadata__":{"negcache.crc32":"\\u00300000000"}}'),
      /need 8 lowercase hex digits, written without escapes/,
    );
    const wrong = good.slice();
    const at = 8 + text.indexOf(hex);
    wrong[at] = wrong[at] === 0x30 ? 0x31 : 0x30;
    rejects(
      wrong,
      /checksum mismatch: negcache.crc32 says [0-9a-f]{8}, the file hashes to [0-9a-f]{8}; the file is corrupted/,
    );
    rejects(
      encodeSafetensors({ x: f32([1], [1]) }, {}, { checksum: false }),
      /no "negcache.crc32" in __metadata__ but requireChecksum is set/,
      { requireChecksum: true },
    );
  });
});

describe('encodeSafetensors rejects bad input with ArgumentError', () => {
  it('names each problem', () => {
    encodeRejects(
      () => encodeSafetensors(null as unknown as Record<string, Tensor>),
      /tensors must be an object mapping names to tensors, got null/,
    );
    encodeRejects(
      () => encodeSafetensors([f32([1], [1])] as unknown as Record<string, Tensor>),
      /tensors must be an object/,
    );
    encodeRejects(
      () => encodeSafetensors(f32([1], [1]) as unknown as Record<string, Tensor>),
      /tensors must be an object/,
    );
    encodeRejects(() => encodeSafetensors(new Map() as unknown as Record<string, Tensor>), /tensors must be an object/);
    encodeRejects(
      () => encodeSafetensors({ w: new Float32Array(2) as unknown as Tensor }),
      /tensors\["w"\] must be a Tensor, got a Float32Array/,
    );
    encodeRejects(() => encodeSafetensors({ __metadata__: f32([1], [1]) }), /tensor name "__metadata__" is reserved/);
    encodeRejects(() => encodeSafetensors({ ['a\ud800']: f32([1], [1]) }), /contains an unpaired UTF-16 surrogate/);
    encodeRejects(
      () => encodeSafetensors({}, 'x' as unknown as Record<string, string>),
      /metadata must be an object mapping strings to strings, got "x"/,
    );
    encodeRejects(
      () => encodeSafetensors({}, { n: 5 as unknown as string }),
      /metadata\["n"\] must be a string, got 5/,
    );
    encodeRejects(
      () => encodeSafetensors({}, { [SAFETENSORS_CHECKSUM_KEY]: 'x' }),
      /metadata key "negcache.crc32" is reserved/,
    );
    encodeRejects(
      () => encodeSafetensors({}, { k: '\udc00' }),
      /metadata entry "k" contains an unpaired UTF-16 surrogate/,
    );
    encodeRejects(
      () => encodeSafetensors({}, {}, { checksum: 'yes' as unknown as boolean }),
      /options.checksum must be a boolean, got "yes"/,
    );
    encodeRejects(() => encodeSafetensors({}, {}, 3 as unknown as { checksum: boolean }), /options must be an object/);
  });
});

describe('corruption never decodes silently into different tensors', () => {
  const fileArb = fc
    .tuple(tensorsArb, metadataArb)
    .filter(([t]) => Object.keys(t).length > 0)
    .map(([t, m]) => ({ tensors: t, metadata: m, bytes: encodeSafetensors(t, m) }));

  it('a changed byte anywhere is rejected (with a checksum), or yields the same tensors when only the checksum key was hit', () => {
    fc.assert(
      fc.property(fileArb, fc.nat(), fc.integer({ min: 1, max: 255 }), ({ tensors, bytes }, where, xor) => {
        const bad = bytes.slice();
        bad[where % bad.length] ^= xor;
        let out: ReturnType<typeof decodeSafetensors> | null = null;
        try {
          out = decodeSafetensors(bad);
        } catch (e) {
          expect(e).toBeInstanceOf(ArgumentError);
        }
        if (out !== null) {
          // only possible when the flip renamed the checksum key: the data is untouched
          expect(out.checksum).toBe('absent');
          expect(sameTensors(out.tensors, tensors)).toBe(true);
        }
        expect(() => decodeSafetensors(bad, { requireChecksum: true })).toThrow(ArgumentError);
      }),
      params(300),
    );
  });

  it('several random byte changes are rejected when the checksum is required', () => {
    fc.assert(
      fc.property(
        fileArb,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 2, maxLength: 6 }),
        ({ bytes }, flips) => {
          const bad = bytes.slice();
          for (const [where, xor] of flips) bad[where % bad.length] ^= xor;
          fc.pre(bad.some((b, i) => b !== bytes[i]));
          expect(() => decodeSafetensors(bad, { requireChecksum: true })).toThrow(ArgumentError);
        },
      ),
      params(200),
    );
  });

  it('truncation and appended bytes are always rejected, with or without a checksum', () => {
    fc.assert(
      fc.property(
        tensorsArb,
        fc.boolean(),
        fc.nat(),
        fc.uint8Array({ minLength: 1, maxLength: 16 }),
        (tensors, checksum, cut, extra) => {
          const bytes = encodeSafetensors(tensors, undefined, { checksum });
          const short = bytes.subarray(0, cut % bytes.length);
          expect(() => decodeSafetensors(short)).toThrow(ArgumentError);
          const long = new Uint8Array(bytes.length + extra.length);
          long.set(bytes);
          long.set(extra, bytes.length);
          expect(() => decodeSafetensors(long)).toThrow(ArgumentError);
        },
      ),
      params(200),
    );
  });

  it('without a checksum, corruption never crashes with anything but ArgumentError', () => {
    fc.assert(
      fc.property(tensorsArb, fc.nat(), fc.integer({ min: 1, max: 255 }), (tensors, where, xor) => {
        const bytes = encodeSafetensors(tensors, { k: 'v' }, { checksum: false });
        bytes[where % bytes.length] ^= xor;
        try {
          decodeSafetensors(bytes);
        } catch (e) {
          expect(e).toBeInstanceOf(ArgumentError);
        }
      }),
      params(300),
    );
  });
});

// ---------------------------------------------------------------------------
// Cross-check against an independent reader/writer written with json + struct + numpy.

const PYTHON_READER = String.raw`
import json, struct, sys, zlib, math
import numpy as np
DT = {'F32': '<f4', 'F64': '<f8', 'I32': '<i4', 'BOOL': '|b1'}
def enc(v):
    if isinstance(v, bool): return v
    if isinstance(v, int): return v
    if math.isnan(v): return 'nan'
    if math.isinf(v): return 'inf' if v > 0 else '-inf'
    if v == 0 and math.copysign(1.0, v) < 0: return '-0'
    return repr(v)
out = []
for path in sys.argv[1:]:
    raw = open(path, 'rb').read()
    (n,) = struct.unpack('<Q', raw[:8])
    header = json.loads(raw[8:8 + n].decode('utf-8'))
    meta = header.pop('__metadata__', None) or {}
    data = raw[8 + n:]
    crc_ok = None
    if 'negcache.crc32' in meta:
        v = meta['negcache.crc32']
        key = b'"negcache.crc32":"'
        i = raw.index(key + v.encode()) + len(key)
        crc_ok = format(zlib.crc32(raw[:i] + b'00000000' + raw[i + 8:]), '08x') == v
    end = max([info['data_offsets'][1] for info in header.values()] + [0])
    tensors = {}
    for name, info in header.items():
        b, e = info['data_offsets']
        arr = np.frombuffer(data[b:e], dtype=DT[info['dtype']]).reshape(info['shape'])
        tensors[name] = {'dtype': info['dtype'], 'shape': list(arr.shape),
                         'hex': arr.tobytes().hex(), 'values': [enc(x) for x in arr.ravel().tolist()]}
    out.append({'metadata': meta, 'tensors': tensors, 'crc_ok': crc_ok, 'covered': end == len(data), 'aligned': (8 + n) % 8 == 0})
print(json.dumps(out))
`;

const PYTHON_WRITER = String.raw`
import json, struct, sys
import numpy as np
arrays = {
    'weight': np.array([[1.5, -0.0, np.inf], [np.nan, 1e-40, -3.25]], dtype='<f4'),
    'ids': np.array([2**31 - 1, -2**31, 16777217, -16777217, 0], dtype='<i4'),
    'mask': np.array([[True, False], [False, True]]),
    'pi': np.array(np.pi, dtype='<f8'),
    'empty': np.zeros((0, 3), dtype='<f4'),
    'b.bias': np.array([-1e300, 5e-324], dtype='<f8'),
}
# reference-style order: larger item size first, then name (not the name order negcache writes)
order = sorted(arrays, key=lambda k: (-arrays[k].dtype.itemsize, k))
names = {'<f4': 'F32', '<f8': 'F64', '<i4': 'I32', '|b1': 'BOOL'}
header = {'__metadata__': {'format': 'np', 'note': 'caf\u00e9'}}
blobs, off = [], 0
for k in order:
    a = arrays[k]
    b = a.tobytes()
    header[k] = {'dtype': names[a.dtype.str], 'shape': list(a.shape), 'data_offsets': [off, off + len(b)]}
    blobs.append(b); off += len(b)
h = json.dumps(header, separators=(',', ':')).encode('utf-8')
h += b' ' * ((8 - len(h) % 8) % 8)
open(sys.argv[1], 'wb').write(struct.pack('<Q', len(h)) + h + b''.join(blobs))
`;

function pyValue(v: unknown): number | boolean {
  if (typeof v === 'boolean' || typeof v === 'number') return v;
  const s = v as string;
  return s === 'nan' ? NaN : s === 'inf' ? Infinity : s === '-inf' ? -Infinity : s === '-0' ? -0 : Number(s);
}

function hexOf(b: Uint8Array): string {
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
}

describe('cross-check with an independent Python reader/writer (json + struct + numpy)', () => {
  const probe = spawnSync('python3', ['-c', 'import numpy, json, struct, zlib'], { encoding: 'utf8' });
  const havePython = probe.status === 0;
  if (!havePython)
    console.warn(
      `NOTE: python3 with numpy not found; skipping the Python cross-check (${probe.error?.message ?? probe.stderr})`,
    );
  const dir = mkdtempSync(join(tmpdir(), 'negcache-safetensors-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.runIf(havePython)(
    'Python reads files written by encodeSafetensors with the same values, and verifies negcache.crc32',
    () => {
      const samples = fc.sample(fc.tuple(tensorsArb, metadataArb), { numRuns: 30, seed: 20241126 });
      samples.push([
        {
          w: f32([1.5, -0, Infinity, NaN, 1e-40, -3.25], [2, 3]),
          ids: i32(INT_SPECIAL, [INT_SPECIAL.length]),
          m: bool([true, false], [2, 1]),
          s: wrap(new Float64Array([Math.PI]), [], 'float64'),
          e: f32([], [0, 4]),
        },
        { format: 'negcache', 'caf\u00e9': '\u{1F600}' },
      ]);
      const paths = samples.map(([t, m], i) => {
        const p = join(dir, `f${i}.safetensors`);
        writeFileSync(p, encodeSafetensors(t, m, { checksum: i % 3 !== 2 }));
        return p;
      });
      const run = spawnSync('python3', ['-c', PYTHON_READER, ...paths], { encoding: 'utf8', maxBuffer: 64 << 20 });
      expect(run.stderr).toBe('');
      expect(run.status).toBe(0);
      const results = JSON.parse(run.stdout) as {
        metadata: Record<string, string>;
        tensors: Record<string, { dtype: string; shape: number[]; hex: string; values: unknown[] }>;
        crc_ok: boolean | null;
        covered: boolean;
        aligned: boolean;
      }[];
      expect(results.length).toBe(samples.length);
      const ST = { float32: 'F32', float64: 'F64', int32: 'I32', bool: 'BOOL' } as const;
      results.forEach((r, i) => {
        const [tensors, metadata] = samples[i]!;
        expect(r.crc_ok).toBe(i % 3 !== 2 ? true : null);
        expect(r.covered).toBe(true);
        expect(r.aligned).toBe(true);
        const { [SAFETENSORS_CHECKSUM_KEY]: _crc, ...meta } = r.metadata;
        expect(meta).toEqual({ ...metadata });
        expect(Object.keys(r.tensors).sort()).toEqual(Object.keys(tensors).sort());
        for (const [name, t] of Object.entries(tensors)) {
          const py = r.tensors[name]!;
          expect(py.dtype).toBe(ST[t.dtype]);
          expect(py.shape).toEqual([...t.shape]);
          expect(py.hex).toBe(hexOf(bytesOf(t)));
          const values = py.values.map(pyValue);
          const expected = t.dtype === 'bool' ? [...unsafeData(t)].map((b) => b !== 0) : [...unsafeData(t)];
          expect(values.length).toBe(expected.length);
          values.forEach((v, k) =>
            expect(Object.is(v, expected[k]) || (Number.isNaN(v) && Number.isNaN(expected[k] as number))).toBe(true),
          );
        }
      });
    },
  );

  it.runIf(havePython)('decodeSafetensors reads a file written by the independent Python writer', () => {
    const p = join(dir, 'py.safetensors');
    const run = spawnSync('python3', ['-c', PYTHON_WRITER, p], { encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const out = decodeSafetensors(new Uint8Array(readFileSync(p)));
    expect(out.checksum).toBe('absent');
    expect(out.metadata).toEqual({ format: 'np', note: 'caf\u00e9' });
    expect(Object.keys(out.tensors)).toEqual(['b.bias', 'empty', 'ids', 'mask', 'pi', 'weight']);
    const w = out.tensors.weight!;
    expect(w.dtype).toBe('float32');
    expect(w.shape).toEqual([2, 3]);
    const wv = w.dataSync();
    expect([wv[0], wv[2], wv[5]]).toEqual([1.5, Infinity, -3.25]);
    expect(Object.is(wv[1], -0)).toBe(true);
    expect(Number.isNaN(wv[3])).toBe(true);
    expect(wv[4]).toBe(Math.fround(1e-40));
    expect(out.tensors.ids!.toArray()).toEqual([2 ** 31 - 1, -(2 ** 31), 16777217, -16777217, 0]);
    expect(out.tensors.mask!.toArray()).toEqual([
      [true, false],
      [false, true],
    ]);
    expect(out.tensors.pi!.shape).toEqual([]);
    expect(out.tensors.pi!.item()).toBe(Math.PI);
    expect(out.tensors.empty!.shape).toEqual([0, 3]);
    expect(out.tensors['b.bias']!.toArray()).toEqual([-1e300, 5e-324]);
    // and re-encoding keeps the values (negcache writes its own order)
    expect(sameTensors(decodeSafetensors(encodeSafetensors(out.tensors, out.metadata)).tensors, out.tensors)).toBe(
      true,
    );
  });
});
