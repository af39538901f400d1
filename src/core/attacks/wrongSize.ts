/**
 * Wrong size: a vector of length d + delta (default delta = 1) or of a given `length` ≠ d. Its first
 * min(d, length) coordinates are the attacker's honest vector (own gradient, else μ), the rest 0, so only the
 * length is wrong. Meant to exercise the coordinator's input validation.
 */
import { OptionReader } from './options.ts';
import { dimension, honestBaseInto, outputBuffer } from './stats.ts';
import { AttackError, type Attack, type AttackContext, type AttackFactory } from './types.ts';

export interface WrongSizeOptions {
  /** Output length = d + delta, delta ≠ 0 (default 1). Exclusive with length. */
  delta?: number;
  /** Fixed output length (must differ from d). */
  length?: number;
}

export const createWrongSize: AttackFactory = (options) => {
  const o = new OptionReader('wrongSize', options, ['delta', 'length']);
  if (o.has('delta') && o.has('length'))
    throw new AttackError("wrongSize: give 'delta' or 'length', not both");
  const length = o.optionalNumber('length', { integer: true, min: 0 });
  const delta = o.number('delta', 1, { integer: true });
  if (length === undefined && delta === 0) throw new AttackError('wrongSize: delta must be ≠ 0');
  return {
    name: 'wrongSize',
    craft(ctx: AttackContext, out?: Float32Array): Float32Array {
      const d = dimension(ctx, 'wrongSize');
      const len = length ?? d + delta;
      if (len < 0) throw new AttackError(`wrongSize: length d + delta = ${len} is negative`);
      if (len === d) throw new AttackError(`wrongSize: length ${len} equals d`);
      const base = honestBaseInto(ctx, 'wrongSize', new Float32Array(d));
      const x = outputBuffer(out, len);
      const keep = Math.min(d, len);
      x.set(keep === d ? base : base.subarray(0, keep));
      x.fill(0, keep);
      return x;
    },
  } satisfies Attack;
};
