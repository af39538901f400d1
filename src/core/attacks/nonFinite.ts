/**
 * Shared body of the `inf` and `nan` attacks: set a fraction of the coordinates to a non-finite value.
 * fraction = 1 (default): every coordinate. fraction < 1: each coordinate independently with probability
 * `fraction` (at least one, drawn from `ctx.rng`); the others keep the attacker's honest vector (own gradient,
 * else μ).
 */
import { dimension, honestBaseInto, outputBuffer } from './stats.ts';
import type { AttackContext } from './types.ts';

export function poisonInto(
  ctx: AttackContext,
  attack: string,
  value: number,
  fraction: number,
  out: Float32Array | undefined,
): Float32Array {
  const d = dimension(ctx, attack);
  const x = outputBuffer(out, d);
  if (fraction >= 1 || d === 0) return x.fill(value);
  honestBaseInto(ctx, attack, x);
  const rng = ctx.rng;
  let hit = 0;
  for (let k = 0; k < d; k++) {
    if (rng.next() < fraction) {
      x[k] = value;
      hit++;
    }
  }
  if (hit === 0) x[rng.int(d)] = value;
  return x;
}
