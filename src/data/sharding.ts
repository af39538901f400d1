/**
 * Sharding of a set of examples among `numShards` workers. Every worker computes its own shard from the same
 * inputs, and the shards partition the set.
 *
 * IID (`shardIndices`): shuffle all example indices with a seeded Rng, then cut the permutation into
 * `numShards` contiguous pieces whose sizes differ by at most one.
 *
 * Dirichlet non-IID (`dirichletShards`): for each class c, p_c ~ Dirichlet(α·1ₙ) over the n shards; the class's
 * examples are shuffled and cut at ⌊m_c · (p_c,1 + … + p_c,k)⌋, k = 1..n−1 (m_c examples of class c). Small α
 * concentrates each class on few shards, large α approaches IID. Then every shard is topped up to `minSize`
 * examples (one batch) by moving examples from the currently largest shard, the last ones it received.
 */
import { sampleSymmetricDirichlet } from '../core/gamma.ts';
import { deriveSeed, Rng } from '../core/random.ts';

const SHARD_STREAM = 0x5a4d;

/** The data cannot be sharded as the job asks (a user error: the message names the fields to change). */
export class ShardingError extends Error {
  override name = 'ShardingError';
}
const DIRICHLET_STREAM = 0xd112;

/** Sorted example indices of shard `shard` (0-based) out of `numShards`. */
export function shardIndices(count: number, numShards: number, shard: number, seed: number): Uint32Array {
  if (!Number.isInteger(count) || count < 0) throw new Error(`shardIndices: count must be a non-negative integer, got ${count}`);
  if (!Number.isInteger(numShards) || numShards < 1) {
    throw new Error(`shardIndices: numShards must be a positive integer, got ${numShards}`);
  }
  if (!Number.isInteger(shard) || shard < 0 || shard >= numShards) {
    throw new Error(`shardIndices: shard must be an integer in [0, ${numShards}), got ${shard}`);
  }
  const perm = new Uint32Array(count);
  for (let i = 0; i < count; i++) perm[i] = i;
  new Rng(deriveSeed(seed, SHARD_STREAM, count, numShards)).shuffle(perm);
  const start = Math.floor((shard * count) / numShards);
  const end = Math.floor(((shard + 1) * count) / numShards);
  return perm.slice(start, end).sort();
}

/**
 * The n Dirichlet(α) non-IID shards of examples 0..labels.length−1 (sorted indices each), each holding at least
 * `minSize` examples. Deterministic for (labels, numShards, alpha, seed).
 */
export function dirichletShards(
  labels: ArrayLike<number>,
  numShards: number,
  alpha: number,
  seed: number,
  minSize = 1,
): Uint32Array[] {
  const count = labels.length;
  if (!Number.isInteger(numShards) || numShards < 1) {
    throw new Error(`dirichletShards: numShards must be a positive integer, got ${numShards}`);
  }
  if (!(alpha > 0) || !Number.isFinite(alpha)) throw new Error(`dirichletShards: alpha must be > 0, got ${alpha}`);
  if (!Number.isInteger(minSize) || minSize < 0) {
    throw new Error(`dirichletShards: minSize must be a non-negative integer, got ${minSize}`);
  }
  if (count < numShards * minSize) {
    throw new ShardingError(
      `data: ${count} training examples cannot give each of ${numShards} workers a batch of ${minSize} with ` +
        'shardBy: dirichlet; lower data.batchSize or workers.max, or leave more training examples (data.maxTrain, data.validation)',
    );
  }
  const byClass = new Map<number, number[]>();
  for (let i = 0; i < count; i++) {
    const c = labels[i];
    let list = byClass.get(c);
    if (list === undefined) byClass.set(c, (list = []));
    list.push(i);
  }
  const rng = new Rng(deriveSeed(seed, DIRICHLET_STREAM, count, numShards));
  const shards: number[][] = Array.from({ length: numShards }, () => []);
  for (const c of [...byClass.keys()].sort((a, b) => a - b)) {
    const members = byClass.get(c)!;
    const p = sampleSymmetricDirichlet(rng, alpha, numShards);
    rng.shuffle(members);
    let cumulative = 0;
    let start = 0;
    for (let k = 0; k < numShards; k++) {
      cumulative += p[k];
      const end = k === numShards - 1 ? members.length : Math.min(members.length, Math.floor(members.length * cumulative));
      for (let j = start; j < end; j++) shards[k].push(members[j]);
      start = Math.max(start, end);
    }
  }
  // Top-up: the total is ≥ n·minSize, so while a shard is short the largest one has more than minSize to give.
  for (;;) {
    let smallest = 0;
    let largest = 0;
    for (let k = 1; k < numShards; k++) {
      if (shards[k].length < shards[smallest].length) smallest = k;
      if (shards[k].length > shards[largest].length) largest = k;
    }
    const need = minSize - shards[smallest].length;
    if (need <= 0) break;
    const give = Math.min(need, shards[largest].length - minSize);
    if (give <= 0) throw new Error('dirichletShards: the shards lost examples (they hold fewer than n·minSize)');
    shards[smallest].push(...shards[largest].splice(shards[largest].length - give, give));
  }
  return shards.map((s) => Uint32Array.from(s).sort());
}
