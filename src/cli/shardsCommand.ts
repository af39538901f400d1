/**
 * `phalanx shards`: what each worker of a job trains on (its shard's size and class mix), and which share of every
 * class the job's simulated Byzantine ranks hold. Reads only the training labels.
 */
import type { JobSpec } from '../config/jobSpec.ts';
import { FASHION_MNIST_CLASSES, loadTrainingLabels } from '../data/fashionMnist.ts';
import { summariseShards, type ShardSummary } from '../data/shardSummary.ts';

/** Why `phalanx shards` cannot show this job (undefined: it can). */
export function shardsRefusal(spec: JobSpec): string | undefined {
  if (spec.data.kind !== 'fashion-mnist') {
    return `data.kind ${spec.data.kind} is sharded by sequence: no classes to show (phalanx shards reads image labels)`;
  }
  // simulate.byzantine.count ≤ workers.max is the job spec's own check.
  return undefined;
}

/** The summary of `spec`'s shards (workers.max of them), its Byzantine ranks from simulate.byzantine.count. */
export async function jobShards(spec: JobSpec): Promise<ShardSummary> {
  const labels = await loadTrainingLabels({ path: spec.data.path, maxTrain: spec.data.maxTrain });
  return summariseShards(labels, spec.data, spec.seed, spec.workers.max, spec.simulate?.byzantine.count ?? 0);
}

const pct = (x: number) => `${Math.round(100 * x)}%`;

/** The table `phalanx shards` prints: one row per rank (class shares of its shard), then the Byzantine ranks' share. */
export function formatShards(spec: JobSpec, s: ShardSummary): string[] {
  const total = s.classTotals.reduce((a, b) => a + b, 0);
  const how =
    spec.data.shardBy === 'dirichlet' ? `Dirichlet α = ${spec.data.alpha} label proportions` : 'IID shards';
  const heldOut = spec.data.validation > 0 ? ` (validation ${spec.data.validation} held out)` : '';
  const lines = [
    `${s.ranks.length} shards of ${total} training examples${heldOut}, ${how}, seed ${spec.seed}; per rank, the share of its shard in each class:`,
  ];
  const byz = new Set(s.byzantineRanks);
  const headers = ['rank', 'examples', ...FASHION_MNIST_CLASSES];
  const rows = s.ranks.map((r) => [
    `${r.rank}${byz.has(r.rank) ? '*' : ''}`,
    String(r.examples),
    ...r.classCounts.map((c) => pct(r.examples > 0 ? c / r.examples : 0)),
  ]);
  const widths = headers.map((h, j) => Math.max(h.length, ...rows.map((row) => row[j].length)));
  const line = (cells: string[]) => cells.map((c, j) => c.padStart(widths[j])).join('  ');
  lines.push(line(headers), ...rows.map(line));
  if (s.byzantineRanks.length > 0) {
    const shares = FASHION_MNIST_CLASSES.map((name, k) => `${name} ${pct(s.byzantineShare[k])}`);
    lines.push(
      `* Byzantine in simulate (simulate.byzantine.count ${s.byzantineRanks.length}): of each class's training examples they hold`,
      `  ${shares.join(', ')}`,
    );
  }
  return lines;
}
