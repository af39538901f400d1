/**
 * The n×n Gram matrix R = G Gᵀ of the workers' vectors (float64), the quantity every distance- or cosine-based rule
 * is computed from: ‖gᵢ − gⱼ‖² = Rᵢᵢ + Rⱼⱼ − 2Rᵢⱼ. It is the O(n²d) pass of those rules, run by the kernel
 * registry (`computeGram`, registry.ts) on the WebAssembly SIMD tile kernel (`runGram`, simd.ts) or, without
 * WebAssembly SIMD, on {@link blockedGram} below. Both read the data once per block instead of n/2 times as
 * pairwise dot products ({@link pairwiseGram}, the test reference) do; entries agree up to float64 summation
 * order, the matrix is exactly symmetric and equal vectors give equal rows.
 */

/** Coordinates per cache block of {@link blockedGram}. */
const BLOCK = 2048;

/**
 * Gram matrix of `vectors` (all of length d), row-major n×n float64, symmetric. `out`, if given, must hold n·n
 * entries and is overwritten. Non-finite inputs give non-finite rows (NaN/Inf propagate; nothing is thrown).
 */
export function blockedGram(vectors: readonly Float32Array[], out?: Float64Array): Float64Array {
  const n = vectors.length;
  const gram = out ?? new Float64Array(n * n);
  if (gram.length < n * n) throw new Error('blockedGram: output buffer too small');
  gram.fill(0, 0, n * n);
  if (n === 0) return gram;
  const d = vectors[0].length;
  for (const v of vectors) if (v.length !== d) throw new Error('blockedGram: vectors have different lengths');
  // Row pairs (i, i+1); an odd last row is paired with itself and its duplicate results are discarded.
  for (let k0 = 0; k0 < d; k0 += BLOCK) {
    const k1 = Math.min(d, k0 + BLOCK);
    for (let i = 0; i < n; i += 2) {
      const i1 = i + 1 < n ? i + 1 : i;
      const a0 = vectors[i];
      const a1 = vectors[i1];
      for (let j = i; j < n; j += 2) {
        const j1 = j + 1 < n ? j + 1 : j;
        const b0 = vectors[j];
        const b1 = vectors[j1];
        let s00 = 0;
        let s01 = 0;
        let s10 = 0;
        let s11 = 0;
        for (let k = k0; k < k1; k++) {
          const x0 = a0[k];
          const x1 = a1[k];
          const y0 = b0[k];
          const y1 = b1[k];
          s00 += x0 * y0;
          s01 += x0 * y1;
          s10 += x1 * y0;
          s11 += x1 * y1;
        }
        gram[i * n + j] += s00;
        if (j1 !== j) gram[i * n + j1] += s01;
        if (i1 !== i) {
          // For the diagonal tile (j = i), (i1, i) mirrors (i, i1) and is filled in below.
          if (j !== i) gram[i1 * n + j] += s10;
          if (j1 !== j) gram[i1 * n + j1] += s11;
        }
      }
    }
  }
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) gram[j * n + i] = gram[i * n + j];
  return gram;
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
