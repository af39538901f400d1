/**
 * The WebAssembly SIMD kernels (kernels/simd.ts) and the comparator networks (kernels/networks.ts) against the scalar
 * reference code: every rule must give bit-identical updates and identical health counts with the kernels on and
 * off (ties, signed zeros, NaN/±Inf, d not a multiple of 4, several blocks), and the networks must select the
 * wanted ranks for every input.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { pairwiseGram } from '../../../src/core/aggregation/kernels/gram.ts';
import {
  applyNetwork,
  batcherSort,
  insertionNetwork,
  prune,
  selectionNetwork,
} from '../../../src/core/aggregation/kernels/networks.ts';
import { createPreAggregator, createRule } from '../../../src/core/aggregation/registry.ts';
import {
  computeGram,
  setSimdKernels,
  simdKernelsActive,
} from '../../../src/core/aggregation/kernels/registry.ts';
import {
  blockSize,
  runCoordinatewise,
  scaleVector,
  stagedNormSq,
} from '../../../src/core/aggregation/kernels/simd.ts';
import type { CoordSpec } from '../../../src/core/aggregation/kernels/types.ts';
import type { AggregationResult } from '../../../src/core/aggregation/types.ts';
import { Rng } from '../../../src/core/random.ts';
import { ids } from './helpers.ts';

/** Runs `fn` with the SIMD kernels off (the scalar reference code), restoring the previous setting. */
function scalar<T>(fn: () => T): T {
  const prev = setSimdKernels(false);
  try {
    return fn();
  } finally {
    setSimdKernels(prev);
  }
}

/** Bit patterns, so that −0 ≠ +0 and NaN = NaN. */
function bits(x: Float32Array): number[] {
  return Array.from(new Uint32Array(x.buffer, x.byteOffset, x.length));
}

function expectSameBits(actual: Float32Array, expected: Float32Array, label: string): void {
  const a = bits(actual);
  const b = bits(expected);
  for (let k = 0; k < b.length; k++) {
    if (a[k] !== b[k])
      expect.fail(`${label}: coordinate ${k} is ${actual[k]}, scalar code gives ${expected[k]}`);
  }
  expect(a.length).to.equal(b.length);
}

/** Same update bits, same trust/weight/included/reason; norm and cosine equal up to float64 summation order. */
function expectSameResult(simd: AggregationResult, ref: AggregationResult, label: string): void {
  expectSameBits(simd.update, ref.update, label);
  simd.workers.forEach((w, i) => {
    const r = ref.workers[i];
    expect(w.included, `${label} worker ${i} included`).to.equal(r.included);
    expect(w.reason, `${label} worker ${i} reason`).to.equal(r.reason);
    expect(w.trust, `${label} worker ${i} trust`).to.be.closeTo(r.trust, 1e-12);
    expect(w.weight, `${label} worker ${i} weight`).to.be.closeTo(r.weight, 1e-15);
    expect(w.norm, `${label} worker ${i} norm`).to.be.closeTo(r.norm, 1e-9 * Math.max(1, r.norm));
    if (Number.isFinite(r.cosine))
      expect(w.cosine, `${label} worker ${i} cosine`).to.be.closeTo(r.cosine, 1e-9);
  });
}

/** Column values: small integers (ties), signed zeros, or floats of very different magnitudes. */
const value = fc.oneof(
  fc.integer({ min: -3, max: 3 }),
  fc.constantFrom(0, -0, 0.5, -0.5),
  fc.float({ noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 }),
);

/** Values whose sums and products are exact in float64 (so every Gram kernel gives the same matrix). */
const exactValue = fc.oneof(fc.integer({ min: -3, max: 3 }), fc.constantFrom(0, -0, 0.5, -0.5, 0.25));

