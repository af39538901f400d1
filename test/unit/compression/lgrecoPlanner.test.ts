import assert from 'node:assert/strict';
import {
  checkPlan,
  expectedLayerBytes,
  layerByteBounds,
  type LayerSetting,
} from '../../../src/core/compression/compressionPlan.ts';
import { CodecWorkspace } from '../../../src/core/compression/codecWorkspace.ts';
import { medianErrorTable } from '../../../src/core/compression/errorTableMedian.ts';
import {
  feedbackErrors,
  measureErrorTable,
  measureLayerErrors,
} from '../../../src/core/compression/layerErrors.ts';
import { LayerMemory } from '../../../src/core/compression/errorFeedback.ts';
import { encodeLayer, validateAndDecodeLayer } from '../../../src/core/compression/layerCodec.ts';
import { orthonormalizeColumns } from '../../../src/core/compression/powerSgd.ts';
import {
  chooseSettings,
  layerCandidates,
  planCandidates,
  planFromChoice,
  rankGrid,
  replanDue,
  sizeTable,
  solveErrorBudget,
  splitTable,
  type CandidateSpec,
} from '../../../src/core/compression/lgrecoPlanner.ts';
import { buildLayout } from '../../../src/core/layout/parameterLayout.ts';
import { Rng } from '../../../src/core/random.ts';
import { encodeOnce, gaussian, lowRank, sqDist, sqNorm } from './codecFixtures.ts';

/** Cheapest assignment with Σ errors ≤ budget, by enumeration. */
function bruteForce(sizes: Float64Array[], errors: Float64Array[], budget: number): number {
  let best = Infinity;
  const rec = (l: number, s: number, e: number) => {
    if (e > budget) return;
    if (l === sizes.length) {
      best = Math.min(best, s);
      return;
    }
    for (let j = 0; j < sizes[l].length; j++) rec(l + 1, s + sizes[l][j], e + errors[l][j]);
  };
  rec(0, 0, 0);
  return best;
}

function randomInstance(rng: Rng, L: number, C: number, scale: (x: number) => number) {
  const sizes = Array.from({ length: L }, () => Float64Array.from({ length: C }, () => 1 + rng.int(1000)));
  const errors = Array.from({ length: L }, () => Float64Array.from({ length: C }, () => scale(rng.next())));
  return { sizes, errors };
}

describe('L-GreCo: the dynamic program', () => {
  it('is optimal against brute force when the errors are whole buckets', () => {
    const rng = new Rng(1);
    for (let t = 0; t < 150; t++) {
      const L = 1 + rng.int(5);
      const C = 1 + rng.int(4);
      const B = 20 + rng.int(200);
      const { sizes, errors } = randomInstance(rng, L, C, (u) => Math.floor(u * (B / 2)));
      const got = solveErrorBudget(sizes, errors, B, B);
      const best = bruteForce(sizes, errors, B);
      if (best === Infinity) assert.equal(got, null, `instance ${t}`);
      else {
        assert.ok(got !== null, `instance ${t}: infeasible`);
        assert.equal(got.bytes, best, `instance ${t}`);
        assert.ok(got.error <= B);
        const recomputed = got.choice.reduce((s, j, l) => s + sizes[l][j], 0);
        assert.equal(recomputed, got.bytes);
      }
    }
  });

  it('respects a real-valued budget and is within one bucket per layer of the optimum', () => {
    const rng = new Rng(2);
    for (let t = 0; t < 150; t++) {
      const L = 1 + rng.int(5);
      const C = 2 + rng.int(3);
      const { sizes, errors } = randomInstance(rng, L, C, (u) => u * u * 3.7);
      const budget = 1 + rng.next() * 5;
      const B = 500;
      const got = solveErrorBudget(sizes, errors, budget, B);
      if (got !== null) assert.ok(got.error <= budget, `instance ${t}: ${got.error} > ${budget}`);
      // any plan with Σ E ≤ budget − L·width survives the rounding up, so the DP is at least as good
      const tighter = bruteForce(sizes, errors, budget - (L * budget) / B);
      if (tighter < Infinity) assert.ok(got !== null && got.bytes <= tighter, `instance ${t}`);
    }
  });

  it('never sends more than the baseline (candidate 0) for α ≥ 1 and stays within the budget', () => {
    const rng = new Rng(3);
    for (let t = 0; t < 100; t++) {
      const { sizes, errors } = randomInstance(rng, 1 + rng.int(6), 1 + rng.int(5), (u) => u * 10);
      const alpha = 1 + rng.next();
      const d = chooseSettings(sizes, errors, alpha);
      assert.ok(d.bytes <= d.baselineBytes);
      assert.ok(d.error <= d.budget + 1e-12);
      assert.ok(d.budgetUsed <= 1 + 1e-12);
    }
  });

  it('spends the budget where it buys the most bytes', () => {
    // layer 0 compresses well (error barely grows as bytes drop), layer 1 does not
    const sizes = [Float64Array.from([100, 50, 25]), Float64Array.from([100, 50, 25])];
    const errors = [Float64Array.from([1, 1.1, 1.2]), Float64Array.from([1, 5, 20])];
    const d = chooseSettings(sizes, errors, 1.5);
    assert.deepEqual(d.choice, [2, 0]);
    assert.equal(d.bytes, 125);
  });

  it('handles an all-zero baseline error (only exact candidates fit)', () => {
    const d = chooseSettings([Float64Array.from([10, 5, 1])], [Float64Array.from([0, 0, 3])], 1);
    assert.deepEqual(d.choice, [1]);
  });

  it('schedules re-plans after the warm-up and then every window', () => {
    const due = Array.from({ length: 12 }, (_, r) => replanDue(r, 3, 4));
    assert.deepEqual(
      due.map((x, r) => (x ? r : -1)).filter((r) => r >= 0),
      [3, 7, 11],
    );
  });
});

