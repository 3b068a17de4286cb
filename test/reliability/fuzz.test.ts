/**
 * Fuzzing every public entry point with malformed calls.
 *
 * Each Def below is one (entry point, malformation kind) pair with a
 * generator of concrete calls; `attempt` (harness.ts) runs a call and checks
 * that it either succeeds (a call that happens to be valid) or throws a
 * NegcacheError (ShapeError / DTypeError / ArgumentError / NonFiniteError),
 * never a plain TypeError / RangeError from inside a kernel, and that the
 * arguments, and after a rejection every stateful object (cache, handler,
 * optimiser, embedding table, generator, row space), are bit-identical to
 * what they were before. Modes: 'throws' pairs are certainly malformed and
 * must be rejected; 'either' pairs may happen to be valid; 'valid' pairs are
 * baselines that must succeed (not counted as malformed).
 *
 * Entry points: the tensor constructors, every op family, the autodiff
 * transforms and checkGradients, CacheManager, the retrieval functions and
 * approximateTopKWithIndices, CacheClassificationLoss, CacheLossHandler,
 * MultiCacheLossHandler, DistributedCacheClassificationLoss and the sharded
 * and replicated handlers (in a replica group under runInProcess; see
 * fuzzDistributed.ts), isInCacheFilter, the layers and EmbeddingTable, the
 * optimisers, and train / Trainer.setState (SUITES below lists them). The sampler's generator counts as state too: a call
 * rejected before sampling must not move it. Only where the rejection comes
 * after the negatives were drawn by design (a user doc network returning
 * garbage, or commit refusing an already computed step) may it have moved.
 *
 * The suite prints how many distinct malformed (entry point, kind) pairs it
 * tried and how many calls it made in total (the count scales with
 * NEGCACHE_PROPERTY_RUNS; every pair runs at least once).
 */
import fc from 'fast-check';
import { afterAll, describe, it } from 'vitest';
import {
  ArgumentError,
  DTypeError,
  NonFiniteError,
  ShapeError,
  Rng,
  Tensor,
  tensor,
  zeros,
  full,
  arange,
  uniform,
  normal,
  add,
  sub,
  mul,
  div,
  pow,
  maximum,
  minimum,
  equal,
  notEqual,
  less,
  lessEqual,
  greater,
  greaterEqual,
  logicalAnd,
  logicalOr,
  logicalNot,
  where,
  exp,
  log,
  sqrt,
  tanh,
  sigmoid,
  relu,
  neg,
  abs,
  square,
  isFinite,
  cast,
  sum,
  mean,
  max,
  min,
  any,
  all,
  logSumExp,
  softmax,
  logSoftmax,
  argmax,
  argmin,
  cumsum,
  reshape,
  transpose,
  expandDims,
  squeeze,
  broadcastTo,
  concat,
  stack,
  slice,
  pad,
  gather,
  gatherRows,
  scatterRows,
  topK,
  matmul,
  grad,
  valueAndGrad,
  vjp,
  stopGradient,
  checkGradients,
  CacheManager,
  maxScoreRetrievalFn,
  gumbelMaxRetrievalFn,
  categoricalRetrievalFn,
  approximateTopKWithIndices,
  CacheClassificationLoss,
  CacheLossHandler,
  scaleTransform,
  isInCacheFilter,
  linear,
  l2Normalize,
  embeddingBag,
  makeBags,
  RowSpace,
  EmbeddingTable,
  SGD,
  Adam,
  AdamW,
  Trainer,
  train,
  type Corpus,
  type DType,
  type NegativeCache,
  type TrainConfig,
} from '../../src/index.js';
import { unsafeData, wrap } from '../../src/tensor/tensor.js';
import { params } from '../util/props.js';
import { BASE, tinyCorpus } from './training.js';
import {
  distributedLossDefs,
  multiCacheHandlerDefs,
  replicatedHandlerDefs,
  shardedHandlerDefs,
} from './fuzzDistributed.js';
import {
  STATS,
  type Call,
  type Def,
  badNumber,
  badShape,
  def,
  dtype,
  expectNoNaN,
  expectWellFormed,
  expectWellFormedTree,
  garbage,
  ints,
  mk,
  nonFinite,
  posShape,
  runDefs,
  seed,
  smallShape,
  withValue,
} from './harness.js';

/** {} or a null-prototype {}: an empty record. */
const emptyRecord = (g: unknown): boolean =>
  g !== null &&
  typeof g === 'object' &&
  !Array.isArray(g) &&
  !ArrayBuffer.isView(g) &&
  !(g instanceof Map) &&
  !(g instanceof Date) &&
  Object.keys(g).length === 0 &&
  [Object.prototype, null].includes(Object.getPrototypeOf(g));

const run = (defs: Def[]): Promise<void> => runDefs(defs, (n) => params(n) as fc.Parameters<unknown>);
const call = (c: Call): Call => c;
const FLOAT = ['float32', 'float64'] as const;
/** A dtype that is a string but not a dtype. */
const badDType = (): fc.Arbitrary<unknown> =>
  fc.constantFrom('float16', 'int64', 'uint8', 'Float32', '', 'f32', 5, null, true, {}, ['float32']);
/** An options value of the wrong kind (undefined and {} excluded: those are valid). */
const badOpts = (): fc.Arbitrary<unknown> => fc.constantFrom(null, 'abc', 0, 1, true, [], [1], () => 0, 3n);
const anyTensor = (): fc.Arbitrary<[number[], DType, number]> => fc.tuple(smallShape(), dtype(), seed());
const floatTensor = (minRank = 0): fc.Arbitrary<[number[], DType, number]> =>
  fc.tuple(
    fc.array(fc.integer({ min: 0, max: 4 }), { minLength: minRank, maxLength: 3 }),
    fc.constantFrom<DType>(...FLOAT),
    seed(),
  );
const T = ([s, d, k]: [number[], DType, number]): Tensor => mk(s, d, k);
/** Two shapes that do not broadcast. */
const clash = (): fc.Arbitrary<[number[], number[]]> =>
  fc
    .tuple(
      fc.integer({ min: 2, max: 4 }),
      fc.integer({ min: 1, max: 2 }),
      fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 2 }),
    )
    .map(([k, e, lead]) => [[...lead, k], [k + e]]);

// ================================================================================================ creation

function creationDefs(): Def[] {
  const out: Def[] = [];
  out.push(
    def('tensor', 'values:wrong-kind', 'either', garbage(), (v) =>
      call({ run: () => tensor(v as never), check: (o) => expectWellFormed(o) }),
    ),
    def(
      'tensor',
      'values:ragged',
      'throws',
      fc.constantFrom<unknown>([[1, 2], [3]], [[1], [2, [3]]], [1, [2]], [[[1]], [2]], [[], [1]]),
      (v) => call({ run: () => tensor(v as never) }),
    ),
    def(
      'tensor',
      'values:non-number-leaf',
      'throws',
      fc.tuple(
        fc.constantFrom<unknown>('a', null, undefined, {}, [], 3n, Symbol('q'), () => 1),
        fc.nat(3),
      ),
      ([bad, at]) => {
        const vals: unknown[] = [1, 2, 3];
        vals.splice(at, 0, bad);
        if (Array.isArray(bad)) vals.splice(at, 1, 'x');
        return call({ run: () => tensor(vals as never) });
      },
    ),
    def('tensor', 'values:boolean-in-float', 'throws', fc.constantFrom<unknown[]>([1, true], [0.5, false, 1]), (v) =>
      call({ run: () => tensor(v as never) }),
    ),
    def(
      'tensor',
      'dtype:unknown',
      'throws',
      fc.tuple(
        badDType().filter((d) => d !== null),
        fc.constantFrom<unknown>([1, 2], [[true]], 3),
      ),
      ([d, v]) => call({ run: () => tensor(v as never, d as DType) }),
    ),
    def(
      'tensor',
      'int32:not-an-int32',
      'throws',
      fc.constantFrom(1.5, NaN, Infinity, -Infinity, 2 ** 31, -(2 ** 31) - 1, 1e300),
      (v) => call({ run: () => tensor([0, v], 'int32') }),
    ),
    def('tensor', 'bool:not-a-boolean', 'throws', fc.constantFrom(2, 0.5, -1, NaN), (v) =>
      call({ run: () => tensor([1, v], 'bool') }),
    ),
    def(
      'tensor',
      'shape:bad',
      'throws',
      badShape().filter((s) => s !== undefined),
      (s) => call({ run: () => tensor([1, 2], 'float32', s as number[]) }),
    ),
    def(
      'tensor',
      'shape:size-mismatch',
      'throws',
      fc.tuple(posShape(1, 3), fc.integer({ min: 1, max: 3 })),
      ([s, extra]) => {
        const n = s.reduce((p, d) => p * d, 1) + extra;
        return call({
          run: () =>
            tensor(
              Array.from({ length: n }, (_, i) => i),
              'float32',
              s,
            ),
        });
      },
    ),
    def(
      'tensor',
      'typed:shape-mismatch',
      'throws',
      fc.tuple(fc.integer({ min: 1, max: 6 }), posShape(1, 3)).filter(([n, s]) => s.reduce((p, d) => p * d, 1) !== n),
      ([n, s]) => {
        const a = new Float32Array(n);
        return call({ run: () => tensor(a, undefined, s), inputs: a });
      },
    ),
    def(
      'tensor',
      'typed:values-vs-dtype',
      'throws',
      fc.tuple(fc.constantFrom(NaN, 0.5, Infinity, 3e9), fc.constantFrom<DType>('int32', 'bool')),
      ([v, d]) => {
        const a = Float64Array.of(0, v);
        return call({ run: () => tensor(a, d), inputs: a });
      },
    ),
    def(
      'tensor',
      'typed:unusual-view',
      'either',
      fc.constantFrom<() => ArrayBufferView>(
        () => new BigInt64Array(2),
        () => new DataView(new ArrayBuffer(4)),
        () => new Uint16Array([1, 2]),
        () => new Int8Array([-1]),
        () => new Uint8ClampedArray([0, 1]),
        () => Uint8Array.of(0, 2),
      ),
      (mkView) => {
        const a = mkView();
        return call({ run: () => tensor(a as never), inputs: a, check: (o) => expectWellFormed(o) });
      },
    ),
    def('tensor', 'valid', 'valid', anyTensor(), (t) => {
      const x = T(t);
      return call({ run: () => tensor(x.toArray() as never, x.dtype, x.shape), check: (o) => expectWellFormed(o) });
    }),
  );
  out.push(
    def(
      'zeros',
      'shape:bad',
      'throws',
      badShape().filter((s) => s !== undefined),
      (s) => call({ run: () => zeros(s as number[]) }),
    ),
    def('zeros', 'dtype:unknown', 'throws', badDType(), (d) => call({ run: () => zeros([2], d as DType) })),
    def('zeros', 'valid', 'valid', fc.tuple(smallShape(), dtype()), ([s, d]) =>
      call({ run: () => zeros(s, d), check: (o) => expectWellFormed(o) }),
    ),
    def(
      'full',
      'shape:bad',
      'throws',
      badShape().filter((s) => s !== undefined),
      (s) => call({ run: () => full(s as number[], 1) }),
    ),
    def('full', 'value:wrong-kind', 'either', garbage(), (v) =>
      call({ run: () => full([2], v as number), check: (o) => expectWellFormed(o) }),
    ),
    def(
      'full',
      'value:vs-dtype',
      'throws',
      fc.constantFrom<[unknown, DType]>(
        [1.5, 'int32'],
        [NaN, 'int32'],
        [2 ** 31, 'int32'],
        [2, 'bool'],
        [true, 'float32'],
        [false, 'int32'],
        ['a', 'float64'],
      ),
      ([v, d]) => call({ run: () => full([3], v as number, d) }),
    ),
    def(
      'full',
      'dtype:unknown',
      'throws',
      badDType().filter((d) => d !== null),
      (d) => call({ run: () => full([1], 0, d as DType) }),
    ),
    def(
      'arange',
      'args:non-finite',
      'throws',
      fc.tuple(fc.nat(2), fc.constantFrom<unknown>(NaN, Infinity, -Infinity, 'a', null, 3n, {})),
      ([at, v]) => {
        const args: unknown[] = [0, 5, 1];
        args[at] = v;
        return call({ run: () => arange(...(args as [number, number, number])) });
      },
    ),
    def('arange', 'step:zero', 'throws', fc.constantFrom(0, -0), (s) => call({ run: () => arange(0, 5, s) })),
    def(
      'arange',
      'dtype:unknown',
      'throws',
      badDType().filter((d) => d !== null),
      (d) => call({ run: () => arange(0, 3, 1, d as DType) }),
    ),
    def(
      'arange',
      'length:huge',
      'throws',
      fc.constantFrom<[number, number, number]>(
        [0, 1e12, 1],
        [0, 1, 1e-12],
        [-1e15, 1e15, 1],
        [0, 2 ** 31, 1],
        [0, 2 ** 31 + 5, 1],
      ),
      ([a, b, s]) => call({ run: () => arange(a, b, s, 'float32') }),
    ),
    def(
      'arange',
      'int32:overflow',
      'throws',
      fc.constantFrom<[number, number]>([2 ** 31 - 2, 2 ** 31 + 2], [-(2 ** 31) - 3, -(2 ** 31) + 1]),
      ([a, b]) => call({ run: () => arange(a, b) }),
    ),
    def(
      'arange',
      'valid',
      'valid',
      fc.tuple(fc.integer({ min: -5, max: 5 }), fc.integer({ min: -5, max: 5 }), fc.constantFrom(1, 2, -1, 0.5)),
      ([a, b, s]) => call({ run: () => arange(a, b, s), check: (o) => expectWellFormed(o) }),
    ),
  );
  for (const [name, f, bounds] of [
    [
      'uniform',
      uniform,
      [{ low: 2, high: 1 }, { low: NaN }, { high: Infinity }, { low: -Infinity }, { low: 'a' }, { high: '1' }],
    ],
    ['normal', normal, [{ std: -1 }, { std: NaN }, { mean: Infinity }, { mean: NaN }, { std: 'a' }, { mean: '0' }]],
  ] as const) {
    const g = f as (s: unknown, r: unknown, o?: unknown) => Tensor;
    out.push(
      def(
        name,
        'shape:bad',
        'throws',
        fc.tuple(
          badShape().filter((s) => s !== undefined),
          seed(),
        ),
        ([s, k]) => {
          const r = new Rng(k);
          return call({ run: () => g(s, r), state: r });
        },
      ),
      def(name, 'rng:wrong-kind', 'throws', garbage(), (r) => call({ run: () => g([2], r) })),
      def(name, 'opts:wrong-kind', 'throws', fc.tuple(badOpts(), seed()), ([o, k]) => {
        const r = new Rng(k);
        return call({ run: () => g([2], r, o), state: r });
      }),
      def(
        name,
        'opts:extra-key',
        'throws',
        fc.tuple(fc.constantFrom('lo', 'hi', 'seed', 'stdev', 'dtypes', 'rng'), seed()),
        ([key, k]) => {
          const r = new Rng(k);
          return call({ run: () => g([2], r, { [key]: 1 }), state: r });
        },
      ),
      def(name, 'opts:bad-bounds', 'throws', fc.tuple(fc.constantFrom(...bounds), seed()), ([o, k]) => {
        const r = new Rng(k);
        return call({ run: () => g([2], r, o), state: r });
      }),
      def(
        name,
        'dtype:not-float',
        'throws',
        fc.tuple(fc.constantFrom<unknown>('int32', 'bool', 'float16', 7), seed()),
        ([d, k]) => {
          const r = new Rng(k);
          return call({ run: () => g([2], r, { dtype: d }), state: r });
        },
      ),
      def(name, 'valid', 'valid', fc.tuple(smallShape(), seed(), fc.constantFrom(...FLOAT)), ([s, k, d]) => {
        const r = new Rng(k);
        return call({ run: () => g(s, r, { dtype: d }), check: (o) => expectNoNaN(o) });
      }),
    );
  }
  return out;
}

// ================================================================================================ ops

type Binary = (a: unknown, b: unknown) => Tensor;
const ARITH: [string, Binary, boolean][] = [
  ['add', add as Binary, false],
  ['sub', sub as Binary, false],
  ['mul', mul as Binary, false],
  ['maximum', maximum as Binary, false],
  ['minimum', minimum as Binary, false],
  ['div', div as Binary, true],
  ['pow', pow as Binary, true],
];
const COMPARE: [string, Binary][] = [
  ['equal', equal as Binary],
  ['notEqual', notEqual as Binary],
  ['less', less as Binary],
  ['lessEqual', lessEqual as Binary],
  ['greater', greater as Binary],
  ['greaterEqual', greaterEqual as Binary],
];
type Unary = (x: unknown) => Tensor;
const FLOAT_UNARY: [string, Unary][] = [
  ['exp', exp as Unary],
  ['log', log as Unary],
  ['sqrt', sqrt as Unary],
  ['tanh', tanh as Unary],
  ['sigmoid', sigmoid as Unary],
  ['relu', relu as Unary],
];

