/** gRPC adapter for phalanx.v1.Admin: operator tasks, admin credential only. */
import * as grpc from '@grpc/grpc-js';
import type { AdminHandlers } from '../gen/phalanx/v1/Admin.ts';
import type { StateStore } from './state/stateStore.ts';
import { StatusError, unary } from './grpcStatus.ts';
import type { CoordinatorAuth } from './auth/authenticator.ts';
import { requireAdmin } from './auth/access.ts';
import { TokenRequestError, validateTokenRequest } from './auth/tokens.ts';

export function adminHandlers(store: StateStore, auth: CoordinatorAuth): AdminHandlers {
  return {
    CreateToken: unary(async (call) => {
      requireAdmin(await auth.principal(call));
      const { role, jobId, count, ttlMs } = call.request;
      try {
        validateTokenRequest({ role, jobId, count, ttlMs });
        if (jobId && !(await store.getJob(jobId)))
          throw new StatusError(grpc.status.NOT_FOUND, `job '${jobId}' not found`);
        const { token, record } = await auth.issue({ role, jobId, count, ttlMs });
        return {
          token,
          tokenId: record.id,
          role: record.role,
          jobId: record.jobId ?? '',
          count: record.count,
          expiresAtMs: record.expiresAt ?? 0,
        };
      } catch (e) {
        if (e instanceof TokenRequestError) throw new StatusError(grpc.status.INVALID_ARGUMENT, e.message);
        throw e;
      }
    }),
    RevokeToken: unary(async (call) => {
      requireAdmin(await auth.principal(call));
      const id = call.request.tokenId;
      if (!/^t-[0-9a-f]{16}$/.test(id))
        throw new StatusError(grpc.status.INVALID_ARGUMENT, 'token_id must look like t-<16 hex digits>');
      if (!(await store.revokeAccessToken(id)))
        throw new StatusError(grpc.status.NOT_FOUND, `token '${id}' not found (or already expired)`);
      return {};
    }),
  };
}
