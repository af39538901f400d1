/**
 * Round reports and job changes → Prometheus series, in a registry of its own (one per coordinator, so several
 * coordinators can live in one process). Nothing here does I/O: the HTTP adapter (../http/metricsServer.ts)
 * serves `registry`. docs/monitoring.md lists every series.
 *
 * Jobs are labelled `job_id`, not `job`: Prometheus sets `job` itself (the scrape job), and a scraped `job` label
 * would be renamed to `exported_job`.
 *
 * Label cardinality is bounded: a job's series (its own and its workers') are removed `retainFinishedMs` after the
 * job ends, and at most `maxJobs` jobs keep series at a time (beyond that, the job whose series changed least
 * recently loses them, ended jobs first).
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { RoundReport, WorkerRoundHealth } from '../roundReport.ts';
import type { JobRecord } from '../state/stateStore.ts';
import { isTerminal } from '../../core/jobLifecycle.ts';
import { roundHealth } from '../roundHealth.ts';

export interface CoordinatorMetricsOptions {
  /** How long an ended job's series stay (so a scrape after the end still sees its final values). */
  retainFinishedMs?: number;
  /** Jobs whose series are kept at once. */
  maxJobs?: number;
  now?: () => number;
}

export const DEFAULT_RETAIN_FINISHED_MS = 10 * 60_000;
export const DEFAULT_MAX_JOBS = 32;

/** Round phases as the `phase` label spells them (the report's collect, aggregate, optimize and evaluate). */
export const ROUND_PHASES = ['collect', 'aggregate', 'step', 'evaluate'] as const;

/** Seconds: 1 ms … ~2 min, for phases from a Krum step on a small model to a long collect. */
const PHASE_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

type Labels = Record<string, string>;
interface Removable {
  remove(labels: Labels): void;
}

/** The series one job wrote (label sets per metric), so they can all be removed together. */
interface JobSeries {
  written: Map<Removable, Map<string, Labels>>;
  endedAt?: number;
  touchedAt: number;
}

/** `REASON_AGAINST_ROBUST_DIRECTION` → `against_robust_direction` (the `reason` label). */
/**
 * The `reason` label of a worker the rule included with a negligible share of the update (roundHealth): not a
 * wire code, since the rule did include it, but it did not count, as `watch` and `status` say.
 */
export const NEGLIGIBLE_SHARE_LABEL = 'negligible_share';

export function reasonLabel(code: string | undefined): string {
  return (code ?? 'REASON_UNSPECIFIED').replace(/^REASON_/, '').toLowerCase();
}

export class CoordinatorMetrics {
  readonly registry = new Registry();
  private readonly retainFinishedMs: number;
  private readonly maxJobs: number;
  private readonly now: () => number;
  private readonly jobs = new Map<string, JobSeries>();

  // Per job.
  private readonly rounds: Counter<'job_id'>;
  private readonly lastRound: Gauge<'job_id'>;
  private readonly phaseSeconds: Histogram<'job_id' | 'phase'>;
  private readonly roundSeconds: Histogram<'job_id'>;
  private readonly trainLoss: Gauge<'job_id'>;
  private readonly testAccuracy: Gauge<'job_id'>;
  private readonly testLoss: Gauge<'job_id'>;
  private readonly updateNorm: Gauge<'job_id'>;
  private readonly receivedBytes: Counter<'job_id'>;
  private readonly sentBytes: Counter<'job_id'>;
  private readonly compressionRatio: Gauge<'job_id'>;
  private readonly flagRank: Gauge<'job_id'>;
  private readonly excluded: Gauge<'job_id'>;
  private readonly missing: Gauge<'job_id'>;
  private readonly rollbacks: Gauge<'job_id'>;
  private readonly divergence: Counter<'job_id'>;
  private readonly storeStallSeconds: Counter<'job_id'>;
  private readonly jobState: Gauge<'job_id' | 'state'>;
  // Per worker.
  private readonly wRounds: Counter<'job_id' | 'worker'>;
  private readonly wIncluded: Gauge<'job_id' | 'worker'>;
  private readonly wWeight: Gauge<'job_id' | 'worker'>;
  private readonly wTrust: Gauge<'job_id' | 'worker'>;
  private readonly wNorm: Gauge<'job_id' | 'worker'>;
  private readonly wCosine: Gauge<'job_id' | 'worker'>;
  private readonly wFlags: Counter<'job_id' | 'worker' | 'reason'>;
  private readonly wLate: Counter<'job_id' | 'worker'>;
  private readonly wRejected: Counter<'job_id' | 'worker'>;

