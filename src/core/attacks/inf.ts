/**
 * Infinity (ByzFL `Inf`): x = (+∞, …, +∞). Options: `negative` (default false) → −∞; `fraction` ∈ (0, 1]
 * (default 1) → only that fraction of the coordinates, chosen at random, the rest honest (see nonFinite.ts).
 */
import { poisonInto } from './nonFinite.ts';
import { OptionReader } from './options.ts';
import type { Attack, AttackContext, AttackFactory } from './types.ts';

export interface InfOptions {
  negative?: boolean;
  fraction?: number;
}

export const createInf: AttackFactory = (options) => {
  const o = new OptionReader('inf', options, ['negative', 'fraction']);
  const value = o.boolean('negative', false) ? -Infinity : Infinity;
  const fraction = o.number('fraction', 1, { above: 0, max: 1 });
  return {
    name: 'inf',
    craft(ctx: AttackContext, out?: Float32Array): Float32Array {
      return poisonInto(ctx, 'inf', value, fraction, out);
    },
  } satisfies Attack;
};
