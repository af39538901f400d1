/**
 * Hostile compressed pushes against a live coordinator process, one job per new encoding (uniform topk, randk,
 * qsgd, powersgd with bf16 factors, int8 and int4 factor codes): every defect gets its exact gRPC status and a message naming the layer and the problem, the
 * round stays open with nothing committed, and afterwards honest compressed pushes from the same workers are
 * accepted and the job goes on to its next round.
 */
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { JobsClient } from '../../src/cli/jobsClient.ts';
import { validateJobSpec } from '../../src/config/jobSpec.ts';
import { describeSetting, type CompressionPlan } from '../../src/core/compression/compressionPlan.ts';
import type { JobEvent__Output } from '../../src/gen/phalanx/v1/JobEvent.ts';
import { sessionSpec, WorkerCompressor } from '../../src/core/compression/compressionSession.ts';
import { layoutFingerprint } from '../../src/core/layout/parameterLayout.ts';
import type { PushGradientRequest } from '../../src/gen/phalanx/v1/PushGradientRequest.ts';
import { modelLayout } from '../../src/models/registry.ts';
import { layerEncoding, planFromWire } from '../../src/transport/planWire.ts';
import { CoordinatorClient } from '../../src/worker/coordinatorClient.ts';
import { startCoordinatorProcess, tmpDir, type Proc } from '../support/processes.ts';
import { expectStatus, joinWhenRunning } from './helpers.ts';

const MODEL = { kind: 'mlp' as const, hidden: [8] };
const layout = modelLayout(MODEL); // fc1.weight [784, 8], fc1.bias [8], fc2.weight [8, 10], fc2.bias [10]
const fingerprint = layoutFingerprint(layout);
const { INVALID_ARGUMENT, RESOURCE_EXHAUSTED, FAILED_PRECONDITION } = grpc.status;

function jobSpec(name: string, baseline: Record<string, unknown>) {
  return {
    name,
    seed: 4,
    model: MODEL,
    data: { batchSize: 8, maxTrain: 200, maxTest: 50 },
    rounds: 3,
    workers: { min: 2, max: 2, roundTimeout: '1h', heartbeatTtl: '1h' },
    aggregation: { rule: 'mean', f: 0 },
    evaluation: { every: 0 },
    checkpoint: { every: 0 },
    compression: { kind: 'uniform', baseline },
  };
}

type Layers = Uint8Array[];

/** A push's stream parts: header, then each layer in chunks of `chunk` bytes, with the plan's encodings. */
function parts(
  jobId: string,
  round: number,
  plan: CompressionPlan,
  layers: Layers,
  opts: { planId?: string; encoding?: string; errorTable?: number[]; layerEncoding?: string[] } = {},
  chunk = 500,
): PushGradientRequest[] {
  const out: PushGradientRequest[] = [
    {
      header: {
        jobId,
        round,
        planId: opts.planId ?? plan.planId,
        encoding: (opts.encoding ?? 'ENCODING_PLANNED') as 'ENCODING_PLANNED',
        totalElements: layout.totalSize,
        layoutFingerprint: fingerprint,
        loss: 1,
        samples: 8,
        errorTable: opts.errorTable ?? [],
      },
    },
  ];
  layers.forEach((bytes, layer) => {
    const encoding = (opts.layerEncoding?.[layer] ??
      layerEncoding(plan.layers[layer].kind)) as 'ENCODING_TOPK_VARINT_BF16';
    for (let off = 0; off < bytes.length; off += chunk)
      out.push({
        chunk: { jobId, round, layer, offset: off, data: bytes.slice(off, off + chunk), encoding },
      });
  });
  return out;
}

/** Little-endian float32 / bf16 bytes of x. */
function f32(x: number): number[] {
  return [...new Uint8Array(Float32Array.of(x).buffer)];
}
function bf16(x: number): number[] {
  return f32(x).slice(2);
}

/** Shortest LEB128 of v (written here from the format, independently of src/core/compression/varint.ts). */
function varint(v: number): number[] {
  const out: number[] = [];
  do {
    let b = v & 0x7f;
    v = Math.floor(v / 128);
    if (v > 0) b |= 0x80;
    out.push(b);
  } while (v > 0);
  return out;
}

