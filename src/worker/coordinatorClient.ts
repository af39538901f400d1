/**
 * Typed, promise-based client for phalanx.v1.Coordinator: carries the session credential on every call, streams
 * parameters in and gradients out in ≤ 1 MiB chunks while respecting back-pressure.
 */
import * as grpc from '@grpc/grpc-js';
import { drained } from '../transport/drain.ts';
import { readServerStream } from '../transport/serverStream.ts';
import type { CoordinatorClient as GenCoordinatorClient } from '../gen/phalanx/v1/Coordinator.ts';
import type { GetRoundResponse__Output } from '../gen/phalanx/v1/GetRoundResponse.ts';
import type { JoinJobResponse__Output } from '../gen/phalanx/v1/JoinJobResponse.ts';
import type { PushGradientResponse__Output } from '../gen/phalanx/v1/PushGradientResponse.ts';
import type { RegisterWorkerResponse__Output } from '../gen/phalanx/v1/RegisterWorkerResponse.ts';
import type { WorkerCapabilities } from '../gen/phalanx/v1/WorkerCapabilities.ts';
import type { PushGradientRequest } from '../gen/phalanx/v1/PushGradientRequest.ts';
import {
  bytesPerElement,
  decodeDenseInto,
  denseBytes,
  type DenseEncoding,
} from '../core/compression/denseCodec.ts';
import { denseEncodingOf, wireEncoding } from '../transport/wireVocabulary.ts';
import type { ParameterLayout } from '../core/layout/parameterLayout.ts';
import { authMetadata, CHANNEL_OPTIONS, CHUNK_BYTES, proto } from '../transport/protocol.ts';
import type { CompressionPlan } from '../core/compression/compressionPlan.ts';
import { layerEncoding } from '../transport/planWire.ts';
import type { PushWorkerStateRequest } from '../gen/phalanx/v1/PushWorkerStateRequest.ts';
import type { WorkerStateChunk__Output } from '../gen/phalanx/v1/WorkerStateChunk.ts';
import type { TeacherChunk__Output } from '../gen/phalanx/v1/TeacherChunk.ts';
import { TeacherDownload, TeacherRefusedError, type Teacher } from './teacherDownload.ts';

export interface PushMeta {
  jobId: string;
  round: number;
  loss: number;
  samples: number;
  attempt: number;
  encoding: DenseEncoding;
  layoutFingerprint: string;
}

export class CoordinatorClient {
  readonly raw: GenCoordinatorClient;
  private token = '';

  /**
   * `credentials`: the channel's (TLS, with a client certificate under mutual TLS). `enrollmentToken`: the
   * access token RegisterWorker presents (none: the client certificate enrolls, or the server is open).
   */
  constructor(
    readonly address: string,
    credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
    private readonly enrollmentToken?: string,
    /** Added to the channel options (e.g. a shorter keepalive to notice a paused coordinator). */
    channelOptions: grpc.ChannelOptions = {},
  ) {
    this.raw = new proto.phalanx.v1.Coordinator(address, credentials, {
      ...CHANNEL_OPTIONS,
      ...channelOptions,
    });
  }

  /** The session credential (RegisterWorker's), to carry over to another coordinator of the same store. */
  get sessionToken(): string {
    return this.token;
  }

  close(): void {
    this.raw.close();
  }

  setToken(token: string): void {
    this.token = token;
  }

  private md(): grpc.Metadata {
    return authMetadata(this.token);
  }

  private deadline(ms: number): grpc.CallOptions {
    return { deadline: Date.now() + ms };
  }

  async register(
    name: string,
    capabilities: WorkerCapabilities,
    timeoutMs = 10_000,
  ): Promise<RegisterWorkerResponse__Output> {
    const res = await new Promise<RegisterWorkerResponse__Output>((resolve, reject) =>
      this.raw.RegisterWorker(
        { name, capabilities },
        this.enrollmentToken ? authMetadata(this.enrollmentToken) : new grpc.Metadata(),
        this.deadline(timeoutMs),
        (err, r) => (err ? reject(err) : resolve(r!)),
      ),
    );
    this.token = res.sessionToken;
    return res;
  }

  heartbeat(jobId: string, round: number): Promise<void> {
    return new Promise((resolve, reject) =>
      this.raw.Heartbeat({ jobId, round }, this.md(), this.deadline(5000), (err) =>
        err ? reject(err) : resolve(),
      ),
    );
  }

  join(jobId: string): Promise<JoinJobResponse__Output> {
    return new Promise((resolve, reject) =>
      this.raw.JoinJob({ jobId }, this.md(), this.deadline(10_000), (err, r) =>
        err ? reject(err) : resolve(r!),
      ),
    );
  }

  leave(jobId: string, reason: string): Promise<void> {
    return new Promise((resolve, reject) =>
      this.raw.LeaveJob({ jobId, reason }, this.md(), this.deadline(5000), (err) =>
        err ? reject(err) : resolve(),
      ),
    );
  }

