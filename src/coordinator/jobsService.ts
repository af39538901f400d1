/** gRPC adapter for phalanx.v1.Jobs: submit, inspect, cancel and watch jobs. */
import * as grpc from '@grpc/grpc-js';
import type { JobsHandlers } from '../gen/phalanx/v1/Jobs.ts';
import type { Job } from '../gen/phalanx/v1/Job.ts';
import type { JobManager } from './jobManager.ts';
import { isTerminal } from './jobManager.ts';
import type { RoundReport } from './roundReport.ts';
import type { JobRecord, JobState } from './state/stateStore.ts';
import { failStream, StatusError, unary } from './grpcStatus.ts';

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
  };
}

export function jobsHandlers(manager: JobManager): JobsHandlers {
  async function mustGet(id: string): Promise<JobRecord> {
    const job = await manager.store.getJob(id);
    if (!job) throw new StatusError(grpc.status.NOT_FOUND, `job '${id}' not found`);
    return job;
  }

  return {
    SubmitJob: unary(async (call) => jobToProto(await manager.submit(call.request.spec))),
    GetJob: unary(async (call) => jobToProto(await mustGet(call.request.jobId))),
    ListJobs: unary(async () => ({ jobs: (await manager.store.listJobs()).map(jobToProto) })),
    CancelJob: unary(async (call) => {
      await mustGet(call.request.jobId);
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
      const unsubscribe = () => {
        manager.off('round', onRound);
        manager.off('job', onJob);
        manager.off('stopping', onStopping);
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
          if (Number(event.round.round) <= last) return;
          last = Number(event.round.round);
        }
        call.write(event);
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
          const job = await mustGet(id);
          if (closed) return;
          call.write({ job: jobToProto(job) });
          if (call.request.replay) {
            for (;;) {
              const batch = await manager.store.listRoundReports(
                id,
                Math.max(Number(call.request.fromRound), last + 1),
                500,
              );
              for (const r of batch) deliver({ round: JSON.parse(r.report) as RoundReport });
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
