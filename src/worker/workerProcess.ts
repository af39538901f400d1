/**
 * The worker's main loop: register → heartbeat → join a job → per round: pull, compute, push. Survives a
 * coordinator restart (reconnects with backoff, re-registers if its session is unknown, rejoins if it is no
 * longer a participant) and resyncs after a late push. Given several coordinator addresses (a leader and its
 * standbys), it moves to the next one whenever the current one is unreachable or answers as a standby.
 */
import * as grpc from '@grpc/grpc-js';
import os from 'node:os';
import { validateJobSpec, type JobSpec } from '../config/jobSpec.ts';
import { layoutFingerprint } from '../core/layout/parameterLayout.ts';
import type { FashionMnist } from '../data/fashionMnist.ts';
import { loadJobData } from '../data/jobData.ts';
import { createTrainer } from '../models/trainer.ts';
import type { Trainer } from '../models/types.ts';
import { selectBackend, type BackendPreference } from './backend.ts';
import { CoordinatorClient, isStatus, pushPlanned } from './coordinatorClient.ts';
import { sessionSpec, WorkerCompressor } from '../core/compression/compressionSession.ts';
import { CodecError } from '../core/compression/codecError.ts';
import { planFromWire } from '../transport/planWire.ts';
import { GradientWorker, type ByzantineConfig } from './gradientWorker.ts';
import { MomentumSnapshots } from './momentumSnapshots.ts';
import { currentState, restoreState, stateElements, stateParts } from './workerStateSync.ts';
import { phaseWord } from '../transport/wireVocabulary.ts';
import { AttackError } from '../core/attacks/types.ts';
import { createLogger, type LogFields, type Logger } from '../logging/logger.ts';
import { Backoff, formatDelay, sleep, unreachableReason } from './retry.ts';
import { TeacherRefusedError, type Teacher } from './teacherDownload.ts';

export interface WorkerOptions {
  /** host:port, or several separated by commas (the leader and its standbys, in any order). */
  coordinator: string;
  name: string;
  /** Job to join; empty = the oldest running job. The worker exits when a job it was told to join ends. */
  jobId?: string;
  backend?: BackendPreference;
  byzantine?: ByzantineConfig;
  /** Exit after the first job ends (launch/demo) instead of waiting for the next one. */
  once?: boolean;
  /** Override the dataset directory of the job spec. */
  dataPath?: string;
  /** Enrollment token for RegisterWorker (none: the client certificate enrolls). */
  token?: string;
  /** Channel credentials (TLS; a client certificate under mutual TLS). */
  credentials?: grpc.ChannelCredentials;
  /** Give up (WorkerUnreachableError) after the coordinator has been unreachable this long (default: never). */
  connectTimeoutMs?: number;
  /** How often a worker without a job asks for one (default 3 s). */
  pollIntervalMs?: number;
  /** First and largest delay between attempts to reach the coordinator (default 1 s and 30 s). */
  backoff?: { baseMs: number; maxMs: number };
  logger?: Logger;
  signal?: AbortSignal;
}

/** A worker that cannot go on (a refused enrollment, a coordinator it cannot reach, a setup that cannot work). */
export class WorkerStopError extends Error {
  /** The process's exit code: 2 for invalid input (an unknown attack, a job spec it cannot read), else 1. */
  constructor(
    message: string,
    readonly exitCode: 1 | 2 = 1,
  ) {
    super(message);
  }
}

/** The coordinator refused to enroll this worker (credential, name): retrying cannot help. */
export class WorkerEnrollmentError extends WorkerStopError {}

/** `a:1, b:2` → ['a:1', 'b:2']; at least one address. */
export function coordinatorAddresses(list: string): string[] {
  const addresses = list
    .split(',')
    .map((a) => a.trim())
    .filter((a) => a !== '');
  if (addresses.length === 0) throw new Error(`no coordinator address in '${list}'`);
  return addresses;
}

/** The coordinator stayed unreachable for longer than connectTimeoutMs. */
export class WorkerUnreachableError extends WorkerStopError {}

const DEFAULT_POLL_MS = 3000;