  constructor(options: CoordinatorMetricsOptions = {}) {
    this.retainFinishedMs = options.retainFinishedMs ?? DEFAULT_RETAIN_FINISHED_MS;
    this.maxJobs = options.maxJobs ?? DEFAULT_MAX_JOBS;
    this.now = options.now ?? Date.now;
    const registers = [this.registry];
    const job = ['job_id'] as const;
    const worker = ['job_id', 'worker'] as const;
    const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
      new Gauge<L>({ name, help, labelNames, registers });
    const counter = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
      new Counter<L>({ name, help, labelNames, registers });

    this.rounds = counter(
      'phalanx_rounds_total',
      'Rounds closed (a round replayed after a rollback counts again)',
      job,
    );
    this.lastRound = gauge('phalanx_round', 'The last closed round (0-based)', job);
    this.phaseSeconds = new Histogram({
      name: 'phalanx_round_phase_seconds',
      help: 'Time per round phase: collect (open to close), aggregate (rule), step (optimizer), evaluate (test set, evaluation rounds only)',
      labelNames: ['job_id', 'phase'],
      buckets: PHASE_BUCKETS,
      registers,
    });
    this.roundSeconds = new Histogram({
      name: 'phalanx_round_duration_seconds',
      help: "A round's collect + aggregate + step",
      labelNames: job,
      buckets: PHASE_BUCKETS,
      registers,
    });
    this.trainLoss = gauge('phalanx_train_loss', 'Mean training loss the included workers reported', job);
    this.testAccuracy = gauge(
      'phalanx_test_accuracy',
      'Test accuracy (0..1) at the last evaluation round',
      job,
    );
    this.testLoss = gauge('phalanx_test_loss', 'Test loss at the last evaluation round', job);
    this.updateNorm = gauge('phalanx_update_norm', 'L2 norm of the last aggregated update', job);
    this.receivedBytes = counter('phalanx_received_bytes_total', 'Gradient bytes of accepted pushes', job);
    this.sentBytes = counter('phalanx_sent_bytes_total', 'Parameter bytes streamed to workers', job);
    this.compressionRatio = gauge(
      'phalanx_compression_ratio',
      'fp32 bytes of the last round’s pushes / bytes sent (compressed jobs only)',
      job,
    );
    this.storeStallSeconds = counter(
      'phalanx_store_stall_seconds_total',
      'Time round commits waited for a state store that did not answer (the job paused meanwhile)',
      job,
    );
    this.flagRank = gauge(
      'phalanx_flag_rank',
      "Flag's subspace rank r in the last round (rule flag only)",
      job,
    );
    this.excluded = gauge(
      'phalanx_excluded_workers',
      'Workers that delivered a gradient in the last round but did not count (excluded, or a negligible share)',
      job,
    );
    this.missing = gauge(
      'phalanx_missing_workers',
      'Participants that delivered no usable gradient in the last round (late, rejected, left)',
      job,
    );
    this.rollbacks = gauge('phalanx_rollbacks', 'Divergence-guard rollbacks the job has made', job);
    this.divergence = counter(
      'phalanx_divergence_signals_total',
      'Signs of divergence the guard saw (one per signal per round)',
      job,
    );
    this.jobState = gauge('phalanx_job_state', 'The job’s lifecycle state (1 for the current one)', [
      'job_id',
      'state',
    ]);

    this.wRounds = counter(
      'phalanx_worker_rounds_total',
      'Rounds the worker took part in (delivered, or was expected and missing)',
      worker,
    );
    this.wIncluded = gauge(
      'phalanx_worker_included',
      '1 if the worker counted in the last update (the rule included it with a non-negligible share)',
      worker,
    );
    this.wWeight = gauge(
      'phalanx_worker_weight',
      "The worker's weight in the last update (0 when excluded)",
      worker,
    );
    this.wTrust = gauge(
      'phalanx_worker_trust',
      "The rule's trust in the worker in the last round (0..1)",
      worker,
    );
    this.wNorm = gauge('phalanx_worker_gradient_norm', "L2 norm of the worker's last gradient", worker);
    this.wCosine = gauge(
      'phalanx_worker_cosine',
      "Cosine between the worker's last gradient and the update",
      worker,
    );
    this.wFlags = counter(
      'phalanx_worker_flags_total',
      'Rounds in which the worker did not count, by reason code (excluded by the rule, or missing)',
      ['job_id', 'worker', 'reason'],
    );
    this.wLate = counter(
      'phalanx_worker_late_total',
      'Rounds that closed without a push from the worker',
      worker,
    );
    this.wRejected = counter(
      'phalanx_worker_rejected_total',
      'Rounds in which the worker’s push was refused at the wire',
      worker,
    );
  }

