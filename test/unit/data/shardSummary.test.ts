import { expect } from 'chai';
import { rankShard } from '../../../src/data/partition.ts';
import { summariseShards } from '../../../src/data/shardSummary.ts';

/** 6000 labels, class k holding 300 + 60k examples, in a shuffled order. */
function labels(): Uint8Array {
  const out: number[] = [];
  for (let k = 0; k < 10; k++) for (let i = 0; i < 300 + 60 * k; i++) out.push(k);
  let s = 7;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return Uint8Array.from(out);
}

describe('data: shard summary (what each worker trains on)', () => {
  const data = { shardBy: 'dirichlet' as const, alpha: 0.3, validation: 0, batchSize: 25 };
  const y = labels();

  it('counts each rank’s shard by class, exactly the shard the worker builds', () => {
    const s = summariseShards(y, data, 3, 8, 0);
    expect(s.ranks.map((r) => r.rank)).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7]);
    for (const r of s.ranks) {
      const shard = rankShard(y, data, 3, 8, r.rank);
      expect(r.examples).to.equal(shard.length);
      const counts = new Array(10).fill(0);
      for (const i of shard) counts[y[i]]++;
      expect(r.classCounts).to.deep.equal(counts);
    }
    const totals = new Array(10).fill(0).map((_, k) => 300 + 60 * k);
    expect(s.classTotals).to.deep.equal(totals);
    expect(s.byzantineRanks).to.deep.equal([]);
    expect(s.byzantineShare).to.deep.equal(new Array(10).fill(0));
  });

  it('the Byzantine ranks are the highest ones (as in simulate), with their share of every class', () => {
    const s = summariseShards(y, data, 3, 8, 3);
    expect(s.byzantineRanks).to.deep.equal([5, 6, 7]);
    for (let k = 0; k < 10; k++) {
      const held = s.ranks[5].classCounts[k] + s.ranks[6].classCounts[k] + s.ranks[7].classCounts[k];
      expect(s.byzantineShare[k]).to.be.closeTo(held / s.classTotals[k], 1e-12);
    }
    // Dirichlet α = 0.3 shards are uneven: some class is mostly with three of eight ranks
    expect(Math.max(...s.byzantineShare)).to.be.greaterThan(3 / 8 + 0.1);
    // IID shards hold about their size's share of every class
    const iid = summariseShards(y, { ...data, shardBy: 'worker' as const }, 3, 8, 3);
    for (const share of iid.byzantineShare) expect(share).to.be.closeTo(3 / 8, 0.06);
  });

  it('refuses a Byzantine count outside [0, workers]', () => {
    expect(() => summariseShards(y, data, 3, 8, 9)).to.throw(RangeError, /\[0, 8\], got 9/);
    expect(() => summariseShards(y, data, 3, 8, 1.5)).to.throw(RangeError);
  });
});
