/**
 * gRPC adapter for phalanx.v1.Coordinator: authenticates every call by its session credential, validates every
 * byte a worker sends before anything is committed, and delegates to the JobManager / JobRuntime.
 */
import * as grpc from '@grpc/grpc-js';
import { drained } from '../transport/drain.ts';
import type { CoordinatorHandlers } from '../gen/phalanx/v1/Coordinator.ts';
import type { PushGradientRequest__Output } from '../gen/phalanx/v1/PushGradientRequest.ts';
import type { PushGradientResponse } from '../gen/phalanx/v1/PushGradientResponse.ts';
import type { PushHeader__Output } from '../gen/phalanx/v1/PushHeader.ts';
import { bytesPerElement, decodeDenseInto, type DenseEncoding } from '../core/compression/denseCodec.ts';
import { denseEncodingOf, jobPhaseOf, wirePushStatus } from '../transport/wireVocabulary.ts';
import { AUTH_HEADER } from '../transport/protocol.ts';
import type { JobManager } from './jobManager.ts';
import { ParameterFeed } from './parameterFeed.ts';
import { ConcurrencyLimiter } from './concurrencyLimiter.ts';
import type { JobRuntime } from './jobRuntime.ts';
import { Sessions, type WorkerIdentity } from './sessions.ts';
import { failStream, StatusError, toServiceError, unary } from './grpcStatus.ts';
import type { CallCredentials, CoordinatorAuth } from './auth/authenticator.ts';
import { admitWorker } from './auth/admission.ts';
import { CodecError } from '../core/compression/codecError.ts';
import { describeSetting } from '../core/compression/compressionPlan.ts';
import type { PushDecoder } from '../core/compression/compressionSession.ts';
import { kindOfEncoding } from '../transport/planWire.ts';
import type { TeacherChunk } from '../gen/phalanx/v1/TeacherChunk.ts';
import { openTeacher } from './teacherFeed.ts';
import { pullWorkerState, pushWorkerState, type WorkerStateDeps } from './workerStateService.ts';

/** Concurrent PushGradient streams one worker may hold open, and all workers together. */
export const PUSH_STREAMS_PER_WORKER = 2;
const PUSH_STREAMS_TOTAL = 4096;
/** Concurrent PullParameters streams one worker may hold open (its own pull plus a retry). */
export const PULL_STREAMS_PER_WORKER = 2;

export interface CoordinatorServiceOptions {
  heartbeatIntervalMs: number;
  heartbeatTtlMs: number;
  /** Longest GetRound long-poll the server grants. */
  maxWaitMs: number;
}

