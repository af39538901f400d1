/**
 * A checkpoint is a directory of two files:
 *
 *   model.safetensors   the model's parameters as named tensors (one per layout layer, in layout order, tfjs
 *                       layouts: dense weights [in, out], conv filters HWIO), then any extra named tensors
 *                       (optimizer state, …); the safetensors `__metadata__` holds strings a job needs to resume
 *   config.json         what the tensors are: the architecture (the model spec), the vocabulary of a text model,
 *                       the parameter count, job id and round when a job wrote it, the names of the extra tensors,
 *                       and the size and sha256 of model.safetensors
 *
 * Saving is atomic: both files are written into a temp directory beside the target and fsynced, the temp
 * directory is fsynced and renamed to the target, and the parent directory is fsynced. A crash leaves the
 * previous checkpoint (if any) and at most a `.<name>.tmp-…` directory. Loading verifies size and sha256
 * before decoding anything.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { modelSchema } from '../config/jobSpec.ts';
import type { NamedTensors } from '../core/layout/namedTensors.ts';
import { parameterCount } from '../models/parameterCount.ts';
import type { ModelSpec } from '../models/types.ts';
import { fsyncDir, makeDirDurable, tempSibling, writeNewFileDurable } from './durableFiles.ts';
import { decodeSafetensors, encodeHeader } from './safetensors.ts';

export const CHECKPOINT_FORMAT = 'phalanx-checkpoint';
export const CHECKPOINT_VERSION = 1;
export const TENSORS_FILE = 'model.safetensors';
export const CONFIG_FILE = 'config.json';

/** An expected failure to read or write a checkpoint (missing, corrupt, mismatched): one line for the user. */
export class CheckpointError extends Error {
  constructor(message: string) {
    super(`checkpoint: ${message}`);
  }
}

export interface CheckpointConfig {
  format: typeof CHECKPOINT_FORMAT;
  version: typeof CHECKPOINT_VERSION;
  /** The architecture: the model spec the tensors belong to. */
  model: ModelSpec;
  /** Text models: the characters, token id = index (also in `model`; here so tools need not know the spec). */
  vocab?: string;
  /** Parameter count of `model` (the model tensors' total size). */
  parameters: number;
  jobId?: string;
  /** Rounds completed when a job wrote it. */
  round?: number;
  /** The divergence guard's verdict (absent: no verdict, counts as good). */
  good?: boolean;
  /** Milliseconds since the epoch. */
  createdAt: number;
  /** Names of the tensors that are not the model's (optimizer state, …). */
  extraTensors: string[];
  /** The tensor file (always TENSORS_FILE), its size and sha256. */
  file: typeof TENSORS_FILE;
  bytes: number;
  sha256: string;
}

export interface SaveCheckpointInput {
  config: { model: ModelSpec; jobId?: string; round?: number; good?: boolean };
  /** The model's tensors, one per layout layer, in layout order. */
  tensors: NamedTensors;
  /** More named tensors stored beside them (optimizer state, worker momentum, …). */
  extra?: NamedTensors;
  /** Strings stored as the safetensors `__metadata__`. */
  metadata?: Record<string, string>;
}

export interface LoadedCheckpoint {
  /** The checkpoint directory. */
  dir: string;
  config: CheckpointConfig;
  /** The model's tensors, in file (layout) order. */
  tensors: NamedTensors;
  extra: NamedTensors;
  metadata: Record<string, string>;
}

export interface SaveOptions {
  now?: () => number;
  /** The rename that publishes the checkpoint (tests make it fail as a crash would). */
  rename?: (from: string, to: string) => Promise<void>;
  /**
   * Called right before the rename that publishes the checkpoint; throwing stops the write there (a deposed
   * leader must not replace files on shared storage).
   */
  guard?: () => void;
}

