import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readCheckpoint, writeCheckpoint } from '../../../src/checkpoint/checkpoint.ts';
import { decodeJobState, encodeJobState, type JobState } from '../../../src/checkpoint/jobState.ts';

describe('checkpoint: job state codec', () => {
  it('writes parameters, optimizer tensors and scalars, and rule state, and reads them back exactly', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'phalanx-jobstate-'));
    try {
      const state: JobState = {
        jobId: 'job-a',
        round: 40,
        spec: '{"name":"a"}',
        params: Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i) * 1e-3),
        optimizer: {
          tensors: {
            m: Float32Array.from({ length: 1000 }, (_, i) => i / 7),
            v: Float32Array.from({ length: 1000 }, (_, i) => 1 / (i + 1)),
          },
          scalars: { t: 40, lrScale: 0.5 },
        },
        aggregation: '{"centre":[1,2,3]}',
        guard:
          '{"rollbacks":1,"detector":{"losses":[2.3],"norms":[0.5],"bestLossMedian":null,"bestAccuracy":null,"lossAbove":0}}',
      };
      const manifest = await writeCheckpoint(dir, encodeJobState(state, 2));
      expect(manifest.round).to.equal(40);
      const back = decodeJobState(await readCheckpoint(manifest), 'job-a', manifest.round);
      expect(back.spec).to.equal(state.spec);
      expect(back.aggregation).to.equal(state.aggregation);
      expect(back.guard).to.equal(state.guard);
      expect(back.optimizer.scalars).to.deep.equal(state.optimizer.scalars);
      expect(Object.keys(back.optimizer.tensors).sort()).to.deep.equal(['m', 'v']);
      for (const name of ['m', 'v'])
        expect(Array.from(back.optimizer.tensors[name])).to.deep.equal(
          Array.from(state.optimizer.tensors[name]),
        );
      expect(Array.from(back.params)).to.deep.equal(Array.from(state.params));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a rule without state leaves none, and a checkpoint without parameters is refused', () => {
    const written = encodeJobState({
      jobId: 'j',
      round: 1,
      spec: '{}',
      params: new Float32Array(3),
      optimizer: { tensors: {}, scalars: {} },
    });
    expect(written.metadata).not.to.have.property('aggregationState');
    expect(() => decodeJobState({ tensors: {}, shapes: {}, metadata: {} }, 'j', 1)).to.throw(
      /no 'params' tensor/,
    );
  });
});
