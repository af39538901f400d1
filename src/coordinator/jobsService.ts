/** gRPC adapter for phalanx.v1.Jobs: submit, inspect, cancel and watch jobs. */
import * as grpc from '@grpc/grpc-js';
import type { JobsHandlers } from '../gen/phalanx/v1/Jobs.ts';
import type { Job } from '../gen/phalanx/v1/Job.ts';
import type { JobManager } from './jobManager.ts';
import { isTerminal } from './jobManager.ts';
import type { RoundReport } from './roundReport.ts';
import type { JobRecord } from './state/stateStore.ts';
import { StatusError, toServiceError, unary } from './grpcStatus.ts';
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
  };
}

export function jobsHandlers(manager: JobManager, auth: CoordinatorAuth): JobsHandlers {
  async function mustGet(id: string): Promise<JobRecord> {
    const job = await manager.store.getJob(id);
    if (!job) throw new StatusError(grpc.status.NOT_FOUND, `job '${id}' not found`);
    return job;
  }

  return {
    SubmitJob: unary(async (call) => {
      const principal = await auth.principal(call);
      requireSubmit(principal);
      return jobToProto(await manager.submit(call.request.spec, principal.id));
    }),
    GetJob: unary(async (call) => {
      const principal = await auth.principal(call);
      requireJobsAccess(principal);
      const job = await mustGet(call.request.jobId);
      requireRead(principal, job);
      return jobToProto(job);
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
      let closed = false;
      const send = (event: Parameters<typeof call.write>[0]) => {
        if (!closed) call.write(event);
      };
      const onRound = (report: RoundReport) => send({ round: report });
      const onJob = (job: JobRecord) => {
        send({ job: jobToProto(job) });
        if (isTerminal(job.state)) finish();
      };
      const finish = () => {
        if (closed) return;
        closed = true;
        manager.off(`round:${id}`, onRound);
        manager.off(`job:${id}`, onJob);
        call.end();
      };
      call.on('cancelled', finish);
      void (async () => {
        try {
          const principal = await auth.principal(call);
          requireJobsAccess(principal);
          const job = await mustGet(id);
          requireRead(principal, job);
          // Subscribe before replaying so no report falls between the two.
          const live: RoundReport[] = [];
          const buffer = (r: RoundReport) => live.push(r);
          manager.on(`round:${id}`, buffer);
          send({ job: jobToProto(job) });
          let last = -1;
          if (call.request.replay) {
            for (;;) {
              const batch = await manager.store.listRoundReports(
                id,
                Math.max(call.request.fromRound, last + 1),
                500,
              );
              for (const r of batch) {
                const report = JSON.parse(r.report) as RoundReport;
                send({ round: report });
                last = report.round;
              }
              if (batch.length < 500) break;
            }
          }
          manager.off(`round:${id}`, buffer);
          for (const r of live) if (r.round > last) send({ round: r });
          if (isTerminal(job.state)) {
            finish();
            return;
          }
          manager.on(`round:${id}`, onRound);
          manager.on(`job:${id}`, onJob);
        } catch (e) {
          closed = true;
          // 'error' sets the stream's status and ends it; destroy() would drop the status.
          call.emit('error', Object.assign(new Error(), toServiceError(e)) as grpc.ServiceError);
        }
      })();
    },
  };
}
