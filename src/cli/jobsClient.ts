/** Promise-based client of phalanx.v1.Jobs for the CLI and tests. */
import * as grpc from '@grpc/grpc-js';
import type { JobsClient as GenJobsClient } from '../gen/phalanx/v1/Jobs.ts';
import type { Job__Output } from '../gen/phalanx/v1/Job.ts';
import type { JobEvent__Output } from '../gen/phalanx/v1/JobEvent.ts';
import { CHANNEL_OPTIONS, proto } from '../transport/protocol.ts';

export class JobsClient {
  private readonly raw: GenJobsClient;

  constructor(address: string) {
    this.raw = new proto.phalanx.v1.Jobs(address, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
  }

  close(): void {
    this.raw.close();
  }

  private opts(ms = 15_000): grpc.CallOptions {
    return { deadline: Date.now() + ms };
  }

  submit(spec: string): Promise<Job__Output> {
    return new Promise((resolve, reject) =>
      this.raw.SubmitJob({ spec }, this.opts(), (e, r) => (e ? reject(e) : resolve(r!))),
    );
  }

  get(jobId: string): Promise<Job__Output> {
    return new Promise((resolve, reject) =>
      this.raw.GetJob({ jobId }, this.opts(), (e, r) => (e ? reject(e) : resolve(r!))),
    );
  }

  async list(): Promise<Job__Output[]> {
    const res = await new Promise<{ jobs: Job__Output[] }>((resolve, reject) =>
      this.raw.ListJobs({}, this.opts(), (e, r) => (e ? reject(e) : resolve(r!))),
    );
    return res.jobs;
  }

  cancel(jobId: string): Promise<Job__Output> {
    return new Promise((resolve, reject) =>
      this.raw.CancelJob({ jobId }, this.opts(), (e, r) => (e ? reject(e) : resolve(r!))),
    );
  }

  /** Follow a job's events until it ends. `fromRound` replays stored reports first. */
  watch(
    jobId: string,
    fromRound: number | undefined,
    onEvent: (event: JobEvent__Output) => void,
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      const stream = this.raw.WatchJob({ jobId, fromRound: fromRound ?? 0, replay: fromRound !== undefined });
      stream.on('data', onEvent);
      stream.on('error', reject);
      stream.on('end', () => resolve());
    });
  }
}
