/**
 * What the runtime (coordinator, worker, simulator) needs from a model, independent of tfjs details.
 * Parameters and gradients are flat Float32Arrays in the model's ParameterLayout order.
 */
import type { ParameterLayout } from '../core/layout/parameterLayout.ts';

export type ModelSpec =
  | { kind: 'mlp'; hidden: number[] }
  // the 431,080-parameter CNN of the robust-aggregation literature
  | { kind: 'cnn' }
  | TransformerSpec;

/**
 * A decoder-only character transformer (transformer.ts). `vocab` is the sorted string of its distinct
 * characters (token id = index in it), so the vocabulary travels with the model config.
 */
export interface TransformerSpec {
  kind: 'transformer';
  vocab: string;
  dModel: number;
  layers: number;
  heads: number;
  /** Hidden width of the MLP. */
  ffn: number;
  /** Longest sequence the positional embedding covers. */
  context: number;
  /**
   * Present: a Relaxed Recursive Transformer (recursiveTransformer.ts): `layers` is the unrolled depth L, run
   * by `recursion.blocks` shared blocks (docs/students.md, "Recursive students").
   */
  recursion?: RecursionSpec;
  /**
   * Present: every block's MLP is a mixture of `moe.experts` MLPs of width `ffn` behind a learned top-k router
   * (moe.ts; docs/students.md, "Mixture-of-experts students").
   */
  moe?: MoeSpec;
}

/** A mixture-of-experts MLP sub-layer (src/models/moe.ts). */
export interface MoeSpec {
  /** E, experts per block (≥ 2). */
  experts: number;
  /** k, experts each token is routed to (1 ≤ k ≤ E); their gates are renormalised to sum to 1. */
  topK: number;
  /**
   * Capacity factor c: each expert takes at most ⌈c·k·N/E⌉ of a forward pass's N tokens (earlier tokens first);
   * a token over capacity skips that expert. Absent: no limit.
   */
  capacity?: number;
  /** Weight of the load-balancing loss E·Σ_e f_e·P_e (mean over blocks) added to the training loss. */
  auxLossWeight: number;
  /**
   * Where the experts start in a distillation job with a dense teacher of the student's shape (moeFromTeacher.ts):
   * upcycle copies the teacher's MLP into every expert (teacher ffn = ffn), split cuts it into E slices (teacher
   * ffn = E·ffn). Absent or scratch: the seeded initialisation.
   */
  init?: MoeInit;
  /**
   * How each block scores the experts (moe.ts, rmoeRouter.ts). Absent or linear: logits = x·W_r per block. rmoe:
   * a GRU carried across depth (one cell shared by all blocks) between a per-block projection in and out.
   */
  router?: MoeRouter;
  /** p, the width of the rmoe router's GRU state (router rmoe only; default DEFAULT_ROUTER_HIDDEN, moeSpec.ts). */
  routerHidden?: number;
}

export type MoeInit = 'scratch' | 'upcycle' | 'split';
export type MoeRouter = 'linear' | 'rmoe';

/** How a recursive student ties its L layers to K shared blocks (src/models/recursion.ts). */
export interface RecursionSpec {
  /** K, the number of distinct blocks stored (1 ≤ K ≤ L; middle-cycle needs K ≥ 3). */
  blocks: number;
  /** cycle: layer ℓ runs block ℓ mod K; middle-cycle: first and last layers unique, the middle cycles. */
  schedule: RecursionSchedule;
  /**
   * Which teacher layers a shared block starts from when built from a teacher; `scratch`: the seeded
   * initialisation even when the teacher has the student's unrolled shape (the baseline a converted student is
   * compared with).
   */
  init: RecursionInit;
  /** Rank of each tied layer's LoRA (clamped per matrix to min(in, out)); 0 = purely recursive. */
  loraRank: number;
  /**
   * Present: a Mixture-of-Recursions student (mor.ts): a per-token router decides before each recursion whether
   * a token runs it (docs/students.md, "Mixture-of-Recursions students"). Needs schedule cycle and K | L.
   */
  mor?: MorSpec;
}

/** Mixture-of-Recursions routing of a recursive student with R = L / K recursions (src/models/morSpec.ts). */
export interface MorSpec {
  /**
   * capacities[t]: the fraction of tokens meant to run recursion t (t < R): capacities[0] = 1, non-increasing,
   * each in (0, 1]. A recursion with capacity 1 runs every token ungated and has no router.
   */
  capacities: number[];
  /** Weight of the router's auxiliary loss (binary cross-entropy against the batch's top-k selection). */
  auxLossWeight: number;
}

export type RecursionSchedule = 'cycle' | 'middle-cycle';
/** The initialisations that start a recursive student from its teacher's layers. */
export type TeacherLayerInit = 'stepwise' | 'average' | 'lower';
export type RecursionInit = TeacherLayerInit | 'scratch';

/**
 * A batch of examples. Images: x = float32 NHWC (28x28x1 flattened per example), y = one class id each.
 * Token sequences of length T: x = the T input token ids per example (as float32, exact below 2²⁴),
 * y = the T next-token ids (targets).
 */
export interface Batch {
  x: Float32Array; // [size * exampleSize]
  y: Uint8Array; // [size * targetsPerExample]
  size: number;
}

export interface GradientResult {
  /** Preallocated by the trainer and reused across calls: copy it if you keep it past the next call. */
  grad: Float32Array;
  /** The minimised loss: cross-entropy or the distillation loss, plus an MoE's weighted auxiliary loss. */
  loss: number;
  /** MoE models: max_e / mean_e of the batch's routing assignments per expert, worst block (1 = balanced). */
  expertLoad?: number;
}

/** What an evaluation reports (Trainer.evaluate). */
export interface EvalResult {
  accuracy: number;
  loss: number;
  /** MoE models: max/mean routing assignments per expert over the evaluated tokens, worst block. */
  expertLoad?: number;
  /** Mixture-of-Recursions models: the mean number of recursions run per evaluated token. */
  meanDepth?: number;
}

export interface Trainer {
  readonly layout: ParameterLayout;
  readonly spec: ModelSpec;
  /** Deterministic initial parameters for a seed (He/Glorot as the model defines). */
  initialParameters(seed: number): Float32Array;
  /** Mean cross-entropy gradient of the batch at `params`. */
  gradient(params: Float32Array, batch: Batch): Promise<GradientResult>;
  /**
   * Accuracy and mean cross-entropy (nats per target: per character for a language model) over
   * the first `limit` examples of a dataset split (all if omitted); accuracy is per target too (next-char
   * accuracy for a language model).
   */
  evaluate(
    params: Float32Array,
    split: { images: Float32Array; labels: Uint8Array; count: number },
    limit?: number,
  ): Promise<EvalResult>;
  dispose(): void;
}
