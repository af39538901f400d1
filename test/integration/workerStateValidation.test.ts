/**
 * PushWorkerState / PullWorkerState against a coordinator process over real gRPC: every hostile or malformed call
 * gets a precise status and leaves the kept state untouched, and a worker only ever gets its own state back.
 */
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { CoordinatorClient } from '../../src/worker/coordinatorClient.ts';
import { JobsClient } from '../../src/cli/jobsClient.ts';
import { modelLayout } from '../../src/models/registry.ts';
import { authMetadata } from '../../src/transport/protocol.ts';
import type { WorkerStateChunk } from '../../src/gen/phalanx/v1/WorkerStateChunk.ts';
import { startCoordinatorProcess, tmpDir, type Proc } from '../support/processes.ts';

const SPEC = {
  name: 'worker-state-validation',
  model: { kind: 'mlp', hidden: [8] },
  data: { batchSize: 8, maxTrain: 500, maxTest: 100 },
  optimizer: { kind: 'sgd', lr: 0.1, momentum: 0 },
  rounds: 5,
  workers: { min: 2, max: 2, roundTimeout: '60s', heartbeatTtl: '60s', momentum: 0.9 },
  aggregation: { rule: 'mean', f: 0 },
  evaluation: { every: 0, limit: 100 },
  checkpoint: { every: 1 },
};

/** Send raw stream parts; the status code (OK = 0) and details. */
function rawPush(
  client: CoordinatorClient,
  token: string | undefined,
  parts: WorkerStateChunk[],
): Promise<{ code: number; details: string }> {
  return new Promise((resolve) => {
    const md = token === undefined ? new grpc.Metadata() : authMetadata(token);
    const call = client.raw.PushWorkerState(md, { deadline: Date.now() + 20_000 }, (err) =>
      resolve(err ? { code: err.code, details: err.details } : { code: grpc.status.OK, details: '' }),
    );
    call.on('error', () => {});
    for (const p of parts) call.write(p);
    call.end();
  });
}

/** A raw pull: the status code and the values received. */
function rawPull(
  client: CoordinatorClient,
  token: string | undefined,
  jobId: string,
  round: number,
): Promise<{ code: number; values: number[] }> {
  return new Promise((resolve) => {
    const md = token === undefined ? new grpc.Metadata() : authMetadata(token);
    const stream = client.raw.PullWorkerState({ jobId, round }, md, { deadline: Date.now() + 20_000 });
    const values: number[] = [];
    stream.on('data', (c: { data?: { data: Buffer } }) => {
      if (c.data) {
        const b = c.data.data;
        values.push(...new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length)));
      }
    });
    stream.on('error', (e: grpc.ServiceError) => resolve({ code: e.code, values }));
    stream.on('end', () => resolve({ code: grpc.status.OK, values }));
  });
}

function stateParts(
  jobId: string,
  round: number,
  values: Float32Array,
  header: Partial<{ momentum: boolean; errorFeedback: boolean }> = {},
): WorkerStateChunk[] {
  return [
    { header: { jobId, round, momentum: true, errorFeedback: false, ...header } },
    { data: { offset: 0, data: Buffer.from(values.buffer, values.byteOffset, values.byteLength) } },
  ];
}

