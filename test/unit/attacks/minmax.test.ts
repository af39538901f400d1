import { expect } from 'chai';
import { createAttack } from '../../../src/core/attacks/registry.ts';
import { shejwalkarAttack, type DeviationType } from '../../../src/core/attacks/shejwalkar.ts';
import type { MinMaxAttack } from '../../../src/core/attacks/minmax.ts';
import { Rng } from '../../../src/core/random.ts';
import { ctxOf, expectUnchanged, snapshot } from './helpers.ts';

function randomHonest(seed: number, m: number, d: number): Float32Array[] {
  const rng = new Rng(seed);
  const center = Float32Array.from({ length: d }, () => rng.normal());
  return Array.from({ length: m }, () => Float32Array.from(center, (c) => c + 0.5 * rng.normal()));
}

function sq(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let k = 0; k < a.length; k++) s += (a[k] - b[k]) ** 2;
  return s;
}

/** Independent float64 computation of the threshold and of the largest feasible γ (closed form). */
function reference(honest: Float32Array[], devType: DeviationType, objective: 'max' | 'sum') {
  const m = honest.length;
  const d = honest[0].length;
  const mu = new Float64Array(d);
  for (const h of honest) for (let k = 0; k < d; k++) mu[k] += h[k] / m;
  const p = new Float64Array(d);
  if (devType === 'std') {
    for (let k = 0; k < d; k++) {
      let q = 0;
      for (const h of honest) q += (h[k] - mu[k]) ** 2;
      p[k] = Math.sqrt(q / (m - 1));
    }
  } else if (devType === 'unit_vec') {
    const norm = Math.sqrt(sq(mu, new Float64Array(d)));
    for (let k = 0; k < d; k++) p[k] = mu[k] / norm;
  } else {
    for (let k = 0; k < d; k++) p[k] = Math.sign(mu[k]);
  }
  const D = honest.map((a) => honest.map((b) => sq(a, b)));
  const T =
    objective === 'max' ? Math.max(...D.flat()) : Math.min(...D.map((row) => row.reduce((s, v) => s + v, 0)));
  const P = sq(p, new Float64Array(d));
  // ‖μ − γp − h_i‖² = A_i − 2γB_i + γ²P; the feasible set is an interval containing 0.
  const A = honest.map((h) => sq(mu, h));
  const B = honest.map((h) => {
    let s = 0;
    for (let k = 0; k < d; k++) s += (mu[k] - h[k]) * p[k];
    return s;
  });
  const root = (a: number, b: number, c: number) => (b + Math.sqrt(b * b - a * c)) / a; // a γ² − 2bγ + c = 0
  const gammaStar =
    objective === 'max'
      ? Math.min(...A.map((Ai, i) => root(P, B[i], Ai - T)))
      : root(
          m * P,
          B.reduce((s, v) => s + v, 0),
          A.reduce((s, v) => s + v, 0) - T,
        );
  return { T, gammaStar };
}

describe('attacks: min-max / min-sum (Shejwalkar & Houmansadr)', () => {
  const devTypes: DeviationType[] = ['std', 'unit_vec', 'sign'];
  for (const objective of ['max', 'sum'] as const) {
    const name = objective === 'max' ? 'minmax' : 'minsum';
    for (const devType of devTypes) {
      for (const seed of [1, 2, 3]) {
        it(`${name} '${devType}' (seed ${seed}): satisfies the constraint with a near-maximal γ`, () => {
          const honest = randomHonest(seed, 9, 40);
          const before = snapshot(honest);
          const { T, gammaStar } = reference(honest, devType, objective);
          const gammaInit = 10;
          const r = shejwalkarAttack(honest, { objective, devType, gammaInit });
          expectUnchanged(honest, before);
          expect(r.threshold).to.be.closeTo(T, 1e-9 * T);
          // The search cannot exceed 2γ₀; these inputs stay well below.
          expect(gammaStar).to.be.lessThan(2 * gammaInit);
          expect(r.gamma).to.be.at.most(gammaStar + 1e-9);
          expect(gammaStar - r.gamma).to.be.at.most(4e-5);
          const dists = honest.map((h) => sq(r.vector, h));
          const lhs = objective === 'max' ? Math.max(...dists) : dists.reduce((s, v) => s + v, 0);
          expect(lhs).to.be.at.most(T * (1 + 1e-6));
          // Just past γ* the constraint fails.
          expect(r.lhs(gammaStar * (1 + 1e-3))).to.be.greaterThan(T);
        });
      }
    }
  }

  it('uses the registry defaults (devType std, γ₀ 10, tol 1e-5) and exposes lastGamma', () => {
    const honest = randomHonest(7, 6, 16);
    const attack = createAttack('minmax', {}) as MinMaxAttack;
    expect(Number.isNaN(attack.lastGamma)).to.equal(true);
    const x = attack.craft(ctxOf(honest));
    const r = shejwalkarAttack(honest, { objective: 'max', devType: 'std', gammaInit: 10, tol: 1e-5 });
    expect(Array.from(x)).to.deep.equal(Array.from(r.vector));
    expect(attack.lastGamma).to.equal(r.gamma);
  });

  it('stops at ≈ 2γ₀ when every γ is feasible (zero deviation: a single honest vector)', () => {
    const honest = [Float32Array.from([1, 2, 3])];
    const r = shejwalkarAttack(honest, { objective: 'max', devType: 'std' });
    expect(r.gamma).to.be.closeTo(20, 1e-4);
    expect(Array.from(r.vector)).to.deep.equal([1, 2, 3]);
  });

  it('returns γ = 0 (x = μ) when no γ > 0 is feasible', () => {
    // Two identical honest vectors: max pairwise distance 0, any move away from μ violates it.
    const honest = [Float32Array.from([1, -2]), Float32Array.from([1, -2])];
    const r = shejwalkarAttack(honest, { objective: 'max', devType: 'sign' });
    expect(r.gamma).to.equal(0);
    expect(Array.from(r.vector)).to.deep.equal([1, -2]);
  });

  it('writes into a provided output buffer', () => {
    const honest = randomHonest(4, 5, 8);
    const out = new Float32Array(8);
    const x = createAttack('minsum', { devType: 'unit_vec' }).craft(ctxOf(honest), out);
    expect(x).to.equal(out);
  });
});
