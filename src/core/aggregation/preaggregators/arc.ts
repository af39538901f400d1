/**
 * ARC, adaptive robust clipping (Allouah et al. 2024, arXiv 2405.14432; ByzFL ARC): with
 * k = ⌊2·(f/n)·(n − f)⌋, sort the vectors by norm (ties toward the lower index) and clip the k largest to the
 * norm of the largest unclipped one (the (n − k)-th smallest): xᵢ ← xᵢ·min(1, τ/‖xᵢ‖), τ = ‖x_{π(n−k)}‖.
 * Option f overrides the pipeline's f. Never mutates its input (clipped vectors go to buffers owned by this
 * instance, valid until its next call).
 *
 * Precondition: f < n. Mixing matrix: diag(scale factors).
 */
import { scaleVectorInto, vectorNormSq } from '../kernels/registry.ts';
import type { PreAggregation, PreAggregator, PreAggregatorFactory } from '../types.ts';
import { checkPreInput, precondition, readOptionalNumber, Workspace } from '../util.ts';

export const createArc: PreAggregatorFactory = (options) => {
  const fOption = readOptionalNumber('arc', options, 'f', { integer: true, min: 0 });
  const ws = new Workspace();
  const applyTracked = (vectors: Float32Array[], fIn: number): PreAggregation => {
    const f = fOption ?? fIn;
    const d = checkPreInput('arc', vectors, f);
    const n = vectors.length;
    precondition(f < n, 'arc', 'f < n', n, f);
    const norms = vectors.map((x) => Math.sqrt(vectorNormSq(x)));
    const order = norms.map((_, i) => i).sort((a, b) => norms[a] - norms[b] || a - b);
    // exact integer floor of 2f(n − f)/n
    const k = Math.floor((2 * f * (n - f)) / n);
    const threshold = norms[order[n - k - 1]];
    const mixing = new Float64Array(n * n);
    for (let i = 0; i < n; i++) mixing[i * n + i] = 1;
    const out = vectors.slice();
    for (let r = n - k; r < n; r++) {
      const i = order[r];
      if (!(norms[i] > threshold)) continue;
      const scale = threshold / norms[i];
      mixing[i * n + i] = scale;
      const x = vectors[i];
      const y = ws.f32(`out${i}`, d);
      scaleVectorInto(x, scale, y);
      out[i] = y;
    }
    return { vectors: out, mixing };
  };
  const pre: PreAggregator = {
    name: 'arc',
    apply: (vectors, f) => applyTracked(vectors, f).vectors,
    applyTracked,
  };
  return pre;
};
