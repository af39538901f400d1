/**
 * The coordinator's durable state, behind one interface with two implementations (memory, redis) that pass the
 * same contract suite (test/integration/stateStore.contract.test.ts). Every state transition is atomic and
 * named for what it does. Large tensors never go here: checkpoints live on disk, the store keeps manifests.
 */

import type { JobState, JobTransition } from '../../core/jobLifecycle.ts';

export type { JobState, JobTransition } from '../../core/jobLifecycle.ts';
export { TERMINAL_JOB_STATES } from '../../core/jobLifecycle.ts';

import type { CheckpointManifest } from '../../checkpoint/checkpoint.ts';

export type { CheckpointManifest };

export interface JobRecord {
  id: string;
  name: string;
  /** The validated job spec as JSON text (the store does not interpret it). */
  spec: string;
  state: JobState;
  createdAt: number;
  updatedAt: number;
  /** Rounds completed so far (== the current parameter version). */
  round: number;
  error?: string;
  /** Final metrics once completed (JSON text), e.g. test accuracy. */
  result?: string;
  /** The principal that submitted the job (e.g. `token:t-…`, `cert:alice`); it may read and cancel it. */
  owner?: string;
  /**
   * The client's id of the submission that created the job: one (owner, requestId) pair creates at most one job
   * (a retried submit gets the first job back).
   */
  requestId?: string;
}

/** What a submit did: stored `job`, or (a request id seen before) stored nothing and found `job`. */
export interface SubmitOutcome {
  job: JobRecord;
  created: boolean;
}

/** Fields a transition may set together with the state. */
export type JobPatch = Partial<Pick<JobRecord, 'round' | 'error' | 'result'>>;

export interface WorkerRecord {
  id: string;
  name: string;
  /** sha256 of the session credential; the credential itself is never stored. */
  sessionHash: string;
  /** JSON text: backend, device, memory, byzantine label, ... */
  capabilities: string;
  registeredAt: number;
  /** The credential the worker enrolled with (`token:<id>` or `cert:<CN>`); absent for open registration. */
  enrollment?: string;
  /** The only job this worker may join (from its enrollment token); absent = any job. */
  jobScope?: string;
}

/** One round's report, as JSON text plus the fields the store indexes by. */
export interface StoredRoundReport {
  jobId: string;
  round: number;
  /** JSON of the full RoundReport. */
  report: string;
}

/** Roles a credential can carry (access tokens, client certificates). */
export type AccessRole = 'admin' | 'submitter' | 'viewer' | 'worker';

/** An operator-issued access token (enrollment token for workers). Only its hash is stored. */
export interface AccessTokenRecord {
  id: string;
  /** sha256 (hex) of the whole token text. */
  hash: string;
  role: AccessRole;
  /** The only job the token is good for (worker, viewer); absent = any job. */
  jobId?: string;
  /** Worker tokens: how many distinct worker names the token may bind. */
  count: number;
  createdAt: number;
  /** Expiry in ms since the epoch; absent = never. */
  expiresAt?: number;
}

/**
 * Outcome of binding a worker name to a credential: `bound` (new name, one of the credential's `limit`),
 * `rebound` (the name was already this credential's; its previous worker session is superseded), `taken` (the
 * name belongs to another credential), `exhausted` (the credential has bound `limit` names already).
 */
export type NameBinding =
  | { status: 'bound' }
  | { status: 'rebound'; previousWorker: string }
  | { status: 'taken' }
  | { status: 'exhausted' };

/**
 * A write carried a fencing token older than one the job has already seen: another coordinator took the lease
 * since. Nothing was written; the writer must stop running the job.
 */
export class StaleFenceError extends Error {
  constructor(
    readonly jobId: string,
    readonly token: number,
    readonly current: number,
  ) {
    super(
      `state: job '${jobId}': fencing token ${token} is stale (the job is fenced at ${current}); write refused`,
    );
    this.name = 'StaleFenceError';
  }
}

/**
 * The store did not answer (connection lost or refused, Redis still loading its data after a restart). A write
 * that fails so may or may not have happened: only writes that are safe to repeat may be retried (commitRound
 * with a commit id, manifests, round counters).
 */
export class StoreUnavailableError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'StoreUnavailableError';
  }
}

/** One entry of a job's commit log: which leader (fencing token) committed which round, in commit order. */
export interface RoundCommit {
  round: number;
  /** The committing leader's fencing token (0: an unfenced writer). */
  fence: number;
}

/** Who holds a lease now. */
export interface LeaseHolder {
  owner: string;
  token: number;
}

export interface StateStore {
  readonly kind: 'memory' | 'redis';
  connect(): Promise<void>;
  close(): Promise<void>;
  /** Cheap liveness probe used for the readiness status. */
  ping(): Promise<boolean>;

