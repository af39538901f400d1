/**
 * Reproduces every aggregator / pre-aggregator entry of test/fixtures/robust-aggregation-vectors.json that
 * these rules implement (ByzFL and FA-repo/Garfield variants; the FA (flag) and attack entries are tested
 * elsewhere), and the fixed values of ByzFL's tests/unit_test_aggregators.py and unit_test_preaggregators.py.
 */
import { expect } from 'chai';
import { createPreAggregator, createRule } from '../../../src/core/aggregation/registry.ts';
import { expectClose, f32, ids, loadSharedVectors, run } from './helpers.ts';

const shared = loadSharedVectors();
const X = f32(shared.input.X_rows_are_workers);
const f = shared.input.f;

describe('aggregation vectors: byzfl_aggregators', () => {
  const expected = shared.byzfl_aggregators;
  const cases: Record<string, [string, Record<string, unknown>]> = {
    Average: ['mean', {}],
    Median: ['median', { compat: 'byzfl' }],
    TrMean_f2: ['trimmedMean', { compat: 'byzfl' }],
    'GeometricMedian_nu0.1_T3_init0': ['geometricMedian', { compat: 'byzfl' }],
    Krum_f2: ['krum', { compat: 'byzfl' }],
    MultiKrum_f2: ['multiKrum', { compat: 'byzfl' }],
    CenteredClipping_m0_L1_tau100: ['centeredClipping', { compat: 'byzfl' }],
    CenteredClipping_m0_L1_tau1: ['centeredClipping', { tau: 1 }],
    CenteredClipping_m0_L3_tau1: ['centeredClipping', { tau: 1, L: 3 }],
    Meamed_f2: ['meamed', { compat: 'byzfl' }],
    MoNNA_f2_idx0: ['monna', { idx: 0 }],
    MDA_f2: ['mda', {}],
  };

  it('covers every aggregator entry of the file', () => {
    const entries = Object.keys(expected).filter((k) => k !== 'Krum_f2_selected_row');
    expect(entries.sort()).to.deep.equal(Object.keys(cases).sort());
  });

  for (const [entry, [rule, options]] of Object.entries(cases)) {
    it(`${entry} → ${rule} ${JSON.stringify(options)}`, () => {
      expectClose(run(rule, X, f, options).update, expected[entry] as number[], 1e-5, entry);
    });
  }

  it('Krum_f2_selected_row: the selected worker is reported in the health records', () => {
    const r = run('krum', X, f, { compat: 'byzfl' });
    const selected = r.workers.filter((w) => w.included).map((w) => w.index);
    expect(selected).to.deep.equal([expected.Krum_f2_selected_row]);
    expect(r.workers[selected[0]].trust).to.equal(1);
  });
});

describe('aggregation vectors: byzfl_preaggregators', () => {
  const expected = shared.byzfl_preaggregators;

  it('covers every pre-aggregator entry of the file', () => {
    expect(Object.keys(expected).sort()).to.deep.equal([
      'ARC_f2',
      'Clipping_c2',
      'NNM_f2',
      'NNM_f2_then_TrMean_f2',
    ]);
  });

  const rows: Record<string, string> = { NNM_f2: 'nnm', Clipping_c2: 'clip(c=2)', ARC_f2: 'arc' };
  for (const [entry, spec] of Object.entries(rows)) {
    it(`${entry} → ${spec}`, () => {
      const out = createPreAggregator(spec).apply(X, f);
      const exp = expected[entry] as number[][];
      expect(out.length).to.equal(exp.length);
      out.forEach((v, i) => expectClose(v, exp[i], 1e-5, `${entry} row ${i}`));
    });
  }

  it('NNM_f2_then_TrMean_f2 → trimmedMean after nnm', () => {
    const mixed = createPreAggregator('nnm').apply(X, f);
    const r = createRule('trimmedMean').aggregate({ vectors: mixed, workerIds: ids(mixed.length), f });
    expectClose(r.update, expected.NNM_f2_then_TrMean_f2 as number[]);
  });

  it('pre-aggregators never mutate their input', () => {
    const copy = X.map((v) => v.slice());
    for (const spec of ['nnm', 'clip(c=2)', 'arc', 'bucketing(s=2)']) createPreAggregator(spec).apply(X, f);
    X.forEach((v, i) => expect(Array.from(v)).to.deep.equal(Array.from(copy[i])));
  });
});

