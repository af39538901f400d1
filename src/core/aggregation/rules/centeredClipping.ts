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
import { centeredClippingSteps } from '../kernels/registry.ts';
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
      // v_L = a₀·v₀ + Σ wᵢ xᵢ, updated in place
      const a0 = centeredClippingSteps(vectors, v, tau, L, update, c, w, dots);
      fillCcHealth(workers, c, w);
      fillHealthFromDots(workers, dots);
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
    if (!h.included) {
      h.reason = 'centeredClipping: zero weight (L = 0)';
      h.reasonCode = 'zero-weight';
    }
  }
}
