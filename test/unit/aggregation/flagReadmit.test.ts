/**
 * `readmit` (an option, off by default): a worker the sign tests excluded only because excluded vectors pulled the first pass's
 * reference comes back once the references are rebuilt from the kept workers; the vectors that pulled stay out.
 *
 * Geometry (d = 8, n = 10, f = 3): six honest workers along e₁ (each with a 0.1 component of its own), one honest
 * minority worker h = (−0.2, 1)/‖·‖ (cosine −0.2 to the honest majority), and three long copies of (−1, −1)·5.
 * The mean clipped at the (f+1)-th longest norm is (3.7, −1.1): h's cosine to it is −0.48, the copies' −0.46,
 * so both fail the −0.3 test. Against the kept workers alone (≈ 6·e₁) h scores −0.2 and passes; the copies
 * score −0.71 and do not.
 */
import { expect } from 'chai';
import { createFlagAggregator } from '../../../src/core/aggregation/flag/aggregator.ts';

const D = 8;
const HONEST = [0, 1, 2, 3, 4, 5];
const MINORITY = 6;
const COPIES = [7, 8, 9];

function round(): Float32Array[] {
  const vectors: Float32Array[] = [];
  for (const i of HONEST) {
    const v = new Float32Array(D);
    v[0] = 1;
    v[2 + i] = 0.1;
    vectors.push(v);
  }
  const h = new Float32Array(D);
  const hn = Math.hypot(0.2, 1);
  h[0] = -0.2 / hn;
  h[1] = 1 / hn;
  vectors.push(h);
  for (const _ of COPIES) {
    const a = new Float32Array(D);
    a[0] = -5;
    a[1] = -5;
    vectors.push(a);
  }
  return vectors;
}

function aggregate(options: Record<string, unknown>) {
  const vectors = round();
  return createFlagAggregator(options).aggregate({
    vectors,
    workerIds: vectors.map((_, i) => `w${i}`),
    f: 3,
  });
}

describe('flag: readmit', () => {
  it('without it (the default), the minority worker is excluded with the copies that pulled the reference', () => {
    const res = aggregate({});
    expect(res.workers[MINORITY].included).to.equal(false);
    expect(res.workers[MINORITY].reasonCode).to.equal('against-robust-direction');
    for (const c of COPIES) expect(res.workers[c].included).to.equal(false);
    expect(res.diagnostics?.readmitted).to.deep.equal([]);
  });

  it('takes the minority worker back and keeps the copies out', () => {
    const res = aggregate({ readmit: true });
    expect(res.workers[MINORITY].included, res.workers[MINORITY].reason).to.equal(true);
    expect(res.workers[MINORITY].reason).to.equal(undefined);
    for (const c of COPIES) expect(res.workers[c].included).to.equal(false);
    for (const i of HONEST) expect(res.workers[i].included).to.equal(true);
    expect(res.diagnostics?.readmitted).to.deep.equal([MINORITY]);
    // the update is the readmitted set's clipped mean: it now has h's second coordinate
    expect(res.update[1]).to.be.greaterThan(0);
  });

  it('with the clipped-mean test alone as well', () => {
    const res = aggregate({ readmit: true, signDirection: 'clipped-mean' });
    expect(res.workers[MINORITY].included).to.equal(true);
    for (const c of COPIES) expect(res.workers[c].included).to.equal(false);
  });

  it('is refused without the sign tests', () => {
    expect(() => createFlagAggregator({ readmit: true, signAware: false })).to.throw(/readmit.*signAware/);
    expect(() => createFlagAggregator({ readmit: 'yes' })).to.throw(/readmit/);
  });
});
