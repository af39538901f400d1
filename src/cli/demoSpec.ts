/**
 * The job `phalanx demo` runs: Fashion-MNIST, worker processes over loopback gRPC, two of them Byzantine, the
 * default robust rule. Worker momentum 0.9 (ByzFL's form) keeps honest gradients coherent, which is what the Flag
 * Aggregator's subspace needs. Sized so it reaches ≥ 80% test accuracy in a few minutes on a 2-core machine.
 */
import type { JobSpecInput } from '../config/jobSpec.ts';

/**
 * The Byzantine workers' sign flip sends −4·μ̂ (μ̂ estimated from their own recent gradients). With 4 honest and
 * 2 Byzantine workers the plain mean becomes (4 − 8)/6·μ: gradient ascent. ByzFL's −μ (scale 1) only slows the
 * mean to μ/3, which hides what a robust rule is for.
 */
export const DEMO_ATTACK_OPTIONS = { scale: 4 };

export function demoSpec(): JobSpecInput {
  return {
    name: 'demo',
    seed: 1,
    model: { kind: 'mlp', hidden: [128] },
    data: { batchSize: 64 },
    // lr chosen on a validation split (10 % of the training set, seeds 1–3): 0.1 → 80.3 %, 0.2 → 81.5 ± 0.3 %,
    // 0.4 → 80.8 ± 1.6 % after 400 rounds under this attack.
    optimizer: { kind: 'sgd', lr: 0.2, momentum: 0, weightDecay: 0 },
    rounds: 400,
    // min = max: the job starts when all six have joined and every round waits for all six, so the run does not
    // depend on how fast the worker processes start (with min 1 the first rounds ran on whoever was up).
    // heartbeatTtl 30 s: on a loaded machine a worker still loading tfjs and the data sent no heartbeat for 6 s,
    // was dropped, and round 0 closed without quorum, which shifted the whole run by a round.
    workers: { min: 6, max: 6, roundTimeout: '10s', heartbeatTtl: '30s', momentum: 0.9 },
    aggregation: { rule: 'flag', f: 2, pre: [], options: {} },
    checkpoint: { every: 100, keep: 2 },
    evaluation: { every: 50, limit: 2000 },
  };
}
