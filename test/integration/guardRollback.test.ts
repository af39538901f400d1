/**
 * The divergence guard on a real coordinator (separate processes, loopback gRPC): one of three workers sends
 * −4 × its gradient, the plain mean climbs the loss, the guard signals, the coordinator rolls back to its last
 * good checkpoint, the workers rejoin there, and the job finishes on the fallback rule (median).
 */
import { expect } from 'chai';
import { JobsClient } from '../../src/cli/jobsClient.ts';
import type { RoundReport } from '../../src/coordinator/roundReport.ts';
import {
  startCoordinatorProcess,
  startWorkerProcess,
  tmpDir,
  sleep,
  type Proc,
} from '../support/processes.ts';

const ROUNDS = 60;

async function waitForEnd(jobs: JobsClient, jobId: string, timeoutMs = 200_000) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const job = await jobs.get(jobId).catch(() => undefined);
    if (job && ['completed', 'failed', 'cancelled'].includes(job.state)) return job;
    await sleep(250);
  }
  throw new Error(`job ${jobId} did not end`);
}

describe('integration: divergence guard rollback (separate processes, real gRPC)', function () {
  this.timeout(300_000);
  const procs: Proc[] = [];
  const clients: JobsClient[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await Promise.all(procs.splice(0).map((p) => p.kill('SIGKILL')));
  });

  it('rolls back to the last good checkpoint and finishes on the fallback rule', async () => {
    const { jobs, job, reports, watching } = await startJob({
      rollback: true,
      maxRollbacks: 2,
      fallback: { rule: 'median' },
    });
    const done = await waitForEnd(jobs, job.id);
    expect(done.state, done.error).to.equal('completed');
    await watching;
    const signal = reports.findIndex((r) => r.divergence.length > 0);
    expect(signal, 'a round with a divergence signal').to.be.greaterThan(-1);
    expect(reports[signal]).to.include({ rule: 'mean', rollbacks: 0 });
    const after = reports.slice(signal + 1);
    // Back to a checkpoint round (a multiple of checkpoint.every, at most the signalled round), then replayed.
    const back = after[0].round;
    expect(back % 10).to.equal(0);
    expect(back).to.be.at.most(reports[signal].round);
    expect(after[0]).to.include({ rule: 'median', rollbacks: 1 });
    expect(after.filter((r) => r.replay).map((r) => r.round)).to.deep.equal(
      Array.from({ length: reports[signal].round - back + 1 }, (_, i) => back + i),
    );
    expect(after.at(-1)).to.include({ round: ROUNDS - 1, replay: false, rule: 'median' });
    // All three workers rejoined after the rollback and the median keeps the flipped one out.
    expect(
      after
        .at(-1)!
        .workers.map((w) => w.name)
        .sort(),
    ).to.deep.equal(['worker-0', 'worker-1', 'worker-2']);
    // The replayed round starts where the checkpoint left off (same parameters, same batches, momentum restored),
    // and the median takes the loss down from there instead of up.
    expect(after[0].trainLoss).to.be.closeTo(reports[back].trainLoss, 1e-9);
    expect(after.at(-1)!.trainLoss).to.be.lessThan(after[0].trainLoss);
    expect(after.at(-1)!.trainLoss).to.be.lessThan(reports[signal].trainLoss / 2);
    const accuracy = (JSON.parse(done.resultJson) as { testAccuracy: number }).testAccuracy;
    expect(accuracy).to.be.greaterThan(0.15); // chance is 0.1; this small model learns slowly on the median of 3
    console.log(
      `      signal at round ${reports[signal].round} (${reports[signal].divergence.join('; ')}), back to round ${back}, final test accuracy ${accuracy}`,
    );
  });

  it('fails the job with the reason once guard.maxRollbacks is spent', async () => {
    const { jobs, job, watching } = await startJob({
      rollback: true,
      maxRollbacks: 1,
      fallback: { rule: 'mean' },
    });
    const done = await waitForEnd(jobs, job.id);
    await watching.catch(() => {});
    expect(done.state).to.equal('failed');
    expect(done.error).to.match(
      /^training diverged at round \d+ \(loss-jump: .*\) after 1 rollback\(s\), the most guard\.maxRollbacks allows/,
    );
  });

  async function startJob(guard: Record<string, unknown>) {
    const coordinator = await startCoordinatorProcess(['--checkpoint-dir', tmpDir('guard')]);
    procs.push(coordinator.proc);
    const jobs = new JobsClient(coordinator.address, { token: coordinator.adminToken });
    clients.push(jobs);
    const job = await jobs.submit(
      JSON.stringify({
        name: 'guard-rollback',
        seed: 2,
        model: { kind: 'mlp', hidden: [16] },
        data: { batchSize: 32, maxTrain: 3000, maxTest: 500 },
        optimizer: { kind: 'sgd', lr: 0.1 },
        rounds: ROUNDS,
        workers: { min: 3, max: 3, roundTimeout: '10s', heartbeatTtl: '3s', momentum: 0.9 },
        aggregation: { rule: 'mean', f: 1 },
        checkpoint: { every: 10, keep: 2 },
        evaluation: { every: 10, limit: 500 },
        guard,
      }),
    );
    // Live reports from the start: the stored history is the job's timeline after its last rollback (like after
    // a resume), a live watch sees every report.
    const reports: RoundReport[] = [];
    const watching = jobs.watch(job.id, undefined, (e) => {
      if (e.round) reports.push(e.round as unknown as RoundReport);
    });
    for (const i of [0, 1]) {
      const w = startWorkerProcess(coordinator.address, `worker-${i}`, ['--job', job.id, '--backend', 'cpu']);
      procs.push(w);
    }
    const byz = startWorkerProcess(coordinator.address, 'worker-2', [
      '--job',
      job.id,
      '--backend',
      'cpu',
      '--byzantine',
      'signflip',
      '--attack-options',
      '{"scale":4}',
    ]);
    procs.push(byz);

    return { jobs, job, reports, watching };
  }
});
