/**
 * aggregation.perExpert in a real distributed job: `launch()` (the coordinator in this process, 4 worker
 * processes over loopback gRPC) trains an MoE transformer (top-2 of 4 experts) with each expert block aggregated
 * over the workers that routed tokens to it, and must end where `simulate()` ends with the same spec (max |Δ| ≤
 * 1e-6), with the same per-round fallbacks in the round reports. The same spec without perExpert ends elsewhere:
 * the coordinator's round-compute thread really aggregates per expert.
 *
 * 1-sequence batches of 4 characters make routing sparse per worker: in some rounds only some workers send a
 * gradient for an expert. With the median and f = 1, an expert sent by 3 of 4 workers is aggregated over those 3,
 * one sent by 1 or 2 keeps the all-worker median (a fallback, reported).
 */
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { listCheckpoints } from '../../src/checkpoint/checkpoint.ts';
import { launch } from '../../src/cli/launch.ts';
import { validateJobSpec, type JobSpecInput } from '../../src/config/jobSpec.ts';
import type { RoundReport } from '../../src/coordinator/roundReport.ts';
import { BUNDLED_EXCERPT } from '../../src/data/text.ts';
import { simulate } from '../../src/simulation/simulate.ts';
import { checkpointParams } from '../support/checkpoints.ts';
import { maxAbsDiff } from '../support/arrays.ts';

const ROUNDS = 6;

const spec: JobSpecInput = {
  name: 'per-expert',
  seed: 5,
  model: {
    kind: 'transformer',
    dModel: 16,
    layers: 1,
    heads: 2,
    ffn: 8,
    context: 16,
    moe: { experts: 4, topK: 2 },
  },
  data: { kind: 'text', seqLen: 4, batchSize: 1, maxTrain: 500, maxTest: 20 },
  optimizer: { kind: 'adam', lr: 0.01 },
  rounds: ROUNDS,
  // min = max: every round waits for all four workers.
  workers: { min: 4, max: 4, roundTimeout: '60s' },
  aggregation: { rule: 'median', f: 1, perExpert: true },
  checkpoint: { every: ROUNDS, keep: 1 },
  evaluation: { every: ROUNDS },
};

/** Per round: the expert blocks that fell back, with their sender counts. */
function fallbacks(reports: RoundReport[]): string[][] {
  return reports.map((r) =>
    (r.diagnostics?.groupFallbacks ?? []).map((g) => `${g.group} (${g.senders} senders)`),
  );
}

describe('integration: a distributed job with aggregation.perExpert', function () {
  this.timeout(120_000);
  let dir: string;
  const savedText = process.env.PHALANX_TEXT;

  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'phalanx-per-expert-'));
    process.env.PHALANX_TEXT = BUNDLED_EXCERPT; // the worker processes inherit it
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
    if (savedText === undefined) delete process.env.PHALANX_TEXT;
    else process.env.PHALANX_TEXT = savedText;
  });

  it('ends where simulate() ends, with the same fallbacks per round, and elsewhere than without it', async () => {
    const distributedReports: RoundReport[] = [];
    const report = await launch({
      spec,
      workers: 4,
      byzantine: 0,
      attack: 'signflip',
      store: { kind: 'memory' },
      port: 0,
      dataDir: dir,
      backend: 'wasm',
      quiet: true,
      onRound: (r) => distributedReports.push(r),
    });
    expect(report.state, report.error).to.equal('completed');
    const manifests = await listCheckpoints(path.join(dir, 'checkpoints'), report.job);
    expect(manifests.at(-1)?.round, 'final checkpoint').to.equal(ROUNDS);
    const distributed = await checkpointParams(manifests.at(-1)!);

    const simulatedReports: RoundReport[] = [];
    const sim = await simulate(validateJobSpec(spec), {
      backend: 'wasm',
      onRound: (r) => simulatedReports.push(r),
    });
    expect(sim.skippedRounds).to.equal(0);
    expect(maxAbsDiff(sim.params, distributed)).to.be.at.most(1e-6);
    expect(fallbacks(distributedReports)).to.deep.equal(fallbacks(simulatedReports));
    expect(fallbacks(distributedReports).flat().length, 'experts that fell back').to.be.above(0);

    const offReports: RoundReport[] = [];
    const off = await simulate(
      validateJobSpec({ ...spec, aggregation: { ...spec.aggregation, perExpert: false } }),
      { backend: 'wasm', onRound: (r) => offReports.push(r) },
    );
    expect(maxAbsDiff(off.params, distributed)).to.be.above(1e-4);
    expect(fallbacks(offReports).flat()).to.deep.equal([]);
  });
});
