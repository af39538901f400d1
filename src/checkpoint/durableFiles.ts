/**
 * Durable file writes: data reaches the disk (fsync) before a rename makes it visible, and directories are
 * fsynced after their entry list changes, so a crash leaves either the old state or the new one plus, at
 * worst, a temp file or directory (named `.<final name>.tmp-…`) that the next writer removes.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';

/** Largest single write (fs writes are limited to 2 GiB per call). */
const WRITE_CHUNK = 64 * 1024 * 1024;

/** A name for a temp sibling of `finalPath`: hidden, and unique per process and call. */
export function tempSibling(finalPath: string, kind: 'tmp' | 'old' = 'tmp'): string {
  return path.join(
    path.dirname(finalPath),
    `.${path.basename(finalPath)}.${kind}-${process.pid}-${randomBytes(4).toString('hex')}`,
  );
}

async function writeAll(fh: FileHandle, bytes: Uint8Array): Promise<void> {
  for (let done = 0; done < bytes.length;) {
    const { bytesWritten } = await fh.write(bytes, done, Math.min(WRITE_CHUNK, bytes.length - done));
    done += bytesWritten;
  }
}

export async function fsyncDir(dir: string): Promise<void> {
  if (process.platform === 'win32') return; // directories cannot be opened for fsync there
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Create `file` (which must not exist), write `parts` and fsync it; returns the bytes written. */
export async function writeNewFileDurable(file: string, parts: Iterable<Uint8Array>): Promise<number> {
  let bytes = 0;
  const fh = await open(file, 'wx');
  try {
    for (const part of parts) {
      await writeAll(fh, part);
      bytes += part.length;
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
  return bytes;
}

/** mkdir -p, then fsync every directory whose entry list changed so the new directories survive a crash. */
export async function makeDirDurable(dir: string): Promise<void> {
  const first = await mkdir(dir, { recursive: true });
  if (first === undefined) return;
  for (let d = dir; ; d = path.dirname(d)) {
    await fsyncDir(d);
    if (d === path.dirname(first) || d === path.dirname(d)) break;
  }
}

/** Replace `finalPath` with `parts` atomically: a fsynced temp file renamed over it, then the directory fsynced. */
export async function writeFileAtomic(finalPath: string, parts: Iterable<Uint8Array>): Promise<number> {
  const temp = tempSibling(finalPath);
  try {
    const bytes = await writeNewFileDurable(temp, parts);
    await rename(temp, finalPath);
    await fsyncDir(path.dirname(finalPath));
    return bytes;
  } catch (err) {
    await unlink(temp).catch(() => {});
    throw err;
  }
}