export function coordinatorHandlers(
  manager: JobManager,
  sessions: Sessions,
  options: CoordinatorServiceOptions,
  auth: CoordinatorAuth,
): CoordinatorHandlers {
  const feed = new ParameterFeed();
  // One push per round plus a retry in flight is all an honest worker needs.
  const pushStreams = new ConcurrencyLimiter(PUSH_STREAMS_PER_WORKER, PUSH_STREAMS_TOTAL);
  const pullStreams = new ConcurrencyLimiter(PULL_STREAMS_PER_WORKER, PUSH_STREAMS_TOTAL);
  async function authenticate(call: CallCredentials): Promise<WorkerIdentity> {
    const value = call.metadata.get(AUTH_HEADER)[0];
    const text = typeof value === 'string' ? value : value?.toString('utf8');
    if (!text || !text.startsWith('Bearer ')) {
      throw new StatusError(
        grpc.status.UNAUTHENTICATED,
        'missing session credential: call RegisterWorker first',
      );
    }
    const identity = await sessions.verify(text.slice(7).trim());
    if (!identity)
      throw new StatusError(
        grpc.status.UNAUTHENTICATED,
        'unknown or invalid session credential: register again',
      );
    auth.checkSessionPeer(call, identity.enrollment);
    return identity;
  }

  function runtimeFor(jobId: string): JobRuntime {
    const rt = manager.runtime(jobId);
    if (rt) return rt;
    throw new StatusError(grpc.status.NOT_FOUND, `job '${jobId}' is not running on this coordinator`);
  }

  const stateDeps: WorkerStateDeps = {
    authenticate,
    runtimeFor,
    auth,
    streams: new ConcurrencyLimiter(PULL_STREAMS_PER_WORKER, PUSH_STREAMS_TOTAL),
  };

  return {
    RegisterWorker: unary(async (call) => {
      const caps = call.request.capabilities;
      const { identity, token } = await admitWorker(auth, sessions, manager.store, call, call.request, {
        backend: caps?.backend ?? '',
        device: caps?.device ?? '',
        memoryBytes: caps?.memoryBytes ?? 0,
        hostname: caps?.hostname ?? '',
        byzantine: caps?.byzantine ?? '',
      });
      await manager.heartbeat(identity.id, options.heartbeatTtlMs);
      return {
        workerId: identity.id,
        sessionToken: token,
        heartbeatIntervalMs: options.heartbeatIntervalMs,
        heartbeatTtlMs: options.heartbeatTtlMs,
      };
    }),

    Heartbeat: unary(async (call) => {
      const identity = await authenticate(call);
      await manager.heartbeat(identity.id, options.heartbeatTtlMs);
      return { heartbeatIntervalMs: options.heartbeatIntervalMs };
    }),

    JoinJob: unary(async (call) => {
      const identity = await authenticate(call);
      // A worker enrolled for one job joins that one (and no other).
      const jobId = call.request.jobId || identity.jobScope;
      if (jobId) auth.checkJoin(identity.jobScope, jobId);
      const rt = jobId ? runtimeFor(jobId) : manager.oldestRuntime();
      if (!rt) throw new StatusError(grpc.status.NOT_FOUND, 'no running job to join yet');
      await manager.heartbeat(identity.id, options.heartbeatTtlMs);
      const byzantine = String(identity.capabilities['byzantine'] ?? '');
      const p = rt.join(identity.id, identity.name, byzantine);
      return {
        jobId: rt.jobId,
        specJson: JSON.stringify(rt.spec),
        rank: p.rank,
        worldSize: rt.spec.workers.max,
        layoutFingerprint: rt.fingerprint,
        round: rt.round,
      };
    }),

    LeaveJob: unary(async (call) => {
      const identity = await authenticate(call);
      runtimeFor(call.request.jobId).leave(identity.id, call.request.reason || 'left');
      return {};
    }),

    GetRound: unary(async (call) => {
      const identity = await authenticate(call);
      const jobId = call.request.jobId;
      auth.checkJoin(identity.jobScope, jobId);
      let rt = manager.runtime(jobId);
      if (rt && call.request.hasAfterRound) {
        await rt.waitForRound(call.request.afterRound, Math.min(call.request.waitMs || 0, options.maxWaitMs));
      }
      rt = manager.runtime(jobId);
      if (!rt) {
        const job = await manager.store.getJob(jobId);
        if (!job) throw new StatusError(grpc.status.NOT_FOUND, `job '${jobId}' not found`);
        return {
          jobId,
          round: job.round,
          version: job.round,
          planId: '',
          phase: jobPhaseOf(job.state),
          participant: false,
          pushed: false,
          rollbackRound: 0,
        };
      }
      const plan = rt.compression?.wirePlan();
      return {
        jobId,
        round: rt.round,
        version: rt.round,
        planId: plan?.planId ?? '',
        phase: jobPhaseOf(rt.phase),
        participant: rt.isParticipant(identity.id),
        pushed: rt.hasPushed(identity.id),
        rollbackRound: rt.rollbackRound,
        ...(plan ? { plan, wantsErrorTable: rt.compression!.authority.tableDue(rt.round) } : {}),
      };
    }),

    PullParameters: (call) => {
      void (async () => {
        let release: (() => void) | undefined;
        try {
          const identity = await authenticate(call);
          release = pullStreams.acquire(identity.id);
          if (!release) {
            throw new StatusError(
              grpc.status.RESOURCE_EXHAUSTED,
              `too many concurrent pulls from this worker (at most ${pullStreams.perKey})`,
            );
          }
          const rt = runtimeFor(call.request.jobId);
          if (!rt.isParticipant(identity.id)) {
            throw new StatusError(
              grpc.status.FAILED_PRECONDITION,
              `not a participant of job ${rt.jobId}: call JoinJob`,
            );
          }
          const encoding = denseEncodingOf(call.request.encoding);
          if (!encoding)
            throw new StatusError(
              grpc.status.INVALID_ARGUMENT,
              `unsupported parameter encoding ${call.request.encoding}`,
            );
          const { messages } = feed.stream(rt, encoding);
          for (const message of messages) {
            if (call.cancelled) return;
            rt.recordBytesSent(message.length);
            if (!call.write(ParameterFeed.message(message))) {
              // A client that goes away while we wait for the window must not leave this pull open.
              await drained(call, ['cancelled', 'close']);
            }
          }
          call.end();
        } catch (e) {
          failStream(call, e);
        } finally {
          release?.();
        }
      })();
    },

    PullTeacher: (call) => {
      void (async () => {
        let release: (() => void) | undefined;
        try {
          const identity = await authenticate(call);
          const jobId = call.request.jobId;
          auth.checkJoin(identity.jobScope, jobId);
          release = pullStreams.acquire(identity.id);
          if (!release) {
            throw new StatusError(
              grpc.status.RESOURCE_EXHAUSTED,
              `too many concurrent pulls from this worker (at most ${pullStreams.perKey})`,
            );
          }
          const rt = runtimeFor(jobId);
          if (!rt.isParticipant(identity.id)) {
            throw new StatusError(
              grpc.status.FAILED_PRECONDITION,
              `not a participant of job ${jobId}: call JoinJob`,
            );
          }
          const teacher = rt.spec.teacher;
          if (!teacher) {
            throw new StatusError(
              grpc.status.FAILED_PRECONDITION,
              `job ${jobId} has no teacher (it is not a distillation job)`,
            );
          }
          const stream = await openTeacher(teacher);
          const write = async (message: TeacherChunk) => {
            if (!call.write(message)) await drained(call, ['cancelled', 'close']);
          };
          await write(stream.header);
          for await (const chunk of stream.chunks) {
            if (call.cancelled) return;
            rt.recordBytesSent(chunk.data?.data?.length ?? 0);
            await write(chunk);
          }
          rt.note(`worker ${identity.name} (${identity.id}) pulled the teacher (${stream.totalBytes} bytes)`);
          call.end();
        } catch (e) {
          failStream(call, e);
        } finally {
          release?.();
        }
      })();
    },

    PushGradient: (call, callback) => {
      const push = new PushReceiver(call, callback, authenticate, runtimeFor, pushStreams);
      push.run();
    },

    PushWorkerState: (call, callback) => pushWorkerState(call, callback, stateDeps),

    PullWorkerState: (call) => pullWorkerState(call, stateDeps),
  };
}

