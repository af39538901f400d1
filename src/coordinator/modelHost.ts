/**
 * Builds what the round engine needs from the model side of a job spec: the parameter layout, deterministic
 * initial parameters, and test-set evaluation (the coordinator evaluates the authoritative parameters).
 */
import type { JobSpec } from '../config/jobSpec.ts';
import { createTrainer } from '../models/trainer.ts';
import { loadFashionMnist } from '../data/fashionMnist.ts';
import type { ModelHost } from './jobRuntime.ts';
import type { ParameterLayout } from '../core/layout/parameterLayout.ts';

export interface CoordinatorModelHost extends ModelHost {
  layout: ParameterLayout;
  initialParameters(seed: number): Float32Array;
}

export async function buildModelHost(spec: JobSpec): Promise<CoordinatorModelHost> {
  const trainer = await createTrainer(spec.model);
  const data = await loadFashionMnist({ path: spec.data.path, maxTrain: 1, maxTest: spec.data.maxTest });
  const limit = spec.evaluation.limit;
  return {
    layout: trainer.layout,
    initialParameters: (seed) => trainer.initialParameters(seed),
    evaluate: (params) => trainer.evaluate(params, data.test, limit),
  };
}
