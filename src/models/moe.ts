/**
 * A mixture-of-experts MLP sub-layer (Switch Transformer / GShard style) in tfjs. For N tokens x [N, d]:
 *
 *   router probabilities  p = softmax(x·W_r)                       [N, E]   (float32, no bias)
 *   chosen experts        m[n, e] = 1 if e is among the k largest p[n, ·] (ties: the lower index)
 *   gates                 g = (p ⊙ m) / Σ_e (p ⊙ m)                 renormalised over the chosen k
 *   capacity (optional)   g[n, e] = 0 when token n is past the first ⌈c·k·N/E⌉ tokens routed to e (token order)
 *   output                y[n] = Σ_e g[n, e] · (GELU(x[n]·W1_e + b1_e)·W2_e + b2_e)
 *
 * Load balancing (Switch's auxiliary loss, extended to top-k): f_e = (1/(kN)) Σ_n m[n, e] is the share of the
 * N·k routing assignments that go to expert e, P_e = (1/N) Σ_n p[n, e] its mean router probability, and
 *   aux = E · Σ_e f_e · P_e,
 * which is 1 when either is uniform (f_e = 1/E or P_e = 1/E) and at most E (everything on one expert). f is a
 * count and carries no gradient; the router learns to balance through P.
 *
 * With router rmoe the logits x·W_r come from a GRU carried across the blocks instead (rmoeRouter.ts); the rest
 * is the same.
 *
 * Computed densely: every expert runs on every token and the gates (0 for unchosen experts) weigh the results.
 * The E experts' first layers form one [d, E·f] matmul and their second layers one [E·f, d] matmul, so the cost
 * is that of one dense MLP of width E·f. On the wasm backend at this size it is faster than dispatching tokens
 * to experts (bench/moeDispatch.ts measures both), and it needs no gather (whose gradient wasm lacks).
 */
import type { ModelOps } from './ops.ts';
import { tf } from './tf.ts';
import { gelu } from './transformer.ts';
import type { MoeSpec } from './types.ts';

/** One block's MoE tensors in layout order (moeSpec.ts): router [d, E], then per expert fc W, b, proj W, b. */
export type MoeTensors = readonly tf.Tensor[];

export interface MoeOutput {
  /** y above, [N, d]. */
  out: tf.Tensor2D;
  /** E · Σ_e f_e · P_e, a scalar. */
  aux: tf.Scalar;
  /** f_e above, [E]: the share of routing assignments per expert (before capacity). */
  load: tf.Tensor1D;
  /** The router's logits [N, E] (x·W_r for the linear router), before the softmax. */
  logits: tf.Tensor2D;
}

/**
 * A value that blocks gradients: `compute(x)` is treated as a constant of x (its gradient is zero). For the
 * routing masks, which are step functions of the router probabilities (and TopK has no gradient in tfjs).
 */
export function constantOf(compute: (x: tf.Tensor) => tf.Tensor): (x: tf.Tensor) => tf.Tensor {
  return tf.customGrad((...args) => {
    const [x] = args as [tf.Tensor, tf.GradSaveFunc];
    return { value: compute(x), gradFunc: () => [tf.zerosLike(x)] };
  }) as (x: tf.Tensor) => tf.Tensor;
}

/** m above: 1 for each token's k most probable experts, 0 elsewhere, [N, E] float32. */
export function topKMask(probs: tf.Tensor2D, k: number): tf.Tensor2D {
  const e = probs.shape[1];
  const mask = constantOf((p) => {
    const { indices } = tf.topk(p, k, true);
    return tf.cast(tf.sum(tf.oneHot(indices, e), 1), 'float32');
  });
  return mask(probs) as tf.Tensor2D;
}

/** Tokens an expert takes at most for N tokens: ⌈c·k·N/E⌉. */
export function expertCapacity(
  tokens: number,
  moe: Pick<MoeSpec, 'experts' | 'topK'>,
  factor: number,
): number {
  return Math.ceil((factor * moe.topK * tokens) / moe.experts);
}

