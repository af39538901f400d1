/**
 * `evaluation.split: validation` through `phalanx simulate`: the run trains exactly as with the test split (the
 * held-out examples are out of every shard either way), and its evaluations are the model's accuracy on the
 * validation examples, not on the test set. Also: every simulated worker's shard (the GradientWorker that worker
 * processes use) avoids the validation split, for IID and Dirichlet shards; the coordinator's model host evaluates
 * the same held-out examples, and refuses at start a Dirichlet job whose workers could not each get a batch.
 */
import { expect } from 'chai';
import { validateJobSpec, type JobSpecInput } from '../../src/config/jobSpec.ts';
import { PublicError } from '../../src/coordinator/grpcStatus.ts';
import { buildModelHost } from '../../src/coordinator/modelHost.ts';
import { loadFashionMnist, type FashionMnist } from '../../src/data/fashionMnist.ts';
import { subsetSplit, validationIndices } from '../../src/data/partition.ts';
import { createTrainer } from '../../src/models/trainer.ts';
import type { Trainer } from '../../src/models/types.ts';
import { simulate } from '../../src/simulation/simulate.ts';
import { GradientWorker } from '../../src/worker/gradientWorker.ts';

const base: JobSpecInput = {
  name: 'validation-split',
  seed: 4,
  model: { kind: 'mlp', hidden: [16] },
  data: { batchSize: 16, maxTrain: 2000, maxTest: 500, validation: 0.25 },
  optimizer: { kind: 'sgd', lr: 0.1 },
  rounds: 20,
  workers: { min: 3, max: 3 },
  aggregation: { rule: 'mean', f: 0 },
  evaluation: { every: 10 },
};

describe('integration: the validation split', function () {
  this.timeout(120_000);
  let data: FashionMnist;
  let trainer: Trainer;

  before(async () => {
    data = await loadFashionMnist({ maxTrain: 2000, maxTest: 500 });
    trainer = await createTrainer({ kind: 'mlp', hidden: [16] });
  });
  after(() => trainer.dispose());

  it('simulate with evaluation.split validation trains the same and evaluates the held-out examples', async () => {
    const onTest = await simulate(validateJobSpec(base), { backend: 'wasm', data });
    const onValidation = await simulate(
      validateJobSpec({ ...base, evaluation: { every: 10, split: 'validation' } }),
      { backend: 'wasm', data },
    );
    expect(Array.from(onValidation.params)).to.deep.equal(Array.from(onTest.params));
    const spec = validateJobSpec(base);
    const held = subsetSplit(data.train, validationIndices(data.train.labels, spec.data, spec.seed));
    expect(held.count).to.equal(500);
    // What is evaluated is the delivered model: the iterate average (optimizer.ema) when there is one.
    const expected = await trainer.evaluate(onValidation.averagedParams ?? onValidation.params, held);
    const onTestSet = await trainer.evaluate(onTest.averagedParams ?? onTest.params, data.test);
    expect(onValidation.finalAccuracy).to.equal(expected.accuracy);
    expect(onValidation.finalLoss).to.equal(expected.loss);
    expect(onTest.finalAccuracy).to.equal(onTestSet.accuracy);
    // Different examples, different numbers (the model is far from perfect after 20 rounds).
    expect(onValidation.finalAccuracy).to.not.equal(onTest.finalAccuracy);
  });

  for (const data_ of [{ shardBy: 'worker' }, { shardBy: 'dirichlet', alpha: 0.3 }] as const) {
    it(`no GradientWorker trains on a validation example (${data_.shardBy})`, () => {
      const spec = validateJobSpec({ ...base, data: { ...base.data, ...data_ } });
      const held = new Set(validationIndices(data.train.labels, spec.data, spec.seed));
      let covered = 0;
      for (let rank = 0; rank < 3; rank++) {
        const worker = new GradientWorker(trainer, data.train, spec, rank, 3);
        expect(
          worker.shard.some((i) => held.has(i)),
          `rank ${rank}`,
        ).to.equal(false);
        covered += worker.shard.length;
      }
      expect(covered).to.equal(data.train.count - held.size);
    });
  }

  it("the coordinator's model host evaluates the validation examples when evaluation.split says so", async () => {
    const spec = validateJobSpec({ ...base, evaluation: { split: 'validation' } });
    const host = await buildModelHost(spec);
    try {
      const params = host.initialParameters();
      for (let i = 0; i < params.length; i += 7) params[i] *= 1.5; // not the initial model: a distinct answer
      const held = subsetSplit(data.train, validationIndices(data.train.labels, spec.data, spec.seed));
      const expected = await trainer.evaluate(params, held);
      const got = await host.evaluate(params);
      expect(got.accuracy).to.equal(expected.accuracy);
      expect(got.loss).to.be.closeTo(expected.loss, 1e-6);
      expect(got.accuracy).to.not.equal((await trainer.evaluate(params, data.test)).accuracy);
    } finally {
      await host.dispose();
    }
  });

  it('a Dirichlet job whose training set cannot give every worker a batch is refused at start, saying why', async () => {
    const spec = validateJobSpec({
      data: { maxTrain: 300, shardBy: 'dirichlet', validation: 0.2 },
      workers: { max: 8 },
    });
    let error: unknown;
    await buildModelHost(spec).then(
      (host) => host.dispose(),
      (e: unknown) => (error = e),
    );
    expect(error).to.be.instanceOf(PublicError);
    expect((error as Error).message).to.match(
      /^data: 240 training examples cannot give each of 8 workers a batch of 32 with shardBy: dirichlet; lower data\.batchSize/,
    );
  });
});
