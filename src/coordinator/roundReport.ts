import type { GroupFallback } from '../core/aggregation/perGroup.ts';
import type { WorkerHealth } from '../core/aggregation/types.ts';
import { reasonWireName, type ReasonCode } from '../core/reasonCodes.ts';
import type { Reason__Output } from '../gen/phalanx/v1/Reason.ts';
import type { StoreWait } from './storeRetry.ts';

/** A reason code as the wire and the JSON reports spell it (phalanx.v1.Reason): 'REASON_LATE'. */
export type WireReason = Reason__Output;

/** The wire spelling of a core reason code (undefined: REASON_UNSPECIFIED). */
export function wireReason(code: ReasonCode | undefined): WireReason {
  return reasonWireName(code) as WireReason;
}

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
  /** Human text: which rule, which numbers ('krum: not selected', 'rejected: non-finite value in layer …'). */
  reason: string;
  /** The same reason as a code (REASON_UNSPECIFIED when included); absent in reports written before codes. */
  reasonCode?: WireReason;
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
  /**
   * Phases of the round: collect (open → close), aggregate (the rule), optimize (the step); total is their sum.
   * evaluate is the test-set evaluation after the step, which overlaps the next round's collect (0 without one).
   */
  timings: {
    collectMs: number;
    aggregateMs: number;
    optimizeMs: number;
    totalMs: number;
    evaluateMs?: number;
  };
  bytesReceived: number;
  /** Parameter bytes streamed to workers (PullParameters) while this round collected. */
  bytesSent?: number;
  /**
   * Flag's subspace rank (0 for other rules), the delivered workers the rule did not include and, with
   * aggregation.perExpert, the expert blocks that fell back to the all-worker aggregate (src/core/aggregation/perGroup.ts).
   */
  diagnostics?: RuleDiagnostics;
  finishedAtMs: number;
  /** Signs of divergence the guard saw in this round (src/core/round/divergenceGuard.ts); empty if none. */
  divergence: string[];
  /** Rollbacks the job had made when this round closed (its rule is then the guard's fallback). */
  rollbacks: number;
  /** The round had been reported before a rollback; this is its report after it. */
  replay: boolean;
  /** Under compression.kind uniform or lgreco: what the accepted pushes sent, and under which plan. */
  compression?: RoundCompression;
  /** The round's commit waited for a store that did not answer (the job paused at this round meanwhile). */
  storeStall?: StoreWait;
}

export interface RuleDiagnostics {
  flagRank: number;
  excluded: number;
  /** Only with aggregation.perExpert and only when some group fell back. */
  groupFallbacks?: GroupFallback[];
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
    reasonCode: wireReason(h ? h.reasonCode : skipReason ? 'round-skipped' : undefined),
    byzantine: p.byzantine,
    loss: p.loss,
  };
}

export function missingWorker(
  p: { workerId: string; name: string; rank: number; byzantine: string },
  reason: string,
  code: ReasonCode,
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
    reasonCode: wireReason(code),
    byzantine: p.byzantine,
    loss: NaN,
  };
}

/**
 * The round's rule diagnostics: Flag's chosen rank r (0 for other rules), the delivered workers not included and
 * the per-group fallbacks of a per-expert pipeline, if any.
 */
export function ruleDiagnostics(
  rule: string,
  diagnostics: Record<string, unknown> | undefined,
  workers: readonly WorkerRoundHealth[],
): RuleDiagnostics {
  const r = diagnostics?.['r'];
  const fallbacks = (diagnostics?.['perGroup'] as { fallbacks?: GroupFallback[] } | undefined)?.fallbacks;
  return {
    flagRank: rule === 'flag' && typeof r === 'number' && Number.isFinite(r) ? r : 0,
    excluded: workers.filter((w) => !w.included).length,
    ...(fallbacks?.length ? { groupFallbacks: fallbacks } : {}),
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
