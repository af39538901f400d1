/**
 * JobRuntime around its RoundEngine, with the in-process stepper: rounds that never reach workers.min accepted
 * gradients are skipped (parameters untouched, the divergence guard not fed), and ten of them in a row fail the job
 * with the reason.
 */
import { expect } from 'chai';
import { validateJobSpec } from '../../../src/config/jobSpec.ts';
import { JobRuntime, type ModelHost } from '../../../src/coordinator/jobRuntime.ts';
import type { RoundReport } from '../../../src/coordinator/roundReport.ts';
import { createAggregationPipeline } from '../../../src/core/aggregation/pipeline.ts';
import { buildLayout } from '../../../src/core/layout/parameterLayout.ts';
import { createOptimizer } from '../../../src/core/optim/index.ts';
import { RoundStepper } from '../../../src/core/roundStep.ts';

describe('JobRuntime', () => {
  it('skips rounds without quorum (nothing applied) and fails the job after ten in a row', async () => {
    const size = 8;
    const spec = validateJobSpec({
      name: 'quorum',
      model: { kind: 'mlp', hidden: [4] },
      rounds: 50,
      workers: { min: 2, max: 2, roundTimeout: 100 },
      aggregation: { rule: 'mean', f: 0 },
      optimizer: { kind: 'sgd', lr: 1 },
      evaluation: { every: 0 },
      checkpoint: { every: 0 },
    });
    const model: ModelHost = {
      layout: buildLayout([{ name: 'w', shape: [size] }]),
      evaluate: async () => ({ accuracy: 0, loss: 0 }),
    };
    const params = new Float32Array(size).fill(1);
    const stepper = new RoundStepper(
      createAggregationPipeline(spec.aggregation),
      createOptimizer(spec.optimizer, size),
    );
    const reports: RoundReport[] = [];
    let failure: Error | undefined;
    const rt = new JobRuntime(
      'job-q',
      spec,
      model,
      params,
      {
        step: async (round, vectors, ids) => stepper.step(round, params, vectors, ids),
        skip: async (round, reason) => stepper.skip(round, reason),
      },
      {
        onRound: async (r) => void reports.push(r),
        onCheckpoint: async () => {},
        onComplete: async () => {},
        onError: (e) => (failure = e),
        log: () => {},
      },
      0,
    );
    const ended = new Promise<string>((resolve) => rt.once('ended', resolve));
    rt.start();
    rt.join('a', 'worker-0', '');
    rt.join('b', 'worker-1', '');
    // Every round: a's gradient is accepted, b's push is rejected (one accepted of workers.min = 2).
    rt.on('round-open', (round) => {
      rt.commit('a', round, new Float32Array(size).fill(0.5), 1, 0);
      rt.recordRejection('b', round, 'non-finite value');
    });
    rt.commit('a', 0, new Float32Array(size).fill(0.5), 1, 0);
    rt.recordRejection('b', 0, 'non-finite value');

    expect(await ended).to.equal('failed');
    expect(failure?.message).to.equal(
      'aggregation failed 10 rounds in a row: quorum not met: 1 of workers.min = 2 gradients accepted',
    );
    expect(reports).to.have.length(9);
    for (const r of reports) {
      expect(r.workers.map((w) => [w.name, w.included])).to.deep.equal([['worker-0', false]]);
      expect(r.workers[0].reason).to.match(/^round skipped: quorum not met/);
      expect(r.workers[0].reasonCode).to.equal('REASON_ROUND_SKIPPED');
      expect(r.divergence, 'a skipped round is not a divergence (no training loss to judge)').to.deep.equal(
        [],
      );
      expect(r.missing.map((m) => [m.name, m.reason, m.reasonCode])).to.deep.equal([
        ['worker-1', 'rejected: non-finite value', 'REASON_REJECTED'],
      ]);
    }
    expect(Array.from(params), 'no skipped round moved the parameters').to.deep.equal(
      new Array(size).fill(1),
    );
  });

  it('reports reason codes, the evaluate phase, bytes sent and Flag diagnostics per round', async () => {
    const size = 4;
    const spec = validateJobSpec({
      name: 'report',
      model: { kind: 'mlp', hidden: [4] },
      rounds: 2,
      workers: { min: 3, max: 3, roundTimeout: 10_000 },
      aggregation: { rule: 'flag', f: 1 },
      optimizer: { kind: 'sgd', lr: 0.1 },
      evaluation: { every: 2 },
      checkpoint: { every: 0 },
    });
    const model: ModelHost = {
      layout: buildLayout([{ name: 'w', shape: [size] }]),
      // The evaluation takes a few milliseconds: the report must time it.
      evaluate: () => new Promise((resolve) => setTimeout(() => resolve({ accuracy: 0.5, loss: 1 }), 5)),
    };
    const params = new Float32Array(size);
    const stepper = new RoundStepper(
      createAggregationPipeline(spec.aggregation),
      createOptimizer(spec.optimizer, size),
    );
    const reports: RoundReport[] = [];
    const rt = new JobRuntime(
      'job-r',
      spec,
      model,
      params,
      {
        step: async (round, vectors, ids) => stepper.step(round, params, vectors, ids),
        skip: async (round, reason) => stepper.skip(round, reason),
      },
      {
        onRound: async (r) => void reports.push(r),
        onCheckpoint: async () => {},
        onComplete: async () => {},
        onError: () => {},
        log: () => {},
      },
      0,
    );
    const ended = new Promise<string>((resolve) => rt.once('ended', resolve));
    const push = (round: number) => {
      rt.recordBytesSent(1000 * (round + 1));
      rt.commit('a', round, Float32Array.from([1, 0.9, 1.1, 0.2]), 1, 16);
      rt.commit('b', round, Float32Array.from([0.9, 1.1, 1.0, -0.1]), 1, 16);
      rt.commit('c', round, Float32Array.from([-1, -1, -1, -0.1]), 1, 16);
    };
    rt.start();
    rt.join('a', 'worker-0', '');
    rt.join('b', 'worker-1', '');
    rt.join('c', 'worker-2', 'signflip');
    rt.on('round-open', (round) => {
      if (round < 2) push(round);
    });
    push(0);
    expect(await ended).to.equal('completed');

    expect(reports.map((r) => r.bytesSent)).to.deep.equal([1000, 2000]);
    expect(reports.map((r) => r.timings.evaluateMs === 0)).to.deep.equal([true, false]);
    for (const r of reports) {
      expect(r.diagnostics).to.deep.equal({ flagRank: 1, excluded: 1 });
      const flipped = r.workers.find((w) => w.name === 'worker-2')!;
      expect(flipped.reasonCode).to.equal('REASON_AGAINST_ROBUST_DIRECTION');
      expect(flipped.reason).to.include(`cosine to the update ${flipped.cosine.toFixed(3)}`);
      expect(r.workers.filter((w) => w.included).map((w) => w.reasonCode)).to.deep.equal([
        'REASON_UNSPECIFIED',
        'REASON_UNSPECIFIED',
      ]);
    }
  });
});
