/**
 * CoordinatorMetrics: what a round report and a job change become in Prometheus series, per job and per worker,
 * and that a finished job's series go away (after the grace period, or when more than maxJobs have series).
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { CoordinatorMetrics, reasonLabel } from '../../../src/coordinator/metrics/coordinatorMetrics.ts';
import {
  wireReason,
  type RoundReport,
  type WorkerRoundHealth,
} from '../../../src/coordinator/roundReport.ts';
import type { JobRecord } from '../../../src/coordinator/state/stateStore.ts';

function worker(name: string, over: Partial<WorkerRoundHealth> = {}): WorkerRoundHealth {
  return {
    workerId: `id-${name}`,
    name,
    rank: 0,
    included: true,
    trust: 0.9,
    weight: 0.25,
    norm: 2,
    cosine: 0.8,
    reason: '',
    reasonCode: wireReason(undefined),
    byzantine: '',
    loss: 1,
    ...over,
  };
}

function report(jobId: string, round: number, over: Partial<RoundReport> = {}): RoundReport {
  return {
    jobId,
    round,
    rule: 'flag',
    workers: [
      worker('worker-0'),
      worker('worker-1', { weight: 0.5, trust: 0.7, cosine: 0.6 }),
      worker('worker-3', {
        included: false,
        weight: 0,
        trust: 0,
        cosine: -0.99,
        norm: 5,
        reason: 'flag: points against the robust direction',
        reasonCode: wireReason('against-robust-direction'),
        byzantine: 'signflip',
      }),
    ],
    missing: [
      worker('worker-4', {
        included: false,
        reason: 'rejected: non-finite',
        reasonCode: wireReason('rejected'),
      }),
      worker('worker-5', { included: false, reason: 'late (timeout)', reasonCode: wireReason('late') }),
    ],
    updateNorm: 1.5,
    trainLoss: 0.7,
    testAccuracy: NaN,
    testLoss: NaN,
    timings: { collectMs: 120, aggregateMs: 30, optimizeMs: 5, totalMs: 155, evaluateMs: 0 },
    bytesReceived: 1000,
    bytesSent: 4000,
    finishedAtMs: 0,
    divergence: [],
    rollbacks: 0,
    replay: false,
    diagnostics: { flagRank: 2, excluded: 1 },
    ...over,
  };
}

function job(id: string, state: JobRecord['state']): JobRecord {
  return { id, name: id, spec: '{}', state, createdAt: 0, updatedAt: 0, round: 0 };
}

/** The value of one series, undefined if it does not exist. */
async function value(
  m: CoordinatorMetrics,
  name: string,
  labels: Record<string, string>,
): Promise<number | undefined> {
  const metric = m.registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  const { values } = await metric.get();
  const hit = values.find((v) =>
    Object.keys(labels).every((k) => String((v.labels as Record<string, unknown>)[k]) === labels[k]),
  );
  return hit?.value;
}

