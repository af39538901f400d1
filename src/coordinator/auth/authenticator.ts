/**
 * Authentication at the coordinator's edge: turns a call (its `authorization` metadata and, under mutual TLS,
 * its verified client certificate) into a Principal, and decides who may enroll as a worker under which name.
 *
 * Precedence: a bearer access token if one is sent (a bad one is refused, never ignored); otherwise the client
 * certificate (mutual TLS: CN = name, OU = role); otherwise, only on a coordinator started with
 * --insecure-open, the anonymous caller with every right. Anything else is UNAUTHENTICATED.
 */
import * as grpc from '@grpc/grpc-js';
import { AUTH_HEADER } from '../../transport/protocol.ts';
import { StatusError } from '../grpcStatus.ts';
import type { StateStore } from '../state/stateStore.ts';
import { mayEnrollWorkers, mayJoinJob, parseRole, type Principal, type Role } from './roles.ts';
import {
  isAccessToken,
  MAX_TOKEN_COUNT,
  mintToken,
  validateTokenRequest,
  verifyAccessToken,
} from './tokens.ts';
import type { IssuedToken, TokenRequest } from './tokens.ts';

/** What a handler needs of a gRPC call to authenticate it. */
export interface CallCredentials {
  metadata: grpc.Metadata;
  getAuthContext(): { sslPeerCertificate?: { subject?: Record<string, string | string[] | undefined> } };
}

export interface AuthMode {
  /** Client certificates are required and verified (coordinator started with --tls-ca). */
  mutualTls: boolean;
  /** No credentials needed: anyone is admin. For local experiments only. */
  insecureOpen: boolean;
}

/** How a worker may enroll: under which name, bound to which credential, admitting how many names. */
export interface Enrollment {
  name: string;
  /** `token:<id>` or `cert:<CN>`; undefined for open registration (no binding). */
  credential?: string;
  jobScope?: string;
  limit: number;
  expiresAt?: number;
}

/** Bounds on what RegisterWorker accepts. */
export const MAX_NAME_LENGTH = 64;
export const MAX_HOSTNAME_LENGTH = 253;
export const MAX_LABEL_LENGTH = 64;
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export interface RegistrationFields {
  name: string;
  capabilities?: { backend?: string; device?: string; hostname?: string; byzantine?: string } | null;
}

export class CoordinatorAuth {
  constructor(
    private readonly store: StateStore,
    readonly mode: AuthMode,
  ) {}

  /** The caller of a Jobs or Admin call. */
  async principal(call: CallCredentials): Promise<Principal> {
    const bearer = bearerOf(call.metadata);
    if (bearer !== undefined) {
      const record = isAccessToken(bearer) ? await verifyAccessToken(this.store, bearer) : undefined;
      if (!record)
        throw new StatusError(grpc.status.UNAUTHENTICATED, 'unknown, expired or invalid access token');
      return {
        id: `token:${record.id}`,
        role: record.role,
        ...(record.jobId ? { jobId: record.jobId } : {}),
      };
    }
    const cert = this.certificate(call);
    if (cert) {
      if (!cert.role)
        throw new StatusError(
          grpc.status.PERMISSION_DENIED,
          `certificate '${cert.name}' carries no role (OU must be admin, submitter, viewer or worker)`,
        );
      return { id: `cert:${cert.name}`, role: cert.role };
    }
    if (this.mode.insecureOpen) return { id: 'anonymous', role: 'admin' };
    throw new StatusError(
      grpc.status.UNAUTHENTICATED,
      this.mode.mutualTls
        ? 'missing credential: present a client certificate or an access token'
        : 'missing credential: send an access token (authorization: Bearer <token>)',
    );
  }

