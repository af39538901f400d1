/**
 * Who is asking the dashboard: the same principals as the gRPC services (auth/authenticator.ts), from an HTTP
 * request. A token comes from `Authorization: Bearer <token>`, else a `?token=` query parameter (a page then
 * moves it into a cookie and redirects to the URL without it), else that cookie. Under mutual TLS a browser may
 * instead present a client certificate signed by the coordinator's CA (OU = role, as for gRPC clients).
 */
import * as grpc from '@grpc/grpc-js';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { AUTH_HEADER } from '../../transport/protocol.ts';
import type { CallCredentials, CoordinatorAuth } from '../auth/authenticator.ts';
import type { Principal } from '../auth/roles.ts';
import { StatusError } from '../grpcStatus.ts';

/** Where the token of a request came from; `query` asks the page to set the cookie and redirect. */
export interface RequestToken {
  token: string;
  source: 'header' | 'query' | 'cookie';
}

/** The cookie holding the token; named by port, since browsers share cookies between the ports of a host. */
export function cookieName(port: number): string {
  return `phalanx_dashboard_${port}`;
}

export function requestToken(
  headers: IncomingMessage['headers'],
  url: URL,
  cookie: string,
): RequestToken | undefined {
  const auth = headers.authorization;
  if (auth !== undefined) return { token: auth.replace(/^Bearer\s+/i, '').trim(), source: 'header' };
  const query = url.searchParams.get('token');
  if (query !== null) return { token: query.trim(), source: 'query' };
  const fromCookie = parseCookies(headers.cookie ?? '').get(cookie);
  if (fromCookie !== undefined) return { token: fromCookie, source: 'cookie' };
  return undefined;
}

export function parseCookies(header: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i <= 0) continue;
    const value = part.slice(i + 1).trim();
    try {
      out.set(part.slice(0, i).trim(), decodeURIComponent(value));
    } catch {
      // A malformed value is ignored, as if the cookie were absent.
    }
  }
  return out;
}

/** The caller's principal; throws StatusError (UNAUTHENTICATED, PERMISSION_DENIED) as the gRPC services do. */
export async function principalOf(
  auth: CoordinatorAuth,
  req: IncomingMessage,
  token: RequestToken | undefined,
): Promise<Principal> {
  const metadata = new grpc.Metadata();
  if (token) metadata.set(AUTH_HEADER, `Bearer ${token.token}`);
  const socket = req.socket as Partial<TLSSocket>;
  // Only a certificate the TLS layer verified against the CA counts.
  const peer = socket.authorized ? socket.getPeerCertificate?.() : undefined;
  const call: CallCredentials = {
    metadata,
    getAuthContext: () =>
      peer?.subject
        ? { sslPeerCertificate: { subject: peer.subject as unknown as Record<string, string> } }
        : {},
  };
  return auth.principal(call);
}

/** HTTP status of an authentication or authorization failure. */
export function httpStatusOf(e: unknown): number {
  if (!(e instanceof StatusError)) return 500;
  switch (e.code) {
    case grpc.status.UNAUTHENTICATED:
      return 401;
    case grpc.status.PERMISSION_DENIED:
      return 403;
    case grpc.status.NOT_FOUND:
      return 404;
    case grpc.status.RESOURCE_EXHAUSTED:
      return 429;
    default:
      return 500;
  }
}
