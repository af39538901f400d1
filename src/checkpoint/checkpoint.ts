/**
 * Checkpoints on disk: one safetensors file per checkpoint plus a JSON manifest beside it, under
 * `<dir>/<jobId>/round-<round, 6 digits>.{safetensors,json}`. The manifest (also what the state store keeps)
 * carries the file's absolute path, size and sha256.
 *
 * Writes are atomic: each file is written to a temp file in the same directory, fsynced, renamed over its final
 * name, and the directory is fsynced. A crash leaves at most a temp file behind; earlier checkpoints stay valid.
 * Reads verify size and sha256 before decoding.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { decodeSafetensors, encodeHeader, type DecodedTensors, type TensorShape } from './safetensors.ts';

export interface WriteCheckpointInput {
  jobId: string;
  round: number;
  tensors: Record<string, Float32Array>;
  /** Shape per tensor; default [length]. */
  shapes?: Record<string, TensorShape>;
  /** Stored as the safetensors `__metadata__` string map. */
  metadata?: Record<string, string>;
  /**
   * Keep this checkpoint and the keep−1 newest older ones of the job; delete the rest, including checkpoints
   * of later rounds (left from before a resume). Default: keep everything.
   */
  keep?: number;
}

export type LoadedCheckpoint = DecodedTensors;

const FILE_RE = /^round-(\d+)\.(safetensors|json)$/;
const TEMP_RE = /^\.round-\d+\.(safetensors|json)\.tmp-/;

/** Where a checkpoint is and how to check it: what the state store keeps for a job (never the tensors). */
export interface CheckpointManifest {
  jobId: string;
  round: number;
  path: string;
  sha256: string;
  bytes: number;
  createdAt: number;
}

/** Largest single write (fs writes are limited to 2 GiB per call). */
const WRITE_CHUNK = 64 * 1024 * 1024;

function fail(message: string): never {
  throw new Error(`checkpoint: ${message}`);
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

async function writeAll(fh: FileHandle, bytes: Uint8Array): Promise<void> {
  for (let done = 0; done < bytes.length;) {
    const { bytesWritten } = await fh.write(bytes, done, Math.min(WRITE_CHUNK, bytes.length - done));
    done += bytesWritten;
  }
}

async function fsyncDir(dir: string): Promise<void> {
  if (process.platform === 'win32') return; // directories cannot be opened for fsync there
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Write `parts` to `finalPath` through a fsynced temp file and a rename; returns sha256 and size. */
async function writeFileAtomic(
  finalPath: string,
  parts: Iterable<Uint8Array>,
): Promise<{ sha256: string; bytes: number }> {
  const dir = path.dirname(finalPath);
  const temp = path.join(
    dir,
    `.${path.basename(finalPath)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`,
  );
  const hash = createHash('sha256');
  let bytes = 0;
  const fh = await open(temp, 'wx');
  try {
    try {
      for (const part of parts) {
        await writeAll(fh, part);
        hash.update(part);
        bytes += part.length;
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(temp, finalPath);
  } catch (err) {
    await unlink(temp).catch(() => {});
    throw err;
  }
  return { sha256: hash.digest('hex'), bytes };
}

/** mkdir -p, then fsync every directory whose entry list changed so the new directories survive a crash. */
async function makeDirDurable(dir: string): Promise<void> {
  const first = await mkdir(dir, { recursive: true });
  if (first === undefined) return;
  for (let d = dir; ; d = path.dirname(d)) {
    await fsyncDir(d);
    if (d === path.dirname(first) || d === path.dirname(d)) break;
  }
}

/** Write one checkpoint atomically and return its manifest (not yet stored anywhere but next to the file). */
export async function writeCheckpoint(
  dir: string,
  input: WriteCheckpointInput,
  opts: { now?: () => number } = {},
): Promise<CheckpointManifest> {
  checkJobId(input.jobId);
  const base = checkpointBaseName(input.round);
  if (input.keep !== undefined && (!Number.isInteger(input.keep) || input.keep < 1)) {
    fail(`keep must be a positive integer, got ${input.keep}`);
  }
  const jobDir = path.resolve(dir, input.jobId);
  await makeDirDurable(jobDir);

  const order = Object.keys(input.tensors).sort();
  const { header } = encodeHeader(input.tensors, order, input.shapes, input.metadata);
  const dataPath = path.join(jobDir, `${base}.safetensors`);
  const parts = [
    header,
    ...order.map(
      (n) =>
        new Uint8Array(input.tensors[n].buffer, input.tensors[n].byteOffset, input.tensors[n].byteLength),
    ),
  ];
  const { sha256, bytes } = await writeFileAtomic(dataPath, parts);
  const manifest: CheckpointManifest = {
    jobId: input.jobId,
    round: input.round,
    path: dataPath,
    sha256,
    bytes,
    createdAt: (opts.now ?? Date.now)(),
  };
  await writeFileAtomic(path.join(jobDir, `${base}.json`), [
    Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`),
  ]);
  await fsyncDir(jobDir);
  await pruneCheckpoints(jobDir, input.round, input.keep);
  return manifest;
}

/**
 * Remove temp files left by interrupted writes (one job has one writer, the lease holder) and, with `keep`,
 * every checkpoint but the current one and the keep−1 newest older ones.
 */
async function pruneCheckpoints(jobDir: string, current: number, keep: number | undefined): Promise<void> {
  const names = await readdir(jobDir);
  const doomed = names.filter((n) => TEMP_RE.test(n));
  if (keep !== undefined) {
    // Complete checkpoints (those with a manifest) older than the current one, newest first.
    const older = names
      .map((n) => FILE_RE.exec(n))
      .filter((m) => m?.[2] === 'json')
      .map((m) => Number(m![1]))
      .filter((r) => r < current)
      .sort((a, b) => b - a);
    const kept = new Set([current, ...older.slice(0, keep - 1)]);
    // Manifests go first, so an interrupted prune never leaves a manifest without its data.
    const dropped = names.filter((n) => {
      const m = FILE_RE.exec(n);
      return m !== null && !kept.has(Number(m[1]));
    });
    doomed.push(
      ...dropped.filter((n) => n.endsWith('.json')),
      ...dropped.filter((n) => !n.endsWith('.json')),
    );
  }
  for (const n of doomed) await unlink(path.join(jobDir, n)).catch(() => {});
}

/** Read a checkpoint, verifying its size and sha256 against the manifest before decoding. */
export async function readCheckpoint(manifest: CheckpointManifest): Promise<LoadedCheckpoint> {
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
    return decodeSafetensors(bytes);
  } catch (err) {
    fail(`${where}: ${(err as Error).message}`);
  }
}

/** Manifests of a job's checkpoints found on disk, oldest first. */
export async function listCheckpoints(dir: string, jobId: string): Promise<CheckpointManifest[]> {
  checkJobId(jobId);
  const jobDir = path.resolve(dir, jobId);
  let names: string[];
  try {
    names = await readdir(jobDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const manifests: CheckpointManifest[] = [];
  for (const n of names) {
    if (FILE_RE.exec(n)?.[2] !== 'json') continue;
    const file = path.join(jobDir, n);
    try {
      manifests.push(JSON.parse(await readFile(file, 'utf8')) as CheckpointManifest);
    } catch (err) {
      fail(`cannot read manifest ${file}: ${(err as Error).message}`);
    }
  }
  return manifests.sort((a, b) => a.round - b.round);
}
