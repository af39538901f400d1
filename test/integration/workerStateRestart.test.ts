/**
 * A worker process killed with SIGKILL and started again continues from the state it had (worker momentum, and
 * with compression the error-feedback memories), which the coordinator kept from the worker's last checkpoint
 * round: the job ends exactly where an undisturbed run of the same seed ends. Separate processes, real gRPC.
 * Every round is a checkpoint round here (checkpoint.every = 1), so the kill may land anywhere. The states are
 * part of the checkpoint: a coordinator that resumes the job (killed with the worker, restarted on the Redis store)
 * hands them out too.
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { JobsClient } from '../../src/cli/jobsClient.ts';
import {
  listCheckpoints,
  readCheckpoint,
  type JobCheckpointTensors,
} from '../../src/checkpoint/checkpoint.ts';
import {
  startCoordinatorProcess,
  startWorkerProcess,
  tmpDir,
  sleep,
  type Proc,
} from '../support/processes.ts';
import { maxAbsDiff } from '../support/arrays.ts';

const REDIS_URL = process.env['PHALANX_TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const ROUNDS = 14;
const WORKERS = 3;

function spec(name: string, extra: Record<string, unknown> = {}) {
  return {
    name,
    seed: 11,
    model: { kind: 'mlp', hidden: [8] },
    data: { batchSize: 16, maxTrain: 600, maxTest: 100 },
    optimizer: { kind: 'sgd', lr: 0.1, momentum: 0.9 },
    rounds: ROUNDS,
    // Every worker in every round: the run is the same whatever the timing.
    workers: { min: WORKERS, max: WORKERS, roundTimeout: '60s', heartbeatTtl: '4s', momentum: 0.9 },
    aggregation: { rule: 'median', f: 0 },
    evaluation: { every: 0, limit: 100 },
    checkpoint: { every: 1 },
    ...extra,
  };
}

const TOPK = { compression: { kind: 'uniform', baseline: { kind: 'topk', density: 0.05, values: 'fp32' } } };

describe('integration: a restarted worker continues from its state kept by the coordinator', function () {
  this.timeout(300_000);
  let coordinator: Awaited<ReturnType<typeof startCoordinatorProcess>>;
  let jobs: JobsClient;
  let checkpoints = '';
  const procs: Proc[] = [];

  before(async () => {
    checkpoints = tmpDir('wstate-ckpt');
    coordinator = await startCoordinatorProcess(['--checkpoint-dir', checkpoints]);
    jobs = new JobsClient(coordinator.address, { token: coordinator.adminToken });
  });

  after(async () => {
    jobs?.close();
    await coordinator?.proc.kill('SIGKILL');
  });

  afterEach(async () => {
    await Promise.all(procs.splice(0).map((p) => p.kill('SIGKILL')));
  });

  async function jobAt(
    id: string,
    until: (j: { round: number; state: string }) => boolean,
    client: JobsClient = jobs,
  ) {
    for (;;) {
      const job = await client.get(id).catch(() => undefined);
      if (!job) {
        await sleep(100);
        continue;
      }
      if (until(job)) return job;
      if (['failed', 'cancelled'].includes(job.state)) throw new Error(`job ${job.state}: ${job.error}`);
      await sleep(100);
    }
  }

  function startWorker(id: string, i: number, address = coordinator.address): Proc {
    const p = startWorkerProcess(address, `worker-${i}`, ['--job', id]);
    procs.push(p);
    return p;
  }

  /** One job; `disturb` runs once the job is past round 4. Returns the final parameters and optimizer state. */
  async function run(
    s: ReturnType<typeof spec>,
    disturb?: (id: string, workers: Proc[]) => Promise<void>,
  ): Promise<{ final: JobCheckpointTensors; before: JobCheckpointTensors }> {
    const { id } = await jobs.submit(JSON.stringify(s));
    const workers = [...Array(WORKERS).keys()].map((i) => startWorker(id, i));
    if (disturb) {
      await jobAt(id, (j) => j.round >= 5);
      await disturb(id, workers);
    }
    const done = await jobAt(id, (j) => ['completed', 'failed', 'cancelled'].includes(j.state));
    expect(done.state, done.error).to.equal('completed');
    const list = await listCheckpoints(checkpoints, id);
    return { final: await readCheckpoint(list.at(-1)!), before: await readCheckpoint(list.at(-2)!) };
  }

  function maxDiff(x: JobCheckpointTensors, y: JobCheckpointTensors): number {
    const names = [...y.tensors.keys()].filter((n) => !n.startsWith('worker.')).sort();
    expect(names).to.include('optim.momentum');
    let m = 0;
    for (const n of names) m = Math.max(m, maxAbsDiff(x.tensors.get(n)!.data, y.tensors.get(n)!.data));
    return m;
  }

  /** SIGKILL worker 2 (mid-round: it may be computing, sending its state or pushing) and start it again. */
  async function killAndRestart(id: string, workers: Proc[]): Promise<Proc> {
    await workers[2].kill('SIGKILL');
    return startWorker(id, 2);
  }

  // Momentum alone is covered by the test below (and by the chaos suite's worker restart).
  for (const [label, extra] of [['worker momentum and top-k error feedback', TOPK]] as const) {
    it(`${label}: SIGKILL a worker and start it again; the job ends where the undisturbed run ends`, async () => {
      const undisturbed = await run(spec(`wstate-ref`, extra));
      let restarted: Proc | undefined;
      const disturbed = await run(spec(`wstate-kill`, extra), async (id, workers) => {
        restarted = await killAndRestart(id, workers);
      });
      expect(restarted!.output()).to.match(
        /joined at round \d+: worker momentum.* restored from the coordinator/,
      );
      expect(maxDiff(disturbed.final, undisturbed.final)).to.equal(0);
      // The checkpoint of the last round but one holds each worker's state entering it.
      const states = [...disturbed.before.tensors.keys()].filter((n) => n.startsWith('worker.')).sort();
      const parts = 'compression' in extra ? ['error', 'momentum'] : ['momentum'];
      expect(states).to.deep.equal(
        [...Array(WORKERS).keys()].flatMap((i) => parts.map((p) => `worker.worker-${i}.${p}`)).sort(),
      );
    });
  }

  it('the states are part of the checkpoint: a worker and the coordinator killed together, both restarted (Redis store), end where the undisturbed run ends', async () => {
    const s = spec('wstate-resume', { checkpoint: { every: 2 } });
    const undisturbed = await run(s);
    const prefix = `phalanx-test-${randomBytes(4).toString('hex')}:`;
    const dir = tmpDir('wstate-resume');
    const args = [
      '--store',
      'redis',
      '--redis-url',
      REDIS_URL,
      '--redis-prefix',
      prefix,
      '--checkpoint-dir',
      dir,
    ];
    const first = await startCoordinatorProcess(args);
    procs.push(first.proc);
    let client = new JobsClient(first.address, { token: first.adminToken });
    try {
      const { id } = await client.submit(JSON.stringify(s));
      const workers = [...Array(WORKERS).keys()].map((i) => startWorker(id, i, first.address));
      await jobAt(id, (j) => j.round >= 5, client);
      await Promise.all([first.proc.kill('SIGKILL'), workers[2].kill('SIGKILL')]);
      client.close();
      // The same data directory: the same admin token, the credential worker names are bound to.
      const second = await startCoordinatorProcess([
        ...args,
        '--port',
        String(first.port),
        '--data-dir',
        first.dataDir,
      ]);
      procs.push(second.proc);
      const resumedAt = Number((await second.proc.waitFor(/resumed from checkpoint at round (\d+)/))[1]);
      await second.proc.waitFor(/the checkpoint holds the state of 3 worker\(s\) entering round/);
      client = new JobsClient(second.address, { token: second.adminToken });
      const restarted = startWorker(id, 2, second.address);
      const done = await jobAt(id, (j) => ['completed', 'failed', 'cancelled'].includes(j.state), client);
      expect(done.state, done.error).to.equal('completed');
      expect(restarted.output()).to.include(
        `joined at round ${resumedAt}: worker momentum restored from the coordinator`,
      );
      const final = await readCheckpoint((await listCheckpoints(dir, id)).at(-1)!);
      expect(maxDiff(final, undisturbed.final)).to.equal(0);
    } finally {
      client.close();
      const redis = new Redis(REDIS_URL);
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length) await redis.del(...keys);
      await redis.quit();
    }
  });
});
