/**
 * Mean (average): out = (1/n)·Σᵢ xᵢ.
 *
 * Precondition: n ≥ 1 (f is not used; the mean tolerates no Byzantine input).
 * Health: every worker included, trust 1, weight 1/n.
 */
import type { AggregationInput, AggregationResult, AggregationRule, RuleFactory } from '../types.ts';
import { meanOfRows } from '../kernels/registry.ts';
import {
  checkInput,
  dotsBuffers,
  fillHealthFromDots,
  initHealth,
  outputBuffer,
  readBoolean,
  readCompat,
  Workspace,
} from '../util.ts';

export const createMean: RuleFactory = (options) => {
  readCompat('mean', options, ['byzfl', 'garfield']);
  const reuse = readBoolean('mean', options, 'reuseOutput', false);
  const ws = new Workspace();
  const rule: AggregationRule = {
    name: 'mean',
    aggregate(input: AggregationInput): AggregationResult {
      const d = checkInput('mean', input);
      const { vectors } = input;
      const n = vectors.length;
      const update = outputBuffer(ws, reuse, d);
      const inv = 1 / n;
      const workers = initHealth(input.workerIds);
      for (const w of workers) w.weight = inv;
      // the norms and cosines come from the same staged blocks as the sum
      const dots = dotsBuffers(ws, n);
      meanOfRows(vectors, update, dots, ws);
      fillHealthFromDots(workers, dots);
      return { update, workers };
    },
  };
  return rule;
};
