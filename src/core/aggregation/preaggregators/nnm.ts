/**
 * NNM, nearest-neighbour mixing (Allouah et al., AISTATS 2023, "Fixing by Mixing"; ByzFL NNM): replace every
 * vector by the mean of its n − f nearest neighbours in Euclidean distance, itself included (then the others
 * by distance, ties toward the lower index):
 *   yᵢ = (1/(n − f))·Σ_{j ∈ Nᵢ} xⱼ.
 * Distances from the shared float64 Gram matrix. Option f overrides the pipeline's f. Outputs are written into
 * buffers owned by this instance (valid until its next call); the input is never mutated.
 *
 * Sign screen (option signThreshold = t, off by default): before mixing, the Flag Aggregator's sign test on the
 * inputs themselves: score every input by its cosine sᵢ to the flag's robust direction of the inputs (the
 * principal axis of the flag median subspace, r = n − 2f, oriented by the inputs' median cosines; see
 * flagSignScores in flag/aggregator.ts; 0 for a zero vector) and drop the inputs with sᵢ < t, at most f of them
 * (the lowest scores; ties toward the higher index). The dropped inputs are neither mixed nor mixed into; NNM
 * then runs on the m kept ones with m − f neighbours. Why before mixing: NNM puts up to f/(n − f) of every
 * output on the attackers' inputs, so f flipped inputs (−μ, short on heterogeneous shards, hence everyone's
 * neighbours) are part of every output, and their own f outputs, with identical neighbourhoods, are identical:
 * a sign test after mixing sees no flipped vector, and f identical vectors can carry its robust direction.
 * (A coordinate-wise median or trimmed mean of the inputs is no better a direction here: the f identical short
 * −μ sit inside the honest range in most coordinates and pull it round.)
 *
 * Preconditions: f < n; with the screen on and f > 0, 2f < n. Mixing matrix (m × n): Mᵢⱼ = 1/(m − f) for
 * j ∈ Nᵢ, where row i is the i-th kept input and a dropped input's column is zero.
 */
import { squaredDistancesFromGram } from '../kernels/gram.ts';
import { combineRows, computeGram } from '../kernels/registry.ts';
import { flagSignScores } from '../flag/aggregator.ts';
import type { PreAggregation, PreAggregator, PreAggregatorFactory, ScreenedInput } from '../types.ts';
import { checkPreInput, precondition, readOptionalNumber, Workspace } from '../util.ts';

export const createNnm: PreAggregatorFactory = (options) => {
  const fOption = readOptionalNumber('nnm', options, 'f', { integer: true, min: 0 });
  const signThreshold = readOptionalNumber('nnm', options, 'signThreshold', { min: -1 });
  if (signThreshold !== undefined && signThreshold > 1) {
    throw new Error(`nnm: option 'signThreshold' must be <= 1 (got ${signThreshold})`);
  }
  const ws = new Workspace();
  const applyTracked = (vectors: Float32Array[], fIn: number): PreAggregation => {
    const f = fOption ?? fIn;
    const d = checkPreInput('nnm', vectors, f);
    const n = vectors.length;
    precondition(f < n, 'nnm', 'f < n', n, f);
    const gram = computeGram(vectors, ws.f64('gram', n * n));
    let kept = Array.from({ length: n }, (_, i) => i);
    const screened: ScreenedInput[] = [];
    if (signThreshold !== undefined && f > 0) {
      precondition(2 * f < n, 'nnm', '2f < n (sign screen)', n, f);
      const scores = flagSignScores(vectors, f, gram);
      const below = kept.filter((i) => scores[i] < signThreshold);
      below.sort((a, b) => scores[a] - scores[b] || b - a);
      const dropped = new Set(below.slice(0, f));
      kept = kept.filter((i) => !dropped.has(i));
      for (const i of dropped) {
        screened.push({
          input: i,
          reasonCode: 'against-robust-direction',
          reason:
            `nnm sign screen: points against the robust direction (sign score ${scores[i].toFixed(3)} < ` +
            `signThreshold ${signThreshold}); dropped before mixing`,
          reasonFacts: { score: scores[i], threshold: signThreshold },
        });
      }
    }
    const m = kept.length;
    const k = m - f;
    const dist = squaredDistancesFromGram(gram, n, ws.f64('dist', n * n));
    const mixing = new Float64Array(m * n);
    const inv = 1 / k;
    // neighbourhoods among the kept inputs: i itself, then the others by distance (ties toward the lower index)
    const terms: number[][] = [];
    for (let r = 0; r < m; r++) {
      const i = kept[r];
      const others = kept.filter((j) => j !== i);
      others.sort((a, b) => dist[i * n + a] - dist[i * n + b] || a - b);
      const t = [i, ...others.slice(0, k - 1)];
      for (const j of t) mixing[r * n + j] = inv;
      terms.push(t);
    }
    const out: Float32Array[] = [];
    for (let r = 0; r < m; r++) out.push(ws.f32(`out${r}`, d));
    // yᵢ = inv·Σₜ x_{terms[i][t]}, float64 in neighbourhood order
    const scales = new Array<number>(m).fill(inv);
    combineRows(vectors, terms, new Array<null>(m).fill(null), scales, out, ws);
    return screened.length > 0 ? { vectors: out, mixing, screened } : { vectors: out, mixing };
  };
  const pre: PreAggregator = {
    name: 'nnm',
    apply: (vectors, f) => applyTracked(vectors, f).vectors,
    applyTracked,
  };
  return pre;
};
