/**
 * NaN: x = (NaN, …, NaN). Option `fraction` ∈ (0, 1] (default 1) → only that fraction of the coordinates,
 * chosen at random, the rest honest (see nonFinite.ts).
 */
import { poisonInto } from './nonFinite.ts';
import { OptionReader } from './options.ts';
import type { Attack, AttackContext, AttackFactory } from './types.ts';

export interface NanOptions {
  fraction?: number;
}

export const createNan: AttackFactory = (options) => {
  const o = new OptionReader('nan', options, ['fraction']);
  const fraction = o.number('fraction', 1, { above: 0, max: 1 });
  return {
    name: 'nan',
    craft(ctx: AttackContext, out?: Float32Array): Float32Array {
      return poisonInto(ctx, 'nan', NaN, fraction, out);
    },
  } satisfies Attack;
};
