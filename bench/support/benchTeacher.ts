/**
 * The teacher of the distillation benches: a model trained on the bench's common job settings (text or images)
 * by simulate() or through the coordinator (trainJob.ts; wasm either way), saved as a checkpoint directory
 * `<dir>/teacher` that students name in `teacher.checkpoint`.
 */
import path from 'node:path';
import { saveCheckpoint } from '../../src/checkpoint/modelCheckpoint.ts';
import { validateJobSpec, type JobSpec, type JobSpecInput } from '../../src/config/jobSpec.ts';
import { toNamedTensors } from '../../src/core/layout/namedTensors.ts';
import { modelLayout } from '../../src/models/registry.ts';
import { trainJob, type Engine } from './trainJob.ts';

/** The job settings every run of the distillation benches shares: KJV characters, 4 workers, the median rule. */
export const DISTILL_BENCH_JOB = {
  data: { kind: 'text', seqLen: 32, batchSize: 8, maxTest: 200 },
  optimizer: { kind: 'adam', lr: 3e-3 },
  workers: { min: 4, max: 4 },
  aggregation: { rule: 'median', f: 1 },
  checkpoint: { every: 0 },
} as const satisfies Partial<JobSpecInput>;

/** The benches' teacher: a 2-layer character transformer. */
export const BENCH_TEACHER_MODEL = {
  kind: 'transformer',
  dModel: 64,
  layers: 2,
  heads: 4,
  ffn: 128,
  context: 32,
} as const;

/**
 * The recursive students' teacher: 4 layers, so a student can tie them into K = 2 blocks (bench:students
 * --students recursive). Width 32 (2 heads) and ffn 128: the smallest that still learns words, so that the ten
 * students × three seeds of that comparison fit in well under an hour on wasm.
 */
export const BENCH_TEACHER_4_LAYERS = {
  kind: 'transformer',
  dModel: 32,
  layers: 4,
  heads: 2,
  ffn: 128,
  context: 32,
} as const;

export interface BenchTeacher {
  spec: JobSpec;
  /** Its trained parameters, flat in its layout order. */
  params: Float32Array;
  /** The checkpoint directory. */
  checkpoint: string;
  /** Held-out loss at the end of its training. */
  finalLoss: number;
  /** Held-out accuracy at the end of its training (image models). */
  finalAccuracy: number;
}

export async function trainBenchTeacher(
  common: Partial<JobSpecInput>,
  model: JobSpecInput['model'],
  rounds: number,
  dir: string,
  report: 'nats/char' | 'accuracy' = 'nats/char',
  engine: Engine = 'simulate',
): Promise<BenchTeacher> {
  const spec = validateJobSpec({
    ...common,
    name: 'teacher',
    seed: 1,
    model,
    rounds,
    evaluation: { every: rounds },
  });
  const teacher = await trainJob(spec, { engine });
  const checkpoint = path.join(dir, 'teacher');
  await saveCheckpoint(checkpoint, {
    config: { model: spec.model },
    tensors: toNamedTensors(teacher.params, modelLayout(spec.model)),
  });
  console.log(
    report === 'accuracy'
      ? `teacher (${rounds} rounds): ${(100 * teacher.finalAccuracy).toFixed(2)} % held out`
      : `teacher (${rounds} rounds): ${teacher.finalLoss.toFixed(3)} nats/char held out`,
  );
  return {
    spec,
    params: teacher.params,
    checkpoint,
    finalLoss: teacher.finalLoss,
    finalAccuracy: teacher.finalAccuracy,
  };
}
