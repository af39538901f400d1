/**
 * A Map with a fixed capacity and least-recently-used eviction: `get` and `set` make an entry the most recent,
 * and inserting past the capacity drops the least recent one. Used for caches whose keys come from the network
 * (session credentials), so that no sequence of requests can grow them without bound.
 */
export class LruMap<K, V> {
  // A Map iterates in insertion order; re-inserting on access keeps the least recent entry first.
  private readonly entries = new Map<K, V>();

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new Error(`LruMap: capacity must be a positive integer, got ${capacity}`);
  }

  get size(): number {
    return this.entries.size;
  }

  get(key: K): V | undefined {
    const value = this.entries.get(key);
    if (value === undefined) return undefined;
    this.entries.delete(key);
    this.entries.set(key, value);
    return value;
  }

  has(key: K): boolean {
    return this.entries.has(key);
  }

  set(key: K, value: V): this {
    this.entries.delete(key);
    this.entries.set(key, value);
    while (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next().value as K;
      this.entries.delete(oldest);
    }
    return this;
  }

  /** Every entry, least recent first, without touching recency. */
  all(): IterableIterator<[K, V]> {
    return this.entries.entries();
  }

  delete(key: K): boolean {
    return this.entries.delete(key);
  }
}
