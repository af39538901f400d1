/**
 * The Redis state store (ioredis 6, Redis >= 7; RESP3 on the wire, legacy reply shapes).
 *
 * Key layout (P = keyPrefix, default "phalanx:"). Keys used together share a hash tag, so each atomic step
 * touches one Cluster slot:
 *   P{job:<id>}                 hash    the job record
 *   P{job:<id>}:rounds          stream  round history, entry id "<round>-1", capped with exact MAXLEN
 *   P{job:<id>}:checkpoint      string  JSON of the latest checkpoint manifest
 *   P{job:<id>}:fence           string  the highest fencing token the job's writes carried
 *   P{job:<id>}:commits         stream  commit log: {round, fence} per committed round, never rewritten
 *   P{jobs}:index               zset    job id scored by createdAt (listJobs: newest first)
 *   P{jobs}:queue               stream  the job queue, one entry {job: <id>} per submit; consumer group "scheduler"
 *   P{jobs}:queue:entries       hash    job id → its queue entry id (for ack)
 *   P{workers}:worker:<id>      hash    the worker record
 *   P{workers}:alive:<id>       string  heartbeat, PX ttl
 *   P{workers}:live             zset    worker id scored by heartbeat expiry (ms), the liveness index
 *   P{lease:<name>}             string  lease owner, SET NX PX
 *   P{lease:<name>}:token       counter fencing token, INCR on every acquisition
 *   P{auth}:token:<id>          string  JSON of an access token record, PXAT its expiry
 *   P{auth}:name:<name>         hash    worker name → {credential, worker}, PXAT the credential's expiry
 *   P{auth}:bound:<credential>  set     the name keys a credential has bound, PXAT its expiry
 *   P{request:<sha256>}         string  JSON of the job record a (owner, requestId) pair created (hash of the pair)
 *
 * Every transition is one Lua script named after it (job lifecycle transitions: core/jobLifecycle.ts). The one step that spans two slots is submitJob (the job
 * hash, then index + queue); it is ordered so that a retried submit completes an interrupted one. A submit with a
 * request id first claims the request key (SET if absent, holding the whole record), so a retry with the same id
 * finds the first record and completes its submit instead of creating another job.
 */
import { createHash } from 'node:crypto';
import { Redis, ReplyError } from 'ioredis';
import { JOB_TRANSITION_NAMES, JOB_TRANSITIONS, type TransitionRule } from '../../core/jobLifecycle.ts';
import {
  TERMINAL_JOB_STATES,
  type AccessTokenRecord,
  type NameBinding,
  type CheckpointManifest,
  type JobPatch,
  type JobRecord,
  type JobState,
  type JobTransition,
  type LeaseHolder,
  type RoundCommit,
  StaleFenceError,
  StoreUnavailableError,
  type StateStore,
  type StoredRoundReport,
  type SubmitOutcome,
  type WorkerRecord,
} from './stateStore.ts';
import { StartupError } from '../startupError.ts';

export type Clock = () => number;

export interface RedisStateStoreOptions {
  /** Prepended to every key (default "phalanx:"). */
  keyPrefix?: string;
  /** Time for record timestamps and heartbeat expiry scores; TTLs and claim idle times use Redis's clock. */
  clock?: Clock;
}

const GROUP = 'scheduler';

interface LuaScript {
  name: string;
  lua: string;
  sha: string;
}

function script(name: string, lua: string): LuaScript {
  return { name, lua, sha: createHash('sha1').update(lua).digest('hex') };
}

/** Create the consumer group if the queue lost it (e.g. the key was deleted); a no-op error otherwise. */
const ENSURE_GROUP = `redis.pcall('XGROUP', 'CREATE', KEYS[1], '${GROUP}', '0', 'MKSTREAM')\n`;
/** Reading or acknowledging never creates the queue. */
const NO_QUEUE_NO_OP = `if redis.call('EXISTS', KEYS[1]) == 0 then return false end\n`;

/** KEYS: request. ARGV: record JSON → false if claimed now, else the record JSON claimed first. */
const claimRequest = script(
  'claimRequest',
  `local first = redis.call('GET', KEYS[1])
if first then return first end
redis.call('SET', KEYS[1], ARGV[1])
return false`,
);

