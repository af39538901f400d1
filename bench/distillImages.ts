/**
 * Fashion-MNIST distillation
 * (npm run bench:distill-images [-- --seeds 3] [--json FILE] [--quick] [--engine coordinator|simulate]).
 *
 * A CNN teacher (431,080 parameters) is trained on a training subset and saved as a checkpoint; then, for each seed
 * and each student size, an MLP student is trained on the same examples, rounds and optimizer twice: with
 * knowledge distillation (α·T²·KL(teacher ‖ student) + (1 − α)·CE) and without (CE only, no teacher). Every run,
 * the teacher's included, is a job through the gRPC coordinator (support/trainJob.ts: launch(), 4 worker
 * processes over loopback, final parameters from the job's last checkpoint), the median rule, wasm;
 * `--engine simulate` runs the same jobs through simulate(). Reported: test accuracy on the test set, mean ± std over seeds, the worst seed, and the
 * paired difference KD − CE per seed. α and T are fixed beforehand (α 0.5, T 2, the values of the text benches),
 * not tuned on these results.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { validateJobSpec, type JobSpecInput } from '../src/config/jobSpec.ts';
import { SYSTEM_DATA_DIR } from '../src/data/fashionMnist.ts';
import { parameterCount } from '../src/models/parameterCount.ts';
import { trainBenchTeacher } from './support/benchTeacher.ts';
import { seedStats, type SeedStats } from './support/seedStats.ts';
import { ENGINES, trainJob, type Engine } from './support/trainJob.ts';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    seeds: { type: 'string', default: '3' },
    json: { type: 'string' },
    /** Override both round counts (a smoke run). */
    rounds: { type: 'string' },
    /** coordinator: every job through launch(); simulate: in one process. */
    engine: { type: 'string', default: 'coordinator' },
  },
});
const engine = values.engine as Engine;
if (!ENGINES.includes(engine))
  throw new Error(`--engine: unknown '${values.engine}' (${ENGINES.join(', ')})`);
const quick = values.quick;
const teacherRounds = values.rounds ? Number(values.rounds) : quick ? 200 : 500;
const studentRounds = values.rounds ? Number(values.rounds) : quick ? 200 : 400;
const seeds = Array.from({ length: Number(values.seeds) }, (_, i) => 21 + i);
const jsonPath =
  values.json ??
  `bench/results/distill-images${quick ? '-quick' : ''}${engine === 'simulate' ? '-simulate' : ''}.json`;
const kd = { alpha: 0.5, temperature: 2 };
// Where the images come from (src/data/fashionMnist.ts): the Debian dataset when installed, else the bundled subset.
const testSet = existsSync(SYSTEM_DATA_DIR)
  ? '10k test images (Debian dataset-fashion-mnist)'
  : '2k test images (the bundled subset)';

/** Shared by teacher and students: 5,000 training examples, the full test set, 4 workers, the median rule. */
const common = {
  data: { batchSize: 32, maxTrain: 5000 },
  optimizer: { kind: 'sgd', lr: 0.1, momentum: 0.9 },
  workers: { min: 4, max: 4 },
  aggregation: { rule: 'median', f: 1 },
  checkpoint: { every: 0 },
} as const satisfies Partial<JobSpecInput>;
const teacherModel = { kind: 'cnn' } as const;
const studentModels: { label: string; model: JobSpecInput['model'] }[] = [
  { label: 'MLP 784-16-10', model: { kind: 'mlp', hidden: [16] } },
  { label: 'MLP 784-64-10', model: { kind: 'mlp', hidden: [64] } },
];

/** Accuracies: the smallest seed is the worst. */
const stats = (xs: number[]) => seedStats(xs, 'lower');
const pct = (x: number) => (100 * x).toFixed(2);
const show = (s: SeedStats) => `${pct(s.mean)} ± ${pct(s.std)} (worst ${pct(s.worst)})`;

const started = Date.now();
const dir = mkdtempSync(path.join(os.tmpdir(), 'phalanx-distill-images-'));
try {
  const teacher = await trainBenchTeacher(common, teacherModel, teacherRounds, dir, 'accuracy', engine);
  const student = (name: string, model: JobSpecInput['model'], seed: number, withKd: boolean) =>
    validateJobSpec({
      ...common,
      name,
      seed,
      model,
      rounds: studentRounds,
      evaluation: { every: studentRounds },
      ...(withKd ? { teacher: { checkpoint: teacher.checkpoint, ...kd } } : {}),
    });
  const rows = [];
  for (const { label, model } of studentModels) {
    const runs: { seed: number; kd: number; ce: number }[] = [];
    for (const seed of seeds) {
      const withKd = await trainJob(student('kd', model, seed, true), { engine });
      const ce = await trainJob(student('ce', model, seed, false), { engine });
      runs.push({ seed, kd: withKd.finalAccuracy, ce: ce.finalAccuracy });
      console.log(
        `${label}, seed ${seed}: KD ${pct(withKd.finalAccuracy)} %, CE only ${pct(ce.finalAccuracy)} %`,
      );
    }
    const spec = student('kd', model, seeds[0], false).model;
    rows.push({
      label,
      model: spec,
      parameters: parameterCount(spec),
      runs,
      kd: stats(runs.map((r) => r.kd)),
      ce: stats(runs.map((r) => r.ce)),
      kdMinusCe: stats(runs.map((r) => r.kd - r.ce)),
    });
  }
  console.log(
    `\nFashion-MNIST, ${common.data.maxTrain} training examples, students trained ${studentRounds} rounds (KD: α ${kd.alpha}, T ${kd.temperature}), seeds ${seeds.join(', ')}; test accuracy (%), ${testSet}\n`,
  );
  console.log('| model | parameters | with KD | CE only | KD − CE, paired by seed |');
  console.log('|---|---|---|---|---|');
  console.log(
    `| teacher CNN (${teacherRounds} rounds) | ${parameterCount(teacher.spec.model).toLocaleString('en')} | ${pct(teacher.finalAccuracy)} | | |`,
  );
  for (const r of rows) {
    const d = r.kdMinusCe;
    console.log(
      `| ${r.label} | ${r.parameters.toLocaleString('en')} | ${show(r.kd)} | ${show(r.ce)} | ${pct(d.mean)} ± ${pct(d.std)} (worst ${pct(d.worst)}) |`,
    );
  }
  console.log(`(${((Date.now() - started) / 60_000).toFixed(1)} min)`);
  mkdirSync(path.dirname(jsonPath), { recursive: true });
  writeFileSync(
    jsonPath,
    `${JSON.stringify(
      {
        command: `npm run bench:distill-images --${quick ? ' --quick' : ''} --seeds ${seeds.length}${engine === 'simulate' ? ' --engine simulate' : ''}`,
        engine,
        quick,
        teacherRounds,
        studentRounds,
        seeds,
        common,
        testSet,
        kd,
        backend: 'wasm',
        workers: common.workers.max,
        teacher: {
          model: teacher.spec.model,
          parameters: parameterCount(teacher.spec.model),
          accuracy: teacher.finalAccuracy,
        },
        students: rows,
      },
      null,
      2,
    )}\n`,
  );
  console.log(`wrote ${jsonPath}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
