/**
 * The recurrent MoE router (RMoE, a layerwise recurrent router): a GRU carried across depth, per token, so each
 * block's routing sees how the token was routed before. For block i with normalised MLP input x_i [N, d]:
 *
 *   x'_i = x_i · W_in,i                                     [N, p]   per-block projection, no bias
 *   r    = σ(x'_i W_ir + b_ir + h_{i−1} W_hr + b_hr)
 *   z    = σ(x'_i W_iz + b_iz + h_{i−1} W_hz + b_hz)
 *   n    = tanh(x'_i W_in + b_in + r ⊙ (h_{i−1} W_hn + b_hn))
 *   h_i  = (1 − z) ⊙ n + z ⊙ h_{i−1}                         h_0 = 0
 *   logits_i = h_i · W_out,i                                [N, E]   per-block projection, no bias
 *
 * One GRU cell (W_i·, W_h· [p, 3p], b_i·, b_h· [3p], gates side by side as r, z, n) serves every block; the
 * state is carried from block to block within a forward pass, never from token to token. The logits then go
 * through the linear router's path (moe.ts: softmax, top-k, renormalised gates, the Switch aux loss).
 */
import type { ModelOps } from './ops.ts';
import { tf } from './tf.ts';

/** The shared GRU cell in layout order (routerGruTensors): W_ih [p, 3p], b_ih [3p], W_hh [p, 3p], b_hh [3p]. */
export type RouterGru = readonly tf.Tensor[];

/** One GRU step: h' from the input x [N, p] and the state h [N, p] (equations above). */
export function gruStep(x: tf.Tensor2D, h: tf.Tensor2D, gru: RouterGru, ops: ModelOps): tf.Tensor2D {
  const [wIh, bIh, wHh, bHh] = gru;
  const fromInput = tf.add(ops.matMul(x, wIh as tf.Tensor2D, false), bIh) as tf.Tensor2D;
  const fromState = tf.add(ops.matMul(h, wHh as tf.Tensor2D, false), bHh) as tf.Tensor2D;
  const [ir, iz, iN] = tf.split(fromInput, 3, 1);
  const [hr, hz, hN] = tf.split(fromState, 3, 1);
  const r = tf.sigmoid(tf.add(ir, hr));
  const z = tf.sigmoid(tf.add(iz, hz));
  const n = tf.tanh(tf.add(iN, tf.mul(r, hN)));
  return tf.add(tf.mul(tf.sub(1, z), n), tf.mul(z, h)) as tf.Tensor2D;
}

export interface RouterStep {
  /** logits_i [N, E]. */
  logits: tf.Tensor2D;
  /** h_i [N, p], the state the next block's router starts from. */
  state: tf.Tensor2D;
}

/**
 * Block i's router: x [N, d] (the MLP's normalised input), its projections in [d, p] and out [p, E], the shared
 * cell and h_{i−1} (undefined for the first block: h_0 = 0).
 */
export function rmoeRouter(
  x: tf.Tensor2D,
  wIn: tf.Tensor2D,
  wOut: tf.Tensor2D,
  gru: RouterGru,
  previous: tf.Tensor2D | undefined,
  ops: ModelOps,
): RouterStep {
  const h = previous ?? tf.zeros([x.shape[0], wIn.shape[1]]);
  const state = gruStep(ops.matMul(x, wIn, false), h, gru, ops);
  return { logits: ops.matMul(state, wOut, false), state };
}
