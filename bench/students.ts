/**
 * Students distilled from a teacher checkpoint
 * (npm run bench:students [-- --quick] [--seeds 3] [--json FILE] [--rounds N] [--students moe,mor,recursive]
 * [--engine coordinator|simulate] [--router linear|rmoe]).
 *
 * A character transformer teacher is trained on the bundled KJV excerpt and saved as a checkpoint; then, for
 * each seed, students are distilled from it (α·T²·KL + (1 − α)·CE) with the same data, rounds and optimizer:
 *   - moe:   top-2-of-4 mixture-of-experts MLPs (src/models/moe.ts), Switch load-balancing loss;
 *   - dense: the ordinary transformer with the MoE's active parameter count (moeSpec.ts denseEquivalent).
 * `--router rmoe` gives the MoE student the recurrent router (src/models/rmoeRouter.ts, GRU width 32) instead of
 * the linear one; the dense student then matches its active count, router included. Results go to a file of
 * their own (students-rmoe[-quick].json).
 * Every run, the teachers' included, goes through the coordinator (support/trainJob.ts: `launch()`, a gRPC
 * coordinator in this process and 4 worker processes over loopback, memory store, wasm), median rule; the final
 * parameters come from the job's last checkpoint. `--engine simulate` runs the same jobs through `simulate()`
 * (the same worker and round code in one process; same results on the same backend). Reported: held-out
 * nats/char (the test split: the last 10% of the text), mean ± std over seeds and the worst seed, the paired
 * difference, and the MoE's expert load (max/mean routing assignments per expert over the held-out tokens,
 * worst block). Hyper-parameters are fixed beforehand (the values of bench/distillSmall.ts,
 * Switch's aux weight 0.01), not tuned on these results.
 *
 * E5 (issue 10): the MoE student is no worse than the dense one (mean paired difference MoE − dense ≤ 0) and its
 * max/mean expert load is ≤ 1.5 on every seed.
 *
 * MoR (issue 10, `--students mor`): a Mixture-of-Recursions student (src/models/mor.ts; one shared block of
 * d32 ffn64 run for up to 3 recursions, capacities 1, 2/3, 1/3 as in MoR's expert-choice schedule, router
 * auxiliary weight 0.1) against the recursive student with the same block at full depth (3 recursions, every
 * token), which has the same parameters but the MoR routers (2·(d + 1)). Reported: held-out nats/char and the
 * mean recursions per held-out token, with the compute ratio mean depth / 3 (block applications per token;
 * the dense wasm implementation does not realise it). A third student runs the same block twice for every token
 * (Σ c_t = 2 recursions): the MoR's target compute without routing. Fixed beforehand, not tuned on these results.
 *
 * Recursive students (`--students recursive`; it has its own 4-layer teacher and takes ≈ 40–70 min with --quick
 * on 2 shared cores): E1–E4 and a Byzantine run, bench/support/recursiveComparison.ts. The default runs all three
 * comparisons, so one command prints E1–E5 and MoR; `--students moe,mor` or `--students recursive` runs a part.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { validateJobSpec, type JobSpecInput } from '../src/config/jobSpec.ts';
import { BUNDLED_EXCERPT } from '../src/data/text.ts';
import { activeParameterCount, denseEquivalent } from '../src/models/moeSpec.ts';
import { parameterCount } from '../src/models/parameterCount.ts';
import type { MoeSpec, MorSpec, TransformerSpec } from '../src/models/types.ts';
import { seedStats, type SeedStats } from './support/seedStats.ts';
import {
  BENCH_TEACHER_4_LAYERS,
  BENCH_TEACHER_MODEL,
  DISTILL_BENCH_JOB,
  trainBenchTeacher,
} from './support/benchTeacher.ts';
import { recursiveComparison } from './support/recursiveComparison.ts';
import { ENGINES, trainJob, type Engine } from './support/trainJob.ts';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    seeds: { type: 'string', default: '3' },
    json: { type: 'string' },
    /** Override both round counts (a smoke run). */
    rounds: { type: 'string' },
    /** Which comparisons to run: moe (E5, MoE vs dense), mor (MoR vs recursive), recursive (E1–E4). */
    students: { type: 'string', default: 'moe,mor,recursive' },
    /** coordinator: launch() with worker processes over gRPC; simulate: the same code in one process. */
    engine: { type: 'string', default: 'coordinator' },
    /** The MoE student's router: linear (E5 as measured) or rmoe (a GRU carried across depth). */
    router: { type: 'string', default: 'linear' },
  },
});
const engine = values.engine as Engine;
if (!ENGINES.includes(engine))
  throw new Error(`--engine: unknown '${values.engine}' (${ENGINES.join(', ')})`);
