import { expect } from 'chai';
import { DEFAULT_EMA, validateJobSpec } from '../../../src/config/jobSpec.ts';
import {
  allCells,
  cellStats,
  gapsToClean,
  parseCli,
  recordIsCurrent,
  resolvedAggregation,
  runSpec,
  selectCells,
  withAddedFlagDefaults,
  withRecordedEma,
  type Run,
} from '../../../bench/robustness.ts';
import type { SimulationReport } from '../../../src/simulation/report.ts';
import { FLAG_DEFAULTS } from '../../../src/core/aggregation/flag/options.ts';

const cell = (id: string) => {
  const c = allCells().find((x) => x.id === id);
  if (!c) throw new Error(`no cell ${id}`);
  return c;
};

describe('bench:robustness grid', () => {
  it('gapsToClean: each attacked run against the clean run of the same f, data and seed', () => {
    const ids = ['mean/none/f2/iid', 'default/signflip/f2/iid', 'default/alie/f2/iid', 'default/none/f2/iid'];
    const cells = ids.map(cell);
    const runs = new Map<string, Run>();
    const put = (id: string, seed: number, acc: number | 'failed') =>
      runs.set(`${id}@${seed}`, {
        key: `${id}@${seed}`,
        cell: id,
        seed,
        spec: {},
        ...(acc === 'failed' ? { error: 'exit 1' } : { report: { finalAccuracy: acc } as SimulationReport }),
      });
    put('mean/none/f2/iid', 0, 0.78);
    put('mean/none/f2/iid', 1, 0.7);
    put('default/signflip/f2/iid', 0, 0.8);
    put('default/signflip/f2/iid', 1, 0.65);
    put('default/alie/f2/iid', 0, 'failed');
    put('default/alie/f2/iid', 2, 0.5); // seed 2 has no clean run: left out
    put('default/none/f2/iid', 0, 0.1); // not attacked: left out
    const grid = { cells, runs, skipped: new Map<string, string>(), seeds: [0, 1, 2] };
    const [g, ...rest] = gapsToClean(grid);
    expect(rest).to.deep.equal([]); // the mean has only its clean cell here
    expect(g.rule.key).to.equal('default');
    expect(g.runs).to.equal(3);
    expect(g.meanGap).to.be.closeTo((0.02 - 0.05 - 0.78) / 3, 1e-12);
    expect([g.below, g.under70, g.worstRun]).to.deep.equal([2, 2, 'default/alie/f2/iid@0']);
    expect(g.worstGap).to.be.closeTo(-0.78, 1e-12);
  });

  it('cellStats: mean, sample std and the worst seed; a failed seed counts as 0', () => {
    const s = cellStats([
      { seed: 0, finalAccuracy: 0.8 },
      { seed: 1, finalAccuracy: 0.7 },
      { seed: 2, finalAccuracy: 0.9 },
    ])!;
    expect(s.mean).to.be.closeTo(0.8, 1e-12);
    expect(s.std).to.be.closeTo(0.1, 1e-12); // sample std (n − 1)
    expect([s.worst, s.worstSeed, s.seeds, s.failed]).to.deep.equal([0.7, 1, 3, 0]);
    const withFailure = cellStats([{ seed: 0, finalAccuracy: 0.8 }, { seed: 4 }])!;
    expect([withFailure.seeds, withFailure.failed, withFailure.mean]).to.deep.equal([1, 1, 0.8]);
    expect(cellStats([{ seed: 0, finalAccuracy: Number.NaN }])!.worst).to.equal(0);
    expect(cellStats([{ seed: 0, finalAccuracy: 0.5 }])!.std).to.equal(0);
  });

  it('the spec of an attacked cell and of its clean reference (f = 2, iid)', () => {
    const spec = runSpec(cell('flag/signflip/f2/iid'), 0, 800, 100);
    const { name, ...rest } = spec;
    expect(name).to.equal('robustness-flag-signflip-f2-iid');
    expect(rest).to.deep.equal({
      seed: 0,
      model: { kind: 'cnn' },
      data: { kind: 'fashion-mnist', batchSize: 25, flip: true },
      optimizer: { kind: 'sgd', lr: 0.1, momentum: 0, weightDecay: 1e-4, ema: DEFAULT_EMA },
      rounds: 800,
      workers: { min: 12, max: 12, momentum: 0.9 },
      aggregation: { rule: 'flag', f: 2, pre: [], options: {} },
      checkpoint: { every: 0 },
      evaluation: { every: 100 },
      simulate: { byzantine: { count: 2, attack: 'signflip', options: {} } },
    });
    // the clean reference: the same 12 shards, the 2 Byzantine ranks absent (crashed from round 0), so the 10
    // honest workers train on the shards they hold under attack; a round closes on their 10 gradients
    const clean = runSpec(cell('mean/none/f2/iid'), 0, 800, 100);
    expect(clean.workers).to.deep.equal({ min: 10, max: 12, momentum: 0.9 });
    expect(clean.simulate).to.deep.equal({ byzantine: { count: 2, attack: 'crash', options: {} } });
    expect({ ...clean, name: '', workers: {}, simulate: {}, aggregation: {} }).to.deep.equal({
      ...spec,
      name: '',
      workers: {},
      simulate: {},
      aggregation: {},
    });
    expect(runSpec(cell('tm-clip-nnm/alie-t1.5/f2/iid'), 0, 800, 100).simulate).to.deep.equal({
      byzantine: { count: 2, attack: 'alie', options: { tau: 1.5 } },
    });
  });

  it('f Byzantine of n = 12 and the data option shape per heterogeneity', () => {
    const s = runSpec(cell('median/ipm-e0.1/f5/dir0.3'), 2, 100, 50);
    expect(s.workers).to.deep.equal({ min: 12, max: 12, momentum: 0.9 });
    expect(s.aggregation!.f).to.equal(5);
    expect(s.simulate!.byzantine!.count).to.equal(5);
    expect(s.data).to.deep.include({ shardBy: 'dirichlet', alpha: 0.3 });
    expect(runSpec(cell('mean/none/f3/dir1'), 0, 100, 50).workers).to.deep.include({ min: 9, max: 12 });
  });

  it('every iid attack spec is admitted (each attack parameterisation exists in its schema)', () => {
    for (const c of allCells().filter((x) => x.data.key === 'iid' && x.f === 2 && x.rule.key === 'mean')) {
      expect(() => validateJobSpec(runSpec(c, 0, 10, 5)), c.id).not.to.throw();
    }
  });

  it('--quick: 2 rules × 6 attacks × f ∈ {2, 3} × 2 data, plus the clean mean of each (f, data), on the MLP', () => {
    const args = parseCli(['--quick']);
    const cells = selectCells(args);
    expect(cells).to.have.length(2 * 6 * 2 * 2 + 2 * 2);
    expect(args.setting).to.deep.equal({ model: 'mlp', split: 'test', ema: DEFAULT_EMA });
    expect([args.rounds, args.evalEvery]).to.deep.equal([300, 100]);
    expect(cells.filter((c) => c.attack.attack === null).map((c) => c.id)).to.have.members([
      'mean/none/f2/iid',
      'mean/none/f3/iid',
      'mean/none/f2/dir0.3',
      'mean/none/f3/dir0.3',
    ]);
    expect(new Set(cells.map((c) => c.rule.key))).to.deep.equal(new Set(['default', 'tm-clip-nnm', 'mean']));
    // --rules replaces the quick rule set (the previous default beside the new one)
    const withPrev = selectCells(parseCli(['--quick', '--rules', 'default,tm-clip-nnm,prev-default']));
    expect(withPrev).to.have.length(3 * 6 * 2 * 2 + 2 * 2);
  });

  it('--split validation holds out 10 % and evaluates on it; --model picks the network; bad values are refused', () => {
    const args = parseCli(['--cells', 'flag/alie/f2/iid', '--split', 'validation', '--model', 'mlp']);
    const spec = runSpec(cell('flag/alie/f2/iid'), 0, 100, 50, args.setting);
    expect(spec.model).to.deep.equal({ kind: 'mlp' });
    expect(spec.data).to.deep.include({ validation: 0.1 });
    expect(spec.evaluation).to.deep.equal({ every: 50, split: 'validation' });
    expect(() => validateJobSpec(spec)).not.to.throw();
    expect(parseCli(['--required']).setting).to.deep.equal({ model: 'cnn', split: 'test', ema: DEFAULT_EMA });
    expect(parseCli(['--quick', '--ema', '0.5']).setting.ema).to.equal(0.5);
    expect(() => parseCli(['--quick', '--ema', '1'])).to.throw(/--ema must be a number in \[0, 1\)/);
    expect(() => parseCli(['--split', 'train'])).to.throw(/--split must be 'test' or 'validation'/);
    expect(() => parseCli(['--model', 'resnet'])).to.throw(/--model must be one of cnn, mlp/);
  });

  it('a run recorded before optimizer.ema ran without an average: it matches --ema 0 and no other decay', () => {
    const setting = { model: 'mlp' as const, split: 'test' as const };
    const now0 = runSpec(cell('default/alie/f3/iid'), 0, 10, 5, { ...setting, ema: 0 });
    const now9 = runSpec(cell('default/alie/f3/iid'), 0, 10, 5, { ...setting, ema: 0.9 });
    const { ema, ...before } = now0.optimizer as { ema: number };
    expect(ema).to.equal(0);
    const recorded = { ...now0, optimizer: before as typeof now0.optimizer };
    expect(JSON.stringify(withRecordedEma(recorded))).to.equal(JSON.stringify(now0));
    expect(JSON.stringify(withRecordedEma(recorded))).to.not.equal(JSON.stringify(now9));
    expect(withRecordedEma(now9)).to.equal(now9);
    expect(validateJobSpec(now9).optimizer.ema).to.equal(0.9);
  });

  it('the previous default stays pinned: flag alone, unscaled, whatever the defaults of this checkout', () => {
    const prev = cell('prev-default/alie/f3/iid');
    expect(prev.rule.rule).to.equal('flag');
    expect(prev.rule.pre).to.deep.equal([]);
    expect(prev.rule.options).to.deep.include({ rescale: 'none', r: 'auto', signAware: true });
  });

  it('--required is the earlier 13 cells; --cells patterns extend missing parts; no selection is an error', () => {
    expect(selectCells(parseCli(['--required']))).to.have.length(13);
    const ids = selectCells(parseCli(['--cells', 'flag/alie'])).map((c) => c.id);
    expect(ids).to.include('flag/alie/f5/dir1');
    expect(ids.every((id) => id.startsWith('flag/alie/') || id.startsWith('mean/none/'))).to.equal(true);
    expect(() => selectCells(parseCli([]))).to.throw(/choose a selection/);
    expect(() => parseCli(['--f', '4'])).to.throw(/--f: 4 is not one of 1, 2, 3, 5/);
  });

  it('a run records what its aggregation resolves to, so a resumed grid notices changed defaults', () => {
    const spec = runSpec(cell('default/alie/f3/iid'), 0, 10, 5);
    // the spec leaves the options out; what they mean is the checkout's defaults, written down
    expect(spec.aggregation!.options).to.deep.equal({});
    const r = resolvedAggregation(spec) as { rule: string; options: Record<string, unknown> };
    expect(r.options).to.deep.equal({ ...FLAG_DEFAULTS });
    // explicit options win over the defaults
    const prev = resolvedAggregation(runSpec(cell('prev-default/alie/f3/iid'), 0, 10, 5)) as typeof r;
    expect(prev.options.rescale).to.equal('none');
    expect(resolvedAggregation(runSpec(cell('median/alie/f3/iid'), 0, 10, 5))).to.deep.equal({
      rule: 'median',
      pre: [],
      options: {},
    });
  });

  it('a recorded run is kept only when its report, spec and resolved aggregation are what this checkout would run', () => {
    const spec = runSpec(cell('flag-comb/alie/f3/iid'), 0, 10, 5);
    const run = (over: Partial<Run>): Run => ({
      key: 'flag-comb/alie/f3/iid@0',
      cell: 'flag-comb/alie/f3/iid',
      seed: 0,
      spec,
      resolved: resolvedAggregation(spec),
      report: { finalAccuracy: 0.8 } as SimulationReport,
      ...over,
    });
    expect(recordIsCurrent(run({}), spec)).to.equal(true);
    expect(recordIsCurrent(undefined, spec)).to.equal(false);
    expect(recordIsCurrent(run({ report: undefined, error: 'exit 1' }), spec)).to.equal(false);
    expect(recordIsCurrent(run({ spec: { ...spec, rounds: 11 } }), spec)).to.equal(false);
    // the pinned previous default: a record that ran the trusted-mean step is not its run
    const r = resolvedAggregation(spec) as { options: Record<string, unknown> };
    expect(r.options.step).to.equal('subspace');
    const other = { ...r, options: { ...r.options, step: 'trusted-mean' } };
    expect(recordIsCurrent(run({ resolved: other }), spec)).to.equal(false);
    // a record from before `step` existed ran the subspace step: it is this key's run, not the default's
    const { step: _s, ...withoutStep } = r.options;
    expect(recordIsCurrent(run({ resolved: { ...r, options: withoutStep } }), spec)).to.equal(true);
    const defaultSpec = runSpec(cell('default/alie/f3/iid'), 0, 10, 5);
    const asDefault = run({ spec: defaultSpec, resolved: { ...r, options: withoutStep } });
    expect(recordIsCurrent(asDefault, defaultSpec)).to.equal(false);
  });

  it('a run recorded before a flag option existed counts as run with its default, and only then', () => {
    const now = resolvedAggregation(runSpec(cell('default/alie/f3/iid'), 0, 10, 5)) as {
      options: Record<string, unknown>;
    };
    // warmStart came in as false, today's default: a run recorded without it counts as today's
    const { warmStart: _warm, ...before } = now.options;
    expect(_warm).to.equal(false);
    const recorded = { rule: 'flag', pre: [], options: before };
    expect(JSON.stringify(withAddedFlagDefaults(recorded))).to.equal(JSON.stringify(now));
    // a recorded value that differs from today's still differs
    const other = { rule: 'flag', pre: [], options: { ...before, rescale: 'none' } };
    expect(JSON.stringify(withAddedFlagDefaults(other))).to.not.equal(JSON.stringify(now));
    // step came in as 'subspace' and is 'trusted-mean' today: a run recorded without it ran the subspace step
    const { step: _step, ...beforeStep } = now.options;
    expect(_step).to.equal('trusted-mean');
    const subspace = withAddedFlagDefaults({ rule: 'flag', pre: [], options: beforeStep }) as typeof now;
    expect(subspace.options.step).to.equal('subspace');
    expect(JSON.stringify(subspace)).to.not.equal(JSON.stringify(now));
    // vote came in as 'unit': a run recorded without it ran with 'unit', and a run that recorded 'norm'
    // (robustness-quick-vote.json, when it was the default) is not today's default run
    const { vote: _vote, ...beforeVote } = now.options;
    const legacy = withAddedFlagDefaults({ rule: 'flag', pre: [], options: beforeVote }) as typeof now;
    expect(legacy.options.vote).to.equal('unit');
    expect(JSON.stringify(legacy)).to.equal(
      JSON.stringify({ ...now, options: { ...now.options, vote: 'unit' } }),
    );
    const asNorm = { rule: 'flag', pre: [], options: { ...now.options, vote: 'norm' } };
    expect(JSON.stringify(withAddedFlagDefaults(asNorm))).to.not.equal(JSON.stringify(now));
    // signDirection came in as 'principal-axis' and is 'combined' today: a run recorded without it is not today's
    const { signDirection: _sd, ...beforeSign } = now.options;
    expect(_sd).to.equal('combined');
    const axis = withAddedFlagDefaults({ rule: 'flag', pre: [], options: beforeSign }) as typeof now;
    expect(axis.options.signDirection).to.equal('principal-axis');
    expect(JSON.stringify(axis)).to.not.equal(JSON.stringify(now));
    // other rules and missing records are left as they are
    const median = { rule: 'median', pre: [], options: {} };
    expect(withAddedFlagDefaults(median)).to.deep.equal(median);
    expect(withAddedFlagDefaults(undefined)).to.equal(undefined);
  });
});
