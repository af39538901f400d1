/**
 * The aggregation pipeline and optimizer of one job, on a worker thread (roundComputeWorker.ts), so that no rule
 * — however slow — ever runs on the coordinator's gRPC event loop. The parameters, the push buffers, the last
 * aggregate and the optimizer state live in shared memory: a step posts references, never copies.
 *
 * Each step has a compute deadline. A rule that exceeds it fails that round (skipReason says so): the thread is
 * terminated before it can touch the parameters or the optimizer state (roundComputeProtocol.ts), and a fresh
 * thread continues from the last good round — the same shared parameters and optimizer tensors, the optimizer's
 * scalars, the aggregation state and the consecutive-skip count it reported after that round. Skipped rounds
 * count toward MAX_CONSECUTIVE_SKIPS exactly like rounds whose rule threw.
 *
 * The optimizer writes `params` in place while the step's promise is pending. Pulls meanwhile get the version
 * serialised when the round opened (ParameterFeed); only the first pull of an encoding not yet served for this
 * job, arriving during the optimizer pass, would read the array mid-update — for a round that is closing, so that
 * worker's push is answered LATE and it pulls again.
 */
import { Worker } from 'node:worker_threads';
import { averageOf } from '../core/optim/parameterAverage.ts';
import { AggregationStalledError, countSkip, type RoundStepResult } from '../core/roundStep.ts';
import {
  ABANDONED,
  AGGREGATING,
  sharedFloat32,
  type ComputeConfig,
  type ComputeState,
  type FromThread,
  type PostedStepResult,
  type Snapshot,
  type ThreadInit,
  type ToThread,
} from './roundComputeProtocol.ts';
import { threadEntry } from '../packageRoot.ts';

export { sharedFloat32, type ComputeConfig, type ComputeState } from './roundComputeProtocol.ts';

export interface RoundComputeOptions {
  /** Compute budget of one step (aggregation); a step over it is skipped. */
  deadlineMs: number;
  log?: (message: string) => void;
}

const BOOT = threadEntry('src/coordinator', 'roundComputeWorker');

type Reply = Exclude<FromThread, { type: 'ready' | 'log' | 'failed' | 'snapshot' }>;

interface Pending {
  resolve(reply: Reply): void;
  reject(error: Error): void;
}

export class RoundCompute {
  /** The authoritative parameters (shared memory; the thread updates them in place during a step). */
  readonly params: Float32Array;
  private readonly update: Float32Array;
  private readonly control = new Int32Array(new SharedArrayBuffer(4));
  private readonly log: (message: string) => void;
  private worker: Worker | undefined;
  /** Resolves once the current thread is ready; every request waits for it. */
  private ready: Promise<void>;
  /** Requests run one at a time, in call order. */
  private queue: Promise<unknown> = Promise.resolve();
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private optimizerTensors: Float32Array[] | undefined;
  /** What a respawned thread restores: the state after the last round that completed. */
  private lastGood: Snapshot | undefined;
  /** Resolves once the thread reported the state after the previous step (lastGood is current). */
  private snapshotted: Promise<void> = Promise.resolve();
  private onSnapshot: (() => void) | undefined;
  private failure: Error | undefined;

  private constructor(
    private config: ComputeConfig,
    initialParams: Float32Array,
    private readonly options: RoundComputeOptions,
  ) {
    if (initialParams.length !== config.size) {
      throw new Error(`parameters have ${initialParams.length} elements, the job needs ${config.size}`);
    }
    this.params = sharedFloat32(config.size);
    this.params.set(initialParams);
    this.update = sharedFloat32(config.size);
    this.log = options.log ?? (() => {});
    this.ready = this.spawn();
  }

  /** Starts the thread (with `state` loaded, e.g. from a checkpoint). Rejects if the spec cannot run. */
  static async start(
    config: ComputeConfig,
    initialParams: Float32Array,
    options: RoundComputeOptions,
    state?: ComputeState,
  ): Promise<RoundCompute> {
    const compute = new RoundCompute(config, initialParams, options);
    try {
      await compute.ready;
      if (state) await compute.loadState(state);
    } catch (e) {
      await compute.dispose();
      throw e;
    }
    return compute;
  }

