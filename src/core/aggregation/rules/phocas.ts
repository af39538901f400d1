/**
 * Phocas (Xie, Koyejo & Gupta 2018): per coordinate, the mean of the n − f values closest to the coordinate's
 * f-trimmed mean (ties toward the lower worker index):
 *   [out]ₖ = (1/(n − f))·Σ_{i ∈ closest_{n−f}(trmeanₖ)} [xᵢ]ₖ.
 * Same definition by default and with `compat: 'garfield'` (FA-repo phocas); ByzFL has no Phocas.
 *
 * Precondition: 2f < n.
 * Health: trust = fraction of coordinates in which the worker's value was among the n − f closest, weight =
 * its average coefficient.
 */
import type { AggregationInput, AggregationResult, AggregationRule, RuleFactory } from '../types.ts';
import { closestMean, columnScratch, gatherColumn, trimmedMeanOf } from '../kernels/coordinatewise.ts';
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

export const createPhocas: RuleFactory = (options) => {
  readCompat('phocas', options, ['garfield']);
  const reuse = readBoolean('phocas', options, 'reuseOutput', false);
  const ws = new Workspace();
  const rule: AggregationRule = {
    name: 'phocas',
    aggregate(input: AggregationInput): AggregationResult {
      const d = checkInput('phocas', input);
      const { vectors, f } = input;
      const n = vectors.length;
      precondition(2 * f < n, 'phocas', '2f < n', n, f);
      const s = columnScratch(ws, n);
      const counts = ws.f64('counts', n);
      counts.fill(0);
      const update = outputBuffer(ws, reuse, d);
      const m = n - f;
      const scalar = (k0: number, k1: number) => {
        for (let k = k0; k < k1; k++) {
          gatherColumn(vectors, k, n, s);
          update[k] = closestMean(n, trimmedMeanOf(n, f, s), m, s, counts);
        }
      };
      const workers = initHealth(input.workerIds);
      const dots = dotsBuffers(ws, n);
      const spec = { kind: 'closest', centre: 'trimmed', lower: false, t: f, e: f } as const;
      const simd = runCoordinatewise(vectors, n, spec, update, counts, dots, scalar);
      if (!simd) scalar(0, d);
      coordinateHealth(
        workers,
        counts,
        1 / m,
        d,
        'phocas: never among the n - f closest to the trimmed mean',
      );
      if (simd) fillHealthFromDots(workers, dots);
      else fillNormsAndCosines(workers, vectors, update);
      return { update, workers };
    },
  };
  return rule;
};
