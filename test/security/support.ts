/**
 * Raw gRPC clients for the security suite: every call returns the exact status the coordinator sent. Jobs clients
 * made by `rawJobs` carry the coordinator's admin token (when the test started that coordinator); `jobsMetadata()`
 * is the per-call metadata on top of it.
 */
import * as grpc from '@grpc/grpc-js';
import type { JobsClient as RawJobsClient } from '../../src/gen/phalanx/v1/Jobs.ts';
import type { CoordinatorClient as RawCoordinatorClient } from '../../src/gen/phalanx/v1/Coordinator.ts';
import type { Job__Output } from '../../src/gen/phalanx/v1/Job.ts';
import type { JobEvent__Output } from '../../src/gen/phalanx/v1/JobEvent.ts';
import { authMetadata, CHANNEL_OPTIONS, proto } from '../../src/transport/protocol.ts';
import { adminTokenFor } from '../support/processes.ts';

/** A small job that stays at round 0 unless two workers join. */
export const IDLE_SPEC = {
  name: 'stream-status',
  model: { kind: 'mlp', hidden: [8] },
  data: { batchSize: 8, maxTrain: 200, maxTest: 50 },
  optimizer: { kind: 'sgd', lr: 0.1 },
  rounds: 1000,
  // Two workers needed and only one ever joins: the job stays at round 0 while the tests poke at it.
  workers: { min: 2, max: 2, roundTimeout: '60s', heartbeatTtl: '60s' },
  aggregation: { rule: 'mean', f: 0 },
  evaluation: { every: 0 },
  checkpoint: { every: 0 },
};

/** Deadline far beyond any expected answer: a call that needs it has hung (it ends as DEADLINE_EXCEEDED). */
export const HANG_DEADLINE_MS = 30_000;

export function jobsMetadata(): grpc.Metadata {
  return new grpc.Metadata();
}

/** Adds `token` to every call that carries no credential of its own. */
function withToken(token: string | undefined): grpc.Interceptor {
  return (options, next) =>
    new grpc.InterceptingCall(next(options), {
      start(metadata, listener, start) {
        if (token && !metadata.get('authorization').length) metadata.merge(authMetadata(token));
        start(metadata, listener);
      },
    });
}

export function rawJobs(address: string, token = adminTokenFor(address)): RawJobsClient {
  return new proto.phalanx.v1.Jobs(address, grpc.credentials.createInsecure(), {
    ...CHANNEL_OPTIONS,
    interceptors: [withToken(token)],
  });
}

/** Coordinator service client; RegisterWorker enrolls with the coordinator's admin token. */
export function rawCoordinator(address: string, token = adminTokenFor(address)): RawCoordinatorClient {
  return new proto.phalanx.v1.Coordinator(address, grpc.credentials.createInsecure(), {
    ...CHANNEL_OPTIONS,
    interceptors: [withToken(token)],
  });
}

export interface Outcome<T> {
  value?: T;
  code: grpc.status;
  details: string;
}

function deadline(): grpc.CallOptions {
  return { deadline: Date.now() + HANG_DEADLINE_MS };
}

function settle<T>(resolve: (o: Outcome<T>) => void) {
  return (err: grpc.ServiceError | null, value?: T) =>
    resolve(err ? { code: err.code, details: err.details } : { value, code: grpc.status.OK, details: '' });
}

export function submitJob(c: RawJobsClient, spec: unknown): Promise<Outcome<Job__Output>> {
  return new Promise((resolve) =>
    c.SubmitJob({ spec: JSON.stringify(spec) }, jobsMetadata(), deadline(), settle(resolve)),
  );
}

export function getJob(c: RawJobsClient, jobId: string): Promise<Outcome<Job__Output>> {
  return new Promise((resolve) => c.GetJob({ jobId }, jobsMetadata(), deadline(), settle(resolve)));
}

export function cancelJob(c: RawJobsClient, jobId: string): Promise<Outcome<Job__Output>> {
  return new Promise((resolve) => c.CancelJob({ jobId }, jobsMetadata(), deadline(), settle(resolve)));
}

/** Watch until the stream ends; the outcome carries every event received and the final status. */
export function watchJob(
  c: RawJobsClient,
  jobId: string,
  onEvent: (e: JobEvent__Output) => void = () => {},
): Promise<Outcome<JobEvent__Output[]>> {
  return new Promise((resolve) => {
    const events: JobEvent__Output[] = [];
    const call = c.WatchJob({ jobId, fromRound: 0, replay: false }, jobsMetadata(), deadline());
    call.on('data', (e: JobEvent__Output) => {
      events.push(e);
      onEvent(e);
    });
    call.on('status', (s: grpc.StatusObject) => resolve({ value: events, code: s.code, details: s.details }));
    call.on('error', () => {}); // the status event carries it
  });
}

/** Register a worker; returns its session token. */
export function register(c: RawCoordinatorClient, name: string): Promise<string> {
  return new Promise((resolve, reject) =>
    c.RegisterWorker({ name, capabilities: {} }, deadline(), (err, res) =>
      err ? reject(err) : resolve(res!.sessionToken),
    ),
  );
}

export function joinJob(
  c: RawCoordinatorClient,
  token: string,
  jobId: string,
): Promise<Outcome<{ jobId: string }>> {
  return new Promise((resolve) => c.JoinJob({ jobId }, authMetadata(token), deadline(), settle(resolve)));
}

/** Pull parameters until the stream ends; counts the chunks and returns the final status. */
export function pullParameters(
  c: RawCoordinatorClient,
  token: string | undefined,
  jobId: string,
  encoding = 'ENCODING_FP32',
): Promise<Outcome<number>> {
  return new Promise((resolve) => {
    let chunks = 0;
    const md = token === undefined ? new grpc.Metadata() : authMetadata(token);
    const call = c.PullParameters({ jobId, encoding: encoding as 'ENCODING_FP32' }, md, deadline());
    call.on('data', () => chunks++);
    call.on('status', (s: grpc.StatusObject) => resolve({ value: chunks, code: s.code, details: s.details }));
    call.on('error', () => {});
  });
}

/** A client-visible message that leaks nothing: no absolute path, no stack frame. */
export function expectPathFree(message: string): void {
  if (/(^|[\s'"(])\/[^\s]*/.test(message) || /[A-Za-z]:\\/.test(message))
    throw new Error(`client message contains a file path: ${message}`);
  if (/\bat\s+\S+\s+\(|\n\s+at\s/.test(message) || /\.(ts|js|mjs):\d+/.test(message))
    throw new Error(`client message contains a stack frame: ${message}`);
}

export const INTERNAL_REF = /^internal error \(see coordinator log, ref ([0-9a-f]{8})\)$/;