  /**
   * Aggregate `vectors` (ordered by rank) and apply the optimizer to `params`; the same result as
   * RoundStepper.step in process. `result.update` is shared memory, valid until the next step. The vectors must
   * not change until the promise settles. Rejects after MAX_CONSECUTIVE_SKIPS skipped rounds in a row.
   */
  step(round: number, vectors: Float32Array[], workerIds: string[]): Promise<RoundStepResult> {
    return this.enqueue(() => this.runStep(round, vectors, workerIds));
  }

  /**
   * A round closed without quorum: nothing is aggregated, the thread's stepper counts it toward
   * MAX_CONSECUTIVE_SKIPS (rejects when the limit is reached).
   */
  skip(round: number, reason: string): Promise<RoundStepResult> {
    return this.enqueue(() => this.runStep(round, [], [], reason));
  }

  /** Optimizer tensors (copies) and scalars, and the aggregation state as JSON text, for a checkpoint. */
  saveState(): Promise<ComputeState> {
    return this.enqueue(async () => {
      const reply = await this.request({ type: 'save', id: this.nextId++ });
      return (reply as Extract<Reply, { type: 'saved' }>).state;
    });
  }

  /** optimizer.ema > 0: a copy of the iterate average, taken between steps (undefined before the first). */
  async averaged(): Promise<Float32Array | undefined> {
    if (!this.config.optimizer.ema) return undefined;
    return averageOf((await this.saveState()).optimizer);
  }

  loadState(state: ComputeState): Promise<void> {
    return this.enqueue(async () => {
      const reply = await this.request({ type: 'load', id: this.nextId++, state });
      this.lastGood = (reply as Extract<Reply, { type: 'loaded' }>).snapshot;
    });
  }

  /**
   * Start over on a fresh thread with `config` (the divergence guard's fallback rule): the parameters become
   * `params`, the optimizer and rule state `state` (absent: a fresh optimizer and rule, as in round 0).
   */
  async restart(config: ComputeConfig, params: Float32Array, state?: ComputeState): Promise<void> {
    if (config.size !== this.config.size || params.length !== this.config.size) {
      throw new Error(`restart needs ${this.config.size} parameters`);
    }
    await this.enqueue(async () => {
      this.onSnapshot?.(); // a snapshot still coming from the old thread is of no use now
      const worker = this.worker;
      this.worker = undefined;
      await worker?.terminate();
      this.config = config;
      this.params.set(params);
      this.optimizerTensors = undefined;
      this.lastGood = undefined;
      this.ready = this.spawn();
      await this.ready;
    });
    if (state) await this.loadState(state);
  }

  async dispose(): Promise<void> {
    this.failure ??= new Error('round compute stopped');
    this.onSnapshot?.();
    this.rejectAll(this.failure);
    const worker = this.worker;
    this.worker = undefined;
    await worker?.terminate();
  }

  // --- internals ----------------------------------------------------------------------------------------------

  private enqueue<T>(op: () => Promise<T>): Promise<T> {
    const run = this.queue.then(async () => {
      if (this.failure) throw this.failure;
      await this.ready;
      return op();
    });
    this.queue = run.catch(() => {});
    return run;
  }