/** Topk bytes of layer 0 (numel 6272, k 627, fp32 values): values, then the deltas. */
function topkLayer0(deltas: number[][], value = 0.5): Uint8Array {
  return Uint8Array.from([...Array.from({ length: 627 }, () => f32(value)).flat(), ...deltas.flat()]);
}
const ones = (n: number) => Array.from({ length: n }, () => varint(1));

function replace(bytes: Uint8Array, at: number, values: number[]): Uint8Array {
  const out = bytes.slice();
  out.set(values, at);
  return out;
}

interface Case {
  what: string;
  code: grpc.status;
  message: RegExp;
  /** The push's parts, given a valid encoding of the worker's gradient under the plan. */
  push: (valid: Layers, jobId: string, plan: CompressionPlan) => PushGradientRequest[];
}

/** Defects every compressed job refuses, whatever the encoding. */
const COMMON: Case[] = [
  {
    what: 'a plan that is not the round’s',
    code: FAILED_PRECONDITION,
    message: /^plan_id 'lgreco-r7' is not the plan of round 0 \('baseline-r0'\): call GetRound/,
    push: (v, j, p) => parts(j, 0, p, v, { planId: 'lgreco-r7' }),
  },
  {
    what: 'a dense push to a compressing job',
    code: INVALID_ARGUMENT,
    message:
      /^encoding ENCODING_FP32: job .* compresses gradients, push ENCODING_PLANNED under plan 'baseline-r0'/,
    push: (v, j, p) => parts(j, 0, p, v, { encoding: 'ENCODING_FP32' }),
  },
  {
    what: 'a layer in another codec than the plan’s',
    code: INVALID_ARGUMENT,
    message:
      /^layer 2 'fc2.weight': encoding ENCODING_(QSGD_PACKED|TOPK_VARINT_BF16), the plan 'baseline-r0' says /,
    push: (v, j, p) =>
      parts(j, 0, p, v, {
        layerEncoding: p.layers.map((s, l) =>
          l !== 2
            ? layerEncoding(s.kind)
            : s.kind === 'qsgd'
              ? 'ENCODING_TOPK_VARINT_BF16'
              : 'ENCODING_QSGD_PACKED',
        ),
      }),
  },
  {
    what: 'an error table outside a re-plan round',
    code: INVALID_ARGUMENT,
    message: /^error table of 3 entries in round 0, which is not a re-plan round/,
    push: (v, j, p) => parts(j, 0, p, v, { errorTable: [1, 2, 3] }),
  },
  {
    what: 'a truncated push (the last layer missing)',
    code: INVALID_ARGUMENT,
    message: /^incomplete: truncated push: layer 3 'fc2.bias' and later never arrived/,
    push: (v, j, p) => parts(j, 0, p, v.slice(0, 3)),
  },
  {
    what: 'layers out of order (layer 1 first)',
    code: INVALID_ARGUMENT,
    message: /^chunk-out-of-order: chunk for layer 1, expected layer 0/,
    push: (v, j, p) => {
      const [header, ...chunks] = parts(j, 0, p, v);
      return [
        header,
        ...chunks.filter((c) => c.chunk!.layer === 1),
        ...chunks.filter((c) => c.chunk!.layer !== 1),
      ];
    },
  },
  {
    what: 'a layer one byte beyond the plan',
    code: RESOURCE_EXHAUSTED,
    message: /^too-large: layer 1 'fc1.bias': \d+ bytes, the plan allows at most \d+/,
    push: (v, j, p) => parts(j, 0, p, [v[0], Uint8Array.from([...v[1], 0]), v[2], v[3]]),
  },
  {
    what: 'a layer one byte short',
    code: INVALID_ARGUMENT,
    message: /^(incomplete|wrong-length|varint-truncated): layer 2 'fc2.weight'/,
    push: (v, j, p) => parts(j, 0, p, [v[0], v[1], v[2].subarray(0, v[2].length - 1), v[3]]),
  },
];

