import { expect } from 'chai';
import { fromPyTorch, toPyTorch } from '../../../src/checkpoint/pytorchLayout.ts';
import { toNamedTensors } from '../../../src/core/layout/namedTensors.ts';
import { Rng } from '../../../src/core/random.ts';
import { modelLayout } from '../../../src/models/registry.ts';

describe('checkpoint: PyTorch layouts of the cnn', () => {
  const layout = modelLayout({ kind: 'cnn' });
  const rng = new Rng(7);
  const params = Float32Array.from({ length: layout.totalSize }, () => rng.normal());
  const ours = toNamedTensors(params, layout);
  const torch = toPyTorch('cnn', ours);

  it('has PyTorch shapes: conv OIHW, Linear [out, in]', () => {
    expect([...torch].map(([n, t]) => [n, t.shape])).to.deep.equal([
      ['conv1.weight', [20, 1, 5, 5]],
      ['conv1.bias', [20]],
      ['conv2.weight', [50, 20, 5, 5]],
      ['conv2.bias', [50]],
      ['fc1.weight', [500, 800]],
      ['fc1.bias', [500]],
      ['fc2.weight', [10, 500]],
      ['fc2.bias', [10]],
    ]);
  });

  it('moves each value where PyTorch keeps it', () => {
    // conv2: ours HWIO [kh, kw, i, o] = [5, 5, 20, 50], PyTorch OIHW [50, 20, 5, 5].
    const [y, x, i, o] = [3, 1, 17, 42];
    expect(torch.get('conv2.weight')!.data[((o * 20 + i) * 5 + y) * 5 + x]).to.equal(
      ours.get('conv2.weight')!.data[((y * 5 + x) * 20 + i) * 50 + o],
    );
    // fc1: PyTorch flattens the [c=50, h=4, w=4] map as c·16 + h·4 + w, ours as (h·4 + w)·50 + c.
    const [c, h, w, out] = [33, 2, 3, 411];
    expect(torch.get('fc1.weight')!.data[out * 800 + c * 16 + h * 4 + w]).to.equal(
      ours.get('fc1.weight')!.data[((h * 4 + w) * 50 + c) * 500 + out],
    );
    // fc2: a plain transpose.
    expect(torch.get('fc2.weight')!.data[7 * 500 + 123]).to.equal(ours.get('fc2.weight')!.data[123 * 10 + 7]);
  });

  it('comes back exactly', () => {
    const back = fromPyTorch('cnn', layout, torch);
    for (const [name, t] of ours) {
      expect(back.get(name)!.shape, name).to.deep.equal(t.shape);
      expect(
        Buffer.from(back.get(name)!.data.buffer).equals(Buffer.from(t.data.slice().buffer)),
        name,
      ).to.equal(true);
    }
  });
});
