import { expect } from 'chai';
import fc from 'fast-check';
import { shardIndices } from '../../../src/data/sharding.ts';

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
});
