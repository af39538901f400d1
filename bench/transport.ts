/**
 * bench:transport — push and pull throughput of a ~64 MiB parameter set through Phalanx's Coordinator service
 * (protobuf messages, authentication, chunk validation, decode into the round's buffers) against a bare grpc-js
 * chunked stream of raw 1 MiB buffers, both measured in this run with servers in separate processes.
 *
 * With --tls both run over mutual TLS with the same certificates (made for the run): the coordinator with
 * --tls-cert/--tls-key/--tls-ca and workers enrolled by their certificates, the bare server with the same key
 * pair and client-certificate check.
 *
 *   npm run bench:transport [-- --reps 5] [-- --tls] [-- --json FILE]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { CoordinatorClient } from '../src/worker/coordinatorClient.ts';
import { JobsClient } from '../src/cli/jobsClient.ts';
import { createCertificates } from '../src/cli/certs.ts';
import { channelCredentials, type ClientAuth } from '../src/transport/tls.ts';
import { buildLayout, layoutFingerprint } from '../src/core/layout/parameterLayout.ts';
import { bareService } from './support/bareService.ts';

const args = process.argv.slice(2);
const flag = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const REPS = Number(flag('--reps') ?? 5);
const JSON_OUT = flag('--json');
const TLS = args.includes('--tls');
const WORK = mkdtempSync(path.join(os.tmpdir(), 'phalanx-bench-'));
const PKI = path.join(WORK, 'pki');
const pem = (name: string) => path.join(PKI, name);
/** Channel credentials of a client holding `name`'s certificate (mutual TLS), or plaintext. */
const clientCredentials = (name: string) =>
  TLS
    ? channelCredentials({ ca: pem('ca.crt'), cert: pem(`${name}.crt`), key: pem(`${name}.key`) })
    : grpc.credentials.createInsecure();
const HIDDEN = 21_104; // MLP 784-21104-10: 16,777,690 parameters = 64.0 MiB of fp32
const CHUNK = 1 << 20;

