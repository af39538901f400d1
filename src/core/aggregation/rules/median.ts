/**
 * Coordinate-wise median (Yin et al. 2018): [out]ₖ = medianᵢ [xᵢ]ₖ.
 *
 * Even n: midpoint of the two middle values by default and with `compat: 'byzfl'` (numpy/torch.quantile);
 * `compat: 'garfield'` takes the lower middle value (torch.median, FA-repo copy).
 *
 * Precondition: 2f < n (breakdown point 1/2).
 * Health: trust = fraction of coordinates in which the worker's value is (one of) the median value(s),
 * weight = its average coefficient (1 per coordinate for odd n or lower median, ½ for the midpoint).
 */
import type { AggregationInput, AggregationResult, AggregationRule, RuleFactory } from '../types.ts';
import { columnScratch, gatherColumn, medianOf } from '../kernels/coordinatewise.ts';
import { runCoordinatewise } from '../kernels/simd.ts';
import {
  checkInput,
  coordinateHealth,
  dotsBuffers,
  fillHealthFromDots,
  fillNormsAndCosines,
  initHealth,
  outputBuffer,
  precondition,
  readBoolean,
  readCompat,
  Workspace,
} from '../util.ts';

export const createMedian: RuleFactory = (options) => {
  const compat = readCompat('median', options, ['byzfl', 'garfield']);
  const lower = compat === 'garfield';
  const reuse = readBoolean('median', options, 'reuseOutput', false);
  const ws = new Workspace();
  const rule: AggregationRule = {
    name: 'median',
    aggregate(input: AggregationInput): AggregationResult {
      const d = checkInput('median', input);
      const { vectors, f } = input;
      const n = vectors.length;
      precondition(2 * f < n, 'median', '2f < n', n, f);
      const s = columnScratch(ws, n);
      const counts = ws.f64('counts', n);
      counts.fill(0);
      const update = outputBuffer(ws, reuse, d);
      const odd = (n & 1) === 1;
      const used = ws.i32('used', 2);
      const scalar = (k0: number, k1: number) => {
        for (let k = k0; k < k1; k++) {
          gatherColumn(vectors, k, n, s);
          update[k] = medianOf(n, lower, s, used);
          counts[used[0]]++;
          if (used[1] >= 0) counts[used[1]]++;
        }
      };
      const workers = initHealth(input.workerIds);
      const dots = dotsBuffers(ws, n);
      const simd = runCoordinatewise(
        vectors,
        n,
        { kind: 'median', lower, window: Math.max(1, f) },
        update,
        counts,
        dots,
        scalar,
      );
      if (!simd) scalar(0, d);
      coordinateHealth(workers, counts, odd || lower ? 1 : 0.5, d, 'median: never the median value');
      if (simd) fillHealthFromDots(workers, dots);
      else fillNormsAndCosines(workers, vectors, update);
      return { update, workers };
    },
  };
  return rule;
};
