/**
 * Flag Aggregator: reference-mode reproduction of the FA entries of test/fixtures/robust-aggregation-vectors.json,
 * Gram form vs a direct d×q computation, the symmetric eigensolver, sign awareness, r = 'auto', warm start,
 * preconditions and option validation, and fast-check properties (permutation invariance, bounded output,
 * determinism).
 */
import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import fc from 'fast-check';
import {
  byzantineRank,
  chooseRank,
  clippedMeanScores,
  createFlagAggregator,
  longestNormBeyond,
  signThresholdFor,
} from '../../../src/core/aggregation/flag/aggregator.ts';
import { blockedGram } from '../../../src/core/aggregation/kernels/gram.ts';
import { linearCombination } from '../../../src/core/aggregation/kernels/linear.ts';
import { computeGram, simdKernelsActive } from '../../../src/core/aggregation/kernels/registry.ts';
import { runGram } from '../../../src/core/aggregation/kernels/simd.ts';
import { cholesky, symmetricEigen } from '../../../src/core/aggregation/flag/symmetricEigen.ts';
import { PreconditionError } from '../../../src/core/aggregation/types.ts';
import type { AggregationResult } from '../../../src/core/aggregation/types.ts';
import { Rng } from '../../../src/core/random.ts';
import { noisyCollusionRound } from './helpers.ts';

interface FaEntry {
  output: number[];
  'Y0_used_by_reference(d x r)': number[][];
  gram_form_same_Y0: number[];
  'gram_form_uniform_weights(Y0 ignored)': number[];
  reconstruction_ratios: number[];
  coef_on_normalized_gradients: number[];
}

interface Shared {
  input: { X_rows_are_workers: number[][]; n: number; d: number; f: number };
  flagaggregator_repo: Record<string, unknown>;
}

function loadShared(): Shared {
  const url = new URL('../../fixtures/robust-aggregation-vectors.json', import.meta.url);
  return JSON.parse(readFileSync(url, 'utf8')) as Shared;
}

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).to.equal(b.length);
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-300));
}

function norm(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * a[i];
  return Math.sqrt(s);
}

function ids(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `w${i}`);
}

function run(options: Record<string, unknown>, vectors: Float32Array[], f = 0): AggregationResult {
  return createFlagAggregator(options).aggregate({ vectors, workerIds: ids(vectors.length), f });
}

function diag(res: AggregationResult): Record<string, unknown> {
  return res.diagnostics as Record<string, unknown>;
}

/** Honest = μ + σ·noise (unit-variance coordinates), returned as float32. */
function honestSet(
  rng: Rng,
  n: number,
  d: number,
  sigma: number,
): { mu: Float64Array; vectors: Float32Array[] } {
  const mu = new Float64Array(d);
  for (let k = 0; k < d; k++) mu[k] = rng.normal();
  const vectors: Float32Array[] = [];
  for (let i = 0; i < n; i++) {
    const v = new Float32Array(d);
    for (let k = 0; k < d; k++) v[k] = mu[k] + sigma * rng.normal();
    vectors.push(v);
  }
  return { mu, vectors };
}

function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s / (norm(a) * norm(b));
}

/** ‖Yᵀx‖² for Y given as d rows of r columns. */
function projectedNorm2(Y: number[][], x: Float64Array): number {
  let q = 0;
  for (let k = 0; k < Y[0].length; k++) {
    let s = 0;
    for (let i = 0; i < x.length; i++) s += Y[i][k] * x[i];
    q += s * s;
  }
  return q;
}

// ---------------------------------------------------------------------------------------------------------------
// Direct (d-space) implementation of the reference, used to check the Gram form: builds the weighted d×q matrix X
// explicitly and takes the top-r eigenvectors of X Xᵀ (d×d).
function directReference(
  vectors: Float32Array[],
  y0: number[][],
  r: number,
  lambda: number,
  eps = 1e-7,
): { out: Float64Array; ratios: Float64Array } {
  const p = vectors.length;
  const d = vectors[0].length;
  const G = vectors.map((v) => {
    const nv = Math.max(norm(v), 1e-12);
    return Float64Array.from(v, (x) => x / nv);
  });
  const J = (Y: number[][]): number =>
    G.reduce((acc, g) => acc + Math.sqrt(Math.max(0, 1 - projectedNorm2(Y, g))), 0);
  const cols: Float64Array[] = [];
  for (const g of G) {
    const w = (Math.abs(1 - projectedNorm2(y0, g)) + eps) ** -0.25;
    cols.push(g.map((x) => w * x));
  }
  if (lambda > 0) {
    for (let i = 0; i < p; i++) {
      for (let j = 0; j < p; j++) {
        if (i === j) continue;
        const diff = G[i].map((x, k) => x - G[j][k]);
        const w = ((Math.abs(1 - projectedNorm2(y0, diff)) + eps) ** -0.25 * lambda) / (p * (p - 1));
        cols.push(diff.map((x) => w * x));
      }
    }
  }
  const XXt = new Float64Array(d * d);
  for (const c of cols) for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) XXt[a * d + b] += c[a] * c[b];
  const e = symmetricEigen(XXt, d);
  const Y1: number[][] = Array.from({ length: d }, (_, i) =>
    Array.from({ length: r }, (_, k) => e.vectors[i * d + k]),
  );
  const Y = J(Y1) < J(y0) ? Y1 : y0;
  const sum = new Float64Array(d);
  for (const g of G) for (let i = 0; i < d; i++) sum[i] += g[i];
  const out = new Float64Array(d);
  for (let k = 0; k < r; k++) {
    let s = 0;
    for (let i = 0; i < d; i++) s += Y[i][k] * sum[i];
    for (let i = 0; i < d; i++) out[i] += (Y[i][k] * s) / r;
  }
  const ratios = Float64Array.from(G, (g) => projectedNorm2(Y, g));
  return { out, ratios };
}

/** Random orthonormal d×r matrix (Gram–Schmidt), as rows. */
function randomOrthonormal(rng: Rng, d: number, r: number): number[][] {
  const cols: Float64Array[] = [];
  for (let k = 0; k < r; k++) {
    const v = Float64Array.from({ length: d }, () => rng.next() - 0.5);
    for (const c of cols) {
      let s = 0;
      for (let i = 0; i < d; i++) s += c[i] * v[i];
      for (let i = 0; i < d; i++) v[i] -= s * c[i];
    }
    const nv = norm(v);
    cols.push(v.map((x) => x / nv));
  }
  return Array.from({ length: d }, (_, i) => cols.map((c) => c[i]));
}

// ---------------------------------------------------------------------------------------------------------------

