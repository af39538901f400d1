/**
 * RoundCompute (aggregation + optimizer on a worker thread, shared memory) against the in-process RoundStepper:
 * the same bits, round after round, with stateful rules and optimizers; checkpoints through saveState/loadState;
 * and a round that exceeds its compute deadline is skipped with the reason while the next rounds continue from
 * the last good state.
 */
import { expect } from 'chai';
import { createPerGroupPipeline } from '../../../src/core/aggregation/perGroup.ts';
import { createAggregationPipeline } from '../../../src/core/aggregation/pipeline.ts';
import { createOptimizer, type OptimizerSpec } from '../../../src/core/optim/index.ts';
import { Rng } from '../../../src/core/random.ts';
import { RoundStepper, type RoundStepResult } from '../../../src/core/roundStep.ts';
import {
  RoundCompute,
  formatDeadline,
  sharedFloat32,
  type ComputeConfig,
} from '../../../src/coordinator/roundCompute.ts';
import { ruleDiagnostics } from '../../../src/coordinator/roundReport.ts';

/** n gradients of length d for one round, in shared memory (as the runtime's push buffers are). */
function roundInputs(seed: number, n: number, d: number): { vectors: Float32Array[]; ids: string[] } {
  const rng = new Rng(seed);
  const base = Float32Array.from({ length: d }, () => rng.normal());
  const vectors = Array.from({ length: n }, (_, i) => {
    const v = sharedFloat32(d);
    // the last worker pushes a sign-flipped, scaled gradient so robust rules have something to reject
    const sign = i === n - 1 ? -3 : 1;
    for (let k = 0; k < d; k++) v[k] = sign * base[k] + 0.3 * rng.normal();
    return v;
  });
  return { vectors, ids: vectors.map((_, i) => `worker-${i}`) };
}

function initialParams(d: number): Float32Array {
  const rng = new Rng(99);
  return Float32Array.from({ length: d }, () => 0.1 * rng.normal());
}

