/**
 * Dense symmetric eigensolver (cyclic Jacobi, float64) and a Cholesky factorisation, for the small p×p problems of
 * the Flag Aggregator's Gram form. Deterministic: fixed sweep order, eigenvalues sorted in descending order (ties keep
 * the lower column first), every eigenvector sign-normalised so that its largest-magnitude component is positive
 * (ties: the lower index).
 *
 * Matrices are row-major Float64Arrays of length n·n. Eigenvectors are returned as the columns of `vectors`:
 * component i of eigenvector k is `vectors[i * n + k]`.
 *
 * Jacobi is O(n³) per sweep and converges quadratically; 6–10 sweeps from scratch, 1–3 when `initialVectors`
 * (an orthonormal basis that nearly diagonalises A, e.g. last IRLS iteration's eigenvectors) is supplied. It is
 * accurate to a few ulps relative to ‖A‖ for every eigenvalue, which is what the IRLS needs. For n beyond a few
 * hundred a Householder-tridiagonal QL solver would be cheaper; Phalanx's p (workers) stays well below that.
 */

export interface SymmetricEigenResult {
  /** Eigenvalues, descending. */
  values: Float64Array;
  /** Orthonormal eigenvectors as columns (row-major n×n): component i of eigenvector k at [i * n + k]. */
  vectors: Float64Array;
  /** Jacobi sweeps performed. */
  sweeps: number;
}

export interface SymmetricEigenOptions {
  /** Orthonormal n×n basis (columns) to start from: the solver diagonalises Vᵀ A V and accumulates into V. */
  initialVectors?: Float64Array;
  /** Maximum number of sweeps (default 60). */
  maxSweeps?: number;
}

/** Eigen-decomposition A = V diag(values) Vᵀ of a symmetric n×n matrix (only symmetric input is meaningful). */
export function symmetricEigen(
  a: Float64Array,
  n: number,
  options: SymmetricEigenOptions = {},
): SymmetricEigenResult {
  if (!Number.isInteger(n) || n < 0) throw new Error(`symmetricEigen: invalid size ${n}`);
  if (a.length < n * n) throw new Error(`symmetricEigen: matrix has ${a.length} entries, need ${n * n}`);
  const maxSweeps = options.maxSweeps ?? 60;
  const A = new Float64Array(n * n);
  const V = new Float64Array(n * n);
  if (options.initialVectors) {
    const V0 = options.initialVectors;
    if (V0.length < n * n) throw new Error('symmetricEigen: initialVectors too small');
    V.set(V0.subarray(0, n * n));
    // A ← V0ᵀ A V0, symmetrised.
    const AV = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      for (let k = 0; k < n; k++) {
        let s = 0;
        for (let j = 0; j < n; j++) s += a[i * n + j] * V0[j * n + k];
        AV[i * n + k] = s;
      }
    }
    for (let p = 0; p < n; p++) {
      for (let q = p; q < n; q++) {
        let s = 0;
        for (let i = 0; i < n; i++) s += V0[i * n + p] * AV[i * n + q];
        A[p * n + q] = s;
        A[q * n + p] = s;
      }
    }
  } else {
    for (let i = 0; i < n; i++) {
      for (let j = i; j < n; j++) {
        const s = 0.5 * (a[i * n + j] + a[j * n + i]);
        A[i * n + j] = s;
        A[j * n + i] = s;
      }
      V[i * n + i] = 1;
    }
  }

  let total = 0;
  for (let i = 0; i < n * n; i++) total += A[i] * A[i];
  const stop = total * 1e-30;

  let sweeps = 0;
  for (; sweeps < maxSweeps; sweeps++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += A[p * n + q] * A[p * n + q];
    if (!(off > stop)) break;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = A[p * n + q];
        if (apq === 0) continue;
        const app = A[p * n + p];
        const aqq = A[q * n + q];
        const g = 100 * Math.abs(apq);
        // After a few sweeps, entries negligible next to both diagonal entries are simply dropped.
        if (sweeps > 3 && Math.abs(app) + g === Math.abs(app) && Math.abs(aqq) + g === Math.abs(aqq)) {
          A[p * n + q] = 0;
          A[q * n + p] = 0;
          continue;
        }
        // Rotation angle φ with cot 2φ = θ = (aqq − app) / (2 apq); t = tan φ, the root of smaller magnitude.
        const theta = (aqq - app) / (2 * apq);
        let t: number;
        if (Math.abs(theta) > 1e150) t = 1 / (2 * theta);
        else t = (theta >= 0 ? 1 : -1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        A[p * n + p] = app - t * apq;
        A[q * n + q] = aqq + t * apq;
        A[p * n + q] = 0;
        A[q * n + p] = 0;
        for (let r = 0; r < n; r++) {
          if (r === p || r === q) continue;
          const arp = A[r * n + p];
          const arq = A[r * n + q];
          const np = c * arp - s * arq;
          const nq = s * arp + c * arq;
          A[r * n + p] = np;
          A[p * n + r] = np;
          A[r * n + q] = nq;
          A[q * n + r] = nq;
        }
        for (let r = 0; r < n; r++) {
          const vrp = V[r * n + p];
          const vrq = V[r * n + q];
          V[r * n + p] = c * vrp - s * vrq;
          V[r * n + q] = s * vrp + c * vrq;
        }
      }
    }
  }

  // Sort descending (stable: equal eigenvalues keep the lower column first), then sign-normalise.
  const order = Array.from({ length: n }, (_, k) => k);
  order.sort((x, y) => A[y * n + y] - A[x * n + x] || x - y);
  const values = new Float64Array(n);
  const vectors = new Float64Array(n * n);
  for (let k = 0; k < n; k++) {
    const src = order[k];
    values[k] = A[src * n + src];
    let best = 0;
    let bestAbs = -1;
    for (let i = 0; i < n; i++) {
      const v = Math.abs(V[i * n + src]);
      if (v > bestAbs) {
        bestAbs = v;
        best = i;
      }
    }
    const sign = V[best * n + src] < 0 ? -1 : 1;
    for (let i = 0; i < n; i++) vectors[i * n + k] = sign * V[i * n + src];
  }
  return { values, vectors, sweeps };
}

/**
 * Cholesky factor L (lower triangular, row-major) with A = L Lᵀ of a symmetric positive-definite n×n matrix.
 * Throws if a pivot is not positive (A not numerically positive definite).
 */
export function cholesky(a: Float64Array, n: number): Float64Array {
  const L = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    let d = a[j * n + j];
    for (let k = 0; k < j; k++) d -= L[j * n + k] * L[j * n + k];
    if (!(d > 0)) throw new Error(`cholesky: matrix is not positive definite (pivot ${j} = ${d})`);
    const ljj = Math.sqrt(d);
    L[j * n + j] = ljj;
    for (let i = j + 1; i < n; i++) {
      let s = a[i * n + j];
      for (let k = 0; k < j; k++) s -= L[i * n + k] * L[j * n + k];
      L[i * n + j] = s / ljj;
    }
  }
  return L;
}
