/**
 * Robustness benchmark (npm run bench:robustness -- <selection> [options]): final test accuracy of each
 * aggregation rule under each attack, over a grid of f, data heterogeneity and seeds, in the Fashion-MNIST setup
 * of ByzFL's published benchmark (so the numbers sit next to that reference run).
 *
 * Setup (every run): Fashion-MNIST (full 60k/10k when installed), pixels in [0, 1], random horizontal flips; the
 * 431,080-parameter CNN; 800 rounds; batch 25 per worker; SGD lr 0.1, no server momentum, weight decay 1e-4
 * (applied by the server optimizer); worker momentum 0.9 (m ← 0.9·m + 0.1·g); test accuracy on the whole test
 * set every 100 rounds and after the last, of the model the job delivers: the iterate average of optimizer.ema
 * (the job default; the reports keep the live parameters' accuracy beside it, `--ema 0` evaluates those).
 *
 * Grid: a cell is rule × attack × f × data; each cell runs once per seed (default seeds 0, 1, 2).
 * - f ∈ {1, 2, 3, 5} of n = 12: 12 − f honest + f Byzantine workers (the highest ranks), declared f = f. A rule
 *   whose precondition fails at (n = 12, f) (e.g. krum needs n > 2f + 2) is skipped, with the reason in the table.
 * - data: iid (shards by worker) · dir1 · dir0.3 (`data: { shardBy: 'dirichlet', alpha }`: label proportions of
 *   each shard drawn from Dirichlet(α)). A heterogeneity the checkout's job spec refuses is reported unavailable.
 * - Clean reference: the mean of the 12 − f honest workers alone, per f and data. The data is sharded into 12 as
 *   in the attacked cells and the f Byzantine ranks are absent (crashed from round 0), so the honest workers train
 *   on exactly the shards they hold under attack: a cell's gap to it is the attack's damage alone, not the loss of
 *   the Byzantine workers' data. It is added to every selection, and shown in every column.
 * - Omniscient attacks see all honest vectors of the round and every Byzantine worker sends the same vector (see
 *   src/simulation/simulate.ts); label flip is data-side.
 *
 * Rules: default (what a spec that names no rule runs: today flag with its defaults) · mean · median · tm-clip-nnm (trimmedMean after clip(c = 2) then nnm, ByzFL's Clipping+NNM pipeline) ·
 *   krum · gm (geometricMedian) · cc (centeredClipping) · flag-ref (flag, mode 'reference') · flag (the defaults
 *   of src/core/aggregation/flag/options.ts in this checkout, recorded in the JSON).
 * Attacks, in their published parameterisations:
 *   alie (Baruch et al.: x = μ − zσ, the paper's z from n and f: 0 at f = 1, 0.21 at f = 2, 0.43 at f = 3, 0.97 at
 *   f = 5) · alie-t0.5, alie-t1.5, alie-t3 (ByzFL: μ + τσ) · ipm-e0.1 (Xie et al.'s small ε, x = −0.1μ) · ipm-e2
 *   (ByzFL's ε = 2) · minmax-{std,unit,sign}, minsum-{std,unit,sign} (Shejwalkar & Houmansadr, deviation σ,
 *   μ/‖μ‖, sign μ) · signflip (−μ) · labelflip (y → 9 − y) · gaussian (N(0, 1)) · mimic (copies honest worker 0).
 *
 * Selections (one is required; the filters below narrow it):
 *   --quick      default, tm-clip-nnm (+ the clean mean) × alie, alie-t1.5, ipm-e0.1, minmax-std, signflip,
 *                labelflip × f ∈ {2, 3} × iid, dir0.3 × 3 seeds: 144 attacked runs + 12 clean ones, on the MLP
 *                (784-128-10; --model cnn for the CNN) for QUICK_ROUNDS = 300 rounds, evaluations every 100.
 *                Sizing on this 2-core machine: an MLP run of 300 rounds takes ≈ 7 s when quiet, two at a time, so
 *                ≈ 156 × 7 / 2 s ≈ 10 min; with other work on both cores it took 3–6× longer. A CNN run takes
 *                ≈ 0.3 s per round (4 min at 800 rounds), which is why the quick grid trains the MLP. The clean
 *                mean and the default run first, then trimmed mean + clip + NNM. `--rules` adds others (e.g. the
 *                pinned previous default: `--quick --rules default,tm-clip-nnm,prev-default`).
 *   --full       every rule × every attack × f × data (many hours: ~4 min per run per core at 800 rounds).
 *   --required   the 13 cells of the earlier single-seed table (f = 2, iid; alie = alie-t1.5, ipm = ipm-e2,
 *                minmax = minmax-std), with exactly the specs it ran; `--required --seeds 0` reproduces it.
 *   --cells p,q  cell ids rule/attack/f<k>/<data>, '*' wildcards; missing trailing parts match anything
 *                (e.g. 'flag/alie', 'flag/*\/f3', '*\/none'); --list shows every cell.
 * Filters: --rules a,b  --attacks a,b  --f 1,2  --data iid,dir0.3  (without a selection: the full grid, filtered)
 * Options:
 *   --seeds 0,1,2       seeds per cell (default 0,1,2); --seed S is --seeds S
 *   --rounds N          rounds per run (default 800; --quick: QUICK_ROUNDS); --eval-every N (default 100)
 *   --model cnn|mlp     the network (default cnn; --quick: mlp)
 *   --split test|validation  what is evaluated (default test); validation holds out 10 % of the training set
 *                       (stratified, before sharding): choose defaults with it, report with test
 *   --ema B             optimizer.ema of every run (default: the job default); 0 = no iterate average. A run
 *                       recorded before the option existed counts as --ema 0
 *   --parallel K        runs at a time (default 2), each `phalanx simulate` in a child process (one tfjs thread)
 *   --backend NAME      tfjs backend of the children (default: what a worker picks)
 *   --json FILE         every run's report (all evaluations), rewritten after every run; when FILE exists, its
 *                       finished runs with the same spec are kept and only the missing ones run (resumable)
 *   --plot DIR          PNG plots: accuracy vs f per rule (per data and attack, and the worst attack), worst case
 *                       per rule over the grid
 *   --out DIR           run specs, reports and logs (default: a fresh directory under the OS temp dir)
 *   --no-run            print the tables (and plots) from --json without running anything
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DEFAULT_EMA, JobSpecError, validateJobSpec, type JobSpecInput } from '../src/config/jobSpec.ts';
import { FLAG_DEFAULTS } from '../src/core/aggregation/flag/options.ts';
import type { SimulationReport } from '../src/simulation/report.ts';
import { drawBarChart, drawLineChart, type LineSeries } from './support/charts.ts';

const BIN = fileURLToPath(new URL('../bin/phalanx.js', import.meta.url));

export const N = 12;
export const F_VALUES = [1, 2, 3, 5] as const;
export const QUICK_ROUNDS = 300;
export const MODELS = ['cnn', 'mlp'] as const;
/** The network trained and the split evaluated: defaults are chosen on 'validation', reported on 'test'. */
export interface Setting {
  model: (typeof MODELS)[number];
  split: 'test' | 'validation';
  /** optimizer.ema: the decay of the iterate average evaluated (0: the live parameters). */
  ema: number;
}
const DEFAULT_SETTING: Setting = { model: 'cnn', split: 'test', ema: DEFAULT_EMA };
/** Share of the training set held out (stratified, before sharding) when --split validation. */
const VALIDATION_FRACTION = 0.1;
const QUICK_EVAL_EVERY = 100;