  private async runStep(
    round: number,
    vectors: Float32Array[],
    workerIds: string[],
    skip?: string,
  ): Promise<RoundStepResult> {
    // The deadline starts once the thread is free and lastGood describes the state before this round.
    await this.snapshotted;
    const id = this.nextId++;
    this.snapshotted = new Promise((resolve) => (this.onSnapshot = resolve));
    const started = performance.now();
    Atomics.store(this.control, 0, AGGREGATING);
    let timer: NodeJS.Timeout | undefined;
    const overdue = new Promise<'overdue'>((resolve) => {
      const check = () => {
        // Lost the race: the rule returned and the optimizer is running (one O(d) pass): let it finish.
        if (Atomics.compareExchange(this.control, 0, AGGREGATING, ABANDONED) === AGGREGATING)
          resolve('overdue');
      };
      timer = setTimeout(check, this.options.deadlineMs);
    });
    try {
      const outcome = await Promise.race([
        this.request({ type: 'step', id, round, vectors, workerIds, skip }),
        overdue,
      ]);
      if (outcome !== 'overdue')
        return this.materialize((outcome as Extract<Reply, { type: 'stepped' }>).result);
    } catch (e) {
      this.onSnapshot?.(); // no snapshot follows a failed step
      throw e;
    } finally {
      clearTimeout(timer);
    }
    this.onSnapshot?.(); // the abandoned thread sends none: lastGood stays the state before this round
    this.pending.delete(id);
    const skipReason = `aggregation exceeded its ${formatDeadline(this.options.deadlineMs)} deadline`;
    this.log(`round ${round}: aggregation skipped: ${skipReason}`);
    // The thread may be deep in a rule: terminate it before the vectors go back to the pool.
    const worker = this.worker;
    this.worker = undefined;
    await worker?.terminate();
    let skips: number;
    try {
      skips = countSkip(this.lastGood?.skips ?? 0, skipReason);
    } catch (e) {
      throw this.fail(e as Error);
    }
    if (this.lastGood) this.lastGood = { ...this.lastGood, skips };
    this.ready = this.spawn();
    this.ready.catch(() => {});
    return {
      result: undefined,
      skipReason,
      updateNorm: 0,
      aggregateMs: performance.now() - started,
      optimizeMs: 0,
    };
  }

  private materialize(posted: PostedStepResult): RoundStepResult {
    if (!posted.result) return { ...posted, result: undefined };
    return { ...posted, result: { ...posted.result, update: posted.result.update ?? this.update } };
  }

  private request(message: ToThread): Promise<Reply> {
    const worker = this.worker;
    if (!worker) return Promise.reject(this.failure ?? new Error('round compute thread is not running'));
    return new Promise<Reply>((resolve, reject) => {
      this.pending.set(message.id, { resolve, reject });
      worker.postMessage(message);
    });
  }

  private spawn(): Promise<void> {
    const init: ThreadInit = {
      config: this.config,
      params: this.params,
      update: this.update,
      control: this.control,
      optimizerTensors: this.optimizerTensors,
      restore: this.lastGood,
    };
    const worker = new Worker(BOOT, { workerData: init });
    this.worker = worker;
    return new Promise<void>((resolve, reject) => {
      const current = () => this.worker === worker;
      worker.on('message', (m: FromThread) => {
        if (!current()) return;
        switch (m.type) {
          case 'ready':
            this.optimizerTensors = m.optimizerTensors;
            this.lastGood ??= m.snapshot;
            resolve();
            break;
          case 'failed':
            reject(this.fail(new Error(m.error)));
            break;
          case 'log':
            this.log(m.message);
            break;
          case 'snapshot':
            this.lastGood = m.snapshot;
            this.onSnapshot?.();
            break;
          default: {
            const p = this.pending.get(m.id);
            this.pending.delete(m.id);
            if (m.type === 'error')
              p?.reject(m.stalled ? new AggregationStalledError(m.message) : new Error(m.message));
            else p?.resolve(m);
          }
        }
      });
      worker.on('error', (e) => {
        if (current()) reject(this.fail(new Error(`round compute thread failed: ${e.message}`)));
      });
      worker.on('exit', (code) => {
        if (current()) reject(this.fail(new Error(`round compute thread exited with code ${code}`)));
      });
    });
  }

  private fail(error: Error): Error {
    this.failure ??= error;
    this.worker = undefined;
    this.onSnapshot?.();
    this.rejectAll(this.failure);
    return this.failure;
  }

  private rejectAll(error: Error): void {
    for (const p of this.pending.values()) p.reject(error);
    this.pending.clear();
  }
}

/** 60000 → "60 s", 90000 → "90 s", 120000 → "2 min", 3600000 → "1 h", 1500 → "1500 ms". */
export function formatDeadline(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} h`;
  if (ms % 60_000 === 0 && ms > 60_000) return `${ms / 60_000} min`;
  if (ms % 1000 === 0) return `${ms / 1000} s`;
  return `${ms} ms`;
}
