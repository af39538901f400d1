/** Preconditions, options, health records, state and determinism of the individual rules. */
import { expect } from 'chai';
import { createPreAggregator, createRule } from '../../../src/core/aggregation/registry.ts';
import { PreconditionError } from '../../../src/core/aggregation/types.ts';
import { expectClose, f32, gaussian, ids, loadSharedVectors, run } from './helpers.ts';

const X = f32(loadSharedVectors().input.X_rows_are_workers); // n = 7; rows 5 and 6 are the outliers

function expectPrecondition(fn: () => unknown, message: string): void {
  expect(fn).to.throw(PreconditionError, message);
}

describe('aggregation rules: preconditions', () => {
  const five = gaussian(1, 5, 4);
  const cases: [string, Record<string, unknown>, Float32Array[], number, string][] = [
    ['krum', {}, five, 2, 'krum needs n > 2f + 2 (n=5, f=2)'],
    ['krum', { compat: 'garfield' }, five, 2, 'krum needs n > 2f + 2 (n=5, f=2)'],
    ['krum', { compat: 'byzfl' }, gaussian(1, 4, 3), 2, 'krum needs 2f < n (n=4, f=2)'],
    ['multiKrum', {}, five, 2, 'multiKrum needs n > 2f + 2 (n=5, f=2)'],
    ['multiKrum', { m: 9 }, X, 2, 'multiKrum needs 1 <= m <= n (m=9) (n=7, f=2)'],
    ['multiKrum', { compat: 'garfield', m: 4 }, X, 2, 'multiKrum needs 1 <= m <= n - f - 2 (m=4)'],
    ['bulyan', {}, X, 2, 'bulyan needs n >= 4f + 3 (n=7, f=2)'],
    ['bulyan', { compat: 'garfield' }, gaussian(1, 10, 3), 2, 'bulyan needs n >= 4f + 3 (n=10, f=2)'],
    ['trimmedMean', {}, gaussian(1, 4, 3), 2, 'trimmedMean needs 2f < n (n=4, f=2)'],
    ['median', {}, gaussian(1, 4, 3), 2, 'median needs 2f < n (n=4, f=2)'],
    ['meamed', {}, gaussian(1, 4, 3), 2, 'meamed needs 2f < n (n=4, f=2)'],
    ['phocas', {}, gaussian(1, 4, 3), 2, 'phocas needs 2f < n (n=4, f=2)'],
    ['mda', {}, gaussian(1, 4, 3), 2, 'mda needs 2f < n (n=4, f=2)'],
    [
      'mda',
      { maxSubsets: 10 },
      X,
      2,
      'mda needs C(n, f) <= maxSubsets (C(n, f)=21, maxSubsets=10) (n=7, f=2)',
    ],
    ['monna', {}, gaussian(1, 4, 3), 2, 'monna needs 2f < n (n=4, f=2)'],
    ['monna', { idx: 7 }, X, 2, 'monna needs idx < n (idx=7) (n=7, f=2)'],
    ['mean', {}, [], 0, 'mean needs n >= 1 (n=0, f=0)'],
    ['geometricMedian', {}, five, -1, 'geometricMedian needs f to be a non-negative integer (f=-1)'],
    ['median', {}, [new Float32Array(3), new Float32Array(4)], 0, 'median needs vectors of equal length'],
  ];
  for (const [rule, options, vectors, f, message] of cases) {
    it(`${rule} ${JSON.stringify(options)}: "${message}"`, () => {
      expectPrecondition(() => run(rule, vectors, f, options), message);
    });
  }

  it('accepts the boundary cases', () => {
    expect(() => run('krum', gaussian(2, 7, 3), 2)).not.to.throw(); // 7 > 6
    expect(() => run('bulyan', gaussian(2, 11, 3), 2)).not.to.throw(); // 11 ≥ 11
    expect(() => run('trimmedMean', gaussian(2, 5, 3), 2)).not.to.throw(); // 4 < 5
  });

  it('pre-aggregators check theirs', () => {
    expectPrecondition(
      () => createPreAggregator('nnm').apply(gaussian(1, 3, 2), 3),
      'nnm needs f < n (n=3, f=3)',
    );
    expectPrecondition(
      () => createPreAggregator('arc').apply(gaussian(1, 3, 2), 3),
      'arc needs f < n (n=3, f=3)',
    );
  });

  it('rejects bad options and unsupported compat modes', () => {
    expect(() => createRule('centeredClipping', { tau: -1 })).to.throw("option 'tau' must be >= 0");
    expect(() => createRule('geometricMedian', { T: 1.5 })).to.throw("option 'T' must be an integer");
    expect(() => createRule('median', { compat: 'numpy' })).to.throw("unknown compat 'numpy'");
    expect(() => createRule('bulyan', { compat: 'byzfl' })).to.throw("compat 'byzfl' is not available");
    expect(() => createRule('phocas', { compat: 'byzfl' })).to.throw("compat 'byzfl' is not available");
    expect(() => createRule('geometricMedian', { compat: 'garfield' })).to.throw('not available');
    expect(() => createPreAggregator('bucketing(s=0)')).to.throw("option 's' must be >= 1");
  });
});

