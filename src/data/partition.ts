/**
 * Who trains on what, and what is evaluated, from a job's `data` and `evaluation` sections: first the validation
 * split is held out of the training set (validationSplit.ts), then the rest is sharded among the workers (IID or
 * Dirichlet non-IID, sharding.ts). Worker processes, `phalanx simulate` and the coordinator's evaluation all go
 * through here, so they agree on every index.
 */
import type { JobSpec } from '../config/jobSpec.ts';
import { IMAGE_SIZE, type DatasetSplit, type FashionMnist } from './fashionMnist.ts';
import { dirichletShards, shardIndices } from './sharding.ts';
import { splitValidation } from './validationSplit.ts';

export type DataSection = Pick<JobSpec['data'], 'shardBy' | 'alpha' | 'validation' | 'batchSize'>;

/** Sorted indices into the training split of the examples rank `rank` of `numShards` trains on. */
export function rankShard(
  trainLabels: Uint8Array,
  data: DataSection,
  seed: number,
  numShards: number,
  rank: number,
): Uint32Array {
  if (!Number.isInteger(rank) || rank < 0 || rank >= numShards) {
    throw new Error(`rankShard: rank must be an integer in [0, ${numShards}), got ${rank}`);
  }
  const pool = splitValidation(trainLabels, data.validation, seed).train;
  const local =
    data.shardBy === 'dirichlet'
      ? dirichletPoolShards(trainLabels, pool, data, seed, numShards)[rank]
      : shardIndices(pool.length, numShards, rank, seed);
  // pool is sorted, so mapping sorted positions keeps the shard sorted.
  return local.map((i) => pool[i]);
}

/** rankShard of every rank 0..numShards−1, partitioning once. */
export function allRankShards(
  trainLabels: Uint8Array,
  data: DataSection,
  seed: number,
  numShards: number,
): Uint32Array[] {
  const pool = splitValidation(trainLabels, data.validation, seed).train;
  const locals =
    data.shardBy === 'dirichlet'
      ? dirichletPoolShards(trainLabels, pool, data, seed, numShards)
      : Array.from({ length: numShards }, (_, rank) => shardIndices(pool.length, numShards, rank, seed));
  return locals.map((local) => local.map((i) => pool[i]));
}

/** The Dirichlet shards of the training pool, as positions into `pool`. */
function dirichletPoolShards(
  trainLabels: Uint8Array,
  pool: Uint32Array,
  data: DataSection,
  seed: number,
  numShards: number,
): Uint32Array[] {
  // A validated spec always has alpha here (its default is stated in the job spec schema).
  if (data.alpha === undefined) throw new Error('partition: shardBy dirichlet needs alpha');
  const poolLabels = new Uint8Array(pool.length);
  for (let i = 0; i < pool.length; i++) poolLabels[i] = trainLabels[pool[i]];
  return dirichletShards(poolLabels, numShards, data.alpha, seed, data.batchSize);
}

/** Sorted indices into the training split of the held-out validation examples (empty if data.validation = 0). */
export function validationIndices(trainLabels: Uint8Array, data: Pick<DataSection, 'validation'>, seed: number): Uint32Array {
  return splitValidation(trainLabels, data.validation, seed).validation;
}

/** The examples `indices` of `split`, copied into a split of their own. */
export function subsetSplit(split: DatasetSplit, indices: ArrayLike<number>): DatasetSplit {
  const size = split.exampleSize ?? IMAGE_SIZE;
  const targets = split.exampleSize ?? 1;
  const images = new Float32Array(indices.length * size);
  const labels = new Uint8Array(indices.length * targets);
  for (let k = 0; k < indices.length; k++) {
    const i = indices[k];
    if (!(i >= 0 && i < split.count)) throw new Error(`subsetSplit: index ${i} is outside the split (count ${split.count})`);
    images.set(split.images.subarray(i * size, (i + 1) * size), k * size);
    labels.set(split.labels.subarray(i * targets, (i + 1) * targets), k * targets);
  }
  const out: DatasetSplit = { images, labels, count: indices.length };
  if (split.exampleSize !== undefined) out.exampleSize = split.exampleSize;
  return out;
}

/**
 * Sorted indices into `train` of the examples rank `rank` trains on: rankShard for images; for token sequences
 * (text) an IID shard of all training sequences (the held-out text is already apart; see text.ts).
 */
export function rankShardOf(train: DatasetSplit, data: DataSection, seed: number, numShards: number, rank: number): Uint32Array {
  if (train.exampleSize === undefined) return rankShard(train.labels, data, seed, numShards, rank);
  if (!Number.isInteger(rank) || rank < 0 || rank >= numShards) {
    throw new Error(`rankShard: rank must be an integer in [0, ${numShards}), got ${rank}`);
  }
  return shardIndices(train.count, numShards, rank, seed);
}

/**
 * The split `evaluation.split` names: the test set, or the validation examples held out of the training set.
 * For text both name the held-out end of the text (data.kind text).
 */
export function evaluationSplit(data: FashionMnist, spec: Pick<JobSpec, 'data' | 'evaluation' | 'seed'>): DatasetSplit {
  if (spec.evaluation.split === 'test' || spec.data.kind === 'text') return data.test;
  return subsetSplit(data.train, validationIndices(data.train.labels, spec.data, spec.seed));
}