const ENCODINGS: { baseline: Record<string, unknown>; cases: Case[] }[] = [
  {
    baseline: { kind: 'topk', density: 0.1, values: 'fp32' },
    cases: [
      {
        what: 'an index beyond the layer',
        code: INVALID_ARGUMENT,
        message: /^index-out-of-range: layer 0 'fc1.weight'/,
        push: (v, j, p) => parts(j, 0, p, [topkLayer0([varint(6000), ...ones(626)]), v[1], v[2], v[3]]),
      },
      {
        what: 'a repeated index (delta 0)',
        code: INVALID_ARGUMENT,
        message: /^index-not-increasing: layer 0 'fc1.weight'/,
        push: (v, j, p) =>
          parts(j, 0, p, [topkLayer0([varint(1), varint(0), ...ones(625)]), v[1], v[2], v[3]]),
      },
      {
        what: 'a varint not in shortest form',
        code: INVALID_ARGUMENT,
        message: /^varint-overlong: layer 0 'fc1.weight'/,
        push: (v, j, p) => parts(j, 0, p, [topkLayer0([[0x81, 0x00], ...ones(626)]), v[1], v[2], v[3]]),
      },
      {
        what: 'a NaN value',
        code: INVALID_ARGUMENT,
        message: /^non-finite: layer 0 'fc1.weight'/,
        push: (v, j, p) => parts(j, 0, p, [topkLayer0(ones(627), NaN), v[1], v[2], v[3]]),
      },
      {
        what: 'indices left over after k entries',
        code: INVALID_ARGUMENT,
        message: /^wrong-length: layer 0 'fc1.weight'/,
        push: (v, j, p) => parts(j, 0, p, [topkLayer0(ones(628)), v[1], v[2], v[3]]),
      },
    ],
  },
  {
    baseline: { kind: 'randk', density: 0.1, values: 'bf16' },
    cases: [
      {
        what: 'a NaN value',
        code: INVALID_ARGUMENT,
        message: /^non-finite: layer 0 'fc1.weight'/,
        push: (v, j, p) => parts(j, 0, p, [replace(v[0], 10, bf16(NaN)), v[1], v[2], v[3]]),
      },
      {
        what: 'another k (one value more)',
        code: RESOURCE_EXHAUSTED,
        message: /^too-large: layer 0 'fc1.weight': 1256 bytes, the plan allows at most 1254/,
        push: (v, j, p) => parts(j, 0, p, [Uint8Array.from([...v[0], 0, 0]), v[1], v[2], v[3]]),
      },
    ],
  },
  {
    baseline: { kind: 'qsgd', bits: 3, bucket: 64 },
    cases: [
      {
        what: 'a negative scale',
        code: INVALID_ARGUMENT,
        message: /^negative-scale: layer 0 'fc1.weight'/,
        push: (v, j, p) => parts(j, 0, p, [replace(v[0], 4, f32(-1)), v[1], v[2], v[3]]),
      },
      {
        what: 'an infinite scale',
        code: INVALID_ARGUMENT,
        message: /^non-finite: layer 2 'fc2.weight'/,
        push: (v, j, p) => parts(j, 0, p, [v[0], v[1], replace(v[2], 0, f32(Infinity)), v[3]]),
      },
      {
        what: 'padding bits set',
        code: INVALID_ARGUMENT,
        message: /^nonzero-padding: layer 3 'fc2.bias'/,
        push: (v, j, p) => parts(j, 0, p, [v[0], v[1], v[2], replace(v[3], 7, [v[3][7] | 0xc0])]),
      },
      {
        what: 'another bit-width (4 bits: more bytes)',
        code: RESOURCE_EXHAUSTED,
        message: /^too-large: layer 0 'fc1.weight': 3000 bytes, the plan allows at most 2744/,
        push: (v, j, p) => parts(j, 0, p, [new Uint8Array(4 * 98 + 3136), v[1], v[2], v[3]]),
      },
    ],
  },
  {
    baseline: { kind: 'powersgd', rank: 1, values: 'bf16' },
    cases: [
      {
        what: 'a NaN factor',
        code: INVALID_ARGUMENT,
        message: /^non-finite: layer 0 'fc1.weight'/,
        push: (v, j, p) => parts(j, 0, p, [replace(v[0], 0, bf16(NaN)), v[1], v[2], v[3]]),
      },
      {
        what: 'finite factors whose product overflows',
        code: INVALID_ARGUMENT,
        message: /^non-finite-output: layer 2 'fc2.weight'/,
        push: (v, j, p) =>
          parts(j, 0, p, [
            v[0],
            v[1],
            Uint8Array.from(Array.from({ length: 18 }, () => bf16(1e30)).flat()),
            v[3],
          ]),
      },
      {
        what: 'another rank (2 instead of 1)',
        code: RESOURCE_EXHAUSTED,
        message: /^too-large: layer 0 'fc1.weight': 2000 bytes, the plan allows at most 1584/,
        push: (v, j, p) => parts(j, 0, p, [new Uint8Array(3168), v[1], v[2], v[3]]),
      },
      {
        what: 'a NaN in a dense (fp32) layer of the plan',
        code: INVALID_ARGUMENT,
        message: /^non-finite: layer 1 'fc1.bias'/,
        push: (v, j, p) => parts(j, 0, p, [v[0], replace(v[1], 0, f32(NaN)), v[2], v[3]]),
      },
    ],
  },
  {
    // fc1.weight [784, 8] at rank 1: P's scale (4 bytes), 784 codes, Q's scale at 788, 8 codes: 800 bytes
    baseline: { kind: 'powersgd', rank: 1, values: 'int8' },
    cases: [
      {
        what: 'a NaN scale',
        code: INVALID_ARGUMENT,
        message: /^non-finite: layer 0 'fc1.weight': powersgd: P scale 0 is not finite/,
        push: (v, j, p) => parts(j, 0, p, [replace(v[0], 0, f32(NaN)), v[1], v[2], v[3]]),
      },
      {
        what: 'a negative scale of Q',
        code: INVALID_ARGUMENT,
        message: /^negative-scale: layer 0 'fc1.weight': powersgd: Q scale 0/,
        push: (v, j, p) => parts(j, 0, p, [replace(v[0], 788, f32(-1)), v[1], v[2], v[3]]),
      },
      {
        what: 'the code −128, outside the symmetric range',
        code: INVALID_ARGUMENT,
        message: /^code-out-of-range: layer 0 'fc1.weight': powersgd: P code 3 is -128/,
        push: (v, j, p) => parts(j, 0, p, [replace(v[0], 4 + 3, [0x80]), v[1], v[2], v[3]]),
      },
      {
        what: 'finite scales whose product overflows',
        code: INVALID_ARGUMENT,
        message: /^non-finite-output: layer 2 'fc2.weight'/,
        push: (v, j, p) =>
          parts(j, 0, p, [
            v[0],
            v[1],
            Uint8Array.from([...f32(3e38), ...Array(8).fill(127), ...f32(3e38), ...Array(10).fill(127)]),
            v[3],
          ]),
      },
      {
        what: 'bf16 factors under an int8 plan (another length)',
        code: RESOURCE_EXHAUSTED,
        message: /^too-large: layer 0 'fc1.weight': 1000 bytes, the plan allows at most 800/,
        push: (v, j, p) => parts(j, 0, p, [new Uint8Array(1584), v[1], v[2], v[3]]),
      },
    ],
  },
  {
    // fc1.weight at rank 1 in 4-bit codes: 4 + 392 bytes of P, 4 + 4 of Q
    baseline: { kind: 'powersgd', rank: 1, values: 'int4' },
    cases: [
      {
        what: 'the code −8, outside the symmetric range',
        code: INVALID_ARGUMENT,
        message: /^code-out-of-range: layer 0 'fc1.weight': powersgd: P code 0 is -8/,
        push: (v, j, p) => parts(j, 0, p, [replace(v[0], 4, [(v[0][4] & 0xf0) | 0x08]), v[1], v[2], v[3]]),
      },
      {
        what: 'an infinite scale of Q',
        code: INVALID_ARGUMENT,
        message: /^non-finite: layer 2 'fc2.weight': powersgd: Q scale 0 is not finite/,
        push: (v, j, p) => parts(j, 0, p, [v[0], v[1], replace(v[2], 8, f32(Infinity)), v[3]]),
      },
      {
        what: 'int8 codes under an int4 plan (another bit-width)',
        code: RESOURCE_EXHAUSTED,
        message: /^too-large: layer 0 'fc1.weight': 500 bytes, the plan allows at most 404/,
        push: (v, j, p) => parts(j, 0, p, [new Uint8Array(800), v[1], v[2], v[3]]),
      },
    ],
  },
];

