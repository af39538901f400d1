/**
 * Fuzzing the PushGradient stream against a coordinator in its own process, over real gRPC. Each case is a
 * sequence of stream parts — a valid push mutated (chunks dropped, repeated, swapped, cut, shifted, poisoned with
 * NaN/Inf, a second or missing header, foreign job or round, wrong encoding, size or fingerprint) or parts drawn
 * at random. An independent reference validator (below, written from the wire contract, not from the coordinator's
 * code) says whether the push is well formed. The coordinator must answer every case with a precise outcome:
 * a well-formed push is accepted (or DUPLICATE once this worker's gradient for the round is in), a malformed one
 * gets INVALID_ARGUMENT / RESOURCE_EXHAUSTED / FAILED_PRECONDITION / NOT_FOUND or LATE — never INTERNAL, UNKNOWN
 * or a dropped connection — and the job's state moves only through accepted pushes.
 *
 * Runs: PHALANX_FUZZ_RUNS (default 1000; `npm run fuzz` runs more). Seed: PHALANX_FUZZ_SEED to replay a failure.
 */
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import { CoordinatorClient } from '../../src/worker/coordinatorClient.ts';
import { JobsClient } from '../../src/cli/jobsClient.ts';
import { modelLayout } from '../../src/models/registry.ts';
import { layoutFingerprint, type ParameterLayout } from '../../src/core/layout/parameterLayout.ts';
import { authMetadata } from '../../src/transport/protocol.ts';
import type { PushGradientRequest } from '../../src/gen/phalanx/v1/PushGradientRequest.ts';
import type { PushHeader } from '../../src/gen/phalanx/v1/PushHeader.ts';
import { startCoordinatorProcess, tmpDir, type Proc } from '../support/processes.ts';

const RUNS = Number(process.env['PHALANX_FUZZ_RUNS'] ?? 1000);
const SEED = process.env['PHALANX_FUZZ_SEED'] ? Number(process.env['PHALANX_FUZZ_SEED']) : undefined;
const MODEL = { kind: 'mlp' as const, hidden: [2] };
const CHUNK_ELEMENTS = 700; // pushes in this test split layers into chunks of at most this many elements

type Part = PushGradientRequest;
type Header = Required<Pick<PushHeader, 'jobId' | 'round' | 'planId' | 'encoding' | 'totalElements'>> &
  PushHeader;
type Chunk = { jobId: string; round: number; layer: number; offset: number; data: Buffer };

const layout: ParameterLayout = modelLayout(MODEL);
const fingerprint = layoutFingerprint(layout);

/** The wire contract's rules for one push, for the open round `open` of job `jobId` with encoding fp32. */
function wellFormed(parts: Part[], jobId: string, open: number): boolean {
  if (parts.length === 0 || !parts[0].header || parts.slice(1).some((p) => !p.chunk)) return false;
  const h = parts[0].header as Header;
  if (h.jobId !== jobId || h.round !== open || h.planId !== '') return false;
  if (h.encoding !== 'ENCODING_FP32' && h.encoding !== 'ENCODING_UNSPECIFIED') return false;
  if (h.totalElements !== layout.totalSize) return false;
  if (h.layoutFingerprint && h.layoutFingerprint !== fingerprint) return false;
  let layer = 0;
  let offset = 0;
  for (const p of parts.slice(1)) {
    const c = p.chunk as Chunk;
    while (layer < layout.layers.length && offset === layout.layers[layer].size) {
      layer++;
      offset = 0;
    }
    if (layer >= layout.layers.length) return false;
    if (c.jobId !== h.jobId || c.round !== h.round || c.layer !== layer || c.offset !== offset) return false;
    if (c.data.byteLength === 0 || c.data.byteLength % 4 !== 0) return false;
    const n = c.data.byteLength / 4;
    if (offset + n > layout.layers[layer].size) return false;
    const values = new Float32Array(Uint8Array.from(c.data).buffer);
    if (!values.every(Number.isFinite)) return false;
    offset += n;
  }
  while (layer < layout.layers.length && offset === layout.layers[layer].size) {
    layer++;
    offset = 0;
  }
  return layer === layout.layers.length;
}

function validHeader(jobId: string, round: number): Header {
  return {
    jobId,
    round,
    planId: '',
    encoding: 'ENCODING_FP32',
    totalElements: layout.totalSize,
    layoutFingerprint: fingerprint,
    loss: 1,
    samples: 4,
  };
}

