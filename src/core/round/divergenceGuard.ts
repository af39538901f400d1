/**
 * The divergence guard's detector: fed once per aggregated round, it says whether training shows a sign of
 * divergence. Pure and deterministic (no clock, no randomness); its whole state is plain data (`save`/`load`), so a
 * checkpoint or an in-memory snapshot carries it and a rolled-back or resumed run sees the same baseline.
 *
 * Per round t the driver gives: the training loss L_t (see `guardLoss`), the update norm N_t of the aggregate when
 * the round was aggregated, and the evaluation (loss, accuracy A_t) on evaluation rounds. With W = `window`:
 *
 *   non-finite         L_t, N_t, the evaluation loss or A_t is NaN or ±Inf;
 *   loss-jump          L_u > lossJump · B for the last `patience` rounds u, where B = min over earlier rounds s of
 *                      median(L_{s−W+1..s}) — the lowest typical loss so far. A median over W rounds ignores a
 *                      noisy batch; taking the minimum of those medians makes a slow climb count as much as a
 *                      sudden one (a trailing median would follow it); `patience` lets one unlucky batch pass;
 *   norm-jump          N_t > normJump · median(N_{t−W..t−1}) — update norms drift legitimately over training, a
 *                      sudden jump against the recent rounds is the sign;
 *   accuracy-collapse  A_t < (1 − accuracyDrop) · max over earlier evaluations of A.
 *
 * The loss and norm tests wait until `warmup` values are in their window. A round that signals, or whose loss is
 * above the threshold, does not enter the baselines (a diverging run must not teach the guard that divergence is
 * normal).
 *
 * Health (`health()`, `isGood()`): the state after the latest observed round t is good when all of
 *
 *   quiet       round t raised no signal and its loss was not above lossJump · B (no alarm building up);
 *   loss        the median of the last W losses that entered the baseline is ≤ √lossJump · B — at most halfway
 *               to the loss alarm on a log scale (vacuous before warmup, when there is no B yet);
 *   accuracy    the latest evaluation accuracy A ≥ (1 − accuracyDrop/2) · the best accuracy of a quiet round so
 *               far — at most half the fall accuracy-collapse allows (vacuous before any evaluation).
 *
 * A quiet round is not a healthy one: a climb slower than the alarms can run for hundreds of rounds, and a
 * rollback must go back to a point before it. The drivers mark each checkpoint with this verdict and roll back to
 * the newest good one. A guard that has observed nothing is good (the initial parameters).
 */

export type DivergenceKind = 'non-finite' | 'loss-jump' | 'norm-jump' | 'accuracy-collapse';

export interface DivergenceSignal {
  kind: DivergenceKind;
  /** e.g. "loss-jump: loss 5.40 > 2 × baseline 2.41" — what the round report and the logs show. */
  message: string;
}

export interface DivergenceGuardOptions {
  /** Rounds in the rolling median of the loss and the norm. */
  window: number;
  /** Values a window needs before the loss and norm tests apply. */
  warmup: number;
  lossJump: number;
  /** Consecutive rounds the loss must stay above lossJump · baseline. */
  patience: number;
  normJump: number;
  /** Largest allowed relative fall of the evaluation accuracy from the best one so far, in (0, 1]. */
  accuracyDrop: number;
}

export const DEFAULT_GUARD_OPTIONS: DivergenceGuardOptions = Object.freeze({
  window: 20,
  warmup: 5,
  lossJump: 2,
  patience: 3,
  normJump: 10,
  accuracyDrop: 0.5,
});

export interface GuardObservation {
  round: number;
  /** Training loss of the round (NaN when no included worker reported a finite one). */
  loss: number;
  /** Norm of the aggregate; undefined when the round was not aggregated (skipped). */
  updateNorm?: number;
  evaluation?: { loss: number; accuracy: number };
}

/** The detector's state as plain data. */
export interface GuardState {
  losses: number[];
  norms: number[];
  /** Lowest rolling median of the loss so far (null: none yet). */
  bestLossMedian: number | null;
  /** Highest evaluation accuracy so far (null: none yet). */
  bestAccuracy: number | null;
  /** Consecutive rounds so far with the loss above the threshold. */
  lossAbove: number;
  /** Accuracy of the latest evaluation (null or absent: none yet). */
  lastAccuracy?: number | null;
  /** The latest round raised a signal (absent: false). */
  signalled?: boolean;
}

/** The guard's verdict on the state after the latest round (see the header). */
export interface GuardHealth {
  good: boolean;
  /** Why not, e.g. "rolling median loss 1.520 > √2 × baseline 1.008"; absent when good. */
  reason?: string;
}

