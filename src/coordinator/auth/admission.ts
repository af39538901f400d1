/**
 * RegisterWorker's admission: who the caller is (authenticator), whether its credential may bind this name
 * (the store's atomic name binding), then a session for the new identity. A name stays bound to the credential
 * that first registered it; registering it again with that credential supersedes the old session.
 */
import * as grpc from '@grpc/grpc-js';
import { StatusError } from '../grpcStatus.ts';
import type { Sessions, WorkerIdentity } from '../sessions.ts';
import type { StateStore } from '../state/stateStore.ts';
import {
  validateRegistration,
  type CallCredentials,
  type CoordinatorAuth,
  type RegistrationFields,
} from './authenticator.ts';

export async function admitWorker(
  auth: CoordinatorAuth,
  sessions: Sessions,
  store: StateStore,
  call: CallCredentials,
  request: RegistrationFields,
  capabilities: Record<string, unknown>,
): Promise<{ identity: WorkerIdentity; token: string }> {
  validateRegistration(request);
  const enrollment = await auth.enrollment(call, request);
  const id = sessions.newWorkerId();
  if (enrollment.credential !== undefined) {
    const binding = await store.bindWorkerName(
      enrollment.name,
      enrollment.credential,
      id,
      enrollment.limit,
      enrollment.expiresAt,
    );
    if (binding.status === 'taken')
      throw new StatusError(
        grpc.status.PERMISSION_DENIED,
        `worker name '${enrollment.name}' is bound to another credential`,
      );
    if (binding.status === 'exhausted')
      throw new StatusError(
        grpc.status.RESOURCE_EXHAUSTED,
        `this enrollment admits ${enrollment.limit} worker name(s) and all are bound`,
      );
    if (binding.status === 'rebound') await sessions.revoke(binding.previousWorker);
  }
  return sessions.register(enrollment.name, capabilities, {
    id,
    enrollment: enrollment.credential,
    jobScope: enrollment.jobScope,
  });
}
