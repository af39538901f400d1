/**
 * What the job manager tells the services (WatchJob, tests) about jobs, as typed events: the event name fixes
 * the listener's signature, so a subscriber cannot get the payload wrong.
 */
import type { RoundReport } from './roundReport.ts';
import type { JobRecord } from './state/stateStore.ts';

export { TypedEmitter } from './typedEmitter.ts';

export type JobEvents = {
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
};
