/**
 * Gamma and Dirichlet draws from a seeded Rng (for non-IID data shards).
 *
 * Gamma(a, 1), a ≥ 1: Marsaglia–Tsang (2000): d = a − ⅓, c = 1/√(9d); draw x ~ N(0, 1), v = (1 + c·x)³ until
 * v > 0 and log u < x²/2 + d·(1 − v + log v) (u ~ U(0, 1]); then d·v ~ Gamma(a). For a < 1 the boost
 * Gamma(a) = Gamma(a + 1) · u^(1/a). Draws are made in log space, so a tiny shape (u^(1/a) underflows to 0 for
 * a = 0.01) still gives usable Dirichlet proportions.
 * Dirichlet(a·1ₖ): k independent Gamma(a) draws, normalised to sum 1.
 */
import type { Rng } from './random.ts';

/** log X for X ~ Gamma(shape, 1), shape > 0. */
export function sampleLogGamma(rng: Rng, shape: number): number {
  if (!(shape > 0) || !Number.isFinite(shape)) throw new RangeError(`gamma: shape must be > 0, got ${shape}`);
  if (shape < 1) return sampleLogGamma(rng, shape + 1) + Math.log(uniformOpenAtZero(rng)) / shape;
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    const x = rng.normal();
    const t = 1 + c * x;
    if (t <= 0) continue;
    const v = t * t * t;
    const logU = Math.log(uniformOpenAtZero(rng));
    // Squeeze 1 − 0.0331·x⁴ first (cheap), then the exact test.
    if (logU < Math.log1p(-0.0331 * x * x * x * x) || logU < 0.5 * x * x + d * (1 - v + Math.log(v))) {
      return Math.log(d) + Math.log(v);
    }
  }
}

/** X ~ Gamma(shape, 1) (mean = variance = shape). */
export function sampleGamma(rng: Rng, shape: number): number {
  return Math.exp(sampleLogGamma(rng, shape));
}

/** p ~ Dirichlet(alpha·1ₖ): k proportions summing to 1. */
export function sampleSymmetricDirichlet(rng: Rng, alpha: number, k: number): Float64Array {
  if (!Number.isInteger(k) || k < 1)
    throw new RangeError(`dirichlet: k must be a positive integer, got ${k}`);
  const logs = new Float64Array(k);
  let max = -Infinity;
  for (let i = 0; i < k; i++) {
    logs[i] = sampleLogGamma(rng, alpha);
    if (logs[i] > max) max = logs[i];
  }
  // Normalise exp(log gᵢ − max): the largest term is 1, so the sum never underflows.
  let sum = 0;
  for (let i = 0; i < k; i++) {
    logs[i] = Math.exp(logs[i] - max);
    sum += logs[i];
  }
  for (let i = 0; i < k; i++) logs[i] /= sum;
  return logs;
}

/** Uniform in (0, 1]: never 0, so its log is finite. */
function uniformOpenAtZero(rng: Rng): number {
  return 1 - rng.next();
}
