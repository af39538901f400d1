/**
 * The checkpoint codec of a running job: what a coordinator must keep to continue a job exactly — its parameters,
 * the optimizer state and the aggregation rule's state — as named safetensors tensors and metadata strings.
 *
 *   params            the parameters after `round` rounds
 *   optim.<name>      each optimizer tensor (SGD momentum, Adam moments)
 *   metadata          jobId, round, spec (JSON), optimScalars (JSON), aggregationState (JSON, if the rule has one),
 *                     guardState (JSON: the divergence guard's rollbacks so far, detector state and verdict
 *                     `good`, if guarded)
 *   manifest `good`   the guard's verdict again, beside the file, so a rollback finds the newest good checkpoint
 *                     without reading the tensors
 */
import type { LoadedCheckpoint, WriteCheckpointInput } from './checkpoint.ts';

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
}

const OPTIM = 'optim.';

export function encodeJobState(state: JobState, keep?: number): WriteCheckpointInput {
  const tensors: Record<string, Float32Array> = { params: state.params };
  for (const [name, t] of Object.entries(state.optimizer.tensors)) tensors[`${OPTIM}${name}`] = t;
  const metadata: Record<string, string> = {
    jobId: state.jobId,
    round: String(state.round),
    spec: state.spec,
    optimScalars: JSON.stringify(state.optimizer.scalars),
  };
  if (state.aggregation) metadata['aggregationState'] = state.aggregation;
  if (state.guard) metadata['guardState'] = state.guard;
  return {
    jobId: state.jobId,
    round: state.round,
    tensors,
    metadata,
    keep,
    ...(state.good === undefined ? {} : { good: state.good }),
  };
}

/** The job state of a checkpoint read back (verified) from disk; `round` comes from its manifest. */
export function decodeJobState(loaded: LoadedCheckpoint, jobId: string, round: number): JobState {
  const params = loaded.tensors['params'];
  if (!params) throw new Error(`checkpoint of job ${jobId} at round ${round} has no 'params' tensor`);
  const tensors: Record<string, Float32Array> = {};
  for (const [name, t] of Object.entries(loaded.tensors)) {
    if (name.startsWith(OPTIM)) tensors[name.slice(OPTIM.length)] = t;
  }
  return {
    jobId,
    round,
    spec: loaded.metadata['spec'] ?? '',
    params,
    optimizer: {
      tensors,
      scalars: JSON.parse(loaded.metadata['optimScalars'] ?? '{}') as Record<string, number>,
    },
    aggregation: loaded.metadata['aggregationState'] || undefined,
    guard: loaded.metadata['guardState'] || undefined,
  };
}
