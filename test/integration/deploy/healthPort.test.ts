/**
 * The coordinator's --health-port: grpc.health.v1, and nothing else, in plaintext, beside a gRPC port under mutual
 * TLS, for kubelet's native gRPC probes (which cannot speak TLS). And the worker's default name from a Kubernetes
 * Indexed Job's environment.
 */
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { JobsClient } from '../../../src/cli/jobsClient.ts';
import { HealthClient } from '../../support/health.ts';
import { BIN, startCoordinatorProcess, startProcess, tmpDir, type Proc } from '../../support/processes.ts';

function phalanx(args: string[], env: Record<string, string> = {}) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
    execFile(
      process.execPath,
      [BIN, ...args],
      { timeout: 120_000, env: { ...process.env, ...env } },
      (err, stdout, stderr) => resolve({ code: err ? Number(err.code) : 0, stdout, stderr }),
    ),
  );
}

describe('deploy: coordinator health-only port, worker name from the Job index', function () {
  this.timeout(120_000);
  const pki = path.join(tmpDir('health-port'), 'pki');
  let proc: Proc;
  let address = '';
  let healthAddress = '';
  const clients: { close(): void }[] = [];

  before(async () => {
    const made = await phalanx(['certs', 'create', '--out', pki, '--workers', '1']);
    expect(made.code, made.stderr).to.equal(0);
    const c = await startCoordinatorProcess([
      '--tls-cert',
      path.join(pki, 'server.crt'),
      '--tls-key',
      path.join(pki, 'server.key'),
      '--tls-ca',
      path.join(pki, 'ca.crt'),
      '--health-port',
      '0',
    ]);
    proc = c.proc;
    address = c.address;
    const m = await proc.waitFor(/health \(grpc\.health\.v1 only, plaintext\) on ([\d.]+):(\d+)/, 10_000);
    healthAddress = `${m[1]}:${m[2]}`;
  });

  after(async () => {
    for (const c of clients) c.close();
    await proc?.kill();
  });

  it('answers SERVING in plaintext on the health port while the gRPC port wants mutual TLS', async () => {
    const health = new HealthClient(healthAddress);
    clients.push(health);
    expect(await health.check('')).to.equal('SERVING');
    expect(await health.check('phalanx.v1.Coordinator')).to.equal('SERVING');
    // What a kubelet gRPC probe would get on the TLS port: no answer.
    const onTls = new HealthClient(address);
    clients.push(onTls);
    const err = (await onTls.check('', 3000).catch((e: grpc.ServiceError) => e)) as grpc.ServiceError;
    expect(err.code).to.equal(grpc.status.UNAVAILABLE);
  });

  it('serves nothing but health there: the Jobs service is UNIMPLEMENTED on the health port', async () => {
    const jobs = new JobsClient(healthAddress, { token: 'any' });
    clients.push(jobs);
    const err = (await jobs.list().catch((e: grpc.ServiceError) => e)) as grpc.ServiceError;
    expect(err.code).to.equal(grpc.status.UNIMPLEMENTED);
  });

  it('refuses a --health-port that is not a port, as a usage error', async () => {
    const r = await phalanx(['coordinator', '--health-port', '70000']);
    expect(r.code).to.equal(2);
    expect(r.stderr).to.match(/--health-port must be a port number/);
  });

  it('a worker in an Indexed Job is named worker-<JOB_COMPLETION_INDEX>; a rank outside WORLD_SIZE exits 2', async () => {
    const env = { JOB_COMPLETION_INDEX: '0', RANK: '', PHALANX_WORKER_NAME: '' };
    const worker = startProcess(
      [
        'worker',
        '--coordinator',
        `localhost:${address.split(':')[1]}`,
        '--once',
        '--tls-ca',
        path.join(pki, 'ca.crt'),
        '--tls-cert',
        path.join(pki, 'worker-0.crt'),
        '--tls-key',
        path.join(pki, 'worker-0.key'),
      ],
      env,
    );
    try {
      // Off a terminal, as in a pod, the worker logs JSON lines.
      await worker.waitFor(
        /"worker":"worker-0".*"msg":"tfjs backend: (tensorflow-gpu|tensorflow|wasm|cpu) — /,
        60_000,
      );
    } finally {
      await worker.kill();
    }
    const r = await phalanx(['worker', '--coordinator', address], { RANK: '4', WORLD_SIZE: '4' });
    expect(r.code).to.equal(2);
    expect(r.stderr).to.match(/RANK=4 is not below WORLD_SIZE=4/);
  });
});
