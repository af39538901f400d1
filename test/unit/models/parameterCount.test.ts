import { expect } from 'chai';
import { modelLayout } from '../../../src/models/registry.ts';
import { parameterCount } from '../../../src/models/parameterCount.ts';
import type { ModelSpec } from '../../../src/models/types.ts';

describe('models: parameterCount (admission, without building the model)', () => {
  it('equals the real layout size for the cnn and for mlps of several shapes', () => {
    const specs: ModelSpec[] = [
      { kind: 'cnn' },
      { kind: 'mlp', hidden: [128] },
      { kind: 'mlp', hidden: [1] },
      { kind: 'mlp', hidden: [256, 64] },
      { kind: 'mlp', hidden: [7, 300, 2, 33] },
    ];
    for (const spec of specs) {
      expect(parameterCount(spec), JSON.stringify(spec)).to.equal(modelLayout(spec).totalSize);
    }
  });

  it('counts an absurd mlp exactly instead of allocating it', () => {
    expect(parameterCount({ kind: 'mlp', hidden: [1e9] })).to.equal(784e9 + 1e9 + 10e9 + 10);
  });
});
