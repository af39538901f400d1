/**
 * Static clipping pre-aggregator (ByzFL Clipping): xᵢ ← xᵢ·min(1, c/‖xᵢ‖₂); a vector is scaled only when
 * ‖xᵢ‖ > c. Option c (≥ 0, default 2 as ByzFL). Never mutates its input: unclipped vectors are passed through by
 * reference, clipped ones are written into buffers owned by this instance (valid until its next call).
 *
 * Precondition: n ≥ 1. Mixing matrix: diag(min(1, c/‖xᵢ‖)).
 */
import { scaleVectorInto, vectorNormSq } from '../kernels/registry.ts';
import type { PreAggregation, PreAggregator, PreAggregatorFactory } from '../types.ts';
import { checkPreInput, readNumber, Workspace } from '../util.ts';

export const createClip: PreAggregatorFactory = (options) => {
  const c = readNumber('clip', options, 'c', 2, { min: 0 });
  const ws = new Workspace();
  const applyTracked = (vectors: Float32Array[], f: number): PreAggregation => {
    const d = checkPreInput('clip', vectors, f);
    const n = vectors.length;
    const mixing = new Float64Array(n * n);
    const out = vectors.map((x, i) => {
      // x is staged once for both the norm and the scaling
      const norm = Math.sqrt(vectorNormSq(x));
      if (!(norm > c)) {
        mixing[i * n + i] = 1;
        return x;
      }
      const scale = c / norm;
      mixing[i * n + i] = scale;
      const y = ws.f32(`out${i}`, d);
      scaleVectorInto(x, scale, y, true);
      return y;
    });
    return { vectors: out, mixing };
  };
  const pre: PreAggregator = {
    name: 'clip',
    apply: (vectors, f) => applyTracked(vectors, f).vectors,
    applyTracked,
  };
  return pre;
};
