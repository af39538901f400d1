/**
 * Liveness of the coordinator's event loop while rounds aggregate (npm run bench:liveness).
 *
 * A coordinator child process runs a job whose model has ~10⁷ parameters (MLP 784-12600-10); WORKERS clients push
 * synthetic 10⁷-element gradients over gRPC, so every round aggregates WORKERS × 40 MB with the job's rule on the
 * round-compute thread. A client measures ListJobs and grpc.health.v1 Check latency (serial probes) on the same
 * coordinator:
 *   idle       — the job is running, no push in flight (baseline, same run);
 *   aggregate  — from the last accepted push of a round until its report arrives (aggregation + optimizer);
 *   over-deadline — a second job whose rule takes seconds per round (centered clipping with L = 100, the most
 *                iterations admission allows, on 10⁷ parameters) until its 1 s compute deadline skips the round.
 * Prints p50/p99/max per phase and the ratios to the idle baseline; `--json FILE` writes them.
 *
 * Options: --rounds N (default 4), --workers N (default 4), --hidden N (default 12600), --rule NAME (default
 * flag), --freeze-deadline DURATION (default 1s).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CoordinatorClient } from '../src/worker/coordinatorClient.ts';
import { JobsClient } from '../src/cli/jobsClient.ts';
import { modelLayout } from '../src/models/registry.ts';
import { layoutFingerprint, type ParameterLayout } from '../src/core/layout/parameterLayout.ts';
import type { RoundReport__Output } from '../src/gen/phalanx/v1/RoundReport.ts';
import { HealthClient } from '../test/support/health.ts';

const args = process.argv.slice(2);
function option(name: string, fallback: string): string {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : fallback;
}
const ROUNDS = Number(option('rounds', '4'));
const WORKERS = Number(option('workers', '4'));
const HIDDEN = Number(option('hidden', '12600'));
const RULE = option('rule', 'flag');
const FREEZE_DEADLINE = option('freeze-deadline', '1s');
const JSON_OUT = option('json', '');
const BIN = fileURLToPath(new URL('../bin/phalanx.js', import.meta.url));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function startCoordinator(): Promise<{ child: ChildProcess; address: string; token: string }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'phalanx-bench-liveness-'));
  const child = spawn(
    process.execPath,
    [BIN, 'coordinator', '--host', '127.0.0.1', '--port', '0', '--data-dir', dir, '--memory-budget', '8GiB'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  return new Promise((resolve, reject) => {
    const onData = (b: Buffer) => {
      out += b.toString();
      if (process.env['PHALANX_BENCH_VERBOSE']) process.stderr.write(b);
      const m = /coordinator listening on ([\d.]+:\d+)/.exec(out);
      if (m && /admin token (created in|read from)/.test(out)) {
        resolve({ child, address: m[1], token: readFileSync(path.join(dir, 'admin.token'), 'utf8').trim() });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`coordinator exited (${code}):\n${out.slice(-2000)}`)));
  });
}

interface Job {
  id: string;
  workers: CoordinatorClient[];
  layout: ParameterLayout;
  /** Resolves with the report of `round` (the job's watch stream). */
  report(round: number): Promise<RoundReport__Output>;
}

async function startJob(
  address: string,
  token: string,
  jobs: JobsClient,
  spec: Record<string, unknown>,
): Promise<Job> {
  const model = spec['model'] as { kind: 'mlp'; hidden: number[] };
  const layout = modelLayout(model);
  const job = await jobs.submit(JSON.stringify(spec));
  const workers: CoordinatorClient[] = [];
  for (let i = 0; i < WORKERS; i++) {
    const c = new CoordinatorClient(address, undefined, token);
    await c.register(`${job.id}-w${i}`, { backend: 'bench' });
    for (;;) {
      try {
        await c.join(job.id);
        break;
      } catch {
        await sleep(200); // the runtime is still starting (the model host builds the model)
      }
    }
    workers.push(c);
  }
  const reports = new Map<number, RoundReport__Output>();
  const waiters = new Map<number, (r: RoundReport__Output) => void>();
  void jobs
    .watch(job.id, undefined, (e) => {
      if (!e.round) return;
      const round = Number(e.round.round);
      reports.set(round, e.round);
      waiters.get(round)?.(e.round);
    })
    .catch(() => {});
  return {
    id: job.id,
    workers,
    layout,
    report: (round) =>
      reports.has(round)
        ? Promise.resolve(reports.get(round)!)
        : new Promise((resolve) => waiters.set(round, resolve)),
  };
}

