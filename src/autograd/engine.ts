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
 *
 * Traces. Each call of a transform (grad, valueAndGrad, vjp, ...) opens a
 * trace with its own id while its function runs; its leaves and every node
 * computed from them carry that id. The VJP rules run on constants, so the
 * engine is first order: a trace cannot see through another one. Instead of
 * answering wrongly when traces meet, `bind` refuses a primitive whose
 * inputs come from two different open traces (an inner transform whose
 * function uses a value the outer one is differentiating), and the
 * transforms refuse to differentiate a value of an open trace (grad of
 * grad); both throw UnsupportedError. Traces that have finished are inert:
 * a tensor that escaped one is a constant everywhere else.
 */
import { InternalError, UnsupportedError, fmtShape } from '../errors.js';
import { isFloat } from '../tensor/dtype.js';
import { gradNode, unsafeData, wrap, type GradNode, type Tensor } from '../tensor/tensor.js';
import { shapesEqual } from '../tensor/shape.js';

let nextId = 1;

/**
 * One input's cotangent from a VJP rule: a function computing it (called
 * only when that input needs a cotangent: lazy per-input gradients), or null
 * when the input gets none by definition (e.g. the boolean condition of where).
 */
export type Cotangent = (() => Tensor) | null;

/** What a VJP rule sees. All tensors are constants, so the backward pass records no graph. */
export interface VjpArgs<A> {
  /** ḡ: the cotangent of the output. */
  readonly g: Tensor;
  /** The inputs; `x` and `y` are inputs[0] and inputs[1] (undefined beyond the arity). */
  readonly inputs: readonly Tensor[];
  readonly x: Tensor;
  readonly y: Tensor;
  /** z: the primal output. */
  readonly z: Tensor;
  readonly attrs: A;
}

/** A primitive: its forward (kernels only; never records nodes) and its VJP right beside it. */
export interface Primitive<A> {
  /** Read by error messages and graph dumps; in the table (primitives.ts) it is the entry's key. */
  readonly name: string;
  /** The number of inputs, or null for any number (concat). Checked by bind. */
  readonly arity: number | null;
  /** Computes the output from the inputs' values; `op` (the primitive's name) is for size errors. */
  forward(inputs: readonly Tensor[], attrs: A, op: string): Tensor;
  /**
   * One Cotangent per input, each the same shape as its input. A cotangent
   * may have the output's dtype; the engine casts it to its input's dtype.
   */
  vjp(args: VjpArgs<A>): readonly Cotangent[];
}

// ------------------------------------------------------------------ traces

/** The open traces: id → the transform that opened it (for messages). */
const openTraces = new Map<number, string>();
let nextTrace = 1;

/** Opens a trace for one call of `transform`; close it with endTrace when the call's function has returned. */
export function beginTrace(transform: string): number {
  const id = nextTrace++;
  openTraces.set(id, transform);
  return id;
}

export function endTrace(id: number): void {
  openTraces.delete(id);
}

/** The open trace `t` belongs to, or 0 (a constant, or a tensor that escaped a finished trace). */
export function openTraceOf(t: Tensor): number {
  const node = gradNode(t);
  const trace = node?.trace ?? 0;
  return openTraces.has(trace) ? trace : 0;
}

/** The transform name of an open trace (for messages). */
export function transformOf(trace: number): string {
  return openTraces.get(trace) ?? 'a finished transform';
}

/**
 * The trace a node computed from `inputs` belongs to: the one open trace
 * among its tracked float inputs, else the (finished) trace of any tracked
 * input; null when no input is tracked. Inputs from two open traces throw
 * UnsupportedError.
 */
function traceOfInputs(prim: string, inputs: readonly Tensor[]): number | null {
  let open = 0,
    other: number | null = null;
  for (const t of inputs) {
    const node = gradNode(t);
    if (node === null || !isFloat(t.dtype)) continue;
    const trace = node.trace ?? 0;
    if (!openTraces.has(trace)) other = trace;
    else if (open === 0) open = trace;
    else if (open !== trace) throw mixedTraces(prim, Math.max(open, trace), Math.min(open, trace));
  }
  return open !== 0 ? open : other;
}

function mixedTraces(prim: string, inner: number, outer: number): UnsupportedError {
  const innerName = transformOf(inner),
    outerName = transformOf(outer);
  return new UnsupportedError(
    innerName,
    `${prim} combines a value traced by this ${innerName} with a value traced by an enclosing ${outerName}: ` +
      `the function given to ${innerName} uses a tensor that the outer ${outerName} is differentiating. ` +
      `Nested differentiation (gradients of gradients) is not supported and would give a wrong gradient; ` +
      `to use the outer value as a constant, pass it through stopGradient().`,
  );
}

// ------------------------------------------------------------------ binding

/** Applies a primitive; records a node when a float input is tracked and the output is float. */
export function bind<A>(prim: Primitive<A>, inputs: readonly Tensor[], attrs: A): Tensor {
  if (prim.arity !== null && inputs.length !== prim.arity)
    throw new InternalError(prim.name, `the primitive takes ${prim.arity} inputs, got ${inputs.length}`);
  const trace = traceOfInputs(prim.name, inputs);
  const out = prim.forward(inputs, attrs, prim.name);
  if (trace === null || !isFloat(out.dtype)) return out;
  // The VJP sees constants, so the backward pass itself records no graph.
  const consts = inputs.map(detach);
  const z = detach(out);
  const node: GradNode = {
    id: nextId++,
    op: prim.name,
    attrs,
    trace,
    inputs,
    vjp: (g) => prim.vjp({ g, inputs: consts, x: consts[0]!, y: consts[1]!, z, attrs }),
  };
  return wrap(unsafeData(out), out.shape, out.dtype, node);
}

