/** State store registry: pick the implementation by kind. */
import { MemoryStateStore } from './memoryStore.ts';
import { RedisStateStore } from './redisStore.ts';
import type { StateStore } from './stateStore.ts';

export type StateStoreConfig = { kind: 'memory' } | { kind: 'redis'; url: string; keyPrefix?: string };

export function createStateStore(config: StateStoreConfig): StateStore {
  switch (config.kind) {
    case 'memory':
      return new MemoryStateStore();
    case 'redis':
      return new RedisStateStore(config.url, { keyPrefix: config.keyPrefix });
    default:
      throw new Error(`state: unknown store kind '${(config as { kind: unknown }).kind}'`);
  }
}

export { MemoryStateStore } from './memoryStore.ts';
export { RedisStateStore } from './redisStore.ts';
export type * from './stateStore.ts';
export { TERMINAL_JOB_STATES } from './stateStore.ts';
