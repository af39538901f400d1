/**
 * Centered clipping (Karimireddy, He & Jaggi 2021):
 *   v₀ = the previous round's output (0 in the first round),
 *   v_{l+1} = v_l + (1/n)·Σᵢ (xᵢ − v_l)·min(1, τ / ‖xᵢ − v_l‖),   l = 0 .. L − 1,   out = v_L.
 * Defaults τ = 100, L = 1 (ByzFL CenteredClipping; `compat: 'byzfl'` is identical). Stateful: the output is kept
 * as the next round's v₀ (saveState/loadState; reset to 0 when the length d changes). Meant for workers that
 * send momentum.
 *
 * Options: tau (≥ 0), L (integer ≥ 0), reuseOutput.
 * Precondition: n ≥ 1 (f is not used).
 * Health: trust = the last iteration's clipping factor min(1, τ/‖xᵢ − v‖) (1 = not clipped), weight = xᵢ's
 * coefficient in v_L (v_L = a₀·v₀ + Σ wᵢ xᵢ; a₀ is reported in the diagnostics).
 */
import { runCenteredClipping } from '../kernels/simd.ts';
import type {
  AggregationInput,
  AggregationResult,
  AggregationRule,
  RuleFactory,
  WorkerHealth,
} from '../types.ts';
import {
  checkInput,
  dotsBuffers,
  fillHealthFromDots,
  fillNormsAndCosines,
  initHealth,
  outputBuffer,
  readBoolean,
  readCompat,
  readNumber,
  Workspace,
} from '../util.ts';

export const createCenteredClipping: RuleFactory = (options) => {
  readCompat('centeredClipping', options, ['byzfl']);
  const tau = readNumber('centeredClipping', options, 'tau', 100, { min: 0 });
  const L = readNumber('centeredClipping', options, 'L', 1, { integer: true, min: 0 });
  const reuse = readBoolean('centeredClipping', options, 'reuseOutput', false);
  const ws = new Workspace();
  let prev: Float64Array | null = null;
  const rule: AggregationRule = {
    name: 'centeredClipping',
    aggregate(input: AggregationInput): AggregationResult {
      const d = checkInput('centeredClipping', input);
      const { vectors } = input;
      const n = vectors.length;
      let reset = false;
      if (prev === null || prev.length !== d) {
        reset = prev !== null;
        prev = new Float64Array(d);
      }
      const v = prev;
      const c = ws.f64('clip', n);
      const w = ws.f64('w', n);
      c.fill(1);
      w.fill(0);
      const update = outputBuffer(ws, reuse, d);
      const workers = initHealth(input.workerIds);
      const dots = dotsBuffers(ws, n);
      // SIMD: two staged passes per iteration (distances + norms, then the step + output + health dots)
      const simdA0 = runCenteredClipping(vectors, v, tau, L, update, c, w, dots);
      if (simdA0 !== null) {
        fillCcHealth(workers, c, w);
        fillHealthFromDots(workers, dots);
        return { update, workers, diagnostics: { tau, L, previousWeight: simdA0, reset } };
      }
      let a0 = 1;
      const invN = 1 / n;
      for (let l = 0; l < L; l++) {
        let sumC = 0;
        for (let i = 0; i < n; i++) {
          const x = vectors[i];
          let s = 0;
          for (let k = 0; k < d; k++) {
            const diff = x[k] - v[k];
            s += diff * diff;
          }
          const dist = Math.sqrt(s);
          c[i] = dist > tau ? tau / dist : 1;
          sumC += c[i];
        }
        const keep = 1 - sumC * invN;
        for (let k = 0; k < d; k++) v[k] *= keep;
        for (let i = 0; i < n; i++) {
          const ci = c[i] * invN;
          const x = vectors[i];
          for (let k = 0; k < d; k++) v[k] += ci * x[k];
          w[i] = w[i] * keep + ci;
        }
        a0 *= keep;
      }
      for (let k = 0; k < d; k++) update[k] = v[k];
      fillCcHealth(workers, c, w);
      fillNormsAndCosines(workers, vectors, update);
      return { update, workers, diagnostics: { tau, L, previousWeight: a0, reset } };
    },
    saveState() {
      return { previous: prev === null ? null : Array.from(prev) };
    },
    loadState(state: Record<string, unknown>) {
      const p = state.previous;
      if (p === null || p === undefined) prev = null;
      else if (Array.isArray(p) || p instanceof Float32Array || p instanceof Float64Array) {
        prev = Float64Array.from(p as ArrayLike<number>);
      } else throw new Error('centeredClipping: loadState expects { previous: number[] | null }');
    },
  };
  return rule;
};

function fillCcHealth(workers: WorkerHealth[], c: Float64Array, w: Float64Array): void {
  for (const h of workers) {
    h.trust = c[h.index];
    h.weight = w[h.index];
    h.included = h.weight !== 0;
    if (!h.included) h.reason = 'centeredClipping: zero weight (L = 0)';
  }
}
