import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  FunctionBuilder,
  ModuleBuilder,
  sleb128,
  uleb128,
  webAssemblyApi,
} from '../../../src/tensor/kernels/wasm/emitter.js';
import { buildKernelModule } from '../../../src/tensor/kernels/wasm/kernels.js';
import { params } from '../../util/props.js';

const WA = webAssemblyApi()!;

function decodeU(bytes: number[]): number {
  let result = 0,
    shift = 0;
  for (const b of bytes) {
    result += (b & 0x7f) * 2 ** shift;
    shift += 7;
    if ((b & 0x80) === 0) break;
  }
  return result;
}
function decodeS(bytes: number[]): number {
  let result = 0,
    shift = 0,
    b = 0;
  for (b of bytes) {
    result += (b & 0x7f) * 2 ** shift;
    shift += 7;
    if ((b & 0x80) === 0) break;
  }
  if (b & 0x40) result -= 2 ** shift;
  return result;
}

function instantiate(mod: ModuleBuilder, memory?: unknown): Record<string, (...a: number[]) => number> {
  const bytes = mod.emit();
  expect(WA.validate(bytes)).toBe(true);
  return new WA.Instance(new WA.Module(bytes), memory ? { env: { memory } } : {}).exports as Record<
    string,
    (...a: number[]) => number
  >;
}

describe('LEB128', () => {
  it('encodes the spec examples', () => {
    expect(uleb128(0)).toEqual([0]);
    expect(uleb128(127)).toEqual([0x7f]);
    expect(uleb128(128)).toEqual([0x80, 0x01]);
    expect(uleb128(624485)).toEqual([0xe5, 0x8e, 0x26]);
    expect(uleb128(0xffffffff)).toEqual([0xff, 0xff, 0xff, 0xff, 0x0f]);
    expect(sleb128(0)).toEqual([0]);
    expect(sleb128(-1)).toEqual([0x7f]);
    expect(sleb128(63)).toEqual([0x3f]);
    expect(sleb128(64)).toEqual([0xc0, 0x00]);
    expect(sleb128(-64)).toEqual([0x40]);
    expect(sleb128(-65)).toEqual([0xbf, 0x7f]);
    expect(sleb128(-123456)).toEqual([0xc0, 0xbb, 0x78]);
    // a u32 above 2^31 is the i32 with the same bits
    expect(sleb128(0xffffffff)).toEqual([0x7f]);
    expect(() => uleb128(-1)).toThrow(RangeError);
    expect(() => sleb128(2 ** 32)).toThrow(RangeError);
  });

  it('round-trips every u32 and i32', () => {
    fc.assert(
      fc.property(fc.nat({ max: 0xffffffff }), (v) => decodeU(uleb128(v)) === v),
      params(500),
    );
    fc.assert(
      fc.property(fc.integer({ min: -0x80000000, max: 0x7fffffff }), (v) => decodeS(sleb128(v)) === v),
      params(500),
    );
  });
});

describe('FunctionBuilder / ModuleBuilder', () => {
  it('builds a module that adds two i32 and runs', () => {
    const fn = new FunctionBuilder('add', ['i32', 'i32'], ['i32']);
    fn.get(fn.param(0)).get(fn.param(1)).i32Add();
    const mod = new ModuleBuilder();
    mod.add(fn);
    const ex = instantiate(mod);
    expect(ex.add!(2, 3)).toBe(5);
    expect(ex.add!(0x7fffffff, 1)).toBe(-0x80000000); // i32 wraps
  });

  it('computes branch depths for nested loops and blocks', () => {
    // sum over i < n, j < i of (i ^ j), with a forLoop and an explicit block/loop
    const fn = new FunctionBuilder('nested', ['i32'], ['i32']);
    const n = fn.param(0),
      i = fn.local('i32'),
      j = fn.local('i32'),
      acc = fn.local('i32');
    fn.forLoop(
      i,
      () => fn.i32Const(0),
      () => fn.get(n),
      1,
      () => {
        fn.i32Const(0).set(j);
        fn.block((exit) =>
          fn.loop((top) => {
            fn.get(j).get(i).i32GeS().brIf(exit);
            fn.get(acc).get(i).get(j).i32Xor().i32Add().set(acc);
            fn.get(j).i32Const(1).i32Add().set(j);
            fn.br(top);
          }),
        );
      },
    );
    fn.get(acc);
    const mod = new ModuleBuilder();
    mod.add(fn);
    const ex = instantiate(mod);
    for (const nn of [0, 1, 5, 37]) {
      let want = 0;
      for (let a = 0; a < nn; a++) for (let b = 0; b < a; b++) want += a ^ b;
      expect(ex.nested!(nn)).toBe(want);
    }
  });

  it('emits SIMD: f32x4 arithmetic through an imported memory, calls between functions, if/else', () => {
    const memory = new WA.Memory({ initial: 1 });
    const mod = new ModuleBuilder().importMemory('env', 'memory', 1);
    // helper (index 0): returns its argument doubled, not exported
    const dbl = new FunctionBuilder('dbl', ['f32'], ['f32']);
    dbl.get(dbl.param(0)).get(dbl.param(0)).f32Add();
    const dblIndex = mod.add(dbl, null);
    // axpy4(x, y, a): y[0..4] = a*x[0..4] + y[0..4]; returns dbl(lane 3) or -1 if lane 3 < 0
    const fn = new FunctionBuilder('axpy4', ['i32', 'i32', 'f32'], ['f32']);
    const [x, y, a] = [fn.param(0), fn.param(1), fn.param(2)];
    const out = fn.local('f32');
    fn.get(y).get(a).f32x4Splat().get(x).v128Load().f32x4Mul().get(y).v128Load().f32x4Add().v128Store();
    fn.get(y).f32Load(12).f32Const(0).f32Lt();
    fn.if(
      () => {
        fn.f32Const(-1).set(out);
      },
      () => {
        fn.get(y).f32Load(12).call(dblIndex).set(out);
      },
    );
    fn.get(out);
    mod.add(fn);
    const ex = instantiate(mod, memory);
    const f = new Float32Array(memory.buffer);
    f.set([1, 2, 3, 4], 4);
    f.set([10, 20, 30, 40], 8);
    expect(ex.axpy4!(16, 32, 0.5)).toBe(84);
    expect(Array.from(f.subarray(8, 12))).toEqual([10.5, 21, 31.5, 42]);
    f.set([-100, -100, -100, -100], 4);
    expect(ex.axpy4!(16, 32, 1)).toBe(-1);
  });

  it('produces modules the validator rejects when the stack is wrong (so opcode mistakes cannot pass silently)', () => {
    const fn = new FunctionBuilder('bad', [], ['i32']);
    fn.i32Const(1).i32Const(2); // two values left for one result
    const mod = new ModuleBuilder();
    mod.add(fn);
    expect(WA.validate(mod.emit())).toBe(false);
    expect(() =>
      new FunctionBuilder('x', []).br(
        new (class {
          depth = 3;
          kind = 'block' as const;
        })(),
      ),
    ).toThrow(RangeError);
  });

  it('the kernel module validates and is deterministic', () => {
    const a = buildKernelModule();
    const b = buildKernelModule();
    expect(WA.validate(a)).toBe(true);
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
    // other tile shapes are valid too
    for (const cfg of [
      { mrv: 1, nr: 1, unroll: 1, fma: false },
      { mrv: 3, nr: 3, unroll: 4, fma: false },
      { mrv: 4, nr: 4, unroll: 2, fma: false },
    ]) {
      expect(WA.validate(buildKernelModule(cfg))).toBe(true);
    }
  });
});
