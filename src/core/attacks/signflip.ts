/**
 * Sign flipping.
 * - `mode: 'mean'` (default; ByzFL `SignFlipping`, Allen-Zhu et al. 2020): x = −μ, μ = (1/|H|) Σ_{h∈H} h.
 * - `mode: 'own'` (classic per-worker variant): x = −g, g the attacker's own honest gradient (`ctx.own`).
 * - `scale: k` (default 1) multiplies the flipped vector: x = −k·μ (or −k·g). With k = 1 and f < n/2 the plain
 *   mean still moves along μ (by (n − 2f)/n of it); k > (n − f)/f turns the mean into ascent.
 */
import { OptionReader } from './options.ts';
import { outputBuffer, requireHonest, requireOwn, scaleInto, scaledMeanInto } from './stats.ts';
import type { Attack, AttackContext, AttackFactory } from './types.ts';

export type SignFlipMode = 'mean' | 'own';

export interface SignFlipOptions {
  /** 'mean' (default) → −μ; 'own' → −(own gradient). */
  mode?: SignFlipMode;
  /** Magnitude k of the flipped vector (default 1). */
  scale?: number;
}

export const createSignFlip: AttackFactory = (options) => {
  const o = new OptionReader('signflip', options, ['mode', 'scale']);
  const mode = o.oneOf<SignFlipMode>('mode', ['mean', 'own'], 'mean');
  const scale = o.number('scale', 1);
  return {
    name: 'signflip',
    craft(ctx: AttackContext, out?: Float32Array): Float32Array {
      if (mode === 'own') {
        const g = requireOwn(ctx, 'signflip');
        return scaleInto(g, -scale, outputBuffer(out, g.length));
      }
      const h = requireHonest(ctx, 'signflip');
      return scaledMeanInto(h, -scale, outputBuffer(out, h[0].length));
    },
  } satisfies Attack;
};
