/**
 * Client credentials for every command that talks to a coordinator (worker, submit, jobs, status, watch,
 * cancel, token): TLS files and an access token. Flags > environment > the coordinator's admin token file.
 *
 *   --tls-ca FILE       verify the coordinator's certificate (turns TLS on)       PHALANX_TLS_CA
 *   --tls-cert/--tls-key  client certificate for mutual TLS                       PHALANX_TLS_CERT, PHALANX_TLS_KEY
 *   --token TOKEN       access token (enrollment token for workers)               PHALANX_TOKEN
 *   --token-file FILE   the same, read from a file                                PHALANX_TOKEN_FILE
 *   otherwise           <data dir>/admin.token if readable (a coordinator started in this directory)
 */
import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ADMIN_TOKEN_FILE } from '../coordinator/auth/tokens.ts';
import { DEFAULT_DATA_DIR } from '../coordinator/admission.ts';
import { channelCredentials, TlsConfigError, type ClientAuth, type TlsFiles } from '../transport/tls.ts';

const env = process.env;

export interface ClientAuthFlags {
  token?: string;
  tokenFile?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  dataDir?: string;
}

/** The flags a client command takes for TLS and its access token. */
export function addClientAuthOptions(cmd: Command): Command {
  return cmd
    .option('--token <token>', 'access token (env PHALANX_TOKEN; default: <data dir>/admin.token if present)')
    .option('--token-file <file>', 'read the access token from this file (env PHALANX_TOKEN_FILE)')
    .option(
      '--tls-ca <file>',
      "CA certificate that signed the coordinator's (turns TLS on)",
      env['PHALANX_TLS_CA'],
    )
    .option('--tls-cert <file>', 'client certificate for mutual TLS', env['PHALANX_TLS_CERT'])
    .option('--tls-key <file>', 'private key of the client certificate', env['PHALANX_TLS_KEY'])
    .option(
      '--data-dir <dir>',
      "a local coordinator's data directory (its admin token is used if no other is given)",
      env['PHALANX_DATA_DIR'] ?? DEFAULT_DATA_DIR,
    );
}

/** A credential setting that cannot work; the CLI exits 2 with this message. */
export class ClientAuthError extends Error {}

export function tlsFilesOf(flags: ClientAuthFlags): TlsFiles {
  return { cert: flags.tlsCert, key: flags.tlsKey, ca: flags.tlsCa };
}

export function resolveClientAuth(flags: ClientAuthFlags): ClientAuth {
  try {
    return { credentials: channelCredentials(tlsFilesOf(flags)), token: resolveToken(flags) };
  } catch (e) {
    if (e instanceof TlsConfigError) throw new ClientAuthError(e.message);
    throw e;
  }
}

function readToken(file: string, what: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (e) {
    throw new ClientAuthError(`${what}: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? e}`);
  }
  if (!text) throw new ClientAuthError(`${what}: ${file} is empty`);
  return text;
}

function resolveToken(flags: ClientAuthFlags): string | undefined {
  if (flags.token) return flags.token;
  if (flags.tokenFile) return readToken(flags.tokenFile, '--token-file');
  if (env['PHALANX_TOKEN']) return env['PHALANX_TOKEN'];
  if (env['PHALANX_TOKEN_FILE']) return readToken(env['PHALANX_TOKEN_FILE'], 'PHALANX_TOKEN_FILE');
  const local = path.join(flags.dataDir ?? DEFAULT_DATA_DIR, ADMIN_TOKEN_FILE);
  try {
    return readFileSync(local, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}