function startChild(
  argv: string[],
  ready: RegExp,
): Promise<{ child: ChildProcess; match: RegExpMatchArray }> {
  const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  return new Promise((resolve, reject) => {
    const on = (b: Buffer) => {
      out += b.toString();
      const m = out.match(ready);
      if (m) resolve({ child, match: m });
    };
    child.stdout!.on('data', on);
    child.stderr!.on('data', on);
    child.once('exit', (code) => reject(new Error(`child exited ${code}: ${out}`)));
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const mbps = (bytes: number, ms: number) => bytes / 1e6 / (ms / 1000);

/** Two clients of the bare grpc-js server: raw 1 MiB buffers up and down, nothing else. */
function bareTransfers(address: string, bytes: number) {
  const Client = grpc.makeGenericClientConstructor(bareService, 'Bare');
  const client = new Client(address, clientCredentials('admin'), {
    'grpc.max_receive_message_length': CHUNK + 65536,
    'grpc-node.flow_control_window': 16 * 1024 * 1024,
  });
  const payload = Buffer.alloc(CHUNK, 7);
  const dst = Buffer.alloc(bytes);
  const up = () =>
    new Promise<void>((resolve, reject) => {
      const call = client.makeClientStreamRequest(
        '/bench.Bare/Upload',
        (b: Buffer) => b,
        (b: Buffer) => b,
        (err: grpc.ServiceError | null) => (err ? reject(err) : resolve()),
      );
      void (async () => {
        for (let off = 0; off < bytes; off += CHUNK) {
          if (!call.write(payload)) await new Promise<void>((r2) => call.once('drain', r2));
        }
        call.end();
      })();
    });
  const down = () =>
    new Promise<void>((resolve, reject) => {
      const call = client.makeServerStreamRequest(
        '/bench.Bare/Download',
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.alloc(0),
      );
      let off = 0;
      call.on('data', (b: Buffer) => {
        b.copy(dst, off);
        off += b.length;
      });
      call.on('end', () => resolve());
      call.on('error', reject);
    });
  return { up, down, close: () => client.close() };
}

/**
 * A job on the Phalanx coordinator with two workers: a push is a whole PushGradient stream (header, validated
 * chunks decoded into the round's buffer, acknowledged), a pull a whole PullParameters stream decoded and checked
 * into the worker's parameters. The second push of a round closes it; aggregation is not part of the timing.
 */
async function phalanxTransfers(address: string, admin: ClientAuth, enrollmentToken?: string) {
  const spec = { kind: 'mlp' as const, hidden: [HIDDEN] };
  // The MLP's layout, built here without loading tfjs into the benchmark's client process (its heap would make
  // every GC of the client's per-message buffers slower and skew the comparison).
  const layout = buildLayout([
    { name: 'fc1.weight', shape: [784, HIDDEN] },
    { name: 'fc1.bias', shape: [HIDDEN] },
    { name: 'fc2.weight', shape: [HIDDEN, 10] },
    { name: 'fc2.bias', shape: [10] },
  ]);
  const jobs = new JobsClient(address, admin);
  const job = await jobs.submit(
    JSON.stringify({
      name: 'bench-transport',
      model: spec,
      rounds: 1_000_000,
      workers: { min: 2, max: 2, roundTimeout: '10m', heartbeatTtl: '10m' },
      aggregation: { rule: 'mean', f: 0 },
      optimizer: { kind: 'sgd', lr: 1e-6 },
      evaluation: { every: 0, limit: 10 },
      checkpoint: { every: 0 },
      data: { maxTrain: 100, maxTest: 10 },
    }),
  );
  // Under mutual TLS each worker enrolls with its certificate; otherwise with the admin token.
  const a = new CoordinatorClient(address, clientCredentials('worker-0'), enrollmentToken);
  const b = new CoordinatorClient(address, clientCredentials('worker-1'), enrollmentToken);
  await a.register('worker-0', {});
  await b.register('worker-1', {});
  for (;;) {
    try {
      await a.join(job.id);
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  await b.join(job.id);
  const fp = layoutFingerprint(layout);
  const grad = new Float32Array(layout.totalSize).fill(1e-3);
  const params = new Float32Array(layout.totalSize);
  let round = 0;
  const push = async (c: CoordinatorClient) => {
    const res = await c.push(grad, layout, {
      jobId: job.id,
      round,
      loss: 0,
      samples: 1,
      attempt: 0,
      encoding: 'fp32',
      layoutFingerprint: fp,
    });
    if (res.status !== 'PUSH_STATUS_ACCEPTED') throw new Error(`push ${res.status}`);
  };
  return {
    bytes: layout.totalSize * 4,
    pushA: () => push(a),
    pushB: () => push(b),
    /** Waits (untimed) for the round the two pushes closed. */
    nextRound: async () => {
      await a.getRound(job.id, round, 60_000);
      round++;
    },
    pullA: () => a.pull(job.id, params, fp).then(() => undefined),
    pullB: () => b.pull(job.id, params, fp).then(() => undefined),
    close: () => {
      a.close();
      b.close();
      jobs.close();
    },
  };
}

async function timed(op: () => Promise<void>, into: number[] | null): Promise<void> {
  const t = performance.now();
  await op();
  into?.push(performance.now() - t);
}

async function main(): Promise<void> {
  if (TLS)
    createCertificates({
      out: PKI,
      workers: 2,
      hosts: [],
      clients: [{ name: 'admin', role: 'admin' }],
      days: 1,
    });
  const tlsArgs = TLS
    ? ['--tls-cert', pem('server.crt'), '--tls-key', pem('server.key'), '--tls-ca', pem('ca.crt')]
    : [];
  const dataDir = path.join(WORK, 'data');
  const coord = await startChild(
    [
      'bin/phalanx.js',
      'coordinator',
      '--host',
      '127.0.0.1',
      '--port',
      '0',
      '--data-dir',
      dataDir,
      ...tlsArgs,
    ],
    /listening on ([\d.]+:\d+)/,
  );
  const adminToken = TLS ? undefined : readFileSync(path.join(dataDir, 'admin.token'), 'utf8').trim();
  const p = await phalanxTransfers(
    coord.match[1],
    { credentials: clientCredentials('admin'), token: adminToken },
    adminToken,
  );
  const bareProc = await startChild(
    ['--import', 'tsx', 'bench/support/bareGrpcServer.ts', String(p.bytes / CHUNK), ...(TLS ? [PKI] : [])],
    /listening on ([\d.]+:\d+)/,
  );
  const bytesBare = Math.ceil(p.bytes / CHUNK) * CHUNK;
  const b = bareTransfers(bareProc.match[1], bytesBare);
  // Interleaved: every repetition times both systems back to back, so load on this shared machine hits both
  // alike. Repetition 0 warms up and is not counted.
  const base = { up: [] as number[], down: [] as number[] };
  const phx = { up: [] as number[], down: [] as number[] };
  for (let r = 0; r < REPS + 1; r++) {
    const keep = r > 0;
    await timed(b.up, keep ? base.up : null);
    await timed(p.pushA, keep ? phx.up : null);
    await timed(b.up, keep ? base.up : null);
    await timed(p.pushB, keep ? phx.up : null);
    await p.nextRound();
    await timed(b.down, keep ? base.down : null);
    await timed(p.pullA, keep ? phx.down : null);
    await timed(b.down, keep ? base.down : null);
    await timed(p.pullB, keep ? phx.down : null);
  }
  p.close();
  b.close();
  coord.child.kill('SIGKILL');
  bareProc.child.kill('SIGKILL');
  rmSync(WORK, { recursive: true, force: true });

  const rows = [
    {
      direction: 'push (upload)',
      bare: mbps(bytesBare, median(base.up)),
      bareBest: mbps(bytesBare, Math.min(...base.up)),
      phalanx: mbps(p.bytes, median(phx.up)),
      phalanxBest: mbps(p.bytes, Math.min(...phx.up)),
    },
    {
      direction: 'pull (download)',
      bare: mbps(bytesBare, median(base.down)),
      bareBest: mbps(bytesBare, Math.min(...base.down)),
      phalanx: mbps(p.bytes, median(phx.down)),
      phalanxBest: mbps(p.bytes, Math.min(...phx.down)),
    },
  ].map((r) => ({ ...r, ratio: r.phalanx / r.bare }));

  console.log(
    `\nbench:transport — ${(p.bytes / 2 ** 20).toFixed(1)} MiB per transfer, 1 MiB chunks, loopback, ${TLS ? 'mutual TLS on both sides' : 'plaintext'}, ${REPS} reps × 2 transfers, interleaved (median; best in brackets)\n`,
  );
  console.log('| direction        | bare grpc-js MB/s | Phalanx MB/s    | Phalanx / bare |');
  console.log('|------------------|-------------------|-----------------|----------------|');
  for (const r of rows) {
    console.log(
      `| ${r.direction.padEnd(16)} | ${r.bare.toFixed(0).padStart(5)} [${r.bareBest.toFixed(0).padStart(5)}]     | ${r.phalanx.toFixed(0).padStart(5)} [${r.phalanxBest.toFixed(0).padStart(5)}]   | ${r.ratio.toFixed(2).padStart(14)} |`,
    );
  }
  if (JSON_OUT) {
    writeFileSync(JSON_OUT, `${JSON.stringify({ bytes: p.bytes, reps: REPS, tls: TLS, rows }, null, 2)}\n`);
    console.log(`\nwritten ${JSON_OUT}`);
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
