/**
 * gRPC handlers of PushWorkerState and PullWorkerState: a worker's own state entering a checkpoint round, kept by
 * the coordinator for that worker's name only (src/coordinator/workerStates.ts). An upload must be exactly the
 * job's state shape (its parts, each the layout's size), finite, for the open round or the next; anything else is
 * refused before it is kept. A pull answers only the caller's own state.
 */
import * as grpc from '@grpc/grpc-js';
import type { PushWorkerStateRequest__Output } from '../gen/phalanx/v1/PushWorkerStateRequest.ts';
import type { WorkerStateChunk } from '../gen/phalanx/v1/WorkerStateChunk.ts';
import type { PullWorkerStateRequest__Output } from '../gen/phalanx/v1/PullWorkerStateRequest.ts';
import type { PushWorkerStateResponse } from '../gen/phalanx/v1/PushWorkerStateResponse.ts';
import type { WorkerStateHeader__Output } from '../gen/phalanx/v1/WorkerStateHeader.ts';
import { drained } from '../transport/drain.ts';
import type { CallCredentials, CoordinatorAuth } from './auth/authenticator.ts';
import type { ConcurrencyLimiter } from './concurrencyLimiter.ts';
import { failStream, StatusError, toServiceError } from './grpcStatus.ts';
import type { JobRuntime } from './jobRuntime.ts';
import type { WorkerIdentity } from './sessions.ts';

/** fp32 values per streamed chunk: 1 MiB. */
const CHUNK_ELEMENTS = 1 << 18;

export interface WorkerStateDeps {
  authenticate: (call: CallCredentials) => Promise<WorkerIdentity>;
  runtimeFor: (jobId: string) => JobRuntime;
  auth: CoordinatorAuth;
  /** Concurrent state streams per worker. */
  streams: ConcurrencyLimiter;
}

/** The caller's runtime of `jobId`, if it is a participant of it. */
function participantRuntime(deps: WorkerStateDeps, identity: WorkerIdentity, jobId: string): JobRuntime {
  deps.auth.checkJoin(identity.jobScope, jobId);
  const rt = deps.runtimeFor(jobId);
  if (!rt.isParticipant(identity.id))
    throw new StatusError(
      grpc.status.FAILED_PRECONDITION,
      `not a participant of job ${rt.jobId}: call JoinJob`,
    );
  return rt;
}

function acquire(deps: WorkerStateDeps, identity: WorkerIdentity): () => void {
  const release = deps.streams.acquire(identity.id);
  if (!release)
    throw new StatusError(
      grpc.status.RESOURCE_EXHAUSTED,
      `too many concurrent worker-state streams from this worker (at most ${deps.streams.perKey})`,
    );
  return release;
}

