/**
 * Multi-Krum (Blanchard et al. 2017): Krum scores (see krum.ts), then the mean of the m lowest-scored vectors
 * (ties toward the lower index): out = (1/m)·Σ_{i ∈ best m} xᵢ.
 *
 * Conventions (`compat`):
 * - default: squared L2, n − f − 2 neighbours, m = n − f; precondition n > 2f + 2.
 * - 'byzfl': squared L2, n − f − 1 neighbours, m = n − f; precondition 2f < n.
 * - 'garfield': non-squared L2, n − f − 1 neighbours, m = n − f − 2 (FA-repo krum.py); precondition
 *   n > 2f + 2 (n ≥ 2f + 3) and m ≤ n − f − 2.
 * Option `m` (integer, 1 ≤ m ≤ n) overrides the default.
 *
 * Health: selected workers trust 1 and weight 1/m; the others trust 0, excluded.
 * Diagnostics: m, selected, scores, tieBroken (the m-th and (m+1)-th scores were equal).
 */
import type { AggregationInput, AggregationResult, AggregationRule, RuleFactory } from '../types.ts';
import { krumConvention, krumScores, orderByScore, pairwiseDistances } from './krum.ts';
import { averageSelected } from '../kernels/registry.ts';
import {
  checkInput,
  fillNormsAndCosinesFromGram,
  initHealth,
  outputBuffer,
  precondition,
  readBoolean,
  readCompat,
  readOptionalNumber,
  Workspace,
} from '../util.ts';

export const createMultiKrum: RuleFactory = (options) => {
  const compat = readCompat('multiKrum', options, ['byzfl', 'garfield']);
  const conv = krumConvention(compat);
  const mOption = readOptionalNumber('multiKrum', options, 'm', { integer: true, min: 1 });
  const reuse = readBoolean('multiKrum', options, 'reuseOutput', false);
  const ws = new Workspace();
  const rule: AggregationRule = {
    name: 'multiKrum',
    aggregate(input: AggregationInput): AggregationResult {
      const d = checkInput('multiKrum', input);
      const { vectors, f } = input;
      const n = vectors.length;
      conv.check('multiKrum', n, f);
      const mMax = compat === 'garfield' ? n - f - 2 : n;
      const m = mOption ?? (compat === 'garfield' ? n - f - 2 : n - f);
      precondition(
        m >= 1 && m <= mMax,
        'multiKrum',
        `1 <= m <= ${compat === 'garfield' ? 'n - f - 2' : 'n'} (m=${m})`,
        n,
        f,
      );
      const { gram, dist } = pairwiseDistances(vectors, ws, conv.squared);
      const all = ws.i32('all', n);
      for (let i = 0; i < n; i++) all[i] = i;
      const scores = ws.f64('scores', n);
      krumScores(dist, n, all, n, conv.neighbours(n, f), scores, ws.f64('row', n));
      const order = orderByScore(scores, n, ws.i32('order', n));
      const update = averageSelected(vectors, order, m, ws, outputBuffer(ws, reuse, d));
      const workers = initHealth(input.workerIds);
      for (const w of workers) {
        w.included = false;
        w.trust = 0;
        w.reason = 'multiKrum: not selected';
        w.reasonCode = 'not-selected';
      }
      for (let t = 0; t < m; t++) {
        const w = workers[order[t]];
        w.included = true;
        w.trust = 1;
        w.weight = 1 / m;
        delete w.reason;
        delete w.reasonCode;
      }
      fillNormsAndCosinesFromGram(
        workers,
        gram,
        n,
        workers.map((w) => w.weight),
      );
      const tieBroken = m < n && scores[order[m - 1]] === scores[order[m]];
      return {
        update,
        workers,
        diagnostics: { m, selected: Array.from(order.subarray(0, m)), scores: Array.from(scores), tieBroken },
      };
    },
  };
  return rule;
};