function elementwiseDefs(): Def[] {
  const out: Def[] = [];
  for (const [name, f, floatOnly] of ARITH) {
    const finiteSafe = !floatOnly; // add/sub/mul/max/min of finite small values are finite
    out.push(
      def(name, 'a:wrong-kind', 'either', fc.tuple(garbage(), floatTensor()), ([a, b]) => {
        const y = T(b);
        return call({ run: () => f(a, y), inputs: y, check: (o) => expectWellFormed(o) });
      }),
      def(name, 'b:wrong-kind', 'either', fc.tuple(floatTensor(), garbage()), ([a, b]) => {
        const x = T(a);
        return call({ run: () => f(x, b), inputs: x, check: (o) => expectWellFormed(o) });
      }),
      def(name, 'shapes:no-broadcast', 'throws', fc.tuple(clash(), seed()), ([[s1, s2], k]) => {
        const x = mk(s1, 'float32', k),
          y = mk(s2, 'float32', k + 1);
        return call({ run: () => f(x, y), inputs: [x, y], errorClass: ShapeError });
      }),
      def(
        name,
        'dtypes:mixed',
        'throws',
        fc.tuple(
          fc.constantFrom<[DType, DType]>(
            ['float32', 'int32'],
            ['int32', 'float64'],
            ['bool', 'float32'],
            ['int32', 'bool'],
          ),
          seed(),
        ),
        ([[d1, d2], k]) => {
          const x = mk([2], d1, k),
            y = mk([2], d2, k);
          return call({ run: () => f(x, y), inputs: [x, y], errorClass: DTypeError });
        },
      ),
      def(name, 'dtype:bool', 'throws', seed(), (k) => {
        const x = mk([3], 'bool', k),
          y = mk([3], 'bool', k + 1);
        return call({ run: () => f(x, y), inputs: [x, y], errorClass: DTypeError });
      }),
      def(
        name,
        'int32:non-integer-number',
        'throws',
        fc.tuple(fc.constantFrom(0.5, NaN, Infinity, -1.25), fc.boolean()),
        ([v, left]) => {
          const x = mk([3], 'int32', 1);
          return call({ run: () => (left ? f(v, x) : f(x, v)), inputs: x });
        },
      ),
      def(name, 'random', 'either', fc.tuple(anyTensor(), anyTensor()), ([a, b]) => {
        const x = T(a),
          y = T(b);
        return call({
          run: () => f(x, y),
          inputs: [x, y],
          check: (o) => (finiteSafe ? expectNoNaN(o) : expectWellFormed(o)),
        });
      }),
    );
    if (floatOnly) {
      out.push(
        def(name, 'dtype:int32', 'throws', seed(), (k) => {
          const x = mk([3], 'int32', k),
            y = mk([3], 'int32', k + 1);
          return call({ run: () => f(x, y), inputs: [x, y], errorClass: DTypeError });
        }),
      );
    }
  }
  for (const [name, f] of COMPARE) {
    out.push(
      def(name, 'args:wrong-kind', 'either', fc.tuple(garbage(), anyTensor(), fc.boolean()), ([g, t, left]) => {
        const x = T(t);
        return call({ run: () => (left ? f(g, x) : f(x, g)), inputs: x, check: (o) => expectWellFormed(o) });
      }),
      def(
        name,
        'dtypes:mixed',
        'throws',
        fc.constantFrom<[DType, DType]>(['float32', 'int32'], ['bool', 'int32'], ['float64', 'bool']),
        ([d1, d2]) => {
          const x = mk([2], d1, 1),
            y = mk([2], d2, 2);
          return call({ run: () => f(x, y), inputs: [x, y], errorClass: DTypeError });
        },
      ),
      def(name, 'shapes:no-broadcast', 'throws', clash(), ([s1, s2]) => {
        const x = mk(s1),
          y = mk(s2);
        return call({ run: () => f(x, y), inputs: [x, y], errorClass: ShapeError });
      }),
      def(name, 'random', 'either', fc.tuple(anyTensor(), anyTensor()), ([a, b]) => {
        const x = T(a),
          y = T(b);
        return call({ run: () => f(x, y), inputs: [x, y], check: (o) => expectWellFormed(o) });
      }),
    );
  }
  for (const [name, f] of [
    ['logicalAnd', logicalAnd],
    ['logicalOr', logicalOr],
  ] as const) {
    out.push(
      def(
        name,
        'dtype:not-bool',
        'throws',
        fc.tuple(fc.constantFrom<DType>('float32', 'int32', 'float64'), fc.boolean()),
        ([d, left]) => {
          const x = mk([2], d, 1),
            y = mk([2], 'bool', 2);
          return call({ run: () => (left ? f(x, y) : f(y, x)), inputs: [x, y], errorClass: DTypeError });
        },
      ),
      def(name, 'args:wrong-kind', 'throws', fc.tuple(garbage(), fc.boolean()), ([g, left]) => {
        const y = mk([2], 'bool', 2);
        return call({ run: () => (left ? f(g as Tensor, y) : f(y, g as Tensor)), inputs: y });
      }),
      def(name, 'random', 'either', fc.tuple(smallShape(), smallShape(), seed()), ([s1, s2, k]) => {
        const x = mk(s1, 'bool', k),
          y = mk(s2, 'bool', k + 1);
        return call({ run: () => f(x, y), inputs: [x, y], check: (o) => expectWellFormed(o) });
      }),
    );
  }
  out.push(
    def('where', 'cond:not-bool', 'throws', fc.tuple(fc.constantFrom<DType>('float32', 'int32'), seed()), ([d, k]) => {
      const c = mk([3], d, k),
        x = mk([3]),
        y = mk([3]);
      return call({ run: () => where(c, x, y), inputs: [c, x, y], errorClass: DTypeError });
    }),
    def('where', 'args:wrong-kind', 'either', fc.tuple(garbage(), fc.nat(2)), ([g, at]) => {
      const args: unknown[] = [mk([3], 'bool'), mk([3]), mk([3])];
      args[at] = g;
      return call({
        run: () => where(args[0] as Tensor, args[1] as Tensor, args[2] as Tensor),
        inputs: args,
        check: (o) => expectWellFormed(o),
      });
    }),
    def('where', 'random', 'either', fc.tuple(smallShape(), anyTensor(), anyTensor(), seed()), ([s, a, b, k]) => {
      const c = mk(s, 'bool', k),
        x = T(a),
        y = T(b);
      return call({ run: () => where(c, x, y), inputs: [c, x, y], check: (o) => expectWellFormed(o) });
    }),
  );
  for (const [name, f] of FLOAT_UNARY) {
    out.push(
      def(name, 'x:wrong-kind', 'throws', garbage(), (g) => call({ run: () => f(g) })),
      def(
        name,
        'dtype:not-float',
        'throws',
        fc.tuple(fc.constantFrom<DType>('int32', 'bool'), smallShape()),
        ([d, s]) => {
          const x = mk(s, d);
          return call({ run: () => f(x), inputs: x, errorClass: DTypeError });
        },
      ),
      def(name, 'random', 'valid', floatTensor(), (t) => {
        const x = T(t);
        return call({ run: () => f(x), inputs: x, check: (o) => expectWellFormed(o) });
      }),
    );
  }
  for (const [name, f, bad] of [
    ['neg', neg, 'bool'],
    ['abs', abs, 'bool'],
    ['square', square, 'bool'],
    ['logicalNot', logicalNot, 'float32'],
    ['isFinite', isFinite, null],
    ['stopGradient', stopGradient, null],
  ] as const) {
    const g = f as Unary;
    out.push(def(name, 'x:wrong-kind', 'throws', garbage(), (v) => call({ run: () => g(v) })));
    if (bad !== null) {
      out.push(
        def(name, `dtype:${bad}`, 'throws', smallShape(), (s) => {
          const x = mk(s, bad);
          return call({ run: () => g(x), inputs: x, errorClass: DTypeError });
        }),
      );
    }
    out.push(
      def(name, 'random', 'either', anyTensor(), (t) => {
        const x = T(t);
        return call({ run: () => g(x), inputs: x, check: (o) => expectWellFormed(o) });
      }),
    );
  }
  out.push(
    def('cast', 'x:wrong-kind', 'throws', garbage(), (v) => call({ run: () => cast(v as Tensor, 'float32') })),
    def('cast', 'dtype:unknown', 'throws', fc.tuple(badDType(), anyTensor()), ([d, t]) => {
      const x = T(t);
      return call({ run: () => cast(x, d as DType), inputs: x });
    }),
    def(
      'cast',
      'float-to-int32:out-of-range',
      'throws',
      fc.tuple(fc.constantFrom(NaN, Infinity, -Infinity, 2 ** 31, -3e9, 1e30), fc.constantFrom(...FLOAT), fc.nat(5)),
      ([v, d, at]) => {
        const x = withValue(mk([6], d, 3), v, at);
        return call({ run: () => cast(x, 'int32'), inputs: x });
      },
    ),
    def('cast', 'random', 'either', fc.tuple(anyTensor(), dtype()), ([t, d]) => {
      const x = T(t);
      return call({ run: () => cast(x, d), inputs: x, check: (o) => expectNoNaN(o) });
    }),
  );
  return out;
}

type Reducer = (x: unknown, o?: unknown) => Tensor;
const REDUCERS: [string, Reducer, 'numeric' | 'float' | 'bool', boolean][] = [
  ['sum', sum as Reducer, 'numeric', false],
  ['mean', mean as Reducer, 'float', true],
  ['max', max as Reducer, 'numeric', true],
  ['min', min as Reducer, 'numeric', true],
  ['any', any as Reducer, 'bool', false],
  ['all', all as Reducer, 'bool', false],
  ['logSumExp', logSumExp as Reducer, 'float', true],
];

function reductionDefs(): Def[] {
  const out: Def[] = [];
  const good = (kind: 'numeric' | 'float' | 'bool'): DType => (kind === 'bool' ? 'bool' : 'float32');
  for (const [name, f, kind, emptyFails] of REDUCERS) {
    out.push(
      def(name, 'x:wrong-kind', 'throws', garbage(), (v) => call({ run: () => f(v) })),
      def(
        name,
        'axis:out-of-range',
        'throws',
        fc.tuple(posShape(0, 3), fc.nat(3), fc.boolean()),
        ([s, e, negative]) => {
          const x = mk(s, good(kind));
          const axis = negative ? -(s.length + 1 + e) : s.length + e;
          return call({ run: () => f(x, { axis }), inputs: x, errorClass: ArgumentError });
        },
      ),
      def(name, 'axis:wrong-kind', 'either', fc.tuple(posShape(1, 3), badNumber()), ([s, a]) => {
        const x = mk(s, good(kind));
        return call({ run: () => f(x, { axis: a }), inputs: x, check: (o) => expectWellFormed(o) });
      }),
      def(name, 'axis:repeated', 'throws', posShape(1, 3), (s) => {
        const x = mk(s, good(kind));
        return call({ run: () => f(x, { axis: [0, -s.length] }), inputs: x, errorClass: ArgumentError });
      }),
      def(name, 'opts:extra-key', 'throws', fc.constantFrom('axes', 'keepdims', 'dim', 'keepDim'), (k) => {
        const x = mk([2, 2], good(kind));
        return call({ run: () => f(x, { [k]: 1 }), inputs: x, errorClass: ArgumentError });
      }),
      def(name, 'opts:wrong-kind', 'throws', badOpts(), (o) => {
        const x = mk([2, 2], good(kind));
        return call({ run: () => f(x, o), inputs: x });
      }),
      def(name, 'keepDims:not-boolean', 'throws', fc.constantFrom<unknown>('yes', 1, 0, null, 'true', []), (kd) => {
        const x = mk([2, 2], good(kind));
        return call({ run: () => f(x, { axis: 0, keepDims: kd }), inputs: x });
      }),
      def(
        name,
        'dtype:wrong',
        'throws',
        fc.constantFrom<DType>(
          ...((kind === 'bool' ? ['float32', 'int32'] : kind === 'float' ? ['int32', 'bool'] : ['bool']) as DType[]),
        ),
        (d) => {
          const x = mk([2, 3], d);
          return call({ run: () => f(x), inputs: x, errorClass: DTypeError });
        },
      ),
      def(
        name,
        'random',
        'either',
        fc.tuple(anyTensor(), fc.option(fc.integer({ min: -3, max: 3 })), fc.boolean()),
        ([t, a, kd]) => {
          const x = T(t);
          const finite = kind !== 'bool';
          return call({
            run: () => f(x, a === null ? { keepDims: kd } : { axis: a, keepDims: kd }),
            inputs: x,
            check: (o) => (finite ? expectNoNaN(o) : expectWellFormed(o)),
          });
        },
      ),
    );
    if (emptyFails) {
      out.push(
        def(name, 'axis:empty', 'throws', fc.tuple(fc.integer({ min: 1, max: 3 }), fc.boolean()), ([n, first]) => {
          const x = mk(first ? [0, n] : [n, 0]);
          return call({ run: () => f(x, { axis: first ? 0 : 1 }), inputs: x, errorClass: ShapeError });
        }),
      );
    }
  }
  for (const [name, f] of [
    ['softmax', softmax],
    ['logSoftmax', logSoftmax],
  ] as const) {
    const g = f as Reducer;
    out.push(
      def(name, 'x:wrong-kind', 'throws', garbage(), (v) => call({ run: () => g(v) })),
      def(name, 'x:scalar', 'throws', fc.constant(0), () => {
        const x = mk([]);
        return call({ run: () => g(x), inputs: x, errorClass: ShapeError });
      }),
      def(name, 'dtype:not-float', 'throws', fc.constantFrom<DType>('int32', 'bool'), (d) => {
        const x = mk([2, 2], d);
        return call({ run: () => g(x), inputs: x, errorClass: DTypeError });
      }),
      def(
        name,
        'axis:bad',
        'either',
        fc.tuple(posShape(1, 3), fc.oneof(badNumber(), fc.integer({ min: -6, max: 6 }))),
        ([s, a]) => {
          const x = mk(s);
          return call({ run: () => g(x, { axis: a }), inputs: x, check: (o) => expectNoNaN(o) });
        },
      ),
      def(name, 'opts:extra-key', 'throws', fc.constantFrom('keepDims', 'dim', 'axes'), (k) => {
        const x = mk([2, 2]);
        return call({ run: () => g(x, { [k]: 0 }), inputs: x });
      }),
      def(name, 'opts:wrong-kind', 'throws', badOpts(), (o) => {
        const x = mk([2, 2]);
        return call({ run: () => g(x, o), inputs: x });
      }),
      def(name, 'random', 'valid', floatTensor(1), (t) => {
        const x = T(t);
        return call({ run: () => g(x), inputs: x, check: (o) => expectNoNaN(o) });
      }),
    );
  }
  for (const [name, f] of [
    ['argmax', argmax],
    ['argmin', argmin],
  ] as const) {
    const g = f as Reducer;
    out.push(
      def(name, 'x:wrong-kind', 'throws', garbage(), (v) => call({ run: () => g(v) })),
      def(name, 'x:scalar', 'throws', fc.constant(0), () => {
        const x = mk([]);
        return call({ run: () => g(x), inputs: x });
      }),
      def(name, 'dtype:bool', 'throws', posShape(1, 2), (s) => {
        const x = mk(s, 'bool');
        return call({ run: () => g(x), inputs: x, errorClass: DTypeError });
      }),
      def(name, 'axis:empty', 'throws', fc.integer({ min: 0, max: 3 }), (n) => {
        const x = mk([n, 0]);
        return call({ run: () => g(x, { axis: 1 }), inputs: x, errorClass: ShapeError });
      }),
      def(
        name,
        'axis:bad',
        'either',
        fc.tuple(posShape(1, 3), fc.oneof(badNumber(), fc.integer({ min: -6, max: 6 }))),
        ([s, a]) => {
          const x = mk(s);
          return call({ run: () => g(x, { axis: a }), inputs: x, check: (o) => expectWellFormed(o) });
        },
      ),
      def(name, 'opts:extra-key', 'throws', fc.constantFrom('dim', 'axes'), (k) => {
        const x = mk([2, 2]);
        return call({ run: () => g(x, { [k]: 0 }), inputs: x });
      }),
    );
  }
  out.push(
    def('cumsum', 'x:wrong-kind', 'throws', garbage(), (v) => call({ run: () => cumsum(v as Tensor) })),
    def('cumsum', 'dtype:bool', 'throws', posShape(1, 2), (s) => {
      const x = mk(s, 'bool');
      return call({ run: () => cumsum(x), inputs: x, errorClass: DTypeError });
    }),
    def(
      'cumsum',
      'axis:bad',
      'either',
      fc.tuple(posShape(1, 3), fc.oneof(badNumber(), fc.integer({ min: -6, max: 6 }))),
      ([s, a]) => {
        const x = mk(s);
        return call({ run: () => cumsum(x, { axis: a as number }), inputs: x, check: (o) => expectNoNaN(o) });
      },
    ),
    def('cumsum', 'reverse:not-boolean', 'throws', fc.constantFrom<unknown>(1, 'yes', null, []), (r) => {
      const x = mk([3]);
      return call({ run: () => cumsum(x, { reverse: r as boolean }), inputs: x });
    }),
    def('cumsum', 'opts:extra-key', 'throws', fc.constantFrom('exclusive', 'dim'), (k) => {
      const x = mk([3]);
      return call({ run: () => cumsum(x, { [k]: true } as never), inputs: x });
    }),
  );
  return out;
}

