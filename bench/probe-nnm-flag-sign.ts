/**
 * Probe of NNM + flag's sign test (docs/robustness/selection-dirichlet.md, 2026-12-02): trains the MLP with one
 * bench rule under one attack cell and logs, every round, what the flag saw after NNM: the cosine of the
 * aggregate to the honest mean μ (mean of the raw honest vectors), the flag's sign scores of the mixed vectors of
 * honest and Byzantine workers, and which were excluded. It also scores the raw (pre-NNM) vectors against robust
 * directions of the raw inputs (coordinate-wise median, coordinate-wise trimmed mean, mean, clipped mean, the
 * flag's principal axis, the last also counted below −0.5 and −0.7),
 * and re-aggregates the round with NNM + flag with NNM's sign screen (`nnm` option signThreshold −0.3) for comparison. The
 * training trajectory is the probed rule's; the comparisons do not feed back.
 *
 *   node --import tsx bench/probe-nnm-flag-sign.ts --rule nnm-flag --attack signflip --f 3 --data dir0.3 \
 *     --seed 100 --rounds 300 --log /tmp/probe.tsv
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { validateJobSpec } from '../src/config/jobSpec.ts';
import { createFlagAggregator } from '../src/core/aggregation/flag/aggregator.ts';
import { createAggregationPipeline } from '../src/core/aggregation/pipeline.ts';
import { createNnm } from '../src/core/aggregation/preaggregators/nnm.ts';
import { createRule, registerPreAggregator, registerRule } from '../src/core/aggregation/registry.ts';
import type { AggregationResult } from '../src/core/aggregation/types.ts';
import { simulate } from '../src/simulation/simulate.ts';
import { allCells, runSpec } from './robustness.ts';

const { values } = parseArgs({
  options: {
    rule: { type: 'string', default: 'nnm-flag' },
    attack: { type: 'string', default: 'signflip' },
    f: { type: 'string', default: '3' },
    data: { type: 'string', default: 'dir0.3' },
    seed: { type: 'string', default: '100' },
    rounds: { type: 'string', default: '300' },
    log: { type: 'string' },
  },
});
const f = Number(values.f);
const cell = allCells().find((c) => c.id === `${values.rule}/${values.attack}/f${f}/${values.data}`);
if (!cell) throw new Error(`no cell ${values.rule}/${values.attack}/f${f}/${values.data}`);
if (cell.rule.rule !== 'flag') throw new Error(`rule ${values.rule} does not end in flag`);
const spec = validateJobSpec(
  runSpec(cell, Number(values.seed), Number(values.rounds), 0, { model: 'mlp', split: 'validation', ema: 0 }),
);
const byz = spec.simulate?.byzantine?.count ?? 0;

const dot = (a: Float32Array, b: Float32Array): number => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};
const cos = (a: Float32Array, b: Float32Array): number => dot(a, b) / Math.sqrt(dot(a, a) * dot(b, b) || 1);

/** The raw (validated, pre-pre-aggregator) vectors of the round: the pipeline's input, captured at the rule. */
let raw: Float32Array[] = [];
/** Input index of each rule input: the inputs NNM kept (all of them unless its sign screen dropped some). */
let kept: number[] = [];
registerRule('flag-original', createFlagAggregator);
registerRule('flag', (options) => {
  const inner = createRule('flag-original', options ?? {});
  return {
    name: 'flag',
    aggregate(input) {
      const result = inner.aggregate(input);
      probe(result);
      return result;
    },
    saveState: () => inner.saveState?.() ?? {},
    loadState: (s: Record<string, unknown>) => inner.loadState?.(s),
  };
});

interface Row {
  round: number;
  /** Inputs NNM's sign screen dropped before mixing (trained rule's NNM). */
  droppedHonest: number;
  droppedByz: number;
  cosMu: number;
  honestScoreMin: number;
  honestScoreMedian: number;
  byzScoreMean: number;
  honestExcluded: number;
  byzExcluded: number;
  rawByzScore: Record<string, number>;
  rawHonestBelow: Record<string, number>;
  filteredCosMu: number;
}
const rows: Row[] = [];
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : 0.5 * (s[m - 1] + s[m]);
};

