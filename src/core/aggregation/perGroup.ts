/**
 * Per-group aggregation for sparse gradients (mixture-of-experts experts): a pipeline that aggregates each
 * parameter group over the workers that sent signal for it.
 *
 * An expert's parameters get a non-zero gradient only from workers whose batch routed tokens to it. When a
 * minority of the n workers did, a coordinate-wise rule over all n sees mostly exact zeros and returns ≈ 0 for
 * the whole expert (its median is 0): the honest signal is dropped. Here, each round:
 *   1. the base pipeline (validation, pre-aggregators, rule) aggregates the whole vectors of all workers; its
 *      update and per-worker health are the result's, except on the groups below;
 *   2. for each group G whose senders S_G = {valid workers with x_G ≠ 0} are neither all valid workers (then step
 *      1 already used exactly them) nor none (then every valid vector is 0 on G):
 *      update_G = the same pipeline (its own instance per group, f unchanged) over {x_G : x ∈ S_G}.
 *      A Byzantine worker can always send non-zero, so f is kept as declared; if |S_G| is too small for the rule
 *      with that f (its PreconditionError), G keeps step 1's value over all workers — still the rule's robust
 *      output, biased toward 0 — and the diagnostics say which group fell back and why.
 * Per-worker health is step 1's (a worker's weight in the whole-vector aggregate).
 */
import { createAggregationPipeline, type AggregationPipeline } from './pipeline.ts';
import { PreconditionError, type AggregationResult, type AggregationSpec } from './types.ts';

/** A named set of parameter ranges [offset, offset + size) of the flat vector. */
export interface ParameterGroup {
  name: string;
  ranges: readonly { offset: number; size: number }[];
}

export interface GroupFallback {
  group: string;
  senders: number;
  reason: string;
}

function checkGroups(groups: readonly ParameterGroup[], d: number | undefined): void {
  const covered: [number, number, string][] = [];
  for (const g of groups) {
    for (const { offset, size } of g.ranges) {
      if (!Number.isInteger(offset) || !Number.isInteger(size) || offset < 0 || size < 1) {
        throw new Error(
          `per-group aggregation: group '${g.name}' has an invalid range [${offset}, +${size})`,
        );
      }
      if (d !== undefined && offset + size > d) {
        throw new Error(
          `per-group aggregation: group '${g.name}' range [${offset}, ${offset + size}) exceeds the vector length ${d}`,
        );
      }
      covered.push([offset, offset + size, g.name]);
    }
  }
  covered.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < covered.length; i++) {
    if (covered[i][0] < covered[i - 1][1]) {
      throw new Error(
        `per-group aggregation: groups '${covered[i - 1][2]}' and '${covered[i][2]}' overlap at ${covered[i][0]}`,
      );
    }
  }
}

function isZeroOn(x: Float32Array, g: ParameterGroup): boolean {
  for (const { offset, size } of g.ranges)
    for (let j = offset; j < offset + size; j++) if (x[j] !== 0) return false;
  return true;
}

function gather(x: Float32Array, g: ParameterGroup, length: number): Float32Array {
  const out = new Float32Array(length);
  let k = 0;
  for (const { offset, size } of g.ranges) {
    out.set(x.subarray(offset, offset + size), k);
    k += size;
  }
  return out;
}

function scatter(into: Float32Array, g: ParameterGroup, values: Float32Array): void {
  let k = 0;
  for (const { offset, size } of g.ranges) {
    into.set(values.subarray(k, k + size), offset);
    k += size;
  }
}

/** The pipeline of `spec`, with each of `groups` aggregated over its senders as described above. */
export function createPerGroupPipeline(
  spec: AggregationSpec,
  groups: readonly ParameterGroup[],
): AggregationPipeline {
  checkGroups(groups, spec.expectedLength);
  const base = createAggregationPipeline(spec);
  const perGroup = groups.map(() => createAggregationPipeline({ ...spec, expectedLength: undefined }));
  const sizes = groups.map((g) => g.ranges.reduce((s, r) => s + r.size, 0));

  let checkedLength: number | undefined;
  const aggregate = (vectors: Float32Array[], workerIds: string[]): AggregationResult => {
    const whole = base.aggregate(vectors, workerIds);
    const d = whole.update.length;
    if (d !== checkedLength) {
      checkGroups(groups, d);
      checkedLength = d;
    }
    // The base pipeline's validation already judged each vector (wrong length, NaN or ±Inf).
    const invalid = new Set(
      whole.workers
        .filter((w) => w.reasonCode === 'wrong-length' || w.reasonCode === 'non-finite')
        .map((w) => w.index),
    );
    const valid = vectors.flatMap((_, i) => (invalid.has(i) ? [] : [i]));
    const update = whole.update.slice();
    const aggregated: string[] = [];
    const fallbacks: GroupFallback[] = [];
    groups.forEach((g, k) => {
      const senders = valid.filter((i) => !isZeroOn(vectors[i], g));
      if (senders.length === 0 || senders.length === valid.length) return;
      try {
        const r = perGroup[k].aggregate(
          senders.map((i) => gather(vectors[i], g, sizes[k])),
          senders.map((i) => workerIds[i]),
        );
        scatter(update, g, r.update);
        aggregated.push(g.name);
      } catch (e) {
        if (!(e instanceof PreconditionError)) throw e;
        fallbacks.push({ group: g.name, senders: senders.length, reason: e.message });
      }
    });
    return {
      update,
      workers: whole.workers,
      diagnostics: { ...(whole.diagnostics ?? {}), perGroup: { aggregated, fallbacks } },
    };
  };

  return {
    rule: base.rule,
    preAggregators: base.preAggregators,
    aggregate,
    saveState() {
      return { base: base.saveState(), groups: perGroup.map((p) => p.saveState()) };
    },
    loadState(state: Record<string, unknown>) {
      if (state.base) base.loadState(state.base as Record<string, unknown>);
      const gs = state.groups;
      if (Array.isArray(gs)) gs.forEach((s, k) => perGroup[k]?.loadState(s as Record<string, unknown>));
    },
  };
}
