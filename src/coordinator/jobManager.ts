/**
 * The coordinator's job manager, a facade over three parts: the queue (claims and lifecycle transitions,
 * jobQueue.ts), the runner (spec → runtime, jobRunner.ts) and worker liveness (liveness.ts). Job lifecycle
 * (core/jobLifecycle.ts): submit → queued → starting → running → completed | failed | cancelled; a restarted
 * coordinator resumes jobs that were starting or running from their last checkpoint. Job and round events go to
 * watchers as typed events (jobEvents.ts).
 */
import { randomBytes } from 'node:crypto';
import { parseJobSpec, validateJobSpec, type JobSpec } from '../config/jobSpec.ts';
import { admitJob, type AdmissionConfig } from './admission.ts';
import { JobQueue } from './jobQueue.ts';
import { JobRunner } from './jobRunner.ts';
import { Liveness } from './liveness.ts';
import { TypedEmitter, type JobEvents } from './jobEvents.ts';
import type { JobRuntime } from './jobRuntime.ts';
import type { RoundReport } from './roundReport.ts';
import type { JobRecord, StateStore } from './state/stateStore.ts';

export interface JobManagerOptions {
  /** Identifies this coordinator as a queue consumer. */
  consumerId: string;
  /** The coordinator's resources a job is admitted against (memory budget, checkpoint and data directories). */
  admission: AdmissionConfig;
  /** Round reports kept per job in the store. */
  historyLength?: number;
  log?: (message: string) => void;
}

export class JobManager extends TypedEmitter<JobEvents> {
  private readonly queue: JobQueue;
  private readonly runner: JobRunner;
  private readonly liveness: Liveness;
  private schedulerTimer: NodeJS.Timeout | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private scheduling = false;
  private stopped = false;
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
    });
    this.liveness = new Liveness(store);
  }

  async start(): Promise<void> {
    // Resume jobs that were starting or running when a previous coordinator stopped.
    for (const job of await this.store.listJobs()) {
      if (this.runner.has(job.id)) continue;
      if (job.state === 'running') {
        const restarting = await this.queue.transition(job.id, 'resume');
        if (restarting) await this.runner.launch(restarting, true);
      } else if (job.state === 'starting') {
        await this.runner.launch(job, true);
      }
    }
    this.schedulerTimer = setInterval(() => void this.schedule(), 200);
    this.sweepTimer = setInterval(() => this.liveness.sweep(this.runner.all()), 250);
    void this.schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.schedulerTimer);
    clearInterval(this.sweepTimer);
    this.emit('stopping');
    this.runner.stop();
  }

  // --- user-facing operations -------------------------------------------------------------------------------

  /** `owner`: the principal that submitted the job (recorded for access control). */
  async submit(spec: string | JobSpec, owner?: string): Promise<JobRecord> {
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
    };
    await this.store.submitJob(job);
    this.log(`job ${job.id} submitted (${validated.rounds} rounds, rule ${validated.aggregation.rule})`);
    this.emit('job', job);
    void this.schedule();
    return job;
  }

  /** Cancel a queued, starting or running job; a job that has already ended is returned unchanged. */
  async cancel(id: string): Promise<JobRecord | undefined> {
    const job = await this.queue.transition(id, 'cancel');
    if (!job) return this.store.getJob(id);
    const stage = this.runner.stageOf(id);
    this.runner.cancel(id);
    this.log(`job ${id} cancelled${stage ? ` while ${stage}` : ''}`);
    return job;
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
    if (this.scheduling || this.stopped) return;
    this.scheduling = true;
    try {
      for (;;) {
        const job = await this.queue.claimNext();
        if (!job) break;
        await this.runner.launch(job, false);
      }
    } catch (e) {
      this.log(`scheduler: ${(e as Error).message}`);
    } finally {
      this.scheduling = false;
    }
  }
}

export { isTerminal } from '../core/jobLifecycle.ts';
export type { JobEvents } from './jobEvents.ts';
export type { RoundReport };
