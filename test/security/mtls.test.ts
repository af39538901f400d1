/**
 * Mutual TLS: a coordinator in its own process with `--tls-cert/--tls-key/--tls-ca`, certificates made by
 * `phalanx certs create`. A client without a certificate of the cluster's CA gets nowhere; a worker's identity
 * is its certificate's CN whatever name it asks for; the certificate's OU is its role.
 */
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { AdminClient, JobsClient } from '../../src/cli/jobsClient.ts';
import { channelCredentials } from '../../src/transport/tls.ts';
import { CoordinatorClient } from '../../src/worker/coordinatorClient.ts';
import { BIN, startCoordinatorProcess, tmpDir, type Proc } from '../support/processes.ts';
import { expectStatus, idleJob, joinWhenRunning, snapshot, waitForState } from './helpers.ts';

const { UNAUTHENTICATED, PERMISSION_DENIED, UNAVAILABLE } = grpc.status;

function phalanx(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(process.execPath, [BIN, ...args], { timeout: 120_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code) : 0, stdout, stderr }),
    ),
  );
}

describe('security: mutual TLS (separate coordinator process)', function () {
  this.timeout(120_000);
  const dir = tmpDir('mtls');
  const pki = path.join(dir, 'pki');
  const foreign = path.join(dir, 'foreign');
  const pem = (base: string, name: string) => path.join(base, name);
  const as = (name: string, base = pki) =>
    channelCredentials({
      ca: pem(pki, 'ca.crt'),
      cert: pem(base, `${name}.crt`),
      key: pem(base, `${name}.key`),
    });
  let proc: Proc;
  let address = '';
  let admin: JobsClient;
  let running = '';
  const clients: { close(): void }[] = [];
  const track = <T extends { close(): void }>(c: T) => (clients.push(c), c);

  before(async () => {
    const made = await phalanx([
      'certs',
      'create',
      '--out',
      pki,
      '--workers',
      '2',
      '--clients',
      'admin:admin,viewer-1:viewer,alice:submitter',
    ]);
    expect(made.code, made.stderr).to.equal(0);
    const other = await phalanx(['certs', 'create', '--out', foreign, '--workers', '1']);
    expect(other.code, other.stderr).to.equal(0);
    const c = await startCoordinatorProcess([
      '--tls-cert',
      pem(pki, 'server.crt'),
      '--tls-key',
      pem(pki, 'server.key'),
      '--tls-ca',
      pem(pki, 'ca.crt'),
    ]);
    proc = c.proc;
    address = c.address;
    admin = track(new JobsClient(address, { credentials: as('admin') }));
    running = (await admin.submit(idleJob('mtls-running'))).id;
    await waitForState(admin, running, 'running');
  });

  after(async () => {
    for (const c of clients) c.close();
    await proc?.kill();
  });

  it('logs that it serves mutual TLS', () => {
    expect(proc.output()).to.match(/listening on \S+ \(store: memory, mutual TLS\)/);
  });

  it('refuses a client without a certificate, a plaintext client and a certificate of another CA', async () => {
    const before = await snapshot(admin);
    const noCert = track(
      new JobsClient(address, { credentials: channelCredentials({ ca: pem(pki, 'ca.crt') }) }),
    );
    await expectStatus(noCert.cancel(running), UNAVAILABLE);
    const plain = track(new JobsClient(address));
    await expectStatus(plain.cancel(running), UNAVAILABLE);
    const stranger = track(new JobsClient(address, { credentials: as('admin', foreign) }));
    await expectStatus(stranger.cancel(running), UNAVAILABLE);
    const strangerWorker = track(new CoordinatorClient(address, as('worker-0', foreign)));
    await expectStatus(strangerWorker.register('worker-0', {}), UNAVAILABLE);
    expect(await snapshot(admin)).to.equal(before);
    expect((await admin.get(running)).state).to.equal('running');
  });

  it('takes the role from the certificate: a viewer reads but cannot cancel, a worker has no jobs access', async () => {
    const viewer = track(new JobsClient(address, { credentials: as('viewer-1') }));
    expect((await viewer.get(running)).id).to.equal(running);
    const before = await snapshot(admin);
    await expectStatus(viewer.cancel(running), PERMISSION_DENIED);
    const worker = track(new JobsClient(address, { credentials: as('worker-1') }));
    await expectStatus(worker.cancel(running), PERMISSION_DENIED);
    const viewerOps = track(new AdminClient(address, { credentials: as('viewer-1') }));
    await expectStatus(viewerOps.createToken({ role: 'worker' }), PERMISSION_DENIED);
    expect(await snapshot(admin)).to.equal(before);
    // A submitter certificate owns what it submits, and only that.
    const alice = track(new JobsClient(address, { credentials: as('alice') }));
    const mine = await alice.submit(idleJob('mtls-alice'));
    expect(mine.owner).to.equal('cert:alice');
    await expectStatus(alice.cancel(running), PERMISSION_DENIED);
    expect((await admin.get(running)).state).to.equal('running');
    expect((await alice.cancel(mine.id)).state).to.equal('cancelled');
  });

  it("a worker's identity is its certificate's CN, not the name in the request", async () => {
    const w = track(new CoordinatorClient(address, as('worker-0')));
    const res = await w.register('impostor', {});
    expect((await joinWhenRunning(w, running)).jobId).to.equal(running);
    const m = await proc.waitFor(new RegExp(`worker (\\S+) \\(${res.workerId}\\) joined`));
    expect(m[1]).to.equal('worker-0');
    expect(proc.output()).to.not.match(/worker impostor/);
  });

  it("a certificate's worker name cannot be taken with a token, nor its session used with another certificate", async () => {
    const w = track(new CoordinatorClient(address, as('worker-1')));
    const session = (await w.register('worker-1', {})).sessionToken;
    // A valid enrollment token (issued by the admin certificate) still cannot bind worker-1's name.
    const ops = track(new AdminClient(address, { credentials: as('admin') }));
    const { token } = await ops.createToken({ role: 'worker', count: 2 });
    const viaToken = track(new CoordinatorClient(address, as('alice'), token));
    await expectStatus(viaToken.register('worker-1', {}), PERMISSION_DENIED);
    // worker-1's session presented on worker-0's connection is refused; on its own it works.
    const thief = track(new CoordinatorClient(address, as('worker-0')));
    thief.setToken(session);
    await expectStatus(thief.heartbeat('', 0), UNAUTHENTICATED);
    await w.heartbeat('', 0);
  });

  it('phalanx launch --tls trains a small job with every worker on its own certificate', async () => {
    const config = path.join(dir, 'small.yaml');
    writeFileSync(
      config,
      [
        'name: mtls-launch',
        'model: { kind: mlp, hidden: [8] }',
        'data: { batchSize: 8, maxTrain: 300, maxTest: 100 }',
        'rounds: 3',
        'workers: { min: 2, max: 2 }',
        'aggregation: { rule: mean, f: 0 }',
        'evaluation: { every: 3, limit: 100 }',
        'checkpoint: { every: 0 }',
        '',
      ].join('\n'),
    );
    const run = await phalanx(['launch', '--config', config, '--workers', '2', '--backend', 'wasm', '--tls']);
    expect(run.code, run.stderr).to.equal(0);
    expect(run.stdout).to.match(/mutual TLS/);
    expect(run.stdout).to.match(/completed after 3 rounds/);
  });
});