const which = new Set(values.students.split(','));
for (const w of which)
  if (w !== 'moe' && w !== 'mor' && w !== 'recursive')
    throw new Error(`--students: unknown '${w}' (moe, mor, recursive)`);
const router = values.router;
if (router !== 'linear' && router !== 'rmoe') throw new Error(`--router: unknown '${router}' (linear, rmoe)`);
process.env.PHALANX_TEXT ??= BUNDLED_EXCERPT;
const quick = values.quick;
const teacherRounds = values.rounds ? Number(values.rounds) : quick ? 300 : 600;
const studentRounds = values.rounds ? Number(values.rounds) : quick ? 300 : 600;
const seeds = Array.from({ length: Number(values.seeds) }, (_, i) => 11 + i);
const only = which.size === 1 && !which.has('moe') ? `-${[...which][0]}` : '';
const routerTag = router === 'rmoe' ? '-rmoe' : '';
const jsonPath = values.json ?? `bench/results/students${only}${routerTag}${quick ? '-quick' : ''}.json`;
/** The recursive students' teacher trains for 600 rounds even with --quick: it must be worth distilling. */
const recursiveTeacherRounds = values.rounds ? Number(values.rounds) : 600;
/** Ten students per seed: 150 rounds each with --quick (≈ 40 min on one shared core), 400 otherwise. */
const recursiveStudentRounds = values.rounds ? Number(values.rounds) : quick ? 150 : 400;
const kd = { alpha: 0.5, temperature: 2 };
const common = DISTILL_BENCH_JOB;
const teacherModel = BENCH_TEACHER_MODEL;
const moe: MoeSpec = {
  experts: 4,
  topK: 2,
  auxLossWeight: 0.01,
  ...(router === 'rmoe' ? { router } : {}),
};
const moeModel = { kind: 'transformer', dModel: 32, layers: 2, heads: 2, ffn: 64, context: 32, moe } as const;
const recursions = 3;
const recursiveModel = {
  kind: 'transformer',
  dModel: 32,
  layers: recursions,
  heads: 2,
  ffn: 64,
  context: 32,
  recursion: { blocks: 1, schedule: 'cycle', init: 'lower', loraRank: 0 },
} as const;
const mor: MorSpec = { capacities: [1, 2 / 3, 1 / 3], auxLossWeight: 0.1 };
const morModel = { ...recursiveModel, recursion: { ...recursiveModel.recursion, mor } };
/** The same block run for Σ c_t = 2 recursions by every token: the MoR's target compute without routing. */
const shallowModel = { ...recursiveModel, layers: 2 } as const;

/** Losses, depths and loads: the largest seed is the worst. */
const stats = (xs: number[]) => seedStats(xs, 'higher');
const show = (s: SeedStats) => `${s.mean.toFixed(3)} ± ${s.std.toFixed(3)} (worst ${s.worst.toFixed(3)})`;