function layoutDefs(): Def[] {
  const out: Def[] = [];
  out.push(
    def('reshape', 'x:wrong-kind', 'throws', garbage(), (v) => call({ run: () => reshape(v as Tensor, [1]) })),
    def('reshape', 'shape:bad', 'either', fc.tuple(anyTensor(), badShape()), ([t, s]) => {
      const x = T(t);
      return call({ run: () => reshape(x, s as number[]), inputs: x, check: (o) => expectWellFormed(o) });
    }),
    def('reshape', 'shape:two-unknowns', 'throws', anyTensor(), (t) => {
      const x = T(t);
      return call({ run: () => reshape(x, [-1, -1]), inputs: x, errorClass: ArgumentError });
    }),
    def('reshape', 'shape:size-mismatch', 'throws', fc.tuple(anyTensor(), fc.integer({ min: 1, max: 5 })), ([t, e]) => {
      const x = T(t);
      return call({ run: () => reshape(x, [x.size + e]), inputs: x, errorClass: ShapeError });
    }),
    def('transpose', 'x:wrong-kind', 'throws', garbage(), (v) => call({ run: () => transpose(v as Tensor) })),
    def(
      'transpose',
      'perm:bad',
      'either',
      fc.tuple(anyTensor(), fc.oneof(garbage(), fc.array(fc.integer({ min: -4, max: 4 }), { maxLength: 4 }))),
      ([t, p]) => {
        const x = T(t);
        return call({ run: () => transpose(x, p as number[]), inputs: x, check: (o) => expectWellFormed(o) });
      },
    ),
    def('transpose', 'perm:repeated', 'throws', posShape(2, 3), (s) => {
      const x = mk(s);
      return call({
        run: () =>
          transpose(
            x,
            s.map(() => 0),
          ),
        inputs: x,
        errorClass: ArgumentError,
      });
    }),
    def('transpose', 'perm:wrong-length', 'throws', fc.tuple(posShape(1, 3), fc.boolean()), ([s, longer]) => {
      const x = mk(s);
      const p = longer ? [...s.map((_, i) => i), 0] : s.slice(1).map((_, i) => i);
      return call({ run: () => transpose(x, p), inputs: x });
    }),
    def(
      'expandDims',
      'axis:bad',
      'either',
      fc.tuple(anyTensor(), fc.oneof(badNumber(), fc.integer({ min: -6, max: 6 }))),
      ([t, a]) => {
        const x = T(t);
        return call({ run: () => expandDims(x, a as number), inputs: x, check: (o) => expectWellFormed(o) });
      },
    ),
    def('expandDims', 'x:wrong-kind', 'throws', garbage(), (v) => call({ run: () => expandDims(v as Tensor, 0) })),
    def(
      'squeeze',
      'axis:not-size-1',
      'throws',
      fc.tuple(posShape(1, 3, 4), fc.nat(2)).filter(([s, a]) => s[a % s.length]! > 1),
      ([s, a]) => {
        const x = mk(s);
        return call({ run: () => squeeze(x, a % s.length), inputs: x, errorClass: ShapeError });
      },
    ),
    def(
      'squeeze',
      'axis:bad',
      'either',
      fc.tuple(anyTensor(), fc.oneof(garbage(), fc.integer({ min: -5, max: 5 }))),
      ([t, a]) => {
        const x = T(t);
        return call({ run: () => squeeze(x, a as number), inputs: x, check: (o) => expectWellFormed(o) });
      },
    ),
    def(
      'broadcastTo',
      'shape:bad',
      'throws',
      fc.tuple(
        anyTensor(),
        badShape().filter((s) => s !== undefined),
      ),
      ([t, s]) => {
        const x = T(t);
        return call({ run: () => broadcastTo(x, s as number[]), inputs: x });
      },
    ),
    def('broadcastTo', 'shape:incompatible', 'throws', clash(), ([s1, s2]) => {
      const x = mk(s1);
      return call({ run: () => broadcastTo(x, s2), inputs: x, errorClass: ShapeError });
    }),
    def('broadcastTo', 'random', 'either', fc.tuple(anyTensor(), smallShape()), ([t, s]) => {
      const x = T(t);
      return call({ run: () => broadcastTo(x, s), inputs: x, check: (o) => expectWellFormed(o) });
    }),
  );
  for (const [name, f] of [
    ['concat', concat],
    ['stack', stack],
  ] as const) {
    const g = f as (xs: unknown, axis?: unknown) => Tensor;
    out.push(
      def(name, 'xs:wrong-kind', 'throws', garbage(), (v) => call({ run: () => g(v) })),
      def(name, 'xs:contains-wrong-kind', 'throws', fc.tuple(garbage(), fc.nat(2)), ([v, at]) => {
        const xs: unknown[] = [mk([2, 2]), mk([2, 2], 'float32', 1)];
        xs.splice(at, 0, v);
        return call({ run: () => g(xs), inputs: xs });
      }),
      def(
        name,
        'xs:mixed-dtypes',
        'either',
        fc.constantFrom<[DType, DType]>(
          ['float32', 'int32'],
          ['bool', 'float32'],
          ['int32', 'bool'],
          ['float32', 'float64'],
        ),
        ([d1, d2]) => {
          const xs = [mk([2, 2], d1), mk([2, 2], d2)];
          return call({ run: () => g(xs), inputs: xs, check: (o) => expectWellFormed(o) });
        },
      ),
      def(name, 'xs:shape-mismatch', 'throws', fc.tuple(posShape(1, 3), fc.integer({ min: 1, max: 2 })), ([s, e]) => {
        const s2 = s.map((d) => d + e);
        const xs = [mk(s), mk([...s2, 1])];
        return call({ run: () => g(xs), inputs: xs, errorClass: ShapeError });
      }),
      def(
        name,
        'axis:bad',
        'either',
        fc.tuple(posShape(1, 3), fc.oneof(badNumber(), fc.integer({ min: -6, max: 6 }))),
        ([s, a]) => {
          const xs = [mk(s), mk(s, 'float32', 1)];
          return call({ run: () => g(xs, a), inputs: xs, check: (o) => expectWellFormed(o) });
        },
      ),
    );
  }
  out.push(
    def('concat', 'xs:scalars', 'throws', fc.constant(0), () => {
      const xs = [mk([]), mk([])];
      return call({ run: () => concat(xs), inputs: xs, errorClass: ShapeError });
    }),
  );
  out.push(
    def('slice', 'x:wrong-kind', 'throws', garbage(), (v) => call({ run: () => slice(v as Tensor, [0]) })),
    def(
      'slice',
      'begin:bad',
      'either',
      fc.tuple(anyTensor(), fc.oneof(garbage(), fc.array(badNumber(), { minLength: 1, maxLength: 3 }))),
      ([t, b]) => {
        const x = T(t);
        return call({ run: () => slice(x, b as number[]), inputs: x, check: (o) => expectWellFormed(o) });
      },
    ),
    def(
      'slice',
      'size:bad',
      'either',
      fc.tuple(posShape(1, 3), fc.oneof(garbage(), fc.array(badNumber(), { minLength: 1, maxLength: 3 }))),
      ([s, z]) => {
        const x = mk(s);
        return call({ run: () => slice(x, [0], z as number[]), inputs: x, check: (o) => expectWellFormed(o) });
      },
    ),
    def('slice', 'begin:out-of-range', 'throws', fc.tuple(posShape(1, 3), fc.integer({ min: 1, max: 3 })), ([s, e]) => {
      const x = mk(s);
      return call({ run: () => slice(x, [s[0]! + e]), inputs: x, errorClass: ArgumentError });
    }),
    def('slice', 'size:overrun', 'throws', fc.tuple(posShape(1, 3), fc.integer({ min: 1, max: 3 })), ([s, e]) => {
      const x = mk(s);
      return call({ run: () => slice(x, [0], [s[0]! + e]), inputs: x, errorClass: ArgumentError });
    }),
    def('slice', 'begin:too-long', 'throws', posShape(1, 2), (s) => {
      const x = mk(s);
      return call({ run: () => slice(x, [...s.map(() => 0), 0]), inputs: x, errorClass: ArgumentError });
    }),
    def(
      'pad',
      'widths:bad',
      'either',
      fc.tuple(posShape(1, 2), fc.oneof(garbage(), fc.array(badNumber(), { maxLength: 2 })), fc.boolean()),
      ([s, w, first]) => {
        const x = mk(s);
        const ok = s.map(() => 1);
        return call({
          run: () => (first ? pad(x, w as number[], ok) : pad(x, ok, w as number[])),
          inputs: x,
          check: (o) => expectWellFormed(o),
        });
      },
    ),
    def('pad', 'widths:wrong-length', 'throws', posShape(1, 3), (s) => {
      const x = mk(s);
      return call({ run: () => pad(x, [...s, 1], s), inputs: x, errorClass: ArgumentError });
    }),
    def('pad', 'widths:negative', 'throws', posShape(1, 3), (s) => {
      const x = mk(s);
      return call({
        run: () =>
          pad(
            x,
            s.map(() => -1),
            s.map(() => 0),
          ),
        inputs: x,
        errorClass: ArgumentError,
      });
    }),
    def('pad', 'x:wrong-kind', 'throws', garbage(), (v) => call({ run: () => pad(v as Tensor, [], []) })),
  );
  const idxArb = (n: number): fc.Arbitrary<number[]> =>
    fc.array(fc.integer({ min: 0, max: Math.max(0, n - 1) }), { maxLength: 4 });
  out.push(
    def('gather', 'indices:wrong-dtype', 'throws', fc.constantFrom<DType>('float32', 'bool', 'float64'), (d) => {
      const x = mk([4, 2]),
        i = mk([2], d);
      return call({ run: () => gather(x, i), inputs: [x, i], errorClass: DTypeError });
    }),
    def(
      'gather',
      'indices:out-of-range',
      'throws',
      fc.tuple(posShape(1, 3), fc.constantFrom(-1, -100, 0, 1, 2 ** 31 - 1), fc.nat(3)),
      ([s, off, at]) => {
        const x = mk(s);
        const bad = off >= 0 ? s[0]! + off : off;
        const i = ints([0, 0, 0].map((v, j) => (j === at % 3 ? bad : v)));
        return call({ run: () => gather(x, i), inputs: [x, i], errorClass: ArgumentError });
      },
    ),
    def('gather', 'indices:wrong-kind', 'throws', garbage(), (g) => {
      const x = mk([3]);
      return call({ run: () => gather(x, g as Tensor), inputs: x });
    }),
    def(
      'gather',
      'axis:bad',
      'either',
      fc.tuple(posShape(2, 3), fc.oneof(badNumber(), fc.integer({ min: -5, max: 5 }))),
      ([s, a]) => {
        const x = mk(s),
          i = ints([0]);
        return call({ run: () => gather(x, i, { axis: a as number }), inputs: [x, i], check: (o) => expectNoNaN(o) });
      },
    ),
    def('gather', 'x:scalar', 'throws', fc.constant(0), () => {
      const x = mk([]),
        i = ints([0]);
      return call({ run: () => gather(x, i), inputs: [x, i], errorClass: ShapeError });
    }),
    def('gather', 'opts:extra-key', 'throws', fc.constantFrom('dim', 'batchDims'), (k) => {
      const x = mk([3]),
        i = ints([0]);
      return call({ run: () => gather(x, i, { [k]: 0 } as never), inputs: [x, i] });
    }),
    def(
      'gather',
      'random',
      'either',
      fc.tuple(posShape(1, 3), seed()).chain(([s, k]) => fc.tuple(fc.constant(s), fc.constant(k), idxArb(s[0]!))),
      ([s, k, idx]) => {
        const x = mk(s, 'float32', k),
          i = ints(idx);
        return call({ run: () => gather(x, i), inputs: [x, i], check: (o) => expectNoNaN(o) });
      },
    ),
    def(
      'gatherRows',
      'indices:out-of-range',
      'throws',
      fc.tuple(posShape(1, 3), fc.constantFrom(-1, 0, 5)),
      ([s, off]) => {
        const x = mk(s),
          i = ints([off < 0 ? off : s[0]! + off]);
        return call({ run: () => gatherRows(x, i), inputs: [x, i], errorClass: ArgumentError });
      },
    ),
    def('gatherRows', 'indices:wrong-dtype', 'throws', fc.constantFrom<DType>('float32', 'bool'), (d) => {
      const x = mk([3, 2]),
        i = mk([1], d);
      return call({ run: () => gatherRows(x, i), inputs: [x, i], errorClass: DTypeError });
    }),
    def('gatherRows', 'args:wrong-kind', 'throws', fc.tuple(garbage(), fc.boolean()), ([g, first]) => {
      const x = mk([3, 2]),
        i = ints([1]);
      return call({ run: () => (first ? gatherRows(g as Tensor, i) : gatherRows(x, g as Tensor)), inputs: [x, i] });
    }),
    def('gatherRows', 'x:scalar', 'throws', fc.constant(0), () => {
      const x = mk([]),
        i = ints([0]);
      return call({ run: () => gatherRows(x, i), inputs: [x, i], errorClass: ShapeError });
    }),
    def('scatterRows', 'indices:out-of-range', 'throws', fc.constantFrom(-1, 3, 100), (bad) => {
      const x = mk([3, 2]),
        i = ints([0, bad]),
        u = mk([2, 2], 'float32', 5);
      return call({ run: () => scatterRows(x, i, u), inputs: [x, i, u], errorClass: ArgumentError });
    }),
    def('scatterRows', 'indices:not-1d', 'throws', fc.constant(0), () => {
      const x = mk([3, 2]),
        i = ints([0, 1], [1, 2]),
        u = mk([2, 2]);
      return call({ run: () => scatterRows(x, i, u), inputs: [x, i, u], errorClass: ShapeError });
    }),
    def(
      'scatterRows',
      'updates:wrong-shape',
      'throws',
      fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 4 })).filter(([r, c]) => c !== 2),
      ([r, c]) => {
        const x = mk([3, 2]),
          i = ints([0]),
          u = mk([r, c]);
        return call({ run: () => scatterRows(x, i, u), inputs: [x, i, u], errorClass: ShapeError });
      },
    ),
    def('scatterRows', 'updates:wrong-dtype', 'throws', fc.constantFrom<DType>('int32', 'bool', 'float64'), (d) => {
      const x = mk([3, 2]),
        i = ints([0]),
        u = mk([1, 2], d);
      return call({ run: () => scatterRows(x, i, u), inputs: [x, i, u], errorClass: DTypeError });
    }),
    def('scatterRows', 'args:wrong-kind', 'throws', fc.tuple(garbage(), fc.nat(2)), ([g, at]) => {
      const args: unknown[] = [mk([3, 2]), ints([0]), mk([1, 2])];
      args[at] = g;
      return call({ run: () => scatterRows(args[0] as Tensor, args[1] as Tensor, args[2] as Tensor), inputs: args });
    }),
    def(
      'topK',
      'k:bad',
      'throws',
      fc.tuple(
        posShape(1, 3),
        fc.oneof(
          badNumber().filter((k) => typeof k !== 'number' || !Number.isInteger(k) || k < 0 || k > 4),
          fc.integer({ min: 1, max: 3 }).map((e) => -e),
        ),
      ),
      ([s, k]) => {
        const x = mk(s);
        return call({ run: () => topK(x, k as number), inputs: x });
      },
    ),
    def('topK', 'k:larger-than-n', 'throws', fc.tuple(posShape(1, 3), fc.integer({ min: 1, max: 3 })), ([s, e]) => {
      const x = mk(s);
      return call({ run: () => topK(x, s[s.length - 1]! + e), inputs: x, errorClass: ArgumentError });
    }),
    def('topK', 'x:scalar-or-bool', 'throws', fc.boolean(), (scalar) => {
      const x = scalar ? mk([]) : mk([3], 'bool');
      return call({ run: () => topK(x, 1), inputs: x });
    }),
    def('topK', 'x:wrong-kind', 'throws', garbage(), (g) => call({ run: () => topK(g as Tensor, 1) })),
    def(
      'topK',
      'random',
      'either',
      fc.tuple(smallShape(), fc.integer({ min: 0, max: 4 }), fc.constantFrom<DType>('float32', 'int32')),
      ([s, k, d]) => {
        const x = mk(s, d);
        return call({ run: () => topK(x, k), inputs: x, check: (o) => expectWellFormedTree(o) });
      },
    ),
  );
  out.push(
    def('matmul', 'rank:below-2', 'throws', fc.tuple(fc.integer({ min: 0, max: 1 }), fc.boolean()), ([r, first]) => {
      const v = mk(r === 0 ? [] : [3]),
        m = mk([3, 3]);
      return call({ run: () => (first ? matmul(v, m) : matmul(m, v)), inputs: [v, m], errorClass: ShapeError });
    }),
    def(
      'matmul',
      'inner:mismatch',
      'throws',
      fc.tuple(
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 3 }),
        fc.boolean(),
        fc.boolean(),
      ),
      ([m, k, e, ta, tb]) => {
        const a = mk(ta ? [k, m] : [m, k]),
          b = mk(tb ? [2, k + e] : [k + e, 2]);
        return call({
          run: () => matmul(a, b, { transposeA: ta, transposeB: tb }),
          inputs: [a, b],
          errorClass: ShapeError,
        });
      },
    ),
    def('matmul', 'batch:no-broadcast', 'throws', fc.integer({ min: 2, max: 3 }), (n) => {
      const a = mk([n, 2, 2]),
        b = mk([n + 1, 2, 2]);
      return call({ run: () => matmul(a, b), inputs: [a, b], errorClass: ShapeError });
    }),
    def(
      'matmul',
      'dtype:not-float',
      'throws',
      fc.constantFrom<[DType, DType]>(['int32', 'int32'], ['float32', 'int32'], ['bool', 'float32']),
      ([d1, d2]) => {
        const a = mk([2, 2], d1),
          b = mk([2, 2], d2);
        return call({ run: () => matmul(a, b), inputs: [a, b], errorClass: DTypeError });
      },
    ),
    def(
      'matmul',
      'opts:bad',
      'throws',
      fc.constantFrom<unknown>({ transposeA: 1 }, { transposeB: 'yes' }, { transpose: true }, null, 'abc', {
        transposeA: null,
      }),
      (o) => {
        const a = mk([2, 2]),
          b = mk([2, 2]);
        return call({ run: () => matmul(a, b, o as never), inputs: [a, b] });
      },
    ),
    def('matmul', 'args:wrong-kind', 'throws', fc.tuple(garbage(), fc.boolean()), ([g, first]) => {
      const a = mk([2, 2]);
      return call({ run: () => (first ? matmul(g as Tensor, a) : matmul(a, g as Tensor)), inputs: a });
    }),
    def(
      'matmul',
      'random',
      'either',
      fc.tuple(posShape(2, 3, 3), posShape(2, 3, 3), fc.boolean(), fc.boolean()),
      ([s1, s2, ta, tb]) => {
        const a = mk(s1),
          b = mk(s2, 'float32', 1);
        return call({
          run: () => matmul(a, b, { transposeA: ta, transposeB: tb }),
          inputs: [a, b],
          check: (o) => expectNoNaN(o),
        });
      },
    ),
  );
  return out;
}

// ================================================================================================ autograd

function autogradDefs(): Def[] {
  const out: Def[] = [];
  const sq = (x: Tensor): Tensor => sum(mul(x, x));
  for (const [name, T2] of [
    ['grad', grad],
    ['valueAndGrad', valueAndGrad],
  ] as const) {
    const tr = T2 as (f: unknown, o?: unknown) => (...a: unknown[]) => unknown;
    out.push(
      def(
        name,
        'f:not-a-function',
        'throws',
        garbage().filter((g) => typeof g !== 'function'),
        (g) => call({ run: () => tr(g) }),
      ),
      def(name, 'opts:wrong-kind', 'throws', badOpts(), (o) => call({ run: () => tr(sq, o) })),
      def(name, 'opts:extra-key', 'throws', fc.constantFrom('argnum', 'has_aux', 'wrt'), (k) =>
        call({ run: () => tr(sq, { [k]: 0 }) }),
      ),
      def(
        name,
        'argnums:bad',
        'throws',
        fc.constantFrom<unknown>(1, -1, 0.5, NaN, '0', [0, 0], [2], null, {}, [0, 'a']),
        (a) => {
          const x = mk([2]);
          return call({ run: () => tr(sq, { argnums: a })(x), inputs: x });
        },
      ),
      def(
        name,
        'args:garbage-leaf',
        'throws',
        fc.tuple(
          garbage().filter(
            (g) =>
              !Array.isArray(g) &&
              !(g !== null && typeof g === 'object' && Object.getPrototypeOf(g) === Object.prototype),
          ),
          fc.boolean(),
        ),
        ([g, nested]) => {
          const arg = nested ? { a: mk([2]), b: [g] } : g;
          return call({ run: () => tr((p: unknown) => mk([]) as unknown as Tensor)(arg), inputs: arg });
        },
      ),
      def(
        name,
        'f-output:not-scalar-float',
        'throws',
        fc.constantFrom<(x: Tensor) => unknown>(
          (x) => mul(x, x),
          (x) => cast(sum(x), 'int32'),
          () => undefined,
          () => 1,
          () => 'loss',
          (x) => [sum(x)],
          () => null,
          (x) => cast(x, 'bool'),
        ),
        (f) => {
          const x = mk([3]);
          return call({ run: () => tr(f)(x), inputs: x });
        },
      ),
      def(name, 'random', 'valid', fc.tuple(posShape(1, 2), fc.constantFrom(...FLOAT), seed()), ([s, d, k]) => {
        const x = mk(s, d, k);
        return call({ run: () => tr(sq)(x), inputs: x, check: (o) => expectWellFormedTree(o) });
      }),
    );
  }
  out.push(
    def('valueAndGrad', 'hasAux:not-boolean', 'throws', fc.constantFrom<unknown>(1, 'yes', null, []), (h) =>
      call({ run: () => valueAndGrad(sq, { hasAux: h as boolean }) }),
    ),
    def(
      'valueAndGrad',
      'hasAux:not-a-pair',
      'throws',
      fc.constantFrom<(x: Tensor) => unknown>(
        (x) => sum(x),
        (x) => [sum(x)],
        (x) => [sum(x), 1, 2],
        () => undefined,
      ),
      (f) => {
        const x = mk([2]);
        return call({ run: () => valueAndGrad(f, { hasAux: true })(x), inputs: x });
      },
    ),
    def(
      'vjp',
      'f:not-a-function',
      'throws',
      garbage().filter((g) => typeof g !== 'function'),
      (g) => call({ run: () => vjp(g as never, mk([1])) }),
    ),
    def(
      'vjp',
      'primals:garbage',
      'throws',
      garbage().filter(
        (g) =>
          !Array.isArray(g) && !(g !== null && typeof g === 'object' && Object.getPrototypeOf(g) === Object.prototype),
      ),
      (g) => call({ run: () => vjp((x: Tensor) => x, g as Tensor) }),
    ),
    def(
      'vjp',
      'f-output:bad',
      'throws',
      fc.constantFrom<(x: Tensor) => unknown>(
        () => undefined,
        () => 2,
        (x) => cast(x, 'int32'),
        () => 'x',
      ),
      (f) => {
        const x = mk([2]);
        return call({ run: () => vjp(f as never, x), inputs: x });
      },
    ),
    def(
      'vjp',
      'cotangent:bad',
      'throws',
      fc.oneof(garbage(), fc.constantFrom<unknown>('shape', 'int', 'rank')),
      (g) => {
        const x = mk([2, 3]);
        const ct = g === 'shape' ? mk([3, 2]) : g === 'int' ? mk([2, 3], 'int32') : g === 'rank' ? mk([6]) : g;
        const { vjp: pull } = vjp((y: Tensor) => mul(y, 2), x);
        return call({ run: () => pull(ct as Tensor), inputs: [x, ct] });
      },
    ),
    def('vjp', 'random', 'valid', fc.tuple(posShape(1, 2), seed()), ([s, k]) => {
      const x = mk(s, 'float32', k),
        ct = mk(s, 'float32', k + 1);
      return call({
        run: () => vjp((y: Tensor) => mul(y, y), x).vjp(ct),
        inputs: [x, ct],
        check: (o) => expectWellFormedTree(o),
      });
    }),
    def(
      'checkGradients',
      'f:not-a-function',
      'throws',
      garbage().filter((g) => typeof g !== 'function'),
      (g) => call({ run: () => checkGradients(g as never, [mk([2])]) }),
    ),
    def(
      'checkGradients',
      'inputs:bad',
      'throws',
      fc.oneof(
        garbage().filter((g) => !(Array.isArray(g) && g.length === 0)),
        fc.constant<unknown>([mk([2]), 'x']),
      ),
      (g) => call({ run: () => checkGradients((x: Tensor) => x, g as Tensor[]) }),
    ),
    def(
      'checkGradients',
      'opts:bad',
      'throws',
      fc.constantFrom<unknown>(
        null,
        'abc',
        { rng: 5 },
        { rng: {} },
        { eps: 0 },
        { eps: -1e-3 },
        { eps: NaN },
        { eps: 'a' },
        { directions: -1 },
        { directions: 1.5 },
        { directions: NaN },
        { precision: 'float16' },
        { tol: NaN },
        { tol: -1 },
        { maxJacobianEntries: -1 },
        { maxJacobianEntries: 0.5 },
        { epsilon: 1e-3 },
      ),
      (o) => {
        const x = mk([2]);
        return call({ run: () => checkGradients((y: Tensor) => mul(y, y), [x], o as never), inputs: x });
      },
    ),
    def(
      'checkGradients',
      'f-output:bad',
      'throws',
      fc.constantFrom<(x: Tensor) => unknown>(
        () => undefined,
        () => 3,
        (x) => cast(x, 'int32'),
      ),
      (f) => {
        const x = mk([2]);
        return call({ run: () => checkGradients(f as never, [x]), inputs: x });
      },
    ),
    def(
      'checkGradients',
      'valid',
      'valid',
      fc.tuple(posShape(1, 2, 3), seed()),
      ([s, k]) => {
        const x = mk(s, 'float32', k);
        return call({
          run: () => checkGradients((y: Tensor) => mul(y, y), [x], { directions: 1 }),
          inputs: x,
          check: (o) => {
            if (!(o as { ok: boolean }).ok) throw new Error((o as { summary: string }).summary);
          },
        });
      },
      4,
    ),
  );
  return out;
}

