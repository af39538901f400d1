/**
 * The words the wire and the code share, mapped in one place: tensor encodings (proto enum ↔ codec name, bytes
 * per element), job phases (store state ↔ proto enum) and push statuses. Every adapter translates through here.
 */
import type { Encoding__Output } from '../gen/phalanx/v1/Encoding.ts';
import type { JobPhase__Output } from '../gen/phalanx/v1/JobPhase.ts';
import type { PushStatus__Output } from '../gen/phalanx/v1/PushStatus.ts';
import type { DenseEncoding } from '../core/compression/denseCodec.ts';

const ENCODING_TO_WIRE: Record<DenseEncoding, Encoding__Output> = {
  fp32: 'ENCODING_FP32',
  bf16: 'ENCODING_BF16',
};

/** The proto enum of a dense encoding. */
export function wireEncoding(encoding: DenseEncoding): Encoding__Output {
  return ENCODING_TO_WIRE[encoding];
}

/** The dense codec of a proto encoding (UNSPECIFIED means fp32), or undefined for one this side cannot decode. */
export function denseEncodingOf(wire: string | number | undefined): DenseEncoding | undefined {
  switch (wire) {
    case 'ENCODING_FP32':
    case 'ENCODING_UNSPECIFIED':
    case undefined:
    case '':
      return 'fp32';
    case 'ENCODING_BF16':
      return 'bf16';
    default:
      return undefined;
  }
}

/** Job states as the store and the Jobs service name them. */
export type JobStateName = 'queued' | 'starting' | 'running' | 'completed' | 'failed' | 'cancelled';

/** The GetRound phase of a job state (or of a runtime's status). */
export function jobPhaseOf(state: string): JobPhase__Output {
  switch (state) {
    case 'queued':
      return 'JOB_PHASE_QUEUED';
    case 'starting':
      return 'JOB_PHASE_STARTING';
    case 'running':
    case 'closing':
    case 'stopped':
      return 'JOB_PHASE_RUNNING';
    case 'completed':
      return 'JOB_PHASE_COMPLETED';
    case 'failed':
      return 'JOB_PHASE_FAILED';
    default:
      return 'JOB_PHASE_CANCELLED';
  }
}

/** The lower-case word of a phase, for logs ('JOB_PHASE_COMPLETED' → 'completed'). */
export function phaseWord(phase: string): string {
  return phase.replace('JOB_PHASE_', '').toLowerCase();
}

export type PushOutcomeName = 'accepted' | 'duplicate' | 'late';

const PUSH_STATUS: Record<PushOutcomeName, PushStatus__Output> = {
  accepted: 'PUSH_STATUS_ACCEPTED',
  duplicate: 'PUSH_STATUS_DUPLICATE',
  late: 'PUSH_STATUS_LATE',
};

export function wirePushStatus(outcome: PushOutcomeName): PushStatus__Output {
  return PUSH_STATUS[outcome];
}