  /**
   * Who is registering. Under mutual TLS a worker certificate is the identity (its CN is the name, whatever the
   * request says); otherwise an enrollment token (role worker, or admin) admits the requested name.
   */
  async enrollment(call: CallCredentials, request: RegistrationFields): Promise<Enrollment> {
    const cert = this.certificate(call);
    if (cert?.role === 'worker') {
      checkName(cert.name, 'certificate CN');
      return { name: cert.name, credential: `cert:${cert.name}`, limit: 1 };
    }
    checkName(request.name, 'name');
    const bearer = bearerOf(call.metadata);
    if (bearer === undefined && !cert && this.mode.insecureOpen)
      return { name: request.name, limit: MAX_TOKEN_COUNT };
    const principal = await this.principal(call);
    if (!mayEnrollWorkers(principal))
      throw new StatusError(
        grpc.status.PERMISSION_DENIED,
        `a ${principal.role} credential cannot enroll workers`,
      );
    if (principal.id.startsWith('token:')) {
      const record = (await this.store.getAccessToken(principal.id.slice('token:'.length)))!;
      return {
        name: request.name,
        credential: principal.id,
        jobScope: record.jobId,
        limit: record.role === 'admin' ? MAX_TOKEN_COUNT : record.count,
        expiresAt: record.expiresAt,
      };
    }
    // An admin certificate (or the anonymous admin) enrolls any number of names, each bound to it.
    return { name: request.name, credential: principal.id, limit: MAX_TOKEN_COUNT };
  }

  /** Under mutual TLS a session enrolled by certificate is only good on a connection with that certificate. */
  checkSessionPeer(call: CallCredentials, enrollment: string | undefined): void {
    if (!enrollment?.startsWith('cert:')) return;
    const cert = this.certificate(call);
    if (cert?.name !== enrollment.slice('cert:'.length))
      throw new StatusError(
        grpc.status.UNAUTHENTICATED,
        'session credential presented with another certificate',
      );
  }

  checkJoin(jobScope: string | undefined, jobId: string): void {
    if (!mayJoinJob(jobScope, jobId))
      throw new StatusError(
        grpc.status.PERMISSION_DENIED,
        `this worker is enrolled for job '${jobScope}' only`,
      );
  }

  /** Issue and store an access token (the caller has checked the issuer may). */
  async issue(request: TokenRequest): Promise<IssuedToken> {
    const valid = validateTokenRequest(request);
    const issued = mintToken(valid, Date.now());
    await this.store.putAccessToken(issued.record);
    return issued;
  }

  private certificate(call: CallCredentials): { name: string; role?: Role } | undefined {
    if (!this.mode.mutualTls) return undefined;
    const subject = call.getAuthContext().sslPeerCertificate?.subject;
    const cn = first(subject?.['CN']);
    if (!cn) return undefined;
    return { name: cn, role: parseRole(first(subject?.['OU'])) };
  }
}

export function validateRegistration(request: RegistrationFields): void {
  const caps = request.capabilities ?? {};
  if ((caps.hostname ?? '').length > MAX_HOSTNAME_LENGTH)
    throw new StatusError(
      grpc.status.INVALID_ARGUMENT,
      `hostname longer than ${MAX_HOSTNAME_LENGTH} characters`,
    );
  for (const field of ['backend', 'device', 'byzantine'] as const) {
    if ((caps[field] ?? '').length > MAX_LABEL_LENGTH)
      throw new StatusError(
        grpc.status.INVALID_ARGUMENT,
        `${field} longer than ${MAX_LABEL_LENGTH} characters`,
      );
  }
}

function checkName(name: string, what: string): void {
  if (!name) throw new StatusError(grpc.status.INVALID_ARGUMENT, `${what} is required (e.g. worker-3)`);
  if (name.length > MAX_NAME_LENGTH)
    throw new StatusError(grpc.status.INVALID_ARGUMENT, `${what} longer than ${MAX_NAME_LENGTH} characters`);
  if (!NAME_PATTERN.test(name))
    throw new StatusError(
      grpc.status.INVALID_ARGUMENT,
      `${what} may only use letters, digits, '.', '_' and '-'`,
    );
}

function bearerOf(metadata: grpc.Metadata): string | undefined {
  const value = metadata.get(AUTH_HEADER)[0];
  const text = typeof value === 'string' ? value : value?.toString('utf8');
  if (text === undefined) return undefined;
  return text.startsWith('Bearer ') ? text.slice(7).trim() : text.trim();
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
