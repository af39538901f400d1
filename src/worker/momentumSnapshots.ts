/**
 * Worker momentum (and, with compression, the error-feedback memories) at the coordinator's checkpoint rounds, so
 * that a job resumed from the checkpoint of round R continues exactly as an uninterrupted run: the coordinator
 * restores parameters and optimizer state of round R, and each worker restores the momentum and memories it had
 * when it was about to compute round R.
 *
 * A snapshot is taken entering every round R that is a multiple of checkpoint.every; the newest `keep` are kept
 * (the coordinator resumes from its newest checkpoint, so two cover a crash during a checkpoint write), and the
 * one of the round a divergence-guard rollback would go back to (the coordinator's newest good checkpoint, which
 * may be older).
 *
 * The state entering the last computed round is kept as well: a worker cut off after computing a round but before
 * its push counted (a partition, a reset mid-push) computes that same round again, from the momentum it had
 * before, not from the momentum that round already moved.
 */
import type { GradientWorker } from './gradientWorker.ts';
import type { WorkerCompressor, WorkerCompressorState } from '../core/compression/compressionSession.ts';

interface Snapshot {
  momentum: Float32Array | undefined;
  compressor: WorkerCompressorState | undefined;
}

export class MomentumSnapshots {
  private readonly snapshots = new Map<number, Snapshot>();
  /** The last round this worker computed a gradient for (−1: none). */
  lastComputed = -1;
  /** The state entering `lastComputed`. */
  private entering: Snapshot | undefined;

  constructor(
    readonly jobId: string,
    private readonly every: number,
    private readonly keep = 2,
  ) {}

  /**
   * Call before computing `round`'s gradient; `rollbackRound`'s snapshot is kept beyond the newest `keep`.
   * Computing a round this worker computed before (its push did not count, or the coordinator went back to a
   * checkpoint) first puts back the state it entered that round with: the one kept for the last computed round,
   * else that checkpoint round's snapshot, else none (momentum and memories start over). A worker whose push did
   * count never computes that round again, so nothing is undone. Returns what happened, for the log.
   */
  beforeRound(
    round: number,
    worker: GradientWorker,
    rollbackRound = 0,
    compressor?: WorkerCompressor,
  ): 'continued' | 'restored' | 'reset' {
    let what: 'continued' | 'restored' | 'reset' = 'continued';
    if (round <= this.lastComputed) {
      const again = round === this.lastComputed;
      const snapshot = again ? this.entering : this.snapshots.get(round);
      worker.restoreMomentum(snapshot?.momentum);
      compressor?.restoreState(snapshot?.compressor);
      what = again || snapshot !== undefined ? 'restored' : 'reset';
    }
    this.entering = { momentum: worker.momentumState(), compressor: compressor?.saveState() };
    if (this.every > 0 && round % this.every === 0) {
      this.snapshots.set(round, this.entering);
      const rounds = [...this.snapshots.keys()].sort((a, b) => b - a);
      for (const old of rounds.slice(this.keep)) if (old !== rollbackRound) this.snapshots.delete(old);
    }
    this.lastComputed = round;
    return what;
  }
}
