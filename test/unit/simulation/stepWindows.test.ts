import { expect } from 'chai';
import { stepWindows } from '../../../src/simulation/report.ts';
import type { RoundSummary } from '../../../src/simulation/simulate.ts';

const round = (r: number, updateNorm: number, honestMeanNorm: number, skipped?: string): RoundSummary => ({
  round: r,
  trainLoss: 1,
  updateNorm,
  honestMeanNorm,
  includedHonest: 1,
  includedByzantine: 0,
  ...(skipped ? { skipped } : {}),
});

describe('simulation report: step windows', () => {
  it('one window per evaluation: medians of ‖update‖ and of ‖update‖ / ‖honest mean‖ over its rounds', () => {
    // rounds are 0-based; the evaluation after round r (0-based) is labelled r + 1
    const perRound = [
      round(0, 1, 1),
      round(1, 3, 1),
      round(2, 2, 1),
      round(3, 8, 2),
      round(4, 4, 2),
      round(5, 99, 1, 'no quorum'),
    ];
    const evaluations = [
      { round: 3, accuracy: 0.5, loss: 1 },
      { round: 6, accuracy: 0.6, loss: 1 },
    ];
    const w = stepWindows({ perRound, evaluations });
    expect(w).to.deep.equal([
      { upToRound: 3, updateNorm: 2, ratioToHonestMean: 2 },
      // round 5 was skipped: its norm is not a step
      { upToRound: 6, updateNorm: 6, ratioToHonestMean: 3 },
    ]);
  });

  it('NaN where no round has an honest mean (all Byzantine, or every round skipped)', () => {
    const w = stepWindows({
      perRound: [round(0, 1, NaN)],
      evaluations: [{ round: 1, accuracy: 0, loss: 0 }],
    });
    expect(w[0].updateNorm).to.equal(1);
    expect(Number.isNaN(w[0].ratioToHonestMean)).to.equal(true);
  });
});