export async function runWorker(options: WorkerOptions): Promise<void> {
  const log = (
    options.logger ?? createLogger({ component: 'worker', format: 'pretty', level: 'info' })
  ).child({ worker: options.name }, `[${options.name}] `);
  const selection = await selectBackend(options.backend ?? 'auto');
  log.info(`tfjs backend: ${selection.backend} — ${selection.reason}`, { backend: selection.backend });

  const addresses = coordinatorAddresses(options.coordinator);
  let next = 0;
  // With standbys, notice a paused (not dead) coordinator within seconds: its kernel still holds the connection.
  const channelOptions =
    addresses.length > 1 ? { 'grpc.keepalive_time_ms': 2000, 'grpc.keepalive_timeout_ms': 3000 } : {};
  const connect = (session = '') => {
    const address = addresses[next];
    next = (next + 1) % addresses.length;
    const c = new CoordinatorClient(address, options.credentials, options.token, channelOptions);
    if (session) c.setToken(session);
    return c;
  };
  let client = connect();
  /**
   * The next address, keeping the session (coordinators of one store share it). Returns whether every address
   * has been tried since the last one that worked: only then is it time to back off.
   */
  let tried = 0;
  const failover = (): boolean => {
    if (addresses.length < 2) return true;
    const session = client.sessionToken;
    client.close();
    client = connect(session);
    tried = (tried + 1) % addresses.length;
    log.info(`trying coordinator ${client.address}`, { coordinator: client.address });
    return tried === 0;
  };
  // With standbys, retry about as often as a standby polls for the lease: a takeover takes a lease TTL anyway.
  const backoff = new Backoff(
    options.backoff?.baseMs ?? (addresses.length > 1 ? 200 : undefined),
    options.backoff?.maxMs ?? (addresses.length > 1 ? 1000 : undefined),
  );
  const pollMs = options.pollIntervalMs ?? DEFAULT_POLL_MS;
  /** Since when every call failed to reach the coordinator (undefined: the last call reached it). */
  let unreachableSince: number | undefined;
  /** The last waiting line said (logged once; its repeats are debug lines). */
  let waitingSaid = '';
  let polls = 0;
  let finishedJob = '';
  let registered = false;
  let heartbeatTimer: NodeJS.Timeout | undefined;
  let currentJob = '';
  let currentRound = 0;
  let dataset: { key: string; data: FashionMnist } | undefined;
  let trainer: Trainer | undefined;
  let trainerKey = '';
  /** A distillation job's teacher, pulled once per job and kept across rejoins. */
  let teacherOf: { jobId: string; teacher: Teacher } | undefined;
  /** The job this process computes for: kept across rejoins so worker momentum survives them. */
  let session:
    | {
        jobId: string;
        rank: number;
        worker: GradientWorker;
        snapshots: MomentumSnapshots;
        /** Error-feedback memories for the whole job (compression uniform | lgreco), kept across rejoins. */
        compressor: WorkerCompressor | undefined;
      }
    | undefined;

  /** Info the first time, debug while nothing changes: a waiting worker says so once. */
  const waiting = (line: string, fields: LogFields) => {
    polls = line === waitingSaid ? polls + 1 : 1;
    if (line === waitingSaid) log.debug(`${line} (poll ${polls})`, { ...fields, poll: polls });
    else log.info(line, fields);
    waitingSaid = line;
  };
  const reached = () => {
    if (unreachableSince !== undefined)
      log.info(`coordinator at ${options.coordinator} answers again`, { coordinator: options.coordinator });
    unreachableSince = undefined;
  };

  const register = async () => {
    const res = await client.register(options.name, {
      backend: selection.backend,
      device: selection.gpu ? 'gpu' : 'cpu',
      memoryBytes: os.totalmem(),
      hostname: os.hostname(),
      byzantine: options.byzantine ? options.byzantine.attack : '',
    });
    registered = true;
    reached();
    log.info(`registered as ${res.workerId}`, { workerId: res.workerId, coordinator: options.coordinator });
    clearInterval(heartbeatTimer);
    heartbeatTimer = setInterval(() => {
      client.heartbeat(currentJob, currentRound).catch(() => {});
    }, res.heartbeatIntervalMs);
    heartbeatTimer.unref();
  };

  try {
    while (!options.signal?.aborted) {
      try {
        if (!registered) {
          try {
            await register();
          } catch (e) {
            // A refused enrollment does not heal by retrying: say why and stop.
            if (
              isStatus(
                e,
                grpc.status.UNAUTHENTICATED,
                grpc.status.PERMISSION_DENIED,
                grpc.status.INVALID_ARGUMENT,
                grpc.status.RESOURCE_EXHAUSTED,
              )
            ) {
              const se = e as grpc.ServiceError;
              throw new WorkerEnrollmentError(`registration refused: ${grpc.status[se.code]}: ${se.details}`);
            }
            throw e;
          }
        }
        let joined;
        try {
          joined = await client.join(options.jobId ?? '');
        } catch (e) {
          if (isStatus(e, grpc.status.NOT_FOUND)) {
            reached();
            backoff.reset();
            const details = (e as grpc.ServiceError).details;
            waiting(
              finishedJob
                ? `job ${finishedJob} finished; waiting for the next job`
                : `waiting for a job: ${details}`,
              { finishedJob: finishedJob || undefined, reason: details },
            );
            await sleep(pollMs, options.signal);
            continue;
          }
          throw e;
        }
        reached();
        backoff.reset();
        waitingSaid = '';
        tried = 0;
        let spec: JobSpec;
        try {
          spec = validateJobSpec(JSON.parse(joined.specJson));
        } catch (e) {
          // A spec this worker cannot read (a rule or field of another version) stays unreadable: stop.
          throw new WorkerStopError(`cannot work on job ${joined.jobId}: ${(e as Error).message}`, 2);
        }
        currentJob = joined.jobId;
        log.info(
          `joined job ${joined.jobId} as rank ${joined.rank}/${joined.worldSize} at round ${joined.round}`,
          { job: joined.jobId, rank: joined.rank, worldSize: joined.worldSize, round: joined.round },
        );

        if (!spec.teacher) teacherOf = undefined; // a previous job's teacher is not kept in memory
        if (spec.teacher && teacherOf?.jobId !== joined.jobId) {
          // Unreachable or busy coordinators are retried like any call; bytes that fail the checks stop the worker.
          try {
            const teacher = await client.pullTeacher(joined.jobId);
            if (teacher.sha256 !== spec.teacher.sha256) {
              throw new TeacherRefusedError(
                `checksum mismatch: received sha256 ${teacher.sha256}, the job spec pins ${spec.teacher.sha256}`,
              );
            }
            teacherOf = { jobId: joined.jobId, teacher };
          } catch (e) {
            if (!(e instanceof TeacherRefusedError)) throw e;
            log.error(e.message, { job: joined.jobId });
            await client.leave(joined.jobId, e.message).catch(() => {});
            throw new WorkerStopError(`cannot work on job ${joined.jobId}: ${e.message}`);
          }
          const { config, sha256, bytes } = teacherOf.teacher;
          log.info(
            `teacher: ${bytes} bytes, sha256 ${sha256} verified (${config.model.kind}, ${config.parameters} parameters)`,
            { job: joined.jobId, teacherSha256: sha256, teacherBytes: bytes },
          );
        }

        // Nothing below heals by asking again (a version skew, a missing data file, an attack that cannot be
        // built): the worker stops and says why instead of retrying forever.
        try {
          const teacher = spec.teacher && teacherOf ? { ...spec.teacher, ...teacherOf.teacher } : undefined;
          const key = JSON.stringify([
            spec.model,
            teacher && [teacher.sha256, teacher.alpha, teacher.temperature],
          ]);
          if (!trainer || trainerKey !== key) {
            trainer?.dispose();
            trainer = await createTrainer(
              spec.model,
              teacher
                ? {
                    teacher: {
                      spec: teacher.config.model,
                      params: teacher.params,
                      weights: { alpha: teacher.alpha, temperature: teacher.temperature },
                    },
                  }
                : {},
            );
            trainerKey = key;
          }
          const fingerprint = layoutFingerprint(trainer.layout);
          if (fingerprint !== joined.layoutFingerprint) {
            throw new Error(
              `layout mismatch: coordinator ${joined.layoutFingerprint}, worker ${fingerprint} — versions differ?`,
            );
          }
          // --data overrides the Fashion-MNIST directory; a text job reads data.source (or PHALANX_TEXT, …).
          const text = spec.data.kind === 'text';
          const dataPath = text ? spec.data.source : (options.dataPath ?? spec.data.path);
          const dataKey = JSON.stringify([dataPath, text && spec.data.seqLen, text && key]);
          if (!dataset || dataset.key !== dataKey) {
            dataset = {
              key: dataKey,
              data: await loadJobData(spec, { path: dataPath, maxTrain: spec.data.maxTrain, maxTest: 1 }),
            };
            log.info(`data: ${dataset.data.train.count} training examples from ${dataset.data.source}`, {
              examples: dataset.data.train.count,
              source: dataset.data.source,
            });
          }
          // The same job and model: the session (momentum, memories, snapshots) carries on; trainLoop puts back
          // a round's state if the worker computes a round again.
          if (
            !session ||
            session.jobId !== joined.jobId ||
            session.rank !== joined.rank ||
            session.worker.trainer !== trainer
          ) {
            const worker = new GradientWorker(
              trainer,
              dataset.data.train,
              spec,
              joined.rank,
              joined.worldSize,
              options.byzantine,
            );
            const compressing = sessionSpec(spec.compression);
            session = {
              jobId: joined.jobId,
              rank: joined.rank,
              worker,
              snapshots: new MomentumSnapshots(joined.jobId, spec.checkpoint.every),
              compressor: compressing
                ? new WorkerCompressor(compressing, trainer.layout, spec.seed, joined.rank)
                : undefined,
            };
          }
        } catch (e) {
          if (e instanceof AttackError) throw new WorkerStopError(`--byzantine: ${e.message}`, 2);
          throw new WorkerStopError(`cannot work on job ${joined.jobId}: ${(e as Error).message}`);
        }
        const done = await trainLoop(
          client,
          session.worker,
          session.compressor,
          session.snapshots,
          spec,
          joined.jobId,
          layoutFingerprint(trainer.layout),
          options,
          log,
          (r) => (currentRound = r),
        );
        if (done) {
          finishedJob = joined.jobId;
          if (options.once || options.jobId) return;
        }
      } catch (e) {
        if (options.signal?.aborted) return;
        if (e instanceof WorkerStopError) throw e;
        let delay = backoff.next();
        if (isStatus(e, grpc.status.UNAUTHENTICATED)) {
          reached();
          log.info('session not recognised; registering again');
          registered = false;
        } else if (
          isStatus(e, grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED, grpc.status.CANCELLED) ||
          // A server that lacks RegisterWorker (another service, an HTTP/2 proxy's 404) is a wrong address.
          (!registered && isStatus(e, grpc.status.UNIMPLEMENTED))
        ) {
          const reason = isStatus(e, grpc.status.UNIMPLEMENTED)
            ? `not a Phalanx coordinator: ${(e as grpc.ServiceError).details}`
            : unreachableReason(e);
          const now = Date.now();
          unreachableSince ??= now;
          const limit = options.connectTimeoutMs;
          if (limit !== undefined) {
            const left = unreachableSince + limit - now;
            if (left <= 0)
              throw new WorkerUnreachableError(
                `cannot reach coordinator at ${options.coordinator} (${reason}) for ${formatDelay(now - unreachableSince)}; giving up (--connect-timeout ${formatDelay(limit)})`,
              );
            delay = Math.min(delay, left);
          }
          if (addresses.length > 1) {
            log.warn(`coordinator ${client.address} unavailable (${reason})`, {
              coordinator: client.address,
              reason,
            });
            if (!failover()) continue;
          }
          log.warn(
            `cannot reach coordinator at ${options.coordinator} (${reason}); retrying in ${formatDelay(delay)}`,
            { coordinator: options.coordinator, reason, retryInMs: Math.round(delay) },
          );
        } else if (isStatus(e, grpc.status.FAILED_PRECONDITION, grpc.status.NOT_FOUND)) {
          reached();
          // A job still starting or queued answers the same until it runs: said once, like any wait.
          waiting(`${(e as grpc.ServiceError).details}; rejoining`, {
            reason: (e as grpc.ServiceError).details,
          });
          delay = Math.min(delay, pollMs);
        } else {
          log.error(
            `coordinator at ${client.address}: ${(e as Error).message}; retrying in ${formatDelay(delay)}`,
            { coordinator: client.address, err: (e as Error).message, retryInMs: Math.round(delay) },
          );
        }
        await sleep(delay, options.signal);
      }
    }
  } finally {
    clearInterval(heartbeatTimer);
    trainer?.dispose();
    client.close();
  }
}

