/** Mapping between domain errors and precise gRPC statuses, so handlers never answer UNKNOWN. */
import * as grpc from '@grpc/grpc-js';
import { JobSpecError } from '../config/jobSpec.ts';
import { JobFullError, NotParticipantError } from './jobRuntime.ts';
import { MemoryBudgetError } from './admission.ts';

export class StatusError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
}

export function toServiceError(e: unknown): Partial<grpc.ServiceError> {
  if (e instanceof StatusError) return { code: e.code, details: e.message };
  if (e instanceof JobSpecError) return { code: grpc.status.INVALID_ARGUMENT, details: e.message };
  if (e instanceof NotParticipantError) return { code: grpc.status.FAILED_PRECONDITION, details: e.message };
  if (e instanceof JobFullError) return { code: grpc.status.RESOURCE_EXHAUSTED, details: e.message };
  if (e instanceof MemoryBudgetError) return { code: grpc.status.RESOURCE_EXHAUSTED, details: e.message };
  const message = e instanceof Error ? e.message : String(e);
  return { code: grpc.status.INTERNAL, details: message };
}

/** Wrap an async unary handler so thrown errors become statuses. */
export function unary<Req, Res>(
  fn: (call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res>,
): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    fn(call).then(
      (res) => callback(null, res),
      (e: unknown) => callback(toServiceError(e) as grpc.ServiceError),
    );
  };
}
