/**
 * Coordinate-wise trimmed mean (Yin et al. 2018): per coordinate, sort the n values, drop the f smallest and
 * the f largest, average the remaining n − 2f. f = 0 gives the mean. Identical in ByzFL and the FA repo.
 *
 * Precondition: 2f < n.
 * Health: trust = fraction of coordinates in which the worker's value was kept, weight = its average
 * coefficient (kept fraction / (n − 2f)).
 */
import type { AggregationInput, AggregationResult, AggregationRule, RuleFactory } from './types.ts';
import { columnScratch, gatherColumn, trimmedMeanOf } from './coordinatewise.ts';
import {
  checkInput,
  coordinateHealth,
  fillNormsAndCosines,
  initHealth,
  outputBuffer,
  precondition,
  readBoolean,
  readCompat,
  Workspace,
} from './util.ts';

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
      const s = columnScratch(ws, n);
      const counts = ws.f64('counts', n);
      counts.fill(0);
      const update = outputBuffer(ws, reuse, d);
      const inv = 1 / (n - 2 * f);
      for (let k = 0; k < d; k++) {
        gatherColumn(vectors, k, n, s);
        update[k] = trimmedMeanOf(n, f, s, counts);
      }
      const workers = initHealth(input.workerIds);
      coordinateHealth(workers, counts, inv, d, 'trimmedMean: trimmed in every coordinate');
      fillNormsAndCosines(workers, vectors, update);
      return { update, workers };
    },
  };
  return rule;
};