/** Σᵢ min(1, m/‖xᵢ‖)·xᵢ with m the median norm. */
function clippedMean(vectors: Float32Array[]): Float32Array {
  const norms = vectors.map((x) => Math.sqrt(dot(x, x)));
  const m = median(norms);
  const out = new Float32Array(vectors[0].length);
  vectors.forEach((x, i) => {
    const c = norms[i] > m ? m / norms[i] : 1;
    for (let k = 0; k < x.length; k++) out[k] += c * x[k];
  });
  return out;
}

function probe(result: AggregationResult): void {
  const n = raw.length;
  const h = n - byz;
  const d = raw[0].length;
  const mu = new Float32Array(d);
  for (let i = 0; i < h; i++) for (let k = 0; k < d; k++) mu[k] += raw[i][k] / h;
  const scores = (result.diagnostics?.signScores ?? []) as (number | null)[];
  const excluded = new Set((result.diagnostics?.excluded ?? []) as number[]);
  const hs: number[] = [];
  const bs: number[] = [];
  const honestExcluded = kept.filter((i, r) => i < h && excluded.has(r)).length;
  const byzExcluded = kept.filter((i, r) => i >= h && excluded.has(r)).length;
  kept.forEach((i, r) => (i < h ? hs : bs).push(scores[r] ?? 0));
  const ids = raw.map((_, i) => `w${i}`);
  const directions: Record<string, Float32Array> = {
    median: createRule('median').aggregate({ vectors: raw, workerIds: ids, f }).update,
    trimmedMean: createRule('trimmedMean').aggregate({ vectors: raw, workerIds: ids, f }).update,
    mean: createRule('mean').aggregate({ vectors: raw, workerIds: ids, f }).update,
    clippedMean: clippedMean(raw),
  };
  const rawByzScore: Record<string, number> = {};
  const rawHonestBelow: Record<string, number> = {};
  for (const [name, u] of Object.entries(directions)) {
    const s = raw.map((x) => cos(x, u));
    rawByzScore[name] = s.slice(h).reduce((a, b) => a + b, 0) / Math.max(1, byz);
    rawHonestBelow[name] = s.slice(0, h).filter((x) => x < -0.3).length;
  }
  const flagRaw = createFlagAggregator({}).aggregate({ vectors: raw, workerIds: ids, f });
  const fs = ((flagRaw.diagnostics?.signScores ?? []) as (number | null)[]).map((x) => x ?? 0);
  rawByzScore.flagAxis = fs.slice(h).reduce((a, b) => a + b, 0) / Math.max(1, byz);
  rawHonestBelow.flagAxis = fs.slice(0, h).filter((x) => x < -0.3).length;
  for (const t of [-0.5, -0.7]) {
    rawByzScore[`flagAxis<${t}`] = fs.slice(h).filter((x) => x < t).length;
    rawHonestBelow[`flagAxis<${t}`] = fs.slice(0, h).filter((x) => x < t).length;
  }
  capturing = false;
  const filtered = createAggregationPipeline({
    rule: 'flag-original',
    f,
    pre: ['nnm'],
    options: { preOptions: { nnm: { signThreshold: -0.3 } } },
  }).aggregate(raw, ids);
  capturing = true;
  rows.push({
    round: rows.length + 1,
    droppedHonest: raw.length - byz - kept.filter((i) => i < h).length,
    droppedByz: byz - kept.filter((i) => i >= h).length,
    cosMu: cos(result.update, mu),
    honestScoreMin: Math.min(...hs),
    honestScoreMedian: median(hs),
    byzScoreMean: bs.reduce((a, b) => a + b, 0) / Math.max(1, bs.length),
    honestExcluded,
    byzExcluded,
    rawByzScore,
    rawHonestBelow,
    filteredCosMu: cos(filtered.update, mu),
  });
}

