import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rename, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import {
  listCheckpoints,
  newestGoodCheckpoint,
  readCheckpoint,
  writeCheckpoint,
  type WriteCheckpointInput,
} from '../../../src/checkpoint/checkpoint.ts';
import { decodeJobState } from '../../../src/checkpoint/jobState.ts';
import { loadCheckpoint } from '../../../src/checkpoint/modelCheckpoint.ts';
import { encodeSafetensors } from '../../../src/checkpoint/safetensors.ts';
import { toNamedTensors, type NamedTensors } from '../../../src/core/layout/namedTensors.ts';
import { modelLayout } from '../../../src/models/registry.ts';
import type { ModelSpec } from '../../../src/models/types.ts';

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

const model: ModelSpec = { kind: 'mlp', hidden: [2] };
const layout = modelLayout(model);

/** A job checkpoint's tensors for a round: the model's (named by the layout) and an optimizer tensor. */
function stateFor(round: number): Pick<WriteCheckpointInput, 'model' | 'tensors' | 'extra'> {
  const params = Float32Array.from({ length: layout.totalSize }, (_, i) => Math.sin(i + round));
  const momentum = Float32Array.from({ length: layout.totalSize }, (_, i) => i * 1e-3 - round);
  return {
    model,
    tensors: toNamedTensors(params, layout),
    extra: new Map([['optim.momentum', { data: momentum, shape: [momentum.length] }]]),
  };
}

/** Every tensor by name, as plain arrays (deep-equal comparable). */
function plain(tensors: NamedTensors): Record<string, { shape: number[]; data: number[] }> {
  return Object.fromEntries([...tensors].map(([n, t]) => [n, { shape: t.shape, data: Array.from(t.data) }]));
}

const all = (round: number) => {
  const s = stateFor(round);
  return plain(new Map([...s.tensors, ...s.extra!]));
};

