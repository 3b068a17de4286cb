/**
 * The primitive table and the engine's checks on it: names come from the
 * table's keys and are read by errors and by describeGraph; a VJP must return
 * exactly one cotangent per input (else a typed InternalError naming the
 * primitive); cotangents are lazy (an input that needs none never has its
 * rule run); bind checks the arity.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  backward,
  bind,
  describeGraph as describeGraphInternal,
  makeLeaf,
  type Primitive,
} from '../../src/autograd/engine.js';
import { primitives, type PrimitiveName } from '../../src/autograd/primitives.js';
import * as P from '../../src/autograd/primitives.js';
import {
  InternalError,
  NegcacheError,
  describeGraph,
  exp,
  grad,
  matmul,
  mul,
  sum,
  tensor,
  vjp,
  type Tensor,
} from '../../src/index.js';
import { unsafeData, wrap } from '../../src/tensor/tensor.js';
import { params } from '../util/props.js';
import { arrOfShape, shapeArb, toTensor } from '../util/oracle.js';

/** y = 2x with a VJP rule returning `rules` (possibly the wrong number of entries). */
function doubler(name: string, rules: (g: Tensor) => (() => Tensor)[], arity: number | null = 1): Primitive<null> {
  return {
    name,
    arity,
    forward: (inputs) => {
      const d = unsafeData(inputs[0]!);
      return wrap(
        Float64Array.from(d, (v) => 2 * v),
        inputs[0]!.shape,
        'float64',
      );
    },
    vjp: ({ g }) => rules(g),
  };
}

const twice = (g: Tensor): Tensor =>
  wrap(
    Float64Array.from(unsafeData(g), (v) => 2 * v),
    g.shape,
    'float64',
  );

describe('the primitive table', () => {
  const entries = Object.entries(primitives) as [PrimitiveName, Primitive<unknown>][];

  it('names every primitive after its key, uniquely, with a declared arity, frozen', () => {
    expect(entries.length).toBeGreaterThanOrEqual(30);
    for (const [key, prim] of entries) {
      expect(prim.name).toBe(key);
      expect(prim.arity === null || (Number.isInteger(prim.arity) && prim.arity >= 1)).toBe(true);
      expect(typeof prim.forward).toBe('function');
      expect(typeof prim.vjp).toBe('function');
      expect(Object.isFrozen(prim)).toBe(true);
    }
    expect(new Set(entries.map(([, p]) => p.name)).size).toBe(entries.length);
    expect(Object.isFrozen(primitives)).toBe(true);
    // permute is named permute (it used to say 'transpose'), and only concat takes any number of inputs
    expect(primitives.permute.name).toBe('permute');
    expect(entries.filter(([, p]) => p.arity === null).map(([k]) => k)).toEqual(['concat']);
  });

  it('exports no unchecked op under a public op name (only the table and its types)', () => {
    const exported = Object.keys(P).sort();
    expect(exported).toEqual(['primitives']);
  });

  it('every VJP returns one cotangent (or null) per input', () => {
    // Bind each float primitive on small inputs inside vjp and pull back ones: the engine checks the count.
    const x = tensor([[0.5, 1.5]], 'float64');
    const cases: [string, (t: Tensor) => Tensor][] = [
      ['matmul', (t) => matmul(t, t, { transposeB: true })],
      ['exp', (t) => exp(t)],
      ['mul', (t) => mul(t, t)],
      ['sum', (t) => sum(t)],
    ];
    for (const [name, f] of cases) {
      const { value, vjp: pull } = vjp(f, x);
      const g = pull(wrap(new Float64Array(value.size).fill(1), value.shape, 'float64'));
      expect(g, name).toHaveLength(1);
      expect(g[0]!.shape, name).toEqual([1, 2]);
    }
  });
});