describe('coordinator metrics: round reports → series', () => {
  it('counts rounds and bytes, and sets the job gauges from the last report', async () => {
    const m = new CoordinatorMetrics();
    m.observeRound(report('a', 0));
    m.observeRound(report('a', 1, { trainLoss: 0.5, testAccuracy: 0.81, testLoss: 0.4 }));
    const job = { job_id: 'a' };
    expect(await value(m, 'phalanx_rounds_total', job)).to.equal(2);
    expect(await value(m, 'phalanx_round', job)).to.equal(1);
    expect(await value(m, 'phalanx_received_bytes_total', job)).to.equal(2000);
    expect(await value(m, 'phalanx_sent_bytes_total', job)).to.equal(8000);
    expect(await value(m, 'phalanx_train_loss', job)).to.equal(0.5);
    expect(await value(m, 'phalanx_test_accuracy', job)).to.equal(0.81);
    expect(await value(m, 'phalanx_update_norm', job)).to.equal(1.5);
    expect(await value(m, 'phalanx_flag_rank', job)).to.equal(2);
    expect(await value(m, 'phalanx_excluded_workers', job)).to.equal(1);
    expect(await value(m, 'phalanx_missing_workers', job)).to.equal(2);
  });

  it('adds up the time round commits waited for the state store', async () => {
    const m = new CoordinatorMetrics();
    m.observeRound(report('a', 0));
    m.observeRound(report('a', 1, { storeStall: { failedAttempts: 3, waitedMs: 1500, lastError: 'down' } }));
    m.observeRound(report('a', 2, { storeStall: { failedAttempts: 1, waitedMs: 250, lastError: 'down' } }));
    expect(await value(m, 'phalanx_store_stall_seconds_total', { job_id: 'a' })).to.equal(1.75);
  });

  it('keeps the last accuracy through rounds without an evaluation (NaN is not written)', async () => {
    const m = new CoordinatorMetrics();
    m.observeRound(report('a', 0, { testAccuracy: 0.6 }));
    m.observeRound(report('a', 1));
    expect(await value(m, 'phalanx_test_accuracy', { job_id: 'a' })).to.equal(0.6);
  });

  it('observes each phase in seconds; evaluate only on rounds that evaluated', async () => {
    const m = new CoordinatorMetrics();
    m.observeRound(report('a', 0));
    m.observeRound(
      report('a', 1, {
        timings: { collectMs: 80, aggregateMs: 20, optimizeMs: 4, totalMs: 104, evaluateMs: 250 },
      }),
    );
    const text = await m.registry.getSingleMetricAsString('phalanx_round_phase_seconds');
    expect(text).to.include('phalanx_round_phase_seconds_sum{job_id="a",phase="collect"} 0.2');
    expect(text).to.include('phalanx_round_phase_seconds_count{job_id="a",phase="collect"} 2');
    expect(text).to.include('phalanx_round_phase_seconds_count{job_id="a",phase="step"} 2');
    expect(text).to.include('phalanx_round_phase_seconds_count{job_id="a",phase="evaluate"} 1');
    expect(text).to.include('phalanx_round_phase_seconds_sum{job_id="a",phase="evaluate"} 0.25');
  });

  it('sets the per-worker gauges by stable name and counts flags by reason code', async () => {
    const m = new CoordinatorMetrics();
    m.observeRound(report('a', 0));
    m.observeRound(report('a', 1));
    const w1 = { job_id: 'a', worker: 'worker-1' };
    expect(await value(m, 'phalanx_worker_weight', w1)).to.equal(0.5);
    expect(await value(m, 'phalanx_worker_trust', w1)).to.equal(0.7);
    expect(await value(m, 'phalanx_worker_cosine', w1)).to.equal(0.6);
    expect(await value(m, 'phalanx_worker_included', w1)).to.equal(1);
    expect(await value(m, 'phalanx_worker_flags_total', { ...w1 })).to.equal(undefined);
    const w3 = { job_id: 'a', worker: 'worker-3' };
    expect(await value(m, 'phalanx_worker_included', w3)).to.equal(0);
    expect(await value(m, 'phalanx_worker_gradient_norm', w3)).to.equal(5);
    expect(
      await value(m, 'phalanx_worker_flags_total', { ...w3, reason: 'against_robust_direction' }),
    ).to.equal(2);
    const w4 = { job_id: 'a', worker: 'worker-4' };
    expect(await value(m, 'phalanx_worker_rejected_total', w4)).to.equal(2);
    expect(await value(m, 'phalanx_worker_flags_total', { ...w4, reason: 'rejected' })).to.equal(2);
    expect(await value(m, 'phalanx_worker_late_total', w4)).to.equal(undefined);
    const w5 = { job_id: 'a', worker: 'worker-5' };
    expect(await value(m, 'phalanx_worker_late_total', w5)).to.equal(2);
    expect(await value(m, 'phalanx_worker_rounds_total', w5)).to.equal(2);
  });

  it('counts a worker the rule included with a negligible share as not included, as watch and status do', async () => {
    const m = new CoordinatorMetrics();
    // Flag weights normalised gradients: worker-2's share is 8e-5 / 0.5 of the largest, below 1e-3.
    const r = report('a', 0);
    r.workers.push(worker('worker-2', { weight: 0.00008 }));
    m.observeRound(r);
    const w2 = { job_id: 'a', worker: 'worker-2' };
    expect(await value(m, 'phalanx_worker_included', w2)).to.equal(0);
    expect(await value(m, 'phalanx_worker_weight', w2)).to.equal(0.00008);
    expect(await value(m, 'phalanx_worker_flags_total', { ...w2, reason: 'negligible_share' })).to.equal(1);
    expect(await value(m, 'phalanx_excluded_workers', { job_id: 'a' })).to.equal(2);
    expect(await value(m, 'phalanx_worker_included', { job_id: 'a', worker: 'worker-0' })).to.equal(1);
  });

  it('labels reasons by the wire code without its prefix', () => {
    expect(reasonLabel('REASON_AGAINST_ROBUST_DIRECTION')).to.equal('against_robust_direction');
    expect(reasonLabel(undefined)).to.equal('unspecified');
  });

  it('sets the compression ratio of compressed jobs only', async () => {
    const m = new CoordinatorMetrics();
    m.observeRound(report('plain', 0));
    m.observeRound(
      report('packed', 0, {
        compression: {
          planId: 'p',
          settings: [],
          layerBytes: [],
          bytes: 100,
          pushes: 3,
          ratio: 7.5,
          budgetUsed: NaN,
          nextPlanId: '',
        },
      }),
    );
    expect(await value(m, 'phalanx_compression_ratio', { job_id: 'packed' })).to.equal(7.5);
    expect(await value(m, 'phalanx_compression_ratio', { job_id: 'plain' })).to.equal(undefined);
  });
});