/**
 * 1 where a chosen (token, expert) pair is among the first `capacity` tokens routed to that expert (a constant:
 * comparisons have no gradient in tfjs).
 */
export function capacityMask(chosen: tf.Tensor2D, capacity: number): tf.Tensor2D {
  const mask = constantOf((m) => tf.mul(m, tf.cast(tf.lessEqual(tf.cumsum(m, 0), capacity), 'float32')));
  return mask(chosen) as tf.Tensor2D;
}

/** aux = E · Σ_e f_e · P_e with f_e = Σ_n m[n, e] / (kN) and P_e = mean_n p[n, e]. */
export function loadBalancingLoss(probs: tf.Tensor2D, chosen: tf.Tensor2D, k: number): tf.Scalar {
  const [n, e] = probs.shape;
  const f = tf.div(tf.sum(chosen, 0), k * n);
  const meanProb = tf.mean(probs, 0);
  return tf.mul(tf.sum(tf.mul(f, meanProb)), e) as tf.Scalar;
}

/** The MoE MLP applied to x [N, d] (already layer-normed). Pure tfjs; call inside a tidy or a gradient tape. */
export function moeMlp(x: tf.Tensor2D, t: MoeTensors, moe: MoeSpec, ops: ModelOps): MoeOutput {
  return routedExperts(x, ops.matMul(x, t[0] as tf.Tensor2D, false), t.slice(1), moe, ops);
}

/**
 * The experts behind any router: x [N, d], the router's logits [N, E] and the experts' tensors (per expert fc W,
 * b, proj W, b). moeMlp with the linear router; the rmoe router (rmoeRouter.ts) computes its logits otherwise.
 */
export function routedExperts(
  x: tf.Tensor2D,
  logits: tf.Tensor2D,
  experts: MoeTensors,
  moe: MoeSpec,
  ops: ModelOps,
): MoeOutput {
  const { experts: e, topK: k } = moe;
  const n = x.shape[0];
  const fcW = [];
  const fcB = [];
  const projW = [];
  const projB = [];
  for (let i = 0; i < e; i++) {
    fcW.push(experts[4 * i]);
    fcB.push(experts[1 + 4 * i]);
    projW.push(experts[2 + 4 * i]);
    projB.push(experts[3 + 4 * i]);
  }
  const f = fcW[0].shape[1] as number;
  const probs = tf.softmax(logits) as tf.Tensor2D;
  const chosen = topKMask(probs, k);
  const picked = tf.mul(probs, chosen);
  let gates = tf.div(picked, tf.sum(picked, 1, true)) as tf.Tensor2D;
  if (moe.capacity !== undefined) {
    const keep = capacityMask(chosen, expertCapacity(n, moe, moe.capacity));
    gates = tf.mul(gates, keep);
  }
  // All experts at once: hidden [N, E·f], expert i in columns i·f … (i+1)·f − 1, weighed by its gate.
  const hidden = tf.add(ops.matMul(x, tf.concat(fcW, 1) as tf.Tensor2D, false), tf.concat(fcB));
  const act = tf.mul(tf.reshape(gelu(hidden), [n, e, f]), tf.reshape(gates, [n, e, 1]));
  const out = tf.add(
    ops.matMul(tf.reshape(act, [n, e * f]), tf.concat(projW, 0) as tf.Tensor2D, false),
    ops.matMul(gates, tf.stack(projB) as tf.Tensor2D, false),
  ) as tf.Tensor2D;
  return {
    out,
    aux: loadBalancingLoss(probs, chosen, k),
    load: tf.div(tf.sum(chosen, 0), k * n) as tf.Tensor1D,
    logits,
  };
}

/** max_e f_e / mean_e f_e of per-expert counts or shares (1 = perfectly balanced, E = one expert takes all). */
export function loadImbalance(load: ArrayLike<number>): number {
  let max = 0;
  let sum = 0;
  for (let i = 0; i < load.length; i++) {
    max = Math.max(max, load[i]);
    sum += load[i];
  }
  return sum > 0 ? max / (sum / load.length) : 1;
}