describe('flag: reference mode reproduces the FA code (shared vectors)', () => {
  const shared = loadShared();
  const vectors = shared.input.X_rows_are_workers.map((row) => Float32Array.from(row));
  const entries = Object.entries(shared.flagaggregator_repo).filter(([k]) => k.startsWith('FA_'));

  it('has the four FA entries', () => {
    expect(entries.map(([k]) => k).sort()).to.deep.equal([
      'FA_r1_lambda0.0',
      'FA_r1_lambda1.0',
      'FA_r2_lambda0.0',
      'FA_r2_lambda1.0',
    ]);
  });

  for (const [key, raw] of entries) {
    const e = raw as FaEntry;
    const [, rs, ls] = /^FA_r(\d+)_lambda([\d.]+)$/.exec(key) as RegExpExecArray;
    const r = Number(rs);
    const lambda = Number(ls);

    it(`${key}: output, reconstruction ratios and coefficients with the stored Y₀`, () => {
      const y0 = e['Y0_used_by_reference(d x r)'];
      const res = run({ mode: 'reference', r, lambda, y0 }, vectors, shared.input.f);
      expect(relErr(res.update, e.output)).to.be.below(1e-5);
      expect(relErr(res.update, e.gram_form_same_Y0)).to.be.below(1e-6);
      expect(
        relErr(
          Float64Array.from(res.workers, (w) => w.trust),
          e.reconstruction_ratios,
        ),
      ).to.be.below(1e-5);
      expect(
        relErr(
          Float64Array.from(res.workers, (w) => w.weight),
          e.coef_on_normalized_gradients,
        ),
      ).to.be.below(1e-5);
      expect(diag(res).acceptedStep).to.equal(true);
      expect(res.workers.every((w) => w.included)).to.equal(true);
    });

    it(`${key}: compat 'garfield' without Y₀ = uniform-weight closed form`, () => {
      const res = run({ compat: 'garfield', r, lambda }, vectors, shared.input.f);
      expect(relErr(res.update, e['gram_form_uniform_weights(Y0 ignored)'])).to.be.below(1e-6);
    });
  }

  it('keeps the start Y₀ when the IRLS step does not decrease the objective (as the reference does)', () => {
    // Inputs e₁, e₁, e₂ and Y₀ = e₁, the flag median: the step returns span(e₁) again, J(Y₁) = J(Y₀) = 1, and the
    // reference's strict test (J decreased) keeps Y₀. Output (1/r) Y₀ Y₀ᵀ Σ ĝᵢ = 2 e₁.
    const e1 = Float32Array.of(1, 0, 0);
    const e2 = Float32Array.of(0, 1, 0);
    const res = run({ mode: 'reference', r: 1, y0: [[1], [0], [0]] }, [e1, e1, e2]);
    expect(diag(res).acceptedStep).to.equal(false);
    expect(diag(res).objective).to.equal(1);
    expect(Array.from(res.update)).to.deep.equal([2, 0, 0]);
  });
});

describe('flag: Gram form vs direct d×q computation', () => {
  it('matches the explicit weighted-matrix SVD (random inputs, r ∈ {1,2,3}, λ ∈ {0, 0.5, 4})', () => {
    const rng = new Rng(11);
    for (let trial = 0; trial < 12; trial++) {
      const p = 3 + (trial % 5);
      const d = 9 + (trial % 4);
      const r = 1 + (trial % 3);
      const lambda = [0, 0.5, 4][trial % 3];
      const vectors = Array.from({ length: p }, () =>
        Float32Array.from({ length: d }, () => rng.normal() + 0.5),
      );
      const y0 = randomOrthonormal(rng, d, r);
      // The direct path sees the same float32-rounded Y₀ as the rule.
      const y0f = y0.map((row) => row.map((x) => Math.fround(x)));
      const direct = directReference(vectors, y0f, r, lambda);
      const res = run({ mode: 'reference', r, lambda, y0 }, vectors);
      expect(relErr(res.update, direct.out), `trial ${trial}`).to.be.below(1e-6);
      expect(
        relErr(
          Float64Array.from(res.workers, (w) => w.trust),
          direct.ratios,
        ),
      ).to.be.below(1e-6);
    }
  });

  it('phalanx mode with 0 iterations is the rank-r PCA of the normalised gradients', () => {
    const rng = new Rng(5);
    const p = 6;
    const d = 10;
    const vectors = Array.from({ length: p }, () =>
      Float32Array.from({ length: d }, () => rng.normal() + 0.3),
    );
    for (const r of [1, 2, 4]) {
      const res = run({ r, maxIterations: 0, signAware: false, rescale: 'none', step: 'subspace' }, vectors);
      const G = vectors.map((v) => Float64Array.from(v, (x) => x / norm(v)));
      const GGt = new Float64Array(d * d);
      for (const g of G)
        for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) GGt[a * d + b] += g[a] * g[b];
      const e = symmetricEigen(GGt, d);
      const sum = new Float64Array(d);
      for (const g of G) for (let i = 0; i < d; i++) sum[i] += g[i];
      const out = new Float64Array(d);
      for (let k = 0; k < r; k++) {
        let s = 0;
        for (let i = 0; i < d; i++) s += e.vectors[i * d + k] * sum[i];
        for (let i = 0; i < d; i++) out[i] += (e.vectors[i * d + k] * s) / r;
      }
      expect(relErr(res.update, out), `r = ${r}`).to.be.below(1e-6);
      const c = Float64Array.from(res.workers, (w) => w.weight);
      const recombined = new Float64Array(d);
      G.forEach((g, i) => g.forEach((x, k) => (recombined[k] += c[i] * x)));
      expect(relErr(recombined, out)).to.be.below(1e-6);
    }
  });

  it('IRLS decreases the flag-median objective monotonically and converges', () => {
    const rng = new Rng(3);
    const { vectors } = honestSet(rng, 9, 40, 1);
    for (let i = 0; i < 2; i++) vectors.push(Float32Array.from({ length: 40 }, () => 5 * rng.normal()));
    const res = run({ r: 2, signAware: false }, vectors);
    const history = diag(res).objectiveHistory as number[];
    expect(history.length).to.be.greaterThan(1);
    for (let i = 1; i < history.length; i++) expect(history[i]).to.be.at.most(history[i - 1]);
    expect(diag(res).converged).to.equal(true);
  });
});

describe('flag: kernels', () => {
  it('blockedGram equals float64 dot products (odd n, d not a multiple of the block)', () => {
    const rng = new Rng(2);
    for (const [n, d] of [
      [1, 5],
      [2, 3],
      [5, 4099],
      [8, 2048],
      [13, 4101],
      [3, 1],
    ]) {
      const vectors = Array.from({ length: n }, () => Float32Array.from({ length: d }, () => rng.normal()));
      const G = blockedGram(vectors);
      const W = new Float64Array(n * n);
      if (!runGram(vectors, W)) W.set(G);
      const M = computeGram(vectors);
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let k = 0; k < d; k++) s += vectors[i][k] * vectors[j][k];
          const tol = 1e-9 * Math.max(1, Math.abs(s));
          expect(G[i * n + j]).to.be.closeTo(s, tol);
          expect(W[i * n + j]).to.be.closeTo(s, tol);
          expect(M[i * n + j]).to.be.closeTo(s, tol);
        }
      }
    }
  });

  it('the WebAssembly SIMD kernel is available on Node 20 and propagates non-finite values', () => {
    expect(simdKernelsActive()).to.equal(true);
    const v = [
      Float32Array.of(1, 2, 3, 4, 5),
      Float32Array.of(1, Number.NaN, 0, 0, 0),
      Float32Array.of(0, 0, 0, 0, 1),
    ];
    const G = computeGram(v);
    expect(G[0]).to.equal(55);
    expect(Number.isNaN(G[4])).to.equal(true);
    expect(G[8]).to.equal(1);
    expect(G[2]).to.equal(5);
  });

  it('linearCombination equals the float64 sum, skipping zero coefficients', () => {
    const rng = new Rng(4);
    const d = 5000;
    for (const n of [1, 3, 6, 9, 13]) {
      const vectors = Array.from({ length: n }, () => Float32Array.from({ length: d }, () => rng.normal()));
      const c = Array.from({ length: n }, (_, i) => (i === 1 ? 0 : rng.normal()));
      const out = linearCombination(vectors, c, d);
      for (let k = 0; k < d; k += 97) {
        let s = 0;
        for (let i = 0; i < n; i++) s += c[i] * vectors[i][k];
        expect(out[k]).to.be.closeTo(s, 1e-6 * Math.max(1, Math.abs(s)));
      }
    }
  });
});