interface RuleDef {
  key: string;
  label: string;
  rule: string;
  pre: string[];
  options: Record<string, unknown>;
}

interface AttackDef {
  key: string;
  label: string;
  /** Registry name (null = no Byzantine workers). */
  attack: string | null;
  options: Record<string, unknown>;
}

interface DataDef {
  key: string;
  label: string;
  /** Added to the spec's data section (iid: nothing, the default shardBy 'worker'). */
  data: Record<string, unknown>;
}

/** What a job spec that names no rule runs (the default rule, its pre-aggregators and options). */
const DEFAULT_AGGREGATION = (() => {
  const { rule, pre, options } = validateJobSpec({}).aggregation;
  return { rule, pre, options };
})();

const RULES: RuleDef[] = [
  {
    key: 'default',
    label:
      `default (${[...DEFAULT_AGGREGATION.pre, DEFAULT_AGGREGATION.rule].join('+')}` +
      (DEFAULT_AGGREGATION.rule === 'flag'
        ? `, r ${FLAG_DEFAULTS.r}, ${FLAG_DEFAULTS.rescale}, sign ${FLAG_DEFAULTS.signThreshold}` +
          (FLAG_DEFAULTS.signDirection === 'combined'
            ? ` and axis ${FLAG_DEFAULTS.signAxisThreshold}` +
              (FLAG_DEFAULTS.signAxisSpread === null ? '' : ` (spread ${FLAG_DEFAULTS.signAxisSpread})`)
            : '') +
          `, vote ${FLAG_DEFAULTS.vote}, step ${FLAG_DEFAULTS.step}${FLAG_DEFAULTS.readmit ? ', readmit' : ''})`
        : ')'),
    ...DEFAULT_AGGREGATION,
  },
  { key: 'mean', label: 'mean', rule: 'mean', pre: [], options: {} },
  { key: 'median', label: 'median', rule: 'median', pre: [], options: {} },
  {
    key: 'tm-clip-nnm',
    label: 'trimmedMean+clip+nnm',
    rule: 'trimmedMean',
    pre: ['clip', 'nnm'],
    options: {},
  },
  { key: 'krum', label: 'krum', rule: 'krum', pre: [], options: {} },
  { key: 'gm', label: 'geometricMedian', rule: 'geometricMedian', pre: [], options: {} },
  { key: 'cc', label: 'centeredClipping', rule: 'centeredClipping', pre: [], options: {} },
  { key: 'flag-ref', label: 'flag reference', rule: 'flag', pre: [], options: { mode: 'reference' } },
  { key: 'flag', label: 'flag (defaults)', rule: 'flag', pre: [], options: {} },
  // The default before the robustness review, pinned so that its numbers stay comparable: flag alone, output
  // unscaled (a sum of unit vectors: the learning rate is the step length).
  {
    key: 'prev-default',
    label: 'earlier default (flag, r auto, unscaled)',
    rule: 'flag',
    pre: [],
    options: {
      r: 'auto',
      signAware: true,
      signThreshold: 0,
      signDirection: 'principal-axis',
      minTrust: 0,
      rescale: 'none',
      step: 'subspace',
      warmStart: false,
    },
  },
  // r = 'auto' pinned: the rank these ran with before the default became r = n − 2f
  {
    key: 'flag-mn',
    label: 'flag, r auto, median-norm, signThreshold 0',
    rule: 'flag',
    pre: [],
    options: { r: 'auto', rescale: 'median-norm', signThreshold: 0 },
  },
  {
    key: 'flag-mn-t-0.3',
    label: 'flag, r auto, median-norm, signThreshold −0.3 (the default before r = n − 2f)',
    rule: 'flag',
    pre: [],
    options: { r: 'auto', rescale: 'median-norm', signThreshold: -0.3 },
  },
  // Candidates of the default selection on Dirichlet shards (docs/robustness/selection-dirichlet.md): the
  // default flag behind bucketing (s = 2) or NNM.
  {
    key: 'bucketing-flag',
    label: 'bucketing(s=2)+flag',
    rule: 'flag',
    pre: ['bucketing'],
    options: {},
  },
  { key: 'nnm-flag', label: 'nnm+flag', rule: 'flag', pre: ['nnm'], options: {} },
  // ... with NNM's sign screen: the flag's sign test on the raw inputs (cosine to its robust direction < −0.3, at
  // most f) drops them before mixing (docs/robustness/selection-dirichlet.md, 2026-12-02)
  {
    key: 'nnm-sign-flag',
    label: 'nnm(signThreshold −0.3)+flag',
    rule: 'flag',
    pre: ['nnm'],
    options: { preOptions: { nnm: { signThreshold: -0.3 } } },
  },
  // ... the same with the screen's cutoff at −0.7 (chosen on the validation probe of seed 100: fewer honest inputs
  // below it, the flipped ones still at about −0.97 when the axis is oriented right)
  {
    key: 'nnm-sign0.7-flag',
    label: 'nnm(signThreshold −0.7)+flag',
    rule: 'flag',
    pre: ['nnm'],
    options: { preOptions: { nnm: { signThreshold: -0.7 } } },
  },
  // ... or with its step scaled to the trusted workers' agreement, or its sign test relative to their spread
  {
    key: 'flag-agree',
    label: 'flag, rescale agreement',
    rule: 'flag',
    pre: [],
    options: { rescale: 'agreement' },
  },
  { key: 'flag-rel', label: 'flag, signSpread 3', rule: 'flag', pre: [], options: { signSpread: 3 } },
  {
    key: 'flag-cm',
    label: 'flag, sign test against the clipped mean',
    rule: 'flag',
    pre: [],
    options: { signDirection: 'clipped-mean' },
  },
  {
    key: 'flag-cm-agree',
    label: 'flag, clipped-mean sign test, rescale agreement',
    rule: 'flag',
    pre: [],
    options: { signDirection: 'clipped-mean', rescale: 'agreement' },
  },
  {
    key: 'flag-agree-rel',
    label: 'flag, rescale agreement, signSpread 3',
    rule: 'flag',
    pre: [],
    options: { rescale: 'agreement', signSpread: 3 },
  },
  // Candidates of the rank selection (docs/robustness/flag-rank.md): r = n − 2f instead of the noise-edge count
  { key: 'flag-r-n2f', label: 'flag, r = n − 2f', rule: 'flag', pre: [], options: { r: 'n-2f' } },
  {
    key: 'flag-r-n2f-agree',
    label: 'flag, r = n − 2f, rescale agreement',
    rule: 'flag',
    pre: [],
    options: { r: 'n-2f', rescale: 'agreement' },
  },
  // Candidates of the step selection (docs/robustness/selection-dirichlet.md): the flag selects the trusted
  // workers, the step is their clipped mean (its own length), or its projection onto the flag subspace
  {
    key: 'flag-tmean',
    label: 'flag, step trusted-mean',
    rule: 'flag',
    pre: [],
    options: { step: 'trusted-mean', rescale: 'none' },
  },
  {
    key: 'flag-pmean',
    label: 'flag, step projected-mean',
    rule: 'flag',
    pre: [],
    options: { step: 'projected-mean', rescale: 'none' },
  },
  // ... or the direction of that clipped mean with the default's length (the median norm)
  {
    key: 'flag-tmean-mn',
    label: 'flag, step trusted-mean, median-norm',
    rule: 'flag',
    pre: [],
    options: { step: 'trusted-mean' },
  },
  // ... or that clipped mean's direction at the length of a mean of the trusted workers (agreement)
  {
    key: 'flag-tmean-agree',
    label: 'flag, step trusted-mean, rescale agreement',
    rule: 'flag',
    pre: [],
    options: { step: 'trusted-mean', rescale: 'agreement' },
  },
  {
    key: 'flag-tmean-mn-cm',
    label: 'flag, step trusted-mean, median-norm, sign test against the clipped mean',
    rule: 'flag',
    pre: [],
    options: { step: 'trusted-mean', signDirection: 'clipped-mean' },
  },
  // Each worker's say in the flag median and the output is its length relative to the median norm (capped at 1),
  // so a tiny −ε·μ no longer gets a full vote by being normalised (selection-dirichlet.md, last section)
  { key: 'flag-vote', label: 'flag, vote norm', rule: 'flag', pre: [], options: { vote: 'norm' } },
  // The default pinned with vote 'unit' (r = n − 2f, median-norm, sign −0.3, one vote per unit vector):
  // robustness-quick-vote.json compares it on the test set with vote 'norm', the default of that grid
  {
    key: 'flag-unit',
    label: 'flag, r n−2f, median-norm, sign −0.3, vote unit (the default)',
    rule: 'flag',
    pre: [],
    options: { r: 'n-2f', rescale: 'median-norm', signThreshold: -0.3, vote: 'unit' },
  },
  // The default until 2026-12-03, pinned: the sign test on the principal axis alone
  {
    key: 'flag-axis',
    label: 'flag, axis sign test (default before the two sign tests)',
    rule: 'flag',
    pre: [],
    options: { signDirection: 'principal-axis', step: 'subspace' },
  },
  // The sign test's two references (docs/robustness/sign-test.md): the mean clipped to the (f+1)-th longest norm,
  // and the principal axis at −0.8; with the subspace step (the default until the trusted-mean step, 2026-12-03),
  // or with the trusted workers' clipped mean as the step (today's default)
  {
    key: 'flag-comb',
    label: 'flag, two sign tests, subspace step (previous default)',
    rule: 'flag',
    pre: [],
    options: { signDirection: 'combined', step: 'subspace' },
  },
  {
    key: 'flag-comb-tmean',
    label: 'flag, combined sign test, step trusted-mean',
    rule: 'flag',
    pre: [],
    options: { signDirection: 'combined', step: 'trusted-mean' },
  },
  // ... with the excluded workers tested again against the kept ones alone (readmit; screened, not adopted:
  // docs/robustness/readmit.md)
  {
    key: 'flag-readmit',
    label: 'flag, readmit',
    rule: 'flag',
    pre: [],
    options: { signDirection: 'combined', step: 'trusted-mean', readmit: true },
  },
  // ... with the axis cutoff following the workers' agreement on the axis (signAxisSpread 3): −0.3 where they
  // agree, down to −0.8 where they spread (screened, not adopted: docs/robustness/sign-test.md)
  {
    key: 'flag-comb-spread',
    label: 'flag, combined sign test, axis cutoff by spread (k = 3)',
    rule: 'flag',
    pre: [],
    options: { signDirection: 'combined', signAxisSpread: 3, step: 'subspace' },
  },
  {
    key: 'clip-nnm-flag-mn',
    label: 'clip+nnm+flag, median-norm',
    rule: 'flag',
    pre: ['clip', 'nnm'],
    options: { rescale: 'median-norm', signThreshold: 0 },
  },
];