export class DivergenceGuard {
  readonly options: DivergenceGuardOptions;
  private losses: number[] = [];
  private norms: number[] = [];
  private bestLossMedian = Infinity;
  private bestAccuracy = -Infinity;
  private lossAbove = 0;
  private lastAccuracy = NaN;
  private signalled = false;

  constructor(options: Partial<DivergenceGuardOptions> = {}) {
    this.options = { ...DEFAULT_GUARD_OPTIONS, ...options };
    const o = this.options;
    if (!(Number.isInteger(o.window) && o.window >= 1))
      throw new RangeError('window must be an integer >= 1');
    if (!(Number.isInteger(o.warmup) && o.warmup >= 1 && o.warmup <= o.window))
      throw new RangeError('warmup must be an integer in [1, window]');
    if (!(Number.isInteger(o.patience) && o.patience >= 1))
      throw new RangeError('patience must be an integer >= 1');
    if (!(o.lossJump > 1 && o.normJump > 1)) throw new RangeError('lossJump and normJump must be > 1');
    if (!(o.accuracyDrop > 0 && o.accuracyDrop <= 1)) throw new RangeError('accuracyDrop must be in (0, 1]');
  }

  /** The signals of one round (empty: nothing wrong); a quiet round updates the baselines. */
  observe(o: GuardObservation): DivergenceSignal[] {
    const { lossJump, normJump, accuracyDrop, warmup, patience } = this.options;
    const signals: DivergenceSignal[] = [];
    const nonFinite: string[] = [];
    if (!Number.isFinite(o.loss)) nonFinite.push(`training loss ${o.loss}`);
    if (o.updateNorm !== undefined && !Number.isFinite(o.updateNorm))
      nonFinite.push(`update norm ${o.updateNorm}`);
    if (o.evaluation && !Number.isFinite(o.evaluation.loss))
      nonFinite.push(`evaluation loss ${o.evaluation.loss}`);
    if (o.evaluation && !Number.isFinite(o.evaluation.accuracy))
      nonFinite.push(`evaluation accuracy ${o.evaluation.accuracy}`);
    if (nonFinite.length)
      signals.push({ kind: 'non-finite', message: `non-finite: ${nonFinite.join(', ')}` });

    const lossHigh =
      Number.isFinite(o.loss) && this.losses.length >= warmup && o.loss > lossJump * this.bestLossMedian;
    this.lossAbove = lossHigh ? this.lossAbove + 1 : 0;
    if (lossHigh && this.lossAbove >= patience) {
      signals.push({
        kind: 'loss-jump',
        message: `loss-jump: loss ${fmt(o.loss)} > ${lossJump} × baseline ${fmt(this.bestLossMedian)}`,
      });
    }
    const norm = o.updateNorm;
    if (norm !== undefined && Number.isFinite(norm) && this.norms.length >= warmup) {
      const baseline = median(this.norms);
      if (norm > normJump * baseline) {
        signals.push({
          kind: 'norm-jump',
          message: `norm-jump: update norm ${fmt(norm)} > ${normJump} × baseline ${fmt(baseline)}`,
        });
      }
    }
    const acc = o.evaluation?.accuracy;
    if (acc !== undefined && Number.isFinite(acc) && acc < (1 - accuracyDrop) * this.bestAccuracy) {
      signals.push({
        kind: 'accuracy-collapse',
        message: `accuracy-collapse: accuracy ${pct(acc)} < ${1 - accuracyDrop} × best ${pct(this.bestAccuracy)}`,
      });
    }
    if (signals.length === 0 && !lossHigh) this.learn(o);
    this.signalled = signals.length > 0;
    if (o.evaluation) this.lastAccuracy = o.evaluation.accuracy;
    return signals;
  }

  /** Whether the state after the latest observed round is healthy (the header states the rule). */
  health(): GuardHealth {
    const { lossJump, accuracyDrop } = this.options;
    if (this.signalled) return { good: false, reason: 'the latest round raised a divergence signal' };
    if (this.lossAbove > 0) {
      return {
        good: false,
        reason: `the latest loss is above ${lossJump} × baseline ${fmt(this.bestLossMedian)}`,
      };
    }
    if (this.losses.length >= this.options.warmup && Number.isFinite(this.bestLossMedian)) {
      const rolling = median(this.losses);
      if (rolling > Math.sqrt(lossJump) * this.bestLossMedian) {
        return {
          good: false,
          reason: `rolling median loss ${fmt(rolling)} > √${lossJump} × baseline ${fmt(this.bestLossMedian)}`,
        };
      }
    }
    if (Number.isFinite(this.lastAccuracy) && Number.isFinite(this.bestAccuracy)) {
      const floor = 1 - accuracyDrop / 2;
      if (this.lastAccuracy < floor * this.bestAccuracy) {
        return {
          good: false,
          reason: `accuracy ${pct(this.lastAccuracy)} < ${floor} × best ${pct(this.bestAccuracy)}`,
        };
      }
    }
    return { good: true };
  }

