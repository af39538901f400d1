import { expect } from 'chai';
import { Batcher, createBatch } from '../../../src/data/batcher.ts';
import type { DatasetSplit } from '../../../src/data/fashionMnist.ts';
import { shardIndices } from '../../../src/data/sharding.ts';

/** Example i has label i % 10 and every pixel encodes (i, row, col), so batches can be traced back. */
function syntheticSplit(count: number): DatasetSplit {
  const images = new Float32Array(count * 784);
  for (let i = 0; i < count; i++) {
    for (let p = 0; p < 784; p++) images[i * 784 + p] = i * 1000 + p;
  }
  return { images, labels: Uint8Array.from({ length: count }, (_, i) => i % 10), count };
}

const exampleOf = (x: Float32Array, k: number) => Math.floor(x[k * 784] / 1000);

describe('data: batcher', () => {
  const split = syntheticSplit(60);
  const shard = shardIndices(60, 3, 1, 7);

  it('is deterministic: same seed → same batches; batchAt(k) equals the k-th next()', () => {
    const a = new Batcher(split, shard, { batchSize: 6, seed: 5, flip: true });
    const b = new Batcher(split, shard, { batchSize: 6, seed: 5, flip: true });
    for (let step = 0; step < 12; step++) {
      const x = a.next();
      const snapshot = { x: Float32Array.from(x.x), y: Uint8Array.from(x.y) };
      expect(b.step).to.equal(step);
      const y = b.next();
      expect(Array.from(y.y)).to.deep.equal(Array.from(snapshot.y));
      expect(Buffer.from(y.x.buffer).equals(Buffer.from(snapshot.x.buffer))).to.equal(true);
      const direct = new Batcher(split, shard, { batchSize: 6, seed: 5, flip: true }).batchAt(step);
      expect(Buffer.from(direct.x.buffer).equals(Buffer.from(snapshot.x.buffer))).to.equal(true);
    }
    const c = new Batcher(split, shard, { batchSize: 6, seed: 6, flip: true });
    expect(Array.from(c.next().x.subarray(0, 784 * 6))).to.not.deep.equal(Array.from(a.batchAt(0).x));
  });

  it('visits every shard example exactly once per epoch, in a new order each epoch', () => {
    const b = new Batcher(split, shard, { batchSize: 5, seed: 1 });
    expect(b.shardSize).to.equal(20);
    const epochs: number[][] = [];
    for (let e = 0; e < 3; e++) {
      expect(b.epoch).to.equal(e);
      const seen: number[] = [];
      for (let s = 0; s < 4; s++) {
        const batch = b.next();
        for (let k = 0; k < batch.size; k++) seen.push(exampleOf(batch.x, k));
      }
      expect([...seen].sort((p, q) => p - q)).to.deep.equal(Array.from(shard));
      epochs.push(seen);
    }
    expect(epochs[1]).to.not.deep.equal(epochs[0]);
  });

  it('keeps batches full across epoch boundaries', () => {
    const b = new Batcher(split, shard, { batchSize: 7, seed: 2 });
    const counts = new Map<number, number>();
    for (let s = 0; s < 20; s++) {
      const batch = b.next(); // 140 examples = 7 epochs of 20
      expect(batch.size).to.equal(7);
      for (let k = 0; k < 7; k++) counts.set(exampleOf(batch.x, k), (counts.get(exampleOf(batch.x, k)) ?? 0) + 1);
    }
    expect([...counts.keys()].sort((p, q) => p - q)).to.deep.equal(Array.from(shard));
    expect([...counts.values()].every((v) => v === 7)).to.equal(true);
  });

  it('copies pixels and labels exactly, or mirrors rows when flipping', () => {
    const plain = new Batcher(split, undefined, { batchSize: 8, seed: 3 });
    const flipped = new Batcher(split, undefined, { batchSize: 8, seed: 3, flip: true });
    let flips = 0;
    for (let s = 0; s < 10; s++) {
      const a = plain.batchAt(s);
      const f = flipped.batchAt(s);
      expect(Array.from(f.y)).to.deep.equal(Array.from(a.y));
      for (let k = 0; k < 8; k++) {
        const ex = exampleOf(a.x, k);
        expect(a.y[k]).to.equal(ex % 10).and.be.below(10);
        const src = split.images.subarray(ex * 784, (ex + 1) * 784);
        expect(Array.from(a.x.subarray(k * 784, (k + 1) * 784))).to.deep.equal(Array.from(src));
        const img = f.x.subarray(k * 784, (k + 1) * 784);
        const isFlipped = img[0] !== src[0];
        if (isFlipped) flips++;
        for (let r = 0; r < 28; r++) {
          for (let c = 0; c < 28; c++) expect(img[r * 28 + c]).to.equal(src[r * 28 + (isFlipped ? 27 - c : c)]);
        }
      }
    }
    expect(flips).to.be.within(20, 60); // p = ½ over 80 examples
  });

  it('writes into preallocated buffers and supports seek', () => {
    const b = new Batcher(split, shard, { batchSize: 4, seed: 9 });
    const first = b.next();
    expect(b.next()).to.equal(first);
    const out = createBatch(4);
    expect(b.batchAt(5, out)).to.equal(out);
    const expected = Float32Array.from(out.x);
    b.seek(5);
    expect(Array.from(b.next().x)).to.deep.equal(Array.from(expected));
    expect(b.step).to.equal(6);
  });

  it('rejects bad arguments', () => {
    expect(() => new Batcher(split, [], { batchSize: 4, seed: 1 })).to.throw(/empty/);
    expect(() => new Batcher(split, [60], { batchSize: 4, seed: 1 })).to.throw(/outside the split/);
    expect(() => new Batcher(split, undefined, { batchSize: 0, seed: 1 })).to.throw(/batchSize/);
    expect(() => new Batcher(split, undefined, { batchSize: 4, seed: 1 }).batchAt(0, createBatch(2))).to.throw(/fewer than 4/);
  });
});
