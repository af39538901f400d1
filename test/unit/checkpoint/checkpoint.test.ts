import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import {
  listCheckpoints,
  newestGoodCheckpoint,
  readCheckpoint,
  writeCheckpoint,
} from '../../../src/checkpoint/checkpoint.ts';

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

function tensorsFor(round: number) {
  return {
    params: Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i + round)),
    'optim.momentum': Float32Array.from({ length: 1000 }, (_, i) => i * 1e-3 - round),
    'layer.bias': Float32Array.of(round, -round),
  };
}

describe('checkpoint: files', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'phalanx-ckpt-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes a safetensors file and a manifest, and reads them back', async () => {
    const tensors = tensorsFor(100);
    const manifest = await writeCheckpoint(
      dir,
      {
        jobId: 'job-1',
        round: 100,
        tensors,
        shapes: { params: [10, 100] },
        metadata: { optimScalars: '{"step":100}', spec: '{}' },
      },
      { now: () => 1234 },
    );
    const file = path.join(dir, 'job-1', 'round-000100.safetensors');
    const bytes = await readFile(file);
    expect(manifest).to.deep.equal({
      jobId: 'job-1',
      round: 100,
      path: file,
      sha256: createHash('sha256').update(bytes).digest('hex'),
      bytes: bytes.length,
      createdAt: 1234,
    });
    expect(JSON.parse(await readFile(path.join(dir, 'job-1', 'round-000100.json'), 'utf8'))).to.deep.equal(
      manifest,
    );
    expect(await listCheckpoints(dir, 'job-1')).to.deep.equal([manifest]);

    const loaded = await readCheckpoint(manifest);
    expect(loaded.tensors).to.deep.equal(tensors);
    expect(loaded.shapes).to.deep.equal({ params: [10, 100], 'optim.momentum': [1000], 'layer.bias': [2] });
    expect(loaded.metadata).to.deep.equal({ optimScalars: '{"step":100}', spec: '{}' });
    // Nothing but the two files is left in the job directory.
    expect((await readdir(path.join(dir, 'job-1'))).sort()).to.deep.equal([
      'round-000100.json',
      'round-000100.safetensors',
    ]);
  });

  it('detects a flipped byte', async () => {
    const manifest = await writeCheckpoint(dir, { jobId: 'j', round: 1, tensors: tensorsFor(1) });
    const bytes = await readFile(manifest.path);
    bytes[bytes.length - 100] ^= 0x01;
    await writeFile(manifest.path, bytes);
    const err = await rejection(readCheckpoint(manifest));
    expect(err.message).to.match(
      /round-000001\.safetensors .*is corrupt: sha256 [0-9a-f]{64} does not match/,
    );
  });

  it('detects a truncated file', async () => {
    const manifest = await writeCheckpoint(dir, { jobId: 'j', round: 1, tensors: tensorsFor(1) });
    await truncate(manifest.path, manifest.bytes - 10);
    const err = await rejection(readCheckpoint(manifest));
    expect(err.message).to.match(/has \d+ bytes, the manifest says \d+ \(truncated or replaced\)/);
  });

  it('reports a missing file', async () => {
    const manifest = await writeCheckpoint(dir, { jobId: 'j', round: 1, tensors: tensorsFor(1) });
    await rm(manifest.path);
    const err = await rejection(readCheckpoint(manifest));
    expect(err.message).to.match(/cannot read .*round-000001\.safetensors \(job j, round 1\)/);
  });

  it('keeps the previous checkpoint valid when a write is interrupted', async () => {
    const first = await writeCheckpoint(dir, { jobId: 'j', round: 1, tensors: tensorsFor(1) });
    // A crash during the next write leaves a partial temp file behind.
    const full = await readFile(first.path);
    const temp = path.join(dir, 'j', '.round-000002.safetensors.tmp-999-deadbeef');
    await writeFile(temp, full.subarray(0, full.length >> 1));
    expect((await readCheckpoint(first)).tensors).to.deep.equal(tensorsFor(1));
    expect(await listCheckpoints(dir, 'j')).to.deep.equal([first]);

    // The next successful write clears the leftover.
    const second = await writeCheckpoint(dir, { jobId: 'j', round: 2, tensors: tensorsFor(2) });
    expect(await readdir(path.join(dir, 'j'))).to.not.include(path.basename(temp));
    expect((await readCheckpoint(first)).tensors).to.deep.equal(tensorsFor(1));
    expect((await readCheckpoint(second)).tensors).to.deep.equal(tensorsFor(2));
  });

  it('leaves no temp file and the previous checkpoint intact when the final rename fails', async () => {
    const first = await writeCheckpoint(dir, { jobId: 'j', round: 1, tensors: tensorsFor(1) });
    // A directory squatting on the final name makes the rename fail after the data was written.
    await mkdir(path.join(dir, 'j', 'round-000002.safetensors', 'x'), { recursive: true });
    const err = await rejection(writeCheckpoint(dir, { jobId: 'j', round: 2, tensors: tensorsFor(2) }));
    expect(err.message).to.match(/EISDIR|ENOTEMPTY|EEXIST|EPERM/);
    expect((await readdir(path.join(dir, 'j'))).filter((n) => n.includes('.tmp-'))).to.deep.equal([]);
    expect((await readCheckpoint(first)).tensors).to.deep.equal(tensorsFor(1));
    expect(await listCheckpoints(dir, 'j')).to.deep.equal([first]);
  });

  it('keeps the newest K checkpoints, and drops later rounds after a resume', async () => {
    const manifests = [];
    for (let round = 10; round <= 50; round += 10) {
      manifests.push(await writeCheckpoint(dir, { jobId: 'j', round, tensors: tensorsFor(round), keep: 2 }));
    }
    expect((await listCheckpoints(dir, 'j')).map((m) => m.round)).to.deep.equal([40, 50]);
    expect((await readdir(path.join(dir, 'j'))).length).to.equal(4);
    await readCheckpoint(manifests[3]);
    await readCheckpoint(manifests[4]);

    // Resumed from round 40: the next checkpoint at 45 replaces the abandoned round 50.
    await writeCheckpoint(dir, { jobId: 'j', round: 45, tensors: tensorsFor(45), keep: 2 });
    expect((await listCheckpoints(dir, 'j')).map((m) => m.round)).to.deep.equal([40, 45]);
    expect((await rejection(stat(manifests[4].path))).message).to.match(/ENOENT/);
  });

  it('keeps the newest good checkpoint in addition to the newest K, whatever keep says', async () => {
    // Good up to round 20, then a slow divergence: 30..60 are not good.
    const write = (round: number, good: boolean, keep = 1) =>
      writeCheckpoint(dir, { jobId: 'j', round, tensors: tensorsFor(round), keep, good });
    for (const round of [10, 20]) await write(round, true);
    expect((await listCheckpoints(dir, 'j')).map((m) => m.round)).to.deep.equal([20]);
    const bad = [];
    for (const round of [30, 40, 50, 60]) bad.push(await write(round, false));
    const left = await listCheckpoints(dir, 'j');
    expect(left.map((m) => [m.round, m.good])).to.deep.equal([
      [20, true],
      [60, false],
    ]);
    // Still whole (both files), and the one a rollback finds.
    expect((await readCheckpoint(left[0])).tensors).to.deep.equal(tensorsFor(20));
    expect((await newestGoodCheckpoint(dir, 'j', 60))?.round).to.equal(20);
    expect((await rejection(stat(bad[0].path))).message).to.match(/ENOENT/);

    // keep 2: the newest two plus the good one; a new good checkpoint takes over from the old one.
    await write(70, false, 2);
    expect((await listCheckpoints(dir, 'j')).map((m) => m.round)).to.deep.equal([20, 60, 70]);
    await write(80, true, 2);
    expect((await listCheckpoints(dir, 'j')).map((m) => m.round)).to.deep.equal([70, 80]);
  });

  it('finds the newest good checkpoint up to a round, ignoring later files of an abandoned timeline', async () => {
    const write = (round: number, good?: boolean) =>
      writeCheckpoint(dir, { jobId: 'j', round, tensors: tensorsFor(round), good });
    await write(10, true);
    await write(20); // no verdict: counts as good
    await write(30, false);
    await write(40, true);
    expect((await newestGoodCheckpoint(dir, 'j', 40))?.round).to.equal(40);
    expect((await newestGoodCheckpoint(dir, 'j', 39))?.round).to.equal(20);
    expect((await newestGoodCheckpoint(dir, 'j', 5))?.round).to.equal(undefined);
    expect(await newestGoodCheckpoint(dir, 'none', 40)).to.equal(undefined);
  });

  it('overwrites a checkpoint of the same round atomically', async () => {
    await writeCheckpoint(dir, { jobId: 'j', round: 5, tensors: tensorsFor(5) });
    const again = await writeCheckpoint(dir, { jobId: 'j', round: 5, tensors: tensorsFor(6) });
    expect((await readCheckpoint(again)).tensors).to.deep.equal(tensorsFor(6));
    expect(await listCheckpoints(dir, 'j')).to.deep.equal([again]);
  });

  it('refuses job ids that are not plain directory names, and bad rounds', async () => {
    for (const jobId of ['../evil', 'a/b', '..', '']) {
      const err = await rejection(writeCheckpoint(dir, { jobId, round: 1, tensors: {} }));
      expect(err.message).to.match(/cannot be used as a directory name/);
    }
    const err = await rejection(writeCheckpoint(dir, { jobId: 'j', round: -1, tensors: {} }));
    expect(err.message).to.match(/round must be a non-negative integer/);
    expect(await listCheckpoints(dir, 'none')).to.deep.equal([]);
  });
});
