/**
 * Spec → runtime: builds a starting job's model host and its round-compute thread (aggregation pipeline and
 * optimizer, off the event loop), resumes them from the job's last checkpoint, wires the runtime's hooks (round reports, checkpoints, completion, failure) and publishes
 * it with the `run` transition (starting → running). If that compare-and-set fails — the job was cancelled while
 * its runtime was being built — the runtime is disposed without ever having been visible to a worker.
 */
import { randomUUID } from 'node:crypto';
import { fallbackAggregation, validateJobSpec, type JobSpec } from '../config/jobSpec.ts';
import { newestGoodCheckpoint, readCheckpoint, writeCheckpoint } from '../checkpoint/checkpoint.ts';
import { decodeJobState, encodeJobState } from '../checkpoint/jobState.ts';
import { moeExpertGroups } from '../models/moeSpec.ts';
import { JobRuntime, type JobResult, type RuntimeGuardState } from './jobRuntime.ts';
import { buildModelHost, type CoordinatorModelHost } from './modelHost.ts';
import { RoundCompute, type ComputeState } from './roundCompute.ts';
import { checkpointDirectory, type AdmissionConfig } from './admission.ts';
import { clientMessage } from './grpcStatus.ts';
import type { JobEvents, TypedEmitter } from './jobEvents.ts';
import type { JobQueue } from './jobQueue.ts';
import { StaleFenceError, type JobRecord, type StateStore } from './state/stateStore.ts';
import { NotLeaderError } from './leadership.ts';
import { retryWhileUnavailable, type StoreWait } from './storeRetry.ts';

/** How the runner keeps a deposed leader from writing (leadership.ts); absent: a single unfenced coordinator. */
export interface JobFencing {
  /** Throws NotLeaderError unless this coordinator still holds the lease under `token`. */
  assertHolds(token: number | undefined): void;
  /**
   * A write under `token` was refused as stale (or the lease ran out): stop running jobs and stand by. A token
   * of an earlier term (a write still under way when it ended) deposes nothing.
   */
  lost(reason: string, token: number | undefined): void;
}

export interface JobRunnerOptions {
  /** Where checkpoints go (the spec names at most a sub-directory), data roots, memory budget. */
  admission: AdmissionConfig;
  /** Round reports kept per job in the store. */
  historyLength?: number;
  log: (message: string) => void;
  fencing?: JobFencing;
}

interface Launch {
  /** Set when the job was cancelled while its runtime was being built: the runtime must not be published. */
  aborted: boolean;
}

export class JobRunner {
  private readonly runtimes = new Map<string, JobRuntime>();
  private readonly launching = new Map<string, Launch>();
  private stopped = false;
  private readonly log: (message: string) => void;

  constructor(
    private readonly store: StateStore,
    private readonly queue: JobQueue,
    private readonly events: TypedEmitter<JobEvents>,
    private readonly options: JobRunnerOptions,
  ) {
    this.log = options.log;
  }

  runtime(id: string): JobRuntime | undefined {
    return this.runtimes.get(id);
  }

  /** Published runtimes. */
  all(): IterableIterator<JobRuntime> {
    return this.runtimes.values();
  }

  /** Whether this coordinator runs or is building the job's runtime. */
  has(id: string): boolean {
    return this.runtimes.has(id) || this.launching.has(id);
  }

  /** Jobs whose runtime is being built right now. */
  get launchingCount(): number {
    return this.launching.size;
  }

  /**
   * Build the runtime of a job in state `starting` and publish it (starting → running). A job that fails to
   * build fails (starting → failed, with a client-safe message); one cancelled meanwhile is discarded.
   */
  async launch(job: JobRecord, resume: boolean, fence?: number): Promise<void> {
    const launch: Launch = { aborted: false };
    this.launching.set(job.id, launch);
    this.log(`job ${job.id}: building its runtime${resume ? ' (resume)' : ''}`);
    try {
      let built: { runtime: JobRuntime; dispose: () => Promise<void> } | undefined;
      try {
        // Take the job over first: from here on the previous leader's writes to it are refused.
        if (fence !== undefined) await this.store.fenceJob(job.id, fence);
        // Cancelled, deposed or stopping meanwhile: nothing to build.
        if (!launch.aborted && !this.stopped) built = await this.build(job, resume, fence);
      } catch (e) {
        await this.fail(job.id, e as Error, fence);
        return;
      }
      // Shutting down or deposed: publish nothing and leave the job as it is (the next leader resumes it).
      const running =
        !built || launch.aborted || this.stopped
          ? undefined
          : await this.fenced(fence, () => this.queue.transition(job.id, 'run', undefined, fence));
      if (!built || !running || launch.aborted || this.stopped) {
        await built?.dispose();
        const state = this.stopped ? 'coordinator stopping' : await this.stateOf(job.id);
        this.log(`job ${job.id}: runtime discarded before it started (${state})`);
        this.events.emit('runtimeDiscarded', job.id, state);
        return;
      }
      const { runtime, dispose } = built;
      this.runtimes.set(job.id, runtime);
      runtime.once('ended', () => void dispose());
      runtime.start();
      this.log(`job ${job.id}: runtime started at round ${runtime.round}`);
      this.events.emit('runtimeStarted', job.id);
    } finally {
      if (this.launching.get(job.id) === launch) this.launching.delete(job.id);
    }
  }

