import type { WorkerHealth } from '../core/aggregation/types.ts';

/** The per-round health report (mirrors phalanx.v1.RoundReport), kept in the state store and streamed to watchers. */
export interface WorkerRoundHealth {
  workerId: string;
  name: string;
  rank: number;
  included: boolean;
  trust: number;
  weight: number;
  norm: number;
  cosine: number;
  reason: string;
  byzantine: string;
  loss: number;
}

export interface RoundReport {
  jobId: string;
  round: number;
  rule: string;
  workers: WorkerRoundHealth[];
  /** Participants that did not deliver a usable gradient this round (late, rejected, dropped), with reasons. */
  missing: WorkerRoundHealth[];
  updateNorm: number;
  trainLoss: number;
  testAccuracy: number;
  testLoss: number;
  timings: { collectMs: number; aggregateMs: number; optimizeMs: number; totalMs: number };
  bytesReceived: number;
  finishedAtMs: number;
  /** Signs of divergence the guard saw in this round (src/core/round/divergenceGuard.ts); empty if none. */
  divergence: string[];
  /** Rollbacks the job had made when this round closed (its rule is then the guard's fallback). */
  rollbacks: number;
  /** The round had been reported before a rollback; this is its report after it. */
  replay: boolean;
  /** Under compression.kind uniform or lgreco: what the accepted pushes sent, and under which plan. */
  compression?: RoundCompression;
}

/** Compressed traffic of one round (src/core/compression/compressionSession.ts roundCompression). */
export interface RoundCompression {
  /** The plan the round's pushes were made under. */
  planId: string;
  /** The plan's setting of every layer ("powersgd rank 4 bf16", "topk k 940 bf16", "fp32"). */
  settings: string[];
  /** Bytes received per layer, summed over the accepted pushes. */
  layerBytes: number[];
  /** Σ layerBytes. */
  bytes: number;
  /** Accepted pushes. */
  pushes: number;
  /** What the same pushes would have been in fp32, divided by `bytes`. */
  ratio: number;
  /** Share of the error budget the plan uses on the median table it was chosen from (NaN for the baseline). */
  budgetUsed: number;
  /** Set when this round's error tables produced a new plan, which applies from the next round. */
  nextPlanId: string;
}

/**
 * The report row of a worker whose vector went into aggregation: its identity plus the rule's health record for it
 * (none when the round was skipped, then the reason says why).
 */
export function deliveredWorker(
  p: { workerId: string; name: string; rank: number; byzantine: string; loss: number },
  h: WorkerHealth | undefined,
  skipReason: string,
): WorkerRoundHealth {
  return {
    workerId: p.workerId,
    name: p.name,
    rank: p.rank,
    included: h?.included ?? false,
    trust: h?.trust ?? 0,
    weight: h?.weight ?? 0,
    norm: h?.norm ?? 0,
    cosine: h?.cosine ?? 0,
    reason: h?.reason ?? (skipReason ? `round skipped: ${skipReason}` : ''),
    byzantine: p.byzantine,
    loss: p.loss,
  };
}

export function missingWorker(
  p: { workerId: string; name: string; rank: number; byzantine: string },
  reason: string,
): WorkerRoundHealth {
  return {
    workerId: p.workerId,
    name: p.name,
    rank: p.rank,
    included: false,
    trust: 0,
    weight: 0,
    norm: 0,
    cosine: 0,
    reason,
    byzantine: p.byzantine,
    loss: NaN,
  };
}

/**
 * A round report as stored (JSON text) back into a RoundReport. JSON has no NaN: a round without an evaluation
 * is stored with `testAccuracy: null`, which on the wire would read as 0 (an accuracy of 0.0 %). Every null in
 * a stored report stands for a non-finite number (no field of a report is null otherwise), so it reads as NaN.
 */
export function parseStoredRoundReport(text: string): RoundReport {
  return JSON.parse(text, (_key, value: unknown) => (value === null ? NaN : value)) as RoundReport;
}
