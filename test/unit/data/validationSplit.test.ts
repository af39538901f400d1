import { expect } from 'chai';
import fc from 'fast-check';
import { validateJobSpec } from '../../../src/config/jobSpec.ts';
import { IMAGE_SIZE, type DatasetSplit, type FashionMnist } from '../../../src/data/fashionMnist.ts';
import { evaluationSplit, rankShard, subsetSplit, validationIndices } from '../../../src/data/partition.ts';
import { shardIndices } from '../../../src/data/sharding.ts';
import { splitValidation } from '../../../src/data/validationSplit.ts';

/** 5,000 labels with unequal classes (class c has about 2·(c + 5)% of the examples). */
const labels = Uint8Array.from({ length: 5000 }, (_, i) => {
  let c = 0;
  for (let r = (i * 37) % 95; r >= c + 5; c++) r -= c + 5;
  return c;
});

function classCounts(ys: ArrayLike<number>, indices?: ArrayLike<number>): number[] {
  const counts = new Array<number>(10).fill(0);
  const n = indices ? indices.length : ys.length;
  for (let k = 0; k < n; k++) counts[ys[indices ? indices[k] : k]]++;
  return counts;
}

describe('data: validation split', () => {
  it('train and validation partition the examples; the split holds round(v·N), stratified within one per class', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 9 }), { maxLength: 300 }),
        fc.double({ min: 0, max: 0.5, noNaN: true }),
        fc.integer(),
        (ys, v, seed) => {
          const { train, validation } = splitValidation(ys, v, seed);
          expect(validation.length).to.equal(Math.round(v * ys.length));
          const seen = new Uint8Array(ys.length);
          for (const part of [train, validation]) {
            for (let i = 0; i < part.length; i++) {
              if (i > 0) expect(part[i]).to.be.above(part[i - 1]);
              seen[part[i]]++;
            }
          }
          expect(seen.every((x) => x === 1)).to.equal(true);
          const all = classCounts(ys);
          const held = classCounts(ys, validation);
          for (let c = 0; c < 10; c++) expect(Math.abs(held[c] - v * all[c])).to.be.below(1);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('is deterministic per (labels, v, seed), differs across seeds, and v = 0 holds out nothing', () => {
    const a = splitValidation(labels, 0.1, 7).validation;
    expect(Array.from(splitValidation(labels, 0.1, 7).validation)).to.deep.equal(Array.from(a));
    expect(Array.from(splitValidation(labels, 0.1, 8).validation)).to.not.deep.equal(Array.from(a));
    expect(a.length).to.equal(500);
    const none = splitValidation(labels, 0, 7);
    expect(none.validation.length).to.equal(0);
    expect(Array.from(none.train)).to.deep.equal(Array.from({ length: labels.length }, (_, i) => i));
    expect(() => splitValidation(labels, 1, 7)).to.throw(/fraction must be in \[0, 1\)/);
  });

  for (const shardBy of ['worker', 'dirichlet'] as const) {
    it(`no worker's shard holds a validation example, and the shards cover the rest (${shardBy})`, () => {
      const data = { shardBy, alpha: shardBy === 'dirichlet' ? 0.3 : undefined, validation: 0.2, batchSize: 16 };
      const n = 7;
      const held = new Set(validationIndices(labels, data, 11));
      expect(held.size).to.equal(1000);
      const seen = new Uint8Array(labels.length);
      for (let rank = 0; rank < n; rank++) {
        const shard = rankShard(labels, data, 11, n, rank);
        expect(shard.length).to.be.at.least(data.batchSize);
        for (const i of shard) {
          expect(held.has(i), `example ${i} of rank ${rank} is a validation example`).to.equal(false);
          seen[i]++;
        }
      }
      for (let i = 0; i < labels.length; i++) expect(seen[i]).to.equal(held.has(i) ? 0 : 1);
    });
  }

  it('with no validation split, IID shards are the ones shardIndices always gave', () => {
    const data = { shardBy: 'worker' as const, validation: 0, batchSize: 32 };
    for (let rank = 0; rank < 5; rank++) {
      expect(Array.from(rankShard(labels, data, 3, 5, rank))).to.deep.equal(
        Array.from(shardIndices(labels.length, 5, rank, 3)),
      );
    }
  });

  it('evaluation.split validation evaluates exactly the held-out examples; test evaluates the test set', () => {
    const count = 400;
    const images = new Float32Array(count * IMAGE_SIZE);
    for (let i = 0; i < count; i++) images.fill(i / count, i * IMAGE_SIZE, (i + 1) * IMAGE_SIZE);
    const train: DatasetSplit = { images, labels: labels.slice(0, count), count };
    const test: DatasetSplit = { images: new Float32Array(IMAGE_SIZE), labels: new Uint8Array(1), count: 1 };
    const data: FashionMnist = { train, test, source: 'synthetic' };
    const spec = validateJobSpec({ seed: 5, data: { validation: 0.25 }, evaluation: { split: 'validation' } });
    const held = validationIndices(train.labels, spec.data, spec.seed);
    const v = evaluationSplit(data, spec);
    expect(v.count).to.equal(100);
    for (let k = 0; k < v.count; k++) {
      expect(v.labels[k]).to.equal(train.labels[held[k]]);
      expect(v.images[k * IMAGE_SIZE + 100]).to.equal(Math.fround(held[k] / count));
    }
    expect(evaluationSplit(data, { ...spec, evaluation: { ...spec.evaluation, split: 'test' } })).to.equal(test);
    expect(() => subsetSplit(train, [count])).to.throw(/outside the split/);
  });
});