// Capture the raw vectors: nnm is the probed pipeline's first pre-aggregator.
registerPreAggregator('nnm', (options) => {
  const inner = createNnm(options);
  return {
    name: 'nnm',
    apply: (vectors, fIn) => inner.apply(vectors, fIn),
    applyTracked: (vectors, fIn) => {
      const out = inner.applyTracked!(vectors, fIn);
      if (!capturing) return out;
      raw = vectors.map((v) => Float32Array.from(v));
      const n = vectors.length;
      kept = [];
      for (let j = 0; j < n; j++) {
        let column = 0;
        for (let i = 0; i < out.vectors.length; i++) column += out.mixing[i * n + j];
        if (column > 0) kept.push(j);
      }
      return out;
    },
  };
});

let capturing = true;
const result = await simulate(spec, {});
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
const last = rows.slice(-100);
console.log(`${cell.id} seed ${values.seed}: final validation accuracy ${result.finalAccuracy.toFixed(3)}`);
for (const [label, rs] of [
  ['all rounds', rows],
  ['last 100', last],
] as const) {
  console.log(
    `${label}: cos(update, μ) < 0 in ${rs.filter((r) => r.cosMu < 0).length}/${rs.length}; ` +
      `mean cos ${mean(rs.map((r) => r.cosMu)).toFixed(3)}; all ${byz} Byzantine inputs' mixed vectors admitted by the flag in ` +
      `${rs.filter((r) => r.byzExcluded === 0 && r.droppedByz === 0).length}; ` +
      `honest excluded per round ${mean(rs.map((r) => r.honestExcluded)).toFixed(2)}`,
  );
  console.log(
    `  dropped before mixing (sign screen): honest per round ${mean(rs.map((r) => r.droppedHonest)).toFixed(2)}, ` +
      `all ${byz} Byzantine dropped in ${rs.filter((r) => r.droppedByz === byz).length}, none in ` +
      `${rs.filter((r) => r.droppedByz === 0).length}`,
  );
  console.log(
    `  mixed sign scores: honest median ${mean(rs.map((r) => r.honestScoreMedian)).toFixed(3)}, honest min ` +
      `${mean(rs.map((r) => r.honestScoreMin)).toFixed(3)}, Byzantine ${mean(rs.map((r) => r.byzScoreMean)).toFixed(3)}`,
  );
  for (const k of Object.keys(rs[0].rawByzScore)) {
    console.log(
      `  raw vs ${k.padEnd(11)}: Byzantine score ${mean(rs.map((r) => r.rawByzScore[k])).toFixed(3)} ` +
        `(≥ −0.3 in ${rs.filter((r) => r.rawByzScore[k] >= -0.3).length}), honest below −0.3 per round ` +
        `${mean(rs.map((r) => r.rawHonestBelow[k])).toFixed(2)}`,
    );
  }
  console.log(
    `  nnm(signThreshold −0.3) + flag on the same round: cos < 0 in ${rs.filter((r) => r.filteredCosMu < 0).length}, ` +
      `mean cos ${mean(rs.map((r) => r.filteredCosMu)).toFixed(3)}`,
  );
}
if (values.log) {
  const header =
    'round\tcosMu\thonestMin\thonestMedian\tbyzMean\thonestExcl\tbyzExcl\tdroppedHonest\tdroppedByz\tfilteredCosMu\n';
  writeFileSync(
    values.log,
    header +
      rows
        .map((r) =>
          [
            r.round,
            r.cosMu.toFixed(4),
            r.honestScoreMin.toFixed(4),
            r.honestScoreMedian.toFixed(4),
            r.byzScoreMean.toFixed(4),
            r.honestExcluded,
            r.byzExcluded,
            r.droppedHonest,
            r.droppedByz,
            r.filteredCosMu.toFixed(4),
          ].join('\t'),
        )
        .join('\n') +
      '\n',
  );
}
