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
import { squaredDistancesFromGram } from '../kernels/gram.ts';
import { combineRows, computeGram } from '../kernels/registry.ts';
import type { PreAggregation, PreAggregator, PreAggregatorFactory } from '../types.ts';
import { checkPreInput, precondition, readOptionalNumber, Workspace } from '../util.ts';

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
    const inv = 1 / k;
    // neighbourhoods: i itself, then the others by distance (ties toward the lower index)
    const terms: number[][] = [];
    for (let i = 0; i < n; i++) {
      const others: number[] = [];
      for (let j = 0; j < n; j++) if (j !== i) others.push(j);
      others.sort((a, b) => dist[i * n + a] - dist[i * n + b] || a - b);
      const t = [i, ...others.slice(0, k - 1)];
      for (const j of t) mixing[i * n + j] = inv;
      terms.push(t);
    }
    const out: Float32Array[] = [];
    for (let i = 0; i < n; i++) out.push(ws.f32(`out${i}`, d));
    // yᵢ = inv·Σₜ x_{terms[i][t]}, float64 in neighbourhood order
    const scales = new Array<number>(n).fill(inv);
    combineRows(vectors, terms, new Array<null>(n).fill(null), scales, out, ws);
    return { vectors: out, mixing };
  };
  const pre: PreAggregator = {
    name: 'nnm',
    apply: (vectors, f) => applyTracked(vectors, f).vectors,
    applyTracked,
  };
  return pre;
};
