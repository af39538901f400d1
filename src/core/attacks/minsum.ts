/**
 * Min-Sum (Shejwalkar & Houmansadr, NDSS'21), AGR-agnostic: x = μ − γ·p with the largest γ (binary search from
 * γ₀ = 10, tolerance 1e-5; see shejwalkar.ts) such that
 *   Σ_i ‖x − h_i‖² ≤ min_i Σ_j ‖h_i − h_j‖²
 * (its summed squared distance to the honest updates is no larger than any honest update's; "min" as coded in
 * the reference notebook `our_attack_score` and CRYPTO-KU `minsum.py`).
 * Options: devType 'std' (default, p = σ with ddof 1) | 'unit_vec' (μ/‖μ‖) | 'sign' (sign μ); gammaInit 10;
 * tol 1e-5. The last γ found is exposed as `lastGamma` (diagnostics).
 */
import { OptionReader } from './options.ts';
import { shejwalkarAttack, type DeviationType, type ShejwalkarScratch } from './shejwalkar.ts';
import { requireHonest } from './stats.ts';
import type { Attack, AttackContext, AttackFactory } from './types.ts';

export interface MinSumOptions {
  devType?: DeviationType;
  gammaInit?: number;
  tol?: number;
}

export interface MinSumAttack extends Attack {
  /** γ chosen by the last craft call (NaN before the first). */
  readonly lastGamma: number;
}

export const createMinSum: AttackFactory = (options) => {
  const o = new OptionReader('minsum', options, ['devType', 'gammaInit', 'tol']);
  const devType = o.oneOf<DeviationType>('devType', ['std', 'unit_vec', 'sign'], 'std');
  const gammaInit = o.number('gammaInit', 10, { above: 0 });
  const tol = o.number('tol', 1e-5, { above: 0 });
  const scratch: ShejwalkarScratch = { mu: new Float64Array(0), p: new Float64Array(0) };
  let lastGamma = NaN;
  const attack: MinSumAttack = {
    name: 'minsum',
    get lastGamma() {
      return lastGamma;
    },
    craft(ctx: AttackContext, out?: Float32Array): Float32Array {
      const h = requireHonest(ctx, 'minsum');
      const d = h[0].length;
      if (scratch.mu.length !== d) {
        scratch.mu = new Float64Array(d);
        scratch.p = new Float64Array(d);
      }
      const r = shejwalkarAttack(h, { objective: 'sum', devType, gammaInit, tol }, out, scratch);
      lastGamma = r.gamma;
      return r.vector;
    },
  };
  return attack;
};
