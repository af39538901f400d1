/**
 * Coordinate-wise median (Yin et al. 2018): [out]ₖ = medianᵢ [xᵢ]ₖ.
 *
 * Even n: midpoint of the two middle values by default and with `compat: 'byzfl'` (numpy/torch.quantile);
 * `compat: 'garfield'` takes the lower middle value (torch.median, FA-repo copy).
 *
 * Precondition: 2f < n (breakdown point 1/2).
 * Health: trust = fraction of coordinates in which the worker's value is (one of) the median value(s),
 * weight = its average coefficient (1 per coordinate for odd n or lower median, ½ for the midpoint).
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

export const createMedian: RuleFactory = (options) => {
  const compat = readCompat('median', options, ['byzfl', 'garfield']);
  const lower = compat === 'garfield';
  const reuse = readBoolean('median', options, 'reuseOutput', false);
  const ws = new Workspace();
  const rule: AggregationRule = {
    name: 'median',
    aggregate(input: AggregationInput): AggregationResult {
      const d = checkInput('median', input);
      const { vectors, f } = input;
      const n = vectors.length;
      precondition(2 * f < n, 'median', '2f < n', n, f);
      const counts = ws.f64('counts', n);
      counts.fill(0);
      const update = outputBuffer(ws, reuse, d);
      const odd = (n & 1) === 1;
      const workers = initHealth(input.workerIds);
      const dots = dotsBuffers(ws, n);
      coordinatewise(vectors, n, { kind: 'median', lower, window: Math.max(1, f) }, update, counts, dots, ws);
      coordinateHealth(workers, counts, odd || lower ? 1 : 0.5, d, 'median: never the median value');
      fillHealthFromDots(workers, dots);
      return { update, workers };
    },
  };
  return rule;
};
