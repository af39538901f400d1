import { expect } from 'chai';
import fc from 'fast-check';
import { dirichletShards, shardIndices } from '../../../src/data/sharding.ts';

describe('data: sharding', () => {
  it('shards partition 0..count−1 with sizes differing by at most one', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 500 }), fc.integer({ min: 1, max: 17 }), fc.integer(), (count, k, seed) => {
        const seen = new Uint8Array(count);
        const sizes: number[] = [];
        for (let s = 0; s < k; s++) {
          const shard = shardIndices(count, k, s, seed);
          sizes.push(shard.length);
          for (let i = 0; i < shard.length; i++) {
            expect(shard[i]).to.be.below(count);
            if (i > 0) expect(shard[i]).to.be.above(shard[i - 1]);
            seen[shard[i]]++;
          }
        }
        expect(seen.every((v) => v === 1)).to.equal(true);
        expect(Math.max(...sizes) - Math.min(...sizes)).to.be.at.most(1);
      }),
      { numRuns: 100 },
    );
  });

  it('is deterministic per seed and IID (not contiguous) across seeds', () => {
    const a = shardIndices(1000, 4, 1, 42);
    expect(Array.from(shardIndices(1000, 4, 1, 42))).to.deep.equal(Array.from(a));
    expect(Array.from(shardIndices(1000, 4, 1, 43))).to.not.deep.equal(Array.from(a));
    // a shuffled shard spans the whole range
    expect(a[0]).to.be.below(50);
    expect(a[a.length - 1]).to.be.above(950);
  });

  it('rejects bad arguments', () => {
    expect(() => shardIndices(10, 0, 0, 1)).to.throw(/numShards/);
    expect(() => shardIndices(10, 2, 2, 1)).to.throw(/shard must be an integer in \[0, 2\)/);
    expect(() => shardIndices(-1, 2, 0, 1)).to.throw(/count/);
  });

  describe('Dirichlet non-IID', () => {
    /** 6,000 examples, 600 per class (the class mix of Fashion-MNIST). */
    const labels = Uint8Array.from({ length: 6000 }, (_, i) => (i * 7) % 10);

    /** Mean over shards of the total-variation distance between the shard's label histogram and the global one. */
    function meanTv(shards: Uint32Array[], classes = 10): number {
      const global = new Float64Array(classes);
      for (const y of labels) global[y] += 1 / labels.length;
      let total = 0;
      for (const shard of shards) {
        const h = new Float64Array(classes);
        for (const i of shard) h[labels[i]] += 1 / shard.length;
        let d = 0;
        for (let c = 0; c < classes; c++) d += Math.abs(h[c] - global[c]);
        total += d / 2;
      }
      return total / shards.length;
    }

    it('shards partition the examples, sorted, each holding at least minSize (one batch)', () => {
      fc.assert(
        fc.property(
          fc.array(fc.integer({ min: 0, max: 9 }), { minLength: 1, maxLength: 400 }),
          fc.integer({ min: 1, max: 12 }),
          fc.constantFrom(0.01, 0.1, 0.3, 1, 10, 1000),
          fc.integer({ min: 0, max: 40 }),
          fc.integer(),
          (ys, n, alpha, wantMin, seed) => {
            const minSize = Math.min(wantMin, Math.floor(ys.length / n));
            const shards = dirichletShards(ys, n, alpha, seed, minSize);
            expect(shards).to.have.length(n);
            const seen = new Uint8Array(ys.length);
            for (const shard of shards) {
              expect(shard.length).to.be.at.least(minSize);
              for (let i = 0; i < shard.length; i++) {
                if (i > 0) expect(shard[i]).to.be.above(shard[i - 1]);
                seen[shard[i]]++;
              }
            }
            expect(seen.every((v) => v === 1)).to.equal(true);
          },
        ),
        { numRuns: 200 },
      );
    });

    it('gives every rank a batch even at α = 0.01 (topped up from the largest shard), and says when it cannot', () => {
      const shards = dirichletShards(labels.subarray(0, 1000), 12, 0.01, 3, 32);
      expect(Math.min(...shards.map((s) => s.length))).to.be.at.least(32);
      expect(() => dirichletShards(labels.subarray(0, 300), 12, 1, 3, 32)).to.throw(
        /^data: 300 training examples cannot give each of 12 workers a batch of 32 with shardBy: dirichlet; lower/,
      );
      expect(() => dirichletShards(labels, 4, 0, 3)).to.throw(/alpha must be > 0/);
    });

    it('is deterministic for (labels, n, α, seed)', () => {
      const a = dirichletShards(labels, 8, 0.3, 42, 32).map((s) => Array.from(s));
      expect(dirichletShards(labels, 8, 0.3, 42, 32).map((s) => Array.from(s))).to.deep.equal(a);
      expect(dirichletShards(labels, 8, 0.3, 43, 32).map((s) => Array.from(s))).to.not.deep.equal(a);
      expect(dirichletShards(labels, 8, 0.31, 42, 32).map((s) => Array.from(s))).to.not.deep.equal(a);
    });

    it('heterogeneity grows as α falls: α = 100 is as close to IID as IID shards, α = 0.1 is far', () => {
      const n = 10;
      const seeds = [1, 2, 3];
      const tv = (alpha: number) =>
        seeds.reduce((s, seed) => s + meanTv(dirichletShards(labels, n, alpha, seed, 32)), 0) / seeds.length;
      const iid =
        seeds.reduce(
          (s, seed) => s + meanTv(Array.from({ length: n }, (_, k) => shardIndices(labels.length, n, k, seed))),
          0,
        ) / seeds.length;
      const alphas = [0.1, 0.3, 1, 10, 100];
      const tvs = alphas.map(tv);
      for (let i = 1; i < tvs.length; i++) expect(tvs[i], `TV at α = ${alphas[i]}`).to.be.below(tvs[i - 1]);
      expect(tvs[4]).to.be.below(iid + 0.03); // α = 100 ≈ IID (IID itself: sampling noise of 600-example shards)
      expect(tvs[0]).to.be.above(0.5); // α = 0.1: most of a shard's mass on a few classes
    });
  });
});
