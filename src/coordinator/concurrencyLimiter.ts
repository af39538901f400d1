/**
 * Caps how many calls of one kind a single caller may have open at once (streams it holds, watchers it runs), so
 * one credential cannot pin unbounded coordinator memory. Keys with no open call are forgotten: the map holds at
 * most one entry per open call.
 */
export class ConcurrencyLimiter {
  private readonly open = new Map<string, number>();

  constructor(
    /** Open calls allowed per key. */
    readonly perKey: number,
    /** Open calls allowed over all keys. */
    readonly total: number,
  ) {
    if (!(perKey >= 1 && total >= perKey)) throw new RangeError('limits must satisfy 1 <= perKey <= total');
  }

  private sum = 0;

  /** Claim a slot for `key`: a release function (idempotent), or undefined when a limit is reached. */
  acquire(key: string): (() => void) | undefined {
    const n = this.open.get(key) ?? 0;
    if (n >= this.perKey || this.sum >= this.total) return undefined;
    this.open.set(key, n + 1);
    this.sum++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.sum--;
      const left = (this.open.get(key) ?? 1) - 1;
      if (left <= 0) this.open.delete(key);
      else this.open.set(key, left);
    };
  }

  /** Open calls of `key` (all keys when omitted). */
  count(key?: string): number {
    return key === undefined ? this.sum : (this.open.get(key) ?? 0);
  }

  /** Keys with at least one open call. */
  get keys(): number {
    return this.open.size;
  }
}
