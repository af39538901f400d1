/**
 * The contract every robust aggregation rule and pre-aggregator implements (docs/aggregation.md).
 * Rules see only decoded, validated vectors: the pipeline (pipeline.ts) excludes non-finite and wrong-length
 * inputs before any rule runs.
 */
import type { ReasonCode } from '../reasonCodes.ts';

/** Per-worker health record returned with every aggregate. Indexes refer to the pipeline's input order. */
export interface WorkerHealth {
  index: number;
  workerId: string;
  /** Whether the worker's vector contributed to the update. */
  included: boolean;
  /** Trust score in [0, 1]; rule-specific (e.g. FA reconstruction ratio, Krum selection, inlier fraction). */
  trust: number;
  /** The worker's weight or coefficient in the output (0 when excluded). */
  weight: number;
  /** L2 norm of the worker's (validated, pre-aggregation) input vector. */
  norm: number;
  /** Cosine between the worker's input vector and the final update (0 if either is zero). */
  cosine: number;
  /** Why it was excluded or down-weighted (e.g. 'non-finite', 'wrong-length', 'krum: not selected'). */
  reason?: string;
  /** The reason as a code (src/core/reasonCodes.ts); set whenever `reason` is. */
  reasonCode?: ReasonCode;
  /**
   * The numbers a threshold test compared (Flag's sign score or reconstruction ratio and its threshold): the text
   * is rebuilt from them when the record's cosine changes (pipeline with pre-aggregators).
   */
  reasonFacts?: { score: number; threshold: number; option?: 'signAxisThreshold' };
}

export interface AggregationInput {
  /** n vectors of equal length d. Rules must not modify them. */
  vectors: Float32Array[];
  /** Worker ids, same order as vectors. */
  workerIds: string[];
  /** Declared number of Byzantine workers. */
  f: number;
}

export interface AggregationResult {
  update: Float32Array;
  workers: WorkerHealth[];
  /** Rule-specific diagnostics (FA IRLS weights, iterations, chosen r, ...), JSON-serialisable. */
  diagnostics?: Record<string, unknown>;
}

/** A rule may keep state between rounds (centered clipping's previous output, FA's warm start). */
export interface AggregationRule {
  readonly name: string;
  aggregate(input: AggregationInput): AggregationResult;
  /** Serialisable state for checkpoints (optional). */
  saveState?(): Record<string, unknown>;
  loadState?(state: Record<string, unknown>): void;
}

export interface PreAggregator {
  readonly name: string;
  /** Returns a new set of vectors (may be fewer or more, e.g. bucketing). Never mutates its input. */
  apply(vectors: Float32Array[], f: number): Float32Array[];
  /**
   * Optional: like `apply`, plus the linear map from inputs to outputs, so that the pipeline can report each
   * worker's trust and effective weight after mixing (NNM, bucketing) or scaling (clipping).
   */
  applyTracked?(vectors: Float32Array[], f: number): PreAggregation;
  /** Serialisable state for checkpoints (optional; e.g. bucketing's round counter). */
  saveState?(): Record<string, unknown>;
  loadState?(state: Record<string, unknown>): void;
}

/**
 * A pre-aggregator's output with its mixing matrix: out_i = Σ_j mixing[i·nIn + j]·in_j (row-major,
 * vectors.length × nIn).
 */
export interface PreAggregation {
  vectors: Float32Array[];
  mixing: Float64Array;
  /**
   * Inputs the pre-aggregator removed by a test of its own (NNM's sign screen), each with the health reason its
   * worker carries: it feeds no rule input, so no rule reason reaches it.
   */
  screened?: ScreenedInput[];
}

/** An input a pre-aggregator dropped (index into its inputs), with the health reason its worker is to carry. */
export interface ScreenedInput {
  input: number;
  reasonCode: ReasonCode;
  reason: string;
  reasonFacts?: { score: number; threshold: number; option?: 'signAxisThreshold' };
}

export type RuleFactory = (options: Record<string, unknown>) => AggregationRule;
export type PreAggregatorFactory = (options: Record<string, unknown>) => PreAggregator;

/** Thrown when a rule's precondition does not hold; the message names it (e.g. "krum needs n > 2f + 2"). */
export class PreconditionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PreconditionError';
  }
}

/** What the round engine asks for: a pipeline of pre-aggregators then one rule. */
export interface AggregationSpec {
  rule: string;
  f: number;
  pre: string[];
  options: Record<string, unknown>;
  /**
   * Optional: the vector length the pipeline expects (the model's parameter count). Without it, the most common
   * length among the round's inputs is used (ties toward the length of the lowest-index input).
   */
  expectedLength?: number;
}
