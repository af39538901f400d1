/**
 * A worker's life around its jobs, against a real coordinator process: it waits for a job and, after one ends,
 * for the next, saying each once (repeats are debug lines); its waits leave no listener behind however long it
 * waits (no MaxListenersExceededWarning); it names a coordinator it cannot reach and gives up after
 * --connect-timeout; it stops, instead of retrying forever, when it cannot work on a job; and `launch` ends
 * when one of its workers fails at start.
 */
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { getEventListeners } from 'node:events';
import { JobsClient } from '../../src/cli/jobsClient.ts';
import { createLogger } from '../../src/logging/logger.ts';
import { runWorker } from '../../src/worker/workerProcess.ts';
import { proto } from '../../src/transport/protocol.ts';
import {
  logLines,
  startCoordinatorProcess,
  startProcess,
  startWorkerProcess,
  tmpDir,
  type LogLine,
  type Proc,
} from '../support/processes.ts';

const SPEC = {
  name: 'worker-lifecycle',
  model: { kind: 'mlp', hidden: [8] },
  data: { batchSize: 8, maxTrain: 200, maxTest: 50 },
  optimizer: { kind: 'sgd', lr: 0.1 },
  rounds: 15,
  workers: { min: 1, max: 1 },
  aggregation: { rule: 'mean', f: 0 },
  evaluation: { every: 0 },
  checkpoint: { every: 0 },
};

const exitOf = (proc: Proc): Promise<number | null> => proc.exit();

