/**
 * MDA, minimum-diameter averaging (El Mhamdi, Guerraoui & Rouault 2020; ByzFL MDA): among all subsets S of size
 * n − f, take the one with the smallest diameter maxᵢ,ⱼ∈S ‖xᵢ − xⱼ‖ (ties: the first in lexicographic order of
 * worker indices, as itertools.combinations), output (1/(n − f))·Σ_{i∈S} xᵢ.
 *
 * Exact search, depth-first in lexicographic order with branch-and-bound pruning on the running diameter
 * (squared distances from the shared Gram matrix). The number of subsets C(n, f) is capped by option
 * `maxSubsets` (default 10⁷) so that a misconfiguration fails fast instead of running for hours.
 *
 * Precondition: 2f < n and C(n, f) ≤ maxSubsets.
 * Health: members of S trust 1, weight 1/(n − f); the others trust 0, excluded.
 * Diagnostics: selected, diameter, tieBroken (another subset had the same diameter).
 */
import { averageSelected } from '../kernels/registry.ts';
import { pairwiseDistances } from './krum.ts';
import type { AggregationInput, AggregationResult, AggregationRule, RuleFactory } from '../types.ts';
import {
  binomial,
  checkInput,
  outputBuffer,
  precondition,
  readBoolean,
  readCompat,
  readNumber,
  Workspace,
  subsetHealth,
} from '../util.ts';

export const createMda: RuleFactory = (options) => {
  readCompat('mda', options, ['byzfl']);
  const maxSubsets = readNumber('mda', options, 'maxSubsets', 1e7, { min: 1 });
  const reuse = readBoolean('mda', options, 'reuseOutput', false);
  const ws = new Workspace();
  const rule: AggregationRule = {
    name: 'mda',
    aggregate(input: AggregationInput): AggregationResult {
      const d = checkInput('mda', input);
      const { vectors, f } = input;
      const n = vectors.length;
      precondition(2 * f < n, 'mda', '2f < n', n, f);
      const subsets = binomial(n, f);
      precondition(
        subsets <= maxSubsets,
        'mda',
        `C(n, f) <= maxSubsets (C(n, f)=${subsets}, maxSubsets=${maxSubsets})`,
        n,
        f,
      );
      const { gram, dist } = pairwiseDistances(vectors, ws, true);
      const k = n - f;
      const { members, diameterSq, tieBroken } = minimumDiameterSubset(dist, n, k);
      const update = averageSelected(vectors, members, k, ws, outputBuffer(ws, reuse, d));
      const workers = subsetHealth(
        input.workerIds,
        members,
        k,
        'mda: outside the minimum-diameter subset',
        gram,
        n,
      );
      return {
        update,
        workers,
        diagnostics: { selected: members, diameter: Math.sqrt(diameterSq), tieBroken },
      };
    },
  };
  return rule;
};

/**
 * The lexicographically first size-k subset of minimum diameter (by the n×n distance matrix); tieBroken when
 * another subset has the same diameter.
 */
export function minimumDiameterSubset(
  dist: Float64Array,
  n: number,
  k: number,
): { members: number[]; diameterSq: number; tieBroken: boolean } {
  const chosen = new Int32Array(k);
  let best = Infinity;
  let bestSet: number[] = [];
  let tieBroken = false;
  const search = (start: number, depth: number, diam: number): void => {
    if (depth === k) {
      if (diam < best) {
        best = diam;
        bestSet = Array.from(chosen);
        tieBroken = false;
      } else tieBroken = true; // only reached with diam === best
      return;
    }
    for (let i = start; i <= n - (k - depth); i++) {
      let dd = diam;
      for (let t = 0; t < depth; t++) {
        const v = dist[i * n + chosen[t]];
        if (v > dd) dd = v;
      }
      if (dd > best) continue;
      chosen[depth] = i;
      search(i + 1, depth + 1, dd);
    }
  };
  search(0, 0, 0);
  return { members: bestSet, diameterSq: best, tieBroken };
}
