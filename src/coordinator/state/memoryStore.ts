/**
 * The embedded state store: everything in process memory, for a single machine (`phalanx demo`, tests).
 * Deterministic: time comes only from the injected clock. Each method runs to completion without awaiting,
 * so every transition is atomic with respect to other calls. Records are copied in and out, so callers never
 * alias the store's state. Semantics match the Redis store exactly (one contract suite holds them together).
 */
import { applyTransition } from '../../core/jobLifecycle.ts';
import {
  TERMINAL_JOB_STATES,
  type AccessTokenRecord,
  type NameBinding,
  type CheckpointManifest,
  type JobPatch,
  type JobRecord,
  type JobTransition,
  type LeaseHolder,
  type RoundCommit,
  StaleFenceError,
  type StateStore,
  type StoredRoundReport,
  type SubmitOutcome,
  type WorkerRecord,
} from './stateStore.ts';

export type Clock = () => number;

interface QueueEntry {
  seq: number;
  jobId: string;
  /** Set while claimed and not yet acknowledged. */
  claim?: { consumer: string; at: number };
}

interface Lease {
  owner: string;
  expiresAt: number;
}

export class MemoryStateStore implements StateStore {
  readonly kind = 'memory' as const;
  private readonly clock: Clock;
  private readonly jobs = new Map<string, JobRecord>();
  /** (owner, requestId) → the job that request created. */
  private readonly requests = new Map<string, string>();
  /** Queue entries in submission order; an entry leaves the queue when acknowledged. */
  private queue: QueueEntry[] = [];
  private nextSeq = 0;
  private readonly workers = new Map<string, WorkerRecord>();
  /** Worker id → heartbeat expiry (ms). */
  private readonly liveness = new Map<string, number>();
  private readonly rounds = new Map<string, StoredRoundReport[]>();
  private readonly checkpoints = new Map<string, CheckpointManifest>();
  /** Job id → the highest fencing token its writes carried. */
  private readonly fences = new Map<string, number>();
  private readonly commits = new Map<string, (RoundCommit & { commitId?: string })[]>();
  private readonly leases = new Map<string, Lease>();
  /** Fencing counters outlive the leases they were issued for. */
  private readonly leaseTokens = new Map<string, number>();

  constructor(opts: { clock?: Clock } = {}) {
    this.clock = opts.clock ?? Date.now;
  }

  async connect(): Promise<void> {}
  async close(): Promise<void> {}
  async ping(): Promise<boolean> {
    return true;
  }

  // --- jobs -------------------------------------------------------------------------------------------

  async submitJob(job: JobRecord): Promise<SubmitOutcome> {
    const request = job.requestId === undefined ? undefined : requestKey(job.owner, job.requestId);
    const earlier = request === undefined ? undefined : this.jobs.get(this.requests.get(request) ?? '');
    if (earlier) return { job: { ...earlier }, created: false };
    if (this.jobs.has(job.id)) throw new Error(`state: job '${job.id}' already exists`);
    const record: JobRecord = { ...job, state: 'queued' };
    this.jobs.set(job.id, record);
    if (request !== undefined) this.requests.set(request, job.id);
    this.queue.push({ seq: this.nextSeq++, jobId: job.id });
    return { job: { ...record }, created: true };
  }

  async getJob(id: string): Promise<JobRecord | undefined> {
    const job = this.jobs.get(id);
    return job && { ...job };
  }

  async listJobs(): Promise<JobRecord[]> {
    return [...this.jobs.values()].sort(newestFirst).map((job) => ({ ...job }));
  }

  async transitionJob(
    id: string,
    transition: JobTransition,
    patch: JobPatch = {},
    fence?: number,
  ): Promise<JobRecord | undefined> {
    const job = this.jobs.get(id);
    if (job) this.admit(id, fence);
    const to = job && applyTransition(job.state, transition);
    if (!job || !to) return undefined;
    job.state = to;
    job.updatedAt = this.clock();
    if (patch.round !== undefined) job.round = patch.round;
    if (patch.error !== undefined) job.error = patch.error;
    if (patch.result !== undefined) job.result = patch.result;
    return { ...job };
  }

  async setJobRound(id: string, round: number, fence?: number): Promise<void> {
    const job = this.jobs.get(id);
    if (!job) throw new Error(`state: setJobRound: unknown job '${id}'`);
    this.admit(id, fence);
    job.round = round;
    job.updatedAt = this.clock();
  }

  async claimQueuedJob(consumer: string, claimTimeoutMs: number): Promise<string | undefined> {
    for (;;) {
      const now = this.clock();
      // A stale claim is older than any undelivered entry, so taking it over first keeps the queue FIFO.
      const entry =
        this.queue.find((e) => e.claim !== undefined && now - e.claim.at >= claimTimeoutMs) ??
        this.queue.find((e) => e.claim === undefined);
      if (!entry) return undefined;
      entry.claim = { consumer, at: now };
      const job = this.jobs.get(entry.jobId);
      if (job && !TERMINAL_JOB_STATES.includes(job.state)) return entry.jobId;
      // Cancelled (or otherwise finished) while queued: nothing to run, drop it and look further.
      this.queue = this.queue.filter((e) => e !== entry);
    }
  }

