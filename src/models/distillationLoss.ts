/**
 * Knowledge-distillation loss (Hinton et al.): over N targets with student logits s, teacher logits t, one-hot
 * labels y, weight α and temperature T,
 *
 *   L = α · T² · (1/N) Σ_n KL(p_T ‖ p_S) + (1 − α) · (1/N) Σ_n CE(y, softmax(s))
 *   p_T = softmax(t / T),  p_S = softmax(s / T),  KL(p ‖ q) = Σ_v p_v (log p_v − log q_v).
 *
 * The T² keeps the soft term's gradient on the scale of the hard one: ∂/∂s of the first term is
 * α · T · (p_S − p_T) / N, which without T² would shrink as 1/T. The teacher logits are data: callers
 * differentiate with respect to the student's parameters only.
 */
import { tf } from './tf.ts';

export interface DistillationWeights {
  /** Weight of the soft (teacher) term, in [0, 1]; 1 − alpha weighs the cross-entropy with the labels. */
  alpha: number;
  /** Softening temperature T > 0 applied to both models' logits in the soft term. */
  temperature: number;
}

export function checkDistillationWeights({ alpha, temperature }: DistillationWeights): void {
  if (!(alpha >= 0 && alpha <= 1))
    throw new RangeError(`distillation: alpha must be in [0, 1], got ${alpha}`);
  if (!(temperature > 0 && Number.isFinite(temperature)))
    throw new RangeError(`distillation: temperature must be a positive number, got ${temperature}`);
}

/** L above, a scalar; `student`, `teacher` and `oneHot` are [N, V]. */
export function distillationLoss(
  student: tf.Tensor2D,
  teacher: tf.Tensor2D,
  oneHot: tf.Tensor2D,
  weights: DistillationWeights,
): tf.Scalar {
  checkDistillationWeights(weights);
  const { alpha, temperature: T } = weights;
  return tf.tidy(() => {
    const logPT = tf.logSoftmax(tf.div(teacher, T));
    const logPS = tf.logSoftmax(tf.div(student, T));
    const kl = tf.mean(tf.sum(tf.mul(tf.exp(logPT), tf.sub(logPT, logPS)), 1));
    const ce = tf.neg(tf.mean(tf.sum(tf.mul(oneHot, tf.logSoftmax(student)), 1)));
    return tf.add(tf.mul(kl, alpha * T * T), tf.mul(ce, 1 - alpha)) as tf.Scalar;
  });
}
