/**
 * Robustness meets sparsity (npm run bench:moe-sparsity [-- --quick] [--seeds N] [--rounds N] [--json FILE]).
 *
 * The MoE student of bench:students (top-2 of 4 experts, d32 L2 ffn64, distilled from the same teacher with the
 * same job settings) is trained through `simulate()` with n = 5 workers and f = 1, under the median rule and the
 * default flag rule, with no Byzantine worker and with one (ALIE). After every round, for each expert block
 * (`blocks.b.mlp.experts.e.*`, the expert's four tensors) and, as a baseline, for all non-expert parameters:
 *   routed    how many honest workers sent a non-zero gradient for the block (had tokens routed to it);
 *   ratio     ‖aggregate_B‖ / ‖mean of the honest vectors_B‖ (the rule's output against the clean mean);
 *   starved   the honest workers sent signal (routed > 0) but ratio < 0.1 (zero counts too);
 *   excluded  honest workers the rule gave weight 0 (its per-worker health), and whether every honest worker
 *             that routed to the block was among them.
 * Configurations `<rule>/expert` aggregate each expert block over the workers that routed to it (the job
 * spec's aggregation.perExpert, src/core/aggregation/perGroup.ts); the default set is the four plain ones.
 * Summarised per block over rounds and seeds; held-out nats/char per run (mean ± std, worst seed). --quick: 150
 * student rounds, 2 seeds (≈ 10 min on one core); otherwise 300 rounds (bench:students --quick's), 3 seeds.
 * --batchSize overrides the students' sequences per batch (8): a stress setting with sparser routing per worker.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { validateJobSpec, type JobSpecInput } from '../src/config/jobSpec.ts';
import type { AggregationResult } from '../src/core/aggregation/types.ts';
import type { LayerSlot } from '../src/core/layout/parameterLayout.ts';
import { BUNDLED_EXCERPT } from '../src/data/text.ts';
import { modelLayout } from '../src/models/registry.ts';
import type { MoeSpec } from '../src/models/types.ts';
import { simulate, type WorkerRole } from '../src/simulation/simulate.ts';
import { BENCH_TEACHER_MODEL, DISTILL_BENCH_JOB, trainBenchTeacher } from './support/benchTeacher.ts';
import { seedStats, type SeedStats } from './support/seedStats.ts';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    seeds: { type: 'string' },
    rounds: { type: 'string' },
    teacherRounds: { type: 'string' },
    /** Comma-separated rule configurations to run (default: all of CONFIGS). */
    configs: { type: 'string' },
    /** A stress setting, not bench:students': fewer sequences per worker batch (sparser routing per worker). */
    batchSize: { type: 'string' },
    json: { type: 'string' },
  },
});
process.env.PHALANX_TEXT ??= BUNDLED_EXCERPT;
const quick = values.quick;
const teacherRounds = Number(values.teacherRounds ?? 300);
const studentRounds = Number(values.rounds ?? (quick ? 150 : 300));
const seeds = Array.from({ length: Number(values.seeds ?? (quick ? 2 : 3)) }, (_, i) => 11 + i);
const jsonPath = values.json ?? `bench/results/moe-sparsity${quick ? '-quick' : ''}.json`;
const batchSize = Number(values.batchSize ?? DISTILL_BENCH_JOB.data.batchSize);
const kd = { alpha: 0.5, temperature: 2 };
const n = 5;
const moe: MoeSpec = { experts: 4, topK: 2, auxLossWeight: 0.01 };
const moeModel = { kind: 'transformer', dModel: 32, layers: 2, heads: 2, ffn: 64, context: 32, moe } as const;
/** "Far smaller than the honest mean". */
const STARVED_RATIO = 0.1;

interface Config {
  name: string;
  rule: string;
  options?: Record<string, unknown>;
  byzantine: number;
  /** The spec's aggregation.perExpert (src/core/aggregation/perGroup.ts). */
  perExpert?: boolean;
}
const CONFIGS: Config[] = [
  { name: 'median', rule: 'median', byzantine: 0 },
  { name: 'median+alie', rule: 'median', byzantine: 1 },
  { name: 'flag', rule: 'flag', byzantine: 0 },
  { name: 'flag+alie', rule: 'flag', byzantine: 1 },
  { name: 'median/expert', rule: 'median', byzantine: 0, perExpert: true },
  { name: 'median/expert+alie', rule: 'median', byzantine: 1, perExpert: true },
  { name: 'flag/expert', rule: 'flag', byzantine: 0, perExpert: true },
  { name: 'flag/expert+alie', rule: 'flag', byzantine: 1, perExpert: true },
];
const chosen = values.configs
  ? values.configs.split(',').map((c) => {
      const config = CONFIGS.find((k) => k.name === c);
      if (!config) throw new Error(`--configs: unknown '${c}' (${CONFIGS.map((k) => k.name).join(', ')})`);
      return config;
    })
  : CONFIGS.filter((c) => !c.perExpert);

