/**
 * PyTorch-default initialisation, computed in JS from a seed so it is identical on every backend.
 *
 * nn.Linear / nn.Conv2d initialise the weight with kaiming_uniform_(a = √5): gain = √(2 / (1 + a²)) = √(1/3),
 * bound = gain · √(3 / fan_in) = 1 / √fan_in; and the bias uniformly in ±1 / √fan_in. So both are
 * U(−1/√fan_in, 1/√fan_in), with fan_in = in_features (dense) or in_channels · kh · kw (conv).
 */
import { deriveSeed, Rng } from '../core/random.ts';
import { layerView, type ParameterLayout } from '../core/layout/parameterLayout.ts';

/** Salt separating the initialisation streams from other uses of the same job seed. */
const INIT_STREAM = 0x1a17;

/**
 * Fill a flat parameter vector: layer i (layout order) draws from its own stream Rng(deriveSeed(seed, INIT, i)),
 * so adding a layer at the end does not change the others. `fanIn(name)` gives each layer's fan-in.
 */
export function pytorchDefaultInit(
  layout: ParameterLayout,
  seed: number,
  fanIn: (layerName: string) => number,
): Float32Array {
  const params = new Float32Array(layout.totalSize);
  layout.layers.forEach((slot, i) => {
    const fan = fanIn(slot.name);
    if (!(fan > 0)) throw new Error(`init: layer '${slot.name}' has no positive fan-in`);
    const bound = 1 / Math.sqrt(fan);
    const rng = new Rng(deriveSeed(seed, INIT_STREAM, i));
    const view = layerView(params, slot);
    for (let k = 0; k < view.length; k++) view[k] = (2 * rng.next() - 1) * bound;
  });
  return params;
}
