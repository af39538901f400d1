/**
 * A model as the trainer sees it: a layout, a seeded initialiser and a functional forward pass over one
 * tensor per layout layer. Models hold no tfjs state (no variables, no tf.layers), so one model object can
 * serve any number of parameter vectors.
 */
import type { ParameterLayout } from '../core/layout/parameterLayout.ts';
import type { ModelOps } from './ops.ts';
import type { tf } from './tf.ts';
import type { ModelSpec } from './types.ts';

export const IMAGE_SIDE = 28;
export const IMAGE_SIZE = IMAGE_SIDE * IMAGE_SIDE;
export const NUM_CLASSES = 10;

export interface Model {
  readonly spec: ModelSpec;
  readonly layout: ParameterLayout;
  /** Deterministic, backend-independent initial parameters (PyTorch defaults, see init.ts). */
  initialParameters(seed: number): Float32Array;
  /**
   * Logits [N, 10] for images x [N, 28, 28, 1]. `params` holds one tensor per layout layer, in layout order
   * and with the layer's shape. Must be called inside a tidy (or the caller disposes intermediates).
   */
  apply(params: readonly tf.Tensor[], x: tf.Tensor4D, ops: ModelOps): tf.Tensor2D;
}
