/**
 * A worker process killed with SIGKILL and started again continues from the state it had (worker momentum, and
 * with compression the error-feedback memories), which the coordinator kept from the worker's last checkpoint
 * round: the job ends exactly where an undisturbed run of the same seed ends. Separate processes, real gRPC.
 * Every round is a checkpoint round here (checkpoint.every = 1), so the kill may land anywhere.
 */
import { expect } from 'chai';
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

  async function jobAt(id: string, until: (j: { round: number; state: string }) => boolean) {
    for (;;) {
      const job = await jobs.get(id);
      if (until(job)) return job;
      if (['failed', 'cancelled'].includes(job.state)) throw new Error(`job ${job.state}: ${job.error}`);
      await sleep(100);
    }
  }

  function startWorker(id: string, i: number): Proc {
    const p = startWorkerProcess(coordinator.address, `worker-${i}`, ['--job', id]);
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

  for (const [label, extra] of [
    ['worker momentum', {}],
    ['worker momentum and top-k error feedback', TOPK],
  ] as const) {
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
});
