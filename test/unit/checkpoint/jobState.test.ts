import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readCheckpoint, writeCheckpoint } from '../../../src/checkpoint/checkpoint.ts';
import { decodeJobState, encodeJobState, type JobState } from '../../../src/checkpoint/jobState.ts';
import { modelLayout } from '../../../src/models/registry.ts';
import type { ModelSpec } from '../../../src/models/types.ts';

const spec: ModelSpec = { kind: 'mlp', hidden: [1] };
const layout = modelLayout(spec);

describe('checkpoint: job state codec', () => {
  it('writes parameters, optimizer tensors and scalars, and rule state, and reads them back exactly', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'phalanx-jobstate-'));
    try {
      const state: JobState = {
        jobId: 'job-a',
        round: 40,
        spec: '{"name":"a"}',
        params: Float32Array.from({ length: layout.totalSize }, (_, i) => Math.sin(i) * 1e-3),
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
      const manifest = await writeCheckpoint(dir, encodeJobState(state, { spec, layout }, 2));
      expect(manifest.round).to.equal(40);
      const back = decodeJobState(await readCheckpoint(manifest), 'job-a', manifest.round, layout);
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

  it("a rule without state leaves none, and a checkpoint without the model's tensors or with a wrong shape is refused", () => {
    const written = encodeJobState(
      {
        jobId: 'j',
        round: 1,
        spec: '{}',
        params: new Float32Array(layout.totalSize),
        optimizer: { tensors: {}, scalars: {} },
      },
      { spec, layout },
    );
    expect(written.metadata).not.to.have.property('aggregationState');
    expect(() => decodeJobState({ tensors: new Map(), metadata: {} }, 'j', 1, layout)).to.throw(
      /checkpoint of job j at round 1 does not fit the job's model: missing tensors 'fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias'/,
    );
    const wrong = { tensors: new Map(written.tensors), metadata: {} };
    wrong.tensors.set('fc2.weight', { data: new Float32Array(10), shape: [10, 1] });
    expect(() => decodeJobState(wrong, 'j', 1, layout)).to.throw(
      /tensor 'fc2.weight' has shape \[10, 1\], the model's layout needs \[1, 10\]/,
    );
  });
});
