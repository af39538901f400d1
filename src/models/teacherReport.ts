/**
 * What a teacher checkpoint says about the students it can make (`phalanx teacher report`):
 *   - layer importance: for each sub-layer (attention, MLP) of each layer, 1 − cos(X, X + f(LN X)) averaged
 *     over the tokens of a batch, where X is the residual stream entering the sub-layer. Near 0: the sub-layer
 *     barely turns the stream (a candidate to tie or skip); larger: it changes the representation.
 *   - SVD energy per tying plan: for K blocks, a schedule and an initialisation, the tied layers' residuals
 *     R_ℓ = W_teacher,ℓ − W_shared and the fraction of Σ‖R_ℓ‖²_F that rank-r truncated SVDs (the LoRA
 *     initialisation) capture, for each r.
 * Deterministic given the teacher and the tokens; no I/O.
 */
import { layerView } from '../core/layout/parameterLayout.ts';
import { toNamedTensors } from '../core/layout/namedTensors.ts';
import type { ModelOps } from './ops.ts';
import { recursionProblems, tyingEnergy, type TyingEnergy } from './recursion.ts';
import { tf } from './tf.ts';
import { createTransformer, transformerForward, transformerWeights } from './transformer.ts';
import type { TeacherLayerInit, RecursionSchedule, TransformerSpec } from './types.ts';

export interface SublayerImportance {
  layer: number;
  attn: number;
  mlp: number;
}

/** 1 − cos(X, X + f(LN X)) per sub-layer, averaged over the n·T tokens of `ids` (n sequences). */
export function layerImportance(
  spec: TransformerSpec,
  params: Float32Array,
  ids: Float32Array,
  n: number,
  ops: ModelOps,
): SublayerImportance[] {
  const model = createTransformer(spec);
  const forward = transformerForward(spec);
  const scores: SublayerImportance[] = Array.from({ length: spec.layers }, (_, layer) => ({
    layer,
    attn: 0,
    mlp: 0,
  }));
  tf.tidy(() => {
    const p = model.layout.layers.map((slot) => tf.tensor(layerView(params, slot), slot.shape));
    forward.logits(
      transformerWeights(p, spec.layers),
      forward.input(ids, n),
      ops,
      (layer, sublayer, x, fx) => {
        const y = tf.add(x, fx);
        const dot = tf.sum(tf.mul(x, y), -1);
        const norms = tf.mul(tf.norm(x, 'euclidean', -1), tf.norm(y, 'euclidean', -1));
        // a zero stream has no direction: count it as unchanged
        const cos = tf.where(tf.greater(norms, 0), tf.div(dot, tf.maximum(norms, 1e-30)), tf.onesLike(dot));
        scores[layer][sublayer] = 1 - tf.mean(cos).dataSync()[0];
      },
    );
  });
  return scores;
}

export interface TyingPlanChoice {
  blocks: number;
  schedule: RecursionSchedule;
  init: TeacherLayerInit;
}

/**
 * The plans a report covers: K ∈ `blocks` (default {1, 2, 3, ⌊L/2⌋}) below L, each schedule where the plan is
 * valid (middle-cycle needs K ≥ 3), each initialisation.
 */
export function reportPlans(layers: number, blocks?: readonly number[]): TyingPlanChoice[] {
  const ks = [...new Set(blocks ?? [1, 2, 3, Math.floor(layers / 2)])]
    .filter((k) => Number.isInteger(k) && k >= 1 && k < layers)
    .sort((a, b) => a - b);
  const plans: TyingPlanChoice[] = [];
  for (const schedule of ['cycle', 'middle-cycle'] as const) {
    for (const k of ks) {
      if (recursionProblems(layers, { blocks: k, schedule, init: 'lower', loraRank: 0 }).length > 0) continue;
      for (const init of ['stepwise', 'average', 'lower'] as const) plans.push({ blocks: k, schedule, init });
    }
  }
  return plans;
}

export const DEFAULT_REPORT_RANKS = [0, 4, 8, 16];

/** The SVD energy of every plan. */
export function tyingEnergies(
  spec: TransformerSpec,
  params: Float32Array,
  plans: readonly TyingPlanChoice[],
  ranks: readonly number[] = DEFAULT_REPORT_RANKS,
): TyingEnergy[] {
  const teacher = toNamedTensors(params, createTransformer(spec).layout);
  return plans.map((plan) => tyingEnergy(spec, teacher, plan, ranks));
}
