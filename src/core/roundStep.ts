/**
 * One round's server-side step, shared by the distributed round engine and `phalanx simulate` so both apply the
 * same math in the same order: aggregate the delivered vectors (already ordered by rank), then let the optimizer
 * apply the update unless aggregation failed or produced a non-finite update. A rule that cannot run (e.g. too few
 * workers for its precondition) skips the round; after MAX_CONSECUTIVE_SKIPS in a row the job fails.
 */
import type { AggregationResult } from './aggregation/types.ts';
import type { Optimizer } from './optim/types.ts';
import { normSq } from './aggregation/kernels/linear.ts';

export const MAX_CONSECUTIVE_SKIPS = 10;

export interface AggregatorLike {
  aggregate(vectors: Float32Array[], workerIds: string[]): AggregationResult;
}

/** The job cannot make progress: its rule failed MAX_CONSECUTIVE_SKIPS rounds in a row (the message says why). */
export class AggregationStalledError extends Error {}

export interface RoundStepResult {
  result: AggregationResult | undefined;
  /** Non-empty when the update was not applied, with the reason. */
  skipReason: string;
  updateNorm: number;
  aggregateMs: number;
  optimizeMs: number;
}

/**
 * The consecutive-skip count after one more skipped round. Throws once it reaches MAX_CONSECUTIVE_SKIPS: a job
 * whose rounds keep failing (a rule that cannot run, or that keeps exceeding its compute deadline) fails.
 */
export function countSkip(consecutiveSkips: number, reason: string, cause?: unknown): number {
  const skips = consecutiveSkips + 1;
  if (skips >= MAX_CONSECUTIVE_SKIPS) {
    throw new AggregationStalledError(`aggregation failed ${skips} rounds in a row: ${reason}`, { cause });
  }
  return skips;
}

export class RoundStepper {
  constructor(
    private readonly pipeline: AggregatorLike,
    private readonly optimizer: Optimizer,
    private readonly log: (message: string) => void = () => {},
    /** Skipped rounds in a row so far (restored when the stepper is rebuilt mid-job). */
    private consecutiveSkips = 0,
  ) {}

  /** A round that cannot be aggregated (quorum not met): counts toward the consecutive-skip limit. */
  skip(round: number, reason: string): RoundStepResult {
    this.log(`round ${round}: skipped: ${reason}`);
    this.consecutiveSkips = countSkip(this.consecutiveSkips, reason);
    return { result: undefined, skipReason: reason, updateNorm: 0, aggregateMs: 0, optimizeMs: 0 };
  }

  get skipsInARow(): number {
    return this.consecutiveSkips;
  }

  /** Aggregate and apply to `params` in place. Throws after too many consecutive skipped rounds. */
  step(round: number, params: Float32Array, vectors: Float32Array[], workerIds: string[]): RoundStepResult {
    const t0 = performance.now();
    let result: AggregationResult | undefined;
    let skipReason = '';
    try {
      result = this.pipeline.aggregate(vectors, workerIds);
    } catch (e) {
      skipReason = (e as Error).message;
      this.log(`round ${round}: aggregation skipped: ${skipReason}`);
      this.consecutiveSkips = countSkip(this.consecutiveSkips, skipReason, e);
    }
    if (result) this.consecutiveSkips = 0;
    const t1 = performance.now();
    let updateNorm = 0;
    if (result) {
      const u = result.update;
      updateNorm = Math.sqrt(normSq(u));
      if (Number.isFinite(updateNorm)) this.optimizer.step(params, u);
      else skipReason = 'aggregate is not finite';
    }
    return { result, skipReason, updateNorm, aggregateMs: t1 - t0, optimizeMs: performance.now() - t1 };
  }
}
