/**
 * Probe of what the workers' gradients look like to the rule, in one bench cell: trains the MLP with the cell's
 * rule and attack (validation split by default) and summarises, over all rounds, each input's norm relative to the
 * round's median honest norm, the mean pairwise cosine within honest workers, within Byzantine ones and across,
 * each input's median cosine to the other inputs, and the cosine of every input to the mean clipped at the
 * (f+1)-th longest norm (the default's sign-test reference), over the whole vector and over the output layer alone. It also counts the Byzantine inputs the rule
 * included. Diagnostics only: nothing here feeds back into training.
 *
 *   node --import tsx bench/probe-worker-geometry.ts --cell default/labelflip/f3/dir0.3 --seed 107
 */
import { parseArgs } from 'node:util';
import { validateJobSpec } from '../src/config/jobSpec.ts';
import { clippedMeanScores, longestNormBeyond } from '../src/core/aggregation/flag/aggregator.ts';
import { simulate } from '../src/simulation/simulate.ts';
import { allCells, runSpec } from './robustness.ts';

const { values } = parseArgs({
  options: {
    cell: { type: 'string', default: 'default/labelflip/f3/dir0.3' },
    seed: { type: 'string', default: '107' },
    rounds: { type: 'string', default: '300' },
    split: { type: 'string', default: 'validation' },
  },
});
const cell = allCells().find((c) => c.id === values.cell);
if (!cell) throw new Error(`no cell '${values.cell}' (npm run bench:robustness -- --list shows them)`);
if (values.split !== 'validation' && values.split !== 'test')
  throw new Error('--split is validation or test');
const f = cell.f;
const spec = validateJobSpec(
  runSpec(cell, Number(values.seed), Number(values.rounds), 0, {
    model: 'mlp',
    split: values.split,
    ema: 0.95,
  }),
);

/** The MLP's last layer (128 → 10 weights and biases) is the tail of the parameter vector. */
const OUTPUT_LAYER = 128 * 10 + 10;

function dot(a: Float32Array, b: Float32Array, from: number): number {
  let s = 0;
  for (let i = from; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** The cosine Gram of the vectors on coordinates from `from` on, and their norms there. */
function cosineGram(vs: Float32Array[], from: number): { K: Float64Array; norms: number[] } {
  const p = vs.length;
  const norms = vs.map((v) => Math.sqrt(dot(v, v, from)));
  const K = new Float64Array(p * p);
  for (let i = 0; i < p; i++) {
    for (let j = i; j < p; j++) {
      K[i * p + j] = K[j * p + i] = i === j ? 1 : dot(vs[i], vs[j], from) / (norms[i] * norms[j] || 1);
    }
  }
  return { K, norms };
}

/** Cosine of each vector to the default's sign-test reference (the aggregator's own clippedMeanScores). */
function clippedMeanCosines({ K, norms }: { K: Float64Array; norms: number[] }): number[] {
  return Array.from(clippedMeanScores(K, norms, longestNormBeyond(norms, f)));
}

const acc = {
  norm: { honest: [] as number[], byzantine: [] as number[] },
  pair: { honest: [] as number[], byzantine: [] as number[], across: [] as number[] },
  medianToOthers: { honest: [] as number[], byzantine: [] as number[] },
  whole: { honest: [] as number[], byzantine: [] as number[] },
  output: { honest: [] as number[], byzantine: [] as number[] },
  byzantineIncluded: 0,
  byzantineDelivered: 0,
};

const result = await simulate(spec, {
  backend: 'wasm',
  onAggregate(_round, vectors, roles, aggregated) {
    const honest = roles.map((r) => r === 'honest');
    const whole = cosineGram(vectors, 0);
    const { norms } = whole;
    const p = vectors.length;
    const honestNorms = norms.filter((_, j) => honest[j]).sort((a, b) => a - b);
    const median = honestNorms[honestNorms.length >> 1];
    norms.forEach((n, j) => (honest[j] ? acc.norm.honest : acc.norm.byzantine).push(n / median));
    const cosines = Array.from({ length: p }, (_, i) => Array.from(whole.K.subarray(i * p, (i + 1) * p)));
    for (let i = 0; i < p; i++) {
      for (let j = i + 1; j < p; j++) {
        const c = cosines[i][j];
        (honest[i] && honest[j]
          ? acc.pair.honest
          : !honest[i] && !honest[j]
            ? acc.pair.byzantine
            : acc.pair.across
        ).push(c);
      }
    }
    cosines.forEach((row, i) => {
      const others = row.filter((_, j) => j !== i).sort((a, b) => a - b);
      const h = others.length >> 1;
      const m = others.length % 2 ? others[h] : (others[h - 1] + others[h]) / 2;
      (honest[i] ? acc.medianToOthers.honest : acc.medianToOthers.byzantine).push(m);
    });
    const d = vectors[0].length;
    clippedMeanCosines(whole).forEach((c, j) => (honest[j] ? acc.whole.honest : acc.whole.byzantine).push(c));
    clippedMeanCosines(cosineGram(vectors, d - OUTPUT_LAYER)).forEach((c, j) =>
      (honest[j] ? acc.output.honest : acc.output.byzantine).push(c),
    );
    aggregated?.workers.forEach((w, j) => {
      if (honest[j]) return;
      acc.byzantineDelivered++;
      if (w.included) acc.byzantineIncluded++;
    });
  },
});

const mean = (xs: number[]) => (xs.length ? (xs.reduce((a, b) => a + b, 0) / xs.length).toFixed(3) : '–');
const quantiles = (xs: number[]) => {
  if (!xs.length) return '–';
  const s = [...xs].sort((a, b) => a - b);
  return [0.1, 0.5, 0.9].map((p) => s[Math.floor(p * (s.length - 1))].toFixed(2)).join(' / ');
};
const below = (xs: number[], t: number) =>
  xs.length ? (xs.filter((x) => x < t).length / xs.length).toFixed(2) : '–';
console.log(
  `${values.cell} seed ${values.seed} (${values.split}): final accuracy ${result.finalAccuracy.toFixed(3)}; ` +
    `Byzantine inputs included ${acc.byzantineIncluded} of ${acc.byzantineDelivered}`,
);
console.log('| over all rounds | honest | Byzantine |');
console.log('|---|---|---|');
console.log(
  `| norm / median honest norm (q10 / q50 / q90) | ${quantiles(acc.norm.honest)} | ${quantiles(acc.norm.byzantine)} |`,
);
console.log(
  `| mean pairwise cosine within the group | ${mean(acc.pair.honest)} | ${mean(acc.pair.byzantine)} |`,
);
console.log(`| mean pairwise cosine across the groups | ${mean(acc.pair.across)} | |`);
console.log(
  `| median cosine to the other inputs (q10 / q50 / q90) | ${quantiles(acc.medianToOthers.honest)} | ${quantiles(acc.medianToOthers.byzantine)} |`,
);
for (const t of [-0.05, -0.1]) {
  console.log(
    `| … share below ${t} | ${below(acc.medianToOthers.honest, t)} | ${below(acc.medianToOthers.byzantine, t)} |`,
  );
}
for (const [name, part] of [
  ['whole vector', acc.whole],
  ['output layer', acc.output],
] as const) {
  console.log(
    `| cosine to the (f+1)-clipped mean, ${name} (q10 / q50 / q90) | ${quantiles(part.honest)} | ${quantiles(part.byzantine)} |`,
  );
  console.log(`| … share below −0.3 | ${below(part.honest, -0.3)} | ${below(part.byzantine, -0.3)} |`);
}
