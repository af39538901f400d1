import assert from 'node:assert/strict';
import { validateJobSpec } from '../../../src/config/jobSpec.ts';
import { ParameterFeed } from '../../../src/coordinator/parameterFeed.ts';
import { JobRuntime, type ModelHost } from '../../../src/coordinator/jobRuntime.ts';
import { createAggregationPipeline } from '../../../src/core/aggregation/pipeline.ts';
import { buildLayout } from '../../../src/core/layout/parameterLayout.ts';
import { createOptimizer } from '../../../src/core/optim/index.ts';
import { RoundStepper } from '../../../src/core/roundStep.ts';
import { packageDefinition } from '../../../src/transport/protocol.ts';

type Decoded = { version: number; offset: number; chunkIndex: number; chunkCount: number; data: Buffer };
const method = (
  packageDefinition['phalanx.v1.Coordinator'] as Record<string, { responseDeserialize(b: Buffer): unknown }>
).PullParameters;
const decode = (b: Buffer) => method.responseDeserialize(b) as Decoded;

/** A model host whose evaluation stays pending until released (the window between a round's step and its end). */
function heldModel(size: number) {
  let release: () => void = () => {};
  const model: ModelHost = {
    layout: buildLayout([
      { name: 'w', shape: [size - 3] },
      { name: 'b', shape: [3] },
    ]),
    evaluate: () =>
      new Promise((resolve) => {
        release = () => resolve({ accuracy: 0.5, loss: 1 });
      }),
  };
  return { model, release: () => release() };
}

const floats = (b: Buffer) => new Float32Array(Uint8Array.from(b).buffer);
const tick = () => new Promise((r) => setImmediate(r));

describe('ParameterFeed', () => {
  const size = 300_000; // two fp32 chunks of ≤ 1 MiB
  function runtime() {
    const spec = validateJobSpec({
      name: 'feed-test',
      model: { kind: 'mlp', hidden: [4] },
      rounds: 5,
      workers: { min: 1, max: 1 },
      aggregation: { rule: 'mean', f: 0 },
      optimizer: { kind: 'sgd', lr: 1 },
      evaluation: { every: 1 },
      checkpoint: { every: 0 },
    });
    const held = heldModel(size);
    const params = new Float32Array(size).fill(1);
    const stepper = new RoundStepper(
      createAggregationPipeline(spec.aggregation),
      createOptimizer(spec.optimizer, size),
    );
    const rt = new JobRuntime(
      'job-1',
      spec,
      held.model,
      params,
      {
        step: async (round, vectors, ids) => stepper.step(round, params, vectors, ids),
        skip: async (round, reason) => stepper.skip(round, reason),
      },
      {
        onRound: async () => {},
        onCheckpoint: async () => {},
        onComplete: async () => {},
        onError: () => {},
        log: () => {},
      },
      0,
    );
    rt.start();
    rt.join('w0', 'worker-0', '');
    return { rt, held, params };
  }

  it('serialises the parameters into ordered chunks that decode to the same values, once per version', () => {
    const { rt } = runtime();
    const feed = new ParameterFeed();
    const a = feed.stream(rt, 'fp32');
    assert.equal(a.messages.length, 2);
    assert.strictEqual(feed.stream(rt, 'fp32'), a, 'same version: the same serialised messages');
    const chunks = a.messages.map(decode);
    assert.deepEqual(
      chunks.map((c) => [c.chunkIndex, c.chunkCount, c.offset, c.version]),
      [
        [0, 2, 0, 0],
        [1, 2, 262_144, 0],
      ],
    );
    const values = floats(Buffer.concat(chunks.map((c) => c.data)));
    assert.equal(values.length, size);
    assert.ok(values.every((v) => v === 1));
    rt.cancel();
  });

  it("publishes a closing round's parameters under the new version before its report is persisted", async () => {
    const { rt, held, params } = runtime();
    const feed = new ParameterFeed();
    assert.equal(feed.stream(rt, 'fp32').version, 0);
    const g = new Float32Array(size).fill(0.25);
    assert.equal(rt.commit('w0', 0, g, 0.1, size * 4).status, 'accepted');
    for (let i = 0; i < 5 && params[0] === 1; i++) await tick();
    // The step is applied (lr 1: 1 − 0.25) and evaluation is pending: round 1 is already open for pushes.
    assert.equal(params[0], 0.75);
    assert.equal(rt.round, 1);
    const during = feed.stream(rt, 'fp32');
    assert.equal(during.version, 1);
    assert.equal(floats(decode(during.messages[0]).data)[0], 0.75);
    held.release();
    for (let i = 0; i < 5; i++) await tick();
    assert.equal(rt.round, 1);
    assert.strictEqual(feed.stream(rt, 'fp32'), during, 'no rebuild: the parameters did not change since');
    rt.cancel();
  });

  it('accepts a push for the next round while the previous round persists, and closes it only afterwards', async () => {
    const { rt, held, params } = runtime();
    assert.equal(rt.commit('w0', 0, new Float32Array(size).fill(0.25), 0.1, 0).status, 'accepted');
    for (let i = 0; i < 5 && rt.round === 0; i++) await tick();
    assert.equal(rt.round, 1, "round 1 opens right after round 0's step");
    // Round 0's evaluation (and so its report) is still pending: the push for round 1 is not LATE.
    const outcome = rt.commit('w0', 1, new Float32Array(size).fill(0.25), 0.1, 0);
    assert.deepEqual(outcome, { status: 'accepted', currentRound: 1 });
    for (let i = 0; i < 5; i++) await tick();
    assert.equal(params[0], 0.75, 'round 1 must not aggregate before round 0 is persisted');
    held.release();
    for (let i = 0; i < 10 && params[0] === 0.75; i++) await tick();
    assert.equal(params[0], 0.5, 'round 1 closes once round 0 is persisted');
    rt.cancel();
  });
});
