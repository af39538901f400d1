/**
 * The checkpoint codec of a running job: what a coordinator must keep to continue a job exactly — its parameters,
 * the optimizer state and the aggregation rule's state — as named safetensors tensors and metadata strings.
 *
 *   <layer name>      the parameters after `round` rounds, one tensor per layout layer (fc1.weight, …)
 *   optim.<name>      each optimizer tensor (SGD momentum, Adam moments), flat like the parameter vector
 *   worker.<name>.momentum, worker.<name>.error
 *                     each worker's own state entering `round` (worker momentum, error-feedback memories), by
 *                     worker name, flat like the parameter vector (src/coordinator/workerStates.ts)
 *   metadata          jobId, round, spec (JSON), optimScalars (JSON), aggregationState (JSON, if the rule has one),
 *                     guardState (JSON: the divergence guard's rollbacks so far, detector state and verdict
 *                     `good`, if guarded), compressionState (JSON: the compression plan in force and its
 *                     history, if the job compresses)
 *   config `good`     the guard's verdict again, in config.json, so a rollback finds the newest good checkpoint
 *                     without reading the tensors
 *
 * Checkpoints of the earlier format hold the parameters as one flat `params` tensor; they decode too.
 */
import { fromNamedTensors, toNamedTensors, type NamedTensors } from '../core/layout/namedTensors.ts';
import type { ParameterLayout } from '../core/layout/parameterLayout.ts';
import type { ModelSpec } from '../models/types.ts';
import type { JobCheckpointTensors, WriteCheckpointInput } from './checkpoint.ts';
import { CheckpointError } from './modelCheckpoint.ts';

export interface JobState {
  jobId: string;
  /** Rounds completed: the parameter version the checkpoint holds. */
  round: number;
  /** The job spec as stored (JSON text). */
  spec: string;
  params: Float32Array;
  optimizer: { tensors: Record<string, Float32Array>; scalars: Record<string, number> };
  /** The aggregation pipeline's state as JSON text, if it keeps any. */
  aggregation?: string;
  /** The divergence guard's state as JSON text (rollbacks made, detector, verdict), if the job is guarded. */
  guard?: string;
  /** The guard's verdict: whether a rollback may go back to this state (absent: no verdict, counts as good). */
  good?: boolean;
  /** The compression plan in force and its history as JSON text, if the job compresses. */
  compression?: string;
  /** Workers' own states entering `round`, by tensor name (`worker.<name>.momentum`, `worker.<name>.error`). */
  workers?: Map<string, Float32Array>;
}

/** The model a job state's parameters belong to: its spec and layout. */
export interface JobModel {
  spec: ModelSpec;
  layout: ParameterLayout;
}

const OPTIM = 'optim.';
const WORKER = 'worker.';
const LEGACY_PARAMS = 'params';

export function encodeJobState(state: JobState, model: JobModel, keep?: number): WriteCheckpointInput {
  const extra: NamedTensors = new Map();
  for (const [name, t] of Object.entries(state.optimizer.tensors)) {
    extra.set(`${OPTIM}${name}`, { data: t, shape: [t.length] });
  }
  for (const [name, t] of state.workers ?? []) extra.set(name, { data: t, shape: [t.length] });
  const metadata: Record<string, string> = {
    jobId: state.jobId,
    round: String(state.round),
    spec: state.spec,
    optimScalars: JSON.stringify(state.optimizer.scalars),
  };
  if (state.aggregation) metadata['aggregationState'] = state.aggregation;
  if (state.guard) metadata['guardState'] = state.guard;
  if (state.compression) metadata['compressionState'] = state.compression;
  return {
    jobId: state.jobId,
    round: state.round,
    model: model.spec,
    tensors: toNamedTensors(state.params, model.layout),
    extra,
    metadata,
    keep,
    ...(state.good === undefined ? {} : { good: state.good }),
  };
}

/** The job state of a checkpoint read back (verified) from disk; `round` comes from its manifest. */
export function decodeJobState(
  loaded: JobCheckpointTensors,
  jobId: string,
  round: number,
  layout: ParameterLayout,
): JobState {
  const where = `checkpoint of job ${jobId} at round ${round}`;
  let params: Float32Array;
  const legacy = loaded.tensors.get(LEGACY_PARAMS);
  if (legacy && !loaded.tensors.has(layout.layers[0].name)) {
    if (legacy.data.length !== layout.totalSize) {
      throw new CheckpointError(
        `${where} holds ${legacy.data.length} parameters; the job's model has ${layout.totalSize}`,
      );
    }
    params = legacy.data;
  } else {
    try {
      params = fromNamedTensors(loaded.tensors, layout);
    } catch (err) {
      throw new CheckpointError(`${where} does not fit the job's model: ${(err as Error).message}`);
    }
  }
  const workers = new Map<string, Float32Array>();
  for (const [name, t] of loaded.tensors) if (name.startsWith(WORKER)) workers.set(name, t.data);
  return {
    jobId,
    round,
    spec: loaded.metadata['spec'] ?? '',
    params,
    optimizer: optimizerStateOf(loaded.tensors, loaded.metadata),
    aggregation: loaded.metadata['aggregationState'] || undefined,
    guard: loaded.metadata['guardState'] || undefined,
    compression: loaded.metadata['compressionState'] || undefined,
    ...(workers.size ? { workers } : {}),
  };
}

/** The optimizer state a checkpoint holds: its `optim.<name>` tensors (by name) and scalars (metadata). */
export function optimizerStateOf(
  tensors: NamedTensors,
  metadata: Record<string, string>,
): { tensors: Record<string, Float32Array>; scalars: Record<string, number> } {
  const state: Record<string, Float32Array> = {};
  for (const [name, t] of tensors) if (name.startsWith(OPTIM)) state[name.slice(OPTIM.length)] = t.data;
  return { tensors: state, scalars: JSON.parse(metadata['optimScalars'] ?? '{}') as Record<string, number> };
}
