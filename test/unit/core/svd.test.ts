import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { energyCaptured, lowRankFactors, svd, type Svd } from '../../../src/core/linalg/svd.ts';
import { Rng } from '../../../src/core/random.ts';

interface FixtureCase {
  rows: number;
  cols: number;
  a: number[];
  s: number[];
  u: number[];
  v: number[];
  rank: number;
}
const fixture = JSON.parse(
  readFileSync(new URL('../../fixtures/svd-numpy.json', import.meta.url), 'utf8'),
) as { cases: Record<string, FixtureCase> };

function randomMatrix(m: number, n: number, seed: number): Float64Array {
  const rng = new Rng(seed);
  return Float64Array.from({ length: m * n }, () => rng.normal());
}

/** max |A − U Σ Vᵀ| */
function reconstructionError(a: Float64Array, d: Svd): number {
  const k = Math.min(d.rows, d.cols);
  let worst = 0;
  for (let i = 0; i < d.rows; i++) {
    for (let j = 0; j < d.cols; j++) {
      let x = 0;
      for (let c = 0; c < k; c++) x += d.u[i * k + c] * d.s[c] * d.v[j * k + c];
      worst = Math.max(worst, Math.abs(x - a[i * d.cols + j]));
    }
  }
  return worst;
}

/** max |QᵀQ − I| for a rows×k matrix Q. */
function orthogonalityError(q: Float64Array, rows: number, k: number): number {
  let worst = 0;
  for (let p = 0; p < k; p++) {
    for (let r = 0; r < k; r++) {
      let dot = 0;
      for (let i = 0; i < rows; i++) dot += q[i * k + p] * q[i * k + r];
      worst = Math.max(worst, Math.abs(dot - (p === r ? 1 : 0)));
    }
  }
  return worst;
}

function checkDecomposition(a: Float64Array, m: number, n: number): Svd {
  const d = svd(a, m, n);
  const k = Math.min(m, n);
  expect(d.s.length).to.equal(k);
  expect(d.u.length).to.equal(m * k);
  expect(d.v.length).to.equal(n * k);
  const scale = Math.max(1, d.s[0]);
  expect(reconstructionError(a, d), `reconstruction ${m}×${n}`).to.be.below(1e-12 * scale * Math.max(m, n));
  expect(orthogonalityError(d.u, m, k), `UᵀU ${m}×${n}`).to.be.below(1e-12 * Math.max(m, n));
  expect(orthogonalityError(d.v, n, k), `VᵀV ${m}×${n}`).to.be.below(1e-12 * Math.max(m, n));
  for (let j = 0; j + 1 < k; j++) expect(d.s[j], `σ sorted ${m}×${n}`).to.be.at.least(d.s[j + 1]);
  for (let j = 0; j < k; j++) expect(d.s[j]).to.be.at.least(0);
  return d;
}

describe('core: one-sided Jacobi SVD', () => {
  for (const [m, n] of [
    [1, 1],
    [5, 5],
    [12, 4],
    [4, 12],
    [32, 96],
    [40, 17],
  ] as const) {
    it(`decomposes a random ${m}×${n} matrix: A = UΣVᵀ, orthonormal U and V, sorted σ`, () => {
      checkDecomposition(randomMatrix(m, n, m * 100 + n), m, n);
    });
  }

  it('handles rank-deficient and zero matrices: rank, zero singular values, still orthonormal U', () => {
    // rank 3 outer-product sum, 10×8
    const m = 10;
    const n = 8;
    const a = new Float64Array(m * n);
    for (let r = 0; r < 3; r++) {
      const x = randomMatrix(m, 1, 10 + r);
      const y = randomMatrix(1, n, 20 + r);
      for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) a[i * n + j] += x[i] * y[j];
    }
    const d = checkDecomposition(a, m, n);
    expect(d.rank).to.equal(3);
    for (let j = 3; j < n; j++) expect(d.s[j]).to.equal(0);
    const zero = checkDecomposition(new Float64Array(6 * 3), 6, 3);
    expect(zero.rank).to.equal(0);
    const wideDeficient = checkDecomposition(
      Float64Array.from({ length: 3 * 7 }, (_, i) => (i % 7) + 1),
      3,
      7,
    );
    expect(wideDeficient.rank).to.equal(1);
  });

  for (const [name, c] of Object.entries(fixture.cases)) {
    it(`agrees with numpy (LAPACK) on the '${name}' ${c.rows}×${c.cols} fixture: σ, rank, vectors up to sign`, () => {
      const a = Float64Array.from(c.a);
      const d = checkDecomposition(a, c.rows, c.cols);
      const k = Math.min(c.rows, c.cols);
      expect(d.rank).to.equal(c.rank);
      for (let j = 0; j < k; j++) expect(d.s[j]).to.be.closeTo(c.s[j], 1e-12);
      // Singular vectors of distinct non-zero σ are unique up to sign.
      for (let j = 0; j < c.rank; j++) {
        let du = 0;
        let dv = 0;
        for (let i = 0; i < c.rows; i++) du += d.u[i * k + j] * c.u[i * k + j];
        for (let i = 0; i < c.cols; i++) dv += d.v[i * k + j] * c.v[i * k + j];
        expect(Math.abs(du), `|u_${j}·u_numpy|`).to.be.closeTo(1, 1e-10);
        expect(du * dv, `same sign flip of u_${j} and v_${j}`).to.be.above(0);
      }
    });
  }

  it('low-rank factors left·right are the truncated SVD and the captured energy is Σ_{j<r} σ² / Σ σ²', () => {
    const m = 9;
    const n = 6;
    const a = randomMatrix(m, n, 3);
    const d = svd(a, m, n);
    const full = lowRankFactors(d, 99);
    expect(full.rank).to.equal(6);
    for (const r of [0, 2, 6]) {
      const { left: b, right: f } = lowRankFactors(d, r);
      let err2 = 0;
      let total2 = 0;
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          let x = 0;
          for (let c = 0; c < r; c++) x += b[i * r + c] * f[c * n + j];
          err2 += (a[i * n + j] - x) ** 2;
          total2 += a[i * n + j] ** 2;
        }
      }
      // Eckart–Young: the residual energy is exactly the dropped σ².
      expect(1 - err2 / total2, `rank ${r}`).to.be.closeTo(energyCaptured(d.s, r), 1e-12);
    }
    expect(energyCaptured(d.s, 6)).to.be.closeTo(1, 1e-15);
    expect(energyCaptured(new Float64Array(3), 1)).to.equal(1);
  });

  it('refuses bad input, naming it', () => {
    expect(() => svd(new Float64Array(5), 2, 3)).to.throw(/5 values for a 2×3 matrix/);
    expect(() => svd(Float64Array.from([1, NaN]), 1, 2)).to.throw(/not finite/);
    expect(() => svd(new Float64Array(0), 0, 3)).to.throw(/positive integers/);
  });
});
