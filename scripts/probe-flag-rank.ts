/**
 * Probe of the Flag Aggregator on real gradients (docs/robustness/flag-rank.md): trains the quick grid's MLP
 * with the default rule under one attack cell, and every `--every` rounds re-aggregates that round's delivered
 * vectors with each candidate configuration, printing r, the IRLS weight spread, how many Byzantine vectors the
 * output used, and cos(update, honest mean). The training trajectory is the default's; only the probes vary.
 *
 *   node --import tsx scripts/probe-flag-rank.ts --attack labelflip --f 3 --data dir0.3 --seed 100 \
 *     --rounds 300 --every 20
 */
import { parseArgs } from 'node:util';
import { validateJobSpec } from '../src/config/jobSpec.ts';
import { createFlagAggregator } from '../src/core/aggregation/flag/aggregator.ts';
import { createAggregationPipeline } from '../src/core/aggregation/pipeline.ts';
import { createRule, registerRule } from '../src/core/aggregation/registry.ts';
import type { AggregationResult } from '../src/core/aggregation/types.ts';
import { simulate } from '../src/simulation/simulate.ts';
import { allCells, runSpec } from '../bench/robustness.ts';

const { values } = parseArgs({
  options: {
    attack: { type: 'string', default: 'labelflip' },
    f: { type: 'string', default: '3' },
    data: { type: 'string', default: 'dir0.3' },
    seed: { type: 'string', default: '100' },
    rounds: { type: 'string', default: '300' },
    every: { type: 'string', default: '20' },
    probes: { type: 'string' },
  },
});
const f = Number(values.f);
const every = Number(values.every);
const cell = allCells().find((c) => c.id === `default/${values.attack}/f${f}/${values.data}`);
if (!cell) throw new Error(`no cell default/${values.attack}/f${f}/${values.data}`);
const spec = validateJobSpec(
  runSpec(cell, Number(values.seed), Number(values.rounds), 0, { model: 'mlp', split: 'validation' }),
);

type Probe = { name: string; run: (v: Float32Array[], ids: string[]) => AggregationResult };
const flagProbe = (name: string, options: Record<string, unknown>): Probe => ({
  name,
  run: (vectors, workerIds) => createFlagAggregator(options).aggregate({ vectors, workerIds, f }),
});
const pipelineProbe = (name: string, rule: string, pre: string[]): Probe => ({
  name,
  run: (vectors, ids) => createAggregationPipeline({ rule, f, pre, options: {} }).aggregate(vectors, ids),
});
const ALL: Probe[] = [
  flagProbe('default', {}),
  ...[1, 2, 3, 4, 5, 6, 8].map((r) => flagProbe(`r=${r}`, { r })),
  flagProbe('iter1', { maxIterations: 1 }),
  flagProbe('iter0', { maxIterations: 0 }),
  flagProbe('eps0.5', { epsilon: 0.5 }),
  flagProbe('r=n-2f', { r: 'n-2f' }),
  flagProbe('r=n-f-1', { r: 12 - f - 1 }),
  flagProbe('trusted-mean', { step: 'trusted-mean', rescale: 'none' }),
  flagProbe('projected-mean', { step: 'projected-mean', rescale: 'none' }),
  flagProbe('tmean-mn', { step: 'trusted-mean' }),
  flagProbe('tmean-mn-cm', { step: 'trusted-mean', signDirection: 'clipped-mean' }),
  pipelineProbe('tm-clip-nnm', 'trimmedMean', ['clip', 'nnm']),
  pipelineProbe('mean', 'mean', []),
];
const wanted = values.probes?.split(',');
const PROBES = wanted ? ALL.filter((p) => wanted.includes(p.name)) : ALL;

const dot = (a: Float32Array, b: Float32Array) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};
const cos = (a: Float32Array, b: Float32Array) => dot(a, b) / Math.sqrt(dot(a, a) * dot(b, b) || 1);

