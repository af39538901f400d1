/**
 * The Flag Aggregator in its p×p Gram form (docs/aggregation.md), with no access to the d-dimensional
 * data: every function here works on the cosine Gram matrix K = ĜᵀĜ of the p normalised gradients (row-major p×p
 * float64) and on p×r coefficient matrices B that represent subspaces Y = Ĝ B (orthonormal columns, YᵀY = I).
 *
 * One IRLS step of the flag median Σᵢ sin θᵢ (θᵢ = principal angle between ĝᵢ and span Y) with optional
 * pairwise-difference terms: column weights wᵢ = (sᵢ + ε)^(−1/4), sᵢ = |1 − ‖Yᵀĝᵢ‖²|, and for every ordered pair
 * i ≠ j the column w_ij (ĝᵢ − ĝⱼ) with w_ij = λ/(p(p−1)) · (s_ij + ε)^(−1/4), s_ij = |1 − ‖Yᵀ(ĝᵢ − ĝⱼ)‖²|. The
 * new subspace is spanned by the top-r left singular vectors of the weighted d×q matrix X = Ĝ C (q = p or p²).
 * Since X Xᵀ = Ĝ M Ĝᵀ with M = C Cᵀ = diag(w²) + Σ_{i≠j} w_ij² (eᵢ − eⱼ)(eᵢ − eⱼ)ᵀ (p×p, positive definite),
 * factor M = L Lᵀ (diagonal L when λ = 0, Cholesky otherwise), eigendecompose T = Lᵀ K L = U diag(μ) Uᵀ and take
 * B = L U_r diag(μ_r)^(−1/2): then Ĝ B are exactly those singular vectors. The p²×p² problem of the reference
 * never appears. Only eigen-directions with μₖ > {@link RANK_TOLERANCE}·μ₁ are kept (rank-deficient inputs:
 * duplicates, zero vectors, r > rank).
 */
import { cholesky, symmetricEigen } from './symmetricEigen.ts';

/** Relative eigenvalue threshold below which a direction of T is treated as numerically absent. */
export const RANK_TOLERANCE = 1e-12;

/** Squared IRLS column weights: w2[i] = wᵢ², pair2[i·p + j] = w_ij² (null when λ = 0 or p < 2). */
export interface FlagWeights {
  w2: Float64Array;
  pair2: Float64Array | null;
}

export interface SubspaceFit {
  /** p×rEff row-major: Y = Ĝ B. */
  B: Float64Array;
  /** Number of directions kept (≤ requested r; less when rank(K) < r). */
  rEff: number;
  /** All eigenvalues of T = Lᵀ K L, descending (the weighted problem's squared singular values). */
  mu: Float64Array;
  /** Eigenvectors of T (p×p), used to warm-start the next Jacobi solve. */
  U: Float64Array;
}

/**
 * IRLS weights from the projections P = ĜᵀY (p×r row-major): the reference's formulas, with |·| as in the code.
 */
export function irlsWeights(
  P: Float64Array,
  p: number,
  r: number,
  lambda: number,
  epsilon: number,
  votes: Float64Array | null = null,
): FlagWeights {
  const w2 = new Float64Array(p);
  for (let i = 0; i < p; i++) {
    let q = 0;
    for (let k = 0; k < r; k++) q += P[i * r + k] * P[i * r + k];
    // Objective Σᵢ ωᵢ·√sᵢ: its majoriser at sᵢ⁰ weighs sᵢ by ωᵢ/√sᵢ⁰.
    w2[i] = (votes === null ? 1 : votes[i]) / Math.sqrt(Math.abs(1 - q) + epsilon);
  }
  let pair2: Float64Array | null = null;
  if (lambda > 0 && p >= 2) {
    pair2 = new Float64Array(p * p);
    const scale = lambda / (p * (p - 1));
    const scale2 = scale * scale;
    for (let i = 0; i < p; i++) {
      for (let j = i + 1; j < p; j++) {
        let q = 0;
        for (let k = 0; k < r; k++) {
          const diff = P[i * r + k] - P[j * r + k];
          q += diff * diff;
        }
        const w = scale2 / Math.sqrt(Math.abs(1 - q) + epsilon);
        pair2[i * p + j] = w;
        pair2[j * p + i] = w;
      }
    }
  }
  return { w2, pair2 };
}

/** Weights of a start with no information (P = 0): all sᵢ = s_ij = 1, the reference's high-dimension limit. */
export function uniformWeights(
  p: number,
  lambda: number,
  epsilon: number,
  votes: Float64Array | null = null,
): FlagWeights {
  return irlsWeights(new Float64Array(p), p, 1, lambda, epsilon, votes);
}

