/**
 * The job `phalanx demo` runs: Fashion-MNIST, worker processes over loopback gRPC, two of them Byzantine, the
 * default robust rule. Sized so it reaches ≥ 80% test accuracy in a few minutes on a 2-core machine.
 */
import type { JobSpecInput } from '../config/jobSpec.ts';

export function demoSpec(): JobSpecInput {
  return {
    name: 'demo',
    seed: 1,
    model: { kind: 'mlp', hidden: [128] },
    data: { batchSize: 32 },
    optimizer: { kind: 'sgd', lr: 0.1, momentum: 0.9, weightDecay: 0 },
    rounds: 300,
    workers: { min: 1, max: 6, roundTimeout: '10s', heartbeatTtl: '6s' },
    aggregation: { rule: 'flag', f: 2, pre: [], options: {} },
    checkpoint: { every: 100, dir: './checkpoints', keep: 2 },
    evaluation: { every: 50, limit: 2000 },
  };
}
