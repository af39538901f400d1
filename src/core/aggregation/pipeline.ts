/**
 * The aggregation pipeline of one job: input validation, then the pre-aggregators in order, then the rule.
 *
 * 1. Validation (before anything else): a vector whose length differs from the expected length
 *    (`spec.expectedLength`, else the most common length of the round, ties toward the lowest-index input) is
 *    excluded with reason 'wrong-length'; a vector with NaN or ±Inf with reason 'non-finite'. Excluded vectors
 *    are never averaged; their health records have included = false, trust = weight = norm = cosine = 0.
 *    f stays as declared (an excluded worker is not assumed to have been one of the f).
 * 2. Pre-aggregators (`spec.pre`, e.g. ["clip(c=2)", "nnm"]) transform the valid vectors; their mixing matrices
 *    are composed into M (rule inputs × valid workers).
 * 3. The rule aggregates; if too few valid vectors remain for its precondition it throws PreconditionError
 *    (the message then also says how many inputs were excluded).
 *
 * Health mapping back to the workers (all input indices, original order):
 * - without pre-aggregators, the rule's records are the workers' records;
 * - with pre-aggregators, worker j gets weight_j = Σᵢ wᵢ·Mᵢⱼ, its effective coefficient on its raw vector in the
 *   update (exact for linear rules, the coordinate-averaged coefficient for coordinate-wise ones), and
 *   trust_j = Σᵢ |Mᵢⱼ|·trustᵢ / Σᵢ |Mᵢⱼ|, the mixing-weighted trust of the rule inputs it feeds: its own
 *   vector for clip/ARC, its bucket for bucketing, the NNM neighbourhoods that contain it for NNM.
 *   included = weight_j > 0; an excluded worker takes the rule's reason for the input it feeds most (its own
 *   when tied), or, when a pre-aggregator's own test dropped its vector (NNM's sign screen), that test's reason.
 * - norm and cosine always refer to the worker's raw (validated) vector and the final update.
 */
import { createPreAggregator, createRule } from './registry.ts';
import {
  PreconditionError,
  type AggregationResult,
  type AggregationRule,
  type AggregationSpec,
  type PreAggregator,
  type ScreenedInput,
  type WorkerHealth,
} from './types.ts';
import { normSq as sumOfSquares } from './kernels/linear.ts';
import { clamp, readOptionalNumber } from './util.ts';
import { flagExclusionText } from '../reasonCodes.ts';

export interface AggregationPipeline {
  readonly rule: AggregationRule;
  readonly preAggregators: readonly PreAggregator[];
  aggregate(vectors: Float32Array[], workerIds: string[]): AggregationResult;
  /** Rule and pre-aggregator state (centered clipping's reference, bucketing's round counter). */
  saveState(): Record<string, unknown>;
  loadState(state: Record<string, unknown>): void;
}

/**
 * Builds the pipeline of `spec`. `spec.options` go to the rule; per-pre-aggregator options come inline
 * ("clip(c=2)") or from `spec.options.preOptions[name]`.
 */