function validChunks(jobId: string, round: number, value: (i: number) => number): Chunk[] {
  const chunks: Chunk[] = [];
  layout.layers.forEach((slot, layer) => {
    for (let from = 0; from < slot.size; from += CHUNK_ELEMENTS) {
      const n = Math.min(CHUNK_ELEMENTS, slot.size - from);
      const data = new Float32Array(n);
      for (let i = 0; i < n; i++) data[i] = value(slot.offset + from + i);
      chunks.push({ jobId, round, layer, offset: from, data: Buffer.from(data.buffer) });
    }
  });
  return chunks;
}

const POISON = [NaN, Infinity, -Infinity];

/** One mutation of a valid push; `pick` chooses the indices. */
type Mutation =
  | { kind: 'none' }
  | { kind: 'drop'; at: number }
  | { kind: 'repeat'; at: number }
  | { kind: 'swap'; at: number; with: number }
  | { kind: 'cut'; at: number; bytes: number }
  | { kind: 'extend'; at: number; bytes: number }
  | { kind: 'shift'; at: number; by: number }
  | { kind: 'relayer'; at: number; layer: number }
  | { kind: 'poison'; at: number; element: number; value: number }
  | { kind: 'no-header' }
  | { kind: 'second-header'; at: number }
  | {
      kind: 'header';
      field: 'jobId' | 'round' | 'planId' | 'encoding' | 'totalElements' | 'fingerprint';
      v: number;
    }
  | { kind: 'chunk-job'; at: number }
  | { kind: 'chunk-round'; at: number; round: number }
  | { kind: 'trailing'; bytes: number };

const index = fc.nat({ max: 1000 });
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.constant<Mutation>({ kind: 'none' }),
  fc.record({ kind: fc.constant('drop' as const), at: index }),
  fc.record({ kind: fc.constant('repeat' as const), at: index }),
  fc.record({ kind: fc.constant('swap' as const), at: index, with: index }),
  fc.record({ kind: fc.constant('cut' as const), at: index, bytes: fc.integer({ min: 1, max: 2801 }) }),
  fc.record({ kind: fc.constant('extend' as const), at: index, bytes: fc.integer({ min: 1, max: 64 }) }),
  fc.record({ kind: fc.constant('shift' as const), at: index, by: fc.integer({ min: -800, max: 800 }) }),
  fc.record({ kind: fc.constant('relayer' as const), at: index, layer: fc.integer({ min: 0, max: 6 }) }),
  fc.record({
    kind: fc.constant('poison' as const),
    at: index,
    element: fc.nat({ max: 699 }),
    value: fc.constantFrom(...POISON),
  }),
  fc.constant<Mutation>({ kind: 'no-header' }),
  fc.record({ kind: fc.constant('second-header' as const), at: index }),
  fc.record({
    kind: fc.constant('header' as const),
    field: fc.constantFrom(
      'jobId' as const,
      'round' as const,
      'planId' as const,
      'encoding' as const,
      'totalElements' as const,
      'fingerprint' as const,
    ),
    v: fc.nat({ max: 1 << 30 }),
  }),
  fc.record({ kind: fc.constant('chunk-job' as const), at: index }),
  fc.record({ kind: fc.constant('chunk-round' as const), at: index, round: fc.nat({ max: 3 }) }),
  fc.record({ kind: fc.constant('trailing' as const), bytes: fc.integer({ min: 1, max: 4000 }) }),
);

