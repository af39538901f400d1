/**
 * Bare safetensors files, without a config.json: what `phalanx checkpoint export` writes and what a PyTorch
 * state_dict saved elsewhere is (see pytorchLayout.ts for its layout).
 */
import { readFile } from 'node:fs/promises';
import type { NamedTensors } from '../core/layout/namedTensors.ts';
import type { ParameterLayout } from '../core/layout/parameterLayout.ts';
import type { ModelSpec } from '../models/types.ts';
import { writeFileAtomic } from './durableFiles.ts';
import { CheckpointError } from './modelCheckpoint.ts';
import { fromPyTorch } from './pytorchLayout.ts';
import { decodeSafetensors, encodeHeader } from './safetensors.ts';

export interface TensorFile {
  tensors: NamedTensors;
  metadata: Record<string, string>;
}

export async function readTensorFile(file: string): Promise<TensorFile> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    throw new CheckpointError(
      `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  try {
    const decoded = decodeSafetensors(bytes);
    return {
      tensors: new Map(
        Object.entries(decoded.tensors).map(([n, data]) => [n, { data, shape: decoded.shapes[n] }]),
      ),
      metadata: decoded.metadata,
    };
  } catch (err) {
    throw new CheckpointError(`${file}: ${(err as Error).message}`);
  }
}

/** Write tensors (in map order) to one safetensors file atomically; returns its size in bytes. */
export async function writeTensorFile(
  file: string,
  tensors: NamedTensors,
  metadata: Record<string, string> = {},
): Promise<number> {
  const order = [...tensors.keys()];
  const records = Object.fromEntries(order.map((n) => [n, tensors.get(n)!.data]));
  const shapes = Object.fromEntries(order.map((n) => [n, tensors.get(n)!.shape]));
  const { header } = encodeHeader(records, order, shapes, metadata);
  return writeFileAtomic(file, [
    header,
    ...order.map((n) => new Uint8Array(records[n].buffer, records[n].byteOffset, records[n].byteLength)),
  ]);
}

/** Our named tensors from a PyTorch state_dict saved as safetensors, for the model `spec` with `layout`. */
export async function readPyTorchTensors(
  file: string,
  spec: ModelSpec,
  layout: ParameterLayout,
): Promise<NamedTensors> {
  const { tensors } = await readTensorFile(file);
  try {
    return fromPyTorch(spec.kind, layout, tensors);
  } catch (err) {
    throw new CheckpointError(`${file}: ${(err as Error).message}`);
  }
}
