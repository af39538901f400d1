/**
 * What the coordinator's main thread and a round-compute thread (roundComputeWorker.ts) say to each other, and
 * the shared control word that decides, race-free, whether a round that ran past its deadline may still touch
 * the parameters.
 *
 * Control word (Int32 in shared memory), per step:
 *   main:   IDLE → AGGREGATING, then posts the step
 *   thread: AGGREGATING → OPTIMIZING once the rule returned (compare-and-set), then applies the optimizer
 *   main:   AGGREGATING → ABANDONED when the deadline passes (compare-and-set), then terminates the thread
 * Exactly one of the two compare-and-sets wins, so an abandoned round never reaches the optimizer: the parameters
 * and the optimizer state stay as the last good round left them. A round already optimizing is let finish (the
 * optimizer is one O(d) pass).
 */
import type { ParameterGroup } from '../core/aggregation/perGroup.ts';
import type { OptimizerSpec } from '../core/optim/types.ts';
import type { RoundStepResult } from '../core/roundStep.ts';

export const IDLE = 0;
export const AGGREGATING = 1;
export const OPTIMIZING = 2;
export const ABANDONED = 3;

export interface ComputeConfig {
  aggregation: { rule: string; f: number; pre: string[]; options: Record<string, unknown> };
  /** Present and non-empty: each group aggregated over the workers that sent signal for it (aggregation.perExpert). */
  groups?: ParameterGroup[];
  optimizer: OptimizerSpec;
  /** Number of parameters. */
  size: number;
}

/** Optimizer and aggregation state, as checkpoints store it. */
export interface ComputeState {
  optimizer: { tensors: Record<string, Float32Array>; scalars: Record<string, number> };
  /** The aggregation pipeline's state as JSON text. */
  aggregation?: string;
}

/**
 * What a respawned thread needs besides the shared tensors to continue as if the abandoned round never ran:
 * the optimizer's scalars, the aggregation state (packed, see packState) and the consecutive-skip count.
 */
export interface Snapshot {
  scalars: Record<string, number>;
  aggregation: unknown;
  skips: number;
}

export interface ThreadInit {
  config: ComputeConfig;
  /** Shared: the authoritative parameters, updated in place by the optimizer. */
  params: Float32Array;
  /** Shared: the last step's aggregate (valid until the next step). */
  update: Float32Array;
  /** Shared: [0] = the control word above. */
  control: Int32Array;
  /** Shared optimizer state tensors of a previous thread, in allocation order. */
  optimizerTensors?: Float32Array[];
  restore?: Snapshot;
}

export type ToThread =
  /** Aggregate and optimize; with `skip`, count a round closed without quorum instead (nothing aggregated). */
  | { type: 'step'; id: number; round: number; vectors: Float32Array[]; workerIds: string[]; skip?: string }
  | { type: 'save'; id: number }
  | { type: 'load'; id: number; state: ComputeState };

/** A step result as posted: `update` stays in shared memory unless it could not go there. */
export type PostedStepResult = Omit<RoundStepResult, 'result'> & {
  result?: Omit<NonNullable<RoundStepResult['result']>, 'update'> & { update?: Float32Array };
};

export type FromThread =
  | { type: 'ready'; optimizerTensors: Float32Array[]; snapshot: Snapshot }
  | { type: 'stepped'; id: number; result: PostedStepResult }
  /** Follows every 'stepped': the state after that step. */
  | { type: 'snapshot'; snapshot: Snapshot }
  | { type: 'saved'; id: number; state: ComputeState }
  | { type: 'loaded'; id: number; snapshot: Snapshot }
  /** `stalled`: the job cannot make progress (AggregationStalledError), a message meant for its users. */
  | { type: 'error'; id: number; message: string; stalled?: boolean }
  | { type: 'log'; message: string }
  | { type: 'failed'; error: string };

/** A zero-filled Float32Array in shared memory (visible to worker threads without a copy). */
export function sharedFloat32(length: number): Float32Array {
  return new Float32Array(new SharedArrayBuffer(length * Float32Array.BYTES_PER_ELEMENT));
}

const PACKED = '$packed';
/** Numeric arrays shorter than this stay plain (not worth a buffer). */
const PACK_MIN = 64;

/**
 * A copy of a JSON-like state in which long numeric arrays and typed arrays become Float64Array/Float32Array
 * buffers listed in `transfer`, so posting it moves memory instead of serialising millions of numbers (which the
 * receiving thread would pay for). unpackState restores the original shapes exactly (float64 holds any number).
 */
export function packState(value: unknown, transfer: ArrayBuffer[]): unknown {
  if (value instanceof Float32Array || value instanceof Float64Array) {
    const data = value.slice();
    transfer.push(data.buffer as ArrayBuffer);
    return { [PACKED]: value instanceof Float32Array ? 'f32' : 'f64', data };
  }
  if (Array.isArray(value)) {
    if (value.length >= PACK_MIN && value.every((x) => typeof x === 'number')) {
      const data = Float64Array.from(value as number[]);
      transfer.push(data.buffer);
      return { [PACKED]: 'array', data };
    }
    return value.map((v) => packState(v, transfer));
  }
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = packState(v, transfer);
    return out;
  }
  return value;
}

export function unpackState(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(unpackState);
  if (value !== null && typeof value === 'object') {
    const rec = value as Record<string, unknown>;
    const kind = rec[PACKED];
    const data = rec['data'];
    if (kind === 'array' && data instanceof Float64Array) return Array.from(data);
    if (kind === 'f64' && data instanceof Float64Array) return data;
    if (kind === 'f32' && data instanceof Float32Array) return data;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(rec)) out[k] = unpackState(v);
    return out;
  }
  return value;
}
