/**
 * Worker identity. RegisterWorker issues `<workerId>.<secret>`; only sha256(token) is stored. Every later call
 * is attributed to the worker its credential belongs to — never to an id written in a message body.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { StateStore, WorkerRecord } from './state/stateStore.ts';

export interface WorkerIdentity {
  id: string;
  name: string;
  capabilities: Record<string, unknown>;
}

export class Sessions {
  private readonly cache = new Map<string, { hash: Buffer; identity: WorkerIdentity }>();

  constructor(private readonly store: StateStore) {}

  async register(
    name: string,
    capabilities: Record<string, unknown>,
  ): Promise<{ identity: WorkerIdentity; token: string }> {
    const id = `w-${randomBytes(6).toString('hex')}`;
    const secret = randomBytes(24).toString('base64url');
    const token = `${id}.${secret}`;
    const hash = sha256(token);
    const record: WorkerRecord = {
      id,
      name: name || id,
      sessionHash: hash.toString('hex'),
      capabilities: JSON.stringify(capabilities),
      registeredAt: Date.now(),
    };
    await this.store.putWorker(record);
    const identity = { id, name: record.name, capabilities };
    this.cache.set(id, { hash, identity });
    return { identity, token };
  }

  /** Resolve a bearer token to its worker, or undefined if it is unknown or forged. */
  async verify(token: string): Promise<WorkerIdentity | undefined> {
    const dot = token.indexOf('.');
    if (dot <= 0) return undefined;
    const id = token.slice(0, dot);
    let entry = this.cache.get(id);
    if (!entry) {
      // After a coordinator restart the session lives on in a durable store.
      const record = await this.store.getWorker(id);
      if (!record) return undefined;
      let capabilities: Record<string, unknown>;
      try {
        capabilities = JSON.parse(record.capabilities) as Record<string, unknown>;
      } catch {
        capabilities = {};
      }
      entry = {
        hash: Buffer.from(record.sessionHash, 'hex'),
        identity: { id, name: record.name, capabilities },
      };
      this.cache.set(id, entry);
    }
    const presented = sha256(token);
    if (presented.length !== entry.hash.length || !timingSafeEqual(presented, entry.hash)) return undefined;
    return entry.identity;
  }
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}
