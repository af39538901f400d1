/**
 * Students distilled from a teacher checkpoint
 * (npm run bench:students [-- --quick] [--seeds 3] [--json FILE] [--rounds N]).
 *
 * A character transformer teacher is trained on the bundled KJV excerpt and saved as a checkpoint; then, for
 * each seed, students are distilled from it (α·T²·KL + (1 − α)·CE) with the same data, rounds and optimizer:
 *   - moe:   top-2-of-4 mixture-of-experts MLPs (src/models/moe.ts), Switch load-balancing loss;
 *   - dense: the ordinary transformer with the MoE's active parameter count (moeSpec.ts denseEquivalent).
 * Every run goes through `simulate()`: the worker and round code of a distributed job in one process (equal to
 * `phalanx launch` on the same backend, test/integration/simulateMatchesDistributed.test.ts), 4 workers, median
 * rule, wasm. Reported: held-out nats/char (the test split: the last 10% of the text), mean ± std over seeds and
 * the worst seed, the paired difference, and the MoE's expert load (max/mean routing assignments per expert over
 * the held-out tokens, worst block). Hyper-parameters are fixed beforehand (the values of bench/distillSmall.ts,
 * Switch's aux weight 0.01), not tuned on these results.
 *
 * E5 (issue 10): the MoE student is no worse than the dense one (mean paired difference MoE − dense ≤ 0) and its
 * max/mean expert load is ≤ 1.5 on every seed.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { validateJobSpec, type JobSpecInput } from '../src/config/jobSpec.ts';
import { BUNDLED_EXCERPT } from '../src/data/text.ts';
import { activeParameterCount, denseEquivalent } from '../src/models/moeSpec.ts';
import { parameterCount } from '../src/models/parameterCount.ts';
import type { MoeSpec, TransformerSpec } from '../src/models/types.ts';
import { simulate } from '../src/simulation/simulate.ts';
import { BENCH_TEACHER_MODEL, DISTILL_BENCH_JOB, trainBenchTeacher } from './support/benchTeacher.ts';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    seeds: { type: 'string', default: '3' },
    json: { type: 'string' },
    /** Override both round counts (a smoke run). */
    rounds: { type: 'string' },
  },
});
process.env.PHALANX_TEXT ??= BUNDLED_EXCERPT;
const quick = values.quick;
const teacherRounds = values.rounds ? Number(values.rounds) : quick ? 300 : 600;
const studentRounds = values.rounds ? Number(values.rounds) : quick ? 300 : 600;
const seeds = Array.from({ length: Number(values.seeds) }, (_, i) => 11 + i);
const jsonPath = values.json ?? `bench/results/students${quick ? '-quick' : ''}.json`;
const kd = { alpha: 0.5, temperature: 2 };
const common = DISTILL_BENCH_JOB;
const teacherModel = BENCH_TEACHER_MODEL;
const moe: MoeSpec = { experts: 4, topK: 2, auxLossWeight: 0.01 };
const moeModel = { kind: 'transformer', dModel: 32, layers: 2, heads: 2, ffn: 64, context: 32, moe } as const;

interface Stats {
  mean: number;
  std: number;
  worst: number;
}
/** Mean, sample standard deviation and the largest (worst) value. */
function stats(xs: number[]): Stats {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const std = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, xs.length - 1));
  return { mean, std, worst: Math.max(...xs) };
}
const show = (s: Stats) => `${s.mean.toFixed(3)} ± ${s.std.toFixed(3)} (worst ${s.worst.toFixed(3)})`;

const started = Date.now();
const dir = mkdtempSync(path.join(os.tmpdir(), 'phalanx-students-bench-'));
try {
  const teacher = await trainBenchTeacher(common, teacherModel, teacherRounds, dir);
  const teacherSpec = teacher.spec;

  const student = (name: string, model: JobSpecInput['model'], seed: number) =>
    validateJobSpec({
      ...common,
      name,
      seed,
      model,
      rounds: studentRounds,
      evaluation: { every: studentRounds },
      teacher: { checkpoint: teacher.checkpoint, ...kd },
    });
  const moeSpec = student('moe', moeModel, seeds[0]).model as TransformerSpec & { moe: MoeSpec };
  const denseSpec = denseEquivalent(moeSpec);
  const runs: { seed: number; moe: number; dense: number; expertLoad: number }[] = [];
  for (const seed of seeds) {
    const moeRun = await simulate(student('moe', moeModel, seed), { backend: 'wasm' });
    const denseRun = await simulate(student('dense', denseSpec, seed), { backend: 'wasm' });
    const expertLoad = moeRun.evaluations.at(-1)?.expertLoad ?? NaN;
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
    `| teacher d64 L2 ffn128 (${teacherRounds} rounds) | ${count(teacherSpec.model as TransformerSpec)} | ${teacher.finalLoss.toFixed(3)} | — |`,
  );
  console.log(
    `| MoE d32 L2, top-2 of 4 experts of ffn 64 | ${count(moeSpec)} | ${show(moeStats)} | ${show(load)} |`,
  );
  console.log(`| dense d32 L2 ffn ${denseSpec.ffn} | ${count(denseSpec)} | ${show(denseStats)} | — |`);
  console.log(`| MoE − dense, paired by seed | | ${show(diff)} | |`);
  const noWorse = diff.mean <= 0;
  const balanced = load.worst <= 1.5;
  console.log(
    `\nE5: MoE no worse than dense at equal active parameters (mean paired MoE − dense ≤ 0): ${noWorse ? 'yes' : 'NO'}; max/mean expert load ≤ 1.5 on every seed: ${balanced ? 'yes' : 'NO'}`,
  );
  console.log(`(${((Date.now() - started) / 60_000).toFixed(1)} min)`);
  mkdirSync(path.dirname(jsonPath), { recursive: true });
  writeFileSync(
    jsonPath,
    `${JSON.stringify(
      {
        quick,
        teacherRounds,
        studentRounds,
        seeds,
        workers: 4,
        rule: 'median',
        backend: 'wasm',
        kd,
        teacherModel,
        moeModel: moeSpec,
        denseModel: denseSpec,
        parameters: {
          teacher: parameterCount(teacherSpec.model),
          moe: { stored: parameterCount(moeSpec), active: activeParameterCount(moeSpec) },
          dense: parameterCount(denseSpec),
        },
        teacher: teacher.finalLoss,
        runs,
        moe: moeStats,
        dense: denseStats,
        moeMinusDense: diff,
        expertLoad: load,
        e5: { noWorse, balanced },
      },
      null,
      2,
    )}\n`,
  );
  console.log(`wrote ${jsonPath}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
