/**
 * The n×n Gram matrix R = G Gᵀ of the workers' vectors, in float64, computed once per round and shared by every
 * rule that needs distances (‖gᵢ − gⱼ‖² = Rᵢᵢ + Rⱼⱼ − 2Rᵢⱼ) or cosines. This is the O(n²d) hot loop: it runs on the
 * cache-blocked SIMD tile kernel (`runGram`, simdKernels.ts; else the Flag Aggregator's `gramMatrix`, whose
 * blocked-JS kernel is the fallback), which reads the data once instead of n/2 times as pairwise dot products
 * ({@link pairwiseGram}) do. Entries equal the
 * pairwise ones up to float64 summation order; the matrix is exactly symmetric and equal vectors give equal rows.
 */
import { gramMatrix } from './linear.ts';
import { runGram } from './simd.ts';

export function computeGram(vectors: Float32Array[], out?: Float64Array): Float64Array {
  const n = vectors.length;
  const gram = out ?? new Float64Array(n * n);
  if (gram.length < n * n) throw new Error('computeGram: output buffer too small');
  if (runGram(vectors, gram)) return gram;
  return gramMatrix(vectors, gram);
}

/** The Gram matrix by pairwise dot products (reference for tests; n/2 passes over the data). */
export function pairwiseGram(vectors: Float32Array[], out?: Float64Array): Float64Array {
  const n = vectors.length;
  const gram = out ?? new Float64Array(n * n);
  if (gram.length < n * n) throw new Error('pairwiseGram: output buffer too small');
  for (let i = 0; i < n; i++) {
    const a = vectors[i];
    for (let j = i; j < n; j++) {
      const b = vectors[j];
      const s = dot(a, b);
      gram[i * n + j] = s;
      gram[j * n + i] = s;
    }
  }
  return gram;
}

/** Dot product with four accumulators (≈2× a naive loop on V8). */
export function dot(a: Float32Array, b: Float32Array): number {
  const d = a.length;
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let k = 0;
  for (; k + 3 < d; k += 4) {
    s0 += a[k] * b[k];
    s1 += a[k + 1] * b[k + 1];
    s2 += a[k + 2] * b[k + 2];
    s3 += a[k + 3] * b[k + 3];
  }
  for (; k < d; k++) s0 += a[k] * b[k];
  return s0 + s1 + s2 + s3;
}

/** Squared pairwise distances from a Gram matrix, clamped at 0 against rounding. */
export function squaredDistancesFromGram(gram: Float64Array, n: number, out?: Float64Array): Float64Array {
  const dist = out ?? new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const v = gram[i * n + i] + gram[j * n + j] - 2 * gram[i * n + j];
      dist[i * n + j] = i === j ? 0 : Math.max(0, v);
    }
  }
  return dist;
}
