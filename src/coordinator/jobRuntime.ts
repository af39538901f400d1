/**
 * The synchronous round engine of one running job (architecture.md §2). It holds the authoritative parameters
 * (shared with the injected RoundComputer, which aggregates and applies the optimizer off the event loop); it
 * knows nothing about gRPC (the services call into it) and nothing about which rule or model runs (both are
 * injected).
 *
 * Round t: workers pull version t, push a gradient for round t; the round closes when every live participant
 * has pushed (and at least workers.min did), or when roundTimeout passed with at least workers.min gradients.
 * Late pushes for a closed round are acknowledged as LATE, duplicates as DUPLICATE: both leave state untouched.
 */
import { EventEmitter } from 'node:events';
import type { JobSpec } from '../config/jobSpec.ts';
import type { ParameterLayout } from '../core/layout/parameterLayout.ts';
import { layoutFingerprint } from '../core/layout/parameterLayout.ts';
import type { RoundStepResult } from '../core/roundStep.ts';
import { sharedFloat32 } from './roundComputeProtocol.ts';
import { deliveredWorker, missingWorker, type RoundReport, type WorkerRoundHealth } from './roundReport.ts';

/** What the engine needs from the model side (built by the job manager from the spec). */
export interface ModelHost {
  layout: ParameterLayout;
  evaluate(params: Float32Array): Promise<{ accuracy: number; loss: number }>;
}

/**
 * One round's aggregation and optimizer step, applied to the runtime's `params` in place, off the event loop
 * (RoundCompute: a worker thread with a compute deadline).
 */
export interface RoundComputer {
  step(round: number, vectors: Float32Array[], workerIds: string[]): Promise<RoundStepResult>;
}

export interface RuntimeHooks {
  /** Called after every round with its report (store, watchers, metrics). Awaited before the next round opens. */
  onRound(report: RoundReport): Promise<void>;
  /** Called every checkpoint.every rounds and at the end; must persist atomically. */
  onCheckpoint(runtime: JobRuntime): Promise<void>;
  /** Called once when all rounds are done, with the final evaluation. */
  onComplete(result: JobResult): Promise<void>;
  onError(error: Error): void;
  log(message: string): void;
}

export interface JobResult {
  rounds: number;
  testAccuracy: number;
  testLoss: number;
  finalLoss: number;
  wallSeconds: number;
}

export interface Participant {
  workerId: string;
  name: string;
  rank: number;
  byzantine: string;
  joinedAtRound: number;
}

interface Delivery {
  vector: Float32Array;
  loss: number;
  bytes: number;
}

export type PushOutcome = { status: 'accepted' | 'duplicate' | 'late'; currentRound: number };

export class JobRuntime extends EventEmitter {
  readonly fingerprint: string;
  /** Open round == parameter version workers must compute on. */
  round: number;
  /**
   * The round `params` are the result of: the number of completed rounds. It moves with the optimizer step of a
   * closing round, before `round` advances (evaluation and the report come in between), so a pull in that window
   * is labelled with the version it really carries.
   */
  paramsVersion: number;
  phase: 'running' | 'closing' | 'completed' | 'failed' | 'cancelled' = 'running';

  private readonly participants = new Map<string, Participant>();
  private readonly delivered = new Map<string, Delivery>();
  private readonly missingThisRound = new Map<string, string>();
  private readonly bufferPool: Float32Array[] = [];
  private roundOpenedAt = Date.now();
  private timer: NodeJS.Timeout | undefined;
  private lastTrainLoss = NaN;
  private readonly startedAt = Date.now();
  private lastEval = { accuracy: NaN, loss: NaN };
  /** Cancelled or stopped: a round still computing is dropped when it returns. */
  private halted = false;

  constructor(
    readonly jobId: string,
    readonly spec: JobSpec,
    readonly model: ModelHost,
    /** Shared with `compute`, which updates it during a step. */
    readonly params: Float32Array,
    private readonly compute: RoundComputer,
    private readonly hooks: RuntimeHooks,
    startRound: number,
  ) {
    super();
    this.setMaxListeners(0);
    this.fingerprint = layoutFingerprint(model.layout);
    this.round = startRound;
    this.paramsVersion = startRound;
    if (params.length !== model.layout.totalSize) {
      throw new Error(`parameters have ${params.length} elements, layout needs ${model.layout.totalSize}`);
    }
  }

