/**
 * Bucketing (Karimireddy, He & Jaggi, ICLR 2022; ByzFL Bucketing): permute the n vectors at random, then average
 * consecutive buckets of size s; the last bucket may be partial, so there are ⌈n/s⌉ outputs:
 *   y_b = (1/|B_b|)·Σ_{i ∈ B_b} x_{π(i)}.
 * Deterministic: round r uses the permutation of Rng(deriveSeed(seed, r)) (Fisher–Yates), r counting calls from
 * 0 (saveState/loadState keep r). Options: s (integer ≥ 1, default 2), seed (integer, default 0).
 * Outputs are written into buffers owned by this instance (valid until its next call).
 *
 * Precondition: n ≥ 1. Mixing matrix: M_bj = 1/|B_b| for j ∈ B_b.
 */
import { deriveSeed, Rng } from '../../random.ts';
import { combineRows } from '../kernels/registry.ts';
import type { PreAggregation, PreAggregator, PreAggregatorFactory } from '../types.ts';
import { checkPreInput, readNumber, Workspace } from '../util.ts';

export const createBucketing: PreAggregatorFactory = (options) => {
  const s = readNumber('bucketing', options, 's', 2, { integer: true, min: 1 });
  const seed = readNumber('bucketing', options, 'seed', 0, { integer: true });
  const ws = new Workspace();
  let round = 0;
  const applyTracked = (vectors: Float32Array[], f: number): PreAggregation => {
    const d = checkPreInput('bucketing', vectors, f);
    const n = vectors.length;
    const perm = Int32Array.from({ length: n }, (_, i) => i);
    new Rng(deriveSeed(seed, round)).shuffle(perm);
    round++;
    const buckets = Math.ceil(n / s);
    const mixing = new Float64Array(buckets * n);
    const out: Float32Array[] = [];
    // bucket b = perm[b·s .. min(n, (b + 1)·s)), averaged in float64 in permutation order
    const full: number[][] = [];
    const partial: number[][] = [];
    for (let b = 0; b < buckets; b++) {
      const lo = b * s;
      const hi = Math.min(n, lo + s);
      const inv = 1 / (hi - lo);
      const terms = Array.from(perm.subarray(lo, hi));
      for (const j of terms) mixing[b * n + j] = inv;
      (hi - lo === s ? full : partial).push(terms);
      out.push(ws.f32(`out${b}`, d));
    }
    // the full buckets, then the partial one (a combination kernel call needs equal term counts)
    const combine = (group: number[][], first: number) => {
      if (group.length === 0) return;
      combineRows(
        vectors,
        group,
        group.map(() => null),
        group.map((t) => 1 / t.length),
        out.slice(first, first + group.length),
        ws,
      );
    };
    combine(full, 0);
    combine(partial, full.length);
    return { vectors: out, mixing };
  };
  const pre: PreAggregator = {
    name: 'bucketing',
    apply: (vectors, f) => applyTracked(vectors, f).vectors,
    applyTracked,
    saveState: () => ({ round }),
    loadState: (state) => {
      const r = state.round;
      if (typeof r !== 'number' || !Number.isInteger(r) || r < 0) {
        throw new Error('bucketing: loadState expects { round: non-negative integer }');
      }
      round = r;
    },
  };
  return pre;
};
