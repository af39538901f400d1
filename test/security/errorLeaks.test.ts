/**
 * Client-visible errors are short and path-free: an unexpected failure (a store that answers with an error, a
 * corrupt checkpoint on resume) reaches the client as `internal error (see coordinator log, ref <id>)` — as a gRPC
 * status or as a failed job's error — while the coordinator's log holds the full error and its stack under the
 * same ref. Also: a restarted coordinator resumes jobs it finds `starting` or `running`.
 */
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { validateJobSpec } from '../../src/config/jobSpec.ts';
import { RedisStateStore } from '../../src/coordinator/state/redisStore.ts';
import type { JobRecord, JobTransition } from '../../src/coordinator/state/stateStore.ts';
import { logLines, startCoordinatorProcess, tmpDir, type Proc } from '../support/processes.ts';
import {
  IDLE_SPEC,
  INTERNAL_REF,
  cancelJob,
  expectPathFree,
  getJob,
  joinJob,
  rawCoordinator,
  rawJobs,
  register,
  watchJob,
} from './support.ts';
import { dropKeys } from '../support/redisKeys.ts';

const REDIS_URL = process.env.PHALANX_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/**
 * The coordinator logged the error behind `ref` with its text and stack (the log line may follow the answer): one
 * JSON line at level error, its output not being a terminal.
 */
async function expectLogged(proc: Proc, ref: string, text: RegExp): Promise<void> {
  await proc.waitFor(new RegExp(`internal error ref ${ref}`), 10_000);
  const entry = logLines(proc.output()).find((l) => l.msg.includes(`internal error ref ${ref}`));
  expect(entry?.level).to.equal('error');
  expect(entry?.msg).to.match(text);
  expect(entry?.msg).to.match(/\n\s+at /);
}

describe('security: client errors are short and path-free', function () {
  this.timeout(180_000);
  const prefix = `phalanx-test-leaks-${randomBytes(4).toString('hex')}:`;
  const dir = tmpDir('leaks');
  let admin: Redis;
  let coordinator: { proc: Proc; address: string } | undefined;
  let jobs: ReturnType<typeof rawJobs>;
  let coord: ReturnType<typeof rawCoordinator>;
  const ids = {
    corrupt: 'leaks-corrupt-000001',
    starting: 'leaks-starting-000002',
    running: 'leaks-running-000003',
  };

  before(async () => {
    admin = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    // What a previous coordinator left behind: three jobs it had claimed, one with a corrupt checkpoint.
    const store = new RedisStateStore(REDIS_URL, { keyPrefix: prefix });
    await store.connect();
    const spec = JSON.stringify(validateJobSpec({ ...IDLE_SPEC, name: 'leaks' }));
    const put = async (id: string, createdAt: number, steps: JobTransition[]) => {
      const job: JobRecord = {
        id,
        name: 'leaks',
        spec,
        state: 'queued',
        createdAt,
        updatedAt: createdAt,
        round: 0,
      };
      await store.submitJob(job);
      await store.ackQueuedJob('gone', (await store.claimQueuedJob('gone', 60_000))!);
      for (const step of steps) expect(await store.transitionJob(id, step)).to.not.equal(undefined);
    };
    await put(ids.corrupt, 1000, ['start', 'run']);
    await put(ids.starting, 2000, ['start']);
    await put(ids.running, 3000, ['start', 'run']);
    const file = path.join(dir, ids.corrupt, 'round-000003.safetensors');
    mkdirSync(path.dirname(file), { recursive: true });
    const garbage = Buffer.from('this is not a safetensors file');
    writeFileSync(file, garbage);
    await store.putCheckpointManifest({
      jobId: ids.corrupt,
      round: 3,
      path: file,
      sha256: createHash('sha256').update(garbage).digest('hex'),
      bytes: garbage.length,
      createdAt: 5000,
    });
    await store.close();
    // A job record that is not a hash: every read of it fails inside the store.
    await admin.set(`${prefix}{job:broken}`, 'not a hash');

    coordinator = await startCoordinatorProcess([
      '--store',
      'redis',
      '--redis-url',
      REDIS_URL,
      '--redis-prefix',
      prefix,
      '--checkpoint-dir',
      dir,
    ]);
    jobs = rawJobs(coordinator.address);
    coord = rawCoordinator(coordinator.address);
  });

  after(async () => {
    jobs?.close();
    coord?.close();
    await coordinator?.proc.kill();
    await dropKeys(prefix, admin);
    await admin.quit();
  });

  it('a store failure: INTERNAL with a ref, for unary calls and for WatchJob; the log has the error', async () => {
    for (const call of [
      () => getJob(jobs, 'broken'),
      () => cancelJob(jobs, 'broken'),
      () => watchJob(jobs, 'broken'),
    ]) {
      const out = await call();
      expect(out.code, out.details).to.equal(grpc.status.INTERNAL);
      expect(out.details).to.match(INTERNAL_REF);
      expectPathFree(out.details);
      await expectLogged(coordinator!.proc, INTERNAL_REF.exec(out.details)![1], /WRONGTYPE/);
    }
  });

  it('a corrupt checkpoint on resume: the job fails with a ref, its error names no path; the log does', async () => {
    await coordinator!.proc.waitFor(new RegExp(`job ${ids.corrupt} failed`));
    const job = (await getJob(jobs, ids.corrupt)).value!;
    expect(job.state).to.equal('failed');
    expect(job.error).to.match(INTERNAL_REF);
    expectPathFree(job.error);
    const ref = INTERNAL_REF.exec(job.error)![1];
    await expectLogged(coordinator!.proc, ref, new RegExp(`${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    const watched = await watchJob(jobs, ids.corrupt);
    expect(watched.code).to.equal(grpc.status.OK);
    for (const e of watched.value!) expectPathFree(e.job?.error ?? '');
  });

  it('a restarted coordinator resumes jobs it finds starting or running', async () => {
    const token = await register(coord, 'leaks-worker');
    for (const id of [ids.starting, ids.running]) {
      await coordinator!.proc.waitFor(new RegExp(`job ${id}: runtime started at round 0`));
      expect((await getJob(jobs, id)).value?.state).to.equal('running');
      expect((await joinJob(coord, token, id)).code).to.equal(grpc.status.OK);
    }
  });
});
