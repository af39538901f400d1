/**
 * bench:students --students recursive: recursive (layer-tied, depth-wise LoRA) students of a 4-layer teacher
 * (docs/students.md "Recursive students"), experiments E1–E4 of the recursive-students issue plus one run with a
 * Byzantine worker. Every student is K = 2 blocks of the teacher's width under `cycle` (layers 0, 1, 0, 1), is
 * distilled through the coordinator (trainJob.ts; or simulate() with --engine simulate) with the bench's common
 * job (4 workers, median, Adam 3e-3, α 0.5, T 2) and starts where the job does (studentInit.ts): from
 * recursiveParametersFromTeacher by its recursion.init, or, for the scratch student (recursion.init scratch),
 * from its seeded initialisation. All choices below are fixed beforehand:
 *   - E1: full-rank (loraRank = dModel) students of every init reproduce the teacher's logits (max |Δlogit|).
 *   - E2: step-0 and final held-out loss for scratch and each init × loraRank {0, 8}.
 *   - E3: the stepwise rank-0 student (0.51× the teacher's parameters) against the scratch student of the same
 *     layout, same rounds, batches and KD loss: final test loss within 0.1 of the teacher, ≥ 0.05 better.
 *   - E4: stepwise, loraRank {0, 4, 8, 16}, judged on a validation split of the held-out text disjoint from
 *     the test sequences (text has no data.validation: the held-out sequences after the first maxTest).
 *   - Byzantine: the E3 student with 5 workers of which 1 runs ALIE, under the job spec's default rule (flag).
 */
import { validateJobSpec, type JobSpecInput } from '../../src/config/jobSpec.ts';
import { layerView } from '../../src/core/layout/parameterLayout.ts';
import { encodeText, loadText, sequenceSplit, splitHeldOut, type LoadedText } from '../../src/data/text.ts';
import { createOps } from '../../src/models/ops.ts';
import { parameterCount } from '../../src/models/parameterCount.ts';
import { recursiveParametersFromTeacher, type RecursiveSpec } from '../../src/models/recursiveTransformer.ts';
import { createModel } from '../../src/models/registry.ts';
import { tf } from '../../src/models/tf.ts';
import { createTrainer, type EvalSplit, type TfTrainer } from '../../src/models/trainer.ts';
import type { ModelSpec, TransformerSpec } from '../../src/models/types.ts';
import type { BenchTeacher } from './benchTeacher.ts';
import { seedStats, type SeedStats } from './seedStats.ts';
import { trainJob, type Engine } from './trainJob.ts';

type Init = 'stepwise' | 'average' | 'lower';
const INITS: Init[] = ['lower', 'stepwise', 'average'];
type Arm = Init | 'scratch';
/** E2's LoRA arm: rank 8 (0.69× the teacher's parameters at d 64). */
const E2_RANK = 8;
const E4_RANKS = [0, 4, 8, 16];
const BLOCKS = 2;
const BYZANTINE = { workers: 5, count: 1, attack: 'alie' } as const;

export interface RecursiveComparisonOptions {
  /** The bench's common job settings (data, optimizer, workers, aggregation, checkpoint). */
  common: Partial<JobSpecInput>;
  teacher: BenchTeacher;
  kd: { alpha: number; temperature: number };
  rounds: number;
  seeds: number[];
  engine: Engine;
}

const stats = (xs: number[]) => seedStats(xs, 'higher');
const show = (s: SeedStats) => `${s.mean.toFixed(3)} ± ${s.std.toFixed(3)} (worst ${s.worst.toFixed(3)})`;

/** A student's name: scratch, or init/rank. */
const arm = (init: Arm, rank: number) => (init === 'scratch' ? 'scratch' : `${init} r${rank}`);