describe('aggregation rules: conventions', () => {
  const even = f32([[1], [2], [10], [20]]);
  it('median of even n: midpoint by default and byzfl, lower middle with garfield', () => {
    expect(run('median', even, 0).update[0]).to.equal(6);
    expect(run('median', even, 0, { compat: 'byzfl' }).update[0]).to.equal(6);
    expect(run('median', even, 0, { compat: 'garfield' }).update[0]).to.equal(2);
  });

  it('krum default uses n − f − 2 neighbours, byzfl n − f − 1', () => {
    // n = 5, f = 1: default sums the 2 nearest, byzfl the 3 nearest
    const v = f32([[0], [1], [3], [7], [7.5]]);
    const byDefault = run('krum', v, 1).diagnostics!.scores as number[];
    const byzfl = run('krum', v, 1, { compat: 'byzfl' }).diagnostics!.scores as number[];
    expect(byDefault[0]).to.equal(1 + 9);
    expect(byzfl[0]).to.equal(1 + 9 + 49);
    const garfield = run('krum', v, 1, { compat: 'garfield' }).diagnostics!.scores as number[];
    expect(garfield[0]).to.equal(1 + 3 + 7);
  });

  it('multiKrum default m = n − f, garfield m = n − f − 2', () => {
    expect(run('multiKrum', X, 2).diagnostics!.m).to.equal(5);
    expect(run('multiKrum', X, 2, { compat: 'garfield' }).diagnostics!.m).to.equal(3);
    expect(run('multiKrum', X, 2, { m: 2 }).diagnostics!.m).to.equal(2);
  });

  it('ties go to the lower index', () => {
    // every score is 0 + 32: all tied
    const same = f32([
      [1, 1],
      [5, 5],
      [1, 1],
      [5, 5],
    ]);
    const r = run('krum', same, 1, { compat: 'byzfl' });
    expect(r.diagnostics!.selected).to.equal(0);
    expect(r.diagnostics!.tieBroken).to.equal(true);
  });

  it('canonical bulyan selects θ = n − 2f by iterated Krum and averages β = θ − 2f per coordinate', () => {
    const v = [
      ...gaussian(3, 9, 4),
      ...f32([
        [1e6, -1e6, 1e6, -1e6],
        [-1e9, 1e9, 1e9, 1e9],
      ]),
    ];
    const r = run('bulyan', v, 2);
    expect(r.diagnostics!.theta).to.equal(7);
    expect(r.diagnostics!.beta).to.equal(3);
    expect(r.workers[9].included).to.equal(false);
    expect(r.workers[10].included).to.equal(false);
    expect(r.workers[9].reason).to.equal('bulyan: not selected by iterated Krum');
  });

  it('geometric median converges (default) and beats a 3-iteration run on the fixture', () => {
    const r = run('geometricMedian', X, 2);
    expect(r.diagnostics!.converged).to.equal(true);
    // optimality: the objective Σ‖z − xᵢ‖ is not larger than at the ByzFL 3-iteration point
    const obj = (z: ArrayLike<number>) =>
      X.reduce((s, x) => s + Math.sqrt(x.reduce((t, e, k) => t + (e - z[k]) ** 2, 0)), 0);
    const byzfl = run('geometricMedian', X, 2, { compat: 'byzfl' }).update;
    expect(obj(r.update)).to.be.at.most(obj(byzfl));
  });
});