interface Acc {
  cos: number;
  rel: number;
  len: number;
  byz: number;
  r: number;
  wmax: number;
  count: number;
}
const acc = new Map<string, Acc>();
const byzCount = spec.simulate?.byzantine?.count ?? 0;

// Re-register flag so that the default run hands each round's vectors to the probes.
const original = (o: Record<string, unknown>) => createRule('flag-original', o);
registerRule('flag-original', createFlagAggregator);
let round = 0;
registerRule('flag', (options) => {
  const inner = original(options ?? {});
  return {
    name: 'flag',
    aggregate(input) {
      const result = inner.aggregate(input);
      if (round % every === every - 1) probe(input.vectors, input.workerIds);
      round++;
      return result;
    },
    saveState: () => inner.saveState?.() ?? {},
    loadState: (s: Record<string, unknown>) => inner.loadState?.(s),
  };
});

function probe(vectors: Float32Array[], ids: string[]): void {
  const n = vectors.length;
  const h = n - byzCount;
  const d = vectors[0].length;
  const mu = new Float32Array(d);
  for (let i = 0; i < h; i++) for (let k = 0; k < d; k++) mu[k] += vectors[i][k] / h;
  const muNorm = Math.sqrt(dot(mu, mu));
  let pair = 0;
  for (let i = 0; i < h; i++) for (let j = i + 1; j < h; j++) pair += cos(vectors[i], vectors[j]);
  const line = [`round ${round + 1}: honest pairwise cos ${(pair / ((h * (h - 1)) / 2)).toFixed(3)}`];
  for (const p of PROBES) {
    const res = p.run(vectors, ids);
    const c = cos(res.update, mu);
    const diff = res.update.map((x, k) => x - mu[k]);
    const rel = Math.sqrt(dot(diff, diff)) / muNorm;
    const len = Math.sqrt(dot(res.update, res.update)) / muNorm;
    const byz = res.workers.filter((w) => w.index >= h && w.weight !== 0).length;
    const dg = res.diagnostics as { r?: number; irlsWeights?: number[] } | undefined;
    const w = (dg?.irlsWeights ?? []).filter((x) => x > 0).sort((a, b) => a - b);
    const wmax = w.length ? w[w.length - 1] / w[w.length >> 1] : NaN;
    const a = acc.get(p.name) ?? { cos: 0, rel: 0, len: 0, byz: 0, r: 0, wmax: 0, count: 0 };
    a.cos += c;
    a.rel += rel;
    a.len += len;
    a.byz += byz;
    a.r += dg?.r ?? NaN;
    a.wmax += Math.log10(wmax);
    a.count++;
    acc.set(p.name, a);
    line.push(
      `  ${p.name.padEnd(12)} r ${String(dg?.r ?? '-').padStart(2)}  cos ${c.toFixed(3)}  ‖u−μ‖/‖μ‖ ${rel.toFixed(2)}  ‖u‖/‖μ‖ ${len.toFixed(2)}  ` +
        `byz used ${byz}  max/median IRLS weight ${wmax.toExponential(1)}`,
    );
  }
  console.log(line.join('\n'));
}

const result = await simulate(spec, {});
console.log(`\nfinal validation accuracy (default rule) ${result.finalAccuracy.toFixed(3)}`);
console.log(
  'mean over probed rounds: probe, r, cos(update, μ), ‖u−μ‖/‖μ‖, ‖u‖/‖μ‖, Byzantine used, log10 max/median weight',
);
for (const [name, a] of acc) {
  const m = (x: number) => x / a.count;
  console.log(
    `${name.padEnd(12)} r ${m(a.r).toFixed(2)}  cos ${m(a.cos).toFixed(3)}  rel ${m(a.rel).toFixed(2)}  len ${m(a.len).toFixed(2)}  ` +
      `byz ${m(a.byz).toFixed(2)}  log10w ${m(a.wmax).toFixed(2)}`,
  );
}
