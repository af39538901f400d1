/**
 * A worker's own state (worker momentum, error-feedback memories) as the coordinator keeps it between processes:
 * the parts the job has, each the layout's size, concatenated — momentum first, then the memories layer after
 * layer in layout order. The worker sends the state entering each checkpoint round before its push of the round
 * before; a restarted process (no state of its own) asks for the state entering the first round it computes.
 * PowerSGD warm starts are not part of it: after a restart they start over.
 */
import type { WorkerCompressor } from '../core/compression/compressionSession.ts';
import type { GradientWorker } from './gradientWorker.ts';

export interface WorkerStateParts {
  momentum: boolean;
  errorFeedback: boolean;
}

/** Which parts this worker's job keeps (none: nothing to send or restore). */
export function stateParts(
  worker: GradientWorker,
  compressor: WorkerCompressor | undefined,
): WorkerStateParts {
  return { momentum: worker.spec.workers.momentum > 0, errorFeedback: compressor !== undefined };
}

export function stateElements(parts: WorkerStateParts, size: number): number {
  return size * (Number(parts.momentum) + Number(parts.errorFeedback));
}

/** The worker's current state, concatenated (undefined: no momentum accumulated yet). */
export function currentState(
  worker: GradientWorker,
  compressor: WorkerCompressor | undefined,
): Float32Array | undefined {
  const parts = stateParts(worker, compressor);
  const size = worker.trainer.layout.totalSize;
  const out = new Float32Array(stateElements(parts, size));
  let at = 0;
  if (parts.momentum) {
    const m = worker.momentumState();
    if (!m) return undefined;
    out.set(m, at);
    at += size;
  }
  for (const memory of compressor?.memories ?? []) {
    out.set(memory.error, at);
    at += memory.error.length;
  }
  return out;
}

/** Continue from a state `currentState` produced (the coordinator's copy of it). */
export function restoreState(
  values: Float32Array,
  worker: GradientWorker,
  compressor: WorkerCompressor | undefined,
): void {
  const parts = stateParts(worker, compressor);
  const layout = worker.trainer.layout;
  const size = layout.totalSize;
  if (values.length !== stateElements(parts, size))
    throw new RangeError(
      `worker state has ${values.length} values, this job's ${stateElements(parts, size)}`,
    );
  let at = 0;
  if (parts.momentum) {
    worker.restoreMomentum(values.subarray(0, size));
    at = size;
  }
  compressor?.restoreState(
    layout.layers.map((slot) => ({
      error: values.subarray(at + slot.offset, at + slot.offset + slot.size),
      powerSgd: null,
    })),
  );
}
