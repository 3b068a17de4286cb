/**
 * The reverse-mode engine.
 *
 * Vocabulary
 *   primal     the value a primitive computes (its output tensor)
 *   cotangent  ∂L/∂(that value) for the scalar L being differentiated, same shape and dtype
 *   VJP        vector-Jacobian product: maps the output cotangent to the inputs' cotangents
 *
 * There is no global tape and no mode switch. `grad`/`vjp` mark their
 * arguments as leaves (tensors with a GradNode); every primitive applied to
 * at least one tracked float input records a node pointing at its inputs and
 * holding its VJP. Tensors a function closes over carry no node, so they are
 * constants. The graph lives on the tensors and is freed by the garbage
 * collector when the call returns.
 *
 * The backward pass is iterative: collect the nodes reachable from the
 * output, visit them in decreasing id (reverse creation) order, and add each
 * VJP result into the input's running cotangent. Deep chains cannot overflow
 * the stack, the order is deterministic, and a tensor used twice accumulates.
 */
import { isFloat } from '../tensor/dtype.js';
import { gradNode, unsafeData, wrap, type GradNode, type Tensor } from '../tensor/tensor.js';
import { shapesEqual } from '../tensor/shape.js';
import { fmtShape } from '../errors.js';

let nextId = 1;

/** A primitive: forward on constants, and its VJP right beside it. */
export interface Primitive<A> {
  readonly name: string;
  /** Computes the output from the inputs' values (kernels only; never records nodes). */
  forward(inputs: readonly Tensor[], attrs: A): Tensor;
  /**
   * Cotangents of the inputs, given the output cotangent `ct`. Entries for
   * inputs with `needs[i] === false` may be null (never computed: lazy
   * per-input gradients). Results may have the output's dtype; the engine
   * casts them to each input's dtype.
   */
  vjp(ct: Tensor, ctx: VjpContext<A>, needs: readonly boolean[]): (Tensor | null)[];
}

export interface VjpContext<A> {
  readonly inputs: readonly Tensor[];
  /** The primal output (as a constant). */
  readonly output: Tensor;
  readonly attrs: A;
}

/** Applies a primitive; records a node when a float input is tracked and the output is float. */
export function bind<A>(prim: Primitive<A>, inputs: readonly Tensor[], attrs: A): Tensor {
  const out = prim.forward(inputs, attrs);
  if (!isFloat(out.dtype)) return out;
  let tracked = false;
  for (const t of inputs)
    if (gradNode(t) !== null && isFloat(t.dtype)) {
      tracked = true;
      break;
    }
  if (!tracked) return out;
  // The VJP sees constants, so the backward pass itself records no graph.
  const ctx: VjpContext<A> = { inputs: inputs.map(detach), output: out, attrs };
  const node: GradNode = {
    id: nextId++,
    inputs,
    vjp: (ct, needs) => prim.vjp(ct, ctx, needs),
  };
  return wrap(unsafeData(out), out.shape, out.dtype, node);
}

/** A fresh leaf: same values as `x`, tracked. */
export function makeLeaf(x: Tensor): Tensor {
  return wrap(unsafeData(x), x.shape, x.dtype, { id: nextId++, inputs: [], vjp: null });
}

/** The same values as `x` with no node: a constant for every enclosing differentiation. */
export function detach(x: Tensor): Tensor {
  return gradNode(x) === null ? x : wrap(unsafeData(x), x.shape, x.dtype, null);
}

/**
 * Runs the backward pass from `output` with cotangent `seed` and returns the
 * accumulated cotangent of every leaf in `leaves` (null where the output does
 * not depend on it). `add` and `cast` are passed in to keep this file free of
 * op definitions.
 */
export function backward(
  output: Tensor,
  seed: Tensor,
  leaves: readonly Tensor[],
  add: (a: Tensor, b: Tensor) => Tensor,
  castTo: (x: Tensor, like: Tensor) => Tensor,
): (Tensor | null)[] {
  const root = gradNode(output);
  const leafIds = new Set(leaves.map((l) => gradNode(l)!.id));
  const cts = new Map<number, Tensor>();
  if (root === null) return leaves.map(() => null);
  // Collect reachable nodes iteratively.
  const nodes: GradNode[] = [];
  const seen = new Set<number>([root.id]);
  const stack: GradNode[] = [root];
  while (stack.length > 0) {
    const node = stack.pop()!;
    nodes.push(node);
    for (const input of node.inputs) {
      const n = gradNode(input);
      if (n !== null && isFloat(input.dtype) && !seen.has(n.id)) {
        seen.add(n.id);
        stack.push(n);
      }
    }
  }
  nodes.sort((a, b) => b.id - a.id);
  cts.set(root.id, seed);
  for (const node of nodes) {
    const ct = cts.get(node.id);
    if (ct === undefined || node.vjp === null) continue;
    if (!leafIds.has(node.id)) cts.delete(node.id);
    const needs = node.inputs.map((t) => gradNode(t) !== null && isFloat(t.dtype));
    const grads = node.vjp(ct, needs);
    for (let i = 0; i < node.inputs.length; i++) {
      if (!needs[i]) continue;
      const g = grads[i];
      if (g === null || g === undefined) continue;
      const input = node.inputs[i]!;
      if (!shapesEqual(g.shape, input.shape)) {
        throw new Error(`internal: VJP returned ${fmtShape(g.shape)} for an input of shape ${fmtShape(input.shape)}`);
      }
      const gi = g.dtype === input.dtype ? g : castTo(g, input);
      const id = gradNode(input)!.id;
      const prev = cts.get(id);
      cts.set(id, prev === undefined ? detach(gi) : detach(add(prev, gi)));
    }
  }
  return leaves.map((l) => cts.get(gradNode(l)!.id) ?? null);
}
