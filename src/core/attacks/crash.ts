/**
 * Crash (runtime behaviour, no vector): from round `fromRound` (default 0) on the worker stops sending. The
 * runtime checks `behaviour === 'crash' && round >= fromRound` and must not call `craft` then (it throws).
 * Before that round `craft` returns the attacker's honest vector (own gradient, else μ).
 */
import { OptionReader } from './options.ts';
import { dimension, honestBaseInto, outputBuffer } from './stats.ts';
import { AttackError, type Attack, type AttackContext, type AttackFactory } from './types.ts';

export interface CrashOptions {
  fromRound?: number;
}

export const createCrash: AttackFactory = (options) => {
  const o = new OptionReader('crash', options, ['fromRound']);
  const fromRound = o.number('fromRound', 0, { integer: true, min: 0 });
  return {
    name: 'crash',
    behaviour: 'crash',
    fromRound,
    craft(ctx: AttackContext, out?: Float32Array): Float32Array {
      if (ctx.round >= fromRound) {
        throw new AttackError(
          `crash: the worker is crashed from round ${fromRound} on; there is no vector to send`,
        );
      }
      return honestBaseInto(ctx, 'crash', outputBuffer(out, dimension(ctx, 'crash')));
    },
  } satisfies Attack;
};
