/**
 * Knowledge distillation at small scale (npx tsx bench/distillSmall.ts [--quick] [--seeds 3] [--json FILE]): a
 * character transformer teacher trained on the bundled KJV excerpt, then at equal rounds a smaller student trained
 * with the teacher (α·T²·KL + (1−α)·CE) and without it (CE), mean ± std of the held-out nats/char over the seeds.
 * Every run goes through `simulate()` (the same worker and round code as a distributed job, in one process,
 * 4 simulated workers, median rule). Small scale: a ~30 k-character excerpt, a teacher of a few hundred rounds;
 * the gap it shows says only that the loss and the plumbing work, not how much KD gains at scale.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { validateJobSpec } from '../src/config/jobSpec.ts';
import { BUNDLED_EXCERPT } from '../src/data/text.ts';
import { simulate } from '../src/simulation/simulate.ts';
import { BENCH_TEACHER_MODEL, DISTILL_BENCH_JOB, trainBenchTeacher } from './support/benchTeacher.ts';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    seeds: { type: 'string', default: '3' },
    json: { type: 'string' },
    alpha: { type: 'string', default: '0.5' },
    temperature: { type: 'string', default: '2' },
  },
});
process.env.PHALANX_TEXT ??= BUNDLED_EXCERPT;
const quick = values.quick;
const teacherRounds = quick ? 60 : 300;
const studentRounds = quick ? 30 : 150;
const seeds = Array.from({ length: Number(values.seeds) }, (_, i) => 11 + i);
const common = DISTILL_BENCH_JOB;
const teacherModel = BENCH_TEACHER_MODEL;
const studentModel = { kind: 'transformer', dModel: 32, layers: 1, heads: 2, ffn: 64, context: 32 } as const;

const dir = mkdtempSync(path.join(os.tmpdir(), 'phalanx-distill-bench-'));
try {
  const teacher = await trainBenchTeacher(common, teacherModel, teacherRounds, dir);

  const runs: { seed: number; kd: number; scratch: number }[] = [];
  for (const seed of seeds) {
    const student = (kd: boolean) =>
      validateJobSpec({
        ...common,
        name: kd ? 'kd' : 'scratch',
        seed,
        model: studentModel,
        rounds: studentRounds,
        evaluation: { every: studentRounds },
        ...(kd
          ? {
              teacher: {
                checkpoint: teacher.checkpoint,
                alpha: Number(values.alpha),
                temperature: Number(values.temperature),
              },
            }
          : {}),
      });
    const kd = (await simulate(student(true), { backend: 'wasm' })).finalLoss;
    const scratch = (await simulate(student(false), { backend: 'wasm' })).finalLoss;
    runs.push({ seed, kd, scratch });
    console.log(`seed ${seed}: KD ${kd.toFixed(3)}, no KD ${scratch.toFixed(3)} nats/char`);
  }
  const stats = (xs: number[]) => {
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    const std = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, xs.length - 1));
    return { mean, std };
  };
  const kd = stats(runs.map((r) => r.kd));
  const scratch = stats(runs.map((r) => r.scratch));
  const diff = stats(runs.map((r) => r.scratch - r.kd));
  console.log(`\n| student (${studentRounds} rounds, ${seeds.length} seeds) | held-out nats/char |`);
  console.log('|---|---|');
  console.log(
    `| KD (α ${values.alpha}, T ${values.temperature}) | ${kd.mean.toFixed(3)} ± ${kd.std.toFixed(3)} |`,
  );
  console.log(`| no KD | ${scratch.mean.toFixed(3)} ± ${scratch.std.toFixed(3)} |`);
  console.log(`| no KD − KD (paired) | ${diff.mean.toFixed(3)} ± ${diff.std.toFixed(3)} |`);
  console.log(`| teacher (${teacherRounds} rounds) | ${teacher.finalLoss.toFixed(3)} |`);
  if (values.json) {
    writeFileSync(
      values.json,
      `${JSON.stringify({ teacherRounds, studentRounds, teacherModel, studentModel, teacher: teacher.finalLoss, runs, kd, scratch, diff }, null, 2)}\n`,
    );
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
