/**
 * Sign flipping.
 * - `mode: 'mean'` (default; ByzFL `SignFlipping`, Allen-Zhu et al. 2020): x = −μ, μ = (1/|H|) Σ_{h∈H} h.
 * - `mode: 'own'` (classic per-worker variant): x = −g, g the attacker's own honest gradient (`ctx.own`).
 */
import { OptionReader } from './options.ts';
import { outputBuffer, requireHonest, requireOwn, scaleInto, scaledMeanInto } from './stats.ts';
import type { Attack, AttackContext, AttackFactory } from './types.ts';

export type SignFlipMode = 'mean' | 'own';

export interface SignFlipOptions {
  /** 'mean' (default) → −μ; 'own' → −(own gradient). */
  mode?: SignFlipMode;
}

export const createSignFlip: AttackFactory = (options) => {
  const o = new OptionReader('signflip', options, ['mode']);
  const mode = o.oneOf<SignFlipMode>('mode', ['mean', 'own'], 'mean');
  return {
    name: 'signflip',
    craft(ctx: AttackContext, out?: Float32Array): Float32Array {
      if (mode === 'own') {
        const g = requireOwn(ctx, 'signflip');
        return scaleInto(g, -1, outputBuffer(out, g.length));
      }
      const h = requireHonest(ctx, 'signflip');
      return scaledMeanInto(h, -1, outputBuffer(out, h[0].length));
    },
  } satisfies Attack;
};
