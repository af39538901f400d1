/**
 * Runs on a worker thread: everything the coordinator needs from tfjs (parameter layout, initial parameters,
 * evaluation on the split `evaluation.split` names). Keeping tfjs off the main thread keeps the gRPC thread's heap
 * small — every V8 mark-compact that grpc-js's per-message buffers trigger costs in proportion to that heap
 * (bench:transport).
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { JobSpec } from '../config/jobSpec.ts';
import type { ModelSpec } from '../models/types.ts';
import { createTrainer } from '../models/trainer.ts';
import { loadTrainingLabels } from '../data/fashionMnist.ts';
import { loadJobData } from '../data/jobData.ts';
import { evaluationSplit, rankShard } from '../data/partition.ts';
import { ShardingError } from '../data/sharding.ts';
import { loadCheckpoint } from '../checkpoint/modelCheckpoint.ts';
import { fromNamedTensors } from '../core/layout/namedTensors.ts';
import { modelLayout } from '../models/registry.ts';
import {
  initialParametersLine,
  jobInitialParameters,
  mayStartFromTeacher,
  startsFromTeacher,
  type TeacherWeights,
} from '../models/studentInit.ts';

const { spec } = workerData as { spec: JobSpec };
const port = parentPort!;

/**
 * The job's teacher spec, with its weights only when the student starts from it (admission checked its sha256);
 * read only for a student that may start from a teacher.
 */
async function teacherOfShape(): Promise<{ spec?: ModelSpec; weights?: TeacherWeights }> {
  if (!spec.teacher || !mayStartFromTeacher(spec.model)) return {};
  const loaded = await loadCheckpoint(spec.teacher.checkpoint);
  if (!startsFromTeacher(spec.model, loaded.config.model)) return { spec: loaded.config.model };
  const weights = {
    spec: loaded.config.model,
    params: fromNamedTensors(loaded.tensors, modelLayout(loaded.config.model)),
  };
  return { spec: weights.spec, weights };
}

async function main(): Promise<void> {
  const trainer = await createTrainer(spec.model);
  // Only the split evaluation.split names is kept (the validation split is carved from the training set).
  const onValidation = spec.evaluation.split === 'validation';
  const text = spec.data.kind === 'text';
  const data = await loadJobData(spec, {
    maxTrain: onValidation && !text ? spec.data.maxTrain : 1,
    maxTest: onValidation && !text ? 1 : spec.data.maxTest,
  });
  const evaluated = evaluationSplit(data, spec);
  if (spec.data.shardBy === 'dirichlet') {
    // Refuse at start a job whose workers could not build their shards (they would stall it until it fails).
    const labels = onValidation
      ? data.train.labels
      : await loadTrainingLabels({ path: spec.data.path, maxTrain: spec.data.maxTrain });
    try {
      rankShard(labels, spec.data, spec.seed, spec.workers.max, 0);
    } catch (e) {
      if (!(e instanceof ShardingError)) throw e;
      port.postMessage({ type: 'refused', error: e.message });
      return;
    }
  }
  const teacher = await teacherOfShape();
  const start = jobInitialParameters(spec.model, spec.seed, trainer, teacher.weights);
  const params = start.params;
  const line = initialParametersLine(spec.model, start.from, teacher.spec);
  port.postMessage({ type: 'ready', layout: trainer.layout, params, line }, [params.buffer as ArrayBuffer]);
  port.on('message', (m: { type: 'evaluate'; id: number; params: Float32Array }) => {
    trainer.evaluate(m.params, evaluated, spec.evaluation.limit).then(
      (r) => port.postMessage({ type: 'evaluated', id: m.id, accuracy: r.accuracy, loss: r.loss }),
      (e: unknown) => port.postMessage({ type: 'evaluated', id: m.id, error: (e as Error).message }),
    );
  });
}

main().catch((e: unknown) => port.postMessage({ type: 'failed', error: (e as Error).stack ?? String(e) }));