const NONE: AttackDef = { key: 'none', label: 'none', attack: null, options: {} };
const ATTACKS: AttackDef[] = [
  NONE,
  { key: 'alie', label: 'ALIE paper z', attack: 'alie', options: {} },
  { key: 'alie-t0.5', label: 'ALIE τ=0.5', attack: 'alie', options: { tau: 0.5 } },
  { key: 'alie-t1.5', label: 'ALIE τ=1.5', attack: 'alie', options: { tau: 1.5 } },
  { key: 'alie-t3', label: 'ALIE τ=3', attack: 'alie', options: { tau: 3 } },
  { key: 'ipm-e0.1', label: 'IPM ε=0.1', attack: 'ipm', options: { epsilon: 0.1 } },
  { key: 'ipm-e2', label: 'IPM ε=2', attack: 'ipm', options: { epsilon: 2 } },
  ...(['minmax', 'minsum'] as const).flatMap((a) =>
    (
      [
        ['std', 'std'],
        ['unit', 'unit_vec'],
        ['sign', 'sign'],
      ] as const
    ).map(([k, devType]) => ({
      key: `${a}-${k}`,
      label: `${a === 'minmax' ? 'min-max' : 'min-sum'} ${k}`,
      attack: a,
      // std is the attack's default: the spec leaves it out (as the earlier single-seed table's minmax cell did)
      options: devType === 'std' ? {} : { devType },
    })),
  ),
  { key: 'signflip', label: 'sign flip −μ', attack: 'signflip', options: {} },
  { key: 'labelflip', label: 'label flip', attack: 'labelflip', options: {} },
  { key: 'gaussian', label: 'Gaussian σ=1', attack: 'gaussian', options: {} },
  { key: 'mimic', label: 'mimic', attack: 'mimic', options: {} },
];

const DATA: DataDef[] = [
  { key: 'iid', label: 'IID', data: {} },
  { key: 'dir1', label: 'Dirichlet α=1', data: { shardBy: 'dirichlet', alpha: 1 } },
  { key: 'dir0.3', label: 'Dirichlet α=0.3', data: { shardBy: 'dirichlet', alpha: 0.3 } },
];

const QUICK = {
  rules: ['default', 'tm-clip-nnm'],
  attacks: ['alie', 'alie-t1.5', 'ipm-e0.1', 'minmax-std', 'signflip', 'labelflip'],
  f: [2, 3],
  data: ['iid', 'dir0.3'],
};

/** The earlier single-seed table (f = 2, iid), as rule/attack of this grid. */
const REQUIRED = [
  'mean/none',
  'tm-clip-nnm/signflip',
  'tm-clip-nnm/alie-t1.5',
  'tm-clip-nnm/ipm-e2',
  'flag/signflip',
  'flag/alie-t1.5',
  'flag/ipm-e2',
  'flag/minmax-std',
  'flag/labelflip',
  'flag/gaussian',
  'flag-ref/signflip',
  'flag-ref/alie-t1.5',
  'flag-ref/ipm-e2',
];

