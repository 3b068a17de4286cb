/**
 * Gradient results are typed after the argument trees (checked by
 * `npm run typecheck`, which compiles the tests; expectTypeOf fails the
 * compile on a mismatch), and the values have the promised structure at run
 * time, so callers need no casts.
 */
import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  add,
  grad,
  matmul,
  mul,
  sum,
  tensor,
  valueAndGrad,
  valueAndGradAsync,
  vjp,
  type Grad,
  type NonFloatTensor,
  type Tensor,
  type ValueAndGrad,
} from '../../src/index.js';

interface Params {
  dense: { w: Tensor; b: Tensor };
  layers: Tensor[];
  ids: NonFloatTensor;
}

const params: Params = {
  dense: { w: tensor([[1, 2]]), b: tensor([0.5]) },
  layers: [tensor([1, -1]), tensor([2])],
  ids: tensor([0, 1], 'int32') as NonFloatTensor,
};

const loss = (p: Params): Tensor =>
  add(sum(matmul(p.dense.w, tensor([[1], [1]]))), add(sum(mul(p.layers[0]!, p.layers[0]!)), sum(p.dense.b)));

describe('Grad<T> follows the argument tree', () => {
  it('maps tensors to tensors, arrays and records structurally, and NonFloatTensor leaves to null', () => {
    expectTypeOf<Grad<Params>>().toEqualTypeOf<{
      dense: { w: Tensor; b: Tensor };
      layers: Tensor[];
      ids: null;
    }>();
    expectTypeOf<Grad<readonly [Tensor, { a: Tensor }]>>().toEqualTypeOf<[Tensor, { a: Tensor }]>();
  });

  it('grad(f)(params) is Grad<Params>, with the values to match', () => {
    const g = grad(loss)(params);
    expectTypeOf(g).toEqualTypeOf<Grad<Params>>();
    expect(g.dense.w.toArray()).toEqual([[1, 1]]);
    expect(g.dense.b.toArray()).toEqual([1]);
    expect(g.layers[0]!.toArray()).toEqual([2, -2]);
    expect(g.layers[1]!.toArray()).toEqual([0]);
    expect(g.ids).toBeNull();
  });

  it('argnums: a number gives that argument gradient, a list gives a tuple in the requested order', () => {
    const f = (a: Tensor, p: { w: Tensor }, c: Tensor): Tensor => sum(mul(mul(a, p.w), c));
    const a = tensor([2]),
      p = { w: tensor([3]) },
      c = tensor([5]);
    const g1 = grad(f, { argnums: 1 })(a, p, c);
    expectTypeOf(g1).toEqualTypeOf<{ w: Tensor }>();
    expect(g1.w.toArray()).toEqual([10]);
    const [gc, ga] = grad(f, { argnums: [2, 0] })(a, p, c);
    expectTypeOf(gc).toEqualTypeOf<Tensor>();
    expect(gc.toArray()).toEqual([6]);
    expect(ga.toArray()).toEqual([15]);
  });

  it('valueAndGrad types grad after the arguments and aux after f (with hasAux)', () => {
    const r = valueAndGrad((p: Params) => [loss(p), { note: 'kept' }] as const, { hasAux: true })(params);
    expectTypeOf(r).toEqualTypeOf<ValueAndGrad<{ readonly note: 'kept' }, Grad<Params>>>();
    expect(r.aux?.note).toBe('kept');
    expect(r.grad.dense.b.toArray()).toEqual([1]);
    const plain = valueAndGrad(loss)(params);
    expectTypeOf(plain.aux).toEqualTypeOf<undefined>();
    expectTypeOf(plain.grad).toEqualTypeOf<Grad<Params>>();
  });

  it('valueAndGradAsync and vjp are typed the same way', async () => {
    const r = await valueAndGradAsync(async (p: Params) => loss(p))(params);
    expectTypeOf(r.grad).toEqualTypeOf<Grad<Params>>();
    expect(r.grad.layers[0]!.toArray()).toEqual([2, -2]);
    const { vjp: pull } = vjp((x: Tensor, q: { w: Tensor }) => mul(x, q.w), tensor([1, 2]), { w: tensor([3, 4]) });
    const [gx, gq] = pull(tensor([1, 1]));
    expectTypeOf(gx).toEqualTypeOf<Tensor>();
    expectTypeOf(gq).toEqualTypeOf<{ w: Tensor }>();
    expect(gx.toArray()).toEqual([3, 4]);
    expect(gq.w.toArray()).toEqual([1, 2]);
  });
});
