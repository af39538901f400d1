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
import { phaseWord } from '../transport/wireVocabulary.ts';

export interface WorkerOptions {
  /** host:port, or several separated by commas (the leader and its standbys, in any order). */
  coordinator: string;
  name: string;
  /** Job to join; empty = the oldest running job. */
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
  log?: (message: string) => void;
  signal?: AbortSignal;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal?.addEventListener('abort', done);
  });

class Backoff {
  private attempt = 0;
  constructor(
    private readonly base = 200,
    private readonly max = 5000,
  ) {}
  next(): number {
    const ms = Math.min(this.max, this.base * 2 ** this.attempt++);
    return ms / 2 + Math.random() * (ms / 2);
  }
  reset(): void {
    this.attempt = 0;
  }
}

export async function runWorker(options: WorkerOptions): Promise<void> {
  const log = options.log ?? ((m: string) => console.log(m));
  const selection = await selectBackend(options.backend ?? 'auto');
  log(`[${options.name}] tfjs backend: ${selection.backend} — ${selection.reason}`);

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
    log(`[${options.name}] trying coordinator ${client.address}`);
    return tried === 0;
  };
  // With standbys, retry about as often as a standby polls for the lease: a takeover takes a lease TTL anyway.
  const backoff = new Backoff(200, addresses.length > 1 ? 1000 : 5000);
  let registered = false;
  let heartbeatTimer: NodeJS.Timeout | undefined;
  let currentJob = '';
  let currentRound = 0;
  let dataset: { key: string; data: FashionMnist } | undefined;
  let trainer: Trainer | undefined;
  let trainerKey = '';
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

  const register = async () => {
    const res = await client.register(options.name, {
      backend: selection.backend,
      device: selection.gpu ? 'gpu' : 'cpu',
      memoryBytes: os.totalmem(),
      hostname: os.hostname(),
      byzantine: options.byzantine ? options.byzantine.attack : '',
    });
    registered = true;
    log(`[${options.name}] registered as ${res.workerId}`);
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
            log(`[${options.name}] waiting for a job: ${(e as grpc.ServiceError).details}`);
            await sleep(backoff.next(), options.signal);
            continue;
          }
          throw e;
        }
        backoff.reset();
        tried = 0;
        const spec: JobSpec = validateJobSpec(JSON.parse(joined.specJson));
        currentJob = joined.jobId;
        log(
          `[${options.name}] joined job ${joined.jobId} as rank ${joined.rank}/${joined.worldSize} at round ${joined.round}`,
        );

        const key = JSON.stringify(spec.model);
        if (!trainer || trainerKey !== key) {
          trainer?.dispose();
          trainer = await createTrainer(spec.model);
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
          log(
            `[${options.name}] data: ${dataset.data.train.count} training examples from ${dataset.data.source}`,
          );
        }
        if (
          session &&
          session.jobId === joined.jobId &&
          session.rank === joined.rank &&
          session.worker.trainer === trainer
        ) {
          const what = session.snapshots.rejoin(joined.round, session.worker, session.compressor);
          if ((spec.workers.momentum > 0 || session.compressor) && what !== 'continued') {
            const state = session.compressor ? 'worker momentum and error feedback' : 'worker momentum';
            log(
              what === 'restored'
                ? `[${options.name}] resumed at round ${joined.round}: ${state} restored from that round`
                : `[${options.name}] resumed at round ${joined.round}: no snapshot of that round; ${state} ${session.compressor ? 'start' : 'starts'} over`,
            );
          }
        } else {
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
          if (spec.workers.momentum > 0 && joined.round > 0)
            log(`[${options.name}] joined at round ${joined.round}: worker momentum starts from zero`);
        }
        const done = await trainLoop(
          client,
          session.worker,
          session.compressor,
          session.snapshots,
          spec,
          joined.jobId,
          fingerprint,
          options,
          log,
          (r) => (currentRound = r),
        );
        if (done && options.once) return;
      } catch (e) {
        if (options.signal?.aborted) return;
        if (e instanceof WorkerEnrollmentError) throw e;
        if (isStatus(e, grpc.status.UNAUTHENTICATED)) {
          log(`[${options.name}] session not recognised; registering again`);
          registered = false;
        } else if (
          isStatus(e, grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED, grpc.status.CANCELLED)
        ) {
          log(
            `[${options.name}] coordinator ${client.address} unavailable (${(e as grpc.ServiceError).details}); retrying`,
          );
          if (!failover()) continue;
        } else if (isStatus(e, grpc.status.FAILED_PRECONDITION, grpc.status.NOT_FOUND)) {
          log(`[${options.name}] ${(e as grpc.ServiceError).details}; rejoining`);
        } else {
          log(`[${options.name}] error: ${(e as Error).message}`);
        }
        await sleep(backoff.next(), options.signal);
      }
    }
  } finally {
    clearInterval(heartbeatTimer);
    trainer?.dispose();
    client.close();
  }
}

/** `a:1, b:2` → ['a:1', 'b:2']; at least one address. */
export function coordinatorAddresses(list: string): string[] {
  const addresses = list
    .split(',')
    .map((a) => a.trim())
    .filter((a) => a !== '');
  if (addresses.length === 0) throw new Error(`no coordinator address in '${list}'`);
  return addresses;
}

/** The coordinator refused to enroll this worker (credential, name): retrying cannot help. */
export class WorkerEnrollmentError extends Error {}

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
  log: (m: string) => void,
  onRound: (round: number) => void,
): Promise<boolean> {
  const params = new Float32Array(worker.trainer.layout.totalSize);
  let lastDone: number | undefined;
  let heldVersion = -1;
  let attempt = 0;
  const debug = Boolean(process.env['PHALANX_DEBUG']);
  while (!options.signal?.aborted) {
    const tWait = performance.now();
    const info = await client.getRound(jobId, lastDone, 20_000);
    if (info.phase === 'JOB_PHASE_STARTING' || info.phase === 'JOB_PHASE_QUEUED')
      throw Object.assign(new Error('job is not running yet'), {
        code: grpc.status.FAILED_PRECONDITION,
        details: `job ${jobId} is ${phaseWord(info.phase)}`,
      });
    if (info.phase !== 'JOB_PHASE_RUNNING') {
      log(`[${options.name}] job ${jobId} ended (${phaseWord(info.phase)})`);
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
    snapshots.beforeRound(round, worker, info.rollbackRound, compressor);
    const contribution = await worker.contribute(params, round);
    const t2 = performance.now();
    if (contribution.behaviour === 'crash') {
      log(`[${options.name}] byzantine behaviour 'crash': stopping`);
      process.exit(0);
    }
    if (contribution.behaviour === 'straggle')
      await new Promise((r) => setTimeout(r, contribution.delayMs ?? 0));
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
            log(`[${options.name}] round ${round}: cannot encode: ${e.message}`);
          }
        }
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
      log(`[${options.name}] round ${round} push rejected: ${(e as grpc.ServiceError).details}`);
      lastDone = round;
      continue;
    }
    const t3 = performance.now();
    if (debug && round % 10 === 0) {
      log(
        `[${options.name}] round ${round}: wait ${(t0 - tWait).toFixed(0)} ms, pull ${(t1 - t0).toFixed(0)} ms, compute ${(t2 - t1).toFixed(0)} ms, push ${(t3 - t2).toFixed(0)} ms`,
      );
    }
    if (res.status === 'PUSH_STATUS_LATE')
      log(`[${options.name}] round ${round} push was late (open round ${res.currentRound}); resyncing`);
    lastDone = round;
  }
  return false;
}