/**
 * A fenced script: KEYS[1] is the job's fence key and ARGV[1] the writer's token ('' = unfenced); both are taken
 * off before `body` runs with the remaining KEYS and ARGV (and the token as `fence`). A token below the job's fence
 * is refused with the error `STALEFENCE <current>` before anything is written; otherwise the fence becomes it.
 */
function fenced(name: string, body: string): LuaScript {
  return script(
    name,
    `local fenceKey = table.remove(KEYS, 1)
local fence = table.remove(ARGV, 1)
if fence ~= '' then
  local current = tonumber(redis.call('GET', fenceKey) or '0')
  if tonumber(fence) < current then return redis.error_reply('STALEFENCE ' .. current) end
  redis.call('SET', fenceKey, fence)
end
${body}`,
  );
}

/** KEYS: job. ARGV: field, value, ... → 1 if created, 0 if the id exists. */
const createJob = script(
  'createJob',
  `if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1`,
);

/** KEYS: queue, queue entries, index. ARGV: id, createdAt → 1 if enqueued, 0 if already indexed. */
const enqueueJob = script(
  'enqueueJob',
  `if redis.call('ZADD', KEYS[3], 'NX', ARGV[2], ARGV[1]) == 0 then return 0 end
${ENSURE_GROUP}local entry = redis.call('XADD', KEYS[1], '*', 'job', ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], entry)
return 1`,
);

/**
 * One script per lifecycle transition, named after it (startJob, runJob, resumeJob, completeJob, failJob,
 * cancelJob), with the transition's `from` states and target written into the script, so Redis itself enforces the
 * table in core/jobLifecycle.ts. KEYS: job. ARGV: now, patch field, value, ... → the record (HGETALL) or nil.
 */
const transitionScripts = Object.fromEntries(
  JOB_TRANSITION_NAMES.map((name) => {
    const rule: TransitionRule = JOB_TRANSITIONS[name];
    const from = rule.from.map((state) => `state == '${state}'`).join(' or ');
    return [
      name,
      fenced(
        `${name}Job`,
        `local state = redis.call('HGET', KEYS[1], 'state')
if not (${from}) then return false end
redis.call('HSET', KEYS[1], 'state', '${rule.to}', 'updatedAt', ARGV[1])
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
return redis.call('HGETALL', KEYS[1])`,
      ),
    ];
  }),
) as Record<JobTransition, LuaScript>;

/** KEYS: job. ARGV: round, now → 1, or 0 if the job does not exist. */
const setJobRound = fenced(
  'setJobRound',
  `if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'round', ARGV[1], 'updatedAt', ARGV[2])
return 1`,
);

/**
 * KEYS: queue. ARGV: consumer, claimTimeoutMs → {entry id, job id} or nil. Takes over the oldest claim idle
 * for at least claimTimeoutMs (XAUTOCLAIM), else reads the next undelivered entry (XREADGROUP).
 */
const claimQueuedJob = script(
  'claimQueuedJob',
  `${NO_QUEUE_NO_OP}${ENSURE_GROUP}local cursor = '0-0'
repeat
  local r = redis.call('XAUTOCLAIM', KEYS[1], '${GROUP}', ARGV[1], ARGV[2], cursor, 'COUNT', 1)
  cursor = r[1]
  for _, e in ipairs(r[2]) do
    if e[2] then return {e[1], e[2][2]} end
  end
until cursor == '0-0'
local r = redis.call('XREADGROUP', 'GROUP', '${GROUP}', ARGV[1], 'COUNT', 1, 'STREAMS', KEYS[1], '>')
if not r then return false end
local e = r[1][2][1]
return {e[1], e[2][2]}`,
);

