/**
 * A round skipped for want of quorum applies nothing and carries no training loss. `phalanx simulate` must treat
 * it as the coordinator does (src/coordinator/jobRuntime.ts): the divergence guard does not judge it, so a job
 * whose workers crash ends with the stalled-aggregation error after MAX_CONSECUTIVE_SKIPS rounds, not with
 * rollbacks on a "non-finite training loss" that nobody reported.
 */
import { expect } from 'chai';
import { validateJobSpec } from '../../src/config/jobSpec.ts';
import { demoSpec } from '../../src/cli/demoSpec.ts';
import type { RoundReport } from '../../src/coordinator/roundReport.ts';
import { formatRound } from '../../src/cli/progress.ts';
import { AggregationStalledError, MAX_CONSECUTIVE_SKIPS } from '../../src/core/roundStep.ts';
import { loadFashionMnist, type FashionMnist } from '../../src/data/fashionMnist.ts';
import { simulate } from '../../src/simulation/simulate.ts';

const CRASH_AT = 12;

describe('simulate: rounds skipped for want of quorum', function () {
  this.timeout(120_000);
  let data: FashionMnist;
  before(async () => {
    data = await loadFashionMnist({ maxTrain: 6000, maxTest: 500 });
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
});