const started = Date.now();
const dir = mkdtempSync(path.join(os.tmpdir(), 'phalanx-students-bench-'));
try {
  const twoLayer = which.has('moe') || which.has('mor');
  const teacher = twoLayer
    ? await trainBenchTeacher(common, teacherModel, teacherRounds, dir, 'nats/char', engine)
    : undefined;
  const teacherSpec = teacher?.spec;

  const student = (name: string, model: JobSpecInput['model'], seed: number) =>
    validateJobSpec({
      ...common,
      name,
      seed,
      model,
      rounds: studentRounds,
      evaluation: { every: studentRounds },
      teacher: { checkpoint: teacher!.checkpoint, ...kd },
    });
  const results: Record<string, unknown> = {
    quick,
    seeds,
    engine,
    router,
    workers: 4,
    rule: 'median',
    backend: 'wasm',
    kd,
  };
  if (teacher)
    Object.assign(results, { teacherRounds, studentRounds, teacherModel, teacher: teacher.finalLoss });
  if (which.has('moe')) Object.assign(results, await moeVsDense());
  if (which.has('mor')) Object.assign(results, await morVsRecursive());
  if (which.has('recursive')) {
    const recursiveDir = path.join(dir, 'recursive');
    mkdirSync(recursiveDir);
    const recursiveTeacher = await trainBenchTeacher(
      common,
      BENCH_TEACHER_4_LAYERS,
      recursiveTeacherRounds,
      recursiveDir,
      'nats/char',
      engine,
    );
    Object.assign(
      results,
      { recursiveTeacherRounds, recursiveStudentRounds },
      await recursiveComparison({
        common,
        teacher: recursiveTeacher,
        kd,
        rounds: recursiveStudentRounds,
        seeds,
        engine,
      }),
    );
  }
  console.log(`(${((Date.now() - started) / 60_000).toFixed(1)} min)`);
  mkdirSync(path.dirname(jsonPath), { recursive: true });
  writeFileSync(jsonPath, `${JSON.stringify(results, null, 2)}\n`);

  async function moeVsDense() {
    const moeSpec = student('moe', moeModel, seeds[0]).model as TransformerSpec & { moe: MoeSpec };
    const denseSpec = denseEquivalent(moeSpec);
    const runs: { seed: number; moe: number; dense: number; expertLoad: number }[] = [];
    for (const seed of seeds) {
      const moeRun = await trainJob(student('moe', moeModel, seed), { engine });
      const denseRun = await trainJob(student('dense', denseSpec, seed), { engine });
      const expertLoad = moeRun.expertLoad ?? NaN;
      runs.push({ seed, moe: moeRun.finalLoss, dense: denseRun.finalLoss, expertLoad });
      console.log(
        `seed ${seed}: MoE ${moeRun.finalLoss.toFixed(3)} (expert load ${expertLoad.toFixed(2)}), dense ${denseRun.finalLoss.toFixed(3)} nats/char`,
      );
    }
    const moeStats = stats(runs.map((r) => r.moe));
    const denseStats = stats(runs.map((r) => r.dense));
    const diff = stats(runs.map((r) => r.moe - r.dense));
    const load = stats(runs.map((r) => r.expertLoad));
    const count = (s: TransformerSpec) =>
      `${parameterCount(s).toLocaleString('en')} / ${activeParameterCount(s).toLocaleString('en')}`;
    console.log(
      `\nstudents distilled for ${studentRounds} rounds (α ${kd.alpha}, T ${kd.temperature}), seeds ${seeds.join(', ')}; held-out nats/char\n`,
    );
    console.log('| model | parameters (stored / active) | nats/char | max/mean expert load |');
    console.log('|---|---|---|---|');
    console.log(
      `| teacher d64 L2 ffn128 (${teacherRounds} rounds) | ${count(teacherSpec!.model as TransformerSpec)} | ${teacher!.finalLoss.toFixed(3)} | — |`,
    );
    console.log(
      `| MoE d32 L2, top-2 of 4 experts of ffn 64${router === 'rmoe' ? ', rmoe router' : ''} | ${count(moeSpec)} | ${show(moeStats)} | ${show(load)} |`,
    );
    console.log(`| dense d32 L2 ffn ${denseSpec.ffn} | ${count(denseSpec)} | ${show(denseStats)} | — |`);
    console.log(`| MoE − dense, paired by seed | | ${show(diff)} | |`);
    const noWorse = diff.mean <= 0;
    const balanced = load.worst <= 1.5;
    console.log(
      `\nE5: MoE no worse than dense at equal active parameters (mean paired MoE − dense ≤ 0): ${noWorse ? 'yes' : 'NO'}; max/mean expert load ≤ 1.5 on every seed: ${balanced ? 'yes' : 'NO'}`,
    );
    return {
      moeModel: moeSpec,
      denseModel: denseSpec,
      parameters: {
        teacher: parameterCount(teacherSpec!.model),
        moe: { stored: parameterCount(moeSpec), active: activeParameterCount(moeSpec) },
        dense: parameterCount(denseSpec),
      },
      runs,
      moe: moeStats,
      dense: denseStats,
      moeMinusDense: diff,
      expertLoad: load,
      e5: { noWorse, balanced },
    };
  }

  async function morVsRecursive() {
    const morSpec = student('mor', morModel, seeds[0]).model as TransformerSpec;
    const recursiveSpec = student('recursive', recursiveModel, seeds[0]).model as TransformerSpec;
    const runs: { seed: number; mor: number; recursive: number; shallow: number; meanDepth: number }[] = [];
    for (const seed of seeds) {
      const morRun = await trainJob(student('mor', morModel, seed), { engine });
      const recursiveRun = await trainJob(student('recursive', recursiveModel, seed), { engine });
      const shallowRun = await trainJob(student('shallow', shallowModel, seed), { engine });
      const meanDepth = morRun.meanDepth ?? NaN;
      runs.push({
        seed,
        mor: morRun.finalLoss,
        recursive: recursiveRun.finalLoss,
        shallow: shallowRun.finalLoss,
        meanDepth,
      });
      console.log(
        `seed ${seed}: MoR ${morRun.finalLoss.toFixed(3)} (mean depth ${meanDepth.toFixed(2)}), recursive ${recursiveRun.finalLoss.toFixed(3)}, 2 recursions ${shallowRun.finalLoss.toFixed(3)} nats/char`,
      );
    }
    const morStats = stats(runs.map((r) => r.mor));
    const recursiveStats = stats(runs.map((r) => r.recursive));
    const shallowStats = stats(runs.map((r) => r.shallow));
    const diff = stats(runs.map((r) => r.mor - r.recursive));
    const diffShallow = stats(runs.map((r) => r.mor - r.shallow));
    const shallowSpec = student('shallow', shallowModel, seeds[0]).model as TransformerSpec;
    const depth = stats(runs.map((r) => r.meanDepth));
    const ratio = stats(runs.map((r) => r.meanDepth / recursions));
    const capacities = mor.capacities.map((c) => c.toFixed(2)).join(', ');
    console.log(
      `\nMoR vs recursive, distilled for ${studentRounds} rounds (α ${kd.alpha}, T ${kd.temperature}), seeds ${seeds.join(', ')}; held-out nats/char and recursions per held-out token (worst: the largest)\n`,
    );
    console.log('| model | parameters | nats/char | mean depth (of 3) | compute vs full depth |');
    console.log('|---|---|---|---|---|');
    console.log(
      `| recursive d32 ffn64, 1 block × 3 recursions | ${parameterCount(recursiveSpec).toLocaleString('en')} | ${show(recursiveStats)} | 3 | 1 |`,
    );
    console.log(
      `| MoR, capacities ${capacities}, aux ${mor.auxLossWeight} | ${parameterCount(morSpec).toLocaleString('en')} | ${show(morStats)} | ${show(depth)} | ${show(ratio)} |`,
    );
    console.log(
      `| recursive, 1 block × 2 recursions | ${parameterCount(shallowSpec).toLocaleString('en')} | ${show(shallowStats)} | 2 | 0.667 |`,
    );
    console.log(`| MoR − recursive × 3, paired by seed | | ${show(diff)} | | |`);
    console.log(`| MoR − recursive × 2, paired by seed | | ${show(diffShallow)} | | |`);
    return {
      recursiveModel: recursiveSpec,
      morModel: morSpec,
      morParameters: { recursive: parameterCount(recursiveSpec), mor: parameterCount(morSpec) },
      morRuns: runs,
      mor: morStats,
      recursive: recursiveStats,
      morMinusRecursive: diff,
      shallowModel: shallowSpec,
      shallow: shallowStats,
      morMinusShallow: diffShallow,
      morMeanDepth: depth,
      morComputeRatio: ratio,
    };
  }
  console.log(`wrote ${jsonPath}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