// ================================================================================================ cache

const DIM = 3;
const SPECS = () => ({
  embedding: { shape: [DIM], dtype: 'float32' as DType },
  docId: { shape: [] as number[], dtype: 'int32' as DType },
});

function managerAndCache(size: number, filled: number, k: number): { m: CacheManager; cache: NegativeCache } {
  const m = new CacheManager({ specs: SPECS(), cacheSize: size });
  let cache = m.initCache();
  if (filled > 0) {
    cache = m.updateCache(cache, {
      newItems: {
        embedding: mk([filled, DIM], 'float32', k),
        docId: ints(Array.from({ length: filled }, (_, i) => (i * 7 + k) % 50)),
      },
    });
  }
  return { m, cache };
}

function cacheDefs(): Def[] {
  const out: Def[] = [];
  const C = (o: unknown): CacheManager => new CacheManager(o as never);
  out.push(
    def('CacheManager', 'opts:wrong-kind', 'throws', garbage(), (o) => call({ run: () => C(o) })),
    def(
      'CacheManager',
      'specs:empty-or-wrong-kind',
      'throws',
      fc.constantFrom<unknown>({}, null, undefined, 'x', 3, []),
      (s) => call({ run: () => C({ specs: s, cacheSize: 4 }) }),
    ),
    def(
      'CacheManager',
      'specs:bad-shape',
      'throws',
      fc.oneof(
        garbage().filter((g) => !(Array.isArray(g) && g.every((v) => typeof v === 'number'))),
        fc.array(badNumber(), { minLength: 1, maxLength: 2 }),
      ),
      (s) => call({ run: () => C({ specs: { e: { shape: s, dtype: 'float32' } }, cacheSize: 4 }) }),
    ),
    def('CacheManager', 'specs:bad-dtype', 'throws', badDType(), (d) =>
      call({ run: () => C({ specs: { e: { shape: [2], dtype: d } }, cacheSize: 4 }) }),
    ),
    def(
      'CacheManager',
      'specs:entry-wrong-kind',
      'throws',
      fc.constantFrom<unknown>(null, 3, 'x', [2], undefined),
      (e) => call({ run: () => C({ specs: { e }, cacheSize: 4 }) }),
    ),
    def(
      'CacheManager',
      'specs:too-large',
      'throws',
      fc.constantFrom<[number[], number]>(
        [[2 ** 40], 4],
        [[1e300], 1],
        [[2 ** 16, 2 ** 16], 1],
        [[2 ** 20], 2 ** 12],
        [[2 ** 31], 1],
      ),
      ([shape, size]) => call({ run: () => C({ specs: { e: { shape, dtype: 'float32' } }, cacheSize: size }) }),
    ),
    def(
      'CacheManager',
      'cacheSize:bad',
      'throws',
      fc.oneof(badNumber(), fc.constantFrom<unknown>(0, 2 ** 28 + 1, undefined)),
      (n) => call({ run: () => C({ specs: SPECS(), cacheSize: n }) }),
    ),
    def('CacheManager', 'useLru:not-boolean', 'throws', fc.constantFrom<unknown>(1, 0, 'yes', null, []), (u) =>
      call({ run: () => C({ specs: SPECS(), cacheSize: 4, useLru: u }) }),
    ),
    def('CacheManager', 'opts:extra-key', 'either', fc.constantFrom('size', 'lru', 'spec', 'cache_size'), (k) =>
      call({ run: () => C({ specs: SPECS(), cacheSize: 4, [k]: 1 }) }),
    ),
    def(
      'CacheManager.initCache',
      'valid',
      'valid',
      fc.tuple(fc.integer({ min: 1, max: 8 }), fc.boolean()),
      ([n, lru]) => {
        const m = new CacheManager({ specs: SPECS(), cacheSize: n, useLru: lru });
        return call({ run: () => m.initCache(), state: m, check: (o) => expectWellFormedTree(o) });
      },
    ),
  );
  // updateCache: every field broken in turn, against a partly filled cache.
  type U = { m: CacheManager; cache: NegativeCache; update: Record<string, unknown> };
  const base = (k: number, n = 2): U => {
    const { m, cache } = managerAndCache(5, 3, k);
    return {
      m,
      cache,
      update: {
        newItems: {
          embedding: mk([n, DIM], 'float32', k + 1),
          docId: ints(Array.from({ length: n }, (_, i) => 10 + i)),
        },
      },
    };
  };
  const upd = (
    entryKind: string,
    mode: 'throws' | 'either',
    mutate: fc.Arbitrary<(u: U) => void>,
    cls?: typeof ArgumentError | typeof ShapeError | typeof DTypeError,
  ): Def =>
    def('CacheManager.updateCache', entryKind, mode, fc.tuple(mutate, seed()), ([f, k]) => {
      const u = base(k);
      f(u);
      return call({
        run: () => u.m.updateCache(u.cache, u.update as never),
        inputs: [u.cache, u.update],
        state: u.m,
        ...(cls ? { errorClass: cls } : {}),
        check: (o) => expectWellFormedTree(o),
      });
    });
  const setCacheData = (key: string, v: unknown) => (u: U) => {
    u.cache = { ...u.cache, data: { ...u.cache.data, [key]: v as Tensor } };
  };
  out.push(
    def('CacheManager.updateCache', 'cache:wrong-kind', 'throws', garbage(), (g) => {
      const u = base(1);
      return call({ run: () => u.m.updateCache(g as NegativeCache, u.update as never), inputs: u.update });
    }),
    upd(
      'cache:missing-key',
      'throws',
      fc.constantFrom('embedding', 'docId').map((key) => (u: U) => {
        const data = { ...u.cache.data };
        delete (data as Record<string, Tensor>)[key];
        u.cache = { ...u.cache, data };
      }),
      ArgumentError,
    ),
    upd('cache:extra-key', 'throws', fc.constant(setCacheData('extra', mk([5]))), ArgumentError),
    upd(
      'cache:data-wrong-shape',
      'throws',
      fc
        .constantFrom<[string, number[]]>(
          ['embedding', [5, DIM + 1]],
          ['embedding', [4, DIM]],
          ['docId', [5, 1]],
          ['docId', [6]],
          ['embedding', [5]],
        )
        .map(([key, s]) => setCacheData(key, mk(s, key === 'docId' ? 'int32' : 'float32'))),
      ShapeError,
    ),
    upd(
      'cache:data-wrong-dtype',
      'throws',
      fc
        .constantFrom<[string, DType]>(
          ['embedding', 'int32'],
          ['embedding', 'float64'],
          ['docId', 'float32'],
          ['docId', 'bool'],
        )
        .map(([key, d]) => setCacheData(key, mk(key === 'docId' ? [5] : [5, DIM], d))),
      ShapeError,
    ),
    upd(
      'cache:data-wrong-kind',
      'throws',
      fc.tuple(garbage(), fc.constantFrom('embedding', 'docId')).map(([g, key]) => setCacheData(key, g)),
    ),
    upd(
      'cache:age-bad',
      'throws',
      fc
        .constantFrom<unknown>(null, mk([5]), mk([5, 1], 'int32'), mk([], 'int32'), 'x', [0, 0, 0, 0, 0])
        .map((a) => (u: U) => {
          u.cache = { ...u.cache, age: a as Tensor };
        }),
    ),
    upd(
      'cache:valid-bad',
      'throws',
      fc.constantFrom<unknown>(null, mk([5], 'int32'), mk([4], 'bool'), 'x', [true]).map((v) => (u: U) => {
        u.cache = { ...u.cache, valid: v as Tensor };
      }),
      ArgumentError,
    ),
    // an empty update ({} or a null-prototype {}) is valid since newItems became optional: it ages every slot
    def(
      'CacheManager.updateCache',
      'update:wrong-kind',
      'throws',
      garbage().filter((g) => !emptyRecord(g)),
      (g) => {
        const u = base(1);
        return call({ run: () => u.m.updateCache(u.cache, g as never), inputs: u.cache });
      },
    ),
    upd(
      'update:extra-field',
      'throws',
      fc.constantFrom('items', 'mask', 'updatedItemsData', 'newItemMask').map((k) => (u: U) => {
        u.update[k] = mk([2], 'bool');
      }),
      ArgumentError,
    ),
    upd(
      // newItems may be absent (a refresh-only update), but not while a mask for them is given
      'newItems:missing-with-mask',
      'throws',
      fc.constant((u: U) => {
        delete u.update['newItems'];
        u.update['newItemsMask'] = mk([2], 'bool');
      }),
      ArgumentError,
    ),
    upd(
      'newItems:missing-key',
      'throws',
      fc.constantFrom('embedding', 'docId').map((key) => (u: U) => {
        const items = { ...(u.update['newItems'] as Record<string, Tensor>) };
        delete items[key];
        u.update['newItems'] = items;
      }),
      ArgumentError,
    ),
    upd(
      'newItems:extra-key',
      'throws',
      fc.constant((u: U) => {
        u.update['newItems'] = { ...(u.update['newItems'] as object), extra: mk([2]) };
      }),
      ArgumentError,
    ),
    upd(
      'newItems:wrong-shape',
      'throws',
      fc
        .constantFrom<[string, number[]]>(
          ['embedding', [2, DIM + 1]],
          ['embedding', [2]],
          ['docId', [2, 1]],
          ['embedding', [2, DIM, 1]],
          ['docId', []],
        )
        .map(([key, s]) => (u: U) => {
          u.update['newItems'] = {
            ...(u.update['newItems'] as object),
            [key]: mk(s, key === 'docId' ? 'int32' : 'float32'),
          };
        }),
      ShapeError,
    ),
    upd(
      'newItems:wrong-dtype',
      'throws',
      fc
        .constantFrom<[string, DType]>(
          ['embedding', 'int32'],
          ['docId', 'float32'],
          ['docId', 'bool'],
          ['embedding', 'bool'],
        )
        .map(([key, d]) => (u: U) => {
          u.update['newItems'] = {
            ...(u.update['newItems'] as object),
            [key]: mk(key === 'docId' ? [2] : [2, DIM], d),
          };
        }),
      DTypeError,
    ),
    upd(
      'newItems:wrong-kind',
      'throws',
      // (newItems: undefined is a valid, refresh-only update)
      fc
        .tuple(garbage(), fc.constantFrom('embedding', 'docId', '*'))
        .filter(([g, key]) => key !== '*' || g !== undefined)
        .map(([g, key]) => (u: U) => {
          u.update['newItems'] = key === '*' ? g : { ...(u.update['newItems'] as object), [key]: g };
        }),
    ),
    upd(
      'newItems:count-mismatch',
      'throws',
      fc
        .integer({ min: 1, max: 4 })
        .filter((n) => n !== 2)
        .map((n) => (u: U) => {
          u.update['newItems'] = {
            ...(u.update['newItems'] as object),
            docId: ints(Array.from({ length: n }, (_, i) => i)),
          };
        }),
      ShapeError,
    ),
    upd(
      'newItems:more-than-slots',
      'throws',
      fc.integer({ min: 6, max: 9 }).map((n) => (u: U) => {
        u.update['newItems'] = { embedding: mk([n, DIM]), docId: ints(Array.from({ length: n }, (_, i) => i)) };
      }),
      ArgumentError,
    ),
    upd(
      'newItemsMask:bad',
      'throws',
      fc
        .constantFrom<unknown>(null, mk([2]), mk([3], 'bool'), mk([2, 1], 'bool'), 'x', [true, false], mk([2], 'int32'))
        .map((v) => (u: U) => {
          u.update['newItemsMask'] = v;
        }),
      ArgumentError,
    ),
    upd(
      'updatedItemData:without-indices',
      'throws',
      fc.boolean().map((dataOnly) => (u: U) => {
        if (dataOnly) u.update['updatedItemData'] = { embedding: mk([1, DIM]) };
        else u.update['updatedItemIndices'] = ints([0]);
      }),
      ArgumentError,
    ),
    upd(
      'updatedItemIndices:out-of-range',
      'throws',
      fc.constantFrom(-1, 5, 6, 2 ** 31 - 1, -(2 ** 31)).map((bad) => (u: U) => {
        u.update['updatedItemData'] = { embedding: mk([2, DIM]) };
        u.update['updatedItemIndices'] = ints([0, bad]);
      }),
      ArgumentError,
    ),
    upd(
      'updatedItemIndices:wrong-dtype-or-rank',
      'throws',
      fc
        .constantFrom<unknown>(mk([2]), mk([2], 'bool'), ints([0, 1], [2, 1]), ints([0], []), 'x', [0, 1])
        .map((v) => (u: U) => {
          u.update['updatedItemData'] = { embedding: mk([2, DIM]) };
          u.update['updatedItemIndices'] = v;
        }),
      ArgumentError,
    ),
    upd(
      'updatedItemIndices:count-mismatch',
      'throws',
      fc
        .integer({ min: 1, max: 4 })
        .filter((n) => n !== 2)
        .map((n) => (u: U) => {
          u.update['updatedItemData'] = { embedding: mk([2, DIM]) };
          u.update['updatedItemIndices'] = ints(Array.from({ length: n }, () => 0));
        }),
      ShapeError,
    ),
    upd(
      'updatedItemData:unknown-key',
      'throws',
      fc.constant((u: U) => {
        u.update['updatedItemData'] = { emb: mk([1, DIM]) };
        u.update['updatedItemIndices'] = ints([0]);
      }),
      ArgumentError,
    ),
    upd(
      'updatedItemData:wrong-shape',
      'throws',
      fc.constantFrom<number[]>([1, DIM + 1], [1], [1, DIM, 2]).map((s) => (u: U) => {
        u.update['updatedItemData'] = { embedding: mk(s) };
        u.update['updatedItemIndices'] = ints([0]);
      }),
      ShapeError,
    ),
    upd(
      'updatedItemMask:bad',
      'throws',
      fc.constantFrom<unknown>(mk([2]), mk([3], 'bool'), null, 'x').map((v) => (u: U) => {
        u.update['updatedItemData'] = { embedding: mk([2, DIM]) };
        u.update['updatedItemIndices'] = ints([0, 1]);
        u.update['updatedItemMask'] = v;
      }),
      ArgumentError,
    ),
    upd(
      'updatedItemIndices:masked-out-of-range',
      'either',
      fc.constantFrom(-1, 5, 99).map((bad) => (u: U) => {
        u.update['updatedItemData'] = { embedding: mk([2, DIM]) };
        u.update['updatedItemIndices'] = ints([0, bad]);
        u.update['updatedItemMask'] = tensor([true, false]);
      }),
    ),
    upd(
      'newItems:non-finite',
      'either',
      fc.tuple(nonFinite(), fc.nat(5)).map(([v, at]) => (u: U) => {
        u.update['newItems'] = { ...(u.update['newItems'] as object), embedding: withValue(mk([2, DIM]), v, at) };
      }),
    ),
    def(
      'CacheManager.updateCache',
      'random-valid',
      'valid',
      fc.tuple(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 3 }), seed(), fc.boolean()),
      ([n, m, k, masked]) => {
        const { m: mgr, cache } = managerAndCache(5, 3, k);
        const update = {
          newItems: { embedding: mk([n, DIM], 'float32', k), docId: ints(Array.from({ length: n }, (_, i) => i)) },
          ...(masked ? { newItemsMask: mk([n], 'bool', k) } : {}),
          ...(m > 0
            ? {
                updatedItemData: { embedding: mk([m, DIM], 'float32', k + 2) },
                updatedItemIndices: ints(Array.from({ length: m }, (_, i) => (i * 3 + k) % 5)),
              }
            : {}),
        };
        return call({
          run: () => mgr.updateCache(cache, update),
          inputs: [cache, update],
          state: mgr,
          check: (o) => expectWellFormedTree(o),
        });
      },
    ),
  );
  return out;
}

// ================================================================================================ retrieval

