/** The CLI's human output as pure functions: round lines, round health, status, stall and final lines, watch. */
import { expect } from 'chai';
import { formatDuration, formatNumber } from '../../../src/cli/format.ts';
import { formatRound, formatRoundDetails } from '../../../src/cli/progress.ts';
import { roundHealth } from '../../../src/coordinator/roundHealth.ts';
import {
  parseStoredRoundReport,
  type RoundReport,
  type WorkerRoundHealth,
} from '../../../src/coordinator/roundReport.ts';
import { formatFinal, formatStall, formatStatus, jobListState, jobPhase } from '../../../src/cli/jobLines.ts';
import { WatchView, MIN_STALL_MS } from '../../../src/cli/watchView.ts';
import type { Job__Output } from '../../../src/gen/phalanx/v1/Job.ts';
import type { JobDetail__Output } from '../../../src/gen/phalanx/v1/JobDetail.ts';

function worker(name: string, extra: Partial<WorkerRoundHealth> = {}): WorkerRoundHealth {
  return {
    workerId: `id-${name}`,
    name,
    rank: Number(name.split('-')[1] ?? 0),
    included: true,
    trust: 1,
    weight: 0.25,
    norm: 1,
    cosine: 0.9,
    reason: '',
    byzantine: '',
    loss: 0.5,
    ...extra,
  };
}

function report(extra: Partial<RoundReport> = {}): RoundReport {
  return {
    jobId: 'j',
    round: 4,
    rule: 'flag',
    workers: ['worker-0', 'worker-1', 'worker-2', 'worker-3'].map((n) => worker(n)),
    missing: [],
    updateNorm: 1,
    trainLoss: 0.512,
    testAccuracy: NaN,
    testLoss: NaN,
    timings: { collectMs: 0, aggregateMs: 0, optimizeMs: 0, totalMs: 0 },
    bytesReceived: 0,
    finishedAtMs: 0,
    divergence: [],
    rollbacks: 0,
    replay: false,
    ...extra,
  };
}

function detail(extra: Partial<JobDetail__Output> = {}): JobDetail__Output {
  return {
    workersMin: 4,
    workersMax: 6,
    checkpointDir: '/data/checkpoints',
    hasCheckpoint: false,
    checkpointRound: 0,
    checkpointPath: '',
    trainLoss: NaN,
    evalRound: 0,
    evalAccuracy: NaN,
    evalLoss: NaN,
    secondsPerRound: NaN,
    lastRound: null,
    live: true,
    openRound: 0,
    openForMs: 0,
    participants: [],
    departed: [],
    ...extra,
  };
}

function job(extra: Partial<Job__Output> = {}): Job__Output {
  return {
    id: 'demo-abc123',
    name: 'demo',
    state: 'running',
    specJson: '{"rounds":150,"evaluation":{"split":"test"}}',
    round: 0,
    totalRounds: 150,
    createdAtMs: 0,
    updatedAtMs: 0,
    error: '',
    resultJson: '',
    owner: '',
    requestId: '',
    detail: detail(),
    ...extra,
  };
}

const live = (name: string, pushed = false, extra: object = {}) => ({
  name,
  rank: 0,
  pushed,
  byzantine: '',
  reason: '',
  agoMs: 0,
  ...extra,
});

