/**
 * The synchronous round of one job as data: who participates, what each participant delivered or why it did
 * not, and when the round may close. Pure and deterministic: time comes from an injected clock, timers belong to
 * the caller (the gRPC runtime arms one at `timeoutAt()`, `phalanx simulate` never needs one), and nothing here
 * knows about gradients beyond an opaque payload.
 *
 * Close rule for round t (only *accepted* gradients count toward `min`):
 * - quorum:    every live participant has answered (delivered, or failed: rejected / absent) and accepted ≥ min;
 * - timeout:   now ≥ openedAt + roundTimeout and accepted ≥ min (stragglers are reported late);
 * - no-quorum: now ≥ openedAt + roundTimeout, every live participant has answered, at least one failed, and
 *              accepted < min. The round is skipped: nothing is aggregated, the parameters stay as they are.
 * Otherwise the round waits (for more workers to join, or to push).
 *
 * Push classification for round r while round t is open: r < t → late; r = t and already delivered →
 * duplicate; r > t → not open yet; a participant may have one upload in flight at a time.
 */

export interface RoundEngineConfig {
  /** Accepted gradients needed to aggregate a round (workers.min). */
  min: number;
  /** Participants a job admits; ranks are 0..max−1 (workers.max). */
  max: number;
  /** Milliseconds after a round opens before it may close without every participant (workers.roundTimeout). */
  roundTimeoutMs: number;
}

export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

export interface Participant {
  workerId: string;
  name: string;
  rank: number;
  /** Evaluation label of a red-team worker ('' for honest ones). */
  byzantine: string;
  joinedAtRound: number;
}

/** Why a participant gave no usable gradient this round. */
export type FailureKind = 'rejected' | 'absent' | 'left';

export interface Failure {
  kind: FailureKind;
  reason: string;
}

export type CloseReason = 'quorum' | 'timeout' | 'no-quorum';

/** What a push for `round` from a worker meets. */
export type PushVerdict =
  | { kind: 'open'; round: number }
  | { kind: 'late'; openRound: number }
  | { kind: 'duplicate'; openRound: number }
  | { kind: 'not-open'; openRound: number }
  | { kind: 'not-participant' }
  | { kind: 'busy'; openRound: number };

export interface ClosedDelivery<T> {
  participant: Participant;
  payload: T;
}

export interface MissingParticipant {
  participant: Participant;
  reason: string;
  code: 'rejected' | 'absent' | 'left' | 'late';
}

/** Everything a closing round hands to aggregation and to its report. */
export interface RoundClose<T> {
  round: number;
  why: CloseReason;
  /** Accepted gradients in rank order (then worker id): the aggregation input order. */
  deliveries: ClosedDelivery<T>[];
  /** Participants of this round (current or departed) that delivered nothing, with the reason. */
  missing: MissingParticipant[];
  collectMs: number;
}

export class JobFullError extends Error {}

export class NotParticipantError extends Error {
  constructor(workerId: string) {
    super(`worker ${workerId} is not a participant of this job: call JoinJob`);
  }
}

export class RoundEngine<T> {
  private openRound: number;
  private phase: 'collecting' | 'closing' | 'ended' = 'closing';
  private openedAt = 0;
  private readonly participants = new Map<string, Participant>();
  private readonly deliveries = new Map<string, T>();
  private readonly failures = new Map<string, Failure>();
  /** Participants that left during the open round: still reported in its `missing` list. */
  private readonly departed = new Map<string, Participant>();
  private readonly uploading = new Set<string>();

  constructor(
    private readonly config: RoundEngineConfig,
    private readonly clock: Clock = systemClock,
    startRound = 0,
  ) {
    if (!(config.min >= 1 && config.max >= config.min)) {
      throw new RangeError(`round engine needs 1 <= min <= max (min ${config.min}, max ${config.max})`);
    }
    this.openRound = startRound;
  }

  /** The open round (or the round being closed). */
  get round(): number {
    return this.openRound;
  }

