/**
 * Leader election among coordinators sharing one state store: a lease (SET NX PX in Redis) with a fencing token
 * that grows with every acquisition. Only the holder runs jobs; the others stand by and try to take the lease
 * every `pollMs`. The holder renews every `renewMs`.
 *
 * The holder counts its lease from the moment it *sent* the acquire or renew (the store starts the TTL later, so
 * this errs towards giving up early) on the monotonic clock, which keeps running while the process is stopped:
 * a leader that was SIGSTOPped for longer than the TTL knows on waking that it may no longer lead, before it
 * hears from the store. Its writes carry its token anyway, and the store refuses a stale one (stateStore.ts).
 */
import { performance } from 'node:perf_hooks';
import { z } from 'zod';
import { parseDuration } from '../config/duration.ts';
import { TypedEmitter } from './typedEmitter.ts';
import type { LeaseHolder, StateStore } from './state/stateStore.ts';

const duration = z.union([z.number(), z.string()]).transform((v, ctx) => {
  try {
    return parseDuration(v);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: (e as Error).message });
    return z.NEVER;
  }
});

export const leaseConfigSchema = z
  .object({
    /** The lease's name in the store: coordinators that share it elect one leader. */
    name: z
      .string()
      .regex(/^[A-Za-z0-9._-]+$/, 'use letters, digits, . _ -')
      .default('coordinator'),
    /** How long a lease lives without renewal: the longest a dead leader's jobs wait for the standby. */
    ttl: duration.default(5000),
    /** How often the leader renews. */
    renew: duration.default(1000),
    /** How often a standby tries to take the lease. */
    poll: duration.default(500),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.ttl < 200) ctx.addIssue({ code: 'custom', path: ['ttl'], message: 'must be at least 200ms' });
    if (c.renew < 10 || c.renew * 2 > c.ttl)
      ctx.addIssue({
        code: 'custom',
        path: ['renew'],
        message: `must be between 10ms and half of ttl (${c.ttl}ms), so one failed renewal can be retried before the lease expires; lower renew or raise ttl`,
      });
    if (c.poll < 10 || c.poll > c.ttl)
      ctx.addIssue({ code: 'custom', path: ['poll'], message: `must be between 10ms and ttl (${c.ttl}ms)` });
  });

export type LeaseConfig = z.output<typeof leaseConfigSchema>;
export type LeaseConfigInput = z.input<typeof leaseConfigSchema>;

/**
 * Validate lease settings; the error names each bad field (`lease.renew: …`, or as `label` spells it, e.g. the
 * CLI's `--lease-renew`) and the fix.
 */
export function parseLeaseConfig(
  input: LeaseConfigInput = {},
  label: (field: string) => string = (field) => `lease.${field}`,
): LeaseConfig {
  const r = leaseConfigSchema.safeParse(input);
  if (r.success) return r.data;
  throw new LeaseConfigError(
    r.error.issues.map((i) => `${label(i.path.join('.') || '(root)')}: ${i.message}`).join('; '),
  );
}

export class LeaseConfigError extends Error {}

/** This coordinator does not hold the lease (any more): it must not write job state. */
export class NotLeaderError extends Error {
  constructor(reason: string) {
    super(`not the leader: ${reason}`);
    this.name = 'NotLeaderError';
  }
}

export type LeadershipEvents = {
  /** The lease is ours under `token`: run jobs. */
  elected: (token: number) => void;
  /** The lease held under `token` is lost: stop running jobs at once. */
  deposed: (token: number, reason: string) => void;
};

export type LeaseStore = Pick<StateStore, 'acquireLease' | 'renewLease' | 'releaseLease' | 'getLease'>;

export class Leadership extends TypedEmitter<LeadershipEvents> {
  private token: number | undefined;
  /** Monotonic time (ms) until which the lease held under `token` is certainly ours. */
  private heldUntil = 0;
  private holder: LeaseHolder | undefined;
  /** The leader last named in the log. */
  private logged: LeaseHolder | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Fires when the held lease runs out: a renewal stuck on an unreachable store must not keep us leading. */
  private expiry: NodeJS.Timeout | undefined;
  private stopped = true;
  private lastError: string | undefined;

  constructor(
    private readonly store: LeaseStore,
    /** Unique per process (two processes with one owner would share a token). */
    readonly owner: string,
    readonly config: LeaseConfig,
    private readonly log: (message: string) => void = () => {},
    private readonly now: () => number = () => performance.now(),
  ) {
    super();
  }

  /** Whether this coordinator holds the lease right now. */
  get leading(): boolean {
    return this.token !== undefined && this.now() < this.heldUntil;
  }

  /** The fencing token while leading. */
  get fence(): number | undefined {
    return this.leading ? this.token : undefined;
  }

  /** Throws NotLeaderError unless the lease is held under `token` right now. */
  assertHolds(token: number | undefined): void {
    if (token === undefined || token !== this.token)
      throw new NotLeaderError(`lease token ${token} is not the current one (${this.token ?? 'none'})`);
    if (this.now() >= this.heldUntil) {
      this.depose('the lease ran out before it was renewed (was this process paused?)');
      throw new NotLeaderError(`the lease held under token ${token} ran out`);
    }
  }