/**
 * One client-streamed push: header, then chunks in layout order (layer ascending, offsets contiguous).
 * Decodes into a pooled staging buffer; only a complete, finite, well-formed push is committed. Any violation
 * answers a precise status and leaves the job untouched.
 */
class PushReceiver {
  private header: PushHeader__Output | undefined;
  private runtime: JobRuntime | undefined;
  private identity: WorkerIdentity | undefined;
  private buffer: Float32Array | undefined;
  private encoding: DenseEncoding = 'fp32';
  /** A push under a compression plan: layers assembled, validated and decoded into `buffer`. */
  private decoder: PushDecoder | undefined;
  private assembly: Uint8Array | undefined;
  private table: Float64Array | undefined;
  private layer = 0;
  private layerOffset = 0;
  private written = 0;
  private bytes = 0;
  private done = false;
  private readonly queue: PushGradientRequest__Output[] = [];
  private ended = false;
  private ready = false;

  constructor(
    private readonly call: grpc.ServerReadableStream<PushGradientRequest__Output, PushGradientResponse>,
    private readonly callback: grpc.sendUnaryData<PushGradientResponse>,
    private readonly authenticate: (call: CallCredentials) => Promise<WorkerIdentity>,
    private readonly runtimeFor: (jobId: string) => JobRuntime,
    private readonly streams: ConcurrencyLimiter,
  ) {}

  /** Gives back this push's concurrent-stream slot (once). */
  private releaseSlot: () => void = () => {};

  run(): void {
    // Messages may arrive before authentication resolves: queue them (bounded by flow control: we pause).
    this.call.pause();
    this.call.on('data', (msg: PushGradientRequest__Output) => {
      if (this.done) return;
      if (!this.ready) {
        this.queue.push(msg);
        return;
      }
      this.handle(msg);
    });
    this.call.on('end', () => {
      this.ended = true;
      if (this.ready) this.finish();
    });
    this.call.on('error', () => this.abort());
    this.call.on('cancelled', () => this.abort());
    this.authenticate(this.call).then(
      (identity) => {
        if (this.done) return; // the client went away while we authenticated
        this.identity = identity;
        const release = this.streams.acquire(identity.id);
        if (!release) {
          this.reject(
            new StatusError(
              grpc.status.RESOURCE_EXHAUSTED,
              `too many concurrent pushes from this worker (at most ${this.streams.perKey})`,
            ),
          );
          return;
        }
        this.releaseSlot = release;
        this.ready = true;
        for (const msg of this.queue.splice(0)) {
          if (this.done) break;
          this.handle(msg);
        }
        if (this.ended) this.finish();
        else if (!this.done) this.call.resume();
      },
      (e: unknown) => this.reject(e),
    );
  }

