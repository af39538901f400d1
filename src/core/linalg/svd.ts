/**
 * Thin singular value decomposition of a dense real matrix by one-sided Jacobi (Hestenes) rotations, in double
 * precision. Pure and deterministic.
 *
 * For A (m×n, m ≥ n) it orthogonalises the columns of W = A·V by plane rotations V ← V·J(p, q, θ) chosen so that
 * columns p and q of W become orthogonal: with α = ‖w_p‖², β = ‖w_q‖², γ = w_p·w_q, ζ = (β − α)/(2γ),
 * t = sign(ζ)/(|ζ| + √(1 + ζ²)), c = 1/√(1 + t²), s = c·t. Sweeps repeat until every pair is orthogonal to
 * relative precision ε. Then σ_j = ‖w_j‖ and u_j = w_j/σ_j, so A = U·diag(σ)·Vᵀ. A wide matrix is decomposed
 * through its transpose (Aᵀ = V Σ Uᵀ). Columns of U for zero singular values are completed to an orthonormal
 * set by Gram–Schmidt on unit vectors, so U and V always have orthonormal columns.
 */

export interface Svd {
  /** Left singular vectors, m×k row-major (k = min(m, n)), orthonormal columns. */
  u: Float64Array;
  /** Singular values, k of them, non-increasing and ≥ 0. */
  s: Float64Array;
  /** Right singular vectors, n×k row-major, orthonormal columns. */
  v: Float64Array;
  rows: number;
  cols: number;
  rank: number;
}

const EPS = 2.220446049250313e-16;
const MAX_SWEEPS = 60;

/** Transpose of a row-major m×n matrix. */
export function transpose(a: Float64Array, m: number, n: number): Float64Array {
  const t = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) t[j * m + i] = a[i * n + j];
  return t;
}

/** The thin SVD of the row-major m×n matrix `a` (not modified). */
export function svd(a: Float64Array | Float32Array, m: number, n: number): Svd {
  if (!(Number.isInteger(m) && Number.isInteger(n) && m > 0 && n > 0)) {
    throw new Error(`svd: shape ${m}×${n} must be positive integers`);
  }
  if (a.length !== m * n) throw new Error(`svd: ${a.length} values for a ${m}×${n} matrix`);
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i])) throw new Error(`svd: value ${a[i]} at ${i} is not finite`);
  }
  if (m < n) {
    const t = tallSvd(transpose(Float64Array.from(a), m, n), n, m);
    return { u: t.v, s: t.s, v: t.u, rows: m, cols: n, rank: t.rank };
  }
  return tallSvd(Float64Array.from(a), m, n);
}

/** SVD of a tall (m ≥ n) matrix held row-major in `w`, which is overwritten. */
function tallSvd(w: Float64Array, m: number, n: number): Svd {
  const v = new Float64Array(n * n);
  for (let j = 0; j < n; j++) v[j * n + j] = 1;
  for (let sweep = 0; sweep < MAX_SWEEPS; sweep++) {
    let rotated = false;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        let alpha = 0;
        let beta = 0;
        let gamma = 0;
        for (let i = 0; i < m; i++) {
          const wp = w[i * n + p];
          const wq = w[i * n + q];
          alpha += wp * wp;
          beta += wq * wq;
          gamma += wp * wq;
        }
        if (gamma === 0 || Math.abs(gamma) <= EPS * Math.sqrt(alpha * beta)) continue;
        rotated = true;
        const zeta = (beta - alpha) / (2 * gamma);
        const t = (zeta >= 0 ? 1 : -1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        rotate(w, m, n, p, q, c, s);
        rotate(v, n, n, p, q, c, s);
      }
    }
    if (!rotated) break;
  }
  const norms = Array.from({ length: n }, (_, j) => {
    let sum = 0;
    for (let i = 0; i < m; i++) sum += w[i * n + j] * w[i * n + j];
    return Math.sqrt(sum);
  });
  // Non-increasing singular values; ties keep column order so the result is deterministic.
  const order = Array.from({ length: n }, (_, j) => j).sort((x, y) => norms[y] - norms[x] || x - y);
  const s = new Float64Array(n);
  const u = new Float64Array(m * n);
  const vs = new Float64Array(n * n);
  const tiny = (norms[order[0]] ?? 0) * Math.max(m, n) * EPS;
  let rank = 0;
  order.forEach((j, k) => {
    const sigma = norms[j];
    for (let i = 0; i < n; i++) vs[i * n + k] = v[i * n + j];
    if (sigma > tiny && sigma > 0) {
      s[k] = sigma;
      rank++;
      for (let i = 0; i < m; i++) u[i * n + k] = w[i * n + j] / sigma;
    }
  });
  completeColumns(u, m, n, rank);
  return { u, s, v: vs, rows: m, cols: n, rank };
}

/** Columns p, q of row-major `x` (rows×cols) ← (c·x_p − s·x_q, s·x_p + c·x_q). */
function rotate(
  x: Float64Array,
  rows: number,
  cols: number,
  p: number,
  q: number,
  c: number,
  s: number,
): void {
  for (let i = 0; i < rows; i++) {
    const xp = x[i * cols + p];
    const xq = x[i * cols + q];
    x[i * cols + p] = c * xp - s * xq;
    x[i * cols + q] = s * xp + c * xq;
  }
}

/** Fill columns [from, k) of the m×k matrix `u` with unit vectors orthonormal to all earlier columns. */
function completeColumns(u: Float64Array, m: number, k: number, from: number): void {
  for (let col = from; col < k; col++) {
    let best: Float64Array | undefined;
    let bestNorm = 0;
    for (let e = 0; e < m && bestNorm < 0.5; e++) {
      const x = new Float64Array(m);
      x[e] = 1;
      for (let pass = 0; pass < 2; pass++) {
        for (let c = 0; c < col; c++) {
          let dot = 0;
          for (let i = 0; i < m; i++) dot += u[i * k + c] * x[i];
          for (let i = 0; i < m; i++) x[i] -= dot * u[i * k + c];
        }
      }
      const norm = Math.hypot(...x);
      if (norm > bestNorm) {
        bestNorm = norm;
        best = x;
      }
    }
    for (let i = 0; i < m; i++) u[i * k + col] = best![i] / bestNorm;
  }
}

/**
 * The best rank-r approximation's factors (Eckart–Young): left = U_r·Σ_r^{1/2} (m×r) and right = Σ_r^{1/2}·V_rᵀ
 * (r×n), so left·right = U_r Σ_r V_rᵀ. r is clamped to min(m, n).
 */
export function lowRankFactors(
  d: Svd,
  rank: number,
): { left: Float64Array; right: Float64Array; rank: number } {
  const k = Math.min(d.rows, d.cols);
  const r = Math.max(0, Math.min(rank, k));
  const left = new Float64Array(d.rows * r);
  const right = new Float64Array(r * d.cols);
  for (let j = 0; j < r; j++) {
    const root = Math.sqrt(d.s[j]);
    for (let i = 0; i < d.rows; i++) left[i * r + j] = d.u[i * k + j] * root;
    for (let i = 0; i < d.cols; i++) right[j * d.cols + i] = root * d.v[i * k + j];
  }
  return { left, right, rank: r };
}

/** Fraction of ‖A‖²_F = Σσ² that the top `rank` singular values hold (1 for a zero matrix). */
export function energyCaptured(s: Float64Array, rank: number): number {
  let total = 0;
  let kept = 0;
  for (let j = 0; j < s.length; j++) {
    total += s[j] * s[j];
    if (j < rank) kept += s[j] * s[j];
  }
  return total === 0 ? 1 : kept / total;
}