/** KEYS: queue, queue entries. ARGV: consumer, job id → 1 if this consumer's claim was acknowledged, else 0. */
const ackQueuedJob = script(
  'ackQueuedJob',
  `${NO_QUEUE_NO_OP}${ENSURE_GROUP}local entry = redis.call('HGET', KEYS[2], ARGV[2])
if not entry then return 0 end
local pending = redis.call('XPENDING', KEYS[1], '${GROUP}', entry, entry, 1)
if #pending == 0 or pending[1][2] ~= ARGV[1] then return 0 end
redis.call('XACK', KEYS[1], '${GROUP}', entry)
redis.call('XDEL', KEYS[1], entry)
redis.call('HDEL', KEYS[2], ARGV[2])
return 1`,
);

/** KEYS: queue, queue entries. ARGV: entry id, job id. Removes an entry whose job has nothing left to run. */
const discardQueuedJob = script(
  'discardQueuedJob',
  `redis.call('XACK', KEYS[1], '${GROUP}', ARGV[1])
redis.call('XDEL', KEYS[1], ARGV[1])
if redis.call('HGET', KEYS[2], ARGV[2]) == ARGV[1] then redis.call('HDEL', KEYS[2], ARGV[2]) end
return 1`,
);

/** KEYS: worker, alive, live index. ARGV: id, ttlMs, expiresAt → 1, or 0 for an unknown worker. */
const touchWorker = script(
  'touchWorker',
  `if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
return 1`,
);

/** KEYS: worker, alive, live index. ARGV: id. */
const removeWorker = script(
  'removeWorker',
  `redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1`,
);

/**
 * KEYS: rounds. ARGV: round, maxLen, report. Appending round r first drops stored rounds >= r (a job resumed
 * from a checkpoint rewrites its history); stream ids must grow, so that case rebuilds the (capped) stream.
 */
const APPEND_REPORT = `local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #last > 0 and tonumber(string.match(last[1][1], '^(%d+)-')) >= tonumber(ARGV[1]) then
  local keep = redis.call('XRANGE', KEYS[1], '-', ARGV[1] .. '-0')
  redis.call('DEL', KEYS[1])
  for _, e in ipairs(keep) do redis.call('XADD', KEYS[1], e[1], unpack(e[2])) end
end
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], ARGV[1] .. '-1', 'report', ARGV[3])
`;
const appendRoundReport = script('appendRoundReport', `${APPEND_REPORT}return 1`);

/**
 * Fenced. KEYS: rounds, job, commits. ARGV: round, maxLen, report, now, commit id ('' = none) → 1, or 0 if the
 * job does not exist. The report as appendRoundReport, the job's round counter, and one commit-log entry, in one
 * step; nothing if the newest commit-log entry carries the same commit id (a retry of a commit that happened).
 */
const commitRound = fenced(
  'commitRound',
  `if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
if ARGV[5] ~= '' then
  local newest = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
  if #newest > 0 then
    local f = newest[1][2]
    for i = 1, #f, 2 do
      if f[i] == 'commit' and f[i + 1] == ARGV[5] then return 1 end
    end
  end
end
${APPEND_REPORT}redis.call('HSET', KEYS[2], 'round', tonumber(ARGV[1]) + 1, 'updatedAt', ARGV[4])
local entry = {'round', ARGV[1], 'fence', fence == '' and '0' or fence}
if ARGV[5] ~= '' then table.insert(entry, 'commit'); table.insert(entry, ARGV[5]) end
redis.call('XADD', KEYS[3], 'MAXLEN', ARGV[2], '*', unpack(entry))
return 1`,
);

/** Fenced. KEYS: checkpoint. ARGV: manifest JSON. */
const putCheckpointManifest = fenced(
  'putCheckpointManifest',
  `redis.call('SET', KEYS[1], ARGV[1])
return 1`,
);

/** Fenced, nothing else: raises the job's fence. */
const fenceJob = fenced('fenceJob', 'return 1');

/** KEYS: lease, token. ARGV: owner, ttlMs → fencing token, or nil if another owner holds the lease. */
const acquireLease = script(
  'acquireLease',
  `local owner = redis.call('GET', KEYS[1])
if owner == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return tonumber(redis.call('GET', KEYS[2]))
end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
return redis.call('INCR', KEYS[2])`,
);

/** KEYS: lease. ARGV: owner, ttlMs → 1 if extended, 0 if the lease is not ours. */
const renewLease = script(
  'renewLease',
  `if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])`,
);

