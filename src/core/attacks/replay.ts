/**
 * Replay (stateful): send a vector stored in an earlier round instead of the current one. Each call stores
 * the attacker's current honest vector (own gradient, else μ) and returns the one stored `lag` calls earlier
 * (call `craft` once per round); until `lag` rounds are stored it sends the current vector.
 * `freeze: true`: store only the first vector and replay it forever.
 * Storage: lag + 1 preallocated copies of length d. `reset()` forgets them.
 */
import { OptionReader } from './options.ts';
import { copyInto, dimension, honestBaseInto, outputBuffer } from './stats.ts';
import { AttackError, type Attack, type AttackContext, type AttackFactory } from './types.ts';

export interface ReplayOptions {
  /** How many rounds back (integer ≥ 1, default 1). */
  lag?: number;
  /** Replay the very first stored vector forever (default false). */
  freeze?: boolean;
}

export const createReplay: AttackFactory = (options) => {
  const o = new OptionReader('replay', options, ['lag', 'freeze']);
  const lag = o.number('lag', 1, { integer: true, min: 1 });
  const freeze = o.boolean('freeze', false);
  const size = freeze ? 1 : lag + 1;
  let ring: Float32Array[] = [];
  let calls = 0;
  return {
    name: 'replay',
    craft(ctx: AttackContext, out?: Float32Array): Float32Array {
      const d = dimension(ctx, 'replay');
      if (ring.length === 0) {
        ring = Array.from({ length: size }, () => new Float32Array(d));
      } else if (ring[0].length !== d) {
        throw new AttackError(`replay: dimension changed from ${ring[0].length} to ${d}; call reset()`);
      }
      const x = outputBuffer(out, d);
      if (freeze) {
        if (calls === 0) honestBaseInto(ctx, 'replay', ring[0]);
        calls++;
        return copyInto(ring[0], x);
      }
      const slot = calls % size;
      honestBaseInto(ctx, 'replay', ring[slot]);
      const src = calls >= lag ? ring[(calls - lag) % size] : ring[slot];
      calls++;
      return copyInto(src, x);
    },
    reset(): void {
      ring = [];
      calls = 0;
    },
  } satisfies Attack;
};
