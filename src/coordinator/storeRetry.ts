/**
 * Waiting out a store that does not answer. A running job's writes (a round's commit, a checkpoint's manifest,
 * its completion) cannot be skipped: the job pauses at that write and tries it again, with exponential backoff,
 * while the store is unavailable (StoreUnavailableError) and `proceed` allows it. Any other error ends the wait
 * at once: a refused fencing token or a lease that ran out (the write itself checks the lease first, so a leader
 * that lost its lease while waiting stops before it writes), or a reply that repeating will not change.
 */
import { StoreUnavailableError } from './state/stateStore.ts';

export interface StoreWait {
  /** Failed attempts so far (the store did not answer). */
  failedAttempts: number;
  /** Since the first attempt began (ms). */
  waitedMs: number;
  /** The newest failure's message. */
  lastError: string;
}

export interface RetryOptions {
  /** False once the write is not wanted any more (the runtime ended): the wait ends with the newest failure. */
  proceed(): boolean;
  /** After each failed attempt, before the pause. */
  onUnavailable(wait: StoreWait): void;
  /** First pause; doubled after each failure up to maxDelayMs. */
  initialDelayMs?: number;
  maxDelayMs?: number;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

/** Pause before attempt n + 1 after n ≥ 1 failures: initial · 2^(n−1), at most max. */
export function backoffDelay(failures: number, initialMs: number, maxMs: number): number {
  return Math.min(maxMs, initialMs * 2 ** Math.max(0, failures - 1));
}

/**
 * Run `write` until it succeeds; resolves with its value and the wait it took (undefined: the first attempt
 * succeeded).
 */
export async function retryWhileUnavailable<T>(
  write: () => Promise<T>,
  options: RetryOptions,
): Promise<{ value: T; wait: StoreWait | undefined }> {
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const initial = options.initialDelayMs ?? 200;
  const max = options.maxDelayMs ?? 2000;
  const started = now();
  let wait: StoreWait | undefined;
  for (;;) {
    try {
      return { value: await write(), wait };
    } catch (e) {
      if (!(e instanceof StoreUnavailableError) || !options.proceed()) throw e;
      wait = {
        failedAttempts: (wait?.failedAttempts ?? 0) + 1,
        waitedMs: now() - started,
        lastError: e.message,
      };
      options.onUnavailable(wait);
    }
    await sleep(backoffDelay(wait.failedAttempts, initial, max));
    if (!options.proceed())
      throw new StoreUnavailableError(`gave up waiting for the store: ${wait.lastError}`);
  }
}