  get collecting(): boolean {
    return this.phase === 'collecting';
  }

  /** Open round `round` for deliveries. Undelivered payloads of the previous round must have been taken. */
  open(round: number): void {
    if (this.phase === 'ended') throw new Error('round engine has ended');
    this.openRound = round;
    this.phase = 'collecting';
    this.openedAt = this.clock.now();
    this.deliveries.clear();
    this.failures.clear();
    this.departed.clear();
  }

  /** No further rounds: every push is late from now on; `round` reads `finalRound` (rounds completed). */
  end(finalRound = this.openRound): void {
    this.phase = 'ended';
    this.openRound = finalRound;
    this.deliveries.clear();
    this.uploading.clear();
  }

  /** When the open round opened (clock ms). */
  get openedAtMs(): number {
    return this.openedAt;
  }

  /** When the open round may close without every participant. */
  timeoutAt(): number {
    return this.openedAt + this.config.roundTimeoutMs;
  }

  // --- membership -----------------------------------------------------------------------------------------

  /**
   * Admit a worker. Its rank comes from the trailing number of its name (worker-3 → 3, modulo max) when that
   * rank is free, so a restarted worker gets its data shard back; otherwise the lowest free rank.
   */
  join(workerId: string, name: string, byzantine = ''): Participant {
    const existing = this.participants.get(workerId);
    if (existing) return existing;
    const taken = new Set<number>();
    for (const p of this.participants.values()) taken.add(p.rank);
    if (taken.size >= this.config.max) {
      throw new JobFullError(`the job already has workers.max = ${this.config.max} participants`);
    }
    const match = /(\d+)$/.exec(name);
    let rank = match ? Number(match[1]) % this.config.max : -1;
    if (rank < 0 || taken.has(rank)) {
      rank = 0;
      while (taken.has(rank)) rank++;
    }
    const participant: Participant = { workerId, name, rank, byzantine, joinedAtRound: this.openRound };
    this.participants.set(workerId, participant);
    this.departed.delete(workerId);
    return participant;
  }

  /** Remove a participant; if it had not delivered this round it is reported missing with `reason`. */
  leave(workerId: string, reason: string): Participant | undefined {
    const p = this.participants.get(workerId);
    if (!p) return undefined;
    this.participants.delete(workerId);
    this.uploading.delete(workerId);
    if (this.phase === 'collecting') {
      // Still part of this round: its gradient (if delivered) is aggregated, otherwise it is reported missing.
      this.departed.set(workerId, p);
      if (!this.deliveries.has(workerId)) this.failures.set(workerId, { kind: 'left', reason });
    }
    return p;
  }

  participant(workerId: string): Participant | undefined {
    return this.participants.get(workerId);
  }

  isParticipant(workerId: string): boolean {
    return this.participants.has(workerId);
  }

  participantIds(): string[] {
    return [...this.participants.keys()];
  }

  get participantCount(): number {
    return this.participants.size;
  }

  hasDelivered(workerId: string): boolean {
    return this.deliveries.has(workerId);
  }

  get acceptedCount(): number {
    return this.deliveries.size;
  }

  // --- pushes ---------------------------------------------------------------------------------------------

  /** Classify a push header before its body is read, so late, duplicate and unwanted bodies are never decoded. */
  classify(workerId: string, round: number): PushVerdict {
    if (!this.participants.has(workerId)) return { kind: 'not-participant' };
    if (this.phase === 'ended' || round < this.openRound) return { kind: 'late', openRound: this.openRound };
    if (round > this.openRound) return { kind: 'not-open', openRound: this.openRound };
    if (this.phase === 'closing') return { kind: 'late', openRound: this.openRound };
    if (this.deliveries.has(workerId)) return { kind: 'duplicate', openRound: this.openRound };
    if (this.uploading.has(workerId)) return { kind: 'busy', openRound: this.openRound };
    return { kind: 'open', round };
  }

