/**
 * Linear passes over float32 vectors, accumulated in float64, in plain JavaScript:
 * - {@link linearCombination}: out = Σᵢ aᵢ·gᵢ (zero coefficients skipped) in cache-resident blocks, eight inputs
 *   per sweep: per coordinate acc += (a₀g₀ + … + a₇g₇), then the next eight. This grouping is the Flag
 *   Aggregator's output order (its coefficients come from a p×p eigenproblem, so one pass over the data suffices).
 * - {@link normSq}, {@link scaleInto}: the scalar backend of the whole-vector kernels (clip, ARC, the pipeline's
 *   input norms).
 */

/** Sum of squares of x in float64 (four accumulators: one memory pass, not bound by the add latency). */
export function normSq(x: Float32Array): number {
  const d = x.length;
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let k = 0;
  for (; k + 3 < d; k += 4) {
    const a = x[k];
    const b = x[k + 1];
    const c = x[k + 2];
    const e = x[k + 3];
    s0 += a * a;
    s1 += b * b;
    s2 += c * c;
    s3 += e * e;
  }
  for (; k < d; k++) s0 += x[k] * x[k];
  return s0 + s1 + (s2 + s3);
}

/** y[k] = x[k]·scale (float64 product rounded to float32), unrolled. */
export function scaleInto(x: Float32Array, scale: number, y: Float32Array): void {
  const d = x.length;
  let k = 0;
  for (; k + 3 < d; k += 4) {
    y[k] = x[k] * scale;
    y[k + 1] = x[k + 1] * scale;
    y[k + 2] = x[k + 2] * scale;
    y[k + 3] = x[k + 3] * scale;
  }
  for (; k < d; k++) y[k] = x[k] * scale;
}

/** Coordinates per output block of {@link linearCombination} (a float64 scratch of this size stays in L1). */
const COMBINE_BLOCK = 2048;

/**
 * out[k] = Σᵢ coefficients[i] · vectors[i][k] for every coordinate k, accumulated in float64 and stored as float32.
 * Vectors whose coefficient is exactly 0 are skipped. `out`, if given, must have the vectors' length.
 */
export function linearCombination(
  vectors: readonly Float32Array[],
  coefficients: ArrayLike<number>,
  d: number,
  out?: Float32Array,
): Float32Array {
  const result = out ?? new Float32Array(d);
  if (result.length !== d) throw new Error('linearCombination: output has the wrong length');
  const used: Float32Array[] = [];
  const coef: number[] = [];
  for (let i = 0; i < vectors.length; i++) {
    const c = coefficients[i];
    if (c !== 0) {
      if (vectors[i].length !== d) throw new Error('linearCombination: vector has the wrong length');
      used.push(vectors[i]);
      coef.push(c);
    }
  }
  const m = used.length;
  if (m === 0) {
    result.fill(0);
    return result;
  }
  const acc = new Float64Array(COMBINE_BLOCK);
  for (let k0 = 0; k0 < d; k0 += COMBINE_BLOCK) {
    const len = Math.min(COMBINE_BLOCK, d - k0);
    acc.fill(0, 0, len);
    let i = 0;
    for (; i + 7 < m; i += 8) {
      const v0 = used[i];
      const v1 = used[i + 1];
      const v2 = used[i + 2];
      const v3 = used[i + 3];
      const v4 = used[i + 4];
      const v5 = used[i + 5];
      const v6 = used[i + 6];
      const v7 = used[i + 7];
      const c0 = coef[i];
      const c1 = coef[i + 1];
      const c2 = coef[i + 2];
      const c3 = coef[i + 3];
      const c4 = coef[i + 4];
      const c5 = coef[i + 5];
      const c6 = coef[i + 6];
      const c7 = coef[i + 7];
      for (let k = 0; k < len; k++) {
        const kk = k0 + k;
        acc[k] +=
          c0 * v0[kk] +
          c1 * v1[kk] +
          c2 * v2[kk] +
          c3 * v3[kk] +
          c4 * v4[kk] +
          c5 * v5[kk] +
          c6 * v6[kk] +
          c7 * v7[kk];
      }
    }
    for (; i + 3 < m; i += 4) {
      const v0 = used[i];
      const v1 = used[i + 1];
      const v2 = used[i + 2];
      const v3 = used[i + 3];
      const c0 = coef[i];
      const c1 = coef[i + 1];
      const c2 = coef[i + 2];
      const c3 = coef[i + 3];
      for (let k = 0; k < len; k++) {
        const kk = k0 + k;
        acc[k] += c0 * v0[kk] + c1 * v1[kk] + c2 * v2[kk] + c3 * v3[kk];
      }
    }
    for (; i < m; i++) {
      const v = used[i];
      const c = coef[i];
      for (let k = 0; k < len; k++) acc[k] += c * v[k0 + k];
    }
    for (let k = 0; k < len; k++) result[k0 + k] = acc[k];
  }
  return result;
}
