/**
 * A compressed job resumed from its checkpoint continues under the plan it had, not the baseline: the real
 * scheduler, round-compute thread and checkpoint files, in process. A first coordinator runs an lgreco job
 * (pushes committed straight into its runtime, with the error tables of a re-plan round) until a checkpoint
 * written after the re-plan, then shuts down; a second one on the same store resumes the job from that
 * checkpoint.
 */
import { expect } from 'chai';
import { DEFAULT_MEMORY_BUDGET_BYTES, SYSTEM_DATA_ROOT } from '../../src/coordinator/admission.ts';
import { JobManager } from '../../src/coordinator/jobManager.ts';
import { createStateStore, type StateStore } from '../../src/coordinator/state/index.ts';
import { validateJobSpec } from '../../src/config/jobSpec.ts';
import { sessionSpec, WorkerCompressor } from '../../src/core/compression/compressionSession.ts';
import { tmpDir, sleep } from '../support/processes.ts';

const SPEC = {
  name: 'compressed-resume',
  seed: 5,
  model: { kind: 'mlp', hidden: [8] },
  data: { batchSize: 8, maxTrain: 200, maxTest: 50 },
  optimizer: { kind: 'sgd', lr: 0.1 },
  rounds: 100,
  workers: { min: 2, max: 2, roundTimeout: '60s', heartbeatTtl: '60s' },
  aggregation: { rule: 'mean', f: 0 },
  evaluation: { every: 0 },
  // a re-plan when round 1 closes (plan lgreco-r2), a checkpoint after round 2
  checkpoint: { every: 3 },
  compression: { kind: 'lgreco', warmup: 1, window: 50 },
} as const;

async function until<T>(what: string, get: () => T | undefined | Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 1500; i++) {
    const v = await get();
    if (v !== undefined) return v;
    await sleep(20);
  }
  throw new Error(`timed out waiting for ${what}`);
}

function manager(store: StateStore, checkpointRoot: string): JobManager {
  return new JobManager(store, {
    consumerId: 'resume-test',
    admission: {
      checkpointRoot,
      dataRoots: [SYSTEM_DATA_ROOT],
      memoryBudgetBytes: DEFAULT_MEMORY_BUDGET_BYTES,
    },
  });
}

describe('integration: a resumed compressed job keeps its plan', function () {
  this.timeout(120_000);

  it('restores the plan id, settings and history from the checkpoint (not baseline-r<round>)', async () => {
    const store = createStateStore({ kind: 'memory' });
    await store.connect();
    const checkpoints = tmpDir('compressed-resume');
    const first = manager(store, checkpoints);
    await first.start();
    let second: JobManager | undefined;
    try {
      const job = await first.submit(JSON.stringify(SPEC));
      const rt = await until('the runtime', () => first.runtime(job.id));
      const compression = rt.compression!;
      const layout = compression.authority.layout;
      const spec = validateJobSpec(SPEC);
      const workers = ['w0', 'w1'].map((id, rank) => {
        rt.join(id, `worker-${rank}`, '');
        return new WorkerCompressor(sessionSpec(spec.compression)!, layout, spec.seed, rank);
      });
      for (let round = 0; round < 3; round++) {
        await until(`round ${round} open`, () => (rt.round === round ? true : undefined));
        const plan = compression.authority.plan;
        workers.forEach((w, rank) => {
          const g = Float32Array.from({ length: layout.totalSize }, (_, i) =>
            Math.sin(0.1 * i + rank + round),
          );
          const table = compression.authority.tableDue(round) ? w.errorTable(round, g) : undefined;
          const layerBytes = w.encode(plan, round, g).map((b) => b.length);
          rt.commit(`w${rank}`, round, g, 1, 0, { layerBytes, ...(table ? { table } : {}) });
        });
      }
      const manifest = await until('the checkpoint of round 3', async () => {
        const m = await store.getCheckpointManifest(job.id);
        return m?.round === 3 ? m : undefined;
      });
      const before = compression.authority.saveState();
      expect(before.plan.planId).to.equal('lgreco-r2');
      expect(before.history.map((h) => h.planId)).to.deep.equal(['baseline-r0', 'lgreco-r2']);
      await first.stop();

      second = manager(store, checkpoints);
      await second.start();
      const resumed = await until('the resumed runtime', () => second!.runtime(job.id));
      expect(resumed.round).to.equal(manifest.round);
      const after = resumed.compression!.authority;
      expect(after.plan).to.deep.equal(before.plan);
      expect(resumed.compression!.wirePlan().planId).to.equal('lgreco-r2');
      expect(after.history.map((h) => [h.planId, h.fromRound, h.settings])).to.deep.equal(
        before.history.map((h) => [h.planId, h.fromRound, h.settings]),
      );
      // the byte bounds pushes are checked against are the restored plan's
      expect(after.bounds.total).to.deep.equal(compression.authority.bounds.total);
    } finally {
      await first.stop();
      await second?.stop();
      await store.close();
    }
  });
});
