/**
 * Builds data/fashion-mnist-subset: a class-balanced random subset of Fashion-MNIST small enough to ship in
 * the repository (tests, CI and the demo run without the Debian package).
 *
 *   node --import tsx scripts/make-fmnist-subset.ts [--src DIR] [--out DIR] [--train N] [--test N] [--seed S]
 *
 * Defaults: --src /usr/share/datasets/fashion-mnist (apt-get install dataset-fashion-mnist),
 * --out data/fashion-mnist-subset, --train 8000, --test 2000, --seed 20261127.
 * From each split it draws N/10 examples of every class (a seeded shuffle of each class's indices), shuffles
 * the chosen examples together, and writes the four IDX files gzipped at level 9. Output is byte-for-byte
 * reproducible for the same source files and arguments.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { deriveSeed, Rng } from '../src/core/random.ts';
import { FILE_BASENAMES, NUM_CLASSES, SYSTEM_DATA_DIR } from '../src/data/fashionMnist.ts';
import { asImages, asLabels, encodeIdx, readIdxFile } from '../src/data/idx.ts';

const { values } = parseArgs({
  options: {
    src: { type: 'string', default: SYSTEM_DATA_DIR },
    out: { type: 'string', default: 'data/fashion-mnist-subset' },
    train: { type: 'string', default: '8000' },
    test: { type: 'string', default: '2000' },
    seed: { type: 'string', default: '20261127' },
  },
});

const seed = Number(values.seed);
const outDir = resolve(values.out);
mkdirSync(outDir, { recursive: true });

async function subset(
  split: 'train' | 'test',
  imagesBase: string,
  labelsBase: string,
  total: number,
  stream: number,
) {
  if (!Number.isInteger(total) || total <= 0 || total % NUM_CLASSES !== 0) {
    throw new Error(`--${split} must be a positive multiple of ${NUM_CLASSES}, got ${total}`);
  }
  const imagesPath = join(values.src, `${imagesBase}.gz`);
  const labelsPath = join(values.src, `${labelsBase}.gz`);
  const images = asImages(await readIdxFile(imagesPath), imagesPath);
  const labels = asLabels(await readIdxFile(labelsPath), NUM_CLASSES, labelsPath);
  const perClass = total / NUM_CLASSES;
  const rng = new Rng(deriveSeed(seed, stream));
  const byClass: number[][] = Array.from({ length: NUM_CLASSES }, () => []);
  labels.forEach((label, i) => byClass[label].push(i));
  const chosen: number[] = [];
  byClass.forEach((indices, c) => {
    if (indices.length < perClass)
      throw new Error(`${split}: class ${c} has only ${indices.length} examples`);
    chosen.push(...rng.shuffle(indices).slice(0, perClass));
  });
  rng.shuffle(chosen);

  const side = images.rows * images.cols;
  const pixels = new Uint8Array(total * side);
  const outLabels = new Uint8Array(total);
  chosen.forEach((src, k) => {
    pixels.set(images.pixels.subarray(src * side, (src + 1) * side), k * side);
    outLabels[k] = labels[src];
  });
  const files: [string, Uint8Array][] = [
    [`${imagesBase}.gz`, encodeIdx(pixels, [total, images.rows, images.cols], true)],
    [`${labelsBase}.gz`, encodeIdx(outLabels, [total], true)],
  ];
  for (const [name, bytes] of files) {
    writeFileSync(join(outDir, name), bytes);
    const sha = createHash('sha256').update(bytes).digest('hex');
    console.log(`${name}  ${bytes.length} bytes  sha256 ${sha}`);
  }
}

await subset('train', FILE_BASENAMES.trainImages, FILE_BASENAMES.trainLabels, Number(values.train), 1);
await subset('test', FILE_BASENAMES.testImages, FILE_BASENAMES.testLabels, Number(values.test), 2);
console.log(`wrote ${outDir} from ${values.src} (seed ${seed})`);