  /** What this coordinator is doing with the job: building its runtime, running it, or nothing. */
  stageOf(id: string): 'starting' | 'running' | undefined {
    return this.launching.has(id) ? 'starting' : this.runtimes.has(id) ? 'running' : undefined;
  }

  /** The job was cancelled: end its runtime, or make sure the one being built is never published. */
  cancel(id: string): void {
    const launch = this.launching.get(id);
    if (launch) launch.aborted = true;
    this.runtimes.get(id)?.cancel();
    this.runtimes.delete(id);
  }

  /** Stop every runtime without changing job states (coordinator shutdown). */
  stop(): void {
    this.stopped = true;
    this.standDown();
  }

  /**
   * Stop every runtime and abandon every launch without changing job states: this coordinator lost the lease
   * (the new leader resumes them) or shuts down.
   */
  standDown(): void {
    for (const launch of this.launching.values()) launch.aborted = true;
    for (const rt of this.runtimes.values()) rt.stop();
    this.runtimes.clear();
  }

  /**
   * Run one write of a job under `fence`: first the local lease check, then the store's token check (inside the
   * write). A refusal deposes this leader (JobFencing.lost) and is rethrown.
   */
  private async fenced<T>(fence: number | undefined, write: () => Promise<T>): Promise<T> {
    try {
      if (fence !== undefined) this.options.fencing?.assertHolds(fence);
      return await write();
    } catch (e) {
      if (isFencingError(e)) this.options.fencing?.lost((e as Error).message, fence);
      throw e;
    }
  }

  /**
   * A fenced write the job cannot go on without: while the store does not answer, the job waits at it and tries
   * again with backoff (storeRetry.ts) as long as `live()` and this coordinator runs; each attempt checks the
   * lease first, so a leader whose lease ran out meanwhile stops instead of writing. `onWait` sees each failure.
   */
  private async durable<T>(
    jobId: string,
    what: string,
    live: () => boolean,
    fence: number | undefined,
    write: () => Promise<T>,
    onWait?: (wait: StoreWait) => void,
  ): Promise<T> {
    const { value, wait } = await retryWhileUnavailable(() => this.fenced(fence, write), {
      proceed: () => live() && !this.stopped,
      onUnavailable: (w) => {
        if (w.failedAttempts === 1)
          this.log(
            `job ${jobId}: ${what}: the store does not answer (${w.lastError}); the job waits and tries again`,
          );
        else if (w.failedAttempts % 10 === 0)
          this.log(
            `job ${jobId}: ${what}: still no store after ${seconds(w.waitedMs)} (${w.failedAttempts} attempts)`,
          );
        onWait?.(w);
      },
    });
    if (wait)
      this.log(
        `job ${jobId}: ${what}: done after ${seconds(wait.waitedMs)} without the store (${wait.failedAttempts} failed attempts)`,
      );
    return value;
  }

  async fail(id: string, error: Error, fence?: number): Promise<void> {
    if (isFencingError(error)) {
      // Not the job's failure: this coordinator may no longer write it. The new leader goes on with it.
      this.runtimes.get(id)?.stop();
      this.runtimes.delete(id);
      this.log(`job ${id}: write refused (${error.message}); leaving the job to the current leader`);
      this.options.fencing?.lost(error.message, fence);
      return;
    }
    const message = clientMessage(error, `job ${id}`);
    this.runtimes.get(id)?.stop();
    this.runtimes.delete(id);
    let failed;
    try {
      // Durable like a round's commit: a job whose failure could not be written while the store was away would
      // stay `running` with no runtime until the next leader took over.
      failed = await this.durable(
        id,
        'failure',
        () => true,
        fence,
        () => this.queue.transition(id, 'fail', { error: message }, fence),
      );
    } catch (e) {
      if (!isFencingError(e)) throw e;
      this.log(`job ${id}: not marked failed (${(e as Error).message}); leaving it to the current leader`);
      return;
    }
    this.log(failed ? `job ${id} failed: ${message}` : `job ${id}: error after it had ended: ${message}`);
  }

