/**
 * A coordinator process stays responsive while a round aggregates: the rule runs on the round-compute thread, so
 * ListJobs, GetJob, GetRound and health answer while a round that never finishes on its own is aggregating; a
 * rule over its compute deadline skips the round with the reason and the job goes on.
 */
import { expect } from 'chai';
import { CoordinatorClient } from '../../src/worker/coordinatorClient.ts';
import { JobsClient } from '../../src/cli/jobsClient.ts';
import { modelLayout } from '../../src/models/registry.ts';
import { layoutFingerprint } from '../../src/core/layout/parameterLayout.ts';
import type { JobEvent__Output } from '../../src/gen/phalanx/v1/JobEvent.ts';
import { HealthClient } from '../support/health.ts';
import { sleep, startCoordinatorProcess, tmpDir, type Proc } from '../support/processes.ts';

// 10⁷ parameters: centered clipping with the most iterations admission allows (L = 100) and a tiny τ takes seconds
// per round for three gradients of this size (1.4 s at 4·10⁶ on this 2-core machine), past a 1 s deadline.
const MODEL = { kind: 'mlp' as const, hidden: [12600] };
const WORKERS = 3;

function spec(name: string, deadline: string) {
  return {
    name,
    model: MODEL,
    data: { batchSize: 8, maxTrain: 200, maxTest: 100 },
    optimizer: { kind: 'sgd', lr: 0.1, momentum: 0 },
    rounds: 5,
    workers: { min: WORKERS, max: WORKERS, roundTimeout: '60s', heartbeatTtl: '60s' },
    aggregation: { rule: 'centeredClipping', f: 0, options: { L: 100, tau: 1e-6 }, deadline },
    evaluation: { every: 0, limit: 100 },
    checkpoint: { every: 0 },
  };
}

describe('integration: liveness while a round aggregates (coordinator process, real gRPC)', function () {
  this.timeout(60_000);
  let coordinator: { proc: Proc; address: string; adminToken: string };
  let jobs: JobsClient;
  let health: HealthClient;
  const layout = modelLayout(MODEL);
  const fingerprint = layoutFingerprint(layout);
  const clients: CoordinatorClient[] = [];

  before(async () => {
    coordinator = await startCoordinatorProcess(['--checkpoint-dir', tmpDir('liveness')]);
    jobs = new JobsClient(coordinator.address, { token: coordinator.adminToken });
    health = new HealthClient(coordinator.address);
  });

  after(async () => {
    for (const c of clients) c.close();
    jobs?.close();
    health?.close();
    await coordinator?.proc.kill();
  });

  /** Submits the job, joins WORKERS fresh workers and follows the job's events. */
  async function startJob(name: string, deadline: string) {
    const job = await jobs.submit(JSON.stringify(spec(name, deadline)));
    const workers: CoordinatorClient[] = [];
    for (let i = 0; i < WORKERS; i++) {
      const c = new CoordinatorClient(coordinator.address, undefined, coordinator.adminToken);
      clients.push(c);
      await c.register(`${name}-worker-${i}`, { backend: 'test' });
      for (;;) {
        try {
          await c.join(job.id);
          break;
        } catch {
          await sleep(100); // queued: the runtime is still starting
        }
      }
      workers.push(c);
    }
    const events: JobEvent__Output[] = [];
    void jobs.watch(job.id, undefined, (e) => events.push(e)).catch(() => {});
    const push = async (round: number) => {
      const statuses = await Promise.all(
        workers.map((c, i) => {
          const g = Float32Array.from({ length: layout.totalSize }, (_, k) => Math.sin(k + i + round));
          return c.push(g, layout, {
            jobId: job.id,
            round,
            loss: 1,
            samples: 8,
            attempt: 0,
            encoding: 'fp32',
            layoutFingerprint: fingerprint,
          });
        }),
      );
      expect(statuses.map((s) => s.status)).to.deep.equal(Array(WORKERS).fill('PUSH_STATUS_ACCEPTED'));
    };
    const reports = () => events.filter((e) => e.round).map((e) => e.round!);
    return { id: job.id, workers, push, reports };
  }

  it('answers ListJobs, GetJob, GetRound and health while a round aggregates, before it finishes', async () => {
    const job = await startJob('never-finishes', '1h');
    await job.push(0); // the last accepted push closes round 0: its aggregation takes seconds

    const listed = await jobs.list();
    expect(listed.map((j) => j.id)).to.include(job.id);
    expect(await health.check('')).to.equal('SERVING');
    expect(await health.check('phalanx.v1.Jobs')).to.equal('SERVING');
    expect((await jobs.get(job.id)).state).to.equal('running');
    const info = await job.workers[0].getRound(job.id, undefined, 0);
    // All of these answered while round 0 was still aggregating: no report, the round has not advanced.
    expect(info.round).to.equal(0);
    expect(job.reports()).to.deep.equal([]);

    // Cancelling ends the job and its compute thread; the coordinator keeps answering.
    expect((await jobs.cancel(job.id)).state).to.equal('cancelled');
    expect(await health.check('')).to.equal('SERVING');
    expect(job.reports()).to.deep.equal([]);
  });

  it('skips a round whose rule exceeds the compute deadline, with the reason, and opens the next round', async () => {
    const job = await startJob('over-deadline', '1s');
    await job.push(0);
    expect(await health.check('')).to.equal('SERVING');
    const listed = await jobs.list();
    expect(listed.map((j) => j.id)).to.include(job.id);
    while (job.reports().length === 0) await sleep(50);
    const report = job.reports()[0];
    expect(Number(report.round)).to.equal(0);
    expect(report.workers.map((w) => w.reason)).to.deep.equal(
      Array(WORKERS).fill('round skipped: aggregation exceeded its 1 s deadline'),
    );
    expect(report.workers.every((w) => !w.included)).to.equal(true);
    const next = await job.workers[0].getRound(job.id, 0, 10_000);
    expect(next.round).to.equal(1);
    expect((await jobs.get(job.id)).state).to.equal('running');
    expect(coordinator.proc.output()).to.match(
      /round 0: aggregation skipped: aggregation exceeded its 1 s deadline/,
    );
    await jobs.cancel(job.id);
  });
});