export async function recursiveComparison(o: RecursiveComparisonOptions) {
  const teacherModel = o.teacher.spec.model as TransformerSpec;
  const seqLen = o.teacher.spec.data.seqLen ?? 32;
  const maxTest = o.teacher.spec.data.maxTest ?? 200;
  const splits = heldOutSplits(loadText(), teacherModel.vocab, seqLen, maxTest);
  const spec = (init: Arm, loraRank: number): RecursiveSpec => ({
    ...teacherModel,
    recursion: { blocks: BLOCKS, schedule: 'cycle', init, loraRank },
  });
  const converted = (init: Init, rank: number) =>
    recursiveParametersFromTeacher(spec(init, rank), o.teacher.params);
  const evaluate = evaluator();
  /** The rule a job spec gets when it names none. */
  const defaultRule = validateJobSpec({ model: teacherModel, data: o.teacher.spec.data }).aggregation.rule;

  // E1: full rank reproduces the teacher (conversion only; no training).
  const probe = { images: splits.test.images.subarray(0, 8 * seqLen), n: 8 };
  const teacherLogits = logitsOf(teacherModel, o.teacher.params, probe.images, probe.n);
  const e1 = INITS.map((init) => {
    const full = spec(init, teacherModel.dModel);
    const diff = maxAbsDiff(
      logitsOf(full, converted(init, teacherModel.dModel), probe.images, probe.n),
      teacherLogits,
    );
    return { init, loraRank: teacherModel.dModel, parameters: parameterCount(full), maxAbsLogitDiff: diff };
  });
  console.log(
    `\nE1: full-rank (loraRank ${teacherModel.dModel}) K = ${BLOCKS} students, max |Δlogit| vs the teacher over ${probe.n}×${seqLen} held-out tokens`,
  );
  for (const r of e1) console.log(`  ${r.init}: ${r.maxAbsLogitDiff.toExponential(2)}`);
  const e1Pass = e1.every((r) => r.maxAbsLogitDiff <= 1e-4);

  const teacherValidation = (await evaluate(teacherModel, o.teacher.params, splits.validation)).loss;
  const teacherTest = (await evaluate(teacherModel, o.teacher.params, splits.test)).loss;

  const arms: { init: Arm; rank: number }[] = [{ init: 'scratch', rank: 0 }];
  for (const init of INITS) for (const rank of [0, E2_RANK]) arms.push({ init, rank });
  for (const rank of E4_RANKS)
    if (!arms.some((a) => a.init === 'stepwise' && a.rank === rank)) arms.push({ init: 'stepwise', rank });

  const job = (name: string, model: ModelSpec, seed: number, extra: Partial<JobSpecInput> = {}) =>
    validateJobSpec({
      ...o.common,
      name,
      seed,
      model,
      rounds: o.rounds,
      evaluation: { every: o.rounds },
      teacher: { checkpoint: o.teacher.checkpoint, ...o.kd },
      ...extra,
    });

  interface Run {
    seed: number;
    arm: string;
    parameters: number;
    step0Test: number;
    test: number;
    validation: number;
  }
  const runs: Run[] = [];
  const byzantineRuns: { seed: number; test: number; byzantineInclusion: number; skippedRounds: number }[] =
    [];
  const converts = new Map<string, Float32Array>();
  for (const seed of o.seeds) {
    for (const a of arms) {
      const name = arm(a.init, a.rank);
      const s = job(name.replace(' ', '-'), spec(a.init, a.rank), seed);
      // Where the job starts (studentInit.ts), for the step-0 loss: the conversion, or the seed for scratch.
      let start: Float32Array;
      if (a.init === 'scratch') start = createModel(s.model).initialParameters(seed);
      else {
        if (!converts.has(name)) converts.set(name, converted(a.init, a.rank));
        start = converts.get(name)!;
      }
      const step0Test = (await evaluate(s.model, start, splits.test)).loss;
      const started = Date.now();
      const result = await trainJob(s, { engine: o.engine });
      const validation = (await evaluate(s.model, result.params, splits.validation)).loss;
      runs.push({
        seed,
        arm: name,
        parameters: parameterCount(s.model),
        step0Test,
        test: result.finalLoss,
        validation,
      });
      console.log(
        `seed ${seed} ${name}: step 0 ${step0Test.toFixed(3)}, after ${o.rounds} rounds ${result.finalLoss.toFixed(3)} test, ${validation.toFixed(3)} validation nats/char (${((Date.now() - started) / 1000).toFixed(0)} s)`,
      );
    }
    // The E3 student with a Byzantine worker under the default aggregation rule.
    const byz = job('stepwise-r0-byzantine', spec('stepwise', 0), seed, {
      workers: { min: BYZANTINE.workers, max: BYZANTINE.workers },
      aggregation: { rule: defaultRule, f: BYZANTINE.count },
    });
    const result = await trainJob(byz, { engine: o.engine, byzantine: BYZANTINE });
    byzantineRuns.push({
      seed,
      test: result.finalLoss,
      byzantineInclusion: result.byzantineInclusion,
      skippedRounds: result.skippedRounds,
    });
    console.log(
      `seed ${seed} stepwise r0, ${BYZANTINE.count} of ${BYZANTINE.workers} workers ${BYZANTINE.attack}, rule ${byz.aggregation.rule}: ${result.finalLoss.toFixed(3)} test (Byzantine vectors included in ${(100 * result.byzantineInclusion).toFixed(0)} % of rounds)`,
    );
  }

  const of = (name: string, key: 'step0Test' | 'test' | 'validation') =>
    stats(runs.filter((r) => r.arm === name).map((r) => r[key]));
  const paired = (a: string, b: string, key: 'test' | 'validation') =>
    stats(
      o.seeds.map((seed) => {
        const x = runs.find((r) => r.seed === seed && r.arm === a)!;
        const y = runs.find((r) => r.seed === seed && r.arm === b)!;
        return x[key] - y[key];
      }),
    );
  const teacherParameters = parameterCount(teacherModel);
  const table = arms.map((a) => {
    const name = arm(a.init, a.rank);
    const parameters = runs.find((r) => r.arm === name)!.parameters;
    return {
      arm: name,
      parameters,
      step0Test: of(name, 'step0Test'),
      test: of(name, 'test'),
      validation: of(name, 'validation'),
    };
  });

  console.log(
    `\nE2: K = ${BLOCKS} of ${teacherModel.layers} students of the teacher d${teacherModel.dModel} L${teacherModel.layers} ffn${teacherModel.ffn} (${teacherParameters.toLocaleString('en')} parameters, ${teacherTest.toFixed(3)} test, ${teacherValidation.toFixed(3)} validation), distilled ${o.rounds} rounds, seeds ${o.seeds.join(', ')}; held-out nats/char\n`,
  );
  console.log(
    '| student | parameters (× teacher) | step 0 (test) | after training (test) | after training (validation) |',
  );
  console.log('|---|---|---|---|---|');
  for (const t of table)
    console.log(
      `| ${t.arm} | ${t.parameters.toLocaleString('en')} (${(t.parameters / teacherParameters).toFixed(2)}×) | ${show(t.step0Test)} | ${show(t.test)} | ${show(t.validation)} |`,
    );

  const e3Student = 'stepwise r0';
  const e3Gap = stats(runs.filter((r) => r.arm === e3Student).map((r) => r.test - teacherTest));
  const e3VsScratch = paired(e3Student, 'scratch', 'test');
  const e3 = {
    student: e3Student,
    gapToTeacher: e3Gap,
    minusScratch: e3VsScratch,
    withinTeacher: e3Gap.worst <= 0.1,
    withinTeacherOnMean: e3Gap.mean <= 0.1,
    betterThanScratch: -e3VsScratch.mean >= 0.05,
    betterThanScratchEverySeed: -e3VsScratch.worst >= 0.05,
  };
  console.log(
    `\nE3: ${e3Student} − teacher ${show(e3Gap)} (bar ≤ 0.1: ${e3.withinTeacherOnMean ? 'yes' : 'NO'} on the mean, ${e3.withinTeacher ? 'yes' : 'NO'} on the worst seed); ${e3Student} − scratch, paired ${show(e3VsScratch)} (bar ≤ −0.05: ${e3.betterThanScratch ? 'yes' : 'NO'} on the mean, ${e3.betterThanScratchEverySeed ? 'yes' : 'NO'} on every seed)`,
  );

  const e4Means = E4_RANKS.map((rank) => of(arm('stepwise', rank), 'validation').mean);
  const monotone = e4Means.every((v, i) => i === 0 || v <= e4Means[i - 1]);
  const rank0 = of(arm('stepwise', 0), 'validation').mean;
  const rank8 = of(arm('stepwise', 8), 'validation').mean;
  const closed = (rank0 - rank8) / (rank0 - teacherValidation);
  const e4 = {
    ranks: E4_RANKS,
    validationMeans: e4Means,
    monotone,
    rank8ClosesOfRank0Gap: closed,
    closesQuarter: closed >= 0.25,
  };
  console.log(
    `E4: stepwise, validation nats/char by rank ${E4_RANKS.map((r, i) => `${r}: ${e4Means[i].toFixed(3)}`).join(', ')}; monotone: ${monotone ? 'yes' : 'NO'}; rank 8 closes ${(100 * closed).toFixed(0)} % of rank 0's gap to the teacher (bar ≥ 25 %: ${e4.closesQuarter ? 'yes' : 'NO'})`,
  );
  const byzantine = stats(byzantineRuns.map((r) => r.test));
  const byzantineMinusClean = stats(
    byzantineRuns.map((b) => b.test - runs.find((r) => r.seed === b.seed && r.arm === e3Student)!.test),
  );
  console.log(
    `Byzantine: ${e3Student}, ${BYZANTINE.count} of ${BYZANTINE.workers} workers ${BYZANTINE.attack}, default rule: ${show(byzantine)} test; minus the clean run (4 workers, median), paired ${show(byzantineMinusClean)}`,
  );
  console.log(`E1: max |Δlogit| ≤ 1e-4 for every init: ${e1Pass ? 'yes' : 'NO'}`);

  return {
    recursiveTeacherModel: teacherModel,
    recursiveTeacher: { parameters: teacherParameters, test: teacherTest, validation: teacherValidation },
    validationSplit: `held-out text sequences ${maxTest}…${maxTest + splits.validation.count - 1} (test: 0…${maxTest - 1})`,
    recursiveBlocks: BLOCKS,
    e1: { runs: e1, pass: e1Pass },
    recursiveRuns: runs,
    recursiveTable: table,
    e3,
    e4,
    byzantine: {
      workers: BYZANTINE.workers,
      byzantine: BYZANTINE.count,
      attack: BYZANTINE.attack,
      rule: defaultRule,
      runs: byzantineRuns,
      test: byzantine,
      minusClean: byzantineMinusClean,
    },
  };
}