export function pushWorkerState(
  call: grpc.ServerReadableStream<PushWorkerStateRequest__Output, PushWorkerStateResponse>,
  callback: grpc.sendUnaryData<PushWorkerStateResponse>,
  deps: WorkerStateDeps,
): void {
  let done = false;
  let ready = false;
  let ended = false;
  let release: () => void = () => {};
  let identity: WorkerIdentity | undefined;
  let upload: { rt: JobRuntime; round: number; values: Float32Array; written: number } | undefined;
  const queue: PushWorkerStateRequest__Output[] = [];

  const finishWith = (e: unknown) => {
    if (done) return;
    done = true;
    release();
    if (e === undefined) callback(null, {});
    else callback(toServiceError(e, 'PushWorkerState') as grpc.ServiceError);
  };

  const onHeader = (h: WorkerStateHeader__Output) => {
    if (upload) throw new StatusError(grpc.status.INVALID_ARGUMENT, 'worker state carries a second header');
    const rt = participantRuntime(deps, identity!, h.jobId);
    const states = rt.workerStates;
    if (!states.wanted)
      throw new StatusError(
        grpc.status.FAILED_PRECONDITION,
        `job ${rt.jobId} keeps no worker state (no worker momentum, no error feedback)`,
      );
    if (h.momentum !== states.shape.momentum || h.errorFeedback !== states.shape.error)
      throw new StatusError(
        grpc.status.INVALID_ARGUMENT,
        `worker state parts: momentum ${h.momentum}, error feedback ${h.errorFeedback}; job ${rt.jobId} keeps momentum ${states.shape.momentum}, error feedback ${states.shape.error}`,
      );
    if (h.round !== rt.round && h.round !== rt.round + 1)
      throw new StatusError(
        grpc.status.FAILED_PRECONDITION,
        `worker state entering round ${h.round}: the open round is ${rt.round}`,
      );
    upload = { rt, round: h.round, values: new Float32Array(states.elements), written: 0 };
  };

  const onData = (offset: number, data: Buffer) => {
    if (!upload) throw new StatusError(grpc.status.INVALID_ARGUMENT, 'worker state data before its header');
    const { values } = upload;
    if (offset !== upload.written)
      throw new StatusError(
        grpc.status.INVALID_ARGUMENT,
        `worker state chunk at offset ${offset}, expected ${upload.written}`,
      );
    if (data.length % 4 !== 0)
      throw new StatusError(
        grpc.status.INVALID_ARGUMENT,
        `worker state chunk of ${data.length} bytes (fp32)`,
      );
    const n = data.length / 4;
    if (offset + n > values.length)
      throw new StatusError(
        grpc.status.INVALID_ARGUMENT,
        `worker state of more than ${values.length} values (the job's state size)`,
      );
    new Uint8Array(values.buffer, offset * 4, data.length).set(data);
    for (let i = offset; i < offset + n; i++)
      if (!Number.isFinite(values[i]))
        throw new StatusError(grpc.status.INVALID_ARGUMENT, `worker state value ${i} is not finite`);
    upload.written += n;
  };

  const handle = (msg: PushWorkerStateRequest__Output) => {
    try {
      if (msg.part === 'header' && msg.header) onHeader(msg.header);
      else if (msg.part === 'data' && msg.data) onData(msg.data.offset, msg.data.data);
      else throw new StatusError(grpc.status.INVALID_ARGUMENT, 'empty worker state message');
    } catch (e) {
      finishWith(e);
    }
  };

  const finish = () => {
    if (done) return;
    if (!upload)
      return finishWith(new StatusError(grpc.status.INVALID_ARGUMENT, 'worker state without header'));
    if (upload.written !== upload.values.length)
      return finishWith(
        new StatusError(
          grpc.status.INVALID_ARGUMENT,
          `worker state of ${upload.written} values; the job's state has ${upload.values.length}`,
        ),
      );
    upload.rt.workerStates.put(identity!.name, upload.round, upload.values);
    finishWith(undefined);
  };

  call.pause();
  call.on('data', (msg: PushWorkerStateRequest__Output) => {
    if (done) return;
    if (ready) handle(msg);
    else queue.push(msg);
  });
  call.on('end', () => {
    ended = true;
    if (ready) finish();
  });
  call.on('error', () => finishWith(new StatusError(grpc.status.CANCELLED, 'stream error')));
  call.on('cancelled', () => finishWith(new StatusError(grpc.status.CANCELLED, 'cancelled')));
  deps.authenticate(call).then(
    (who) => {
      if (done) return;
      try {
        identity = who;
        release = acquire(deps, who);
      } catch (e) {
        return finishWith(e);
      }
      ready = true;
      for (const msg of queue.splice(0)) if (!done) handle(msg);
      if (ended) finish();
      else if (!done) call.resume();
    },
    (e: unknown) => finishWith(e),
  );
}

export function pullWorkerState(
  call: grpc.ServerWritableStream<PullWorkerStateRequest__Output, WorkerStateChunk>,
  deps: WorkerStateDeps,
): void {
  void (async () => {
    let release: (() => void) | undefined;
    try {
      const identity = await deps.authenticate(call);
      release = acquire(deps, identity);
      const { jobId, round } = call.request;
      const rt = participantRuntime(deps, identity, jobId);
      const values = rt.workerStates.get(identity.name, round);
      if (!values)
        throw new StatusError(
          grpc.status.NOT_FOUND,
          `no state of worker ${identity.name} entering round ${round} of job ${jobId}`,
        );
      const write = async (message: WorkerStateChunk) => {
        if (!call.write(message)) await drained(call, ['cancelled', 'close']);
      };
      const { momentum, error } = rt.workerStates.shape;
      await write({ header: { jobId, round, momentum, errorFeedback: error } });
      for (let at = 0; at < values.length; at += CHUNK_ELEMENTS) {
        if (call.cancelled) return;
        const part = values.subarray(at, Math.min(values.length, at + CHUNK_ELEMENTS));
        await write({
          data: { offset: at, data: Buffer.from(part.buffer, part.byteOffset, part.byteLength) },
        });
      }
      rt.note(`worker ${identity.name} (${identity.id}) pulled its state entering round ${round}`);
      call.end();
    } catch (e) {
      failStream(call, e);
    } finally {
      release?.();
    }
  })();
}
