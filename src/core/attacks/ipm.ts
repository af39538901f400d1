/**
 * Inner-product manipulation, "Fall of Empires" (Xie et al., UAI 2019): x = −ε·μ, μ the honest mean.
 * Default ε = 2.0 (ByzFL `InnerProductManipulation(tau=2.0)`); the FA repo's `empire` uses ε = 0.1. A small ε
 * keeps ⟨aggregate, μ⟩ < 0 against median/Krum-type rules; a large one against the mean.
 * Option `epsilon` (alias `tau`, ByzFL's name).
 */
import { OptionReader } from './options.ts';
import { outputBuffer, requireHonest, scaledMeanInto } from './stats.ts';
import { AttackError, type Attack, type AttackContext, type AttackFactory } from './types.ts';

export interface IpmOptions {
  /** ε (default 2.0). */
  epsilon?: number;
  /** Alias of epsilon (ByzFL's name). */
  tau?: number;
}

export const createIpm: AttackFactory = (options) => {
  const o = new OptionReader('ipm', options, ['epsilon', 'tau']);
  if (o.has('epsilon') && o.has('tau'))
    throw new AttackError("ipm: give 'epsilon' or its alias 'tau', not both");
  const epsilon = o.optionalNumber('epsilon') ?? o.number('tau', 2.0);
  return {
    name: 'ipm',
    craft(ctx: AttackContext, out?: Float32Array): Float32Array {
      const h = requireHonest(ctx, 'ipm');
      return scaledMeanInto(h, -epsilon, outputBuffer(out, h[0].length));
    },
  } satisfies Attack;
};
