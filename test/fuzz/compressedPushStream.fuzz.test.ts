/**
 * Fuzzing compressed pushes against a coordinator in its own process, over real gRPC: one job per new encoding
 * (uniform topk, randk, qsgd, powersgd). Each case is a valid compressed push of a random gradient, re-chunked at
 * random sizes, then mutated (bytes flipped or overwritten, a layer cut, extended or replaced by random bytes,
 * layers swapped, a chunk's offset shifted, the layer codec or plan id changed) or left alone. The coordinator must
 * accept every unmutated push however it is chunked, and answer every case with ACCEPTED or a refusal
 * (INVALID_ARGUMENT / RESOURCE_EXHAUSTED / FAILED_PRECONDITION) — never INTERNAL, UNKNOWN or a dropped
 * connection — and the rounds stay open: nothing but accepted pushes changes the job.
 *
 * Runs: PHALANX_FUZZ_RUNS (default 300 here). Seed: PHALANX_FUZZ_SEED to replay a failure.
 */
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import { JobsClient } from '../../src/cli/jobsClient.ts';
import { validateJobSpec } from '../../src/config/jobSpec.ts';
import type { CompressionPlan } from '../../src/core/compression/compressionPlan.ts';
import { sessionSpec, WorkerCompressor } from '../../src/core/compression/compressionSession.ts';
import { layoutFingerprint } from '../../src/core/layout/parameterLayout.ts';
import { Rng } from '../../src/core/random.ts';
import type { PushGradientRequest } from '../../src/gen/phalanx/v1/PushGradientRequest.ts';
import { modelLayout } from '../../src/models/registry.ts';
import { authMetadata } from '../../src/transport/protocol.ts';
import { layerEncoding, planFromWire } from '../../src/transport/planWire.ts';
import { CoordinatorClient } from '../../src/worker/coordinatorClient.ts';
import { startCoordinatorProcess, tmpDir, type Proc } from '../support/processes.ts';

const RUNS = Number(process.env['PHALANX_FUZZ_RUNS'] ?? 300);
const SEED = process.env['PHALANX_FUZZ_SEED'] ? Number(process.env['PHALANX_FUZZ_SEED']) : undefined;
const MODEL = { kind: 'mlp' as const, hidden: [4] };
const layout = modelLayout(MODEL);
const fingerprint = layoutFingerprint(layout);
const BASELINES = [
  { kind: 'topk', density: 0.05, values: 'bf16' },
  { kind: 'randk', density: 0.05, values: 'fp32' },
  { kind: 'qsgd', bits: 3, bucket: 100 },
  { kind: 'powersgd', rank: 2, values: 'fp32' },
  { kind: 'powersgd', rank: 1, values: 'int8' },
  { kind: 'powersgd', rank: 2, values: 'int4' },
];

type Mutation =
  | { kind: 'none' }
  | { kind: 'flip'; layer: number; at: number; bit: number }
  | { kind: 'overwrite'; layer: number; at: number; value: number }
  | { kind: 'cut'; layer: number; bytes: number }
  | { kind: 'extend'; layer: number; bytes: number }
  | { kind: 'random'; layer: number }
  | { kind: 'swap'; a: number; b: number }
  | { kind: 'shift'; at: number; by: number }
  | { kind: 'codec'; layer: number; to: number }
  | { kind: 'plan' };

const layerIndex = fc.nat({ max: layout.layers.length - 1 });
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ kind: 'none' as const }) },
  fc.record({ kind: fc.constant('flip' as const), layer: layerIndex, at: fc.nat(), bit: fc.nat({ max: 7 }) }),
  fc.record({
    kind: fc.constant('overwrite' as const),
    layer: layerIndex,
    at: fc.nat(),
    value: fc.nat({ max: 255 }),
  }),
  fc.record({ kind: fc.constant('cut' as const), layer: layerIndex, bytes: fc.integer({ min: 1, max: 40 }) }),
  fc.record({
    kind: fc.constant('extend' as const),
    layer: layerIndex,
    bytes: fc.integer({ min: 1, max: 40 }),
  }),
  fc.record({ kind: fc.constant('random' as const), layer: layerIndex }),
  fc.record({ kind: fc.constant('swap' as const), a: layerIndex, b: layerIndex }),
  fc.record({ kind: fc.constant('shift' as const), at: fc.nat(), by: fc.integer({ min: -3, max: 3 }) }),
  fc.record({ kind: fc.constant('codec' as const), layer: layerIndex, to: fc.integer({ min: 0, max: 7 }) }),
  fc.constant({ kind: 'plan' as const }),
);

