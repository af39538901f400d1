/**
 * Geometric median / RFA (Pillutla, Kakade & Harchaoui 2022): z* = argmin_z Σᵢ ‖z − xᵢ‖ (αᵢ = 1/n), by the
 * smoothed Weiszfeld iteration
 *   βᵢ = 1 / max(ν, ‖z − xᵢ‖),   z ← Σᵢ βᵢ xᵢ / Σᵢ βᵢ.
 *
 * Default: ν = 0.1, start at the mean, stop when ‖z_{t+1} − z_t‖ ≤ tol·max(ν, medianᵢ ‖z_t − xᵢ‖) (tol = 1e-7;
 * a translation-invariant scale that outliers cannot inflate) or after T = 1000 iterations. `compat: 'byzfl'`: start at 0 and run exactly T = 3 iterations (ByzFL GeometricMedian).
 * Options: nu (> 0), T (integer ≥ 0), tol (≥ 0; default mode only).
 *
 * The iterate always is a combination z = Σᵢ aᵢ xᵢ, so the whole iteration runs on the n×n Gram matrix R in
 * float64 (‖z − xᵢ‖² = aᵀRa − 2(Ra)ᵢ + Rᵢᵢ): O(n²d) once, O(n²) per iteration, then one O(nd) output pass.
 *
 * Precondition: n ≥ 1 (f is not used; breakdown point 1/2).
 * Health: weight = aᵢ (coefficient in the output), trust = βᵢ / maxⱼ βⱼ at the output.
 */
import { computeGram, weightedSum } from '../kernels/registry.ts';
import type { AggregationInput, AggregationResult, AggregationRule, RuleFactory } from '../types.ts';
import {
  checkInput,
  fillNormsAndCosinesFromGram,
  initHealth,
  outputBuffer,
  readBoolean,
  readCompat,
  readNumber,
  Workspace,
} from '../util.ts';

export const createGeometricMedian: RuleFactory = (options) => {
  const compat = readCompat('geometricMedian', options, ['byzfl']);
  const byzfl = compat === 'byzfl';
  const nu = readNumber('geometricMedian', options, 'nu', 0.1, { gt: 0 });
  const maxIter = readNumber('geometricMedian', options, 'T', byzfl ? 3 : 1000, { integer: true, min: 0 });
  const tol = byzfl ? 0 : readNumber('geometricMedian', options, 'tol', 1e-7, { min: 0 });
  const reuse = readBoolean('geometricMedian', options, 'reuseOutput', false);
  const ws = new Workspace();
  const rule: AggregationRule = {
    name: 'geometricMedian',
    aggregate(input: AggregationInput): AggregationResult {
      const d = checkInput('geometricMedian', input);
      const { vectors } = input;
      const n = vectors.length;
      const R = computeGram(vectors, ws.f64('gram', n * n));
      const a = ws.f64('a', n);
      const next = ws.f64('next', n);
      const Ra = ws.f64('Ra', n);
      const beta = ws.f64('beta', n);
      a.fill(byzfl ? 0 : 1 / n);
      let iterations = 0;
      let converged = false;
      const dist = ws.f64('dist', n);
      const tmp = ws.f64('tmp', n);
      for (let t = 0; t < maxIter; t++) {
        weiszfeldWeights(R, n, a, Ra, nu, beta, dist);
        let sb = 0;
        for (let i = 0; i < n; i++) sb += beta[i];
        for (let i = 0; i < n; i++) next[i] = beta[i] / sb;
        iterations++;
        if (tol > 0) {
          // ‖Δz‖² = ΔaᵀRΔa
          for (let i = 0; i < n; i++) a[i] = next[i] - a[i];
          const dz = Math.sqrt(Math.max(0, quad(R, n, a)));
          a.set(next);
          if (dz <= tol * Math.max(nu, median(dist, tmp))) {
            converged = true;
            break;
          }
        } else a.set(next);
      }
      const update = weightedSum(vectors, a, ws, outputBuffer(ws, reuse, d));
      // trust from the smoothed Weiszfeld weights at the output
      weiszfeldWeights(R, n, a, Ra, nu, beta, dist);
      let bmax = 0;
      for (let i = 0; i < n; i++) bmax = Math.max(bmax, beta[i]);
      const workers = initHealth(input.workerIds);
      for (const w of workers) {
        w.weight = a[w.index];
        w.trust = bmax > 0 ? beta[w.index] / bmax : 1;
        w.included = w.weight !== 0;
        if (!w.included) {
          w.reason = 'geometricMedian: zero weight';
          w.reasonCode = 'zero-weight';
        }
      }
      fillNormsAndCosinesFromGram(workers, R, n, a);
      return { update, workers, diagnostics: { iterations, converged } };
    },
  };
  return rule;
};

/** distᵢ = ‖z − xᵢ‖ and βᵢ = 1 / max(ν, distᵢ) for z = Σ aⱼ xⱼ, from the Gram matrix. */
function weiszfeldWeights(
  R: Float64Array,
  n: number,
  a: Float64Array,
  Ra: Float64Array,
  nu: number,
  beta: Float64Array,
  dist: Float64Array,
): void {
  let aRa = 0;
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < n; j++) s += R[i * n + j] * a[j];
    Ra[i] = s;
    aRa += a[i] * s;
  }
  for (let i = 0; i < n; i++) {
    dist[i] = Math.sqrt(Math.max(0, aRa - 2 * Ra[i] + R[i * n + i]));
    beta[i] = 1 / Math.max(nu, dist[i]);
  }
}

function quad(R: Float64Array, n: number, v: Float64Array): number {
  let s = 0;
  for (let i = 0; i < n; i++) {
    let r = 0;
    for (let j = 0; j < n; j++) r += R[i * n + j] * v[j];
    s += v[i] * r;
  }
  return s;
}

/** Median of v (upper middle for even length), sorting a copy in `tmp` (same length). */
function median(v: Float64Array, tmp: Float64Array): number {
  tmp.set(v);
  tmp.sort();
  return tmp[tmp.length >> 1];
}
