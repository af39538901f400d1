/**
 * ByzFL's line search for the "optimal" attacks (`Optimal_InnerProductManipulation`,
 * `Optimal_ALittleIsEnough`): maximise φ(τ) = ‖F(H ∪ {x(τ)}×f) − μ‖₂, F the targeted aggregation (with its
 * pre-aggregators), using `evals` evaluations of φ in total. Only increasing τ is ever proposed.
 * - Expansion: best = start, δ = delta; propose best + δ; if better (strictly), accept and δ ← 2δ; on the first
 *   failure δ ← ratio·δ and stop.
 * - Contraction, while evaluations remain: propose best + δ, accept if strictly better, δ ← ratio·δ.
 * Defaults (ByzFL): evals 20, start 0, delta 10, ratio 0.8 ∈ (0.5, 1).
 */
import { OptionReader } from './options.ts';
import { commonLength, meanInto } from './stats.ts';
import { AttackError, type AttackContext } from './types.ts';

export interface LineSearchOptions {
  evals: number;
  start: number;
  delta: number;
  ratio: number;
}

export const LINE_SEARCH_KEYS = ['evals', 'start', 'delta', 'ratio'] as const;

export function readLineSearchOptions(o: OptionReader): LineSearchOptions {
  const evals = o.number('evals', 20, { integer: true, min: 1 });
  const start = o.number('start', 0);
  const delta = o.number('delta', 10);
  if (delta === 0) throw new AttackError('line search: delta must be ≠ 0');
  const ratio = o.number('ratio', 0.8, { above: 0.5, below: 1 });
  return { evals, start, delta, ratio };
}

/** The τ that maximises `phi` under ByzFL's expansion/contraction schedule. */
export function lineSearchMax(phi: (tau: number) => number, opts: LineSearchOptions): number {
  let bestX = opts.start;
  let bestY = phi(bestX);
  let delta = opts.delta;
  let remaining = opts.evals - 1;
  while (remaining > 0) {
    const x = bestX + delta;
    const y = phi(x);
    remaining--;
    if (y > bestY) {
      bestX = x;
      bestY = y;
      delta *= 2;
    } else {
      delta *= opts.ratio;
      break;
    }
  }
  while (remaining > 0) {
    const x = bestX + delta;
    const y = phi(x);
    remaining--;
    if (y > bestY) {
      bestX = x;
      bestY = y;
    }
    delta *= opts.ratio;
  }
  return bestX;
}

/** Coordinate-wise mean (the default target when `ctx.aggregate` is absent). */
export function meanAggregate(vectors: Float32Array[]): Float32Array {
  const d = commonLength(vectors, 'mean aggregate');
  return meanInto(vectors, new Float32Array(d));
}

/**
 * Runs the line search for a family x(τ) written by `build(tau, out)`: φ(τ) = ‖F(H ∪ f copies of x(τ)) − μ‖₂
 * with F = ctx.aggregate (default mean) and f = ctx.f. Returns the best τ; `scratch` (length d) holds x(τ).
 */
export function optimalTau(
  ctx: AttackContext,
  honest: Float32Array[],
  build: (tau: number, out: Float32Array) => void,
  opts: LineSearchOptions,
  scratch: Float32Array,
): number {
  const d = scratch.length;
  const mu = meanInto(honest, new Float64Array(d));
  const aggregate = ctx.aggregate ?? meanAggregate;
  const input: Float32Array[] = honest.slice();
  for (let j = 0; j < ctx.f; j++) input.push(scratch);
  const phi = (tau: number): number => {
    build(tau, scratch);
    const agg = aggregate(input);
    if (agg.length !== d)
      throw new AttackError(`optimal attack: aggregate returned length ${agg.length} ≠ ${d}`);
    let s = 0;
    for (let k = 0; k < d; k++) {
      const t = agg[k] - mu[k];
      s += t * t;
    }
    return Math.sqrt(s);
  };
  return lineSearchMax(phi, opts);
}
