/**
 * `cnn_mnist` of ByzFL (byzfl/fed_framework/models.py), the 431,080-parameter CNN of the robust-aggregation
 * literature:
 *   conv 5×5, 1→20, ReLU, maxpool 2×2 → [12,12,20]
 *   conv 5×5, 20→50, ReLU, maxpool 2×2 → [4,4,50] → flatten (800)
 *   dense 800→500, ReLU; dense 500→10 (logits).
 *
 * Layout: conv1.weight [5,5,1,20], conv1.bias [20], conv2.weight [5,5,20,50], conv2.bias [50],
 * fc1.weight [800,500], fc1.bias [500], fc2.weight [500,10], fc2.bias [10] = 431,080 floats.
 * Convolution filters are tfjs HWIO ([kh,kw,in,out]; PyTorch stores [out,in,kh,kw]); activations are NHWC,
 * so the flatten before fc1 is in (h, w, c) order (PyTorch's is (c, h, w)): a PyTorch checkpoint's fc1
 * rows must be permuted accordingly when converting.
 */
import { buildLayout } from '../core/layout/parameterLayout.ts';
import { pytorchDefaultInit } from './init.ts';
import { IMAGE_IO, imageInput, type Model } from './model.ts';
import { IMAGE_SIDE } from './model.ts';
import type { ModelOps } from './ops.ts';
import { tf } from './tf.ts';

export const CNN_PARAMETER_COUNT = 431_080;

const LAYERS = [
  { name: 'conv1.weight', shape: [5, 5, 1, 20], fanIn: 1 * 5 * 5 },
  { name: 'conv1.bias', shape: [20], fanIn: 1 * 5 * 5 },
  { name: 'conv2.weight', shape: [5, 5, 20, 50], fanIn: 20 * 5 * 5 },
  { name: 'conv2.bias', shape: [50], fanIn: 20 * 5 * 5 },
  { name: 'fc1.weight', shape: [800, 500], fanIn: 800 },
  { name: 'fc1.bias', shape: [500], fanIn: 800 },
  { name: 'fc2.weight', shape: [500, 10], fanIn: 500 },
  { name: 'fc2.bias', shape: [10], fanIn: 500 },
];

export function createCnn(): Model {
  const layout = buildLayout(LAYERS.map(({ name, shape }) => ({ name, shape })));
  const fanIn = new Map(LAYERS.map((l) => [l.name, l.fanIn]));
  return {
    spec: { kind: 'cnn' },
    layout,
    io: IMAGE_IO,
    input: imageInput,
    initialParameters: (seed) => pytorchDefaultInit(layout, seed, (name) => fanIn.get(name) ?? 0),
    apply(params: readonly tf.Tensor[], input: tf.Tensor, ops: ModelOps): tf.Tensor2D {
      const x = input as tf.Tensor4D;
      const [w1, b1, w2, b2, w3, b3, w4, b4] = params;
      if (x.shape[1] !== IMAGE_SIDE || x.shape[2] !== IMAGE_SIDE || x.shape[3] !== 1) {
        throw new Error(`cnn: expected input [N,28,28,1], got [${x.shape.join(',')}]`);
      }
      let h: tf.Tensor4D = tf.relu(tf.add<tf.Tensor4D>(ops.conv2d(x, w1 as tf.Tensor4D, true), b1));
      h = tf.maxPool(h, 2, 2, 'valid');
      h = tf.relu(tf.add<tf.Tensor4D>(ops.conv2d(h, w2 as tf.Tensor4D, false), b2));
      h = tf.maxPool(h, 2, 2, 'valid');
      const flat = tf.reshape<tf.Rank.R2>(h, [x.shape[0], 800]);
      const f1 = tf.relu(tf.add<tf.Tensor2D>(ops.matMul(flat, w3 as tf.Tensor2D, false), b3));
      return tf.add<tf.Tensor2D>(ops.matMul(f1, w4 as tf.Tensor2D, false), b4);
    },
  };
}