/** ByzFL's own pipeline on this setup (f = 2, iid, 800 rounds): test accuracy at these steps. */
const REFERENCE_STEPS = [100, 200, 400, 600, 800];
const REFERENCES: Record<string, number[]> = {
  'mean/none/f2/iid': [0.668, 0.718, 0.802, 0.825, 0.847],
  'tm-clip-nnm/signflip/f2/iid': [0.674, 0.715, 0.76, 0.786, 0.825],
  'tm-clip-nnm/alie-t1.5/f2/iid': [0.665, 0.74, 0.798, 0.83, 0.837],
  'tm-clip-nnm/ipm-e2/f2/iid': [0.68, 0.715, 0.762, 0.795, 0.817],
};

export interface Cell {
  id: string;
  rule: RuleDef;
  attack: AttackDef;
  f: number;
  data: DataDef;
}

export interface Run {
  key: string;
  cell: string;
  seed: number;
  spec: JobSpecInput;
  /**
   * The aggregation the spec resolves to in the checkout that ran it (defaults filled in): a spec that leaves
   * the rule or its options out means whatever the defaults were, so a resumed grid reruns it when they changed.
   */
  resolved?: unknown;
  wallSeconds?: number;
  report?: SimulationReport;
  error?: string;
}

/** What a run's aggregation means in this checkout: the validated section, with flag's option defaults. */
export function resolvedAggregation(spec: JobSpecInput): unknown {
  return resolveWith(FLAG_DEFAULTS, spec);
}

/** The spec's aggregation section with `flagDefaults` filled into a flag rule's options. */
function resolveWith(flagDefaults: Readonly<Record<string, unknown>>, spec: JobSpecInput): unknown {
  const { aggregation } = validateJobSpec(spec);
  const options =
    aggregation.rule === 'flag' ? { ...flagDefaults, ...aggregation.options } : aggregation.options;
  return { rule: aggregation.rule, pre: aggregation.pre, options };
}

/**
 * Flag options whose default is not the behaviour they had when they came in: signDirection came in as
 * 'principal-axis' (the only sign test there was) and became 'combined' on 2026-12-03; step came in as 'subspace'
 * (the flag median's output) and became 'trusted-mean' on 2026-12-03, after the sign tests.
 */
const BEHAVIOUR_BEFORE: Readonly<Record<string, unknown>> = {
  signDirection: 'principal-axis',
  step: 'subspace',
};

/**
 * A recorded `resolved` with the flag options its checkout did not have filled in from today's defaults: an option
 * is added with a default that keeps the earlier behaviour (or with that behaviour, BEHAVIOUR_BEFORE, where the
 * default changed since), so a run that predates it ran with that value.
 */
export function withAddedFlagDefaults(resolved: unknown): unknown {
  const r = resolved as { rule?: unknown; options?: Record<string, unknown> } | undefined;
  if (!r || r.rule !== 'flag' || !r.options) return resolved;
  const options: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(FLAG_DEFAULTS)) {
    options[k] = k in r.options ? r.options[k] : k in BEHAVIOUR_BEFORE ? BEHAVIOUR_BEFORE[k] : v;
  }
  for (const [k, v] of Object.entries(r.options)) if (!(k in options)) options[k] = v;
  return { ...r, options };
}

/** A spec recorded before optimizer.ema existed ran without an iterate average: ema 0. */
export function withRecordedEma(spec: JobSpecInput): JobSpecInput {
  const optimizer = spec.optimizer as Record<string, unknown> | undefined;
  if (!optimizer || 'ema' in optimizer) return spec;
  return { ...spec, optimizer: { ...optimizer, ema: 0 } as JobSpecInput['optimizer'] };
}

const cellId = (rule: string, attack: string, f: number, data: string) => `${rule}/${attack}/f${f}/${data}`;
const cleanOf = (c: Cell) => cellId('mean', 'none', c.f, c.data.key);
const runKey = (cell: string, seed: number) => `${cell}@${seed}`;
const list = (v: string | undefined) =>
  v
    ?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);

export function parseCli(argv: string[]) {
  const { values } = parseArgs({
    args: argv.filter((a) => a !== '--'),
    options: {
      quick: { type: 'boolean', default: false },
      full: { type: 'boolean', default: false },
      required: { type: 'boolean', default: false },
      cells: { type: 'string' },
      rules: { type: 'string' },
      attacks: { type: 'string' },
      f: { type: 'string' },
      data: { type: 'string' },
      list: { type: 'boolean', default: false },
      seeds: { type: 'string' },
      seed: { type: 'string' },
      rounds: { type: 'string' },
      'eval-every': { type: 'string' },
      parallel: { type: 'string', default: '2' },
      backend: { type: 'string' },
      json: { type: 'string' },
      plot: { type: 'string' },
      out: { type: 'string' },
      'no-run': { type: 'boolean', default: false },
      model: { type: 'string' },
      split: { type: 'string' },
      ema: { type: 'string' },
    },
  });
  const int = (v: string | undefined, flag: string, min: number): number | undefined => {
    if (v === undefined) return undefined;
    const x = Number(v);
    if (!Number.isInteger(x) || x < min) throw new Error(`${flag} must be an integer ≥ ${min} (got '${v}')`);
    return x;
  };
  const ints = (v: string | undefined, flag: string, min: number) => list(v)?.map((s) => int(s, flag, min)!);
  if (values.seeds !== undefined && values.seed !== undefined)
    throw new Error('give --seeds or --seed, not both');
  const modes = (['quick', 'full', 'required'] as const).filter((m) => values[m]);
  if (modes.length > 1)
    throw new Error(`choose one of --quick, --full, --required (got ${modes.join(', ')})`);
  const f = ints(values.f, '--f', 1);
  for (const x of f ?? []) {
    if (!(F_VALUES as readonly number[]).includes(x))
      throw new Error(`--f: ${x} is not one of ${F_VALUES.join(', ')}`);
  }
  const quick = values.quick!;
  // the quick grid trains the MLP: a tenth of a CNN round's time, so three seeds of every cell fit in minutes
  const model = values.model ?? (quick ? 'mlp' : 'cnn');
  if (!(MODELS as readonly string[]).includes(model))
    throw new Error(`--model must be one of ${MODELS.join(', ')} (got '${model}')`);
  const split = values.split ?? 'test';
  if (split !== 'test' && split !== 'validation')
    throw new Error(`--split must be 'test' or 'validation' (got '${split}')`);
  const ema = values.ema === undefined ? DEFAULT_EMA : Number(values.ema);
  if (!(ema >= 0 && ema < 1)) throw new Error(`--ema must be a number in [0, 1) (got '${values.ema}')`);
  return {
    setting: { model, split, ema } as Setting,
    mode: modes[0],
    cells: list(values.cells),
    rules: list(values.rules),
    attacks: list(values.attacks),
    f,
    data: list(values.data),
    list: values.list!,
    seeds: ints(values.seeds ?? values.seed, values.seed ? '--seed' : '--seeds', 0) ?? [0, 1, 2],
    rounds: int(values.rounds, '--rounds', 1) ?? (quick ? QUICK_ROUNDS : 800),
    evalEvery: int(values['eval-every'], '--eval-every', 0) ?? (quick ? QUICK_EVAL_EVERY : 100),
    parallel: int(values.parallel, '--parallel', 1)!,
    backend: values.backend,
    json: values.json,
    plot: values.plot,
    out: values.out,
    noRun: values['no-run']!,
  };
}

type Args = ReturnType<typeof parseCli>;