describe('aggregation vectors: flagaggregator_repo (Garfield variants)', () => {
  const expected = shared.flagaggregator_repo as Record<string, number[]>;
  const cases: Record<string, [string, Record<string, unknown>, number]> = {
    'MultiKrum_f2_m_default(n-f-2)_nonsquared': ['multiKrum', { compat: 'garfield' }, f],
    Krum_f2_m1_nonsquared: ['krum', { compat: 'garfield' }, f],
    Bulyan_f1: ['bulyan', { compat: 'garfield' }, 1],
    median_lower: ['median', { compat: 'garfield' }, f],
    trmean_f2: ['trimmedMean', { compat: 'garfield' }, f],
    phocas_f2: ['phocas', { compat: 'garfield' }, f],
    meamed_f2: ['meamed', { compat: 'garfield' }, f],
  };

  it('covers every non-FA entry of the file', () => {
    const entries = Object.keys(expected).filter((k) => !k.startsWith('FA_'));
    expect(entries.sort()).to.deep.equal(Object.keys(cases).sort());
  });

  for (const [entry, [rule, options, ff]] of Object.entries(cases)) {
    it(`${entry} → ${rule} ${JSON.stringify(options)} f=${ff}`, () => {
      expectClose(run(rule, X, ff, options).update, expected[entry], 1e-5, entry);
    });
  }

  it('garfield Multi-Krum with m = 1 is garfield Krum', () => {
    expectClose(run('multiKrum', X, f, { compat: 'garfield', m: 1 }).update, expected.Krum_f2_m1_nonsquared);
  });
});

describe('aggregation vectors: ByzFL unit tests (X = [[1,2,3],[4,5,6],[7,8,9]])', () => {
  const Y = f32([
    [1, 2, 3],
    [4, 5, 6],
    [7, 8, 9],
  ]);
  const cases: [string, string, Record<string, unknown>, number, number[]][] = [
    ['Average', 'mean', {}, 0, [4, 5, 6]],
    ['Median', 'median', { compat: 'byzfl' }, 0, [4, 5, 6]],
    ['TrMean(1)', 'trimmedMean', {}, 1, [4, 5, 6]],
    ['GeometricMedian()', 'geometricMedian', { compat: 'byzfl' }, 0, [3.78788764, 4.78788764, 5.78788764]],
    ['Krum(1)', 'krum', { compat: 'byzfl' }, 1, [1, 2, 3]],
    ['MultiKrum(1)', 'multiKrum', { compat: 'byzfl' }, 1, [2.5, 3.5, 4.5]],
    ['CenteredClipping()', 'centeredClipping', {}, 0, [4, 5, 6]],
    ['MDA(1)', 'mda', {}, 1, [2.5, 3.5, 4.5]],
    ['MoNNA(1, 1)', 'monna', { idx: 1 }, 1, [2.5, 3.5, 4.5]],
    ['Meamed(1)', 'meamed', { compat: 'byzfl' }, 1, [2.5, 3.5, 4.5]],
  ];
  for (const [label, rule, options, ff, exp] of cases) {
    it(`${label} → ${exp.join(', ')}`, () => expectClose(run(rule, Y, ff, options).update, exp));
  }

  const preCases: [string, string, number, number[][]][] = [
    [
      'NNM(1)',
      'nnm',
      1,
      [
        [2.5, 3.5, 4.5],
        [2.5, 3.5, 4.5],
        [5.5, 6.5, 7.5],
      ],
    ],
    [
      'Clipping(2.0)',
      'clip(2)',
      0,
      [
        [0.53452248, 1.06904497, 1.60356745],
        [0.91168461, 1.13960576, 1.36752692],
        [1.00514142, 1.14873305, 1.29232469],
      ],
    ],
    [
      'ARC(1)',
      'arc',
      1,
      [
        [1, 2, 3],
        [4, 5, 6],
        [4.41004009, 5.04004582, 5.67005155],
      ],
    ],
  ];
  for (const [label, spec, ff, exp] of preCases) {
    it(`${label}`, () => {
      const out = createPreAggregator(spec).apply(Y, ff);
      out.forEach((v, i) => expectClose(v, exp[i], 1e-5, `${label} row ${i}`));
    });
  }
});
