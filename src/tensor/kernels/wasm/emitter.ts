/**
 * A small WebAssembly binary emitter, written to be audited.
 *
 * Every kernel negcache runs as WebAssembly is generated at run time by
 * TypeScript in this repository (kernels.ts, src/scan/wasmKernels.ts) through this file: there is no
 * toolchain, no .wasm blob and no text-format assembler. The emitter covers
 * only what the kernels use:
 *
 *  - module layout (spec §5.5): magic + version, then the type (1), import
 *    (2, one memory), function (3), export (7) and code (10) sections;
 *  - LEB128 integers (unsigned for sizes/indices, signed for i32.const);
 *  - a FunctionBuilder with one method per instruction, named after the
 *    instruction (`i32Add` emits `i32.add`), structured control flow through
 *    callbacks (`fn.loop((top) => { ...; fn.brIf(top); })`) so that branch
 *    depths are computed, never written by hand;
 *  - the 128-bit SIMD proposal (standardised, shipped in V8 9.1 / Node 16.4):
 *    its instructions are the byte 0xfd followed by a LEB128 opcode.
 *
 * Opcode tables below are copied from the WebAssembly core specification
 * (§5.4, "Instructions") and the SIMD instruction list; each entry carries the
 * instruction's text name. A mistake in an opcode number produces a module
 * that fails WebAssembly.validate (tested), not silent misbehaviour, because
 * the validator type-checks every instruction.
 */

/** Value types (spec §5.3.1). */
export const ValType = {
  i32: 0x7f,
  i64: 0x7e,
  f32: 0x7d,
  f64: 0x7c,
  v128: 0x7b,
} as const;
export type ValTypeName = keyof typeof ValType;

/** Single-byte core opcodes used by the kernels (spec §5.4). */
export const Op = {
  unreachable: 0x00,
  nop: 0x01,
  block: 0x02, // block bt instr* end
  loop: 0x03, // loop bt instr* end (a branch to it jumps to the top)
  if: 0x04, // if bt instr* (else instr*)? end
  else: 0x05,
  end: 0x0b,
  br: 0x0c, // br labelidx
  br_if: 0x0d, // br_if labelidx (pops an i32 condition)
  return: 0x0f,
  call: 0x10, // call funcidx
  drop: 0x1a,
  select: 0x1b, // select (a, b, cond) -> cond ? a : b
  local_get: 0x20,
  local_set: 0x21,
  local_tee: 0x22,
  i32_load: 0x28, // memarg
  f32_load: 0x2a,
  f64_load: 0x2b,
  i32_store: 0x36,
  f32_store: 0x38,
  f64_store: 0x39,
  memory_size: 0x3f,
  i32_const: 0x41, // signed LEB128
  f32_const: 0x43, // 4 bytes little endian
  f64_const: 0x44, // 8 bytes little endian
  i32_eqz: 0x45,
  i32_eq: 0x46,
  i32_ne: 0x47,
  i32_lt_s: 0x48,
  i32_lt_u: 0x49,
  i32_gt_s: 0x4a,
  i32_gt_u: 0x4b,
  i32_le_s: 0x4c,
  i32_le_u: 0x4d,
  i32_ge_s: 0x4e,
  i32_ge_u: 0x4f,
  f32_eq: 0x5b,
  f32_ne: 0x5c,
  f32_lt: 0x5d,
  f32_gt: 0x5e,
  f32_le: 0x5f,
  f32_ge: 0x60,
  i32_add: 0x6a,
  i32_sub: 0x6b,
  i32_mul: 0x6c,
  i32_div_u: 0x6e,
  i32_rem_u: 0x70,
  i32_and: 0x71,
  i32_or: 0x72,
  i32_xor: 0x73,
  i32_shl: 0x74,
  i32_shr_s: 0x75,
  i32_shr_u: 0x76,
  f32_abs: 0x8b,
  f32_neg: 0x8c,
  f32_sqrt: 0x91,
  f32_add: 0x92,
  f32_sub: 0x93,
  f32_mul: 0x94,
  f32_div: 0x95,
  f32_min: 0x96,
  f32_max: 0x97,
  f64_add: 0xa0,
  f64_sub: 0xa1,
  f64_mul: 0xa2,
  f64_div: 0xa3,
  i32_trunc_f32_s: 0xa8,
  f32_convert_i32_s: 0xb2,
  f32_convert_i32_u: 0xb3,
  f64_promote_f32: 0xbb,
  i32_reinterpret_f32: 0xbc,
  f32_reinterpret_i32: 0xbe,
  simd_prefix: 0xfd, // followed by a LEB128 SIMD opcode
} as const;

