/**
 * Hostile and unlucky pushes against a coordinator in its own process: each bad push gets a precise gRPC status
 * and leaves the job's state untouched; duplicates and late pushes are idempotent.
 */
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { CoordinatorClient } from '../../src/worker/coordinatorClient.ts';
import { JobsClient } from '../../src/cli/jobsClient.ts';
import { modelLayout } from '../../src/models/registry.ts';
import { layoutFingerprint, type ParameterLayout } from '../../src/core/layout/parameterLayout.ts';
import { authMetadata } from '../../src/transport/protocol.ts';
import type { PushGradientRequest } from '../../src/gen/phalanx/v1/PushGradientRequest.ts';
import { startCoordinatorProcess, tmpDir, type Proc } from '../support/processes.ts';

const SPEC = {
  name: 'push-validation',
  model: { kind: 'mlp', hidden: [8] },
  data: { batchSize: 8, maxTrain: 500, maxTest: 100 },
  optimizer: { kind: 'sgd', lr: 1, momentum: 0 },
  rounds: 5,
  workers: { min: 2, max: 2, roundTimeout: '60s', heartbeatTtl: '60s' },
  aggregation: { rule: 'mean', f: 0 },
  evaluation: { every: 0, limit: 100 },
  checkpoint: { every: 0 },
};

type Part = PushGradientRequest;

/** Send raw stream parts and return the response or the gRPC error. */
function rawPush(
  client: CoordinatorClient,
  token: string | undefined,
  parts: Part[],
): Promise<{ status?: string; error?: grpc.ServiceError }> {
  return new Promise((resolve) => {
    const md = token === undefined ? new grpc.Metadata() : authMetadata(token);
    const call = client.raw.PushGradient(md, { deadline: Date.now() + 20_000 }, (err, res) =>
      resolve(err ? { error: err } : { status: res!.status }),
    );
    call.on('error', () => {});
    for (const p of parts) call.write(p);
    call.end();
  });
}

function fullPush(
  jobId: string,
  round: number,
  layout: ParameterLayout,
  value: (i: number) => number,
  total = layout.totalSize,
): Part[] {
  const parts: Part[] = [
    {
      header: {
        jobId,
        round,
        planId: '',
        encoding: 'ENCODING_FP32',
        totalElements: total,
        layoutFingerprint: layoutFingerprint(layout),
        loss: 1,
        samples: 8,
      },
    },
  ];
  layout.layers.forEach((slot, layer) => {
    const data = new Float32Array(slot.size);
    for (let i = 0; i < slot.size; i++) data[i] = value(slot.offset + i);
    parts.push({ chunk: { jobId, round, layer, offset: 0, data: Buffer.from(data.buffer) } });
  });
  return parts;
}

