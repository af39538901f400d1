/**
 * A skipped round (no quorum, or a rule that could not run) applies nothing and carries no training loss. The
 * divergence guard does not judge it, in `phalanx simulate` as in the coordinator (both go through
 * observeClosedRound): a job whose workers crash ends with the stalled-aggregation error after
 * MAX_CONSECUTIVE_SKIPS rounds, and a rule that excludes every worker now and then skips those rounds, both
 * without rollbacks on a "non-finite training loss" that nobody reported.
 */
import { expect } from 'chai';
import { validateJobSpec } from '../../src/config/jobSpec.ts';
import { demoSpec, DEMO_ATTACK_OPTIONS } from '../../src/cli/demoSpec.ts';
import type { RoundReport } from '../../src/coordinator/roundReport.ts';
import { formatRound } from '../../src/cli/progress.ts';
import { AggregationStalledError, MAX_CONSECUTIVE_SKIPS } from '../../src/core/roundStep.ts';
import { loadFashionMnist, type FashionMnist } from '../../src/data/fashionMnist.ts';
import { simulate } from '../../src/simulation/simulate.ts';

const CRASH_AT = 12;

describe('simulate: rounds skipped for want of quorum', function () {
  this.timeout(120_000);
  let data: FashionMnist;
  let full: FashionMnist;
  before(async () => {
    data = await loadFashionMnist({ maxTrain: 6000, maxTest: 500 });
    full = await loadFashionMnist({});
  });

  it('are not divergence signals: two workers crash, the job stalls after the skip limit without a rollback', async () => {
    const spec = validateJobSpec({
      ...demoSpec(),
      rounds: 40,
      aggregation: { rule: 'mean', f: 2 },
      checkpoint: { every: 5, keep: 2 },
      evaluation: { every: 20, limit: 500 },
      guard: { rollback: true, fallback: { rule: 'median' } },
      simulate: { byzantine: { count: 2, attack: 'crash', options: { fromRound: CRASH_AT } } },
    });
    const reports: RoundReport[] = [];
    let error: unknown;
    try {
      await simulate(spec, { backend: 'cpu', data, onRound: (r) => reports.push(r) });
    } catch (e) {
      error = e;
    }
    expect(error, String(error)).to.be.instanceOf(AggregationStalledError);
    expect((error as Error).message).to.contain('quorum not met: 4 of workers.min = 6');
    expect(reports.map((r) => r.round)).to.deep.equal(
      Array.from({ length: CRASH_AT + MAX_CONSECUTIVE_SKIPS - 1 }, (_, i) => i),
    );
    expect(reports.flatMap((r) => r.divergence)).to.deep.equal([]);
    expect(reports.every((r) => r.rollbacks === 0 && !r.replay)).to.equal(true);
    // The progress line says the round was skipped and why, instead of "excluded" for every worker.
    const line = formatRound(reports[CRASH_AT], { total: 40, accuracy: NaN });
    expect(line).to.contain('skipped (quorum not met: 4 of workers.min = 6 gradients accepted)');
    expect(line).to.not.contain('excluded');
    expect(formatRound(reports[CRASH_AT - 1], { total: 40, accuracy: NaN })).to.contain('included 6/6');
  });

  it('are not divergence signals when the rule excludes every worker (the demo attack, omniscient)', async () => {
    // The demo's −4·μ̂ senders, given every honest vector: in some rounds the mean test excludes the 4 honest
    // workers (the two long copies dominate the mean) and the axis test the 2 attackers.
    const spec = validateJobSpec({
      ...demoSpec(),
      rounds: 100,
      evaluation: { every: 50, limit: 500 },
      guard: { rollback: true, fallback: { rule: 'median' } },
      simulate: { byzantine: { count: 2, attack: 'signflip', options: DEMO_ATTACK_OPTIONS } },
    });
    const reports: RoundReport[] = [];
    const result = await simulate(spec, { backend: 'wasm', data: full, onRound: (r) => reports.push(r) });
    const skipped = reports.filter((r) =>
      r.workers.every((w) => w.reason.includes('every worker was excluded')),
    );
    expect(skipped.length, 'rounds skipped by the rule').to.be.greaterThan(0);
    expect(result.skippedRounds).to.equal(skipped.length);
    expect(reports.flatMap((r) => r.divergence)).to.deep.equal([]);
    expect(result.rollbacks).to.equal(0);
  });
});
