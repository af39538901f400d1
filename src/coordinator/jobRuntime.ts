/**
 * One running job on the coordinator: the authoritative parameters (shared with the injected RoundComputer, which
 * aggregates and applies the optimizer off the event loop), driven round by round by a RoundEngine
 * (src/core/round/roundEngine.ts states the close rule). It knows nothing about gRPC (the services call into it)
 * and nothing about which rule or model runs (both are injected).
 *
 * Round t: workers pull version t and push a gradient for round t. Late pushes for a closed round are answered
 * LATE, duplicates DUPLICATE: both leave state untouched.
 *
 * The divergence guard (src/core/round/divergenceGuard.ts) watches every closed round; its signals go into the
 * report, and with guard.rollback the job goes back to its newest good checkpoint on the fallback rule (rollBack):
 * every checkpoint carries the guard's verdict on its state (`RuntimeGuardState.good`).
 */
import { fallbackAggregation, guardOptions, type JobSpec } from '../config/jobSpec.ts';
import {
  DivergenceError,
  DivergenceGuard,
  observeClosedRound,
  type DivergenceSignal,
  type GuardState,
} from '../core/round/divergenceGuard.ts';
import type { ParameterLayout } from '../core/layout/parameterLayout.ts';
import { layoutFingerprint } from '../core/layout/parameterLayout.ts';
import type { RoundStepResult } from '../core/roundStep.ts';
import {
  NotParticipantError,
  RoundEngine,
  systemClock,
  type Clock,
  type CloseReason,
  type Participant,
  type PushVerdict,
} from '../core/round/roundEngine.ts';
import {
  deliveredWorker,
  missingWorker,
  ruleDiagnostics,
  type RoundReport,
  type WorkerRoundHealth,
} from './roundReport.ts';
import { TypedEmitter } from './typedEmitter.ts';
import { sharedFloat32 } from './roundComputeProtocol.ts';
import { WorkerStates } from './workerStates.ts';
import { CoordinatorCompression, type PushWire } from './coordinatorCompression.ts';

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
  /** A round closed without quorum: nothing is aggregated, but it counts toward the consecutive-skip limit. */
  skip(round: number, reason: string): Promise<RoundStepResult>;
  /** optimizer.ema > 0: a copy of the iterate average (undefined before the first step). */
  averaged?(): Promise<Float32Array | undefined>;
}

/** The divergence guard's part of a job's state: what checkpoints keep and a rollback or resume restores. */
export interface RuntimeGuardState {
  /** Rollbacks made so far; after the first, the job runs the guard's fallback rule. */
  rollbacks: number;
  detector?: GuardState;
  /**
   * The detector's verdict on this state (DivergenceGuard.health): whether a rollback may go back to it. Absent
   * (no detector) counts as good.
   */
  good?: boolean;
}

export interface RuntimeHooks {
  /** Called after every round with its report (store, watchers, metrics). Awaited before the next round closes. */
  onRound(report: RoundReport): Promise<void>;
  /** Called every checkpoint.every rounds and at the end; must persist atomically. */
  onCheckpoint(runtime: JobRuntime): Promise<void>;
  /**
   * guard.rollback: restore the newest good checkpoint (`RuntimeGuardState.good`; the initial state if none is)
   * with the round computation on the guard's fallback rule; returns the round it holds and the guard state it
   * was written with.
   */
  onRollback?(runtime: JobRuntime): Promise<{ round: number; guard?: RuntimeGuardState }>;
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

interface Delivery {
  vector: Float32Array;
  loss: number;
  bytes: number;
  /** Compressed pushes: bytes per layer and the error table. */
  wire?: PushWire;
}

export type PushOutcome = { status: 'accepted' | 'duplicate' | 'late'; currentRound: number };

export type JobRuntimeEvents = {
  /** A round opened for pushes (its parameters are published), or the job ended (then round = rounds done). */
  'round-open': (round: number) => void;
  /** A round closed; its report has been persisted. */
  round: (report: RoundReport) => void;
  ended: (why: 'completed' | 'failed' | 'cancelled' | 'stopped') => void;
};

/** A worker as `phalanx status` sees it: a participant (pushed this round?) or one that left (why, when). */
export interface LiveWorkerView {
  name: string;
  rank: number;
  byzantine: string;
  pushed: boolean;
  reason: string;
  agoMs: number;
}

/** The open round and who is in it, for `phalanx status` and stalled watches. */
export interface LiveView {
  openRound: number;
  openForMs: number;
  participants: LiveWorkerView[];
  departed: LiveWorkerView[];
}

export type RuntimeStatus = 'running' | 'completed' | 'failed' | 'cancelled' | 'stopped';

/**
 * The gRPC-facing driver of one job's RoundEngine: arms the round timer, turns a close decision into an
 * aggregation step, a report, a checkpoint and the next round. The next round opens as soon as the optimizer has
 * produced its parameters, before the report and checkpoint are persisted, so a push for it is never answered
 * late; it cannot close until they are.
 */
export class JobRuntime extends TypedEmitter<JobRuntimeEvents> {
  readonly fingerprint: string;
  /**
   * The round `params` are the result of: the number of completed rounds. It moves with the optimizer step of a
   * closing round, before the next round opens.
   */
  paramsVersion: number;
  status: RuntimeStatus = 'running';

