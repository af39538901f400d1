/**
 * Checkpoints on disk: one safetensors file per checkpoint plus a JSON manifest beside it, under
 * `<dir>/<jobId>/round-<round, 6 digits>.{safetensors,json}`. The manifest (also what the state store keeps)
 * carries the file's absolute path, size and sha256.
 *
 * Writes are atomic: each file is written to a temp file in the same directory, fsynced, renamed over its final
 * name, and the directory is fsynced. A crash leaves at most a temp file behind; earlier checkpoints stay valid.
 * Reads verify size and sha256 before decoding.
 *
 * A checkpoint may be marked good or not (the divergence guard's verdict on its state, src/core/round/
 * divergenceGuard.ts); the mark is in its manifest, so a rollback finds the newest good one by reading the small
 * JSON files only (newestGoodCheckpoint), and pruning keeps it.
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
   * Keep this checkpoint, the keep−1 newest older ones of the job and the newest good one (see `good`); delete
   * the rest, including checkpoints of later rounds (left from before a resume or rollback). Default: keep
   * everything.
   */
  keep?: number;
  /** Whether the state is one a rollback may go back to; absent counts as good. */
  good?: boolean;
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
  /** Absent: written without a verdict, counts as good. */
  good?: boolean;
}

const isGood = (m: Pick<CheckpointManifest, 'good'>) => m.good !== false;

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
  guard: () => void = () => {},
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
    guard();
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
  opts: {
    now?: () => number;
    /**
     * Called right before each rename into place and before pruning; throwing stops the write there (a deposed
     * leader must not replace or delete files on shared storage).
     */
    guard?: () => void;
  } = {},
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
  const { sha256, bytes } = await writeFileAtomic(dataPath, parts, opts.guard);
  const manifest: CheckpointManifest = {
    jobId: input.jobId,
    round: input.round,
    path: dataPath,
    sha256,
    bytes,
    createdAt: (opts.now ?? Date.now)(),
    ...(input.good === undefined ? {} : { good: input.good }),
  };
  await writeFileAtomic(
    path.join(jobDir, `${base}.json`),
    [Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`)],
    opts.guard,
  );
  await fsyncDir(jobDir);
  opts.guard?.();
  await pruneCheckpoints(jobDir, manifest, input.keep);
  return manifest;
}

/**
 * Remove temp files left by interrupted writes (one job has one writer, the lease holder) and, with `keep`,
 * every checkpoint but the current one, the keep−1 newest older ones and the newest good one (a rollback's
 * target: never pruned, whatever `keep` says).
 */
async function pruneCheckpoints(
  jobDir: string,
  current: CheckpointManifest,
  keep: number | undefined,
): Promise<void> {
  const names = await readdir(jobDir);
  const doomed = names.filter((n) => TEMP_RE.test(n));
  if (keep !== undefined) {
    // Complete checkpoints (those with a manifest) older than the current one, newest first.
    const older = names
      .map((n) => FILE_RE.exec(n))
      .filter((m) => m?.[2] === 'json')
      .map((m) => Number(m![1]))
      .filter((r) => r < current.round)
      .sort((a, b) => b - a);
    const kept = new Set([current.round, ...older.slice(0, keep - 1)]);
    if (!isGood(current)) {
      for (const r of older) {
        const m = await readManifest(path.join(jobDir, `${checkpointBaseName(r)}.json`)).catch(
          () => undefined,
        );
        if (m && isGood(m)) {
          kept.add(r);
          break;
        }
      }
    }
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
      manifests.push(await readManifest(file));
    } catch (err) {
      fail(`cannot read manifest ${file}: ${(err as Error).message}`);
    }
  }
  return manifests.sort((a, b) => a.round - b.round);
}

async function readManifest(file: string): Promise<CheckpointManifest> {
  return JSON.parse(await readFile(file, 'utf8')) as CheckpointManifest;
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
