/**
 * Fashion-MNIST (Zalando Research, MIT licence): 28×28 greyscale, 10 classes, 60k train / 10k test.
 *
 * Where it is looked for, first hit wins:
 *   1. the `path` option (must hold the files, else an error);
 *   2. the PHALANX_DATA environment variable (same);
 *   3. /usr/share/datasets/fashion-mnist (Debian package `dataset-fashion-mnist`);
 *   4. the repository's bundled subset data/fashion-mnist-subset (8,000 train / 2,000 test, class-balanced).
 * A directory must hold train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and
 * t10k-labels-idx1-ubyte, each gzipped (.gz) or raw.
 *
 * Images are returned as ByzFL feeds them (ToTensor, no normalisation): pixel / 255 in [0, 1], NHWC with one
 * channel, i.e. 784 floats per example in row-major order.
 */
import { existsSync, statSync } from 'node:fs';
import { join, sep } from 'node:path';
import { asImages, asLabels, readIdxFile } from './idx.ts';
import { packagePath } from '../packageRoot.ts';

export const FASHION_MNIST_CLASSES = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
] as const;
export const NUM_CLASSES = 10;
export const IMAGE_SIDE = 28;
export const IMAGE_SIZE = IMAGE_SIDE * IMAGE_SIDE;

export const SYSTEM_DATA_DIR = '/usr/share/datasets/fashion-mnist';
export const BUNDLED_SUBSET_DIR = packagePath('data', 'fashion-mnist-subset') + sep;
export const DATA_ENV_VAR = 'PHALANX_DATA';

export const FILE_BASENAMES = {
  trainImages: 'train-images-idx3-ubyte',
  trainLabels: 'train-labels-idx1-ubyte',
  testImages: 't10k-images-idx3-ubyte',
  testLabels: 't10k-labels-idx1-ubyte',
} as const;
type FileKey = keyof typeof FILE_BASENAMES;

export interface DatasetSplit {
  /** count × 784 floats, pixel / 255, NHWC (28×28×1) per example. */
  images: Float32Array;
  /** Class ids 0..9. */
  labels: Uint8Array;
  count: number;
  /**
   * Absent for images (784 floats and one label each). Set for token sequences (src/data/text.ts): each example
   * is `exampleSize` token ids in `images` and as many next-token ids in `labels`.
   */
  exampleSize?: number;
}

export interface FashionMnist {
  train: DatasetSplit;
  test: DatasetSplit;
  /** Where the data came from, for logs and reports. */
  source: string;
}

export interface LoadFashionMnistOptions {
  /** Directory holding the four IDX files; takes precedence over everything else. */
  path?: string;
  /** Keep only the first maxTrain training / maxTest test examples. */
  maxTrain?: number;
  maxTest?: number;
}

/** Lookup knobs, for tests: the environment and the two default directories. */
export interface ResolveOptions {
  path?: string;
  env?: Record<string, string | undefined>;
  systemDir?: string;
  bundledDir?: string;
}

export interface ResolvedDataset {
  files: Record<FileKey, string>;
  source: string;
}

const HOW_TO_GET =
  'Install it with `apt-get install dataset-fashion-mnist` (files under /usr/share/datasets/fashion-mnist), ' +
  `or set ${DATA_ENV_VAR} to a directory holding ${Object.values(FILE_BASENAMES)
    .map((b) => `${b}[.gz]`)
    .join(', ')}.`;

/** Find the dataset directory following the order documented above; throws with instructions if none. */
export function resolveFashionMnist(options: ResolveOptions = {}): ResolvedDataset {
  const env = options.env ?? process.env;
  if (options.path !== undefined) {
    return { files: requireFiles(options.path, `path '${options.path}'`), source: `path ${options.path}` };
  }
  const fromEnv = env[DATA_ENV_VAR];
  if (fromEnv !== undefined && fromEnv !== '') {
    return { files: requireFiles(fromEnv, `${DATA_ENV_VAR}='${fromEnv}'`), source: `${DATA_ENV_VAR}=${fromEnv}` };
  }
  const looked: string[] = [];
  const systemDir = options.systemDir ?? SYSTEM_DATA_DIR;
  const system = findFiles(systemDir);
  if (system.missing.length === 0) {
    return { files: system.files, source: `Debian package dataset-fashion-mnist (${systemDir})` };
  }
  looked.push(`${systemDir} (${describeMissing(system.missing)})`);
  const bundledDir = options.bundledDir ?? BUNDLED_SUBSET_DIR;
  const bundled = findFiles(bundledDir);
  if (bundled.missing.length === 0) {
    return { files: bundled.files, source: `bundled subset (${bundledDir})` };
  }
  looked.push(`${bundledDir} (${describeMissing(bundled.missing)})`);
  throw new Error(`Fashion-MNIST not found; looked in ${looked.join(' and ')}. ${HOW_TO_GET}`);
}

