/**
 * Chaos across hosts: one network namespace per host (coordinator A, coordinator B, Redis, four workers) on a
 * bridge, all gRPC over mutual TLS. The workers reach the coordinators through fault-injecting TCP proxies in the
 * root namespace (this kernel has no netem). Each scenario runs one job on a fresh key prefix, disturbs it, and
 * checks: the job completes; the commit log applies no round twice (consecutive rounds per token, no older token
 * after a newer one); the store's fence ends at the last leader's token; the final parameters equal an undisturbed
 * run of the same seed on the same lab. A row per scenario is printed (completed, rounds recomputed, takeover time,
 * max parameter difference); times are measured, never asserted.
 */
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { spawn, type ChildProcess, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import net from 'node:net';
import { JobsClient } from '../../../src/cli/jobsClient.ts';
import {
  listCheckpoints,
  readCheckpoint,
  type JobCheckpointTensors,
} from '../../../src/checkpoint/checkpoint.ts';
import { RedisStateStore } from '../../../src/coordinator/state/redisStore.ts';
import type { JobRecord } from '../../../src/coordinator/state/stateStore.ts';
import {
  startCoordinatorProcess,
  startProcess,
  tmpDir,
  sleep,
  BIN,
  type Proc,
} from '../../support/processes.ts';
import { createLab, namespacesUnavailable, type Lab } from '../../support/netns.ts';
import { startFaultProxy, type FaultProxy } from '../../support/faultProxy.ts';
import { commitTerms, roundsRecomputed, type Term } from '../../support/commitLog.ts';
import { maxAbsDiff } from '../../support/arrays.ts';

const ROUNDS = 20;
const WORKERS = 4;
const PORT = 7070;
const LEASE = ['--lease-ttl', '2s', '--lease-renew', '400ms', '--lease-poll', '200ms'];

// All four workers in every round (workers.min = max = 4), so the run is the same whatever the timing.
const SPEC = {
  name: 'chaos',
  seed: 23,
  model: { kind: 'mlp', hidden: [8] },
  data: { batchSize: 16, maxTrain: 1000, maxTest: 200 },
  optimizer: { kind: 'sgd', lr: 0.1, momentum: 0.9 },
  rounds: ROUNDS,
  workers: { min: WORKERS, max: WORKERS, roundTimeout: '60s', heartbeatTtl: '4s', momentum: 0.9 },
  aggregation: { rule: 'median', f: 0 },
  evaluation: { every: 10, limit: 200 },
  checkpoint: { every: 4 },
};

/** When the fault began and, where it is measured, when the job moved again (first round committed after it). */
interface Fault {
  faultAt: number;
  movingAt?: number;
}

interface Row {
  scenario: string;
  completed: boolean;
  recomputed: number;
  takeoverMs: number | undefined;
  maxDiff: number;
}

describe('integration: chaos across hosts (network namespaces, mutual TLS, fault proxies)', function () {
  this.timeout(600_000);
  let lab: Lab | undefined;
  let pki = '';
  let redisDir = '';
  let redis: ChildProcess | undefined;
  let redisUrl = '';
  // Redis is reached across the bridge, so it needs a password (protected mode refuses other hosts without one).
  const redisPassword = randomBytes(12).toString('hex');
  const proxies = new Map<string, FaultProxy>();
  const procs: Proc[] = [];
  const rows: Row[] = [];
  const checkpointDirs: string[] = [];
  let reference: JobCheckpointTensors | undefined;

  before(async function () {
    const why = await namespacesUnavailable();
    if (why) {
      console.log(`      skipped: ${why}`);
      this.skip();
    }
    lab = await createLab(['coord-a', 'coord-b', 'redis', ...[...Array(WORKERS).keys()].map((i) => `w${i}`)]);
    // Interrupted (Ctrl-C, a CI timeout): the namespaces and the bridge must not outlive the run.
    for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, onSignal);
    const a = lab.host('coord-a').address;
    const b = lab.host('coord-b').address;
    pki = tmpDir('chaos-pki');
    execFileSync(process.execPath, [
      BIN,
      'certs',
      'create',
      '--out',
      pki,
      '--workers',
      String(WORKERS),
      '--hosts',
      `${a},${b},${lab.gateway}`,
      '--clients',
      'admin:admin',
    ]);
    redisDir = tmpDir('chaos-redis');
    redisUrl = `redis://:${redisPassword}@${lab.host('redis').address}:6379`;
    await startRedis();
    for (const [name, host] of [
      ['a', a],
      ['b', b],
    ] as const)
      proxies.set(name, await startFaultProxy({ host: lab.gateway }, { host, port: PORT }));
  });

  function onSignal(signal: NodeJS.Signals): void {
    for (const p of procs) p.child.kill('SIGKILL');
    redis?.kill('SIGKILL');
    lab?.destroySync();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  }

  after(async () => {
    process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
    for (const p of procs.splice(0)) {
      if (p.child.exitCode === null) p.child.kill('SIGCONT');
      await p.kill('SIGKILL');
    }
    for (const p of proxies.values()) await p.close();
    await stopRedis('SIGKILL');
    await lab?.destroy();
    for (const dir of [pki, redisDir, ...checkpointDirs])
      if (dir) rmSync(dir, { recursive: true, force: true });
    if (rows.length) {
      console.log(
        '\n      | scenario | completed | rounds recomputed | takeover / stall (ms) | max |Δθ| vs undisturbed |',
      );
      console.log('      |---|---|---|---|---|');
      for (const r of rows)
        console.log(
          `      | ${r.scenario} | ${r.completed ? 'yes' : 'no'} | ${r.recomputed} | ${r.takeoverMs ?? '—'} | ${r.maxDiff} |`,
        );
    }
  });

  afterEach(async () => {
    for (const p of procs.splice(0)) {
      if (p.child.exitCode === null) p.child.kill('SIGCONT');
      await p.kill('SIGKILL');
    }
    for (const p of proxies.values()) {
      p.setLatency(0);
      p.resetAll();
    }
  });

  /** Redis in its namespace; an append-only file (fsync per write) so that a restart keeps the state. */
  async function startRedis(): Promise<void> {
    const host = lab!.host('redis');
    redis = spawn(
      'ip',
      [
        'netns',
        'exec',
        host.netns,
        'redis-server',
        '--bind',
        host.address,
        '--port',
        '6379',
        '--requirepass',
        redisPassword,
        '--save',
        '',
        '--appendonly',
        'yes',
        '--appendfsync',
        'always',
        '--dir',
        redisDir,
      ],
      { stdio: 'ignore' },
    );
    for (;;) {
      if (await redisAnswers(host.address)) return;
      if (redis.exitCode !== null) throw new Error(`redis-server exited (${redis.exitCode})`);
      await sleep(50);
    }
  }

  /** PING over a bare socket: true once Redis answers +PONG (after loading its append-only file). */
  function redisAnswers(host: string): Promise<boolean> {
    return new Promise((resolve) => {
      const s = net.connect(6379, host);
      const done = (ok: boolean) => {
        s.destroy();
        resolve(ok);
      };
      s.setTimeout(1000, () => done(false));
      s.on('error', () => done(false));
      let text = '';
      s.on('connect', () => s.write(`AUTH ${redisPassword}\r\nPING\r\n`));
      s.on('data', (d) => {
        text += d.toString();
        if (text.includes('+PONG')) done(true);
        else if (text.includes('-')) done(false);
      });
    });
  }

  async function stopRedis(signal: NodeJS.Signals): Promise<void> {
    const r = redis;
    if (!r || r.exitCode !== null || r.signalCode !== null) return;
    const exited = new Promise((res) => r.once('exit', res));
    r.kill(signal);
    await exited;
  }

  const tls = () => [
    '--tls-cert',
    path.join(pki, 'server.crt'),
    '--tls-key',
    path.join(pki, 'server.key'),
    '--tls-ca',
    path.join(pki, 'ca.crt'),
  ];

  function adminCredentials(): grpc.ChannelCredentials {
    return grpc.credentials.createSsl(
      readFileSync(path.join(pki, 'ca.crt')),
      readFileSync(path.join(pki, 'admin.key')),
      readFileSync(path.join(pki, 'admin.crt')),
    );
  }

  /** Leader A and standby B, each in its namespace, on a fresh key prefix and a shared checkpoint directory. */
  async function pair() {
    const prefix = `phalanx-chaos-${randomBytes(4).toString('hex')}:`;
    const checkpoints = tmpDir('chaos-ckpt');
    checkpointDirs.push(checkpoints);
    const common = ['--store', 'redis', '--redis-url', redisUrl, '--redis-prefix', prefix];
    const start = async (name: 'coord-a' | 'coord-b') => {
      const host = lab!.host(name);
      const c = await startCoordinatorProcess(
        [
          ...common,
          '--checkpoint-dir',
          checkpoints,
          '--host',
          host.address,
          '--port',
          String(PORT),
          ...LEASE,
          ...tls(),
        ],
        {},
        { netns: host.netns },
      );
      procs.push(c.proc);
      return c;
    };
    const a = await start('coord-a');
    const aToken = Number((await a.proc.waitFor(/elected leader with lease token (\d+)/))[1]);
    const b = await start('coord-b');
    await b.proc.waitFor(/standing by; the leader is/);
    const store = new RedisStateStore(redisUrl, { keyPrefix: prefix });
    await store.connect();
    return { a, b, aToken, store, checkpoints };
  }

  /** The four workers, each in its namespace with its certificate, reaching both coordinators through the proxies. */
  function startWorkers(jobId: string): Proc[] {
    const workers = [...Array(WORKERS).keys()].map((i) => startWorker(jobId, i));
    return workers;
  }

  function startWorker(jobId: string, i: number): Proc {
    const list = [proxies.get('a')!.address, proxies.get('b')!.address].join(',');
    const worker = startProcess(
      [
        'worker',
        '--coordinator',
        list,
        '--job',
        jobId,
        '--once',
        '--tls-ca',
        path.join(pki, 'ca.crt'),
        '--tls-cert',
        path.join(pki, `worker-${i}.crt`),
        '--tls-key',
        path.join(pki, `worker-${i}.key`),
      ],
      {},
      { netns: lab!.host(`w${i}`).netns },
    );
    procs.push(worker);
    return worker;
  }

  async function submit(address: string, spec: object = SPEC): Promise<string> {
    const jobs = new JobsClient(address, { credentials: adminCredentials() });
    try {
      return (await jobs.submit(JSON.stringify(spec))).id;
    } finally {
      jobs.close();
    }
  }

  /** Polls the store until `until` holds; store errors (Redis down) are waited out. */
  async function waitForJob(
    store: RedisStateStore,
    id: string,
    until: (job: JobRecord) => boolean,
  ): Promise<JobRecord> {
    for (;;) {
      const job = await store.getJob(id).catch(() => undefined);
      if (job && until(job)) return job;
      if (job && ['failed', 'cancelled'].includes(job.state))
        throw new Error(`job ${job.state}: ${job.error}`);
      await sleep(50);
    }
  }

  async function commitsOf(store: RedisStateStore, id: string) {
    for (;;) {
      const c = await store.listRoundCommits(id).catch(() => undefined);
      if (c) return c;
      await sleep(50);
    }
  }

  async function finalParameters(checkpoints: string, id: string): Promise<JobCheckpointTensors> {
    return readCheckpoint((await listCheckpoints(checkpoints, id)).at(-1)!);
  }

  function maxDiff(x: JobCheckpointTensors, y: JobCheckpointTensors): number {
    const names = [...y.tensors.keys()].sort();
    expect([...x.tensors.keys()].sort()).to.deep.equal(names);
    expect(names).to.include('optim.momentum');
    let m = 0;
    for (const n of names) m = Math.max(m, maxAbsDiff(x.tensors.get(n)!.data, y.tensors.get(n)!.data));
    return m;
  }

  /**
   * One scenario: a fresh pair and four workers; `disturb` runs once the job is past round `at` and returns the
   * moment of the fault. Afterwards the job must complete with a clean commit log; returns the log's terms.
   */
  async function scenario(
    name: string,
    at: number,
    disturb: (ctx: Awaited<ReturnType<typeof pair>> & { id: string; workers: Proc[] }) => Promise<Fault>,
    spec: object = SPEC,
  ): Promise<{ terms: Term[]; ctx: Awaited<ReturnType<typeof pair>> & { id: string } }> {
    const p = await pair();
    const id = await submit(p.a.address, spec);
    const workers = startWorkers(id);
    await waitForJob(p.store, id, (j) => j.round >= at);
    const { faultAt, movingAt } = await disturb({ ...p, id, workers });
    const done = await waitForJob(p.store, id, (j) => j.state === 'completed');
    expect(done.round).to.equal(ROUNDS);
    const commits = await commitsOf(p.store, id);
    const terms = commitTerms(commits);
    expect(terms[0].rounds[0]).to.equal(0);
    expect(terms.at(-1)!.rounds.at(-1)).to.equal(ROUNDS - 1);
    expect(await p.store.jobFence(id), 'the job is fenced at the last leader’s token').to.equal(
      terms.at(-1)!.fence,
    );
    // The stored history holds each round once.
    expect((await p.store.listRoundReports(id, 0, 1000)).map((r) => r.round)).to.deep.equal([
      ...Array(ROUNDS).keys(),
    ]);
    const final = await finalParameters(p.checkpoints, id);
    const diff = maxDiff(final, reference!);
    rows.push({
      scenario: name,
      completed: true,
      recomputed: roundsRecomputed(terms),
      takeoverMs: movingAt === undefined ? undefined : movingAt - faultAt,
      maxDiff: diff,
    });
    await p.store.close();
    return { terms, ctx: { ...p, id } };
  }

  it('an undisturbed run completes on the lab (the reference for every scenario)', async () => {
    const p = await pair();
    const id = await submit(p.a.address);
    startWorkers(id);
    await waitForJob(p.store, id, (j) => j.state === 'completed');
    const terms = commitTerms(await commitsOf(p.store, id));
    expect(terms.map((t) => t.fence)).to.deep.equal([p.aToken]);
    reference = await finalParameters(p.checkpoints, id);
    rows.push({ scenario: 'undisturbed', completed: true, recomputed: 0, takeoverMs: undefined, maxDiff: 0 });
    await p.store.close();
  });

  it('kill -9 the leader: the standby takes over and the job ends where the undisturbed run ends', async () => {
    const { terms, ctx } = await scenario('kill -9 the leader', 6, async ({ a, aToken, store, id }) => {
      const faultAt = Date.now();
      await a.proc.kill('SIGKILL');
      while (!(await commitsOf(store, id)).some((c) => c.fence > aToken)) await sleep(20);
      return { faultAt, movingAt: Date.now() };
    });
    expect(terms.map((t) => t.fence)).to.have.length(2);
    expect(terms[1].fence).to.be.greaterThan(ctx.aToken);
    expect(rows.at(-1)!.maxDiff).to.equal(0);
  });

  it('SIGSTOP the leader past its lease, then SIGCONT: the zombie writes nothing and steps down', async () => {
    let commitsBeforeWake = 0;
    const { terms, ctx } = await scenario(
      'SIGSTOP the leader > lease, SIGCONT',
      6,
      async ({ a, b, store, id }) => {
        const faultAt = Date.now();
        a.proc.child.kill('SIGSTOP');
        const bToken = Number((await b.proc.waitFor(/elected leader with lease token (\d+)/, 60_000))[1]);
        while (!(await commitsOf(store, id)).some((c) => c.fence === bToken)) await sleep(20);
        const movingAt = Date.now();
        commitsBeforeWake = (await commitsOf(store, id)).length;
        a.proc.child.kill('SIGCONT');
        await a.proc.waitFor(/lost the lease \(token (\d+)\).*stepping down to standby/, 30_000);
        return { faultAt, movingAt };
      },
    );
    expect(terms).to.have.length(2);
    expect(terms[0].fence).to.equal(ctx.aToken);
    // Nothing under A's token after B's first commit (commitTerms would have found it as a third term).
    expect(commitsBeforeWake).to.be.greaterThan(0);
    expect(rows.at(-1)!.maxDiff).to.equal(0);
  });

  it('restart Redis (kill -9, down longer than the lease): the leader stands down, the job resumes and completes', async () => {
    let disturbed: Proc[] = [];
    let leader: Proc | undefined;
    const { terms, ctx } = await scenario(
      'kill -9 Redis, start it again 3 s later (lease 2 s)',
      6,
      async ({ a, aToken, store, id, workers }) => {
        disturbed = workers;
        leader = a.proc;
        const faultAt = Date.now();
        await stopRedis('SIGKILL');
        await sleep(3000);
        await startRedis(); // from its append-only file
        while (!(await commitsOf(store, id)).some((c) => c.fence > aToken)) await sleep(20);
        return { faultAt, movingAt: Date.now() };
      },
    );
    // A's lease ran out while Redis was away: A stood down (it did not fail the job), and whoever took the lease
    // next (A again or B) resumed from the checkpoint under a newer token.
    expect(leader!.output()).to.match(/lost the lease \(token \d+\).*stepping down to standby/);
    expect(
      leader!
        .output()
        .split('\n')
        .filter((l) => /internal error/.test(l)),
    ).to.deep.equal([]);
    expect(terms).to.have.length(2);
    expect(terms[0].fence).to.equal(ctx.aToken);
    const momentumRestarted = disturbed.some((w) =>
      /no snapshot of that round; worker momentum starts over/.test(w.output()),
    );
    if (momentumRestarted) expect(rows.at(-1)!.maxDiff).to.be.greaterThan(0);
    else expect(rows.at(-1)!.maxDiff).to.equal(0);
  });

  it('100 ms latency, stalls and connection resets between workers and coordinators: the job completes', async () => {
    let disturbed: Proc[] = [];
    const { terms, ctx } = await scenario(
      '100 ms latency + 2 s stalls + resets',
      4,
      async ({ store, id, workers }) => {
        disturbed = workers;
        const faultAt = Date.now();
        for (const p of proxies.values()) p.setLatency(100);
        for (let k = 0; k < 2; k++) {
          const r = (await store.getJob(id))?.round ?? 0;
          await waitForJob(store, id, (j) => j.round >= r + 2 || j.state === 'completed');
          for (const p of proxies.values()) p.stall(2000);
          await sleep(2500);
          for (const p of proxies.values()) p.resetAll();
        }
        return { faultAt };
      },
    );
    expect(terms.map((t) => t.fence)).to.deep.equal([ctx.aToken]);
    expect(proxies.get('a')!.resets()).to.be.greaterThan(0);
    // A reset makes a worker rejoin, at the round it computed last: it computes it again from the momentum it
    // entered it with, or (its push had counted) goes on with it. Nothing moves the run off the undisturbed one.
    for (const w of disturbed) expect(w.output()).to.not.match(/starts over/);
    expect(rows.at(-1)!.maxDiff).to.equal(0);
  });

  it('partition a worker longer than the heartbeat TTL, then heal: the job completes', async () => {
    const { terms, ctx } = await scenario(
      'partition worker 1 for 7 s (heartbeat TTL 4 s)',
      6,
      async ({ store, id }) => {
        // Cut worker 1 off in the middle of a push (a chunk of more than 4 KiB towards the leader, dropped by the
        // reset): it has computed the round, and its push does not count.
        const w1 = lab!.host('w1').address;
        await new Promise<void>((resolve) =>
          proxies.get('a')!.onClientChunk((from, bytes) => {
            if (!from.endsWith(w1) || bytes <= 4096) return;
            proxies.get('a')!.resetFrom(w1);
            resolve();
          }),
        );
        proxies.get('a')!.onClientChunk(undefined);
        const committed = (await commitsOf(store, id)).length;
        const faultAt = Date.now();
        await lab!.partition('w1');
        await sleep(7000);
        await lab!.heal('w1');
        while ((await commitsOf(store, id)).length <= committed) await sleep(20);
        return { faultAt, movingAt: Date.now() };
      },
    );
    expect(terms.map((t) => t.fence)).to.deep.equal([ctx.aToken]);
    // Every round waited for all four workers, and the partitioned worker computed its round again from the
    // momentum it had entered it with.
    expect(rows.at(-1)!.maxDiff).to.equal(0);
  });

  it('kill a worker mid-push and start it again: it continues from its state and the job ends where the undisturbed run ends', async () => {
    let restarted: Proc | undefined;
    const { terms, ctx } = await scenario(
      'kill -9 worker 2 mid-push, restart it',
      6,
      async ({ id, workers }) => {
        const w2 = lab!.host('w2').address;
        // A chunk of more than 4 KiB from worker 2 towards the leader is part of a gradient push (or of the
        // state it sends before it).
        const midPush = new Promise<void>((resolve) =>
          proxies.get('a')!.onClientChunk((from, bytes) => {
            if (from.endsWith(w2) && bytes > 4096) resolve();
          }),
        );
        await midPush;
        proxies.get('a')!.onClientChunk(undefined);
        const faultAt = Date.now();
        await workers[2].kill('SIGKILL');
        restarted = startWorker(id, 2);
        return { faultAt };
      },
      // Every round a checkpoint round, so that the coordinator holds every worker's state entering whichever
      // round the restarted worker joins at (checkpoint frequency does not change the run: same reference).
      { ...SPEC, checkpoint: { every: 1 } },
    );
    expect(terms.map((t) => t.fence)).to.deep.equal([ctx.aToken]);
    // The restarted worker takes its momentum entering the round it joins at from the coordinator, and the
    // interrupted push was never counted: the run is the undisturbed one.
    expect(restarted!.output()).to.match(
      /joined at round \d+: worker momentum restored from the coordinator/,
    );
    expect(rows.at(-1)!.maxDiff).to.equal(0);
  });
});
