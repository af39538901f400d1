/**
 * Reproduces the attack entries of test/fixtures/robust-aggregation-vectors.json (honest = the first 5 rows),
 * ByzFL's tests/unit_test_attacks.py values (X = [[1,2,3],[4,5,6],[7,8,9]]), and independent numpy runs of the
 * NDSS'21 min-max / min-sum search and of the paper ALIE on the shared input.
 */
import { expect } from 'chai';
import { createAttack } from '../../../src/core/attacks/registry.ts';
import type { OptimalAttack } from '../../../src/core/attacks/optimalIpm.ts';
import type { MinMaxAttack } from '../../../src/core/attacks/minmax.ts';
import { clipping, ctxOf, expectClose, f32, loadSharedVectors, nnm, trmean } from './helpers.ts';

describe('attacks: shared vectors (byzfl_attacks_on_first5_rows)', () => {
  const shared = loadSharedVectors();
  const honest = f32(shared.input.X_rows_are_workers.slice(0, 5));
  const expected = shared.byzfl_attacks_on_first5_rows;
  const ctx = ctxOf(honest, { n: shared.input.n, f: shared.input.f });

  const cases: Record<string, [string, Record<string, unknown>]> = {
    SignFlipping: ['signflip', {}],
    InnerProductManipulation_tau2: ['ipm', {}],
    'InnerProductManipulation_tau0.1': ['ipm', { epsilon: 0.1 }],
    'ALittleIsEnough_tau1.5_sampleStd': ['alie', { tau: 1.5 }],
    Mimic_eps0: ['mimic', {}],
  };

  it('covers every attack entry of the file', () => {
    expect(Object.keys(expected).sort()).to.deep.equal(Object.keys(cases).sort());
  });

  for (const [entry, [name, options]] of Object.entries(cases)) {
    it(`${entry} → ${name} ${JSON.stringify(options)}`, () => {
      expectClose(createAttack(name, options).craft(ctx), expected[entry]);
    });
  }
});

describe('attacks: ByzFL unit_test_attacks.py values', () => {
  const X = f32([
    [1, 2, 3],
    [4, 5, 6],
    [7, 8, 9],
  ]);
  const ctx = ctxOf(X, { n: 4, f: 1 });

  it('SignFlipping → [−4, −5, −6]', () => expectClose(createAttack('signflip', {}).craft(ctx), [-4, -5, -6]));
  it('IPM(2.0) → [−8, −10, −12]', () =>
    expectClose(createAttack('ipm', { tau: 2.0 }).craft(ctx), [-8, -10, -12]));
  it('ALIE(1.5) → [8.5, 9.5, 10.5]', () =>
    expectClose(createAttack('alie', { tau: 1.5 }).craft(ctx), [8.5, 9.5, 10.5]));
  it('Mimic(0) → [1, 2, 3]', () => expectClose(createAttack('mimic', { epsilon: 0 }).craft(ctx), [1, 2, 3]));
  it('Inf → [inf, inf, inf]', () =>
    expect(Array.from(createAttack('inf', {}).craft(ctx))).to.deep.equal([Infinity, Infinity, Infinity]));
  it('Gaussian: shape and finiteness', () => {
    const x = createAttack('gaussian', {}).craft(ctx);
    expect(x.length).to.equal(3);
    expect(Array.from(x).every(Number.isFinite)).to.equal(true);
  });

  // Optimal_*(TrMean(1), [NNM(1), Clipping(2.0)], f=1).
  const pre = [nnm(1), clipping(2.0)];
  const agg = trmean(1);
  const aggregate = (vectors: Float32Array[]) => agg(pre.reduce((v, p) => p(v), vectors));

  it('Optimal_IPM(TrMean(1), [NNM(1), Clipping()], f=1) → [−2.74877907, −3.43597384, −4.1231686]', () => {
    const attack = createAttack('optimalIpm', {}) as OptimalAttack;
    expectClose(attack.craft({ ...ctx, aggregate }), [-2.74877907, -3.43597384, -4.1231686]);
    expect(attack.lastTau).to.be.closeTo(2.74877907 / 4, 1e-7);
  });

  it('Optimal_ALIE(TrMean(1), [NNM(1), Clipping()], f=1) → [12.91985116, 13.91985116, 14.91985116]', () => {
    const attack = createAttack('optimalAlie', {});
    expectClose(attack.craft({ ...ctx, aggregate }), [12.91985116, 13.91985116, 14.91985116]);
  });
});

describe('attacks: numpy reference runs on the shared input (first 5 rows honest, n = 7, f = 2)', () => {
  const shared = loadSharedVectors();
  const honest = f32(shared.input.X_rows_are_workers.slice(0, 5));
  const ctx = ctxOf(honest, { n: 7, f: 2 });

  // numpy float64 port of our_attack_dist / our_attack_score, input rounded to float32 first.
  const ref: Record<string, { x: number[]; gamma: number }> = {
    max_std: {
      x: [
        0.4900240514315557, 1.0038071995700364, -0.3743730151307405, -1.4807221785934543, -0.4531759741067723,
        2.1771232947803245,
      ],
      gamma: 1.2857627868652344,
    },
    max_unit_vec: {
      x: [
        0.6696725996221596, 1.1100284106644414, 0.1895870749269703, -0.40140362754151715, 0.15506025395987633,
        1.5859466575338252,
      ],
      gamma: 1.750335693359375,
    },
    max_sign: {
      x: [
        0.44380397796630855, 1.2509039402008058, -0.43611403182148933, 0.04788903892040253,
        -0.49939603060483934, 2.123184013366699,
      ],
      gamma: 0.7835960388183594,
    },
    sum_std: {
      x: [
        1.0508524491651514, 1.7877245052788417, 0.17465056914340943, -0.9140835999208808, 0.10765243653160586,
        2.7320806698214617,
      ],
      gamma: 0.3078460693359375,
    },
    sum_unit_vec: {
      x: [
        1.0794960151275892, 1.7893389197449023, 0.3056097741177283, -0.6470529280028919, 0.24995337475178311,
        2.5565076098060984,
      ],
      gamma: 0.46417236328125,
    },
    sum_sign: {
      x: [
        1.037904930114746, 1.8450048923492433, 0.15798692032694817, -0.546211913228035, 0.09470492154359816,
        2.7172849655151365,
      ],
      gamma: 0.18949508666992188,
    },
  };

  for (const [key, { x, gamma }] of Object.entries(ref)) {
    const [objective, devType] = [key.slice(0, 3), key.slice(4)];
    const name = objective === 'max' ? 'minmax' : 'minsum';
    it(`${name} devType '${devType}': γ = ${gamma}`, () => {
      const attack = createAttack(name, { devType }) as MinMaxAttack;
      expectClose(attack.craft(ctx), x);
      expect(attack.lastGamma).to.equal(gamma);
    });
  }

  it('alie (paper): z = Φ⁻¹(5/7) = 0.5659488219328631, x = μ − zσ', () => {
    expectClose(
      createAttack('alie', {}).craft(ctx),
      [
        0.9028323257795136, 1.5808242541787303, 0.029746104579387866, -1.0636372114518333,
        -0.040367690260006917, 2.5856100926193797,
      ],
    );
  });
});