describe('coordinator metrics: bounded cardinality', () => {
  it("drops an ended job's series once the grace period has passed, not before", async () => {
    let now = 1_000;
    const m = new CoordinatorMetrics({ retainFinishedMs: 60_000, now: () => now });
    m.observeJob(job('a', 'running'));
    m.observeRound(report('a', 0));
    m.observeJob(job('b', 'running'));
    m.observeRound(report('b', 0));
    m.observeJob(job('a', 'completed'));
    now += 59_999;
    m.sweep();
    expect(await value(m, 'phalanx_job_state', { job_id: 'a', state: 'completed' })).to.equal(1);
    expect(
      await value(m, 'phalanx_worker_flags_total', {
        job_id: 'a',
        worker: 'worker-3',
        reason: 'against_robust_direction',
      }),
    ).to.equal(1);
    now += 1;
    m.sweep();
    expect(m.jobIds()).to.deep.equal(['b']);
    const text = await m.registry.metrics();
    expect(text).to.not.match(/job_id="a"/);
    expect(text).to.match(
      /phalanx_worker_flags_total\{job_id="b",worker="worker-3",reason="against_robust_direction"\} 1/,
    );
  });

  it('keeps at most maxJobs jobs, evicting ended ones first', async () => {
    const m = new CoordinatorMetrics({ maxJobs: 2 });
    m.observeRound(report('a', 0));
    m.observeRound(report('b', 0));
    m.observeRound(report('a', 1));
    // b ended after a's last round: least recently touched is a, but the ended job goes first.
    m.observeJob(job('b', 'failed'));
    m.observeRound(report('c', 0));
    expect(m.jobIds().sort()).to.deep.equal(['a', 'c']);
    m.observeRound(report('d', 0));
    expect(m.jobIds().sort()).to.deep.equal(['c', 'd']);
    expect(await m.registry.metrics()).to.not.match(/job_id="(a|b)"/);
  });

  it('a coordinator has its own registry: two do not share series', async () => {
    const one = new CoordinatorMetrics();
    const two = new CoordinatorMetrics();
    one.observeRound(report('a', 0));
    expect(await value(one, 'phalanx_rounds_total', { job_id: 'a' })).to.equal(1);
    expect(await value(two, 'phalanx_rounds_total', { job_id: 'a' })).to.equal(undefined);
  });
});

describe('coordinator metrics: documentation', () => {
  it('docs/monitoring.md names every metric with its type, and no metric that does not exist', async () => {
    const doc = readFileSync(new URL('../../../docs/monitoring.md', import.meta.url), 'utf8');
    const registered = (await new CoordinatorMetrics().registry.getMetricsAsJSON()).map((m) => [
      m.name,
      m.type,
    ]);
    const documented = [...doc.matchAll(/^\| `(phalanx_\w+)`\s*\| (\w+)/gm)].map((m) => [m[1], m[2]]);
    expect(documented.sort()).to.deep.equal(registered.map(([n, t]) => [n, String(t)]).sort());
  });
});
