/**
 * What the job manager tells the services (WatchJob, tests) about jobs, as typed events: the event name fixes
 * the listener's signature, so a subscriber cannot get the payload wrong.
 */
import { EventEmitter } from 'node:events';
import type { RoundReport } from './roundReport.ts';
import type { JobRecord } from './state/stateStore.ts';

export interface JobEvents {
  /** A job's record changed state (submitted, started, running, ended). */
  job: (job: JobRecord) => void;
  /** A round of a running job closed; `report.jobId` names the job. */
  round: (report: RoundReport) => void;
  /** A runtime was published: from now on workers can join the job. */
  runtimeStarted: (jobId: string) => void;
  /** A runtime was built but never published (the job was cancelled or failed while starting). */
  runtimeDiscarded: (jobId: string, reason: string) => void;
  /** The coordinator is shutting down: streams should end now. */
  stopping: () => void;
}

export class TypedEmitter<Events extends { [K in keyof Events]: (...args: never[]) => void }> {
  private readonly emitter = new EventEmitter();

  constructor() {
    this.emitter.setMaxListeners(0);
  }

  on<K extends keyof Events & string>(event: K, listener: Events[K]): this {
    this.emitter.on(event, listener as unknown as (...args: unknown[]) => void);
    return this;
  }

  once<K extends keyof Events & string>(event: K, listener: Events[K]): this {
    this.emitter.once(event, listener as unknown as (...args: unknown[]) => void);
    return this;
  }

  off<K extends keyof Events & string>(event: K, listener: Events[K]): this {
    this.emitter.off(event, listener as unknown as (...args: unknown[]) => void);
    return this;
  }

  emit<K extends keyof Events & string>(event: K, ...args: Parameters<Events[K]>): void {
    this.emitter.emit(event, ...args);
  }

  listenerCount<K extends keyof Events & string>(event: K): number {
    return this.emitter.listenerCount(event);
  }
}
