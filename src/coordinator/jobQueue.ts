/**
 * The job queue: claims queued jobs for this coordinator and applies lifecycle transitions (compare-and-set in
 * the store, core/jobLifecycle.ts), announcing every state change that took effect as a `job` event.
 */
import type { JobEvents, TypedEmitter } from './jobEvents.ts';
import type { JobPatch, JobRecord, JobTransition, StateStore } from './state/stateStore.ts';

/** Claims not acknowledged within this time can be taken over by another coordinator. */
const CLAIM_TIMEOUT_MS = 30_000;

export class JobQueue {
  constructor(
    private readonly store: StateStore,
    private readonly events: TypedEmitter<JobEvents>,
    private readonly consumerId: string,
    private readonly log: (message: string) => void = () => {},
  ) {}

  /**
   * The next queued job, moved to `starting` for this coordinator; undefined when the queue is empty. Jobs
   * cancelled while queued are skipped (their `start` transition fails).
   */
  async claimNext(fence?: number): Promise<JobRecord | undefined> {
    for (;;) {
      const id = await this.store.claimQueuedJob(this.consumerId, CLAIM_TIMEOUT_MS);
      if (!id) return undefined;
      const started = await this.transition(id, 'start', undefined, fence);
      await this.store.ackQueuedJob(this.consumerId, id);
      if (started) return started;
      this.log(`job ${id}: not started (${(await this.store.getJob(id))?.state ?? 'gone'} while queued)`);
    }
  }

  /**
   * Apply a transition; returns the updated record, or undefined if the job is not in a `from` state. With
   * `fence` (the leader's lease token) a stale leader's transition is refused (StaleFenceError).
   */
  async transition(
    id: string,
    transition: JobTransition,
    patch?: JobPatch,
    fence?: number,
  ): Promise<JobRecord | undefined> {
    const job = await this.store.transitionJob(id, transition, patch, fence);
    if (job) this.events.emit('job', job);
    return job;
  }
}