  getRound(jobId: string, afterRound: number | undefined, waitMs: number): Promise<GetRoundResponse__Output> {
    return new Promise((resolve, reject) =>
      this.raw.GetRound(
        { jobId, afterRound: Math.max(0, afterRound ?? 0), hasAfterRound: afterRound !== undefined, waitMs },
        this.md(),
        this.deadline(waitMs + 10_000),
        (err, r) => (err ? reject(err) : resolve(r!)),
      ),
    );
  }

  /** Pull the current parameters into `dst`; returns the version received. */
  pull(
    jobId: string,
    dst: Float32Array,
    fingerprint: string,
    encoding: DenseEncoding = 'fp32',
    timeoutMs = 120_000,
  ): Promise<number> {
    return new Promise((resolve, reject) => {
      const stream = this.raw.PullParameters(
        { jobId, encoding: wireEncoding(encoding) },
        this.md(),
        this.deadline(timeoutMs),
      );
      let version = -1;
      let received = 0;
      let failed = false;
      const fail = (e: Error) => {
        if (failed) return;
        failed = true;
        stream.cancel();
        reject(e);
      };
      stream.on(
        'data',
        (chunk: {
          version: number;
          offset: number;
          totalElements: number;
          data: Buffer;
          layoutFingerprint: string;
          encoding: string;
        }) => {
          if (failed) return;
          if (chunk.totalElements !== dst.length || chunk.layoutFingerprint !== fingerprint) {
            fail(
              new Error(
                `parameter layout mismatch: coordinator sends ${chunk.totalElements} (${chunk.layoutFingerprint}), worker expects ${dst.length} (${fingerprint})`,
              ),
            );
            return;
          }
          if (version === -1) version = chunk.version;
          else if (chunk.version !== version) {
            fail(new Error(`parameter version changed mid-stream (${version} → ${chunk.version})`));
            return;
          }
          const enc = denseEncodingOf(chunk.encoding);
          try {
            if (!enc) throw new Error(`coordinator sent parameters in an unknown encoding ${chunk.encoding}`);
            const bad = decodeDenseInto(chunk.data, dst, chunk.offset, enc);
            if (bad >= 0) throw new Error(`coordinator sent a non-finite parameter at ${chunk.offset + bad}`);
          } catch (e) {
            fail(e as Error);
            return;
          }
          received += chunk.data.byteLength / bytesPerElement(enc);
        },
      );
      stream.on('error', (e) => fail(e));
      stream.on('end', () => {
        if (failed) return;
        if (received !== dst.length)
          reject(new Error(`parameter stream ended after ${received} of ${dst.length} elements`));
        else resolve(version);
      });
    });
  }

  /** The job's teacher, received whole and verified (TeacherRefusedError otherwise). */
  pullTeacher(jobId: string, timeoutMs = 600_000): Promise<Teacher> {
    const download = new TeacherDownload();
    return readServerStream(this.raw.PullTeacher({ jobId }, this.md(), this.deadline(timeoutMs)), {
      chunk(chunk: TeacherChunk__Output) {
        if (chunk.header) download.header(chunk.header);
        else if (chunk.data) download.data(chunk.data.offset, chunk.data.data);
        else throw new TeacherRefusedError('an empty message in the stream');
      },
      end: () => download.finish(),
    });
  }

  /** One client-streamed push of the given messages, respecting back-pressure. */
  pushMessages(
    messages: Iterable<PushGradientRequest>,
    timeoutMs = 120_000,
  ): Promise<PushGradientResponse__Output> {
    return new Promise((resolve, reject) => {
      const call = this.raw.PushGradient(this.md(), this.deadline(timeoutMs), (err, res) =>
        err ? reject(err) : resolve(res!),
      );
      void (async () => {
        for (const msg of messages) {
          if (!call.write(msg)) await drained(call, ['close', 'error']);
        }
        call.end();
      })().catch((e: unknown) => {
        call.cancel();
        reject(e instanceof Error ? e : new Error(String(e)));
      });
    });
  }

