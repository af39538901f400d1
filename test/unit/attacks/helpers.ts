/** Shared helpers for the attack tests (not a test file itself). */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { Rng } from '../../../src/core/random.ts';
import type { AttackContext } from '../../../src/core/attacks/types.ts';

export function f32(rows: number[][]): Float32Array[] {
  return rows.map((r) => Float32Array.from(r));
}

export function ctxOf(honest: Float32Array[], extra: Partial<AttackContext> = {}): AttackContext {
  return { honest, n: honest.length + 1, f: 1, rng: new Rng(1), round: 0, ...extra };
}

/**
 * Element-wise |a − b| ≤ rtol·|b| + atol, with atol = 1e-6·max|b| (float32 tolerance for values near 0).
 */
export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, rtol = 1e-5): void {
  expect(actual.length, 'length').to.equal(expected.length);
  let scale = 0;
  for (let k = 0; k < expected.length; k++) scale = Math.max(scale, Math.abs(expected[k]));
  const atol = 1e-6 * scale;
  for (let k = 0; k < expected.length; k++) {
    const a = actual[k];
    const b = expected[k];
    if (!(Math.abs(a - b) <= rtol * Math.abs(b) + atol)) {
      expect.fail(`coordinate ${k}: got ${a}, expected ${b} (rtol ${rtol})`);
    }
  }
}

export function snapshot(vectors: Float32Array[]): Float32Array[] {
  return vectors.map((v) => v.slice());
}

export function expectUnchanged(vectors: Float32Array[], before: Float32Array[]): void {
  vectors.forEach((v, i) => expect(Array.from(v)).to.deep.equal(Array.from(before[i])));
}

export interface SharedVectors {
  input: { X_rows_are_workers: number[][]; n: number; d: number; f: number };
  byzfl_attacks_on_first5_rows: Record<string, number[]>;
}

export function loadSharedVectors(): SharedVectors {
  const url = new URL('../../fixtures/robust-aggregation-vectors.json', import.meta.url);
  return JSON.parse(readFileSync(url, 'utf8')) as SharedVectors;
}

// Minimal float64 reference implementations of ByzFL's TrMean, NNM and Clipping, used only to reproduce the
// ByzFL "optimal" attack test values (the real rules live in src/core/aggregation, owned elsewhere).

export function trmean(f: number) {
  return (vectors: Float32Array[]): Float32Array => {
    const n = vectors.length;
    const d = vectors[0].length;
    const out = new Float32Array(d);
    const col = new Float64Array(n);
    for (let k = 0; k < d; k++) {
      for (let i = 0; i < n; i++) col[i] = vectors[i][k];
      col.sort();
      let s = 0;
      for (let i = f; i < n - f; i++) s += col[i];
      out[k] = s / (n - 2 * f);
    }
    return out;
  };
}

export function nnm(f: number) {
  return (vectors: Float32Array[]): Float32Array[] => {
    const n = vectors.length;
    const d = vectors[0].length;
    return vectors.map((v) => {
      const dist = vectors.map((w, j) => {
        let s = 0;
        for (let k = 0; k < d; k++) s += (v[k] - w[k]) ** 2;
        return { j, s };
      });
      dist.sort((a, b) => a.s - b.s || a.j - b.j);
      const out = new Float32Array(d);
      for (let k = 0; k < d; k++) {
        let s = 0;
        for (let t = 0; t < n - f; t++) s += vectors[dist[t].j][k];
        out[k] = s / (n - f);
      }
      return out;
    });
  };
}

export function clipping(c: number) {
  return (vectors: Float32Array[]): Float32Array[] =>
    vectors.map((v) => {
      let s = 0;
      for (const x of v) s += x * x;
      const norm = Math.sqrt(s);
      const scale = norm > c ? c / norm : 1;
      return v.map((x) => x * scale);
    });
}
