import { expect } from 'chai';
import { formatRound, formatRoundDetails } from '../../../src/cli/progress.ts';
import type { RoundReport } from '../../../src/coordinator/roundReport.ts';
import { packageDefinition } from '../../../src/transport/protocol.ts';

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

const ctx = { total: 200, accuracy: NaN, rate: 19 };

describe('cli: progress line', () => {
  it('shows the divergence signals of a round, and marks replayed rounds with the rule in effect', () => {
    expect(formatRound(report({}), ctx)).to.not.contain('DIVERGENCE');
    expect(formatRound(report({ divergence: ['loss-jump: loss 9.135 > 2 × baseline 2.380'] }), ctx)).to.match(
      / {2}DIVERGENCE: loss-jump: loss 9\.135 > 2 × baseline 2\.380$/,
    );
    expect(formatRound(report({ round: 3, rule: 'median', rollbacks: 1, replay: true }), ctx)).to.match(
      / {2}\[replay, rule median after 1 rollback\(s\)\]$/,
    );
  });

  it('reads reports stored before the guard existed', () => {
    const old = report({}) as Partial<RoundReport>;
    delete old.divergence;
    delete old.rollbacks;
    delete old.replay;
    expect(formatRound(old as RoundReport, ctx)).to.match(/eta \d+s$/);
  });

  it('shows the bytes a compressed round sent, the ratio against fp32 and the plan', () => {
    const compression = {
      planId: 'lgreco-r101',
      settings: ['powersgd rank 2 bf16', 'fp32'],
      layerBytes: [40_000, 5_000],
      bytes: 45_000,
      pushes: 6,
      ratio: 27.14,
      budgetUsed: 0.97,
      nextPlanId: '',
    };
    expect(formatRound(report({ compression }), ctx)).to.contain(
      '  sent 45.0 kB (27.1× < fp32, plan lgreco-r101)  ',
    );
    // a dense round (or a report from the wire with the message unset) says nothing about it
    expect(formatRound(report({ compression: null as unknown as undefined }), ctx)).to.not.contain('sent');
  });

  it('says when the round waited for the state store, also after the report crossed the wire', () => {
    const stalled = report({
      storeStall: { failedAttempts: 3, waitedMs: 1480, lastError: "Stream isn't writeable" },
    });
    const watch = (
      packageDefinition['phalanx.v1.Jobs'] as Record<
        string,
        { responseSerialize(v: unknown): Buffer; responseDeserialize(b: Buffer): unknown }
      >
    ).WatchJob;
    const back = (
      watch.responseDeserialize(watch.responseSerialize({ round: stalled })) as { round: RoundReport }
    ).round;
    expect(back.storeStall).to.deep.equal(stalled.storeStall);
    expect(formatRound(back, ctx)).to.contain('  store stalled 1.5 s (3 failed attempts)  ');
    const calm = (
      watch.responseDeserialize(watch.responseSerialize({ round: report({}) })) as { round: RoundReport }
    ).round;
    expect(formatRound(calm, ctx)).to.not.contain('store stalled');
  });
  it("carries a per-expert round's group fallbacks across WatchJob's proto", () => {
    const watch = (
      packageDefinition['phalanx.v1.Jobs'] as Record<
        string,
        { responseSerialize(v: unknown): Buffer; responseDeserialize(b: Buffer): unknown }
      >
    ).WatchJob;
    const groupFallbacks = [{ group: 'block0.expert2', senders: 2, reason: 'median: needs n > 2f' }];
    const sent = report({ diagnostics: { flagRank: 0, excluded: 0, groupFallbacks } });
    const back = (
      watch.responseDeserialize(watch.responseSerialize({ round: sent })) as { round: RoundReport }
    ).round;
    expect(back.diagnostics?.groupFallbacks).to.deep.equal(groupFallbacks);
    expect(formatRoundDetails(back)).to.deep.equal([
      '    per-expert: 1 block(s) kept the all-worker aggregate: block0.expert2 (2 senders: median: needs n > 2f)',
    ]);
  });
});
