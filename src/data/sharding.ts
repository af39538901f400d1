/**
 * IID sharding: shuffle all example indices with a seeded Rng, then cut the permutation into `numShards`
 * contiguous pieces whose sizes differ by at most one. Every worker computes its own shard from the same
 * (count, numShards, seed), and the shards partition 0..count−1.
 */
import { deriveSeed, Rng } from '../core/random.ts';

const SHARD_STREAM = 0x5a4d;

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