/** The job spec of one run. */
export function runSpec(
  cell: Cell,
  seed: number,
  rounds: number,
  evalEvery: number,
  setting: Setting = DEFAULT_SETTING,
): JobSpecInput {
  // Every run shards the data into N: the attacked cells' Byzantine ranks hold f of the shards. Without an attack
  // those f ranks are absent (crashed from round 0), so the 12 − f honest workers train on the same shards they
  // hold in the attacked cells, and a cell's gap to the clean reference is the attack's damage alone.
  const attack = cell.attack.attack;
  const clean = attack === null;
  const honest = N - cell.f;
  const validation = setting.split === 'validation';
  return {
    name: `robustness-${cell.rule.key}-${cell.attack.key}-f${cell.f}-${cell.data.key}`.replace(/\./g, '-'),
    seed,
    model: { kind: setting.model },
    data: {
      kind: 'fashion-mnist',
      batchSize: 25,
      flip: true,
      ...cell.data.data,
      ...(validation ? { validation: VALIDATION_FRACTION } : {}),
    },
    optimizer: { kind: 'sgd', lr: 0.1, momentum: 0, weightDecay: 1e-4, ema: setting.ema },
    rounds,
    workers: { min: clean ? honest : N, max: N, momentum: 0.9 },
    aggregation: { rule: cell.rule.rule, f: cell.f, pre: cell.rule.pre, options: cell.rule.options },
    checkpoint: { every: 0 },
    evaluation: { every: evalEvery, ...(validation ? { split: 'validation' as const } : {}) },
    simulate: {
      byzantine: clean
        ? { count: cell.f, attack: 'crash', options: {} }
        : { count: cell.f, attack, options: cell.attack.options },
    },
  };
}

export function allCells(): Cell[] {
  const cells: Cell[] = [];
  for (const data of DATA) {
    for (const f of F_VALUES) {
      for (const rule of RULES) {
        for (const attack of ATTACKS)
          cells.push({ id: cellId(rule.key, attack.key, f, data.key), rule, attack, f, data });
      }
    }
  }
  return cells;
}

function globToRegExp(pattern: string): RegExp {
  const parts = pattern.split('/');
  while (parts.length < 4) parts.push('*');
  const body = parts
    .join('/')
    .replace(/[.+?^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '[^/]*');
  return new RegExp(`^${body}$`);
}

function checkKeys(given: string[] | undefined, known: string[], flag: string): void {
  for (const k of given ?? []) {
    if (!known.includes(k)) throw new Error(`${flag}: unknown '${k}' (known: ${known.join(', ')})`);
  }
}

/** The cells a command line selects, plus the clean reference of each (f, data) it covers. */
export function selectCells(args: Args, all: Cell[] = allCells()): Cell[] {
  checkKeys(
    args.rules,
    RULES.map((r) => r.key),
    '--rules',
  );
  checkKeys(
    args.attacks,
    ATTACKS.map((a) => a.key),
    '--attacks',
  );
  checkKeys(
    args.data,
    DATA.map((d) => d.key),
    '--data',
  );
  const filtered =
    args.mode === undefined && !args.cells && !args.rules && !args.attacks && !args.f && !args.data;
  if (filtered && !args.list) {
    throw new Error(
      'choose a selection: --quick (≈ 1 h), --required (the earlier 13 cells), --full (many hours), ' +
        '--cells rule/attack/f<k>/<data>, or filters --rules/--attacks/--f/--data (see --list)',
    );
  }
  let cells = all;
  if (args.mode === 'quick') {
    cells = cells.filter(
      (c) =>
        (args.rules ?? QUICK.rules).includes(c.rule.key) &&
        QUICK.attacks.includes(c.attack.key) &&
        QUICK.f.includes(c.f) &&
        QUICK.data.includes(c.data.key),
    );
  } else if (args.mode === 'required') {
    cells = cells.filter(
      (c) => c.f === 2 && c.data.key === 'iid' && REQUIRED.includes(`${c.rule.key}/${c.attack.key}`),
    );
  } else if (args.mode !== 'full') {
    // a selection by filters alone runs attacked cells; the clean reference comes with them
    cells = cells.filter((c) => c.attack.attack !== null || args.attacks?.includes('none'));
  }
  if (args.rules) cells = cells.filter((c) => args.rules!.includes(c.rule.key));
  if (args.attacks) cells = cells.filter((c) => args.attacks!.includes(c.attack.key));
  if (args.f) cells = cells.filter((c) => args.f!.includes(c.f));
  if (args.data) cells = cells.filter((c) => args.data!.includes(c.data.key));
  if (args.cells) {
    const picked: Cell[] = [];
    for (const pattern of args.cells) {
      const re = globToRegExp(pattern);
      const matches = cells.filter((c) => re.test(c.id));
      if (matches.length === 0) throw new Error(`no cell matches '${pattern}' (--list shows them)`);
      for (const c of matches) if (!picked.includes(c)) picked.push(c);
    }
    cells = picked;
  }
  const byId = new Map(all.map((c) => [c.id, c]));
  const out = [...cells];
  for (const c of cells) {
    const clean = byId.get(cleanOf(c))!;
    if (!out.includes(clean)) out.push(clean);
  }
  return out;
}

/** Why a cell cannot run in this checkout (rule precondition, unavailable data option), or undefined. */
function unavailable(cell: Cell, args: Args): { reason: string; kind: 'precondition' | 'data' } | undefined {
  try {
    validateJobSpec(runSpec(cell, 0, args.rounds, args.evalEvery, args.setting));
    return undefined;
  } catch (e) {
    if (!(e instanceof JobSpecError)) throw e;
    const at = (prefix: string) => e.issues.filter((_, i) => e.fields[i].startsWith(prefix));
    const data = at('data');
    if (data.length) return { kind: 'data', reason: `${cell.data.key} unavailable (${data.join('; ')})` };
    const agg = at('aggregation');
    if (agg.length === e.issues.length) return { kind: 'precondition', reason: agg.join('; ') };
    throw e;
  }
}

/** Runs one seed of a cell as `phalanx simulate` in a child process. */
function runChild(run: Run, args: Args, dir: string, children: Set<ChildProcess>): Promise<Run> {
  const base = path.join(dir, run.key.replace(/[/@]/g, '__'));
  const config = `${base}.json`;
  const reportFile = `${base}.report.json`;
  writeFileSync(config, `${JSON.stringify(run.spec, null, 2)}\n`);
  const cliArgs = [BIN, 'simulate', '--config', config, '--report', reportFile];
  if (args.backend) cliArgs.push('--backend', args.backend);
  const started = performance.now();
  const child = spawn(process.execPath, cliArgs, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, CI: '1' },
  });
  children.add(child);
  let log = '';
  let pending = '';
  const onData = (b: Buffer) => {
    const text = b.toString();
    log += text;
    pending += text;
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const line of lines) if (line.trim()) console.log(`[${run.key}] ${line}`);
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  return new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      children.delete(child);
      writeFileSync(`${base}.log`, log);
      const result: Run = { ...run, wallSeconds: (performance.now() - started) / 1000 };
      delete result.error;
      if (code === 0) {
        try {
          result.report = JSON.parse(readFileSync(reportFile, 'utf8')) as SimulationReport;
        } catch (e) {
          result.error = `no report: ${(e as Error).message}`;
        }
      } else {
        const lines = log.trim().split('\n');
        const tail = lines.filter((l) => l.startsWith('phalanx:')).at(-1) ?? lines.at(-1);
        result.error = `exit ${code ?? signal}: ${tail ?? ''}`;
      }
      resolve(result);
    });
  });
}

