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
import type { RuleFactory } from '../types.ts';
import { readBoolean, readCompat } from '../util.ts';
import { coordinatewiseRule } from './coordinatewiseRule.ts';

export const createMeamed: RuleFactory = (options) => {
  const lower = readCompat('meamed', options, ['byzfl', 'garfield']) === 'garfield';
  return coordinatewiseRule({
    name: 'meamed',
    reuseOutput: readBoolean('meamed', options, 'reuseOutput', false),
    selection: (n, f) => ({ kind: 'closest', centre: 'median', lower, t: 0, e: f }),
    share: (n, f) => 1 / (n - f),
    neverSelected: 'meamed: never among the n - f closest to the median',
  });
};
