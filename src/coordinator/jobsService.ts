/** gRPC adapter for phalanx.v1.Jobs: submit, inspect, cancel and watch jobs. */
import * as grpc from '@grpc/grpc-js';
import type { JobsHandlers } from '../gen/phalanx/v1/Jobs.ts';
import type { Job } from '../gen/phalanx/v1/Job.ts';
import type { JobDetail } from '../gen/phalanx/v1/JobDetail.ts';
import type { JobManager } from './jobManager.ts';
import { isTerminal, RequestConflictError, REQUEST_ID_PATTERN } from './jobManager.ts';
import type { JobDetailView } from './jobDetail.ts';
import { parseStoredRoundReport, type RoundReport } from './roundReport.ts';
import { ConcurrencyLimiter } from './concurrencyLimiter.ts';
import type { JobRecord, JobState } from './state/stateStore.ts';
import { failStream, StatusError, unary } from './grpcStatus.ts';
import type { CoordinatorAuth } from './auth/authenticator.ts';
import { requireCancel, requireJobsAccess, requireRead, requireSubmit } from './auth/access.ts';
import { mayReadJob } from './auth/roles.ts';

export function jobToProto(job: JobRecord): Job {
  let totalRounds: number;
  try {
    totalRounds = (JSON.parse(job.spec) as { rounds?: number }).rounds ?? 0;
  } catch {
    totalRounds = 0;
  }
  return {
    id: job.id,
    name: job.name,
    state: job.state,
    specJson: job.spec,
    round: job.round,
    totalRounds,
    createdAtMs: job.createdAt,
    updatedAtMs: job.updatedAt,
    error: job.error ?? '',
    resultJson: job.result ?? '',
    owner: job.owner ?? '',
    requestId: job.requestId ?? '',
  };
}

export function jobDetailToProto(d: JobDetailView): JobDetail {
  return {
    workersMin: d.workersMin,
    workersMax: d.workersMax,
    checkpointDir: d.checkpointDir,
    hasCheckpoint: d.checkpoint !== undefined,
    checkpointRound: d.checkpoint?.round ?? 0,
    checkpointPath: d.checkpoint?.path ?? '',
    trainLoss: d.rounds.trainLoss,
    evalRound: d.rounds.evalRound,
    evalAccuracy: d.rounds.evalAccuracy,
    evalLoss: d.rounds.evalLoss,
    secondsPerRound: d.rounds.secondsPerRound,
    lastRound: d.rounds.last ?? null,
    live: d.live !== undefined,
    openRound: d.live?.openRound ?? 0,
    openForMs: d.live?.openForMs ?? 0,
    participants: d.live?.participants ?? [],
    departed: d.live?.departed ?? [],
  };
}

/** Open WatchJob streams one credential may hold, and all together. */
export const WATCHES_PER_CREDENTIAL = 16;
const WATCHES_TOTAL = 1024;
/** Bytes of events a watch may have queued unread before it is ended. */
const MAX_WATCH_BACKLOG_BYTES = 8 * 1024 * 1024;