function mutate(jobId: string, round: number, m: Mutation, seed: number): Part[] {
  const header = validHeader(jobId, round);
  const chunks = validChunks(jobId, round, (i) => Math.sin(i + seed) * 0.01);
  const at = (i: number) => i % chunks.length;
  switch (m.kind) {
    case 'none':
      break;
    case 'drop':
      chunks.splice(at(m.at), 1);
      break;
    case 'repeat':
      chunks.splice(at(m.at), 0, { ...chunks[at(m.at)] });
      break;
    case 'swap': {
      const [a, b] = [at(m.at), at(m.with)];
      [chunks[a], chunks[b]] = [chunks[b], chunks[a]];
      break;
    }
    case 'cut': {
      const c = chunks[at(m.at)];
      c.data = c.data.subarray(0, Math.max(0, c.data.byteLength - m.bytes));
      break;
    }
    case 'extend': {
      const c = chunks[at(m.at)];
      c.data = Buffer.concat([c.data, Buffer.alloc(m.bytes)]);
      break;
    }
    case 'shift': {
      const c = chunks[at(m.at)];
      c.offset = Math.max(0, c.offset + m.by);
      break;
    }
    case 'relayer':
      chunks[at(m.at)].layer = m.layer;
      break;
    case 'poison': {
      const c = chunks[at(m.at)];
      const values = new Float32Array(Uint8Array.from(c.data).buffer);
      values[m.element % values.length] = m.value;
      c.data = Buffer.from(values.buffer);
      break;
    }
    case 'no-header':
      return chunks.map((chunk) => ({ chunk }));
    case 'second-header': {
      const parts: Part[] = [{ header }, ...chunks.map((chunk) => ({ chunk }))];
      parts.splice(1 + at(m.at), 0, { header });
      return parts;
    }
    case 'header':
      if (m.field === 'jobId') header.jobId = `${jobId}-x${m.v}`;
      else if (m.field === 'round') header.round = round + 1 + (m.v % 1000);
      else if (m.field === 'planId') header.planId = `plan-${m.v}`;
      else if (m.field === 'encoding')
        header.encoding = (['ENCODING_BF16', 'ENCODING_TOPK_VARINT_BF16', 'ENCODING_QSGD_PACKED'] as const)[
          m.v % 3
        ];
      else if (m.field === 'totalElements') header.totalElements = layout.totalSize + 1 + (m.v % 10_000);
      else header.layoutFingerprint = `fp-${m.v}`;
      break;
    case 'chunk-job':
      chunks[at(m.at)].jobId = `${jobId}-other`;
      break;
    case 'chunk-round':
      chunks[at(m.at)].round = round + 1 + m.round;
      break;
    case 'trailing':
      chunks.push({
        jobId,
        round,
        layer: layout.layers.length - 1,
        offset: layout.layers[layout.layers.length - 1].size,
        data: Buffer.alloc(m.bytes - (m.bytes % 4) || 4),
      });
      break;
  }
  return [{ header }, ...chunks.map((chunk) => ({ chunk }))];
}

/** Random parts with no valid push behind them: headers and chunks with arbitrary fields. */
const randomParts = (jobId: string): fc.Arbitrary<Part[]> =>
  fc.array(
    fc.oneof(
      fc.record({
        header: fc.record({
          jobId: fc.constantFrom(jobId, '', 'nope'),
          round: fc.nat({ max: 5 }),
          planId: fc.constantFrom('', 'x'),
          encoding: fc.constantFrom(
            'ENCODING_FP32' as const,
            'ENCODING_BF16' as const,
            'ENCODING_UNSPECIFIED' as const,
          ),
          totalElements: fc.constantFrom(layout.totalSize, 0, 1, layout.totalSize - 1),
          layoutFingerprint: fc.constantFrom(fingerprint, '', 'zz'),
          loss: fc.double(),
          samples: fc.nat({ max: 100 }),
        }),
      }),
      fc.record({
        chunk: fc.record({
          jobId: fc.constantFrom(jobId, 'nope'),
          round: fc.nat({ max: 5 }),
          layer: fc.nat({ max: 5 }),
          offset: fc.nat({ max: 2000 }),
          data: fc.uint8Array({ maxLength: 3000 }).map((a) => Buffer.from(a)),
        }),
      }),
    ),
    { maxLength: 8 },
  );

function send(client: CoordinatorClient, token: string, parts: Part[]) {
  return new Promise<{ status?: string; code?: grpc.status; details?: string }>((resolve) => {
    const call = client.raw.PushGradient(authMetadata(token), { deadline: Date.now() + 20_000 }, (err, res) =>
      resolve(err ? { code: err.code, details: err.details } : { status: res!.status }),
    );
    call.on('error', () => {});
    for (const p of parts) call.write(p);
    call.end();
  });
}

