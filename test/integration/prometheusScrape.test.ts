/**
 * A real Prometheus server scrapes a live coordinator (its own process, --metrics-port 0) while a job runs with
 * two sign-flipping workers under Flag, and its query API returns the round counter, the phase histograms and
 * the per-worker flags by reason: the Byzantine workers are flagged for pointing against the robust direction.
 */
import { expect } from 'chai';
import { JobsClient } from '../../src/cli/jobsClient.ts';
import type { RoundReport } from '../../src/coordinator/roundReport.ts';
import { roundHealth } from '../../src/coordinator/roundHealth.ts';
import { isTerminal, type JobState } from '../../src/core/jobLifecycle.ts';
import { startPrometheus, type PrometheusServer } from '../support/prometheus.ts';
import {
  sleep,
  startCoordinatorProcess,
  startWorkerProcess,
  tmpDir,
  type Proc,
} from '../support/processes.ts';

const ROUNDS = 10;
const HONEST = ['worker-0', 'worker-1', 'worker-2', 'worker-3'];
const BYZANTINE = ['worker-4', 'worker-5'];

describe('integration: Prometheus scrapes the coordinator', function () {
  this.timeout(300_000);
  const procs: Proc[] = [];
  let prometheus: PrometheusServer | undefined;
  let jobs: JobsClient | undefined;

  after(async () => {
    jobs?.close();
    await prometheus?.stop();
    await Promise.all(procs.map((p) => p.kill('SIGKILL')));
  });

  it('counts the rounds, times the phases and counts the Byzantine workers’ flags by reason', async () => {
    const coordinator = await startCoordinatorProcess([
      '--metrics-port',
      '0',
      '--checkpoint-dir',
      tmpDir('prom'),
    ]);
    procs.push(coordinator.proc);
    const metricsUrl = new URL((await coordinator.proc.waitFor(/metrics on (http:\S+)/))[1]);
    prometheus = await startPrometheus([metricsUrl.host]);

    jobs = new JobsClient(coordinator.address, { token: coordinator.adminToken });
    const job = await jobs.submit(
      JSON.stringify({
        name: 'scraped',
        seed: 5,
        model: { kind: 'mlp', hidden: [8] },
        data: { batchSize: 16, maxTrain: 600, maxTest: 100 },
        optimizer: { kind: 'sgd', lr: 0.05 },
        rounds: ROUNDS,
        workers: { min: 6, max: 6, roundTimeout: '60s' },
        aggregation: { rule: 'flag', f: 2 },
        evaluation: { every: 5, limit: 100 },
      }),
    );
    const args = ['--job', job.id];
    for (const name of HONEST) procs.push(startWorkerProcess(coordinator.address, name, args));
    for (const name of BYZANTINE) {
      procs.push(startWorkerProcess(coordinator.address, name, [...args, '--byzantine', 'signflip']));
    }

    let state = '';
    for (const started = Date.now(); Date.now() - started < 240_000; await sleep(500)) {
      state = (await jobs.get(job.id)).state;
      if (isTerminal(state as JobState)) break;
    }
    expect(state).to.equal('completed');

    // The job's series outlive it (grace period): wait for a scrape that saw the last round.
    const sel = `job_id="${job.id}"`;
    let rounds: number | undefined;
    for (const started = Date.now(); Date.now() - started < 60_000; await sleep(500)) {
      rounds = (await prometheus.query(`phalanx_rounds_total{${sel}}`))[0]?.value;
      if (rounds === ROUNDS) break;
    }
    expect(rounds, prometheus.output().slice(-2000)).to.equal(ROUNDS);
    expect((await prometheus.query('up{job="phalanx"}'))[0]?.value).to.equal(1);

    const phases = await prometheus.query(`sum by (phase) (phalanx_round_phase_seconds_count{${sel}})`);
    const byPhase = Object.fromEntries(phases.map((s) => [s.labels['phase'], s.value]));
    expect(byPhase).to.deep.equal({ collect: ROUNDS, aggregate: ROUNDS, step: ROUNDS, evaluate: ROUNDS / 5 });

    const accuracy = (await prometheus.query(`phalanx_test_accuracy{${sel}}`))[0]?.value;
    expect(accuracy).to.be.within(0, 1);
    expect((await prometheus.query(`phalanx_sent_bytes_total{${sel}}`))[0]?.value).to.be.above(0);
    expect((await prometheus.query(`phalanx_received_bytes_total{${sel}}`))[0]?.value).to.be.above(0);
    expect((await prometheus.query(`phalanx_flag_rank{${sel}}`))[0]?.value).to.be.at.least(1);

    // The rule's own exclusions: under Flag's rank n − 2f some honest workers also get a negligible share.
    const flags = await prometheus.query(
      `sum by (worker) (phalanx_worker_flags_total{${sel},reason!="negligible_share"})`,
    );
    const flagsOf = (name: string) => flags.find((s) => s.labels['worker'] === name)?.value ?? 0;
    const honestMax = Math.max(...HONEST.map(flagsOf));
    for (const name of BYZANTINE) {
      expect(flagsOf(name), `${name} flags`).to.be.above(honestMax);
      const against = await prometheus.query(
        `phalanx_worker_flags_total{${sel},worker="${name}",reason="against_robust_direction"}`,
      );
      expect(against[0]?.value, `${name} against the robust direction`).to.be.above(0);
    }

    // The same reasons over the wire (WatchJob replay): the enum code, and text that quotes the cosine field.
    const reports: RoundReport[] = [];
    await jobs.watch(job.id, 0, (e) => {
      if (e.round) reports.push(e.round as unknown as RoundReport);
    });
    expect(reports).to.have.length(ROUNDS);
    const last = reports[ROUNDS - 1];
    for (const name of BYZANTINE) {
      // The gauge is the last round's verdict (the rule may have let the attacker in that round), counting a
      // negligible share as not included, as watch does.
      const included = await prometheus.query(`phalanx_worker_included{${sel},worker="${name}"}`);
      const inLast = roundHealth(last).included.some((x) => x.name === name);
      expect(included[0]?.value, `${name} included in the last round`).to.equal(inLast ? 1 : 0);
      // The newest round that excluded it against the robust direction quotes the report's cosine.
      const w = reports
        .map((r) => r.workers.find((x) => x.name === name)!)
        .findLast((x) => x.reasonCode === 'REASON_AGAINST_ROBUST_DIRECTION');
      expect(w, `${name} excluded against the robust direction in some round`).to.not.equal(undefined);
      expect(w!.reason).to.include(`cosine to the update ${w!.cosine.toFixed(3)}`);
    }
    expect(last.timings.evaluateMs).to.be.above(0);
  });
});
