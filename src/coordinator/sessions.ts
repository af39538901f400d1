/**
 * Worker identity. RegisterWorker issues `<workerId>.<secret>`; only sha256(token) is stored. Every later call
 * is attributed to the worker its credential belongs to — never to an id written in a message body. Verified
 * sessions are cached in a bounded LRU map, so forged ids cannot grow memory.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { LruMap } from './boundedMap.ts';
import type { StateStore, WorkerRecord } from './state/stateStore.ts';

export interface WorkerIdentity {
  id: string;
  name: string;
  capabilities: Record<string, unknown>;
  /** The credential the worker enrolled with (`token:<id>`, `cert:<CN>`), if any. */
  enrollment?: string;
  /** The only job this worker may join, if its enrollment names one. */
  jobScope?: string;
}

/** Sessions kept in memory; older ones are re-read from the store on use. */
export const SESSION_CACHE_SIZE = 10_000;

export class Sessions {
  private readonly cache: LruMap<string, { hash: Buffer; identity: WorkerIdentity }>;

  constructor(
    private readonly store: StateStore,
    cacheSize = SESSION_CACHE_SIZE,
  ) {
    this.cache = new LruMap(cacheSize);
  }

  newWorkerId(): string {
    return `w-${randomBytes(6).toString('hex')}`;
  }

  async register(
    name: string,
    capabilities: Record<string, unknown>,
    enrollment: { id?: string; enrollment?: string; jobScope?: string } = {},
  ): Promise<{ identity: WorkerIdentity; token: string }> {
    const id = enrollment.id ?? this.newWorkerId();
    const secret = randomBytes(24).toString('base64url');
    const token = `${id}.${secret}`;
    const hash = sha256(token);
    const record: WorkerRecord = {
      id,
      name: name || id,
      sessionHash: hash.toString('hex'),
      capabilities: JSON.stringify(capabilities),
      registeredAt: Date.now(),
      ...(enrollment.enrollment !== undefined ? { enrollment: enrollment.enrollment } : {}),
      ...(enrollment.jobScope !== undefined ? { jobScope: enrollment.jobScope } : {}),
    };
    await this.store.putWorker(record);
    const identity = toIdentity(record, capabilities);
    this.cache.set(id, { hash, identity });
    return { identity, token };
  }

  /** End a worker's session (its name was registered again by the same credential). */
  async revoke(id: string): Promise<void> {
    this.cache.delete(id);
    await this.store.removeWorker(id);
  }

  /** Resolve a bearer token to its worker, or undefined if it is unknown or forged. */
  async verify(token: string): Promise<WorkerIdentity | undefined> {
    const dot = token.indexOf('.');
    if (dot <= 0 || !token.startsWith('w-')) return undefined;
    const id = token.slice(0, dot);
    let entry = this.cache.get(id);
    if (!entry) {
      // After a coordinator restart (or an eviction) the session lives on in the store.
      const record = await this.store.getWorker(id);
      if (!record) return undefined;
      let capabilities: Record<string, unknown>;
      try {
        capabilities = JSON.parse(record.capabilities) as Record<string, unknown>;
      } catch {
        capabilities = {};
      }
      entry = { hash: Buffer.from(record.sessionHash, 'hex'), identity: toIdentity(record, capabilities) };
      // Only verified sessions enter the cache.
      const presented = sha256(token);
      if (presented.length !== entry.hash.length || !timingSafeEqual(presented, entry.hash)) return undefined;
      this.cache.set(id, entry);
      return entry.identity;
    }
    const presented = sha256(token);
    if (presented.length !== entry.hash.length || !timingSafeEqual(presented, entry.hash)) return undefined;
    return entry.identity;
  }
}

function toIdentity(record: WorkerRecord, capabilities: Record<string, unknown>): WorkerIdentity {
  return {
    id: record.id,
    name: record.name,
    capabilities,
    ...(record.enrollment !== undefined ? { enrollment: record.enrollment } : {}),
    ...(record.jobScope !== undefined ? { jobScope: record.jobScope } : {}),
  };
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}
