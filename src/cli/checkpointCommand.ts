/**
 * `phalanx checkpoint ls | inspect | export`: the checkpoints on disk, one checkpoint's config and tensors, and a
 * checkpoint as one safetensors file in our layout or PyTorch's. Expected failures (missing, corrupt, not a
 * checkpoint) are CheckpointErrors: one line, exit 1.
 */
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import {
  CheckpointError,
  CONFIG_FILE,
  loadCheckpoint,
  readCheckpointConfig,
  saveCheckpoint,
  TENSORS_FILE,
  type CheckpointConfig,
} from '../checkpoint/modelCheckpoint.ts';
import { optimizerStateOf } from '../checkpoint/jobState.ts';
import { toPyTorch } from '../checkpoint/pytorchLayout.ts';
import { readPyTorchTensors, readTensorFile, writeTensorFile } from '../checkpoint/tensorFiles.ts';
import { l2Norm, shapeText, toNamedTensors, type NamedTensors } from '../core/layout/namedTensors.ts';
import { averageOf } from '../core/optim/parameterAverage.ts';
import type { ModelSpec } from '../models/types.ts';
import { moeLabel } from '../models/moeSpec.ts';

/** Directories below the root searched for checkpoints (job dirs sit at depth 2, under a spec's sub-dirs deeper). */
const MAX_DEPTH = 8;

export interface CheckpointListing {
  /** The checkpoint directory, relative to the listed root. */
  path: string;
  config?: CheckpointConfig;
  /** Why config.json could not be used. */
  error?: string;
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  for (; v >= 1024 && u < units.length - 1; u++) v /= 1024;
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}

/** A short description of an architecture: `mlp 784-128-10`, `cnn`, `transformer d64 L2 H4 ffn256 ctx64 V65`. */
export function describeModel(spec: ModelSpec): string {
  if (spec.kind === 'mlp') return `mlp 784-${[...spec.hidden, 10].join('-')}`;
  if (spec.kind === 'cnn') return 'cnn';
  const base = `transformer d${spec.dModel} L${spec.layers} H${spec.heads} ffn${spec.ffn} ctx${spec.context} V${spec.vocab.length}`;
  const r = spec.recursion;
  return r === undefined
    ? `${base}${moeLabel(spec.moe)}`
    : `${base} recursive K${r.blocks} ${r.schedule} ${r.init} r${r.loraRank}`;
}

/** Every checkpoint directory (one holding config.json) below `root`, sorted by path. */
export async function findCheckpoints(root: string): Promise<CheckpointListing[]> {
  const info = await stat(root).catch(() => undefined);
  if (!info?.isDirectory()) throw new CheckpointError(`${root}: no such directory`);
  const found: CheckpointListing[] = [];
  const walk = async (dir: string, depth: number): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true });
    if (entries.some((e) => e.isFile() && e.name === CONFIG_FILE)) {
      const rel = path.relative(root, dir) || '.';
      try {
        found.push({ path: rel, config: await readCheckpointConfig(dir) });
      } catch (err) {
        found.push({ path: rel, error: (err as Error).message });
      }
      return;
    }
    if (depth >= MAX_DEPTH) return;
    for (const e of entries) {
      // Dot-directories are temp copies of interrupted writes.
      if (e.isDirectory() && !e.name.startsWith('.')) await walk(path.join(dir, e.name), depth + 1);
    }
  };
  await walk(root, 0);
  return found.sort((a, b) => a.path.localeCompare(b.path, 'en', { numeric: true }));
}

export async function listCommand(root: string, json: boolean): Promise<void> {
  const found = await findCheckpoints(path.resolve(root));
  if (json) {
    console.log(JSON.stringify(found, null, 2));
    return;
  }
  if (found.length === 0) {
    console.log(`no checkpoints under ${root}`);
    return;
  }
  const rows = found.map((f) =>
    f.config
      ? [
          f.path,
          f.config.jobId ?? '-',
          f.config.round === undefined ? '-' : String(f.config.round),
          describeModel(f.config.model),
          formatBytes(f.config.bytes),
          new Date(f.config.createdAt).toISOString().replace(/\.\d+Z$/, 'Z'),
        ]
      : [f.path, '-', '-', `unreadable: ${f.error}`, '-', '-'],
  );
  printTable(['PATH', 'JOB', 'ROUND', 'MODEL', 'SIZE', 'CREATED'], rows, [2, 4]);
}

function printTable(header: string[], rows: string[][], rightAligned: number[] = []): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) =>
        i === cells.length - 1 ? c : rightAligned.includes(i) ? c.padStart(widths[i]) : c.padEnd(widths[i]),
      )
      .join('  ');
  console.log(line(header));
  for (const r of rows) console.log(line(r));
}

interface TensorRow {
  name: string;
  shape: number[];
  dtype: 'F32';
  norm: number;
  extra: boolean;
}

function tensorRows(tensors: NamedTensors, extra = false): TensorRow[] {
  return [...tensors].map(([name, t]) => ({
    name,
    shape: t.shape,
    dtype: 'F32',
    norm: l2Norm(t.data),
    extra,
  }));
}

/**
 * A checkpoint (its directory, config.json or model.safetensors: verified against the checksum) or a bare
 * safetensors file (an export, a PyTorch state_dict: nothing to verify against).
 */
