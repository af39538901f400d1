/**
 * Real worker processes running Byzantine behaviours (`phalanx worker --byzantine …`): malformed gradients are
 * refused at the wire and reported, without stalling rounds; well-formed attacks are labelled in the reports.
 */
import { expect } from 'chai';
import { JobsClient } from '../../src/cli/jobsClient.ts';
import type { RoundReport } from '../../src/coordinator/roundReport.ts';
import { isTerminal, type JobState } from '../../src/core/jobLifecycle.ts';
import {
  startCoordinatorProcess,
  startWorkerProcess,
  tmpDir,
  sleep,
  type Proc,
} from '../support/processes.ts';

describe('integration: Byzantine worker processes', function () {
  this.timeout(180_000);
  const procs: Proc[] = [];
  let jobs: JobsClient | undefined;

  after(async () => {
    jobs?.close();
    await Promise.all(procs.map((p) => p.kill('SIGKILL')));
  });

  it('refuses NaN and wrong-size gradients, labels a sign-flipper, and finishes without waiting for timeouts', async () => {
    const coordinator = await startCoordinatorProcess(['--checkpoint-dir', tmpDir('byz')]);
    procs.push(coordinator.proc);
    jobs = new JobsClient(coordinator.address, { token: coordinator.adminToken });
    const job = await jobs.submit(
      JSON.stringify({
        name: 'byzantine-workers',
        model: { kind: 'mlp', hidden: [8] },
        data: { batchSize: 8, maxTrain: 600, maxTest: 100 },
        optimizer: { kind: 'sgd', lr: 0.05 },
        rounds: 8,
        // A long timeout: if rejected workers were waited for, this test would take minutes.
        workers: { min: 3, max: 6, roundTimeout: '60s' },
        aggregation: { rule: 'median', f: 1 },
        evaluation: { every: 0, limit: 100 },
      }),
    );
    const args = ['--job', job.id];
    // The faulty workers join first: rounds need three accepted gradients, so none closes before the honest
    // workers come, and every round has all six as participants (a slow start cannot let a round close first).
    procs.push(
      startWorkerProcess(coordinator.address, 'worker-3', [...args, '--byzantine', 'signflip']),
      startWorkerProcess(coordinator.address, 'worker-4', [...args, '--byzantine', 'nan']),
      startWorkerProcess(coordinator.address, 'worker-5', [...args, '--byzantine', 'wrongSize']),
    );
    const joinedBy = Date.now() + 60_000;
    while (((await jobs.get(job.id)).detail?.participants.length ?? 0) < 3) {
      if (Date.now() > joinedBy) throw new Error('the three faulty workers did not join within 60 s');
      await sleep(200);
    }
    procs.push(
      startWorkerProcess(coordinator.address, 'worker-0', args),
      startWorkerProcess(coordinator.address, 'worker-1', args),
      startWorkerProcess(coordinator.address, 'worker-2', args),
    );
    const started = Date.now();
    let state = '';
    while (Date.now() - started < 150_000) {
      state = (await jobs.get(job.id)).state;
      if (isTerminal(state as JobState)) break;
      await sleep(300);
    }
    expect(state).to.equal('completed');

    const reports: RoundReport[] = [];
    await jobs.watch(job.id, 0, (e) => {
      if (e.round) reports.push(e.round as unknown as RoundReport);
    });
    expect(reports).to.have.length(8);
    const last = reports[reports.length - 1];
    const byName = (list: RoundReport['workers'], name: string) => list.find((w) => w.name === name);
    expect(byName(last.workers, 'worker-3')?.byzantine).to.equal('signflip');
    const nan = byName(last.missing, 'worker-4');
    const wrong = byName(last.missing, 'worker-5');
    expect(nan?.reason).to.match(/rejected: non-finite/);
    expect(wrong?.reason).to.match(/rejected: wrong shape/);
    expect(nan?.byzantine).to.equal('nan');
    // No round waited for its 60 s timeout.
    for (const r of reports.slice(1)) expect(r.timings.collectMs).to.be.below(60_000);
  });
});
