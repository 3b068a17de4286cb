/**
 * Every error path of the foundation: the error CLASS (ShapeError,
 * DTypeError, ArgumentError from src/errors.ts, never a bare TypeError or
 * RangeError) and a message that starts with the op and names the argument
 * (`op: what argument, what it got, what it needed`).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as N from '../../src/index.js';
import {
  ArgumentError,
  DTypeError,
  NegcacheError,
  ShapeError,
  abs,
  add,
  all,
  any,
  arange,
  argmax,
  broadcastTo,
  cast,
  checkGradients,
  concat,
  cumsum,
  div,
  exp,
  expandDims,
  full,
  gather,
  gatherRows,
  grad,
  log,
  logicalAnd,
  logicalNot,
  logSumExp,
  matmul,
  max,
  mean,
  mul,
  neg,
  normal,
  ones,
  pad,
  reshape,
  Rng,
  scatterRows,
  slice,
  softmax,
  squeeze,
  stack,
  sum,
  tensor,
  topK,
  transpose,
  uniform,
  valueAndGrad,
  vjp,
  where,
  zeros,
  type Tensor,
} from '../../src/index.js';
import { params } from '../util/props.js';

type ErrorClass = typeof ShapeError | typeof DTypeError | typeof ArgumentError;

/** [label, thunk, class, message pattern]. The pattern is anchored at the op name. */
type Case = [string, () => unknown, ErrorClass, RegExp];

const x23 = zeros([2, 3]);
const i3 = tensor([0, 1, 2], 'int32');
const b2 = tensor([true, false]);

function expectThrows(f: () => unknown, cls: ErrorClass, re: RegExp): void {
  let caught: unknown;
  try {
    f();
  } catch (e) {
    caught = e;
  }
  expect(caught, 'expected a throw').toBeDefined();
  expect((caught as Error).constructor.name).toBe(cls.name);
  expect(caught).toBeInstanceOf(cls);
  expect(caught).toBeInstanceOf(NegcacheError);
  expect((caught as Error).message).toMatch(re);
  expect((caught as NegcacheError).op).toBe((caught as Error).message.split(':')[0]);
}

