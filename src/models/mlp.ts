/**
 * Multi-layer perceptron: 784 → hidden[0] → … → hidden[k−1] → 10, ReLU between layers.
 *
 * Layout (PyTorch-style names, tfjs shapes): fc1.weight [784, h0], fc1.bias [h0], fc2.weight [h0, h1], …;
 * dense weights are [in, out] (PyTorch's Linear.weight is [out, in]: transpose when converting).
 */
import { buildLayout, type LayerSpec } from '../core/layout/parameterLayout.ts';
import { pytorchDefaultInit } from './init.ts';
import { IMAGE_IO, imageInput, type Model } from './model.ts';
import { IMAGE_SIZE, NUM_CLASSES } from './model.ts';
import type { ModelOps } from './ops.ts';
import { tf } from './tf.ts';

export function createMlp(hidden: readonly number[]): Model {
  for (const h of hidden) {
    if (!Number.isInteger(h) || h <= 0)
      throw new Error(`mlp: hidden sizes must be positive integers, got ${h}`);
  }
  const widths = [IMAGE_SIZE, ...hidden, NUM_CLASSES];
  const specs: LayerSpec[] = [];
  const fanIn = new Map<string, number>();
  for (let i = 0; i + 1 < widths.length; i++) {
    const name = `fc${i + 1}`;
    specs.push({ name: `${name}.weight`, shape: [widths[i], widths[i + 1]] });
    specs.push({ name: `${name}.bias`, shape: [widths[i + 1]] });
    fanIn.set(`${name}.weight`, widths[i]);
    fanIn.set(`${name}.bias`, widths[i]);
  }
  const layout = buildLayout(specs);
  const numDense = widths.length - 1;
  return {
    spec: { kind: 'mlp', hidden: [...hidden] },
    layout,
    io: IMAGE_IO,
    input: imageInput,
    initialParameters: (seed) => pytorchDefaultInit(layout, seed, (name) => fanIn.get(name) ?? 0),
    apply(params: readonly tf.Tensor[], input: tf.Tensor, ops: ModelOps): tf.Tensor2D {
      const x = input as tf.Tensor4D;
      let h: tf.Tensor2D = tf.reshape(x, [x.shape[0], IMAGE_SIZE]);
      for (let i = 0; i < numDense; i++) {
        const w = params[2 * i] as tf.Tensor2D;
        const b = params[2 * i + 1] as tf.Tensor1D;
        h = tf.add(ops.matMul(h, w, i === 0), b);
        if (i + 1 < numDense) h = tf.relu(h);
      }
      return h;
    },
  };
}
