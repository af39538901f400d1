/**
 * Reason codes: every exclusion a rule makes carries one, the wire enum phalanx.v1.Reason holds exactly the
 * core's codes, and a text that quotes a cosine quotes the record's `cosine` field.
 */
import { expect } from 'chai';
import { createAggregationPipeline } from '../../../src/core/aggregation/pipeline.ts';
import { createRule, listRules } from '../../../src/core/aggregation/registry.ts';
import {
  REASON_CODE_LIST,
  REASON_CODES,
  reasonFromWire,
  reasonWireName,
} from '../../../src/core/reasonCodes.ts';
import { Reason } from '../../../src/gen/phalanx/v1/Reason.ts';
import { gaussian, ids, noisyCollusionRound } from './helpers.ts';

/** Four honest workers around one direction and two flipped ones: Flag's sign test excludes the flipped. */
const FLIPPED = [
  [1, 0.9, 1.1, 0.2],
  [0.9, 1.1, 1.0, -0.1],
  [1.2, 1.0, 0.8, 0.1],
  [1.0, 1.2, 0.9, 0.0],
  [-1, -1, -1, -0.1],
  [-0.5, -1.5, -0.8, 0.3],
].map((v) => Float32Array.from(v));

/** The number after "cosine to the update" in a reason text. */
function quotedCosine(reason: string | undefined): string {
  const m = /cosine to the update (-?\d+\.\d+)/.exec(reason ?? '');
  expect(m, `a cosine in ${JSON.stringify(reason)}`).to.not.equal(null);
  return m![1];
}

describe('reason codes', () => {
  it("Flag's sign-test text quotes the worker's cosine field (not the first fit's sign score)", () => {
    const r = createAggregationPipeline({ rule: 'flag', f: 2, pre: [], options: {} }).aggregate(
      FLIPPED,
      ids(6),
    );
    const excluded = r.workers.filter((w) => !w.included);
    expect(excluded.map((w) => w.index)).to.deep.equal([4, 5]);
    for (const w of excluded) {
      expect(w.reasonCode).to.equal('against-robust-direction');
      expect(quotedCosine(w.reason)).to.equal(w.cosine.toFixed(3));
    }
  });

  it('after a pre-aggregator, the text quotes the worker’s own cosine, not that of its rule input', () => {
    // Bucketing puts honest worker 3 with flipped worker 4: both inherit the bucket's exclusion (by the principal
    // axis' sign test; the mean test of the default keeps that bucket).
    const r = createAggregationPipeline({
      rule: 'flag',
      f: 2,
      pre: ['bucketing(s=2)'],
      options: { signDirection: 'principal-axis' },
    }).aggregate(FLIPPED, ids(6));
    const excluded = r.workers.filter((w) => !w.included);
    expect(excluded.map((w) => w.index)).to.deep.equal([3, 4]);
    for (const w of excluded) {
      expect(w.reasonCode).to.equal('against-robust-direction');
      expect(quotedCosine(w.reason)).to.equal(w.cosine.toFixed(3));
    }
  });

  it("the combined sign test's axis exclusion names the axis cutoff, through a pre-aggregator too", () => {
    // Four noisy honest workers and two colluders sending −4·μ̂: the clipped mean follows the colluders, the
    // principal axis (score ≈ −0.9 < −0.8) excludes them.
    const vectors = noisyCollusionRound(0, 6);
    for (const pre of [[], ['clip']]) {
      const r = createAggregationPipeline({ rule: 'flag', f: 2, pre, options: {} }).aggregate(
        vectors,
        ids(6),
      );
      for (const w of r.workers.slice(4)) {
        expect(w.included, `pre ${pre.join('+')}`).to.equal(false);
        expect(w.reason).to.match(/principal-axis score -0\.\d+ < axis cutoff -0\.\d+;/);
        expect(quotedCosine(w.reason)).to.equal(w.cosine.toFixed(3));
      }
    }
  });

  it('the rule used alone writes the same text as through the pipeline', () => {
    const direct = createRule('flag', {}).aggregate({ vectors: FLIPPED, workerIds: ids(6), f: 2 });
    const piped = createAggregationPipeline({ rule: 'flag', f: 2, pre: [], options: {} }).aggregate(
      FLIPPED,
      ids(6),
    );
    expect(direct.workers.map((w) => w.reason)).to.deep.equal(piped.workers.map((w) => w.reason));
  });

  it("Flag's minTrust text quotes the cosine field too", () => {
    const vectors = [...FLIPPED.slice(0, 4), Float32Array.from([0.1, -0.1, 0.05, 3])];
    const r = createAggregationPipeline({
      rule: 'flag',
      f: 1,
      pre: [],
      options: { minTrust: 0.5, signAware: false, r: 1 },
    }).aggregate(vectors, ids(5));
    const low = r.workers.filter((w) => w.reasonCode === 'low-trust');
    expect(low.map((w) => w.index)).to.deep.equal([4]);
    expect(quotedCosine(low[0].reason)).to.equal(low[0].cosine.toFixed(3));
  });

  it('every rule gives every worker it does not include a known code, and included workers none', () => {
    const vectors = gaussian(7, 12, 64, 0.5, 1);
    vectors[10] = vectors[10].map((x) => -8 * x);
    vectors[11] = Float32Array.from(vectors[11]).fill(NaN);
    const seen = new Set<string>();
    for (const rule of listRules()) {
      for (const pre of [[], ['nnm']]) {
        const r = createAggregationPipeline({ rule, f: 2, pre, options: {} }).aggregate(vectors, ids(12));
        for (const w of r.workers) {
          const label = `${rule} [${pre.join(',')}] worker ${w.index}`;
          if (w.included) expect(w.reasonCode, label).to.equal(undefined);
          else expect(REASON_CODES, label).to.have.property(w.reasonCode ?? '(none)');
          if (w.reasonCode) seen.add(w.reasonCode);
        }
        expect(r.workers[11].reasonCode, rule).to.equal('non-finite');
      }
    }
    expect([...seen]).to.include.members(['non-finite', 'not-selected', 'against-robust-direction']);
  });

  it('the wire enum phalanx.v1.Reason holds exactly the core codes, both ways', () => {
    const wire = Object.keys(Reason).filter((k) => k !== 'REASON_UNSPECIFIED');
    expect(wire).to.deep.equal(REASON_CODE_LIST.map(reasonWireName));
    for (const code of REASON_CODE_LIST) expect(reasonFromWire(reasonWireName(code))).to.equal(code);
    expect(reasonWireName(undefined)).to.equal('REASON_UNSPECIFIED');
    expect(reasonFromWire('REASON_UNSPECIFIED')).to.equal(undefined);
  });
});
