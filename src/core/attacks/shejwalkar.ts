/**
 * The AGR-agnostic Min-Max / Min-Sum search of Shejwalkar & Houmansadr (NDSS'21), as in their reference
 * notebooks (`our_attack_dist`, `our_attack_score`) and CRYPTO-KU `attacks/minmax.py` / `minsum.py`.
 *
 * x(γ) = μ − γ·p, with μ the honest mean and p the deviation direction:
 *   'std' (default): σ, coordinate-wise sample std (ddof = 1, torch.std); 'unit_vec': μ/‖μ‖; 'sign': sign(μ).
 * Constraint, with h_i the honest vectors and D_ij = ‖h_i − h_j‖²:
 *   min-max: max_i ‖x − h_i‖² ≤ max_{i,j} D_ij;   min-sum: Σ_i ‖x − h_i‖² ≤ min_i Σ_j D_ij.
 * Search: γ = γ₀ (10), step = γ₀, γ_succ = 0; while |γ_succ − γ| > tol (1e-5): if the constraint holds at γ
 * then γ_succ = γ, γ += step/2, else γ −= step/2; step /= 2. Output x(γ_succ). The search cannot go past 2γ₀.
 *
 * Cost: one O(|H|²·d) pass for D, one O(|H|·d) pass for A_i = ‖μ − h_i‖² and B_i = ⟨μ − h_i, p⟩; then each γ
 * is O(|H|) via ‖x(γ) − h_i‖² = A_i − 2γB_i + γ²‖p‖² (float64).
 */
import { AttackError } from './types.ts';
import { commonLength, outputBuffer } from './stats.ts';

export type DeviationType = 'std' | 'unit_vec' | 'sign';
export type ShejwalkarObjective = 'max' | 'sum';

export interface ShejwalkarOptions {
  /** 'max' = Min-Max, 'sum' = Min-Sum. */
  objective: ShejwalkarObjective;
  devType?: DeviationType;
  gammaInit?: number;
  tol?: number;
}

export interface ShejwalkarResult {
  vector: Float32Array;
  /** γ_succ (0 when no γ > tol satisfied the constraint). */
  gamma: number;
  /** The right-hand side of the constraint (max or min-sum of the honest squared distances). */
  threshold: number;
  /** The constraint's left-hand side at γ as a function (float64, exact up to rounding). */
  lhs: (gamma: number) => number;
}

/** Reusable float64 buffers of length d for μ and p. */
export interface ShejwalkarScratch {
  mu: Float64Array;
  p: Float64Array;
}

export function shejwalkarAttack(
  honest: Float32Array[],
  options: ShejwalkarOptions,
  out?: Float32Array,
  scratch?: ShejwalkarScratch,
): ShejwalkarResult {
  const devType = options.devType ?? 'std';
  const gammaInit = options.gammaInit ?? 10;
  const tol = options.tol ?? 1e-5;
  if (!(gammaInit > 0) || !(tol > 0)) throw new AttackError('min-max/min-sum: gammaInit and tol must be > 0');
  const m = honest.length;
  const d = commonLength(honest, `min-${options.objective} (ctx.honest)`);
  const mu = scratch !== undefined && scratch.mu.length === d ? scratch.mu : new Float64Array(d);
  const p = scratch !== undefined && scratch.p.length === d ? scratch.p : new Float64Array(d);

  // μ and the deviation p.
  const inv = 1 / m;
  for (let k = 0; k < d; k++) {
    let s = 0;
    for (let i = 0; i < m; i++) s += honest[i][k];
    mu[k] = s * inv;
  }
  if (devType === 'std') {
    const denom = m - 1;
    for (let k = 0; k < d; k++) {
      const c = mu[k];
      let q = 0;
      for (let i = 0; i < m; i++) {
        const t = honest[i][k] - c;
        q += t * t;
      }
      p[k] = denom > 0 ? Math.sqrt(q / denom) : 0;
    }
  } else if (devType === 'unit_vec') {
    let nn = 0;
    for (let k = 0; k < d; k++) nn += mu[k] * mu[k];
    const scale = nn > 0 ? 1 / Math.sqrt(nn) : 0;
    for (let k = 0; k < d; k++) p[k] = mu[k] * scale;
  } else {
    for (let k = 0; k < d; k++) p[k] = Math.sign(mu[k]);
  }

  // Pairwise squared distances → threshold.
  const rowSums = new Float64Array(m);
  let maxD = 0;
  for (let i = 0; i < m; i++) {
    const a = honest[i];
    for (let j = i + 1; j < m; j++) {
      const s = squaredDistance(a, honest[j]);
      rowSums[i] += s;
      rowSums[j] += s;
      if (s > maxD) maxD = s;
    }
  }
  let threshold = maxD;
  if (options.objective === 'sum') {
    threshold = Infinity;
    for (let i = 0; i < m; i++) if (rowSums[i] < threshold) threshold = rowSums[i];
  }

  // A_i = ‖μ − h_i‖², B_i = ⟨μ − h_i, p⟩, P = ‖p‖².
  const A = new Float64Array(m);
  const B = new Float64Array(m);
  let P = 0;
  for (let k = 0; k < d; k++) P += p[k] * p[k];
  for (let i = 0; i < m; i++) {
    const h = honest[i];
    let a = 0;
    let b = 0;
    for (let k = 0; k < d; k++) {
      const t = mu[k] - h[k];
      a += t * t;
      b += t * p[k];
    }
    A[i] = a;
    B[i] = b;
  }
  let sumA = 0;
  let sumB = 0;
  for (let i = 0; i < m; i++) {
    sumA += A[i];
    sumB += B[i];
  }
  const lhs =
    options.objective === 'max'
      ? (g: number): number => {
          let worst = -Infinity;
          for (let i = 0; i < m; i++) {
            const v = A[i] - 2 * g * B[i] + g * g * P;
            if (v > worst) worst = v;
          }
          return worst;
        }
      : (g: number): number => sumA - 2 * g * sumB + m * g * g * P;

  let gamma = gammaInit;
  let step = gammaInit;
  let gammaSucc = 0;
  while (Math.abs(gammaSucc - gamma) > tol) {
    if (lhs(gamma) <= threshold) {
      gammaSucc = gamma;
      gamma += step / 2;
    } else {
      gamma -= step / 2;
    }
    step /= 2;
  }

  const x = outputBuffer(out, d);
  for (let k = 0; k < d; k++) x[k] = mu[k] - gammaSucc * p[k];
  return { vector: x, gamma: gammaSucc, threshold, lhs };
}

/** ‖a − b‖² in float64 with four accumulators (the O(|H|²·d) part). */
function squaredDistance(a: Float32Array, b: Float32Array): number {
  const d = a.length;
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let k = 0;
  for (; k + 3 < d; k += 4) {
    const t0 = a[k] - b[k];
    const t1 = a[k + 1] - b[k + 1];
    const t2 = a[k + 2] - b[k + 2];
    const t3 = a[k + 3] - b[k + 3];
    s0 += t0 * t0;
    s1 += t1 * t1;
    s2 += t2 * t2;
    s3 += t3 * t3;
  }
  for (; k < d; k++) {
    const t = a[k] - b[k];
    s0 += t * t;
  }
  return s0 + s1 + s2 + s3;
}
