/**
 * NNM + flag under sign flip on heterogeneous shards: NNM mixes the f identical −μ inputs into every output, so
 * the f Byzantine outputs (identical neighbourhoods) are identical and can define the flag's robust direction,
 * and the update points against the honest mean. NNM's sign screen (option signThreshold) runs the flag's sign
 * test on the inputs before mixing.
 */
import { expect } from 'chai';
import { flagSignScores } from '../../../src/core/aggregation/flag/aggregator.ts';
import { computeGram } from '../../../src/core/aggregation/kernels/registry.ts';
import { createAggregationPipeline } from '../../../src/core/aggregation/pipeline.ts';
import { createPreAggregator } from '../../../src/core/aggregation/registry.ts';
import { Rng } from '../../../src/core/random.ts';
import { ids } from './helpers.ts';

const N_HONEST = 9;
const F = 3;

function cosine(a: Float32Array, b: Float32Array): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let k = 0; k < a.length; k++) {
    ab += a[k] * b[k];
    aa += a[k] * a[k];
    bb += b[k] * b[k];
  }
  return ab / Math.sqrt(aa * bb);
}

/**
 * One round: 9 honest workers whose gradients mix two of 10 class directions (Dirichlet-like shards) with
 * log-normal lengths plus a shared component, then 3 sign-flippers sending −μ (μ = the honest mean).
 */
function round(seed: number): { vectors: Float32Array[]; mu: Float32Array } {
  const rng = new Rng(seed);
  const d = 200;
  const classes = Array.from({ length: 10 }, () => Float32Array.from({ length: d }, () => rng.normal()));
  const shared = Float32Array.from({ length: d }, () => rng.normal());
  const vectors: Float32Array[] = [];
  for (let w = 0; w < N_HONEST; w++) {
    const a = classes[rng.int(10)];
    const b = classes[rng.int(10)];
    const length = Math.exp(rng.normal());
    vectors.push(
      Float32Array.from(
        { length: d },
        (_, k) => length * (a[k] + 0.5 * b[k] + 0.3 * rng.normal()) + 0.6 * shared[k],
      ),
    );
  }
  const mu = new Float32Array(d);
  for (const g of vectors) for (let k = 0; k < d; k++) mu[k] += g[k] / N_HONEST;
  for (let w = 0; w < F; w++) vectors.push(Float32Array.from(mu, (x) => -x));
  return { vectors, mu };
}

function against(preOptions: Record<string, unknown>): { flipped: number; attackersIn: number } {
  let flipped = 0;
  let attackersIn = 0;
  for (let seed = 0; seed < 60; seed++) {
    const { vectors, mu } = round(seed);
    const pipeline = createAggregationPipeline({ rule: 'flag', f: F, pre: ['nnm'], options: { preOptions } });
    const res = pipeline.aggregate(vectors, ids(vectors.length));
    if (cosine(res.update, mu) < 0) flipped++;
    if (res.workers.slice(N_HONEST).some((w) => w.weight > 0)) attackersIn++;
  }
  return { flipped, attackersIn };
}

describe('NNM + flag under sign flip: the sign screen before mixing', () => {
  it('without the screen, the update points against the honest mean in at least 10 of 60 rounds', () => {
    expect(against({}).flipped).to.be.at.least(10);
  });

  it('with the screen, it points against the honest mean in at most 3 of 60 and the flippers are dropped', () => {
    const { flipped, attackersIn } = against({ nnm: { signThreshold: -0.3 } });
    expect(flipped).to.be.at.most(3);
    expect(attackersIn).to.be.at.most(3);
  });
});

describe('nnm: sign screen', () => {
  const rng = new Rng(7);
  const d = 50;
  const mu = Float32Array.from({ length: d }, () => rng.normal());
  const honest = Array.from({ length: 8 }, () => Float32Array.from(mu, (m) => m + 0.5 * rng.normal()));

  it("drops the inputs against the flag's robust direction, at most f of them, and mixes only the kept ones", () => {
    const flipped = [0, 1, 2].map(() => Float32Array.from(mu, (m) => -m));
    const vectors = [...honest, ...flipped];
    const n = vectors.length;
    const { vectors: out, mixing } = createPreAggregator('nnm(signThreshold=-0.3)').applyTracked!(vectors, 2);
    // f = 2 of the 3 flipped inputs are dropped (the cap), the lowest scores, ties toward the higher index
    expect(out.length).to.equal(n - 2);
    for (const j of [9, 10]) for (let i = 0; i < out.length; i++) expect(mixing[i * n + j]).to.equal(0);
    for (let i = 0; i < out.length; i++) {
      let row = 0;
      for (let j = 0; j < n; j++) row += mixing[i * n + j];
      expect(row).to.be.closeTo(1, 1e-12);
    }
  });

  it('is off by default and changes nothing when no input is against the robust direction', () => {
    const plain = createPreAggregator('nnm').applyTracked!(honest, 2);
    const screened = createPreAggregator('nnm(signThreshold=-0.3)').applyTracked!(honest, 2);
    expect(screened.vectors.length).to.equal(honest.length);
    expect(Array.from(screened.mixing)).to.deep.equal(Array.from(plain.mixing));
    screened.vectors.forEach((v, i) => expect(Array.from(v)).to.deep.equal(Array.from(plain.vectors[i])));
  });

  it("scores from the caller's Gram matrix exactly as from its own", () => {
    const vectors = [...honest, ...[0, 1].map(() => Float32Array.from(mu, (m) => -m))];
    const own = flagSignScores(vectors, 2);
    expect(Array.from(flagSignScores(vectors, 2, computeGram(vectors)))).to.deep.equal(Array.from(own));
    expect(own[9]).to.be.below(-0.3);
    expect(() => flagSignScores(vectors, 2, new Float64Array(4))).to.throw(
      /gram has 4 entries for 10 vectors/,
    );
  });

  it("reports a worker the screen dropped as against the robust direction, with the screen's score", () => {
    const flipped = [0, 1].map(() => Float32Array.from(mu, (m) => -m));
    const vectors = [...honest, ...flipped];
    const scores = flagSignScores(vectors, 2);
    for (const pre of [['nnm'], ['clip', 'nnm']]) {
      const pipeline = createAggregationPipeline({
        rule: 'flag',
        f: 2,
        pre,
        options: { preOptions: { nnm: { signThreshold: -0.3 } } },
      });
      const { workers } = pipeline.aggregate(vectors, ids(vectors.length));
      for (const w of workers.slice(0, 8))
        expect(w.reason ?? '', pre.join('+')).not.to.match(/nnm sign screen/);
      for (const w of workers.slice(8)) {
        expect(w.included, pre.join('+')).to.equal(false);
        expect(w.reasonCode, pre.join('+')).to.equal('against-robust-direction');
        expect(w.reason).to.match(
          /^nnm sign screen: points against the robust direction \(sign score -0\.\d{3} < signThreshold -0\.3\); dropped before mixing$/,
        );
        expect(w.reasonFacts!.threshold).to.equal(-0.3);
      }
      // the scores are the raw inputs' (clipping rescales vectors, not their directions)
      expect(workers[8].reasonFacts!.score).to.be.closeTo(scores[8], 1e-9);
      expect(workers[9].reasonFacts!.score).to.be.closeTo(scores[9], 1e-9);
    }
  });

  it('needs 2f < n with the screen on', () => {
    expect(() => createPreAggregator('nnm(signThreshold=-0.3)').apply(honest.slice(0, 4), 2)).to.throw(
      /2f < n/,
    );
  });
});
