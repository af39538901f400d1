/** Job checkpoints as flat vectors, through their config (architecture) and the model's layout. */
import path from 'node:path';
import type { CheckpointManifest } from '../../src/checkpoint/checkpoint.ts';
import { loadCheckpoint } from '../../src/checkpoint/modelCheckpoint.ts';
import { fromNamedTensors } from '../../src/core/layout/namedTensors.ts';
import { modelLayout } from '../../src/models/registry.ts';

/** The parameters (the live ones, with optimizer.ema). */
export async function checkpointParams(manifest: CheckpointManifest): Promise<Float32Array> {
  const loaded = await loadCheckpoint(path.dirname(manifest.path));
  return fromNamedTensors(loaded.tensors, modelLayout(loaded.config.model));
}

/** The iterate average (optimizer.ema) a job checkpoint holds, flat; undefined without one. */
export async function checkpointAverage(manifest: CheckpointManifest): Promise<Float32Array | undefined> {
  const loaded = await loadCheckpoint(path.dirname(manifest.path));
  return loaded.extra.get('optim.average')?.data;
}