async function pushRound(job: Job, round: number, gradients: Float32Array[]): Promise<void> {
  const fp = layoutFingerprint(job.layout);
  const acks = await Promise.all(
    job.workers.map((c, i) =>
      c.push(gradients[i % gradients.length], job.layout, {
        jobId: job.id,
        round,
        loss: 1,
        samples: 32,
        attempt: 0,
        encoding: 'fp32',
        layoutFingerprint: fp,
      }),
    ),
  );
  const bad = acks.filter((a) => a.status !== 'PUSH_STATUS_ACCEPTED');
  if (bad.length)
    throw new Error(`round ${round}: pushes not accepted: ${bad.map((a) => a.status).join(', ')}`);
}

/** Serial probes (ListJobs, then health) until `done` settles; latencies in ms. */
async function probeUntil(
  jobs: JobsClient,
  health: HealthClient,
  done: Promise<unknown> | number,
): Promise<{ list: number[]; health: number[] }> {
  const list: number[] = [];
  const hc: number[] = [];
  let finished = false;
  if (typeof done === 'number') setTimeout(() => (finished = true), done);
  else void done.then(() => (finished = true));
  while (!finished) {
    let t = performance.now();
    await jobs.list();
    list.push(performance.now() - t);
    t = performance.now();
    const status = await health.check('');
    hc.push(performance.now() - t);
    if (status !== 'SERVING') throw new Error(`health says ${status}`);
    await sleep(5);
  }
  return { list, health: hc };
}

function stats(xs: number[]): { n: number; p50: number; p99: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * (s.length - 1) + 0.5))];
  return { n: s.length, p50: q(0.5), p99: q(0.99), max: s[s.length - 1] };
}

function gradient(d: number, seed: number): Float32Array {
  const g = new Float32Array(d);
  for (let k = 0; k < d; k++) g[k] = Math.sin(k * 0.001 + seed) * 1e-3 + (seed % 2 ? 1e-4 : -1e-4);
  return g;
}

