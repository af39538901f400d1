/**
 * Worker liveness: heartbeats, and the sweep that drops participants whose heartbeats stopped for longer than
 * their job's heartbeatTtl. The last-seen map is bounded: entries not refreshed for `forgetAfterMs` are dropped on
 * each sweep, and beyond `maxTracked` workers the least recently seen are evicted first.
 */
import type { StateStore } from './state/stateStore.ts';

/** What the sweep needs of a running job. */
export interface LivenessTarget {
  spec: { workers: { heartbeatTtl: number } };
  participantIds(): string[];
  leave(workerId: string, reason: string): void;
}

export interface LivenessOptions {
  /** Forget a worker not seen for this long (must exceed every job's heartbeatTtl). Default 10 min. */
  forgetAfterMs?: number;
  /** Most workers tracked at once. Default 65,536. */
  maxTracked?: number;
  clock?: () => number;
}

export class Liveness {
  /** Worker id → last heartbeat (ms), least recently seen first (Map insertion order). */
  private readonly lastSeen = new Map<string, number>();
  private readonly forgetAfterMs: number;
  private readonly maxTracked: number;
  private readonly clock: () => number;

  constructor(
    private readonly store: StateStore,
    options: LivenessOptions = {},
  ) {
    this.forgetAfterMs = options.forgetAfterMs ?? 10 * 60_000;
    this.maxTracked = options.maxTracked ?? 65_536;
    this.clock = options.clock ?? Date.now;
  }

  get tracked(): number {
    return this.lastSeen.size;
  }

  /** Record a heartbeat (also refreshes the durable liveness key). */
  async heartbeat(workerId: string, ttlMs: number): Promise<void> {
    this.seen(workerId, this.clock());
    await this.store.touchWorker(workerId, ttlMs);
  }

  /** Drop participants whose heartbeats stopped for longer than their job's heartbeatTtl. */
  sweep(targets: Iterable<LivenessTarget>): void {
    const now = this.clock();
    for (const rt of targets) {
      const ttl = rt.spec.workers.heartbeatTtl;
      for (const id of rt.participantIds()) {
        const seen = this.lastSeen.get(id);
        if (seen === undefined) {
          this.seen(id, now); // joined before this coordinator saw a heartbeat
        } else if (now - seen > ttl) {
          rt.leave(id, `heartbeat expired (${ttl} ms)`);
        }
      }
    }
    for (const [id, seen] of this.lastSeen) {
      if (now - seen <= this.forgetAfterMs) break; // the rest were seen more recently
      this.lastSeen.delete(id);
    }
  }

  private seen(workerId: string, at: number): void {
    this.lastSeen.delete(workerId);
    this.lastSeen.set(workerId, at);
    if (this.lastSeen.size > this.maxTracked) {
      const oldest = this.lastSeen.keys().next().value;
      if (oldest !== undefined) this.lastSeen.delete(oldest);
    }
  }
}
