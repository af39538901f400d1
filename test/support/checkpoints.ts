/** The flat parameter vector of a job checkpoint, through its config (architecture) and the model's layout. */
import path from 'node:path';
import type { CheckpointManifest } from '../../src/checkpoint/checkpoint.ts';
import { loadCheckpoint } from '../../src/checkpoint/modelCheckpoint.ts';
import { fromNamedTensors } from '../../src/core/layout/namedTensors.ts';
import { modelLayout } from '../../src/models/registry.ts';

export async function checkpointParams(manifest: CheckpointManifest): Promise<Float32Array> {
  const loaded = await loadCheckpoint(path.dirname(manifest.path));
  return fromNamedTensors(loaded.tensors, modelLayout(loaded.config.model));
}
