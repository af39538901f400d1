/**
 * `phalanx launch` / `phalanx demo`: a coordinator in this process plus N worker processes on loopback, one job,
 * live progress, and a JSON summary report. The run makes its own credentials in a temporary directory: an
 * admin token and one enrollment token for the job admitting exactly N worker names, or (--tls) a CA with a
 * coordinator certificate and one certificate per worker for mutual TLS.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { JobSpec, JobSpecInput } from '../config/jobSpec.ts';
import { validateJobSpec } from '../config/jobSpec.ts';
import { startCoordinator } from '../coordinator/server.ts';
import type { RoundReport } from '../coordinator/roundReport.ts';
import { parameterCount } from '../models/parameterCount.ts';
import type { JobRecord } from '../coordinator/state/stateStore.ts';
import type { StateStoreConfig } from '../coordinator/state/index.ts';
import { ProgressPrinter } from './progress.ts';
import { createCertificates } from './certs.ts';
import { createLogger, resolveLogFormat, silentLogger, type LogFormat } from '../logging/logger.ts';
import { moeLabel } from '../models/moeSpec.ts';
import { PHALANX_BIN } from '../packageRoot.ts';

export const BIN = PHALANX_BIN;

export interface LaunchOptions {
  spec: JobSpecInput;
  workers: number;
  byzantine: number;
  attack: string;
  attackOptions?: Record<string, unknown>;
  store: StateStoreConfig;
  port: number;
  /** Serve the dashboard on this port (0 = any free port) and print the job page's URL. */
  dashboardPort?: number;
  /** The coordinator's data directory (checkpoints below it) and an optional checkpoint directory. */
  dataDir?: string;
  checkpointDir?: string;
  report?: string;
  backend?: string;
  quiet?: boolean;
  /** Mutual TLS with certificates made for this run (default: plaintext loopback with enrollment tokens). */
  tls?: boolean;
  /** Serve the coordinator's Prometheus metrics (off when absent). */
  metrics?: { host: string; port: number };
  /**
   * The coordinator's and the workers' log lines go to stderr (verbose) or are dropped. They are human lines when
   * stderr is a terminal and JSON lines otherwise (PHALANX_LOG_FORMAT chooses).
   */
  verbose?: boolean;
  /** Called with every round report as it is persisted (benchmarks, progress of embedding programs). */
  onRound?(report: RoundReport): void;
}

export interface LaunchReport {
  job: string;
  rounds: number;
  workers: number;
  byzantine: number;
  attack: string | null;
  rule: string;
  /** Final evaluation; for a job that did not complete, the last one measured (NaN → null if none). */
  testAccuracy: number;
  /** The last evaluation's mean cross-entropy (nats per target: per character for a language model). */
  testLoss: number;
  /** Final training loss; for a job that did not complete, the last round's. */
  finalLoss: number;
  wallSeconds: number;
  store: string;
  model: string;
  flagged: Record<string, number>;
  state: string;
  /** Why the job failed, if it did. */
  error?: string;
  /** Under compression.kind uniform | lgreco: gradient bytes received (all rounds), vs fp32, and the plans. */
  compression?: LaunchCompression;
}

export interface LaunchCompression {
  bytes: number;
  fp32Bytes: number;
  ratio: number;
  /** Each plan with the first round pushed under it, its per-layer settings and the error budget it used. */
  plans: { planId: string; fromRound: number; settings: string[]; budgetUsed: number }[];
}

