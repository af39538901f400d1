/**
 * The teacher of the distillation benches: a model trained by simulate() (wasm) on the bench's common job
 * settings, saved as a checkpoint directory `<dir>/teacher` that students name in `teacher.checkpoint`.
 */
import path from 'node:path';
import { saveCheckpoint } from '../../src/checkpoint/modelCheckpoint.ts';
import { validateJobSpec, type JobSpec, type JobSpecInput } from '../../src/config/jobSpec.ts';
import { toNamedTensors } from '../../src/core/layout/namedTensors.ts';
import { modelLayout } from '../../src/models/registry.ts';
import { simulate } from '../../src/simulation/simulate.ts';

export interface BenchTeacher {
  spec: JobSpec;
  /** The checkpoint directory. */
  checkpoint: string;
  /** Held-out loss at the end of its training. */
  finalLoss: number;
}

export async function trainBenchTeacher(
  common: Partial<JobSpecInput>,
  model: JobSpecInput['model'],
  rounds: number,
  dir: string,
): Promise<BenchTeacher> {
  const spec = validateJobSpec({
    ...common,
    name: 'teacher',
    seed: 1,
    model,
    rounds,
    evaluation: { every: rounds },
  });
  const teacher = await simulate(spec, { backend: 'wasm' });
  const checkpoint = path.join(dir, 'teacher');
  await saveCheckpoint(checkpoint, {
    config: { model: spec.model },
    tensors: toNamedTensors(teacher.params, modelLayout(spec.model)),
  });
  console.log(`teacher (${rounds} rounds): ${teacher.finalLoss.toFixed(3)} nats/char held out`);
  return { spec, checkpoint, finalLoss: teacher.finalLoss };
}