async function main(): Promise<void> {
  const { child, address, token } = await startCoordinator();
  const jobs = new JobsClient(address, { token });
  const health = new HealthClient(address);
  try {
    const big = {
      name: 'bench-liveness',
      model: { kind: 'mlp', hidden: [HIDDEN] },
      data: { batchSize: 8, maxTrain: 100, maxTest: 100 },
      optimizer: { kind: 'sgd', lr: 0.01, momentum: 0.9 },
      rounds: ROUNDS + 10,
      workers: { min: WORKERS, max: WORKERS, roundTimeout: '10m', heartbeatTtl: '10m' },
      aggregation: { rule: RULE, f: 1, deadline: '10m' },
      evaluation: { every: 0, limit: 100 },
      checkpoint: { every: 0 },
    };
    const job = await startJob(address, token, jobs, big);
    const d = job.layout.totalSize;
    console.log(`job ${job.id}: ${d.toLocaleString('en-US')} parameters, ${WORKERS} workers, rule ${RULE}`);
    const gradients = Array.from({ length: WORKERS }, (_, i) => gradient(d, i));

    // Baseline: the same coordinator, the job running, nothing in flight.
    await probeUntil(jobs, health, 300); // warm-up
    const idle = await probeUntil(jobs, health, 3000);

    const during = { list: [] as number[], health: [] as number[] };
    const aggregateMs: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      await pushRound(job, round, gradients);
      const report = job.report(round);
      const p = await probeUntil(jobs, health, report);
      during.list.push(...p.list);
      during.health.push(...p.health);
      const r = await report;
      aggregateMs.push(r.timings?.aggregateMs ?? NaN);
      console.log(
        `round ${round}: aggregate ${(r.timings?.aggregateMs ?? NaN).toFixed(0)} ms, optimizer ${(r.timings?.optimizeMs ?? NaN).toFixed(0)} ms, ${p.list.length + p.health.length} probes answered meanwhile`,
      );
    }
    await jobs.cancel(job.id);
    for (const c of job.workers) c.close();

    // Over-deadline case: a rule that takes longer than its compute deadline; the deadline skips the round.
    const freeze = await startJob(address, token, jobs, {
      name: 'bench-freeze',
      // Centered clipping with the most iterations admission allows (L = 100) on 10⁷ parameters: seconds of work
      // per round, past a 1 s deadline.
      model: { kind: 'mlp', hidden: [12600] },
      data: { batchSize: 8, maxTrain: 100, maxTest: 100 },
      optimizer: { kind: 'sgd', lr: 0.01, momentum: 0 },
      rounds: 5,
      workers: { min: WORKERS, max: WORKERS, roundTimeout: '10m', heartbeatTtl: '10m' },
      aggregation: {
        rule: 'centeredClipping',
        f: 0,
        options: { L: 100, tau: 1e-6 },
        deadline: FREEZE_DEADLINE,
      },
      evaluation: { every: 0, limit: 100 },
      checkpoint: { every: 0 },
    });
    const small = Array.from({ length: WORKERS }, (_, i) => gradient(freeze.layout.totalSize, i));
    await pushRound(freeze, 0, small);
    const skipped = freeze.report(0);
    const frozen = await probeUntil(jobs, health, skipped);
    const reason = (await skipped).workers[0]?.reason ?? '';
    console.log(`over-deadline job: round 0 ${reason || 'was not skipped'}`);
    await jobs.cancel(freeze.id);
    for (const c of freeze.workers) c.close();

    const rows = [
      ['idle (baseline)', idle],
      [`aggregating ${d.toExponential(2)} params (${RULE}, ${WORKERS} workers)`, during],
      [`over-deadline case (centeredClipping L=100, 10⁷ params, deadline ${FREEZE_DEADLINE})`, frozen],
    ] as const;
    const base = { list: stats(idle.list), health: stats(idle.health) };
    const fmt = (x: number) => x.toFixed(2);
    console.log(
      '\n| phase | ListJobs p50 / p99 / max (ms) | health p50 / p99 / max (ms) | p99 vs idle (ListJobs, health) | probes |',
    );
    console.log('|---|---|---|---|---|');
    const json: Record<string, unknown> = { parameters: d, workers: WORKERS, rule: RULE, aggregateMs };
    for (const [label, s] of rows) {
      const l = stats(s.list);
      const h = stats(s.health);
      json[label] = { listJobs: l, health: h };
      console.log(
        `| ${label} | ${fmt(l.p50)} / ${fmt(l.p99)} / ${fmt(l.max)} | ${fmt(h.p50)} / ${fmt(h.p99)} / ${fmt(h.max)} | ` +
          `${(l.p99 / base.list.p99).toFixed(2)}×, ${(h.p99 / base.health.p99).toFixed(2)}× | ${l.n + h.n} |`,
      );
    }
    const worst = Math.max(...during.list, ...during.health, ...frozen.list, ...frozen.health);
    console.log(
      `\nslowest answer while aggregating or frozen: ${worst.toFixed(1)} ms (${worst < 100 ? 'within' : 'OVER'} 100 ms); ` +
        `aggregation per round: ${aggregateMs.map((x) => x.toFixed(0)).join(', ')} ms`,
    );
    if (JSON_OUT) writeFileSync(JSON_OUT, JSON.stringify(json, null, 2));
  } finally {
    jobs.close();
    health.close();
    child.kill('SIGTERM');
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
