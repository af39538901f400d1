/**
 * NNM, nearest-neighbour mixing (Allouah et al., AISTATS 2023, "Fixing by Mixing"; ByzFL NNM): replace every
 * vector by the mean of its n − f nearest neighbours in Euclidean distance, itself included (then the others
 * by distance, ties toward the lower index):
 *   yᵢ = (1/(n − f))·Σ_{j ∈ Nᵢ} xⱼ.
 * Distances from the shared float64 Gram matrix. Option f overrides the pipeline's f. Outputs are written into
 * buffers owned by this instance (valid until its next call); the input is never mutated.
 *
 * Precondition: f < n. Mixing matrix: Mᵢⱼ = 1/(n − f) for j ∈ Nᵢ.
 */
import { computeGram, squaredDistancesFromGram } from './gram.ts';
import type { PreAggregation, PreAggregator, PreAggregatorFactory } from './types.ts';
import { checkPreInput, precondition, readOptionalNumber, Workspace } from './util.ts';

export const createNnm: PreAggregatorFactory = (options) => {
  const fOption = readOptionalNumber('nnm', options, 'f', { integer: true, min: 0 });
  const ws = new Workspace();
  const applyTracked = (vectors: Float32Array[], fIn: number): PreAggregation => {
    const f = fOption ?? fIn;
    const d = checkPreInput('nnm', vectors, f);
    const n = vectors.length;
    precondition(f < n, 'nnm', 'f < n', n, f);
    const k = n - f;
    const gram = computeGram(vectors, ws.f64('gram', n * n));
    const dist = squaredDistancesFromGram(gram, n, ws.f64('dist', n * n));
    const mixing = new Float64Array(n * n);
    const acc = ws.f64('acc', d);
    const others: number[] = [];
    const out: Float32Array[] = [];
    const inv = 1 / k;
    for (let i = 0; i < n; i++) {
      others.length = 0;
      for (let j = 0; j < n; j++) if (j !== i) others.push(j);
      others.sort((a, b) => dist[i * n + a] - dist[i * n + b] || a - b);
      acc.fill(0);
      for (let t = 0; t < k; t++) {
        const j = t === 0 ? i : others[t - 1];
        mixing[i * n + j] = inv;
        const x = vectors[j];
        for (let q = 0; q < d; q++) acc[q] += x[q];
      }
      const y = ws.f32(`out${i}`, d);
      for (let q = 0; q < d; q++) y[q] = acc[q] * inv;
      out.push(y);
    }
    return { vectors: out, mixing };
  };
  const pre: PreAggregator = {
    name: 'nnm',
    apply: (vectors, f) => applyTracked(vectors, f).vectors,
    applyTracked,
  };
  return pre;
};