  /** One closed round. */
  observeRound(report: RoundReport): void {
    const s = this.series(report.jobId);
    const job = { job_id: report.jobId };
    this.inc(s, this.rounds, job);
    this.set(s, this.lastRound, job, report.round);
    const t = report.timings;
    const phases: [string, number | undefined][] = [
      ['collect', t.collectMs],
      ['aggregate', t.aggregateMs],
      ['step', t.optimizeMs],
      ['evaluate', t.evaluateMs ? t.evaluateMs : undefined],
    ];
    for (const [phase, ms] of phases) {
      if (ms !== undefined && Number.isFinite(ms))
        this.observe(s, this.phaseSeconds, { ...job, phase }, ms / 1000);
    }
    this.observe(s, this.roundSeconds, job, t.totalMs / 1000);
    this.setFinite(s, this.trainLoss, job, report.trainLoss);
    this.setFinite(s, this.testAccuracy, job, report.testAccuracy);
    this.setFinite(s, this.testLoss, job, report.testLoss);
    this.setFinite(s, this.updateNorm, job, report.updateNorm);
    this.inc(s, this.receivedBytes, job, report.bytesReceived);
    this.inc(s, this.sentBytes, job, report.bytesSent ?? 0);
    if (report.compression) this.setFinite(s, this.compressionRatio, job, report.compression.ratio);
    if (report.rule === 'flag' && report.diagnostics)
      this.set(s, this.flagRank, job, report.diagnostics.flagRank);
    const health = roundHealth(report);
    const negligible = new Set(health.excluded.filter((e) => e.worker.included).map((e) => e.worker));
    this.set(s, this.excluded, job, health.excluded.length);
    this.set(s, this.missing, job, report.missing.length);
    this.set(s, this.rollbacks, job, report.rollbacks);
    this.inc(s, this.divergence, job, report.divergence.length);
    this.inc(s, this.storeStallSeconds, job, (report.storeStall?.waitedMs ?? 0) / 1000);

    for (const w of report.workers) this.observeWorker(s, report.jobId, w, true, negligible.has(w));
    for (const w of report.missing) this.observeWorker(s, report.jobId, w, false, false);
  }

  /** A job changed state; an ended job's series are removed after the grace period. */
  observeJob(job: JobRecord): void {
    const s = this.series(job.id);
    for (const state of ['queued', 'starting', 'running', 'completed', 'failed', 'cancelled']) {
      this.set(s, this.jobState, { job_id: job.id, state }, state === job.state ? 1 : 0);
    }
    if (isTerminal(job.state)) s.endedAt ??= this.now();
  }

