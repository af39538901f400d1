/**
 * What each worker trains on: per rank, its shard's size and class counts, and, for the ranks a simulation makes
 * Byzantine (the highest `byzantine` ranks, as in src/simulation/simulate.ts), the share of every class's training
 * examples they hold. On Dirichlet shards that share says which classes the honest workers barely see when those
 * ranks attack (or crash): no aggregation rule can learn from data only attackers hold. Pure.
 */
import { NUM_CLASSES } from './fashionMnist.ts';
import { allRankShards, type DataSection } from './partition.ts';

export interface RankShard {
  rank: number;
  examples: number;
  /** Examples per class (index = label). */
  classCounts: number[];
}

export interface ShardSummary {
  ranks: RankShard[];
  /** Examples per class over all shards. */
  classTotals: number[];
  /** The ranks counted as Byzantine: the highest `byzantine` of them. */
  byzantineRanks: number[];
  /** Per class, the share of its training examples held by the Byzantine ranks (0 for a class nobody holds). */
  byzantineShare: number[];
}

export function summariseShards(
  trainLabels: Uint8Array,
  data: DataSection,
  seed: number,
  workers: number,
  byzantine: number,
): ShardSummary {
  if (!Number.isInteger(byzantine) || byzantine < 0 || byzantine > workers) {
    throw new RangeError(`byzantine must be an integer in [0, ${workers}], got ${byzantine}`);
  }
  const ranks: RankShard[] = [];
  const classTotals = new Array<number>(NUM_CLASSES).fill(0);
  const shards = allRankShards(trainLabels, data, seed, workers);
  for (let rank = 0; rank < workers; rank++) {
    const classCounts = new Array<number>(NUM_CLASSES).fill(0);
    const shard = shards[rank];
    for (const i of shard) classCounts[trainLabels[i]]++;
    for (let k = 0; k < NUM_CLASSES; k++) classTotals[k] += classCounts[k];
    ranks.push({ rank, examples: shard.length, classCounts });
  }
  const byzantineRanks = ranks.slice(workers - byzantine).map((r) => r.rank);
  const byzantineShare = classTotals.map((total, k) => {
    let held = 0;
    for (const r of byzantineRanks) held += ranks[r].classCounts[k];
    return total > 0 ? held / total : 0;
  });
  return { ranks, classTotals, byzantineRanks, byzantineShare };
}