function bytes(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** Everything a round report and the next round depend on must match exactly (NaN == NaN). */
function expectSameStep(got: RoundStepResult, want: RoundStepResult, label: string): void {
  expect(got.skipReason, `${label}: skipReason`).to.equal(want.skipReason);
  expect(Object.is(got.updateNorm, want.updateNorm), `${label}: updateNorm`).to.equal(true);
  expect(got.result === undefined, `${label}: result presence`).to.equal(want.result === undefined);
  if (got.result && want.result) {
    expect(bytes(got.result.update).equals(bytes(want.result.update)), `${label}: update bits`).to.equal(
      true,
    );
    expect(JSON.stringify(got.result.workers), `${label}: worker health`).to.equal(
      JSON.stringify(want.result.workers),
    );
    expect(JSON.stringify(got.result.diagnostics), `${label}: diagnostics`).to.equal(
      JSON.stringify(want.result.diagnostics),
    );
  }
}

function reference(config: ComputeConfig, params: Float32Array) {
  const pipeline = config.groups
    ? createPerGroupPipeline(config.aggregation, config.groups)
    : createAggregationPipeline(config.aggregation);
  const optimizer = createOptimizer(config.optimizer, config.size);
  return { pipeline, optimizer, stepper: new RoundStepper(pipeline, optimizer), params: params.slice() };
}

const SGD: OptimizerSpec = { kind: 'sgd', lr: 0.05, momentum: 0.9, weightDecay: 1e-4, nesterov: false };
const ADAM: OptimizerSpec = { kind: 'adam', lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 };

describe('RoundCompute (worker thread, shared memory)', function () {
  this.timeout(60_000);
  const d = 5003;

  const cases: { name: string; config: ComputeConfig }[] = [
    {
      name: 'centered clipping after bucketing, SGD with momentum',
      config: {
        aggregation: { rule: 'centeredClipping', f: 1, pre: ['bucketing'], options: { tau: 1, L: 2 } },
        optimizer: SGD,
        size: d,
      },
    },
    {
      name: 'flag (warm-started subspace), Adam',
      config: { aggregation: { rule: 'flag', f: 1, pre: [], options: {} }, optimizer: ADAM, size: d },
    },
  ];

  for (const { name, config } of cases) {
    it(`${name}: bit-identical to the in-process stepper over 6 rounds, state included`, async () => {
      const p0 = initialParams(d);
      const ref = reference(config, p0);
      const compute = await RoundCompute.start(config, p0, { deadlineMs: 60_000 });
      try {
        for (let round = 0; round < 6; round++) {
          const { vectors, ids } = roundInputs(1000 + round, 6, d);
          const want = ref.stepper.step(round, ref.params, vectors, ids);
          const got = await compute.step(round, vectors, ids);
          expectSameStep(got, want, `round ${round}`);
          expect(bytes(compute.params).equals(bytes(ref.params)), `round ${round}: params bits`).to.equal(
            true,
          );
        }
        const saved = await compute.saveState();
        const want = ref.optimizer.saveState();
        expect(saved.optimizer.scalars).to.deep.equal(want.scalars);
        expect(Object.keys(saved.optimizer.tensors).sort()).to.deep.equal(Object.keys(want.tensors).sort());
        for (const [k, t] of Object.entries(want.tensors)) {
          expect(bytes(saved.optimizer.tensors[k]).equals(bytes(t)), `optimizer tensor ${k}`).to.equal(true);
        }
        expect(saved.aggregation).to.equal(JSON.stringify(ref.pipeline.saveState()));
      } finally {
        await compute.dispose();
      }
    });
  }

  it('resumes from saveState in a new compute exactly where an uninterrupted run is', async () => {
    const config = cases[0].config;
    const p0 = initialParams(d);
    const ref = reference(config, p0);
    const first = await RoundCompute.start(config, p0, { deadlineMs: 60_000 });
    let state;
    let params: Float32Array;
    try {
      for (let round = 0; round < 3; round++) {
        const { vectors, ids } = roundInputs(2000 + round, 5, d);
        ref.stepper.step(round, ref.params, vectors, ids);
        await first.step(round, vectors, ids);
      }
      state = await first.saveState();
      params = first.params.slice();
    } finally {
      await first.dispose();
    }
    const second = await RoundCompute.start(config, params, { deadlineMs: 60_000 }, state);
    try {
      for (let round = 3; round < 6; round++) {
        const { vectors, ids } = roundInputs(2000 + round, 5, d);
        const want = ref.stepper.step(round, ref.params, vectors, ids);
        expectSameStep(await second.step(round, vectors, ids), want, `round ${round}`);
        expect(bytes(second.params).equals(bytes(ref.params)), `round ${round}: params bits`).to.equal(true);
      }
    } finally {
      await second.dispose();
    }
  });

  it('restarts on another rule from given parameters and optimizer state (a divergence-guard rollback)', async () => {
    const config: ComputeConfig = {
      aggregation: { rule: 'mean', f: 0, pre: [], options: {} },
      optimizer: SGD,
      size: d,
    };
    const fallback: ComputeConfig = {
      ...config,
      aggregation: { rule: 'median', f: 1, pre: [], options: {} },
    };
    const compute = await RoundCompute.start(config, initialParams(d), { deadlineMs: 60_000 });
    try {
      // The state to go back to: after two rounds on the mean.
      for (let round = 0; round < 2; round++) {
        const { vectors, ids } = roundInputs(3000 + round, 5, d);
        await compute.step(round, vectors, ids);
      }
      const state = await compute.saveState();
      const back = compute.params.slice();
      for (let round = 2; round < 4; round++) {
        const { vectors, ids } = roundInputs(3000 + round, 5, d);
        await compute.step(round, vectors, ids);
      }
      await compute.restart(fallback, back, { optimizer: state.optimizer });
      expect(bytes(compute.params).equals(bytes(back))).to.equal(true);
      // From there on: exactly the median from that state, in process.
      const ref = reference(fallback, back);
      ref.optimizer.loadState(state.optimizer);
      for (let round = 2; round < 5; round++) {
        const { vectors, ids } = roundInputs(4000 + round, 5, d);
        const want = ref.stepper.step(round, ref.params, vectors, ids);
        expectSameStep(await compute.step(round, vectors, ids), want, `round ${round}`);
        expect(bytes(compute.params).equals(bytes(ref.params)), `round ${round}: params bits`).to.equal(true);
      }
    } finally {
      await compute.dispose();
    }
  });

  describe('compute deadline', () => {
    // Weiszfeld iterations cost O(n²) each: 2·10⁵ of them take milliseconds for 2 bucket means, and far longer
    // than the 1 s deadline for 200. Bucketing (a round counter) and SGD momentum carry state across rounds.
    const dSmall = 16;
    const config: ComputeConfig = {
      aggregation: { rule: 'geometricMedian', f: 0, pre: ['bucketing'], options: { T: 200_000, tol: 0 } },
      optimizer: SGD,
      size: dSmall,
    };

    it('skips an overdue round with the reason, leaves the parameters untouched, continues from the last good state', async () => {
      const p0 = initialParams(dSmall);
      const ref = reference(config, p0);
      const compute = await RoundCompute.start(config, p0, { deadlineMs: 1000 });
      try {
        for (let round = 0; round < 2; round++) {
          const { vectors, ids } = roundInputs(3000 + round, 4, dSmall);
          const want = ref.stepper.step(round, ref.params, vectors, ids);
          expectSameStep(await compute.step(round, vectors, ids), want, `round ${round}`);
        }
        const before = compute.params.slice();
        const slow = roundInputs(3002, 400, dSmall);
        const skipped = await compute.step(2, slow.vectors, slow.ids);
        expect(skipped.result).to.equal(undefined);
        expect(skipped.skipReason).to.equal('aggregation exceeded its 1 s deadline');
        expect(bytes(compute.params).equals(bytes(before)), 'params untouched by the overdue round').to.equal(
          true,
        );
        // The reference never saw round 2: the respawned thread must continue from the state after round 1.
        for (let round = 3; round < 5; round++) {
          const { vectors, ids } = roundInputs(3000 + round, 4, dSmall);
          const want = ref.stepper.step(round, ref.params, vectors, ids);
          expectSameStep(await compute.step(round, vectors, ids), want, `round ${round}`);
          expect(bytes(compute.params).equals(bytes(ref.params)), `round ${round}: params bits`).to.equal(
            true,
          );
        }
      } finally {
        await compute.dispose();
      }
    });

    it('counts an overdue round toward the consecutive-skip limit like a rule that throws', async () => {
      const compute = await RoundCompute.start(config, initialParams(dSmall), { deadlineMs: 1000 });
      try {
        // Nine rounds without any gradient: the rule's precondition fails, each round is skipped.
        for (let round = 0; round < 9; round++) {
          const r = await compute.step(round, [], []);
          expect(r.skipReason).to.match(/needs n >= 1/);
        }
        const slow = roundInputs(4000, 400, dSmall);
        let error: Error | undefined;
        await compute.step(9, slow.vectors, slow.ids).catch((e: Error) => (error = e));
        expect(error?.message).to.equal(
          'aggregation failed 10 rounds in a row: aggregation exceeded its 1 s deadline',
        );
        const after = await compute.step(10, [], []).catch((e: Error) => e);
        expect(after).to.be.instanceOf(Error);
      } finally {
        await compute.dispose();
      }
    });
  });

  it('groups (aggregation.perExpert): each group over its senders, as in process; fallbacks reach the report', async () => {
    // 'few': 2 of 6 workers send it, too few for the median with f = 1; 'most': 4 of 6 do.
    const groups = [
      { name: 'few', ranges: [{ offset: 0, size: 100 }] },
      {
        name: 'most',
        ranges: [
          { offset: 200, size: 50 },
          { offset: 400, size: 50 },
        ],
      },
    ];
    const config: ComputeConfig = {
      aggregation: { rule: 'median', f: 1, pre: [], options: {} },
      groups,
      optimizer: SGD,
      size: d,
    };
    const p0 = initialParams(d);
    const ref = reference(config, p0);
    const compute = await RoundCompute.start(config, p0, { deadlineMs: 60_000 });
    try {
      for (let round = 0; round < 3; round++) {
        const { vectors, ids } = roundInputs(2000 + round, 6, d);
        for (let i = 0; i < 4; i++) vectors[i].fill(0, 0, 100);
        for (let i = 0; i < 2; i++) [200, 400].forEach((o) => vectors[i].fill(0, o, o + 50));
        const want = ref.stepper.step(round, ref.params, vectors, ids);
        const got = await compute.step(round, vectors, ids);
        expectSameStep(got, want, `round ${round}`);
        expect(bytes(compute.params).equals(bytes(ref.params)), `round ${round}: params bits`).to.equal(true);
        const plain = createAggregationPipeline(config.aggregation).aggregate(vectors, ids).update;
        // the median of 6 with 2 zeros differs from the median of the 4 senders
        expect(got.result!.update[200]).to.not.equal(plain[200]);
        const report = ruleDiagnostics('median', got.result!.diagnostics, []);
        expect(report.groupFallbacks).to.deep.equal([
          { group: 'few', senders: 2, reason: 'median needs 2f < n (n=2, f=1)' },
        ]);
      }
    } finally {
      await compute.dispose();
    }
  });

  it('names deadlines the way the spec writes them', () => {
    expect(formatDeadline(60_000)).to.equal('60 s');
    expect(formatDeadline(1000)).to.equal('1 s');
    expect(formatDeadline(600_000)).to.equal('10 min');
    expect(formatDeadline(3_600_000)).to.equal('1 h');
    expect(formatDeadline(1500)).to.equal('1500 ms');
  });

  it('rejects a spec whose rule cannot be built, before any round', async () => {
    const error = await RoundCompute.start(
      { aggregation: { rule: 'no-such-rule', f: 0, pre: [], options: {} }, optimizer: SGD, size: 4 },
      new Float32Array(4),
      { deadlineMs: 60_000 },
    ).catch((e: Error) => e);
    expect(error).to.be.instanceOf(Error);
    expect((error as Error).message).to.match(/no-such-rule/);
  });
});