/** Top-r subspace of the weighted problem: see the module comment. `warmU` warm-starts the eigensolver. */
export function fitSubspace(
  K: Float64Array,
  p: number,
  weights: FlagWeights,
  r: number,
  warmU?: Float64Array,
): SubspaceFit {
  const { w2, pair2 } = weights;
  const T = new Float64Array(p * p);
  let L: Float64Array | null = null;
  let wDiag: Float64Array | null = null;
  if (pair2 === null) {
    wDiag = new Float64Array(p);
    for (let i = 0; i < p; i++) wDiag[i] = Math.sqrt(w2[i]);
    for (let i = 0; i < p; i++) {
      for (let j = 0; j < p; j++) T[i * p + j] = wDiag[i] * K[i * p + j] * wDiag[j];
    }
  } else {
    // M = diag(w²) + Σ_{i≠j} w_ij² (eᵢ − eⱼ)(eᵢ − eⱼ)ᵀ; each unordered pair occurs twice (i,j) and (j,i).
    const M = new Float64Array(p * p);
    for (let i = 0; i < p; i++) M[i * p + i] = w2[i];
    for (let i = 0; i < p; i++) {
      for (let j = i + 1; j < p; j++) {
        const w = pair2[i * p + j] + pair2[j * p + i];
        M[i * p + i] += w;
        M[j * p + j] += w;
        M[i * p + j] -= w;
        M[j * p + i] -= w;
      }
    }
    L = cholesky(M, p);
    // T = Lᵀ K L (L lower triangular).
    const KL = new Float64Array(p * p);
    for (let i = 0; i < p; i++) {
      for (let k = 0; k < p; k++) {
        let s = 0;
        for (let j = k; j < p; j++) s += K[i * p + j] * L[j * p + k];
        KL[i * p + k] = s;
      }
    }
    for (let a = 0; a < p; a++) {
      for (let b = a; b < p; b++) {
        let s = 0;
        for (let i = a; i < p; i++) s += L[i * p + a] * KL[i * p + b];
        T[a * p + b] = s;
        T[b * p + a] = s;
      }
    }
  }
  const eig = symmetricEigen(T, p, warmU ? { initialVectors: warmU } : {});
  const mu = eig.values;
  const U = eig.vectors;
  let rEff = 0;
  const top = mu[0];
  if (top > 0) {
    while (rEff < Math.min(r, p) && mu[rEff] > RANK_TOLERANCE * top) rEff++;
  }
  const B = new Float64Array(p * rEff);
  for (let k = 0; k < rEff; k++) {
    const inv = 1 / Math.sqrt(mu[k]);
    for (let i = 0; i < p; i++) {
      let s: number;
      if (wDiag !== null) s = wDiag[i] * U[i * p + k];
      else {
        s = 0;
        const Lm = L as Float64Array;
        for (let j = 0; j <= i; j++) s += Lm[i * p + j] * U[j * p + k];
      }
      B[i * rEff + k] = s * inv;
    }
  }
  return { B, rEff, mu, U };
}

/** P = K B (p×r): row i holds the coordinates of ĝᵢ's projection on span Y in the orthonormal basis Y. */
export function projections(K: Float64Array, p: number, B: Float64Array, r: number): Float64Array {
  const P = new Float64Array(p * r);
  for (let i = 0; i < p; i++) {
    for (let k = 0; k < r; k++) {
      let s = 0;
      for (let j = 0; j < p; j++) s += K[i * p + j] * B[j * r + k];
      P[i * r + k] = s;
    }
  }
  return P;
}

/** Reconstruction ratios vᵢ = ‖Yᵀĝᵢ‖² = ‖Pᵢ‖². */
export function reconstructionRatios(P: Float64Array, p: number, r: number): Float64Array {
  const v = new Float64Array(p);
  for (let i = 0; i < p; i++) {
    let q = 0;
    for (let k = 0; k < r; k++) q += P[i * r + k] * P[i * r + k];
    v[i] = q;
  }
  return v;
}

/**
 * Flag-median objective Σᵢ ωᵢ·√max(0, 1 − ‖Pᵢ‖²) (the reference's "sine" cost; ωᵢ = `votes`, 1 without), plus,
 * when `pairScale2` > 0, the pairwise terms the IRLS step also majorises: pairScale2 · Σ_{i≠j} √|1 − ‖Pᵢ − Pⱼ‖²|.
 */