/** A parameter group: its name and its slots. */
interface Group {
  name: string;
  slots: LayerSlot[];
}

function parameterGroups(slots: LayerSlot[]): Group[] {
  const experts = new Map<string, LayerSlot[]>();
  const rest: LayerSlot[] = [];
  for (const slot of slots) {
    const m = /^(blocks\.\d+\.mlp\.experts\.\d+)\./.exec(slot.name);
    if (m) experts.set(m[1], [...(experts.get(m[1]) ?? []), slot]);
    else rest.push(slot);
  }
  return [...[...experts].map(([name, s]) => ({ name, slots: s })), { name: 'non-expert', slots: rest }];
}

function groupNormSq(v: Float32Array | Float64Array, g: Group): number {
  let s = 0;
  for (const { offset, size } of g.slots) for (let j = offset; j < offset + size; j++) s += v[j] * v[j];
  return s;
}

/** Per group, summed over the rounds of one run. */
interface GroupTally {
  rounds: number;
  /** Σ routed honest workers; rounds where some honest worker sent zero; rounds where none routed. */
  routedSum: number;
  roundsPartlyRouted: number;
  roundsUnrouted: number;
  starved: number;
  zero: number;
  ratios: number[];
  /** Rounds where every honest worker that routed to the block had weight 0. */
  allRoutedExcluded: number;
  /** Per-expert aggregation: rounds the block had too few senders for the rule and kept the all-worker value. */
  fellBack: number;
}

const newTally = (): GroupTally => ({
  rounds: 0,
  routedSum: 0,
  roundsPartlyRouted: 0,
  roundsUnrouted: 0,
  starved: 0,
  zero: 0,
  ratios: [],
  allRoutedExcluded: 0,
  fellBack: 0,
});

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length
    ? s.length % 2
      ? s[(s.length - 1) / 2]
      : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
    : NaN;
}

const stats = (xs: number[]) => seedStats(xs, 'higher');
const show = (s: SeedStats) => `${s.mean.toFixed(3)} ± ${s.std.toFixed(3)} (worst ${s.worst.toFixed(3)})`;

