/**
 * Trees of tensors: a Tensor, or arrays / plain records of trees. Model
 * parameters are trees (e.g. `{query: {w, b}, doc: {w, b}}`), and `grad`
 * returns gradients with the same structure.
 */
import { ArgumentError, describe } from '../errors.js';
import { isTensor, type Tensor } from '../tensor/tensor.js';

export type TensorTree = Tensor | readonly TensorTree[] | { readonly [key: string]: TensorTree };

/** The leaves in a fixed order (arrays by index, records by sorted key), with a function that rebuilds the tree. */
export function flatten(
  op: string,
  tree: unknown,
  path = 'argument',
): { leaves: Tensor[]; rebuild: <T>(leaves: readonly T[]) => unknown } {
  const leaves: Tensor[] = [];
  const build = (node: unknown, at: string): ((next: () => unknown) => unknown) => {
    if (isTensor(node)) {
      leaves.push(node);
      return (next) => next();
    }
    if (Array.isArray(node)) {
      const parts = node.map((child, i) => build(child, `${at}[${i}]`));
      return (next) => parts.map((p) => p(next));
    }
    if (node !== null && typeof node === 'object' && Object.getPrototypeOf(node) === Object.prototype) {
      const keys = Object.keys(node).sort();
      const parts = keys.map((k) => build((node as Record<string, unknown>)[k], `${at}.${k}`));
      return (next) => Object.fromEntries(keys.map((k, i) => [k, parts[i]!(next)]));
    }
    throw new ArgumentError(op, `${at} must be a Tensor or an array/record of tensors, got ${describe(node)}`);
  };
  const builder = build(tree, path);
  return {
    leaves,
    rebuild: <T>(values: readonly T[]) => {
      let i = 0;
      return builder(() => values[i++]);
    },
  };
}
