/**
 * Per-credential caps on open streams, against a coordinator in its own process: a credential cannot hold more
 * than WATCHES_PER_CREDENTIAL watches, nor a worker more than PULL_STREAMS_PER_WORKER parameter pulls; the next
 * one is RESOURCE_EXHAUSTED, and closing one frees its slot.
 */
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { WATCHES_PER_CREDENTIAL } from '../../src/coordinator/jobsService.ts';
import { PULL_STREAMS_PER_WORKER } from '../../src/coordinator/coordinatorService.ts';
import { authMetadata, MAX_MESSAGE_BYTES, proto } from '../../src/transport/protocol.ts';
import { startCoordinatorProcess, tmpDir, type Proc } from '../support/processes.ts';
import {
  IDLE_SPEC,
  jobsMetadata,
  joinJob,
  rawCoordinator,
  rawJobs,
  register,
  submitJob,
  watchJob,
} from './support.ts';

describe('security: open streams per credential are capped', function () {
  this.timeout(120_000);
  let coordinator: { proc: Proc; address: string; adminToken: string };
  let jobs: ReturnType<typeof rawJobs>;
  let coord: ReturnType<typeof rawCoordinator>;
  let jobId = '';

  before(async () => {
    coordinator = await startCoordinatorProcess(['--checkpoint-dir', tmpDir('limits')]);
    jobs = rawJobs(coordinator.address);
    coord = rawCoordinator(coordinator.address);
    // 25 MB of parameters: far more than a default flow-control window, so a pull the client does not read stays
    // open.
    const submitted = await submitJob(jobs, {
      ...IDLE_SPEC,
      name: 'stream-limits',
      model: { kind: 'mlp', hidden: [8000] },
    });
    expect(submitted.code, submitted.details).to.equal(grpc.status.OK);
    jobId = submitted.value!.id;
    await coordinator.proc.waitFor(new RegExp(`job ${jobId}: runtime started`));
  });
  after(async () => {
    jobs?.close();
    coord?.close();
    await coordinator?.proc.kill();
  });

  it(`a credential may hold ${WATCHES_PER_CREDENTIAL} watches; one more is RESOURCE_EXHAUSTED until one closes`, async () => {
    const open = await Promise.all(
      Array.from({ length: WATCHES_PER_CREDENTIAL }, async () => {
        const call = jobs.WatchJob({ jobId, fromRound: 0, replay: false }, jobsMetadata());
        call.on('error', () => {});
        await new Promise<void>((resolve) => call.once('data', () => resolve()));
        return call;
      }),
    );
    const refused = await watchJob(jobs, jobId);
    expect(refused.code, refused.details).to.equal(grpc.status.RESOURCE_EXHAUSTED);
    expect(refused.details).to.match(/too many open watches/);
    // Closing one watch frees its slot.
    open.pop()!.cancel();
    await new Promise((r) => setTimeout(r, 300));
    const call = jobs.WatchJob({ jobId, fromRound: 0, replay: false }, jobsMetadata());
    call.on('error', () => {});
    await new Promise<void>((resolve) => call.once('data', () => resolve()));
    for (const c of [...open, call]) c.cancel();
  });

  it(`a worker may hold ${PULL_STREAMS_PER_WORKER} parameter pulls; one more is RESOURCE_EXHAUSTED`, async () => {
    const token = await register(coord, 'limits-worker');
    expect((await joinJob(coord, token, jobId)).code).to.equal(grpc.status.OK);
    // Default HTTP/2 windows (64 KiB, not the 16 MiB workers use): a pull this client stops reading stays open.
    const puller = new proto.phalanx.v1.Coordinator(coordinator.address, grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    });
    const held: grpc.ClientReadableStream<unknown>[] = [];
    for (let i = 0; i < PULL_STREAMS_PER_WORKER; i++) {
      const call = puller.PullParameters({ jobId, encoding: 'ENCODING_FP32' }, authMetadata(token));
      call.on('error', () => {});
      await new Promise<void>((resolve) => call.once('data', () => resolve()));
      call.pause(); // read one chunk, then stop: the coordinator waits for the window
      held.push(call);
    }
    const third = await new Promise<grpc.StatusObject>((resolve) => {
      const call = puller.PullParameters({ jobId, encoding: 'ENCODING_FP32' }, authMetadata(token));
      call.on('data', () => {});
      call.on('error', () => {});
      call.on('status', resolve);
    });
    expect(third.code, third.details).to.equal(grpc.status.RESOURCE_EXHAUSTED);
    expect(third.details).to.match(/too many concurrent pulls/);
    for (const call of held) call.cancel();
    await new Promise((r) => setTimeout(r, 300));
    const again = await new Promise<grpc.StatusObject>((resolve) => {
      const call = puller.PullParameters({ jobId, encoding: 'ENCODING_FP32' }, authMetadata(token));
      call.on('data', () => {});
      call.on('error', () => {});
      call.on('status', resolve);
    });
    expect(again.code, again.details).to.equal(grpc.status.OK);
    puller.close();
  });
});