export interface CellStats {
  seeds: number;
  mean: number;
  std: number;
  worst: number;
  worstSeed: number;
  failed: number;
}

/** Mean, sample std (n − 1; 0 for one seed) and the worst seed of the final accuracies of a cell's runs. */
export function cellStats(runs: { seed: number; finalAccuracy?: number }[]): CellStats | undefined {
  const done = runs.filter((r) => r.finalAccuracy !== undefined) as { seed: number; finalAccuracy: number }[];
  if (done.length === 0) return undefined;
  const xs = done.map((r) => (Number.isFinite(r.finalAccuracy) ? r.finalAccuracy : 0));
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const std = xs.length > 1 ? Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (xs.length - 1)) : 0;
  let w = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i] < xs[w]) w = i;
  return {
    seeds: xs.length,
    mean,
    std,
    worst: xs[w],
    worstSeed: done[w].seed,
    failed: runs.length - done.length,
  };
}

const fmt = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(3));

export interface Grid {
  cells: Cell[];
  runs: Map<string, Run>;
  skipped: Map<string, string>;
  seeds: number[];
}

function statsOf(grid: Grid, cell: Cell): CellStats | undefined {
  const runs = grid.seeds.map((seed) => grid.runs.get(runKey(cell.id, seed))).filter((r): r is Run => !!r);
  const withResult = runs.filter((r) => r.report || r.error);
  return cellStats(withResult.map((r) => ({ seed: r.seed, finalAccuracy: r.report?.finalAccuracy })));
}

/** "mean ± std (worst)", ✗k for failed seeds, [k/m] when only k of the m seeds have run. */
const cellText = (s: CellStats | undefined, seeds: number) =>
  s === undefined
    ? '–'
    : `${fmt(s.mean)} ± ${fmt(s.std)} (${fmt(s.worst)})${s.failed ? ` ✗${s.failed}` : ''}` +
      (s.seeds + s.failed < seeds ? ` [${s.seeds + s.failed}/${seeds}]` : '');

/** Markdown tables: per data and f, rules × attacks; then the worst case per rule over the grid. */
function printTables(grid: Grid, args: Args): void {
  const out: string[] = [];
  const datas = DATA.filter((d) => grid.cells.some((c) => c.data === d));
  const notes: string[] = [];
  const note = (text: string) => {
    const i = notes.indexOf(text);
    if (i >= 0) return i + 1;
    notes.push(text);
    return notes.length;
  };
  out.push(
    `Final ${args.setting.split} accuracy, ${args.setting.model.toUpperCase()}, after ${args.rounds} rounds: mean ± std over seeds (worst seed); ✗k = k seeds failed ` +
      `(counted as 0); seeds ${grid.seeds.join(', ')}. Clean mean = mean, no attackers, the 12 − f honest workers.`,
  );
  for (const data of datas) {
    for (const f of F_VALUES) {
      const block = grid.cells.filter((c) => c.data === data && c.f === f);
      if (block.length === 0) continue;
      const attacks = ATTACKS.filter((a) => a.attack !== null && block.some((c) => c.attack === a));
      const rules = RULES.filter((r) => block.some((c) => c.rule === r && c.attack.attack !== null));
      const hasNone = block.some((c) => c.attack === NONE && c.rule.key !== 'mean');
      const cols = [...attacks, ...(hasNone ? [NONE] : [])];
      const clean = grid.cells.find((c) => c.id === cellId('mean', 'none', f, data.key));
      const cleanStats = clean && statsOf(grid, clean);
      out.push('', `**${data.label}, f = ${f}** (${N - f} honest + ${f} Byzantine)`, '');
      out.push(`| rule | ${cols.map((a) => a.label).join(' | ')} | worst |`);
      out.push(`|---|${cols.map(() => '---|').join('')}---|`);
      out.push(
        `| clean mean (${N - f} honest) | ${cols.map(() => cellText(cleanStats, grid.seeds.length)).join(' | ')} | |`,
      );
      for (const rule of rules) {
        let worst: { s: CellStats; attack: string } | undefined;
        const texts = cols.map((a) => {
          const cell = block.find((c) => c.rule === rule && c.attack === a);
          if (!cell) return '';
          const skip = grid.skipped.get(cell.id);
          if (skip) return `n/a [${note(skip)}]`;
          const s = statsOf(grid, cell);
          if (s && a.attack !== null && (!worst || s.mean < worst.s.mean)) worst = { s, attack: a.label };
          return cellText(s, grid.seeds.length);
        });
        const w = worst ? `${fmt(worst.s.mean)} (${worst.attack})` : '';
        out.push(`| ${rule.label} | ${texts.join(' | ')} | ${w} |`);
      }
    }
  }
  if (notes.length) out.push('', ...notes.map((n, i) => `[${i + 1}] ${n}`));

  const perRule = worstPerRule(grid);
  if (perRule.length) {
    out.push('', '**Worst case per rule over the grid** (lowest cell mean; lowest single seed)', '');
    out.push('| rule | worst cell mean ± std | cell | worst seed | run | cells |');
    out.push('|---|---|---|---|---|---|');
    for (const w of perRule) {
      out.push(
        `| ${w.rule.label} | ${fmt(w.cell.mean)} ± ${fmt(w.cell.std)} | ${w.cellId} | ${fmt(w.seed.worst)} | ` +
          `${w.seedCellId}@${w.seed.worstSeed} | ${w.count} |`,
      );
    }
  }
  const gaps = gapsToClean(grid);
  if (gaps.length) {
    out.push(
      '',
      "**Against the clean reference of the same seed** (a run's final accuracy minus that of the clean mean with the " +
        'same f, data and seed: what the attack cost, on the same shards)',
      '',
    );
    out.push('| rule | runs | mean gap | runs below it | worst gap | run | runs < 70 % |');
    out.push('|---|---|---|---|---|---|---|');
    const signed = (x: number) => `${x >= 0 ? '+' : '−'}${Math.abs(x).toFixed(3)}`;
    for (const g of gaps) {
      out.push(
        `| ${g.rule.label} | ${g.runs} | ${signed(g.meanGap)} | ${g.below} | ${signed(g.worstGap)} | ${g.worstRun} | ${g.under70} |`,
      );
    }
  }
  console.log(`\n${out.join('\n')}`);
}

export interface CleanGap {
  rule: RuleDef;
  /** Attacked runs with a clean run of the same (f, data, seed). */
  runs: number;
  meanGap: number;
  /** Runs that ended below their clean run. */
  below: number;
  worstGap: number;
  /** The run with the worst gap, as cell@seed. */
  worstRun: string;
  /** Runs that ended below 70 %. */
  under70: number;
}

/**
 * Per rule, every attacked run against the clean run of the same f, data and seed: accuracy − clean accuracy. A
 * failed run counts as accuracy 0 (as in the cell statistics); a run without its clean run is left out.
 */
