/**
 * TLS for every Phalanx endpoint, from PEM files. Server: a certificate and key, plus a CA whose presence turns
 * on mutual TLS (every client must present a certificate that CA signed). Client: the CA that signed the
 * server's certificate, plus its own certificate and key when the server wants mutual TLS.
 */
import * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';

export interface TlsFiles {
  /** PEM certificate (chain) of this side. */
  cert?: string;
  /** PEM private key of this side. */
  key?: string;
  /** PEM CA certificate: the server's CA (client) or the CA of client certificates (server: mutual TLS). */
  ca?: string;
}

/** A TLS setting that cannot work; the message names the flag. */
export class TlsConfigError extends Error {}

function read(file: string, flag: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new TlsConfigError(`${flag}: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? e}`);
  }
}

export function hasTls(files: TlsFiles | undefined): boolean {
  return Boolean(files && (files.cert || files.key || files.ca));
}

export function serverCredentials(files: TlsFiles | undefined): {
  credentials: grpc.ServerCredentials;
  tls: boolean;
  mutual: boolean;
} {
  if (!hasTls(files))
    return { credentials: grpc.ServerCredentials.createInsecure(), tls: false, mutual: false };
  const f = files!;
  if (!f.cert || !f.key)
    throw new TlsConfigError('--tls-cert and --tls-key: a TLS server needs both its certificate and its key');
  const ca = f.ca ? read(f.ca, '--tls-ca') : null;
  return {
    credentials: grpc.ServerCredentials.createSsl(
      ca,
      [{ cert_chain: read(f.cert, '--tls-cert'), private_key: read(f.key, '--tls-key') }],
      ca !== null,
    ),
    tls: true,
    mutual: ca !== null,
  };
}

export function channelCredentials(files: TlsFiles | undefined): grpc.ChannelCredentials {
  if (!hasTls(files)) return grpc.credentials.createInsecure();
  const f = files!;
  if (Boolean(f.cert) !== Boolean(f.key))
    throw new TlsConfigError('--tls-cert and --tls-key: a client certificate needs both files');
  return grpc.credentials.createSsl(
    f.ca ? read(f.ca, '--tls-ca') : null,
    f.key ? read(f.key, '--tls-key') : null,
    f.cert ? read(f.cert, '--tls-cert') : null,
  );
}

/** What a client presents: the channel's transport credentials and, optionally, a bearer token. */
export interface ClientAuth {
  credentials?: grpc.ChannelCredentials;
  token?: string;
}
