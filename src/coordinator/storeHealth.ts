/**
 * Readiness follows the state store: the coordinator pings its store every `intervalMs` (one probe at a time,
 * each bounded by `timeoutMs`, so a store that hangs counts as down rather than stalling the check) and reports
 * each change between answering and not answering.
 */
import type { StateStore } from './state/stateStore.ts';

export interface StoreHealthOptions {
  intervalMs: number;
  timeoutMs: number;
  /** Called when the store starts or stops answering (not on every probe). */
  onChange(serving: boolean): void;
}

export class StoreHealthMonitor {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  /** Stopped for good: probes still in flight publish nothing. */
  private stopped = false;

  constructor(
    private readonly store: Pick<StateStore, 'ping'>,
    private readonly options: StoreHealthOptions,
    /** The status already published (the coordinator starts serving once the store connected). */
    private serving = true,
  ) {}

  get isServing(): boolean {
    return this.serving;
  }

  start(): void {
    if (this.running || this.stopped) return;
    this.running = true;
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    this.running = false;
    clearTimeout(this.timer);
  }

  /** One probe: true if the store answered within the time-out. Publishes a change of status. */
  async check(): Promise<boolean> {
    let timeout: NodeJS.Timeout | undefined;
    const answered = await Promise.race([
      this.store.ping().catch(() => false),
      new Promise<false>((resolve) => {
        timeout = setTimeout(() => resolve(false), this.options.timeoutMs);
      }),
    ]);
    clearTimeout(timeout);
    if (answered !== this.serving && !this.stopped) {
      this.serving = answered;
      this.options.onChange(answered);
    }
    return answered;
  }

  private schedule(): void {
    this.timer = setTimeout(() => {
      void this.check().finally(() => {
        if (this.running) this.schedule();
      });
    }, this.options.intervalMs);
    this.timer.unref?.();
  }
}
