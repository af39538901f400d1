/**
 * Parameter count of a model spec without building the model (no tfjs): what admission needs to size a job before
 * anything is allocated. test/unit/models/parameterCount.test.ts checks it against the real layouts.
 */
import { IMAGE_SIZE, NUM_CLASSES } from './modelIo.ts';
import { transformerParameterCount } from './transformerSpec.ts';
import type { ModelSpec } from './types.ts';

/** conv 5×5 1→20, conv 5×5 20→50, dense 800→500, dense 500→10, each with its bias (cnn.ts). */
const CNN_PARAMETERS = 5 * 5 * 1 * 20 + 20 + 5 * 5 * 20 * 50 + 50 + 800 * 500 + 500 + 500 * 10 + 10;

/** Number of float32 parameters of `spec` (may exceed 2⁵³ only for absurd specs; admission bounds it first). */
export function parameterCount(spec: ModelSpec): number {
  if (spec.kind === 'cnn') return CNN_PARAMETERS;
  if (spec.kind === 'transformer') return transformerParameterCount(spec);
  const widths = [IMAGE_SIZE, ...spec.hidden, NUM_CLASSES];
  let total = 0;
  for (let i = 0; i + 1 < widths.length; i++) total += widths[i] * widths[i + 1] + widths[i + 1];
  return total;
}