/** SIMD opcodes (after the 0xfd prefix) used by the kernels. */
export const SimdOp = {
  v128_load: 0x00, // memarg
  v128_load32_splat: 0x09, // memarg; load one f32/i32 and broadcast it to 4 lanes
  v128_store: 0x0b, // memarg
  v128_const: 0x0c, // 16 immediate bytes
  i8x16_shuffle: 0x0d, // 16 immediate lane indices into the 32 bytes of (a, b)
  i32x4_splat: 0x11,
  f32x4_splat: 0x13,
  i32x4_extract_lane: 0x1b, // lane immediate
  f32x4_extract_lane: 0x1f, // lane immediate
  f32x4_replace_lane: 0x20, // lane immediate
  i32x4_eq: 0x37,
  i32x4_ne: 0x38,
  i32x4_lt_s: 0x39,
  i32x4_lt_u: 0x3a,
  i32x4_gt_s: 0x3b,
  i32x4_gt_u: 0x3c,
  i32x4_le_u: 0x3e,
  f32x4_eq: 0x41,
  f32x4_ne: 0x42,
  f32x4_lt: 0x43,
  f32x4_gt: 0x44,
  f32x4_le: 0x45,
  f32x4_ge: 0x46,
  v128_not: 0x4d,
  v128_and: 0x4e,
  v128_andnot: 0x4f, // a & ~b
  v128_or: 0x50,
  v128_xor: 0x51,
  v128_bitselect: 0x52, // (a, b, mask) -> (a & mask) | (b & ~mask)
  v128_any_true: 0x53, // -> i32
  f32x4_nearest: 0x6a, // round to nearest, ties to even
  i32x4_all_true: 0xa3,
  i32x4_bitmask: 0xa4, // -> i32, bit l = sign bit of lane l
  i32x4_shl: 0xab, // (v128, i32 shift)
  i32x4_shr_s: 0xac,
  i32x4_shr_u: 0xad,
  i32x4_add: 0xae,
  i32x4_sub: 0xb1,
  i32x4_mul: 0xb5, // low 32 bits of the product (like Math.imul)
  i32x4_min_s: 0xb6,
  i32x4_max_s: 0xb8,
  f32x4_abs: 0xe0,
  f32x4_neg: 0xe1,
  f32x4_sqrt: 0xe3,
  f32x4_add: 0xe4,
  f32x4_sub: 0xe5,
  f32x4_mul: 0xe6,
  f32x4_div: 0xe7,
  f32x4_min: 0xe8, // NaN-propagating min (-0 < +0)
  f32x4_max: 0xe9, // NaN-propagating max
  f32x4_pmin: 0xea, // b < a ? b : a (the x86 minps semantics)
  f32x4_pmax: 0xeb, // a < b ? b : a
  i32x4_trunc_sat_f32x4_s: 0xf8, // NaN -> 0, saturating
  f32x4_convert_i32x4_s: 0xfa,
  f32x4_convert_i32x4_u: 0xfb,
  /**
   * Relaxed SIMD (Wasm 3.0): a·b + c, fused or not at the engine's choice
   * (one rounding with FMA hardware, two without). Modules using it validate
   * only where the engine implements relaxed SIMD.
   */
  f32x4_relaxed_madd: 0x105,
} as const;

