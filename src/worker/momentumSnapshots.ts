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

  constructor(
    readonly jobId: string,
    private readonly every: number,
    private readonly keep = 2,
  ) {}

  /** Call before computing `round`'s gradient; `rollbackRound`'s snapshot is kept beyond the newest `keep`. */
  beforeRound(round: number, worker: GradientWorker, rollbackRound = 0, compressor?: WorkerCompressor): void {
    if (this.every > 0 && round % this.every === 0) {
      this.snapshots.set(round, { momentum: worker.momentumState(), compressor: compressor?.saveState() });
      const rounds = [...this.snapshots.keys()].sort((a, b) => b - a);
      for (const old of rounds.slice(this.keep)) if (old !== rollbackRound) this.snapshots.delete(old);
    }
    this.lastComputed = round;
  }

  /**
   * The worker (re)joins at `round`. Going on from a later round keeps its momentum; coming back to a round it
   * already computed means the coordinator resumed from a checkpoint: restore that round's snapshot. Returns
   * what happened, for the log.
   */
  rejoin(
    round: number,
    worker: GradientWorker,
    compressor?: WorkerCompressor,
  ): 'continued' | 'restored' | 'reset' {
    if (round > this.lastComputed) return 'continued';
    const snapshot = this.snapshots.get(round);
    const found = snapshot !== undefined;
    worker.restoreMomentum(snapshot?.momentum);
    compressor?.restoreState(snapshot?.compressor);
    this.lastComputed = round - 1;
    return found ? 'restored' : 'reset';
  }
}