  private handle(msg: PushGradientRequest__Output): void {
    try {
      if (msg.part === 'header' && msg.header) {
        if (this.header) throw new StatusError(grpc.status.INVALID_ARGUMENT, 'push carries a second header');
        this.onHeader(msg.header);
      } else if (msg.part === 'chunk' && msg.chunk) {
        if (!this.header)
          throw new StatusError(grpc.status.INVALID_ARGUMENT, 'push must start with a PushHeader');
        if (this.decoder) this.onPlannedChunk(msg.chunk);
        else
          this.onChunk(msg.chunk.jobId, msg.chunk.round, msg.chunk.layer, msg.chunk.offset, msg.chunk.data);
      } else {
        throw new StatusError(grpc.status.INVALID_ARGUMENT, 'empty PushGradientRequest');
      }
    } catch (e) {
      this.reject(e);
    }
  }

  private onHeader(h: PushHeader__Output): void {
    const rt = this.runtimeFor(h.jobId);
    const id = this.identity!.id;
    const verdict = rt.beginUpload(id, h.round);
    switch (verdict.kind) {
      case 'not-participant':
        throw new StatusError(
          grpc.status.FAILED_PRECONDITION,
          `not a participant of job ${rt.jobId}: call JoinJob`,
        );
      case 'late':
        this.respond('late', verdict.openRound, `round ${h.round} is closed: resync`);
        return;
      case 'duplicate':
        this.respond('duplicate', verdict.openRound, 'already accepted');
        return;
      case 'not-open':
        throw new StatusError(
          grpc.status.FAILED_PRECONDITION,
          `round ${h.round} is not open (open round: ${verdict.openRound}): resync`,
        );
      case 'busy':
        throw new StatusError(
          grpc.status.RESOURCE_EXHAUSTED,
          `an upload for round ${h.round} from this worker is already in progress`,
        );
      case 'open':
        break;
    }
    // From here on this push holds the worker's upload slot for the round: every exit must give it back.
    this.runtime = rt;
    this.header = h;
    if (rt.compression) {
      this.onPlannedHeader(rt, h);
      return;
    }
    if (h.planId !== '') {
      throw new StatusError(
        grpc.status.INVALID_ARGUMENT,
        `plan_id '${h.planId}' does not match the job's plan ''`,
      );
    }
    const encoding = denseEncodingOf(h.encoding);
    if (!encoding || encoding !== rt.spec.compression.encoding) {
      throw new StatusError(
        grpc.status.INVALID_ARGUMENT,
        `encoding ${h.encoding} does not match the job's ${rt.spec.compression.encoding}`,
      );
    }
    checkShape(h, rt);
    this.encoding = encoding;
    this.buffer = rt.acquireBuffer();
  }

  private onChunk(jobId: string, round: number, layer: number, offset: number, data: Buffer): void {
    if (this.done || !this.buffer) return;
    const rt = this.runtime!;
    const h = this.header!;
    if (jobId !== h.jobId || round !== h.round) {
      throw new StatusError(
        grpc.status.INVALID_ARGUMENT,
        `chunk for job ${jobId} round ${round} inside a push for ${h.jobId} round ${h.round}`,
      );
    }
    const layers = rt.layout.layers;
    // Skip over layers already complete.
    while (this.layer < layers.length && this.layerOffset === layers[this.layer].size) {
      this.layer++;
      this.layerOffset = 0;
    }
    if (this.layer >= layers.length) {
      throw new StatusError(
        grpc.status.RESOURCE_EXHAUSTED,
        `push exceeds the layout's ${rt.layout.totalSize} elements`,
      );
    }
    if (layer !== this.layer || offset !== this.layerOffset) {
      throw new StatusError(
        grpc.status.INVALID_ARGUMENT,
        `chunk out of order: got layer ${layer} offset ${offset}, expected layer ${this.layer} ('${layers[this.layer].name}') offset ${this.layerOffset}`,
      );
    }
    const slot = layers[layer];
    const width = bytesPerElement(this.encoding);
    if (data.byteLength % width !== 0) {
      throw new StatusError(
        grpc.status.INVALID_ARGUMENT,
        `chunk of ${data.byteLength} bytes is not whole ${this.encoding} elements`,
      );
    }
    const n = data.byteLength / width;
    if (n === 0) throw new StatusError(grpc.status.INVALID_ARGUMENT, 'empty chunk');
    if (offset + n > slot.size) {
      throw new StatusError(
        grpc.status.INVALID_ARGUMENT,
        `wrong shape: chunk of ${n} elements at offset ${offset} overruns layer '${slot.name}' of ${slot.size}`,
      );
    }
    const bad = decodeDenseInto(data, this.buffer, slot.offset + offset, this.encoding);
    if (bad >= 0) {
      throw new StatusError(
        grpc.status.INVALID_ARGUMENT,
        `non-finite value in layer '${slot.name}' at element ${offset + bad}`,
      );
    }
    this.layerOffset += n;
    this.written += n;
    this.bytes += data.byteLength;
  }