describe('aggregation rules: health records', () => {
  it('cover every worker with norm and cosine', () => {
    for (const rule of [
      'mean',
      'median',
      'trimmedMean',
      'krum',
      'multiKrum',
      'geometricMedian',
      'meamed',
      'mda',
    ]) {
      const r = run(rule, X, 2);
      expect(r.workers.map((w) => w.index)).to.deep.equal([0, 1, 2, 3, 4, 5, 6]);
      expect(r.workers.map((w) => w.workerId)).to.deep.equal(ids(7));
      for (const w of r.workers) {
        expect(w.norm).to.be.closeTo(Math.hypot(...X[w.index]), 1e-4);
        expect(w.cosine).to.be.within(-1, 1);
        expect(w.trust).to.be.within(0, 1);
        if (!w.included) expect(w.reason, `${rule} reason`).to.be.a('string');
      }
    }
  });

  it('flag the two outliers of the fixture', () => {
    // (MeaMed keeps row 6 in the coordinates where its values look honest, so it is not in this list)
    for (const rule of ['krum', 'multiKrum', 'mda', 'median', 'trimmedMean']) {
      const r = run(rule, X, 2);
      expect(r.workers[5].trust, rule).to.be.below(0.5);
      expect(r.workers[6].trust, rule).to.be.below(0.5);
    }
    const gm = run('geometricMedian', X, 2);
    expect(gm.workers[5].trust).to.be.below(0.2);
    expect(gm.workers[0].trust).to.be.above(0.5);
  });

  it('weights of linear rules reproduce the update', () => {
    for (const [rule, options] of [
      ['mean', {}],
      ['multiKrum', {}],
      ['geometricMedian', {}],
      ['centeredClipping', { tau: 1, L: 3 }],
      ['mda', {}],
    ] as [string, Record<string, unknown>][]) {
      const r = run(rule, X, 2, options);
      const recon = new Float64Array(6);
      r.workers.forEach((w) => X[w.index].forEach((e, k) => (recon[k] += w.weight * e)));
      expectClose(r.update, recon, 1e-5, rule);
    }
  });

  it('coordinate-wise weights sum to 1', () => {
    for (const rule of ['median', 'trimmedMean', 'meamed', 'phocas']) {
      const total = run(rule, X, 2).workers.reduce((s, w) => s + w.weight, 0);
      expect(total, rule).to.be.closeTo(1, 1e-12);
    }
    const bulyan = run('bulyan', gaussian(5, 11, 5), 2);
    expect(bulyan.workers.reduce((s, w) => s + w.weight, 0)).to.be.closeTo(1, 1e-12);
    const garfield = run('bulyan', X, 1, { compat: 'garfield' });
    expect(garfield.workers.reduce((s, w) => s + w.weight, 0)).to.be.closeTo(1, 1e-12);
  });
});