  private async stateOf(id: string): Promise<string> {
    try {
      return `job is ${(await this.store.getJob(id))?.state ?? 'gone'}`;
    } catch {
      return 'job state unknown';
    }
  }

  private async build(
    job: JobRecord,
    resume: boolean,
    fence: number | undefined,
  ): Promise<{ runtime: JobRuntime; dispose: () => Promise<void> }> {
    const spec = validateJobSpec(JSON.parse(job.spec));
    const host = await buildModelHost(spec);
    if (host.startLine && !resume) this.log(`job ${job.id}: ${host.startLine}`);
    let compute: RoundCompute | undefined;
    const dispose = async () => {
      await Promise.all([host.dispose(), compute?.dispose()]);
    };
    try {
      const built = await this.buildWith(job, spec, host, resume, fence);
      compute = built.compute;
      return { runtime: built.runtime, dispose };
    } catch (e) {
      await dispose();
      throw e;
    }
  }

  private async buildWith(
    job: JobRecord,
    spec: JobSpec,
    host: CoordinatorModelHost,
    resume: boolean,
    fence: number | undefined,
  ): Promise<{ runtime: JobRuntime; compute: RoundCompute }> {
    const fenced = <T>(write: () => Promise<T>) => this.fenced(fence, write);
    // The runtime's own writes wait out a store outage (durable); they stop once the runtime has ended.
    const live = () => runtime.status === 'running' || runtime.status === 'completed';
    const durable = <T>(what: string, write: () => Promise<T>, onWait?: (wait: StoreWait) => void) =>
      this.durable(job.id, what, live, fence, write, onWait);
    let params = host.initialParameters();
    let startRound = 0;
    let resumed: ComputeState | undefined;
    let guard: RuntimeGuardState | undefined;
    let compression: string | undefined;
    let rollbackRound = 0;
    let workerStates: Map<string, Float32Array> | undefined;
    const checkpointDir = checkpointDirectory(spec, this.options.admission);
    if (resume) {
      const manifest = await this.store.getCheckpointManifest(job.id);
      if (manifest) {
        const saved = decodeJobState(await readCheckpoint(manifest), job.id, manifest.round, host.layout);
        params = saved.params;
        resumed = { optimizer: saved.optimizer, aggregation: saved.aggregation };
        guard = saved.guard === undefined ? undefined : (JSON.parse(saved.guard) as RuntimeGuardState);
        compression = saved.compression;
        workerStates = saved.workers;
        startRound = manifest.round;
        rollbackRound = (await newestGoodCheckpoint(checkpointDir, job.id, manifest.round))?.round ?? 0;
        this.log(`job ${job.id}: resumed from checkpoint at round ${startRound} (${manifest.path})`);
      } else {
        this.log(`job ${job.id}: no checkpoint found; restarting from round 0`);
      }
      await fenced(() => this.store.setJobRound(job.id, startRound, fence));
    }
    // Aggregation and the optimizer run on their own thread, on parameters in shared memory. A job that rolled
    // back before its checkpoint was written continues on the guard's fallback rule.
    const { rule, f, pre, options } = spec.aggregation;
    const aggregation = (rollbacks: number) =>
      rollbacks > 0 ? fallbackAggregation(spec) : { rule, f, pre, options };
    // aggregation.perExpert: each expert block over the workers that routed tokens to it, under either rule.
    const groups = spec.aggregation.perExpert ? moeExpertGroups(host.layout.layers) : undefined;
    const compute = await RoundCompute.start(
      {
        aggregation: aggregation(guard?.rollbacks ?? 0),
        groups,
        optimizer: spec.optimizer,
        size: host.layout.totalSize,
      },
      params,
      { deadlineMs: spec.aggregation.deadline, log: (m) => this.log(`job ${job.id}: ${m}`) },
      resumed,
    );
    const runtime: JobRuntime = new JobRuntime(
      job.id,
      spec,
      host,
      compute.params,
      compute,
      {
        log: (m) => this.log(`job ${job.id}: ${m}`),
        onRound: async (report) => {
          // Report, round counter and commit log in one fenced step. While the store is away the round's result
          // waits here in memory and no later round closes; the commit id makes a retry of a commit that did
          // land (its answer lost) a no-op. The report says how long the commit waited.
          const commitId = randomUUID();
          await durable(
            `round ${report.round}: commit`,
            () =>
              this.store.commitRound(
                { jobId: job.id, round: report.round, report: JSON.stringify(report) },
                this.options.historyLength ?? 10_000,
                fence,
                commitId,
              ),
            (wait) => (report.storeStall = wait),
          );
          this.events.emit('round', report);
        },
        onCheckpoint: async (rt) => {
          const state = await compute.saveState();
          const guardState = rt.guardState();
          if (guardState.good === false) {
            this.log(`job ${job.id}: checkpoint at round ${rt.round} is not good: ${rt.unhealthyReason()}`);
          }
          // The file goes to shared storage only while the lease is ours, and becomes the job's checkpoint only
          // when the store takes its manifest under our token (docs/high-availability.md).
          if (fence !== undefined) this.options.fencing?.assertHolds(fence);
          const manifest = await writeCheckpoint(
            checkpointDir,
            encodeJobState(
              {
                jobId: job.id,
                round: rt.round,
                spec: job.spec,
                params: rt.params,
                optimizer: state.optimizer,
                aggregation: state.aggregation,
                guard: JSON.stringify(guardState),
                good: guardState.good,
                ...(rt.compression ? { compression: rt.compression.saveState() } : {}),
                workers: rt.workerStates.tensorsAt(rt.round),
              },
              { spec: spec.model, layout: host.layout },
              spec.checkpoint.keep,
            ),
            { guard: () => fence !== undefined && this.options.fencing?.assertHolds(fence) },
          );
          await durable(`checkpoint of round ${manifest.round}`, () =>
            this.store.putCheckpointManifest(manifest, fence),
          );
        },
        onRollback: async (rt) => {
          // The newest good checkpoint, found from the marks in the manifests on disk (written atomically with
          // each file, so they cannot disagree with it, and there after a coordinator restart) among rounds up to
          // the store's newest, which bounds the current timeline. Pruning never deletes it.
          const newest = await this.store.getCheckpointManifest(job.id);
          const manifest = newest && (await newestGoodCheckpoint(checkpointDir, job.id, newest.round));
          const fallback = {
            aggregation: aggregation(rt.rollbacks + 1),
            groups,
            optimizer: spec.optimizer,
            size: host.layout.totalSize,
          };
          if (!manifest) {
            await compute.restart(fallback, host.initialParameters());
            await durable('rollback to round 0', () => this.store.setJobRound(job.id, 0, fence));
            return { round: 0 };
          }
          const saved = decodeJobState(await readCheckpoint(manifest), job.id, manifest.round, host.layout);
          const savedGuard =
            saved.guard === undefined ? undefined : (JSON.parse(saved.guard) as RuntimeGuardState);
          if (savedGuard?.good === false) {
            throw new Error(
              `checkpoint of round ${manifest.round} is marked good but its guard state is not`,
            );
          }
          if (newest && manifest.round !== newest.round) {
            this.log(
              `job ${job.id}: the newest checkpoint (round ${newest.round}) is not good; rolling back to round ${manifest.round}`,
            );
          }
          // The rule state in the checkpoint is the fallback's only if it was written after a rollback.
          await compute.restart(fallback, saved.params, {
            optimizer: saved.optimizer,
            aggregation: (savedGuard?.rollbacks ?? 0) > 0 ? saved.aggregation : undefined,
          });
          await durable(`rollback to round ${manifest.round}`, () =>
            this.store.setJobRound(job.id, manifest.round, fence),
          );
          rt.workerStates.load(manifest.round, saved.workers ?? new Map());
          return { round: manifest.round, guard: savedGuard };
        },
        onComplete: async (result: JobResult) => {
          const done = await durable('completion', () =>
            this.queue.transition(
              job.id,
              'complete',
              { round: result.rounds, result: JSON.stringify(result) },
              fence,
            ),
          );
          this.runtimes.delete(job.id);
          this.log(
            `job ${job.id} ${done ? 'completed' : 'finished its rounds after it had ended'}: ${result.rounds} rounds, test accuracy ${(result.testAccuracy * 100).toFixed(2)}%`,
          );
        },
        onError: (error) =>
          void this.fail(job.id, error, fence).catch((e: unknown) =>
            this.log(`job ${job.id}: not marked failed (${(e as Error).message}): ${error.message}`),
          ),
      },
      startRound,
      undefined,
      guard,
      compression,
    );
    runtime.rollbackRound = rollbackRound;
    if (workerStates) {
      const n = runtime.workerStates.load(startRound, workerStates);
      this.log(
        `job ${job.id}: the checkpoint holds the state of ${n} worker(s) entering round ${startRound}`,
      );
    }
    return { runtime, compute };
  }
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

function isFencingError(e: unknown): boolean {
  return e instanceof StaleFenceError || e instanceof NotLeaderError;
}