function retrievalDefs(): Def[] {
  const out: Def[] = [];
  const makers: [string, (r: Rng) => (s: Tensor) => Tensor][] = [
    ['maxScoreRetrieval', () => maxScoreRetrievalFn()],
    ['gumbelMaxRetrieval', (r) => gumbelMaxRetrievalFn({ rng: r })],
    ['categoricalRetrieval', (r) => categoricalRetrievalFn({ rng: r, invTemp: 2 })],
  ];
  for (const [name, make] of makers) {
    const scored = (
      mode: 'throws' | 'either' | 'valid',
      kind: string,
      arb: fc.Arbitrary<unknown>,
      cls?: typeof NonFiniteError | typeof ShapeError | typeof DTypeError,
    ): Def =>
      def(name, kind, mode, fc.tuple(arb, seed()), ([s, k]) => {
        const r = new Rng(k);
        const f = make(r);
        const scores = s instanceof Function ? (s as () => unknown)() : s;
        return call({
          run: () => f(scores as Tensor),
          inputs: scores,
          state: r,
          ...(cls ? { errorClass: cls } : {}),
          check: (o) => {
            expectWellFormed(o);
            const t = o as Tensor,
              sc = scores as Tensor;
            if (t.dtype !== 'int32' || t.shape[0] !== sc.shape[0] || t.shape[1] !== 1)
              throw new Error(`bad indices ${t}`);
            for (const v of unsafeData(t))
              if (!(v >= 0 && v < sc.shape[1]!)) throw new Error(`index ${v} out of range`);
          },
        });
      });
    out.push(
      scored('throws', 'scores:wrong-kind', garbage()),
      scored(
        'throws',
        'scores:wrong-rank',
        fc.constantFrom<number[]>([3], [], [2, 2, 2]).map((s) => () => mk(s)),
        ShapeError,
      ),
      scored(
        'throws',
        'scores:not-float',
        fc.constantFrom<DType>('int32', 'bool').map((d) => () => mk([2, 3], d)),
        DTypeError,
      ),
      scored(
        'throws',
        'scores:no-candidates',
        fc.integer({ min: 0, max: 3 }).map((b) => () => mk([b, 0])),
        ShapeError,
      ),
      scored(
        'throws',
        'scores:NaN-or-+Infinity',
        fc.tuple(fc.constantFrom(NaN, Infinity), fc.nat(11), posShape(2, 2, 4)).map(
          ([v, at, s]) =>
            () =>
              withValue(mk(s), v, at),
        ),
        NonFiniteError,
      ),
      scored(
        'valid',
        'scores:-Infinity-excluded',
        fc.tuple(fc.nat(11), posShape(2, 2, 4), fc.boolean()).map(([at, s, allRow]) => () => {
          const t = allRow
            ? wrap(new Float32Array(s[0]! * s[1]!).fill(-Infinity), s, 'float32')
            : withValue(mk(s), -Infinity, at);
          return t;
        }),
      ),
      scored(
        'valid',
        'random',
        fc.tuple(fc.integer({ min: 0, max: 4 }), fc.integer({ min: 1, max: 6 }), seed(), fc.constantFrom(...FLOAT)).map(
          ([b, n, k, d]) =>
            () =>
              mk([b, n], d, k),
        ),
      ),
    );
  }
  for (const [name, f] of [
    ['gumbelMaxRetrieval', gumbelMaxRetrievalFn],
    ['categoricalRetrieval', categoricalRetrievalFn],
  ] as const) {
    const g = f as (o: unknown) => unknown;
    out.push(
      def(`${name}Fn`, 'opts:wrong-kind', 'throws', garbage(), (o) => call({ run: () => g(o) })),
      def(`${name}Fn`, 'rng:wrong-kind', 'throws', garbage(), (r) => call({ run: () => g({ rng: r }) })),
      def(
        `${name}Fn`,
        'invTemp:bad',
        'throws',
        fc.tuple(fc.constantFrom<unknown>(-1, NaN, Infinity, 'a', 3n, -Infinity, '2', {}), seed()),
        ([t, k]) => {
          const r = new Rng(k);
          return call({ run: () => g({ rng: r, invTemp: t }), state: r });
        },
      ),
    );
  }
  out.push(
    def('approximateTopKWithIndices', 'scores:wrong-kind', 'throws', garbage(), (g) =>
      call({ run: () => approximateTopKWithIndices(g as Tensor, 1) }),
    ),
    def(
      'approximateTopKWithIndices',
      'scores:wrong-rank-or-dtype',
      'throws',
      fc.constantFrom<[number[], DType]>(
        [[4], 'float32'],
        [[2, 2, 2], 'float32'],
        [[2, 4], 'int32'],
        [[2, 4], 'bool'],
        [[], 'float32'],
      ),
      ([s, d]) => {
        const x = mk(s, d);
        return call({ run: () => approximateTopKWithIndices(x, 2), inputs: x });
      },
    ),
    def(
      'approximateTopKWithIndices',
      'k:bad',
      'throws',
      fc.tuple(
        badNumber().filter((k) => !(typeof k === 'number' && Number.isInteger(k) && k >= 1 && k <= 6)),
        fc.integer({ min: 1, max: 3 }),
      ),
      ([k, b]) => {
        const x = mk([b, 6]);
        return call({ run: () => approximateTopKWithIndices(x, k as number), inputs: x, errorClass: ArgumentError });
      },
    ),
    def(
      'approximateTopKWithIndices',
      'k:not-dividing-n',
      'throws',
      fc
        .tuple(fc.integer({ min: 2, max: 12 }), fc.integer({ min: 2, max: 12 }))
        .filter(([n, k]) => k <= n && n % k !== 0),
      ([n, k]) => {
        const x = mk([2, n]);
        return call({ run: () => approximateTopKWithIndices(x, k), inputs: x, errorClass: ArgumentError });
      },
    ),
    def(
      'approximateTopKWithIndices',
      'k:zero-or-above-n',
      'throws',
      fc.tuple(fc.integer({ min: 1, max: 6 }), fc.boolean()),
      ([n, zero]) => {
        const x = mk([2, n]);
        return call({
          run: () => approximateTopKWithIndices(x, zero ? 0 : n + 1),
          inputs: x,
          errorClass: ArgumentError,
        });
      },
    ),
    def('approximateTopKWithIndices', 'scores:empty', 'throws', fc.integer({ min: 0, max: 2 }), (b) => {
      const x = mk([b, 0]);
      return call({ run: () => approximateTopKWithIndices(x, 1), inputs: x, errorClass: ArgumentError });
    }),
    def('approximateTopKWithIndices', 'scores:non-finite', 'either', fc.tuple(nonFinite(), fc.nat(11)), ([v, at]) => {
      const x = withValue(mk([2, 6]), v, at);
      return call({ run: () => approximateTopKWithIndices(x, 3), inputs: x, check: (o) => expectWellFormedTree(o) });
    }),
    def(
      'approximateTopKWithIndices',
      'random',
      'valid',
      fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 3 }), seed()),
      ([b, k, g, s]) => {
        const x = mk([b, k * g], 'float32', s);
        return call({ run: () => approximateTopKWithIndices(x, k), inputs: x, check: (o) => expectWellFormedTree(o) });
      },
    ),
  );
  return out;
}

// ================================================================================================ loss, handler, filter

const NUM_DOCS = 12;

interface Setup {
  m: CacheManager;
  loss: CacheClassificationLoss;
  h: CacheLossHandler;
  rng: Rng;
  docEmb: Tensor;
  docNet: (f: Record<string, Tensor>) => Tensor;
  fn: boolean;
}

interface Batch {
  ids: Tensor;
  q: Tensor;
  p: Tensor;
}

function batchOf(s: Pick<Setup, 'docNet'>, k: number, b = 3): Batch {
  const ids = ints(Array.from({ length: b }, (_, i) => (k * 5 + i * 7) % NUM_DOCS));
  return { ids, q: mk([b, DIM], 'float32', k), p: s.docNet({ docId: ids }) };
}

/** A handler whose cache holds a few committed steps (so negatives exist), with its loss, manager and sampler generator. */
function setup(
  k: number,
  o: { cacheSize?: number; warm?: number; fn?: boolean; filter?: boolean; topK?: number } = {},
): Setup {
  const size = o.cacheSize ?? 6;
  const fn = o.fn ?? k % 3 !== 0;
  const m = new CacheManager({ specs: SPECS(), cacheSize: size });
  const rng = new Rng(k);
  const loss = new CacheClassificationLoss({
    embeddingKey: 'embedding',
    dataKeys: ['docId'],
    scoreTransform: scaleTransform(2),
    rng,
    sampler: k % 2 ? 'categorical' : 'gumbel',
    ...(fn ? { falseNegativeKey: 'docId' } : {}),
    ...(o.topK !== undefined ? { topK: o.topK } : {}),
  });
  const h = new CacheLossHandler({
    cacheManager: m,
    loss,
    ...(o.filter ? { filter: isInCacheFilter(['docId']) } : {}),
  });
  const docEmb = mk([NUM_DOCS, DIM], 'float32', k + 100);
  const docNet = (f: Record<string, Tensor>): Tensor => gatherRows(docEmb, f['docId']!);
  const s = { m, loss, h, rng, docEmb, docNet, fn };
  for (let w = 0; w < (o.warm ?? 2); w++) {
    const b = batchOf(s, k + w + 1, Math.min(3, size));
    h.updateCacheAndComputeLoss(docNet, b.q, b.p, { docId: b.ids }, fn ? { positiveIds: b.ids } : undefined);
  }
  return s;
}

const optsFor = (s: Setup, b: Batch): { positiveIds: Tensor } | undefined =>
  s.fn ? { positiveIds: b.ids } : undefined;

function lossDefs(): Def[] {
  const out: Def[] = [];
  const L = (o: unknown): CacheClassificationLoss => new CacheClassificationLoss(o as never);
  const baseOpts = (): Record<string, unknown> => ({ embeddingKey: 'embedding', dataKeys: ['docId'], rng: new Rng(1) });
  const ctor = (kind: string, arb: fc.Arbitrary<[string, unknown]>): Def =>
    def('CacheClassificationLoss', kind, 'throws', arb, ([key, v]) => {
      const o = baseOpts();
      if (v === DELETE) delete o[key];
      else o[key] = v;
      return call({ run: () => L(o), state: o['rng'], errorClass: ArgumentError });
    });
  const DELETE = Symbol('delete');
  out.push(
    def('CacheClassificationLoss', 'opts:wrong-kind', 'throws', garbage(), (o) => call({ run: () => L(o) })),
    ctor(
      'opts:extra-key',
      fc.constantFrom('embedding_key', 'temperature', 'top_k', 'seed').map((k) => [k, 1]),
    ),
    ctor(
      'embeddingKey:bad',
      fc.constantFrom<unknown>(DELETE, '', 3, null, ['embedding'], {}).map((v) => ['embeddingKey', v]),
    ),
    ctor(
      'dataKeys:bad',
      fc.constantFrom<unknown>(DELETE, 'docId', [1], [null], null, {}, new Set(['docId'])).map((v) => ['dataKeys', v]),
    ),
    ctor(
      'scoreTransform:bad',
      fc.constantFrom<unknown>(20, 'scale', null, {}).map((v) => ['scoreTransform', v]),
    ),
    ctor(
      'topK:bad',
      fc.constantFrom<unknown>(0, -1, 1.5, NaN, Infinity, '2', null).map((v) => ['topK', v]),
    ),
    ctor(
      'reducer:bad',
      fc.constantFrom<unknown>('sum', 'max', 1, null, {}).map((v) => ['reducer', v]),
    ),
    ctor(
      'rng:missing-or-bad',
      fc.constantFrom<unknown>(DELETE, 42, null, {}, 'seed', Math.random).map((v) => ['rng', v]),
    ),
    ctor(
      'sampler:bad',
      fc.constantFrom<unknown>('uniform', 'Gumbel', 1, {}).map((v) => ['sampler', v]),
    ),
    ctor(
      'retrievalFn:bad',
      fc.constantFrom<unknown>(1, 'max', {}, null).map((v) => ['retrievalFn', v]),
    ),
    ctor(
      'maskEmptySlots:bad',
      fc.constantFrom<unknown>(1, 'yes', null, 0).map((v) => ['maskEmptySlots', v]),
    ),
    ctor(
      'falseNegativeKey:bad',
      fc.constantFrom<unknown>(1, null, ['docId'], {}).map((v) => ['falseNegativeKey', v]),
    ),
  );
  // call(): pure, so the cache and the inputs must be unchanged; the sampler only draws after every check.
  type C = { s: Setup; b: Batch; docNet: unknown; q: unknown; p: unknown; cache: unknown; opts: unknown };
  const base = (k: number, fn?: boolean): C => {
    const s = setup(k, fn === undefined ? {} : { fn });
    const b = batchOf(s, k + 50);
    return { s, b, docNet: s.docNet, q: b.q, p: b.p, cache: { cache: s.h.cache }, opts: optsFor(s, b) };
  };
  const lc = (
    kind: string,
    mode: 'throws' | 'either',
    mutate: fc.Arbitrary<(c: C) => void>,
    o: {
      cls?: typeof ArgumentError | typeof NonFiniteError | typeof ShapeError | typeof DTypeError;
      fn?: boolean;
      rngAfterSampling?: boolean;
    } = {},
  ): Def =>
    def('CacheClassificationLoss.call', kind, mode, fc.tuple(mutate, seed()), ([f, k]) => {
      const c = base(k, o.fn);
      f(c);
      return call({
        run: () => c.s.loss.call(c.docNet as never, c.q as Tensor, c.p as Tensor, c.cache as never, c.opts as never),
        inputs: [c.q, c.p, c.cache, c.opts],
        // A doc network misbehaving is only seen after the negatives were drawn, so the generator may have moved.
        state: o.rngAfterSampling ? c.s.h : [c.s.h, c.s.rng],
        ...(o.cls ? { errorClass: o.cls } : {}),
        check: (r) => expectWellFormedTree(r),
      });
    });
  out.push(
    lc(
      'docNetwork:not-a-function',
      'throws',
      garbage()
        .filter((g) => typeof g !== 'function')
        .map((g) => (c: C) => {
          c.docNet = g;
        }),
      { cls: ArgumentError },
    ),
    lc(
      'docNetwork:bad-output',
      'throws',
      fc
        .constantFrom<(c: C) => unknown>(
          () => undefined,
          () => 'x',
          () => mk([3, DIM + 1]),
          () => mk([4, DIM]),
          () => mk([3, DIM], 'int32'),
          () => mk([3]),
          () => [1, 2, 3],
        )
        .map((g) => (c: C) => {
          c.docNet = () => g(c);
        }),
      { rngAfterSampling: true },
    ),
    lc(
      'q:wrong-kind',
      'throws',
      garbage().map((g) => (c: C) => {
        c.q = g;
      }),
    ),
    lc(
      'p:wrong-kind',
      'throws',
      garbage().map((g) => (c: C) => {
        c.p = g;
      }),
    ),
    lc(
      'q-p:shape-mismatch',
      'throws',
      fc.constantFrom<number[]>([2, DIM], [4, DIM], [3, DIM + 1], [3]).map((s) => (c: C) => {
        c.p = mk(s);
      }),
    ),
    lc(
      'q:wrong-dim-for-cache',
      'throws',
      fc
        .integer({ min: 1, max: 5 })
        .filter((d) => d !== DIM)
        .map((d) => (c: C) => {
          c.q = mk([3, d]);
          c.p = mk([3, d]);
        }),
      { cls: ShapeError },
    ),
    lc(
      'q:not-float',
      'throws',
      fc.constantFrom<DType>('int32', 'bool').map((d) => (c: C) => {
        c.q = mk([3, DIM], d);
      }),
      { cls: DTypeError },
    ),
    lc(
      'batch:empty',
      'throws',
      fc.constant((c: C) => {
        c.q = mk([0, DIM]);
        c.p = mk([0, DIM]);
        c.opts = c.s.fn ? { positiveIds: ints([]) } : undefined;
      }),
      { cls: ShapeError },
    ),
    lc(
      'q:non-finite',
      'throws',
      fc.tuple(fc.constantFrom(NaN), fc.nat(8)).map(([v, at]) => (c: C) => {
        c.q = withValue(c.q as Tensor, v, at);
      }),
      { cls: NonFiniteError, fn: false },
    ),
    lc(
      'cache:non-finite',
      'throws',
      fc.constant((c: C) => {
        const cache = c.s.h.cache;
        const e = wrap(
          new Float32Array(cache.data['embedding']!.size).fill(NaN),
          cache.data['embedding']!.shape.slice(),
          'float32',
        );
        c.cache = { cache: { ...cache, data: { ...cache.data, embedding: e } } };
      }),
      { cls: NonFiniteError, fn: false },
    ),
    lc(
      'cache:one-NaN-in-a-filled-row',
      'throws',
      fc.tuple(fc.nat(2), fc.nat(DIM - 1)).map(([row, col]) => (c: C) => {
        const cache = c.s.h.cache;
        const valid = unsafeData(cache.valid!);
        const filled = [...valid.keys()].filter((j) => valid[j]);
        c.cache = {
          cache: {
            ...cache,
            data: {
              ...cache.data,
              embedding: withValue(cache.data['embedding']!, NaN, filled[row % filled.length]! * DIM + col),
            },
          },
        };
      }),
      { cls: NonFiniteError, fn: false },
    ),
    lc(
      'cache:infinite',
      'either',
      fc.tuple(fc.constantFrom(Infinity, -Infinity), fc.nat(17)).map(([v, at]) => (c: C) => {
        const cache = c.s.h.cache;
        c.cache = {
          cache: { ...cache, data: { ...cache.data, embedding: withValue(cache.data['embedding']!, v, at) } },
        };
      }),
      { cls: NonFiniteError },
    ),
    lc(
      'cache:wrong-kind',
      'throws',
      fc.oneof(garbage(), fc.constant({})).map((g) => (c: C) => {
        c.cache = g;
      }),
    ),
    lc(
      'cache:source-wrong-kind',
      'throws',
      garbage().map((g) => (c: C) => {
        c.cache = { cache: g };
      }),
    ),
    lc(
      'cache:missing-key',
      'throws',
      fc.constantFrom('embedding', 'docId').map((key) => (c: C) => {
        const cache = c.s.h.cache;
        const data = { ...cache.data } as Record<string, Tensor>;
        delete data[key];
        c.cache = { cache: { ...cache, data } };
      }),
      { cls: ArgumentError },
    ),
    lc(
      'cache:rows-mismatch',
      'throws',
      fc.constant((c: C) => {
        const cache = c.s.h.cache;
        c.cache = { cache: { ...cache, data: { ...cache.data, docId: ints([1, 2]) } } };
      }),
      { cls: ShapeError },
    ),
    lc(
      'cache:embedding-not-float',
      'throws',
      fc.constant((c: C) => {
        const cache = c.s.h.cache;
        c.cache = { cache: { ...cache, data: { ...cache.data, embedding: mk([6, DIM], 'int32') } } };
      }),
      { cls: DTypeError },
    ),
    lc(
      'cache:valid-bad',
      'throws',
      fc.constantFrom<unknown>(mk([6]), mk([5], 'bool'), 'x', null).map((v) => (c: C) => {
        c.cache = { cache: { ...c.s.h.cache, valid: v } };
      }),
      { cls: ArgumentError },
    ),
    lc(
      'positiveIds:bad',
      'throws',
      fc
        .constantFrom<unknown>(undefined, mk([3]), ints([1, 2]), ints([1, 2, 3], [3, 1]), 'x', [1, 2, 3])
        .map((v) => (c: C) => {
          c.opts = { positiveIds: v };
        }),
      { fn: true, cls: ArgumentError },
    ),
    lc(
      'positiveIds:without-falseNegativeKey',
      'throws',
      fc.constant((c: C) => {
        c.opts = { positiveIds: ints([1, 2, 3]) };
      }),
      { fn: false, cls: ArgumentError },
    ),
    lc(
      'opts:wrong-kind',
      'throws',
      badOpts().map((o) => (c: C) => {
        c.opts = o;
      }),
      { fn: false },
    ),
    lc(
      'opts:extra-key',
      'throws',
      fc.constantFrom('positiveId', 'ids', 'retrieved').map((key) => (c: C) => {
        c.opts = { ...(c.opts as object), [key]: ints([1, 2, 3]) };
      }),
      { cls: ArgumentError },
    ),
    lc(
      'retrieval:wrong-kind',
      'throws',
      garbage()
        .filter((g) => g !== undefined)
        .map((g) => (c: C) => {
          c.opts = { ...(c.opts as object), retrieval: g };
        }),
      { cls: ArgumentError },
    ),
    lc(
      'retrieval:other-cache-or-queries',
      'throws',
      fc.boolean().map((otherQueries) => (c: C) => {
        const r = c.s.loss.retrieve(c.b.q, { cache: c.s.h.cache }, c.opts as never);
        if (otherQueries) c.q = mk([3, DIM], 'float32', 999);
        else c.cache = { cache: { ...c.s.h.cache } };
        c.opts = { ...(c.opts as object), retrieval: r };
      }),
      { cls: ArgumentError },
    ),
    lc(
      'p:non-finite',
      'either',
      fc.tuple(nonFinite(), fc.nat(8)).map(([v, at]) => (c: C) => {
        c.p = withValue(c.p as Tensor, v, at);
      }),
    ),
    lc(
      'valid',
      'either',
      fc.constant(() => undefined),
    ),
  );
  // a loss whose options only fail against a particular cache or return garbage from user callbacks
  out.push(
    def(
      'CacheClassificationLoss.call',
      'topK:not-dividing-cache-size',
      'throws',
      fc.tuple(fc.constantFrom(4, 5), seed()),
      ([topK, k]) => {
        const s = setup(k, { topK: 3 });
        const loss = new CacheClassificationLoss({ embeddingKey: 'embedding', dataKeys: ['docId'], rng: s.rng, topK });
        const b = batchOf(s, k);
        const cache = { cache: s.h.cache };
        return call({
          run: () => loss.call(s.docNet as never, b.q, b.p, cache),
          inputs: [b, cache],
          state: [s.h, s.rng],
          errorClass: ArgumentError,
        });
      },
    ),
    def(
      'CacheClassificationLoss.call',
      'reducer-or-transform:returns-garbage',
      'throws',
      fc.tuple(fc.constantFrom<unknown>(undefined, 1, 'x', null, [1]), fc.boolean(), seed()),
      ([g, asReducer, k]) => {
        const s = setup(k, { fn: false });
        const loss = new CacheClassificationLoss({
          embeddingKey: 'embedding',
          dataKeys: ['docId'],
          rng: s.rng,
          ...(asReducer ? { reducer: () => g as Tensor } : { scoreTransform: (() => g) as never }),
        });
        const b = batchOf(s, k);
        const cache = { cache: s.h.cache };
        return call({ run: () => loss.call(s.docNet as never, b.q, b.p, cache), inputs: [b, cache], state: s.h });
      },
    ),
    def(
      'CacheClassificationLoss.retrieve',
      'args:bad',
      'throws',
      fc.tuple(garbage(), fc.nat(2), seed()),
      ([g, at, k]) => {
        const s = setup(k);
        const b = batchOf(s, k);
        const args: unknown[] = [b.q, { cache: s.h.cache }, optsFor(s, b) ?? {}];
        args[at] = g;
        if (
          at === 2 &&
          (g === undefined ||
            (s.fn === false && g !== null && typeof g === 'object' && Object.keys(g as object).length === 0))
        )
          args[at] = 'x';
        return call({
          run: () => s.loss.retrieve(args[0] as Tensor, args[1] as never, args[2] as never),
          inputs: args,
          state: [s.h, s.rng],
        });
      },
    ),
  );
  return out;
}

