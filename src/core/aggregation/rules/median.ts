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
import type { RuleFactory } from '../types.ts';
import { readBoolean, readCompat } from '../util.ts';
import { coordinatewiseRule } from './coordinatewiseRule.ts';

export const createMedian: RuleFactory = (options) => {
  const lower = readCompat('median', options, ['byzfl', 'garfield']) === 'garfield';
  return coordinatewiseRule({
    name: 'median',
    reuseOutput: readBoolean('median', options, 'reuseOutput', false),
    selection: (n, f) => ({ kind: 'median', lower, window: Math.max(1, f) }),
    share: (n) => ((n & 1) === 1 || lower ? 1 : 0.5),
    neverSelected: 'median: never the median value',
  });
};