  get layout(): ParameterLayout {
    return this.model.layout;
  }

  /** Start the round clock (after construction and any resume). */
  start(): void {
    if (this.round >= this.spec.rounds) {
      void this.finish();
      return;
    }
    this.openRound(this.round);
  }

  // --- membership -----------------------------------------------------------------------------------------

  /** Admit a worker; a worker rejoining under the same name gets its rank back if that rank is free. */
  join(workerId: string, name: string, byzantine: string): Participant {
    const existing = this.participants.get(workerId);
    if (existing) return existing;
    const taken = new Set([...this.participants.values()].map((p) => p.rank));
    if (taken.size >= this.spec.workers.max) {
      throw new JobFullError(
        `job ${this.jobId} already has workers.max = ${this.spec.workers.max} participants`,
      );
    }
    // Prefer the rank encoded in the worker's name (worker-3 → 3), so a restarted slot keeps its data shard.
    const match = /(\d+)$/.exec(name);
    let rank = match ? Number(match[1]) % this.spec.workers.max : -1;
    if (rank < 0 || taken.has(rank)) {
      rank = 0;
      while (taken.has(rank)) rank++;
    }
    const participant: Participant = { workerId, name, rank, byzantine, joinedAtRound: this.round };
    this.participants.set(workerId, participant);
    this.hooks.log(
      `worker ${name} (${workerId}) joined as rank ${rank}${byzantine ? ` [byzantine: ${byzantine}]` : ''}`,
    );
    this.maybeClose();
    return participant;
  }

  leave(workerId: string, reason: string): void {
    const p = this.participants.get(workerId);
    if (!p) return;
    this.participants.delete(workerId);
    if (!this.delivered.has(workerId)) this.missingThisRound.set(workerId, reason);
    this.hooks.log(`worker ${p.name} (${workerId}) left: ${reason}`);
    this.missingParticipants.set(workerId, p);
    this.maybeClose();
  }

  private readonly missingParticipants = new Map<string, Participant>();

  isParticipant(workerId: string): boolean {
    return this.participants.has(workerId);
  }

  participant(workerId: string): Participant | undefined {
    return this.participants.get(workerId);
  }

  participantIds(): string[] {
    return [...this.participants.keys()];
  }

  participantCount(): number {
    return this.participants.size;
  }

  hasPushed(workerId: string): boolean {
    return this.delivered.has(workerId);
  }

  // --- pushes ---------------------------------------------------------------------------------------------

  /**
   * A dense buffer to decode one push into; return it with releaseBuffer if the push is not committed. Shared
   * memory, so the compute thread reads committed gradients without a copy.
   */
  acquireBuffer(): Float32Array {
    return this.bufferPool.pop() ?? sharedFloat32(this.layout.totalSize);
  }

  releaseBuffer(buffer: Float32Array): void {
    if (buffer.length === this.layout.totalSize && this.bufferPool.length < this.spec.workers.max * 2 + 4) {
      this.bufferPool.push(buffer);
    }
  }

  /** Classify a push header before its body is read (so a late or duplicate push is not decoded). */
  precheck(workerId: string, round: number): PushOutcome | undefined {
    if (round < this.round || this.phase !== 'running') return { status: 'late', currentRound: this.round };
    if (round === this.round && this.delivered.has(workerId)) {
      return { status: 'duplicate', currentRound: this.round };
    }
    return undefined;
  }

  /**
   * Commit a fully validated gradient. Ownership of `vector` passes to the runtime if accepted; otherwise the
   * caller keeps it (and should release it).
   */
  commit(workerId: string, round: number, vector: Float32Array, loss: number, bytes: number): PushOutcome {
    const pre = this.precheck(workerId, round);
    if (pre) return pre;
    if (round > this.round) throw new RangeError(`round ${round} is not open yet (open: ${this.round})`);
    if (!this.participants.has(workerId)) throw new NotParticipantError(workerId, this.jobId);
    this.delivered.set(workerId, { vector, loss: Number.isFinite(loss) ? loss : NaN, bytes });
    this.missingThisRound.delete(workerId);
    // Answer the push first, aggregate after. grpc-js sends a client-streaming call's status only once the
    // response message is written, one event-loop turn later; closing on the first turn would hold the worker's
    // acknowledgement for the whole aggregation (measured: ~250 ms of a 64 MiB push).
    setImmediate(() => setImmediate(() => this.maybeClose()));
    return { status: 'accepted', currentRound: this.round };
  }

