/**
 * Operator-issued access tokens: `t-<id>.<secret>`, where the id names the stored record and the secret is 24
 * random bytes. Only sha256(token) is stored; a presented token is checked in constant time. Worker session
 * credentials (`w-<id>.<secret>`, see sessions.ts) are a different kind and never pass as access tokens.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { AccessTokenRecord, StateStore } from '../state/stateStore.ts';
import { parseRole, type Role } from './roles.ts';
import { StartupError } from '../startupError.ts';

const TOKEN_PATTERN = /^(t-[0-9a-f]{16})\.[A-Za-z0-9_-]{32}$/;
/** Most worker identities one token may admit, and the longest lifetime it may have. */
export const MAX_TOKEN_COUNT = 10_000;
export const MAX_TOKEN_TTL_MS = 366 * 24 * 3600 * 1000;
export const DEFAULT_TOKEN_TTL_MS = 24 * 3600 * 1000;
export const ADMIN_TOKEN_FILE = 'admin.token';

export interface TokenRequest {
  role: string;
  jobId?: string;
  count?: number;
  ttlMs?: number;
}

/** A token request that breaks a rule; the message names the field. */
export class TokenRequestError extends Error {}

export interface IssuedToken {
  token: string;
  record: AccessTokenRecord;
}

/** Check a request and fill in defaults: count only for worker tokens, a job only for worker and viewer. */
export function validateTokenRequest(
  req: TokenRequest,
): Required<Pick<TokenRequest, 'count' | 'ttlMs'>> & { role: Role; jobId?: string } {
  const role = parseRole(req.role);
  if (!role)
    throw new TokenRequestError(`role must be one of admin, submitter, viewer, worker (got '${req.role}')`);
  const jobId = req.jobId || undefined;
  if (jobId !== undefined && role !== 'worker' && role !== 'viewer')
    throw new TokenRequestError(`job: only worker and viewer tokens name a job (role ${role})`);
  if (jobId !== undefined && !/^[A-Za-z0-9._-]{1,128}$/.test(jobId))
    throw new TokenRequestError('job: not a job id');
  const count = req.count || 1;
  if (!Number.isInteger(count) || count < 1 || count > MAX_TOKEN_COUNT)
    throw new TokenRequestError(`count must be an integer in [1, ${MAX_TOKEN_COUNT}] (got ${req.count})`);
  if (count !== 1 && role !== 'worker')
    throw new TokenRequestError(`count: only worker tokens admit several identities (role ${role})`);
  const ttlMs = req.ttlMs || DEFAULT_TOKEN_TTL_MS;
  if (!Number.isFinite(ttlMs) || ttlMs < 1000 || ttlMs > MAX_TOKEN_TTL_MS)
    throw new TokenRequestError(`ttl must be between 1s and 366d (got ${req.ttlMs} ms)`);
  return { role, jobId, count, ttlMs };
}

export function mintToken(
  req: { role: Role; jobId?: string; count: number; ttlMs?: number },
  now: number,
): IssuedToken {
  const id = `t-${randomBytes(8).toString('hex')}`;
  const token = `${id}.${randomBytes(24).toString('base64url')}`;
  const record: AccessTokenRecord = {
    id,
    hash: sha256Hex(token),
    role: req.role,
    count: req.count,
    createdAt: now,
    ...(req.jobId !== undefined ? { jobId: req.jobId } : {}),
    ...(req.ttlMs !== undefined ? { expiresAt: now + req.ttlMs } : {}),
  };
  return { token, record };
}

export function isAccessToken(text: string): boolean {
  return TOKEN_PATTERN.test(text);
}

/** The record of a well-formed, known, unexpired token whose secret matches; else undefined. */
export async function verifyAccessToken(
  store: StateStore,
  token: string,
): Promise<AccessTokenRecord | undefined> {
  const m = TOKEN_PATTERN.exec(token);
  if (!m) return undefined;
  const record = await store.getAccessToken(m[1]);
  if (!record) return undefined;
  const expected = Buffer.from(record.hash, 'hex');
  const presented = createHash('sha256').update(token).digest();
  if (expected.length !== presented.length || !timingSafeEqual(expected, presented)) return undefined;
  if (record.expiresAt !== undefined && record.expiresAt <= Date.now()) return undefined;
  return record;
}

/**
 * The coordinator's admin token lives in `<dataDir>/admin.token` (mode 0600). The first start creates it; every
 * start (re)registers its hash, so a coordinator on the memory store keeps working after a restart.
 */
export async function ensureAdminToken(
  store: StateStore,
  dataDir: string,
): Promise<{ path: string; token: string; created: boolean; looseMode: boolean }> {
  const file = path.resolve(dataDir, ADMIN_TOKEN_FILE);
  let token: string | undefined;
  let created = false;
  // A data directory the coordinator cannot use is a setup mistake: said in one line (StartupError).
  try {
    try {
      token = readFileSync(file, 'utf8').trim();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    if (token === undefined) {
      mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
      token = mintToken({ role: 'admin', count: MAX_TOKEN_COUNT }, Date.now()).token;
      writeFileSync(file, `${token}\n`, { mode: 0o600, flag: 'wx' });
      chmodSync(file, 0o600);
      created = true;
    }
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code !== 'string') throw e;
    throw new StartupError(
      `data dir ${dataDir}: cannot use ${file} (${code}; see --data-dir / PHALANX_DATA_DIR)`,
    );
  }
  const m = TOKEN_PATTERN.exec(token);
  if (!m)
    throw new StartupError(
      `${file} does not hold a Phalanx admin token: delete it to have a new one created`,
    );
  await store.putAccessToken({
    id: m[1],
    hash: sha256Hex(token),
    role: 'admin',
    count: MAX_TOKEN_COUNT,
    createdAt: Date.now(),
  });
  const looseMode = (statSync(file).mode & 0o077) !== 0;
  return { path: file, token, created, looseMode };
}

function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
