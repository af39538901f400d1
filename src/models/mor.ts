/**
 * Mixture-of-Recursions (Bae et al. 2025, expert-choice routing) over a recursive student's R recursions, in
 * tfjs. morSpec.ts holds the layout and validity. With h the residual stream [N, d] (N = batch × positions):
 *
 *   recursion t with c_t = 1:  h ← B_t(h)                                   (every token, ungated)
 *   recursion t with c_t < 1:  s = h·w_t + b_t,  p = σ(s)                    [N, 1]
 *                              a_t = a_{t−1} · [s ≥ 0]                       (runs t: ran t − 1 and p ≥ 1/2)
 *                              h ← h + a_t · p · (B_t(h) − h)
 *
 * where B_t is the K shared blocks of layers t·K … t·K + K − 1 (with their LoRA relaxations). A token that
 * stops keeps its hidden state; the gate p scales the recursion's update so the task loss reaches the router.
 *
 * Causality: the selection is a fixed threshold on each token's own score, so position i's depth depends only
 * on positions ≤ i (the batch-wide top-k of expert-choice MoR would let future tokens decide it). The capacity
 * enters through the router's auxiliary loss: per routed recursion, the binary cross-entropy of p against the
 * label "among the ⌈c_t·N⌉ highest scores of the tokens that ran t − 1" (a constant of the batch, no gradient),
 * averaged over those tokens; the model's auxLoss is auxLossWeight × its mean over routed recursions. This is
 * MoR's auxiliary-loss fix for expert-choice at inference, used in training as well, so training and
 * evaluation run the same causal routing.
 *
 * Computed densely, like moe.ts: every token runs every recursion and the mask discards the update of tokens
 * that stopped; their (frozen) states still serve as keys and values of the tokens that continue. meanDepth
 * = (1/N) Σ_n Σ_t a_t[n] counts the recursions a token-level implementation would run.
 */
import type { ModelOutput } from './model.ts';
import { constantOf } from './moe.ts';
import { selectedTokens } from './morSpec.ts';
import type { ModelOps } from './ops.ts';
import { tf } from './tf.ts';
import type { TransformerForward, TransformerWeights } from './transformer.ts';
import type { MorSpec } from './types.ts';

const UNSELECTABLE = -1e9;

/**
 * The training label of a routed recursion, [N, 1]: 1 for the k highest of `masked` (scores, UNSELECTABLE for
 * tokens that did not run the previous recursion) that are selectable, 0 elsewhere; a constant.
 */
export function selectionLabels(masked: tf.Tensor2D, k: number): tf.Tensor2D {
  const n = masked.shape[0];
  const label = constantOf((s) => {
    const flat = tf.reshape(s, [n]);
    const { indices } = tf.topk(flat, Math.min(k, n), true);
    const top = tf.sum(tf.oneHot(indices, n), 0);
    return tf.reshape(
      tf.mul(tf.cast(top, 'float32'), tf.cast(tf.greater(flat, UNSELECTABLE / 2), 'float32')),
      [n, 1],
    );
  });
  return label(masked) as tf.Tensor2D;
}

/** Mean over the tokens with active = 1 of the binary cross-entropy of σ(s) against y (via softplus, stable). */
function routerLoss(score: tf.Tensor2D, label: tf.Tensor2D, active: tf.Tensor2D): tf.Scalar {
  // −[y log σ(s) + (1 − y) log(1 − σ(s))] = y·softplus(−s) + (1 − y)·softplus(s)
  const bce = tf.add(tf.mul(label, tf.softplus(tf.neg(score))), tf.mul(tf.sub(1, label), tf.softplus(score)));
  return tf.div(tf.sum(tf.mul(bce, active)), tf.maximum(tf.sum(active), 1)) as tf.Scalar;
}

/** [s ≥ 0] as float32, a constant (comparisons have no gradient in tfjs). */
const stepOf = constantOf((s) => tf.cast(tf.greaterEqual(s, 0), 'float32'));

/**
 * The MoR forward pass: `w.layers` are the L = R·K effective blocks in depth order, `routers` the layout's
 * mor.router.t.{weight, bias} of the routed recursions in order.
 */
export function morRun(
  forward: TransformerForward,
  w: TransformerWeights,
  routers: readonly tf.Tensor[],
  mor: MorSpec,
  blocks: number,
  ids: tf.Tensor,
  ops: ModelOps,
): ModelOutput {
  const at = forward.embed(w, ids, ops);
  const tokens = at.n * at.t;
  let hidden = at.hidden;
  let active = tf.ones([tokens, 1]) as tf.Tensor2D;
  const depth: tf.Tensor2D[] = [];
  const auxes: tf.Scalar[] = [];
  let router = 0;
  mor.capacities.forEach((capacity, t) => {
    let gate: tf.Tensor2D | undefined;
    if (capacity < 1) {
      const weight = routers[2 * router] as tf.Tensor2D;
      const bias = routers[2 * router + 1];
      router++;
      const score = tf.add(ops.matMul(hidden, weight, false), bias) as tf.Tensor2D;
      // arithmetic, not tf.where: the tape would need a gradient of the comparison
      const masked = tf.add(tf.mul(active, score), tf.mul(tf.sub(1, active), UNSELECTABLE)) as tf.Tensor2D;
      auxes.push(routerLoss(score, selectionLabels(masked, selectedTokens(tokens, capacity)), active));
      active = tf.mul(active, stepOf(score)) as tf.Tensor2D;
      gate = tf.mul(active, tf.sigmoid(score)) as tf.Tensor2D;
    }
    depth.push(active);
    let out = hidden;
    for (let j = 0; j < blocks; j++) {
      const layer = t * blocks + j;
      out = forward.block(out, w.layers[layer], layer, at, ops).hidden;
    }
    hidden = gate === undefined ? out : (tf.add(hidden, tf.mul(gate, tf.sub(out, hidden))) as tf.Tensor2D);
  });
  const output: ModelOutput = {
    logits: forward.head(w, hidden, ops),
    meanDepth: tf.div(tf.sum(tf.addN(depth)), tokens) as tf.Scalar,
  };
  if (auxes.length > 0) output.auxLoss = tf.mul(tf.mean(tf.stack(auxes)), mor.auxLossWeight) as tf.Scalar;
  return output;
}