  // --- jobs -------------------------------------------------------------------------------------------
  /**
   * Store a new job in state 'queued' and append it to the queue. Fails if the id exists. With `job.requestId`,
   * one (owner, requestId) pair creates at most one job, atomically: a submit whose pair was used before stores
   * nothing and returns that pair's job (`created: false`), whatever its spec (the caller compares them).
   */
  submitJob(job: JobRecord): Promise<SubmitOutcome>;
  getJob(id: string): Promise<JobRecord | undefined>;
  /** All jobs, newest first. */
  listJobs(): Promise<JobRecord[]>;
  /**
   * Apply one named lifecycle transition (core/jobLifecycle.ts) as an atomic compare-and-set: only if the job's
   * current state is one of the transition's `from` states. Applies `patch` (round, error, result) in the same
   * step. Returns the updated record, or undefined if the job does not exist or is in another state.
   */
  transitionJob(
    id: string,
    transition: JobTransition,
    patch?: JobPatch,
    fence?: number,
  ): Promise<JobRecord | undefined>;
  /** Record progress of a running job (round counter) without changing its state. */
  setJobRound(id: string, round: number, fence?: number): Promise<void>;
  /**
   * Take the oldest queued job for this consumer (at-least-once: an unacknowledged claim can be taken over by
   * another consumer after `claimTimeoutMs`). Returns the job id or undefined.
   */
  claimQueuedJob(consumer: string, claimTimeoutMs: number): Promise<string | undefined>;
  /** Acknowledge a claim once the job's start is durably recorded. */
  ackQueuedJob(consumer: string, id: string): Promise<void>;

  // --- workers ----------------------------------------------------------------------------------------
  putWorker(worker: WorkerRecord): Promise<void>;
  getWorker(id: string): Promise<WorkerRecord | undefined>;
  /** Mark a worker alive for ttlMs from now (heartbeat). */
  touchWorker(id: string, ttlMs: number): Promise<void>;
  /** Ids of workers whose heartbeat has not expired at `nowMs`. */
  liveWorkers(nowMs: number): Promise<string[]>;
  removeWorker(id: string): Promise<void>;

  // --- rounds -----------------------------------------------------------------------------------------
  /** Append a round report; keep at most maxLen per job (oldest dropped). */
  appendRoundReport(report: StoredRoundReport, maxLen: number): Promise<void>;
  /** Round reports of a job with round >= fromRound, oldest first, at most limit. */
  listRoundReports(jobId: string, fromRound: number, limit: number): Promise<StoredRoundReport[]>;

  /**
   * Commit one closed round in one atomic step: append its report (as appendRoundReport), set the job's round
   * counter to `report.round + 1`, and append `{round, fence}` to the job's commit log (never rewritten, capped
   * at `maxLen` entries). `commitId` names this commit: a repeat whose id is the newest in the log (a retry of a
   * commit whose answer was lost) changes nothing.
   */
  commitRound(report: StoredRoundReport, maxLen: number, fence?: number, commitId?: string): Promise<void>;
  /** The job's commit log, oldest first. */
  listRoundCommits(jobId: string): Promise<RoundCommit[]>;

  // --- fencing ----------------------------------------------------------------------------------------
  // Every method taking `fence` checks it atomically with its write: a token lower than the highest the job has
  // seen is refused with StaleFenceError and nothing is written; otherwise the job's fence becomes the token.
  // Without `fence` the write is unfenced (a single coordinator without a lease).
  /** Raise the job's fence to `fence` (a new leader takes the job over); StaleFenceError if it is higher already. */
  fenceJob(jobId: string, fence: number): Promise<void>;
  /** The highest fencing token the job has seen (0: none). */
  jobFence(jobId: string): Promise<number>;

  // --- checkpoints ------------------------------------------------------------------------------------
  putCheckpointManifest(manifest: CheckpointManifest, fence?: number): Promise<void>;
  getCheckpointManifest(jobId: string): Promise<CheckpointManifest | undefined>;

  // --- leases (standby coordinators) ------------------------------------------------------------------
  /** SET NX PX + fencing token: returns the new token if acquired (or already ours), else undefined. */
  acquireLease(name: string, owner: string, ttlMs: number): Promise<number | undefined>;
  /** Extend only if still ours; false if lost. */
  renewLease(name: string, owner: string, ttlMs: number): Promise<boolean>;
  releaseLease(name: string, owner: string): Promise<void>;
  /** The live lease's owner and token, or undefined if nobody holds it. */
  getLease(name: string): Promise<LeaseHolder | undefined>;

  // --- access tokens and worker-name bindings ---------------------------------------------------------
  /** Store (or replace) an access token record; it disappears at its expiresAt. */
  putAccessToken(token: AccessTokenRecord): Promise<void>;
  /** The token record, or undefined if unknown or expired. */
  getAccessToken(id: string): Promise<AccessTokenRecord | undefined>;
  /** Forget a token at once; true if it existed. The names it bound stay bound until its expiry. */
  revokeAccessToken(id: string): Promise<boolean>;
  /**
   * Atomically bind worker `name` to `credential` for `workerId`. A credential binds at most `limit` distinct
   * names; a name stays bound to its credential until `expiresAt` (the credential's expiry; absent = never).
   */
  bindWorkerName(
    name: string,
    credential: string,
    workerId: string,
    limit: number,
    expiresAt?: number,
  ): Promise<NameBinding>;
}
