/**
 * Uniform noise (FA repo / Garfield++ `random`, byzWorker.py): every coordinate xₖ ~ U[low, high)
 * independently, drawn from `ctx.rng`. Defaults low = 0, high = 1, i.e. Uniform[0, 1)^d as in the FA repo.
 */
import { OptionReader } from './options.ts';
import { dimension, outputBuffer } from './stats.ts';
import { AttackError, type Attack, type AttackContext, type AttackFactory } from './types.ts';

export interface UniformOptions {
  /** Lower bound (default 0). */
  low?: number;
  /** Upper bound, > low (default 1). */
  high?: number;
}

export const createUniform: AttackFactory = (options) => {
  const o = new OptionReader('uniform', options, ['low', 'high']);
  const low = o.number('low', 0);
  const high = o.number('high', 1);
  if (!(high > low)) throw new AttackError(`uniform: needs high > low (got low ${low}, high ${high})`);
  const width = high - low;
  const top = float32Below(high);
  return {
    name: 'uniform',
    craft(ctx: AttackContext, out?: Float32Array): Float32Array {
      const x = outputBuffer(out, dimension(ctx, 'uniform'));
      const rng = ctx.rng;
      for (let k = 0; k < x.length; k++) {
        const v = Math.fround(low + width * rng.next());
        // Rounding to float32 can reach `high` (u within 2⁻²⁵ of 1); keep the interval half-open.
        x[k] = v < high ? v : top;
      }
      return x;
    },
  } satisfies Attack;
};

/** The largest float32 strictly below `x`. */
function float32Below(x: number): number {
  const f = new Float32Array(1);
  const bits = new Int32Array(f.buffer);
  f[0] = x;
  if (f[0] >= x) {
    if (f[0] === 0) return -1.401298464324817e-45;
    bits[0] += f[0] > 0 ? -1 : 1;
  }
  return f[0];
}
