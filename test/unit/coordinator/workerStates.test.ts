import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readCheckpoint, writeCheckpoint } from '../../../src/checkpoint/checkpoint.ts';
import { decodeJobState, encodeJobState } from '../../../src/checkpoint/jobState.ts';
import { WorkerStates } from '../../../src/coordinator/workerStates.ts';
import { modelLayout } from '../../../src/models/registry.ts';
import type { ModelSpec } from '../../../src/models/types.ts';

const spec: ModelSpec = { kind: 'mlp', hidden: [1] };
const layout = modelLayout(spec);
const d = layout.totalSize;
const values = (seed: number, n = 2 * d) => Float32Array.from({ length: n }, (_, i) => Math.sin(i + seed));

describe('WorkerStates: each worker’s own state entering checkpoint rounds', () => {
  it('gives back per name and round exactly what was put, for the newest two rounds only', () => {
    const s = new WorkerStates({ size: d, momentum: true, error: true }, 4);
    expect(s.elements).to.equal(2 * d);
    s.put('worker-0', 4, values(4));
    s.put('worker-1', 4, values(40));
    expect(Array.from(s.get('worker-0', 4)!)).to.deep.equal(Array.from(values(4)));
    expect(Array.from(s.get('worker-1', 4)!)).to.deep.equal(Array.from(values(40)));
    expect(s.get('worker-0', 5)).to.equal(undefined);
    expect(s.get('worker-2', 4)).to.equal(undefined);
    s.put('worker-0', 5, values(5));
    s.put('worker-0', 6, values(6));
    expect(s.get('worker-0', 4)).to.equal(undefined);
    expect(Array.from(s.get('worker-0', 5)!)).to.deep.equal(Array.from(values(5)));
  });

  it('keeps at most its capacity of names', () => {
    const s = new WorkerStates({ size: d, momentum: true, error: false }, 2);
    for (let i = 0; i < 10; i++) s.put(`worker-${i}`, 1, values(i, d));
    expect([...Array(10).keys()].filter((i) => s.get(`worker-${i}`, 1)).length).to.equal(2);
  });

  it('round-trips through a checkpoint; tensors of another size or a missing part are skipped', async () => {
    const s = new WorkerStates({ size: d, momentum: true, error: true }, 4);
    s.put('worker-0', 8, values(1));
    s.put('worker-1', 8, values(2));
    s.put('worker-1', 9, values(3));
    const tensors = s.tensorsAt(8);
    expect([...tensors.keys()].sort()).to.deep.equal([
      'worker.worker-0.error',
      'worker.worker-0.momentum',
      'worker.worker-1.error',
      'worker.worker-1.momentum',
    ]);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'phalanx-wstate-'));
    try {
      const state = {
        jobId: 'j',
        round: 8,
        spec: '{}',
        params: new Float32Array(d),
        optimizer: { tensors: {}, scalars: {} },
        workers: tensors,
      };
      const manifest = await writeCheckpoint(dir, encodeJobState(state, { spec, layout }));
      const back = decodeJobState(await readCheckpoint(manifest), 'j', 8, layout);
      const loaded = new WorkerStates({ size: d, momentum: true, error: true }, 4);
      back.workers!.set('worker.worker-2.momentum', new Float32Array(d)); // no error part: skipped
      back.workers!.set('worker.worker-3.momentum', new Float32Array(d - 1));
      back.workers!.set('worker.worker-3.error', new Float32Array(d));
      expect(loaded.load(8, back.workers!)).to.equal(2);
      expect(Array.from(loaded.get('worker-0', 8)!)).to.deep.equal(Array.from(values(1)));
      expect(Array.from(loaded.get('worker-1', 8)!)).to.deep.equal(Array.from(values(2)));
      expect(loaded.get('worker-2', 8)).to.equal(undefined);
      expect(loaded.get('worker-3', 8)).to.equal(undefined);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