const layout = buildLayout([
  { name: 'conv1.weight', shape: [5, 5, 1, 20] },
  { name: 'conv1.bias', shape: [20] },
  { name: 'conv2.weight', shape: [5, 5, 20, 50] },
  { name: 'fc1.weight', shape: [200, 100] },
  { name: 'fc2.weight', shape: [100, 10] },
]);
const spec: CandidateSpec = {
  compressors: ['powersgd', 'topk', 'qsgd'],
  baseline: { kind: 'powersgd', rank: 4, values: 'bf16' },
};

/** A gradient whose layers differ in how low-rank they are. */
function heterogeneousGradient(seed: number): Float32Array {
  const g = new Float32Array(layout.totalSize);
  const parts = [
    lowRank(25, 20, 2, seed),
    gaussian(20, seed + 1),
    lowRank(500, 50, 3, seed + 2),
    gaussian(200 * 100, seed + 3, 0.05),
    lowRank(100, 10, 8, seed + 4),
  ];
  layout.layers.forEach((slot, l) => g.set(parts[l], slot.offset));
  for (let i = 0; i < g.length; i++) g[i] += 0.01 * Math.sin(i); // no layer is exactly low-rank
  return g;
}

describe('L-GreCo: candidates, errors and the plan', () => {
  it('grids ranks 1…2r₀, 4r₀, 8r₀ and densities ×1/16…×4 around the baseline, baseline first', () => {
    const cs = planCandidates(spec, layout);
    assert.deepEqual(cs[0][0], { kind: 'powersgd', rank: 4, values: 'bf16' });
    const ranks = cs[3].filter((c) => c.kind === 'powersgd').map((c) => (c as { rank: number }).rank);
    assert.deepEqual(ranks, [4, 1, 2, 3, 5, 6, 7, 8, 16, 32]); // the baseline first
    assert.deepEqual(rankGrid(32), [8, 9, ...Array.from({ length: 54 }, (_, i) => 10 + i), 64, 128, 256]);
    // a vector: its dense baseline first, then qsgd and topk settings around one byte per element
    assert.deepEqual(cs[1][0], { kind: 'fp32' });
    assert.ok(cs[1].every((c) => c.kind !== 'powersgd'));
    assert.deepEqual(
      cs[1].filter((c) => c.kind === 'qsgd').map((c) => (c as { bits: number }).bits),
      [2, 3, 4, 5, 6, 7, 8],
    );
    assert.deepEqual(
      cs[1].filter((c) => c.kind === 'topk').map((c) => (c as { k: number }).k),
      [1, 2, 3, 5, 7, 9, 13, 19, 20],
    );
    assert.ok(cs[3].some((c) => c.kind === 'topk') && cs[3].some((c) => c.kind === 'qsgd'));
    const qsgdBits = cs[3].filter((c) => c.kind === 'qsgd').map((c) => (c as { bits: number }).bits);
    assert.deepEqual(qsgdBits, [2, 3, 4, 5, 6, 7, 8]);
    // every candidate is valid and smaller than fp32
    cs.forEach((layer, l) => {
      for (const c of layer) {
        checkPlan({ planId: 'x', layers: cs.map((other, i) => (i === l ? c : other[0])) }, layout);
        if (c.kind !== 'fp32')
          assert.ok(expectedLayerBytes(c, layout.layers[l].shape) < 4 * layout.layers[l].size);
      }
    });
    const topk = layerCandidates(
      { ...spec, baseline: { kind: 'topk', density: 0.01, values: 'bf16' } },
      layout.layers[3],
    );
    assert.deepEqual(
      topk.filter((c) => c.kind === 'topk').map((c) => (c as { k: number }).k),
      [200, 13, 18, 25, 35, 50, 71, 100, 141, 283, 400, 566, 800],
    );
  });

  it('measures each candidate error as the codec makes it (exact, or its expectation)', () => {
    const shape = [40, 30];
    const p = lowRank(40, 30, 5, 9);
    for (let i = 0; i < p.length; i++) p[i] += 0.05 * Math.cos(i * 1.7);
    const candidates: LayerSetting[] = [
      { kind: 'fp32' },
      { kind: 'bf16' },
      { kind: 'topk', k: 100, values: 'fp32' },
      { kind: 'topk', k: 100, values: 'bf16' },
      { kind: 'powersgd', rank: 5, values: 'fp32' },
      { kind: 'qsgd', bits: 3, bucket: 64 },
      { kind: 'randk', k: 300, values: 'fp32' },
    ];
    const e = measureLayerErrors(p, shape, candidates, { iterations: 8, seed: 1 });
    const actual = (s: LayerSetting, seed = 0) => {
      const dst = new Float32Array(p.length);
      validateAndDecodeLayer(
        s,
        shape,
        encodeOnce(s, shape, p, seed, seed).bytes,
        dst,
        seed,
        new CodecWorkspace(),
      );
      return sqDist(dst, p);
    };
    assert.equal(e[0], 0);
    for (const i of [1, 2, 3])
      assert.ok(Math.abs(e[i] - actual(candidates[i])) <= 1e-6 * e[i], `candidate ${i}`);
    assert.ok(e[4] < 1e-3 * e[2], 'rank-5 estimate of a rank-5 + small-noise matrix');
    for (const i of [5, 6]) {
      let mean = 0;
      for (let s = 0; s < 400; s++) mean += actual(candidates[i], s) / 400;
      assert.ok(Math.abs(mean - e[i]) < 0.1 * e[i], `candidate ${i}: measured ${mean}, expected ${e[i]}`);
    }
  });

  it('prices PowerSGD with integer factor codes as the codec makes them, per rank prefix', () => {
    // M = Σ σ_k u_k v_kᵀ with distinct σ: the estimate's subspace and a converged warm start agree column by
    // column (up to sign, to which symmetric codes are blind) up to the codes' own perturbation of the warm
    // start, so the part of the error the codes add must match the codec's
    const rows = 36;
    const cols = 24;
    const shape = [rows, cols];
    const u = new Float64Array(rows * 4);
    const v = new Float64Array(cols * 4);
    for (let i = 0; i < u.length; i++) u[i] = Math.sin(1.3 * i + 0.2) + 0.3 * Math.cos(0.7 * i);
    for (let i = 0; i < v.length; i++) v[i] = Math.cos(0.9 * i + 0.5) - 0.2 * Math.sin(2.1 * i);
    orthonormalizeColumns(u, rows, 4);
    orthonormalizeColumns(v, cols, 4);
    const sigma = [8, 4, 2, 1];
    const m = new Float32Array(rows * cols);
    for (let i = 0; i < rows; i++)
      for (let j = 0; j < cols; j++)
        for (let k = 0; k < 4; k++) m[i * cols + j] += sigma[k] * u[i * 4 + k] * v[j * 4 + k];
    const candidates: LayerSetting[] = [];
    for (const values of ['fp32', 'int8', 'int4'] as const)
      for (const rank of [1, 2, 4]) candidates.push({ kind: 'powersgd', rank, values });
    const e = measureLayerErrors(m, shape, candidates, { iterations: 60, seed: 2 });
    candidates.forEach((c, i) => {
      if (c.kind !== 'powersgd') return;
      // the codec after its warm start has converged (memory cleared: the same M every round)
      const memory = new LayerMemory(m.length);
      const ws = new CodecWorkspace();
      const out = new Uint8Array(layerByteBounds(c, shape).max);
      let n = 0;
      for (let t = 0; t < 60; t++) {
        memory.error.fill(0);
        n = encodeLayer(c, shape, m, memory, out, { sharedSeed: 5, privateSeed: 0 }, ws);
      }
      const dst = new Float32Array(m.length);
      validateAndDecodeLayer(c, shape, out.subarray(0, n), dst, 5, ws);
      const actual = sqDist(dst, m);
      const tail = sigma.slice(c.rank).reduce((a, x) => a + x * x, 0);
      if (c.values === 'fp32') assert.ok(Math.abs(e[i] - tail) < 1e-6 * sqNorm(m), `fp32 rank ${c.rank}`);
      else {
        assert.ok(e[i] > tail, `${c.values} rank ${c.rank} costs more than its rank tail`);
        assert.ok(
          Math.abs(e[i] - actual) <= 0.1 * (e[i] - tail),
          `${c.values} rank ${c.rank}: estimated ${e[i]}, the codec ${actual}, rank tail ${tail}`,
        );
      }
    });
    // fewer bits never cost less at the same rank
    for (let r = 0; r < 3; r++) assert.ok(e[6 + r] > e[3 + r]);
  });

  it('L-GreCo at α = 1 sends fewer bytes than the uniform baseline within its error', () => {
    const cs = planCandidates(spec, layout);
    const table = measureErrorTable(heterogeneousGradient(5), layout, cs, { seed: 3 });
    const d = chooseSettings(sizeTable(cs, layout), splitTable(table, cs), 1);
    assert.equal(d.keptBaseline, false);
    assert.ok(d.bytes < d.baselineBytes, `${d.bytes} vs ${d.baselineBytes}`);
    assert.ok(d.error <= d.budget);
    checkPlan(planFromChoice('p2', cs, d.choice), layout);
  });
});

