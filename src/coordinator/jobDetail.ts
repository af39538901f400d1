/**
 * What `phalanx status` explains about a job beyond its record: training progress from its newest round reports
 * (a pure summary), and the job runtime's live view when this coordinator runs it.
 */
import type { CheckpointManifest } from '../checkpoint/checkpoint.ts';
import type { LiveView } from './jobRuntime.ts';
import type { RoundReport } from './roundReport.ts';

/** Reports the timing estimate looks at: enough to smooth out one slow round, few enough to follow a change. */
export const TIMING_WINDOW = 20;

export interface RoundSummary {
  /** The newest report's training loss (NaN: none). */
  trainLoss: number;
  /** Rounds completed at the newest evaluation (0: none among the reports). */
  evalRound: number;
  evalAccuracy: number;
  evalLoss: number;
  /** Mean wall time per round over the newest TIMING_WINDOW reports (NaN: fewer than two). */
  secondsPerRound: number;
  last: RoundReport | undefined;
}

/** Summarise a job's newest round reports (oldest first). */
export function summarizeRounds(reports: readonly RoundReport[]): RoundSummary {
  const last = reports.at(-1);
  let evalRound = 0;
  let evalAccuracy = NaN;
  let evalLoss = NaN;
  for (let i = reports.length - 1; i >= 0; i--) {
    const r = reports[i];
    if (Number.isFinite(r.testAccuracy) || Number.isFinite(r.testLoss)) {
      evalRound = r.round + 1;
      evalAccuracy = r.testAccuracy;
      evalLoss = r.testLoss;
      break;
    }
  }
  const timed = reports.slice(-TIMING_WINDOW);
  let secondsPerRound = NaN;
  if (timed.length >= 2) {
    const first = timed[0];
    const end = timed[timed.length - 1];
    const rounds = end.round - first.round;
    const ms = end.finishedAtMs - first.finishedAtMs;
    if (rounds > 0 && ms >= 0) secondsPerRound = ms / 1000 / rounds;
  }
  return {
    trainLoss: last?.trainLoss ?? NaN,
    evalRound,
    evalAccuracy,
    evalLoss,
    secondsPerRound,
    last,
  };
}

export interface JobDetailView {
  workersMin: number;
  workersMax: number;
  /** '' when it cannot be told (a spec the coordinator no longer accepts). */
  checkpointDir: string;
  checkpoint: CheckpointManifest | undefined;
  rounds: RoundSummary;
  /** Set when this coordinator runs the job. */
  live: LiveView | undefined;
}