describe('integration: worker state RPCs (coordinator process, real gRPC)', function () {
  this.timeout(120_000);
  let coordinator: { proc: Proc; address: string; adminToken: string };
  let jobs: JobsClient;
  let a: CoordinatorClient;
  let b: CoordinatorClient;
  let outsider: CoordinatorClient;
  const tokens: Record<string, string> = {};
  let jobId = '';
  const d = modelLayout({ kind: 'mlp', hidden: [8] }).totalSize;
  const mine = Float32Array.from({ length: d }, (_, i) => Math.sin(i));

  before(async () => {
    coordinator = await startCoordinatorProcess(['--checkpoint-dir', tmpDir('wstate-val')]);
    jobs = new JobsClient(coordinator.address, { token: coordinator.adminToken });
    jobId = (await jobs.submit(JSON.stringify(SPEC))).id;
    a = new CoordinatorClient(coordinator.address, undefined, coordinator.adminToken);
    b = new CoordinatorClient(coordinator.address, undefined, coordinator.adminToken);
    outsider = new CoordinatorClient(coordinator.address, undefined, coordinator.adminToken);
    tokens['a'] = (await a.register('worker-0', { backend: 'test' })).sessionToken;
    tokens['b'] = (await b.register('worker-1', { backend: 'test' })).sessionToken;
    tokens['outsider'] = (await outsider.register('worker-9', { backend: 'test' })).sessionToken;
    for (let i = 0; i < 50; i++) {
      try {
        await a.join(jobId);
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    await b.join(jobId);
    // Round 0 stays open (nobody pushes): worker 0's state entering round 1.
    expect((await rawPush(a, tokens['a'], stateParts(jobId, 1, mine))).code).to.equal(grpc.status.OK);
  });

  after(async () => {
    for (const c of [a, b, outsider]) c?.close();
    jobs?.close();
    await coordinator?.proc.kill();
  });

  /** Worker 0's kept state is still exactly what it sent. */
  async function untouched(): Promise<void> {
    const res = await rawPull(a, tokens['a'], jobId, 1);
    expect(res.code).to.equal(grpc.status.OK);
    expect(res.values).to.deep.equal(Array.from(mine));
  }

  it('gives a worker back exactly its own state', async () => {
    await untouched();
    expect(Array.from((await a.pullWorkerState(jobId, 1, d))!)).to.deep.equal(Array.from(mine));
  });

  it('never gives a worker another worker’s state (NOT_FOUND), nor a state of a round it did not send', async () => {
    const other = await rawPull(b, tokens['b'], jobId, 1);
    expect(other.code).to.equal(grpc.status.NOT_FOUND);
    expect(other.values).to.deep.equal([]);
    expect(await b.pullWorkerState(jobId, 1, d)).to.equal(undefined);
    expect((await rawPull(a, tokens['a'], jobId, 0)).code).to.equal(grpc.status.NOT_FOUND);
  });

  it('refuses calls without a valid session credential (UNAUTHENTICATED)', async () => {
    const forged = `${tokens['a'].split('.')[0]}.not-the-secret`;
    for (const token of [undefined, forged]) {
      expect((await rawPull(a, token, jobId, 1)).code).to.equal(grpc.status.UNAUTHENTICATED);
      const other = Float32Array.from({ length: d }, () => 7);
      expect((await rawPush(a, token, stateParts(jobId, 1, other))).code).to.equal(
        grpc.status.UNAUTHENTICATED,
      );
    }
    await untouched();
  });

  it('refuses a worker that is not a participant of the job (FAILED_PRECONDITION)', async () => {
    expect((await rawPull(outsider, tokens['outsider'], jobId, 1)).code).to.equal(
      grpc.status.FAILED_PRECONDITION,
    );
    const res = await rawPush(outsider, tokens['outsider'], stateParts(jobId, 1, mine));
    expect(res.code).to.equal(grpc.status.FAILED_PRECONDITION);
  });

  it('refuses a state of another size than the job’s (INVALID_ARGUMENT)', async () => {
    for (const n of [d - 1, d + 1, 2 * d, 0]) {
      const res = await rawPush(a, tokens['a'], stateParts(jobId, 1, new Float32Array(n)));
      expect(res.code, `${n} values`).to.equal(grpc.status.INVALID_ARGUMENT);
      expect(res.details).to.match(/values/);
    }
    // Parts the job does not keep: error feedback on a dense job, no momentum on a job with worker momentum.
    for (const header of [{ errorFeedback: true }, { momentum: false }]) {
      const res = await rawPush(a, tokens['a'], stateParts(jobId, 1, new Float32Array(d), header));
      expect(res.code, JSON.stringify(header)).to.equal(grpc.status.INVALID_ARGUMENT);
    }
    await untouched();
  });

  it('refuses non-finite values (INVALID_ARGUMENT)', async () => {
    for (const bad of [NaN, Infinity, -Infinity]) {
      const values = new Float32Array(d);
      values[d - 3] = bad;
      const res = await rawPush(a, tokens['a'], stateParts(jobId, 1, values));
      expect(res.code, String(bad)).to.equal(grpc.status.INVALID_ARGUMENT);
      expect(res.details).to.match(/not finite/);
    }
    await untouched();
  });

  it('refuses malformed streams (INVALID_ARGUMENT) and rounds other than the open one or the next (FAILED_PRECONDITION)', async () => {
    const [header, data] = stateParts(jobId, 1, new Float32Array(d));
    const malformed: WorkerStateChunk[][] = [
      [data],
      [header],
      [header, header, data],
      [header, { data: { offset: 4, data: data.data!.data } }],
      [header, { data: { offset: 0, data: Buffer.alloc(5) } }],
    ];
    for (const parts of malformed)
      expect((await rawPush(a, tokens['a'], parts)).code).to.equal(grpc.status.INVALID_ARGUMENT);
    const late = await rawPush(a, tokens['a'], stateParts(jobId, 3, new Float32Array(d)));
    expect(late.code).to.equal(grpc.status.FAILED_PRECONDITION);
    await untouched();
  });
});