describe('integration: worker lifecycle', function () {
  this.timeout(240_000);
  let coordinator: Awaited<ReturnType<typeof startCoordinatorProcess>> | undefined;
  /** Processes a test started: killed after it, also when it timed out waiting for one that hangs. */
  const procs: Proc[] = [];
  const track = (proc: Proc): Proc => {
    procs.push(proc);
    return proc;
  };

  afterEach(async () => {
    await Promise.all(procs.splice(0).map((p) => p.kill()));
  });

  before(async () => {
    coordinator = await startCoordinatorProcess();
  });

  after(async () => {
    await coordinator?.proc.kill();
  });

  it('waits for a job and then for the next one, each said once, through many polls and rounds without leaking listeners', async () => {
    const { address, adminToken } = coordinator!;
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    const controller = new AbortController();
    const lines: LogLine[] = [];
    let maxAbortListeners = 0;
    const waiters: (() => void)[] = [];
    const logger = createLogger({
      component: 'worker',
      format: 'json',
      level: 'debug',
      sink: {
        write: (s: string) => {
          lines.push(...logLines(s));
          maxAbortListeners = Math.max(
            maxAbortListeners,
            getEventListeners(controller.signal, 'abort').length,
          );
          for (const w of waiters.splice(0)) w();
        },
      },
    });
    const until = (done: () => boolean) =>
      new Promise<void>((resolve) => {
        const check = () => (done() ? resolve() : waiters.push(check));
        check();
      });
    // Every ask while waiting logs a line: info the first time, debug after.
    const polls = (pattern: RegExp) => lines.filter((l) => pattern.test(l.msg)).length;
    const said = (pattern: RegExp) => lines.filter((l) => l.level === 'info' && pattern.test(l.msg)).length;
    const jobs = new JobsClient(address, { token: adminToken });
    const running = runWorker({
      coordinator: address,
      name: 'lifecycle-0',
      token: adminToken,
      backend: 'cpu',
      pollIntervalMs: 20,
      logger,
      signal: controller.signal,
    });
    try {
      // 20 polls with no job (more than the 10 listeners Node warns at), then a 15-round job, then 20 more polls.
      await until(() => polls(/^waiting for a job/) >= 20);
      const job = await jobs.submit(JSON.stringify(SPEC));
      await until(() => said(/^job \S+ finished; waiting for the next job$/) === 1);
      await until(() => polls(/finished; waiting for the next job/) >= 20);
      expect(lines.find((l) => l.msg.includes('joined job'))?.msg).to.contain(job.id);
      expect(said(/ended \(completed\)$/)).to.equal(1);
      expect(said(/^waiting for a job/)).to.equal(1);
      expect(said(/waiting for the next job/)).to.equal(1);
      expect(said(/finished; waiting for the next job/) + said(/^waiting for a job/)).to.equal(2);
      expect(lines.find((l) => /waiting for the next job/.test(l.msg))?.msg).to.equal(
        `job ${job.id} finished; waiting for the next job`,
      );
      expect(maxAbortListeners).to.be.at.most(1);
      expect(warnings.map((w) => `${w.name}: ${w.message}`)).to.deep.equal([]);
    } finally {
      controller.abort();
      await running;
      jobs.close();
      process.off('warning', onWarning);
    }
    expect(getEventListeners(controller.signal, 'abort')).to.have.length(0);
  });

  it('names a coordinator it cannot reach, backs off, and gives up after --connect-timeout with exit 1', async () => {
    const w = track(
      startProcess([
        'worker',
        '--coordinator',
        '127.0.0.1:1',
        '--name',
        'lost-0',
        '--backend',
        'cpu',
        '--connect-timeout',
        '4s',
      ]),
    );
    expect(await exitOf(w)).to.equal(1);
    const log = logLines(w.output());
    const retries = log.filter((l) => l.level === 'warn');
    expect(retries.length).to.be.greaterThan(1);
    for (const r of retries) {
      expect(r.msg).to.match(
        /^cannot reach coordinator at 127\.0\.0\.1:1 \(ECONNREFUSED\); retrying in \d+\.\ds$/,
      );
      expect(r).to.include({ coordinator: '127.0.0.1:1', reason: 'ECONNREFUSED', worker: 'lost-0' });
    }
    // Backoff: the first wait is drawn from [0.5, 1] s, the second from [1, 2] s.
    const waits = retries.map((r) => Number(r['retryInMs']));
    expect(waits[1]).to.be.greaterThan(waits[0]);
    // The message states the time actually spent unreachable: at least the timeout, a little more on a busy
    // machine (the last attempt can end after the deadline).
    const gaveUp =
      /phalanx: worker lost-0: cannot reach coordinator at 127\.0\.0\.1:1 \(ECONNREFUSED\) for (\d+\.\d)s; giving up \(--connect-timeout 4\.0s\)/.exec(
        w.output(),
      );
    expect(gaveUp, w.output()).to.not.equal(null);
    expect(Number(gaveUp![1])).to.be.at.least(4.0);
  });

  it('names an address that answers but is not a Phalanx coordinator, and gives up after --connect-timeout', async () => {
    // A gRPC server without the Coordinator service: what a wrong port on a gRPC or HTTP/2 host answers.
    const server = new grpc.Server();
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
        e ? reject(e) : resolve(p),
      ),
    );
    const address = `127.0.0.1:${port}`;
    const w = track(
      startProcess([
        'worker',
        '--coordinator',
        address,
        '--name',
        'wrong-0',
        '--backend',
        'cpu',
        '--connect-timeout',
        '3s',
      ]),
    );
    try {
      const outcome = await Promise.race([
        exitOf(w),
        new Promise((resolve) => setTimeout(resolve, 60_000, 'still retrying after 60 s')),
      ]);
      expect(outcome, w.output()).to.equal(1);
      const retries = logLines(w.output()).filter((l) => l.level === 'warn');
      expect(retries.length).to.be.greaterThan(0);
      for (const r of retries) {
        expect(r.msg).to.match(
          new RegExp(
            `^cannot reach coordinator at ${address} \\(not a Phalanx coordinator: .+\\); retrying in`,
          ),
        );
      }
      expect(w.output()).to.contain(
        `phalanx: worker wrong-0: cannot reach coordinator at ${address} (not a Phalanx`,
      );
    } finally {
      server.forceShutdown();
    }
  });

  it('stops with exit 1 and the reason when it cannot work on the job it joined (no retry loop)', async () => {
    const { address, adminToken } = coordinator!;
    const jobs = new JobsClient(address, { token: adminToken });
    const job = await jobs.submit(JSON.stringify({ ...SPEC, name: 'no-data', rounds: 1000 }));
    jobs.close();
    const w = track(
      startWorkerProcess(address, 'nodata-0', [
        '--job',
        job.id,
        '--backend',
        'cpu',
        '--data',
        '/nonexistent/fmnist',
      ]),
    );
    try {
      // A worker that retries joins the job again: that ends the wait as a failure.
      const outcome = await Promise.race([
        exitOf(w),
        w.waitFor(/joined job[^]*joined job/, 200_000).then(
          () => 'joined twice: it retried',
          () => exitOf(w),
        ),
      ]);
      expect(outcome).to.equal(1);
      expect(w.output()).to.match(
        new RegExp(`phalanx: worker nodata-0: cannot work on job ${job.id}: .*nonexistent`),
      );
    } finally {
      await w.kill();
      const c = new JobsClient(address, { token: adminToken });
      await c.cancel(job.id);
      c.close();
    }
  });

  it('stops with exit 2 when the job it joined has a rule it does not know (a coordinator of another version)', async () => {
    // A stand-in coordinator that enrolls any worker and hands out a job whose spec names an unknown rule.
    const server = new grpc.Server();
    server.addService(proto.phalanx.v1.Coordinator.service, {
      RegisterWorker: (_call: unknown, cb: grpc.sendUnaryData<object>) =>
        cb(null, { workerId: 'w-1', sessionToken: 's', heartbeatIntervalMs: 1000, heartbeatTtlMs: 6000 }),
      Heartbeat: (_call: unknown, cb: grpc.sendUnaryData<object>) => cb(null, { heartbeatIntervalMs: 1000 }),
      JoinJob: (_call: unknown, cb: grpc.sendUnaryData<object>) =>
        cb(null, {
          jobId: 'job-future',
          specJson: JSON.stringify({ ...SPEC, aggregation: { rule: 'alien', f: 0 } }),
          rank: 0,
          worldSize: 1,
          layoutFingerprint: 'x',
          round: 0,
        }),
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
        e ? reject(e) : resolve(p),
      ),
    );
    const w = track(
      startProcess(['worker', '--coordinator', `127.0.0.1:${port}`, '--name', 'old-0', '--backend', 'cpu']),
    );
    try {
      const outcome = await Promise.race([
        exitOf(w),
        w.waitFor(/unknown rule 'alien'[^]*unknown rule 'alien'[^]*unknown rule 'alien'/, 200_000).then(
          () => 'it retried',
          () => exitOf(w),
        ),
      ]);
      expect(outcome).to.equal(2);
      expect(w.output()).to.match(
        /phalanx: worker old-0: cannot work on job job-future: invalid job spec:[^]*aggregation\.rule: unknown rule 'alien' \(valid: mean, /,
      );
    } finally {
      await w.kill();
      server.forceShutdown();
    }
  });

  it('an unusable worker setting (PHALANX_BACKEND=alien) fails the worker with exit 2 and ends launch with its reason', async () => {
    const w = track(startProcess(['worker', '--coordinator', '127.0.0.1:1'], { PHALANX_BACKEND: 'alien' }));
    expect(await exitOf(w)).to.equal(2);
    expect(w.output()).to.contain(
      "phalanx: --backend / PHALANX_BACKEND must be one of auto, tensorflow-gpu, tensorflow, wasm, cpu (got 'alien')",
    );

    const launch = track(
      startProcess(['launch', '--workers', '1', '--rounds', '2', '--data-dir', tmpDir('launch')], {
        PHALANX_BACKEND: 'alien',
      }),
    );
    expect(await exitOf(launch)).to.equal(1);
    expect(launch.output()).to.match(
      /job \S+ cancelled after 0 rounds .* error: worker-0 exited with code 2: phalanx: --backend \/ PHALANX_BACKEND must be one of/,
    );
  });
});
