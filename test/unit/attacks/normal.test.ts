import { expect } from 'chai';
import { normalQuantile } from '../../../src/core/attacks/normal.ts';
import { alieZ } from '../../../src/core/attacks/alie.ts';
import { AttackError } from '../../../src/core/attacks/types.ts';

describe('attacks: Φ⁻¹ (normalQuantile, AS 241)', () => {
  // Reference values from mpmath (50 digits) / scipy.special.ndtri.
  const known: [number, number][] = [
    [0.975, 1.959963984540054],
    [0.025, -1.959963984540054],
    [0.5, 0],
    [0.6, 0.2533471031357997],
    [0.7, 0.5244005127080407],
    [0.9, 1.2815515655446004],
    [0.99, 2.3263478740408408],
    [0.999, 3.090232306167813],
    [0.8413447460685429, 1],
    [1e-5, -4.264890793922825],
    [1e-10, -6.361340902404057],
    [1e-20, -9.262340089798407],
    [1e-300, -37.0470962993612],
  ];
  for (const [p, x] of known) {
    it(`Φ⁻¹(${p}) = ${x} to 1e-9`, () => {
      expect(Math.abs(normalQuantile(p) - x)).to.be.at.most(1e-9 * Math.max(1, Math.abs(x)));
    });
  }

  it('is antisymmetric and increasing', () => {
    let prev = -Infinity;
    for (let i = 1; i < 1000; i++) {
      const p = i / 1000;
      const x = normalQuantile(p);
      expect(x).to.be.greaterThan(prev);
      expect(x + normalQuantile(1 - p)).to.be.closeTo(0, 1e-12);
      prev = x;
    }
  });

  it('returns ±∞ at 0 and 1 and NaN outside [0, 1]', () => {
    expect(normalQuantile(0)).to.equal(-Infinity);
    expect(normalQuantile(1)).to.equal(Infinity);
    expect(Number.isNaN(normalQuantile(-0.1))).to.equal(true);
    expect(Number.isNaN(normalQuantile(1.5))).to.equal(true);
    expect(Number.isNaN(normalQuantile(NaN))).to.equal(true);
  });
});

describe('attacks: ALIE z_max table (report §3)', () => {
  // (n, f) → [paper Φ⁻¹((n − s)/n), CRYPTO-KU Φ⁻¹((n − f − s)/(n − f))], s = ⌊n/2 + 1⌋ − f.
  const table: [number, number, number, number][] = [
    [12, 2, 0.2104, 0.0],
    [13, 3, 0.5024, 0.2533],
    [15, 3, 0.4307, 0.2104],
    [16, 3, 0.3186, 0.0966],
    [17, 4, 0.5414, 0.2934],
    [25, 5, 0.4677, 0.2533],
    [50, 10, 0.4677, 0.2533],
  ];
  for (const [n, f, paper, honest] of table) {
    it(`(n, f) = (${n}, ${f}) → ${paper} / ${honest}`, () => {
      expect(alieZ(n, f)).to.be.closeTo(paper, 5e-5);
      expect(alieZ(n, f, 'honest')).to.be.closeTo(honest, 5e-5);
    });
  }

  it("the FA repo's 0.21 is the paper value at n = 12, f = 2", () => {
    expect(alieZ(12, 2)).to.be.closeTo(0.21042839424792484, 1e-12);
  });

  it('throws when z would be infinite or (n, f) is invalid', () => {
    expect(() => alieZ(1, 0)).to.throw(AttackError, /infinite/);
    expect(() => alieZ(10, 7)).to.throw(AttackError, /infinite/);
    expect(() => alieZ(5, 5)).to.throw(AttackError, /0 ≤ f < n/);
    expect(() => alieZ(5.5, 1)).to.throw(AttackError);
  });
});