const configSchema = z
  .object({
    format: z.literal(CHECKPOINT_FORMAT),
    version: z.literal(CHECKPOINT_VERSION),
    model: modelSchema,
    vocab: z.string().optional(),
    parameters: z.number().int().nonnegative(),
    jobId: z.string().optional(),
    round: z.number().int().nonnegative().optional(),
    good: z.boolean().optional(),
    createdAt: z.number(),
    extraTensors: z.array(z.string()),
    file: z.literal(TENSORS_FILE),
    bytes: z.number().int().nonnegative(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/, 'a sha256 in lower-case hex'),
  })
  .strict();

function totalSize(tensors: NamedTensors): number {
  let n = 0;
  for (const t of tensors.values()) n += t.data.length;
  return n;
}

/** Write a checkpoint directory at `dir` (replacing one already there) and return its config. */
export async function saveCheckpoint(
  dir: string,
  input: SaveCheckpointInput,
  opts: SaveOptions = {},
): Promise<CheckpointConfig> {
  const { model } = input.config;
  const extra = input.extra ?? new Map();
  const expected = parameterCount(model);
  if (totalSize(input.tensors) !== expected) {
    throw new CheckpointError(
      `the model tensors hold ${totalSize(input.tensors)} values; a ${model.kind} of this spec has ${expected}`,
    );
  }
  for (const name of extra.keys()) {
    if (input.tensors.has(name))
      throw new CheckpointError(`extra tensor '${name}' has a model tensor's name`);
  }
  const all = new Map([...input.tensors, ...extra]);
  const order = [...all.keys()];
  const records = Object.fromEntries(order.map((n) => [n, all.get(n)!.data]));
  const shapes = Object.fromEntries(order.map((n) => [n, all.get(n)!.shape]));
  let header: Buffer;
  try {
    ({ header } = encodeHeader(records, order, shapes, input.metadata));
  } catch (err) {
    throw new CheckpointError((err as Error).message);
  }
  const parts = [
    header,
    ...order.map((n) => new Uint8Array(records[n].buffer, records[n].byteOffset, records[n].byteLength)),
  ];
  const sha256 = parts.reduce((h, p) => h.update(p), createHash('sha256')).digest('hex');

  const final = path.resolve(dir);
  await makeDirDurable(path.dirname(final));
  const temp = tempSibling(final);
  await mkdir(temp);
  try {
    const bytes = await writeNewFileDurable(path.join(temp, TENSORS_FILE), parts);
    const config: CheckpointConfig = {
      format: CHECKPOINT_FORMAT,
      version: CHECKPOINT_VERSION,
      model,
      ...(model.kind === 'transformer' ? { vocab: model.vocab } : {}),
      parameters: expected,
      ...(input.config.jobId === undefined ? {} : { jobId: input.config.jobId }),
      ...(input.config.round === undefined ? {} : { round: input.config.round }),
      ...(input.config.good === undefined ? {} : { good: input.config.good }),
      createdAt: (opts.now ?? Date.now)(),
      extraTensors: [...extra.keys()],
      file: TENSORS_FILE,
      bytes,
      sha256,
    };
    await writeNewFileDurable(path.join(temp, CONFIG_FILE), [
      Buffer.from(`${JSON.stringify(config, null, 2)}\n`),
    ]);
    await fsyncDir(temp);
    opts.guard?.();
    await publish(temp, final, opts.rename ?? rename);
    await fsyncDir(path.dirname(final));
    return config;
  } catch (err) {
    await rm(temp, { recursive: true, force: true });
    throw err;
  }
}

/**
 * Rename the finished temp directory to `final`. A directory already there (the same round written again) is
 * first moved aside and removed afterwards; if the crash comes between the two renames, the aside copy is
 * what `restoreAside` (called by job checkpoint pruning) puts back.
 */
async function publish(temp: string, final: string, doRename: SaveOptions['rename'] & {}): Promise<void> {
  const existing = await stat(final).catch(() => undefined);
  if (existing === undefined) {
    await doRename(temp, final);
    return;
  }
  const aside = tempSibling(final, 'old');
  await rename(final, aside);
  try {
    await doRename(temp, final);
  } catch (err) {
    await rename(aside, final).catch(() => {});
    throw err;
  }
  await rm(aside, { recursive: true, force: true });
}