/** KEYS: lease. ARGV: owner → 1 if released, 0 if the lease is not ours. */
const releaseLease = script(
  'releaseLease',
  `if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])`,
);

/**
 * KEYS: name, bound set. ARGV: credential, workerId, limit, expiresAt ('' = never) → {status[, previous worker]}.
 * Expired bindings are gone (PXAT), so an expired credential's names are free again.
 */
const bindWorkerName = script(
  'bindWorkerName',
  `local cur = redis.call('HMGET', KEYS[1], 'credential', 'worker')
if cur[1] then
  if cur[1] ~= ARGV[1] then return {'taken'} end
  redis.call('HSET', KEYS[1], 'worker', ARGV[2])
  return {'rebound', cur[2]}
end
if redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[3]) then return {'exhausted'} end
redis.call('SADD', KEYS[2], KEYS[1])
redis.call('HSET', KEYS[1], 'credential', ARGV[1], 'worker', ARGV[2])
if ARGV[4] ~= '' then
  redis.call('PEXPIREAT', KEYS[1], ARGV[4])
  redis.call('PEXPIREAT', KEYS[2], ARGV[4])
end
return {'bound'}`,
);

/**
 * Whether a command failed because Redis did not answer (no connection, the retries of ioredis ran out) or
 * answered that it cannot serve yet (LOADING: restarted and reading its data; BUSY: a script runs too long;
 * MASTERDOWN, TRYAGAIN, CLUSTERDOWN). Any other error reply (a refused fencing token, a script error) is Redis's
 * answer and is not retried.
 */
function unanswered(err: unknown): boolean {
  if (!(err instanceof (ReplyError as ErrorConstructor))) return true;
  return /^(LOADING|BUSY|MASTERDOWN|TRYAGAIN|CLUSTERDOWN)\b/.test((err as Error).message);
}

/** The URL without its password, for messages. */
function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url;
  }
}

export class RedisStateStore implements StateStore {
  readonly kind = 'redis' as const;
  private readonly redis: Redis;
  private readonly prefix: string;
  private readonly clock: Clock;
  private readonly url: string;

  constructor(url: string, opts: RedisStateStoreOptions = {}) {
    this.url = redactUrl(url);
    this.prefix = opts.keyPrefix ?? 'phalanx:';
    this.clock = opts.clock ?? Date.now;
    // A command goes out only on a live connection, once: nothing waits in an offline queue, and nothing sent
    // before a connection dropped is sent again after a reconnect (it fails; the caller decides whether to
    // retry). A fenced write thus reaches Redis while the lease check made before it still holds, not seconds
    // later after a reconnect, when this coordinator may have stood down.
    this.redis = new Redis(url, {
      lazyConnect: true,
      replyMapping: 'legacy',
      maxRetriesPerRequest: 3,
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
    });
    // Errors are reported through rejected commands and connect(); without a listener ioredis stays quiet.
    this.redis.on('error', () => {});
  }