describe('L-GreCo: robust statistics', () => {
  const cs = planCandidates(spec, layout);
  const sizes = sizeTable(cs, layout);
  const honest = measureErrorTable(heterogeneousGradient(7), layout, cs, { seed: 1 });
  const planOf = (table: Float64Array) => chooseSettings(sizes, splitTable(table, cs), 1).choice;
  const honestPlan = planOf(honest);

  /** Liar: the baseline looks terrible (a huge budget), everything else perfect. */
  function lie(kind: 'inflate' | 'nan' | 'negative'): Float64Array {
    const t = new Float64Array(honest.length);
    let at = 0;
    for (const c of cs) {
      for (let j = 0; j < c.length; j++) {
        t[at + j] = kind === 'nan' ? NaN : kind === 'negative' ? -1e30 : j === 0 ? 1e12 : 0;
      }
      at += c.length;
    }
    return t;
  }
  const mean = (tables: Float64Array[]) => {
    const out = new Float64Array(honest.length);
    for (const t of tables) for (let i = 0; i < out.length; i++) out[i] += t[i] / tables.length;
    return out;
  };

  it('one lying worker moves the plan through a mean of the tables', () => {
    const tables = [honest, honest, honest, honest, lie('inflate')];
    assert.notDeepEqual(planOf(mean(tables)), honestPlan);
  });

  it('one lying worker — or any f < n/2 — cannot move the plan through the median', () => {
    for (const [n, f] of [
      [5, 1],
      [5, 2],
      [12, 2],
      [12, 5],
      [4, 1],
    ]) {
      for (const kind of ['inflate', 'nan', 'negative'] as const) {
        const tables = [...new Array(n - f).fill(honest), ...new Array(f).fill(lie(kind))];
        assert.deepEqual(
          planOf(medianErrorTable(tables, honest.length)),
          honestPlan,
          `n ${n}, f ${f}, ${kind}`,
        );
      }
    }
  });

  it('keeps every median entry within the honest range when honest tables differ', () => {
    const rng = new Rng(4);
    for (let t = 0; t < 50; t++) {
      const n = 3 + rng.int(10);
      const f = Math.floor((n - 1) / 2);
      const honestTables = Array.from({ length: n - f }, () =>
        Float64Array.from({ length: 20 }, () => rng.next()),
      );
      const liars = Array.from({ length: f }, () =>
        Float64Array.from({ length: 20 }, () => (rng.next() - 0.5) * 1e9),
      );
      const med = medianErrorTable([...liars, ...honestTables], 20);
      for (let i = 0; i < 20; i++) {
        const column = honestTables.map((h) => h[i]);
        assert.ok(med[i] >= Math.min(...column) && med[i] <= Math.max(...column), `trial ${t}, entry ${i}`);
      }
    }
  });

  it('ignores tables of the wrong length', () => {
    const med = medianErrorTable([honest, honest, new Float64Array(3)], honest.length);
    assert.deepEqual(med, honest);
  });
});

