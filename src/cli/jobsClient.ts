/** Promise-based clients of phalanx.v1.Jobs and phalanx.v1.Admin for the CLI and tests. */
import * as grpc from '@grpc/grpc-js';
import type { JobsClient as GenJobsClient } from '../gen/phalanx/v1/Jobs.ts';
import type { Job__Output } from '../gen/phalanx/v1/Job.ts';
import type { JobEvent__Output } from '../gen/phalanx/v1/JobEvent.ts';
import type { AdminClient as GenAdminClient } from '../gen/phalanx/v1/Admin.ts';
import type { CreateTokenResponse__Output } from '../gen/phalanx/v1/CreateTokenResponse.ts';
import { authMetadata, CHANNEL_OPTIONS, proto } from '../transport/protocol.ts';
import type { ClientAuth } from '../transport/tls.ts';

/** Attempts of a submit that has a request id (the first and two retries). */
export const SUBMIT_ATTEMPTS = 3;

function metadataOf(auth: ClientAuth): grpc.Metadata {
  return auth.token ? authMetadata(auth.token) : new grpc.Metadata();
}

export class JobsClient {
  private readonly raw: GenJobsClient;

  /** `auth`: TLS channel credentials and the access token sent with every call. */
  constructor(
    address: string,
    private readonly auth: ClientAuth = {},
  ) {
    this.raw = new proto.phalanx.v1.Jobs(
      address,
      auth.credentials ?? grpc.credentials.createInsecure(),
      CHANNEL_OPTIONS,
    );
  }

  close(): void {
    this.raw.close();
  }

  private opts(ms = 15_000): grpc.CallOptions {
    return { deadline: Date.now() + ms };
  }

  private md(): grpc.Metadata {
    return metadataOf(this.auth);
  }

  /**
   * Submit a job spec. With a `requestId`, a submit whose answer was lost (UNAVAILABLE, DEADLINE_EXCEEDED: it
   * may have created the job) is sent again with the same id, up to `attempts` times in all: the coordinator
   * returns the job the first attempt created instead of creating another. Without one, it is sent once.
   */
  async submit(
    spec: string,
    opts: { requestId?: string; attempts?: number; timeoutMs?: number; backoffMs?: number } = {},
  ): Promise<Job__Output> {
    const attempts = opts.requestId ? Math.max(1, opts.attempts ?? SUBMIT_ATTEMPTS) : 1;
    for (let attempt = 1; ; attempt++) {
      try {
        return await new Promise<Job__Output>((resolve, reject) =>
          this.raw.SubmitJob(
            { spec, requestId: opts.requestId ?? '' },
            this.md(),
            this.opts(opts.timeoutMs),
            (e, r) => (e ? reject(e) : resolve(r!)),
          ),
        );
      } catch (e) {
        const code = (e as Partial<grpc.ServiceError>).code;
        const retryable = code === grpc.status.UNAVAILABLE || code === grpc.status.DEADLINE_EXCEEDED;
        if (!retryable || attempt >= attempts) throw e;
        await new Promise((r) => setTimeout(r, (opts.backoffMs ?? 500) * 2 ** (attempt - 1)));
      }
    }
  }

  get(jobId: string): Promise<Job__Output> {
    return new Promise((resolve, reject) =>
      this.raw.GetJob({ jobId }, this.md(), this.opts(), (e, r) => (e ? reject(e) : resolve(r!))),
    );
  }

  async list(): Promise<Job__Output[]> {
    const res = await new Promise<{ jobs: Job__Output[] }>((resolve, reject) =>
      this.raw.ListJobs({}, this.md(), this.opts(), (e, r) => (e ? reject(e) : resolve(r!))),
    );
    return res.jobs;
  }

  cancel(jobId: string): Promise<Job__Output> {
    return new Promise((resolve, reject) =>
      this.raw.CancelJob({ jobId }, this.md(), this.opts(), (e, r) => (e ? reject(e) : resolve(r!))),
    );
  }

  /** Follow a job's events until it ends. `fromRound` replays stored reports first. */
  watch(
    jobId: string,
    fromRound: number | undefined,
    onEvent: (event: JobEvent__Output) => void,
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      const stream = this.raw.WatchJob(
        { jobId, fromRound: fromRound ?? 0, replay: fromRound !== undefined },
        this.md(),
      );
      stream.on('data', onEvent);
      stream.on('error', reject);
      stream.on('end', () => resolve());
    });
  }
}

export class AdminClient {
  private readonly raw: GenAdminClient;

  constructor(
    address: string,
    private readonly auth: ClientAuth = {},
  ) {
    this.raw = new proto.phalanx.v1.Admin(
      address,
      auth.credentials ?? grpc.credentials.createInsecure(),
      CHANNEL_OPTIONS,
    );
  }

  close(): void {
    this.raw.close();
  }

  createToken(request: {
    role: string;
    jobId?: string;
    count?: number;
    ttlMs?: number;
  }): Promise<CreateTokenResponse__Output> {
    return new Promise((resolve, reject) =>
      this.raw.CreateToken(
        {
          role: request.role,
          jobId: request.jobId ?? '',
          count: request.count ?? 0,
          ttlMs: request.ttlMs ?? 0,
        },
        metadataOf(this.auth),
        { deadline: Date.now() + 15_000 },
        (e, r) => (e ? reject(e) : resolve(r!)),
      ),
    );
  }

  revokeToken(tokenId: string): Promise<void> {
    return new Promise((resolve, reject) =>
      this.raw.RevokeToken({ tokenId }, metadataOf(this.auth), { deadline: Date.now() + 15_000 }, (e) =>
        e ? reject(e) : resolve(),
      ),
    );
  }
}
