/**
 * A model as the trainer sees it: a layout, a seeded initialiser and a functional forward pass over one
 * tensor per layout layer. Models hold no tfjs state (no variables, no tf.layers), so one model object can
 * serve any number of parameter vectors.
 */
import type { ParameterLayout } from '../core/layout/parameterLayout.ts';
import type { ModelOps } from './ops.ts';
import { tf } from './tf.ts';
import type { ModelSpec } from './types.ts';

import { IMAGE_SIDE, IMAGE_SIZE, type ModelIo } from './modelIo.ts';

export { IMAGE_SIDE, IMAGE_SIZE, NUM_CLASSES, IMAGE_IO, exampleShape, type ModelIo } from './modelIo.ts';

/** A forward pass's result: the logits and what sparse models add to the loss and to the diagnostics. */
export interface ModelOutput {
  /** [N · targetsPerExample, numClasses]. */
  logits: tf.Tensor2D;
  /** Auxiliary losses, already weighted, to add to the training loss (an MoE's load-balancing loss). */
  auxLoss?: tf.Scalar;
  /** An MoE's share of routing assignments per expert, [blocks, experts] (each row sums to 1). */
  expertLoad?: tf.Tensor2D;
  /** A Mixture-of-Recursions student's mean recursions run per token over the pass, a scalar. */
  meanDepth?: tf.Scalar;
}

export interface Model {
  readonly spec: ModelSpec;
  readonly layout: ParameterLayout;
  readonly io: ModelIo;
  /** The input tensor of `n` examples whose x values are `x` (n · io.exampleSize floats). */
  input(x: Float32Array, n: number): tf.Tensor;
  /** Deterministic, backend-independent initial parameters (PyTorch defaults, see init.ts). */
  initialParameters(seed: number): Float32Array;
  /**
   * Logits [N · targetsPerExample, numClasses] for the input tensor of N examples (images: [N, 28, 28, 1];
   * tokens: int32 [N, T]). `params` holds one tensor per layout layer, in layout order
   * and with the layer's shape. Must be called inside a tidy (or the caller disposes intermediates).
   */
  apply(params: readonly tf.Tensor[], x: tf.Tensor, ops: ModelOps): tf.Tensor2D;
  /** apply() with the auxiliary outputs; models without any may omit it (the trainer then uses apply). */
  forward?(params: readonly tf.Tensor[], x: tf.Tensor, ops: ModelOps): ModelOutput;
}

/** Images [n, 28, 28, 1] from n · 784 floats. */
export function imageInput(x: Float32Array, n: number): tf.Tensor4D {
  return tf.tensor4d(x.subarray(0, n * IMAGE_SIZE), [n, IMAGE_SIDE, IMAGE_SIDE, 1]);
}
