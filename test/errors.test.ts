/**
 * The error hierarchy (src/errors.ts) and the one options check every
 * public function uses.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as N from '../src/index.js';
import {
  ArgumentError,
  DTypeError,
  InternalError,
  InvalidArgumentError,
  NegcacheError,
  NonFiniteError,
  ShapeError,
  UnsupportedError,
  checkOptions,
  optionRules,
} from '../src/errors.js';
import { params } from './util/props.js';

describe('the error hierarchy', () => {
  it('InvalidArgumentError catches ShapeError, DTypeError and ArgumentError, and nothing else of ours', () => {
    for (const C of [ShapeError, DTypeError, ArgumentError]) {
      const e = new C('op', 'bad');
      expect(e).toBeInstanceOf(InvalidArgumentError);
      expect(e).toBeInstanceOf(NegcacheError);
      expect(e).toBeInstanceOf(Error);
      expect(e.name).toBe(C.name);
      expect(e.op).toBe('op');
      expect(e.message).toBe('op: bad');
    }
    for (const C of [NonFiniteError, UnsupportedError, InternalError]) {
      const e = new C('op', 'x');
      expect(e).toBeInstanceOf(NegcacheError);
      expect(e).not.toBeInstanceOf(InvalidArgumentError);
    }
  });

  it('real bad input from the ops is caught by the base class', () => {
    const bad: (() => unknown)[] = [
      () => N.matmul(N.zeros([2, 3]), N.zeros([4, 5])),
      () => N.add(N.zeros([2]), N.zeros([2], 'int32')),
      () => N.sum(N.zeros([2]), { axis: 3 }),
    ];
    const classes = bad.map((f) => {
      try {
        f();
      } catch (e) {
        if (e instanceof InvalidArgumentError) return e.constructor.name;
        throw e;
      }
      return 'nothing thrown';
    });
    expect(classes).toEqual(['ShapeError', 'DTypeError', 'ArgumentError']);
  });

  it('is exported from the main entry', () => {
    expect(N.InvalidArgumentError).toBe(InvalidArgumentError);
    expect(N.UnsupportedError).toBe(UnsupportedError);
    expect(N.InternalError).toBe(InternalError);
  });
});

describe('checkOptions', () => {
  it('accepts undefined and plain objects with known keys', () => {
    expect(() => checkOptions('op', undefined, ['a'])).not.toThrow();
    expect(() => checkOptions('op', {}, ['a'])).not.toThrow();
    expect(() => checkOptions('op', { a: 1 }, ['a', 'b'])).not.toThrow();
    expect(() => checkOptions('op', Object.assign(Object.create(null), { b: 2 }), ['a', 'b'])).not.toThrow();
  });

  it('rejects non-objects, arrays, class instances and tensors with the allowed keys listed', () => {
    for (const [v, got] of [
      [null, 'null'],
      [3, '3'],
      ['x', '"x"'],
      [[1], 'an array of length 1'],
      [new Map(), 'an object (no keys)'],
      [N.zeros([2]), 'a [2] float32 tensor'],
      [() => 1, 'a function'],
    ] as const) {
      expect(() => checkOptions('op', v, ['axis', 'keepDims'])).toThrow(ArgumentError);
      expect(() => checkOptions('op', v, ['axis', 'keepDims'])).toThrow(
        `op: options must be an object like {axis, keepDims}, got ${got}`,
      );
    }
  });

  it('with {required: true}, undefined is refused too (mandatory constructor options)', () => {
    expect(() => checkOptions('Thing', undefined, ['a'], { required: true })).toThrow(
      'Thing: options must be an object like {a}, got undefined',
    );
    expect(() => checkOptions('Thing', { a: 1 }, ['a'], { required: true })).not.toThrow();
  });

  it('names an unknown key and the allowed ones (the message every op uses)', () => {
    expect(() => checkOptions('sum', { axes: 1 }, ['axis', 'keepDims'])).toThrow(
      'sum: unknown option "axes"; allowed: axis, keepDims',
    );
  });

  it('runs per-key rules on present values: `key must be <need>, got <value>`', () => {
    const schema = { flag: optionRules.boolean, n: optionRules.integer(1, 10), mode: optionRules.oneOf(['a', 'b']) };
    expect(() => checkOptions('op', { flag: true, n: 3, mode: 'b' }, schema)).not.toThrow();
    expect(() => checkOptions('op', { flag: undefined }, schema)).not.toThrow();
    expect(() => checkOptions('op', { flag: 1 }, schema)).toThrow('op: flag must be true or false, got 1');
    expect(() => checkOptions('op', { n: 0 }, schema)).toThrow('op: n must be an integer in [1, 10], got 0');
    expect(() => checkOptions('op', { mode: 'c' }, schema)).toThrow('op: mode must be one of "a", "b", got "c"');
    expect(() => checkOptions('op', { x: 1 }, schema)).toThrow('op: unknown option "x"; allowed: flag, n, mode');
    expect(() => checkOptions('op', { n: Infinity }, { n: optionRules.finite })).toThrow(
      'op: n must be a finite number, got Infinity',
    );
  });

  it('property: an object passes iff every key is allowed', () => {
    const keys = ['a', 'b', 'c', 'd', 'e'];
    fc.assert(
      fc.property(
        fc.subarray(keys),
        fc.dictionary(fc.constantFrom(...keys, 'x', 'y'), fc.integer(), { maxKeys: 5 }),
        (allowed, opts) => {
          const bad = Object.keys(opts).filter((k) => !allowed.includes(k));
          if (bad.length === 0) expect(() => checkOptions('op', opts, allowed)).not.toThrow();
          else
            expect(() => checkOptions('op', opts, allowed)).toThrow(
              `op: unknown option "${bad[0]}"; allowed: ${allowed.join(', ')}`,
            );
        },
      ),
      params(300),
    );
  });
});
