import { expect } from 'chai';
import {
  formatDecision,
  formatTable,
  mergedRuns,
  parseCli,
  runSpec,
  summarise,
  type Run,
} from '../../../bench/compression.ts';
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

  it('--baseline, --error-model and --configs reach the specs; bad values name the option', () => {
    const a = parseCli([
      '--baseline',
      'topk:0.01',
      '--error-model',
      'feedback',
      '--configs',
      'uniform,lgreco',
    ]);
    expect(a.configs).to.deep.equal(['uniform', 'lgreco']);
    const lg = validateJobSpec(runSpec('lgreco', 0, a)).compression;
    expect(lg.kind === 'lgreco' && [lg.baseline, lg.errorModel]).to.deep.equal([
      { kind: 'topk', density: 0.01, values: 'bf16' },
      'feedback',
    ]);
    const u = validateJobSpec(runSpec('uniform', 0, parseCli(['--baseline', 'qsgd:4']))).compression;
    expect(u.kind === 'uniform' && u.baseline).to.deep.equal({ kind: 'qsgd', bits: 4, bucket: 128 });
    expect(() => parseCli(['--baseline', 'zip:3'])).to.throw('--baseline: powersgd:RANK');
    expect(() => parseCli(['--baseline', 'topk'])).to.throw('--baseline');
    expect(() => parseCli(['--error-model', 'delta'])).to.throw('--error-model: step or feedback');
    expect(() => parseCli(['--configs', 'none,gzip'])).to.throw(
      "--configs: a list of none, uniform, lgreco (got 'gzip')",
    );
  });

  it('--merge takes an earlier file’s other runs of the same setup; compressed ones only with the same baseline', () => {
    const earlier = parseCli(['--quick']);
    const runs: Run[] = [
      { config: 'none', seed: 0, accuracy: 0.8 },
      { config: 'uniform', seed: 0, accuracy: 0.79 },
      { config: 'lgreco', seed: 0, accuracy: 0.78 },
      { config: 'none', seed: 7, accuracy: 0.8 },
    ];
    const file = { args: earlier, runs };
    const same = parseCli(['--quick', '--configs', 'lgreco']);
    expect(mergedRuns(file, same).map((r) => r.config)).to.deep.equal(['none', 'uniform']);
    const other = parseCli(['--quick', '--configs', 'lgreco', '--baseline', 'powersgd:8']);
    expect(mergedRuns(file, other).map((r) => r.config)).to.deep.equal(['none']);
    expect(() => mergedRuns(file, parseCli(['--configs', 'lgreco']))).to.throw(
      "--merge: the file's rounds is 60, this run's is 600",
    );
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

  it('--split validation evaluates on a held-out tenth of the training set', () => {
    const v = validateJobSpec(runSpec('lgreco', 0, parseCli(['--quick', '--split', 'validation'])));
    expect([v.evaluation.split, v.data.validation]).to.deep.equal(['validation', 0.1]);
    const t = validateJobSpec(runSpec('lgreco', 0, parseCli(['--quick'])));
    expect([t.evaluation.split, t.data.validation]).to.deep.equal(['test', 0]);
  });

  it('--model lm --workers 4: the character transformer on text, n = 4', () => {
    const a = parseCli(['--quick', '--model', 'lm', '--workers', '4', '--byzantine', '0']);
    const s = validateJobSpec(runSpec('lgreco', 2, a));
    expect([s.model.kind, s.data.kind, s.workers.max, s.aggregation.f, s.compression.kind]).to.deep.equal([
      'transformer',
      'text',
      4,
      0,
      'lgreco',
    ]);
  });

  it('--tables: each candidate of a re-plan with its S and E, the chosen one marked', () => {
    const text = formatDecision({
      planId: 'lgreco-r21',
      fromRound: 21,
      settings: ['powersgd rank 2 bf16', 'fp32'],
      expectedBytes: 552,
      budgetUsed: 0.9,
      tables: 10,
      decision: {
        budget: 1,
        baselineBytes: 1144,
        layers: [
          {
            name: 'fc.weight',
            settings: ['powersgd rank 4 bf16', 'powersgd rank 2 bf16'],
            bytes: [1104, 552],
            errors: [1, 0.9],
            chosen: 1,
          },
          { name: 'fc.bias', settings: ['fp32'], bytes: [40], errors: [0], chosen: 0 },
        ],
      },
    });
    expect(text.split('\n')).to.deep.equal([
      "lgreco-r21 (from round 21, median of 10 tables): budget ΣE(baseline) = 1.000e+0, chosen ΣE = 9.000e-1; bytes 592 of the baseline's 1144 (0.5175×)",
      '  fc.weight',
      '      powersgd rank 4 bf16     S     1104  E 1.000e+0',
      '    * powersgd rank 2 bf16     S      552  E 9.000e-1',
      '  fc.bias',
      '    * fp32                     S       40  E 0.000e+0',
    ]);
  });
});