  /** A push from this worker for the open round was rejected (bad input); reported in the round's health. */
  recordRejection(workerId: string, round: number, reason: string): void {
    if (round === this.round && !this.delivered.has(workerId)) {
      this.missingThisRound.set(workerId, `rejected: ${reason}`);
      setImmediate(() => this.maybeClose());
    }
  }

  /** Resolves once the open round is greater than `afterRound`, the job ends, or `waitMs` passes. */
  waitForRound(afterRound: number, waitMs: number): Promise<void> {
    if (this.round > afterRound || (this.phase !== 'running' && this.phase !== 'closing'))
      return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.off('round-open', check);
        this.off('ended', done);
        resolve();
      };
      const check = () => {
        if (this.round > afterRound) done();
      };
      const t = setTimeout(done, waitMs);
      this.on('round-open', check);
      this.on('ended', done);
    });
  }

  // --- round lifecycle ------------------------------------------------------------------------------------

  private openRound(round: number): void {
    this.round = round;
    this.phase = 'running';
    this.roundOpenedAt = Date.now();
    this.missingThisRound.clear();
    this.missingParticipants.clear();
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.onTimeout(), this.spec.workers.roundTimeout);
    this.timer.unref?.();
    this.emit('round-open', round);
  }

  private onTimeout(): void {
    if (this.phase !== 'running') return;
    if (this.delivered.size >= this.spec.workers.min) {
      void this.closeRound('timeout');
    } else {
      // Keep waiting: too few gradients to make progress. Re-arm and say so.
      this.hooks.log(
        `round ${this.round}: ${this.delivered.size}/${this.spec.workers.min} gradients after roundTimeout; waiting for workers`,
      );
      this.timer = setTimeout(() => this.onTimeout(), this.spec.workers.roundTimeout);
      this.timer.unref?.();
    }
  }

  private maybeClose(): void {
    if (this.phase !== 'running') return;
    const enough = this.delivered.size >= this.spec.workers.min;
    let allIn = this.participants.size > 0;
    for (const id of this.participants.keys()) {
      // A worker whose push for this round was rejected has had its say: don't wait for it until the timeout.
      if (!this.delivered.has(id) && !this.missingThisRound.get(id)?.startsWith('rejected')) {
        allIn = false;
        break;
      }
    }
    // Everyone has answered but some pushes were rejected: close rather than wait forever (a round with no valid
    // gradient is skipped, and a job whose rounds keep failing fails — e.g. after its workers diverged to NaN).
    const rejected = [...this.missingThisRound.values()].some((r) => r.startsWith('rejected'));
    if (allIn && (enough || rejected)) void this.closeRound('quorum');
  }

  private async closeRound(why: 'quorum' | 'timeout'): Promise<void> {
    if (this.phase !== 'running') return;
    this.phase = 'closing';
    clearTimeout(this.timer);
    const round = this.round;
    const tCollect = Date.now() - this.roundOpenedAt;
    try {
      // Deterministic input order: by rank (then id), so distributed runs match simulation.
      const entries = [...this.delivered.entries()]
        .map(([id, d]) => ({ id, d, p: this.participants.get(id) ?? this.missingParticipants.get(id) }))
        .sort((a, b) => (a.p?.rank ?? 1e9) - (b.p?.rank ?? 1e9) || (a.id < b.id ? -1 : 1));
      const vectors = entries.map((e) => e.d.vector);
      const ids = entries.map((e) => e.id);

      const { result, skipReason, updateNorm, aggregateMs, optimizeMs } = await this.compute.step(
        round,
        vectors,
        ids,
      );
      if (this.halted) return; // cancelled or stopped while the round computed
      this.paramsVersion = round + 1;

      const workers: WorkerRoundHealth[] = entries.map((e, i) =>
        deliveredWorker(
          {
            workerId: e.id,
            name: e.p?.name ?? e.id,
            rank: e.p?.rank ?? -1,
            byzantine: e.p?.byzantine ?? '',
            loss: e.d.loss,
          },
          result?.workers[i],
          skipReason,
        ),
      );
      const missing: WorkerRoundHealth[] = [];
      for (const [id, p] of this.participants) {
        if (!this.delivered.has(id))
          missing.push(missingWorker(p, this.missingThisRound.get(id) ?? `late (${why})`));
      }
      for (const [id, reason] of this.missingThisRound) {
        const p = this.missingParticipants.get(id);
        if (p && !this.participants.has(id)) missing.push(missingWorker(p, reason));
      }
      let lossSum = 0;
      let lossCount = 0;
      for (const w of workers) {
        if (w.included && Number.isFinite(w.loss)) {
          lossSum += w.loss;
          lossCount++;
        }
      }
      this.lastTrainLoss = lossCount ? lossSum / lossCount : this.lastTrainLoss;
      let bytes = 0;
      for (const d of this.delivered.values()) bytes += d.bytes;

      // Return buffers and advance the version before evaluation so pulls can proceed meanwhile.
      for (const d of this.delivered.values()) this.releaseBuffer(d.vector);
      this.delivered.clear();
      const completedRounds = round + 1;
      const evalEvery = this.spec.evaluation.every;
      const isLast = completedRounds >= this.spec.rounds;
      let testAccuracy = NaN;
      let testLoss = NaN;
      if (isLast || (evalEvery > 0 && completedRounds % evalEvery === 0)) {
        const ev = await this.model.evaluate(this.params);
        testAccuracy = ev.accuracy;
        testLoss = ev.loss;
        this.lastEval = ev;
      }
      const report: RoundReport = {
        jobId: this.jobId,
        round,
        rule: this.spec.aggregation.rule,
        workers,
        missing,
        updateNorm,
        trainLoss: this.lastTrainLoss,
        testAccuracy,
        testLoss,
        timings: {
          collectMs: tCollect,
          aggregateMs,
          optimizeMs,
          totalMs: Date.now() - this.roundOpenedAt,
        },
        bytesReceived: bytes,
        finishedAtMs: Date.now(),
      };
      this.round = completedRounds;
      await this.hooks.onRound(report);
      this.emit('round', report);
      const every = this.spec.checkpoint.every;
      if (isLast || (every > 0 && completedRounds % every === 0)) await this.hooks.onCheckpoint(this);
      if (isLast) {
        await this.finish();
      } else if (this.phase === 'closing') {
        this.openRound(completedRounds);
        this.maybeClose();
      }
    } catch (e) {
      if (!this.halted) this.fail(e as Error);
    }
  }

  private async finish(): Promise<void> {
    this.phase = 'completed';
    clearTimeout(this.timer);
    if (!Number.isFinite(this.lastEval.accuracy)) this.lastEval = await this.model.evaluate(this.params);
    const result: JobResult = {
      rounds: this.round,
      testAccuracy: this.lastEval.accuracy,
      testLoss: this.lastEval.loss,
      finalLoss: this.lastTrainLoss,
      wallSeconds: (Date.now() - this.startedAt) / 1000,
    };
    await this.hooks.onComplete(result);
    this.emit('round-open', this.round);
    this.emit('ended', 'completed');
  }

  fail(error: Error): void {
    if (this.phase === 'failed') return;
    this.phase = 'failed';
    clearTimeout(this.timer);
    this.hooks.onError(error);
    this.emit('ended', 'failed');
  }

  cancel(): void {
    this.halted = true;
    this.phase = 'cancelled';
    clearTimeout(this.timer);
    this.emit('ended', 'cancelled');
  }

  /** Stop timers without changing the job's state (coordinator shutdown). */
  stop(): void {
    this.halted = true;
    clearTimeout(this.timer);
    this.emit('ended', 'stopped');
  }
}

export class JobFullError extends Error {}

export class NotParticipantError extends Error {
  constructor(workerId: string, jobId: string) {
    super(`worker ${workerId} is not a participant of job ${jobId}: call JoinJob`);
  }
}
