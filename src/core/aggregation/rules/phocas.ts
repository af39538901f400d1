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
import { coordinatewise } from '../kernels/registry.ts';
import {
  checkInput,
  coordinateHealth,
  dotsBuffers,
  fillHealthFromDots,
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
      const counts = ws.f64('counts', n);
      counts.fill(0);
      const update = outputBuffer(ws, reuse, d);
      const m = n - f;
      const workers = initHealth(input.workerIds);
      const dots = dotsBuffers(ws, n);
      const spec = { kind: 'closest', centre: 'trimmed', lower: false, t: f, e: f } as const;
      coordinatewise(vectors, n, spec, update, counts, dots, ws);
      coordinateHealth(
        workers,
        counts,
        1 / m,
        d,
        'phocas: never among the n - f closest to the trimmed mean',
      );
      fillHealthFromDots(workers, dots);
      return { update, workers };
    },
  };
  return rule;
};