/** A fresh leaf of `trace` (0: of no transform): same values as `x`, tracked. */
export function makeLeaf(x: Tensor, trace = 0): Tensor {
  return wrap(unsafeData(x), x.shape, x.dtype, { id: nextId++, op: 'leaf', attrs: null, trace, inputs: [], vjp: null });
}

/** The same values as `x` with no node: a constant for every enclosing differentiation. */
export function detach(x: Tensor): Tensor {
  return gradNode(x) === null ? x : wrap(unsafeData(x), x.shape, x.dtype, null);
}

// ------------------------------------------------------------------ backward

/**
 * Runs the backward pass from `output` with cotangent `seed` and returns the
 * accumulated cotangent of every leaf in `leaves` (null where the output does
 * not depend on it). `add` and `castTo` are passed in to keep this file free
 * of op definitions. A VJP that returns the wrong number of cotangents, or a
 * cotangent of the wrong shape, is a bug in its rule: InternalError naming
 * the primitive.
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
  const nodes = reachable(root);
  nodes.sort((a, b) => b.id - a.id);
  cts.set(root.id, seed);
  for (const node of nodes) {
    const ct = cts.get(node.id);
    if (ct === undefined || node.vjp === null) continue;
    if (!leafIds.has(node.id)) cts.delete(node.id);
    const rules = node.vjp(ct);
    const name = node.op ?? 'an unnamed primitive';
    if (rules.length !== node.inputs.length) {
      throw new InternalError(
        name,
        `the VJP returned ${rules.length} cotangents for ${node.inputs.length} inputs; need one per input (null for none)`,
      );
    }
    for (let i = 0; i < node.inputs.length; i++) {
      const input = node.inputs[i]!;
      const rule = rules[i];
      if (rule === null || rule === undefined || !isTracked(input)) continue;
      const g = rule();
      if (!shapesEqual(g.shape, input.shape)) {
        throw new InternalError(
          name,
          `the VJP returned a ${fmtShape(g.shape)} cotangent for input ${i} of shape ${fmtShape(input.shape)}`,
        );
      }
      const gi = g.dtype === input.dtype ? g : castTo(g, input);
      const id = gradNode(input)!.id;
      const prev = cts.get(id);
      cts.set(id, prev === undefined ? detach(gi) : detach(add(prev, gi)));
    }
  }
  return leaves.map((l) => cts.get(gradNode(l)!.id) ?? null);
}

function isTracked(t: Tensor): boolean {
  return gradNode(t) !== null && isFloat(t.dtype);
}

/** The nodes reachable from `root` through tracked float inputs (iteratively). */
function reachable(root: GradNode): GradNode[] {
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
  return nodes;
}

// ------------------------------------------------------------------ inspection

/**
 * The autodiff graph behind `t`, one line per node in creation order, e.g.
 * for `sum(mul(x, w))` inside `grad` with x the argument and w closed over:
 *
 *   %1 = leaf                          [3] float32
 *   %2 = mul(%1, const [3] float32)    [3] float32
 *   %3 = sum(%2) {axes: [0], keepDims: false}  [] float32
 *
 * A tensor with no graph (a constant, or any tensor outside grad/vjp) gives
 * `const [3] float32 (no graph)`. For debugging inside a transformed
 * function: `console.log(describeGraph(loss))`.
 */
export function describeGraph(t: Tensor): string {
  const head = gradNode(t);
  const typeOf = (x: Tensor): string => `${fmtShape(x.shape)} ${x.dtype}`;
  if (head === null) return `const ${typeOf(t)} (no graph)`;
  // Every node with the tensor it computed (reached through the tensors that point at it).
  const tensorOf = new Map<number, Tensor>([[head.id, t]]);
  for (const node of reachable(head))
    for (const input of node.inputs) {
      const n = gradNode(input);
      if (n !== null) tensorOf.set(n.id, input);
    }
  const ids = [...tensorOf.keys()].sort((a, b) => a - b);
  const label = new Map(ids.map((id, i) => [id, `%${i + 1}`]));
  const lines = ids.map((id) => {
    const out = tensorOf.get(id)!;
    const node = gradNode(out)!;
    const args = node.inputs.map((x) => {
      const n = gradNode(x);
      return n !== null && label.has(n.id) ? label.get(n.id)! : `const ${typeOf(x)}`;
    });
    const op = node.op ?? '?';
    const call = op === 'leaf' ? 'leaf' : `${op}(${args.join(', ')})`;
    const attrs = node.attrs === null || node.attrs === undefined ? '' : ` ${showAttrs(node.attrs)}`;
    return `${label.get(id)} = ${call}${attrs}`;
  });
  const width = Math.max(...lines.map((l) => l.length));
  return lines.map((l, i) => `${l.padEnd(width)}  ${typeOf(tensorOf.get(ids[i]!)!)}`).join('\n');
}

/** Attributes for graph dumps: arrays and records inline, typed arrays by type and length. */
function showAttrs(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(showAttrs).join(', ')}]`;
  if (ArrayBuffer.isView(v)) return `${v.constructor.name}(${(v as unknown as ArrayLike<unknown>).length})`;
  if (v !== null && typeof v === 'object')
    return `{${Object.entries(v)
      .map(([k, x]) => `${k}: ${showAttrs(x)}`)
      .join(', ')}}`;
  return typeof v === 'string' ? JSON.stringify(v) : String(v);
}
