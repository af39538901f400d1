/**
 * `phalanx submit` retries a submit whose answer was lost with the same request id, so the coordinator can
 * answer the retry with the job the first attempt created. The CLI runs in its own process against a Jobs
 * server on loopback that records every SubmitJob and drops the first answer (UNAVAILABLE: the connection went
 * away after the request arrived).
 */
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { proto } from '../../src/transport/protocol.ts';
import type { SubmitJobRequest__Output } from '../../src/gen/phalanx/v1/SubmitJobRequest.ts';
import { BIN, tmpDir } from '../support/processes.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

function phalanx(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

describe('integration: submit retries with its request id', function () {
  this.timeout(120_000);
  let server: grpc.Server;
  let address = '';
  const seen: SubmitJobRequest__Output[] = [];
  /** How many of the next submits lose their answer. */
  let lose = 0;
  const file = path.join(tmpDir('submit-retry'), 'job.yaml');

  before(async () => {
    writeFileSync(file, 'name: retried\nrounds: 3\n');
    server = new grpc.Server();
    const job = (requestId: string) => ({
      id: 'retried-000001',
      name: 'retried',
      state: 'queued',
      requestId,
    });
    server.addService(proto.phalanx.v1.Jobs.service, {
      SubmitJob: (
        call: grpc.ServerUnaryCall<SubmitJobRequest__Output, unknown>,
        callback: grpc.sendUnaryData<unknown>,
      ) => {
        seen.push(call.request);
        if (lose > 0) {
          lose--;
          callback({ code: grpc.status.UNAVAILABLE, details: 'connection dropped' });
        } else {
          callback(null, job(call.request.requestId));
        }
      },
    });
    address = await new Promise<string>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, port) =>
        e ? reject(e) : resolve(`127.0.0.1:${port}`),
      ),
    );
  });
  after(() => server.forceShutdown());
  beforeEach(() => (seen.length = 0));

  it('sends the same generated UUID again when the first answer is lost, and prints the job', async () => {
    lose = 1;
    const out = await phalanx(['submit', file, '--coordinator', address, '--token', 'x']);
    expect(out.code, out.stderr).to.equal(0);
    expect(seen).to.have.length(2);
    expect(seen[0].requestId).to.match(UUID);
    expect(seen[1].requestId).to.equal(seen[0].requestId);
    expect(out.stdout).to.equal(`submitted retried-000001 (queued, request id ${seen[0].requestId})\n`);
  });

  it('uses a new UUID per invocation, and --request-id when given', async () => {
    await phalanx(['submit', file, '--coordinator', address, '--token', 'x']);
    await phalanx(['submit', file, '--coordinator', address, '--token', 'x']);
    await phalanx([
      'submit',
      file,
      '--coordinator',
      address,
      '--token',
      'x',
      '--request-id',
      'nightly-2026-12-01',
    ]);
    expect(seen.map((r) => r.requestId)).to.have.length(3);
    expect(seen[0].requestId).not.to.equal(seen[1].requestId);
    expect(seen[2].requestId).to.equal('nightly-2026-12-01');
  });

  it('gives up after three attempts, naming the coordinator, exit 4', async () => {
    lose = 5;
    const out = await phalanx(['submit', file, '--coordinator', address, '--token', 'x']);
    expect(seen).to.have.length(3);
    expect(new Set(seen.map((r) => r.requestId)).size).to.equal(1);
    expect(out.stderr).to.match(
      new RegExp(`^phalanx: cannot reach the coordinator at ${address}: connection dropped`),
    );
    expect(out.code).to.equal(4);
    lose = 0;
  });

  it('refuses a malformed --request-id before sending anything (exit 2)', async () => {
    const out = await phalanx(['submit', file, '--coordinator', address, '--request-id', 'has space']);
    expect(out.code).to.equal(2);
    expect(out.stderr).to.match(/^phalanx: --request-id must be 1–128 characters/);
    expect(seen).to.have.length(0);
  });
});
