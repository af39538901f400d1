/**
 * grpc.health.v1 follows the state store: a coordinator process on its own redis-server reports NOT_SERVING for
 * every service while that Redis is gone (killed) or hangs (SIGSTOP: the ping times out), and SERVING again once
 * it answers.
 */
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { Redis } from 'ioredis';
import { HealthClient, type HealthStatus } from '../support/health.ts';
import { sleep, startCoordinatorProcess, type Proc } from '../support/processes.ts';

const SERVICES = ['', 'phalanx.v1.Coordinator', 'phalanx.v1.Jobs'];

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function startRedis(port: number): Promise<ChildProcess> {
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    {
      stdio: 'ignore',
    },
  );
  const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null });
  probe.on('error', () => {});
  for (;;) {
    if (child.exitCode !== null)
      throw new Error(`redis-server on port ${port} exited with ${child.exitCode}`);
    try {
      await probe.connect();
      await probe.ping();
      probe.disconnect();
      return child;
    } catch {
      await sleep(50);
    }
  }
}

async function stopRedis(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

describe('integration: health follows the state store (coordinator process, its own redis-server)', function () {
  this.timeout(90_000);
  let redis: ChildProcess | undefined;
  let coordinator: { proc: Proc; address: string } | undefined;
  let health: HealthClient;
  let redisPort = 0;

  /** The status every service reports (they move together). */
  async function statuses(): Promise<HealthStatus[]> {
    return Promise.all(SERVICES.map((s) => health.check(s)));
  }

  /** Polls until every service reports `want`; the coordinator answers every probe meanwhile. */
  async function until(want: HealthStatus): Promise<void> {
    for (;;) {
      const got = await statuses();
      if (got.every((s) => s === want)) return;
      await sleep(100);
    }
  }

  before(async () => {
    redisPort = await freePort();
    redis = await startRedis(redisPort);
    coordinator = await startCoordinatorProcess([
      '--store',
      'redis',
      '--redis-url',
      `redis://127.0.0.1:${redisPort}`,
    ]);
    health = new HealthClient(coordinator.address);
  });

  after(async () => {
    health?.close();
    if (redis) {
      if (redis.signalCode === null && redis.exitCode === null) redis.kill('SIGCONT');
      await stopRedis(redis);
    }
    await coordinator?.proc.kill();
  });

  it('is SERVING while the store answers', async () => {
    expect(await statuses()).to.deep.equal(['SERVING', 'SERVING', 'SERVING']);
  });

  it('goes NOT_SERVING when the store is killed, and SERVING once it is back on the same port', async () => {
    await stopRedis(redis!);
    await until('NOT_SERVING');
    redis = await startRedis(redisPort);
    await until('SERVING');
    expect(coordinator!.proc.output()).to.match(/state store does not answer: NOT_SERVING/);
    expect(coordinator!.proc.output()).to.match(/state store answers again: SERVING/);
  });

  it('goes NOT_SERVING while the store hangs (ping times out), and SERVING when it resumes', async () => {
    await until('SERVING');
    redis!.kill('SIGSTOP');
    try {
      await until('NOT_SERVING');
    } finally {
      redis!.kill('SIGCONT');
    }
    await until('SERVING');
  });
});
