/**
 * Job lifecycle: submit → queued → running → completed | failed | cancelled. Claims queued jobs from the store,
 * builds a JobRuntime for each, resumes running jobs from their last checkpoint after a restart, drops workers
 * whose heartbeats stop, and fans out job and round events to watchers.
 */
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { parseJobSpec, validateJobSpec, type JobSpec } from '../config/jobSpec.ts';
import { createOptimizer } from '../core/optim/index.ts';
import { createAggregationPipeline } from '../core/aggregation/pipeline.ts';
import { readCheckpoint, writeCheckpoint } from '../checkpoint/checkpoint.ts';
import { admitJob, checkpointDirectory, type AdmissionConfig } from './admission.ts';
import { JobRuntime, type JobResult } from './jobRuntime.ts';
import { buildModelHost, type CoordinatorModelHost } from './modelHost.ts';
import type { RoundReport } from './roundReport.ts';
import type { JobRecord, JobState, StateStore } from './state/stateStore.ts';
import { TERMINAL_JOB_STATES } from './state/stateStore.ts';

export interface JobManagerOptions {
  /** Identifies this coordinator as a queue consumer. */
  consumerId: string;
  /** The coordinator's resources a job is admitted against (memory budget, checkpoint and data directories). */
  admission: AdmissionConfig;
  /** Round reports kept per job in the store. */
  historyLength?: number;
  log?: (message: string) => void;
}

export class JobManager extends EventEmitter {
  private readonly runtimes = new Map<string, JobRuntime>();
  private readonly lastSeen = new Map<string, number>();
  private schedulerTimer: NodeJS.Timeout | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private scheduling = false;
  private stopped = false;
  private readonly log: (message: string) => void;

  constructor(
    readonly store: StateStore,
    private readonly options: JobManagerOptions,
  ) {
    super();
    this.setMaxListeners(0);
    this.log = options.log ?? (() => {});
  }

