/**
 * Runs on a worker thread: the aggregation pipeline and the optimizer of one job (RoundStepper, the same code
 * `phalanx simulate` runs in process), on the parameters and gradients in shared memory. See
 * roundComputeProtocol.ts for the messages and the control word that makes an abandoned round harmless.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createPerGroupPipeline } from '../core/aggregation/perGroup.ts';
import { createAggregationPipeline } from '../core/aggregation/pipeline.ts';
import { createOptimizer } from '../core/optim/index.ts';
import { AggregationStalledError, RoundStepper, type AggregatorLike } from '../core/roundStep.ts';
import {
  ABANDONED,
  AGGREGATING,
  IDLE,
  OPTIMIZING,
  packState,
  sharedFloat32,
  unpackState,
  type ComputeState,
  type FromThread,
  type PostedStepResult,
  type Snapshot,
  type ThreadInit,
  type ToThread,
} from './roundComputeProtocol.ts';

const init = workerData as ThreadInit;
const port = parentPort!;
const control = init.control;

/** Thrown into the stepper when the main thread abandoned the round: the optimizer must not run. */
class Abandoned extends Error {}

function post(message: FromThread, transfer: ArrayBuffer[] = []): void {
  port.postMessage(message, transfer);
}

function main(): void {
  const { config } = init;
  const pipeline = config.groups?.length
    ? createPerGroupPipeline(config.aggregation, config.groups)
    : createAggregationPipeline(config.aggregation);
  const tensors: Float32Array[] = [];
  const optimizer = createOptimizer(config.optimizer, config.size, (length) => {
    const previous = init.optimizerTensors?.[tensors.length];
    const t = previous && previous.length === length ? previous : sharedFloat32(length);
    tensors.push(t);
    return t;
  });
  if (init.restore) {
    // The shared tensors already hold the last good round's values; loadState only restores the scalars.
    optimizer.loadState({ tensors: optimizer.saveState().tensors, scalars: init.restore.scalars });
    pipeline.loadState(unpackState(init.restore.aggregation) as Record<string, unknown>);
  }
  const guarded: AggregatorLike = {
    aggregate(vectors, workerIds) {
      const result = pipeline.aggregate(vectors, workerIds);
      if (Atomics.compareExchange(control, 0, AGGREGATING, OPTIMIZING) !== AGGREGATING) throw new Abandoned();
      return result;
    },
  };
  const stepper = new RoundStepper(
    guarded,
    optimizer,
    (message) => {
      if (Atomics.load(control, 0) !== ABANDONED) post({ type: 'log', message });
    },
    init.restore?.skips ?? 0,
  );

  const snapshot = (transfer: ArrayBuffer[]): Snapshot => ({
    scalars: optimizer.scalars(),
    aggregation: packState(pipeline.saveState(), transfer),
    skips: stepper.skipsInARow,
  });

  const step = (m: Extract<ToThread, { type: 'step' }>): void => {
    let posted: PostedStepResult;
    try {
      const r =
        m.skip !== undefined
          ? stepper.skip(m.round, m.skip)
          : stepper.step(m.round, init.params, m.vectors, m.workerIds);
      posted = r;
      if (r.result && r.result.update.length === init.update.length) {
        init.update.set(r.result.update);
        posted = { ...r, result: { ...r.result, update: undefined } };
      }
    } catch (e) {
      if (Atomics.load(control, 0) === ABANDONED) return;
      Atomics.store(control, 0, IDLE);
      post({
        type: 'error',
        id: m.id,
        message: (e as Error).message,
        stalled: e instanceof AggregationStalledError,
      });
      return;
    }
    // From AGGREGATING (the rule threw: round skipped) or OPTIMIZING back to IDLE, unless abandoned meanwhile.
    if (Atomics.compareExchange(control, 0, AGGREGATING, IDLE) === ABANDONED) return;
    Atomics.store(control, 0, IDLE);
    post({ type: 'stepped', id: m.id, result: posted });
    // The state a respawned thread would restore, taken after the result went out: it costs O(state) (centered
    // clipping: O(d)) and overlaps with the workers computing the next round instead of delaying this one.
    const transfer: ArrayBuffer[] = [];
    post({ type: 'snapshot', snapshot: snapshot(transfer) }, transfer);
  };

  const save = (id: number): void => {
    const opt = optimizer.saveState();
    const state: ComputeState = { optimizer: opt, aggregation: JSON.stringify(pipeline.saveState()) };
    post(
      { type: 'saved', id, state },
      Object.values(opt.tensors).map((t) => t.buffer as ArrayBuffer),
    );
  };

  const load = (id: number, state: ComputeState): void => {
    optimizer.loadState(state.optimizer);
    if (state.aggregation !== undefined) {
      pipeline.loadState(JSON.parse(state.aggregation) as Record<string, unknown>);
    }
    const transfer: ArrayBuffer[] = [];
    post({ type: 'loaded', id, snapshot: snapshot(transfer) }, transfer);
  };

  port.on('message', (m: ToThread) => {
    if (m.type === 'step') {
      step(m);
      return;
    }
    try {
      if (m.type === 'save') save(m.id);
      else load(m.id, m.state);
    } catch (e) {
      post({ type: 'error', id: m.id, message: (e as Error).message });
    }
  });
  const transfer: ArrayBuffer[] = [];
  post({ type: 'ready', optimizerTensors: tensors, snapshot: snapshot(transfer) }, transfer);
}

try {
  main();
} catch (e) {
  post({ type: 'failed', error: (e as Error).message });
}
