import { expect } from 'chai';
import { createAttack, listAttacks } from '../../../src/core/attacks/registry.ts';
import { meanPlusStd } from '../../../src/core/attacks/alie.ts';
import { flipLabels } from '../../../src/core/attacks/labelflip.ts';
import { AttackError, type AttackContext } from '../../../src/core/attacks/types.ts';
import { Rng } from '../../../src/core/random.ts';
import { ctxOf, expectClose, expectUnchanged, f32, snapshot } from './helpers.ts';

const H = f32([
  [1, 2, 3, 4],
  [2, 0, 1, 8],
  [3, 1, -1, 0],
]);
const OWN = Float32Array.from([0.5, -1, 2, 0]);
const MU = [2, 1, 1, 4];
// Sample std (ddof 1) of H per coordinate.
const SIGMA = [1, 1, 2, 4];

function fullCtx(seed = 42, round = 0): AttackContext {
  return {
    honest: H,
    own: OWN,
    flippedHonest: f32([
      [1, 1, 1, 1],
      [3, 3, 3, 3],
    ]),
    n: 5,
    f: 2,
    rng: new Rng(seed),
    round,
  };
}

function bytes(v: Float32Array): number[] {
  return Array.from(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
}

describe('attacks: common properties of every registered attack', () => {
  const vectorAttacks = listAttacks().filter((name) => name !== 'crash');

  for (const name of vectorAttacks) {
    it(`${name}: never mutates or returns its inputs`, () => {
      const ctx = fullCtx();
      const before = snapshot([...ctx.honest, ctx.own!, ...ctx.flippedHonest!]);
      const x = createAttack(name, {}).craft(ctx);
      expectUnchanged([...ctx.honest, ctx.own!, ...ctx.flippedHonest!], before);
      for (const v of [...ctx.honest, ctx.own!, ...ctx.flippedHonest!]) expect(x).to.not.equal(v);
    });

    it(`${name}: deterministic given the seed`, () => {
      const a = createAttack(name, {});
      const b = createAttack(name, {});
      for (let round = 0; round < 3; round++) {
        expect(bytes(a.craft(fullCtx(7, round)))).to.deep.equal(bytes(b.craft(fullCtx(7, round))));
      }
    });

    it(`${name}: writes into a provided buffer of the output length`, () => {
      const len = createAttack(name, {}).craft(fullCtx()).length;
      const out = new Float32Array(len);
      expect(createAttack(name, {}).craft(fullCtx(), out)).to.equal(out);
    });
  }
});

describe('attacks: signflip and scaledReverse', () => {
  it('signflip: −μ by default, −own with mode own', () => {
    expectClose(createAttack('signflip', {}).craft(fullCtx()), [-2, -1, -1, -4]);
    expectClose(createAttack('signflip', { mode: 'own' }).craft(fullCtx()), [-0.5, 1, -2, 0]);
    expect(() => createAttack('signflip', { mode: 'own' }).craft(ctxOf(H))).to.throw(AttackError, /ctx.own/);
  });

  it('scaledReverse: −10·own by default, −k·μ without own or with source mean', () => {
    expectClose(createAttack('scaledReverse', {}).craft(fullCtx()), [-5, 10, -20, 0]);
    expectClose(createAttack('scaledReverse', { k: 3 }).craft(ctxOf(H)), [-6, -3, -3, -12]);
    expectClose(createAttack('scaledReverse', { source: 'mean' }).craft(fullCtx()), [-20, -10, -10, -40]);
    expect(() => createAttack('scaledReverse', { source: 'own' }).craft(ctxOf(H))).to.throw(AttackError);
  });
});

describe('attacks: gaussian and uniform', () => {
  const d = 20000;
  const ctx = (seed: number): AttackContext => ({ honest: [], n: 10, f: 2, rng: new Rng(seed), round: 0, d });

  it('gaussian: N(μ_G, σ_G²) per coordinate, reproducible per seed', () => {
    const x = createAttack('gaussian', { mu: 3, sigma: 2 }).craft(ctx(5));
    expect(x.length).to.equal(d);
    let s = 0;
    let q = 0;
    for (const v of x) s += v;
    const mean = s / d;
    for (const v of x) q += (v - mean) ** 2;
    expect(mean).to.be.closeTo(3, 0.1);
    expect(Math.sqrt(q / d)).to.be.closeTo(2, 0.1);
    expect(bytes(createAttack('gaussian', { mu: 3, sigma: 2 }).craft(ctx(5)))).to.deep.equal(bytes(x));
    expect(bytes(createAttack('gaussian', { mu: 3, sigma: 2 }).craft(ctx(6)))).to.not.deep.equal(bytes(x));
  });

  it('uniform: U[0, 1) by default, U[low, high) with options', () => {
    const x = createAttack('uniform', {}).craft(ctx(1));
    expect(Math.min(...x)).to.be.at.least(0);
    expect(Math.max(...x)).to.be.lessThan(1);
    expect(x.reduce((s, v) => s + v, 0) / d).to.be.closeTo(0.5, 0.02);
    const y = createAttack('uniform', { low: -2, high: -1 }).craft(ctx(1));
    expect(Math.min(...y)).to.be.at.least(-2);
    expect(Math.max(...y)).to.be.lessThan(-1);
    expect(() => createAttack('uniform', { low: 1, high: 1 })).to.throw(AttackError, /high > low/);
  });

  it('needs a dimension from own, honest or ctx.d', () => {
    expect(() =>
      createAttack('gaussian', {}).craft({ honest: [], n: 2, f: 1, rng: new Rng(1), round: 0 }),
    ).to.throw(AttackError, /dimension/);
    expect(createAttack('uniform', {}).craft(fullCtx()).length).to.equal(4);
  });
});

describe('attacks: labelflip', () => {
  it('flipLabels maps y → C − 1 − y without touching its input', () => {
    const labels = Uint8Array.from([0, 1, 5, 9]);
    expect(Array.from(flipLabels(labels, 10))).to.deep.equal([9, 8, 4, 0]);
    expect(Array.from(labels)).to.deep.equal([0, 1, 5, 9]);
    expect(Array.from(flipLabels(Uint8Array.from([0, 1]), 2))).to.deep.equal([1, 0]);
    expect(() => flipLabels(Uint8Array.from([10]), 10)).to.throw(AttackError, /not < 10/);
  });

  it('is data-side; transformLabels uses the classes option', () => {
    const attack = createAttack('labelflip', { classes: 3 });
    expect(attack.dataSide).to.equal(true);
    expect(Array.from(attack.transformLabels!(Uint8Array.from([0, 1, 2])))).to.deep.equal([2, 1, 0]);
  });

  it('returns the mean of flippedHonest (ByzFL simulation), else the own (flipped-label) gradient', () => {
    expectClose(createAttack('labelflip', {}).craft(fullCtx()), [2, 2, 2, 2]);
    expectClose(createAttack('labelflip', {}).craft(ctxOf(H, { own: OWN })), Array.from(OWN));
    expect(() => createAttack('labelflip', {}).craft(ctxOf(H))).to.throw(AttackError, /flippedHonest/);
  });
});

describe('attacks: alie, ipm, mimic', () => {
  it('alie: tau gives μ + τσ, z gives μ − zσ (sample std)', () => {
    expectClose(
      createAttack('alie', { tau: 1.5 }).craft(fullCtx()),
      MU.map((m, k) => m + 1.5 * SIGMA[k]),
    );
    expectClose(
      createAttack('alie', { z: 0.5 }).craft(fullCtx()),
      MU.map((m, k) => m - 0.5 * SIGMA[k]),
    );
    expectClose(
      createAttack('alie', { z: -1.5 }).craft(fullCtx()),
      createAttack('alie', { tau: 1.5 }).craft(fullCtx()),
    );
  });

  it('alie: default z from ctx.n, ctx.f (paper) or the honest-denominator variant; ddof option', () => {
    // n = 5, f = 2: s = 1, paper z = Φ⁻¹(4/5) = 0.8416212335729143; honest: Φ⁻¹(2/3) = 0.4307272992954575.
    expectClose(
      createAttack('alie', {}).craft(fullCtx()),
      MU.map((m, k) => m - 0.8416212335729143 * SIGMA[k]),
    );
    expectClose(
      createAttack('alie', { zVariant: 'honest' }).craft(fullCtx()),
      MU.map((m, k) => m - 0.4307272992954575 * SIGMA[k]),
    );
    const popStd = SIGMA.map((s) => s * Math.sqrt(2 / 3));
    expectClose(
      createAttack('alie', { tau: 1, ddof: 0 }).craft(fullCtx()),
      MU.map((m, k) => m + popStd[k]),
    );
  });

  it('alie: a single sample gives σ = 0 (x = μ), not NaN; tau and z are exclusive', () => {
    expectClose(createAttack('alie', { tau: 1.5 }).craft(ctxOf([H[0]])), Array.from(H[0]));
    expect(() => createAttack('alie', { tau: 1, z: 1 })).to.throw(AttackError, /not both/);
  });

  it('ipm: −ε·μ with ε = 2 by default; epsilon or its alias tau', () => {
    expectClose(createAttack('ipm', {}).craft(fullCtx()), [-4, -2, -2, -8]);
    expectClose(createAttack('ipm', { epsilon: 0.1 }).craft(fullCtx()), [-0.2, -0.1, -0.1, -0.4]);
    expectClose(createAttack('ipm', { tau: 0.1 }).craft(fullCtx()), [-0.2, -0.1, -0.1, -0.4]);
    expect(() => createAttack('ipm', { tau: 1, epsilon: 1 })).to.throw(AttackError, /not both/);
  });

  it('mimic: a copy of honest vector #ε; out of range throws', () => {
    const x = createAttack('mimic', { epsilon: 2 }).craft(fullCtx());
    expect(Array.from(x)).to.deep.equal(Array.from(H[2]));
    expect(x).to.not.equal(H[2]);
    expect(() => createAttack('mimic', { epsilon: 3 }).craft(fullCtx())).to.throw(
      AttackError,
      /out of range/,
    );
  });
});

describe('attacks: meanPlusStd', () => {
  /** The definition, one coordinate at a time: float64 sums in worker order, one rounding. */
  function reference(vectors: Float32Array[], c: number, ddof: number, d: number): Float32Array {
    const m = vectors.length;
    const out = new Float32Array(d);
    for (let k = 0; k < d; k++) {
      let s = 0;
      for (let i = 0; i < m; i++) s += vectors[i][k];
      const mu = s * (1 / m);
      let q = 0;
      for (let i = 0; i < m; i++) {
        const t = vectors[i][k] - mu;
        q += t * t;
      }
      out[k] = m - ddof > 0 ? mu + c * Math.sqrt(q / (m - ddof)) : mu;
    }
    return out;
  }

  it('equals the per-coordinate definition bit for bit, across sizes (its scratch grows and is reused)', () => {
    const rng = new Rng(11);
    for (const [m, d, c, ddof] of [
      [10, 1000, 1.5, 1],
      [3, 50, -0.43, 1],
      [1, 20, 1.5, 1],
      [7, 3000, 0, 0],
      [4, 10, 3, 2],
    ] as const) {
      const vectors = Array.from({ length: m }, () =>
        Float32Array.from({ length: d }, () => 1e3 * rng.normal()),
      );
      const got = meanPlusStd(vectors, c, ddof, new Float32Array(d));
      expect(Array.from(got), `m=${m} d=${d}`).to.deep.equal(Array.from(reference(vectors, c, ddof, d)));
    }
  });
});

describe('attacks: inf, nan, wrongSize', () => {
  it('inf: +∞ everywhere, −∞ with negative', () => {
    expect(Array.from(createAttack('inf', {}).craft(fullCtx()))).to.deep.equal([
      Infinity,
      Infinity,
      Infinity,
      Infinity,
    ]);
    expect(Array.from(createAttack('inf', { negative: true }).craft(fullCtx()))).to.deep.equal([
      -Infinity,
      -Infinity,
      -Infinity,
      -Infinity,
    ]);
  });

  it('nan: NaN everywhere; with fraction only some coordinates, the rest the own gradient', () => {
    expect(Array.from(createAttack('nan', {}).craft(fullCtx())).every(Number.isNaN)).to.equal(true);
    const d = 1000;
    const own = Float32Array.from({ length: d }, (_, k) => k);
    const ctx: AttackContext = { honest: [], own, n: 4, f: 1, rng: new Rng(3), round: 0 };
    const x = createAttack('nan', { fraction: 0.1 }).craft(ctx);
    let hits = 0;
    for (let k = 0; k < d; k++) {
      if (Number.isNaN(x[k])) hits++;
      else expect(x[k]).to.equal(k);
    }
    expect(hits).to.be.within(50, 150);
    // At least one coordinate even for a tiny fraction.
    const y = createAttack('inf', { fraction: 1e-9 }).craft({ ...ctx, rng: new Rng(3) });
    expect(Array.from(y).filter((v) => v === Infinity).length).to.equal(1);
  });

  it('wrongSize: d + 1 by default, truncated or zero-padded honest vector', () => {
    expect(Array.from(createAttack('wrongSize', {}).craft(fullCtx()))).to.deep.equal([0.5, -1, 2, 0, 0]);
    expect(Array.from(createAttack('wrongSize', { delta: -2 }).craft(fullCtx()))).to.deep.equal([0.5, -1]);
    expect(createAttack('wrongSize', { length: 10 }).craft(ctxOf(H)).length).to.equal(10);
    expect(() => createAttack('wrongSize', { length: 4 }).craft(fullCtx())).to.throw(AttackError, /equals d/);
    expect(() => createAttack('wrongSize', { delta: 0 })).to.throw(AttackError);
  });
});

describe('attacks: replay', () => {
  const ownAt = (r: number) => Float32Array.from([r, 10 * r]);
  const ctxAt = (r: number): AttackContext => ({
    honest: [],
    own: ownAt(r),
    n: 4,
    f: 1,
    rng: new Rng(1),
    round: r,
  });

  it('sends the vector of `lag` rounds ago (the current one until it has that much history)', () => {
    const attack = createAttack('replay', { lag: 2 });
    const sent = [0, 1, 2, 3, 4].map((r) => Array.from(attack.craft(ctxAt(r))));
    expect(sent).to.deep.equal([
      [0, 0],
      [1, 10],
      [0, 0],
      [1, 10],
      [2, 20],
    ]);
  });

  it('default lag 1; freeze replays the first vector; reset forgets', () => {
    const one = createAttack('replay', {});
    expect([0, 1, 2].map((r) => one.craft(ctxAt(r))[0])).to.deep.equal([0, 0, 1]);
    const frozen = createAttack('replay', { freeze: true });
    expect([5, 6, 7].map((r) => frozen.craft(ctxAt(r))[0])).to.deep.equal([5, 5, 5]);
    frozen.reset!();
    expect(frozen.craft(ctxAt(9))[0]).to.equal(9);
  });

  it('uses μ when it has no own gradient', () => {
    expectClose(createAttack('replay', {}).craft(ctxOf(H)), MU);
  });
});

describe('attacks: crash and straggle (runtime behaviours)', () => {
  it('crash: behaviour flag; craft throws from fromRound on, honest before', () => {
    const attack = createAttack('crash', { fromRound: 3 });
    expect(attack.behaviour).to.equal('crash');
    expect(attack.fromRound).to.equal(3);
    expect(Array.from(attack.craft(fullCtx(1, 2)))).to.deep.equal(Array.from(OWN));
    expect(() => attack.craft(fullCtx(1, 3))).to.throw(AttackError, /crashed/);
    expect(createAttack('crash', {}).fromRound).to.equal(0);
  });

  it('straggle: behaviour flag with delayMs (default 5000); craft returns the honest vector', () => {
    const attack = createAttack('straggle', {});
    expect(attack.behaviour).to.equal('straggle');
    expect(attack.delayMs).to.equal(5000);
    expect(createAttack('straggle', { delayMs: 250 }).delayMs).to.equal(250);
    expect(Array.from(attack.craft(fullCtx()))).to.deep.equal(Array.from(OWN));
  });

  it('vector attacks have no behaviour flag', () => {
    for (const name of listAttacks().filter((n) => n !== 'crash' && n !== 'straggle')) {
      expect(createAttack(name, {}).behaviour, name).to.equal(undefined);
    }
  });
});