describe('flag: symmetric eigensolver', () => {
  function randomSymmetric(rng: Rng, n: number): Float64Array {
    const A = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      for (let j = i; j < n; j++) {
        const x = rng.normal();
        A[i * n + j] = x;
        A[j * n + i] = x;
      }
    }
    return A;
  }

  function checkDecomposition(A: Float64Array, n: number, values: Float64Array, V: Float64Array): void {
    const scale = Math.max(1, Math.sqrt(A.reduce((s, x) => s + x * x, 0)));
    for (let k = 0; k < n; k++) {
      if (k > 0) expect(values[k]).to.be.at.most(values[k - 1]);
      for (let i = 0; i < n; i++) {
        let av = 0;
        for (let j = 0; j < n; j++) av += A[i * n + j] * V[j * n + k];
        expect(Math.abs(av - values[k] * V[i * n + k])).to.be.below(1e-12 * scale);
      }
      for (let l = 0; l < n; l++) {
        let dotkl = 0;
        for (let i = 0; i < n; i++) dotkl += V[i * n + k] * V[i * n + l];
        expect(Math.abs(dotkl - (k === l ? 1 : 0))).to.be.below(1e-12);
      }
      // Sign normalisation: the largest-magnitude component is positive.
      let best = 0;
      for (let i = 1; i < n; i++) if (Math.abs(V[i * n + k]) > Math.abs(V[best * n + k])) best = i;
      expect(V[best * n + k]).to.be.greaterThan(0);
    }
  }

  it('A v = λ v, orthonormal, sorted, sign-normalised (random symmetric matrices, n = 1..24)', () => {
    const rng = new Rng(9);
    for (let n = 1; n <= 24; n++) {
      const A = randomSymmetric(rng, n);
      const { values, vectors } = symmetricEigen(A, n);
      checkDecomposition(A, n, values, vectors);
    }
  });

  it('handles degenerate spectra (identity, rank one, zero) and warm starts', () => {
    const n = 6;
    const I = new Float64Array(n * n);
    for (let i = 0; i < n; i++) I[i * n + i] = 1;
    checkDecomposition(I, n, symmetricEigen(I, n).values, symmetricEigen(I, n).vectors);
    const u = Float64Array.of(1, -2, 3, 0, 1, 1);
    const R1 = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) R1[i * n + j] = u[i] * u[j];
    const e1 = symmetricEigen(R1, n);
    checkDecomposition(R1, n, e1.values, e1.vectors);
    expect(e1.values[0]).to.be.closeTo(16, 1e-12);
    const Z = new Float64Array(n * n);
    expect(Array.from(symmetricEigen(Z, n).values)).to.deep.equal(new Array(n).fill(0));

    const rng = new Rng(1);
    const A = randomSymmetric(rng, 10);
    const cold = symmetricEigen(A, 10);
    const B = A.map((x) => x + 1e-3 * rng.normal());
    for (let i = 0; i < 10; i++) for (let j = 0; j < i; j++) B[i * 10 + j] = B[j * 10 + i];
    const warm = symmetricEigen(B, 10, { initialVectors: cold.vectors });
    const fresh = symmetricEigen(B, 10);
    checkDecomposition(B, 10, warm.values, warm.vectors);
    for (let k = 0; k < 10; k++) expect(warm.values[k]).to.be.closeTo(fresh.values[k], 1e-12);
    expect(warm.sweeps).to.be.below(fresh.sweeps);
  });

  it('cholesky: L Lᵀ = A, and rejects indefinite matrices', () => {
    const rng = new Rng(8);
    const n = 7;
    const X = randomSymmetric(rng, n);
    const A = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let s = i === j ? 0.5 : 0;
        for (let k = 0; k < n; k++) s += X[i * n + k] * X[j * n + k];
        A[i * n + j] = s;
      }
    }
    const L = cholesky(A, n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let k = 0; k < n; k++) s += L[i * n + k] * L[j * n + k];
        expect(s).to.be.closeTo(A[i * n + j], 1e-10);
      }
    }
    expect(() => cholesky(Float64Array.of(1, 2, 2, 1), 2)).to.throw(/not positive definite/);
  });
});

