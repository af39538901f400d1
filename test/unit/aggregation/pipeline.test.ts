/** Pipeline (validation, pre-aggregators, health mapping, state), registry and the CLI's runAggregation. */
import { expect } from 'chai';
import { runAggregation } from '../../../src/core/aggregation/aggregateFile.ts';
import { createAggregationPipeline } from '../../../src/core/aggregation/pipeline.ts';
import {
  createPreAggregator,
  createRule,
  listPreAggregators,
  listRules,
  parsePreSpec,
  registerPreAggregator,
  resolveRuleName,
  unregisterPreAggregator,
} from '../../../src/core/aggregation/registry.ts';
import { PreconditionError, type AggregationSpec } from '../../../src/core/aggregation/types.ts';
import { expectClose, f32, gaussian, ids, loadSharedVectors } from './helpers.ts';

const shared = loadSharedVectors();
const X = f32(shared.input.X_rows_are_workers);

function pipeline(
  rule: string,
  pre: string[] = [],
  f = 2,
  options: Record<string, unknown> = {},
  extra = {},
) {
  const spec: AggregationSpec = { rule, f, pre, options, ...extra };
  return createAggregationPipeline(spec);
}

describe('aggregation pipeline: input validation', () => {
  const nan = Float32Array.from([1, NaN, 0, 0, 0, 0]);
  const inf = Float32Array.from([1, 0, -Infinity, 0, 0, 0]);
  const short = Float32Array.from([1, 2, 3]);

  it('excludes non-finite and wrong-length vectors and never averages them', () => {
    const vectors = [X[0], nan, X[1], short, X[2], inf, X[3]];
    const r = pipeline('mean').aggregate(vectors, ids(7));
    expectClose(
      r.update,
      createRule('mean').aggregate({ vectors: X.slice(0, 4), workerIds: ids(4), f: 0 }).update,
    );
    expect(r.workers.map((w) => w.index)).to.deep.equal([0, 1, 2, 3, 4, 5, 6]);
    expect(r.workers.map((w) => w.reason)).to.deep.equal([
      undefined,
      'non-finite',
      undefined,
      'wrong-length',
      undefined,
      'non-finite',
      undefined,
    ]);
    for (const i of [1, 3, 5]) {
      expect(r.workers[i]).to.include({ included: false, trust: 0, weight: 0, norm: 0, cosine: 0 });
    }
    for (const i of [0, 2, 4, 6]) {
      expect(r.workers[i].included).to.equal(true);
      expect(r.workers[i].weight).to.be.closeTo(0.25, 1e-12);
      expect(r.workers[i].norm).to.be.closeTo(Math.hypot(...vectors[i]), 1e-4);
      expect(r.workers[i].cosine).to.be.above(0.5);
    }
    expect(r.workers[2].workerId).to.equal('w2');
    expect(r.diagnostics!.excluded).to.equal(3);
  });

  it('uses the majority length, or expectedLength when given', () => {
    const vectors = [short, short, X[0]];
    const byMajority = pipeline('mean', [], 0).aggregate(vectors, ids(3));
    expect(byMajority.update.length).to.equal(3);
    expect(byMajority.workers[2].reason).to.equal('wrong-length');
    const byExpected = pipeline('mean', [], 0, {}, { expectedLength: 6 }).aggregate(vectors, ids(3));
    expect(byExpected.update.length).to.equal(6);
    expect(byExpected.workers.map((w) => w.reason)).to.deep.equal([
      'wrong-length',
      'wrong-length',
      undefined,
    ]);
  });

  it('throws a PreconditionError when too few valid vectors remain', () => {
    const vectors = [...X.slice(0, 5), nan, inf];
    expect(() => pipeline('krum').aggregate(vectors, ids(7))).to.throw(
      PreconditionError,
      'krum needs n > 2f + 2 (n=5, f=2); 2 of 7 inputs were excluded (non-finite or wrong length)',
    );
    expect(() => pipeline('mean').aggregate([nan, inf], ids(2))).to.throw(
      PreconditionError,
      'mean needs n >= 1',
    );
    expect(() => pipeline('mean').aggregate([], [])).to.throw(PreconditionError);
  });

  it('checks the worker ids', () => {
    expect(() => pipeline('mean').aggregate(X, ids(6))).to.throw('got 7 vectors but 6 worker ids');
  });
});

