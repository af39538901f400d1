/**
 * Identity and roles with access tokens (no TLS): a coordinator in its own process over loopback gRPC, started
 * with the defaults, refuses anonymous and under-privileged calls with the exact status, and no refused call
 * changes any job.
 */
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { execFile } from 'node:child_process';
import { AdminClient, JobsClient } from '../../src/cli/jobsClient.ts';
import { CoordinatorClient } from '../../src/worker/coordinatorClient.ts';
import { BIN, startCoordinatorProcess, tmpDir, type Proc } from '../support/processes.ts';
import { expectStatus, idleJob, joinWhenRunning, snapshot, waitForState, watchFirst } from './helpers.ts';

const { UNAUTHENTICATED, PERMISSION_DENIED, RESOURCE_EXHAUSTED, INVALID_ARGUMENT } = grpc.status;

describe('security: access tokens and roles (separate coordinator process)', function () {
  this.timeout(120_000);
  let proc: Proc;
  let address = '';
  let adminToken = '';
  const clients: { close(): void }[] = [];
  const jobsAs = (token?: string) => {
    const c = new JobsClient(address, token === undefined ? {} : { token });
    clients.push(c);
    return c;
  };
  const workerAs = (token?: string) => {
    const c = new CoordinatorClient(address, undefined, token);
    clients.push(c);
    return c;
  };
  let admin: JobsClient;
  let adminOps: AdminClient;
  const issue = async (role: string, extra: { jobId?: string; count?: number; ttlMs?: number } = {}) =>
    (await adminOps.createToken({ role, ...extra })).token;
  /** A job submitted by the admin that sits in state running. */
  let running = '';

  before(async () => {
    const c = await startCoordinatorProcess(['--checkpoint-dir', tmpDir('sec-ckpt')]);
    proc = c.proc;
    address = c.address;
    adminToken = c.adminToken;
    admin = jobsAs(adminToken);
    adminOps = new AdminClient(address, { token: adminToken });
    clients.push(adminOps);
    running = (await admin.submit(idleJob('sec-running'))).id;
    await waitForState(admin, running, 'running');
  });

  after(async () => {
    for (const c of clients) c.close();
    await proc?.kill();
  });

  it('creates the admin token file with mode 0600 and logs where it is', async () => {
    expect(proc.output()).to.match(/admin token created in \S+admin\.token/);
  });

  it('refuses every Jobs call without a credential (UNAUTHENTICATED) and changes nothing', async () => {
    const anon = jobsAs();
    const before = await snapshot(admin);
    await expectStatus(anon.submit(idleJob('sec-anon')), UNAUTHENTICATED);
    await expectStatus(anon.get(running), UNAUTHENTICATED);
    await expectStatus(anon.list(), UNAUTHENTICATED);
    await expectStatus(anon.cancel(running), UNAUTHENTICATED);
    await expectStatus(watchFirst(anon, running), UNAUTHENTICATED);
    expect(await snapshot(admin)).to.equal(before);
    expect((await admin.get(running)).state).to.equal('running');
  });

  it('refuses a forged token, a worker session credential and a malformed header (UNAUTHENTICATED)', async () => {
    const before = await snapshot(admin);
    const forged = `${adminToken.slice(0, adminToken.indexOf('.'))}.${'A'.repeat(32)}`;
    await expectStatus(jobsAs(forged).cancel(running), UNAUTHENTICATED);
    await expectStatus(jobsAs('not-a-token').cancel(running), UNAUTHENTICATED);
    const w = workerAs(adminToken);
    const session = (await w.register('sec-session-probe', {})).sessionToken;
    await expectStatus(jobsAs(session).cancel(running), UNAUTHENTICATED);
    expect(await snapshot(admin)).to.equal(before);
  });

  it('a viewer reads and watches but cannot cancel, submit or issue tokens (PERMISSION_DENIED)', async () => {
    const viewer = jobsAs(await issue('viewer'));
    expect((await viewer.get(running)).id).to.equal(running);
    expect((await viewer.list()).map((j) => j.id)).to.include(running);
    await watchFirst(viewer, running);
    const before = await snapshot(admin);
    await expectStatus(viewer.cancel(running), PERMISSION_DENIED);
    await expectStatus(viewer.submit(idleJob('sec-viewer')), PERMISSION_DENIED);
    const viewerOps = new AdminClient(address, { token: await issue('viewer') });
    clients.push(viewerOps);
    await expectStatus(viewerOps.createToken({ role: 'admin' }), PERMISSION_DENIED);
    expect(await snapshot(admin)).to.equal(before);
    expect((await admin.get(running)).state).to.equal('running');
  });

  it('a viewer limited to one job sees only that job', async () => {
    const other = (await admin.submit(idleJob('sec-other'))).id;
    const scoped = jobsAs(await issue('viewer', { jobId: running }));
    expect((await scoped.list()).map((j) => j.id)).to.deep.equal([running]);
    await expectStatus(scoped.get(other), PERMISSION_DENIED);
    await expectStatus(watchFirst(scoped, other), PERMISSION_DENIED);
    await admin.cancel(other);
  });

  it("submitter B can neither read, watch nor cancel submitter A's job; A can", async () => {
    const a = jobsAs(await issue('submitter'));
    const b = jobsAs(await issue('submitter'));
    const mine = await a.submit(idleJob('sec-alice'));
    expect(mine.owner).to.match(/^token:t-/);
    await waitForState(admin, mine.id, 'running');
    const before = await snapshot(admin);
    await expectStatus(b.get(mine.id), PERMISSION_DENIED);
    await expectStatus(watchFirst(b, mine.id), PERMISSION_DENIED);
    await expectStatus(b.cancel(mine.id), PERMISSION_DENIED);
    expect((await b.list()).map((j) => j.id)).to.not.include(mine.id);
    // Nor the admin's job.
    await expectStatus(b.cancel(running), PERMISSION_DENIED);
    expect(await snapshot(admin)).to.equal(before);
    expect((await a.list()).map((j) => j.id)).to.deep.equal([mine.id]);
    expect((await a.cancel(mine.id)).state).to.equal('cancelled');
  });

  it('a worker token has no access to jobs (PERMISSION_DENIED)', async () => {
    const before = await snapshot(admin);
    const w = jobsAs(await issue('worker'));
    await expectStatus(w.list(), PERMISSION_DENIED);
    await expectStatus(w.cancel(running), PERMISSION_DENIED);
    expect(await snapshot(admin)).to.equal(before);
  });

  it('refuses token issuance without a credential (UNAUTHENTICATED)', async () => {
    const anon = new AdminClient(address);
    clients.push(anon);
    await expectStatus(anon.createToken({ role: 'admin' }), UNAUTHENTICATED);
  });

  it('refuses anonymous registration (UNAUTHENTICATED) and a viewer enrollment (PERMISSION_DENIED)', async () => {
    await expectStatus(workerAs().register('sec-anon', {}), UNAUTHENTICATED);
    await expectStatus(workerAs(await issue('viewer')).register('sec-viewer', {}), PERMISSION_DENIED);
  });

  it('a worker token of count N admits N names; the N+1-th is RESOURCE_EXHAUSTED', async () => {
    const token = await issue('worker', { count: 2 });
    await workerAs(token).register('sec-n-0', {});
    await workerAs(token).register('sec-n-1', {});
    await expectStatus(workerAs(token).register('sec-n-2', {}), RESOURCE_EXHAUSTED);
    // Re-registering a bound name with its own token works; the previous session of that name ends.
    const first = workerAs(token);
    await first.register('sec-n-0', {});
    await first.heartbeat('', 0);
    const second = workerAs(token);
    await second.register('sec-n-0', {});
    await expectStatus(first.heartbeat('', 0), UNAUTHENTICATED);
    await second.heartbeat('', 0);
  });

  it('a second token cannot bind a name that is bound to another credential (PERMISSION_DENIED)', async () => {
    const t1 = await issue('worker', { count: 5 });
    const t2 = await issue('worker', { count: 5 });
    const owner = workerAs(t1);
    await owner.register('sec-bound', {});
    await expectStatus(workerAs(t2).register('sec-bound', {}), PERMISSION_DENIED);
    // Nor can the admin token take it over.
    await expectStatus(workerAs(adminToken).register('sec-bound', {}), PERMISSION_DENIED);
    // The name's session is untouched.
    await owner.heartbeat('', 0);
  });

  it('a worker enrolled for one job cannot join another (PERMISSION_DENIED)', async () => {
    const other = (await admin.submit(idleJob('sec-scope'))).id;
    await waitForState(admin, other, 'running');
    const w = workerAs(await issue('worker', { jobId: running }));
    await w.register('sec-scoped', {});
    await expectStatus(w.join(other), PERMISSION_DENIED);
    // Without a job id it joins the job of its enrollment.
    expect((await joinWhenRunning(w, '')).jobId).to.equal(running);
    await admin.cancel(other);
  });

  it('a revoked submitter token is refused at once (UNAUTHENTICATED); only an admin may revoke', async () => {
    const issued = await adminOps.createToken({ role: 'submitter' });
    const sub = jobsAs(issued.token);
    const mine = await sub.submit(idleJob('sec-revoked'));
    const subOps = new AdminClient(address, { token: issued.token });
    clients.push(subOps);
    await expectStatus(subOps.revokeToken(issued.tokenId), PERMISSION_DENIED);
    await adminOps.revokeToken(issued.tokenId);
    const before = await snapshot(admin);
    await expectStatus(sub.cancel(mine.id), UNAUTHENTICATED);
    await expectStatus(sub.submit(idleJob('sec-revoked-2')), UNAUTHENTICATED);
    expect(await snapshot(admin)).to.equal(before);
    await expectStatus(adminOps.revokeToken(issued.tokenId), grpc.status.NOT_FOUND);
    await admin.cancel(mine.id);
  });

  it('refuses an expired token (UNAUTHENTICATED)', async () => {
    const token = await issue('viewer', { ttlMs: 1000 });
    await jobsAs(token).list();
    await new Promise((r) => setTimeout(r, 1300));
    await expectStatus(jobsAs(token).list(), UNAUTHENTICATED);
  });

  it('bounds registration fields (INVALID_ARGUMENT)', async () => {
    const token = await issue('worker', { count: 3 });
    await expectStatus(workerAs(token).register('x'.repeat(65), {}), INVALID_ARGUMENT);
    await expectStatus(workerAs(token).register('bad name/..', {}), INVALID_ARGUMENT);
    await expectStatus(workerAs(token).register('', {}), INVALID_ARGUMENT);
    await expectStatus(workerAs(token).register('sec-host', { hostname: 'h'.repeat(300) }), INVALID_ARGUMENT);
    // None of them consumed the token's count.
    for (const n of ['sec-ok-0', 'sec-ok-1', 'sec-ok-2']) await workerAs(token).register(n, {});
  });

  it('the CLI without a credential exits 1 with UNAUTHENTICATED; with the admin token it works', async () => {
    const run = (args: string[]) =>
      new Promise<{ code: number; stderr: string }>((resolve) =>
        execFile(
          process.execPath,
          [BIN, ...args],
          { env: { ...process.env, PHALANX_TOKEN: '' } },
          (err, _o, stderr) => resolve({ code: err ? Number(err.code) : 0, stderr }),
        ),
      );
    const anon = await run(['cancel', running, '--coordinator', address, '--data-dir', tmpDir('empty')]);
    expect(anon.code).to.equal(1);
    expect(anon.stderr).to.match(/UNAUTHENTICATED/);
    expect((await admin.get(running)).state).to.equal('running');
    const ok = await run(['jobs', '--coordinator', address, '--token', adminToken]);
    expect(ok.code, ok.stderr).to.equal(0);
  });

  it('phalanx token create prints a token that works for its role only; a non-admin cannot create one', async () => {
    const cli = (args: string[], token: string) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
        execFile(
          process.execPath,
          [BIN, ...args, '--coordinator', address],
          { env: { ...process.env, PHALANX_TOKEN: token } },
          (err, stdout, stderr) => resolve({ code: err ? Number(err.code) : 0, stdout, stderr }),
        ),
      );
    const made = await cli(['token', 'create', '--role', 'viewer', '--ttl', '1h'], adminToken);
    expect(made.code, made.stderr).to.equal(0);
    const viewerToken = made.stdout.trim();
    expect(viewerToken).to.match(/^t-[0-9a-f]{16}\.\S{32}$/);
    expect(made.stderr).to.match(/viewer token t-[0-9a-f]{16}, expires/);
    expect((await jobsAs(viewerToken).get(running)).id).to.equal(running);
    await expectStatus(jobsAs(viewerToken).cancel(running), PERMISSION_DENIED);
    const refused = await cli(['token', 'create', '--role', 'admin'], viewerToken);
    expect(refused.code).to.equal(1);
    expect(refused.stderr).to.match(/PERMISSION_DENIED/);
    const bad = await cli(['token', 'create', '--role', 'submitter', '--count', '3'], adminToken);
    expect(bad.stderr).to.match(/INVALID_ARGUMENT: count/);
  });
});

describe('security: --insecure-open', function () {
  this.timeout(60_000);
  it('serves anonymous callers only when asked to, and says so loudly', async () => {
    const c = await startCoordinatorProcess(['--insecure-open']);
    const anon = new JobsClient(c.address);
    try {
      expect(await anon.list()).to.be.an('array');
      expect(c.proc.output()).to.match(/WARNING: --insecure-open/);
      await new CoordinatorClient(c.address)
        .register('open-0', {})
        .then((r) => expect(r.workerId).to.match(/^w-/));
    } finally {
      anon.close();
      await c.proc.kill();
    }
  });
});