describe('checkpoint: files', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'phalanx-ckpt-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes a round directory (model.safetensors + config.json) and reads it back', async () => {
    const manifest = await writeCheckpoint(
      dir,
      {
        jobId: 'job-1',
        round: 100,
        ...stateFor(100),
        metadata: { optimScalars: '{"step":100}', spec: '{}' },
      },
      { now: () => 1234 },
    );
    const roundDir = path.join(dir, 'job-1', 'round-000100');
    const file = path.join(roundDir, 'model.safetensors');
    const bytes = await readFile(file);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    expect(manifest).to.deep.equal({
      jobId: 'job-1',
      round: 100,
      path: file,
      sha256,
      bytes: bytes.length,
      createdAt: 1234,
    });
    expect(JSON.parse(await readFile(path.join(roundDir, 'config.json'), 'utf8'))).to.deep.equal({
      format: 'phalanx-checkpoint',
      version: 1,
      model,
      parameters: layout.totalSize,
      jobId: 'job-1',
      round: 100,
      createdAt: 1234,
      extraTensors: ['optim.momentum'],
      file: 'model.safetensors',
      bytes: bytes.length,
      sha256,
    });
    expect(await listCheckpoints(dir, 'job-1')).to.deep.equal([manifest]);

    const loaded = await readCheckpoint(manifest);
    expect(plain(loaded.tensors)).to.deep.equal(all(100));
    // Model tensors first, in layout order, with their layout shapes.
    expect([...loaded.tensors].map(([n, t]) => [n, t.shape])).to.deep.equal([
      ...layout.layers.map((l) => [l.name, l.shape]),
      ['optim.momentum', [layout.totalSize]],
    ]);
    expect(loaded.metadata).to.deep.equal({ optimScalars: '{"step":100}', spec: '{}' });
    // The same directory through the standalone loader: model and extra tensors apart.
    const standalone = await loadCheckpoint(roundDir);
    expect(plain(standalone.tensors)).to.deep.equal(plain(stateFor(100).tensors));
    expect([...standalone.extra.keys()]).to.deep.equal(['optim.momentum']);
    // Nothing but the checkpoint is left in the job directory.
    expect(await readdir(path.join(dir, 'job-1'))).to.deep.equal(['round-000100']);
    expect((await readdir(roundDir)).sort()).to.deep.equal(['config.json', 'model.safetensors']);
  });

  it('detects a flipped byte', async () => {
    const manifest = await writeCheckpoint(dir, { jobId: 'j', round: 1, ...stateFor(1) });
    const bytes = await readFile(manifest.path);
    bytes[bytes.length - 100] ^= 0x01;
    await writeFile(manifest.path, bytes);
    const err = await rejection(readCheckpoint(manifest));
    expect(err.message).to.match(
      /round-000001\/model\.safetensors .*is corrupt: sha256 [0-9a-f]{64} does not match/,
    );
  });

  it('detects a truncated file', async () => {
    const manifest = await writeCheckpoint(dir, { jobId: 'j', round: 1, ...stateFor(1) });
    await truncate(manifest.path, manifest.bytes - 10);
    const err = await rejection(readCheckpoint(manifest));
    expect(err.message).to.match(/has \d+ bytes, the manifest says \d+ \(truncated or replaced\)/);
  });

  it('reports a missing file', async () => {
    const manifest = await writeCheckpoint(dir, { jobId: 'j', round: 1, ...stateFor(1) });
    await rm(manifest.path);
    const err = await rejection(readCheckpoint(manifest));
    expect(err.message).to.match(/cannot read .*round-000001\/model\.safetensors \(job j, round 1\)/);
  });

  it('keeps the previous checkpoint valid when a write is interrupted', async () => {
    const first = await writeCheckpoint(dir, { jobId: 'j', round: 1, ...stateFor(1) });
    // A crash during the next write leaves a temp directory with a partial tensor file and no config behind.
    const full = await readFile(first.path);
    const temp = path.join(dir, 'j', '.round-000002.tmp-999-deadbeef');
    await mkdir(temp);
    await writeFile(path.join(temp, 'model.safetensors'), full.subarray(0, full.length >> 1));
    expect(plain((await readCheckpoint(first)).tensors)).to.deep.equal(all(1));
    expect(await listCheckpoints(dir, 'j')).to.deep.equal([first]);

    // The next successful write clears the leftover.
    const second = await writeCheckpoint(dir, { jobId: 'j', round: 2, ...stateFor(2) });
    expect(await readdir(path.join(dir, 'j'))).to.deep.equal(['round-000001', 'round-000002']);
    expect(plain((await readCheckpoint(first)).tensors)).to.deep.equal(all(1));
    expect(plain((await readCheckpoint(second)).tensors)).to.deep.equal(all(2));
  });

  it('leaves no temp directory and the previous checkpoints intact when the publishing rename fails', async () => {
    const first = await writeCheckpoint(dir, { jobId: 'j', round: 1, ...stateFor(1) });
    const crash = async () => {
      throw new Error('simulated crash before the rename');
    };
    const err = await rejection(
      writeCheckpoint(dir, { jobId: 'j', round: 2, ...stateFor(2) }, { rename: crash }),
    );
    expect(err.message).to.equal('simulated crash before the rename');
    expect(await readdir(path.join(dir, 'j'))).to.deep.equal(['round-000001']);
    expect(plain((await readCheckpoint(first)).tensors)).to.deep.equal(all(1));
    expect(await listCheckpoints(dir, 'j')).to.deep.equal([first]);

    // Rewriting the same round: the failed rename leaves the earlier version of that round in place.
    const again = await rejection(
      writeCheckpoint(dir, { jobId: 'j', round: 1, ...stateFor(7) }, { rename: crash }),
    );
    expect(again.message).to.equal('simulated crash before the rename');
    expect(await readdir(path.join(dir, 'j'))).to.deep.equal(['round-000001']);
    expect(plain((await readCheckpoint(first)).tensors)).to.deep.equal(all(1));
  });

  it('puts back a round moved aside by a rewrite that crashed before the new copy took its place', async () => {
    const first = await writeCheckpoint(dir, { jobId: 'j', round: 1, ...stateFor(1) });
    await rename(path.join(dir, 'j', 'round-000001'), path.join(dir, 'j', '.round-000001.old-999-deadbeef'));
    await writeCheckpoint(dir, { jobId: 'j', round: 2, ...stateFor(2) });
    expect((await listCheckpoints(dir, 'j')).map((m) => m.round)).to.deep.equal([1, 2]);
    expect(plain((await readCheckpoint(first)).tensors)).to.deep.equal(all(1));
    expect(await readdir(path.join(dir, 'j'))).to.deep.equal(['round-000001', 'round-000002']);
  });

  it('keeps the newest K checkpoints, and drops later rounds after a resume', async () => {
    const manifests = [];
    for (let round = 10; round <= 50; round += 10) {
      manifests.push(await writeCheckpoint(dir, { jobId: 'j', round, ...stateFor(round), keep: 2 }));
    }
    expect((await listCheckpoints(dir, 'j')).map((m) => m.round)).to.deep.equal([40, 50]);
    expect(await readdir(path.join(dir, 'j'))).to.deep.equal(['round-000040', 'round-000050']);
    await readCheckpoint(manifests[3]);
    await readCheckpoint(manifests[4]);

    // Resumed from round 40: the next checkpoint at 45 replaces the abandoned round 50.
    await writeCheckpoint(dir, { jobId: 'j', round: 45, ...stateFor(45), keep: 2 });
    expect((await listCheckpoints(dir, 'j')).map((m) => m.round)).to.deep.equal([40, 45]);
    expect((await rejection(stat(manifests[4].path))).message).to.match(/ENOENT/);
  });

  it('keeps the newest good checkpoint in addition to the newest K, whatever keep says', async () => {
    // Good up to round 20, then a slow divergence: 30..60 are not good.
    const write = (round: number, good: boolean, keep = 1) =>
      writeCheckpoint(dir, { jobId: 'j', round, ...stateFor(round), keep, good });
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
    expect(plain((await readCheckpoint(left[0])).tensors)).to.deep.equal(all(20));
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
      writeCheckpoint(dir, { jobId: 'j', round, ...stateFor(round), good });
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
    await writeCheckpoint(dir, { jobId: 'j', round: 5, ...stateFor(5) });
    const again = await writeCheckpoint(dir, { jobId: 'j', round: 5, ...stateFor(6) });
    expect(plain((await readCheckpoint(again)).tensors)).to.deep.equal(all(6));
    expect(await listCheckpoints(dir, 'j')).to.deep.equal([again]);
  });

  it('refuses job ids that are not plain directory names, and bad rounds', async () => {
    for (const jobId of ['../evil', 'a/b', '..', '']) {
      const err = await rejection(writeCheckpoint(dir, { jobId, round: 1, ...stateFor(1) }));
      expect(err.message).to.match(/cannot be used as a directory name/);
    }
    const err = await rejection(writeCheckpoint(dir, { jobId: 'j', round: -1, ...stateFor(1) }));
    expect(err.message).to.match(/round must be a non-negative integer/);
    expect(await listCheckpoints(dir, 'none')).to.deep.equal([]);
  });

  it('refuses model tensors that do not add up to the architecture', async () => {
    const state = stateFor(1);
    state.tensors.delete('fc2.bias');
    const err = await rejection(writeCheckpoint(dir, { jobId: 'j', round: 1, ...state }));
    expect(err.message).to.match(/the model tensors hold 1590 values; a mlp of this spec has 1600/);
  });

  it('lists, reads and prunes checkpoints of the earlier flat format', async () => {
    const params = Float32Array.from({ length: layout.totalSize }, (_, i) => i);
    const bytes = encodeSafetensors({ params }, { metadata: { spec: '{}' } });
    await mkdir(path.join(dir, 'j'));
    const file = path.join(dir, 'j', 'round-000003.safetensors');
    await writeFile(file, bytes);
    const legacy = {
      jobId: 'j',
      round: 3,
      path: file,
      sha256: createHash('sha256').update(bytes).digest('hex'),
      bytes: bytes.length,
      createdAt: 5,
    };
    await writeFile(path.join(dir, 'j', 'round-000003.json'), JSON.stringify(legacy));
    expect(await listCheckpoints(dir, 'j')).to.deep.equal([legacy]);
    const back = decodeJobState(await readCheckpoint(legacy), 'j', 3, layout);
    expect(Array.from(back.params)).to.deep.equal(Array.from(params));

    await writeCheckpoint(dir, { jobId: 'j', round: 4, ...stateFor(4), keep: 2 });
    expect((await listCheckpoints(dir, 'j')).map((m) => m.round)).to.deep.equal([3, 4]);
    await writeCheckpoint(dir, { jobId: 'j', round: 5, ...stateFor(5), keep: 2 });
    expect(await readdir(path.join(dir, 'j'))).to.deep.equal(['round-000004', 'round-000005']);
  });
});