  async ackQueuedJob(consumer: string, id: string): Promise<void> {
    this.queue = this.queue.filter((e) => !(e.jobId === id && e.claim?.consumer === consumer));
  }

  // --- workers ----------------------------------------------------------------------------------------

  async putWorker(worker: WorkerRecord): Promise<void> {
    this.workers.set(worker.id, { ...worker });
  }

  async getWorker(id: string): Promise<WorkerRecord | undefined> {
    const worker = this.workers.get(id);
    return worker && { ...worker };
  }

  async touchWorker(id: string, ttlMs: number): Promise<void> {
    // A late heartbeat must not resurrect a removed worker.
    if (this.workers.has(id)) this.liveness.set(id, this.clock() + ttlMs);
  }

  async liveWorkers(nowMs: number): Promise<string[]> {
    const live: string[] = [];
    for (const [id, expiresAt] of this.liveness) if (expiresAt > nowMs) live.push(id);
    return live.sort();
  }

  async removeWorker(id: string): Promise<void> {
    this.workers.delete(id);
    this.liveness.delete(id);
  }

  // --- rounds -----------------------------------------------------------------------------------------

  async appendRoundReport(report: StoredRoundReport, maxLen: number): Promise<void> {
    checkMaxLen(maxLen);
    this.appendReport(report, maxLen);
  }

  async commitRound(
    report: StoredRoundReport,
    maxLen: number,
    fence?: number,
    commitId?: string,
  ): Promise<void> {
    checkMaxLen(maxLen);
    const job = this.jobs.get(report.jobId);
    if (!job) throw new Error(`state: commitRound: unknown job '${report.jobId}'`);
    this.admit(report.jobId, fence);
    const log = this.commits.get(report.jobId) ?? [];
    if (commitId !== undefined && log.at(-1)?.commitId === commitId) return; // a repeat of the newest commit
    this.appendReport(report, maxLen);
    job.round = report.round + 1;
    job.updatedAt = this.clock();
    log.push({ round: report.round, fence: fence ?? 0, ...(commitId !== undefined ? { commitId } : {}) });
    this.commits.set(report.jobId, log.slice(-maxLen));
  }

  async listRoundCommits(jobId: string): Promise<RoundCommit[]> {
    return (this.commits.get(jobId) ?? []).map(({ round, fence }) => ({ round, fence }));
  }

  private appendReport(report: StoredRoundReport, maxLen: number): void {
    // Appending round r drops stored rounds >= r: a job resumed from a checkpoint rewrites its history.
    const history = (this.rounds.get(report.jobId) ?? []).filter((r) => r.round < report.round);
    history.push({ ...report });
    this.rounds.set(report.jobId, history.slice(-maxLen));
  }

  async listRoundReports(jobId: string, fromRound: number, limit: number): Promise<StoredRoundReport[]> {
    if (limit <= 0) return [];
    return (this.rounds.get(jobId) ?? [])
      .filter((r) => r.round >= fromRound)
      .slice(0, limit)
      .map((r) => ({ ...r }));
  }

  // --- checkpoints ------------------------------------------------------------------------------------

  async putCheckpointManifest(manifest: CheckpointManifest, fence?: number): Promise<void> {
    this.admit(manifest.jobId, fence);
    this.checkpoints.set(manifest.jobId, { ...manifest });
  }

  // --- fencing ----------------------------------------------------------------------------------------

  async fenceJob(jobId: string, fence: number): Promise<void> {
    this.admit(jobId, fence);
  }

  async jobFence(jobId: string): Promise<number> {
    return this.fences.get(jobId) ?? 0;
  }

  /** Check `fence` against the job's and raise the job's to it; throws before anything is written. */
  private admit(jobId: string, fence: number | undefined): void {
    if (fence === undefined) return;
    const current = this.fences.get(jobId) ?? 0;
    if (fence < current) throw new StaleFenceError(jobId, fence, current);
    this.fences.set(jobId, fence);
  }

  async getCheckpointManifest(jobId: string): Promise<CheckpointManifest | undefined> {
    const manifest = this.checkpoints.get(jobId);
    return manifest && { ...manifest };
  }

  // --- leases -----------------------------------------------------------------------------------------

  async acquireLease(name: string, owner: string, ttlMs: number): Promise<number | undefined> {
    const now = this.clock();
    const lease = this.liveLease(name, now);
    if (lease && lease.owner !== owner) return undefined;
    this.leases.set(name, { owner, expiresAt: now + ttlMs });
    if (lease) return this.leaseTokens.get(name);
    const token = (this.leaseTokens.get(name) ?? 0) + 1;
    this.leaseTokens.set(name, token);
    return token;
  }