describe('flag: known weaknesses and their options', () => {
  it('signAware excludes sign-flipped workers; without it they are trusted and subtract from the output', () => {
    const rng = new Rng(21);
    const d = 200;
    const { mu, vectors } = honestSet(rng, 9, d, 1);
    // Per-worker sign flip (−g of three honest-like gradients) and the ByzFL −μ.
    for (let i = 0; i < 3; i++) vectors.push(vectors[i].map((x) => -x));
    vectors.push(Float32Array.from(mu, (x) => -x));
    const n = vectors.length;
    const aware = run({}, vectors, 4);
    const blind = run({ signAware: false, rescale: 'none', r: 'auto', step: 'subspace' }, vectors, 4);
    for (let i = 0; i < n; i++) expect(aware.workers[i].included, `worker ${i}`).to.equal(i < 9);
    for (const w of aware.workers.slice(9)) expect(w.reason).to.match(/against the robust direction/);
    expect(cosine(aware.update, mu)).to.be.greaterThan(0.9);
    // Sign blindness (at the noise edge's r = 1: with a larger r, −gᵢ and gᵢ share the subspace and their
    // coefficients cancel instead): flipped workers get the honest workers' trust, and the output loses their share.
    const trustHonest = blind.workers.slice(0, 9).map((w) => w.trust);
    const trustFlipped = blind.workers.slice(9).map((w) => w.trust);
    expect(Math.min(...trustFlipped)).to.be.greaterThan(0.5 * Math.min(...trustHonest));
    expect(blind.workers.slice(9).every((w) => w.included && w.weight < 0)).to.equal(true);
    expect(norm(blind.update)).to.be.below(
      0.8 *
        norm(
          run({ signAware: false, rescale: 'none', r: 'auto', step: 'subspace' }, vectors.slice(0, 9)).update,
        ),
    );
  });

  it('the default sign test keeps an honest worker mildly against the rest and excludes a flipped one', () => {
    // On non-IID shards honest gradients can point slightly against the robust direction; excluding every
    // negative cosine (signThreshold 0) throws them out. The default excludes only cosines below −0.3.
    const d = 32;
    const vec = (pairs: [number, number][]) => {
      const v = new Float32Array(d);
      for (const [i, x] of pairs) v[i] = x;
      return v;
    };
    const vectors: Float32Array[] = [];
    for (let i = 0; i < 7; i++)
      vectors.push(
        vec([
          [0, 1],
          [i + 1, 1],
        ]),
      );
    vectors.push(
      vec([
        [0, -0.2],
        [10, 1],
      ]),
    ); // heterogeneous honest worker, cosine ≈ −0.2
    vectors.push(vec([[0, -3]])); // sign flip, cosine −1
    const included = (options: Record<string, unknown>) =>
      run(options, vectors, 1)
        .workers.map((w) => (w.included ? 1 : 0))
        .join('');
    expect(included({})).to.equal('111111110');
    expect(included({ signThreshold: 0 })).to.equal('111111100');
  });

  it('the default step is gradient-sized: scaling every input by s scales the update by s', () => {
    // The cause of the robustness review's failures: an unscaled output (a sum of unit vectors) has the same
    // length whatever the gradients' size, so late in training, or after pre-aggregation aligns the inputs, the
    // step was 7–80× what a clean mean would take. The default must be positively homogeneous of degree 1.
    const rng = new Rng(11);
    const { vectors } = honestSet(rng, 10, 64, 0.5);
    for (const s of [1e-3, 1e3]) {
      const scaled = vectors.map((v) => v.map((x) => x * s));
      const base = norm(run({}, vectors, 2).update);
      expect(norm(run({}, scaled, 2).update) / base).to.be.closeTo(s, s * 1e-4);
      // the unscaled flag median (a sum of unit vectors): the same length at every scale
      expect(norm(run({ rescale: 'none', step: 'subspace' }, scaled, 2).update)).to.be.closeTo(
        norm(run({ rescale: 'none', step: 'subspace' }, vectors, 2).update),
        1e-4,
      );
    }
  });

  it('rescale median-norm gives the output the median norm of the included workers', () => {
    const rng = new Rng(22);
    const { vectors } = honestSet(rng, 7, 50, 0.5);
    vectors.forEach((v, i) => v.forEach((x, k) => (v[k] = x * (1 + i))));
    const res = run({ rescale: 'median-norm' }, vectors, 1);
    const norms = res.workers.filter((w) => w.included).map((w) => w.norm);
    norms.sort((a, b) => a - b);
    const m =
      norms.length % 2
        ? norms[norms.length >> 1]
        : 0.5 * (norms[norms.length / 2 - 1] + norms[norms.length / 2]);
    expect(norm(res.update)).to.be.closeTo(m, 1e-5 * m);
    const plain = run({ rescale: 'none' }, vectors, 1);
    expect(diag(plain).rescaleFactor).to.equal(1);
  });

  it('rescale agreement scales the median norm by the length of the mean unit vector of the included workers', () => {
    // A mean of s equally long vectors of norm m has length m·‖(1/s)·Σ ĝᵢ‖: short when they disagree (non-IID
    // shards), m when they coincide. 'agreement' gives the flag output that length; 'median-norm' gives it m.
    const d = 40;
    const vectors: Float32Array[] = [];
    for (let i = 0; i < 6; i++) {
      const v = new Float32Array(d);
      v[0] = 1;
      v[i + 1] = 2; // cosine 1/5 between any two workers
      vectors.push(v.map((x) => x * (1 + 0.1 * i)));
    }
    const res = run({ rescale: 'agreement' }, vectors, 1);
    const med = run({ rescale: 'median-norm' }, vectors, 1);
    expect(res.workers.every((w) => w.included)).to.equal(true);
    // ‖Σ ĝᵢ‖² = s + s(s − 1)·(1/5) with s = 6 → agreement = √12 / 6
    const agreement = Math.sqrt(6 + 30 / 5) / 6;
    expect(norm(res.update)).to.be.closeTo(norm(med.update) * agreement, 1e-5);
    expect(cosine(res.update, med.update)).to.be.closeTo(1, 1e-9);
    // identical directions: agreement 1, the same step as median-norm
    const same = vectors.map((_, i) => vectors[0].map((x) => x * (1 + i)));
    expect(norm(run({ rescale: 'agreement' }, same, 1).update)).to.be.closeTo(
      norm(run({ rescale: 'median-norm' }, same, 1).update),
      1e-4,
    );
  });

  it("step 'trusted-mean' is the mean of the kept workers clipped to their median norm; flipped ones take no part", () => {
    // The flag only selects: 9 noisy honest workers (one 20× longer) and 3 sending −μ; the update is
    // (1/9)·Σ min(1, m/‖gᵢ‖)·gᵢ over the 9 honest ones, so the long one counts as one median norm.
    const rng = new Rng(31);
    const d = 300;
    const { mu, vectors } = honestSet(rng, 9, d, 3);
    vectors[4] = vectors[4].map((x) => 20 * x);
    const flipped = Float32Array.from(mu, (x) => -x);
    const all = [...vectors, flipped, flipped, flipped];
    const res = run({ step: 'trusted-mean', rescale: 'none' }, all, 3);
    for (let i = 0; i < 12; i++) expect(res.workers[i].included, `worker ${i}`).to.equal(i < 9);
    const norms = vectors.map((v) => norm(v));
    const m = [...norms].sort((a, b) => a - b)[4];
    const expected = new Float64Array(d);
    vectors.forEach((v, i) => v.forEach((x, k) => (expected[k] += (Math.min(1, m / norms[i]) * x) / 9)));
    expect(relErr(res.update, expected)).to.be.below(1e-5);
    expect(diag(res).rescaleFactor).to.equal(1);
    // the subspace step is as long as one gradient (median-norm), the mean's is shorter on disagreeing workers
    expect(norm(run({ step: 'subspace' }, all, 3).update)).to.be.closeTo(m, 1e-4 * m);
    expect(norm(res.update)).to.be.below(0.6 * m);
    // with the default rescale, the clipped mean's direction at the median norm
    const scaled = run({ step: 'trusted-mean' }, all, 3);
    expect(cosine(scaled.update, expected)).to.be.closeTo(1, 1e-6);
    expect(norm(scaled.update)).to.be.closeTo(m, 1e-4 * m);
    // and that is the default
    expect(Array.from(run({}, all, 3).update)).to.deep.equal(Array.from(scaled.update));
  });

  it("vote 'norm': a worker shorter than the median counts in proportion to its length, a longer one counts 1", () => {
    const rng = new Rng(33);
    const d = 200;
    const { vectors } = honestSet(rng, 9, d, 3);
    // equal lengths: every ωᵢ = 1, the same result as vote 'unit'
    const equal = vectors.map((v) => v.map((x) => x / norm(v)));
    const u = run({}, equal, 2);
    const w = run({ vote: 'norm' }, equal, 2);
    expect(relErr(w.update, u.update)).to.be.below(1e-7);
    for (const x of diag(w).votes as number[]) expect(x).to.be.closeTo(1, 1e-6);
    expect(diag(u).votes).to.equal(null);
    // a vector 10⁻⁶ as long as the others: under 'unit' its direction moves the subspace and the flag median's
    // output, under 'norm' it has no say (ω ≈ 10⁻⁶), whichever way it points
    const dir = Float32Array.from({ length: d }, () => rng.normal());
    const tiny = (sign: number) => dir.map((x) => (sign * 1e-6 * norm(vectors[0]) * x) / norm(dir));
    const long = vectors[3].map((x) => 50 * x);
    for (const vote of ['unit', 'norm']) {
      const plus = run({ vote, signAware: false, step: 'subspace' }, [...vectors, tiny(1)], 2);
      const minus = run({ vote, signAware: false, step: 'subspace' }, [...vectors, tiny(-1)], 2);
      const moved = relErr(plus.update, minus.update);
      if (vote === 'unit') expect(moved, vote).to.be.above(1e-2);
      else expect(moved, vote).to.be.below(1e-5);
    }
    const votes = diag(run({ vote: 'norm' }, [...vectors.slice(0, 3), long, ...vectors.slice(4), tiny(1)], 2))
      .votes as number[];
    expect(votes[3]).to.equal(1); // 50× the median: capped at one vote
    expect(votes[9]).to.be.below(1e-5);
    const m = [...vectors.map((v) => norm(v)), 50 * norm(vectors[3]), 1e-6 * norm(vectors[0])].sort(
      (a, b) => a - b,
    );
    const median = 0.5 * (m[4] + m[5]);
    expect(votes[0]).to.be.closeTo(Math.min(1, norm(vectors[0]) / median), 1e-6);
  });

  it("vote 'norm' is the weighted flag median Σᵢ ωᵢ·√(1 − ‖Yᵀĝᵢ‖²) and output (1/r)·YYᵀΣᵢ ωᵢĝᵢ (direct d-space IRLS)", () => {
    const rng = new Rng(34);
    const d = 10;
    const p = 7;
    const vectors = Array.from({ length: p }, (_, i) =>
      Float32Array.from({ length: d }, () => (0.2 + 0.4 * i) * (rng.normal() + 0.4)),
    );
    const norms = vectors.map((v) => norm(v));
    const sorted = [...norms].sort((a, b) => a - b);
    const omega = norms.map((x) => Math.min(1, x / sorted[3]));
    const G = vectors.map((v, i) => Float64Array.from(v, (x) => x / norms[i]));
    const topR = (w2: number[], r: number): number[][] => {
      const M = new Float64Array(d * d);
      G.forEach((g, i) => {
        for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) M[a * d + b] += w2[i] * g[a] * g[b];
      });
      const e = symmetricEigen(M, d);
      return Array.from({ length: d }, (_, a) => Array.from({ length: r }, (_, k) => e.vectors[a * d + k]));
    };
    const J = (Y: number[][]): number =>
      G.reduce((acc, g, i) => acc + omega[i] * Math.sqrt(Math.max(0, 1 - projectedNorm2(Y, g))), 0);
    for (const r of [1, 2, 3]) {
      for (const steps of [0, 1, 3]) {
        let Y = topR(
          omega.map((w) => w / Math.sqrt(1 + 1e-7)),
          r,
        );
        for (let t = 0; t < steps; t++) {
          const next = topR(
            G.map((g, i) => omega[i] / Math.sqrt(Math.abs(1 - projectedNorm2(Y, g)) + 1e-7)),
            r,
          );
          if (J(next) > J(Y)) break;
          Y = next;
        }
        const sum = new Float64Array(d);
        G.forEach((g, i) => g.forEach((x, a) => (sum[a] += omega[i] * x)));
        const out = new Float64Array(d);
        for (let k = 0; k < r; k++) {
          let c = 0;
          for (let a = 0; a < d; a++) c += Y[a][k] * sum[a];
          for (let a = 0; a < d; a++) out[a] += (Y[a][k] * c) / r;
        }
        const res = run(
          {
            vote: 'norm',
            r,
            maxIterations: steps,
            tolerance: 0,
            signAware: false,
            rescale: 'none',
            step: 'subspace',
          },
          vectors,
        );
        expect(relErr(res.update, out), `r ${r}, ${steps} steps`).to.be.below(1e-6);
        expect(diag(res).objective as number).to.be.closeTo(J(Y), 1e-9);
      }
    }
  });

  it("step 'projected-mean' is the trusted clipped mean projected onto the flag subspace", () => {
    const rng = new Rng(32);
    const d = 300;
    const { mu, vectors } = honestSet(rng, 9, d, 3);
    const all = [...vectors, ...[0, 1, 2].map(() => Float32Array.from(mu, (x) => -x))];
    const mean = run({ step: 'trusted-mean', rescale: 'none' }, all, 3).update;
    for (const r of [1, 3, 6]) {
      const proj = run({ step: 'projected-mean', rescale: 'none', r }, all, 3);
      for (let i = 0; i < 12; i++) expect(proj.workers[i].included, `r ${r} worker ${i}`).to.equal(i < 9);
      // an orthogonal projection: the residual is orthogonal to the result, which is no longer than the mean
      const residual = Float64Array.from(mean, (x, k) => x - proj.update[k]);
      expect(Math.abs(cosine(residual, proj.update))).to.be.below(1e-4);
      expect(norm(proj.update)).to.be.at.most(norm(mean) * (1 + 1e-6));
      expect(norm(proj.update)).to.be.greaterThan(0.3 * norm(mean));
    }
    // a subspace through every kept worker (r = s) holds the mean itself
    const honestOnly = run(
      { step: 'projected-mean', r: 8 },
      [...vectors, Float32Array.from(mu, (x) => -x)],
      1,
    );
    expect(honestOnly.workers[9].included).to.equal(false);
    const full = run(
      { step: 'trusted-mean', rescale: 'none', r: 8 },
      [...vectors, Float32Array.from(mu, (x) => -x)],
      1,
    );
    expect(relErr(honestOnly.update, full.update)).to.be.above(1e-3);
    const spans = run(
      { step: 'projected-mean', rescale: 'none', r: 9 },
      [...vectors, Float32Array.from(mu, (x) => -x)],
      1,
    );
    expect(relErr(spans.update, full.update)).to.be.below(1e-5);
  });

  it('signSpread lowers the sign cutoff to median − k·1.4826·MAD of the cosines, never above signThreshold', () => {
    expect(signThresholdFor([0.5, 0.5, 0.5, -1], -0.3, 3)).to.equal(-0.3); // tight: signThreshold stays
    expect(signThresholdFor([0.6, 0.2, 0.3, -0.4, -1], -0.3, null)).to.equal(-0.3);
    // median 0.2, MAD median(|0.4, 0, 0.1, 0.6, 1.2|) = 0.4 → 0.2 − 2·1.4826·0.4
    expect(signThresholdFor([0.6, 0.2, 0.3, -0.4, -1.0], -0.3, 2)).to.be.closeTo(
      0.2 - 2 * 1.4826 * 0.4,
      1e-12,
    );
    expect(signThresholdFor([0.6, 0.2, 0.3, -0.4, -1.0], 0, 0)).to.equal(0);
    // In the aggregator: with honest cosines spread out (0.22–0.76, one at −0.49) that one stays in with
    // k = 2 (cutoff ≈ −0.63) and the flipped worker (cosine ≈ −0.98) is still excluded.
    const d = 32;
    const vec = (pairs: [number, number][]) => {
      const v = new Float32Array(d);
      for (const [i, x] of pairs) v[i] = x;
      return v;
    };
    const vectors: Float32Array[] = [];
    const along = [1, 0.3, 1, 0.2, 1, 0.4, 1];
    along.forEach((a, i) =>
      vectors.push(
        vec([
          [0, a],
          [i + 1, 1],
        ]),
      ),
    );
    vectors.push(
      vec([
        [0, -0.5],
        [10, 1],
      ]),
    );
    vectors.push(vec([[0, -3]]));
    // r = 'auto' (r = 1 here) and the principal axis' sign test: the geometry below is set up for one robust direction
    const res = (options: Record<string, unknown>) =>
      run({ r: 'auto', signDirection: 'principal-axis', ...options }, vectors, 1);
    const included = (options: Record<string, unknown>) =>
      res(options)
        .workers.map((w) => (w.included ? 1 : 0))
        .join('');
    const scores = diag(res({})).signScores as number[];
    expect(scores[7]).to.be.below(-0.3);
    expect(scores[8]).to.be.below(-0.9);
    expect(included({})).to.equal('111111100');
    expect(included({ signSpread: 2 })).to.equal('111111110');
    expect(diag(res({ signSpread: 2 })).signCutoff).to.equal(signThresholdFor(scores, -0.3, 2));
    // the same honest workers in tight agreement: the cutoff stays at −0.3 and excludes the one at −0.48
    const tight = vectors.map((v) => Float32Array.from(v));
    for (let i = 0; i < 7; i++) tight[i][0] = 1;
    const axisSpread = { r: 'auto', signDirection: 'principal-axis', signSpread: 2 };
    expect(diag(run(axisSpread, tight, 1)).signCutoff).to.equal(-0.3);
    expect(
      run(axisSpread, tight, 1)
        .workers.map((w) => (w.included ? 1 : 0))
        .join(''),
    ).to.equal('111111100');
  });

  it('signDirection clipped-mean keeps an honest shard the principal axis turns against, and excludes IPM', () => {
    // Non-IID: six workers along e0 (+0.3·e1), three on another shard along −e0 + e1; two IPM attackers send
    // −0.1 × the honest mean. The principal axis follows the six, so the three score −0.46 and are excluded with
    // the attackers; every honest gradient agrees with the clipped mean (cosine ≥ 0.03), the attackers do not.
    const d = 16;
    const vec = (pairs: [number, number][]) => {
      const v = new Float32Array(d);
      for (const [i, x] of pairs) v[i] = x;
      return v;
    };
    const vectors: Float32Array[] = [];
    for (let i = 0; i < 6; i++)
      vectors.push(
        vec([
          [0, 1],
          [1, 0.3],
          [2 + i, 0.2],
        ]),
      );
    for (let i = 0; i < 3; i++)
      vectors.push(
        vec([
          [0, -1],
          [1, 1],
          [8 + i, 0.2],
        ]),
      );
    const mean = new Float32Array(d);
    for (const v of vectors) for (let k = 0; k < d; k++) mean[k] += v[k] / 9;
    for (let j = 0; j < 2; j++) vectors.push(mean.map((x) => -0.1 * x));
    const included = (options: Record<string, unknown>) =>
      run(options, vectors, 2)
        .workers.map((w) => (w.included ? 1 : 0))
        .join('');
    expect(included({ signDirection: 'principal-axis' })).to.equal('11111100000');
    expect(included({ signDirection: 'clipped-mean' })).to.equal('11111111100');
    expect(included({})).to.equal('11111111100');
    // an axis cutoff that follows the agreement rises with the six and turns against the other shard again
    expect(included({ signAxisSpread: 3 })).to.equal('11111100000');
    const scores = diag(run({ signDirection: 'clipped-mean' }, vectors, 2)).signScores as number[];
    expect(Math.min(...scores.slice(0, 9))).to.be.greaterThan(0);
    expect(Math.max(...scores.slice(9))).to.be.below(-0.9);
  });

  it('signDirection combined excludes copies of −μ that outweigh long honest shards at the median norm', () => {
    // Non-IID shards: nine honest gradients on orthogonal axes, four of them 10 long and five 1 long (norms differ
    // several-fold when shards differ); three attackers send −μ, μ the honest mean (‖μ‖ ≈ 2.2). Clipped at the median
    // norm (2.2) the long gradients count 2.2 each, and Σ clip(gₕ) = 0.22·Σ long + Σ short has ⟨·, μ⟩ ≈ 10.5 < 3‖μ‖²
    // ≈ 15: that mean points along −μ and turns against the honest workers. Clipped at the (f+1)-th longest
    // norm (10) nothing honest is shortened and the copies score −1.
    const d = 12;
    const vectors: Float32Array[] = [];
    for (let i = 0; i < 9; i++) {
      const v = new Float32Array(d);
      v[i] = i < 4 ? 10 : 1;
      vectors.push(v);
    }
    const mu = new Float32Array(d);
    for (const v of vectors) for (let k = 0; k < d; k++) mu[k] += v[k] / 9;
    for (let j = 0; j < 3; j++) vectors.push(mu.map((x) => -x));
    const included = (options: Record<string, unknown>) =>
      run(options, vectors, 3)
        .workers.map((w) => (w.included ? 1 : 0))
        .join('');
    expect(included({ signDirection: 'clipped-mean' })).to.not.equal('111111111000');
    const combined = run({ signDirection: 'combined' }, vectors, 3);
    expect(combined.workers.map((w) => (w.included ? 1 : 0)).join('')).to.equal('111111111000');
    const scores = diag(combined).signScores as number[];
    for (const x of scores.slice(9)) expect(x).to.be.closeTo(-1, 1e-9);
    expect(Math.min(...scores.slice(0, 9))).to.be.greaterThan(0);
    expect(combined.workers[9].reason).to.match(/against/);
  });

  it('signDirection combined still excludes colluders the clipped mean follows, by the principal axis', () => {
    // Four noisy honest workers (cosine to μ ≈ 0.16) and two sending −4·μ̂: every mean of the six points along
    // the attackers, who then agree with it; their principal-axis scores sit near −0.9, below −0.8.
    let admitted = 0;
    let honestExcluded = 0;
    for (let seed = 0; seed < 50; seed++) {
      const vectors = noisyCollusionRound(seed, 6);
      const res = run({ signDirection: 'combined' }, vectors, 2);
      const axis = diag(res).axisScores as number[];
      expect(axis).to.have.length(6);
      if (res.workers[4].included || res.workers[5].included) admitted++;
      honestExcluded += res.workers.slice(0, 4).filter((w) => !w.included).length;
      if (seed === 0) {
        expect((diag(res).signScores as number[])[4]).to.be.above(-0.3); // the mean test alone admits them
        expect(res.workers[4].reason).to.match(/principal-axis score -0\.\d+ < axis cutoff -0\.\d+;/);
      }
    }
    expect(admitted).to.equal(0);
    expect(honestExcluded).to.equal(0);
  });

  it('signAxisSpread: the axis cutoff rises to signThreshold where the workers agree on the axis', () => {
    // Four honest workers along e0 (axis scores 0.54–0.70) and two colluders at −0.3·e0 + 0.95·e1 (axis −0.75,
    // clipped-mean cosine +0.2): the fixed cutoff −0.8 (the default, signAxisSpread null) admits them; with k = 3
    // the cutoff is min(−0.3, median − 3·1.4826·MAD) = −0.3 and excludes them.
    const rng = new Rng(3);
    const d = 64;
    const vectors: Float32Array[] = [];
    for (let w = 0; w < 4; w++) {
      const v = new Float32Array(d);
      v[0] = 1;
      for (let k = 2; k < d; k++) v[k] = 0.15 * rng.normal();
      vectors.push(v);
    }
    for (let w = 0; w < 2; w++) {
      const v = new Float32Array(d);
      v[0] = -0.3;
      v[1] = 0.95;
      for (let k = 2; k < d; k++) v[k] = 0.02 * rng.normal();
      vectors.push(v);
    }
    const fixed = run({}, vectors, 2); // the default: signAxisSpread null
    expect(fixed.workers.map((w) => (w.included ? 1 : 0)).join('')).to.equal('111111');
    expect(diag(fixed).axisCutoff).to.equal(-0.8);
    const spread = run({ signAxisSpread: 3 }, vectors, 2);
    expect(diag(run({ signAxisSpread: null }, vectors, 2)).axisCutoff).to.equal(-0.8);
    expect(spread.workers.map((w) => (w.included ? 1 : 0)).join('')).to.equal('111100');
    expect(diag(spread).axisCutoff).to.equal(-0.3);
    const axis = diag(spread).axisScores as number[];
    expect(Math.max(...axis.slice(4))).to.be.within(-0.8, -0.3);
    expect(spread.workers[4].reason).to.match(/principal-axis score -0\.7\d+ < axis cutoff -0\.3;/);
    // the axis test is the combined test's: with the axis alone there is no axis cutoff
    expect(diag(run({ signAxisSpread: 3, signDirection: 'principal-axis' }, vectors, 2)).axisCutoff).to.equal(
      null,
    );
  });

  it('longestNormBeyond: the (f+1)-th longest norm, or the shortest when there are at most f', () => {
    expect(longestNormBeyond([3, 9, 1, 7, 5], 0)).to.equal(9);
    expect(longestNormBeyond([3, 9, 1, 7, 5], 2)).to.equal(5);
    expect(longestNormBeyond([3, 9], 5)).to.equal(3);
  });

  it('clippedMeanScores: cosines to Σ min(‖gⱼ‖, median)·ĝⱼ, so one huge vector counts as one median norm', () => {
    // unit vectors e0, e0, e1 with norms 1, 1, 100: c = e0 + e0 + 1·e1 (the 100 clipped to the median 1)
    const K = Float64Array.of(1, 1, 0, 1, 1, 0, 0, 0, 1);
    const got = Array.from(clippedMeanScores(K, [1, 1, 100]));
    const cn = Math.sqrt(5);
    expect(got[0]).to.be.closeTo(2 / cn, 1e-12);
    expect(got[1]).to.be.closeTo(2 / cn, 1e-12);
    expect(got[2]).to.be.closeTo(1 / cn, 1e-12);
    // c = 0 (two opposite vectors of equal norm): no direction, every score 0
    expect(Array.from(clippedMeanScores(Float64Array.of(1, -1, -1, 1), [2, 2]))).to.deep.equal([0, 0]);
  });

  it("r = 'n-2f' (the default) averages many honest workers where r = 'auto' collapses onto one (noise-dominated gradients)", () => {
    // 9 honest workers μ + 5·noise (pairwise cosines ≈ 0.04, as on Dirichlet shards) and 3 sending −(honest
    // mean). The noise edge sees one direction (r = 1), and the flag median of nearly orthogonal vectors is the
    // line through one worker: IRLS weights ×10³ on it, the update a single worker's gradient.
    const d = 2000;
    for (const seed of [1, 2, 3]) {
      const rng = new Rng(seed);
      const { vectors } = honestSet(rng, 9, d, 5);
      const mean = new Float64Array(d);
      for (const v of vectors) for (let k = 0; k < d; k++) mean[k] += v[k] / 9;
      const flipped = Float32Array.from(mean, (x) => -x);
      const all = [...vectors, flipped, flipped, flipped];
      const single = Math.max(...vectors.map((v) => cosine(v, mean)));
      const weightSpread = (res: AggregationResult) => {
        const w = [...(diag(res).irlsWeights as number[])].filter((x) => x > 0).sort((a, b) => a - b);
        return w[w.length - 1] / w[w.length >> 1];
      };
      const auto = run({ r: 'auto', step: 'subspace' }, all, 3);
      expect(diag(auto).r).to.equal(1);
      expect(weightSpread(auto)).to.be.greaterThan(100);
      expect(cosine(auto.update, mean)).to.be.below(single + 0.1);
      const bound = run({ r: 'n-2f', step: 'subspace' }, all, 3);
      expect(diag(bound).r).to.equal(6);
      expect(weightSpread(bound)).to.be.below(10);
      // a sum of about 6 honest gradients: cos ≈ √6·c/√(1 + 5c²) with c ≈ 0.37, the cosine of one of them
      expect(cosine(bound.update, mean)).to.be.greaterThan(0.75);
      for (let i = 0; i < 12; i++) expect(bound.workers[i].included, `worker ${i}`).to.equal(i < 9);
      // it is the default rank
      expect(Array.from(run({ step: 'subspace' }, all, 3).update)).to.deep.equal(Array.from(bound.update));
    }
  });

  it("byzantineRank: r = 'n-2f' is max(1, n − 2f), at most p − 1", () => {
    expect(byzantineRank(12, 3, 12)).to.equal(6);
    expect(byzantineRank(12, 2, 12)).to.equal(8);
    expect(byzantineRank(12, 0, 12)).to.equal(11);
    expect(byzantineRank(12, 5, 12)).to.equal(2);
    expect(byzantineRank(12, 6, 12)).to.equal(1);
    expect(byzantineRank(12, 3, 5)).to.equal(4);
    expect(byzantineRank(1, 0, 1)).to.equal(1);
    expect(diag(run({ r: 'n-2f' }, honestSet(new Rng(3), 7, 50, 1).vectors, 2)).r).to.equal(3);
  });

  it("r = 'auto' counts the directions above the noise bulk of the cosine Gram", () => {
    const rng = new Rng(23);
    const d = 2000;
    // Two honest clusters (non-IID) of 6 workers each: two signal directions.
    const a = honestSet(rng, 6, d, 0.3).vectors;
    const b = honestSet(rng, 6, d, 0.3).vectors;
    expect(diag(run({ r: 'auto' }, [...a, ...b], 3)).r).to.equal(2);
    expect(diag(run({ r: 'auto' }, a, 1)).r).to.equal(1);
    // f identical colluders in a third direction carry f workers' worth of energy: they get their own direction
    // instead of capturing r = 1 (which is what happens with r = 1 in noisy regimes, see the module comment).
    const z = Float32Array.from({ length: d }, () => rng.normal());
    const res = run({ r: 'auto' }, [...a, z, z, z], 3);
    expect(diag(res).r).to.equal(2);
    expect(cosine(res.update, a[0])).to.be.greaterThan(0.8);
    expect(diag(run({ r: 'auto', rMax: 1 }, [...a, ...b], 3)).r).to.equal(1);
    // Unit cases: noise edge 1.1·(1 + √(p/d))².
    expect(chooseRank([10, 9.5, 2, 1], 4, 1e6, 4)).to.equal(3);
    expect(chooseRank([10, 0.5, 0.4], 3, 1e6, 3)).to.equal(1);
    expect(chooseRank([3, 3, 3], 3, 1e6, 1)).to.equal(1);
    expect(chooseRank([0.9, 0.8], 2, 1e6, 2)).to.equal(1);
    expect(chooseRank([5, 4, 3], 3, 1e6, 8)).to.equal(2);
  });

  it('large fixed r admits colluders (documented weakness)', () => {
    const rng = new Rng(24);
    const { vectors } = honestSet(rng, 8, 100, 1);
    const z = Float32Array.from({ length: 100 }, () => rng.next());
    const all = [...vectors, z, z];
    const r1 = run({ r: 1, signAware: false }, all, 2);
    const r4 = run({ r: 4, signAware: false }, all, 2);
    expect(r1.workers[8].trust).to.be.below(0.3);
    expect(r4.workers[8].trust).to.be.greaterThan(0.9);
    expect(r4.workers[8].included).to.equal(true);
  });

  it('minTrust excludes low reconstruction ratios', () => {
    const rng = new Rng(25);
    const { vectors } = honestSet(rng, 6, 80, 0.5);
    vectors.push(Float32Array.from({ length: 80 }, () => rng.normal()));
    const res = run({ r: 'auto', minTrust: 0.2, signAware: false }, vectors, 1);
    expect(res.workers[6].included).to.equal(false);
    expect(res.workers[6].reason).to.match(/minTrust/);
    expect(res.workers.slice(0, 6).every((w) => w.included)).to.equal(true);
  });
});

