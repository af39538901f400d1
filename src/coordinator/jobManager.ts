/**
 * The coordinator's job manager, a facade over three parts: the queue (claims and lifecycle transitions,
 * jobQueue.ts), the runner (spec → runtime, jobRunner.ts) and worker liveness (liveness.ts). Job lifecycle
 * (core/jobLifecycle.ts): submit → queued → starting → running → completed | failed | cancelled; a restarted
 * coordinator resumes jobs that were starting or running from their last checkpoint. Job and round events go to
 * watchers as typed events (jobEvents.ts).
 *
 * With a Leadership (leadership.ts) the manager runs jobs only while this coordinator holds the lease: elected, it
 * resumes the running jobs and starts claiming queued ones, every job write carrying its fencing token; deposed,
 * it stops every runtime at once and stands by.
 */
import { randomBytes } from 'node:crypto';
import { parseJobSpec, validateJobSpec, type JobSpec } from '../config/jobSpec.ts';
import { admitJob, checkpointDirectory, type AdmissionConfig } from './admission.ts';
import { summarizeRounds, TIMING_WINDOW, type JobDetailView } from './jobDetail.ts';
import { parseStoredRoundReport } from './roundReport.ts';
import { JobQueue } from './jobQueue.ts';
import { JobRunner } from './jobRunner.ts';
import { Liveness } from './liveness.ts';
import { TypedEmitter, type JobEvents } from './jobEvents.ts';
import type { JobRuntime } from './jobRuntime.ts';
import type { RoundReport } from './roundReport.ts';
import { StaleFenceError, type JobRecord, type StateStore } from './state/stateStore.ts';
import { NotLeaderError, type Leadership } from './leadership.ts';

export interface JobManagerOptions {
  /** Identifies this coordinator as a queue consumer. */
  consumerId: string;
  /** The coordinator's resources a job is admitted against (memory budget, checkpoint and data directories). */
  admission: AdmissionConfig;
  /** Round reports kept per job in the store. */
  historyLength?: number;
  log?: (message: string) => void;
  /** Run jobs only while holding the lease (absent: always, unfenced). */
  leadership?: Leadership;
}

/** A submit reused a request id of an earlier submit with another spec. */
export class RequestConflictError extends Error {
  constructor(
    readonly requestId: string,
    readonly jobId: string,
  ) {
    super(
      `request id '${requestId}' already submitted job ${jobId} with a different spec: ` +
        'a retry must send the same spec (or leave out --request-id to submit a new job)',
    );
  }
}

/** A client's request id: 1–128 characters of [A-Za-z0-9._:-] (a UUID fits). */
export const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

/** One stretch of leading under one lease token. */
interface Term {
  fence: number | undefined;
  /** Its resume pass and scheduler runs still under way. */
  work: Set<Promise<void>>;
}

export class JobManager extends TypedEmitter<JobEvents> {
  private readonly queue: JobQueue;
  private readonly runner: JobRunner;
  private readonly liveness: Liveness;
  private schedulerTimer: NodeJS.Timeout | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private scheduling = false;
  /** The scheduler's newest error, logged once. */
  private schedulerError: string | undefined;
  private stopped = false;
  /** Leading: the lease token (undefined without a Leadership); standing by: not set. */
  private term: Term | undefined;
  /** The newest term, ended or not: the next one waits for its work to end. */
  private lastTerm: Term | undefined;
  readonly log: (message: string) => void;

  constructor(
    readonly store: StateStore,
    private readonly options: JobManagerOptions,
  ) {
    super();
    this.log = options.log ?? (() => {});
    this.queue = new JobQueue(store, this, options.consumerId, this.log);
    this.runner = new JobRunner(store, this.queue, this, {
      admission: options.admission,
      historyLength: options.historyLength,
      log: this.log,
      // Read on use: the server creates the Leadership once its port is known.
      fencing: {
        assertHolds: (token) => this.options.leadership?.assertHolds(token),
        lost: (reason, token) => this.options.leadership?.resign(reason, token),
      },
    });
    this.liveness = new Liveness(store);
  }