function handlerDefs(): Def[] {
  const out: Def[] = [];
  const H = (o: unknown): CacheLossHandler => new CacheLossHandler(o as never);
  const parts = (k: number): { m: CacheManager; loss: CacheClassificationLoss } => ({
    m: new CacheManager({ specs: SPECS(), cacheSize: 4 }),
    loss: new CacheClassificationLoss({ embeddingKey: 'embedding', dataKeys: ['docId'], rng: new Rng(k) }),
  });
  out.push(
    def('CacheLossHandler', 'opts:wrong-kind', 'throws', garbage(), (o) => call({ run: () => H(o) })),
    def('CacheLossHandler', 'cacheManager:wrong-kind', 'throws', fc.tuple(garbage(), seed()), ([g, k]) =>
      call({ run: () => H({ cacheManager: g, loss: parts(k).loss }), errorClass: ArgumentError }),
    ),
    def('CacheLossHandler', 'loss:wrong-kind', 'throws', fc.tuple(garbage(), seed()), ([g, k]) =>
      call({ run: () => H({ cacheManager: parts(k).m, loss: g }), errorClass: ArgumentError }),
    ),
    def(
      'CacheLossHandler',
      'specs:missing-loss-key',
      'throws',
      fc.tuple(fc.constantFrom('embedding', 'docId'), seed()),
      ([missing, k]) => {
        const specs = SPECS() as Record<string, unknown>;
        delete specs[missing];
        return call({
          run: () =>
            H({ cacheManager: new CacheManager({ specs: specs as never, cacheSize: 4 }), loss: parts(k).loss }),
          errorClass: ArgumentError,
        });
      },
    ),
    def(
      'CacheLossHandler',
      'options:bad',
      'throws',
      fc.tuple(
        fc.constantFrom<[string, unknown]>(
          ['filter', 3],
          ['filter', 'docId'],
          ['filter', null],
          ['rejectNonFinite', 'no'],
          ['rejectNonFinite', 0],
          ['onMetrics', 1],
          ['onMetrics', {}],
        ),
        seed(),
      ),
      ([[key, v], k]) =>
        call({
          run: () =>
            H({
              ...(() => {
                const p = parts(k);
                return { cacheManager: p.m, loss: p.loss };
              })(),
              [key]: v,
            }),
          errorClass: ArgumentError,
        }),
    ),
  );
  // computeLoss + commit, with one thing broken.
  type S = {
    s: Setup;
    b: Batch;
    docNet: unknown;
    q: unknown;
    p: unknown;
    features: unknown;
    opts: unknown;
    commitOpts: (step: unknown) => unknown;
  };
  const base = (k: number, o: Parameters<typeof setup>[1] = {}): S => {
    const s = setup(k, o);
    const b = batchOf(s, k + 50, Math.min(3, o.cacheSize ?? 6));
    return {
      s,
      b,
      docNet: s.docNet,
      q: b.q,
      p: b.p,
      features: { docId: b.ids },
      opts: optsFor(s, b),
      commitOpts: () => ({}),
    };
  };
  // `afterSampling`: the rejection comes after the negatives were drawn (a doc network misbehaving, or commit
  // refusing a computed step), so the sampler's generator has moved by design; the handler must not have.
  const hc = (
    kind: string,
    mode: 'throws' | 'either',
    mutate: fc.Arbitrary<(c: S) => void>,
    o: {
      cls?: typeof ArgumentError | typeof NonFiniteError | typeof ShapeError | typeof DTypeError;
      setup?: Parameters<typeof setup>[1];
      afterSampling?: boolean;
    } = {},
  ): Def =>
    def('CacheLossHandler.computeLoss+commit', kind, mode, fc.tuple(mutate, seed()), ([f, k]) => {
      const c = base(k, o.setup);
      f(c);
      return call({
        run: () => {
          const step = c.s.h.computeLoss(
            c.docNet as never,
            c.q as Tensor,
            c.p as Tensor,
            c.features as never,
            c.opts as never,
          );
          c.s.h.commit(step, c.commitOpts(step) as never);
          return step;
        },
        inputs: [c.q, c.p, c.features, c.opts],
        state: o.afterSampling ? c.s.h : [c.s.h, c.s.rng],
        ...(o.cls ? { errorClass: o.cls } : {}),
      });
    });
  out.push(
    hc(
      'docNetwork:not-a-function',
      'throws',
      garbage()
        .filter((g) => typeof g !== 'function')
        .map((g) => (c: S) => {
          c.docNet = g;
        }),
    ),
    hc(
      'docNetwork:bad-output',
      'throws',
      fc
        .constantFrom<() => unknown>(
          () => undefined,
          () => mk([3, DIM + 1]),
          () => mk([3, DIM], 'bool'),
          () => null,
        )
        .map((g) => (c: S) => {
          c.docNet = g;
        }),
      { afterSampling: true },
    ),
    hc(
      'docNetwork:non-finite-output',
      'throws',
      fc.tuple(nonFinite(), fc.nat(8)).map(([v, at]) => (c: S) => {
        c.docNet = (f: Record<string, Tensor>) => withValue(c.s.docNet(f), v, at);
      }),
      { afterSampling: true, cls: NonFiniteError },
    ),
    hc(
      'q:wrong-kind',
      'throws',
      garbage().map((g) => (c: S) => {
        c.q = g;
      }),
    ),
    hc(
      'p:wrong-kind',
      'throws',
      garbage().map((g) => (c: S) => {
        c.p = g;
      }),
    ),
    hc(
      'q:non-finite',
      'throws',
      fc.tuple(nonFinite(), fc.nat(8)).map(([v, at]) => (c: S) => {
        c.q = withValue(c.q as Tensor, v, at);
      }),
      { cls: NonFiniteError },
    ),
    hc(
      'p:non-finite',
      'throws',
      fc.tuple(nonFinite(), fc.nat(8)).map(([v, at]) => (c: S) => {
        c.p = withValue(c.p as Tensor, v, at);
      }),
      { afterSampling: true, cls: NonFiniteError },
    ),
    hc(
      'q-p:shape-mismatch',
      'throws',
      fc.constantFrom<number[]>([2, DIM], [3, DIM + 1], [3]).map((s) => (c: S) => {
        c.p = mk(s);
      }),
    ),
    hc(
      'batch:empty',
      'throws',
      fc.constant((c: S) => {
        c.q = mk([0, DIM]);
        c.p = mk([0, DIM]);
        c.features = { docId: ints([]) };
        c.opts = c.s.fn ? { positiveIds: ints([]) } : undefined;
      }),
      { cls: ShapeError },
    ),
    hc(
      'features:wrong-kind',
      'throws',
      garbage().map((g) => (c: S) => {
        c.features = g;
      }),
    ),
    hc(
      'features:missing-key',
      'throws',
      fc.constant((c: S) => {
        c.features = {};
      }),
      { cls: ArgumentError },
    ),
    hc(
      'features:extra-key',
      'throws',
      fc.constantFrom('id', 'embedding2', 'label').map((key) => (c: S) => {
        c.features = { ...(c.features as object), [key]: ints([1, 2, 3]) };
      }),
      { cls: ArgumentError },
    ),
    hc(
      'features:wrong-dtype',
      'throws',
      fc.constantFrom<DType>('float32', 'bool').map((d) => (c: S) => {
        c.features = { docId: mk([3], d) };
      }),
      { cls: DTypeError },
    ),
    hc(
      'features:wrong-count',
      'throws',
      fc.constantFrom(1, 2, 4).map((n) => (c: S) => {
        c.features = { docId: ints(Array.from({ length: n }, (_, i) => i)) };
      }),
    ),
    hc(
      'cache:smaller-than-batch',
      'throws',
      fc.constant((c: S) => {
        c.q = mk([3, DIM]);
        c.p = mk([3, DIM]);
        c.features = { docId: ints([1, 2, 3]) };
        c.opts = c.s.fn ? { positiveIds: ints([1, 2, 3]) } : undefined;
      }),
      { setup: { cacheSize: 2 }, cls: ArgumentError },
    ),
    hc(
      'positiveIds:bad',
      'throws',
      fc.constantFrom<unknown>(undefined, mk([3]), ints([1])).map((v) => (c: S) => {
        c.opts = { positiveIds: v };
      }),
      { setup: { fn: true }, cls: ArgumentError },
    ),
    hc(
      'opts:wrong-kind',
      'throws',
      badOpts().map((o) => (c: S) => {
        c.opts = o;
      }),
      { setup: { fn: false } },
    ),
    hc(
      'retrieval:stale',
      'throws',
      fc.constant((c: S) => {
        const r = c.s.h.retrieve(c.q as Tensor, c.opts as never);
        const b2 = batchOf(c.s, 77);
        c.s.h.updateCacheAndComputeLoss(c.s.docNet as never, b2.q, b2.p, { docId: b2.ids }, optsFor(c.s, b2));
        c.opts = { ...(c.opts as object), retrieval: r };
      }),
      { cls: ArgumentError },
    ),
    hc(
      'gradients:non-finite',
      'throws',
      fc.tuple(nonFinite(), fc.nat(5), fc.boolean()).map(([v, at, nested]) => (c: S) => {
        const g = withValue(mk([2, 3]), v, at);
        c.commitOpts = () => ({ gradients: nested ? { dense: { w: mk([2]), b: g } } : g });
      }),
      { afterSampling: true, cls: NonFiniteError },
    ),
    hc(
      'gradients:wrong-kind',
      'either',
      fc.oneof(garbage(), fc.constant<unknown>({ w: 'x' }), fc.constant<unknown>([mk([1]), 3])).map((g) => (c: S) => {
        c.commitOpts = () => ({ gradients: g });
      }),
      { afterSampling: true, cls: ArgumentError },
    ),
    hc(
      'commit-opts:wrong-kind',
      'throws',
      badOpts().map((o) => (c: S) => {
        c.commitOpts = () => o;
      }),
      { afterSampling: true },
    ),
    hc(
      'commit-opts:extra-key',
      'throws',
      fc.constantFrom('grads', 'gradient', 'force').map((key) => (c: S) => {
        c.commitOpts = () => ({ [key]: mk([1]) });
      }),
      { afterSampling: true, cls: ArgumentError },
    ),
    hc(
      'valid',
      'either',
      fc.constant(() => undefined),
    ),
    hc(
      'valid+filter',
      'either',
      fc.constant(() => undefined),
      { setup: { filter: true } },
    ),
  );
  // commit with a step that is not the current one
  out.push(
    def(
      'CacheLossHandler.commit',
      'step:wrong-kind',
      'throws',
      fc.tuple(
        fc.oneof(garbage(), fc.constant<unknown>({ pending: {} }), fc.constant<unknown>({ pending: 1 })),
        seed(),
      ),
      ([g, k]) => {
        const s = setup(k);
        return call({ run: () => s.h.commit(g as never), state: s.h, errorClass: ArgumentError });
      },
    ),
    def(
      'CacheLossHandler.commit',
      'step:already-committed-or-stale-or-foreign',
      'throws',
      fc.tuple(fc.constantFrom('twice', 'stale', 'foreign'), seed()),
      ([how, k]) => {
        const s = setup(k);
        const b = batchOf(s, k + 9);
        let step = s.h.computeLoss(s.docNet, b.q, b.p, { docId: b.ids }, optsFor(s, b));
        if (how === 'twice') s.h.commit(step);
        if (how === 'stale') {
          const b2 = batchOf(s, k + 10);
          s.h.updateCacheAndComputeLoss(s.docNet, b2.q, b2.p, { docId: b2.ids }, optsFor(s, b2));
        }
        if (how === 'foreign') {
          const other = setup(k + 1);
          const b3 = batchOf(other, k);
          step = other.h.computeLoss(other.docNet, b3.q, b3.p, { docId: b3.ids }, optsFor(other, b3));
        }
        return call({ run: () => s.h.commit(step), state: s.h, errorClass: ArgumentError });
      },
    ),
    def(
      'CacheLossHandler.setState',
      'cache:bad',
      'throws',
      fc.tuple(fc.oneof(garbage(), fc.constantFrom<unknown>('shape', 'dtype', 'keys')), seed()),
      ([g, k]) => {
        const s = setup(k);
        const c = s.h.cache;
        const bad =
          g === 'shape'
            ? { ...c, data: { ...c.data, embedding: mk([6, DIM + 1]) } }
            : g === 'dtype'
              ? { ...c, data: { ...c.data, docId: mk([6]) } }
              : g === 'keys'
                ? { ...c, data: { embedding: c.data['embedding'] } }
                : g;
        return call({ run: () => s.h.setState(bad as NegativeCache, 3), inputs: bad, state: s.h });
      },
    ),
    def(
      'CacheLossHandler.setState',
      'step:bad',
      'throws',
      fc.tuple(
        badNumber().filter((v) => !(Number.isInteger(v) && (v as number) >= 0)),
        seed(),
      ),
      ([n, k]) => {
        const s = setup(k);
        const c = managerAndCache(6, 2, k).cache;
        return call({ run: () => s.h.setState(c, n as number), inputs: c, state: s.h, errorClass: ArgumentError });
      },
    ),
    def(
      'CacheLossHandler.setState',
      'cache:non-finite-then-step',
      'either',
      fc.tuple(nonFinite(), seed()),
      ([v, k]) => {
        const s = setup(k, { fn: false });
        const c = s.h.cache;
        const e = wrap(
          new Float32Array(c.data['embedding']!.size).fill(v),
          c.data['embedding']!.shape.slice(),
          'float32',
        );
        s.h.setState({ ...c, data: { ...c.data, embedding: e } }, s.h.step);
        const b = batchOf(s, k + 3);
        return call({
          run: () => s.h.updateCacheAndComputeLoss(s.docNet, b.q, b.p, { docId: b.ids }),
          inputs: b,
          state: [s.h, s.rng],
          errorClass: NonFiniteError,
        });
      },
    ),
  );
  // the is-in-cache filter
  const F = (keys: unknown, o?: unknown): unknown =>
    o === undefined ? isInCacheFilter(keys as string[]) : isInCacheFilter(keys as string[], o as never);
  out.push(
    def(
      'isInCacheFilter',
      'keys:bad',
      'throws',
      fc.oneof(
        garbage().filter((g) => !(Array.isArray(g) && g.length > 0 && g.every((x) => typeof x === 'string'))),
        fc.constant<unknown>(['docId', 2]),
      ),
      (g) => call({ run: () => F(g), errorClass: ArgumentError }),
    ),
    def(
      'isInCacheFilter',
      'opts:bad',
      'throws',
      fc.constantFrom<unknown>(null, 'x', 3, { ignoreEmptySlots: 'no' }, { ignoreEmptySlots: 1 }, { ignore: true }),
      (o) => call({ run: () => F(['docId'], o) }),
    ),
  );
  type Fi = { cache: unknown; items: unknown; keys: string[] };
  const fl = (
    kind: string,
    mode: 'throws' | 'either' | 'valid',
    mutate: fc.Arbitrary<(c: Fi) => void>,
    cls?: typeof ArgumentError | typeof DTypeError | typeof ShapeError,
  ): Def =>
    def('isInCacheFilter(cache, items)', kind, mode, fc.tuple(mutate, seed()), ([f, k]) => {
      const { cache } = managerAndCache(5, 3, k);
      const c: Fi = { cache, items: { docId: ints([k % 50, 3, 99]), embedding: mk([3, DIM]) }, keys: ['docId'] };
      f(c);
      const filter = isInCacheFilter(c.keys);
      return call({
        run: () => filter(c.cache as NegativeCache, c.items as never),
        inputs: [c.cache, c.items],
        ...(cls ? { errorClass: cls } : {}),
        check: (o) => {
          expectWellFormed(o);
          if ((o as Tensor).dtype !== 'bool') throw new Error('not a mask');
        },
      });
    });
  out.push(
    fl(
      'cache:wrong-kind',
      'throws',
      garbage().map((g) => (c: Fi) => {
        c.cache = g;
      }),
      ArgumentError,
    ),
    fl(
      'items:wrong-kind',
      'throws',
      garbage().map((g) => (c: Fi) => {
        c.items = g;
      }),
      ArgumentError,
    ),
    fl(
      'items:missing-key',
      'throws',
      fc.constant((c: Fi) => {
        c.items = { embedding: mk([3, DIM]) };
      }),
      ArgumentError,
    ),
    fl(
      'cache:missing-key',
      'throws',
      fc.constant((c: Fi) => {
        c.keys = ['id'];
        c.items = { id: ints([1]) };
      }),
      ArgumentError,
    ),
    fl(
      'key:float',
      'throws',
      fc.constant((c: Fi) => {
        c.keys = ['embedding'];
      }),
      DTypeError,
    ),
    fl(
      'items:item-shape-mismatch',
      'throws',
      fc.constant((c: Fi) => {
        c.items = { docId: ints([1, 2, 3, 4], [2, 2]) };
      }),
      ShapeError,
    ),
    fl(
      'items:scalar-key',
      'throws',
      fc
        .constantFrom<[boolean, boolean]>([true, false], [false, true], [true, true])
        .map(([scalarItems, scalarCache]) => (c: Fi) => {
          if (scalarItems) c.items = { docId: ints([4], []) };
          if (scalarCache) {
            const cache = c.cache as NegativeCache;
            c.cache = { ...cache, data: { ...cache.data, docId: ints([4], []) } };
          }
        }),
    ),
    fl(
      'items:count-mismatch',
      'throws',
      fc.constant((c: Fi) => {
        c.keys = ['docId', 'flag'];
        const cache = c.cache as NegativeCache;
        c.cache = { ...cache, data: { ...cache.data, flag: mk([5], 'bool') } };
        c.items = { docId: ints([1, 2, 3]), flag: mk([2], 'bool') };
      }),
      ShapeError,
    ),
    fl(
      'valid',
      'valid',
      fc.constant(() => undefined),
    ),
  );
  return out;
}

