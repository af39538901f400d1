/**
 * Separate processes over loopback gRPC: a worker killed with SIGKILL mid-job does not stop training; a
 * coordinator killed with SIGKILL and restarted on the Redis store resumes the job from its last checkpoint.
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { JobsClient } from '../../src/cli/jobsClient.ts';
import type { RoundReport } from '../../src/coordinator/roundReport.ts';
import { listCheckpoints, readCheckpoint } from '../../src/checkpoint/checkpoint.ts';
import {
  startCoordinatorProcess,
  startWorkerProcess,
  tmpDir,
  sleep,
  type Proc,
} from '../support/processes.ts';

const REDIS_URL = process.env['PHALANX_TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379';

function spec(name: string, rounds: number, extra: Record<string, unknown> = {}) {
  return {
    name,
    seed: 3,
    model: { kind: 'mlp', hidden: [16] },
    data: { batchSize: 16, maxTrain: 3000, maxTest: 500 },
    optimizer: { kind: 'sgd', lr: 0.1, momentum: 0.9 },
    rounds,
    workers: { min: 2, max: 3, roundTimeout: '4s', heartbeatTtl: '1500ms' },
    aggregation: { rule: 'median', f: 0 },
    evaluation: { every: 10, limit: 500 },
    ...extra,
  };
}

async function waitForRound(
  jobs: JobsClient,
  jobId: string,
  round: number,
  timeoutMs = 90_000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const job = await jobs.get(jobId).catch(() => undefined);
    if (job && job.round >= round) return;
    if (job && ['failed', 'cancelled'].includes(job.state)) throw new Error(`job ${job.state}: ${job.error}`);
    await sleep(200);
  }
  throw new Error(`job ${jobId} did not reach round ${round}`);
}

async function waitForState(jobs: JobsClient, jobId: string, timeoutMs = 120_000) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const job = await jobs.get(jobId).catch(() => undefined);
    if (job && ['completed', 'failed', 'cancelled'].includes(job.state)) return job;
    await sleep(250);
  }
  throw new Error(`job ${jobId} did not end`);
}

async function reports(jobs: JobsClient, jobId: string): Promise<RoundReport[]> {
  const out: RoundReport[] = [];
  await jobs.watch(jobId, 0, (e) => {
    if (e.round) out.push(e.round as unknown as RoundReport);
  });
  return out;
}

describe('integration: fault tolerance (separate processes, real gRPC)', function () {
  this.timeout(240_000);
  const procs: Proc[] = [];
  const clients: JobsClient[] = [];

  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await Promise.all(procs.splice(0).map((p) => p.kill('SIGKILL')));
  });

  it('keeps training when a worker is killed with SIGKILL mid-job', async () => {
    const coordinator = await startCoordinatorProcess(['--checkpoint-dir', tmpDir('kill-worker')]);
    procs.push(coordinator.proc);
    const jobs = new JobsClient(coordinator.address, { token: coordinator.adminToken });
    clients.push(jobs);
    const job = await jobs.submit(JSON.stringify(spec('kill-worker', 30)));
    // worker-2 joins first: with workers.min = 2 no round can close before a second worker joins, so the
    // worker killed below is a participant from round 0 however slowly the processes start.
    const workers: Proc[] = [];
    workers[2] = startWorkerProcess(coordinator.address, 'worker-2', ['--job', job.id]);
    procs.push(workers[2]);
    await workers[2].waitFor(/joined job/, 120_000);
    for (const i of [0, 1]) {
      workers[i] = startWorkerProcess(coordinator.address, `worker-${i}`, ['--job', job.id]);
      procs.push(workers[i]);
    }

    await waitForRound(jobs, job.id, 8);
    await workers[2].kill('SIGKILL');
    const done = await waitForState(jobs, job.id);
    expect(done.state, done.error).to.equal('completed');
    expect(done.round).to.equal(30);

    const rs = await reports(jobs, job.id);
    expect(rs.map((r) => r.round)).to.deep.equal([...Array(30).keys()]);
    // The killed worker is reported missing once, then the job goes on with the two survivors.
    const dropped = rs.flatMap((r) => r.missing).filter((m) => m.name === 'worker-2');
    expect(dropped.length).to.be.greaterThan(0);
    expect(dropped.map((m) => m.reason).join(' ')).to.match(/heartbeat expired|late/);
    const last = rs[rs.length - 1];
    expect(last.workers.map((w) => w.name).sort()).to.deep.equal(['worker-0', 'worker-1']);
    expect(JSON.parse(done.resultJson).testAccuracy).to.be.greaterThan(0.3); // chance is 0.1
  });

  it('resumes a job from its last checkpoint after the coordinator is killed and restarted on Redis, ending exactly where an uninterrupted run ends', async () => {
    const prefix = `phalanx-test-${randomBytes(4).toString('hex')}:`;
    const ckpt = tmpDir('restart');
    const args = [
      '--store',
      'redis',
      '--redis-url',
      REDIS_URL,
      '--redis-prefix',
      prefix,
      '--checkpoint-dir',
      ckpt,
    ];
    const first = await startCoordinatorProcess(args);
    procs.push(first.proc);
    let jobs = new JobsClient(first.address, { token: first.adminToken });
    clients.push(jobs);
    // Worker momentum on: the resumed run must restore it too, not only parameters and optimizer state.
    const restartSpec = spec('restart', 30, {
      checkpoint: { every: 5 },
      // Generous timeouts: no worker may miss a round on a busy machine, or the two runs differ.
      workers: { min: 2, max: 3, roundTimeout: '30s', heartbeatTtl: '10s', momentum: 0.9 },
    });
    const job = await jobs.submit(JSON.stringify(restartSpec));
    const workers = [0, 1].map((i) => startWorkerProcess(first.address, `worker-${i}`, ['--job', job.id]));
    procs.push(...workers);

    await waitForRound(jobs, job.id, 12);
    await first.proc.kill('SIGKILL');
    jobs.close();

    const second = await startCoordinatorProcess([...args, '--port', String(first.port)]);
    procs.push(second.proc);
    const m = await second.proc.waitFor(/resumed from checkpoint at round (\d+)/);
    const resumedAt = Number(m[1]);
    expect(resumedAt).to.be.at.least(10);
    expect(resumedAt % 5).to.equal(0);

    jobs = new JobsClient(second.address, { token: second.adminToken });
    clients.push(jobs);
    const done = await waitForState(jobs, job.id);
    expect(done.state, done.error).to.equal('completed');
    expect(done.round).to.equal(30);
    const rs = await reports(jobs, job.id);
    const rounds = new Set(rs.map((r) => r.round));
    for (let r = 0; r < 30; r++) expect(rounds.has(r), `round ${r} reported`).to.equal(true);
    // Workers kept their names (and ranks) across the restart.
    expect(rs[rs.length - 1].workers.map((w) => w.name).sort()).to.deep.equal(['worker-0', 'worker-1']);

    const redis = new Redis(REDIS_URL);
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length) await redis.del(...keys);
    await redis.quit();
    for (const w of workers) expect(w.output()).to.match(/worker momentum restored from that round/);

    // The same job, uninterrupted: same parameters, optimizer state (server momentum) and, through them, the
    // same worker momentum. A resume that ignored any of the three ends elsewhere.
    const refDir = tmpDir('restart-ref');
    const ref = await startCoordinatorProcess(['--checkpoint-dir', refDir]);
    procs.push(ref.proc);
    const refJobs = new JobsClient(ref.address, { token: ref.adminToken });
    clients.push(refJobs);
    const refJob = await refJobs.submit(JSON.stringify(restartSpec));
    procs.push(...[0, 1].map((i) => startWorkerProcess(ref.address, `worker-${i}`, ['--job', refJob.id])));
    expect((await waitForState(refJobs, refJob.id)).state).to.equal('completed');
    const resumed = await readCheckpoint((await listCheckpoints(ckpt, job.id)).at(-1)!);
    const uninterrupted = await readCheckpoint((await listCheckpoints(refDir, refJob.id)).at(-1)!);
    expect([...resumed.tensors.keys()].sort()).to.deep.equal([...uninterrupted.tensors.keys()].sort());
    expect([...resumed.tensors.keys()]).to.include.members(['fc1.weight', 'optim.momentum']);
    for (const [name, { data: a }] of resumed.tensors) {
      const b = uninterrupted.tensors.get(name)!.data;
      let diff = 0;
      for (let i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs(a[i] - b[i]));
      expect(diff, `${name}: resumed vs uninterrupted`).to.equal(0);
    }
  });
});
