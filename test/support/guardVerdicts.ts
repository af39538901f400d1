/**
 * The divergence guard's verdicts recomputed from a run's round reports, independently of the driver that ran it:
 * a fresh detector fed every report of the first timeline the way JobRuntime and simulate feed theirs (the median
 * included loss, the update norm, the evaluation when there is one). What a rollback test compares the round the
 * job went back to with.
 */
import { expect } from 'chai';
import type { RoundReport } from '../../src/coordinator/roundReport.ts';
import {
  DivergenceGuard,
  guardLoss,
  type DivergenceGuardOptions,
} from '../../src/core/round/divergenceGuard.ts';

export interface CheckpointVerdicts {
  /** The first report with a divergence signal (undefined: none). */
  signal: RoundReport | undefined;
  /** Every checkpoint round (multiples of `every`) written before the signal, with the guard's verdict. */
  checkpoints: { round: number; good: boolean }[];
  /** Where a rollback at the signal must go: the newest good checkpoint round, else 0 (the initial state). */
  newestGood: number;
}

export function checkpointVerdicts(
  reports: readonly RoundReport[],
  options: Partial<DivergenceGuardOptions>,
  every: number,
): CheckpointVerdicts {
  const guard = new DivergenceGuard(options);
  const checkpoints: { round: number; good: boolean }[] = [];
  const verdicts = (signal: RoundReport | undefined): CheckpointVerdicts => ({
    signal,
    checkpoints,
    newestGood: checkpoints.filter((c) => c.good).at(-1)?.round ?? 0,
  });
  for (const r of reports) {
    expect(r.replay, `round ${r.round} is a replay before any signal`).to.equal(false);
    expect(
      r.workers.some((w) => w.included),
      `round ${r.round} was aggregated (missing: ${r.missing.map((w) => `${w.name}: ${w.reason}`).join('; ')})`,
    ).to.equal(true);
    const evaluated = Number.isFinite(r.testAccuracy) || Number.isFinite(r.testLoss);
    const signals = guard.observe({
      round: r.round,
      loss: guardLoss(r.workers),
      updateNorm: r.updateNorm,
      ...(evaluated ? { evaluation: { loss: r.testLoss, accuracy: r.testAccuracy } } : {}),
    });
    // The detector here saw what the driver's saw.
    expect(
      signals.map((s) => s.message),
      `round ${r.round}`,
    ).to.deep.equal(r.divergence);
    if (signals.length) return verdicts(r);
    if ((r.round + 1) % every === 0) checkpoints.push({ round: r.round + 1, good: guard.isGood() });
  }
  return verdicts(undefined);
}