  /** Who leads, for a standby's answers: `coordinator-a/… at host:7070 (token 4)` or why nobody is known. */
  describeLeader(): string {
    if (this.leading) return `this coordinator (token ${this.token})`;
    return this.holder ? `${this.holder.owner} (token ${this.holder.token})` : 'not known yet';
  }

  /** Start electing; resolves after the first attempt (elected, or standing by). */
  async start(): Promise<void> {
    if (!this.stopped) return;
    this.stopped = false;
    await this.tick();
  }

  /** Stop electing; a held lease is released so a standby takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.expiry);
    const token = this.token;
    if (token === undefined) return;
    this.token = undefined;
    this.emit('deposed', token, 'coordinator stopping');
    await this.store.releaseLease(this.config.name, this.owner).catch(() => {});
  }

  /**
   * Give the lease up now (a store refused this leader's token): stop running jobs, stand by. With `token`, only
   * if the lease is held under it: a refusal of an earlier term's write does not depose a newer term.
   */
  resign(reason: string, token?: number): void {
    if (this.token === undefined || (token !== undefined && token !== this.token)) return;
    this.depose(reason);
    void this.store.releaseLease(this.config.name, this.owner).catch(() => {});
  }

  private depose(reason: string): void {
    const token = this.token;
    if (token === undefined) return;
    this.token = undefined;
    this.heldUntil = 0;
    clearTimeout(this.expiry);
    this.holder = undefined;
    this.log(`leadership: lost the lease (token ${token}): ${reason}; stepping down to standby`);
    this.emit('deposed', token, reason);
    // Learn who leads now, for the answers of this standby.
    void this.store.getLease(this.config.name).then(
      (holder) => {
        if (this.token === undefined) this.holder = holder;
      },
      () => {},
    );
  }

  private async tick(): Promise<void> {
    try {
      if (this.token === undefined) await this.acquire();
      else await this.renew();
      this.lastError = undefined;
    } catch (e) {
      // Once per distinct error, not on every poll while the store is down.
      const message = (e as Error).message;
      if (message !== this.lastError) this.log(`leadership: ${message}`);
      this.lastError = message;
    }
    if (this.stopped) return;
    // A leader whose renewals fail keeps trying until its lease runs out (then it steps down in renew()).
    this.timer = setTimeout(
      () => void this.tick(),
      this.token === undefined ? this.config.poll : this.config.renew,
    );
  }

  private async acquire(): Promise<void> {
    const sent = this.now();
    const token = await this.store.acquireLease(this.config.name, this.owner, this.config.ttl);
    if (this.stopped) {
      if (token !== undefined) await this.store.releaseLease(this.config.name, this.owner);
      return;
    }
    if (token === undefined) {
      const holder = await this.store.getLease(this.config.name);
      if (holder && (holder.owner !== this.logged?.owner || holder.token !== this.logged.token))
        this.log(`leadership: standing by; the leader is ${holder.owner} (token ${holder.token})`);
      this.holder = this.logged = holder;
      return;
    }
    if (this.now() >= sent + this.config.ttl) {
      // The answer took longer than the lease lives (the store was unreachable): take it with a fresh count on
      // the next poll, which finds it ours and extends it.
      this.log(
        `leadership: the lease (token ${token}) was granted after its ttl had passed; taking it again`,
      );
      return;
    }
    this.token = token;
    this.holdUntil(sent + this.config.ttl);
    this.holder = { owner: this.owner, token };
    this.log(`leadership: elected leader with lease token ${token}`);
    this.emit('elected', token);
  }

  private async renew(): Promise<void> {
    const sent = this.now();
    if (sent >= this.heldUntil) {
      this.depose('the lease ran out before it was renewed (was this process paused?)');
      return;
    }
    let renewed: boolean;
    try {
      renewed = await this.store.renewLease(this.config.name, this.owner, this.config.ttl);
    } catch (e) {
      if (this.now() >= this.heldUntil) this.depose(`cannot renew: ${(e as Error).message}`);
      return;
    }
    if (this.token === undefined) return; // resigned meanwhile
    if (!renewed) {
      this.depose('another coordinator holds the lease');
      return;
    }
    this.holdUntil(sent + this.config.ttl);
  }

  /** The lease is ours until `until` (monotonic ms); at that time, unless renewed, this coordinator steps down. */
  private holdUntil(until: number): void {
    this.heldUntil = until;
    this.armExpiry();
  }

  private armExpiry(): void {
    clearTimeout(this.expiry);
    // A timer may fire a little early by this clock (the event loop reads its time once per turn): look again.
    this.expiry = setTimeout(
      () => {
        if (this.token === undefined) return;
        if (this.now() < this.heldUntil) return this.armExpiry();
        this.depose(
          'the lease ran out before a renewal succeeded (store unreachable, or this process paused)',
        );
      },
      Math.max(0, this.heldUntil - this.now()) + 1,
    );
    this.expiry.unref?.();
  }
}
