import { expect } from 'chai';
import { sampleGamma, sampleSymmetricDirichlet } from '../../../src/core/gamma.ts';
import { Rng } from '../../../src/core/random.ts';

describe('core: Gamma and Dirichlet draws', () => {
  // Gamma(a, 1) has mean a and variance a. With N draws the sample mean's standard error is √(a/N) and the sample
  // variance's is √((μ₄ − σ⁴)/N) = √((2a² + 6a)/N) (μ₄ = 3a² + 6a); we allow 4 standard errors.
  for (const a of [0.3, 1, 5]) {
    it(`Gamma(${a}) draws have mean ${a} and variance ${a}`, () => {
      const rng = new Rng(1234);
      const N = 200_000;
      let sum = 0;
      let sumSq = 0;
      let min = Infinity;
      for (let i = 0; i < N; i++) {
        const x = sampleGamma(rng, a);
        min = Math.min(min, x);
        sum += x;
        sumSq += x * x;
      }
      expect(min).to.be.above(0);
      const mean = sum / N;
      const variance = sumSq / N - mean * mean;
      expect(Math.abs(mean - a)).to.be.below(4 * Math.sqrt(a / N));
      expect(Math.abs(variance - a)).to.be.below(4 * Math.sqrt((2 * a * a + 6 * a) / N));
    });
  }

  it('is deterministic per seed and refuses a non-positive shape', () => {
    const a = Array.from(
      { length: 5 },
      (
        (r) => () =>
          sampleGamma(r, 0.7)
      )(new Rng(9)),
    );
    const b = Array.from(
      { length: 5 },
      (
        (r) => () =>
          sampleGamma(r, 0.7)
      )(new Rng(9)),
    );
    expect(a).to.deep.equal(b);
    expect(() => sampleGamma(new Rng(1), 0)).to.throw(/shape must be > 0/);
    expect(() => sampleGamma(new Rng(1), Number.NaN)).to.throw(/shape must be > 0/);
  });

  it('Dirichlet proportions are finite, sum to 1 and have mean 1/k, even for α = 0.001 (every Gamma draw may underflow)', () => {
    for (const alpha of [0.001, 0.01, 0.3, 50]) {
      const rng = new Rng(5);
      const k = 6;
      const mean = new Float64Array(k);
      const draws = 20_000;
      let worstSumError = 0;
      let allFinite = true;
      for (let t = 0; t < draws; t++) {
        const p = sampleSymmetricDirichlet(rng, alpha, k);
        let s = 0;
        for (const v of p) {
          allFinite &&= Number.isFinite(v) && v >= 0;
          s += v;
        }
        worstSumError = Math.max(worstSumError, Math.abs(s - 1));
        for (let i = 0; i < k; i++) mean[i] += p[i] / draws;
      }
      expect(allFinite).to.equal(true);
      expect(worstSumError).to.be.below(1e-12);
      // Var(p_i) = (k−1)/(k²(kα+1)) ≤ 5/36; 4 standard errors of the mean.
      for (const m of mean) expect(Math.abs(m - 1 / k)).to.be.below(4 * Math.sqrt(5 / 36 / draws));
    }
  });
});
