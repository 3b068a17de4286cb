export {
  grad,
  valueAndGrad,
  valueAndGradAsync,
  vjp,
  stopGradient,
  type GradOptions,
  type ValueAndGradOptions,
  type ValueAndGrad,
} from './transforms.js';
export {
  checkGradients,
  type CheckGradientsOptions,
  type GradientCheckReport,
  type GradientCheckEntry,
} from './checkGradients.js';
export type { TensorTree } from './tree.js';