/** Rounds of one job until it ends (true) or this worker must rejoin (throws). */
async function trainLoop(
  client: CoordinatorClient,
  worker: GradientWorker,
  compressor: WorkerCompressor | undefined,
  snapshots: MomentumSnapshots,
  spec: JobSpec,
  jobId: string,
  fingerprint: string,
  options: WorkerOptions,
  log: Logger,
  onRound: (round: number) => void,
): Promise<boolean> {
  const params = new Float32Array(worker.trainer.layout.totalSize);
  let lastDone: number | undefined;
  let heldVersion = -1;
  let attempt = 0;
  while (!options.signal?.aborted) {
    const tWait = performance.now();
    const info = await client.getRound(jobId, lastDone, 20_000);
    if (info.phase === 'JOB_PHASE_STARTING' || info.phase === 'JOB_PHASE_QUEUED')
      throw Object.assign(new Error('job is not running yet'), {
        code: grpc.status.FAILED_PRECONDITION,
        details: `job ${jobId} is ${phaseWord(info.phase)}`,
      });
    if (info.phase !== 'JOB_PHASE_RUNNING') {
      log.info(`job ${jobId} ended (${phaseWord(info.phase)})`, { job: jobId, phase: phaseWord(info.phase) });
      return true;
    }
    if (!info.participant)
      throw Object.assign(new Error('no longer a participant'), {
        code: grpc.status.FAILED_PRECONDITION,
        details: 'no longer a participant',
      });
    const round = info.round;
    onRound(round);
    if (info.pushed) {
      lastDone = round;
      continue;
    }
    const t0 = performance.now();
    if (heldVersion !== round)
      heldVersion = await client.pull(jobId, params, fingerprint, spec.compression.encoding);
    const t1 = performance.now();
    if (heldVersion !== round) {
      // The round moved on while we pulled: resync.
      lastDone = heldVersion - 1;
      continue;
    }
    const parts = stateParts(worker, compressor);
    const stateful = parts.momentum || parts.errorFeedback;
    if (stateful && snapshots.lastComputed < 0 && round > 0) {
      // A new session (this process started, or the job or rank changed): the coordinator may hold this worker's
      // state entering the round (it sent it at a checkpoint round), else momentum and memories start from zero.
      const named = [parts.momentum && 'worker momentum', parts.errorFeedback && 'error feedback'].filter(
        Boolean,
      );
      const state = named.join(' and ');
      const size = worker.trainer.layout.totalSize;
      const kept = await client.pullWorkerState(jobId, round, stateElements(parts, size));
      if (kept) restoreState(kept, worker, compressor);
      log.info(
        kept
          ? `joined at round ${round}: ${state} restored from the coordinator (its state entering round ${round})`
          : `joined at round ${round}: ${state} ${named.length > 1 ? 'start' : 'starts'} from zero`,
        { job: jobId, round, momentum: kept ? 'restored' : 'reset' },
      );
    }
    const what = snapshots.beforeRound(round, worker, info.rollbackRound, compressor);
    if ((spec.workers.momentum > 0 || compressor) && what !== 'continued') {
      const state = compressor ? 'worker momentum and error feedback' : 'worker momentum';
      log.info(
        what === 'restored'
          ? `resumed at round ${round}: ${state} restored from that round`
          : `resumed at round ${round}: no snapshot of that round; ${state} ${compressor ? 'start' : 'starts'} over`,
        { job: jobId, round, momentum: what },
      );
    }
    const contribution = await worker.contribute(params, round);
    const t2 = performance.now();
    if (contribution.behaviour === 'crash') {
      log.info(`byzantine behaviour 'crash': stopping`);
      process.exit(0);
    }
    if (contribution.behaviour === 'straggle')
      await new Promise((r) => setTimeout(r, contribution.delayMs ?? 0));
    /**
     * Before the push of round R − 1 when R is a checkpoint round: the state entering R (this round's update
     * done), so that the checkpoint of R, written once R − 1 closes, holds it. A failed send only costs a
     * restarted process its state; the push goes on.
     */
    const sendState = async () => {
      const next = round + 1;
      const every = spec.checkpoint.every;
      if (!stateful || every <= 0 || next % every !== 0 || next >= spec.rounds) return;
      const values = currentState(worker, compressor);
      if (!values) return;
      try {
        await client.pushWorkerState({ jobId, round: next, ...parts, values });
      } catch (e) {
        log.warn(`state entering round ${next} not sent: ${(e as Error).message}`, { job: jobId, round });
      }
    };
    let res;
    try {
      if (compressor) {
        // The open round's plan, read every round (an id can come back with other settings after a rollback or a
        // coordinator restart), then this worker's bytes under it.
        const plan = planFromWire(info.plan, worker.trainer.layout);
        const layout = worker.trainer.layout;
        const vector = contribution.vector;
        let layers: Uint8Array[] = [];
        let errorTable: Float64Array | undefined;
        if (vector.length === layout.totalSize) {
          try {
            if (info.wantsErrorTable) errorTable = compressor.errorTable(round, vector);
            layers = compressor.encode(plan, round, vector);
          } catch (e) {
            // A vector the codecs refuse (a Byzantine NaN): send the header alone, which the coordinator refuses.
            if (!(e instanceof CodecError)) throw e;
            log.warn(`round ${round}: cannot encode: ${e.message}`, { job: jobId, round });
          }
        }
        await sendState();
        res = await pushPlanned(client, layers, {
          jobId,
          round,
          loss: contribution.loss,
          samples: contribution.samples,
          attempt: attempt++,
          layoutFingerprint: fingerprint,
          plan,
          totalElements: layout.totalSize,
          ...(errorTable ? { errorTable } : {}),
        });
      } else {
        await sendState();
        res = await client.push(contribution.vector, worker.trainer.layout, {
          jobId,
          round,
          loss: contribution.loss,
          samples: contribution.samples,
          attempt: attempt++,
          encoding: spec.compression.encoding,
          layoutFingerprint: fingerprint,
        });
      }
    } catch (e) {
      // The coordinator refused this push's content (e.g. a Byzantine NaN or wrong-size vector): go on.
      if (!isStatus(e, grpc.status.INVALID_ARGUMENT, grpc.status.RESOURCE_EXHAUSTED)) throw e;
      log.warn(`round ${round} push rejected: ${(e as grpc.ServiceError).details}`, { job: jobId, round });
      lastDone = round;
      continue;
    }
    const t3 = performance.now();
    if (log.level === 'debug' && round % 10 === 0) {
      log.debug(
        `round ${round}: wait ${(t0 - tWait).toFixed(0)} ms, pull ${(t1 - t0).toFixed(0)} ms, compute ${(t2 - t1).toFixed(0)} ms, push ${(t3 - t2).toFixed(0)} ms${contribution.expertLoad === undefined ? '' : `, expert load (max/mean) ${contribution.expertLoad.toFixed(2)}`}`,
      );
    }
    if (res.status === 'PUSH_STATUS_LATE')
      log.info(`round ${round} push was late (open round ${res.currentRound}); resyncing`, {
        job: jobId,
        round,
      });
    lastDone = round;
  }
  return false;
}