  private engine: RoundEngine<Delivery>;
  private readonly guard: DivergenceGuard | undefined;
  /** Rollbacks made so far (guard.rollback). */
  rollbacks = 0;
  /**
   * Where a rollback would go: the round of the newest good checkpoint (0: the initial state). Workers keep their
   * momentum snapshot of it (GetRound's rollback_round); the job runner sets it when it resumes a job.
   */
  rollbackRound = 0;
  /** Bumped by every rollback: a worker waiting for a later round must look again. */
  private epoch = 0;
  /** Highest round reported: a lower one reported again is a replay after a rollback. */
  private reportedUpTo = -1;
  private readonly bufferPool: Float32Array[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** A round is being aggregated (engine closed, next round not yet open). */
  private aggregating = false;
  /** The previous round's report/checkpoint is being persisted: the open round may collect but not close. */
  private persisting = false;
  private lastTrainLoss = NaN;
  private readonly startedAt = Date.now();
  private lastEval = { accuracy: NaN, loss: NaN };
  /** Parameter bytes streamed to workers since the open round opened (reported with it). */
  private bytesSent = 0;
  /** Workers that left and have not rejoined, by name (oldest first, bounded): who is missing and why. */
  private readonly departures = new Map<string, Participant & { reason: string; at: number }>();
  /** Gradient compression (compression.kind uniform | lgreco): the plan pushes must follow; undefined = dense. */
  readonly compression: CoordinatorCompression | undefined;
  /** Each worker's own state entering checkpoint rounds, by name (docs/high-availability.md). */
  readonly workerStates: WorkerStates;

  constructor(
    readonly jobId: string,
    readonly spec: JobSpec,
    readonly model: ModelHost,
    /** Shared with `compute`, which updates it during a step. */
    readonly params: Float32Array,
    private readonly compute: RoundComputer,
    private readonly hooks: RuntimeHooks,
    startRound: number,
    private readonly clock: Clock = systemClock,
    /** The guard state of the checkpoint the job resumes from. */
    guardState?: RuntimeGuardState,
    /** The compression state (CoordinatorCompression.saveState) of the checkpoint the job resumes from. */
    compressionState?: string,
  ) {
    super();
    this.fingerprint = layoutFingerprint(model.layout);
    this.paramsVersion = startRound;
    this.engine = this.newEngine(startRound);
    this.compression = CoordinatorCompression.create(spec, model.layout, startRound, compressionState);
    this.guard = spec.guard.enabled ? new DivergenceGuard(guardOptions(spec)) : undefined;
    this.workerStates = new WorkerStates(
      {
        size: model.layout.totalSize,
        momentum: spec.workers.momentum > 0,
        error: this.compression !== undefined,
      },
      2 * spec.workers.max,
    );
    this.restoreGuard(guardState);
    if (params.length !== model.layout.totalSize) {
      throw new Error(`parameters have ${params.length} elements, layout needs ${model.layout.totalSize}`);
    }
  }

  private newEngine(startRound: number): RoundEngine<Delivery> {
    const { min, max, roundTimeout } = this.spec.workers;
    return new RoundEngine<Delivery>({ min, max, roundTimeoutMs: roundTimeout }, this.clock, startRound);
  }

  private restoreGuard(state: RuntimeGuardState | undefined): void {
    this.rollbacks = state?.rollbacks ?? 0;
    if (state?.detector) this.guard?.load(state.detector);
  }

  /** What a checkpoint keeps of the guard, with the detector's verdict on the current state. */
  guardState(): RuntimeGuardState {
    return {
      rollbacks: this.rollbacks,
      ...(this.guard ? { detector: this.guard.save(), good: this.guard.isGood() } : {}),
    };
  }

  /** Why the current state is not good (undefined: it is, or the job is not guarded). */
  unhealthyReason(): string | undefined {
    return this.guard?.health().reason;
  }

  /** The rule rounds are aggregated with: the guard's fallback after a rollback. */
  get rule(): string {
    return this.rollbacks > 0 ? fallbackAggregation(this.spec).rule : this.spec.aggregation.rule;
  }

  get layout(): ParameterLayout {
    return this.model.layout;
  }

  /** Open round == parameter version workers must compute on (after the job: the number of rounds done). */
  get round(): number {
    return this.engine.round;
  }

  /** 'running' while rounds collect, 'closing' while one aggregates, else the terminal status. */
  get phase(): RuntimeStatus | 'closing' {
    return this.status === 'running' && this.aggregating ? 'closing' : this.status;
  }

  /** Start the round clock (after construction and any resume). */
  start(): void {
    if (this.engine.round >= this.spec.rounds) {
      this.engine.end();
      void this.finish().catch((e: unknown) => this.fail(e as Error));
      return;
    }
    this.openRound(this.engine.round);
  }

  // --- membership -----------------------------------------------------------------------------------------

  /** Admit a worker; a worker rejoining under the same name gets its rank back if that rank is free. */
  join(workerId: string, name: string, byzantine: string): Participant {
    const known = this.engine.participant(workerId);
    if (known) return known;
    const p = this.engine.join(workerId, name, byzantine);
    this.departures.delete(name);
    this.hooks.log(
      `worker ${name} (${workerId}) joined as rank ${p.rank}${byzantine ? ` [byzantine: ${byzantine}]` : ''}`,
    );
    this.maybeClose();
    return p;
  }

  leave(workerId: string, reason: string): void {
    const p = this.engine.leave(workerId, reason);
    if (!p) return;
    this.departures.delete(p.name);
    this.departures.set(p.name, { ...p, reason, at: this.clock.now() });
    if (this.departures.size > this.spec.workers.max + 16) {
      this.departures.delete(this.departures.keys().next().value!);
    }
    this.hooks.log(`worker ${p.name} (${workerId}) left: ${reason}`);
    this.maybeClose();
  }

  isParticipant(workerId: string): boolean {
    return this.engine.isParticipant(workerId);
  }

  participant(workerId: string): Participant | undefined {
    return this.engine.participant(workerId);
  }

  participantIds(): string[] {
    return this.engine.participantIds();
  }

  participantCount(): number {
    return this.engine.participantCount;
  }

  hasPushed(workerId: string): boolean {
    return this.engine.hasDelivered(workerId);
  }

  /** The open round, its participants (in rank order) and the workers that left and have not come back. */
  liveView(): LiveView {
    const now = this.clock.now();
    const participants = this.engine
      .participantIds()
      .map((id) => this.engine.participant(id)!)
      .sort((a, b) => a.rank - b.rank)
      .map((p) => ({
        name: p.name,
        rank: p.rank,
        byzantine: p.byzantine,
        pushed: this.engine.hasDelivered(p.workerId),
        reason: '',
        agoMs: 0,
      }));
    const departed = [...this.departures.values()].map((d) => ({
      name: d.name,
      rank: d.rank,
      byzantine: d.byzantine,
      pushed: false,
      reason: d.reason,
      agoMs: now - d.at,
    }));
    const collecting = this.engine.collecting;
    return {
      openRound: this.round,
      openForMs: collecting ? now - this.engine.openedAtMs : 0,
      participants,
      departed,
    };
  }

  // --- pushes ---------------------------------------------------------------------------------------------

  /** A dense buffer to decode one push into; return it with releaseBuffer if the push is not committed. */
  acquireBuffer(): Float32Array {
    return this.bufferPool.pop() ?? sharedFloat32(this.layout.totalSize);
  }

  releaseBuffer(buffer: Float32Array): void {
    if (buffer.length === this.layout.totalSize && this.bufferPool.length < this.spec.workers.max * 2 + 4) {
      this.bufferPool.push(buffer);
    }
  }

  /**
   * Classify a push header before its body is read; `open` claims the worker's one upload slot for the round,
   * which commit, recordRejection or abandonUpload gives back.
   */
  beginUpload(workerId: string, round: number): PushVerdict {
    return this.engine.beginUpload(workerId, round);
  }

  /** The upload ended without a verdict (client went away): free the slot, record nothing. */
  abandonUpload(workerId: string): void {
    this.engine.endUpload(workerId);
  }

  /**
   * Commit a fully validated gradient. Ownership of `vector` passes to the runtime if accepted; otherwise the
   * caller keeps it (and should release it).
   */
  commit(
    workerId: string,
    round: number,
    vector: Float32Array,
    loss: number,
    bytes: number,
    wire?: PushWire,
  ): PushOutcome {
    const verdict = this.engine.deliver(workerId, round, {
      vector,
      loss: Number.isFinite(loss) ? loss : NaN,
      bytes,
      ...(wire ? { wire } : {}),
    });
    switch (verdict.kind) {
      case 'open':
        // Answer the push first, aggregate after. grpc-js sends a client-streaming call's status only once the
        // response message is written, one event-loop turn later; closing on the first turn would hold the
        // worker's acknowledgement for the whole aggregation (~250 ms of a 64 MiB push).
        setImmediate(() => setImmediate(() => this.maybeClose()));
        return { status: 'accepted', currentRound: this.round };
      case 'duplicate':
        return { status: 'duplicate', currentRound: verdict.openRound };
      case 'late':
        return { status: 'late', currentRound: verdict.openRound };
      case 'not-participant':
        throw new NotParticipantError(workerId);
      case 'not-open':
      case 'busy':
        throw new RangeError(`round ${round} is not open (open round: ${verdict.openRound})`);
    }
  }

  /** A push from this worker for the open round was rejected (bad input); reported in the round's health. */
  recordRejection(workerId: string, round: number, reason: string): void {
    this.engine.fail(workerId, round, { kind: 'rejected', reason });
    setImmediate(() => this.maybeClose());
  }

  /**
   * Resolves once a round after `afterRound` is open, the job ends, or `waitMs` passes. After the last round
   * closes there is nothing to push until the job has ended (its final evaluation may still run).
   */
  waitForRound(afterRound: number, waitMs: number): Promise<void> {
    const epoch = this.epoch;
    const ready = () =>
      this.status !== 'running' ||
      this.epoch !== epoch ||
      (this.round > afterRound && this.round < this.spec.rounds);
    if (ready()) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.off('round-open', check);
        this.off('ended', done);
        resolve();
      };
      const check = () => {
        if (ready()) done();
      };
      const t = setTimeout(done, waitMs);
      this.on('round-open', check);
      this.on('ended', done);
    });
  }

  // --- round lifecycle ------------------------------------------------------------------------------------

  private openRound(round: number): void {
    this.engine.open(round);
    this.armTimer(this.spec.workers.roundTimeout);
    this.emit('round-open', round);
  }

  private armTimer(ms: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.onTimeout(), ms);
    this.timer.unref?.();
  }

  private onTimeout(): void {
    if (this.status !== 'running' || !this.engine.collecting) return;
    this.maybeClose();
    if (this.engine.collecting && !this.persisting) {
      // Still open after roundTimeout: too few accepted gradients to make progress. Say so, and look again.
      this.hooks.log(
        `round ${this.round}: ${this.engine.acceptedCount}/${this.spec.workers.min} gradients after roundTimeout; waiting for workers`,
      );
      this.armTimer(this.spec.workers.roundTimeout);
    }
  }

  private maybeClose(): void {
    if (this.status !== 'running' || this.persisting || this.aggregating) return;
    const why = this.engine.decide();
    if (why) void this.closeRound(why);
  }

  /** A PullParameters stream wrote `bytes` of parameters to a worker. */
  recordBytesSent(bytes: number): void {
    this.bytesSent += bytes;
  }

  /** A line for the job's log (e.g. a teacher served to a worker). */
  note(message: string): void {
    this.hooks.log(message);
  }

  private async closeRound(why: CloseReason): Promise<void> {
    const closed = this.engine.close(why);
    const bytesSent = this.bytesSent;
    this.bytesSent = 0;
    // The round's compressed traffic, and on a re-plan round the next plan (before the next round opens).
    const compression = this.compression?.closeRound(
      closed.round,
      closed.deliveries.map((d) => d.payload.wire),
    );
    this.aggregating = true;
    clearTimeout(this.timer);
    const round = closed.round;
    try {
      const vectors = closed.deliveries.map((d) => d.payload.vector);
      const ids = closed.deliveries.map((d) => d.participant.workerId);
      const step =
        why === 'no-quorum'
          ? await this.compute.skip(
              round,
              `quorum not met: ${vectors.length} of workers.min = ${this.spec.workers.min} gradients accepted`,
            )
          : await this.compute.step(round, vectors, ids);
      if (this.status !== 'running') return; // cancelled or stopped while the round computed
      const { result, skipReason, updateNorm, aggregateMs, optimizeMs } = step;
      this.paramsVersion = round + 1;

      const workers: WorkerRoundHealth[] = closed.deliveries.map((d, i) =>
        deliveredWorker({ ...d.participant, loss: d.payload.loss }, result?.workers[i], skipReason),
      );
      const missing = closed.missing.map((m) => missingWorker(m.participant, m.reason, m.code));
      let lossSum = 0;
      let lossCount = 0;
      for (const w of workers) {
        if (w.included && Number.isFinite(w.loss)) {
          lossSum += w.loss;
          lossCount++;
        }
      }
      if (lossCount) this.lastTrainLoss = lossSum / lossCount;
      let bytes = 0;
      for (const d of closed.deliveries) {
        bytes += d.payload.bytes;
        this.releaseBuffer(d.payload.vector);
      }

      // Publish the new parameters: the next round collects while this one's report and checkpoint persist.
      const completedRounds = round + 1;
      const isLast = completedRounds >= this.spec.rounds;
      this.persisting = true;
      this.aggregating = false;
      if (isLast) this.engine.end(completedRounds);
      else this.openRound(completedRounds);

      const evalEvery = this.spec.evaluation.every;
      let testAccuracy = NaN;
      let testLoss = NaN;
      let evaluateMs = 0;
      if (isLast || (evalEvery > 0 && completedRounds % evalEvery === 0)) {
        const evaluating = performance.now();
        const ev = await this.model.evaluate(await this.deliveredParams());
        evaluateMs = performance.now() - evaluating;
        testAccuracy = ev.accuracy;
        testLoss = ev.loss;
        this.lastEval = ev;
      }
      const signals = observeClosedRound(this.guard, {
        round,
        aggregated: result !== undefined,
        workers,
        updateNorm: result ? updateNorm : undefined,
        testAccuracy,
        testLoss,
      });
      const report: RoundReport = {
        jobId: this.jobId,
        round,
        rule: this.rule,
        workers,
        missing,
        updateNorm,
        trainLoss: this.lastTrainLoss,
        testAccuracy,
        testLoss,
        timings: {
          collectMs: closed.collectMs,
          aggregateMs,
          optimizeMs,
          totalMs: closed.collectMs + aggregateMs + optimizeMs,
          evaluateMs,
        },
        bytesReceived: bytes,
        bytesSent,
        diagnostics: ruleDiagnostics(this.rule, result?.diagnostics, workers),
        finishedAtMs: Date.now(),
        divergence: signals.map((s) => s.message),
        rollbacks: this.rollbacks,
        replay: round <= this.reportedUpTo,
        ...(compression ? { compression } : {}),
      };
      this.reportedUpTo = Math.max(this.reportedUpTo, round);
      if (signals.length) this.hooks.log(`round ${round}: ${report.divergence.join('; ')}`);
      await this.hooks.onRound(report);
      this.emit('round', report);
      if (signals.length && this.spec.guard.rollback && this.hooks.onRollback) {
        // Nothing of this round is kept: no checkpoint, back to the newest good one.
        await this.rollBack(round, signals);
        this.persisting = false;
        this.maybeClose();
        return;
      }
      const every = this.spec.checkpoint.every;
      if (isLast || (every > 0 && completedRounds % every === 0)) await this.checkpoint();
      this.persisting = false;
      if (this.status !== 'running') return;
      if (isLast) await this.finish();
      else this.maybeClose();
    } catch (e) {
      this.aggregating = false;
      this.persisting = false;
      this.fail(e as Error);
    }
  }

  /**
   * Back to the newest good checkpoint on the guard's fallback rule. Every participant is let go: workers rejoin at
   * the checkpoint's round, as after a coordinator restart, and restore their momentum of that round.
   */
  private async rollBack(round: number, signals: DivergenceSignal[]): Promise<void> {
    const max = this.spec.guard.maxRollbacks;
    if (this.rollbacks >= max) throw new DivergenceError(round, max, signals);
    clearTimeout(this.timer);
    this.engine.end();
    const back = await this.hooks.onRollback!(this);
    if (this.status !== 'running') return;
    // The detector as it was at that checkpoint; the rollback count only grows.
    this.guard?.load(back.guard?.detector ?? new DivergenceGuard(guardOptions(this.spec)).save());
    this.rollbacks++;
    this.hooks.log(
      `round ${round}: rollback ${this.rollbacks}/${max} to round ${back.round}, continuing with ${this.rule}`,
    );
    this.paramsVersion = back.round;
    this.rollbackRound = back.round;
    this.engine = this.newEngine(back.round);
    // Written again with the rollback counted, so a coordinator restart continues on the fallback rule.
    if (this.spec.checkpoint.every > 0) await this.checkpoint();
    this.epoch++;
    this.openRound(back.round);
  }

  /** The model the job delivers: the iterate average with optimizer.ema > 0 (once there is one), else params. */
  private async deliveredParams(): Promise<Float32Array> {
    return (await this.compute.averaged?.()) ?? this.params;
  }

  /** Write a checkpoint of the current state; a good one becomes the rollback target once it is persisted. */
  private async checkpoint(): Promise<void> {
    const round = this.round;
    const good = this.guard?.isGood() ?? true;
    await this.hooks.onCheckpoint(this);
    if (good) this.rollbackRound = round;
  }

  private async finish(): Promise<void> {
    this.status = 'completed';
    this.engine.end();
    clearTimeout(this.timer);
    if (!Number.isFinite(this.lastEval.accuracy)) {
      this.lastEval = await this.model.evaluate(await this.deliveredParams());
    }
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

  private end(status: Exclude<RuntimeStatus, 'running' | 'completed'>): boolean {
    if (this.status !== 'running') return false;
    this.status = status;
    this.engine.end();
    clearTimeout(this.timer);
    return true;
  }

  fail(error: Error): void {
    if (!this.end('failed')) return;
    this.hooks.onError(error);
    this.emit('ended', 'failed');
  }

  cancel(): void {
    if (!this.end('cancelled')) return;
    this.emit('ended', 'cancelled');
  }

  /** Stop timers without changing the job's state (coordinator shutdown). */
  stop(): void {
    if (!this.end('stopped')) return;
    this.emit('ended', 'stopped');
  }
}
