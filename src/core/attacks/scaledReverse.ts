/**
 * Scaled reverse (FA repo / Garfield++ `reverse`): x = −k·g.
 * g is the attacker's own gradient (`source: 'own'`), the honest mean μ (`'mean'`), or, by default (`'auto'`),
 * the own gradient when `ctx.own` is given and μ otherwise. Default k = 10 (byzWorker.py `reverse`).
 */
import { OptionReader } from './options.ts';
import { outputBuffer, requireHonest, requireOwn, scaleInto, scaledMeanInto } from './stats.ts';
import type { Attack, AttackContext, AttackFactory } from './types.ts';

export type ReverseSource = 'auto' | 'own' | 'mean';

export interface ScaledReverseOptions {
  /** Scale factor k (default 10). */
  k?: number;
  /** Which gradient to reverse (default 'auto'). */
  source?: ReverseSource;
}

export const createScaledReverse: AttackFactory = (options) => {
  const o = new OptionReader('scaledReverse', options, ['k', 'source']);
  const k = o.number('k', 10);
  const source = o.oneOf<ReverseSource>('source', ['auto', 'own', 'mean'], 'auto');
  return {
    name: 'scaledReverse',
    craft(ctx: AttackContext, out?: Float32Array): Float32Array {
      if (source === 'own' || (source === 'auto' && ctx.own !== undefined)) {
        const g = requireOwn(ctx, 'scaledReverse');
        return scaleInto(g, -k, outputBuffer(out, g.length));
      }
      const h = requireHonest(ctx, 'scaledReverse');
      return scaledMeanInto(h, -k, outputBuffer(out, h[0].length));
    },
  } satisfies Attack;
};