  async start(): Promise<void> {
    const leadership = this.options.leadership;
    if (!leadership) return this.lead(undefined);
    let takeover: Promise<void> | undefined;
    leadership.on('elected', (token) => {
      takeover = this.lead(token).catch((e: unknown) => {
        this.log(`leadership: cannot take the jobs over: ${(e as Error).message}`);
        leadership.resign(`taking the jobs over failed: ${(e as Error).message}`);
      });
    });
    leadership.on('deposed', () => this.standDown());
    // Elected at once (a single coordinator): start serving only once the running jobs are resumed, as before.
    await leadership.start();
    await takeover;
  }

  /** Whether this coordinator runs jobs (it holds the lease, or runs without one). */
  get leading(): boolean {
    return this.term !== undefined && (this.options.leadership?.leading ?? true);
  }

  /** Throws NotLeaderError (→ UNAVAILABLE) unless this coordinator runs jobs; names the leader if known. */
  assertLeading(): void {
    if (!this.leading)
      throw new NotLeaderError(
        `this coordinator is a standby; the leader is ${this.options.leadership?.describeLeader() ?? 'not known'}`,
      );
  }

  /** Elected (or no election): resume jobs that were starting or running under a previous leader, then schedule. */
  private async lead(fence: number | undefined): Promise<void> {
    if (this.stopped) return;
    const previous = this.lastTerm;
    const term: Term = { fence, work: new Set() };
    this.term = this.lastTerm = term;
    await this.during(term, async () => {
      // What an earlier term of this coordinator left under way (a claim, a runtime being built: abandoned when
      // it stood down, they discard themselves) ends first, so every job is seen as that term left it.
      if (previous) await Promise.allSettled([...previous.work]);
      for (const job of await this.store.listJobs()) {
        if (this.term !== term) return; // deposed meanwhile
        if (this.runner.has(job.id)) continue;
        if (job.state === 'running') {
          const restarting = await this.queue.transition(job.id, 'resume', undefined, fence);
          // Deposed meanwhile: the job stays `starting` and the next term resumes it.
          if (restarting && this.term === term) await this.runner.launch(restarting, true, fence);
        } else if (job.state === 'starting') {
          await this.runner.launch(job, true, fence);
        }
      }
    });
    if (this.term !== term) return;
    this.schedulerTimer = setInterval(() => void this.schedule(), 200);
    this.sweepTimer = setInterval(() => this.liveness.sweep(this.runner.all()), 250);
    void this.schedule();
  }

  /** Lost the lease: stop every runtime now (job states stay as they are for the new leader) and stand by. */
  private standDown(): void {
    if (!this.term) return;
    this.term = undefined;
    clearInterval(this.schedulerTimer);
    clearInterval(this.sweepTimer);
    this.emit('stopping');
    this.runner.standDown();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.term = undefined;
    clearInterval(this.schedulerTimer);
    clearInterval(this.sweepTimer);
    this.emit('stopping');
    this.runner.stop();
    await this.options.leadership?.stop();
  }

  // --- user-facing operations -------------------------------------------------------------------------------

  /**
   * `owner`: the principal that submitted the job (recorded for access control). `requestId`: the client's id of
   * this submission; a retry with the same id (and owner) returns the job the first one created, and one with a
   * different spec fails with RequestConflictError.
   */
  async submit(spec: string | JobSpec, owner?: string, requestId?: string): Promise<JobRecord> {
    if (requestId !== undefined && !REQUEST_ID_PATTERN.test(requestId)) {
      throw new RangeError('request_id must be 1–128 characters of A-Z a-z 0-9 . _ : -');
    }
    this.assertLeading();
    const validated = admitJob(
      typeof spec === 'string' ? parseJobSpec(spec) : validateJobSpec(spec),
      this.options.admission,
    );
    const now = Date.now();
    const job: JobRecord = {
      id: `${validated.name}-${randomBytes(3).toString('hex')}`,
      name: validated.name,
      spec: JSON.stringify(validated),
      state: 'queued',
      createdAt: now,
      updatedAt: now,
      round: 0,
      ...(owner !== undefined ? { owner } : {}),
      ...(requestId !== undefined ? { requestId } : {}),
    };
    const outcome = await this.store.submitJob(job);
    if (!outcome.created) {
      if (outcome.job.spec !== job.spec) throw new RequestConflictError(requestId!, outcome.job.id);
      this.log(`job ${outcome.job.id}: submit repeated (request ${requestId}), nothing new created`);
      return outcome.job;
    }
    this.log(`job ${job.id} submitted (${validated.rounds} rounds, rule ${validated.aggregation.rule})`);
    this.emit('job', job);
    void this.schedule();
    return job;
  }