  /**
   * Send this worker's own state entering `round` (a checkpoint round): the parts the job keeps (momentum, then
   * the error-feedback memories), concatenated, in chunks of ≤ 1 MiB.
   */
  pushWorkerState(
    state: { jobId: string; round: number; momentum: boolean; errorFeedback: boolean; values: Float32Array },
    timeoutMs = 120_000,
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      const call = this.raw.PushWorkerState(this.md(), this.deadline(timeoutMs), (err) =>
        err ? reject(err) : resolve(),
      );
      const { values, ...header } = state;
      void (async () => {
        const messages: PushWorkerStateRequest[] = [{ header }];
        const per = CHUNK_BYTES / 4;
        for (let at = 0; at < values.length; at += per) {
          const part = values.subarray(at, Math.min(values.length, at + per));
          messages.push({
            data: { offset: at, data: Buffer.from(part.buffer, part.byteOffset, part.byteLength) },
          });
        }
        for (const msg of messages) if (!call.write(msg)) await drained(call, ['close', 'error']);
        call.end();
      })().catch((e: unknown) => {
        call.cancel();
        reject(e instanceof Error ? e : new Error(String(e)));
      });
    });
  }

  /**
   * This worker's own state entering `round` as the coordinator keeps it (the parts concatenated), or undefined
   * when it keeps none for that round.
   */
  pullWorkerState(
    jobId: string,
    round: number,
    expected: number,
    timeoutMs = 120_000,
  ): Promise<Float32Array | undefined> {
    const values = new Float32Array(expected);
    let received = 0;
    return readServerStream<WorkerStateChunk__Output, Float32Array | undefined>(
      this.raw.PullWorkerState({ jobId, round }, this.md(), this.deadline(timeoutMs)),
      {
        chunk(chunk) {
          if (!chunk.data) return;
          const { offset, data } = chunk.data;
          if (offset !== received || data.length % 4 !== 0 || received + data.length / 4 > expected)
            throw new Error(
              `worker state: a chunk of ${data.length} bytes at ${offset} of ${expected} values`,
            );
          new Uint8Array(values.buffer, offset * 4, data.length).set(data);
          received += data.length / 4;
        },
        end() {
          if (received !== expected)
            throw new Error(`worker state ended after ${received} of ${expected} values`);
          return values;
        },
        // NOT_FOUND: no state stored for that round; UNIMPLEMENTED: a coordinator of an earlier version, which
        // keeps no worker state.
        error: (e) =>
          e.code === grpc.status.NOT_FOUND || e.code === grpc.status.UNIMPLEMENTED
            ? { result: undefined }
            : undefined,
      },
    );
  }

  /** Push a dense gradient: header, then per-layer chunks of ≤ 1 MiB, in layout order. */
  push(
    gradient: Float32Array,
    layout: ParameterLayout,
    meta: PushMeta,
    timeoutMs = 120_000,
  ): Promise<PushGradientResponse__Output> {
    return this.pushMessages(denseMessages(gradient, layout, meta), timeoutMs);
  }
}

export interface PlannedPushMeta extends Omit<PushMeta, 'encoding'> {
  plan: CompressionPlan;
  /** Elements of the gradient the layers encode (the layout's total). */
  totalElements: number;
  /** The worker's error table, on re-plan rounds. */
  errorTable?: Float64Array;
}

/**
 * Push a compressed gradient under `meta.plan`: header (plan_id, ENCODING_PLANNED, the error table), then each
 * layer's bytes in chunks of ≤ 1 MiB at increasing byte offsets, in layout order. An empty `layers` sends the
 * header alone (which the coordinator refuses as truncated).
 */
export function pushPlanned(
  client: CoordinatorClient,
  layers: readonly Uint8Array[],
  meta: PlannedPushMeta,
  timeoutMs = 120_000,
): Promise<PushGradientResponse__Output> {
  return client.pushMessages(
    (function* () {
      yield {
        header: {
          jobId: meta.jobId,
          round: meta.round,
          planId: meta.plan.planId,
          attempt: meta.attempt,
          encoding: 'ENCODING_PLANNED',
          totalElements: meta.totalElements,
          layoutFingerprint: meta.layoutFingerprint,
          loss: meta.loss,
          samples: meta.samples,
          errorTable: meta.errorTable ? Array.from(meta.errorTable) : [],
        },
      };
      for (const [layer, bytes] of layers.entries()) {
        const encoding = layerEncoding(meta.plan.layers[layer].kind);
        for (let off = 0; off < bytes.length; off += CHUNK_BYTES) {
          yield {
            chunk: {
              jobId: meta.jobId,
              round: meta.round,
              layer,
              offset: off,
              data: bytes.subarray(off, Math.min(bytes.length, off + CHUNK_BYTES)),
              encoding,
            },
          };
        }
      }
    })(),
    timeoutMs,
  );
}

export function isStatus(e: unknown, ...codes: grpc.status[]): boolean {
  return typeof e === 'object' && e !== null && 'code' in e && codes.includes((e as grpc.ServiceError).code);
}

/** The messages of a dense push, made lazily (each chunk's bytes are a view or an encoded copy of one slice). */
function* denseMessages(
  gradient: Float32Array,
  layout: ParameterLayout,
  meta: PushMeta,
): Generator<PushGradientRequest> {
  yield {
    header: {
      jobId: meta.jobId,
      round: meta.round,
      planId: '',
      attempt: meta.attempt,
      encoding: wireEncoding(meta.encoding),
      totalElements: gradient.length,
      layoutFingerprint: meta.layoutFingerprint,
      loss: meta.loss,
      samples: meta.samples,
    },
  };
  // Only a Byzantine "wrong size" worker sends another size: it declares the true size; the coordinator refuses it.
  if (gradient.length !== layout.totalSize) return;
  const perChunk = Math.floor(CHUNK_BYTES / bytesPerElement(meta.encoding));
  for (let layer = 0; layer < layout.layers.length; layer++) {
    const slot = layout.layers[layer];
    for (let off = 0; off < slot.size; off += perChunk) {
      const count = Math.min(perChunk, slot.size - off);
      yield {
        chunk: {
          jobId: meta.jobId,
          round: meta.round,
          layer,
          offset: off,
          data: denseBytes(gradient, slot.offset + off, count, meta.encoding),
        },
      };
    }
  }
}
