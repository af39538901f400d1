/** Shared helpers for the aggregation tests (not a test file itself). */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { Rng } from '../../../src/core/random.ts';
import type { AggregationResult } from '../../../src/core/aggregation/types.ts';
import { createRule } from '../../../src/core/aggregation/registry.ts';

export function f32(rows: number[][]): Float32Array[] {
  return rows.map((r) => Float32Array.from(r));
}

export function ids(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `w${i}`);
}

/**
 * Element-wise |a − b| ≤ rtol·|b| + atol with atol = max(1e-6·max|b|, atolFloor) (float32 tolerance that also
 * accepts tiny absolute errors on values near 0; `atolFloor` covers outputs that cancel to ~0 from O(1) inputs).
 */
export function expectClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  rtol = 1e-5,
  label = '',
  atolFloor = 0,
): void {
  expect(actual.length, `${label} length`).to.equal(expected.length);
  let scale = 0;
  for (let k = 0; k < expected.length; k++) scale = Math.max(scale, Math.abs(expected[k]));
  const atol = Math.max(1e-6 * scale, atolFloor);
  for (let k = 0; k < expected.length; k++) {
    const a = actual[k];
    const b = expected[k];
    if (!(Math.abs(a - b) <= rtol * Math.abs(b) + atol)) {
      expect.fail(`${label} coordinate ${k}: got ${a}, expected ${b} (rtol ${rtol})`);
    }
  }
}

export interface SharedVectors {
  input: { X_rows_are_workers: number[][]; n: number; d: number; f: number };
  byzfl_aggregators: Record<string, number[] | number>;
  byzfl_preaggregators: Record<string, number[] | number[][]>;
  byzfl_attacks_on_first5_rows: Record<string, number[]>;
  flagaggregator_repo: Record<string, unknown>;
}

export function loadSharedVectors(): SharedVectors {
  const url = new URL('../../fixtures/robust-aggregation-vectors.json', import.meta.url);
  return JSON.parse(readFileSync(url, 'utf8')) as SharedVectors;
}

/** Runs a registered rule once. */
export function run(
  rule: string,
  vectors: Float32Array[],
  f: number,
  options: Record<string, unknown> = {},
): AggregationResult {
  return createRule(rule, options).aggregate({ vectors, workerIds: ids(vectors.length), f });
}

/** n Gaussian vectors of length d (scale `scale`, centre `centre`), from a seed. */
export function gaussian(seed: number, n: number, d: number, scale = 1, centre = 0): Float32Array[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () =>
    Float32Array.from({ length: d }, () => centre + scale * rng.normal()),
  );
}

export function normInf(x: ArrayLike<number>): number {
  let m = 0;
  for (let k = 0; k < x.length; k++) m = Math.max(m, Math.abs(x[k]));
  return m;
}

export function norm2(x: ArrayLike<number>): number {
  let s = 0;
  for (let k = 0; k < x.length; k++) s += x[k] * x[k];
  return Math.sqrt(s);
}

/**
 * One round of the demo's attack at test scale: d = 200, four honest workers sending μ plus `noise`× as much
 * Gaussian noise per coordinate (cosine to μ ≈ 1/√(1 + noise²)), then two colluders sending −4·μ̂, each with its
 * own small estimation noise. Indices 4 and 5 are the colluders.
 */
export function noisyCollusionRound(seed: number, noise: number): Float32Array[] {
  const rng = new Rng(seed);
  const mu = Float32Array.from({ length: 200 }, () => rng.normal());
  const vectors: Float32Array[] = [];
  for (let w = 0; w < 4; w++) vectors.push(mu.map((x) => x + noise * rng.normal()));
  for (let w = 0; w < 2; w++) vectors.push(mu.map((x) => -4 * (x + 0.3 * rng.normal())));
  return vectors;
}
