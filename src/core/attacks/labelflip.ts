/**
 * Label flipping (data-side): the Byzantine worker trains on its honest data with every label y replaced by
 * C − 1 − y (C classes; 9 − y for MNIST / Fashion-MNIST) and sends the gradient it computed.
 *
 * - A real worker applies `transformLabels` (= `flipLabels(labels, classes)`) to each batch, computes its
 *   gradient on the flipped batch and passes it as `ctx.own`; `craft` returns (a copy of) that gradient.
 * - Simulation, as ByzFL (`client.py` computes flipped-label gradients, `LabelFlipping` averages them): pass
 *   the honest workers' flipped-label gradients as `ctx.flippedHonest` and `craft` returns their mean,
 *   x = (1/|H|) Σ_{h∈H} ∇ℓ(h's batch with flipped labels). `flippedHonest` takes precedence over `own`.
 */
import { OptionReader } from './options.ts';
import { commonLength, copyInto, meanInto, outputBuffer } from './stats.ts';
import { AttackError, type Attack, type AttackContext, type AttackFactory } from './types.ts';

/** y → C − 1 − y for every label (pure: returns a new array). Throws on a label ≥ C. */
export function flipLabels(labels: Uint8Array, classes: number): Uint8Array {
  if (!Number.isInteger(classes) || classes < 1 || classes > 256) {
    throw new AttackError(`flipLabels: classes must be an integer in [1, 256] (got ${classes})`);
  }
  const out = new Uint8Array(labels.length);
  const top = classes - 1;
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i];
    if (y > top) throw new AttackError(`flipLabels: label ${y} at index ${i} is not < ${classes}`);
    out[i] = top - y;
  }
  return out;
}

export interface LabelFlipOptions {
  /** Number of classes C (default 10). */
  classes?: number;
}

export const createLabelFlip: AttackFactory = (options) => {
  const o = new OptionReader('labelflip', options, ['classes']);
  const classes = o.number('classes', 10, { integer: true, min: 1, max: 256 });
  return {
    name: 'labelflip',
    dataSide: true,
    transformLabels(labels: Uint8Array): Uint8Array {
      return flipLabels(labels, classes);
    },
    craft(ctx: AttackContext, out?: Float32Array): Float32Array {
      const flipped = ctx.flippedHonest;
      if (flipped !== undefined && flipped.length > 0) {
        const d = commonLength(flipped, 'labelflip (ctx.flippedHonest)');
        return meanInto(flipped, outputBuffer(out, d));
      }
      if (ctx.own !== undefined) return copyInto(ctx.own, outputBuffer(out, ctx.own.length));
      throw new AttackError(
        'labelflip: needs ctx.own (gradient on flipped labels) or ctx.flippedHonest (simulation)',
      );
    },
  } satisfies Attack;
};