export function jobsHandlers(manager: JobManager, auth: CoordinatorAuth): JobsHandlers {
  const watchers = new ConcurrencyLimiter(WATCHES_PER_CREDENTIAL, WATCHES_TOTAL);
  async function mustGet(id: string): Promise<JobRecord> {
    const job = await manager.store.getJob(id);
    if (!job) throw new StatusError(grpc.status.NOT_FOUND, `job '${id}' not found`);
    return job;
  }

  return {
    SubmitJob: unary(async (call) => {
      const principal = await auth.principal(call);
      requireSubmit(principal);
      const requestId = call.request.requestId || undefined;
      if (requestId !== undefined && !REQUEST_ID_PATTERN.test(requestId)) {
        throw new StatusError(
          grpc.status.INVALID_ARGUMENT,
          'request_id must be 1–128 characters of A-Z a-z 0-9 . _ : - (a UUID fits)',
        );
      }
      try {
        return jobToProto(await manager.submit(call.request.spec, principal.id, requestId));
      } catch (e) {
        if (e instanceof RequestConflictError) throw new StatusError(grpc.status.ALREADY_EXISTS, e.message);
        throw e;
      }
    }),
    GetJob: unary(async (call) => {
      const principal = await auth.principal(call);
      requireJobsAccess(principal);
      const job = await mustGet(call.request.jobId);
      requireRead(principal, job);
      // The detail explains; the record is the answer: a detail that cannot be read leaves it out.
      const detail = await manager.describe(job).then(jobDetailToProto, (e: unknown) => {
        manager.log(`job ${job.id}: no detail for GetJob: ${(e as Error).message}`);
        return null;
      });
      return { ...jobToProto(job), detail };
    }),
    ListJobs: unary(async (call) => {
      const principal = await auth.principal(call);
      requireJobsAccess(principal);
      const jobs = (await manager.store.listJobs()).filter((job) => mayReadJob(principal, job));
      return { jobs: jobs.map(jobToProto) };
    }),
    CancelJob: unary(async (call) => {
      const principal = await auth.principal(call);
      requireJobsAccess(principal);
      requireCancel(principal, await mustGet(call.request.jobId));
      return jobToProto((await manager.cancel(call.request.jobId))!);
    }),
    WatchJob: (call) => {
      const id = call.request.jobId;
      type Event = Parameters<typeof call.write>[0];
      let closed = false;
      // Live events are held back until the stored job (and the replay) went out, so none falls in between.
      let replaying = true;
      const held: Event[] = [];
      let last = -1;
      let lastRollbacks = 0;
      let release: (() => void) | undefined;
      const unsubscribe = () => {
        manager.off('round', onRound);
        manager.off('job', onJob);
        manager.off('stopping', onStopping);
        release?.();
      };
      const finish = () => {
        if (closed) return;
        closed = true;
        unsubscribe();
        call.end();
      };
      const abort = (e: unknown) => {
        if (closed) return;
        closed = true;
        unsubscribe();
        failStream(call, e);
      };
      const deliver = (event: Event) => {
        if (closed) return;
        if (event.round) {
          // Once per (rollback, round): after a divergence-guard rollback, rounds are reported again.
          const rollbacks = Number(event.round.rollbacks ?? 0);
          const round = Number(event.round.round);
          if (rollbacks < lastRollbacks || (rollbacks === lastRollbacks && round <= last)) return;
          lastRollbacks = rollbacks;
          last = round;
        }
        call.write(event);
        // A watcher that does not read must not make the coordinator buffer its events without end.
        if (call.writableLength > MAX_WATCH_BACKLOG_BYTES) {
          abort(
            new StatusError(grpc.status.RESOURCE_EXHAUSTED, 'watcher too slow: reading fell too far behind'),
          );
          return;
        }
        if (event.job && isTerminal(event.job.state as JobState)) finish();
      };
      const onRound = (report: RoundReport) => {
        if (report.jobId !== id) return;
        if (replaying) held.push({ round: report });
        else deliver({ round: report });
      };
      const onJob = (job: JobRecord) => {
        if (job.id !== id) return;
        if (replaying) held.push({ job: jobToProto(job) });
        else deliver({ job: jobToProto(job) });
      };
      const onStopping = () =>
        abort(new StatusError(grpc.status.UNAVAILABLE, 'coordinator is shutting down: watch again later'));
      call.on('cancelled', () => {
        closed = true;
        unsubscribe();
      });
      manager.on('round', onRound);
      manager.on('job', onJob);
      manager.on('stopping', onStopping);
      void (async () => {
        try {
          const principal = await auth.principal(call);
          requireJobsAccess(principal);
          if (closed) return;
          release = watchers.acquire(principal.id);
          if (!release) {
            throw new StatusError(
              grpc.status.RESOURCE_EXHAUSTED,
              `too many open watches for this credential (at most ${watchers.perKey})`,
            );
          }
          const job = await mustGet(id);
          requireRead(principal, job);
          if (closed) return;
          call.write({ job: jobToProto(job) });
          if (call.request.replay) {
            for (;;) {
              const batch = await manager.store.listRoundReports(
                id,
                Math.max(Number(call.request.fromRound), last + 1),
                500,
              );
              for (const r of batch) deliver({ round: parseStoredRoundReport(r.report) });
              if (batch.length < 500) break;
            }
          }
          replaying = false;
          for (const event of held.splice(0)) deliver(event);
          if (isTerminal(job.state)) finish();
        } catch (e) {
          abort(e);
        }
      })();
    },
  };
}