describe('aggregation pipeline: pre-aggregators and health mapping', () => {
  it('NNM then trimmed mean reproduces the ByzFL entry', () => {
    const r = pipeline('trimmedMean', ['nnm']).aggregate(X, ids(7));
    expectClose(r.update, shared.byzfl_preaggregators.NNM_f2_then_TrMean_f2 as number[]);
  });

  it('clip → nnm → krum: weights are the effective coefficients on the raw vectors', () => {
    const r = pipeline('multiKrum', ['clip(c=2)', 'nnm'], 2).aggregate(X, ids(7));
    const recon = new Float64Array(6);
    r.workers.forEach((w) => X[w.index].forEach((e, k) => (recon[k] += w.weight * e)));
    expectClose(r.update, recon);
    // the outliers feed only low-trust mixed vectors
    expect(r.workers[5].trust).to.be.below(r.workers[0].trust);
    expect(r.workers[6].trust).to.be.below(r.workers[0].trust);
    // norm and cosine refer to the raw vectors
    expect(r.workers[6].norm).to.be.closeTo(Math.hypot(...X[6]), 1e-4);
  });

  it('clip keeps one-to-one health: the clipped outlier keeps its own record', () => {
    const r = pipeline('krum', ['clip(c=2)'], 2, { compat: 'byzfl' }).aggregate(X, ids(7));
    const direct = createRule('krum', { compat: 'byzfl' }).aggregate({
      vectors: createPreAggregator('clip(c=2)').apply(X, 2),
      workerIds: ids(7),
      f: 2,
    });
    r.workers.forEach((w, i) => {
      expect(w.included).to.equal(direct.workers[i].included);
      expect(w.trust).to.equal(direct.workers[i].trust);
    });
    const excluded = r.workers.find((w) => !w.included)!;
    expect(excluded.reason).to.equal('krum: not selected');
  });

  it('bucketing: every worker reports the trust of its bucket', () => {
    const v = gaussian(9, 10, 4);
    const p = pipeline('median', ['bucketing(s=2, seed=3)'], 1);
    const r = p.aggregate(v, ids(10));
    expect(r.workers.every((w) => w.trust >= 0 && w.trust <= 1)).to.equal(true);
    const total = r.workers.reduce((s, w) => s + w.weight, 0);
    expect(total).to.be.closeTo(1, 1e-12);
    // reproducible from the saved state
    const state = p.saveState();
    const next = p.aggregate(v, ids(10)).update;
    const q = pipeline('median', ['bucketing(s=2, seed=3)'], 1);
    q.loadState(JSON.parse(JSON.stringify(state)));
    expect(Array.from(q.aggregate(v, ids(10)).update)).to.deep.equal(Array.from(next));
  });

  it('takes pre-aggregator options from options.preOptions', () => {
    const a = pipeline('mean', ['clip'], 0, { preOptions: { clip: { c: 1 } } }).aggregate(X, ids(7));
    const b = pipeline('mean', ['clip(1)'], 0).aggregate(X, ids(7));
    expect(Array.from(a.update)).to.deep.equal(Array.from(b.update));
  });

  it('saves and loads centered clipping state through the pipeline', () => {
    const p = pipeline('centeredClipping', [], 0, { tau: 1 });
    p.aggregate(X, ids(7));
    const state = JSON.parse(JSON.stringify(p.saveState()));
    const next = p.aggregate(X, ids(7)).update;
    const q = pipeline('centeredClipping', [], 0, { tau: 1 });
    q.loadState(state);
    expect(Array.from(q.aggregate(X, ids(7)).update)).to.deep.equal(Array.from(next));
  });

  it('maps an untracked pre-aggregator one-to-one', () => {
    registerPreAggregator('testNegate', () => ({
      name: 'testNegate',
      apply: (vs) => vs.map((v) => v.map((e) => -e)),
    }));
    try {
      const r = pipeline('mean', ['testNegate'], 0).aggregate(X, ids(7));
      expect(r.workers.every((w) => Math.abs(w.weight - 1 / 7) < 1e-12)).to.equal(true);
      expect(r.workers[0].cosine).to.be.below(0);
    } finally {
      unregisterPreAggregator('testNegate');
    }
  });
});

