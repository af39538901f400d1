/**
 * Phocas (Xie, Koyejo & Gupta 2018): per coordinate, the mean of the n − f values closest to the coordinate's
 * f-trimmed mean (ties toward the lower worker index):
 *   [out]ₖ = (1/(n − f))·Σ_{i ∈ closest_{n−f}(trmeanₖ)} [xᵢ]ₖ.
 * Same definition by default and with `compat: 'garfield'` (FA-repo phocas); ByzFL has no Phocas.
 *
 * Precondition: 2f < n.
 * Health: trust = fraction of coordinates in which the worker's value was among the n − f closest, weight =
 * its average coefficient.
 */
import type { RuleFactory } from '../types.ts';
import { readBoolean, readCompat } from '../util.ts';
import { coordinatewiseRule } from './coordinatewiseRule.ts';

export const createPhocas: RuleFactory = (options) => {
  readCompat('phocas', options, ['garfield']);
  return coordinatewiseRule({
    name: 'phocas',
    reuseOutput: readBoolean('phocas', options, 'reuseOutput', false),
    selection: (n, f) => ({ kind: 'closest', centre: 'trimmed', lower: false, t: f, e: f }),
    share: (n, f) => 1 / (n - f),
    neverSelected: 'phocas: never among the n - f closest to the trimmed mean',
  });
};