/** Load Fashion-MNIST (see the module comment for where it is looked for). */
export async function loadFashionMnist(
  options: LoadFashionMnistOptions & Omit<ResolveOptions, 'path'> = {},
): Promise<FashionMnist> {
  checkLimit('maxTrain', options.maxTrain);
  checkLimit('maxTest', options.maxTest);
  const { files, source } = resolveFashionMnist(options);
  const [train, test] = await Promise.all([
    loadSplit(files.trainImages, files.trainLabels, options.maxTrain),
    loadSplit(files.testImages, files.testLabels, options.maxTest),
  ]);
  return { train, test, source };
}

/** The training labels only (first `maxTrain`), without decoding any image: what sharding needs. */
export async function loadTrainingLabels(
  options: Pick<LoadFashionMnistOptions, 'path' | 'maxTrain'> & Omit<ResolveOptions, 'path'> = {},
): Promise<Uint8Array> {
  checkLimit('maxTrain', options.maxTrain);
  const { files } = resolveFashionMnist(options);
  const labels = asLabels(await readIdxFile(files.trainLabels), NUM_CLASSES, files.trainLabels);
  return labels.slice(0, Math.min(labels.length, options.maxTrain ?? labels.length));
}

/** Read one images/labels pair into a DatasetSplit (first `max` examples). */
export async function loadSplit(imagesPath: string, labelsPath: string, max?: number): Promise<DatasetSplit> {
  const [imagesIdx, labelsIdx] = await Promise.all([readIdxFile(imagesPath), readIdxFile(labelsPath)]);
  const images = asImages(imagesIdx, imagesPath);
  const labels = asLabels(labelsIdx, NUM_CLASSES, labelsPath);
  if (images.rows !== IMAGE_SIDE || images.cols !== IMAGE_SIDE) {
    throw new Error(`${imagesPath}: expected 28×28 images, got ${images.rows}×${images.cols}`);
  }
  if (labels.length !== images.count) {
    throw new Error(`${imagesPath} has ${images.count} images but ${labelsPath} has ${labels.length} labels`);
  }
  const count = Math.min(images.count, max ?? images.count);
  const out = new Float32Array(count * IMAGE_SIZE);
  const pixels = images.pixels;
  for (let i = 0; i < out.length; i++) out[i] = pixels[i] / 255;
  return { images: out, labels: labels.slice(0, count), count };
}

function findFiles(dir: string): { files: Record<FileKey, string>; missing: string[] } {
  const files = {} as Record<FileKey, string>;
  const missing: string[] = [];
  for (const [key, base] of Object.entries(FILE_BASENAMES) as [FileKey, string][]) {
    const found = [`${base}.gz`, base].map((name) => join(dir, name)).find(isFile);
    if (found === undefined) missing.push(base);
    else files[key] = found;
  }
  return { files, missing };
}

function requireFiles(dir: string, what: string): Record<FileKey, string> {
  if (!isDirectory(dir)) throw new Error(`Fashion-MNIST: ${what} is not a directory. ${HOW_TO_GET}`);
  const { files, missing } = findFiles(dir);
  if (missing.length > 0) {
    throw new Error(`Fashion-MNIST: ${what} lacks ${missing.map((m) => `${m}[.gz]`).join(', ')}. ${HOW_TO_GET}`);
  }
  return files;
}

function describeMissing(missing: string[]): string {
  return missing.length === Object.keys(FILE_BASENAMES).length ? 'absent' : `missing ${missing.join(', ')}`;
}

function isFile(p: string): boolean {
  return existsSync(p) && statSync(p).isFile();
}

function isDirectory(p: string): boolean {
  return existsSync(p) && statSync(p).isDirectory();
}

function checkLimit(name: string, v: number | undefined): void {
  if (v !== undefined && !(Number.isInteger(v) && v >= 0)) {
    throw new Error(`loadFashionMnist: ${name} must be a non-negative integer, got ${v}`);
  }
}
