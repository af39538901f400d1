/**
 * Coordinate-wise trimmed mean (Yin et al. 2018): per coordinate, sort the n values, drop the f smallest and
 * the f largest, average the remaining n − 2f. f = 0 gives the mean. Identical in ByzFL and the FA repo.
 *
 * Precondition: 2f < n.
 * Health: trust = fraction of coordinates in which the worker's value was kept, weight = its average
 * coefficient (kept fraction / (n − 2f)).
 */
import type { AggregationInput, AggregationResult, AggregationRule, RuleFactory } from '../types.ts';
import { coordinatewise } from '../kernels/registry.ts';
import type { CoordSpec } from '../kernels/types.ts';
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

export const createTrimmedMean: RuleFactory = (options) => {
  readCompat('trimmedMean', options, ['byzfl', 'garfield']);
  const reuse = readBoolean('trimmedMean', options, 'reuseOutput', false);
  const ws = new Workspace();
  const rule: AggregationRule = {
    name: 'trimmedMean',
    aggregate(input: AggregationInput): AggregationResult {
      const d = checkInput('trimmedMean', input);
      const { vectors, f } = input;
      const n = vectors.length;
      precondition(2 * f < n, 'trimmedMean', '2f < n', n, f);
      const counts = ws.f64('counts', n);
      counts.fill(0);
      const update = outputBuffer(ws, reuse, d);
      const inv = 1 / (n - 2 * f);
      // f = 0: the mean of all n (sum / n), every worker counted
      const spec: CoordSpec =
        f > 0 ? { kind: 'trimmed', t: f } : { kind: 'closest', centre: 'trimmed', lower: false, t: 0, e: 0 };
      const workers = initHealth(input.workerIds);
      const dots = dotsBuffers(ws, n);
      coordinatewise(vectors, n, spec, update, counts, dots, ws);
      coordinateHealth(workers, counts, inv, d, 'trimmedMean: trimmed in every coordinate');
      fillHealthFromDots(workers, dots);
      return { update, workers };
    },
  };
  return rule;
};