  /**
   * Start receiving an upload for the open round (at most one per participant at a time). Returns the verdict;
   * only `open` claims the slot, which `endUpload` gives back.
   */
  beginUpload(workerId: string, round: number): PushVerdict {
    const verdict = this.classify(workerId, round);
    if (verdict.kind === 'open') this.uploading.add(workerId);
    return verdict;
  }

  endUpload(workerId: string): void {
    this.uploading.delete(workerId);
  }

  /**
   * Record a complete, validated gradient. The payload is owned by the engine until the round closes (returned
   * in `RoundClose.deliveries`); if the verdict is not `open` the caller keeps it.
   */
  deliver(workerId: string, round: number, payload: T): PushVerdict {
    this.uploading.delete(workerId);
    const verdict = this.classify(workerId, round);
    if (verdict.kind !== 'open') return verdict;
    this.deliveries.set(workerId, payload);
    this.failures.delete(workerId);
    return verdict;
  }

  /** A participant's push for the open round failed (bad input), or it will deliver nothing (absent). */
  fail(workerId: string, round: number, failure: Failure): void {
    this.uploading.delete(workerId);
    if (this.phase !== 'collecting' || round !== this.openRound) return;
    if (!this.participants.has(workerId) || this.deliveries.has(workerId)) return;
    this.failures.set(workerId, failure);
  }

  // --- closing --------------------------------------------------------------------------------------------

  /** The close decision for the open round at the clock's current time, or undefined to keep waiting. */
  decide(): CloseReason | undefined {
    if (this.phase !== 'collecting') return undefined;
    const accepted = this.deliveries.size;
    let answered = this.participants.size > 0;
    let failed = false;
    for (const id of this.participants.keys()) {
      if (this.deliveries.has(id)) continue;
      if (this.failures.has(id)) failed = true;
      else {
        answered = false;
        break;
      }
    }
    if (answered && accepted >= this.config.min) return 'quorum';
    if (this.clock.now() < this.timeoutAt()) return undefined;
    if (accepted >= this.config.min) return 'timeout';
    if (answered && failed) return 'no-quorum';
    return undefined;
  }

  /**
   * Close the open round with `why` (normally what `decide` said): hands over the deliveries in aggregation
   * order and the missing list. Pushes for this round are late from now on; `open(round + 1)` starts the next.
   */
  close(why: CloseReason): RoundClose<T> {
    if (this.phase !== 'collecting') throw new Error(`round ${this.openRound} is not collecting`);
    this.phase = 'closing';
    const deliveries: ClosedDelivery<T>[] = [];
    for (const [id, payload] of this.deliveries) {
      const participant = this.participants.get(id) ?? this.departed.get(id);
      if (participant) deliveries.push({ participant, payload });
    }
    deliveries.sort(
      (a, b) =>
        a.participant.rank - b.participant.rank || (a.participant.workerId < b.participant.workerId ? -1 : 1),
    );
    const missing: MissingParticipant[] = [];
    for (const [id, p] of this.participants) {
      if (this.deliveries.has(id)) continue;
      const failure = this.failures.get(id);
      missing.push({
        participant: p,
        reason: describe(failure) ?? `late (${why})`,
        code: failure?.kind ?? 'late',
      });
    }
    for (const [id, p] of this.departed) {
      if (this.participants.has(id) || this.deliveries.has(id)) continue;
      const failure = this.failures.get(id);
      missing.push({ participant: p, reason: describe(failure) ?? 'left', code: failure?.kind ?? 'left' });
    }
    missing.sort((a, b) => a.participant.rank - b.participant.rank);
    this.deliveries.clear();
    this.uploading.clear();
    return { round: this.openRound, why, deliveries, missing, collectMs: this.clock.now() - this.openedAt };
  }
}

function describe(failure: Failure | undefined): string | undefined {
  if (!failure) return undefined;
  return failure.kind === 'rejected' ? `rejected: ${failure.reason}` : failure.reason;
}
