/**
 * simulate()'s `initialParams`: the run starts from the given vector (how bench:students starts a recursive
 * student converted from its teacher), not from the model's seeded initialisation; a vector of the wrong size is
 * refused.
 */
import { expect } from 'chai';
import { validateJobSpec } from '../../src/config/jobSpec.ts';
import { loadFashionMnist, type FashionMnist } from '../../src/data/fashionMnist.ts';
import { createModel } from '../../src/models/registry.ts';
import { simulate } from '../../src/simulation/simulate.ts';

const spec = validateJobSpec({
  name: 'initial-params',
  seed: 3,
  model: { kind: 'mlp', hidden: [8] },
  data: { batchSize: 8, maxTrain: 200, maxTest: 50 },
  // A step too small to move any coordinate by 1e-6: the result is the start.
  optimizer: { kind: 'sgd', lr: 1e-9 },
  rounds: 1,
  workers: { min: 2, max: 2 },
  aggregation: { rule: 'mean', f: 0 },
  evaluation: { every: 1 },
});

describe('integration: simulate from given initial parameters', function () {
  this.timeout(60_000);
  let data: FashionMnist;
  before(async () => {
    data = await loadFashionMnist({ maxTrain: 200, maxTest: 50 });
  });

  it('starts from initialParams instead of the seeded initialisation', async () => {
    const seeded = createModel(spec.model).initialParameters(spec.seed);
    const start = seeded.map((v, i) => v + 0.5 * Math.sin(i));
    const result = await simulate(spec, { backend: 'wasm', data, initialParams: start });
    let fromStart = 0;
    let fromSeeded = 0;
    for (let i = 0; i < start.length; i++) {
      fromStart = Math.max(fromStart, Math.abs(result.params[i] - start[i]));
      fromSeeded = Math.max(fromSeeded, Math.abs(result.params[i] - seeded[i]));
    }
    expect(fromStart).to.be.below(1e-6);
    expect(fromSeeded).to.be.above(0.4);
  });

  it('refuses initialParams of the wrong size', async () => {
    let error: unknown;
    try {
      await simulate(spec, { backend: 'wasm', data, initialParams: new Float32Array(3) });
    } catch (e) {
      error = e;
    }
    expect(String(error)).to.match(/initialParams has 3 numbers/);
  });
});
