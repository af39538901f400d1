/**
 * Mimic (Karimireddy et al., ICLR 2022; ByzFL `Mimic(epsilon=0)`): every attacker sends a copy of honest
 * vector #ε, x = h_ε. Static: the target does not adapt. Returns a copy, never `ctx.honest[ε]` itself.
 */
import { OptionReader } from './options.ts';
import { copyInto, outputBuffer, requireHonest } from './stats.ts';
import { AttackError, type Attack, type AttackContext, type AttackFactory } from './types.ts';

export interface MimicOptions {
  /** Index ε of the honest worker to copy (default 0). */
  epsilon?: number;
}

export const createMimic: AttackFactory = (options) => {
  const o = new OptionReader('mimic', options, ['epsilon']);
  const epsilon = o.number('epsilon', 0, { integer: true, min: 0 });
  return {
    name: 'mimic',
    craft(ctx: AttackContext, out?: Float32Array): Float32Array {
      const h = requireHonest(ctx, 'mimic');
      if (epsilon >= h.length) {
        throw new AttackError(`mimic: epsilon ${epsilon} is out of range (${h.length} honest vectors)`);
      }
      return copyInto(h[epsilon], outputBuffer(out, h[epsilon].length));
    },
  } satisfies Attack;
};
