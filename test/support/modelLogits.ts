/** Model forward passes for the model tests: a model's logits from flat parameters, and the largest difference. */
import { expect } from 'chai';
import { layerView } from '../../src/core/layout/parameterLayout.ts';
import { createOps } from '../../src/models/ops.ts';
import { createModel } from '../../src/models/registry.ts';
import { tf } from '../../src/models/tf.ts';
import type { TransformerSpec } from '../../src/models/types.ts';

/** The model's output for n sequences of token ids, with the builtin ops. */
export function logits(
  spec: TransformerSpec,
  params: Float32Array,
  ids: Float32Array,
  n: number,
): Float32Array {
  const model = createModel(spec);
  const ops = createOps({ conv: 'builtin', matMul: 'builtin' });
  return tf.tidy(() => {
    const p = model.layout.layers.map((slot) => tf.tensor(layerView(params, slot), slot.shape));
    return model.apply(p, model.input(ids, n), ops).dataSync() as Float32Array;
  });
}

/** max |a − b| over arrays of the same length. */
export function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).to.equal(b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}
