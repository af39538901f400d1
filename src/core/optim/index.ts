/** Optimizer registry: build the optimizer a job spec names. */
import { Adam } from './adam.ts';
import { Sgd } from './sgd.ts';
import type { Optimizer, OptimizerSpec } from './types.ts';

export function createOptimizer(spec: OptimizerSpec, size: number): Optimizer {
  switch (spec.kind) {
    case 'sgd':
      return new Sgd(spec, size);
    case 'adam':
      return new Adam(spec, size);
    default:
      throw new Error(`optim: unknown optimizer kind '${(spec as { kind: unknown }).kind}'`);
  }
}

export { Adam } from './adam.ts';
export { Sgd } from './sgd.ts';
export type { Optimizer, OptimizerSpec } from './types.ts';
