import { expect } from 'chai';
import { layerView, layoutFingerprint } from '../../../src/core/layout/parameterLayout.ts';
import { CNN_PARAMETER_COUNT } from '../../../src/models/cnn.ts';
import { createModel, modelLayout } from '../../../src/models/registry.ts';
import type { ModelSpec } from '../../../src/models/types.ts';

describe('models: layouts and initialisation', () => {
  it('cnn has the 431,080 parameters of ByzFL cnn_mnist, in the documented order', () => {
    const layout = modelLayout({ kind: 'cnn' });
    expect(layout.totalSize).to.equal(431_080).and.equal(CNN_PARAMETER_COUNT);
    expect(layout.layers.map((l) => [l.name, l.shape])).to.deep.equal([
      ['conv1.weight', [5, 5, 1, 20]],
      ['conv1.bias', [20]],
      ['conv2.weight', [5, 5, 20, 50]],
      ['conv2.bias', [50]],
      ['fc1.weight', [800, 500]],
      ['fc1.bias', [500]],
      ['fc2.weight', [500, 10]],
      ['fc2.bias', [10]],
    ]);
  });

  it('mlp layouts follow the hidden widths', () => {
    expect(modelLayout({ kind: 'mlp', hidden: [] }).totalSize).to.equal(784 * 10 + 10);
    expect(modelLayout({ kind: 'mlp', hidden: [128] }).totalSize).to.equal(784 * 128 + 128 + 128 * 10 + 10);
    const l = modelLayout({ kind: 'mlp', hidden: [256, 64] });
    expect(l.layers.map((s) => s.name)).to.deep.equal([
      'fc1.weight',
      'fc1.bias',
      'fc2.weight',
      'fc2.bias',
      'fc3.weight',
      'fc3.bias',
    ]);
    expect(l.layers[2].shape).to.deep.equal([256, 64]);
  });

  it('layouts are a pure function of the spec (same fingerprint every time)', () => {
    for (const spec of [{ kind: 'cnn' }, { kind: 'mlp', hidden: [32] }] as ModelSpec[]) {
      expect(layoutFingerprint(modelLayout(spec))).to.equal(layoutFingerprint(modelLayout(spec)));
    }
    expect(layoutFingerprint(modelLayout({ kind: 'mlp', hidden: [32] }))).to.not.equal(
      layoutFingerprint(modelLayout({ kind: 'mlp', hidden: [33] })),
    );
  });

  it('rejects unknown kinds and bad widths', () => {
    expect(() => createModel({ kind: 'rnn' } as unknown as ModelSpec)).to.throw(/unknown model kind 'rnn'/);
    expect(() => createModel({ kind: 'mlp', hidden: [0] })).to.throw(/positive integers/);
    expect(() => createModel({ kind: 'mlp', hidden: [1.5] })).to.throw(/positive integers/);
    expect(() => createModel({ kind: 'mlp' } as unknown as ModelSpec)).to.throw(/hidden/);
  });

  it('initialisation is deterministic per seed and differs between seeds', () => {
    const model = createModel({ kind: 'cnn' });
    const a = model.initialParameters(7);
    const b = createModel({ kind: 'cnn' }).initialParameters(7);
    const c = model.initialParameters(8);
    expect(a.length).to.equal(431_080);
    expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).to.equal(true);
    let same = 0;
    for (let i = 0; i < a.length; i++) if (a[i] === c[i]) same++;
    expect(same).to.be.below(10);
  });

  it('uses PyTorch defaults: U(±1/√fan_in) for weights and biases', () => {
    const model = createModel({ kind: 'cnn' });
    const params = model.initialParameters(3);
    const fanIn: Record<string, number> = { conv1: 25, conv2: 500, fc1: 800, fc2: 500 };
    for (const slot of model.layout.layers) {
      const bound = 1 / Math.sqrt(fanIn[slot.name.split('.')[0]]);
      const v = layerView(params, slot);
      let max = 0;
      let sumSq = 0;
      for (const x of v) {
        max = Math.max(max, Math.abs(x));
        sumSq += x * x;
      }
      expect(max, slot.name).to.be.at.most(bound);
      // a uniform on ±b has standard deviation b/√3; loose check (the smallest layer has 10 values)
      const std = Math.sqrt(sumSq / v.length);
      expect(std / (bound / Math.sqrt(3)), slot.name).to.be.within(
        v.length >= 500 ? 0.9 : 0.5,
        v.length >= 500 ? 1.1 : 1.5,
      );
    }
  });
});
