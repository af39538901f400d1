/**
 * Mean (average): out = (1/n)·Σᵢ xᵢ.
 *
 * Precondition: n ≥ 1 (f is not used; the mean tolerates no Byzantine input).
 * Health: every worker included, trust 1, weight 1/n.
 */
import type { AggregationInput, AggregationResult, AggregationRule, RuleFactory } from '../types.ts';
import { runMean } from '../kernels/simd.ts';
import {
  checkInput,
  dotsBuffers,
  fillHealthFromDots,
  fillNormsAndCosines,
  initHealth,
  outputBuffer,
  readBoolean,
  readCompat,
  Workspace,
} from '../util.ts';

const BLOCK = 2048;

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
      // SIMD kernel: blocks staged in cache, the norms and cosines from the same blocks
      const dots = dotsBuffers(ws, n);
      if (runMean(vectors, update, dots)) {
        fillHealthFromDots(workers, dots);
        return { update, workers };
      }
      // cache-blocked: the float64 accumulator block stays in L1, and the squared norms ride along
      const acc = ws.f64('acc', BLOCK);
      const normSq = ws.f64('normSq', n);
      normSq.fill(0);
      for (let start = 0; start < d; start += BLOCK) {
        const len = Math.min(BLOCK, d - start);
        acc.fill(0);
        for (let i = 0; i < n; i++) {
          const x = vectors[i];
          let q = 0;
          for (let k = 0; k < len; k++) {
            const v = x[start + k];
            acc[k] += v;
            q += v * v;
          }
          normSq[i] += q;
        }
        for (let k = 0; k < len; k++) update[start + k] = acc[k] * inv;
      }
      fillNormsAndCosines(workers, vectors, update, normSq);
      return { update, workers };
    },
  };
  return rule;
};