export function gapsToClean(grid: Grid): CleanGap[] {
  const res: CleanGap[] = [];
  const accuracy = (r: Run | undefined) =>
    r?.report
      ? Number.isFinite(r.report.finalAccuracy)
        ? r.report.finalAccuracy
        : 0
      : r?.error
        ? 0
        : undefined;
  for (const rule of RULES) {
    let g: CleanGap | undefined;
    let sum = 0;
    for (const c of grid.cells) {
      if (c.rule !== rule || c.attack.attack === null || grid.skipped.has(c.id)) continue;
      for (const seed of grid.seeds) {
        const a = accuracy(grid.runs.get(runKey(c.id, seed)));
        const clean = accuracy(grid.runs.get(runKey(cleanOf(c), seed)));
        if (a === undefined || clean === undefined) continue;
        const gap = a - clean;
        g ??= { rule, runs: 0, meanGap: 0, below: 0, worstGap: Infinity, worstRun: '', under70: 0 };
        g.runs++;
        sum += gap;
        if (gap < 0) g.below++;
        if (a < 0.7) g.under70++;
        if (gap < g.worstGap) Object.assign(g, { worstGap: gap, worstRun: runKey(c.id, seed) });
      }
    }
    if (g) res.push({ ...g, meanGap: sum / g.runs });
  }
  return res;
}

interface RuleWorst {
  rule: RuleDef;
  cell: CellStats;
  cellId: string;
  seed: CellStats;
  seedCellId: string;
  count: number;
}

function worstPerRule(grid: Grid): RuleWorst[] {
  const res: RuleWorst[] = [];
  for (const rule of RULES) {
    let w: RuleWorst | undefined;
    for (const c of grid.cells) {
      if (c.rule !== rule || c.attack.attack === null || grid.skipped.has(c.id)) continue;
      const s = statsOf(grid, c);
      if (!s) continue;
      if (!w) w = { rule, cell: s, cellId: c.id, seed: s, seedCellId: c.id, count: 1 };
      else {
        w.count++;
        if (s.mean < w.cell.mean) Object.assign(w, { cell: s, cellId: c.id });
        if (s.worst < w.seed.worst) Object.assign(w, { seed: s, seedCellId: c.id });
      }
    }
    if (w) res.push(w);
  }
  return res;
}

const slug = (s: string) => s.replace(/[^a-z0-9.-]+/gi, '_');
/** The plots' bitmap font has no Greek letters or typographic minus. */
const plain = (s: string) =>
  s
    .replace(/τ/g, 'TAU ')
    .replace(/ε/g, 'EPS ')
    .replace(/α/g, 'ALPHA ')
    .replace(/σ/g, 'SIGMA ')
    .replace(/μ/g, 'MU')
    .replace(/−/g, '-');

/** accuracy-vs-f (per data × attack, and the worst attack per rule and f) and worst-case-per-rule PNGs. */
function writePlots(grid: Grid, args: Args, dir: string): string[] {
  mkdirSync(dir, { recursive: true });
  const written: string[] = [];
  const save = (name: string, png: Buffer) => {
    const file = path.join(dir, name);
    writeFileSync(file, png);
    written.push(file);
  };
  const fs = F_VALUES.filter((f) => grid.cells.some((c) => c.f === f));
  for (const data of DATA.filter((d) => grid.cells.some((c) => c.data === d))) {
    const cleanSeries: LineSeries = {
      label: 'clean mean',
      dashed: true,
      color: [0, 0, 0],
      points: fs.flatMap((f) => {
        const clean = grid.cells.find((c) => c.id === cellId('mean', 'none', f, data.key));
        const s = clean && statsOf(grid, clean);
        return s ? [{ x: f, y: s.mean, err: s.std }] : [];
      }),
    };
    const attacks = ATTACKS.filter(
      (a) => a.attack !== null && grid.cells.some((c) => c.data === data && c.attack === a),
    );
    const rules = RULES.filter((r) =>
      grid.cells.some((c) => c.data === data && c.rule === r && c.attack.attack),
    );
    const seriesFor = (pick: (rule: RuleDef, f: number) => CellStats | undefined): LineSeries[] =>
      rules.map((rule) => ({
        label: rule.label,
        points: fs.flatMap((f) => {
          const s = pick(rule, f);
          return s ? [{ x: f, y: s.mean, err: s.std }] : [];
        }),
      }));
    const stats = (rule: RuleDef, attack: AttackDef, f: number) => {
      const c = grid.cells.find((x) => x.id === cellId(rule.key, attack.key, f, data.key));
      return c && !grid.skipped.has(c.id) ? statsOf(grid, c) : undefined;
    };
    for (const attack of attacks) {
      const chart = drawLineChart({
        title: plain(
          `${attack.label}, ${data.label}: final accuracy vs f (${args.setting.model.toUpperCase()}, n = ${N}, ${args.rounds} rounds)`,
        ),
        xLabel: 'f (Byzantine workers of 12)',
        yLabel: `${args.setting.split} accuracy (mean ± std over seeds)`,
        series: [...seriesFor((rule, f) => stats(rule, attack, f)), cleanSeries],
        xTicks: fs,
      });
      save(`accuracy-vs-f_${slug(data.key)}_${slug(attack.key)}.png`, chart.toPng());
    }
    const worstOver = (rule: RuleDef, f: number) => {
      let w: CellStats | undefined;
      for (const a of attacks) {
        const s = stats(rule, a, f);
        if (s && (!w || s.mean < w.mean)) w = s;
      }
      return w;
    };
    const chart = drawLineChart({
      title: plain(`Worst attack per rule, ${data.label}: final accuracy vs f (${attacks.length} attacks)`),
      xLabel: 'f (Byzantine workers of 12)',
      yLabel: `${args.setting.split} accuracy under the worst attack (mean ± std)`,
      series: [...seriesFor(worstOver), cleanSeries],
      xTicks: fs,
    });
    save(`accuracy-vs-f_${slug(data.key)}_worst-attack.png`, chart.toPng());
  }
  const perRule = worstPerRule(grid);
  if (perRule.length) {
    const cleans = grid.cells
      .filter((c) => c.rule.key === 'mean' && c.attack === NONE)
      .map((c) => statsOf(grid, c)?.mean)
      .filter((x): x is number => x !== undefined);
    const chart = drawBarChart({
      title: `Worst case per rule over the grid (${args.setting.model.toUpperCase()}, lowest cell mean over seeds, ${args.rounds} rounds)`,
      xLabel: `final ${args.setting.split} accuracy`,
      bars: perRule.map((w) => ({ label: w.rule.label, value: w.cell.mean, note: w.cellId })),
      reference: cleans.length ? { label: 'lowest clean mean', value: Math.min(...cleans) } : undefined,
    });
    save('worst-case-per-rule.png', chart.toPng());
  }
  return written;
}

interface ResultsFile {
  runs?: Run[];
  flagDefaults?: Record<string, unknown>;
  command?: string;
}

/** A run from a file written before runs recorded `resolved`: the file's flag defaults say what it meant. */
function legacyResolved(flagDefaults: Record<string, unknown> | undefined, spec: JobSpecInput): unknown {
  return flagDefaults ? resolveWith(flagDefaults, spec) : undefined;
}