/** The checkpoint directory `target` names: the directory itself, or its config.json or model.safetensors. */
export async function checkpointDirOf(target: string): Promise<string> {
  const resolved = path.resolve(target);
  let info;
  try {
    info = await stat(resolved);
  } catch (err) {
    throw new CheckpointError(
      `cannot read ${resolved}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  if (info.isDirectory()) return resolved;
  const base = path.basename(resolved);
  if (base === CONFIG_FILE || base === TENSORS_FILE) return path.dirname(resolved);
  throw new CheckpointError(
    `${resolved} is not a checkpoint: give its directory (holding ${CONFIG_FILE} and ${TENSORS_FILE})`,
  );
}

/** Read and validate a checkpoint's config.json. */
export async function readCheckpointConfig(dir: string): Promise<CheckpointConfig> {
  const file = path.join(dir, CONFIG_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CheckpointError(
      code === 'ENOENT'
        ? `${dir} is not a checkpoint: it has no ${CONFIG_FILE}`
        : `cannot read ${file}: ${(err as Error).message}`,
    );
  }
  return parseCheckpointConfig(text, file);
}

/** Validate the text of a config.json (`file` names it in errors). */
export function parseCheckpointConfig(text: string, file: string): CheckpointConfig {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new CheckpointError(`${file} is not valid JSON: ${(err as Error).message}`);
  }
  const parsed = configSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new CheckpointError(`${file}: ${issue.path.join('.') || '(top level)'}: ${issue.message}`);
  }
  const config = parsed.data as CheckpointConfig;
  if (config.parameters !== parameterCount(config.model)) {
    throw new CheckpointError(
      `${file}: parameters is ${config.parameters} but a ${config.model.kind} of this spec has ${parameterCount(config.model)}`,
    );
  }
  return config;
}

/** Read, verify (size, sha256, tensor names and sizes against config.json) and decode a checkpoint. */
export async function loadCheckpoint(target: string): Promise<LoadedCheckpoint> {
  const dir = await checkpointDirOf(target);
  const config = await readCheckpointConfig(dir);
  const file = path.join(dir, config.file);
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    throw new CheckpointError(`cannot read ${file}: ${(err as Error).message}`);
  }
  return { dir, config, ...decodeCheckpointBytes(config, bytes, file) };
}

/**
 * The tensors of a checkpoint's model.safetensors bytes, after checking them against its config (size, sha256,
 * tensor names and sizes); `file` names them in errors.
 */
export function decodeCheckpointBytes(
  config: CheckpointConfig,
  bytes: Uint8Array,
  file: string,
): Pick<LoadedCheckpoint, 'tensors' | 'extra' | 'metadata'> {
  if (bytes.length !== config.bytes) {
    throw new CheckpointError(
      `${file} has ${bytes.length} bytes, ${CONFIG_FILE} says ${config.bytes} (truncated or replaced)`,
    );
  }
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  if (sha256 !== config.sha256) {
    throw new CheckpointError(
      `${file} is corrupt: its sha256 ${sha256} does not match ${CONFIG_FILE}'s ${config.sha256}`,
    );
  }
  let decoded;
  try {
    decoded = decodeSafetensors(bytes);
  } catch (err) {
    throw new CheckpointError(`${file}: ${(err as Error).message}`);
  }
  const extraNames = new Set(config.extraTensors);
  const tensors: NamedTensors = new Map();
  const extra: NamedTensors = new Map();
  for (const [name, data] of Object.entries(decoded.tensors)) {
    (extraNames.has(name) ? extra : tensors).set(name, { data, shape: decoded.shapes[name] });
  }
  const absent = config.extraTensors.filter((n) => !extra.has(n));
  if (absent.length > 0) throw new CheckpointError(`${file} lacks the extra tensors ${absent.join(', ')}`);
  if (totalSize(tensors) !== config.parameters) {
    throw new CheckpointError(
      `${file}: the model tensors hold ${totalSize(tensors)} values, ${CONFIG_FILE} says ${config.parameters}`,
    );
  }
  return { tensors, extra, metadata: decoded.metadata };
}
