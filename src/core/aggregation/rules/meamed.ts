/**
 * MeaMed (Xie, Koyejo & Gupta 2018, "mean around median"): per coordinate, the mean of the n − f values closest
 * to the coordinate's median (ties toward the lower worker index):
 *   [out]ₖ = (1/(n − f))·Σ_{i ∈ closest_{n−f}(medₖ)} [xᵢ]ₖ.
 * Median of even n: midpoint by default and with `compat: 'byzfl'` (ByzFL Meamed); lower middle value with
 * `compat: 'garfield'` (FA-repo meamed, torch.median).
 *
 * Precondition: 2f < n.
 * Health: trust = fraction of coordinates in which the worker's value was among the n − f closest, weight =
 * its average coefficient.
 */
import type { AggregationInput, AggregationResult, AggregationRule, RuleFactory } from '../types.ts';
import { coordinatewise } from '../kernels/registry.ts';
import {
  checkInput,
  coordinateHealth,
  dotsBuffers,
  fillHealthFromDots,
  initHealth,
  outputBuffer,
  precondition,
  readBoolean,
  readCompat,
  Workspace,
} from '../util.ts';

export const createMeamed: RuleFactory = (options) => {
  const compat = readCompat('meamed', options, ['byzfl', 'garfield']);
  const lower = compat === 'garfield';
  const reuse = readBoolean('meamed', options, 'reuseOutput', false);
  const ws = new Workspace();
  const rule: AggregationRule = {
    name: 'meamed',
    aggregate(input: AggregationInput): AggregationResult {
      const d = checkInput('meamed', input);
      const { vectors, f } = input;
      const n = vectors.length;
      precondition(2 * f < n, 'meamed', '2f < n', n, f);
      const counts = ws.f64('counts', n);
      counts.fill(0);
      const update = outputBuffer(ws, reuse, d);
      const m = n - f;
      const workers = initHealth(input.workerIds);
      const dots = dotsBuffers(ws, n);
      const spec = { kind: 'closest', centre: 'median', lower, t: 0, e: f } as const;
      coordinatewise(vectors, n, spec, update, counts, dots, ws);
      coordinateHealth(workers, counts, 1 / m, d, 'meamed: never among the n - f closest to the median');
      fillHealthFromDots(workers, dots);
      return { update, workers };
    },
  };
  return rule;
};
