import { expect } from 'chai';
import { fromNamedTensors, l2Norm, toNamedTensors } from '../../../src/core/layout/namedTensors.ts';
import { buildLayout } from '../../../src/core/layout/parameterLayout.ts';

describe('core: named tensors ↔ the flat parameter vector', () => {
  const layout = buildLayout([
    { name: 'a.weight', shape: [2, 3] },
    { name: 'a.bias', shape: [3] },
    { name: 'b', shape: [1, 2, 2] },
  ]);
  const flat = Float32Array.from({ length: layout.totalSize }, (_, i) => i - 4.5);

  it('splits by the layout (views, no copy) and joins back exactly, ignoring tensors the layout lacks', () => {
    const named = toNamedTensors(flat, layout);
    expect([...named].map(([n, t]) => [n, t.shape, Array.from(t.data)])).to.deep.equal([
      ['a.weight', [2, 3], [-4.5, -3.5, -2.5, -1.5, -0.5, 0.5]],
      ['a.bias', [3], [1.5, 2.5, 3.5]],
      ['b', [1, 2, 2], [4.5, 5.5, 6.5, 7.5]],
    ]);
    expect(named.get('a.bias')!.data.buffer).to.equal(flat.buffer);
    named.set('optim.momentum', { data: new Float32Array(3), shape: [3] });
    expect(Array.from(fromNamedTensors(named, layout))).to.deep.equal(Array.from(flat));
  });

  it('names what is missing or mis-shaped', () => {
    const named = toNamedTensors(flat, layout);
    named.delete('a.bias');
    named.delete('b');
    expect(() => fromNamedTensors(named, layout)).to.throw(
      "missing tensors 'a.bias', 'b' of the model's layout",
    );
    const reshaped = toNamedTensors(flat, layout);
    reshaped.set('a.weight', { data: reshaped.get('a.weight')!.data, shape: [3, 2] });
    expect(() => fromNamedTensors(reshaped, layout)).to.throw(
      "tensor 'a.weight' has shape [3, 2], the model's layout needs [2, 3]",
    );
    expect(() => toNamedTensors(new Float32Array(3), layout)).to.throw('3 parameters for a layout of 13');
  });

  it('l2Norm', () => {
    expect(l2Norm(Float32Array.of(3, 4))).to.equal(5);
  });
});