describe('L-GreCo: the feedback error model', () => {
  it('prices a setting by the memory error feedback settles at: N·ρ/(1 − √ρ)², ∞ when ρ ≥ 1', () => {
    const m = feedbackErrors(Float64Array.of(0, 1, 4, 5, NaN, -1), 4);
    assert.deepEqual([...m.slice(0, 4)], [0, 4, Infinity, Infinity]); // ρ = 0, ¼ (√ρ = ½ → 4·¼/¼), 1, 1.25
    assert.ok(Number.isNaN(m[4]), 'NaN stays unusable');
    assert.equal(m[5], 0, 'a negative error counts as 0');
    // small δ = 1 − ρ: the EF-SGD bound 4(1 − δ)/δ²·N, within 1 %
    const delta = 0.01;
    const near = feedbackErrors(Float64Array.of((1 - delta) * 3), 3)[0];
    const bound = ((4 * (1 - delta)) / (delta * delta)) * 3;
    assert.ok(Math.abs(near / bound - 1) < 0.01, `${near} vs ${bound}`);
    // the fixed point: ‖e‖ = √ρ(‖g‖ + ‖e‖) at ‖g‖² = N
    const N = 2.5;
    const rho = 0.36;
    const e = Math.sqrt(feedbackErrors(Float64Array.of(rho * N), N)[0]);
    assert.ok(Math.abs(e - Math.sqrt(rho) * (Math.sqrt(N) + e)) < 1e-12);
    // a zero layer: nothing to compress
    assert.deepEqual([...feedbackErrors(Float64Array.of(0, 0), 0)], [0, 0]);
  });

  it('is increasing in the one-round error and convex, so halving a large layer costs more than it did', () => {
    const steps = Float64Array.from({ length: 50 }, (_, i) => (i / 50) * 0.99);
    const m = feedbackErrors(steps, 1);
    for (let i = 1; i < m.length; i++) assert.ok(m[i] > m[i - 1]);
    for (let i = 2; i < m.length; i++) assert.ok(m[i] - m[i - 1] > m[i - 1] - m[i - 2]);
  });

  it('measureErrorTable under the feedback model: each layer priced with its own ‖x‖²', () => {
    const layout = buildLayout([
      { name: 'a.weight', shape: [30, 20] },
      { name: 'a.bias', shape: [20] },
      { name: 'b.weight', shape: [20, 8] },
    ]);
    const x = gaussian(layout.totalSize, 9);
    const cs = planCandidates(
      { compressors: ['powersgd', 'topk', 'qsgd'], baseline: { kind: 'powersgd', rank: 2, values: 'bf16' } },
      layout,
    );
    const step = measureErrorTable(x, layout, cs, { seed: 4 });
    const feedback = measureErrorTable(x, layout, cs, { seed: 4, model: 'feedback' });
    let at = 0;
    layout.layers.forEach((slot, l) => {
      let n = 0;
      for (let i = slot.offset; i < slot.offset + slot.size; i++) n += x[i] * x[i];
      const want = feedbackErrors(step.subarray(at, at + cs[l].length), n);
      assert.deepEqual([...feedback.subarray(at, at + cs[l].length)], [...want], slot.name);
      at += cs[l].length;
    });
  });
});