describe('flag: state, preconditions and options', () => {
  it('warm start: saveState/loadState round trip, and a warm-started rule reaches the same update', () => {
    const rng = new Rng(31);
    const { vectors } = honestSet(rng, 8, 64, 0.7);
    const rule = createFlagAggregator({ warmStart: true });
    const input = { vectors, workerIds: ids(8), f: 1 };
    const first = rule.aggregate(input);
    expect(diag(first).warmStarted).to.equal(false);
    const state = rule.saveState?.() as { subspace: { d: number; columns: number[][] } };
    expect(state.subspace.d).to.equal(64);
    const restored = createFlagAggregator({ warmStart: true });
    restored.loadState?.(JSON.parse(JSON.stringify(state)) as Record<string, unknown>);
    const second = restored.aggregate(input);
    expect(diag(second).warmStarted).to.equal(true);
    expect(relErr(second.update, first.update)).to.be.below(1e-3);
    expect(() => restored.loadState?.({ version: 2 })).to.throw(/state version/);
    expect(createFlagAggregator({}).saveState?.()).to.deep.equal({ version: 1, subspace: null });
  });

  it('zero and non-finite vectors are excluded, not NaN', () => {
    const rng = new Rng(32);
    const { vectors } = honestSet(rng, 5, 20, 0.5);
    vectors.push(new Float32Array(20));
    const bad = new Float32Array(20);
    bad[3] = Number.NaN;
    vectors.push(bad);
    for (const options of [{}, { mode: 'reference' }]) {
      const res = run(options, vectors, 1);
      expect(Array.from(res.update).every(Number.isFinite)).to.equal(true);
      expect(res.workers[5]).to.include({ included: false, reason: 'zero-vector', weight: 0, trust: 0 });
      expect(res.workers[6]).to.include({ included: false, reason: 'non-finite', weight: 0 });
      for (const w of res.workers)
        expect(Number.isFinite(w.trust) && Number.isFinite(w.cosine)).to.equal(true);
    }
    expect(() => run({}, [new Float32Array(4), new Float32Array(4)])).to.throw(
      PreconditionError,
      /at least 1 valid/,
    );
  });

  it('preconditions name themselves', () => {
    const v = [Float32Array.of(1, 0), Float32Array.of(0, 1)];
    expect(() => run({ r: 3 }, v)).to.throw(PreconditionError, /r ≤ p/);
    expect(() => run({ mode: 'reference', r: 3 }, v)).to.throw(PreconditionError, /r ≤ p/);
    expect(() => run({}, [])).to.throw(PreconditionError, /n ≥ 1/);
    expect(() => run({}, [Float32Array.of(1, 2), Float32Array.of(1)])).to.throw(
      PreconditionError,
      /equal length/,
    );
    expect(() => run({ mode: 'reference', y0: [[1], [0], [0]] }, v)).to.throw(
      PreconditionError,
      /y0 with d = 2/,
    );
    // One worker: the update is the worker itself (median-norm, the default, or the trusted mean unscaled), or
    // its direction (the flag median unscaled).
    expect(Array.from(run({ rescale: 'none' }, [Float32Array.of(3, 4)]).update)).to.deep.equal([3, 4]);
    const single = run({ rescale: 'none', step: 'subspace' }, [Float32Array.of(3, 4)]);
    expect(Array.from(single.update)).to.deep.equal([Math.fround(0.6), Math.fround(0.8)]);
    const rescaled = run({}, [Float32Array.of(3, 4)]);
    expect(Array.from(rescaled.update)).to.deep.equal([3, 4]);
  });

  it('validates options with clear messages', () => {
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ r: 0 }, /'r' must be a positive integer/],
      [{ r: 'three' }, /'r' must be a positive integer/],
      [{ lambda: -1 }, /'lambda' must be a finite number/],
      [{ epsilon: 0 }, /'epsilon' must be a finite number > 0/],
      [{ maxIterations: 1.5 }, /'maxIterations' must be a non-negative integer/],
      [{ rescale: 'max' }, /'rescale' must be 'none', 'median-norm' or 'agreement'/],
      [{ signSpread: -1 }, /'signSpread' must be a finite number ≥ 0/],
      [{ signDirection: 'mean' }, /'signDirection' must be 'principal-axis', 'clipped-mean' or 'combined'/],
      [{ signAxisThreshold: -2 }, /'signAxisThreshold' must be a finite number/],
      [{ signAxisSpread: -1 }, /'signAxisSpread' must be a finite number/],
      [{ step: 'median' }, /'step' must be 'subspace', 'trusted-mean' or 'projected-mean'/],
      [{ vote: 'size' }, /'vote' must be 'unit' or 'norm'/],
      [{ readmit: 1 }, /'readmit' must be true or false/],
      [{ readmit: true, signAware: false }, /'readmit' needs signAware: true/],
      [{ mode: 'reference', readmit: true }, /not available in mode 'reference'/],
      [{ mode: 'reference', vote: 'norm' }, /not available in mode 'reference'/],
      [{ mode: 'reference', step: 'trusted-mean' }, /not available in mode 'reference'/],
      [{ signAware: 'yes' }, /'signAware' must be true or false/],
      [{ mode: 'fast' }, /'mode' must be 'phalanx' or 'reference'/],
      [{ mode: 'reference', signAware: true }, /not available in mode 'reference'/],
      [{ mode: 'reference', r: 'auto' }, /not available in mode 'reference'/],
      [{ mode: 'reference', r: 'n-2f' }, /not available in mode 'reference'/],
      [{ y0: [[1]] }, /'y0' requires mode 'reference'/],
      [{ mode: 'reference', r: 2, y0: [[1], [0]] }, /'y0' has 1 columns but r = 2/],
      [{ compat: 'byzfl' }, /ByzFL has no Flag Aggregator/],
      [{ r: 2, rMax: 3 }, /'rMax' only applies to r = 'auto'/],
      [{ bogus: 1 }, /unknown option 'bogus'/],
    ];
    for (const [options, message] of bad)
      expect(() => createFlagAggregator(options), JSON.stringify(options)).to.throw(message);
    expect(createFlagAggregator({}).name).to.equal('flag');
  });
});