export function flagObjective(
  P: Float64Array,
  p: number,
  r: number,
  pairScale2 = 0,
  votes: Float64Array | null = null,
): number {
  let J = 0;
  for (let i = 0; i < p; i++) {
    let q = 0;
    for (let k = 0; k < r; k++) q += P[i * r + k] * P[i * r + k];
    const term = Math.sqrt(Math.max(0, 1 - q));
    J += votes === null ? term : votes[i] * term;
  }
  if (pairScale2 > 0) {
    let pairs = 0;
    for (let i = 0; i < p; i++) {
      for (let j = i + 1; j < p; j++) {
        let q = 0;
        for (let k = 0; k < r; k++) {
          const diff = P[i * r + k] - P[j * r + k];
          q += diff * diff;
        }
        pairs += 2 * Math.sqrt(Math.abs(1 - q));
      }
    }
    J += pairScale2 * pairs;
  }
  return J;
}

/**
 * Mixing coefficients c = scale · B Bᵀ K ω (the output is Ĝ c = scale · Y Yᵀ Σᵢ ωᵢĝᵢ; scale = 1/r in the
 * reference, ω = `votes`, all ones without).
 */
export function mixingCoefficients(
  K: Float64Array,
  p: number,
  B: Float64Array,
  r: number,
  scale: number,
  votes: Float64Array | null = null,
): Float64Array {
  const k1 = new Float64Array(p);
  for (let i = 0; i < p; i++) {
    let s = 0;
    if (votes === null) for (let j = 0; j < p; j++) s += K[i * p + j];
    else for (let j = 0; j < p; j++) s += K[i * p + j] * votes[j];
    k1[i] = s;
  }
  const t = new Float64Array(r);
  for (let k = 0; k < r; k++) {
    let s = 0;
    for (let j = 0; j < p; j++) s += B[j * r + k] * k1[j];
    t[k] = s;
  }
  const c = new Float64Array(p);
  for (let i = 0; i < p; i++) {
    let s = 0;
    for (let k = 0; k < r; k++) s += B[i * r + k] * t[k];
    c[i] = scale * s;
  }
  return c;
}

export interface IrlsOptions {
  lambda: number;
  epsilon: number;
  maxIterations: number;
  tolerance: number;
  /** Each worker's say ωᵢ in the objective Σᵢ ωᵢ·√sᵢ (null: 1 each, the flag median as published). */
  votes?: Float64Array | null;
}

export interface IrlsResult {
  fit: SubspaceFit;
  /** P = K B for the returned subspace. */
  P: Float64Array;
  objective: number;
  /** Objective after the start and after each accepted step. */
  history: number[];
  /** Reweighting steps taken. */
  iterations: number;
  converged: boolean;
}

/**
 * Full IRLS of the flag median from a start: either given projections P₀ = ĜᵀY₀ (warm start, p×r0) or, when
 * `startP` is null, uniform weights (= the top-r eigenvectors of K for λ = 0). Iterates until the relative
 * objective change is below `tolerance` or `maxIterations` steps; a step that increases the objective (possible
 * only through ε and rounding) ends the iteration and is discarded.
 */
export function irlsFlag(
  K: Float64Array,
  p: number,
  r: number,
  options: IrlsOptions,
  startP: { P: Float64Array; r: number } | null = null,
): IrlsResult {
  const { lambda, epsilon, maxIterations, tolerance } = options;
  const votes = options.votes ?? null;
  const pairScale = p >= 2 ? lambda / (p * (p - 1)) : 0;
  const pairScale2 = pairScale * pairScale;
  const w0 = startP
    ? irlsWeights(startP.P, p, startP.r, lambda, epsilon, votes)
    : uniformWeights(p, lambda, epsilon, votes);
  let fit = fitSubspace(K, p, w0, r);
  let P = projections(K, p, fit.B, fit.rEff);
  let J = flagObjective(P, p, fit.rEff, pairScale2, votes);
  const history = [J];
  let iterations = 0;
  let converged = false;
  while (iterations < maxIterations) {
    iterations++;
    const w = irlsWeights(P, p, fit.rEff, lambda, epsilon, votes);
    const next = fitSubspace(K, p, w, r, fit.U);
    const nextP = projections(K, p, next.B, next.rEff);
    const nextJ = flagObjective(nextP, p, next.rEff, pairScale2, votes);
    const change = Math.abs(J - nextJ) / Math.max(J, Number.MIN_VALUE);
    if (nextJ > J) {
      converged = change < tolerance;
      break;
    }
    fit = next;
    P = nextP;
    J = nextJ;
    history.push(J);
    if (change < tolerance) {
      converged = true;
      break;
    }
  }
  return { fit, P, objective: J, history, iterations, converged };
}