describe('aggregation registry', () => {
  it('lists every rule, including the Flag Aggregator, and the pre-aggregators', () => {
    expect(listRules()).to.include.members([
      'mean',
      'median',
      'trimmedMean',
      'krum',
      'multiKrum',
      'bulyan',
      'geometricMedian',
      'centeredClipping',
      'meamed',
      'phocas',
      'mda',
      'monna',
      'flag',
    ]);
    expect(listPreAggregators()).to.include.members(['clip', 'nnm', 'arc', 'bucketing']);
  });

  it('resolves case-insensitive names and aliases', () => {
    expect(resolveRuleName('TrimmedMean')).to.equal('trimmedMean');
    expect(resolveRuleName('multi-krum')).to.equal('multiKrum');
    expect(resolveRuleName('trmean')).to.equal('trimmedMean');
    expect(resolveRuleName('average')).to.equal('mean');
    expect(createRule('GM').name).to.equal('geometricMedian');
    expect(createPreAggregator('Clipping(2)').name).to.equal('clip');
  });

  it('unknown names throw listing the valid ones', () => {
    expect(() => createRule('krumm')).to.throw(
      /unknown aggregation rule 'krumm' \(valid: mean, median, .*flag/,
    );
    expect(() => createPreAggregator('nope')).to.throw(
      /unknown pre-aggregator 'nope' \(valid: clip, nnm, arc, bucketing/,
    );
  });

  it('parses inline pre-aggregator options', () => {
    expect(parsePreSpec('bucketing(s=2, seed=7)')).to.deep.equal({
      name: 'bucketing',
      args: [
        ['s', 2],
        ['seed', 7],
      ],
    });
    expect(parsePreSpec('clip(2.5)')).to.deep.equal({ name: 'clip', args: [[null, 2.5]] });
    expect(() => parsePreSpec('clip(')).to.throw('invalid pre-aggregator spec');
    expect(() => createPreAggregator('bucketing(1, 2)')).to.throw('at most one positional argument');
    expect(() => createPreAggregator('nnm(f=1)')).not.to.throw();
  });
});

describe('runAggregation (CLI helper)', () => {
  const vectors = shared.input.X_rows_are_workers;

  it('aggregates and reports every worker', () => {
    const out = runAggregation({ vectors, f: 2, rule: 'krum', pre: [], options: { compat: 'byzfl' } });
    expect(out.rule).to.equal('krum');
    expectClose(out.update, shared.byzfl_aggregators.Krum_f2 as number[]);
    expect(out.workers).to.have.length(7);
    expect(out.workers[0]).to.deep.equal({ index: 0, included: true, trust: 1, weight: 1 });
    expect(out.workers[1]).to.deep.equal({
      index: 1,
      included: false,
      trust: 0,
      weight: 0,
      reason: 'krum: not selected',
      reasonCode: 'not-selected',
    });
  });

  it('runs a pipeline with pre-aggregators', () => {
    const out = runAggregation({ vectors, f: 2, rule: 'trmean', pre: ['nnm'], options: {} });
    expect(out.rule).to.equal('trimmedMean');
    expectClose(out.update, shared.byzfl_preaggregators.NNM_f2_then_TrMean_f2 as number[]);
  });

  it('reports non-finite workers instead of failing', () => {
    const out = runAggregation({
      vectors: [
        [1, 2],
        [NaN, 0],
        [3, 4],
      ],
      f: 0,
      rule: 'mean',
      pre: [],
      options: {},
    });
    expect(out.update).to.deep.equal([2, 3]);
    expect(out.workers[1]).to.deep.equal({
      index: 1,
      included: false,
      trust: 0,
      weight: 0,
      reason: 'non-finite',
      reasonCode: 'non-finite',
    });
  });

  const bad: [string, unknown, string][] = [
    ['empty', { vectors: [], f: 0, rule: 'mean', pre: [], options: {} }, 'vectors must be a non-empty array'],
    [
      'ragged',
      { vectors: [[1, 2], [3]], f: 0, rule: 'mean', pre: [], options: {} },
      'ragged vectors: vectors[1] has length 1, vectors[0] has 2',
    ],
    [
      'non-number',
      { vectors: [[1, '2']], f: 0, rule: 'mean', pre: [], options: {} },
      'vectors[0][1] is not a number',
    ],
    ['empty vector', { vectors: [[]], f: 0, rule: 'mean', pre: [], options: {} }, 'vectors[0] is empty'],
    [
      'negative f',
      { vectors: [[1]], f: -1, rule: 'mean', pre: [], options: {} },
      'f must be a non-negative integer (got -1)',
    ],
    [
      'fractional f',
      { vectors: [[1]], f: 1.5, rule: 'mean', pre: [], options: {} },
      'f must be a non-negative integer (got 1.5)',
    ],
    ['no rule', { vectors: [[1]], f: 0, rule: '', pre: [], options: {} }, 'rule must be a non-empty string'],
    [
      'unknown rule',
      { vectors: [[1]], f: 0, rule: 'foo', pre: [], options: {} },
      "unknown aggregation rule 'foo'",
    ],
    [
      'bad pre',
      { vectors: [[1]], f: 0, rule: 'mean', pre: [3], options: {} },
      'pre must be an array of strings',
    ],
    [
      'precondition',
      { vectors: [[1], [2]], f: 1, rule: 'krum', pre: [], options: {} },
      'krum needs n > 2f + 2 (n=2, f=1)',
    ],
  ];
  for (const [label, input, message] of bad) {
    it(`rejects ${label} with a one-line message`, () => {
      let err: unknown;
      try {
        runAggregation(input as Parameters<typeof runAggregation>[0]);
      } catch (e) {
        err = e;
      }
      expect(err).to.be.instanceOf(Error);
      const msg = (err as Error).message;
      expect(msg).to.include(message);
      expect(msg).not.to.include('\n');
    });
  }
});