export async function launch(options: LaunchOptions): Promise<LaunchReport> {
  const started = Date.now();
  const spec: JobSpec = validateJobSpec(options.spec);
  if (options.byzantine > options.workers) throw new Error('--byzantine cannot exceed --workers');
  const out = (line: string) => {
    if (!options.quiet) process.stdout.write(`${line}\n`);
  };
  // The progress lines are this command's output (always human); the services' logs follow the log format.
  const logFormat: LogFormat = resolveLogFormat(
    undefined,
    process.env['PHALANX_LOG_FORMAT'],
    Boolean(process.stderr.isTTY),
  );
  const logger = options.verbose
    ? createLogger({
        component: 'coordinator',
        format: logFormat,
        level: 'info',
        sink: process.stderr,
        prefix: '[coordinator] ',
      })
    : silentLogger;
  // Certificates for this run only; the coordinator's data directory (admin token, checkpoints) persists.
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'phalanx-launch-'));
  const certs = path.join(scratch, 'certs');
  if (options.tls)
    createCertificates({ out: certs, workers: options.workers, hosts: [], clients: [], days: 2 });
  const pem = (name: string) => path.join(certs, name);
  let coordinator;
  try {
    coordinator = await startCoordinator({
      host: '127.0.0.1',
      port: options.port,
      store: options.store,
      dataDir: options.dataDir,
      checkpointDir: options.checkpointDir,
      dashboardPort: options.dashboardPort,
      tls: options.tls ? { cert: pem('server.crt'), key: pem('server.key'), ca: pem('ca.crt') } : undefined,
      ...(options.metrics ? { metrics: options.metrics } : {}),
      logger,
    });
  } catch (e) {
    rmSync(scratch, { recursive: true, force: true });
    throw e;
  }
  const children: ChildProcess[] = [];
  let ended = false;
  try {
    // A lease left by a crashed coordinator on the same store expires within its TTL.
    await coordinator.whenLeading();
    const job = await coordinator.manager.submit(spec, 'launch');
    // Exactly one identity per worker process, for this job only.
    const enrollment = await coordinator.auth.issue({
      role: 'worker',
      jobId: job.id,
      count: options.workers,
      ttlMs: 24 * 3600 * 1000,
    });
    out(
      `phalanx: job ${job.id} — ${spec.rounds} rounds of ${describeModel(spec)} on Fashion-MNIST, ` +
        `${options.workers} workers (${options.byzantine} byzantine: ${options.byzantine ? options.attack : 'none'}), ` +
        `rule ${spec.aggregation.rule}${spec.aggregation.pre.length ? ` after ${spec.aggregation.pre.join('+')}` : ''}, store ${coordinator.store.kind}, ` +
        `coordinator ${coordinator.address} (${options.tls ? 'mutual TLS' : 'enrollment token'})`,
    );
    if (coordinator.dashboardUrl) {
      // A viewer token for this job only, so the printed URL opens the page and nothing more.
      const viewer = await coordinator.auth.issue({ role: 'viewer', jobId: job.id, ttlMs: 24 * 3600 * 1000 });
      out(
        `phalanx: dashboard ${coordinator.dashboardUrl}/jobs/${encodeURIComponent(job.id)}?token=${viewer.token}`,
      );
    }
    if (coordinator.metricsUrl) out(`phalanx: metrics on ${coordinator.metricsUrl}`);
    const flagged: Record<string, number> = {};
    const printer = new ProgressPrinter(spec.rounds, out, spec.evaluation.split);
    const finished = new Promise<JobRecord>((resolve) => {
      coordinator.manager.on('job', (j: JobRecord) => {
        if (j.id !== job.id) return;
        if (j.state === 'completed' || j.state === 'failed' || j.state === 'cancelled') resolve(j);
      });
    });
    // Last measured values: a job that fails (e.g. diverged under the mean rule) has no final result.
    let lastAccuracy = NaN;
    let lastEvalLoss = NaN;
    let lastLoss = NaN;
    const traffic: LaunchCompression = { bytes: 0, fp32Bytes: 0, ratio: NaN, plans: [] };
    coordinator.manager.on('round', (r: RoundReport) => {
      if (r.jobId !== job.id) return;
      const c = r.compression;
      if (c) {
        traffic.bytes += c.bytes;
        traffic.fp32Bytes += c.pushes * 4 * parameterCount(spec.model);
        traffic.ratio = traffic.fp32Bytes / traffic.bytes;
        if (traffic.plans.at(-1)?.planId !== c.planId)
          traffic.plans.push({
            planId: c.planId,
            fromRound: r.round,
            settings: c.settings,
            budgetUsed: c.budgetUsed,
          });
      }
      for (const w of r.workers) if (!w.included) flagged[w.name] = (flagged[w.name] ?? 0) + 1;
      if (Number.isFinite(r.testAccuracy)) lastAccuracy = r.testAccuracy;
      if (Number.isFinite(r.testLoss)) lastEvalLoss = r.testLoss;
      lastLoss = r.trainLoss;
      printer.round(r);
      options.onRound?.(r);
    });

    // A worker that exits with an error before the job ends (a bad flag, an unusable backend) would leave the job
    // waiting for it forever: the job is cancelled and the worker's first error line is the launch's error.
    let workerFailure: string | undefined;
    const onWorkerExit = (name: string, firstError: () => string, code: number | null) => {
      if (ended || code === 0 || code === null || workerFailure !== undefined) return;
      const said = firstError();
      workerFailure = `${name} exited with code ${code}${said ? `: ${said}` : ''}`;
      void coordinator.manager.cancel(job.id);
    };

    for (let i = 0; i < options.workers; i++) {
      const byz = i >= options.workers - options.byzantine;
      const args = [
        BIN,
        'worker',
        '--coordinator',
        coordinator.address,
        '--job',
        job.id,
        '--name',
        `worker-${i}`,
        '--once',
      ];
      if (options.backend) args.push('--backend', options.backend);
      if (byz) {
        args.push('--byzantine', options.attack);
        if (options.attackOptions) args.push('--attack-options', JSON.stringify(options.attackOptions));
      }
      // Credentials travel in the environment, not in argv (visible to every user through ps).
      const credentials = options.tls
        ? {
            PHALANX_TLS_CA: pem('ca.crt'),
            PHALANX_TLS_CERT: pem(`worker-${i}.crt`),
            PHALANX_TLS_KEY: pem(`worker-${i}.key`),
          }
        : { PHALANX_TOKEN: enrollment.token };
      const child = spawn(process.execPath, args, {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          ...process.env,
          PHALANX_TOKEN: '',
          PHALANX_TOKEN_FILE: '',
          PHALANX_LOG_FORMAT: logFormat,
          ...credentials,
        },
      });
      let stderr = '';
      child.stdout?.on('data', (chunk: Buffer) => {
        if (options.verbose) process.stderr.write(chunk);
      });
      child.stderr?.on('data', (chunk: Buffer) => {
        if (stderr.length < 4096) stderr += chunk.toString();
        if (options.verbose) process.stderr.write(chunk);
      });
      const name = `worker-${i}`;
      const firstError = () =>
        stderr
          .split('\n')
          .map((l) => l.trim())
          .find((l) => l !== '') ?? '';
      // 'close' comes after the child's output has been read to its end.
      child.once('close', (code) => onWorkerExit(name, firstError, code));
      children.push(child);
    }

    const onSignal = () => {
      for (const c of children) c.kill('SIGTERM');
      void coordinator.shutdown().then(() => process.exit(130));
    };
    process.once('SIGINT', onSignal);
    const final = await finished;
    ended = true;
    process.off('SIGINT', onSignal);
    printer.done();
    const result = final.result
      ? (JSON.parse(final.result) as { testAccuracy: number; finalLoss: number })
      : undefined;
    const report: LaunchReport = {
      job: final.id,
      rounds: final.round,
      workers: options.workers,
      byzantine: options.byzantine,
      attack: options.byzantine ? options.attack : null,
      rule: spec.aggregation.rule,
      testAccuracy: result?.testAccuracy ?? lastAccuracy,
      testLoss: lastEvalLoss,
      finalLoss: result?.finalLoss ?? lastLoss,
      wallSeconds: (Date.now() - started) / 1000,
      store: coordinator.store.kind,
      model: describeModel(spec),
      flagged,
      state: final.state,
      ...(workerFailure || final.error ? { error: workerFailure ?? final.error } : {}),
      ...(spec.compression.kind !== 'none' ? { compression: traffic } : {}),
    };
    out(
      `phalanx: job ${final.id} ${final.state} after ${final.round} rounds in ${report.wallSeconds.toFixed(1)} s — ` +
        `${spec.evaluation.split} accuracy ${(report.testAccuracy * 100).toFixed(2)}%, final train loss ${report.finalLoss.toFixed(4)}` +
        (report.error ? ` — error: ${report.error}` : ''),
    );
    if (options.report) {
      mkdirSync(path.dirname(path.resolve(options.report)), { recursive: true });
      writeFileSync(options.report, `${JSON.stringify(report, null, 2)}\n`);
      out(`phalanx: report written to ${options.report}`);
    }
    return report;
  } finally {
    ended = true;
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            const t = setTimeout(() => c.kill('SIGKILL'), 5000);
            c.once('exit', () => {
              clearTimeout(t);
              resolve();
            });
            c.kill('SIGTERM');
          }),
      ),
    );
    await coordinator.shutdown();
    rmSync(scratch, { recursive: true, force: true });
  }
}

export function describeModel(spec: JobSpec): string {
  const m = spec.model;
  if (m.kind === 'transformer') {
    return `transformer d${m.dModel} L${m.layers} H${m.heads} ffn${m.ffn}${moeLabel(m.moe)} (${parameterCount(m).toLocaleString('en')} params)`;
  }
  return m.kind === 'mlp' ? `MLP 784-${m.hidden.join('-')}-10` : 'CNN (431,080 params)';
}
