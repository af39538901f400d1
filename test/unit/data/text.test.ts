import { expect } from 'chai';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Batcher, createBatch } from '../../../src/data/batcher.ts';
import { rankShardOf } from '../../../src/data/partition.ts';
import {
  BUNDLED_EXCERPT,
  encodeText,
  KJV_VOCABULARY,
  loadText,
  sequenceSplit,
  splitHeldOut,
  stripVerseReferences,
  textDataset,
  vocabularyOf,
} from '../../../src/data/text.ts';

const DATA = { shardBy: 'worker' as const, validation: 0, batchSize: 4 };

describe('data: text for the language-model task', () => {
  it('the vocabulary is the sorted distinct characters, independent of their order in the text', () => {
    expect(vocabularyOf('banana band')).to.equal(' abdn');
    expect(vocabularyOf('dnab ananab')).to.equal(' abdn');
    expect(encodeText('band', ' abdn')).to.deep.equal(Uint8Array.from([2, 1, 4, 3]));
    expect(() => encodeText('bandit', ' abdn')).to.throw(/outside model.vocab: "it"/);
  });

  it('the bundled excerpt is KJV text whose characters all lie in the default (whole-KJV) vocabulary', () => {
    const { text, source } = loadText({ env: {}, debianData: '/nonexistent/bible.data' });
    expect(source).to.contain('bundled');
    expect(text.startsWith('In the beginning God created the heaven and the earth.\n')).to.equal(true);
    expect(text.length).to.be.within(150_000, 200_000);
    const vocab = vocabularyOf(text);
    expect([...vocab].every((c) => KJV_VOCABULARY.includes(c))).to.equal(true);
    expect(vocabularyOf(KJV_VOCABULARY)).to.equal(KJV_VOCABULARY); // sorted and distinct
  });

  it('looks for the text in data.source, then PHALANX_TEXT, then Debian, then the bundled excerpt', () => {
    const dir = mkdtempSync(join(tmpdir(), 'phalanx-text-'));
    const file = join(dir, 'a.txt');
    writeFileSync(file, 'abc\n');
    const other = join(dir, 'b.txt');
    writeFileSync(other, 'xyz\n');
    const none = { debianData: join(dir, 'none'), bundled: join(dir, 'none.txt') };
    expect(loadText({ source: file, env: { PHALANX_TEXT: other } }).text).to.equal('abc\n');
    expect(loadText({ env: { PHALANX_TEXT: other }, ...none }).text).to.equal('xyz\n');
    expect(loadText({ env: {}, debianData: none.debianData, bundled: BUNDLED_EXCERPT }).source).to.contain('bundled');
    expect(() => loadText({ env: {}, ...none })).to.throw(/text not found;.*apt-get install bible-kjv-text bible-kjv/);
    expect(() => loadText({ source: join(dir, 'missing.txt') })).to.throw(/data.source .* is not a file/);
  });

  it('strips verse references of the `bible` program line by line', () => {
    expect(stripVerseReferences('Ge1:1 In the beginning\n1Co13:4 Charity suffereth long\nRev22:21 The grace')).to.equal(
      'In the beginning\nCharity suffereth long\nThe grace',
    );
  });

  it('holds out the last 10 %, and cuts each part into sequences whose targets are the next characters', () => {
    const tokens = Uint8Array.from({ length: 100 }, (_, i) => i);
    const { train, heldOut } = splitHeldOut(tokens);
    expect(train.length).to.equal(90);
    expect(Array.from(heldOut)).to.deep.equal(Array.from({ length: 10 }, (_, i) => 90 + i));
    const split = sequenceSplit(train, 8);
    expect(split.count).to.equal(11); // (90 − 1) / 8
    expect(split.exampleSize).to.equal(8);
    expect(Array.from(split.images.subarray(8, 16))).to.deep.equal([8, 9, 10, 11, 12, 13, 14, 15]);
    expect(Array.from(split.labels.subarray(8, 16))).to.deep.equal([9, 10, 11, 12, 13, 14, 15, 16]);
    expect(sequenceSplit(train, 8, 3).count).to.equal(3);
    expect(() => sequenceSplit(heldOut, 10)).to.throw(/lower data.seqLen/);
  });

  it('is deterministic: the same text gives the same splits; train and held-out text do not overlap', () => {
    const loaded = loadText({ env: {}, debianData: '/nonexistent/bible.data' });
    const a = textDataset(loaded, KJV_VOCABULARY, 32);
    const b = textDataset(loaded, KJV_VOCABULARY, 32);
    expect(Buffer.from(a.train.labels).equals(Buffer.from(b.train.labels))).to.equal(true);
    expect(Buffer.from(a.test.labels).equals(Buffer.from(b.test.labels))).to.equal(true);
    const cut = loaded.text.length - Math.round(0.1 * loaded.text.length);
    const decode = (ids: ArrayLike<number>) => Array.from(ids, (i) => KJV_VOCABULARY[i]).join('');
    expect(decode(a.test.images.subarray(0, 64))).to.equal(loaded.text.slice(cut, cut + 64));
    expect(a.train.count * 32 + 1).to.be.at.most(cut);
  });

  it('shards sequences among workers (a partition) and batches them with their targets', () => {
    const tokens = Uint8Array.from({ length: 201 }, (_, i) => i);
    const split = sequenceSplit(tokens, 10); // 20 sequences
    const shards = [0, 1, 2].map((r) => rankShardOf(split, DATA, 7, 3, r));
    const all = shards.flatMap((s) => Array.from(s)).sort((x, y) => x - y);
    expect(all).to.deep.equal(Array.from({ length: 20 }, (_, i) => i));
    const batcher = new Batcher(split, shards[1], { batchSize: 4, seed: 3 });
    const batch = batcher.batchAt(5);
    expect(batch.x.length).to.equal(40);
    expect(batch.y.length).to.equal(40);
    for (let k = 0; k < 4; k++) {
      const first = batch.x[k * 10];
      expect(Array.from(shards[1])).to.include(first / 10); // sequence i starts at token 10·i (id = position)
      for (let j = 0; j < 10; j++) {
        expect(batch.x[k * 10 + j]).to.equal(first + j);
        expect(batch.y[k * 10 + j]).to.equal(first + j + 1);
      }
    }
    expect(Array.from(new Batcher(split, shards[1], { batchSize: 4, seed: 3 }).batchAt(5).x)).to.deep.equal(
      Array.from(batch.x),
    );
    expect(() => new Batcher(split, shards[1], { batchSize: 4, seed: 3, flip: true })).to.throw(/images only/);
    expect(() => batcher.batchAt(0, createBatch(4))).to.throw(/does not hold exactly 4 sequences of 10/);
  });
});