const ENCODINGS = [
  'ENCODING_UNSPECIFIED',
  'ENCODING_FP32',
  'ENCODING_BF16',
  'ENCODING_TOPK_VARINT_BF16',
  'ENCODING_QSGD_PACKED',
  'ENCODING_POWERSGD_FACTORS',
  'ENCODING_RANDK',
  'ENCODING_PLANNED',
] as const;

/** A valid push of `layers`, chunked at sizes drawn from `rng`, then mutated. */
function build(
  jobId: string,
  plan: CompressionPlan,
  layers: Uint8Array[],
  m: Mutation,
  rng: Rng,
): PushGradientRequest[] {
  const ls = layers.map((b) => b.slice());
  const pick = (n: number) => (n > 0 ? rng.int(n) : 0);
  let planId = plan.planId;
  switch (m.kind) {
    case 'flip':
      if (ls[m.layer].length) ls[m.layer][m.at % ls[m.layer].length] ^= 1 << m.bit;
      break;
    case 'overwrite':
      if (ls[m.layer].length) ls[m.layer][m.at % ls[m.layer].length] = m.value;
      break;
    case 'cut':
      ls[m.layer] = ls[m.layer].subarray(0, Math.max(0, ls[m.layer].length - m.bytes));
      break;
    case 'extend':
      ls[m.layer] = Uint8Array.from([...ls[m.layer], ...Array.from({ length: m.bytes }, () => pick(256))]);
      break;
    case 'random':
      ls[m.layer] = ls[m.layer].map(() => pick(256));
      break;
    case 'plan':
      planId = `${plan.planId}x`;
      break;
    default:
      break;
  }
  const order = ls.map((_, l) => l);
  if (m.kind === 'swap') [order[m.a], order[m.b]] = [order[m.b], order[m.a]];
  const out: PushGradientRequest[] = [
    {
      header: {
        jobId,
        round: 0,
        planId,
        encoding: 'ENCODING_PLANNED',
        totalElements: layout.totalSize,
        layoutFingerprint: fingerprint,
        loss: 1,
        samples: 4,
      },
    },
  ];
  for (const l of order) {
    const bytes = ls[l];
    const encoding =
      m.kind === 'codec' && m.layer === l ? ENCODINGS[m.to] : layerEncoding(plan.layers[l].kind);
    for (let off = 0; off < bytes.length;) {
      const n = 1 + pick(Math.min(bytes.length - off, 300));
      out.push({
        chunk: { jobId, round: 0, layer: l, offset: off, data: bytes.slice(off, off + n), encoding },
      });
      off += n;
    }
  }
  if (m.kind === 'shift' && out.length > 1) {
    const c = out[1 + (m.at % (out.length - 1))].chunk!;
    c.offset = Math.max(0, Number(c.offset) + m.by);
  }
  return out;
}

/** Whether the mutation leaves the push as valid as it was. */
function harmless(m: Mutation, parts: PushGradientRequest[], valid: PushGradientRequest[]): boolean {
  if (m.kind === 'none' || (m.kind === 'swap' && m.a === m.b)) return true;
  if (m.kind === 'codec') return parts.every((p, i) => p.chunk?.encoding === valid[i]?.chunk?.encoding);
  return false;
}

function send(client: CoordinatorClient, token: string, parts: PushGradientRequest[]) {
  return new Promise<{ status?: string; code?: grpc.status; details?: string }>((resolve) => {
    const call = client.raw.PushGradient(authMetadata(token), { deadline: Date.now() + 20_000 }, (err, res) =>
      resolve(err ? { code: err.code, details: err.details } : { status: res!.status }),
    );
    call.on('error', () => {});
    for (const p of parts) call.write(p);
    call.end();
  });
}

const REFUSALS = new Set([
  grpc.status.INVALID_ARGUMENT,
  grpc.status.RESOURCE_EXHAUSTED,
  grpc.status.FAILED_PRECONDITION,
]);