// ================================================================================================ layers

function layerDefs(): Def[] {
  const out: Def[] = [];
  const lin = (k: number): { w: Tensor; b: Tensor } => ({ w: mk([3, 2], 'float32', k), b: mk([2], 'float32', k + 1) });
  out.push(
    def(
      'linear',
      'params:bad',
      'throws',
      fc.oneof(garbage(), fc.constantFrom<unknown>('noB', 'noW', 'wRank1', 'wInt')),
      (g) => {
        const p =
          g === 'noB'
            ? { w: mk([3, 2]) }
            : g === 'noW'
              ? { b: mk([2]) }
              : g === 'wRank1'
                ? { w: mk([3]), b: mk([2]) }
                : g === 'wInt'
                  ? { w: mk([3, 2], 'int32'), b: mk([2], 'int32') }
                  : g;
        const x = mk([2, 3]);
        return call({ run: () => linear(p as never, x), inputs: [p, x] });
      },
    ),
    def(
      'linear',
      'x:bad',
      'throws',
      fc.oneof(garbage(), fc.constantFrom<unknown>('rank1', 'rank3', 'width', 'int')),
      (g) => {
        const p = lin(1);
        const x =
          g === 'rank1'
            ? mk([3])
            : g === 'rank3'
              ? mk([1, 2, 3])
              : g === 'width'
                ? mk([2, 4])
                : g === 'int'
                  ? mk([2, 3], 'int32')
                  : g;
        return call({ run: () => linear(p, x as Tensor), inputs: [p, x] });
      },
    ),
    def('linear', 'b:wrong-shape', 'either', fc.constantFrom<number[]>([3], [1], [2, 2], [], [4]), (s) => {
      const p = { w: mk([3, 2]), b: mk(s) };
      const x = mk([2, 3]);
      return call({
        run: () => linear(p, x),
        inputs: [p, x],
        check: (o) => {
          expectNoNaN(o);
          if ((o as Tensor).shape.join() !== '2,2') throw new Error(`linear returned ${(o as Tensor).shape}`);
        },
      });
    }),
    def('linear', 'random', 'valid', fc.tuple(fc.integer({ min: 0, max: 4 }), seed()), ([b, k]) => {
      const p = lin(k),
        x = mk([b, 3], 'float32', k);
      return call({ run: () => linear(p, x), inputs: [p, x], check: (o) => expectNoNaN(o) });
    }),
    def(
      'l2Normalize',
      'x:bad',
      'throws',
      fc.oneof(garbage(), fc.constantFrom<unknown>('scalar', 'int', 'bool')),
      (g) => {
        const x = g === 'scalar' ? mk([]) : g === 'int' ? mk([2, 2], 'int32') : g === 'bool' ? mk([2], 'bool') : g;
        return call({ run: () => l2Normalize(x as Tensor), inputs: x });
      },
    ),
    def(
      'l2Normalize',
      'eps:bad',
      'throws',
      fc.constantFrom<unknown>(NaN, -1, -1e-12, Infinity, 'a', null, mk([1]), 3n),
      (e) => {
        const x = mk([2, 3]);
        return call({ run: () => l2Normalize(x, e as number), inputs: x });
      },
    ),
    def('l2Normalize', 'random', 'valid', fc.tuple(posShape(1, 3), seed(), fc.constantFrom(...FLOAT)), ([s, k, d]) => {
      const x = mk(s, d, k);
      return call({ run: () => l2Normalize(x), inputs: x, check: (o) => expectNoNaN(o) });
    }),
  );
  // embeddingBag: every field of the Bags broken in turn
  const goodBags = (): { local: Int32Array; segment: Int32Array; count: number; sizes: Int32Array } => ({
    local: Int32Array.of(0, 2, 1, 3),
    segment: Int32Array.of(0, 0, 1, 2),
    count: 3,
    sizes: Int32Array.of(2, 1, 1),
  });
  const bag = (
    kind: string,
    mutate: fc.Arbitrary<(b: Record<string, unknown>) => void>,
    mode: 'throws' | 'either' = 'throws',
  ): Def =>
    def(
      'embeddingBag',
      kind,
      mode,
      fc.tuple(mutate, fc.constantFrom<'sum' | 'mean'>('sum', 'mean'), seed()),
      ([f, md, k]) => {
        const rows = mk([4, 2], 'float32', k);
        const b = goodBags() as unknown as Record<string, unknown>;
        f(b);
        return call({ run: () => embeddingBag(rows, b as never, md), inputs: [rows, b], check: (o) => expectNoNaN(o) });
      },
    );
  out.push(
    def('embeddingBag', 'rows:bad', 'throws', fc.oneof(garbage(), fc.constantFrom<unknown>('rank1', 'rank3')), (g) => {
      const rows = g === 'rank1' ? mk([4]) : g === 'rank3' ? mk([4, 2, 1]) : g;
      const b = goodBags();
      return call({ run: () => embeddingBag(rows as Tensor, b), inputs: [rows, b] });
    }),
    def('embeddingBag', 'bags:wrong-kind', 'throws', garbage(), (g) => {
      const rows = mk([4, 2]);
      return call({ run: () => embeddingBag(rows, g as never), inputs: rows });
    }),
    bag(
      'bags:local-out-of-range',
      fc.constantFrom(-1, 4, 100, -(2 ** 31)).map((v) => (b) => {
        (b['local'] as Int32Array)[1] = v;
      }),
    ),
    bag(
      'bags:segment-out-of-range',
      fc.constantFrom(-1, 3, 50).map((v) => (b) => {
        (b['segment'] as Int32Array)[2] = v;
      }),
    ),
    bag(
      'bags:length-mismatch',
      fc.constantFrom('local', 'segment').map((key) => (b) => {
        b[key] = (b[key] as Int32Array).slice(0, 3);
      }),
    ),
    bag(
      'bags:count-bad',
      fc.constantFrom<unknown>(-1, 1.5, NaN, '3', 2 ** 31, null, 2).map((v) => (b) => {
        b['count'] = v;
      }),
    ),
    bag(
      'bags:sizes-mismatch',
      fc.constantFrom<unknown>(Int32Array.of(2, 1), Int32Array.of(2, 1, 1, 0), null, [2, 1, 1]).map((v) => (b) => {
        b['sizes'] = v;
      }),
    ),
    bag(
      'bags:plain-arrays-or-wrong-kind',
      fc
        .tuple(
          fc.constantFrom('local', 'segment'),
          fc.constantFrom<unknown>([0, 2, 1, 3], null, 'x', Float32Array.of(0, 2, 1, 3), undefined),
        )
        .map(([key, v]) => (b) => {
          b[key] = v;
        }),
    ),
    bag(
      'bags:missing-field',
      fc.constantFrom('local', 'segment', 'count', 'sizes').map((key) => (b) => {
        delete b[key];
      }),
    ),
    def('embeddingBag', 'mode:bad', 'throws', fc.constantFrom<unknown>('max', 'SUM', 1, null), (md) => {
      const rows = mk([4, 2]);
      const b = goodBags();
      return call({ run: () => embeddingBag(rows, b, md as 'sum'), inputs: [rows, b], errorClass: ArgumentError });
    }),
    bag(
      'valid',
      fc.constant(() => undefined),
      'either',
    ),
  );
  // makeBags: a rejected call leaves the RowSpace unchanged
  type MB = { offsets: unknown; ids: unknown; examples: unknown; vocab: unknown; space: unknown };
  const mb = (kind: string, mode: 'throws' | 'either', mutate: fc.Arbitrary<(c: MB) => void>): Def =>
    def('makeBags', kind, mode, fc.tuple(mutate, fc.boolean()), ([f, used]) => {
      const space = new RowSpace();
      if (used) space.rowOf(3);
      const c: MB = {
        offsets: Int32Array.of(0, 2, 2, 5),
        ids: Int32Array.of(1, 3, 0, 4, 3),
        examples: [0, 2, 1],
        vocab: 5,
        space,
      };
      f(c);
      return call({
        run: () =>
          makeBags(
            c.offsets as Int32Array,
            c.ids as Int32Array,
            c.examples as number[],
            c.vocab as number,
            c.space as RowSpace,
          ),
        inputs: [c.offsets, c.ids, c.examples, c.vocab],
        state: c.space,
        check: (o) => {
          const b = o as { local: Int32Array; sizes: Int32Array };
          if (![...b.sizes].every((v) => v >= 0)) throw new Error(`negative bag size ${b.sizes}`);
        },
      });
    });
  out.push(
    mb(
      'offsets:wrong-kind',
      'throws',
      garbage().map((g) => (c: MB) => {
        c.offsets = g;
      }),
    ),
    mb(
      'ids:wrong-kind',
      'throws',
      garbage().map((g) => (c: MB) => {
        c.ids = g;
      }),
    ),
    mb(
      'examples:wrong-kind',
      'throws',
      garbage()
        .filter(
          (g) =>
            !(Array.isArray(g) && g.every((v) => Number.isInteger(v) && v >= 0 && v < 3)) && !ArrayBuffer.isView(g),
        )
        .map((g) => (c: MB) => {
          c.examples = g;
        }),
    ),
    mb(
      'examples:out-of-range',
      'throws',
      fc.constantFrom(-1, 3, 1.5, NaN, 99).map((v) => (c: MB) => {
        c.examples = [0, v];
      }),
    ),
    mb(
      'vocab:bad',
      'throws',
      fc
        .oneof(
          badNumber().filter((v) => !(Number.isInteger(v) && (v as number) >= 5)),
          fc.constantFrom<unknown>(0, 4, undefined),
        )
        .map((v) => (c: MB) => {
          c.vocab = v;
        }),
    ),
    mb(
      'ids:out-of-vocab',
      'throws',
      fc.constantFrom(-1, 5, 2 ** 31 - 1).map((v) => (c: MB) => {
        c.ids = Int32Array.of(1, 3, 0, v, 3);
      }),
    ),
    mb(
      'offsets:not-monotone-or-out-of-ids',
      'throws',
      fc
        .constantFrom<number[]>([0, 2, 1, 5], [0, 3, 2, 5], [0, 2, 2, 7], [-1, 2, 2, 5], [0, 2, 2])
        .map((o) => (c: MB) => {
          c.offsets = Int32Array.from(o);
          c.examples = [0, 1, 2];
        }),
    ),
    mb(
      'space:wrong-kind',
      'throws',
      garbage().map((g) => (c: MB) => {
        c.space = g;
      }),
    ),
    mb(
      'valid',
      'either',
      fc.constant(() => undefined),
    ),
  );
  // EmbeddingTable
  const E = (v: unknown, d: unknown, i: unknown): EmbeddingTable =>
    new EmbeddingTable(v as number, d as number, i as never);
  out.push(
    def(
      'EmbeddingTable',
      'vocab-or-dim:bad',
      'throws',
      fc.tuple(fc.oneof(badNumber(), fc.constant<unknown>(0)), fc.boolean()),
      ([n, first]) =>
        call({
          run: () => (first ? E(n, 2, { rng: new Rng(0) }) : E(3, n, { rng: new Rng(0) })),
          errorClass: ArgumentError,
        }),
    ),
    def(
      'EmbeddingTable',
      'vocab-times-dim:too-large',
      'throws',
      fc.constantFrom<[number, number]>([2 ** 16, 2 ** 16], [2 ** 30, 4], [2 ** 31 - 1, 2]),
      ([v, d]) => call({ run: () => E(v, d, { rng: new Rng(0) }), errorClass: ArgumentError }),
    ),
    def(
      'EmbeddingTable',
      'init:bad',
      'throws',
      fc.oneof(
        garbage().filter((g) => !(g instanceof Float32Array && g.length === 6)),
        fc.constantFrom<unknown>({ rng: 5 }, { std: 1 }, new Float64Array(6)),
      ),
      (i) => call({ run: () => E(3, 2, i) }),
    ),
    def(
      'EmbeddingTable',
      'init:wrong-length',
      'throws',
      fc.integer({ min: 0, max: 12 }).filter((n) => n !== 6),
      (n) => {
        const a = new Float32Array(n);
        return call({ run: () => E(3, 2, a), inputs: a, errorClass: ShapeError });
      },
    ),
    def(
      'EmbeddingTable',
      'init:std-bad',
      'throws',
      fc.tuple(fc.constantFrom<unknown>(NaN, -1, Infinity, 'a', null), seed()),
      ([std, k]) => {
        const r = new Rng(k);
        return call({ run: () => E(3, 2, { rng: r, std }), state: r, errorClass: ArgumentError });
      },
    ),
  );
  const table = (k: number): EmbeddingTable => new EmbeddingTable(5, 2, { rng: new Rng(k) });
  out.push(
    def(
      'EmbeddingTable.rows',
      'ids:bad',
      'throws',
      fc.tuple(
        fc.oneof(
          garbage().filter(
            (g) =>
              !(Array.isArray(g) && g.every((v) => Number.isInteger(v) && v >= 0 && v < 5)) &&
              !(g instanceof Int32Array),
          ),
          fc.constantFrom<unknown>([1.5], Int32Array.of(5), Int32Array.of(-1), [0, 0.5], Float32Array.of(1.5)),
        ),
        seed(),
      ),
      ([ids, k]) => {
        const t = table(k);
        return call({ run: () => t.rows(ids as Int32Array), inputs: ids, state: t });
      },
    ),
    def(
      'EmbeddingTable.rows',
      'valid',
      'valid',
      fc.tuple(fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 6 }), seed()),
      ([ids, k]) => {
        const t = table(k),
          i = Int32Array.from(ids);
        return call({ run: () => t.rows(i), inputs: i, state: t, check: (o) => expectNoNaN(o) });
      },
    ),
    def(
      'EmbeddingTable.applyRows',
      'args:bad',
      'throws',
      fc.tuple(
        fc.constantFrom<[unknown, unknown]>(
          [Int32Array.of(0), new Float32Array(3)],
          [Int32Array.of(5), new Float32Array(2)],
          [Int32Array.of(-1), new Float32Array(2)],
          [[0.5], new Float32Array(2)],
          [Int32Array.of(0), null],
          [null, new Float32Array(2)],
          [Int32Array.of(0), [1, 2]],
          ['0', new Float32Array(2)],
          [Int32Array.of(0, 9), new Float32Array(4)],
        ),
        seed(),
      ),
      ([[ids, values], k]) => {
        const t = table(k);
        return call({
          run: () => t.applyRows(ids as Int32Array, values as Float32Array),
          inputs: [ids, values],
          state: t,
        });
      },
    ),
    def(
      'EmbeddingTable.load',
      'tensor:bad',
      'throws',
      fc.tuple(
        fc.oneof(
          garbage(),
          fc.constantFrom<unknown>(mk([5, 3]), mk([4, 2]), mk([5, 2], 'float64'), mk([10]), mk([5, 2, 1])),
        ),
        seed(),
      ),
      ([g, k]) => {
        const t = table(k);
        return call({ run: () => t.load(g as Tensor), inputs: g, state: t, errorClass: ShapeError });
      },
    ),
  );
  return out;
}

// ================================================================================================ optimisers

type OptKind = 'SGD' | 'Adam' | 'AdamW';
const OPT_KINDS: OptKind[] = ['SGD', 'Adam', 'AdamW'];
function makeOpt(kind: OptKind, o: Record<string, unknown>): SGD | Adam {
  return kind === 'SGD' ? new SGD(o as never) : kind === 'Adam' ? new Adam(o as never) : new AdamW(o as never);
}

interface OptSetup {
  opt: SGD | Adam;
  params: { w: Tensor; b: Tensor };
  grads: { w: Tensor; b: Tensor };
  table: EmbeddingTable;
  sparse: { emb: { table: EmbeddingTable; ids: Int32Array; grad: Tensor } };
}

function optSetup(kind: OptKind, k: number): OptSetup {
  const opt = makeOpt(kind, kind === 'SGD' ? { lr: 0.1, momentum: 0.9 } : { lr: 0.01, clipNorm: 5 });
  const table = new EmbeddingTable(5, 3, { rng: new Rng(k) });
  let params = { w: mk([2, 3], 'float32', k), b: mk([3], 'float32', k + 1) };
  params = opt.step(
    params,
    { w: mk([2, 3], 'float32', k + 2), b: mk([3], 'float32', k + 3) },
    { emb: { table, ids: Int32Array.of(0, 2), grad: mk([2, 3], 'float32', k + 4) } },
  );
  const grads = { w: mk([2, 3], 'float32', k + 5), b: mk([3], 'float32', k + 6) };
  return {
    opt,
    params,
    grads,
    table,
    sparse: { emb: { table, ids: Int32Array.of(1, 2), grad: mk([2, 3], 'float32', k + 7) } },
  };
}

