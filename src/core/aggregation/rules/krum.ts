/**
 * Krum (Blanchard et al. 2017): score(i) = Σ_{j ∈ Nᵢ} ‖xᵢ − xⱼ‖², Nᵢ = the n − f − 2 nearest other vectors;
 * output x_{i*}, i* = argmin score (ties toward the lower index).
 *
 * Conventions (`compat`):
 * - default: squared L2, n − f − 2 neighbours; precondition n > 2f + 2.
 * - 'byzfl': squared L2, n − f − 1 neighbours (ByzFL Krum); precondition 2f < n (what ByzFL checks).
 * - 'garfield': non-squared L2, n − f − 1 neighbours (FA-repo Multi-Krum with m = 1); precondition
 *   n > 2f + 2 (n ≥ 2f + 3).
 *
 * Distances come from the shared float64 Gram matrix (‖xᵢ − xⱼ‖² = Rᵢᵢ + Rⱼⱼ − 2Rᵢⱼ, clamped at 0).
 * Health: the selected worker has trust 1 and weight 1; the others trust 0, weight 0, excluded.
 * Diagnostics: scores, selected, tieBroken (the minimum score was shared and the lower index won).
 */
import { squaredDistancesFromGram } from '../kernels/gram.ts';
import { computeGram } from '../kernels/registry.ts';
import type { AggregationInput, AggregationResult, AggregationRule, RuleFactory } from '../types.ts';
import {
  checkInput,
  fillNormsAndCosinesFromGram,
  initHealth,
  outputBuffer,
  precondition,
  readBoolean,
  readCompat,
  Workspace,
  type Compat,
} from '../util.ts';

/** Pairwise distances (squared or not) between the n vectors, via the Gram matrix; also returns the Gram. */
export function pairwiseDistances(
  vectors: Float32Array[],
  ws: Workspace,
  squared: boolean,
): { gram: Float64Array; dist: Float64Array } {
  const n = vectors.length;
  const gram = computeGram(vectors, ws.f64('gram', n * n));
  const dist = squaredDistancesFromGram(gram, n, ws.f64('dist', n * n));
  if (!squared) for (let i = 0; i < n * n; i++) dist[i] = Math.sqrt(dist[i]);
  return { gram, dist };
}

/**
 * Krum scores restricted to the active set `active[0..m)` (indices into the n×n `dist`): for each active i,
 * the sum of its `neighbours` smallest distances to the other active vectors (summed in ascending order).
 * `neighbours` is clamped to [0, m − 1]. Writes scores[active[t]].
 */
export function krumScores(
  dist: Float64Array,
  n: number,
  active: ArrayLike<number>,
  m: number,
  neighbours: number,
  scores: Float64Array,
  row: Float64Array,
): void {
  const q = Math.max(0, Math.min(neighbours, m - 1));
  for (let t = 0; t < m; t++) {
    const i = active[t];
    let len = 0;
    for (let u = 0; u < m; u++) {
      const j = active[u];
      if (j === i) continue;
      // insertion into the sorted prefix row[0..len)
      const v = dist[i * n + j];
      let p = len++;
      while (p > 0 && row[p - 1] > v) {
        row[p] = row[p - 1];
        p--;
      }
      row[p] = v;
    }
    let s = 0;
    for (let r = 0; r < q; r++) s += row[r];
    scores[i] = s;
  }
}

/** The Krum convention of a compat mode: distance kind, neighbour count and precondition. */
export interface KrumConvention {
  squared: boolean;
  neighbours(n: number, f: number): number;
  check(rule: string, n: number, f: number): void;
}

export function krumConvention(compat: Compat): KrumConvention {
  if (compat === 'byzfl') {
    return {
      squared: true,
      neighbours: (n, f) => n - f - 1,
      check: (rule, n, f) => precondition(2 * f < n, rule, '2f < n', n, f),
    };
  }
  return {
    squared: compat !== 'garfield',
    neighbours: compat === 'garfield' ? (n, f) => n - f - 1 : (n, f) => n - f - 2,
    check: (rule, n, f) => precondition(n > 2 * f + 2, rule, 'n > 2f + 2', n, f),
  };
}

/** Indices 0..n-1 sorted by score ascending, ties toward the lower index (stable insertion sort). */
export function orderByScore(scores: Float64Array, n: number, order: Int32Array): Int32Array {
  for (let i = 0; i < n; i++) {
    const s = scores[i];
    let p = i;
    while (p > 0 && scores[order[p - 1]] > s) {
      order[p] = order[p - 1];
      p--;
    }
    order[p] = i;
  }
  return order;
}

export const createKrum: RuleFactory = (options) => {
  const compat = readCompat('krum', options, ['byzfl', 'garfield']);
  const conv = krumConvention(compat);
  const reuse = readBoolean('krum', options, 'reuseOutput', false);
  const ws = new Workspace();
  const rule: AggregationRule = {
    name: 'krum',
    aggregate(input: AggregationInput): AggregationResult {
      const d = checkInput('krum', input);
      const { vectors, f } = input;
      const n = vectors.length;
      conv.check('krum', n, f);
      const { gram, dist } = pairwiseDistances(vectors, ws, conv.squared);
      const all = ws.i32('all', n);
      for (let i = 0; i < n; i++) all[i] = i;
      const scores = ws.f64('scores', n);
      krumScores(dist, n, all, n, conv.neighbours(n, f), scores, ws.f64('row', n));
      const order = orderByScore(scores, n, ws.i32('order', n));
      const best = order[0];
      const update = outputBuffer(ws, reuse, d);
      update.set(vectors[best]);
      const workers = initHealth(input.workerIds);
      for (const w of workers) {
        const sel = w.index === best;
        w.included = sel;
        w.trust = sel ? 1 : 0;
        w.weight = sel ? 1 : 0;
        if (!sel) {
          w.reason = 'krum: not selected';
          w.reasonCode = 'not-selected';
        }
      }
      fillNormsAndCosinesFromGram(
        workers,
        gram,
        n,
        workers.map((w) => w.weight),
      );
      const tieBroken = n > 1 && scores[order[1]] === scores[best];
      return { update, workers, diagnostics: { selected: best, scores: Array.from(scores), tieBroken } };
    },
  };
  return rule;
};

/** The diagonal of an n×n matrix (squared norms for a Gram matrix). */
export function diagonal(gram: Float64Array, n: number): number[] {
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) out[i] = gram[i * n + i];
  return out;
}