describe('flag: properties (fast-check)', () => {
  /** Generic (tie-free) worker sets: a shared mean plus noise, of random scale; occasionally a zero vector. */
  const vectorSet = (minN: number, maxN: number, d: number) =>
    fc
      .record({
        n: fc.integer({ min: minN, max: maxN }),
        seed: fc.integer(),
        spread: fc.double({ min: 0.05, max: 3, noNaN: true }),
        logScale: fc.double({ min: -20, max: 20, noNaN: true }),
        zero: fc.boolean(),
      })
      .map(({ n, seed, spread, logScale, zero }) => {
        const rng = new Rng(seed);
        const vs = honestSet(rng, n, d, spread).vectors;
        const s = 10 ** logScale;
        for (const v of vs) for (let k = 0; k < d; k++) v[k] *= s * (1 + rng.next());
        if (zero && n > 1) vs[n - 1].fill(0);
        return vs;
      });

  it('permutation invariance (update, and per-worker health follows the worker)', () => {
    fc.assert(
      fc.property(
        vectorSet(2, 7, 6),
        fc.integer(),
        fc.constantFrom<Record<string, unknown>>({}, { r: 1, lambda: 2 }, { mode: 'reference', r: 1 }),
        (vectors, seed, options) => {
          const n = vectors.length;
          const perm = new Rng(seed).shuffle(Array.from({ length: n }, (_, i) => i));
          const a = run(options, vectors);
          const b = run(
            options,
            perm.map((i) => vectors[i]),
          );
          const scale = Math.max(1e-6, norm(a.update));
          for (let k = 0; k < a.update.length; k++)
            expect(Math.abs(a.update[k] - b.update[k])).to.be.below(1e-4 * scale);
          perm.forEach((src, dst) => {
            expect(b.workers[dst].included).to.equal(a.workers[src].included);
            expect(b.workers[dst].trust).to.be.closeTo(a.workers[src].trust, 1e-4);
          });
        },
      ),
      { numRuns: 60, seed: 42 },
    );
  });

  it('bounded output: f < n/3 huge attackers cannot push the update beyond the honest norms (unscaled: p/r)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 4, max: 9 }),
        fc.integer({ min: 1, max: 1000 }),
        fc.double({ min: 3, max: 30, noNaN: true }),
        fc.constantFrom<'random' | 'flip' | 'aligned' | 'collude'>('random', 'flip', 'aligned', 'collude'),
        (honestCount, seed, logScale, kind) => {
          const d = 16;
          const f = Math.max(1, Math.floor((honestCount - 1) / 2));
          const rng = new Rng(seed);
          const { mu, vectors } = honestSet(rng, honestCount, d, 0.3);
          const z = Float32Array.from({ length: d }, () => rng.normal());
          for (let i = 0; i < f; i++) {
            const s = 10 ** logScale;
            let v: Float32Array;
            if (kind === 'random') v = Float32Array.from({ length: d }, () => s * rng.normal());
            else if (kind === 'flip') v = Float32Array.from(mu, (x) => -s * x);
            else if (kind === 'aligned') v = Float32Array.from(mu, (x) => s * x);
            else v = z.map((x) => s * x);
            vectors.push(v);
          }
          const maxHonest = Math.max(...vectors.slice(0, honestCount).map(norm));
          // The default (median-norm) is bounded by the honest norms.
          for (const options of [{}, { rescale: 'median-norm' }]) {
            expect(norm(run(options, vectors, f).update)).to.be.at.most(maxHonest * (1 + 1e-5));
          }
          // Without rescaling the flag median's output is bounded by p/r whatever the inputs.
          for (const options of [
            { rescale: 'none', step: 'subspace' },
            { signAware: false, rescale: 'none', step: 'subspace' },
          ]) {
            const plain = run(options, vectors, f);
            expect(diag(plain).rescaleFactor).to.equal(1);
            expect(norm(plain.update)).to.be.at.most(
              (vectors.length / (diag(plain).r as number)) * (1 + 1e-5),
            );
          }
        },
      ),
      { numRuns: 60, seed: 7 },
    );
  });

  it('determinism: identical inputs give bit-identical results across instances and calls', () => {
    fc.assert(
      fc.property(vectorSet(1, 6, 5), (vectors) => {
        const a = run({}, vectors);
        const rule = createFlagAggregator({});
        const input = { vectors, workerIds: ids(vectors.length), f: 0 };
        const b = rule.aggregate(input);
        const c = rule.aggregate(input);
        expect(Array.from(b.update)).to.deep.equal(Array.from(a.update));
        expect(Array.from(c.update)).to.deep.equal(Array.from(a.update));
        expect(JSON.stringify(c.workers)).to.equal(JSON.stringify(a.workers));
      }),
      { numRuns: 40, seed: 3 },
    );
  });
});
