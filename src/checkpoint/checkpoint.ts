/**
 * Job checkpoints on disk: one checkpoint directory (modelCheckpoint.ts: model.safetensors + config.json) per
 * saved round, under `<dir>/<jobId>/round-<round, 6 digits>/`. What the state store keeps for a job is a small
 * manifest (CheckpointManifest) naming the tensor file with its size and sha256.
 *
 * Writes are atomic (see saveCheckpoint): a crash leaves at most a temp directory behind, which the next write of
 * the job removes; earlier checkpoints stay valid. Reads verify size and sha256 before decoding.
 *
 * A checkpoint may be marked good or not (the divergence guard's verdict on its state, src/core/round/
 * divergenceGuard.ts); the mark is in its config.json, so a rollback finds the newest good one by reading the
 * small JSON files only (newestGoodCheckpoint), and pruning keeps it.
 *
 * Checkpoints of the earlier format (`round-<n>.safetensors` with a flat `params` tensor and a
 * `round-<n>.json` manifest beside it) are still listed, read and pruned.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { NamedTensors } from '../core/layout/namedTensors.ts';
import type { ModelSpec } from '../models/types.ts';
import {
  CheckpointError,
  CONFIG_FILE,
  readCheckpointConfig,
  saveCheckpoint,
  TENSORS_FILE,
  type CheckpointConfig,
  type SaveOptions,
} from './modelCheckpoint.ts';
import { decodeSafetensors } from './safetensors.ts';

export interface WriteCheckpointInput {
  jobId: string;
  round: number;
  /** The architecture the tensors belong to. */
  model: ModelSpec;
  /** The model's parameters, one tensor per layout layer. */
  tensors: NamedTensors;
  /** Optimizer state and other named tensors kept beside them. */
  extra?: NamedTensors;
  /** Stored as the safetensors `__metadata__` string map. */
  metadata?: Record<string, string>;
  /**
   * Keep this checkpoint, the keep−1 newest older ones of the job and the newest good one (see `good`); delete
   * the rest, including checkpoints of later rounds (left from before a resume or rollback). Default: keep
   * everything.
   */
  keep?: number;
  /** Whether the state is one a rollback may go back to; absent counts as good. */
  good?: boolean;
}

/** Every tensor of a job checkpoint (model and extra, by name) and its metadata strings. */
export interface JobCheckpointTensors {
  tensors: NamedTensors;
  metadata: Record<string, string>;
}

const DIR_RE = /^round-(\d+)$/;
const LEGACY_RE = /^round-(\d+)\.(safetensors|json)$/;
/** Leftovers of interrupted writes: temp directories (and the old format's temp files), replaced copies. */
const TEMP_RE = /^\.round-(\d+)(?:\.(?:safetensors|json))?\.(tmp|old)-/;

/** Where a checkpoint is and how to check it: what the state store keeps for a job (never the tensors). */
export interface CheckpointManifest {
  jobId: string;
  round: number;
  /** The tensor file (…/round-<n>/model.safetensors). */
  path: string;
  sha256: string;
  bytes: number;
  createdAt: number;
  /** Absent: written without a verdict, counts as good. */
  good?: boolean;
}

const isGood = (m: Pick<CheckpointManifest, 'good'>) => m.good !== false;

function fail(message: string): never {
  throw new CheckpointError(message);
}

function checkJobId(jobId: string): void {
  if (!/^[A-Za-z0-9._-]+$/.test(jobId) || jobId === '.' || jobId === '..') {
    fail(`job id ${JSON.stringify(jobId)} cannot be used as a directory name`);
  }
}

export function checkpointBaseName(round: number): string {
  if (!Number.isSafeInteger(round) || round < 0) fail(`round must be a non-negative integer, got ${round}`);
  return `round-${String(round).padStart(6, '0')}`;
}

function manifestOf(
  jobId: string,
  round: number,
  roundDir: string,
  config: CheckpointConfig,
): CheckpointManifest {
  return {
    jobId,
    round,
    path: path.join(roundDir, TENSORS_FILE),
    sha256: config.sha256,
    bytes: config.bytes,
    createdAt: config.createdAt,
    ...(config.good === undefined ? {} : { good: config.good }),
  };
}

/** Write one checkpoint atomically and return its manifest (not yet stored anywhere but on disk). */
export async function writeCheckpoint(
  dir: string,
  input: WriteCheckpointInput,
  opts: SaveOptions = {},
): Promise<CheckpointManifest> {
  checkJobId(input.jobId);
  const base = checkpointBaseName(input.round);
  if (input.keep !== undefined && (!Number.isInteger(input.keep) || input.keep < 1)) {
    fail(`keep must be a positive integer, got ${input.keep}`);
  }
  const jobDir = path.resolve(dir, input.jobId);
  const roundDir = path.join(jobDir, base);
  const config = await saveCheckpoint(
    roundDir,
    {
      config: { model: input.model, jobId: input.jobId, round: input.round, good: input.good },
      tensors: input.tensors,
      extra: input.extra,
      metadata: input.metadata,
    },
    opts,
  );
  const manifest = manifestOf(input.jobId, input.round, roundDir, config);
  opts.guard?.(); // nor delete them
  await pruneCheckpoints(jobDir, manifest, input.keep);
  return manifest;
}