describe('aggregation rules: state, buffers, determinism', () => {
  it('centered clipping keeps its previous output as v₀, and save/load round-trips it', () => {
    const rule = createRule('centeredClipping', { tau: 1 });
    const input = { vectors: X, workerIds: ids(7), f: 2 };
    const first = rule.aggregate(input).update.slice();
    const state = rule.saveState!();
    const second = rule.aggregate(input).update.slice();
    expect(Array.from(second)).not.to.deep.equal(Array.from(first));
    const other = createRule('centeredClipping', { tau: 1 });
    other.loadState!(JSON.parse(JSON.stringify(state)));
    expect(Array.from(other.aggregate(input).update)).to.deep.equal(Array.from(second));
    // L = 1 from v₀ = 0 with tau = 1 is the ByzFL entry; the second round equals L = 2 from 0
    expectClose(second, createRule('centeredClipping', { tau: 1, L: 2 }).aggregate(input).update);
  });

  it('centered clipping restarts from 0 when d changes', () => {
    const rule = createRule('centeredClipping', {});
    rule.aggregate({ vectors: X, workerIds: ids(7), f: 0 });
    const r = rule.aggregate({ vectors: gaussian(1, 3, 4), workerIds: ids(3), f: 0 });
    expect(r.diagnostics!.reset).to.equal(true);
  });

  it('rules reuse buffers across rounds of changing n and d without leaking results', () => {
    for (const rule of ['median', 'krum', 'geometricMedian', 'bulyan', 'meamed']) {
      const r = createRule(rule, {});
      const a = gaussian(11, 11, 5);
      const b = gaussian(12, 15, 8);
      const first = r.aggregate({ vectors: a, workerIds: ids(11), f: 2 }).update.slice();
      r.aggregate({ vectors: b, workerIds: ids(15), f: 3 });
      const again = r.aggregate({ vectors: a, workerIds: ids(11), f: 2 }).update;
      expect(Array.from(again), rule).to.deep.equal(Array.from(first));
    }
  });

  it('reuseOutput returns the same buffer while d is unchanged', () => {
    const r = createRule('mean', { reuseOutput: true });
    const u1 = r.aggregate({ vectors: X, workerIds: ids(7), f: 0 }).update;
    const u2 = r.aggregate({ vectors: X, workerIds: ids(7), f: 0 }).update;
    expect(u1).to.equal(u2);
    const fresh = createRule('mean', {});
    expect(fresh.aggregate({ vectors: X, workerIds: ids(7), f: 0 }).update).not.to.equal(
      fresh.aggregate({ vectors: X, workerIds: ids(7), f: 0 }).update,
    );
  });

  it('rules never mutate their input', () => {
    const copy = X.map((v) => v.slice());
    for (const rule of [
      'mean',
      'median',
      'trimmedMean',
      'krum',
      'multiKrum',
      'geometricMedian',
      'centeredClipping',
    ]) {
      run(rule, X, 2);
    }
    run('bulyan', X, 1);
    run('bulyan', X, 1, { compat: 'garfield' });
    for (const rule of ['meamed', 'phocas', 'mda', 'monna']) run(rule, X, 2);
    X.forEach((v, i) => expect(Array.from(v)).to.deep.equal(Array.from(copy[i])));
  });

  it('bucketing is seeded and deterministic, and its round counter is checkpointed', () => {
    const v = gaussian(4, 9, 3);
    const a = createPreAggregator('bucketing(s=2, seed=7)');
    const b = createPreAggregator('bucketing', { s: 2, seed: 7 });
    const r0 = a.applyTracked!(v, 0);
    expect(r0.vectors.length).to.equal(5);
    const s0 = b.applyTracked!(v, 0);
    r0.vectors.forEach((x, i) => expect(Array.from(x)).to.deep.equal(Array.from(s0.vectors[i])));
    // every input appears in exactly one bucket; the last bucket holds one vector
    for (let j = 0; j < 9; j++) {
      let col = 0;
      for (let i = 0; i < 5; i++) col += r0.mixing[i * 9 + j] > 0 ? 1 : 0;
      expect(col).to.equal(1);
    }
    const state = a.saveState!();
    const next = Array.from(a.apply(v, 0)[0]);
    const c = createPreAggregator('bucketing(s=2, seed=7)');
    c.loadState!(state);
    expect(Array.from(c.apply(v, 0)[0])).to.deep.equal(next);
  });
});
