/**
 * `phalanx simulate` with compression: every push crosses the codecs, so a vector the coordinator would refuse
 * (a Byzantine NaN) is refused here too and the job goes on without it; the report carries bytes per round and
 * per layer, the ratio against fp32 and the plans with the error budget they use.
 */
import { expect } from 'chai';
import { validateJobSpec } from '../../src/config/jobSpec.ts';
import type { RoundReport } from '../../src/coordinator/roundReport.ts';
import { simulationReport } from '../../src/simulation/report.ts';
import { simulate } from '../../src/simulation/simulate.ts';

describe('integration: simulate with compression', function () {
  this.timeout(120_000);

  it('lgreco with a NaN worker: its pushes are refused, plans from the others’ tables, traffic reported', async () => {
    const spec = validateJobSpec({
      name: 'sim-compressed',
      seed: 2,
      model: { kind: 'mlp', hidden: [16] },
      data: { batchSize: 16, maxTrain: 1000, maxTest: 100 },
      rounds: 6,
      workers: { min: 3, max: 4 },
      aggregation: { rule: 'median', f: 1 },
      evaluation: { every: 0 },
      compression: { kind: 'lgreco', warmup: 1, window: 3 },
      simulate: { byzantine: { count: 1, attack: 'nan' } },
    });
    const reports: RoundReport[] = [];
    const result = await simulate(spec, { backend: 'cpu', onRound: (r) => reports.push(r) });
    expect(result.skippedRounds).to.equal(0);
    expect(result.params.every(Number.isFinite)).to.equal(true);
    const nan = result.health.ranks[3];
    expect([nan.byzantine, nan.delivered]).to.deep.equal([true, 0]);
    for (const r of reports) {
      expect(r.missing.map((m) => m.name)).to.deep.equal(['worker-3']);
      expect(r.missing[0].reason).to.match(/^rejected: non-finite: layer 0 'fc1.weight'/);
      const c = r.compression!;
      expect(c.pushes).to.equal(3);
      expect(c.bytes).to.equal(c.layerBytes.reduce((a, b) => a + b, 0));
      expect(r.bytesReceived).to.equal(c.bytes);
      expect(c.ratio).to.be.closeTo((3 * 4 * result.params.length) / c.bytes, 1e-9);
    }
    // re-plans after rounds 1 and 4, from the three honest tables
    expect(reports.map((r) => r.compression!.planId)).to.deep.equal([
      'baseline-r0',
      'baseline-r0',
      'lgreco-r2',
      'lgreco-r2',
      'lgreco-r2',
      'lgreco-r5',
    ]);
    expect(reports.map((r) => r.compression!.nextPlanId)).to.deep.equal([
      '',
      'lgreco-r2',
      '',
      '',
      'lgreco-r5',
      '',
    ]);
    const c = simulationReport(spec, result).compression!;
    expect(c.plans.map((p) => [p.planId, p.fromRound, p.tables])).to.deep.equal([
      ['baseline-r0', 0, 0],
      ['lgreco-r2', 2, 3],
      ['lgreco-r5', 5, 3],
    ]);
    expect(c.plans[1].budgetUsed).to.be.at.most(1);
    expect(c.perRound.map((r) => r.bytes)).to.deep.equal(reports.map((r) => r.compression!.bytes));
    expect(c.bytes).to.equal(c.perRound.reduce((a, r) => a + r.bytes, 0));
  });

  it('a vector of the wrong length is refused as the coordinator refuses its header-only push', async () => {
    const spec = validateJobSpec({
      model: { kind: 'mlp', hidden: [8] },
      data: { batchSize: 16, maxTrain: 500, maxTest: 50 },
      rounds: 2,
      workers: { min: 2, max: 3 },
      aggregation: { rule: 'median', f: 1 },
      evaluation: { every: 0 },
      compression: { kind: 'uniform' },
      simulate: { byzantine: { count: 1, attack: 'wrongSize' } },
    });
    const reasons: string[] = [];
    const result = await simulate(spec, {
      backend: 'cpu',
      onRound: (r) => reasons.push(...r.missing.map((m) => m.reason)),
    });
    expect(result.health.ranks.map((r) => r.delivered)).to.deep.equal([2, 2, 0]);
    expect(reasons).to.have.length(2);
    expect(reasons[0]).to.match(/^rejected: incomplete: truncated push: the vector has \d+ elements/);
  });
});
