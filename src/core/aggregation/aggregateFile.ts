/**
 * Pure entry point for the `phalanx aggregate` CLI: aggregate a small JSON-style input with any rule and
 * pre-aggregator pipeline. Input problems throw an Error with a one-line message naming the problem; NaN/±Inf
 * values are not an input error (such workers are excluded and reported with reason 'non-finite').
 */
import type { ReasonCode } from '../reasonCodes.ts';
import { createAggregationPipeline } from './pipeline.ts';

export interface RunAggregationInput {
  vectors: number[][];
  f: number;
  rule: string;
  pre: string[];
  options: Record<string, unknown>;
}

export interface RunAggregationWorker {
  index: number;
  included: boolean;
  trust: number;
  weight: number;
  reason?: string;
  /** The reason as a code (src/core/reasonCodes.ts). */
  reasonCode?: ReasonCode;
}

export interface RunAggregationOutput {
  rule: string;
  update: number[];
  workers: RunAggregationWorker[];
}

export function runAggregation(input: RunAggregationInput): RunAggregationOutput {
  if (input === null || typeof input !== 'object') throw new Error('input must be an object');
  const { vectors, f, rule } = input;
  const pre = input.pre ?? [];
  const options = input.options ?? {};
  if (!Array.isArray(vectors) || vectors.length === 0) {
    throw new Error('vectors must be a non-empty array of number arrays');
  }
  let d = -1;
  for (let i = 0; i < vectors.length; i++) {
    const v = vectors[i];
    if (!Array.isArray(v)) throw new Error(`vectors[${i}] is not an array`);
    if (v.length === 0) throw new Error(`vectors[${i}] is empty`);
    if (d === -1) d = v.length;
    else if (v.length !== d)
      throw new Error(`ragged vectors: vectors[${i}] has length ${v.length}, vectors[0] has ${d}`);
    for (let k = 0; k < v.length; k++) {
      if (typeof v[k] !== 'number')
        throw new Error(`vectors[${i}][${k}] is not a number (got ${JSON.stringify(v[k])})`);
    }
  }
  if (typeof f !== 'number' || !Number.isInteger(f) || f < 0) {
    throw new Error(`f must be a non-negative integer (got ${JSON.stringify(f)})`);
  }
  if (typeof rule !== 'string' || rule.trim() === '') throw new Error('rule must be a non-empty string');
  if (!Array.isArray(pre) || pre.some((p) => typeof p !== 'string'))
    throw new Error('pre must be an array of strings');
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new Error('options must be an object');
  }
  const pipeline = createAggregationPipeline({ rule: rule.trim(), f, pre, options, expectedLength: d });
  const result = pipeline.aggregate(
    vectors.map((v) => Float32Array.from(v)),
    vectors.map((_, i) => `worker-${i}`),
  );
  return {
    rule: pipeline.rule.name,
    update: Array.from(result.update),
    workers: result.workers.map((w) => {
      const out: RunAggregationWorker = {
        index: w.index,
        included: w.included,
        trust: w.trust,
        weight: w.weight,
      };
      if (w.reason !== undefined) out.reason = w.reason;
      if (w.reasonCode !== undefined) out.reasonCode = w.reasonCode;
      return out;
    }),
  };
}
