/**
 * What `phalanx watch` prints for the events of one job, as a state machine over its events and an injected
 * clock. Pure: the gRPC stream and the timer live in main.ts.
 *
 * - Rounds the job had completed when the watch started are a replay: they carry the accuracy of the newest
 *   evaluation forward (a round without one stored none), but no rate or ETA, which only live rounds can tell.
 * - The rate is measured on live rounds only, from their finish times on the coordinator's clock.
 * - A running job that reports nothing for `stallAfterMs` (5 s, or 3 rounds' time when rounds are slower) is
 *   stalled: the caller asks the coordinator what it waits for, and prints a line at 1×, 2×, 4×, … that time.
 */
import type { Job__Output } from '../gen/phalanx/v1/Job.ts';
import type { RoundReport } from '../coordinator/roundReport.ts';
import { isTerminal } from '../core/jobLifecycle.ts';
import type { JobState } from '../coordinator/state/stateStore.ts';
import { formatRound, formatRoundDetails, type EvaluatedSplit } from './progress.ts';
import { evaluatedSplitOf, formatFinal, formatJobHeader, formatStall } from './jobLines.ts';

/** A job is stalled after this long without a report, at least. */
export const MIN_STALL_MS = 5_000;
/** … or after this many rounds' worth of time when rounds are slow. */
const STALL_ROUNDS = 3;
/** Live rounds the rate is measured over. */
const RATE_WINDOW = 20;

export class WatchView {
  private total = 0;
  private split: EvaluatedSplit = 'test';
  private accuracy = NaN;
  private evalLoss = NaN;
  /** Rounds completed when the watch started: lower rounds are a replay. */
  private liveFrom: number | undefined;
  private readonly liveFinishes: number[] = [];
  private lastEventAt: number;
  private stallsShown = 0;
  private job: Job__Output | undefined;

  constructor(
    private readonly now: () => number,
    /** Print why each excluded or missing worker did not count. */
    private readonly details = true,
  ) {
    this.lastEventAt = now();
  }

  /** The job record at the start of the watch (with GetJob's detail when available) or after a state change. */
  onJob(job: Job__Output): string[] {
    this.touch();
    const previous = this.job;
    this.job = job;
    this.total = Number(job.totalRounds);
    if (job.specJson) this.split = evaluatedSplitOf(job.specJson);
    const ended = isTerminal(job.state as JobState);
    if (!previous) this.liveFrom = ended ? Infinity : Number(job.round);
    // The header once, then a line per state change; the end gets its own line (finalLines).
    if (ended || previous?.state === job.state) return [];
    return [formatJobHeader(job)];
  }

  /** The closing line once the job has ended (its final accuracy and losses, or its error). */
  finalLines(job: Job__Output): string[] {
    return [formatFinal(job, { accuracy: this.accuracy, evalLoss: this.evalLoss })];
  }

  onRound(r: RoundReport): string[] {
    this.touch();
    if (Number.isFinite(r.testAccuracy)) this.accuracy = r.testAccuracy;
    if (Number.isFinite(r.testLoss)) this.evalLoss = r.testLoss;
    const live = this.liveFrom !== undefined && r.round >= this.liveFrom;
    if (live) {
      this.liveFinishes.push(Number(r.finishedAtMs));
      if (this.liveFinishes.length > RATE_WINDOW) this.liveFinishes.shift();
    }
    const line = formatRound(r, {
      total: this.total,
      accuracy: this.accuracy,
      evalLoss: this.evalLoss,
      split: this.split,
      rate: live ? this.rate() : undefined,
    });
    return [line, ...(this.details ? formatRoundDetails(r) : [])];
  }

  /** Rounds per second over the live rounds seen (undefined before two). */
  private rate(): number | undefined {
    const f = this.liveFinishes;
    if (f.length < 2) return undefined;
    const ms = f[f.length - 1] - f[0];
    return ms > 0 ? ((f.length - 1) * 1000) / ms : undefined;
  }

  /** How long without a report before the job counts as stalled. */
  stallAfterMs(): number {
    const rate = this.rate();
    return Math.max(MIN_STALL_MS, rate ? (STALL_ROUNDS * 1000) / rate : 0);
  }

  /** Whether a stall line is due now (then ask the coordinator and call stallLines). */
  stallDue(): boolean {
    if (!this.job || isTerminal(this.job.state as JobState)) return false;
    const quiet = this.now() - this.lastEventAt;
    return quiet >= this.stallAfterMs() * 2 ** this.stallsShown;
  }

  /** The stall line, with `job` as GetJob answers now (what the job waits for). */
  stallLines(job: Job__Output): string[] {
    this.stallsShown++;
    if (isTerminal(job.state as JobState)) return [];
    return [formatStall((this.now() - this.lastEventAt) / 1000, job)];
  }

  private touch(): void {
    this.lastEventAt = this.now();
    this.stallsShown = 0;
  }
}
