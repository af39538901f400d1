import { expect } from 'chai';
import { formatTable, parseCli, runSpec, summarise, type Run } from '../../../bench/compression.ts';
import { validateJobSpec } from '../../../src/config/jobSpec.ts';

describe('bench:compression: specs and the summary table', () => {
  it('runs none / uniform powersgd r4 / lgreco α = 1 under the default rule with 2 Byzantine workers of 12', () => {
    const a = parseCli(['--quick']);
    expect([a.rounds, a.warmup, a.window, a.seeds]).to.deep.equal([60, 20, 20, [0, 1, 2]]);
    const specs = (['none', 'uniform', 'lgreco'] as const).map((c) => validateJobSpec(runSpec(c, 1, a)));
    expect(specs.map((s) => s.compression.kind)).to.deep.equal(['none', 'uniform', 'lgreco']);
    for (const s of specs) {
      expect(s.aggregation.rule).to.equal(validateJobSpec({}).aggregation.rule);
      expect([s.workers.max, s.aggregation.f, s.simulate?.byzantine.count]).to.deep.equal([12, 2, 2]);
      expect(s.seed).to.equal(1);
    }
    const lg = specs[2].compression;
    expect(lg.kind === 'lgreco' && [lg.alpha, lg.warmup, lg.window, lg.baseline]).to.deep.equal([
      1,
      20,
      20,
      { kind: 'powersgd', rank: 4, values: 'bf16' },
    ]);
  });

  it('pairs ratios and accuracy differences by seed; mean ± sample std and worst', () => {
    const runs: Run[] = [
      { config: 'none', seed: 0, accuracy: 0.8, bytes: 1000, wallSeconds: 1 },
      { config: 'none', seed: 1, accuracy: 0.7, bytes: 2000, wallSeconds: 1 },
      { config: 'uniform', seed: 0, accuracy: 0.79, bytes: 100, wallSeconds: 1 },
      { config: 'uniform', seed: 1, accuracy: 0.69, bytes: 200, wallSeconds: 1 },
      { config: 'lgreco', seed: 1, accuracy: 0.7, bytes: 40, wallSeconds: 1 },
      { config: 'lgreco', seed: 0, accuracy: 0.78, bytes: 60, wallSeconds: 1 },
    ];
    const rows = summarise(runs);
    const u = rows[1];
    const l = rows[2];
    expect(u.bytesVsNone.mean).to.be.closeTo(0.1, 1e-12);
    expect(u.accuracyVsNone.mean).to.be.closeTo(-0.01, 1e-12);
    // same seed: 40 / 200 and 60 / 100 (not the order the runs finished in)
    expect(l.bytesVsUniform.mean).to.be.closeTo(0.4, 1e-12);
    expect(l.accuracy.worst).to.equal(0.7);
    expect(l.accuracy.std).to.be.closeTo(Math.sqrt(2 * 0.04 ** 2), 1e-12);
    const table = formatTable(rows, 10);
    expect(table).to.contain('lgreco bytes ≤ 0.5 × uniform (mean over seeds): yes (0.4000)');
    expect(table).to.contain('lgreco accuracy ≥ uniform (mean): yes');
    expect(table).to.contain('uniform within 0.5 points of uncompressed (mean): NO (-1.00 pts)');
  });
});