  /** Remove the series of jobs that ended more than the grace period ago (call before every scrape). */
  sweep(): void {
    const now = this.now();
    for (const [id, s] of this.jobs) {
      if (s.endedAt !== undefined && now - s.endedAt >= this.retainFinishedMs) this.drop(id);
    }
  }

  /** Jobs that have series now. */
  jobIds(): string[] {
    return [...this.jobs.keys()];
  }

  private observeWorker(
    s: JobSeries,
    jobId: string,
    w: WorkerRoundHealth,
    delivered: boolean,
    negligible: boolean,
  ): void {
    const labels = { job_id: jobId, worker: w.name };
    this.inc(s, this.wRounds, labels);
    const counted = w.included && !negligible;
    if (delivered) {
      this.set(s, this.wIncluded, labels, counted ? 1 : 0);
      this.set(s, this.wWeight, labels, w.weight);
      this.set(s, this.wTrust, labels, w.trust);
      this.setFinite(s, this.wNorm, labels, w.norm);
      this.setFinite(s, this.wCosine, labels, w.cosine);
    } else {
      // Nothing usable arrived: not included, no weight; the last norm and cosine stay as they were.
      this.set(s, this.wIncluded, labels, 0);
      this.set(s, this.wWeight, labels, 0);
      this.set(s, this.wTrust, labels, 0);
    }
    if (counted) return;
    const reason = negligible ? NEGLIGIBLE_SHARE_LABEL : reasonLabel(w.reasonCode);
    this.inc(s, this.wFlags, { ...labels, reason });
    if (reason === 'late') this.inc(s, this.wLate, labels);
    if (reason === 'rejected') this.inc(s, this.wRejected, labels);
  }

  private series(jobId: string): JobSeries {
    let s = this.jobs.get(jobId);
    if (!s) {
      this.evictFor();
      s = { written: new Map(), touchedAt: this.now() };
      this.jobs.set(jobId, s);
    }
    // Reinsert: the map's order is least recently touched first.
    this.jobs.delete(jobId);
    this.jobs.set(jobId, s);
    s.touchedAt = this.now();
    return s;
  }

  /** Make room for one more job: ended jobs go first, then the least recently touched. */
  private evictFor(): void {
    while (this.jobs.size >= this.maxJobs) {
      let victim: string | undefined;
      for (const [id, s] of this.jobs) {
        if (s.endedAt !== undefined) {
          victim = id;
          break;
        }
      }
      this.drop(victim ?? this.jobs.keys().next().value!);
    }
  }

  private drop(jobId: string): void {
    const s = this.jobs.get(jobId);
    if (!s) return;
    for (const [metric, sets] of s.written) for (const labels of sets.values()) metric.remove(labels);
    this.jobs.delete(jobId);
  }

  private remember(s: JobSeries, metric: Removable, labels: Labels): void {
    let sets = s.written.get(metric);
    if (!sets) s.written.set(metric, (sets = new Map()));
    const key = JSON.stringify(labels);
    if (!sets.has(key)) sets.set(key, labels);
  }

  private set<L extends string>(s: JobSeries, g: Gauge<L>, labels: Record<L, string>, value: number): void {
    g.set(labels, value);
    this.remember(s, g as Removable, labels);
  }

  private setFinite<L extends string>(
    s: JobSeries,
    g: Gauge<L>,
    labels: Record<L, string>,
    value: number,
  ): void {
    if (Number.isFinite(value)) this.set(s, g, labels, value);
  }

  private inc<L extends string>(s: JobSeries, c: Counter<L>, labels: Record<L, string>, by = 1): void {
    c.inc(labels, Number.isFinite(by) && by > 0 ? by : 0);
    this.remember(s, c as Removable, labels);
  }

  private observe<L extends string>(
    s: JobSeries,
    h: Histogram<L>,
    labels: Record<L, string>,
    v: number,
  ): void {
    if (!Number.isFinite(v) || v < 0) return;
    h.observe(labels, v);
    this.remember(s, h as Removable, labels);
  }
}