describe('the engine checks the rules', () => {
  const x = tensor([1, 2, 3], 'float64');

  it('a VJP that returns too few cotangents is an InternalError naming the primitive (not a silent skip)', () => {
    const short = doubler('shortRule', () => []);
    let caught: unknown;
    try {
      grad((t: Tensor) => sum(bind(short, [t], null)))(x);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(InternalError);
    expect(caught).toBeInstanceOf(NegcacheError);
    expect((caught as InternalError).op).toBe('shortRule');
    expect((caught as Error).message).toBe(
      'shortRule: the VJP returned 0 cotangents for 1 inputs; need one per input (null for none)',
    );
  });

  it('too many cotangents are refused the same way', () => {
    const long = doubler('longRule', (g) => [() => twice(g), () => twice(g)]);
    expect(() => grad((t: Tensor) => sum(bind(long, [t], null)))(x)).toThrow(
      /^longRule: the VJP returned 2 cotangents for 1 inputs/,
    );
  });

  it('a cotangent of the wrong shape is an InternalError naming the primitive and the input', () => {
    const wrong = doubler('wrongShape', () => [() => tensor([1], 'float64')]);
    expect(() => grad((t: Tensor) => sum(bind(wrong, [t], null)))(x)).toThrow(InternalError);
    expect(() => grad((t: Tensor) => sum(bind(wrong, [t], null)))(x)).toThrow(
      'wrongShape: the VJP returned a [1] cotangent for input 0 of shape [3]',
    );
  });

  it('bind refuses the wrong number of inputs for a primitive of fixed arity', () => {
    const good = doubler('unaryThing', (g) => [() => twice(g)]);
    expect(() => bind(good, [x, x], null)).toThrow(InternalError);
    expect(() => bind(good, [x, x], null)).toThrow('unaryThing: the primitive takes 1 inputs, got 2');
    expect(() => bind(primitives.add, [x], null)).toThrow('add: the primitive takes 2 inputs, got 1');
  });

  it('a correct rule differentiates exactly, and cotangents are lazy: a constant input never runs its rule', () => {
    fc.assert(
      fc.property(
        shapeArb({ minRank: 1, maxSize: 12 }).chain((s) => arrOfShape(s)),
        (a) => {
          let ran = 0;
          const scaleBy: Primitive<null> = {
            name: 'scaleBy',
            arity: 2,
            forward: ([u, v]) => {
              const du = unsafeData(u!),
                dv = unsafeData(v!);
              return wrap(
                Float64Array.from(du, (w, i) => w * dv[i]!),
                u!.shape,
                'float64',
              );
            },
            // x̄ = ḡ·y; ȳ's rule counts its runs
            vjp: ({ g, y }) => [
              () => mul(g, y),
              () => {
                ran++;
                return g;
              },
            ],
          };
          const t = toTensor(a, 'float64');
          const c = toTensor(a, 'float64');
          const gx = grad((u: Tensor) => sum(bind(scaleBy, [u, c], null)))(t);
          expect(Array.from(unsafeData(gx))).toEqual(Array.from(unsafeData(c)));
          expect(ran).toBe(0);
        },
      ),
      params(50),
    );
  });
});

describe('the engine without a transform', () => {
  it('leaves made outside any transform are tracked, and backward differentiates them (as bench/sharded.ts does)', () => {
    const leaf = makeLeaf(tensor([1, 2, 3], 'float64'));
    const out = sum(mul(leaf, leaf));
    const [g] = backward(
      out,
      tensor(1, 'float64'),
      [leaf],
      (a, b) => bind(primitives.add, [a, b], null),
      (t, like) => bind(primitives.cast, [t], { dtype: like.dtype }),
    );
    expect(g!.toArray()).toEqual([2, 4, 6]);
  });
});

describe('describeGraph', () => {
  it('lists the nodes in creation order with primitive names, attributes, constants, shapes and dtypes', () => {
    const w = tensor([1, 2], 'float64');
    let dump = '';
    grad((t: Tensor) => {
      const loss = sum(mul(exp(t), w));
      dump = describeGraph(loss);
      return loss;
    })(tensor([0.5, 1], 'float64'));
    expect(dump).toBe(
      [
        '%1 = leaf                                  [2] float64',
        '%2 = exp(%1)                               [2] float64',
        '%3 = mul(%2, const [2] float64)            [2] float64',
        '%4 = sum(%3) {axes: [0], keepDims: false}  [] float64',
      ].join('\n'),
    );
  });

  it('says so for a tensor with no graph, and is the same function internally', () => {
    expect(describeGraph(tensor([[1, 2]]))).toBe('const [1,2] float32 (no graph)');
    expect(describeGraphInternal).toBe(describeGraph);
  });
});