/**
 * Whether a recorded run is the run this checkout would make: it has a report, the same spec, and the same
 * resolved aggregation (a record from before an option existed counts as run with that option's behaviour then).
 * `fileFlagDefaults`: the flag defaults its results file recorded, for runs from before runs recorded `resolved`.
 */
export function recordIsCurrent(
  prev: Run | undefined,
  spec: JobSpecInput,
  fileFlagDefaults?: Record<string, unknown>,
): prev is Run {
  return (
    !!prev?.report &&
    JSON.stringify(withRecordedEma(prev.spec)) === JSON.stringify(spec) &&
    JSON.stringify(withAddedFlagDefaults(prev.resolved ?? legacyResolved(fileFlagDefaults, spec))) ===
      JSON.stringify(resolvedAggregation(spec))
  );
}

async function main(): Promise<void> {
  const args = parseCli(process.argv.slice(2));
  if (args.list) {
    for (const c of allCells()) {
      const req = c.f === 2 && c.data.key === 'iid' && REQUIRED.includes(`${c.rule.key}/${c.attack.key}`);
      console.log(`${c.id}${req ? '  (required)' : ''}`);
    }
    return;
  }
  const skipped = new Map<string, string>();
  const unavailableData = new Set<string>();
  const cells = selectCells(args).filter((c) => {
    const why = unavailable(c, args);
    if (why?.kind === 'data') unavailableData.add(why.reason);
    else if (why) skipped.set(c.id, why.reason);
    return why?.kind !== 'data';
  });
  // an explicitly asked-for heterogeneity that this checkout refuses is an error; quick/full report it and go on
  if (unavailableData.size && (args.data || args.cells) && !args.mode) {
    throw new Error(`data option not available in this checkout: ${[...unavailableData].join('; ')}`);
  }
  const runs = new Map<string, Run>();
  let previousDefaults: Record<string, unknown> | undefined;
  let previousCommand: string | undefined;
  if (args.json && existsSync(args.json)) {
    const previous = JSON.parse(readFileSync(args.json, 'utf8')) as ResultsFile;
    previousDefaults = previous.flagDefaults;
    previousCommand = previous.command;
    for (const r of previous.runs ?? []) runs.set(r.key, r);
  }
  const todo: Run[] = [];
  let stale = 0;
  for (const c of cells) {
    if (skipped.has(c.id)) continue;
    for (const seed of args.seeds) {
      const key = runKey(c.id, seed);
      const spec = runSpec(c, seed, args.rounds, args.evalEvery, args.setting);
      const prev = runs.get(key);
      const resolved = resolvedAggregation(spec);
      if (recordIsCurrent(prev, spec, previousDefaults)) {
        prev.resolved = resolved;
        continue;
      }
      const run: Run = { key, cell: c.id, seed, spec, resolved };
      // --no-run reads a file, it never replaces what it holds (a stale run still prints, as it ran)
      if (args.noRun && prev) {
        stale++;
        continue;
      }
      runs.set(key, run);
      todo.push(run);
    }
  }
  // The clean reference and the default first, then the classic baseline: an interrupted grid has its headline.
  const priority = (r: Run) => {
    const i = ['mean', 'default', 'tm-clip-nnm'].indexOf(r.cell.split('/')[0]);
    return i < 0 ? 3 : i;
  };
  todo.sort((a, b) => priority(a) - priority(b));
  const grid: Grid = { cells, runs, skipped, seeds: args.seeds };
  const save = () => {
    if (!args.json) return;
    mkdirSync(path.dirname(path.resolve(args.json)), { recursive: true });
    const out = {
      benchmark: 'robustness',
      // --no-run only reprints: the file keeps the command that made its runs
      command:
        args.noRun && previousCommand
          ? previousCommand
          : `npm run bench:robustness -- ${process.argv.slice(2).join(' ')}`,
      // The flag cells run with the defaults of this checkout.
      flagDefaults: FLAG_DEFAULTS,
      defaultAggregation: DEFAULT_AGGREGATION,
      setup: { n: N, ...args.setting, rounds: args.rounds, evalEvery: args.evalEvery, seeds: args.seeds },
      references: {
        source: "ByzFL's published Fashion-MNIST benchmark (f = 2, iid, same setup)",
        steps: REFERENCE_STEPS,
        cells: REFERENCES,
      },
      skipped: Object.fromEntries(skipped),
      cells: Object.fromEntries(
        cells.filter((c) => !skipped.has(c.id)).map((c) => [c.id, statsOf(grid, c) ?? null]),
      ),
      runs: [...runs.values()],
    };
    writeFileSync(args.json, `${JSON.stringify(out, null, 2)}\n`);
  };
  for (const d of unavailableData) console.log(`robustness: skipping ${d}`);
  if (stale > 0) {
    console.log(
      `robustness: ${stale} of the selected runs in ${args.json} are stale (their spec or resolved options differ ` +
        "from this checkout's): the tables show them as they ran; without --no-run they would run again",
    );
  }
  if (args.noRun && todo.length > 0) {
    console.log(`robustness: ${todo.length} of the selected runs are not in ${args.json ?? '(no --json)'}`);
  }
  if (todo.length === 0 && stale === 0) {
    console.log(`robustness: every selected run is done (${args.json ?? 'no --json'})`);
  }
  if (!args.noRun && todo.length > 0) {
    const dir = args.out ?? mkdtempSync(path.join(os.tmpdir(), 'phalanx-robustness-'));
    mkdirSync(dir, { recursive: true });
    console.log(
      `robustness: ${cells.length - skipped.size} cells × ${args.seeds.length} seeds: ${todo.length} runs to do ` +
        `(${(cells.length - skipped.size) * args.seeds.length - todo.length} done in ${args.json ?? '–'}) × ${args.rounds} rounds (${args.setting.model.toUpperCase()}, ${args.setting.split} split, n = ${N}, batch 25, ` +
        `worker momentum 0.9, SGD lr 0.1 wd 1e-4), ${args.parallel} at a time; files in ${dir}`,
    );
    const children = new Set<ChildProcess>();
    process.once('SIGINT', () => {
      for (const c of children) c.kill('SIGTERM');
      process.exit(130);
    });
    const queue = [...todo];
    const worker = async () => {
      for (let run = queue.shift(); run; run = queue.shift()) {
        console.log(`[${run.key}] start`);
        const r = await runChild(run, args, dir, children);
        runs.set(r.key, r);
        console.log(
          `[${r.key}] ${r.report ? `done: final accuracy ${fmt(r.report.finalAccuracy)}` : `FAILED: ${r.error}`} ` +
            `(${r.wallSeconds!.toFixed(0)} s; ${queue.length} queued)`,
        );
        save();
      }
    };
    await Promise.all(Array.from({ length: Math.min(args.parallel, todo.length) }, worker));
  }
  if (!args.noRun) save();
  printTables(grid, args);
  if (args.plot) {
    for (const f of writePlots(grid, args, args.plot)) console.log(`plot: ${f}`);
  }
  if (args.json && !args.noRun) console.log(`\nresults written to ${args.json}`);
  if (todo.some((r) => runs.get(r.key)?.error)) process.exitCode = 1;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    await main();
  } catch (e) {
    console.error(`robustness: ${(e as Error).message}`);
    process.exitCode = 2;
  }
}
