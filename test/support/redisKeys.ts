/** Test clean-up: delete every Redis key under a test's prefix. */
import { Redis } from 'ioredis';

export const TEST_REDIS_URL = process.env['PHALANX_TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379';

/** Deletes the keys `prefix*` through `admin`, or through a short-lived connection to the test Redis. */
export async function dropKeys(prefix: string, admin?: Redis): Promise<void> {
  const client = admin ?? new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 1 });
  try {
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      if (keys.length > 0) await client.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    if (!admin) await client.quit();
  }
}
