/**
 * What the runtime (coordinator, worker, simulator) needs from a model, independent of tfjs details.
 * Parameters and gradients are flat Float32Arrays in the model's ParameterLayout order.
 */
import type { ParameterLayout } from '../core/layout/parameterLayout.ts';

export type ModelSpec =
  | { kind: 'mlp'; hidden: number[] }
  // the 431,080-parameter CNN of the robust-aggregation literature
  | { kind: 'cnn' };

/** A batch of examples: images as float32 NHWC (28x28x1 flattened per example), labels as class ids. */
export interface Batch {
  x: Float32Array; // [size * 784]
  y: Uint8Array; // [size]
  size: number;
}

export interface GradientResult {
  /** Preallocated by the trainer and reused across calls: copy it if you keep it past the next call. */
  grad: Float32Array;
  loss: number;
}

export interface Trainer {
  readonly layout: ParameterLayout;
  readonly spec: ModelSpec;
  /** Deterministic initial parameters for a seed (He/Glorot as the model defines). */
  initialParameters(seed: number): Float32Array;
  /** Mean cross-entropy gradient of the batch at `params`. */
  gradient(params: Float32Array, batch: Batch): Promise<GradientResult>;
  /** Accuracy and mean loss over the first `limit` examples of a dataset split (all if omitted). */
  evaluate(
    params: Float32Array,
    split: { images: Float32Array; labels: Uint8Array; count: number },
    limit?: number,
  ): Promise<{ accuracy: number; loss: number }>;
  dispose(): void;
}