  /**
   * The header of a push to a compressing job: the plan must be the open round's, the encoding PLANNED, and the
   * error table present exactly on re-plan rounds, with the planner's length.
   */
  private onPlannedHeader(rt: JobRuntime, h: PushHeader__Output): void {
    const compression = rt.compression!;
    const authority = compression.authority;
    const plan = authority.plan;
    if (h.planId !== plan.planId) {
      throw new StatusError(
        grpc.status.FAILED_PRECONDITION,
        `plan_id '${h.planId}' is not the plan of round ${rt.round} ('${plan.planId}'): call GetRound for the current plan`,
      );
    }
    if (h.encoding !== 'ENCODING_PLANNED') {
      throw new StatusError(
        grpc.status.INVALID_ARGUMENT,
        `encoding ${h.encoding}: job ${rt.jobId} compresses gradients, push ENCODING_PLANNED under plan '${plan.planId}'`,
      );
    }
    checkShape(h, rt);
    const due = authority.tableDue(h.round);
    const entries = h.errorTable.length;
    if (due && entries !== authority.tableLength) {
      throw new StatusError(
        grpc.status.INVALID_ARGUMENT,
        `error table of ${entries} entries: round ${h.round} is a re-plan round and needs ${authority.tableLength}`,
      );
    }
    if (!due && entries !== 0) {
      throw new StatusError(
        grpc.status.INVALID_ARGUMENT,
        `error table of ${entries} entries in round ${h.round}, which is not a re-plan round`,
      );
    }
    if (due) this.table = Float64Array.from(h.errorTable);
    this.buffer = rt.acquireBuffer();
    this.assembly = compression.acquireAssembly();
    this.decoder = authority.decoder(h.round, this.buffer, this.assembly);
  }

  /** A chunk of a planned push: the layer's codec must be the plan's; bytes go through the PushDecoder. */
  private onPlannedChunk(chunk: {
    jobId: string;
    round: number;
    layer: number;
    offset: number;
    data: Buffer;
    encoding: string;
  }): void {
    if (this.done) return;
    const h = this.header!;
    if (chunk.jobId !== h.jobId || chunk.round !== h.round) {
      throw new StatusError(
        grpc.status.INVALID_ARGUMENT,
        `chunk for job ${chunk.jobId} round ${chunk.round} inside a push for ${h.jobId} round ${h.round}`,
      );
    }
    const decoder = this.decoder!;
    const layers = this.runtime!.layout.layers;
    if (chunk.layer >= layers.length) {
      throw new StatusError(
        grpc.status.INVALID_ARGUMENT,
        `chunk for layer ${chunk.layer}: the job's layout has ${layers.length} layers`,
      );
    }
    const setting = decoder.plan.layers[chunk.layer];
    if (kindOfEncoding(chunk.encoding) !== setting.kind) {
      throw new StatusError(
        grpc.status.INVALID_ARGUMENT,
        `layer ${chunk.layer} '${layers[chunk.layer].name}': encoding ${chunk.encoding}, the plan '${decoder.plan.planId}' says ${describeSetting(setting)}`,
      );
    }
    try {
      decoder.chunk(chunk.layer, chunk.offset, chunk.data);
    } catch (e) {
      throw codecStatus(e);
    }
  }