  isGood(): boolean {
    return this.health().good;
  }

  private learn(o: GuardObservation): void {
    const w = this.options.window;
    this.losses.push(o.loss);
    if (this.losses.length > w) this.losses.shift();
    if (this.losses.length >= this.options.warmup)
      this.bestLossMedian = Math.min(this.bestLossMedian, median(this.losses));
    if (o.updateNorm !== undefined) {
      this.norms.push(o.updateNorm);
      if (this.norms.length > w) this.norms.shift();
    }
    if (o.evaluation) this.bestAccuracy = Math.max(this.bestAccuracy, o.evaluation.accuracy);
  }

  save(): GuardState {
    return {
      losses: [...this.losses],
      norms: [...this.norms],
      bestLossMedian: Number.isFinite(this.bestLossMedian) ? this.bestLossMedian : null,
      bestAccuracy: Number.isFinite(this.bestAccuracy) ? this.bestAccuracy : null,
      lossAbove: this.lossAbove,
      lastAccuracy: Number.isFinite(this.lastAccuracy) ? this.lastAccuracy : null,
      signalled: this.signalled,
    };
  }

  load(state: GuardState): void {
    this.losses = state.losses.slice(-this.options.window);
    this.norms = state.norms.slice(-this.options.window);
    this.bestLossMedian = state.bestLossMedian ?? Infinity;
    this.bestAccuracy = state.bestAccuracy ?? -Infinity;
    this.lossAbove = state.lossAbove;
    this.lastAccuracy = state.lastAccuracy ?? NaN;
    this.signalled = state.signalled ?? false;
  }
}

/**
 * The training loss the guard watches: the median of the losses the included workers reported, non-finite ones
 * left out (NaN when none is finite). A median, not a mean: a worker's loss is its own claim, and a Byzantine
 * minority reporting huge losses must not be able to trigger rollbacks.
 */
export function guardLoss(workers: readonly { included: boolean; loss: number }[]): number {
  const losses = workers.filter((w) => w.included && Number.isFinite(w.loss)).map((w) => w.loss);
  return losses.length ? median(losses) : NaN;
}

/** What a driver (the coordinator's JobRuntime, `phalanx simulate`) tells the guard about one closed round. */
export interface ClosedRound {
  round: number;
  /**
   * The rule produced an aggregate. False when the round was skipped (no quorum, or the rule could not run, e.g.
   * every worker excluded): nothing was applied and no included worker reported a loss, so there is nothing to
   * judge. A non-finite aggregate is aggregated, and its norm is a signal.
   */
  aggregated: boolean;
  /** The delivered workers' health: whether each counted, and the loss it reported. */
  workers: readonly { included: boolean; loss: number }[];
  /** Norm of the aggregate; undefined when the round was not aggregated. */
  updateNorm: number | undefined;
  /** The round's evaluation (NaN: none this round). */
  testAccuracy: number;
  testLoss: number;
}

/** The guard's signals for a closed round, the same way in both drivers (none without a guard). */
export function observeClosedRound(guard: DivergenceGuard | undefined, r: ClosedRound): DivergenceSignal[] {
  if (!guard || !r.aggregated) return [];
  const evaluated = Number.isFinite(r.testAccuracy) || Number.isFinite(r.testLoss);
  return guard.observe({
    round: r.round,
    loss: guardLoss(r.workers),
    updateNorm: r.updateNorm,
    ...(evaluated ? { evaluation: { loss: r.testLoss, accuracy: r.testAccuracy } } : {}),
  });
}

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const fmt = (x: number) => (Math.abs(x) >= 1e4 || Math.abs(x) < 1e-3 ? x.toExponential(2) : x.toFixed(3));
const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

/** The job cannot recover: the guard signalled again after guard.maxRollbacks rollbacks. */
export class DivergenceError extends Error {
  constructor(round: number, maxRollbacks: number, signals: readonly DivergenceSignal[]) {
    super(
      `training diverged at round ${round} (${signals.map((s) => s.message).join('; ')}) after ` +
        `${maxRollbacks} rollback(s), the most guard.maxRollbacks allows: use a more robust fallback rule, a lower ` +
        'learning rate, or raise guard.maxRollbacks',
    );
    this.name = 'DivergenceError';
  }
}
