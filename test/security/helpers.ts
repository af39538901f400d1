/** Shared pieces of the security suite: status assertions and job snapshots. */
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import type { JobsClient } from '../../src/cli/jobsClient.ts';
import type { CoordinatorClient } from '../../src/worker/coordinatorClient.ts';

/** The call must fail with exactly this gRPC status. */
export async function expectStatus(call: Promise<unknown>, code: grpc.status): Promise<grpc.ServiceError> {
  let error: unknown;
  try {
    await call;
  } catch (e) {
    error = e;
  }
  expect(error, `expected ${grpc.status[code]}, but the call succeeded`).to.not.equal(undefined);
  const se = error as grpc.ServiceError;
  expect(grpc.status[se.code], se.details).to.equal(grpc.status[code]);
  // Client-visible errors are short and carry no paths or stacks.
  expect(se.details ?? '').to.not.match(/\/(src|home|tmp|work)\/|\bat .*\.ts:\d+/);
  return se;
}

/** What a refused call must not change: every job's id, state, owner and round, as the admin sees them. */
export async function snapshot(admin: JobsClient): Promise<string> {
  const jobs = await admin.list();
  return JSON.stringify(jobs.map((j) => [j.id, j.state, j.owner, j.round, j.specJson]));
}

/** A job that runs until cancelled and never sees a worker: its state only changes if someone changes it. */
export function idleJob(name: string): string {
  return JSON.stringify({
    name,
    model: { kind: 'mlp', hidden: [4] },
    data: { batchSize: 8, maxTrain: 100, maxTest: 50 },
    rounds: 100_000,
    workers: { min: 1, max: 4, roundTimeout: '10m', heartbeatTtl: '10m' },
    aggregation: { rule: 'mean', f: 0 },
    evaluation: { every: 0, limit: 50 },
    checkpoint: { every: 0 },
  });
}

export async function waitForState(jobs: JobsClient, id: string, state: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if ((await jobs.get(id)).state === state) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`job ${id} never reached ${state}`);
}

/** Resolves at WatchJob's first event (the call was allowed), rejects with its status if refused. */
export function watchFirst(jobs: JobsClient, id: string): Promise<void> {
  return new Promise((resolve, reject) => {
    jobs.watch(id, undefined, () => resolve()).then(resolve, reject);
  });
}

/** The store says 'running' a moment before the job's runtime takes joins. */
export async function joinWhenRunning(w: CoordinatorClient, jobId: string) {
  for (let i = 0; ; i++) {
    try {
      return await w.join(jobId);
    } catch (e) {
      if ((e as grpc.ServiceError).code !== grpc.status.NOT_FOUND || i >= 100) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
