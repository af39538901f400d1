/**
 * How far the data shards are from IID (npx tsx bench/shardHeterogeneity.ts [--workers 12] [--seeds 3]
 * [--validation 0]): for IID shards and Dirichlet shards at α ∈ {100, 10, 1, 0.3, 0.1}, the mean over workers of
 * the total-variation distance ½·Σ_c |p_shard(c) − p_train(c)| between a shard's label histogram and the training
 * set's, and the smallest and largest shard, on the training set the job would load (PHALANX_DATA, the Debian
 * package or the bundled subset). Mean ± std over the seeds. No timing: the shards are a pure function of
 * (seed, n, α, validation, labels).
 */
import { parseArgs } from 'node:util';
import { loadFashionMnist, NUM_CLASSES } from '../src/data/fashionMnist.ts';
import { rankShard, type DataSection } from '../src/data/partition.ts';

const { values } = parseArgs({
  options: {
    workers: { type: 'string', default: '12' },
    seeds: { type: 'string', default: '3' },
    validation: { type: 'string', default: '0' },
    'batch-size': { type: 'string', default: '25' },
  },
});
const n = Number(values.workers);
const seeds = Array.from({ length: Number(values.seeds) }, (_, s) => s);
const validation = Number(values.validation);
const batchSize = Number(values['batch-size']);

const data = await loadFashionMnist({ maxTest: 1 });
const labels = data.train.labels;
const global = new Float64Array(NUM_CLASSES);
for (const y of labels) global[y] += 1 / labels.length;

function measure(section: DataSection, seed: number): { tv: number; min: number; max: number } {
  let tv = 0;
  let min = Infinity;
  let max = 0;
  for (let rank = 0; rank < n; rank++) {
    const shard = rankShard(labels, section, seed, n, rank);
    min = Math.min(min, shard.length);
    max = Math.max(max, shard.length);
    const h = new Float64Array(NUM_CLASSES);
    for (const i of shard) h[labels[i]] += 1 / shard.length;
    let d = 0;
    for (let c = 0; c < NUM_CLASSES; c++) d += Math.abs(h[c] - global[c]);
    tv += d / 2 / n;
  }
  return { tv, min, max };
}

console.log(
  `${labels.length} training examples (${data.source}), ${n} workers, validation ${validation}, seeds ${seeds.join(',')}`,
);
console.log(
  '| shards | mean TV to the training set (mean ± std over seeds) | smallest shard | largest shard |',
);
console.log('|---|---|---|---|');
const settings: [string, DataSection][] = [
  ['IID', { shardBy: 'worker', validation, batchSize }],
  ...[100, 10, 1, 0.3, 0.1].map((alpha): [string, DataSection] => [
    `Dirichlet α = ${alpha}`,
    { shardBy: 'dirichlet', alpha, validation, batchSize },
  ]),
];
for (const [name, section] of settings) {
  const rs = seeds.map((seed) => measure(section, seed));
  const mean = rs.reduce((s, r) => s + r.tv, 0) / rs.length;
  const std = Math.sqrt(rs.reduce((s, r) => s + (r.tv - mean) ** 2, 0) / Math.max(1, rs.length - 1));
  const min = Math.min(...rs.map((r) => r.min));
  const max = Math.max(...rs.map((r) => r.max));
  console.log(`| ${name} | ${mean.toFixed(3)} ± ${std.toFixed(3)} | ${min} | ${max} |`);
}
