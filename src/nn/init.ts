/** Parameter initialisers, all drawing from an explicit Rng. */
import { ArgumentError, describe } from '../errors.js';
import { Rng } from '../tensor/random.js';
import { wrap, type Tensor } from '../tensor/tensor.js';

function check(op: string, rng: unknown, dims: number[]): Rng {
  if (!(rng instanceof Rng)) throw new ArgumentError(op, `rng must be a seeded Rng, got ${describe(rng)}`);
  for (const d of dims)
    if (!Number.isInteger(d) || d < 1)
      throw new ArgumentError(op, `dimensions must be positive integers, got ${JSON.stringify(dims)}`);
  return rng;
}

/** Glorot/Xavier uniform: U(-a, a), a = sqrt(6 / (fanIn + fanOut)); shape [fanIn, fanOut]. */
export function glorotUniform(rng: Rng, fanIn: number, fanOut: number): Tensor {
  const g = check('glorotUniform', rng, [fanIn, fanOut]);
  const a = Math.sqrt(6 / (fanIn + fanOut));
  const d = new Float32Array(fanIn * fanOut);
  for (let i = 0; i < d.length; i++) d[i] = (2 * g.uniform() - 1) * a;
  return wrap(d, [fanIn, fanOut], 'float32');
}

/** Normal(0, std²) values of the given shape. */
export function normalInit(rng: Rng, shape: number[], std: number): Tensor {
  const g = check('normalInit', rng, shape);
  const n = shape.reduce((a, b) => a * b, 1);
  const d = new Float32Array(n);
  for (let i = 0; i < n; i++) d[i] = std * g.normal();
  return wrap(d, shape, 'float32');
}

export function zerosInit(shape: number[]): Tensor {
  return wrap(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape, 'float32');
}
