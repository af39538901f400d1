/**
 * Optimal IPM (ByzFL `Optimal_InnerProductManipulation`): x = −τ*·μ with τ* from ByzFL's line search
 * (lineSearch.ts) maximising ‖F(H ∪ {x(τ)}×f) − μ‖₂ against the targeted aggregation F = `ctx.aggregate`
 * (pre-aggregators composed with the rule; default mean — ByzFL's default is Clipping then Average) and
 * f = `ctx.f`. Options: evals 20, start 0, delta 10, ratio 0.8. `lastTau` exposes the τ found.
 */
import { LINE_SEARCH_KEYS, optimalTau, readLineSearchOptions } from './lineSearch.ts';
import { OptionReader } from './options.ts';
import { outputBuffer, requireHonest, scaledMeanInto } from './stats.ts';
import type { Attack, AttackContext, AttackFactory } from './types.ts';

export interface OptimalAttack extends Attack {
  /** τ chosen by the last craft call (NaN before the first). */
  readonly lastTau: number;
}

export const createOptimalIpm: AttackFactory = (options) => {
  const o = new OptionReader('optimalIpm', options, LINE_SEARCH_KEYS);
  const opts = readLineSearchOptions(o);
  let lastTau = NaN;
  const attack: OptimalAttack = {
    name: 'optimalIpm',
    get lastTau() {
      return lastTau;
    },
    craft(ctx: AttackContext, out?: Float32Array): Float32Array {
      const h = requireHonest(ctx, 'optimalIpm');
      const d = h[0].length;
      const build = (tau: number, x: Float32Array) => scaledMeanInto(h, -tau, x);
      lastTau = optimalTau(ctx, h, build, opts, new Float32Array(d));
      return scaledMeanInto(h, -lastTau, outputBuffer(out, d));
    },
  };
  return attack;
};
