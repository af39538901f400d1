/**
 * The divergence guard on a real coordinator (separate processes, loopback gRPC): one of three workers sends
 * −k × its gradient, the plain mean climbs the loss, the guard signals, the coordinator rolls back to its newest
 * good checkpoint — on a slow climb not the newest one — the workers rejoin there, and the job finishes on the
 * fallback rule (median).
 */
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { randomBytes } from 'node:crypto';
import { JobsClient } from '../../src/cli/jobsClient.ts';
import { listCheckpoints } from '../../src/checkpoint/checkpoint.ts';
import { guardOptions, validateJobSpec } from '../../src/config/jobSpec.ts';
import type { RoundReport } from '../../src/coordinator/roundReport.ts';
import { checkpointVerdicts } from '../support/guardVerdicts.ts';
import {
  startCoordinatorProcess,
  startWorkerProcess,
  tmpDir,
  sleep,
  type Proc,
} from '../support/processes.ts';

const ROUNDS = 60;
const REDIS_URL = process.env['PHALANX_TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379';
/**
 * The slow climb: k = 2.7 makes the mean −0.7/3 of the gradient, an ascent the loss-jump alarm sees only once the
 * loss has doubled; a 5-round guard window lets the rolling median follow it. Checkpoints every 3 rounds put the
 * newest good one behind the two newest, the ones workers keep momentum snapshots of anyway.
 */
const SLOW_ROUNDS = 100;

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

  it('on a slow climb, rolls back to the newest good checkpoint, not the newest, and finishes on the fallback rule', async () => {
    const { jobs, job, reports, watching, spec, workers } = await startJob(
      { rollback: true, maxRollbacks: 2, window: 5, fallback: { rule: 'median' } },
      // Evaluated at the end only: near chance, a 500-example evaluation is noise enough to signal on its own.
      {
        rounds: SLOW_ROUNDS,
        checkpoint: { every: 3, keep: 1 },
        evaluationEvery: 0,
        scale: 2.7,
      },
    );
    const done = await waitForEnd(jobs, job.id);
    expect(done.state, done.error).to.equal('completed');
    await watching;
    const signalAt = reports.findIndex((r) => r.divergence.length > 0);
    expect(signalAt, 'a round with a divergence signal').to.be.greaterThan(-1);
    const signal = reports[signalAt];
    expect(signal).to.include({ rule: 'mean', rollbacks: 0 });
    // The guard's verdicts on the checkpoints written before the signal, recomputed from the reports: the
    // newest ones, written during the climb, are not good.
    const { checkpoints, newestGood } = checkpointVerdicts(
      reports.slice(0, signalAt + 1),
      guardOptions(spec),
      spec.checkpoint.every,
    );
    expect(newestGood).to.be.greaterThan(0);
    expect(newestGood).to.be.lessThan(checkpoints.at(-1)!.round);
    // With checkpoint.keep 1 the job could only find that checkpoint because pruning keeps the newest good one.

    const after = reports.slice(signalAt + 1);
    const back = after[0].round;
    expect(back).to.equal(newestGood);
    expect(after[0]).to.include({ rule: 'median', rollbacks: 1 });
    expect(after.filter((r) => r.replay).map((r) => r.round)).to.deep.equal(
      Array.from({ length: signal.round - back + 1 }, (_, i) => back + i),
    );
    expect(after.at(-1)).to.include({ round: SLOW_ROUNDS - 1, replay: false, rule: 'median' });
    // All three workers rejoined after the rollback and the median keeps the flipped one out.
    expect(
      after
        .at(-1)!
        .workers.map((w) => w.name)
        .sort(),
    ).to.deep.equal(['worker-0', 'worker-1', 'worker-2']);
    // The replayed round starts where that checkpoint left off (same parameters, same batches, momentum
    // restored), and the median takes the loss down from there instead of up.
    expect(after[0].workers.map((w) => w.loss)).to.deep.equal(reports[back].workers.map((w) => w.loss));
    // Every worker restored its momentum of that round: it kept the snapshot because the coordinator named it.
    for (const w of workers)
      expect(w.output()).to.contain(`resumed at round ${back}: worker momentum restored from that round`);
    expect(after.at(-1)!.trainLoss).to.be.lessThan(after[0].trainLoss);
    expect(after.at(-1)!.trainLoss).to.be.lessThan(signal.trainLoss / 2);
    const accuracy = (JSON.parse(done.resultJson) as { testAccuracy: number }).testAccuracy;
    expect(accuracy).to.be.greaterThan(0.15); // chance is 0.1; this small model learns slowly on the median of 3
    console.log(
      `      signal at round ${signal.round} (${signal.divergence.join('; ')}); checkpoints ${checkpoints.map((c) => `${c.round}${c.good ? '' : '✗'}`).join(' ')}; back to round ${back}, final test accuracy ${accuracy}`,
    );
  });

  it('after a coordinator restart between a bad checkpoint and the signal, still rolls back to the newest good one', async () => {
    const prefix = `phalanx-test-${randomBytes(4).toString('hex')}:`;
    const checkpointDir = tmpDir('guard-restart');
    const args = ['--store', 'redis', '--redis-url', REDIS_URL, '--redis-prefix', prefix];
    // One data directory: the restarted coordinator has the same admin token, so a new worker-1 enrolls as the
    // old one did and gets its name back.
    args.push('--checkpoint-dir', checkpointDir, '--data-dir', tmpDir('guard-restart-data'));
    // The slow climb of the first test signals at round 63 with the checkpoints of rounds 57, 60, 63 not good.
    // worker-1 crashes entering round 63 (it computes rounds 0..62 exactly as an honest worker), so the job
    // stops there, its newest checkpoint (63) not good, and the coordinator is killed.
    const crashAt = 63;
    const first = await startJob(
      { rollback: true, maxRollbacks: 2, window: 5, fallback: { rule: 'median' } },
      {
        rounds: SLOW_ROUNDS,
        checkpoint: { every: 3, keep: 1 },
        evaluationEvery: 0,
        scale: 2.7,
        roundTimeout: '1s',
        coordinatorArgs: args,
        worker1Args: ['--byzantine', 'crash', '--attack-options', JSON.stringify({ fromRound: crashAt })],
      },
    );
    // The watch ends with an error when the coordinator is killed.
    const firstWatch = first.watching.catch(() => {});
    try {
      await first.coordinator.proc.waitFor(
        new RegExp(`round ${crashAt}: 2/3 gradients after roundTimeout; waiting for workers`),
        120_000,
      );
      expect(first.reports.every((r) => r.divergence.length === 0 && !r.replay)).to.equal(true);
      await first.coordinator.proc.kill('SIGKILL');
      await firstWatch;

      // On disk: the newest checkpoint, not good, and beside it — keep is 1 — the newest good one, the one the
      // guard's verdicts recomputed from the reports name.
      const onDisk = await listCheckpoints(checkpointDir, first.job.id);
      const { newestGood } = checkpointVerdicts(
        first.reports,
        guardOptions(first.spec),
        first.spec.checkpoint.every,
      );
      expect(onDisk.map((m) => [m.round, m.good])).to.deep.equal([
        [newestGood, true],
        [crashAt, false],
      ]);

      const second = await startCoordinatorProcess([...args, '--port', String(first.coordinator.port)]);
      procs.push(second.proc);
      await second.proc.waitFor(new RegExp(`resumed from checkpoint at round ${crashAt} `));
      const jobs = new JobsClient(second.address, { token: second.adminToken });
      clients.push(jobs);
      const reports: RoundReport[] = [];
      const watching = jobs.watch(first.job.id, crashAt, (e) => {
        if (e.round) reports.push(e.round as unknown as RoundReport);
      });
      // A new worker-1 in place of the crashed one; worker-0 and worker-2 reconnect by themselves.
      const worker1 = startWorkerProcess(second.address, 'worker-1', [
        '--job',
        first.job.id,
        '--backend',
        'cpu',
      ]);
      procs.push(worker1);
      const done = await waitForEnd(jobs, first.job.id);
      expect(done.state, done.error).to.equal('completed');
      await watching;

      // The resumed round signals (its loss depends only on the restored parameters and the batches) and the
      // job goes back to the newest good checkpoint, which only the manifests on disk name.
      const signalAt = reports.findIndex((r) => r.divergence.length > 0);
      expect(reports[signalAt]).to.include({ round: crashAt, rule: 'mean', rollbacks: 0 });
      const after = reports.slice(signalAt + 1);
      expect(after[0]).to.include({ round: newestGood, rule: 'median', rollbacks: 1, replay: true });
      expect(after.at(-1)).to.include({ round: SLOW_ROUNDS - 1, replay: false, rule: 'median' });
      // The surviving workers kept their momentum of that round; the new worker-1 has none to restore.
      for (const w of [first.workers[0], first.workers[2]])
        expect(w.output()).to.contain(
          `resumed at round ${newestGood}: worker momentum restored from that round`,
        );
    } finally {
      const redis = new Redis(REDIS_URL);
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length) await redis.del(...keys);
      await redis.quit();
    }
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

  async function startJob(
    guard: Record<string, unknown>,
    {
      rounds = ROUNDS,
      checkpoint = { every: 10, keep: 2 },
      evaluationEvery = 10,
      scale = 4,
      roundTimeout = '10s',
      coordinatorArgs = ['--checkpoint-dir', tmpDir('guard')],
      worker1Args = [] as string[],
    } = {},
  ) {
    const coordinator = await startCoordinatorProcess(coordinatorArgs);
    procs.push(coordinator.proc);
    const jobs = new JobsClient(coordinator.address, { token: coordinator.adminToken });
    clients.push(jobs);
    const input = {
      name: 'guard-rollback',
      seed: 2,
      model: { kind: 'mlp', hidden: [16] },
      data: { batchSize: 32, maxTrain: 3000, maxTest: 500 },
      optimizer: { kind: 'sgd', lr: 0.1 },
      rounds,
      workers: { min: 3, max: 3, roundTimeout, momentum: 0.9 },
      aggregation: { rule: 'mean', f: 1 },
      checkpoint,
      evaluation: { every: evaluationEvery, limit: 500 },
      guard,
    };
    const spec = validateJobSpec(input);
    const job = await jobs.submit(JSON.stringify(input));
    // Live reports from the start: the stored history is the job's timeline after its last rollback (like after
    // a resume), a live watch sees every report.
    const reports: RoundReport[] = [];
    const watching = jobs.watch(job.id, undefined, (e) => {
      if (e.round) reports.push(e.round as unknown as RoundReport);
    });
    const workers = [0, 1].map((i) =>
      startWorkerProcess(coordinator.address, `worker-${i}`, [
        '--job',
        job.id,
        '--backend',
        'cpu',
        ...(i === 1 ? worker1Args : []),
      ]),
    );
    procs.push(...workers);
    const byz = startWorkerProcess(coordinator.address, 'worker-2', [
      '--job',
      job.id,
      '--backend',
      'cpu',
      '--byzantine',
      'signflip',
      '--attack-options',
      JSON.stringify({ scale }),
    ]);
    procs.push(byz);
    workers.push(byz);

    return { coordinator, jobs, job, reports, watching, spec, workers };
  }
});