  private finish(): void {
    if (this.done) return;
    if (this.decoder) {
      this.finishPlanned();
      return;
    }
    try {
      if (!this.header) throw new StatusError(grpc.status.INVALID_ARGUMENT, 'empty push: no PushHeader');
      const rt = this.runtime!;
      if (this.written !== rt.layout.totalSize) {
        throw new StatusError(
          grpc.status.INVALID_ARGUMENT,
          `truncated push: ${this.written} of ${rt.layout.totalSize} elements`,
        );
      }
      this.commitAndRespond(this.bytes);
    } catch (e) {
      this.reject(e);
    }
  }

  /** Hand the received vector to the round (a dense push, or a planned one with its wire record) and answer. */
  private commitAndRespond(bytes: number, wire?: Parameters<JobRuntime['commit']>[5]): void {
    const rt = this.runtime!;
    const outcome = rt.commit(
      this.identity!.id,
      this.header!.round,
      this.buffer!,
      this.header!.loss,
      bytes,
      wire,
    );
    if (outcome.status !== 'accepted') rt.releaseBuffer(this.buffer!);
    this.buffer = undefined;
    this.respond(
      outcome.status,
      outcome.currentRound,
      outcome.status === 'late' ? 'round closed: resync' : '',
    );
  }

  /** The end of a planned push: decode its last layer, then commit as a dense push does. */
  private finishPlanned(): void {
    try {
      const decoder = this.decoder!;
      let bytes: number;
      try {
        bytes = decoder.finish();
      } catch (e) {
        throw codecStatus(e);
      }
      this.commitAndRespond(bytes, {
        layerBytes: decoder.layerBytes,
        ...(this.table ? { table: this.table } : {}),
      });
    } catch (e) {
      this.reject(e);
    }
  }

  /** Give back the layer assembly buffer (once). */
  private releaseAssembly(): void {
    if (this.assembly && this.runtime?.compression) this.runtime.compression.releaseAssembly(this.assembly);
    this.assembly = undefined;
  }

  private respond(status: 'accepted' | 'duplicate' | 'late', currentRound: number, message: string): void {
    if (this.done) return;
    this.done = true;
    this.releaseSlot();
    this.releaseAssembly();
    if (this.buffer && this.runtime) this.runtime.releaseBuffer(this.buffer);
    this.buffer = undefined;
    this.callback(null, { status: wirePushStatus(status), currentRound, message });
  }

  private reject(e: unknown): void {
    if (this.done) return;
    this.done = true;
    this.releaseSlot();
    this.releaseAssembly();
    if (this.buffer && this.runtime) this.runtime.releaseBuffer(this.buffer);
    this.buffer = undefined;
    const err = toServiceError(e);
    if (this.runtime && this.header && this.identity) {
      this.runtime.recordRejection(this.identity.id, this.header.round, err.details ?? 'rejected');
    }
    this.callback(err as grpc.ServiceError);
  }

  private abort(): void {
    if (this.done) return;
    this.done = true;
    this.releaseSlot();
    this.releaseAssembly();
    if (this.buffer && this.runtime) this.runtime.releaseBuffer(this.buffer);
    this.buffer = undefined;
    if (this.runtime && this.header && this.identity) this.runtime.abandonUpload(this.identity.id);
  }
}

/**
 * The status of a compressed layer the plan refuses: RESOURCE_EXHAUSTED for bytes beyond the plan's maximum (as
 * for more elements than the layout), INVALID_ARGUMENT for everything else; the message names the layer and the
 * defect ("wrong-length: layer 2 'dense_1/kernel': powersgd rank 4 bf16: 10 bytes, the plan implies 1440").
 */
function codecStatus(e: unknown): unknown {
  if (!(e instanceof CodecError)) return e;
  const code = e.code === 'too-large' ? grpc.status.RESOURCE_EXHAUSTED : grpc.status.INVALID_ARGUMENT;
  return new StatusError(code, `${e.code}: ${e.message}`);
}

/** A push header must declare the job's layout: its element count and, when given, its fingerprint. */
function checkShape(h: { totalElements: number; layoutFingerprint: string }, rt: JobRuntime): void {
  if (h.totalElements !== rt.layout.totalSize) {
    throw new StatusError(
      grpc.status.INVALID_ARGUMENT,
      `wrong shape: push declares ${h.totalElements} elements, the job's layout has ${rt.layout.totalSize}`,
    );
  }
  if (h.layoutFingerprint && h.layoutFingerprint !== rt.fingerprint) {
    throw new StatusError(
      grpc.status.INVALID_ARGUMENT,
      `layout fingerprint ${h.layoutFingerprint} does not match the job's ${rt.fingerprint}`,
    );
  }
}