const SHAPE: Case[] = [
  [
    'add broadcast',
    () => add(x23, zeros([4])),
    ShapeError,
    /^add: shapes \[2,3\] and \[4\] do not broadcast \(axis -1: 3 vs 4/,
  ],
  [
    'mul broadcast',
    () => mul(zeros([2, 1, 3]), zeros([4, 2])),
    ShapeError,
    /^mul: shapes \[2,1,3\] and \[4,2\] do not broadcast/,
  ],
  ['where broadcast', () => where(tensor([true, false, true]), x23, zeros([2, 2])), ShapeError, /^where: shapes /],
  ['comparison broadcast', () => N.less(x23, zeros([2])), ShapeError, /^less: shapes \[2,3\] and \[2\]/],
  [
    'logicalAnd broadcast',
    () => logicalAnd(b2, tensor([true, true, true])),
    ShapeError,
    /^logicalAnd: shapes \[2\] and \[3\]/,
  ],
  [
    'matmul inner dims',
    () => matmul(x23, zeros([4, 5])),
    ShapeError,
    /^matmul: inner dimensions differ \(a is \[2,3\], b is \[4,5\]; need a\.shape\[-1\] === b\.shape\[-2\]\)/,
  ],
  [
    'matmul inner dims, transposed',
    () => matmul(x23, zeros([2, 5]), { transposeA: true, transposeB: true }),
    ShapeError,
    /^matmul: inner dimensions differ \(a is \[2,3\] transposed, b is \[2,5\] transposed; need a\.shape\[-2\] === b\.shape\[-1\]\)/,
  ],
  [
    'matmul batch',
    () => matmul(zeros([2, 2, 3]), zeros([3, 3, 2])),
    ShapeError,
    /^matmul: shapes \[2\] and \[3\] do not broadcast/,
  ],
  [
    'matmul rank 1',
    () => matmul(zeros([3]), zeros([3, 2])),
    ShapeError,
    /^matmul: need operands of rank >= 2, got a \[3\]/,
  ],
  [
    'concat sizes',
    () => concat([x23, zeros([3, 3])], 1),
    ShapeError,
    /^concat: xs\[1\] is \[3,3\] but xs\[0\] is \[2,3\]; need equal sizes on every axis but 1/,
  ],
  ['concat ranks', () => concat([x23, zeros([2, 3, 1])]), ShapeError, /^concat: xs\[1\] is \[2,3,1\]/],
  ['concat scalars', () => concat([tensor(1), tensor(2)]), ShapeError, /^concat: cannot concatenate scalars/],
  ['stack shapes', () => stack([x23, zeros([3, 2])]), ShapeError, /^stack: xs\[1\] is \[3,2\] but xs\[0\] is \[2,3\]/],
  [
    'reshape size',
    () => reshape(x23, [4]),
    ShapeError,
    /^reshape: x is \[2,3\] \(6 elements\) but shape \[4\] holds 4/,
  ],
  [
    'reshape infer',
    () => reshape(zeros([5]), [2, -1]),
    ShapeError,
    /^reshape: cannot infer -1 in \[2,-1\] for 5 elements/,
  ],
  [
    'broadcastTo',
    () => broadcastTo(x23, [3, 3]),
    ShapeError,
    /^broadcastTo: shapes \[2,3\] and \[3,3\] do not broadcast/,
  ],
  [
    'broadcastTo shrink',
    () => broadcastTo(x23, [1, 3]),
    ShapeError,
    /^broadcastTo: x \[2,3\] cannot be broadcast to \[1,3\]/,
  ],
  ['squeeze non-1', () => squeeze(x23, 0), ShapeError, /^squeeze: axis 0 of \[2,3\] has size 2; need size 1/],
  [
    'scatterRows updates shape',
    () => scatterRows(x23, tensor([0], 'int32'), zeros([1, 2])),
    ShapeError,
    /^scatterRows: updates is \[1,2\]; need \[1,3\]/,
  ],
  [
    'scatterRows 2-D indices',
    () => scatterRows(x23, tensor([[0]], 'int32'), zeros([1, 3])),
    ShapeError,
    /^scatterRows: indices must be 1-D, got \[1,1\]/,
  ],
  [
    'scatterRows scalar x',
    () => scatterRows(tensor(1), tensor([0], 'int32'), zeros([1])),
    ShapeError,
    /^scatterRows: x is a scalar/,
  ],
  ['gather scalar x', () => gather(tensor(1), i3), ShapeError, /^gather: x is a scalar/],
  [
    'mean of empty axis',
    () => mean(zeros([2, 0]), { axis: 1 }),
    ShapeError,
    /^mean: cannot reduce the empty axis 1 of shape \[2,0\]/,
  ],
  ['max of empty', () => max(zeros([0])), ShapeError, /^max: cannot reduce the empty axis 0/],
  [
    'logSumExp of empty',
    () => logSumExp(zeros([0, 2]), { axis: 0 }),
    ShapeError,
    /^logSumExp: cannot reduce the empty axis 0/,
  ],
  ['argmax of empty', () => argmax(zeros([2, 0])), ShapeError, /^argmax: axis 1 is empty/],
  ['argmax scalar', () => argmax(tensor(1)), ShapeError, /^argmax: x is a scalar/],
  ['softmax scalar', () => softmax(tensor(1)), ShapeError, /^softmax: x is a scalar/],
  ['topK scalar', () => topK(tensor(1), 1), ShapeError, /^topK: x is a scalar/],
  [
    'tensor ragged',
    () => tensor([[1, 2], [3]]),
    ShapeError,
    /^tensor: ragged nested array: values\[1\] has length 1; need length 2 to match shape \[2,2\]/,
  ],
  [
    'tensor ragged depth',
    () => tensor([[1, 2], 3] as never),
    ShapeError,
    /^tensor: ragged nested array: values\[1\] has 3/,
  ],
  [
    'tensor ragged deeper',
    () => tensor([1, [2]] as never),
    ShapeError,
    /^tensor: ragged nested array: values\[1\] is an array/,
  ],
  [
    'tensor typed-array shape',
    () => tensor(new Float32Array(5), 'float32', [2, 3]),
    ShapeError,
    /^tensor: shape \[2,3\] needs 6 values, got 5/,
  ],
  [
    'tensor nested shape',
    () => tensor([1, 2, 3], 'float32', [2, 2]),
    ShapeError,
    /^tensor: shape \[2,2\] needs 4 values, got 3/,
  ],
  [
    'vjp cotangent shape',
    () => vjp((t: Tensor) => t, x23).vjp(zeros([3, 2])),
    ArgumentError,
    /^vjp: cotangent is \[3,2\]; need the output's shape \[2,3\]/,
  ],
];

const AXIS: Case[] = [
  [
    'sum axis',
    () => sum(x23, { axis: 2 }),
    ArgumentError,
    /^sum: axis 2 is out of range for a tensor of rank 2; need an integer in \[-2, 1\]/,
  ],
  ['sum negative axis', () => sum(x23, { axis: [-3] }), ArgumentError, /^sum: axis -3 is out of range/],
  ['sum repeated axis', () => sum(x23, { axis: [1, -1] }), ArgumentError, /^sum: axis \[1,-1\] repeats an axis/],
  ['sum non-integer axis', () => sum(x23, { axis: 0.5 }), ArgumentError, /^sum: axis 0.5 is out of range/],
  [
    'sum axis not a number',
    () => sum(x23, { axis: 'x' as never }),
    ArgumentError,
    /^sum: axis must be a number or an array/,
  ],
  ['max axis', () => max(x23, { axis: 5 }), ArgumentError, /^max: axis 5/],
  ['any axis', () => any(b2, { axis: 1 }), ArgumentError, /^any: axis 1/],
  ['softmax axis', () => softmax(x23, { axis: -3 }), ArgumentError, /^softmax: axis -3 is out of range/],
  ['logSoftmax axis', () => N.logSoftmax(x23, { axis: 2 }), ArgumentError, /^logSoftmax: axis 2/],
  ['argmin axis', () => N.argmin(x23, { axis: 2 }), ArgumentError, /^argmin: axis 2/],
  ['cumsum axis', () => cumsum(x23, { axis: 2 }), ArgumentError, /^cumsum: axis 2/],
  ['concat axis', () => concat([x23, x23], 2), ArgumentError, /^concat: axis 2 is out of range for a tensor of rank 2/],
  ['stack axis', () => stack([x23, x23], 3), ArgumentError, /^stack: axis 3 is out of range for a tensor of rank 3/],
  ['gather axis', () => gather(x23, i3, { axis: -3 }), ArgumentError, /^gather: axis -3/],
  [
    'expandDims axis',
    () => expandDims(x23, 3),
    ArgumentError,
    /^expandDims: axis 3 is out of range for a tensor of rank 3/,
  ],
  ['squeeze axis', () => squeeze(zeros([1]), 1), ArgumentError, /^squeeze: axis 1/],
  [
    'transpose perm duplicate',
    () => transpose(x23, [0, 0]),
    ArgumentError,
    /^transpose: perm \[0,0\] is not a permutation/,
  ],
  ['transpose perm short', () => transpose(x23, [0]), ArgumentError, /^transpose: perm \[0\] is not a permutation/],
  ['transpose perm range', () => transpose(x23, [0, 2]), ArgumentError, /^transpose: perm entry 2 is out of range/],
  ['transpose perm not array', () => transpose(x23, 1 as never), ArgumentError, /^transpose: perm must be an array/],
];

const INDEX: Case[] = [
  [
    'gather too large',
    () => gather(zeros([3]), tensor([0, 3], 'int32')),
    ArgumentError,
    /^gather: indices\[1\] = 3 is out of range for axis 0 of size 3; need 0 <= index < 3/,
  ],
  [
    'gather negative',
    () => gather(x23, tensor([-1], 'int32'), { axis: 1 }),
    ArgumentError,
    /^gather: indices\[0\] = -1 is out of range for axis 1 of size 3/,
  ],
  [
    'gather into empty axis',
    () => gather(zeros([0, 2]), tensor([0], 'int32')),
    ArgumentError,
    /^gather: indices\[0\] = 0 is out of range for axis 0 of size 0/,
  ],
  [
    'gatherRows',
    () => gatherRows(x23, tensor([[0], [5]], 'int32')),
    ArgumentError,
    /^gatherRows: indices\[1\] = 5 is out of range for axis 0 of size 2/,
  ],
  [
    'scatterRows',
    () => scatterRows(x23, tensor([-1], 'int32'), zeros([1, 3])),
    ArgumentError,
    /^scatterRows: indices\[0\] = -1 is out of range for axis 0 of size 2/,
  ],
  [
    'slice begin',
    () => slice(x23, [0, 4]),
    ArgumentError,
    /^slice: begin\[1\] = 4 is out of range for axis 1 of size 3/,
  ],
  ['slice negative begin', () => slice(x23, [-1]), ArgumentError, /^slice: begin\[0\] = -1 is out of range/],
  [
    'slice size overrun',
    () => slice(x23, [1], [2]),
    ArgumentError,
    /^slice: size\[0\] = 2 with begin 1 overruns axis 0 of size 2/,
  ],
  [
    'slice begin too long',
    () => slice(x23, [0, 0, 0]),
    ArgumentError,
    /^slice: begin must be an array of at most 2 integers/,
  ],
  ['slice size not array', () => slice(x23, [0], 2 as never), ArgumentError, /^slice: size must be an array/],
  ['pad negative', () => pad(x23, [0, -1], [0, 0]), ArgumentError, /^pad: before\[1\] must be an integer in \[0, /],
  ['pad length', () => pad(x23, [0], [0, 0]), ArgumentError, /^pad: before and after need 2 entries/],
  [
    'pad not arrays',
    () => pad(x23, undefined as never, [0, 0]),
    ArgumentError,
    /^pad: before and after must be arrays/,
  ],
  ['item', () => x23.item(), ArgumentError, /^item: tensor has shape \[2,3\] \(6 elements\); need exactly one element/],
];

const GRAD: Case[] = [
  [
    'grad non-scalar',
    () => grad((t: Tensor) => mul(t, 2))(zeros([3])),
    ArgumentError,
    /^grad: f must return a scalar, got shape \[3\]/,
  ],
  [
    'valueAndGrad non-scalar',
    () => valueAndGrad((t: Tensor) => t)(zeros([2])),
    ArgumentError,
    /^valueAndGrad: f must return a scalar, got shape \[2\]/,
  ],
  [
    'grad non-tensor output',
    () => grad((_t: Tensor) => 3)(zeros([1])),
    ArgumentError,
    /^grad: f must return a scalar float Tensor, got 3/,
  ],
  [
    'grad int output',
    () => grad((t: Tensor) => cast(sum(t), 'int32'))(zeros([2])),
    DTypeError,
    /^grad: f must return a float tensor, got int32/,
  ],
  [
    'hasAux without pair',
    () => valueAndGrad((t: Tensor) => sum(t), { hasAux: true })(zeros([2])),
    ArgumentError,
    /^valueAndGrad: with hasAux, f must return \[value, aux\]/,
  ],
  [
    'grad argnums range',
    () => grad((t: Tensor) => sum(t), { argnums: 1 })(zeros([2])),
    ArgumentError,
    /^grad: argnums 1 must name arguments in \[0, 0\]/,
  ],
  [
    'grad argnums list',
    () => grad((a: Tensor, b: Tensor) => sum(a), { argnums: [0, 2] })(zeros([2]), zeros([2])),
    ArgumentError,
    /^grad: argnums \[0,2\]/,
  ],
  [
    'grad duplicate argnums',
    () => grad((a: Tensor) => sum(a), { argnums: [0, 0] })(zeros([2])),
    ArgumentError,
    /^grad: argnums \[0,0\] repeats an argument/,
  ],
  [
    'grad unknown option',
    () => grad((t: Tensor) => sum(t), { argnum: 1 } as never),
    ArgumentError,
    /^grad: unknown option "argnum"; allowed: argnums/,
  ],
  [
    'valueAndGrad unknown option',
    () => valueAndGrad((t: Tensor) => sum(t), { hasaux: true } as never),
    ArgumentError,
    /^valueAndGrad: unknown option "hasaux"/,
  ],
  [
    'valueAndGrad hasAux not boolean',
    () => valueAndGrad((t: Tensor) => sum(t), { hasAux: 1 } as never),
    ArgumentError,
    /^valueAndGrad: hasAux must be true or false, got 1/,
  ],
  [
    'grad non-tree argument',
    () => grad((t: Tensor) => sum(t))('w' as never),
    ArgumentError,
    /^grad: argument 0 must be a Tensor or an array\/record of tensors, got "w"/,
  ],
  [
    'grad nested non-tensor',
    () => grad((p: { w: Tensor }) => sum(p.w))({ w: zeros([1]), b: 3 } as never),
    ArgumentError,
    /^grad: argument 0\.b must be a Tensor/,
  ],
  ['grad f not a function', () => grad(5 as never), ArgumentError, /^grad: f must be a function, got 5/],
  [
    'vjp int output',
    () => vjp((t: Tensor) => cast(t, 'int32'), x23),
    DTypeError,
    /^vjp: f must return a float tensor, got int32/,
  ],
  [
    'vjp int cotangent',
    () => vjp((t: Tensor) => t, x23).vjp(zeros([2, 3], 'int32')),
    DTypeError,
    /^vjp: cotangent must be float, got int32/,
  ],
  [
    'stopGradient non-tensor',
    () => N.stopGradient(3 as never),
    ArgumentError,
    /^stopGradient: x must be a Tensor, got 3/,
  ],
  [
    'checkGradients inputs',
    () => checkGradients((t) => t, [3 as never]),
    ArgumentError,
    /^checkGradients: inputs must be an array of tensors/,
  ],
];

const DTYPE: Case[] = [
  ['exp int', () => exp(i3), DTypeError, /^exp: x must be float32 or float64, got int32/],
  ['log bool', () => log(b2), DTypeError, /^log: x must be float32 or float64, got bool/],
  ['neg bool', () => neg(b2), DTypeError, /^neg: x is bool/],
  ['abs bool', () => abs(b2), DTypeError, /^abs: x is bool/],
  ['add bool', () => add(b2, b2), DTypeError, /^add: a and b are bool; arithmetic on bool tensors is not defined/],
  ['mul bool scalar', () => mul(b2, 2), DTypeError, /^mul: b is a number but the other operand is bool/],
  ['add mixed int float', () => add(zeros([3]), i3), DTypeError, /^add: dtypes differ \(a is float32, b is int32\)/],
  ['sub mixed bool', () => N.sub(b2, zeros([2])), DTypeError, /^sub: dtypes differ \(a is bool, b is float32\)/],
  ['div int', () => div(i3, i3), DTypeError, /^div: a and b must be float, got int32/],
  ['pow int', () => N.pow(i3, 2), DTypeError, /^pow: a and b must be float, got int32/],
  [
    'int with fraction',
    () => mul(i3, 1.5),
    DTypeError,
    /^mul: b is the non-integer number 1.5 but the other operand is int32/,
  ],
  [
    'gather float indices',
    () => gather(x23, tensor([0, 1])),
    DTypeError,
    /^gather: indices must be int32, got float32/,
  ],
  [
    'gatherRows float indices',
    () => gatherRows(x23, tensor([0])),
    DTypeError,
    /^gatherRows: indices must be int32, got float32/,
  ],
  [
    'scatterRows float indices',
    () => scatterRows(x23, tensor([0]), zeros([1, 3])),
    DTypeError,
    /^scatterRows: indices must be int32, got float32/,
  ],
  [
    'scatterRows updates dtype',
    () => scatterRows(x23, tensor([0], 'int32'), zeros([1, 3], 'float64')),
    DTypeError,
    /^scatterRows: updates is float64 but x is float32/,
  ],
  [
    'scatterRows int x, float updates',
    () => scatterRows(zeros([2], 'int32'), tensor([0], 'int32'), zeros([1])),
    DTypeError,
    /^scatterRows: updates is float32 but x is int32/,
  ],
  [
    'where float cond',
    () => where(zeros([2]), zeros([2]), zeros([2])),
    DTypeError,
    /^where: cond must be bool, got float32/,
  ],
  [
    'where mixed branches',
    () => where(b2, zeros([2]), zeros([2], 'int32')),
    DTypeError,
    /^where: a is float32 and b is int32/,
  ],
  [
    'matmul int',
    () => matmul(zeros([2, 2], 'int32'), zeros([2, 2])),
    DTypeError,
    /^matmul: need float operands, got a int32 and b float32/,
  ],
  ['sum bool', () => sum(b2), DTypeError, /^sum: x is bool/],
  ['mean int', () => mean(i3), DTypeError, /^mean: x must be float, got int32/],
  ['logSumExp int', () => logSumExp(i3), DTypeError, /^logSumExp: x must be float, got int32/],
  ['softmax int', () => softmax(i3), DTypeError, /^softmax: x must be float, got int32/],
  ['cumsum bool', () => cumsum(b2), DTypeError, /^cumsum: x is bool/],
  ['argmax bool', () => argmax(b2), DTypeError, /^argmax: x is bool/],
  ['topK bool', () => topK(b2, 1), DTypeError, /^topK: x is bool/],
  ['any float', () => any(x23), DTypeError, /^any: x must be bool, got float32/],
  ['all int', () => all(i3), DTypeError, /^all: x must be bool, got int32/],
  ['logicalAnd float', () => logicalAnd(zeros([2]), b2), DTypeError, /^logicalAnd: a must be bool, got float32/],
  ['logicalNot int', () => logicalNot(i3), DTypeError, /^logicalNot: a must be bool, got int32/],
  ['comparison mixed', () => N.equal(i3, zeros([3])), DTypeError, /^equal: dtypes differ \(a is int32, b is float32\)/],
  [
    'concat dtypes',
    () => concat([zeros([2]), tensor([1], 'int32')]),
    DTypeError,
    /^concat: xs\[1\] is int32 but xs\[0\] is float32/,
  ],
  [
    'cast unknown dtype',
    () => cast(x23, 'int64' as never),
    DTypeError,
    /^cast: dtype must be float32, float64, int32 or bool, got int64/,
  ],
  [
    'tensor unknown dtype',
    () => tensor([1], 'float16' as never),
    DTypeError,
    /^tensor: dtype must be one of float32, float64, int32, bool; got "float16"/,
  ],
  ['zeros unknown dtype', () => zeros([1], 'uint8' as never), DTypeError, /^zeros: dtype must be one of/],
  [
    'uniform int dtype',
    () => uniform([2], new Rng(1), { dtype: 'int32' }),
    DTypeError,
    /^uniform: dtype must be float32 or float64, got int32/,
  ],
];

const OPTIONS: Case[] = [
  [
    'sum unknown key',
    () => sum(x23, { axes: 0 } as never),
    ArgumentError,
    /^sum: unknown option "axes"; allowed: axis, keepDims/,
  ],
  [
    'sum keepDims',
    () => sum(x23, { keepDims: 1 } as never),
    ArgumentError,
    /^sum: keepDims must be true or false, got 1/,
  ],
  [
    'sum options not object',
    () => sum(x23, 1 as never),
    ArgumentError,
    /^sum: options must be an object like \{axis, keepDims\}, got 1/,
  ],
  [
    'mean keepDims',
    () => mean(x23, { keepDims: 'yes' } as never),
    ArgumentError,
    /^mean: keepDims must be true or false, got "yes"/,
  ],
  ['max unknown key', () => max(x23, { axis: 0, keep: true } as never), ArgumentError, /^max: unknown option "keep"/],
  [
    'min keepDims',
    () => N.min(x23, { keepDims: null } as never),
    ArgumentError,
    /^min: keepDims must be true or false, got null/,
  ],
  [
    'logSumExp unknown key',
    () => logSumExp(x23, { dim: 1 } as never),
    ArgumentError,
    /^logSumExp: unknown option "dim"/,
  ],
  ['any keepDims', () => any(b2, { keepDims: 0 } as never), ArgumentError, /^any: keepDims must be true or false/],
  [
    'softmax keepDims',
    () => softmax(x23, { axis: 0, keepDims: true } as never),
    ArgumentError,
    /^softmax: unknown option "keepDims"; allowed: axis/,
  ],
  [
    'argmax keepDims',
    () => argmax(x23, { keepDims: 'no' } as never),
    ArgumentError,
    /^argmax: keepDims must be true or false/,
  ],
  [
    'cumsum reverse',
    () => cumsum(x23, { reverse: 1 } as never),
    ArgumentError,
    /^cumsum: reverse must be true or false, got 1/,
  ],
  [
    'cumsum unknown',
    () => cumsum(x23, { exclusive: true } as never),
    ArgumentError,
    /^cumsum: unknown option "exclusive"/,
  ],
  [
    'gather unknown',
    () => gather(x23, i3, { batchDims: 1 } as never),
    ArgumentError,
    /^gather: unknown option "batchDims"/,
  ],
  [
    'matmul unknown',
    () => matmul(x23, x23, { transposeC: true } as never),
    ArgumentError,
    /^matmul: unknown option "transposeC"; allowed: transposeA, transposeB/,
  ],
  [
    'matmul flag type',
    () => matmul(x23, x23, { transposeB: 'yes' } as never),
    ArgumentError,
    /^matmul: transposeB must be true or false, got "yes"/,
  ],
  [
    'uniform unknown',
    () => uniform([2], new Rng(1), { lo: 0 } as never),
    ArgumentError,
    /^uniform: unknown option "lo"; allowed: low, high, dtype/,
  ],
  [
    'uniform bounds',
    () => uniform([2], new Rng(1), { low: 2, high: 1 }),
    ArgumentError,
    /^uniform: need finite low <= high, got low=2, high=1/,
  ],
  ['normal std', () => normal([2], new Rng(1), { std: -1 }), ArgumentError, /^normal: need finite mean and std >= 0/],
  [
    'normal options null',
    () => normal([2], new Rng(1), null as never),
    ArgumentError,
    /^normal: options must be an object/,
  ],
  [
    'uniform no rng',
    () => uniform([2], 42 as never),
    ArgumentError,
    /^uniform: rng must be a seeded Rng \(e\.g\. new Rng\(42\)\), got 42/,
  ],
  ['reshape two -1', () => reshape(x23, [-1, -1]), ArgumentError, /^reshape: shape \[-1,-1\] has more than one -1/],
  [
    'reshape bad shape',
    () => reshape(x23, [2, 1.5]),
    ArgumentError,
    /^reshape: shape must be an array of non-negative integers/,
  ],
  [
    'broadcastTo bad shape',
    () => broadcastTo(x23, 3 as never),
    ArgumentError,
    /^broadcastTo: shape must be an array of non-negative integers, got 3/,
  ],
  ['squeeze bad axis', () => squeeze(x23, 'a' as never), ArgumentError, /^squeeze: axis must be a number or an array/],
];

const VALUES: Case[] = [
  ['topK k > n', () => topK(x23, 4), ArgumentError, /^topK: k must be an integer in \[0, 3\], got 4/],
  ['topK k < 0', () => topK(x23, -1), ArgumentError, /^topK: k must be an integer in \[0, 3\], got -1/],
  ['topK k fraction', () => topK(x23, 1.5), ArgumentError, /^topK: k must be an integer in \[0, 3\], got 1.5/],
  [
    'cast NaN to int32',
    () => cast(tensor([1, NaN]), 'int32'),
    ArgumentError,
    /^cast: value NaN at flat index 1 of x does not fit in int32/,
  ],
  [
    'cast huge to int32',
    () => cast(tensor([3e9]), 'int32'),
    ArgumentError,
    /^cast: value 3000000000 at flat index 0 of x does not fit in int32/,
  ],
  [
    'cast -Infinity to int32',
    () => cast(tensor([-Infinity], 'float64'), 'int32'),
    ArgumentError,
    /^cast: value -Infinity at flat index 0/,
  ],
  [
    'tensor non-int for int32',
    () => tensor([1, 2.5], 'int32'),
    ArgumentError,
    /^tensor: value 2.5 at flat index 1 is not an int32/,
  ],
  [
    'tensor int32 overflow',
    () => tensor([2 ** 31], 'int32'),
    ArgumentError,
    /^tensor: value 2147483648 at flat index 0 is not an int32/,
  ],
  ['tensor string', () => tensor(['a'] as never), ArgumentError, /^tensor: value "a" at flat index 0 is not a number/],
  ['tensor bool from 2', () => tensor([2], 'bool'), ArgumentError, /^tensor: value 2 at flat index 0 is not a boolean/],
  [
    'zeros negative',
    () => zeros([2, -1]),
    ArgumentError,
    /^zeros: shape must be an array of non-negative integers, got \[2,-1\]/,
  ],
  ['ones fraction', () => ones([1.5]), ArgumentError, /^full: shape must be an array/],
  [
    'full int32 fraction',
    () => full([2], 0.5, 'int32'),
    ArgumentError,
    /^full: value 0.5 at flat index 0 is not an int32/,
  ],
  ['arange step 0', () => arange(0, 5, 0), ArgumentError, /^arange: step must not be 0/],
  ['arange NaN', () => arange(0, NaN), ArgumentError, /^arange: stop must be a finite number, got NaN/],
  ['Rng seed', () => new Rng(1.5), ArgumentError, /^Rng: seed must be a safe integer, got 1.5/],
  ['Rng.int 0', () => new Rng(1).int(0), ArgumentError, /^Rng\.int: n must be an integer in \[1, 2\^32\], got 0/],
  ['Rng.int too big', () => new Rng(1).int(2 ** 32 + 1), ArgumentError, /^Rng\.int: n must be an integer/],
  [
    'setState zeros',
    () => new Rng(1).setState([0, 0, 0, 0]),
    ArgumentError,
    /^Rng\.setState: state must not be all zero/,
  ],
  [
    'setState length',
    () => new Rng(1).setState([1, 2, 3]),
    ArgumentError,
    /^Rng\.setState: state must be 4 unsigned 32-bit integers, got \[1,2,3\]/,
  ],
  [
    'setState undefined',
    () => new Rng(1).setState(undefined as never),
    ArgumentError,
    /^Rng\.setState: state must be 4 unsigned 32-bit integers, got undefined/,
  ],
  [
    'fromState range',
    () => Rng.fromState([1, 2, 3, 2 ** 32]),
    ArgumentError,
    /^Rng\.setState: state must be 4 unsigned/,
  ],
  ['non-tensor x', () => exp(3 as never), ArgumentError, /^exp: x must be a Tensor, got 3/],
  [
    'non-tensor b',
    () => matmul(x23, [1] as never),
    ArgumentError,
    /^matmul: b must be a Tensor, got an array of length 1/,
  ],
  ['concat empty', () => concat([]), ArgumentError, /^concat: xs must be a non-empty array of tensors/],
  ['concat non-tensor', () => concat([x23, 5 as never]), ArgumentError, /^concat: xs\[1\] must be a Tensor, got 5/],
  ['stack empty', () => stack([]), ArgumentError, /^stack: xs must be a non-empty array/],
  ['add string', () => add(x23, 'a' as never), ArgumentError, /^add: b must be a Tensor, got "a"/],
];

describe.each([
  ['shape mismatches', SHAPE],
  ['bad axes', AXIS],
  ['indices out of range', INDEX],
  ['grad/vjp misuse', GRAD],
  ['wrong dtypes', DTYPE],
  ['bad options', OPTIONS],
  ['bad values', VALUES],
] as const)('%s', (_, cases) => {
  it.each(cases.map((c) => [c[0], c] as const))('%s', (_label, [, f, cls, re]) => {
    expectThrows(f, cls, re);
  });
});

describe('junk arguments only ever raise NegcacheError subclasses (never TypeError/RangeError)', () => {
  const junk = fc.oneof(
    fc.constantFrom<unknown>(
      undefined,
      null,
      NaN,
      Infinity,
      -1,
      1.5,
      0,
      7,
      '',
      'axis',
      true,
      {},
      [],
      [[1]],
      [1, 'a'],
      [-2, 3],
      [2, 3.5],
      () => 1,
      { axis: 0, foo: 1 },
      Symbol.iterator,
    ),
    fc.constantFrom<unknown>(zeros([2]), zeros([2, 3], 'int32'), tensor([true]), zeros([0]), tensor(1)),
    fc.integer({ min: -5, max: 5 }),
    fc.array(fc.integer({ min: -3, max: 4 }), { maxLength: 4 }),
  );
  const x = zeros([2, 3]);
  const calls: Record<string, (a: unknown) => unknown> = {
    reshape: (a) => reshape(x, a as never),
    transpose: (a) => transpose(x, a as never),
    expandDims: (a) => expandDims(x, a as never),
    squeeze: (a) => squeeze(zeros([1, 2]), a as never),
    broadcastTo: (a) => broadcastTo(x, a as never),
    concat: (a) => concat(a as never),
    concatAxis: (a) => concat([x, x], a as never),
    stack: (a) => stack(a as never),
    stackAxis: (a) => stack([x], a as never),
    sliceBegin: (a) => slice(x, a as never),
    sliceSize: (a) => slice(x, [0, 0], a as never),
    padBefore: (a) => pad(x, a as never, [0, 0]),
    padAfter: (a) => pad(x, [0, 0], a as never),
    gather: (a) => gather(x, a as never),
    gatherOpts: (a) => gather(x, i3.dataSync().length ? tensor([0], 'int32') : i3, a as never),
    gatherRows: (a) => gatherRows(x, a as never),
    scatterRows: (a) => scatterRows(x, tensor([0], 'int32'), a as never),
    scatterIdx: (a) => scatterRows(x, a as never, zeros([1, 3])),
    topK: (a) => topK(x, a as never),
    topKx: (a) => topK(a as never, 1),
    sum: (a) => sum(x, a as never),
    sumAxis: (a) => sum(x, { axis: a as never }),
    softmax: (a) => softmax(x, a as never),
    softmaxAxis: (a) => softmax(x, { axis: a as never }),
    argmax: (a) => argmax(x, a as never),
    cumsum: (a) => cumsum(x, a as never),
    matmul: (a) => matmul(x, a as never),
    matmulOpts: (a) => matmul(x, zeros([3, 2]), a as never),
    add: (a) => add(x, a as never),
    where: (a) => where(a as never, x, x),
    cast: (a) => cast(x, a as never),
    exp: (a) => exp(a as never),
    tensor: (a) => tensor(a as never),
    tensorDtype: (a) => tensor([1], a as never),
    tensorShape: (a) => tensor([1, 2], 'float32', a as never),
    zeros: (a) => zeros(a as never),
    full: (a) => full([2], a as never),
    fullDtype: (a) => full([2], 1, a as never),
    arange: (a) => arange(a as never),
    arangeStep: (a) => arange(0, 5, a as never),
    uniform: (a) => uniform(a as never, new Rng(1)),
    uniformOpts: (a) => uniform([2], new Rng(1), a as never),
    normalOpts: (a) => normal([2], new Rng(1), a as never),
    rng: (a) => new Rng(a as never),
    rngInt: (a) => new Rng(1).int(a as never),
    setState: (a) => new Rng(1).setState(a as never),
    grad: (a) => grad(a as never)(x),
    gradOpts: (a) => grad((t: Tensor) => sum(t), a as never)(x),
    gradArg: (a) => grad((t: Tensor) => sum(t))(a as never),
    vjpCotangent: (a) => vjp((t: Tensor) => t, x).vjp(a as never),
    vjpPrimal: (a) => vjp((t: Tensor) => sum(t), a as never),
    valueAndGradOpts: (a) => valueAndGrad((t: Tensor) => sum(t), a as never)(x),
    aux: (a) => valueAndGrad((_t: Tensor) => a, { hasAux: true })(x),
    logicalNot: (a) => logicalNot(a as never),
    mean: (a) => mean(x, a as never),
    any: (a) => any(a as never),
    maxOpts: (a) => max(x, a as never),
    lse: (a) => logSumExp(x, a as never),
    stopGradient: (a) => N.stopGradient(a as never),
  };
  it('for every public entry point', () => {
    fc.assert(
      fc.property(fc.constantFrom(...Object.keys(calls)), junk, (name, a) => {
        try {
          calls[name]!(a);
        } catch (e) {
          if (!(e instanceof NegcacheError))
            throw new Error(`${name}(${String(a)}) threw ${(e as Error).constructor.name}: ${(e as Error).message}`);
          expect(e.message.startsWith(`${e.op}: `)).toBe(true);
        }
      }),
      params(1000),
    );
  });
});