describe('integration: push validation (coordinator process, real gRPC)', function () {
  this.timeout(120_000);
  let coordinator: { proc: Proc; address: string; adminToken: string };
  let jobs: JobsClient;
  let a: CoordinatorClient;
  let b: CoordinatorClient;
  let tokenA = '';
  let jobId = '';
  const layout = modelLayout({ kind: 'mlp', hidden: [8] });
  const fp = layoutFingerprint(layout);

  before(async () => {
    coordinator = await startCoordinatorProcess(['--checkpoint-dir', tmpDir('pushval')]);
    jobs = new JobsClient(coordinator.address, { token: coordinator.adminToken });
    const job = await jobs.submit(JSON.stringify(SPEC));
    jobId = job.id;
    a = new CoordinatorClient(coordinator.address, undefined, coordinator.adminToken);
    b = new CoordinatorClient(coordinator.address, undefined, coordinator.adminToken);
    tokenA = (await a.register('worker-0', { backend: 'test' })).sessionToken;
    await b.register('worker-1', { backend: 'test' });
    for (let i = 0; i < 50; i++) {
      try {
        await a.join(jobId);
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    await b.join(jobId);
  });

  after(async () => {
    a?.close();
    b?.close();
    jobs?.close();
    await coordinator?.proc.kill();
  });

  async function untouched(): Promise<void> {
    const info = await a.getRound(jobId, undefined, 0);
    expect(info.round).to.equal(0);
    expect(info.pushed).to.equal(false);
  }

  it('refuses calls without a valid session credential (UNAUTHENTICATED)', async () => {
    const none = await rawPush(
      a,
      undefined,
      fullPush(jobId, 0, layout, () => 0),
    );
    expect(none.error?.code).to.equal(grpc.status.UNAUTHENTICATED);
    const forged = `${tokenA.split('.')[0]}.not-the-secret`;
    const res = await rawPush(
      a,
      forged,
      fullPush(jobId, 0, layout, () => 0),
    );
    expect(res.error?.code).to.equal(grpc.status.UNAUTHENTICATED);
    await untouched();
  });

  it('rejects a message larger than the receive limit (RESOURCE_EXHAUSTED)', async () => {
    const parts = fullPush(jobId, 0, layout, () => 0).slice(0, 1);
    parts.push({ chunk: { jobId, round: 0, layer: 0, offset: 0, data: Buffer.alloc(2 * 1024 * 1024) } });
    const res = await rawPush(a, tokenA, parts);
    expect(res.error?.code).to.equal(grpc.status.RESOURCE_EXHAUSTED);
    await untouched();
  });

  it('rejects more elements than the layout (RESOURCE_EXHAUSTED)', async () => {
    const parts = fullPush(jobId, 0, layout, () => 0);
    parts.push({ chunk: { jobId, round: 0, layer: 0, offset: 0, data: Buffer.alloc(16) } });
    const res = await rawPush(a, tokenA, parts);
    expect(res.error?.code).to.equal(grpc.status.RESOURCE_EXHAUSTED);
    expect(res.error?.details).to.match(/exceeds/);
    await untouched();
  });

  it('rejects a truncated push (INVALID_ARGUMENT)', async () => {
    const parts = fullPush(jobId, 0, layout, () => 0).slice(0, 2);
    const res = await rawPush(a, tokenA, parts);
    expect(res.error?.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(res.error?.details).to.match(/truncated/);
    await untouched();
  });

  it('rejects a wrong shape (INVALID_ARGUMENT)', async () => {
    const declared = await rawPush(
      a,
      tokenA,
      fullPush(jobId, 0, layout, () => 0, layout.totalSize + 1),
    );
    expect(declared.error?.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(declared.error?.details).to.match(/wrong shape/);
    const parts = fullPush(jobId, 0, layout, () => 0);
    const first = parts[1].chunk!;
    parts[1] = {
      chunk: {
        ...first,
        data: Buffer.concat([first.data as Buffer, Buffer.alloc(4 * layout.layers[0].size)]),
      },
    };
    const overrun = await rawPush(a, tokenA, parts);
    expect(overrun.error?.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(overrun.error?.details).to.match(/overruns layer/);
    await untouched();
  });

  it('rejects a push carrying NaN or Inf (INVALID_ARGUMENT)', async () => {
    const nan = await rawPush(
      a,
      tokenA,
      fullPush(jobId, 0, layout, (i) => (i === 123 ? NaN : 0)),
    );
    expect(nan.error?.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(nan.error?.details).to.match(/non-finite/);
    const inf = await rawPush(
      a,
      tokenA,
      fullPush(jobId, 0, layout, (i) => (i === layout.totalSize - 1 ? Infinity : 0)),
    );
    expect(inf.error?.code).to.equal(grpc.status.INVALID_ARGUMENT);
    await untouched();
  });

  it('accepts a valid push once; a duplicate is acknowledged without effect; a late push is LATE', async () => {
    const before = new Float32Array(layout.totalSize);
    expect(await a.pull(jobId, before, fp)).to.equal(0);

    const gA = new Float32Array(layout.totalSize).fill(0.5);
    const gB = new Float32Array(layout.totalSize).fill(1.5);
    const meta = {
      jobId,
      round: 0,
      loss: 1,
      samples: 8,
      attempt: 0,
      encoding: 'fp32' as const,
      layoutFingerprint: fp,
    };
    expect((await a.push(gA, layout, meta)).status).to.equal('PUSH_STATUS_ACCEPTED');
    // A retry with different content must not replace the accepted gradient.
    const evil = new Float32Array(layout.totalSize).fill(1000);
    expect((await a.push(evil, layout, { ...meta, attempt: 1 })).status).to.equal('PUSH_STATUS_DUPLICATE');
    expect((await b.push(gB, layout, meta)).status).to.equal('PUSH_STATUS_ACCEPTED');

    const info = await a.getRound(jobId, 0, 10_000);
    expect(info.round).to.equal(1);
    const after = new Float32Array(layout.totalSize);
    expect(await a.pull(jobId, after, fp)).to.equal(1);
    // mean rule, SGD lr 1, no momentum: every parameter moved by exactly −mean(0.5, 1.5) = −1.
    for (let i = 0; i < after.length; i += 97) expect(after[i]).to.be.closeTo(before[i] - 1, 1e-5);

    const late = await a.push(gA, layout, { ...meta, attempt: 2 });
    expect(late.status).to.equal('PUSH_STATUS_LATE');
    expect(late.currentRound).to.equal(1);
    const stillOne = await a.getRound(jobId, undefined, 0);
    expect(stillOne.round).to.equal(1);
    expect(stillOne.pushed).to.equal(false);
  });

  it('records rejected workers in the round report', async () => {
    const events: { round?: { round: number; workers: { name: string; included: boolean }[] } }[] = [];
    await new Promise<void>((resolve) => {
      const stream = jobs.watch(jobId, 0, (e) => {
        events.push(e as (typeof events)[number]);
        if (events.some((x) => x.round?.round === 0)) resolve();
      });
      void stream.catch(() => resolve());
    });
    const r0 = events.find((x) => x.round?.round === 0)!.round!;
    expect(r0.workers.map((w) => w.name).sort()).to.deep.equal(['worker-0', 'worker-1']);
    expect(r0.workers.every((w) => w.included)).to.equal(true);
  });

  it('does not let a rejected push count toward workers.min (no aggregation below quorum)', async () => {
    const open = await a.getRound(jobId, undefined, 0);
    expect(open.round).to.equal(1);
    const before = new Float32Array(layout.totalSize);
    expect(await a.pull(jobId, before, fp)).to.equal(1);
    // Worker A sends garbage for round 1, worker B a valid gradient: one accepted of workers.min = 2.
    const garbage = await rawPush(
      a,
      tokenA,
      fullPush(jobId, 1, layout, (i) => (i === 7 ? NaN : 0)),
    );
    expect(garbage.error?.code).to.equal(grpc.status.INVALID_ARGUMENT);
    const meta = {
      jobId,
      round: 1,
      loss: 1,
      samples: 8,
      attempt: 0,
      encoding: 'fp32' as const,
      layoutFingerprint: fp,
    };
    const res = await b.push(new Float32Array(layout.totalSize).fill(3), layout, meta);
    expect(res.status).to.equal('PUSH_STATUS_ACCEPTED');
    // Every participant has answered; a round that counted the rejection would close now with B's gradient.
    const info = await a.getRound(jobId, 1, 1_500);
    expect(info.round, 'round 1 must stay open below quorum').to.equal(1);
    const after = new Float32Array(layout.totalSize);
    expect(await a.pull(jobId, after, fp)).to.equal(1);
    expect(Array.from(after.subarray(0, 50))).to.deep.equal(Array.from(before.subarray(0, 50)));
    // A valid push from A completes the quorum: the mean of A's and B's gradients is applied.
    expect((await a.push(new Float32Array(layout.totalSize).fill(1), layout, meta)).status).to.equal(
      'PUSH_STATUS_ACCEPTED',
    );
    expect((await a.getRound(jobId, 1, 10_000)).round).to.equal(2);
    expect(await a.pull(jobId, after, fp)).to.equal(2);
    for (let i = 0; i < after.length; i += 97) expect(after[i]).to.be.closeTo(before[i] - 2, 1e-5);
  });

  it('caps the push streams one worker may hold open (RESOURCE_EXHAUSTED), and frees them when they end', async () => {
    // Two streams that never send anything: each holds one of the worker's slots until it ends.
    const held = [0, 1].map(() => {
      const call = a.raw.PushGradient(authMetadata(tokenA), { deadline: Date.now() + 20_000 }, () => {});
      call.on('error', () => {});
      return call;
    });
    await new Promise((r) => setTimeout(r, 300));
    const third = await rawPush(
      a,
      tokenA,
      fullPush(jobId, 2, layout, () => 0),
    );
    expect(third.error?.code).to.equal(grpc.status.RESOURCE_EXHAUSTED);
    expect(third.error?.details).to.match(/too many concurrent pushes/);
    for (const call of held) call.cancel();
    await new Promise((r) => setTimeout(r, 300));
    const meta = {
      jobId,
      round: 2,
      loss: 1,
      samples: 8,
      attempt: 0,
      encoding: 'fp32' as const,
      layoutFingerprint: fp,
    };
    expect((await a.push(new Float32Array(layout.totalSize), layout, meta)).status).to.equal(
      'PUSH_STATUS_ACCEPTED',
    );
  });
});
