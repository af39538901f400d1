/**
 * Straggle (runtime behaviour): from round `fromRound` (default 0) on, the worker sends its honest vector
 * `delayMs` (default 5000) milliseconds late. `craft` returns that vector (own gradient, else μ); the runtime
 * does the waiting (core code has no timers).
 */
import { OptionReader } from './options.ts';
import { dimension, honestBaseInto, outputBuffer } from './stats.ts';
import type { Attack, AttackContext, AttackFactory } from './types.ts';

export interface StraggleOptions {
  delayMs?: number;
  fromRound?: number;
}

export const createStraggle: AttackFactory = (options) => {
  const o = new OptionReader('straggle', options, ['delayMs', 'fromRound']);
  const delayMs = o.number('delayMs', 5000, { min: 0 });
  const fromRound = o.number('fromRound', 0, { integer: true, min: 0 });
  return {
    name: 'straggle',
    behaviour: 'straggle',
    delayMs,
    fromRound,
    craft(ctx: AttackContext, out?: Float32Array): Float32Array {
      return honestBaseInto(ctx, 'straggle', outputBuffer(out, dimension(ctx, 'straggle')));
    },
  } satisfies Attack;
};
