/**
 * What every coordinate-wise rule shares: per coordinate k, [out]ₖ combines the n values [xᵢ]ₖ by a selection the
 * kernel registry computes (median, trimmed mean, mean around a centre). The rule supplies only that selection
 * and its health scale; this scaffold checks 2f < n, owns the buffers and turns the kernel's per-worker selection
 * counts into health: trust = fraction of coordinates in which the worker's value was selected, weight = its
 * average coefficient (selected fraction × share).
 */
import type { AggregationInput, AggregationResult, AggregationRule } from '../types.ts';
import { coordinatewise } from '../kernels/registry.ts';
import type { CoordSpec } from '../kernels/types.ts';
import {
  checkInput,
  coordinateHealth,
  dotsBuffers,
  fillHealthFromDots,
  initHealth,
  outputBuffer,
  precondition,
  Workspace,
} from '../util.ts';

export interface CoordinatewiseRuleDefinition {
  name: string;
  /** The kernel's selection for n inputs of which f may be Byzantine. */
  selection(n: number, f: number): CoordSpec;
  /** The coefficient of one selected value (e.g. 1/(n − 2f) for the trimmed mean). */
  share(n: number, f: number): number;
  /** Health reason of a worker whose value was never selected. */
  neverSelected: string;
  /** Write the update into one reused buffer (valid until the next call) instead of a fresh one. */
  reuseOutput: boolean;
}

export function coordinatewiseRule(def: CoordinatewiseRuleDefinition): AggregationRule {
  const ws = new Workspace();
  return {
    name: def.name,
    aggregate(input: AggregationInput): AggregationResult {
      const d = checkInput(def.name, input);
      const { vectors, f } = input;
      const n = vectors.length;
      precondition(2 * f < n, def.name, '2f < n', n, f);
      const counts = ws.f64('counts', n);
      counts.fill(0);
      const update = outputBuffer(ws, def.reuseOutput, d);
      const workers = initHealth(input.workerIds);
      const dots = dotsBuffers(ws, n);
      coordinatewise(vectors, n, def.selection(n, f), update, counts, dots, ws);
      coordinateHealth(workers, counts, def.share(n, f), d, def.neverSelected);
      fillHealthFromDots(workers, dots);
      return { update, workers };
    },
  };
}
