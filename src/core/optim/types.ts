/**
 * Server-side optimizers: the coordinator applies the aggregated update (a gradient estimate) to the
 * authoritative parameters. State is flat Float32Arrays so it checkpoints as tensors.
 */
export type OptimizerSpec =
  | { kind: 'sgd'; lr: number; momentum: number; weightDecay: number; nesterov?: boolean }
  | { kind: 'adam'; lr: number; beta1: number; beta2: number; eps: number; weightDecay: number };

export interface Optimizer {
  readonly spec: OptimizerSpec;
  /** params ← params − step(update), in place. `update` is not modified. */
  step(params: Float32Array, update: Float32Array): void;
  /** Named state tensors + scalars for checkpoints. */
  saveState(): { tensors: Record<string, Float32Array>; scalars: Record<string, number> };
  loadState(state: { tensors: Record<string, Float32Array>; scalars: Record<string, number> }): void;
}