/**
 * Remove what interrupted writes left (one job has one writer, the lease holder): temp directories, and copies
 * moved aside while a round was rewritten — put back if the crash came before the new one took their place.
 * With `keep`, also remove every checkpoint but the current one, the keep−1 newest older ones and the newest
 * good one (a rollback's target: never pruned, whatever `keep` says).
 */
async function pruneCheckpoints(
  jobDir: string,
  current: CheckpointManifest,
  keep: number | undefined,
): Promise<void> {
  const names = await readdir(jobDir);
  for (const n of names) {
    const m = TEMP_RE.exec(n);
    if (!m) continue;
    const target = path.join(jobDir, checkpointBaseName(Number(m[1])));
    if (m[2] === 'old' && !names.includes(path.basename(target))) {
      await rename(path.join(jobDir, n), target).catch(() => {});
    } else {
      await rm(path.join(jobDir, n), { recursive: true, force: true });
    }
  }
  if (keep === undefined) return;
  // Complete checkpoints older than the current one, newest first.
  const all = await listIn(jobDir, current.jobId);
  const older = all.filter((m) => m.round < current.round).sort((a, b) => b.round - a.round);
  const kept = new Set([current.round, ...older.slice(0, keep - 1).map((m) => m.round)]);
  if (!isGood(current)) {
    const good = older.find(isGood);
    if (good) kept.add(good.round);
  }
  for (const n of await readdir(jobDir)) {
    const dirMatch = DIR_RE.exec(n);
    const legacy = LEGACY_RE.exec(n);
    const round = Number((dirMatch ?? legacy)?.[1]);
    if ((!dirMatch && !legacy) || kept.has(round)) continue;
    const where = path.join(jobDir, n);
    // The config (or manifest) goes first, so an interrupted prune never leaves one without its data.
    if (dirMatch) {
      await unlink(path.join(where, CONFIG_FILE)).catch(() => {});
      await rm(where, { recursive: true, force: true });
    } else if (legacy![2] === 'json') {
      await unlink(where).catch(() => {});
      await unlink(path.join(jobDir, `${checkpointBaseName(round)}.safetensors`)).catch(() => {});
    }
  }
  for (const n of await readdir(jobDir)) {
    const legacy = LEGACY_RE.exec(n);
    // Old-format data whose manifest is gone (pruned above, or never written).
    if (legacy?.[2] === 'safetensors' && !kept.has(Number(legacy[1]))) {
      await unlink(path.join(jobDir, n)).catch(() => {});
    }
  }
}

/** Read a checkpoint's tensors, verifying size and sha256 against the manifest before decoding. */
export async function readCheckpoint(manifest: CheckpointManifest): Promise<JobCheckpointTensors> {
  const where = `${manifest.path} (job ${manifest.jobId}, round ${manifest.round})`;
  let bytes: Buffer;
  try {
    bytes = await readFile(manifest.path);
  } catch (err) {
    fail(`cannot read ${where}: ${(err as Error).message}`);
  }
  if (bytes.length !== manifest.bytes) {
    fail(`${where} has ${bytes.length} bytes, the manifest says ${manifest.bytes} (truncated or replaced)`);
  }
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  if (sha256 !== manifest.sha256) {
    fail(`${where} is corrupt: sha256 ${sha256} does not match the manifest's ${manifest.sha256}`);
  }
  try {
    const decoded = decodeSafetensors(bytes);
    const tensors: NamedTensors = new Map(
      Object.entries(decoded.tensors).map(([n, data]) => [n, { data, shape: decoded.shapes[n] }]),
    );
    return { tensors, metadata: decoded.metadata };
  } catch (err) {
    fail(`${where}: ${(err as Error).message}`);
  }
}

/** Manifests of a job's checkpoints found on disk, oldest first. */
export async function listCheckpoints(dir: string, jobId: string): Promise<CheckpointManifest[]> {
  checkJobId(jobId);
  return listIn(path.resolve(dir, jobId), jobId);
}

async function listIn(jobDir: string, jobId: string): Promise<CheckpointManifest[]> {
  let names: string[];
  try {
    names = await readdir(jobDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const manifests: CheckpointManifest[] = [];
  for (const n of names) {
    const where = path.join(jobDir, n);
    const dirMatch = DIR_RE.exec(n);
    if (dirMatch) {
      // A directory without config.json is not complete (a crash inside saveCheckpoint's publish cannot make one,
      // but a hand-made copy can): not a checkpoint.
      if (!(await stat(path.join(where, CONFIG_FILE)).catch(() => undefined))) continue;
      manifests.push(manifestOf(jobId, Number(dirMatch[1]), where, await readCheckpointConfig(where)));
    } else if (LEGACY_RE.exec(n)?.[2] === 'json') {
      try {
        manifests.push(JSON.parse(await readFile(where, 'utf8')) as CheckpointManifest);
      } catch (err) {
        fail(`cannot read manifest ${where}: ${(err as Error).message}`);
      }
    }
  }
  return manifests.sort((a, b) => a.round - b.round);
}

/**
 * The newest good checkpoint of a job among rounds ≤ `upTo` (undefined: none). `upTo` is the round of the job's
 * newest checkpoint on its current timeline (what the state store holds): files of later rounds may be left from
 * before a resume or a rollback, while every checkpoint round up to it was written on the current timeline.
 */
export async function newestGoodCheckpoint(
  dir: string,
  jobId: string,
  upTo: number,
): Promise<CheckpointManifest | undefined> {
  return (await listCheckpoints(dir, jobId)).filter((m) => m.round <= upTo && isGood(m)).at(-1);
}