const started = Date.now();
const dir = mkdtempSync(path.join(os.tmpdir(), 'phalanx-moe-sparsity-'));
try {
  const teacher = await trainBenchTeacher(DISTILL_BENCH_JOB, BENCH_TEACHER_MODEL, teacherRounds, dir);
  const spec = (config: Config, seed: number) =>
    validateJobSpec({
      ...DISTILL_BENCH_JOB,
      data: { ...DISTILL_BENCH_JOB.data, batchSize },
      name: `moe-${config.name.replace(/[+/]/g, '-')}`,
      seed,
      model: moeModel,
      rounds: studentRounds,
      evaluation: { every: studentRounds },
      teacher: { checkpoint: teacher.checkpoint, ...kd },
      workers: { min: n, max: n },
      aggregation: {
        rule: config.rule,
        f: 1,
        options: config.options ?? {},
        perExpert: config.perExpert ?? false,
      },
      ...(config.byzantine ? { simulate: { byzantine: { count: config.byzantine, attack: 'alie' } } } : {}),
    } satisfies JobSpecInput);
  const groups = parameterGroups(modelLayout(spec(CONFIGS[0], seeds[0]).model).layers);
  const d = modelLayout(spec(CONFIGS[0], seeds[0]).model).totalSize;
  const honestMean = new Float64Array(d);

  const results: Record<string, unknown>[] = [];
  for (const config of chosen) {
    const tallies = new Map(groups.map((g) => [g.name, newTally()]));
    const losses: number[] = [];
    let honestWorkerRounds = 0;
    let honestExcluded = 0;
    for (const seed of seeds) {
      const observe = (
        _round: number,
        vectors: Float32Array[],
        roles: WorkerRole[],
        result?: AggregationResult,
      ) => {
        if (!result) return;
        const honestIdx = roles.flatMap((r, i) => (r === 'honest' ? [i] : []));
        honestMean.fill(0);
        for (const i of honestIdx) {
          const v = vectors[i];
          for (let j = 0; j < d; j++) honestMean[j] += v[j] / honestIdx.length;
        }
        const excluded = new Set(honestIdx.filter((i) => !result.workers[i].included));
        const perGroup = result.diagnostics?.perGroup as { fallbacks: { group: string }[] } | undefined;
        for (const fb of perGroup?.fallbacks ?? []) tallies.get(fb.group)!.fellBack++;
        honestWorkerRounds += honestIdx.length;
        honestExcluded += excluded.size;
        for (const g of groups) {
          const t = tallies.get(g.name)!;
          const routed = honestIdx.filter((i) => groupNormSq(vectors[i], g) > 0);
          t.rounds++;
          t.routedSum += routed.length;
          if (routed.length < honestIdx.length) t.roundsPartlyRouted++;
          if (routed.length === 0) {
            t.roundsUnrouted++;
            continue;
          }
          const aggNorm = Math.sqrt(groupNormSq(result.update, g));
          const ratio = aggNorm / Math.sqrt(groupNormSq(honestMean, g));
          t.ratios.push(ratio);
          if (aggNorm === 0) t.zero++;
          if (ratio < STARVED_RATIO) t.starved++;
          if (routed.every((i) => excluded.has(i))) t.allRoutedExcluded++;
        }
      };
      const run = await simulate(spec(config, seed), {
        backend: 'wasm',
        onAggregate: observe,
      });
      losses.push(run.finalLoss);
      console.log(
        `${config.name} seed ${seed}: ${run.finalLoss.toFixed(3)} nats/char, honest inclusion ${(100 * run.health.honestInclusion).toFixed(1)} %`,
      );
    }
    const perGroup = groups.map((g) => {
      const t = tallies.get(g.name)!;
      return {
        group: g.name,
        rounds: t.rounds,
        meanRoutedHonest: t.routedSum / t.rounds,
        roundsPartlyRouted: t.roundsPartlyRouted,
        roundsUnrouted: t.roundsUnrouted,
        starved: t.starved,
        zero: t.zero,
        allRoutedExcluded: t.allRoutedExcluded,
        fellBack: t.fellBack,
        ratioMedian: median(t.ratios),
        ratioMin: Math.min(...t.ratios),
      };
    });
    const loss = stats(losses);
    console.log(
      `\n${config.name} (n = ${n}, f = 1, ${config.byzantine} Byzantine): held-out ${show(loss)} nats/char; honest worker-rounds excluded ${honestExcluded}/${honestWorkerRounds}`,
    );
    console.log(
      '| block | mean routed honest | rounds some honest unrouted | starved (ratio < 0.1) | zero | all routed excluded | too few senders | ‖agg‖/‖honest mean‖ median (min) |',
    );
    console.log('|---|---|---|---|---|---|---|---|');
    for (const r of perGroup)
      console.log(
        `| ${r.group} | ${r.meanRoutedHonest.toFixed(2)} | ${r.roundsPartlyRouted}/${r.rounds} | ${r.starved} | ${r.zero} | ${r.allRoutedExcluded} | ${r.fellBack} | ${r.ratioMedian.toFixed(3)} (${r.ratioMin.toFixed(3)}) |`,
      );
    console.log('');
    results.push({ ...config, losses, loss, honestWorkerRounds, honestExcluded, perGroup });
  }
  const minutes = (Date.now() - started) / 60_000;
  console.log(`(${minutes.toFixed(1)} min)`);
  mkdirSync(path.dirname(jsonPath), { recursive: true });
  writeFileSync(
    jsonPath,
    `${JSON.stringify(
      {
        quick,
        seeds,
        n,
        f: 1,
        attack: 'alie',
        teacherRounds,
        studentRounds,
        batchSize,
        teacher: teacher.finalLoss,
        moeModel,
        kd,
        starvedRatio: STARVED_RATIO,
        minutes,
        results,
      },
      null,
      2,
    )}\n`,
  );
  console.log(`wrote ${jsonPath}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
