/**
 * Mapping between domain errors and precise gRPC statuses, so handlers never answer UNKNOWN, and what a client
 * may see of an error. Known errors (their messages are written for clients: short, no file paths) keep their
 * message; anything else reaches the client as `internal error (see coordinator log, ref <id>)` while the full
 * error and its stack go to the coordinator's log under the same ref.
 */
import * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { JobSpecError } from '../config/jobSpec.ts';
import { AggregationStalledError } from '../core/roundStep.ts';
import { DivergenceError } from '../core/round/divergenceGuard.ts';
import { JobFullError, NotParticipantError } from '../core/round/roundEngine.ts';
import { MemoryBudgetError } from './admission.ts';
import { NotLeaderError } from './leadership.ts';
import { StoreUnavailableError } from './state/stateStore.ts';

export class StatusError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
}

/** An error whose message is meant for clients (short, no paths, no internals). */
export class PublicError extends Error {}

let errorLog: (message: string) => void = (message) => console.error(message);

/** Where unexpected errors are logged with their ref (the coordinator's log; stderr until set). */
export function setInternalErrorLog(log: (message: string) => void): void {
  errorLog = log;
}

function knownMessage(e: unknown): string | undefined {
  if (
    e instanceof StatusError ||
    e instanceof PublicError ||
    e instanceof JobSpecError ||
    e instanceof NotParticipantError ||
    e instanceof JobFullError ||
    e instanceof AggregationStalledError ||
    e instanceof DivergenceError ||
    e instanceof NotLeaderError
  )
    return e.message;
  return undefined;
}

/** Log an unexpected error in full under a fresh ref; returns the short text a client may see. */
export function internalError(e: unknown, context: string): string {
  const ref = randomBytes(4).toString('hex');
  const full = e instanceof Error ? (e.stack ?? `${e.name}: ${e.message}`) : String(e);
  errorLog(`internal error ref ${ref} (${context}): ${full}`);
  return `internal error (see coordinator log, ref ${ref})`;
}

/** The message a client may see for `e`: its own if it is a known error, else a ref to the coordinator log. */
export function clientMessage(e: unknown, context: string): string {
  return knownMessage(e) ?? internalError(e, context);
}

export function toServiceError(e: unknown, context = 'rpc'): Partial<grpc.ServiceError> {
  if (e instanceof StatusError) return { code: e.code, details: e.message };
  if (e instanceof JobSpecError) return { code: grpc.status.INVALID_ARGUMENT, details: e.message };
  if (e instanceof NotParticipantError) return { code: grpc.status.FAILED_PRECONDITION, details: e.message };
  if (e instanceof JobFullError) return { code: grpc.status.RESOURCE_EXHAUSTED, details: e.message };
  if (e instanceof MemoryBudgetError) return { code: grpc.status.RESOURCE_EXHAUSTED, details: e.message };
  if (e instanceof NotLeaderError) return { code: grpc.status.UNAVAILABLE, details: e.message };
  // Retry later (workers move on to the next coordinator address, then back off): not a bug of the coordinator.
  if (e instanceof StoreUnavailableError)
    return {
      code: grpc.status.UNAVAILABLE,
      details: 'the coordinator cannot reach its state store; retry shortly',
    };
  if (e instanceof PublicError) return { code: grpc.status.FAILED_PRECONDITION, details: e.message };
  return { code: grpc.status.INTERNAL, details: internalError(e, context) };
}

/** Wrap an async unary handler so thrown errors become statuses. */
export function unary<Req, Res>(
  fn: (call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res>,
): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    fn(call).then(
      (res) => callback(null, res),
      (e: unknown) => callback(toServiceError(e, call.getPath()) as grpc.ServiceError),
    );
  };
}

/**
 * End a server-streaming call with the status for `e`. grpc-js sends a status only through the stream's 'error'
 * event (which records it and ends the stream); `destroy(err)` would tear the stream down without sending any, and
 * the client would wait for its deadline.
 */
export function failStream(call: grpc.ServerWritableStream<unknown, unknown>, e: unknown): void {
  if (call.destroyed || call.writableEnded) return;
  call.emit('error', toServiceError(e, call.getPath()));
}
