/**
 * Services only the leader answers (Coordinator, Jobs): on a standby every call ends at once with UNAVAILABLE and
 * a message naming the leader, so workers and clients move on to the next coordinator address.
 */
import type * as grpc from '@grpc/grpc-js';
import { toServiceError } from './grpcStatus.ts';

type AnyHandler = (
  call: { emit(event: 'error', status: unknown): boolean },
  callback?: (err: Partial<grpc.ServiceError>) => void,
) => void;

export function leaderOnly<H extends object>(handlers: H, gate: { assertLeading(): void }): H {
  const gated: Record<string, AnyHandler> = {};
  for (const [name, handler] of Object.entries(handlers) as [string, AnyHandler][]) {
    gated[name] = (call, callback) => {
      try {
        gate.assertLeading();
      } catch (e) {
        const status = toServiceError(e, name);
        // Unary and client-streaming calls answer through their callback; streaming responses through 'error'.
        if (typeof callback === 'function') callback(status);
        else call.emit('error', status);
        return;
      }
      handler(call, callback);
    };
  }
  return gated as H;
}
