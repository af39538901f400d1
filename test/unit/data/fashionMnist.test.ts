import { expect } from 'chai';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BUNDLED_SUBSET_DIR,
  DATA_ENV_VAR,
  loadFashionMnist,
  resolveFashionMnist,
} from '../../../src/data/fashionMnist.ts';
import { encodeIdx } from '../../../src/data/idx.ts';

/** Writes a tiny Fashion-MNIST-shaped dataset: n train / m test examples, pixel value = (i + p) % 256. */
function writeTinyDataset(dir: string, n: number, m: number, gzip = true, label = (i: number) => i % 10): void {
  mkdirSync(dir, { recursive: true });
  const ext = gzip ? '.gz' : '';
  for (const [prefix, count] of [
    ['train', n],
    ['t10k', m],
  ] as const) {
    const pixels = Uint8Array.from({ length: count * 784 }, (_, k) => (Math.floor(k / 784) + (k % 784)) % 256);
    writeFileSync(join(dir, `${prefix}-images-idx3-ubyte${ext}`), encodeIdx(pixels, [count, 28, 28], gzip));
    writeFileSync(join(dir, `${prefix}-labels-idx1-ubyte${ext}`), encodeIdx(Uint8Array.from({ length: count }, (_, i) => label(i)), [count], gzip));
  }
}

describe('data: Fashion-MNIST loading', () => {
  let root: string;
  const none = () => join(root, 'does-not-exist');
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'phalanx-fmnist-'));
    writeTinyDataset(join(root, 'a'), 12, 5);
    writeTinyDataset(join(root, 'b'), 7, 3, false);
    writeTinyDataset(join(root, 'c'), 4, 2);
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('resolves explicit path → PHALANX_DATA → system dir → bundled subset', () => {
    const env = { [DATA_ENV_VAR]: join(root, 'b') };
    const dirs = { systemDir: join(root, 'c'), bundledDir: join(root, 'a') };
    expect(resolveFashionMnist({ path: join(root, 'a'), env, ...dirs }).source).to.equal(`path ${join(root, 'a')}`);
    expect(resolveFashionMnist({ env, ...dirs }).source).to.equal(`${DATA_ENV_VAR}=${join(root, 'b')}`);
    expect(resolveFashionMnist({ env: {}, ...dirs }).source).to.match(/dataset-fashion-mnist/);
    expect(resolveFashionMnist({ env: {}, systemDir: none(), bundledDir: join(root, 'a') }).source).to.match(/bundled subset/);
    expect(resolveFashionMnist({ env: { [DATA_ENV_VAR]: '' }, ...dirs }).source).to.match(/dataset-fashion-mnist/);
  });

  it('says how to get the data when nothing is found, and does not fall through a wrong explicit location', () => {
    expect(() => resolveFashionMnist({ env: {}, systemDir: none(), bundledDir: none() })).to.throw(
      /Fashion-MNIST not found.*apt-get install dataset-fashion-mnist.*PHALANX_DATA/,
    );
    const dirs = { systemDir: join(root, 'a'), bundledDir: join(root, 'a') };
    expect(() => resolveFashionMnist({ path: none(), env: {}, ...dirs })).to.throw(/is not a directory/);
    expect(() => resolveFashionMnist({ env: { [DATA_ENV_VAR]: root }, ...dirs })).to.throw(
      /PHALANX_DATA=.* lacks train-images-idx3-ubyte\[\.gz\]/,
    );
  });

  it('loads gzipped and raw files as pixel/255 floats with labels, honouring maxTrain/maxTest', async () => {
    const a = await loadFashionMnist({ path: join(root, 'a') });
    expect(a.train.count).to.equal(12);
    expect(a.test.count).to.equal(5);
    expect(a.train.images.length).to.equal(12 * 784);
    expect(a.train.images[784 * 3 + 10]).to.be.closeTo(13 / 255, 1e-7);
    expect(Array.from(a.train.labels)).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
    const b = await loadFashionMnist({ path: join(root, 'b'), maxTrain: 2, maxTest: 10 });
    expect([b.train.count, b.test.count, b.train.images.length, b.train.labels.length]).to.deep.equal([2, 3, 2 * 784, 2]);
  });

  it('rejects inconsistent files', async () => {
    const dir = join(root, 'bad');
    writeTinyDataset(dir, 3, 2);
    writeFileSync(join(dir, 'train-labels-idx1-ubyte.gz'), encodeIdx(Uint8Array.of(1, 2), [2], true));
    await expectReject(loadFashionMnist({ path: dir }), /has 3 images but .* has 2 labels/);
    writeFileSync(join(dir, 'train-images-idx3-ubyte.gz'), encodeIdx(new Uint8Array(3 * 20 * 20), [3, 20, 20], true));
    await expectReject(loadFashionMnist({ path: dir }), /expected 28×28 images, got 20×20/);
    const labels = join(root, 'badlabels');
    writeTinyDataset(labels, 3, 2, true, (i) => (i === 1 ? 12 : 0));
    await expectReject(loadFashionMnist({ path: labels }), /label 12 at index 1/);
    await expectReject(loadFashionMnist({ path: join(root, 'a'), maxTrain: -1 }), /maxTrain/);
  });

  it('the bundled subset is class-balanced 8,000 / 2,000, in range, and under 5 MB', async () => {
    const bytes = readdirSync(BUNDLED_SUBSET_DIR)
      .filter((f) => f.endsWith('.gz'))
      .reduce((sum, f) => sum + statSync(join(BUNDLED_SUBSET_DIR, f)).size, 0);
    expect(bytes).to.be.below(5 * 1024 * 1024);
    const data = await loadFashionMnist({ path: BUNDLED_SUBSET_DIR });
    expect(data.train.count).to.equal(8000);
    expect(data.test.count).to.equal(2000);
    for (const [split, perClass] of [
      [data.train, 800],
      [data.test, 200],
    ] as const) {
      const counts = new Array<number>(10).fill(0);
      for (const y of split.labels) counts[y]++;
      expect(counts).to.deep.equal(new Array<number>(10).fill(perClass));
      let min = Infinity;
      let max = -Infinity;
      for (const v of split.images) {
        if (v < min) min = v;
        if (v > max) max = v;
      }
      expect(min).to.equal(0);
      expect(max).to.equal(1);
    }
  });
});

async function expectReject(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  try {
    await p;
  } catch (err) {
    expect((err as Error).message).to.match(pattern);
    return;
  }
  expect.fail(`expected a rejection matching ${pattern}`);
}