  async start(): Promise<void> {
    // Resume jobs that were running when a previous coordinator stopped.
    for (const job of await this.store.listJobs()) {
      if (job.state === 'running' && !this.runtimes.has(job.id)) {
        try {
          await this.startRuntime(job, true);
        } catch (e) {
          await this.failJob(job.id, e as Error);
        }
      }
    }
    this.schedulerTimer = setInterval(() => void this.schedule(), 200);
    this.sweepTimer = setInterval(() => this.sweep(), 250);
    void this.schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.schedulerTimer);
    clearInterval(this.sweepTimer);
    for (const rt of this.runtimes.values()) rt.stop();
    this.runtimes.clear();
  }

  // --- user-facing operations -------------------------------------------------------------------------------

  async submit(spec: string | JobSpec): Promise<JobRecord> {
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
    };
    await this.store.submitJob(job);
    this.log(`job ${job.id} submitted (${validated.rounds} rounds, rule ${validated.aggregation.rule})`);
    this.emitJob(job);
    void this.schedule();
    return job;
  }

  async cancel(id: string): Promise<JobRecord | undefined> {
    const job = await this.store.transitionJob(id, ['queued', 'running'], 'cancelled');
    if (!job) return this.store.getJob(id);
    this.runtimes.get(id)?.cancel();
    this.runtimes.delete(id);
    this.log(`job ${id} cancelled`);
    this.emitJob(job);
    return job;
  }

  runtime(id: string): JobRuntime | undefined {
    return this.runtimes.get(id);
  }

  /** The oldest running job (for workers that join "any job"). */
  oldestRuntime(): JobRuntime | undefined {
    return [...this.runtimes.values()].find((rt) => rt.phase === 'running' || rt.phase === 'closing');
  }

  /** Record a heartbeat (also refreshes the durable liveness key). */
  async heartbeat(workerId: string, ttlMs: number): Promise<void> {
    this.lastSeen.set(workerId, Date.now());
    await this.store.touchWorker(workerId, ttlMs);
  }

  // --- internals ----------------------------------------------------------------------------------------------

  private async schedule(): Promise<void> {
    if (this.scheduling || this.stopped) return;
    this.scheduling = true;
    try {
      for (;;) {
        const id = await this.store.claimQueuedJob(this.options.consumerId, 30_000);
        if (!id) break;
        const started = await this.store.transitionJob(id, ['queued'], 'running');
        await this.store.ackQueuedJob(this.options.consumerId, id);
        if (!started) continue; // cancelled while queued
        this.emitJob(started);
        try {
          await this.startRuntime(started, false);
        } catch (e) {
          await this.failJob(id, e as Error);
        }
      }
    } catch (e) {
      this.log(`scheduler: ${(e as Error).message}`);
    } finally {
      this.scheduling = false;
    }
  }

  private async startRuntime(job: JobRecord, resume: boolean): Promise<void> {
    const spec = validateJobSpec(JSON.parse(job.spec));
    const host = await buildModelHost(spec);
    try {
      await this.startRuntimeWith(job, spec, host, resume);
    } catch (e) {
      await host.dispose();
      throw e;
    }
  }

  private async startRuntimeWith(
    job: JobRecord,
    spec: JobSpec,
    host: CoordinatorModelHost,
    resume: boolean,
  ): Promise<void> {
    const pipeline = createAggregationPipeline({
      rule: spec.aggregation.rule,
      f: spec.aggregation.f,
      pre: spec.aggregation.pre,
      options: spec.aggregation.options,
    });
    const optimizer = createOptimizer(spec.optimizer, host.layout.totalSize);
    let params = host.initialParameters();
    let startRound = 0;
    if (resume) {
      const manifest = await this.store.getCheckpointManifest(job.id);
      if (manifest) {
        const ckpt = await readCheckpoint(manifest);
        params = ckpt.tensors['params'];
        const optTensors: Record<string, Float32Array> = {};
        for (const [name, t] of Object.entries(ckpt.tensors)) {
          if (name.startsWith('optim.')) optTensors[name.slice(6)] = t;
        }
        optimizer.loadState({
          tensors: optTensors,
          scalars: JSON.parse(ckpt.metadata['optimScalars'] ?? '{}') as Record<string, number>,
        });
        if (ckpt.metadata['aggregationState'] && pipeline.loadState) {
          pipeline.loadState(JSON.parse(ckpt.metadata['aggregationState']) as Record<string, unknown>);
        }
        startRound = manifest.round;
        this.log(`job ${job.id}: resumed from checkpoint at round ${startRound} (${manifest.path})`);
      } else {
        this.log(`job ${job.id}: no checkpoint found; restarting from round 0`);
      }
      await this.store.setJobRound(job.id, startRound);
    }
    const checkpointDir = checkpointDirectory(spec, this.options.admission);
    const runtime: JobRuntime = new JobRuntime(
      job.id,
      spec,
      host,
      params,
      optimizer,
      pipeline,
      {
        log: (m) => this.log(`job ${job.id}: ${m}`),
        onRound: async (report) => {
          await this.store.appendRoundReport(
            { jobId: job.id, round: report.round, report: JSON.stringify(report) },
            this.options.historyLength ?? 10_000,
          );
          await this.store.setJobRound(job.id, report.round + 1);
          this.emit(`round:${job.id}`, report);
        },
        onCheckpoint: async (rt) => {
          const opt = rt.optimizer.saveState();
          const tensors: Record<string, Float32Array> = { params: rt.params };
          for (const [name, t] of Object.entries(opt.tensors)) tensors[`optim.${name}`] = t;
          const metadata: Record<string, string> = {
            jobId: job.id,
            round: String(rt.round),
            spec: job.spec,
            optimScalars: JSON.stringify(opt.scalars),
          };
          const aggState = pipeline.saveState?.();
          if (aggState) metadata['aggregationState'] = JSON.stringify(aggState);
          const manifest = await writeCheckpoint(checkpointDir, {
            jobId: job.id,
            round: rt.round,
            tensors,
            metadata,
            keep: spec.checkpoint.keep,
          });
          await this.store.putCheckpointManifest(manifest);
        },
        onComplete: async (result: JobResult) => {
          const done = await this.store.transitionJob(job.id, ['running'], 'completed', {
            round: result.rounds,
            result: JSON.stringify(result),
          });
          this.runtimes.delete(job.id);
          this.log(
            `job ${job.id} completed: ${result.rounds} rounds, test accuracy ${(result.testAccuracy * 100).toFixed(2)}%`,
          );
          if (done) this.emitJob(done);
        },
        onError: (error) => void this.failJob(job.id, error),
      },
      startRound,
    );
    this.runtimes.set(job.id, runtime);
    runtime.once('ended', () => void host.dispose());
    runtime.start();
  }

  private async failJob(id: string, error: Error): Promise<void> {
    this.log(`job ${id} failed: ${error.stack ?? error.message}`);
    this.runtimes.get(id)?.stop();
    this.runtimes.delete(id);
    const job = await this.store.transitionJob(id, ['queued', 'running'], 'failed', { error: error.message });
    if (job) this.emitJob(job);
  }

  /** Drop participants whose heartbeats stopped for longer than their job's heartbeatTtl. */
  private sweep(): void {
    const now = Date.now();
    for (const rt of this.runtimes.values()) {
      const ttl = rt.spec.workers.heartbeatTtl;
      for (const id of rt.participantIds()) {
        const seen = this.lastSeen.get(id);
        if (seen === undefined) {
          this.lastSeen.set(id, now); // joined before this coordinator saw a heartbeat
        } else if (now - seen > ttl) {
          rt.leave(id, `heartbeat expired (${ttl} ms)`);
        }
      }
    }
  }

  private emitJob(job: JobRecord): void {
    this.emit(`job:${job.id}`, job);
    this.emit('job', job);
  }
}

export function isTerminal(state: JobState): boolean {
  return TERMINAL_JOB_STATES.includes(state);
}

export type { RoundReport };