export function createAggregationPipeline(spec: AggregationSpec): AggregationPipeline {
  if (!Number.isInteger(spec.f) || spec.f < 0) {
    throw new Error(`aggregation f must be a non-negative integer (got ${spec.f})`);
  }
  const expected = readOptionalNumber('pipeline', { expectedLength: spec.expectedLength }, 'expectedLength', {
    integer: true,
    min: 1,
  });
  const { preOptions, ...ruleOptions } = spec.options;
  const preOpts = (preOptions ?? {}) as Record<string, Record<string, unknown>>;
  if (typeof preOpts !== 'object' || Array.isArray(preOpts)) {
    throw new Error('options.preOptions must be an object');
  }
  const rule = createRule(spec.rule, ruleOptions);
  const pres = spec.pre.map((p) => {
    const name = p.split('(')[0].trim();
    return createPreAggregator(p, preOpts[name] ?? {});
  });
  const f = spec.f;

  const aggregate = (vectors: Float32Array[], workerIds: string[]): AggregationResult => {
    const n = vectors.length;
    if (workerIds.length !== n) throw new Error(`got ${n} vectors but ${workerIds.length} worker ids`);
    if (n === 0) throw new PreconditionError(`${rule.name} needs n >= 1 (n=0, f=${f})`);
    const d = expected ?? majorityLength(vectors);
    const health: WorkerHealth[] = workerIds.map((workerId, index) => ({
      index,
      workerId,
      included: false,
      trust: 0,
      weight: 0,
      norm: 0,
      cosine: 0,
    }));
    const valid: number[] = [];
    const normSq: number[] = [];
    for (let i = 0; i < n; i++) {
      const x = vectors[i];
      if (x.length !== d || d === 0) {
        health[i].reason = 'wrong-length';
        health[i].reasonCode = 'wrong-length';
        continue;
      }
      // float32 squares cannot overflow float64, so the sum is finite iff every value is
      const s = sumOfSquares(x);
      if (!Number.isFinite(s)) {
        health[i].reason = 'non-finite';
        health[i].reasonCode = 'non-finite';
        continue;
      }
      valid.push(i);
      normSq.push(s);
    }
    const excluded = n - valid.length;
    const vValid = valid.map((i) => vectors[i]);
    const idsValid = valid.map((i) => workerIds[i]);
    let current = vValid;
    let mixing: Float64Array | null = null; // rows: current vectors, columns: valid workers
    const screened = new Map<number, ScreenedInput>(); // valid worker → the pre-aggregator test that dropped it
    let result: AggregationResult;
    try {
      if (valid.length === 0) {
        throw new PreconditionError(`${rule.name} needs n >= 1 (n=0, f=${f})`);
      }
      for (const pre of pres) {
        const nIn = current.length;
        let out: Float32Array[];
        let m: Float64Array;
        if (pre.applyTracked) {
          const r = pre.applyTracked(current, f);
          out = r.vectors;
          m = r.mixing;
          for (const sc of r.screened ?? []) {
            const j = mixing === null ? sc.input : soleSource(mixing, sc.input, valid.length);
            if (j >= 0) screened.set(j, sc);
          }
        } else {
          out = pre.apply(current, f);
          m = untrackedMixing(out.length, nIn);
        }
        mixing = mixing === null ? m : multiply(m, out.length, nIn, mixing, valid.length);
        current = out;
      }
      const ids =
        mixing === null || current.length === valid.length
          ? idsValid
          : current.map((_, i) => `${pres.at(-1)!.name}[${i}]`);
      result = rule.aggregate({ vectors: current, workerIds: ids, f });
    } catch (e) {
      if (e instanceof PreconditionError && excluded > 0) {
        throw new PreconditionError(
          `${e.message}; ${excluded} of ${n} inputs were excluded (non-finite or wrong length)`,
        );
      }
      throw e;
    }
    const update = result.update;
    if (mixing === null) {
      for (let t = 0; t < valid.length; t++) {
        const r = result.workers[t];
        health[valid[t]] = { ...r, index: valid[t], workerId: workerIds[valid[t]] };
      }
    } else {
      mapHealthBack(result.workers, mixing, current.length, valid, health);
      fillCosines(health, valid, vValid, normSq, update);
      // A text that quotes the cosine quotes the worker's own, not that of the rule input it inherited it from.
      for (const h of health) {
        const code = h.reasonCode;
        if (h.reasonFacts && (code === 'against-robust-direction' || code === 'low-trust')) {
          h.reason = flagExclusionText(
            code,
            h.reasonFacts.score,
            h.reasonFacts.threshold,
            h.cosine,
            h.reasonFacts.option,
          );
        }
      }
      // A worker a pre-aggregator's own test dropped feeds no rule input: it carries that test's reason.
      for (const [j, sc] of screened) {
        const h = health[valid[j]];
        if (h.included) continue;
        h.reasonCode = sc.reasonCode;
        h.reason = sc.reason;
        if (sc.reasonFacts) h.reasonFacts = sc.reasonFacts;
      }
    }
    return {
      update,
      workers: health,
      diagnostics: { ...(result.diagnostics ?? {}), excluded, pre: pres.map((p) => p.name) },
    };
  };

  return {
    rule,
    preAggregators: pres,
    aggregate,
    saveState() {
      return {
        rule: rule.saveState?.() ?? null,
        pre: pres.map((p) => p.saveState?.() ?? null),
      };
    },
    loadState(state: Record<string, unknown>) {
      const rs = state.rule;
      if (rs !== null && rs !== undefined && rule.loadState) rule.loadState(rs as Record<string, unknown>);
      const ps = state.pre;
      if (Array.isArray(ps)) {
        ps.forEach((s, i) => {
          const p = pres[i];
          if (p?.loadState && s !== null && s !== undefined) p.loadState(s as Record<string, unknown>);
        });
      }
    },
  };
}

