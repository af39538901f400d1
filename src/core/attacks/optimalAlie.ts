/**
 * Optimal ALIE (ByzFL `Optimal_ALittleIsEnough`): x = μ + τ*·σ (σ with ddof, default 1), τ* from ByzFL's line
 * search (lineSearch.ts) maximising ‖F(H ∪ {x(τ)}×f) − μ‖₂ against F = `ctx.aggregate` (default mean; ByzFL's
 * default is Clipping then Average) and f = `ctx.f`. Options: evals 20, start 0, delta 10, ratio 0.8, ddof 1.
 * `lastTau` exposes the τ found.
 */
import { meanPlusStd } from './alie.ts';
import { LINE_SEARCH_KEYS, optimalTau, readLineSearchOptions } from './lineSearch.ts';
import type { OptimalAttack } from './optimalIpm.ts';
import { OptionReader } from './options.ts';
import { outputBuffer, requireHonest } from './stats.ts';
import type { AttackContext, AttackFactory } from './types.ts';

export const createOptimalAlie: AttackFactory = (options) => {
  const o = new OptionReader('optimalAlie', options, [...LINE_SEARCH_KEYS, 'ddof']);
  const opts = readLineSearchOptions(o);
  const ddof = o.number('ddof', 1, { integer: true, min: 0 });
  let lastTau = NaN;
  const attack: OptimalAttack = {
    name: 'optimalAlie',
    get lastTau() {
      return lastTau;
    },
    craft(ctx: AttackContext, out?: Float32Array): Float32Array {
      const h = requireHonest(ctx, 'optimalAlie');
      const d = h[0].length;
      const build = (tau: number, x: Float32Array) => meanPlusStd(h, tau, ddof, x);
      lastTau = optimalTau(ctx, h, build, opts, new Float32Array(d));
      return meanPlusStd(h, lastTau, ddof, outputBuffer(out, d));
    },
  };
  return attack;
};