describe('security: hostile compressed pushes (coordinator process, real gRPC)', function () {
  this.timeout(180_000);
  let coordinator: { proc: Proc; address: string; adminToken: string };
  let jobs: JobsClient;
  const clients: CoordinatorClient[] = [];

  before(async () => {
    coordinator = await startCoordinatorProcess(['--checkpoint-dir', tmpDir('compressed-push')]);
    jobs = new JobsClient(coordinator.address, { token: coordinator.adminToken });
  });

  after(async () => {
    for (const c of clients) c.close();
    jobs?.close();
    await coordinator?.proc.kill();
  });

  for (const { baseline, cases } of ENCODINGS) {
    const name = [baseline['kind'], baseline['values']].filter((x) => x !== undefined).join(' ');
    it(`${name}: each defect gets its exact status and message; then the job goes on`, async () => {
      const input = jobSpec(`hostile-${name.replace(' ', '-')}`, baseline);
      const spec = validateJobSpec(input);
      const job = await jobs.submit(JSON.stringify(input));
      const [hostile, honest] = [0, 1].map(() => {
        const c = new CoordinatorClient(coordinator.address, undefined, coordinator.adminToken);
        clients.push(c);
        return c;
      });
      await hostile.register(`hostile-${job.id}`, { backend: 'test' });
      await honest.register(`honest-${job.id}`, { backend: 'test' });
      const ranks = [
        (await joinWhenRunning(hostile, job.id)).rank,
        (await joinWhenRunning(honest, job.id)).rank,
      ];
      const info = await hostile.getRound(job.id, undefined, 0);
      expect(info.planId).to.equal('baseline-r0');
      expect(info.wantsErrorTable).to.equal(false);
      const plan = planFromWire(info.plan, layout);
      const compressors = ranks.map(
        (r) => new WorkerCompressor(sessionSpec(spec.compression)!, layout, spec.seed, r),
      );
      const gradient = Float32Array.from({ length: layout.totalSize }, (_, i) => Math.sin(i) * 0.1);
      const valid = compressors[0].encode(plan, 0, gradient).map((b) => b.slice());

      for (const c of [...COMMON, ...cases]) {
        const err = await expectStatus(hostile.pushMessages(c.push(valid, job.id, plan)), c.code);
        expect(err.details, c.what).to.match(c.message);
        // nothing committed: the round is still open and neither worker has a gradient in it
        const now = await honest.getRound(job.id, undefined, 0);
        expect([now.round, now.pushed], c.what).to.deep.equal([0, false]);
        expect((await hostile.getRound(job.id, undefined, 0)).pushed, c.what).to.equal(false);
      }

      // The same workers' honest pushes are accepted and the job moves to round 1.
      const ok = await hostile.pushMessages(parts(job.id, 0, plan, valid));
      expect(ok.status).to.equal('PUSH_STATUS_ACCEPTED');
      const other = compressors[1].encode(plan, 0, gradient).map((b) => b.slice());
      expect((await honest.pushMessages(parts(job.id, 0, plan, other))).status).to.equal(
        'PUSH_STATUS_ACCEPTED',
      );
      const next = await honest.getRound(job.id, 0, 20_000);
      expect(next.round).to.equal(1);
      expect(next.phase).to.equal('JOB_PHASE_RUNNING');
      // WatchJob replays round 0's report with its traffic, through the proto
      const sent = [...other, ...valid].reduce((n, b) => n + b.length, 0);
      const reports: JobEvent__Output['round'][] = [];
      const watching = jobs.watch(job.id, 0, (e) => {
        if (e.round) reports.push(e.round);
      });
      while (reports.length === 0) await new Promise((r) => setTimeout(r, 50));
      const c = reports[0]!.compression!;
      expect([c.planId, c.pushes, c.bytes, Number(reports[0]!.bytesReceived)]).to.deep.equal([
        'baseline-r0',
        2,
        sent,
        sent,
      ]);
      expect(c.layerBytes.map(Number)).to.deep.equal(valid.map((b, l) => b.length + other[l].length));
      expect(c.settings).to.deep.equal(plan.layers.map(describeSetting));
      expect(c.ratio).to.be.closeTo((2 * 4 * layout.totalSize) / sent, 1e-9);
      await jobs.cancel(job.id);
      await watching;
    });
  }
});