describe('fuzz: compressed PushGradient streams (coordinator process, real gRPC)', function () {
  this.timeout(600_000);
  let coordinator: { proc: Proc; address: string; adminToken: string };
  let jobs: JobsClient;
  const clients: CoordinatorClient[] = [];
  let identities = 0;

  interface Target {
    jobId: string;
    plan: CompressionPlan;
    compressor: WorkerCompressor;
    worker: CoordinatorClient;
    token: string;
    bystander: CoordinatorClient;
  }
  const targets: Target[] = [];

  async function identity(jobId: string): Promise<{ client: CoordinatorClient; token: string }> {
    const client = new CoordinatorClient(coordinator.address, undefined, coordinator.adminToken);
    clients.push(client);
    const token = (await client.register(`fuzzer-${identities++}`, { backend: 'test' })).sessionToken;
    for (let i = 0; ; i++) {
      try {
        await client.join(jobId);
        return { client, token };
      } catch (e) {
        if (i > 100) throw e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  before(async () => {
    coordinator = await startCoordinatorProcess(['--checkpoint-dir', tmpDir('fuzz-compressed')]);
    jobs = new JobsClient(coordinator.address, { token: coordinator.adminToken });
    for (const baseline of BASELINES) {
      // workers.min is never reached and the round never times out: round 0 stays open for the whole run.
      const input = {
        name: `fuzz-${baseline.kind}`,
        seed: 9,
        model: MODEL,
        data: { batchSize: 4, maxTrain: 100, maxTest: 10 },
        rounds: 3,
        workers: { min: 1000, max: 1000, roundTimeout: '1h', heartbeatTtl: '1h' },
        aggregation: { rule: 'mean', f: 0 },
        evaluation: { every: 0 },
        checkpoint: { every: 0 },
        compression: { kind: 'uniform', baseline },
      };
      const spec = validateJobSpec(input);
      const job = await jobs.submit(JSON.stringify(input));
      const w = await identity(job.id);
      const by = await identity(job.id);
      const info = await w.client.getRound(job.id, undefined, 0);
      targets.push({
        jobId: job.id,
        plan: planFromWire(info.plan, layout),
        compressor: new WorkerCompressor(sessionSpec(spec.compression)!, layout, spec.seed, 0),
        worker: w.client,
        token: w.token,
        bystander: by.client,
      });
    }
  });

  after(async () => {
    for (const c of clients) c.close();
    jobs?.close();
    await coordinator?.proc.kill();
  });

  it(`answers ${RUNS} mutated compressed pushes precisely, accepting every unmutated one`, async () => {
    const counts: Record<string, number> = {};
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: BASELINES.length - 1 }), mutation, fc.nat(), async (t, m, seed) => {
        const target = targets[t];
        const rng = new Rng(seed);
        const g = Float32Array.from({ length: layout.totalSize }, () => rng.normal());
        const layers = target.compressor.encode(target.plan, 0, g).map((b) => b.slice());
        const valid = build(target.jobId, target.plan, layers, { kind: 'none' }, new Rng(seed));
        const parts = build(target.jobId, target.plan, layers, m, new Rng(seed));
        const res = await send(target.worker, target.token, parts);
        const outcome = res.status ?? grpc.status[res.code!];
        const key = `${BASELINES[t].kind} ${m.kind} → ${outcome}`;
        counts[key] = (counts[key] ?? 0) + 1;
        if (harmless(m, parts, valid)) {
          expect(res.status, `valid push answered ${outcome}: ${res.details ?? ''}`).to.equal(
            'PUSH_STATUS_ACCEPTED',
          );
        }
        if (res.status !== undefined) {
          expect(res.status).to.equal('PUSH_STATUS_ACCEPTED');
          // this identity's gradient is in: make room for more bodies with a fresh one
          await target.worker.leave(target.jobId, 'fuzz: next identity');
          const next = await identity(target.jobId);
          target.worker = next.client;
          target.token = next.token;
        } else {
          expect(REFUSALS.has(res.code!), `answered ${outcome}: ${res.details}`).to.equal(true);
        }
        const info = await target.bystander.getRound(target.jobId, undefined, 0);
        expect([info.round, info.pushed]).to.deep.equal([0, false]);
      }),
      { numRuns: RUNS, seed: SEED, endOnFailure: true },
    );
    process.stderr.write(
      `      outcomes: ${Object.entries(counts)
        .sort()
        .map(([k, v]) => `${k} ×${v}`)
        .join(', ')}\n`,
    );
    expect(coordinator.proc.child.exitCode).to.equal(null);
  });
});