function optimizerDefs(): Def[] {
  const out: Def[] = [];
  for (const kind of OPT_KINDS) {
    const ctor = (what: string, values: unknown[], mode: 'throws' | 'either' = 'throws'): Def =>
      def(kind, what, mode, fc.constantFrom(...values), (v) => {
        const [key, val] = v as [string, unknown];
        const o: Record<string, unknown> = { lr: 0.01 };
        if (val === undefined) delete o[key];
        else o[key] = val;
        return call({ run: () => makeOpt(kind, o), ...(mode === 'throws' ? { errorClass: ArgumentError } : {}) });
      });
    out.push(
      def(kind, 'opts:wrong-kind', 'throws', garbage(), (o) =>
        call({ run: () => makeOpt(kind, o as Record<string, unknown>), errorClass: ArgumentError }),
      ),
      ctor('lr:bad', [
        ['lr', 0],
        ['lr', -1],
        ['lr', NaN],
        ['lr', Infinity],
        ['lr', '0.1'],
        ['lr', null],
        ['lr', undefined],
        ['lr', 1e7],
      ]),
      ctor('clipNorm:bad', [
        ['clipNorm', 0],
        ['clipNorm', -1],
        ['clipNorm', NaN],
        ['clipNorm', 'x'],
        ['clipNorm', null],
      ]),
      ctor('weightDecay:bad', [
        ['weightDecay', -1],
        ['weightDecay', NaN],
        ['weightDecay', Infinity],
        ['weightDecay', 'x'],
      ]),
      ctor(
        'opts:extra-key',
        [
          ['learningRate', 0.1],
          ['beta', 0.9],
          ['momentum2', 1],
        ],
        'either',
      ),
    );
    if (kind === 'SGD') {
      out.push(
        ctor('momentum:bad', [
          ['momentum', -0.1],
          ['momentum', 1.5],
          ['momentum', NaN],
          ['momentum', 'x'],
        ]),
        ctor('nesterov:not-boolean', [
          ['nesterov', 1],
          ['nesterov', 'yes'],
          ['nesterov', null],
          ['nesterov', 0],
        ]),
      );
    } else {
      out.push(
        ctor('beta:bad', [
          ['beta1', 1],
          ['beta2', 1],
          ['beta1', -0.1],
          ['beta2', 1.5],
          ['beta1', NaN],
          ['beta2', 'x'],
        ]),
        ctor('eps:bad', [
          ['eps', 0],
          ['eps', -1e-8],
          ['eps', NaN],
          ['eps', 'x'],
        ]),
      );
    }
    const st = (
      what: string,
      mode: 'throws' | 'either',
      mutate: fc.Arbitrary<(s: OptSetup & { p: unknown; g: unknown; sp: unknown }) => void>,
      cls?: typeof ArgumentError | typeof ShapeError | typeof NonFiniteError,
    ): Def =>
      def(`${kind}.step`, what, mode, fc.tuple(mutate, seed()), ([f, k]) => {
        const s = { ...optSetup(kind, k), p: undefined as unknown, g: undefined as unknown, sp: undefined as unknown };
        s.p = s.params;
        s.g = s.grads;
        s.sp = s.sparse;
        f(s);
        const sparseInputs =
          s.sp !== null && typeof s.sp === 'object'
            ? Object.fromEntries(
                Object.entries(s.sp as object).map(([n, v]) => [
                  n,
                  v !== null && typeof v === 'object'
                    ? { ids: (v as { ids?: unknown }).ids, grad: (v as { grad?: unknown }).grad }
                    : v,
                ]),
              )
            : s.sp;
        return call({
          run: () => s.opt.step(s.p, s.g, s.sp as never),
          inputs: [s.p, s.g, sparseInputs],
          state: [s.opt, s.table],
          ...(cls ? { errorClass: cls } : {}),
          check: (o) => {
            expectWellFormedTree(o);
            for (const t of Object.values(o as object)) expectNoNaN(t);
          },
        });
      });
    out.push(
      st(
        'params:wrong-kind',
        'throws',
        garbage().map((g) => (s) => {
          s.p = g;
        }),
      ),
      st(
        'grads:wrong-kind',
        'throws',
        garbage().map((g) => (s) => {
          s.g = g;
        }),
      ),
      st(
        'grads:missing-or-extra-key',
        'throws',
        fc
          .constantFrom<(s: OptSetup) => unknown>(
            (s) => ({ w: s.grads.w }),
            (s) => ({ ...s.grads, c: mk([1]) }),
            (s) => ({ w: s.grads.w, c: s.grads.b }),
            (s) => [s.grads.b, s.grads.w],
            (s) => ({ a: s.grads.b, w: s.grads.w }),
          )
          .map((f) => (s) => {
            s.g = f(s);
          }),
      ),
      st(
        'grads:shape-mismatch',
        'throws',
        fc.constantFrom<number[]>([3, 2], [6], [2, 3, 1], []).map((sh) => (s) => {
          s.g = { ...s.grads, w: mk(sh) };
        }),
        ShapeError,
      ),
      st(
        'grads:non-finite',
        'throws',
        fc.tuple(nonFinite(), fc.nat(5), fc.constantFrom('w', 'b')).map(([v, at, key]) => (s) => {
          s.g = { ...s.grads, [key]: withValue(s.grads[key as 'w'], v, at) };
        }),
        NonFiniteError,
      ),
      st(
        'params:not-float',
        'throws',
        fc.constantFrom<DType>('int32', 'bool').map((d) => (s) => {
          s.p = { ...s.params, b: mk([3], d) };
          s.g = { ...s.grads, b: mk([3], d) };
        }),
        ArgumentError,
      ),
      st(
        'params:tree-changed',
        'throws',
        fc.constant((s) => {
          s.p = { w: s.params.w };
          s.g = { w: s.grads.w };
        }),
        ShapeError,
      ),
      st(
        'sparse:wrong-kind',
        'throws',
        fc.constantFrom<unknown>(null, 'x', 3, [1], { emb: null }, { emb: 'x' }, { emb: {} }).map((v) => (s) => {
          s.sp = v;
        }),
      ),
      st(
        'sparse:table-wrong-kind',
        'throws',
        fc.constantFrom<unknown>(undefined, null, {}, { dim: 3, vocab: 5 }, 'table').map((v) => (s) => {
          s.sp = { emb: { ...s.sparse.emb, table: v } };
        }),
        ArgumentError,
      ),
      st(
        'sparse:ids-bad',
        'throws',
        fc
          .constantFrom<unknown>(
            Int32Array.of(1, 1),
            Int32Array.of(1, 5),
            Int32Array.of(-1, 2),
            [1, 2],
            Float32Array.of(1, 2),
            null,
          )
          .map((v) => (s) => {
            s.sp = { emb: { ...s.sparse.emb, ids: v } };
          }),
      ),
      st(
        'sparse:grad-bad',
        'throws',
        fc.constantFrom<unknown>(mk([2, 2]), mk([3, 3]), mk([6]), null, 'g').map((v) => (s) => {
          s.sp = { emb: { ...s.sparse.emb, grad: v } };
        }),
      ),
      st(
        'sparse:grad-non-finite',
        'throws',
        fc.tuple(nonFinite(), fc.nat(5)).map(([v, at]) => (s) => {
          s.sp = { emb: { ...s.sparse.emb, grad: withValue(s.sparse.emb.grad, v, at) } };
        }),
        NonFiniteError,
      ),
      st(
        'state:moments-mismatch',
        'throws',
        fc
          .constantFrom<(s: OptSetup) => Record<string, Tensor>>(
            () => ({
              t: ints([3], []),
              'dense.0.0': mk([1]),
              'dense.1.0': mk([1]),
              'dense.0.1': mk([1]),
              'dense.1.1': mk([1]),
            }),
            (s) => {
              const g = s.opt.getState();
              delete g['dense.1.0'];
              return g;
            },
            (s) => {
              const g = s.opt.getState();
              delete g['dense.0.0'];
              delete g['dense.0.1'];
              return g;
            },
            (s) => ({ ...s.opt.getState(), 'dense.2.0': mk([4]) }),
            (s) => ({ ...s.opt.getState(), 'table.emb.0': mk([3]) }),
          )
          .map((f) => (s) => {
            s.opt.setState(f(s));
          }),
      ),
      st(
        'valid',
        'either',
        fc.constant(() => undefined),
      ),
    );
    out.push(
      def(
        `${kind}.setState`,
        'state:bad',
        'throws',
        fc.tuple(
          fc.oneof(
            garbage(),
            fc.constantFrom<unknown>(
              {},
              { t: 3 },
              { t: mk([]) },
              { t: ints([1, 2]) },
              { t: ints([1], []), 'dense.0.0': ints([1]) },
              { t: ints([1], []), junk: mk([1]) },
              { t: ints([1], []), 'dense.x.0': mk([1]) },
            ),
          ),
          seed(),
        ),
        ([g, k]) => {
          const s = optSetup(kind, k);
          return call({
            run: () => s.opt.setState(g as never),
            inputs: g,
            state: [s.opt, s.table],
            errorClass: ArgumentError,
          });
        },
      ),
    );
  }
  return out;
}

// ================================================================================================ training

const TRAIN_CORPUS = tinyCorpus();
const TRAIN_CONFIG: TrainConfig = { ...BASE, method: 'cache', steps: 2 };

function trainingDefs(): Def[] {
  const out: Def[] = [];
  const T3 = (c: unknown, cfg: unknown, h?: unknown): unknown =>
    h === undefined ? train(c as Corpus, cfg as TrainConfig) : train(c as Corpus, cfg as TrainConfig, h as never);
  out.push(
    def(
      'train',
      'corpus:wrong-kind',
      'throws',
      fc.oneof(garbage(), fc.constantFrom<unknown>({ trainQueries: [1] }, { ...TRAIN_CORPUS, docIds: [1, 2] })),
      (g) => call({ run: () => T3(g, TRAIN_CONFIG), errorClass: ArgumentError }),
    ),
    def('train', 'config:wrong-kind', 'throws', garbage(), (g) =>
      call({ run: () => T3(TRAIN_CORPUS, g), errorClass: ArgumentError }),
    ),
    def(
      'train',
      'config:bad-field',
      'throws',
      fc.constantFrom<[string, unknown]>(
        ['method', 'softmax'],
        ['steps', 0],
        ['steps', 1.5],
        ['batch', 0],
        ['batch', NaN],
        ['cacheSize', 4],
        ['dim', 0],
        ['dim', '8'],
        ['lr', 0],
        ['lr', -1],
        ['lr', NaN],
        ['scale', 0],
        ['weightDecay', -1],
        ['sampler', 'uniform'],
        ['topK', 5],
        ['topK', 0],
        ['seed', -1],
        ['seed', 0.5],
        ['clipNorm', 0],
        ['evalQueries', 0],
        ['timeBudgetSeconds', 0],
        ['evalEverySeconds', -1],
        ['method', undefined],
        ['steps', undefined],
      ),
      ([k, v]) => call({ run: () => T3(TRAIN_CORPUS, { ...TRAIN_CONFIG, [k]: v }), errorClass: ArgumentError }),
    ),
    def(
      'train',
      'options:bad',
      'throws',
      fc.constantFrom<unknown>(
        null,
        'x',
        3,
        { checkpointEvery: -1 },
        { checkpointEvery: 1.5 },
        { checkpointEvery: 'x' },
        { onCheckpoint: 1 },
        { onStep: 'log' },
        { now: 5 },
        { resume: null },
        { resume: 'dir' },
        { resume: {} },
        { resume: { tensors: {} } },
        { resume: { metadata: {} } },
        { resume: { tensors: {}, metadata: {} } },
      ),
      (h) => call({ run: () => T3(TRAIN_CORPUS, TRAIN_CONFIG, h), errorClass: ArgumentError }),
    ),
    def('Trainer', 'args:wrong-kind', 'throws', fc.tuple(garbage(), fc.boolean()), ([g, first]) =>
      call({
        run: () => (first ? new Trainer(g as Corpus, TRAIN_CONFIG) : new Trainer(TRAIN_CORPUS, g as TrainConfig)),
        errorClass: ArgumentError,
      }),
    ),
  );
  // Trainer.setState: a bad state changes nothing (the model, optimiser, cache, generators and position)
  const st = (
    kind: string,
    mutate: fc.Arbitrary<(s: Record<string, unknown>) => void>,
    methods: TrainConfig['method'][] = ['cache', 'inbatch'],
  ): Def =>
    def(
      'Trainer.setState',
      kind,
      'throws',
      fc.tuple(mutate, fc.constantFrom(...methods)),
      ([f, method]) => {
        const t = new Trainer(TRAIN_CORPUS, { ...TRAIN_CONFIG, method });
        t.step();
        const donor = new Trainer(TRAIN_CORPUS, { ...TRAIN_CONFIG, method });
        donor.step();
        donor.step();
        const state: Record<string, unknown> = { ...donor.getState() };
        f(state);
        return call({
          run: () => t.setState(state as never),
          inputs: state,
          state: t.getState(),
          errorClass: ArgumentError,
        });
      },
      6,
    );
  out.push(
    def(
      'Trainer.setState',
      'state:wrong-kind',
      'throws',
      garbage().filter((g) => (g !== null && typeof g !== 'object') || g === null),
      (g) => {
        const t = new Trainer(TRAIN_CORPUS, TRAIN_CONFIG);
        return call({ run: () => t.setState(g as never), state: t.getState(), errorClass: ArgumentError });
      },
      6,
    ),
    st(
      'tensor:missing',
      fc
        .constantFrom(
          'model.queryTable',
          'model.dense.doc.b',
          'optim.t',
          'rng.sampler',
          'train.order',
          'train.cursor',
          'train.step',
          'cache.age',
          'cache.data.embedding',
        )
        .map((k) => (s) => {
          delete s[k];
        }),
      ['cache'],
    ),
    st(
      'tensor:wrong-kind',
      fc
        .tuple(
          fc.constantFrom('model.docTable', 'model.dense.query.w', 'rng.batches', 'train.cursor', 'train.step'),
          garbage().filter((g) => g !== undefined),
        )
        .map(([k, g]) => (s) => {
          s[k] = g;
        }),
    ),
    st(
      'tensor:wrong-shape-or-dtype',
      fc
        .constantFrom<[string, Tensor]>(
          ['model.queryTable', mk([512, 4])],
          ['model.docTable', mk([512, 8], 'float64')],
          ['model.dense.query.w', mk([8, 4])],
          ['model.dense.doc.b', mk([4])],
          ['model.dense.query.b', mk([8], 'int32')],
          ['rng.batches', mk([3], 'int32')],
          ['rng.sampler', mk([4])],
          ['train.order', mk([5], 'int32')],
          ['train.cursor', mk([2], 'int32')],
          ['train.step', mk([])],
          ['optim.dense.0.0', mk([3], 'int32')],
          ['optim.t', mk([])],
        )
        .map(([k, v]) => (s) => {
          s[k] = v;
        }),
    ),
    st(
      'scalar:out-of-range',
      fc
        .constantFrom<[string, number]>(['train.cursor', -1], ['train.cursor', 10_000], ['train.step', -5])
        .map(([k, v]) => (s) => {
          s[k] = ints([v], []);
        }),
    ),
    st(
      'rng:all-zero',
      fc.constantFrom('rng.batches', 'rng.sampler').map((k) => (s) => {
        s[k] = ints([0, 0, 0, 0]);
      }),
    ),
    st(
      'optim:unknown-entry',
      fc.constant((s) => {
        s['optim.velocity'] = mk([3]);
      }),
    ),
  );
  return out;
}

// ================================================================================================ the suite

/**
 * The suite: one row per group of entry points, each a function returning its
 * Defs. To fuzz a new API (a loader, the model, an index, ...), write a
 * function returning its Defs, here or in a module next to this file (see
 * fuzzDistributed.ts: sync entry points use `def`, promise-returning ones
 * `defAsync`), and add a row; the counts below pick it up.
 */
const SUITES: readonly (readonly [string, () => Def[]])[] = [
  ['tensor constructors (tensor, zeros, full, arange, uniform, normal)', creationDefs],
  ['elementwise ops, comparisons, logic, where, cast', elementwiseDefs],
  ['reductions, softmax, argmax, cumsum', reductionDefs],
  ['layout ops, gather/scatter, topK, matmul', layoutDefs],
  ['grad, valueAndGrad, vjp, checkGradients', autogradDefs],
  ['CacheManager (constructor, initCache, updateCache)', cacheDefs],
  ['retrieval functions and approximateTopKWithIndices', retrievalDefs],
  ['CacheClassificationLoss (constructor, call, retrieve)', lossDefs],
  ['CacheLossHandler (constructor, computeLoss, commit, setState) and isInCacheFilter', handlerDefs],
  ['MultiCacheLossHandler (constructor, computeLoss, commit, setState)', multiCacheHandlerDefs],
  ['DistributedCacheClassificationLoss (constructor, call under runInProcess)', distributedLossDefs],
  ['ShardedCacheLossHandler (constructor, computeLoss, commit, setState) under runInProcess', shardedHandlerDefs],
  ['ReplicatedCacheLossHandler (constructor, computeLoss, commit) under runInProcess', replicatedHandlerDefs],
  ['layers: linear, l2Normalize, embeddingBag, makeBags, EmbeddingTable', layerDefs],
  ['optimisers: SGD, Adam, AdamW (constructors, step, setState)', optimizerDefs],
  ['training: train (config, corpus, resume and checkpoint options) and Trainer.setState', trainingDefs],
];

describe('fuzz: every public entry point rejects malformed calls with a NegcacheError and changes nothing', () => {
  for (const [name, defs] of SUITES) it(name, () => run(defs()));
});

afterAll(() => {
  const pairs = [...STATS.entries()];
  const malformed = pairs.filter(([, s]) => s.mode !== 'valid');
  const entries = new Set(pairs.map(([k]) => k.split(' | ')[0]!));
  const total = pairs.reduce((n, [, s]) => n + s.calls, 0);
  const malformedCalls = malformed.reduce((n, [, s]) => n + s.calls, 0);
  const rejected = malformed.reduce((n, [, s]) => n + s.rejected, 0);
  const classes = new Map<string, number>();
  for (const [, s] of pairs) for (const c of s.classes) classes.set(c, (classes.get(c) ?? 0) + 1);
  const acceptedEither = malformed.filter(([, s]) => s.mode === 'either' && s.accepted > 0).length;
  console.log(
    [
      `[reliability fuzz] ${entries.size} entry points; ${malformed.length} distinct malformed (entry point, malformation kind) pairs ` +
        `(+${pairs.length - malformed.length} valid baselines); ${total} generated calls in total, ${malformedCalls} of them malformed, ` +
        `${rejected} rejected with a NegcacheError; ${acceptedEither} 'either' pairs had calls that were valid and succeeded.`,
      `[reliability fuzz] error classes seen (pairs): ${[...classes.entries()].map(([c, n]) => `${c} ${n}`).join(', ')}`,
    ].join('\n'),
  );
});