  /** Cancel a queued, starting or running job; a job that has already ended is returned unchanged. */
  async cancel(id: string): Promise<JobRecord | undefined> {
    this.assertLeading();
    const job = await this.queue.transition(id, 'cancel', undefined, this.term?.fence);
    if (!job) return this.store.getJob(id);
    const stage = this.runner.stageOf(id);
    this.runner.cancel(id);
    this.log(`job ${id} cancelled${stage ? ` while ${stage}` : ''}`);
    return job;
  }

  /** What `phalanx status` explains: workers needed, checkpoints, progress of the newest rounds, live round. */
  async describe(job: JobRecord): Promise<JobDetailView> {
    let spec: JobSpec | undefined;
    let checkpointDir = '';
    try {
      spec = validateJobSpec(JSON.parse(job.spec));
      checkpointDir = checkpointDirectory(spec, this.options.admission);
    } catch {
      // A spec stored under older rules: the rest of the detail still helps.
    }
    // The newest evaluation lies within evaluation.every rounds of the newest report (bounded: reports are big).
    const window = Math.max(TIMING_WINDOW, Math.min(spec?.evaluation.every ?? 0, 200) + 1);
    const stored = await this.store.listRoundReports(job.id, Math.max(0, job.round - window), window);
    return {
      workersMin: spec?.workers.min ?? 0,
      workersMax: spec?.workers.max ?? 0,
      checkpointDir,
      checkpoint: await this.store.getCheckpointManifest(job.id),
      rounds: summarizeRounds(stored.map((r) => parseStoredRoundReport(r.report))),
      live: this.runner.runtime(job.id)?.liveView(),
    };
  }

  runtime(id: string): JobRuntime | undefined {
    return this.runner.runtime(id);
  }

  /** The oldest running job (for workers that join "any job"). */
  oldestRuntime(): JobRuntime | undefined {
    return [...this.runner.all()].find((rt) => rt.phase === 'running' || rt.phase === 'closing');
  }

  /** Record a heartbeat (also refreshes the durable liveness key). */
  async heartbeat(workerId: string, ttlMs: number): Promise<void> {
    await this.liveness.heartbeat(workerId, ttlMs);
  }

  /** Whether no job is being claimed or built right now (tests wait for this). */
  get idle(): boolean {
    return !this.scheduling && this.runner.launchingCount === 0;
  }

  // --- internals ----------------------------------------------------------------------------------------------

  private async schedule(): Promise<void> {
    const term = this.term;
    if (this.scheduling || this.stopped || !term) return;
    this.scheduling = true;
    try {
      await this.during(term, async () => {
        while (this.term === term) {
          const job = await this.queue.claimNext(term.fence);
          if (!job) break;
          // Deposed while claiming: the job stays `starting`, and the next term (which waits for this run to
          // end before it looks at the jobs) launches it.
          if (this.term !== term) break;
          await this.runner.launch(job, false, term.fence);
        }
      });
      this.schedulerError = undefined;
    } catch (e) {
      // Once per distinct error, not every 200 ms while the store is down.
      const message = (e as Error).message;
      if (message !== this.schedulerError) this.log(`scheduler: ${message}`);
      this.schedulerError = message;
      if (e instanceof StaleFenceError) this.options.leadership?.resign(e.message, term.fence);
    } finally {
      this.scheduling = false;
    }
  }

  /** Run `work` as part of `term`: a later term waits for it to end. */
  private async during(term: Term, work: () => Promise<void>): Promise<void> {
    const running = work();
    term.work.add(running);
    try {
      await running;
    } finally {
      term.work.delete(running);
    }
  }
}

export { isTerminal } from '../core/jobLifecycle.ts';
export type { JobEvents } from './jobEvents.ts';
export type { RoundReport };
