/**
 * Coordinate-wise trimmed mean (Yin et al. 2018): per coordinate, sort the n values, drop the f smallest and
 * the f largest, average the remaining n − 2f. f = 0 gives the mean. Identical in ByzFL and the FA repo.
 *
 * Precondition: 2f < n.
 * Health: trust = fraction of coordinates in which the worker's value was kept, weight = its average
 * coefficient (kept fraction / (n − 2f)).
 */
import type { RuleFactory } from '../types.ts';
import { readBoolean, readCompat } from '../util.ts';
import { coordinatewiseRule } from './coordinatewiseRule.ts';

export const createTrimmedMean: RuleFactory = (options) => {
  readCompat('trimmedMean', options, ['byzfl', 'garfield']);
  return coordinatewiseRule({
    name: 'trimmedMean',
    reuseOutput: readBoolean('trimmedMean', options, 'reuseOutput', false),
    // f = 0: the mean of all n (sum / n), every worker counted
    selection: (n, f) =>
      f > 0 ? { kind: 'trimmed', t: f } : { kind: 'closest', centre: 'trimmed', lower: false, t: 0, e: 0 },
    share: (n, f) => 1 / (n - 2 * f),
    neverSelected: 'trimmedMean: trimmed in every coordinate',
  });
};