describe('cli: human output', () => {
  describe('numbers', () => {
    it('prints losses with three significant digits, exponent form when large or small', () => {
      expect(formatNumber(0.588)).to.equal('0.588');
      expect(formatNumber(2.3804)).to.equal('2.38');
      expect(formatNumber(41.66)).to.equal('41.7');
      expect(formatNumber(5.04e36)).to.equal('5.04e36');
      expect(formatNumber(1.2345678901234567e19)).to.equal('1.23e19');
      expect(formatNumber(1.234e-5)).to.equal('1.23e-5');
      expect(formatNumber(9.996)).to.equal('10.0');
      expect(formatNumber(NaN)).to.equal('–');
    });

    it('prints durations in seconds, minutes and hours', () => {
      expect(formatDuration(0.4)).to.equal('0s');
      expect(formatDuration(70)).to.equal('1m10s');
      expect(formatDuration(7300)).to.equal('2h01m');
    });

    it('a huge loss never becomes a long fixed-point number on the round line', () => {
      const line = formatRound(report({ trainLoss: 1.2345678901234567e19 }), { total: 150, accuracy: NaN });
      expect(line).to.contain('loss 1.23e19 ');
      expect(line).not.to.match(/\d{8}/);
    });
  });

  describe('round health', () => {
    it('counts a worker with a negligible share of the update as excluded, with the share as its reason', () => {
      const r = report({
        workers: [...report().workers.slice(0, 3), worker('worker-3', { weight: 0.00008 })],
      });
      const h = roundHealth(r);
      expect(h.included.map((w) => w.name)).to.deep.equal(['worker-0', 'worker-1', 'worker-2']);
      expect(h.excluded.map((e) => e.worker.name)).to.deep.equal(['worker-3']);
      expect(h.excluded[0].reason).to.match(/negligible weight 8\.0e-5 .*3\.2e-4 of the largest/);
      expect(formatRound(r, { total: 150, accuracy: NaN })).to.contain('included 3/4  excluded worker-3');
    });

    it("sizes a rule's terms by weight × norm, except Flag's (weights of normalised gradients)", () => {
      // A geometric median gives a far-off worker a tiny coefficient, but its term is as large as the others.
      const far = worker('worker-3', { weight: 0.0001, norm: 2500 });
      const gm = report({ rule: 'geometricMedian', workers: [...report().workers.slice(0, 3), far] });
      expect(roundHealth(gm).included).to.have.length(4);
      expect(roundHealth({ ...gm, rule: 'fa' }).included).to.have.length(3); // the Flag alias
    });

    it('names excluded and missing workers, flags an included Byzantine worker, and gives every reason', () => {
      const r = report({
        workers: [
          worker('worker-0', {
            included: false,
            weight: 0,
            reason: 'flag: points against the robust direction (cosine -0.412)',
          }),
          worker('worker-1', {
            included: false,
            weight: 0,
            reason: 'flag: points against the robust direction (cosine -0.388)',
          }),
          worker('worker-2'),
          worker('worker-5', { byzantine: 'signflip' }),
        ],
        missing: [worker('worker-3', { included: false, reason: 'heartbeat expired (6000 ms)' })],
      });
      const line = formatRound(r, { total: 150, accuracy: 0.5 });
      expect(line).to.contain(
        'included 2/4 (byzantine worker-5 among them)  excluded worker-0,worker-1  missing worker-3',
      );
      expect(formatRoundDetails(r)).to.deep.equal([
        '    excluded worker-0: flag: points against the robust direction (cosine -0.412)',
        '    excluded worker-1: flag: points against the robust direction (cosine -0.388)',
        '    missing  worker-3: heartbeat expired (6000 ms)',
      ]);
      // A healthy round has no detail lines and says nothing of exclusions.
      expect(formatRoundDetails(report())).to.deep.equal([]);
      expect(formatRound(report(), { total: 150, accuracy: 0.5 })).not.to.match(/excluded|missing|byzantine/);
    });

    it('caps the detail lines and says how many more', () => {
      const many = Array.from({ length: 14 }, (_, i) =>
        worker(`worker-${i}`, { included: false, reason: 'x' }),
      );
      const lines = formatRoundDetails(report({ workers: [...many, worker('worker-99')] }), 10);
      expect(lines).to.have.length(11);
      expect(lines.at(-1)).to.equal('    … and 4 more');
    });

    it('a stored report reads its missing evaluation back as NaN, not 0', () => {
      const stored = JSON.stringify(report({ testAccuracy: NaN, testLoss: NaN }));
      const r = parseStoredRoundReport(stored);
      expect(Number.isNaN(r.testAccuracy)).to.equal(true);
      expect(r.workers[0].weight).to.equal(0.25);
    });
  });

  describe('status', () => {
    it('a job waiting for workers.min says so, with who joined, who left and why, instead of "running 0/150"', () => {
      const j = job({
        detail: detail({
          participants: [live('worker-0')],
          departed: [live('worker-3', false, { reason: 'heartbeat expired (6000 ms)', agoMs: 12_000 })],
        }),
      });
      expect(jobPhase(j)).to.equal('waiting for workers 1/4');
      const text = formatStatus(j).join('\n');
      expect(text).to.match(/^state +waiting for workers 1\/4$/m);
      expect(text).to.match(/^workers +1 joined, workers\.min 4, workers\.max 6: worker-0$/m);
      expect(text).to.match(/^ +3 more needed before a round can close$/m);
      expect(text).to.match(/^ +worker-3 left 12s ago: heartbeat expired \(6000 ms\)$/m);
      expect(text).to.match(/^eta +none until workers\.min workers have joined$/m);
      expect(text).not.to.match(/0\/150/);
    });

    it('`phalanx jobs` lists a job waiting for workers.min as "waiting 1/4", a running one as running', () => {
      const waiting = job({ detail: detail({ participants: [live('worker-0')] }) });
      expect(jobListState(waiting)).to.equal('waiting 1/4');
      const running = job({
        round: 3,
        detail: detail({ participants: ['a', 'b', 'c', 'd'].map((n) => live(n)) }),
      });
      expect(jobListState(running)).to.equal('running');
      expect(jobListState(job({ detail: null })), 'no detail (ListJobs)').to.equal('running');
    });

    it('a running job: progress, who the round waits for, accuracy, losses, ETA and checkpoints', () => {
      const j = job({
        round: 37,
        detail: detail({
          participants: [
            live('worker-0', true),
            live('worker-1', true),
            live('worker-2'),
            live('worker-3', true),
          ],
          openRound: 37,
          openForMs: 3000,
          evalRound: 30,
          evalAccuracy: 0.812,
          evalLoss: 0.5123,
          trainLoss: 0.4876,
          secondsPerRound: 0.5,
          hasCheckpoint: true,
          checkpointRound: 30,
          checkpointPath: '/data/checkpoints/demo-abc123/round-000030.safetensors',
          lastRound: report({ round: 36 }) as unknown as JobDetail__Output['lastRound'],
        }),
      });
      const text = formatStatus(j).join('\n');
      expect(text).to.match(/^state +running: 37\/150 rounds done \(24%\)$/m);
      expect(text).to.match(/^round +38 open for 3s, waiting for worker-2 \(round 38: 3\/4 pushed\)$/m);
      expect(text).to.match(/^accuracy +81\.2% test at round 30 \(test loss 0\.512 nats\)$/m);
      expect(text).to.match(/^train loss +0\.488 at round 37$/m);
      expect(text).to.match(/^eta +57s \(0\.500 s\/round over the newest rounds\)$/m);
      expect(text).to.match(/^checkpoints +\/data\/checkpoints\/demo-abc123\/ \(newest: round 30\)$/m);
      expect(text).to.match(
        /^parameters +in the coordinator's memory until the job ends; newest checkpoint round 30$/m,
      );
    });

    it('a completed job: the final result and where the trained parameters went', () => {
      const j = job({
        state: 'completed',
        round: 150,
        resultJson: JSON.stringify({
          rounds: 150,
          testAccuracy: 0.774,
          testLoss: 0.637,
          finalLoss: 0.5883,
          wallSeconds: 35.5,
        }),
        detail: detail({
          live: false,
          hasCheckpoint: true,
          checkpointRound: 150,
          checkpointPath: '/data/checkpoints/demo-abc123/round-000150.safetensors',
        }),
      });
      const text = formatStatus(j).join('\n');
      expect(text).to.match(/^state +completed: 150\/150 rounds$/m);
      expect(text).to.match(
        /^parameters +\/data\/checkpoints\/demo-abc123\/round-000150\.safetensors \(the final checkpoint, round 150; safetensors\)$/m,
      );
      expect(text).to.match(
        /^result +test accuracy 77\.4%, test loss 0\.637 nats, final train loss 0\.588, 150 rounds in 36s$/m,
      );
      expect(text).not.to.match(/^eta/m);
    });
  });

  describe('stall and final lines', () => {
    it('names the workers a stalled round waits for, and the workers that left', () => {
      const j = job({
        round: 11,
        detail: detail({
          participants: [
            live('worker-0', true),
            live('worker-1', true),
            live('worker-2', true),
            live('worker-4'),
          ],
          departed: [live('worker-3', false, { reason: 'heartbeat expired (6000 ms)', agoMs: 15_000 })],
          openRound: 11,
        }),
      });
      expect(formatStall(20, j)).to.equal(
        'stalled 20s, waiting for worker-4 (round 12: 3/4 pushed); worker-3 left 15s ago (heartbeat expired (6000 ms))',
      );
      const short = job({ detail: detail({ participants: [live('worker-0')] }) });
      expect(formatStall(20, short)).to.equal('stalled 20s, waiting for workers: 1/4 joined (workers.min 4)');
      expect(formatStall(7, job({ state: 'queued', detail: null }))).to.match(
        /^stalled 7s, waiting for the job to start/,
      );
    });

    it('ends a completed job with its accuracy and losses, a failed one with its error', () => {
      const done = job({
        state: 'completed',
        round: 150,
        resultJson: JSON.stringify({
          rounds: 150,
          testAccuracy: 0.774,
          testLoss: 0.637,
          finalLoss: 0.5883,
          wallSeconds: 35.5,
        }),
      });
      expect(formatFinal(done, { accuracy: NaN, evalLoss: NaN })).to.equal(
        'job demo-abc123 completed: 150 rounds in 36s — test accuracy 77.4%, test loss 0.637 nats, final train loss 0.588',
      );
      const failed = job({ state: 'failed', round: 12, error: 'training diverged' });
      expect(formatFinal(failed, { accuracy: 0.3, evalLoss: 2 })).to.equal(
        'job demo-abc123 failed at round 12/150 — last test accuracy 30.0%, test loss 2.00 nats — error: training diverged',
      );
    });
  });

  describe('watch', () => {
    const reportAt = (round: number, finishedAtMs: number, extra: Partial<RoundReport> = {}) =>
      report({ round, finishedAtMs, ...extra });

    it('replayed rounds carry the accuracy forward and show no rate; live rounds show the measured rate', () => {
      let now = 1_000_000;
      const view = new WatchView(() => now);
      view.onJob(job({ round: 3, totalRounds: 10 }));
      const replay = [
        view.onRound(reportAt(0, 100, { testAccuracy: 0.5, testLoss: 1.2 })),
        view.onRound(reportAt(1, 101)),
        view.onRound(reportAt(2, 102)),
      ].map((lines) => lines[0]);
      for (const line of replay) expect(line).not.to.match(/r\/s|eta|acc 0\.0%/);
      expect(replay[1]).to.contain('test acc 50.0% (1.20 nats)');
      now += 500;
      const first = view.onRound(reportAt(3, 10_000))[0];
      expect(first).not.to.match(/r\/s/); // one live round: no rate yet
      const second = view.onRound(reportAt(4, 10_500))[0];
      expect(second).to.match(/ {2}2\.0 r\/s {2}eta 3s$/);
    });

    it('a finished job is all replay: no rate at all', () => {
      const view = new WatchView(() => 0);
      view.onJob(job({ state: 'completed', round: 3, totalRounds: 3 }));
      for (let r = 0; r < 3; r++) expect(view.onRound(reportAt(r, r * 10))[0]).not.to.match(/r\/s/);
    });

    it('is stalled after MIN_STALL_MS without a report, then again at twice, four times that', () => {
      let now = 0;
      const view = new WatchView(() => now);
      view.onJob(job());
      now = MIN_STALL_MS - 1;
      expect(view.stallDue()).to.equal(false);
      now = MIN_STALL_MS;
      expect(view.stallDue()).to.equal(true);
      const j = job({ detail: detail({ participants: [live('worker-0')] }) });
      expect(view.stallLines(j)).to.deep.equal([
        'stalled 5s, waiting for workers: 1/4 joined (workers.min 4)',
      ]);
      expect(view.stallDue()).to.equal(false);
      now = 2 * MIN_STALL_MS;
      expect(view.stallDue()).to.equal(true);
      expect(view.stallLines(j)[0]).to.match(/^stalled 10s/);
      now = 3 * MIN_STALL_MS;
      expect(view.stallDue()).to.equal(false);
      view.onRound(reportAt(0, 0));
      now = 4 * MIN_STALL_MS - 1;
      expect(view.stallDue()).to.equal(false); // a report starts the count again
    });

    it('prints the header once and a line per state change', () => {
      const view = new WatchView(() => 0);
      expect(view.onJob(job({ state: 'queued', detail: null }))).to.deep.equal([
        'job demo-abc123: queued (no coordinator has started it yet)',
      ]);
      expect(view.onJob(job({ state: 'queued', detail: null }))).to.deep.equal([]);
      expect(view.onJob(job({ state: 'running', round: 0, detail: null }))[0]).to.match(/running: 0\/150/);
      expect(view.onJob(job({ state: 'completed' }))).to.deep.equal([]);
    });
  });
});