function matrixOf(v: fc.Arbitrary<number>, n: number, d: number): fc.Arbitrary<Float32Array[]> {
  return fc
    .array(v, { minLength: n * d, maxLength: n * d })
    .map((x) => Array.from({ length: n }, (_, i) => Float32Array.from(x.slice(i * d, (i + 1) * d))));
}

/** n in [nMin, 34], d in [1, 41], f valid for `maxF`, and the data. */
function cases(maxF: (n: number) => number, nMin = 1, values = value) {
  return fc
    .record({ n: fc.integer({ min: nMin, max: 34 }), d: fc.integer({ min: 1, max: 41 }), fr: fc.nat() })
    .chain(({ n, d, fr }) =>
      matrixOf(values, n, d).map((vectors) => ({ vectors, f: fr % (Math.max(0, maxF(n)) + 1) })),
    );
}

const twoF = (n: number) => Math.floor((n - 1) / 2);

describe('comparator networks', () => {
  it('Batcher sorts every 0/1 input (m ≤ 11) and random inputs (m ≤ 40)', () => {
    for (let m = 1; m <= 11; m++) {
      const net = batcherSort(m);
      for (let mask = 0; mask < 1 << m; mask++) {
        const v = Array.from({ length: m }, (_, i) => (mask >> i) & 1);
        expect(applyNetwork(net, v)).to.deep.equal([...v].sort((a, b) => a - b));
      }
    }
    const rng = new Rng(5);
    for (let m = 13; m <= 40; m++) {
      const v = Array.from({ length: m }, () => Math.floor(rng.next() * 7));
      expect(applyNetwork(batcherSort(m), v)).to.deep.equal([...v].sort((a, b) => a - b));
    }
  });

  it('selection networks put every wanted rank in place (0/1 principle, m ≤ 10)', () => {
    for (let m = 1; m <= 10; m++) {
      for (let r = 0; r < m; r++) {
        for (const ranks of [[r], [r, m - 1 - r], [0, r, m - 1]]) {
          const wanted = [...new Set(ranks)];
          const net = selectionNetwork(m, wanted);
          for (let mask = 0; mask < 1 << m; mask++) {
            const v = Array.from({ length: m }, (_, i) => (mask >> i) & 1);
            const out = applyNetwork(net, v);
            const sorted = [...v].sort((a, b) => a - b);
            for (const q of wanted) expect(out[q], `m=${m} ranks=${wanted}`).to.equal(sorted[q]);
          }
        }
      }
    }
  });

  it('selection networks on random inputs with ties (m ≤ 40, the ranks the kernels ask for)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }).chain((m) =>
          fc.record({
            v: fc.array(fc.integer({ min: 0, max: 5 }), { minLength: m, maxLength: m }),
            ranks: fc.uniqueArray(fc.integer({ min: 0, max: m - 1 }), { minLength: 1, maxLength: 6 }),
          }),
        ),
        ({ v, ranks }) => {
          const out = applyNetwork(selectionNetwork(v.length, ranks), v);
          const sorted = [...v].sort((a, b) => a - b);
          for (const q of ranks) expect(out[q]).to.equal(sorted[q]);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('partial insertion keeps the lo smallest and hi largest sorted; pruning keeps what they need', () => {
    const net = insertionNetwork(9, 3, 2);
    const v = [5, 1, 8, 3, 9, 0, 7, 2, 6];
    const out = applyNetwork(net, v);
    expect(out.slice(0, 3)).to.deep.equal([0, 1, 2]);
    expect(out.slice(7)).to.deep.equal([8, 9]);
    expect(prune(batcherSort(16), [0]).length).to.be.lessThan(batcherSort(16).length);
    expect(() => selectionNetwork(4, [4])).to.throw('rank 4');
  });
});

describe('SIMD kernels: coordinate-wise rules are bit-identical to the scalar code', () => {
  before(function () {
    if (!simdKernelsActive()) this.skip();
  });

  const rules: [string, Record<string, unknown>, (n: number) => number, number][] = [
    ['median', {}, twoF, 1],
    ['median', { compat: 'garfield' }, twoF, 1],
    ['trimmedMean', {}, twoF, 1],
    ['meamed', {}, twoF, 1],
    ['meamed', { compat: 'garfield' }, twoF, 1],
    ['phocas', {}, twoF, 1],
    ['bulyan', {}, (n) => Math.floor((n - 3) / 4), 3],
    ['mean', {}, twoF, 1],
  ];
  for (const [rule, options, maxF, nMin] of rules) {
    it(`${rule} ${JSON.stringify(options)}: ties, signed zeros, wide magnitudes, d mod 4 ≠ 0`, () => {
      fc.assert(
        fc.property(cases(maxF, nMin), ({ vectors, f }) => {
          const input = { vectors, workerIds: ids(vectors.length), f };
          const simd = createRule(rule, options).aggregate(input);
          const ref = scalar(() => createRule(rule, options).aggregate(input));
          expectSameResult(simd, ref, `${rule} n=${vectors.length} d=${vectors[0].length} f=${f}`);
        }),
        { numRuns: 50 },
      );
    });
  }

  it('several blocks, both the fast and the tie paths (identical attackers, n = 16 and 17)', () => {
    for (const n of [16, 17]) {
      const d = 2 * blockSize(n) + 7;
      const rng = new Rng(n);
      const f = 3;
      const mu = Float32Array.from({ length: d }, () => rng.next() * 2 - 1);
      // honest μ + noise, f identical −μ (the tied values cross every cut somewhere), a few exact duplicates
      const vectors = Array.from({ length: n }, (_, i) =>
        Float32Array.from({ length: d }, (_, k) =>
          i < n - f ? mu[k] + Math.round(rng.next() * 8) / 16 : -mu[k],
        ),
      );
      for (const [rule, options] of [
        ['median', {}],
        ['median', { compat: 'garfield' }],
        ['trimmedMean', {}],
        ['meamed', {}],
        ['phocas', {}],
        ['bulyan', {}],
      ] as const) {
        const input = { vectors, workerIds: ids(n), f };
        const simd = createRule(rule, options).aggregate(input);
        const ref = scalar(() => createRule(rule, options).aggregate(input));
        expectSameResult(simd, ref, `${rule} ${JSON.stringify(options)} n=${n}`);
      }
    }
  });

  it('NaN and ±Inf inputs (rules called directly): the affected blocks fall back to the scalar code', () => {
    const rng = new Rng(3);
    const vectors = Array.from({ length: 9 }, () => Float32Array.from({ length: 23 }, () => rng.next()));
    vectors[2][5] = Number.NaN;
    vectors[4][9] = Number.POSITIVE_INFINITY;
    vectors[6][9] = Number.POSITIVE_INFINITY;
    vectors[7][13] = Number.NEGATIVE_INFINITY;
    for (const rule of ['median', 'trimmedMean', 'meamed', 'phocas', 'mean']) {
      const input = { vectors, workerIds: ids(9), f: 2 };
      const simd = createRule(rule).aggregate(input);
      const ref = scalar(() => createRule(rule).aggregate(input));
      expectSameBits(simd.update, ref.update, rule);
      simd.workers.forEach((w, i) => expect(w.trust, `${rule} ${i}`).to.equal(ref.workers[i].trust));
    }
  });

  it('matches a sort-based reference on long columns with ties (counts included)', () => {
    const rng = new Rng(11);
    const n = 13;
    const d = 300;
    const f = 3;
    const vectors = Array.from({ length: n }, () =>
      Float32Array.from({ length: d }, () => Math.floor(rng.next() * 5)),
    );
    const counts = new Float64Array(n);
    const update = new Float32Array(d);
    const spec: CoordSpec = { kind: 'trimmed', t: f };
    const ran = runCoordinatewise(vectors, n, spec, update, counts, null, () => {
      throw new Error('no scalar fallback expected');
    });
    expect(ran).to.equal(true);
    const kept = new Float64Array(n);
    for (let k = 0; k < d; k++) {
      const col = vectors.map((v, i) => ({ v: v[k], i })).sort((a, b) => a.v - b.v || a.i - b.i);
      const mid = col.slice(f, n - f);
      for (const e of mid) kept[e.i]++;
      const sum = mid.reduce((s, e) => s + e.v, 0);
      expect(update[k], `coordinate ${k}`).to.equal(Math.fround(sum / (n - 2 * f)));
    }
    expect(Array.from(counts)).to.deep.equal(Array.from(kept));
  });
});

describe('SIMD kernels: linear rules, pre-aggregators and the Gram matrix', () => {
  before(function () {
    if (!simdKernelsActive()) this.skip();
  });

  // [rule, options, max f, min n, bit-exact on exact data, continuous in the data]
  const rules: [string, Record<string, unknown>, (n: number) => number, number, boolean, boolean][] = [
    ['multiKrum', {}, (n) => Math.floor((n - 3) / 2), 3, true, false],
    ['geometricMedian', {}, twoF, 1, true, true],
    ['geometricMedian', { compat: 'byzfl' }, twoF, 1, true, true],
    ['centeredClipping', { tau: 1, L: 3 }, twoF, 1, false, true],
    ['krum', {}, (n) => Math.floor((n - 3) / 2), 3, true, false],
    ['monna', {}, twoF, 1, true, false],
  ];
  for (const [rule, options, maxF, nMin, exact, continuous] of rules) {
    // exact data: the Gram matrix, whose float64 summation order differs between the kernels, is then exact
    // too, so the whole result must be (not for centered clipping, whose later iterations sum inexact values)
    if (exact)
      it(`${rule} ${JSON.stringify(options)}: same update bits as the scalar loops`, () => {
        fc.assert(
          fc.property(cases(maxF, nMin, exactValue), ({ vectors, f }) => {
            const input = { vectors, workerIds: ids(vectors.length), f };
            const simd = createRule(rule, options).aggregate(input);
            const ref = scalar(() => createRule(rule, options).aggregate(input));
            expectSameResult(simd, ref, rule);
          }),
          { numRuns: 40 },
        );
      });
    // (selections can flip on rounding-level near-ties of the distances: only for the continuous rules)
    if (!continuous) continue;
    it(`${rule} ${JSON.stringify(options)}: float data within float32 rounding of the scalar loops`, () => {
      fc.assert(
        fc.property(cases(maxF, nMin), ({ vectors, f }) => {
          const input = { vectors, workerIds: ids(vectors.length), f };
          const simd = createRule(rule, options).aggregate(input).update;
          const ref = scalar(() => createRule(rule, options).aggregate(input)).update;
          let scale = 0;
          for (const v of vectors) for (const e of v) scale = Math.max(scale, Math.abs(e));
          // (the geometric median may stop one Weiszfeld step (≤ 1e-7 of the distances) apart)
          for (let k = 0; k < ref.length; k++) expect(simd[k]).to.be.closeTo(ref[k], 1e-5 * scale);
        }),
        { numRuns: 25 },
      );
    });
  }

  it('centered clipping keeps its state identically over rounds', () => {
    const a = createRule('centeredClipping', { tau: 2, L: 2 });
    const b = createRule('centeredClipping', { tau: 2, L: 2 });
    const rng = new Rng(9);
    for (let round = 0; round < 4; round++) {
      const vectors = Array.from({ length: 7 }, () =>
        Float32Array.from({ length: 1031 }, () => rng.next() * 4 - 2),
      );
      const input = { vectors, workerIds: ids(7), f: 0 };
      const ra = a.aggregate(input);
      const rb = scalar(() => b.aggregate(input));
      // the distances are sums in another order: the clipping factors may differ in the last float64 bits
      for (let k = 0; k < 1031; k++) expect(ra.update[k]).to.be.closeTo(rb.update[k], 1e-6);
      ra.workers.forEach((w, i) => {
        expect(w.trust).to.be.closeTo(rb.workers[i].trust, 1e-12);
        expect(w.weight).to.be.closeTo(rb.workers[i].weight, 1e-12);
        expect(w.cosine).to.be.closeTo(rb.workers[i].cosine, 1e-9);
      });
      const da = ra.diagnostics as { previousWeight: number };
      const db = rb.diagnostics as { previousWeight: number };
      expect(da.previousWeight).to.be.closeTo(db.previousWeight, 1e-12);
    }
  });

  for (const pre of ['nnm', 'bucketing', 'bucketing(s=3)']) {
    it(`${pre}: same output bits and mixing as the scalar loops`, () => {
      fc.assert(
        fc.property(cases(twoF, 1, exactValue), ({ vectors, f }) => {
          const a = createPreAggregator(pre).applyTracked!(vectors, f);
          const b = scalar(() => createPreAggregator(pre).applyTracked!(vectors, f));
          expect(a.vectors.length).to.equal(b.vectors.length);
          a.vectors.forEach((v, i) => expectSameBits(v, b.vectors[i], `${pre} output ${i}`));
          expect(Array.from(a.mixing)).to.deep.equal(Array.from(b.mixing));
        }),
        { numRuns: 40 },
      );
    });
  }

  it('clip and ARC: norms equal up to summation order, scaled copies x·(c/‖x‖) exact', () => {
    const rng = new Rng(4);
    for (const d of [1, 3, 8, 13, 1000]) {
      const x = Float32Array.from({ length: d }, () => rng.next() * 10 - 5);
      const sq = stagedNormSq(x);
      const exact = x.reduce((s, v) => s + v * v, 0);
      expect(sq).to.be.closeTo(exact, 1e-12 * exact);
      const y = new Float32Array(d);
      expect(scaleVector(x, 0.37, y, true)).to.equal(true);
      for (let k = 0; k < d; k++) expect(y[k]).to.equal(Math.fround(x[k] * 0.37));
      const z = new Float32Array(d);
      scaleVector(x, 1.5, z);
      for (let k = 0; k < d; k++) expect(z[k]).to.equal(Math.fround(x[k] * 1.5));
    }
    const vectors = Array.from({ length: 6 }, (_, i) =>
      Float32Array.from({ length: 37 }, () => (rng.next() - 0.5) * (i + 1)),
    );
    for (const pre of ['clip(c=1)', 'arc']) {
      const a = createPreAggregator(pre).applyTracked!(vectors, 1);
      const b = scalar(() => createPreAggregator(pre).applyTracked!(vectors, 1));
      a.vectors.forEach((v, i) => {
        for (let k = 0; k < v.length; k++)
          expect(v[k]).to.be.closeTo(b.vectors[i][k], 1e-6 * Math.abs(b.vectors[i][k]));
      });
    }
  });

  it('Gram matrix: equals pairwise dot products up to summation order, exactly symmetric, ties exact', () => {
    fc.assert(
      fc.property(
        cases(() => 0),
        ({ vectors }) => {
          const n = vectors.length;
          const all = [...vectors, vectors[0]]; // a duplicate: its row must equal row 0 exactly
          const g = computeGram(all);
          const r = pairwiseGram(all);
          const m = n + 1;
          for (let i = 0; i < m; i++) {
            for (let j = 0; j < m; j++) {
              expect(g[i * m + j]).to.equal(g[j * m + i]);
              const scale = Math.sqrt(r[i * m + i] * r[j * m + j]);
              expect(g[i * m + j]).to.be.closeTo(r[i * m + j], 1e-12 * scale + 1e-300);
            }
            expect(g[n * m + i]).to.equal(g[i]);
          }
        },
      ),
      { numRuns: 30 },
    );
  });
});
