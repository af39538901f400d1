/**
 * MoNNA (Allouah et al. 2023; ByzFL MoNNA): the mean of the n − f nearest neighbours of a trusted vector
 * x_idx (x_idx itself included, then the others by Euclidean distance, ties toward the lower index):
 *   out = (1/(n − f))·Σ_{i ∈ N_{n−f}(x_idx)} xᵢ.
 * Option `idx` (default 0, as ByzFL): position of the trusted vector in the rule's input (after the pipeline's
 * exclusions and pre-aggregators).
 *
 * Precondition: 2f < n and idx < n.
 * Health: neighbours trust 1, weight 1/(n − f); the others trust 0, excluded.
 */
import { pairwiseDistances } from './krum.ts';
import type { AggregationInput, AggregationResult, AggregationRule, RuleFactory } from '../types.ts';
import { averageSelected } from '../kernels/registry.ts';
import {
  checkInput,
  outputBuffer,
  precondition,
  readBoolean,
  readCompat,
  readNumber,
  Workspace,
  subsetHealth,
} from '../util.ts';

export const createMonna: RuleFactory = (options) => {
  readCompat('monna', options, ['byzfl']);
  const idx = readNumber('monna', options, 'idx', 0, { integer: true, min: 0 });
  const reuse = readBoolean('monna', options, 'reuseOutput', false);
  const ws = new Workspace();
  const rule: AggregationRule = {
    name: 'monna',
    aggregate(input: AggregationInput): AggregationResult {
      const d = checkInput('monna', input);
      const { vectors, f } = input;
      const n = vectors.length;
      precondition(2 * f < n, 'monna', '2f < n', n, f);
      precondition(idx < n, 'monna', `idx < n (idx=${idx})`, n, f);
      const { gram, dist } = pairwiseDistances(vectors, ws, true);
      const k = n - f;
      const others = [];
      for (let i = 0; i < n; i++) if (i !== idx) others.push(i);
      others.sort((a, b) => dist[idx * n + a] - dist[idx * n + b] || a - b);
      const members = [idx, ...others.slice(0, k - 1)];
      const update = averageSelected(vectors, members, k, ws, outputBuffer(ws, reuse, d));
      const workers = subsetHealth(
        input.workerIds,
        members,
        k,
        'monna: not among the n - f nearest neighbours of the trusted vector',
        gram,
        n,
      );
      return { update, workers, diagnostics: { trusted: idx, selected: members } };
    },
  };
  return rule;
};
