import { DTypeError, ShapeError, fmtShape } from '../errors.js';
import { isFloat, promote } from '../tensor/dtype.js';
import { broadcastShapes, checkSize } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { bind } from '../autograd/engine.js';
import { primitives as P } from '../autograd/primitives.js';
import { checkBoolean, checkOptions, checkTensor } from './util.js';

export interface MatmulOptions {
  /** Use aᵀ (a is stored [..., k, m]). */
  transposeA?: boolean;
  /** Use bᵀ (b is stored [..., n, k]): `matmul(q, c, {transposeB: true})` is Q·Cᵀ with no copy. */
  transposeB?: boolean;
}

/**
 * Matrix product over the last two axes; leading axes broadcast (a 2-D
 * operand is shared by every batch entry). Both operands must be float.
 */
export function matmul(a: Tensor, b: Tensor, opts?: MatmulOptions): Tensor {
  const x = checkTensor('matmul', 'a', a);
  const y = checkTensor('matmul', 'b', b);
  checkOptions('matmul', opts, ['transposeA', 'transposeB']);
  const transA = checkBoolean('matmul', 'transposeA', opts?.transposeA, false);
  const transB = checkBoolean('matmul', 'transposeB', opts?.transposeB, false);
  if (!isFloat(x.dtype) || !isFloat(y.dtype) || promote(x.dtype, y.dtype) === null) {
    throw new DTypeError('matmul', `need float operands, got a ${x.dtype} and b ${y.dtype}`);
  }
  if (x.rank < 2 || y.rank < 2) {
    throw new ShapeError(
      'matmul',
      `need operands of rank >= 2, got a ${fmtShape(x.shape)} and b ${fmtShape(y.shape)}; use expandDims for vectors`,
    );
  }
  const ka = transA ? x.shape[x.rank - 2]! : x.shape[x.rank - 1]!;
  const kb = transB ? y.shape[y.rank - 1]! : y.shape[y.rank - 2]!;
  if (ka !== kb) {
    const need = `${transA ? 'a.shape[-2]' : 'a.shape[-1]'} === ${transB ? 'b.shape[-1]' : 'b.shape[-2]'}`;
    throw new ShapeError(
      'matmul',
      `inner dimensions differ (a is ${fmtShape(x.shape)}${transA ? ' transposed' : ''}, b is ${fmtShape(y.shape)}${transB ? ' transposed' : ''}; need ${need})`,
    );
  }
  const batch = broadcastShapes('matmul', x.shape.slice(0, -2), y.shape.slice(0, -2));
  const m = transA ? x.shape[x.rank - 1]! : x.shape[x.rank - 2]!;
  const n = transB ? y.shape[y.rank - 2]! : y.shape[y.rank - 1]!;
  checkSize('matmul', [...batch, m, n], promote(x.dtype, y.dtype)!); // before any allocation
  return bind(P.matmul, [x, y], { transA, transB });
}
