/**
 * The scalar backend: every kernel of the registry in plain JavaScript over float64 accumulators. It is the
 * reference the SIMD backend reproduces bit for bit (coordinate-wise rules and linear combinations; the Gram
 * matrix and squared norms up to float64 summation order), the fallback on runtimes without WebAssembly SIMD, and
 * what the SIMD drivers run for the last d mod 4 coordinates and for blocks that contain a NaN.
 */
import type { Workspace } from '../util.ts';
import { closestMean, columnScratch, medianOf, trimmedMeanOf } from './coordinatewise.ts';
import { blockedGram } from './gram.ts';
import { normSq, scaleInto } from './linear.ts';
import type { CoordSpec, Dots, KernelBackend } from './types.ts';

/**
 * The coordinate-wise rule `spec` for coordinates [k0, k1) over rows 0..m−1 (per coordinate, in (value, row)
 * order; see CoordSpec): writes update[k], adds 1 to counts[i] for every counted row i and coordinate.
 */
export function scalarCoordinates(
  rows: readonly Float32Array[],
  m: number,
  spec: CoordSpec,
  update: Float32Array,
  counts: Float64Array,
  k0: number,
  k1: number,
  ws: Workspace,
): void {
  const s = columnScratch(ws, m);
  const used = ws.i32('used', 2);
  const vals = s.vals;
  for (let k = k0; k < k1; k++) {
    for (let i = 0; i < m; i++) vals[i] = rows[i][k];
    switch (spec.kind) {
      case 'median':
        update[k] = medianOf(m, spec.lower, s, used);
        counts[used[0]]++;
        if (used[1] >= 0) counts[used[1]]++;
        break;
      case 'trimmed':
        update[k] = trimmedMeanOf(m, spec.t, s, counts);
        break;
      case 'closest': {
        const centre =
          spec.centre === 'median' ? medianOf(m, spec.lower, s, used) : trimmedMeanOf(m, spec.t, s);
        update[k] = closestMean(m, centre, m - spec.e, s, counts);
        break;
      }
    }
  }
}

/** Adds the health sums of coordinates [k0, k1) for rows 0..count−1 (and ‖u‖² of the same coordinates). */
export function scalarDots(
  rows: readonly Float32Array[],
  count: number,
  u: Float32Array,
  k0: number,
  k1: number,
  dots: Dots,
): void {
  for (let i = 0; i < count; i++) {
    const x = rows[i];
    let xu = 0;
    let xx = 0;
    for (let k = k0; k < k1; k++) {
      const v = x[k];
      xu += v * u[k];
      xx += v * v;
    }
    dots.xu[i] += xu;
    dots.xx[i] += xx;
  }
  let uu = 0;
  for (let k = k0; k < k1; k++) uu += u[k] * u[k];
  dots.uu += uu;
}

/** Coordinates per block of the scalar mean (its float64 accumulator block stays in L1). */
const MEAN_BLOCK = 2048;

export const scalarBackend: KernelBackend = {
  name: 'scalar',
  available: () => true,
  kernels: {
    gram(rows, out) {
      blockedGram(rows, out);
      return true;
    },

    coordinatewise(rows, m, spec, update, counts, dots, ws) {
      const d = update.length;
      scalarCoordinates(rows, m, spec, update, counts, 0, d, ws);
      if (dots) scalarDots(rows, rows.length, update, 0, d, dots);
      return true;
    },

    mean(rows, update, dots, ws) {
      const n = rows.length;
      const d = update.length;
      const inv = 1 / n;
      const acc = ws.f64('mean.acc', MEAN_BLOCK);
      for (let start = 0; start < d; start += MEAN_BLOCK) {
        const len = Math.min(MEAN_BLOCK, d - start);
        acc.fill(0);
        for (let i = 0; i < n; i++) {
          const x = rows[i];
          for (let k = 0; k < len; k++) acc[k] += x[start + k];
        }
        for (let k = 0; k < len; k++) update[start + k] = acc[k] * inv;
      }
      scalarDots(rows, n, update, 0, d, dots);
      return true;
    },

    combinations(rows, outputs, coefs, scales, outs, ws) {
      const d = outs[0].length;
      const acc = ws.f64('comb.acc', d);
      for (let o = 0; o < outputs.length; o++) {
        const terms = outputs[o];
        const c = coefs[o];
        acc.fill(0);
        for (let t = 0; t < terms.length; t++) {
          const x = rows[terms[t]];
          if (c === null) for (let q = 0; q < d; q++) acc[q] += x[q];
          else {
            const ct = c[t];
            for (let q = 0; q < d; q++) acc[q] += ct * x[q];
          }
        }
        const y = outs[o];
        const s = scales[o];
        for (let q = 0; q < d; q++) y[q] = acc[q] * s;
      }
      return true;
    },

    centeredClipping(rows, v, tau, iterations, update, clip, w, dots) {
      const n = rows.length;
      const d = update.length;
      let a0 = 1;
      const invN = 1 / n;
      for (let l = 0; l < iterations; l++) {
        let sumC = 0;
        for (let i = 0; i < n; i++) {
          const x = rows[i];
          let s = 0;
          for (let k = 0; k < d; k++) {
            const diff = x[k] - v[k];
            s += diff * diff;
          }
          const dist = Math.sqrt(s);
          clip[i] = dist > tau ? tau / dist : 1;
          sumC += clip[i];
        }
        const keep = 1 - sumC * invN;
        for (let k = 0; k < d; k++) v[k] *= keep;
        for (let i = 0; i < n; i++) {
          const ci = clip[i] * invN;
          const x = rows[i];
          for (let k = 0; k < d; k++) v[k] += ci * x[k];
          w[i] = w[i] * keep + ci;
        }
        a0 *= keep;
      }
      for (let k = 0; k < d; k++) update[k] = v[k];
      scalarDots(rows, n, update, 0, d, dots);
      return a0;
    },

    normSq: (x) => normSq(x),

    scale(x, s, y) {
      scaleInto(x, s, y);
      return true;
    },
  },
};
