/**
 * Helpers of the model tests: random parameters, a model's logits from flat parameters, the largest difference,
 * and a check that gradients reach tensors.
 */
import { expect } from 'chai';
import { layerView, type LayerSlot } from '../../src/core/layout/parameterLayout.ts';
import { Rng } from '../../src/core/random.ts';
import { createOps } from '../../src/models/ops.ts';
import { createModel } from '../../src/models/registry.ts';
import { tf } from '../../src/models/tf.ts';
import type { TransformerSpec } from '../../src/models/types.ts';

/** Random parameters with O(1) entries (scale·N(0, 1); LayerNorm gains around 1) so every tensor matters. */
export function randomParams(spec: TransformerSpec, seed: number, scale = 0.3): Float32Array {
  const layout = createModel(spec).layout;
  const rng = new Rng(seed);
  const params = new Float32Array(layout.totalSize);
  for (const slot of layout.layers) {
    const view = layerView(params, slot);
    const gain = slot.name.endsWith('.gain');
    for (let i = 0; i < view.length; i++) view[i] = (gain ? 1 : 0) + scale * rng.normal();
  }
  return params;
}

/** Every slot's gradient is finite and not all zero (the tensor takes part in the loss). */
export function expectLiveGradients(grad: Float32Array, slots: readonly LayerSlot[]): void {
  for (const slot of slots) {
    const g = layerView(grad, slot);
    expect(
      g.every((v) => Number.isFinite(v)),
      slot.name,
    ).to.equal(true);
    expect(
      g.some((v) => v !== 0),
      `${slot.name} has a zero gradient`,
    ).to.equal(true);
  }
}

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
