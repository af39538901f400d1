import { expect } from 'chai';
import { formatRound } from '../../../src/cli/progress.ts';
import type { RoundReport } from '../../../src/coordinator/roundReport.ts';

function report(extra: Partial<RoundReport>): RoundReport {
  return {
    jobId: 'j',
    round: 18,
    rule: 'mean',
    workers: [],
    missing: [],
    updateNorm: 1,
    trainLoss: 9.192,
    testAccuracy: NaN,
    testLoss: NaN,
    timings: { collectMs: 0, aggregateMs: 0, optimizeMs: 0, totalMs: 0 },
    bytesReceived: 0,
    finishedAtMs: 0,
    divergence: [],
    rollbacks: 0,
    replay: false,
    ...extra,
  };
}

describe('cli: progress line', () => {
  it('shows the divergence signals of a round, and marks replayed rounds with the rule in effect', () => {
    expect(formatRound(report({}), 200, NaN, 1)).to.not.contain('DIVERGENCE');
    expect(
      formatRound(report({ divergence: ['loss-jump: loss 9.135 > 2 × baseline 2.380'] }), 200, NaN, 1),
    ).to.match(/ {2}DIVERGENCE: loss-jump: loss 9\.135 > 2 × baseline 2\.380$/);
    expect(
      formatRound(report({ round: 3, rule: 'median', rollbacks: 1, replay: true }), 200, NaN, 1),
    ).to.match(/ {2}\[replay, rule median after 1 rollback\(s\)\]$/);
  });

  it('reads reports stored before the guard existed', () => {
    const old = report({}) as Partial<RoundReport>;
    delete old.divergence;
    delete old.rollbacks;
    delete old.replay;
    expect(formatRound(old as RoundReport, 200, NaN, 1)).to.match(/eta \d+s$/);
  });
});