/**
 * The held-out text's sequences: the first `maxTest` are the test split every job evaluates; the next ones (at
 * most as many) are the validation split E4 is judged on. Neither is trained on.
 */
function heldOutSplits(text: LoadedText, vocab: string, seqLen: number, maxTest: number) {
  const { heldOut } = splitHeldOut(encodeText(text.text, vocab));
  const test = sequenceSplit(heldOut, seqLen, maxTest);
  const validation = sequenceSplit(heldOut.subarray(maxTest * seqLen), seqLen, maxTest);
  return { test, validation };
}

/** Held-out loss of any parameters, one trainer per model spec. */
function evaluator() {
  const trainers = new Map<string, TfTrainer>();
  return async (model: ModelSpec, params: Float32Array, split: EvalSplit) => {
    const key = JSON.stringify(model);
    let trainer = trainers.get(key);
    if (trainer === undefined) {
      trainer = await createTrainer(model);
      trainers.set(key, trainer);
    }
    return trainer.evaluate(params, split);
  };
}

function logitsOf(model: ModelSpec, params: Float32Array, ids: Float32Array, n: number): Float32Array {
  const m = createModel(model);
  const ops = createOps({ conv: 'builtin', matMul: 'builtin' });
  return tf.tidy(() => {
    const p = m.layout.layers.map((slot) => tf.tensor(layerView(params, slot), slot.shape));
    return m.apply(p, m.input(ids, n), ops).dataSync() as Float32Array;
  });
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`logits of ${a.length} and ${b.length} numbers`);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}
