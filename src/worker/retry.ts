/**
 * How a worker waits before it tries the coordinator again: exponential backoff with jitter and a cap, a sleep
 * that an abort ends early (and that leaves no listener behind), and the reason a call could not reach the
 * coordinator in a few words.
 */
import * as grpc from '@grpc/grpc-js';

/**
 * Delays base·2ᵏ capped at `max`, each drawn uniformly from [d/2, d] ("equal jitter") so that workers which lost
 * the coordinator together do not come back in lockstep.
 */
export class Backoff {
  private attempt = 0;
  constructor(
    private readonly base = 1000,
    private readonly max = 30_000,
    private readonly random: () => number = Math.random,
  ) {}

  next(): number {
    const ms = Math.min(this.max, this.base * 2 ** Math.min(this.attempt++, 30));
    return ms / 2 + this.random() * (ms / 2);
  }

  reset(): void {
    this.attempt = 0;
  }
}

/** Resolves after `ms`, or at once when `signal` aborts; the abort listener is removed either way. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** A delay as people read it: 0.4s, 3.7s, 12s. */
export function formatDelay(ms: number): string {
  const s = ms / 1000;
  return s < 10 ? `${s.toFixed(1)}s` : `${Math.round(s)}s`;
}

/**
 * Why a call could not reach the coordinator: the socket error (ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH …) that
 * grpc-js reports inside its details, a failed name resolution, or the status name.
 */
export function unreachableReason(e: unknown): string {
  const se = e as Partial<grpc.ServiceError>;
  const details = se.details ?? se.message ?? '';
  const errno = /\b(E[A-Z]{4,})\b/.exec(details);
  if (errno) return errno[1];
  if (/name resolution failed|ENOTFOUND|getaddrinfo/i.test(details)) return 'name resolution failed';
  return typeof se.code === 'number' ? grpc.status[se.code] : details || 'unknown error';
}
