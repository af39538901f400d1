/**
 * Gaussian noise (ByzFL `Gaussian`): every coordinate xₖ ~ N(μ_G, σ_G²) independently, drawn from `ctx.rng`
 * (Box–Muller). Defaults μ_G = 0, σ_G = 1 (ByzFL). The length is that of `own`, the honest vectors, or `ctx.d`.
 */
import { OptionReader } from './options.ts';
import { dimension, outputBuffer } from './stats.ts';
import type { Attack, AttackContext, AttackFactory } from './types.ts';

export interface GaussianOptions {
  /** Mean μ_G (default 0). */
  mu?: number;
  /** Standard deviation σ_G ≥ 0 (default 1). */
  sigma?: number;
}

export const createGaussian: AttackFactory = (options) => {
  const o = new OptionReader('gaussian', options, ['mu', 'sigma']);
  const mu = o.number('mu', 0);
  const sigma = o.number('sigma', 1, { min: 0 });
  return {
    name: 'gaussian',
    craft(ctx: AttackContext, out?: Float32Array): Float32Array {
      const x = outputBuffer(out, dimension(ctx, 'gaussian'));
      const rng = ctx.rng;
      for (let k = 0; k < x.length; k++) x[k] = mu + sigma * rng.normal();
      return x;
    },
  } satisfies Attack;
};