/** Unsigned LEB128 (spec §5.2.2): 7 bits per byte, low group first, high bit = "more". */
export function uleb128(value: number, out: number[] = []): number[] {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff)
    throw new RangeError(`uleb128: ${value} is not a u32`);
  let v = value >>> 0;
  do {
    let byte = v & 0x7f;
    v >>>= 7;
    if (v !== 0) byte |= 0x80;
    out.push(byte);
  } while (v !== 0);
  return out;
}

/** Signed LEB128 of a 32-bit integer (two's complement, sign-extended from the last group). */
export function sleb128(value: number, out: number[] = []): number[] {
  if (!Number.isInteger(value) || value < -0x80000000 || value > 0xffffffff)
    throw new RangeError(`sleb128: ${value} is not an i32`);
  let v = value | 0; // a u32 above 2^31 is emitted as the i32 with the same bits
  for (;;) {
    const byte = v & 0x7f;
    v >>= 7; // arithmetic shift keeps the sign
    const done = (v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

const f32Scratch = new DataView(new ArrayBuffer(8));

/** A UTF-8 name as a vector of bytes (length-prefixed). */
function encodeName(name: string, out: number[]): void {
  const bytes = new TextEncoder().encode(name);
  uleb128(bytes.length, out);
  for (const b of bytes) out.push(b);
}

/** A local variable or parameter of a function being built. */
export class Local {
  constructor(
    readonly index: number,
    readonly type: ValTypeName,
  ) {}
}

/** A branch target: the depth at which its block/loop was opened. */
export class Label {
  constructor(
    readonly depth: number,
    readonly kind: 'block' | 'loop' | 'if',
  ) {}
}

/**
 * Builds the body of one function. Instructions are appended in order; the
 * stack discipline is the wasm one (operands first, then the instruction),
 * so `a + b` is `fn.get(a); fn.get(b); fn.i32Add();`.
 */
export class FunctionBuilder {
  readonly params: readonly ValTypeName[];
  readonly results: readonly ValTypeName[];
  private readonly localTypes: ValTypeName[] = [];
  private readonly body: number[] = [];
  private depth = 0;

  constructor(
    readonly name: string,
    params: readonly ValTypeName[],
    results: readonly ValTypeName[] = [],
  ) {
    this.params = params.slice();
    this.results = results.slice();
  }

  /** The i-th parameter as a Local. */
  param(i: number): Local {
    if (i < 0 || i >= this.params.length) throw new RangeError(`${this.name}: no parameter ${i}`);
    return new Local(i, this.params[i]!);
  }

  /** Declares a new local of the given type (zero-initialised on entry). */
  local(type: ValTypeName): Local {
    this.localTypes.push(type);
    return new Local(this.params.length + this.localTypes.length - 1, type);
  }

  // ---- raw emission -------------------------------------------------------
  private byte(b: number): this {
    this.body.push(b & 0xff);
    return this;
  }
  private simd(code: number): this {
    this.body.push(Op.simd_prefix);
    uleb128(code, this.body);
    return this;
  }
  /** memarg: log2 alignment hint, then the constant byte offset added to the address operand. */
  private memarg(alignLog2: number, offset: number): this {
    uleb128(alignLog2, this.body);
    uleb128(offset, this.body);
    return this;
  }

  // ---- structured control -------------------------------------------------
  /** `block ... end`: a branch to the label jumps past the end. */
  block(body: (exit: Label) => void): this {
    this.byte(Op.block).byte(0x40); // 0x40: the empty block type
    const label = new Label(++this.depth, 'block');
    body(label);
    this.depth--;
    return this.byte(Op.end);
  }
  /** `loop ... end`: a branch to the label jumps back to the top; falling off the end leaves the loop. */
  loop(body: (top: Label) => void): this {
    this.byte(Op.loop).byte(0x40);
    const label = new Label(++this.depth, 'loop');
    body(label);
    this.depth--;
    return this.byte(Op.end);
  }
  /** `if ... (else ...) end`, popping an i32 condition. */
  if(then: () => void, otherwise?: () => void): this {
    this.byte(Op.if).byte(0x40);
    this.depth++;
    then();
    if (otherwise) {
      this.byte(Op.else);
      otherwise();
    }
    this.depth--;
    return this.byte(Op.end);
  }
  private relativeDepth(label: Label): number {
    const rel = this.depth - label.depth;
    if (rel < 0) throw new RangeError(`${this.name}: branch to a label that is not open`);
    return rel;
  }
  br(label: Label): this {
    this.byte(Op.br);
    uleb128(this.relativeDepth(label), this.body);
    return this;
  }
  brIf(label: Label): this {
    this.byte(Op.br_if);
    uleb128(this.relativeDepth(label), this.body);
    return this;
  }
  return(): this {
    return this.byte(Op.return);
  }
  call(funcIndex: number): this {
    this.byte(Op.call);
    uleb128(funcIndex, this.body);
    return this;
  }
  drop(): this {
    return this.byte(Op.drop);
  }
  select(): this {
    return this.byte(Op.select);
  }

  /**
   * for (i = start; i < end; i += step) body(), with `start`, `end` given as
   * emitters that push an i32 (signed comparison). The test is at the top,
   * so zero iterations are fine.
   */
  forLoop(i: Local, start: () => void, end: () => void, step: number, body: (exit: Label) => void): this {
    start();
    this.set(i);
    return this.block((exit) => {
      this.loop((top) => {
        this.get(i);
        end();
        this.i32GeS().brIf(exit);
        body(exit);
        this.get(i).i32Const(step).i32Add().set(i);
        this.br(top);
      });
    });
  }

  // ---- locals -------------------------------------------------------------
  get(l: Local): this {
    this.byte(Op.local_get);
    uleb128(l.index, this.body);
    return this;
  }
  set(l: Local): this {
    this.byte(Op.local_set);
    uleb128(l.index, this.body);
    return this;
  }
  tee(l: Local): this {
    this.byte(Op.local_tee);
    uleb128(l.index, this.body);
    return this;
  }

  // ---- constants ----------------------------------------------------------
  i32Const(v: number): this {
    this.byte(Op.i32_const);
    sleb128(v, this.body);
    return this;
  }
  f32Const(v: number): this {
    this.byte(Op.f32_const);
    f32Scratch.setFloat32(0, v, true);
    for (let i = 0; i < 4; i++) this.byte(f32Scratch.getUint8(i));
    return this;
  }
  f64Const(v: number): this {
    this.byte(Op.f64_const);
    f32Scratch.setFloat64(0, v, true);
    for (let i = 0; i < 8; i++) this.byte(f32Scratch.getUint8(i));
    return this;
  }
  /** v128.const with four f32 lanes. */
  v128ConstF32(a: number, b = a, c = a, d = a): this {
    this.simd(SimdOp.v128_const);
    for (const v of [a, b, c, d]) {
      f32Scratch.setFloat32(0, v, true);
      for (let i = 0; i < 4; i++) this.byte(f32Scratch.getUint8(i));
    }
    return this;
  }
  /** v128.const with four i32 lanes. */
  v128ConstI32(a: number, b = a, c = a, d = a): this {
    this.simd(SimdOp.v128_const);
    for (const v of [a, b, c, d]) {
      f32Scratch.setInt32(0, v | 0, true);
      for (let i = 0; i < 4; i++) this.byte(f32Scratch.getUint8(i));
    }
    return this;
  }

  /** A splatted f32 constant from a provider (inline v128.const, or a constant pool load). */
  vconstF32(source: { f32(fn: FunctionBuilder, v: number): void }, v: number): this {
    source.f32(this, v);
    return this;
  }
  /** A splatted i32 constant from a provider. */
  vconstI32(source: { i32(fn: FunctionBuilder, v: number): void }, v: number): this {
    source.i32(this, v);
    return this;
  }

  // ---- memory (address operand first; `offset` is a constant byte offset) --
  i32Load(offset = 0): this {
    return this.byte(Op.i32_load).memarg(2, offset);
  }
  f32Load(offset = 0): this {
    return this.byte(Op.f32_load).memarg(2, offset);
  }
  i32Store(offset = 0): this {
    return this.byte(Op.i32_store).memarg(2, offset);
  }
  f32Store(offset = 0): this {
    return this.byte(Op.f32_store).memarg(2, offset);
  }
  f64Load(offset = 0): this {
    return this.byte(Op.f64_load).memarg(3, offset);
  }
  f64Store(offset = 0): this {
    return this.byte(Op.f64_store).memarg(3, offset);
  }
  /** v128.load; alignment hint 0 (unaligned loads are legal and, on x86, as fast when aligned). */
  v128Load(offset = 0): this {
    return this.simd(SimdOp.v128_load).memarg(0, offset);
  }
  v128Store(offset = 0): this {
    return this.simd(SimdOp.v128_store).memarg(0, offset);
  }
  /** Loads one 32-bit value and broadcasts it to all four lanes. */
  v128Load32Splat(offset = 0): this {
    return this.simd(SimdOp.v128_load32_splat).memarg(2, offset);
  }

  // ---- i32 ----------------------------------------------------------------
  i32Eqz(): this {
    return this.byte(Op.i32_eqz);
  }
  i32Eq(): this {
    return this.byte(Op.i32_eq);
  }
  i32Ne(): this {
    return this.byte(Op.i32_ne);
  }
  i32LtS(): this {
    return this.byte(Op.i32_lt_s);
  }
  i32LtU(): this {
    return this.byte(Op.i32_lt_u);
  }
  i32GtS(): this {
    return this.byte(Op.i32_gt_s);
  }
  i32GtU(): this {
    return this.byte(Op.i32_gt_u);
  }
  i32LeS(): this {
    return this.byte(Op.i32_le_s);
  }
  i32LeU(): this {
    return this.byte(Op.i32_le_u);
  }
  i32GeS(): this {
    return this.byte(Op.i32_ge_s);
  }
  i32GeU(): this {
    return this.byte(Op.i32_ge_u);
  }
  i32Add(): this {
    return this.byte(Op.i32_add);
  }
  i32Sub(): this {
    return this.byte(Op.i32_sub);
  }
  i32Mul(): this {
    return this.byte(Op.i32_mul);
  }
  i32DivU(): this {
    return this.byte(Op.i32_div_u);
  }
  i32RemU(): this {
    return this.byte(Op.i32_rem_u);
  }
  i32And(): this {
    return this.byte(Op.i32_and);
  }
  i32Or(): this {
    return this.byte(Op.i32_or);
  }
  i32Xor(): this {
    return this.byte(Op.i32_xor);
  }
  i32Shl(): this {
    return this.byte(Op.i32_shl);
  }
  i32ShrS(): this {
    return this.byte(Op.i32_shr_s);
  }
  i32ShrU(): this {
    return this.byte(Op.i32_shr_u);
  }
  i32TruncF32S(): this {
    return this.byte(Op.i32_trunc_f32_s);
  }
  i32ReinterpretF32(): this {
    return this.byte(Op.i32_reinterpret_f32);
  }

  // ---- f32 / f64 scalar ---------------------------------------------------
  f32Eq(): this {
    return this.byte(Op.f32_eq);
  }
  f32Ne(): this {
    return this.byte(Op.f32_ne);
  }
  f32Lt(): this {
    return this.byte(Op.f32_lt);
  }
  f32Gt(): this {
    return this.byte(Op.f32_gt);
  }
  f32Le(): this {
    return this.byte(Op.f32_le);
  }
  f32Ge(): this {
    return this.byte(Op.f32_ge);
  }
  f32Abs(): this {
    return this.byte(Op.f32_abs);
  }
  f32Neg(): this {
    return this.byte(Op.f32_neg);
  }
  f32Sqrt(): this {
    return this.byte(Op.f32_sqrt);
  }
  f32Add(): this {
    return this.byte(Op.f32_add);
  }
  f32Sub(): this {
    return this.byte(Op.f32_sub);
  }
  f32Mul(): this {
    return this.byte(Op.f32_mul);
  }
  f32Div(): this {
    return this.byte(Op.f32_div);
  }
  f32Min(): this {
    return this.byte(Op.f32_min);
  }
  f32Max(): this {
    return this.byte(Op.f32_max);
  }
  f32ConvertI32S(): this {
    return this.byte(Op.f32_convert_i32_s);
  }
  f32ConvertI32U(): this {
    return this.byte(Op.f32_convert_i32_u);
  }
  f32ReinterpretI32(): this {
    return this.byte(Op.f32_reinterpret_i32);
  }
  f64Add(): this {
    return this.byte(Op.f64_add);
  }
  f64Mul(): this {
    return this.byte(Op.f64_mul);
  }
  f64PromoteF32(): this {
    return this.byte(Op.f64_promote_f32);
  }

  // ---- SIMD ---------------------------------------------------------------
  i32x4Splat(): this {
    return this.simd(SimdOp.i32x4_splat);
  }
  f32x4Splat(): this {
    return this.simd(SimdOp.f32x4_splat);
  }
  i32x4ExtractLane(lane: number): this {
    return this.simd(SimdOp.i32x4_extract_lane).byte(lane);
  }
  f32x4ExtractLane(lane: number): this {
    return this.simd(SimdOp.f32x4_extract_lane).byte(lane);
  }
  f32x4ReplaceLane(lane: number): this {
    return this.simd(SimdOp.f32x4_replace_lane).byte(lane);
  }
  /** i8x16.shuffle with byte indices; `lanes32` picks 32-bit lanes 0-3 of a, 4-7 of b. */
  i32x4Shuffle(lanes32: readonly [number, number, number, number]): this {
    this.simd(SimdOp.i8x16_shuffle);
    for (const l of lanes32) for (let k = 0; k < 4; k++) this.byte(l * 4 + k);
    return this;
  }
  i32x4Eq(): this {
    return this.simd(SimdOp.i32x4_eq);
  }
  i32x4Ne(): this {
    return this.simd(SimdOp.i32x4_ne);
  }
  i32x4LtU(): this {
    return this.simd(SimdOp.i32x4_lt_u);
  }
  i32x4GtS(): this {
    return this.simd(SimdOp.i32x4_gt_s);
  }
  i32x4LeU(): this {
    return this.simd(SimdOp.i32x4_le_u);
  }
  f32x4Eq(): this {
    return this.simd(SimdOp.f32x4_eq);
  }
  f32x4Ne(): this {
    return this.simd(SimdOp.f32x4_ne);
  }
  f32x4Lt(): this {
    return this.simd(SimdOp.f32x4_lt);
  }
  f32x4Gt(): this {
    return this.simd(SimdOp.f32x4_gt);
  }
  f32x4Le(): this {
    return this.simd(SimdOp.f32x4_le);
  }
  f32x4Ge(): this {
    return this.simd(SimdOp.f32x4_ge);
  }
  v128Not(): this {
    return this.simd(SimdOp.v128_not);
  }
  v128And(): this {
    return this.simd(SimdOp.v128_and);
  }
  v128AndNot(): this {
    return this.simd(SimdOp.v128_andnot);
  }
  v128Or(): this {
    return this.simd(SimdOp.v128_or);
  }
  v128Xor(): this {
    return this.simd(SimdOp.v128_xor);
  }
  v128Bitselect(): this {
    return this.simd(SimdOp.v128_bitselect);
  }
  v128AnyTrue(): this {
    return this.simd(SimdOp.v128_any_true);
  }
  i32x4Bitmask(): this {
    return this.simd(SimdOp.i32x4_bitmask);
  }
  f32x4Nearest(): this {
    return this.simd(SimdOp.f32x4_nearest);
  }
  i32x4Shl(): this {
    return this.simd(SimdOp.i32x4_shl);
  }
  i32x4ShrS(): this {
    return this.simd(SimdOp.i32x4_shr_s);
  }
  i32x4ShrU(): this {
    return this.simd(SimdOp.i32x4_shr_u);
  }
  i32x4Add(): this {
    return this.simd(SimdOp.i32x4_add);
  }
  i32x4Sub(): this {
    return this.simd(SimdOp.i32x4_sub);
  }
  i32x4Mul(): this {
    return this.simd(SimdOp.i32x4_mul);
  }
  i32x4MinS(): this {
    return this.simd(SimdOp.i32x4_min_s);
  }
  i32x4MaxS(): this {
    return this.simd(SimdOp.i32x4_max_s);
  }
  f32x4Abs(): this {
    return this.simd(SimdOp.f32x4_abs);
  }
  f32x4Neg(): this {
    return this.simd(SimdOp.f32x4_neg);
  }
  f32x4Sqrt(): this {
    return this.simd(SimdOp.f32x4_sqrt);
  }
  f32x4Add(): this {
    return this.simd(SimdOp.f32x4_add);
  }
  f32x4Sub(): this {
    return this.simd(SimdOp.f32x4_sub);
  }
  f32x4Mul(): this {
    return this.simd(SimdOp.f32x4_mul);
  }
  f32x4Div(): this {
    return this.simd(SimdOp.f32x4_div);
  }
  f32x4Min(): this {
    return this.simd(SimdOp.f32x4_min);
  }
  f32x4Max(): this {
    return this.simd(SimdOp.f32x4_max);
  }
  f32x4Pmin(): this {
    return this.simd(SimdOp.f32x4_pmin);
  }
  f32x4Pmax(): this {
    return this.simd(SimdOp.f32x4_pmax);
  }
  i32x4TruncSatF32x4S(): this {
    return this.simd(SimdOp.i32x4_trunc_sat_f32x4_s);
  }
  f32x4ConvertI32x4S(): this {
    return this.simd(SimdOp.f32x4_convert_i32x4_s);
  }
  f32x4ConvertI32x4U(): this {
    return this.simd(SimdOp.f32x4_convert_i32x4_u);
  }
  /** (a, b, c) -> a·b + c, relaxed: fused or not depending on the engine and CPU. */
  f32x4RelaxedMadd(): this {
    return this.simd(SimdOp.f32x4_relaxed_madd);
  }

  /** The function body (locals declaration + code + end), size-prefixed, for the code section. */
  encodeBody(): number[] {
    if (this.depth !== 0) throw new Error(`${this.name}: unbalanced blocks`);
    const out: number[] = [];
    // Locals are declared as runs of (count, type).
    const runs: [number, ValTypeName][] = [];
    for (const t of this.localTypes) {
      const last = runs[runs.length - 1];
      if (last && last[1] === t) last[0]++;
      else runs.push([1, t]);
    }
    uleb128(runs.length, out);
    for (const [count, t] of runs) {
      uleb128(count, out);
      out.push(ValType[t]);
    }
    for (const b of this.body) out.push(b);
    out.push(Op.end);
    const sized: number[] = [];
    uleb128(out.length, sized);
    return sized.concat(out);
  }
}

/**
 * Assembles functions into a module that imports one linear memory
 * (`env.memory`) and exports the functions given an export name.
 */
export class ModuleBuilder {
  private readonly functions: { fn: FunctionBuilder; exportName: string | null }[] = [];
  private memory: { module: string; name: string; minPages: number } | null = null;
  private readonly segments: { offset: number; bytes: Uint8Array }[] = [];

  /** An active data segment: `bytes` are copied to memory address `offset` at instantiation. */
  data(offset: number, bytes: Uint8Array): this {
    this.segments.push({ offset, bytes });
    return this;
  }

  importMemory(module: string, name: string, minPages: number): this {
    this.memory = { module, name, minPages };
    return this;
  }

  /** Adds a function; returns its index (for `call`). */
  add(fn: FunctionBuilder, exportName: string | null = fn.name): number {
    this.functions.push({ fn, exportName });
    return this.functions.length - 1;
  }

  /** Index the next added function will get (to emit calls to functions defined later). */
  get nextIndex(): number {
    return this.functions.length;
  }

  emit(): Uint8Array {
    const out: number[] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]; // "\0asm", version 1
    const section = (id: number, content: number[]): void => {
      out.push(id);
      uleb128(content.length, out);
      for (const b of content) out.push(b);
    };

    // Type section (1): one entry per distinct signature, 0x60 params results.
    const sigKeys: string[] = [];
    const typeOf: number[] = [];
    const types: number[] = [];
    for (const { fn } of this.functions) {
      const key = fn.params.join(',') + '->' + fn.results.join(',');
      let idx = sigKeys.indexOf(key);
      if (idx < 0) {
        idx = sigKeys.length;
        sigKeys.push(key);
        types.push(0x60);
        uleb128(fn.params.length, types);
        for (const p of fn.params) types.push(ValType[p]);
        uleb128(fn.results.length, types);
        for (const r of fn.results) types.push(ValType[r]);
      }
      typeOf.push(idx);
    }
    section(1, uleb128(sigKeys.length).concat(types));

    // Import section (2): the memory, kind 0x02, limits 0x00 min (no maximum: growable).
    if (this.memory) {
      const imp: number[] = [];
      uleb128(1, imp);
      encodeName(this.memory.module, imp);
      encodeName(this.memory.name, imp);
      imp.push(0x02, 0x00);
      uleb128(this.memory.minPages, imp);
      section(2, imp);
    }

    // Function section (3): the type index of each function.
    const funcs: number[] = [];
    uleb128(this.functions.length, funcs);
    for (const t of typeOf) uleb128(t, funcs);
    section(3, funcs);

    // Export section (7): name, kind 0x00 (function), index.
    const exported = this.functions.map((f, i) => [f.exportName, i] as const).filter(([n]) => n !== null);
    const exp: number[] = [];
    uleb128(exported.length, exp);
    for (const [name, i] of exported) {
      encodeName(name!, exp);
      exp.push(0x00);
      uleb128(i, exp);
    }
    section(7, exp);

    // Code section (10): the bodies, in function order.
    const code: number[] = [];
    uleb128(this.functions.length, code);
    for (const { fn } of this.functions) for (const b of fn.encodeBody()) code.push(b);
    section(10, code);

    // Data section (11): active segments of memory 0, flags 0x00, offset expression `i32.const offset; end`.
    if (this.segments.length > 0) {
      const data: number[] = [];
      uleb128(this.segments.length, data);
      for (const seg of this.segments) {
        data.push(0x00, Op.i32_const);
        sleb128(seg.offset, data);
        data.push(Op.end);
        uleb128(seg.bytes.length, data);
        for (const b of seg.bytes) data.push(b);
      }
      section(11, data);
    }

    return Uint8Array.from(out);
  }
}

// ---------------------------------------------------------------------------
// The WebAssembly JS API, typed minimally (the project's TypeScript lib is
// ES2022 without DOM, which is where these types normally come from).
// ---------------------------------------------------------------------------

export interface WasmMemory {
  readonly buffer: ArrayBuffer;
  /** Grows by `pages` 64 KiB pages; returns the previous size in pages. */
  grow(pages: number): number;
}
export type WasmModule = object;
export interface WasmInstance {
  readonly exports: Record<string, unknown>;
}
export interface WebAssemblyApi {
  validate(bytes: Uint8Array): boolean;
  compile(bytes: Uint8Array): Promise<WasmModule>;
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (module: WasmModule, imports: Record<string, Record<string, unknown>>) => WasmInstance;
  Memory: new (descriptor: { initial: number; maximum?: number }) => WasmMemory;
}

/** The engine's WebAssembly object, or null where there is none. */
export function webAssemblyApi(): WebAssemblyApi | null {
  const w = (globalThis as { WebAssembly?: unknown }).WebAssembly;
  return typeof w === 'object' && w !== null ? (w as WebAssemblyApi) : null;
}
