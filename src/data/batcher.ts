/**
 * Deterministic mini-batches over one shard.
 *
 * The shard is read as an endless stream of epochs; epoch e visits the shard in the order of a permutation
 * drawn from Rng(deriveSeed(seed, EPOCH, e)). Batch `step` holds stream positions [step·B, (step+1)·B), so a
 * batch may straddle two epochs and every batch has exactly B examples. With `flip`, each example of batch
 * `step` is mirrored left-right with probability ½ from Rng(deriveSeed(seed, FLIP, step)) — ByzFL's
 * RandomHorizontalFlip for Fashion-MNIST. A batch is therefore a pure function of (split, shard, seed, step):
 * `batchAt(step)` gives it directly (e.g. for a worker that rejoins at round t), `next()` walks the steps.
 */
import { deriveSeed, Rng } from '../core/random.ts';
import type { Batch } from '../models/types.ts';
import { IMAGE_SIDE, IMAGE_SIZE, type DatasetSplit } from './fashionMnist.ts';

const EPOCH_STREAM = 0xe90c;
const FLIP_STREAM = 0xf11b;

export interface BatcherOptions {
  batchSize: number;
  seed: number;
  /** Random horizontal flips (p = ½ per example). Default false. */
  flip?: boolean;
}

/**
 * A Batch with buffers for `size` examples: images by default, token sequences of `seqLen` (x and y both
 * size·seqLen long) when given.
 */
export function createBatch(size: number, seqLen?: number): Batch {
  if (!Number.isInteger(size) || size <= 0) throw new Error(`createBatch: size must be a positive integer, got ${size}`);
  if (seqLen === undefined) return { x: new Float32Array(size * IMAGE_SIZE), y: new Uint8Array(size), size };
  if (!Number.isInteger(seqLen) || seqLen <= 0) throw new Error(`createBatch: seqLen must be a positive integer`);
  return { x: new Float32Array(size * seqLen), y: new Uint8Array(size * seqLen), size };
}

export class Batcher {
  readonly batchSize: number;
  readonly seed: number;
  readonly flip: boolean;
  private readonly split: DatasetSplit;
  private readonly indices: Uint32Array;
  private readonly buffer: Batch;
  private cursor = 0;
  /** Two cached epoch permutations (a batch touches at most two consecutive epochs when B ≤ shard size). */
  private readonly permCache = new Map<number, Uint32Array>();

  /** `indices`: the shard's example indices into `split` (all examples if omitted). */
  constructor(split: DatasetSplit, indices: ArrayLike<number> | undefined, options: BatcherOptions) {
    const { batchSize, seed } = options;
    if (!Number.isInteger(batchSize) || batchSize <= 0) {
      throw new Error(`Batcher: batchSize must be a positive integer, got ${batchSize}`);
    }
    this.split = split;
    this.indices = indices === undefined ? Uint32Array.from({ length: split.count }, (_, i) => i) : Uint32Array.from(indices);
    if (this.indices.length === 0) throw new Error('Batcher: the shard is empty');
    for (const i of this.indices) {
      if (i >= split.count) throw new Error(`Batcher: index ${i} is outside the split (count ${split.count})`);
    }
    this.batchSize = batchSize;
    this.seed = seed >>> 0;
    this.flip = options.flip ?? false;
    if (this.flip && split.exampleSize !== undefined) throw new Error('Batcher: flip applies to images only');
    this.buffer = createBatch(batchSize, split.exampleSize);
  }

  /** Examples in the shard. */
  get shardSize(): number {
    return this.indices.length;
  }

  /** The step the next call to next() produces. */
  get step(): number {
    return this.cursor;
  }

  /** The epoch the next example comes from. */
  get epoch(): number {
    return Math.floor((this.cursor * this.batchSize) / this.indices.length);
  }

  /** Continue from batch `step` (e.g. after a restart). */
  seek(step: number): void {
    if (!Number.isInteger(step) || step < 0) throw new Error(`Batcher: step must be a non-negative integer, got ${step}`);
    this.cursor = step;
  }

  /** The next batch, written into the batcher's own buffers (overwritten by the following call). */
  next(): Batch {
    this.batchAt(this.cursor, this.buffer);
    this.cursor++;
    return this.buffer;
  }

  /** Batch number `step`, written into `out` (a new Batch if omitted). Does not move the cursor. */
  batchAt(step: number, out: Batch = createBatch(this.batchSize, this.split.exampleSize)): Batch {
    if (!Number.isInteger(step) || step < 0) throw new Error(`Batcher: step must be a non-negative integer, got ${step}`);
    const b = this.batchSize;
    const size = this.split.exampleSize ?? IMAGE_SIZE;
    const targets = this.split.exampleSize ?? 1;
    if (this.split.exampleSize === undefined) {
      if (out.x.length < b * size || out.y.length < b) throw new Error(`Batcher: output batch holds fewer than ${b} examples`);
    } else if (out.x.length !== b * size || out.y.length !== b * targets) {
      // A sequence batch's length is read from its buffers (x.length / size), so those must be exact.
      throw new Error(`Batcher: output batch does not hold exactly ${b} sequences of ${size}`);
    }
    const n = this.indices.length;
    const flipRng = this.flip ? new Rng(deriveSeed(this.seed, FLIP_STREAM, step)) : undefined;
    const images = this.split.images;
    for (let k = 0; k < b; k++) {
      const pos = step * b + k;
      const epoch = Math.floor(pos / n);
      const example = this.indices[this.permutation(epoch)[pos - epoch * n]];
      out.y.set(this.split.labels.subarray(example * targets, (example + 1) * targets), k * targets);
      const src = example * size;
      const dst = k * size;
      if (flipRng !== undefined && flipRng.next() < 0.5) {
        for (let r = 0; r < IMAGE_SIDE; r++) {
          const row = r * IMAGE_SIDE;
          for (let c = 0; c < IMAGE_SIDE; c++) out.x[dst + row + c] = images[src + row + IMAGE_SIDE - 1 - c];
        }
      } else {
        out.x.set(images.subarray(src, src + size), dst);
      }
    }
    out.size = b;
    return out;
  }

  private permutation(epoch: number): Uint32Array {
    let perm = this.permCache.get(epoch);
    if (perm === undefined) {
      perm = new Uint32Array(this.indices.length);
      for (let i = 0; i < perm.length; i++) perm[i] = i;
      new Rng(deriveSeed(this.seed, EPOCH_STREAM, epoch)).shuffle(perm);
      if (this.permCache.size >= 2) this.permCache.delete(this.permCache.keys().next().value as number);
      this.permCache.set(epoch, perm);
    }
    return perm;
  }
}