export async function inspectCommand(target: string, json: boolean): Promise<void> {
  const resolved = path.resolve(target);
  const info = await stat(resolved).catch(() => undefined);
  if (!info) throw new CheckpointError(`${resolved}: no such file or directory`);
  const base = path.basename(resolved);
  const bare = info.isFile() && base !== CONFIG_FILE && base !== TENSORS_FILE;
  let config: CheckpointConfig | undefined;
  let rows: TensorRow[];
  let metadata: Record<string, string>;
  if (bare) {
    const file = await readTensorFile(resolved);
    rows = tensorRows(file.tensors);
    metadata = file.metadata;
  } else {
    const loaded = await loadCheckpoint(resolved);
    config = loaded.config;
    rows = [...tensorRows(loaded.tensors), ...tensorRows(loaded.extra, true)];
    metadata = loaded.metadata;
  }
  if (json) {
    console.log(JSON.stringify({ path: resolved, config: config ?? null, metadata, tensors: rows }, null, 2));
    return;
  }
  if (config) {
    const fields: [string, string][] = [
      ['path', resolved],
      ['model', describeModel(config.model)],
      ['spec', JSON.stringify(config.model)],
      ['parameters', config.parameters.toLocaleString('en')],
      ['job', config.jobId ?? '-'],
      ['round', config.round === undefined ? '-' : String(config.round)],
      ['good', config.good === undefined ? '-' : String(config.good)],
      ['created', new Date(config.createdAt).toISOString()],
      ['file', `${config.file}, ${formatBytes(config.bytes)}, sha256 ${config.sha256} (verified)`],
    ];
    for (const [k, v] of fields) console.log(`${k.padEnd(11)}${v}`);
  } else {
    console.log(`path       ${resolved} (a bare safetensors file: no config.json, no checksum to verify)`);
  }
  const keys = Object.keys(metadata);
  if (keys.length > 0) {
    console.log(`metadata   ${keys.map((k) => `${k} (${metadata[k].length} chars)`).join(', ')}`);
  }
  console.log('');
  printTable(
    ['NAME', 'SHAPE', 'DTYPE', 'NORM'],
    rows.map((r) => [
      r.extra ? `${r.name} (extra)` : r.name,
      shapeText(r.shape),
      r.dtype,
      r.norm.toPrecision(6),
    ]),
    [3],
  );
}

/**
 * The model tensors of a checkpoint as one safetensors file: ours (names and layouts as in the checkpoint, the
 * config in the metadata as `phalanx.config`) or PyTorch's (state_dict names and layouts, metadata format=pt).
 * `weights: 'delivered'` takes the iterate average of a job trained with optimizer.ema (the model it evaluated
 * and reported), else the live parameters; 'live' always the live ones. Optimizer state is not exported.
 */
export async function exportCommand(
  target: string,
  out: string,
  format: 'safetensors' | 'pytorch',
  weights: 'delivered' | 'live' = 'delivered',
): Promise<void> {
  const loaded = await loadCheckpoint(target);
  const { config } = loaded;
  const average =
    weights === 'delivered' ? averageOf(optimizerStateOf(loaded.extra, loaded.metadata)) : undefined;
  // The model registry loads tfjs: only when there is an average to lay out (`phalanx --version` stays light).
  const layoutOf = async () => (await import('../models/registry.ts')).modelLayout(config.model);
  const model = average ? toNamedTensors(average, await layoutOf()) : loaded.tensors;
  const tensors = format === 'pytorch' ? toPyTorch(config.model.kind, model) : model;
  const about = {
    format: config.format,
    version: config.version,
    model: config.model,
    ...(config.vocab === undefined ? {} : { vocab: config.vocab }),
    parameters: config.parameters,
    ...(config.jobId === undefined ? {} : { jobId: config.jobId }),
    ...(config.round === undefined ? {} : { round: config.round }),
  };
  const metadata: Record<string, string> = {
    'phalanx.config': JSON.stringify({ ...about, weights: average ? 'iterate average' : 'live' }),
  };
  if (format === 'pytorch') metadata['format'] = 'pt';
  const file = path.resolve(out);
  let bytes: number;
  try {
    bytes = await writeTensorFile(file, tensors, metadata);
  } catch (err) {
    throw new CheckpointError(
      `cannot write ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  console.log(
    `phalanx: wrote ${file} (${tensors.size} tensors, ${config.parameters.toLocaleString('en')} parameters, ${format === 'pytorch' ? 'PyTorch layout' : 'our layout'}, ${formatBytes(bytes)})` +
      (average ? ': the iterate average (optimizer.ema; --weights live for the live parameters)' : ''),
  );
}

/**
 * A PyTorch state_dict (safetensors) of the architecture `model` as our checkpoint directory `out`: what a teacher
 * trained elsewhere needs to be used here. The model's layout comes from the model registry (tfjs loads).
 */
export async function importCommand(file: string, model: ModelSpec, out: string): Promise<void> {
  const { modelLayout } = await import('../models/registry.ts');
  const tensors = await readPyTorchTensors(path.resolve(file), model, modelLayout(model));
  const config = await saveCheckpoint(out, { config: { model }, tensors });
  console.log(
    `phalanx: wrote checkpoint ${path.resolve(out)} (${describeModel(model)}, ${config.parameters.toLocaleString('en')} parameters)`,
  );
}
