/**
 * The divergence guard turns a collapse into a finished run. The demo's setup (6 workers, 2 of them sending
 * −4 × their gradient) under the plain mean is gradient ascent: the loss explodes and the run ends failed or at
 * chance. With `guard.rollback` the job goes back to its newest good snapshot and continues on the median; on a
 * slow climb that is not the newest snapshot.
 */
import { expect } from 'chai';
import { guardOptions, validateJobSpec, type JobSpecInput } from '../../src/config/jobSpec.ts';
import { demoSpec, DEMO_ATTACK_OPTIONS } from '../../src/cli/demoSpec.ts';
import type { RoundReport } from '../../src/coordinator/roundReport.ts';
import { loadFashionMnist, type FashionMnist } from '../../src/data/fashionMnist.ts';
import { simulate, type SimulationResult } from '../../src/simulation/simulate.ts';
import { checkpointVerdicts } from '../support/guardVerdicts.ts';

const ROUNDS = 80;

function spec(guard: JobSpecInput['guard']) {
  return validateJobSpec({
    ...demoSpec(),
    rounds: ROUNDS,
    aggregation: { rule: 'mean', f: 2 },
    checkpoint: { every: 50, keep: 2 },
    evaluation: { every: 40, limit: 1000 },
    guard,
    simulate: { byzantine: { count: 2, attack: 'signflip', options: DEMO_ATTACK_OPTIONS } },
  });
}

describe('divergence guard: the mean under sign flip (simulate)', function () {
  this.timeout(300_000);
  let data: FashionMnist;
  before(async () => {
    data = await loadFashionMnist({});
  });

  async function run(guard: JobSpecInput['guard']) {
    const reports: RoundReport[] = [];
    let result: SimulationResult | undefined;
    let error: Error | undefined;
    try {
      result = await simulate(spec(guard), { backend: 'wasm', data, onRound: (r) => reports.push(r) });
    } catch (e) {
      error = e as Error;
    }
    return { result, error, reports };
  }

  it('without rollback the run fails or ends at chance; with it, it ends well above chance on the median', async () => {
    const without = await run({ rollback: false });
    const withoutAccuracy = without.result?.finalAccuracy ?? NaN;
    // Reported, not acted on: the signals are in the round health.
    expect(without.reports.some((r) => r.divergence.some((d) => d.startsWith('loss-jump')))).to.equal(true);
    expect(without.error !== undefined || withoutAccuracy <= 0.2, `without: ${withoutAccuracy}`).to.equal(
      true,
    );

    const guarded = await run({ rollback: true, fallback: { rule: 'median' } });
    expect(guarded.error).to.equal(undefined);
    const result = guarded.result!;
    expect(result.rollbacks).to.equal(1);
    expect(result.finalAccuracy).to.be.greaterThan(0.6);
    // The signal, then rounds 0.. again on the median, each marked as a replay.
    const signal = guarded.reports.findIndex((r) => r.divergence.length > 0);
    expect(guarded.reports[signal].rule).to.equal('mean');
    const after = guarded.reports.slice(signal + 1);
    expect(after[0]).to.include({ round: 0, rule: 'median', rollbacks: 1, replay: true });
    expect(after.filter((r) => r.replay).length).to.equal(guarded.reports[signal].round + 1);
    expect(after.at(-1)).to.include({ round: ROUNDS - 1, replay: false });
    expect(after.every((r) => r.divergence.length === 0)).to.equal(true);
    console.log(
      `      mean + signflip×4: without guard ${without.error ? `failed (${without.error.message})` : withoutAccuracy}; ` +
        `with rollback to the median: ${result.finalAccuracy} (signal at round ${guarded.reports[signal].round})`,
    );
  });

  it('fails with a clear reason once maxRollbacks is spent', async () => {
    const { error, reports } = await run({ rollback: true, maxRollbacks: 1, fallback: { rule: 'mean' } });
    expect(error?.message).to.match(
      /^training diverged at round \d+ \(loss-jump: .*\) after 1 rollback\(s\), the most guard.maxRollbacks allows/,
    );
    expect(reports.filter((r) => r.divergence.length > 0)).to.have.length(2);
  });
});

describe('divergence guard: a slow climb rolls back to the newest good snapshot, not the newest (simulate)', function () {
  this.timeout(120_000);

  it('goes back past the snapshots taken during the climb, and replays from there exactly', async () => {
    // 2 of 6 workers send −2.4 × the honest mean: the mean moves against it by 0.4/6 of it, a slow ascent the
    // guard's loss-jump alarm sees only once the loss has doubled. A 5-round window lets the rolling median
    // follow the climb, so snapshots taken on the way up are not good.
    const spec = validateJobSpec({
      name: 'slow-climb',
      seed: 1,
      model: { kind: 'mlp', hidden: [16] },
      data: { batchSize: 32, maxTrain: 3000, maxTest: 500 },
      optimizer: { kind: 'sgd', lr: 0.1 },
      rounds: 70,
      workers: { min: 6, max: 6, momentum: 0.9 },
      aggregation: { rule: 'mean', f: 2 },
      checkpoint: { every: 5, keep: 1 },
      evaluation: { every: 0, limit: 500 },
      guard: { rollback: true, window: 5, fallback: { rule: 'median' } },
      simulate: { byzantine: { count: 2, attack: 'signflip', options: { scale: 2.4 } } },
    });
    const data = await loadFashionMnist({ maxTrain: 3000, maxTest: 500 });
    const reports: RoundReport[] = [];
    const result = await simulate(spec, { backend: 'cpu', data, onRound: (r) => reports.push(r) });
    expect(result.rollbacks).to.equal(1);

    const signalAt = reports.findIndex((r) => r.divergence.length > 0);
    const { signal, checkpoints, newestGood } = checkpointVerdicts(
      reports.slice(0, signalAt + 1),
      guardOptions(spec),
      spec.checkpoint.every,
    );
    expect(signal, 'a signal').not.to.equal(undefined);
    // The scenario tells the two apart: the newest snapshots before the signal are not good.
    const newest = checkpoints.at(-1)!.round;
    expect(newestGood).to.be.greaterThan(0);
    expect(newestGood).to.be.lessThan(newest);

    const after = reports.slice(signalAt + 1);
    expect(after[0]).to.include({ round: newestGood, rule: 'median', rollbacks: 1, replay: true });
    // The same parameters, batches and worker momentum as the first pass at that round.
    expect(after[0].workers.map((w) => w.loss)).to.deep.equal(reports[newestGood].workers.map((w) => w.loss));
    expect(after.at(-1)).to.include({ round: spec.rounds - 1, replay: false });
    console.log(
      `      signal at round ${signal!.round}; checkpoints ${checkpoints.map((c) => `${c.round}${c.good ? '' : '✗'}`).join(' ')}; back to ${after[0].round}`,
    );
  });
});