  async renewLease(name: string, owner: string, ttlMs: number): Promise<boolean> {
    const now = this.clock();
    const lease = this.liveLease(name, now);
    if (lease?.owner !== owner) return false;
    lease.expiresAt = now + ttlMs;
    return true;
  }

  async releaseLease(name: string, owner: string): Promise<void> {
    if (this.liveLease(name, this.clock())?.owner === owner) this.leases.delete(name);
  }

  async getLease(name: string): Promise<LeaseHolder | undefined> {
    const lease = this.liveLease(name, this.clock());
    return lease && { owner: lease.owner, token: this.leaseTokens.get(name) ?? 0 };
  }

  private liveLease(name: string, now: number): Lease | undefined {
    const lease = this.leases.get(name);
    return lease && lease.expiresAt > now ? lease : undefined;
  }

  // --- access tokens and worker-name bindings ---------------------------------------------------------

  private authState?: MemoryAuthState;
  private get auth(): MemoryAuthState {
    return (this.authState ??= new MemoryAuthState(this.clock));
  }

  async putAccessToken(token: AccessTokenRecord): Promise<void> {
    this.auth.putAccessToken(token);
  }

  async getAccessToken(id: string): Promise<AccessTokenRecord | undefined> {
    return this.auth.getAccessToken(id);
  }

  async revokeAccessToken(id: string): Promise<boolean> {
    return this.auth.revokeAccessToken(id);
  }

  async bindWorkerName(
    name: string,
    credential: string,
    workerId: string,
    limit: number,
    expiresAt?: number,
  ): Promise<NameBinding> {
    return this.auth.bindWorkerName(name, credential, workerId, limit, expiresAt);
  }
}

/** Access tokens and worker-name bindings: what the operator issued, so their size is the operator's to bound. */
class MemoryAuthState {
  private readonly tokens = new Map<string, AccessTokenRecord>();
  /** Worker name → the credential it is bound to and its current worker id. */
  private readonly names = new Map<string, { credential: string; workerId: string; expiresAt?: number }>();
  /** Credential → the names it has bound. */
  private readonly bound = new Map<string, { names: Set<string>; expiresAt?: number }>();

  constructor(private readonly clock: Clock) {}

  putAccessToken(token: AccessTokenRecord): void {
    this.sweep();
    this.tokens.set(token.id, { ...token });
  }

  getAccessToken(id: string): AccessTokenRecord | undefined {
    const token = this.tokens.get(id);
    if (!token) return undefined;
    if (expired(token.expiresAt, this.clock())) {
      this.tokens.delete(id);
      return undefined;
    }
    return { ...token };
  }

  revokeAccessToken(id: string): boolean {
    const known = this.getAccessToken(id) !== undefined;
    this.tokens.delete(id);
    return known;
  }

  bindWorkerName(
    name: string,
    credential: string,
    workerId: string,
    limit: number,
    expiresAt?: number,
  ): NameBinding {
    const now = this.clock();
    const current = this.names.get(name);
    if (current && !expired(current.expiresAt, now)) {
      if (current.credential !== credential) return { status: 'taken' };
      const previousWorker = current.workerId;
      current.workerId = workerId;
      return { status: 'rebound', previousWorker };
    }
    let set = this.bound.get(credential);
    if (set && expired(set.expiresAt, now)) set = undefined;
    if (set && set.names.size >= limit) return { status: 'exhausted' };
    if (!set) {
      set = { names: new Set(), expiresAt };
      this.bound.set(credential, set);
    }
    set.names.add(name);
    this.names.set(name, { credential, workerId, expiresAt });
    return { status: 'bound' };
  }

  private sweep(): void {
    const now = this.clock();
    for (const [id, t] of this.tokens) if (expired(t.expiresAt, now)) this.tokens.delete(id);
    for (const [name, b] of this.names) if (expired(b.expiresAt, now)) this.names.delete(name);
    for (const [c, b] of this.bound) if (expired(b.expiresAt, now)) this.bound.delete(c);
  }
}

function requestKey(owner: string | undefined, requestId: string): string {
  return `${owner ?? ''}\n${requestId}`;
}

function expired(expiresAt: number | undefined, now: number): boolean {
  return expiresAt !== undefined && expiresAt <= now;
}

/** Newest first; equal timestamps by id, descending (the Redis store's sorted-set order). */
function newestFirst(a: JobRecord, b: JobRecord): number {
  return b.createdAt - a.createdAt || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
}

function checkMaxLen(maxLen: number): void {
  if (!Number.isInteger(maxLen) || maxLen < 1)
    throw new Error(`state: appendRoundReport: maxLen must be a positive integer, got ${maxLen}`);
}
