export {
  grad,
  valueAndGrad,
  valueAndGradAsync,
  vjp,
  stopGradient,
  type GradOptions,
  type ValueAndGradOptions,
  type ValueAndGrad,
  type Grad,
  type Grads,
  type ArgGrads,
  type Argnums,
  type NonFloatTensor,
} from './transforms.js';
export { describeGraph } from './engine.js';
export {
  checkGradients,
  type CheckGradientsOptions,
  type GradientCheckReport,
  type GradientCheckEntry,
} from './checkGradients.js';
export type { TensorTree } from './tree.js';