  async connect(): Promise<void> {
    try {
      await this.redis.connect();
    } catch (err) {
      this.redis.disconnect();
      throw new StartupError(`state: cannot connect to Redis at ${this.url}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  async close(): Promise<void> {
    if (this.redis.status === 'end' || this.redis.status === 'wait') return;
    try {
      await this.redis.quit();
    } catch {
      this.redis.disconnect();
    }
  }

  async ping(): Promise<boolean> {
    if (this.redis.status !== 'ready') return false;
    try {
      return (await this.redis.ping()) === 'PONG';
    } catch {
      return false;
    }
  }

  /** One command sent directly (not a script): a Redis that does not answer becomes StoreUnavailableError. */
  private async command<T>(send: () => Promise<T>): Promise<T> {
    try {
      return await send();
    } catch (err) {
      if (unanswered(err))
        throw new StoreUnavailableError(`state: Redis does not answer: ${(err as Error).message}`, {
          cause: err,
        });
      throw err;
    }
  }

  // --- keys -------------------------------------------------------------------------------------------

  private jobKey(id: string): string {
    return `${this.prefix}{job:${id}}`;
  }
  private roundsKey(jobId: string): string {
    return `${this.prefix}{job:${jobId}}:rounds`;
  }
  private checkpointKey(jobId: string): string {
    return `${this.prefix}{job:${jobId}}:checkpoint`;
  }
  private fenceKey(jobId: string): string {
    return `${this.prefix}{job:${jobId}}:fence`;
  }
  private commitsKey(jobId: string): string {
    return `${this.prefix}{job:${jobId}}:commits`;
  }

  /** Run a fenced script for `jobId`; a refused token becomes StaleFenceError. */
  private async runFenced(
    s: LuaScript,
    jobId: string,
    fence: number | undefined,
    keys: string[],
    args: (string | number)[],
  ): Promise<unknown> {
    if (fence !== undefined && (!Number.isSafeInteger(fence) || fence < 1))
      throw new Error(`state: ${s.name}: fencing token must be a positive integer, got ${fence}`);
    try {
      return await this.run(s, [this.fenceKey(jobId), ...keys], [fence ?? '', ...args]);
    } catch (err) {
      const m = /STALEFENCE (\d+)/.exec((err as Error).message);
      if (m && fence !== undefined) throw new StaleFenceError(jobId, fence, Number(m[1]));
      throw err;
    }
  }
  private jobsKeys(): [queue: string, entries: string, index: string] {
    return [`${this.prefix}{jobs}:queue`, `${this.prefix}{jobs}:queue:entries`, `${this.prefix}{jobs}:index`];
  }
  private workerKeys(id: string): [worker: string, alive: string, live: string] {
    return [
      `${this.prefix}{workers}:worker:${id}`,
      `${this.prefix}{workers}:alive:${id}`,
      `${this.prefix}{workers}:live`,
    ];
  }
  private requestKey(owner: string | undefined, requestId: string): string {
    const pair = createHash('sha256')
      .update(`${owner ?? ''}\n${requestId}`)
      .digest('hex');
    return `${this.prefix}{request:${pair}}`;
  }
  private leaseKeys(name: string): [lease: string, token: string] {
    return [`${this.prefix}{lease:${name}}`, `${this.prefix}{lease:${name}}:token`];
  }

  /** EVALSHA, loading the script on NOSCRIPT (after a restart or failover the script cache is empty). */
  private async run(s: LuaScript, keys: string[], args: (string | number)[]): Promise<unknown> {
    try {
      try {
        return await this.redis.evalsha(s.sha, keys.length, ...keys, ...args);
      } catch (err) {
        if (!(err as Error).message?.startsWith('NOSCRIPT')) throw err;
        return await this.redis.eval(s.lua, keys.length, ...keys, ...args);
      }
    } catch (err) {
      const message = `state: ${s.name} failed: ${(err as Error).message}`;
      if (unanswered(err)) throw new StoreUnavailableError(message, { cause: err });
      throw new Error(message, { cause: err });
    }
  }

  // --- jobs -------------------------------------------------------------------------------------------

  async submitJob(job: JobRecord): Promise<SubmitOutcome> {
    const record: JobRecord = { ...job, state: 'queued' };
    if (record.requestId !== undefined) {
      const key = this.requestKey(record.owner, record.requestId);
      const first = await this.run(claimRequest, [key], [JSON.stringify(record)]);
      if (typeof first === 'string') {
        // The request was seen before; its submit may have stopped after the claim: finish it, store nothing new.
        const earlier = JSON.parse(first) as JobRecord;
        await this.storeJob(earlier, true);
        return { job: (await this.getJob(earlier.id)) ?? earlier, created: false };
      }
    }
    await this.storeJob(record, false);
    return { job: record, created: true };
  }

  /**
   * Job hash, then index and queue. `completing`: `record` was stored (or begun) by an earlier submit of the same
   * request, so finding it in place is no error.
   */
  private async storeJob(record: JobRecord, completing: boolean): Promise<void> {
    const created = await this.run(createJob, [this.jobKey(record.id)], jobFields(record));
    const [queue, entries, index] = this.jobsKeys();
    if (created !== 1) {
      // The id exists. Only a retry of a submit that stopped before the enqueue step (same record, not yet
      // indexed) may go on; anything else is a duplicate.
      const existing = await this.getJob(record.id);
      const same = existing?.createdAt === record.createdAt && existing.spec === record.spec;
      const interrupted = same && (await this.command(() => this.redis.zscore(index, record.id))) === null;
      if (completing && same && !interrupted) return;
      if (!interrupted) throw new Error(`state: job '${record.id}' already exists`);
    }
    const enqueued = await this.run(enqueueJob, [queue, entries, index], [record.id, record.createdAt]);
    if (created !== 1 && enqueued !== 1 && !completing) {
      throw new Error(`state: job '${record.id}' already exists`);
    }
  }

  async getJob(id: string): Promise<JobRecord | undefined> {
    return parseJob(await this.command(() => this.redis.hgetall(this.jobKey(id))));
  }

  async listJobs(): Promise<JobRecord[]> {
    const ids = await this.command(() => this.redis.zrevrange(this.jobsKeys()[2], 0, -1));
    if (ids.length === 0) return [];
    // One read per job (different slots, so no pipeline/MULTI across them).
    const records = await Promise.all(
      ids.map((id) => this.command(() => this.redis.hgetall(this.jobKey(id)))),
    );
    const jobs: JobRecord[] = [];
    for (const fields of records) {
      const job = parseJob(fields);
      if (job) jobs.push(job);
    }
    return jobs;
  }

  async transitionJob(
    id: string,
    transition: JobTransition,
    patch: JobPatch = {},
    fence?: number,
  ): Promise<JobRecord | undefined> {
    const args: (string | number)[] = [this.clock()];
    if (patch.round !== undefined) args.push('round', patch.round);
    if (patch.error !== undefined) args.push('error', patch.error);
    if (patch.result !== undefined) args.push('result', patch.result);
    const reply = await this.runFenced(transitionScripts[transition], id, fence, [this.jobKey(id)], args);
    return Array.isArray(reply) ? parseJob(pairsToObject(reply as string[])) : undefined;
  }

  async setJobRound(id: string, round: number, fence?: number): Promise<void> {
    const done = await this.runFenced(setJobRound, id, fence, [this.jobKey(id)], [round, this.clock()]);
    if (done !== 1) throw new Error(`state: setJobRound: unknown job '${id}'`);
  }

  async claimQueuedJob(consumer: string, claimTimeoutMs: number): Promise<string | undefined> {
    const [queue, entries] = this.jobsKeys();
    for (;;) {
      const reply = (await this.run(
        claimQueuedJob,
        [queue],
        [consumer, Math.max(0, Math.floor(claimTimeoutMs))],
      )) as [entry: string, jobId: string] | null;
      if (!reply) return undefined;
      const jobId = reply[1];
      // Another slot: read after the claim; the caller's transitionJob (compare-and-set) is the real guard.
      const state = await this.command(() => this.redis.hget(this.jobKey(jobId), 'state'));
      if (state !== null && !TERMINAL_JOB_STATES.includes(state as JobState)) return jobId;
      // Cancelled (or otherwise finished) while queued: nothing to run, drop it and look further.
      await this.run(discardQueuedJob, [queue, entries], [reply[0], jobId]);
    }
  }

  async ackQueuedJob(consumer: string, id: string): Promise<void> {
    await this.run(ackQueuedJob, this.jobsKeys().slice(0, 2), [consumer, id]);
  }

  // --- workers ----------------------------------------------------------------------------------------

  async putWorker(worker: WorkerRecord): Promise<void> {
    const [key] = this.workerKeys(worker.id);
    const fields: Record<string, string | number> = {};
    for (const [k, v] of Object.entries(worker)) if (v !== undefined) fields[k] = v as string | number;
    await this.command(() => this.redis.multi().del(key).hset(key, fields).exec());
  }

  async getWorker(id: string): Promise<WorkerRecord | undefined> {
    const f = await this.command(() => this.redis.hgetall(this.workerKeys(id)[0]));
    if (f.id === undefined) return undefined;
    return {
      id: f.id,
      name: f.name,
      sessionHash: f.sessionHash,
      capabilities: f.capabilities,
      registeredAt: Number(f.registeredAt),
      ...(f.enrollment !== undefined ? { enrollment: f.enrollment } : {}),
      ...(f.jobScope !== undefined ? { jobScope: f.jobScope } : {}),
    };
  }

  async touchWorker(id: string, ttlMs: number): Promise<void> {
    // A late heartbeat of a removed worker does nothing (the script checks the record exists).
    await this.run(touchWorker, this.workerKeys(id), [
      id,
      Math.max(1, Math.ceil(ttlMs)),
      this.clock() + ttlMs,
    ]);
  }

  async liveWorkers(nowMs: number): Promise<string[]> {
    const ids = await this.command(() =>
      this.redis.zrangebyscore(this.workerKeys('')[2], `(${nowMs}`, '+inf'),
    );
    return ids.sort();
  }

  async removeWorker(id: string): Promise<void> {
    await this.run(removeWorker, this.workerKeys(id), [id]);
  }

  // --- rounds -----------------------------------------------------------------------------------------

  async appendRoundReport(report: StoredRoundReport, maxLen: number): Promise<void> {
    if (!Number.isInteger(maxLen) || maxLen < 1)
      throw new Error(`state: appendRoundReport: maxLen must be a positive integer, got ${maxLen}`);
    if (!Number.isSafeInteger(report.round) || report.round < 0)
      throw new Error(`state: appendRoundReport: round must be a non-negative integer, got ${report.round}`);
    await this.run(appendRoundReport, [this.roundsKey(report.jobId)], [report.round, maxLen, report.report]);
  }

  async commitRound(
    report: StoredRoundReport,
    maxLen: number,
    fence?: number,
    commitId?: string,
  ): Promise<void> {
    if (!Number.isInteger(maxLen) || maxLen < 1)
      throw new Error(`state: commitRound: maxLen must be a positive integer, got ${maxLen}`);
    if (!Number.isSafeInteger(report.round) || report.round < 0)
      throw new Error(`state: commitRound: round must be a non-negative integer, got ${report.round}`);
    const done = await this.runFenced(
      commitRound,
      report.jobId,
      fence,
      [this.roundsKey(report.jobId), this.jobKey(report.jobId), this.commitsKey(report.jobId)],
      [report.round, maxLen, report.report, this.clock(), commitId ?? ''],
    );
    if (done !== 1) throw new Error(`state: commitRound: unknown job '${report.jobId}'`);
  }

  async listRoundCommits(jobId: string): Promise<RoundCommit[]> {
    const entries = await this.command(() => this.redis.xrange(this.commitsKey(jobId), '-', '+'));
    return entries.map(([, fields]) => {
      const f = pairsToObject(fields);
      return { round: Number(f.round), fence: Number(f.fence) };
    });
  }

  async listRoundReports(jobId: string, fromRound: number, limit: number): Promise<StoredRoundReport[]> {
    if (limit <= 0) return [];
    const start = `${Math.max(0, Math.ceil(fromRound))}-0`;
    const entries = await this.command(() =>
      this.redis.xrange(this.roundsKey(jobId), start, '+', 'COUNT', Math.floor(limit)),
    );
    return entries.map(([entryId, fields]) => ({
      jobId,
      round: Number(entryId.slice(0, entryId.indexOf('-'))),
      report: pairsToObject(fields).report,
    }));
  }

  // --- checkpoints ------------------------------------------------------------------------------------

  async putCheckpointManifest(manifest: CheckpointManifest, fence?: number): Promise<void> {
    await this.runFenced(
      putCheckpointManifest,
      manifest.jobId,
      fence,
      [this.checkpointKey(manifest.jobId)],
      [JSON.stringify(manifest)],
    );
  }

  // --- fencing ----------------------------------------------------------------------------------------

  async fenceJob(jobId: string, fence: number): Promise<void> {
    await this.runFenced(fenceJob, jobId, fence, [], []);
  }

  async jobFence(jobId: string): Promise<number> {
    return Number((await this.command(() => this.redis.get(this.fenceKey(jobId)))) ?? 0);
  }

  async getCheckpointManifest(jobId: string): Promise<CheckpointManifest | undefined> {
    const text = await this.command(() => this.redis.get(this.checkpointKey(jobId)));
    return text === null ? undefined : (JSON.parse(text) as CheckpointManifest);
  }

  // --- leases -----------------------------------------------------------------------------------------

  async acquireLease(name: string, owner: string, ttlMs: number): Promise<number | undefined> {
    const token = await this.run(acquireLease, this.leaseKeys(name), [owner, ttlArg(ttlMs)]);
    return typeof token === 'number' ? token : undefined;
  }

  async renewLease(name: string, owner: string, ttlMs: number): Promise<boolean> {
    return (await this.run(renewLease, this.leaseKeys(name).slice(0, 1), [owner, ttlArg(ttlMs)])) === 1;
  }

  async releaseLease(name: string, owner: string): Promise<void> {
    await this.run(releaseLease, this.leaseKeys(name).slice(0, 1), [owner]);
  }

  async getLease(name: string): Promise<LeaseHolder | undefined> {
    const [lease, token] = this.leaseKeys(name);
    const [owner, value] = await this.command(() => this.redis.mget(lease, token));
    return owner === null ? undefined : { owner, token: Number(value ?? 0) };
  }

  // --- access tokens and worker-name bindings ---------------------------------------------------------

  private authKey(kind: 'token' | 'name' | 'bound', id: string): string {
    return `${this.prefix}{auth}:${kind}:${id}`;
  }

  async putAccessToken(token: AccessTokenRecord): Promise<void> {
    const key = this.authKey('token', token.id);
    const text = JSON.stringify(token);
    const expiresAt = token.expiresAt;
    if (expiresAt === undefined) await this.command(() => this.redis.set(key, text));
    else await this.command(() => this.redis.set(key, text, 'PXAT', Math.max(1, Math.floor(expiresAt))));
  }

  async getAccessToken(id: string): Promise<AccessTokenRecord | undefined> {
    const text = await this.command(() => this.redis.get(this.authKey('token', id)));
    return text === null ? undefined : (JSON.parse(text) as AccessTokenRecord);
  }

  async revokeAccessToken(id: string): Promise<boolean> {
    return (await this.command(() => this.redis.del(this.authKey('token', id)))) === 1;
  }

  async bindWorkerName(
    name: string,
    credential: string,
    workerId: string,
    limit: number,
    expiresAt?: number,
  ): Promise<NameBinding> {
    const reply = (await this.run(
      bindWorkerName,
      [this.authKey('name', name), this.authKey('bound', credential)],
      [credential, workerId, limit, expiresAt === undefined ? '' : Math.max(1, Math.floor(expiresAt))],
    )) as string[];
    switch (reply[0]) {
      case 'rebound':
        return { status: 'rebound', previousWorker: reply[1] };
      case 'bound':
      case 'taken':
      case 'exhausted':
        return { status: reply[0] };
      default:
        throw new Error(`state: bindWorkerName: unexpected reply ${JSON.stringify(reply)}`);
    }
  }
}

function ttlArg(ttlMs: number): number {
  return Math.max(1, Math.ceil(ttlMs));
}

function jobFields(job: JobRecord): string[] {
  const fields: string[] = [];
  for (const [k, v] of Object.entries(job)) if (v !== undefined) fields.push(k, String(v));
  return fields;
}

function parseJob(f: Record<string, string>): JobRecord | undefined {
  if (f.id === undefined) return undefined;
  const job: JobRecord = {
    id: f.id,
    name: f.name,
    spec: f.spec,
    state: f.state as JobState,
    createdAt: Number(f.createdAt),
    updatedAt: Number(f.updatedAt),
    round: Number(f.round),
  };
  if (f.error !== undefined) job.error = f.error;
  if (f.result !== undefined) job.result = f.result;
  if (f.owner !== undefined) job.owner = f.owner;
  if (f.requestId !== undefined) job.requestId = f.requestId;
  return job;
}

function pairsToObject(pairs: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < pairs.length; i += 2) out[pairs[i]] = pairs[i + 1];
  return out;
}