/** The most common length (ties toward the length of the lowest-index vector). */
function majorityLength(vectors: Float32Array[]): number {
  const counts = new Map<number, number>();
  for (const v of vectors) counts.set(v.length, (counts.get(v.length) ?? 0) + 1);
  let best = vectors[0].length;
  let bestCount = 0;
  for (const v of vectors) {
    const c = counts.get(v.length)!;
    if (c > bestCount) {
      best = v.length;
      bestCount = c;
    }
  }
  return best;
}

/** The one worker (column) row i of the mixing matrix draws on, or −1 when it mixes several or none. */
function soleSource(mixing: Float64Array, i: number, nv: number): number {
  let source = -1;
  for (let j = 0; j < nv; j++) {
    if (mixing[i * nv + j] === 0) continue;
    if (source >= 0) return -1;
    source = j;
  }
  return source;
}

/** Without tracking: identity when the count is unchanged, otherwise every output from all inputs equally. */
function untrackedMixing(nOut: number, nIn: number): Float64Array {
  const m = new Float64Array(nOut * nIn);
  if (nOut === nIn) for (let i = 0; i < nIn; i++) m[i * nIn + i] = 1;
  else m.fill(1 / nIn);
  return m;
}

/** (a: p×q)·(b: q×r) → p×r, row-major. */
function multiply(a: Float64Array, p: number, q: number, b: Float64Array, r: number): Float64Array {
  const out = new Float64Array(p * r);
  for (let i = 0; i < p; i++) {
    for (let k = 0; k < q; k++) {
      const aik = a[i * q + k];
      if (aik === 0) continue;
      for (let j = 0; j < r; j++) out[i * r + j] += aik * b[k * r + j];
    }
  }
  return out;
}

function mapHealthBack(
  ruleWorkers: WorkerHealth[],
  mixing: Float64Array,
  m: number,
  valid: number[],
  health: WorkerHealth[],
): void {
  const nv = valid.length;
  for (let j = 0; j < nv; j++) {
    let weight = 0;
    let trustSum = 0;
    let mass = 0;
    let top = -1;
    let topMass = -1;
    for (let i = 0; i < m; i++) {
      const mij = mixing[i * nv + j];
      if (mij === 0) continue;
      const r = ruleWorkers[i];
      weight += r.weight * mij;
      const a = Math.abs(mij);
      trustSum += a * r.trust;
      mass += a;
      if (a > topMass || (a === topMass && i === j)) {
        top = i;
        topMass = a;
      }
    }
    const h = health[valid[j]];
    h.weight = weight;
    h.trust = mass > 0 ? clamp(trustSum / mass, 0, 1) : 0;
    h.included = weight > 0;
    if (!h.included) {
      const from = top >= 0 ? ruleWorkers[top] : undefined;
      h.reason = from?.reason ?? 'zero weight';
      h.reasonCode = from?.reason !== undefined ? (from.reasonCode ?? 'zero-weight') : 'zero-weight';
      if (from?.reasonFacts) h.reasonFacts = from.reasonFacts;
    }
  }
}

function fillCosines(
  health: WorkerHealth[],
  valid: number[],
  vectors: Float32Array[],
  normSq: number[],
  update: Float32Array,
): void {
  const d = update.length;
  let uu = 0;
  for (let k = 0; k < d; k++) uu += update[k] * update[k];
  const un = Math.sqrt(uu);
  for (let t = 0; t < valid.length; t++) {
    const x = vectors[t];
    let xu = 0;
    for (let k = 0; k < d; k++) xu += x[k] * update[k];
    const xn = Math.sqrt(normSq[t]);
    const h = health[valid[t]];
    h.norm = xn;
    h.cosine = xn > 0 && un > 0 ? clamp(xu / (xn * un), -1, 1) : 0;
  }
}
