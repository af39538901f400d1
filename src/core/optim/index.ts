/** Optimizer registry: build the optimizer a job spec names. */
import { Adam } from './adam.ts';
import { AveragedOptimizer } from './parameterAverage.ts';
import { Sgd } from './sgd.ts';
import type { Optimizer, OptimizerSpec, TensorAllocator } from './types.ts';

/**
 * `allocate` provides the state tensors (zero-filled when fresh); default: ordinary Float32Arrays. With `ema` > 0
 * the optimizer also keeps the iterate average, allocated after its own tensors.
 */
export function createOptimizer(spec: OptimizerSpec, size: number, allocate?: TensorAllocator): Optimizer {
  const inner = createInner(spec, size, allocate);
  return spec.ema ? new AveragedOptimizer(inner, spec.ema, size, allocate) : inner;
}

function createInner(spec: OptimizerSpec, size: number, allocate?: TensorAllocator): Optimizer {
  switch (spec.kind) {
    case 'sgd':
      return new Sgd(spec, size, allocate);
    case 'adam':
      return new Adam(spec, size, allocate);
    default:
      throw new Error(`optim: unknown optimizer kind '${(spec as { kind: unknown }).kind}'`);
  }
}

export { Adam } from './adam.ts';
export { Sgd } from './sgd.ts';
export { AveragedOptimizer, AVERAGE_TENSOR, averageOf } from './parameterAverage.ts';
export type { Optimizer, OptimizerSpec, TensorAllocator } from './types.ts';
