/**
 * Server-side optimizers: the coordinator applies the aggregated update (a gradient estimate) to the
 * authoritative parameters. State is flat Float32Arrays so it checkpoints as tensors.
 */
export type OptimizerSpec = (
  | { kind: 'sgd'; lr: number; momentum: number; weightDecay: number; nesterov?: boolean }
  | { kind: 'adam'; lr: number; beta1: number; beta2: number; eps: number; weightDecay: number }
) & {
  /** Decay β of the iterate average the job delivers (parameterAverage.ts); 0 or absent: the live parameters. */
  ema?: number;
};

export interface Optimizer {
  readonly spec: OptimizerSpec;
  /** params ← params − step(update), in place. `update` is not modified. */
  step(params: Float32Array, update: Float32Array): void;
  /** The scalar part of saveState (e.g. the step count), without copying the tensors. */
  scalars(): Record<string, number>;
  /** Named state tensors + scalars for checkpoints. */
  saveState(): { tensors: Record<string, Float32Array>; scalars: Record<string, number> };
  loadState(state: { tensors: Record<string, Float32Array>; scalars: Record<string, number> }): void;
  /** The iterate average to evaluate and deliver instead of the live parameters, once there is one. */
  averaged?(): Float32Array | undefined;
}

/** Allocates the optimizer's state tensors (e.g. from shared memory, so they outlive a worker thread). */
export type TensorAllocator = (length: number) => Float32Array;

export const allocateFloat32: TensorAllocator = (length) => new Float32Array(length);