/** An absolute path or a stack frame in a client-visible message. */
const LEAK = /(^|[\s'"(])\/[\w.-]+\/[\w.-]+|\n\s*at\s/;

const REFUSALS = new Set([
  grpc.status.INVALID_ARGUMENT,
  grpc.status.RESOURCE_EXHAUSTED,
  grpc.status.FAILED_PRECONDITION,
  grpc.status.NOT_FOUND,
]);

describe('fuzz: PushGradient stream (coordinator process, real gRPC)', function () {
  this.timeout(600_000);
  let coordinator: { proc: Proc; address: string; adminToken: string };
  let jobs: JobsClient;
  let worker: CoordinatorClient;
  let other: CoordinatorClient;
  let token = '';
  let jobId = '';
  let identities = 0;

  async function freshWorker(): Promise<void> {
    worker?.close();
    worker = new CoordinatorClient(coordinator.address, undefined, coordinator.adminToken);
    token = (await worker.register(`fuzzer-${identities++}`, { backend: 'test' })).sessionToken;
    for (let i = 0; i < 100; i++) {
      try {
        await worker.join(jobId);
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    throw new Error('could not join the fuzz job');
  }

  before(async () => {
    coordinator = await startCoordinatorProcess(['--checkpoint-dir', tmpDir('fuzz-push')]);
    jobs = new JobsClient(coordinator.address, { token: coordinator.adminToken });
    // workers.min is never reached and the round never times out: round 0 stays open for the whole run. After
    // each accepted push the fuzzing worker leaves and a fresh identity joins, so bodies keep being validated.
    const job = await jobs.submit(
      JSON.stringify({
        name: 'fuzz-push',
        model: MODEL,
        data: { batchSize: 4, maxTrain: 100, maxTest: 10 },
        rounds: 3,
        workers: { min: 1000, max: 1000, roundTimeout: '1h', heartbeatTtl: '1h' },
        aggregation: { rule: 'mean', f: 0 },
        evaluation: { every: 0 },
        checkpoint: { every: 0 },
      }),
    );
    jobId = job.id;
    await freshWorker();
    other = new CoordinatorClient(coordinator.address, undefined, coordinator.adminToken);
    await other.register('bystander', { backend: 'test' });
    await other.join(jobId);
  });

  after(async () => {
    worker?.close();
    other?.close();
    jobs?.close();
    await coordinator?.proc.kill();
  });

  it(`answers ${RUNS} mutated and random pushes precisely, accepting exactly the well-formed ones`, async () => {
    let accepted = 0;
    const counts: Record<string, number> = {};
    const caseArb = fc.oneof(
      { weight: 4, arbitrary: fc.tuple(mutation, fc.nat()).map(([m, seed]) => mutate(jobId, 0, m, seed)) },
      { weight: 1, arbitrary: randomParts(jobId) },
    );
    await fc.assert(
      fc.asyncProperty(caseArb, async (parts) => {
        const ok = wellFormed(parts, jobId, 0);
        const res = await send(worker, token, parts);
        const outcome = res.status ?? grpc.status[res.code!];
        counts[`${ok ? 'well-formed' : 'malformed'} → ${outcome}`] =
          (counts[`${ok ? 'well-formed' : 'malformed'} → ${outcome}`] ?? 0) + 1;
        if (ok) {
          expect(res.status, `well-formed push answered ${outcome}: ${res.details ?? ''}`).to.equal(
            'PUSH_STATUS_ACCEPTED',
          );
          accepted++;
          // The identity's gradient for round 0 is in: a retry is a duplicate; then make room for bodies again.
          const again = await send(worker, token, parts);
          expect(again.status).to.equal('PUSH_STATUS_DUPLICATE');
          await worker.leave(jobId, 'fuzz: next identity');
          await freshWorker();
        } else if (res.status !== undefined) {
          // A malformed push may only be answered without an error when its header alone decided it (the
          // fuzzer's identity never has an accepted gradient here, so not even DUPLICATE).
          expect.fail(`malformed push answered ${res.status}`);
        } else {
          expect(REFUSALS.has(res.code!), `malformed push answered ${outcome}: ${res.details}`).to.equal(
            true,
          );
          expect(res.details ?? '', 'no paths or stack frames in client errors').not.to.match(LEAK);
        }
        // The job moved only through accepted pushes: round 0 is still open, the other worker's slot untouched.
        const info = await other.getRound(jobId, undefined, 0);
        expect(info.round).to.equal(0);
        expect(info.pushed).to.equal(false);
      }),
      { numRuns: RUNS, seed: SEED, endOnFailure: true },
    );
    const mine = await worker.getRound(jobId, undefined, 0);
    expect(mine.pushed).to.equal(false);
    process.stderr.write(
      `      outcomes: ${Object.entries(counts)
        .sort()
        .map(([k, v]) => `${k} ×${v}`)
        .join(', ')}\n`,
    );
    expect(accepted, 'the run included well-formed pushes').to.be.greaterThan(0);
  });
});
