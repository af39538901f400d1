import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import {
  DEFAULT_EMA,
  fallbackAggregation,
  JobSpecError,
  LIMITS,
  parseJobSpec,
  validateJobSpec,
} from '../../../src/config/jobSpec.ts';

/** The YAML block under "A job spec" in the README: every field with its default. */
function readmeJobSpec(): Record<string, unknown> {
  const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
  const at = readme.indexOf('A job spec');
  expect(at, 'README has a job spec section').to.be.greaterThan(-1);
  const block = /```yaml\n([\s\S]*?)```/.exec(readme.slice(at));
  expect(block, 'README job spec has a yaml block').to.not.equal(null);
  return YAML.parse(block![1]) as Record<string, unknown>;
}

/** Sorted key paths of a plain object tree (arrays and scalars are leaves). */
function keyPaths(v: unknown, prefix = ''): string[] {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return [prefix];
  const entries = Object.entries(v);
  if (entries.length === 0) return [prefix];
  return entries.flatMap(([k, x]) => keyPaths(x, prefix ? `${prefix}.${k}` : k)).sort();
}

function issues(value: unknown): string[] {
  try {
    validateJobSpec(value);
  } catch (e) {
    expect(e).to.be.instanceOf(JobSpecError);
    return (e as JobSpecError).issues;
  }
  throw new Error(`accepted: ${JSON.stringify(value)}`);
}

describe('config: job spec', () => {
  it('the defaults of {} are the ones the README documents, field for field', () => {
    const documented = readmeJobSpec();
    const defaults = validateJobSpec({});
    expect(validateJobSpec(documented)).to.deep.equal(defaults);
    // every defaulted field is in the README block, and the block has nothing else
    expect(keyPaths(documented)).to.deep.equal(keyPaths(defaults));
  });

  it('a partial section keeps the defaults of its other fields (stated once, in the section)', () => {
    const spec = validateJobSpec({ workers: { max: 4 }, optimizer: { kind: 'sgd', momentum: 0.5 } });
    const defaults = validateJobSpec({});
    expect(spec.workers).to.deep.equal({ ...defaults.workers, max: 4 });
    expect(spec.optimizer).to.deep.equal({ ...defaults.optimizer, momentum: 0.5 });
    expect(validateJobSpec({ optimizer: { kind: 'adam' } }).optimizer).to.deep.equal({
      kind: 'adam',
      lr: 1e-3,
      beta1: 0.9,
      beta2: 0.999,
      eps: 1e-8,
      weightDecay: 0,
      ema: DEFAULT_EMA,
    });
    expect(validateJobSpec({ model: { kind: 'mlp' } }).model).to.deep.equal(defaults.model);
  });

  it('a validated spec validates again to itself (what the coordinator stores, it can re-read)', () => {
    const spec = validateJobSpec({
      workers: { roundTimeout: '2m' },
      checkpoint: { dir: './runs//a/' },
      simulate: { byzantine: { count: 2, attack: 'alie', options: { tau: 1.5 } } },
    });
    expect(validateJobSpec(JSON.parse(JSON.stringify(spec)))).to.deep.equal(spec);
    expect(spec.checkpoint.dir).to.equal('runs/a');
    expect(spec.workers.roundTimeout).to.equal(120_000);
  });

  it('errors name the field path and what is allowed', () => {
    expect(issues({ aggregation: { rule: 'geometricMedian', options: { T: 1e12, tol: 0 } } })).to.deep.equal([
      'aggregation.options.T: at most 10000',
    ]);
    expect(
      issues({ aggregation: { rule: 'geometricMedian', options: { maxIterations: 1e12 } } }),
    ).to.deep.equal(['aggregation.options.maxIterations: unknown option (known: compat, nu, T, tol)']);
    expect(issues({ workers: { max: 5000 } })).to.deep.equal(['workers.max: at most 1024']);
    expect(issues({ workers: { roundTimeout: 0 } })[0]).to.match(
      /^workers\.roundTimeout: must be between 100 ms/,
    );
    expect(issues({ optimizer: { kind: 'adam', beta2: 1 } })).to.deep.equal([
      'optimizer.beta2: must be less than 1',
    ]);
    expect(issues({ optimizer: { kind: 'sgd', ema: 1 } })).to.deep.equal([
      'optimizer.ema: must be less than 1',
    ]);
    expect(issues({ optimizer: { kind: 'adam', ema: -0.1 } })).to.deep.equal(['optimizer.ema: at least 0']);
    expect(issues({ optimizer: { kind: 'sgd', nesterov: true } })).to.deep.equal([
      'optimizer.nesterov: needs momentum > 0',
    ]);
    expect(issues({ bogus: 1 })[0]).to.match(/^bogus: unknown field \(known: name, seed, model/);
    expect(issues({ model: { kind: 'mlp', hidden: [1e9] } })).to.include(
      'model.hidden: 795,000,000,010 parameters; at most 268,435,456: use narrower layers',
    );
  });

  it('rule preconditions are checked against workers.max, through the pre-aggregators', () => {
    expect(issues({ workers: { max: 3 }, aggregation: { rule: 'krum', f: 1 } })).to.deep.equal([
      'aggregation.f: krum needs n > 2f + 2 (n = workers.max = 3, f = 1): lower f or raise workers.max',
    ]);
    expect(
      validateJobSpec({ workers: { max: 5 }, aggregation: { rule: 'krum', f: 1 } }).aggregation.f,
    ).to.equal(1);
    // bucketing(s=2) halves the rule's inputs: 8 workers → 4 buckets, and median needs 2f < n
    expect(
      issues({ workers: { max: 8 }, aggregation: { rule: 'median', f: 2, pre: ['bucketing(s=2)'] } }),
    ).to.deep.equal([
      'aggregation.f: median needs 2f < n (n = 4 inputs after the pre-aggregators, f = 2): lower f or raise workers.max',
    ]);
    expect(issues({ workers: { max: 8 }, aggregation: { rule: 'flag', options: { r: 9 } } })[0]).to.match(
      /^aggregation\.options\.r: flag needs r ≤ n/,
    );
    expect(issues({ workers: { max: 4 }, simulate: { byzantine: { count: 5 } } })).to.deep.equal([
      'simulate.byzantine.count: at most workers.max (4)',
    ]);
  });

  it('pre-aggregator inline options and preOptions are validated against their schemas', () => {
    expect(issues({ aggregation: { pre: ['clip(c=-1)'] } })).to.deep.equal([
      "aggregation.pre.0: clip: option 'c': at least 0",
    ]);
    expect(issues({ aggregation: { pre: ['clip(x=1)'] } })).to.deep.equal([
      "aggregation.pre.0: clip: option 'x': unknown option (known: c)",
    ]);
    expect(
      issues({ aggregation: { pre: ['nnm'], options: { preOptions: { nnm: { f: 'two' } } } } }),
    ).to.deep.equal(["aggregation.pre.0: nnm: option 'f': expected number"]);
    expect(issues({ aggregation: { pre: ['clip'], options: { preOptions: { nnm: {} } } } })).to.deep.equal([
      "aggregation.options.preOptions.nnm: no pre-aggregator 'nnm' in aggregation.pre",
    ]);
    const ok = validateJobSpec({
      aggregation: {
        pre: ['clip(2)', 'Bucketing(s=2, seed=7)'],
        options: { preOptions: { clip: { c: 3 } } },
      },
    });
    expect(ok.aggregation.pre).to.deep.equal(['clip(2)', 'Bucketing(s=2, seed=7)']);
  });

  it('checkpoint.dir is a relative sub-directory: absolute paths and .. are refused', () => {
    expect(issues({ checkpoint: { dir: '../../x' } })[0]).to.match(
      /^checkpoint\.dir: must not contain '\.\.'/,
    );
    expect(issues({ checkpoint: { dir: 'a/../../x' } })[0]).to.match(
      /^checkpoint\.dir: must not contain '\.\.'/,
    );
    expect(issues({ checkpoint: { dir: '/etc/cron.d' } })[0]).to.match(/^checkpoint\.dir: must be relative/);
    expect(issues({ checkpoint: { dir: 'C:\\x' } })[0]).to.match(/^checkpoint\.dir: must be relative/);
    expect(validateJobSpec({ checkpoint: { dir: '.' } }).checkpoint.dir).to.equal(undefined);
  });

  it('data.shardBy dirichlet defaults alpha to 1; alpha without it, out of bounds, or bad names are refused', () => {
    expect(validateJobSpec({}).data).to.not.have.property('alpha');
    expect(validateJobSpec({ data: { shardBy: 'dirichlet' } }).data).to.include({
      shardBy: 'dirichlet',
      alpha: 1,
    });
    const spec = validateJobSpec({ data: { shardBy: 'dirichlet', alpha: 0.3, validation: 0.1 } });
    expect(spec.data).to.include({ shardBy: 'dirichlet', alpha: 0.3, validation: 0.1 });
    expect(validateJobSpec(JSON.parse(JSON.stringify(spec)))).to.deep.equal(spec);
    expect(issues({ data: { alpha: 0.3 } })).to.deep.equal([
      'data.alpha: only with shardBy: dirichlet (add shardBy: dirichlet or remove alpha)',
    ]);
    expect(issues({ data: { shardBy: 'worker', alpha: 1 } })[0]).to.match(
      /^data\.alpha: only with shardBy: dirichlet/,
    );
    expect(issues({ data: { shardBy: 'dirichlet', alpha: 0 } })).to.deep.equal(['data.alpha: at least 0.01']);
    expect(issues({ data: { shardBy: 'dirichlet', alpha: 1e4 } })).to.deep.equal([
      'data.alpha: at most 1000',
    ]);
    expect(issues({ data: { shardBy: 'label' } })).to.deep.equal([
      "data.shardBy: must be 'worker' or 'dirichlet'",
    ]);
  });

  it('data.validation is a fraction in [0, 0.5]; evaluation.split validation needs it > 0', () => {
    expect(validateJobSpec({}).data.validation).to.equal(0);
    expect(validateJobSpec({}).evaluation.split).to.equal('test');
    expect(issues({ data: { validation: 0.6 } })).to.deep.equal(['data.validation: at most 0.5']);
    expect(issues({ data: { validation: -0.1 } })).to.deep.equal(['data.validation: at least 0']);
    expect(issues({ evaluation: { split: 'validation' } })).to.deep.equal([
      "evaluation.split: 'validation' needs data.validation > 0 (e.g. data: { validation: 0.1 })",
    ]);
    expect(issues({ evaluation: { split: 'train' } })).to.deep.equal([
      "evaluation.split: must be 'test' or 'validation'",
    ]);
    const spec = validateJobSpec({ data: { validation: 0.2 }, evaluation: { split: 'validation' } });
    expect(spec.evaluation.split).to.equal('validation');
    expect(validateJobSpec(JSON.parse(JSON.stringify(spec)))).to.deep.equal(spec);
  });

  it('parseJobSpec reads YAML and reports bad YAML at the root', () => {
    expect(parseJobSpec('rounds: 7\nworkers: { max: 2 }\n').rounds).to.equal(7);
    expect(() => parseJobSpec('rounds: [')).to.throw(JobSpecError, /\(root\): not valid YAML/);
    expect(LIMITS.maxWorkers).to.equal(1024);
  });

  it('guard.fallback is checked like aggregation (rule, options, preconditions) when rollback is on', () => {
    const base = { workers: { max: 3 }, aggregation: { rule: 'median', f: 1 } };
    expect(issues({ ...base, guard: { rollback: true, fallback: { rule: 'krum' } } })).to.deep.equal([
      'guard.fallback.f: krum needs n > 2f + 2 (n = workers.max = 3, f = 1): lower f or raise workers.max',
    ]);
    expect(issues({ ...base, guard: { rollback: true, fallback: { rule: 'nope' } } })[0]).to.match(
      /^guard\.fallback\.rule: unknown rule 'nope'/,
    );
    expect(
      issues({
        ...base,
        guard: { rollback: true, fallback: { rule: 'trimmed-mean', options: { x: 1 } } },
      })[0],
    ).to.match(/^guard\.fallback\.options\.x: unknown option/);
    expect(issues({ guard: { lossJump: 1, fallback: { f: -1 } } })).to.have.length(2);
    expect(issues({ guard: { enabled: false, rollback: true } })).to.deep.equal([
      'guard.rollback: needs guard.enabled: true (its signals are what trigger a rollback)',
    ]);
    const spec = validateJobSpec({ ...base, guard: { rollback: true } });
    expect(fallbackAggregation(spec)).to.deep.equal({ rule: 'median', f: 1, pre: [], options: {} });
  });

  it('compression: kind none | uniform | lgreco, with the issue’s defaults, fields only where they apply', () => {
    expect(validateJobSpec({}).compression).to.deep.equal({ kind: 'none', encoding: 'fp32' });
    expect(validateJobSpec({ compression: { kind: 'lgreco' } }).compression).to.deep.equal({
      kind: 'lgreco',
      encoding: 'fp32',
      baseline: { kind: 'powersgd', rank: 4, values: 'bf16' },
      compressors: ['powersgd', 'topk', 'qsgd'],
      alpha: 1,
      window: 200,
      warmup: 100,
      errorModel: 'feedback',
      factorValues: ['bf16', 'int8', 'int4'],
    });
    // the issue's spec, verbatim
    const issueSpec = parseJobSpec(
      'compression:\n  kind: lgreco\n  compressors: [powersgd, topk, qsgd]\n  baseline: { kind: powersgd, rank: 4 }\n  alpha: 1\n  window: 200\n  warmup: 100\n',
    );
    expect(issueSpec.compression).to.deep.equal(
      validateJobSpec({ compression: { kind: 'lgreco' } }).compression,
    );
    expect(
      validateJobSpec({ compression: { kind: 'uniform', baseline: { kind: 'topk', density: 0.05 } } })
        .compression,
    ).to.deep.equal({
      kind: 'uniform',
      encoding: 'fp32',
      baseline: { kind: 'topk', density: 0.05, values: 'bf16' },
    });
    // re-validating the output gives the output (what workers read from spec_json)
    const out = validateJobSpec({ compression: { kind: 'lgreco', window: 5, warmup: 0 } });
    expect(validateJobSpec(JSON.parse(JSON.stringify(out))).compression).to.deep.equal(out.compression);

    expect(issues({ compression: { kind: 'uniform', alpha: 2 } })).to.deep.equal([
      'compression.alpha: only with kind: lgreco (set kind: lgreco, or remove alpha)',
    ]);
    expect(issues({ compression: { baseline: { kind: 'qsgd' } } })).to.deep.equal([
      'compression.baseline: only with kind: uniform or lgreco (set one, or remove baseline)',
    ]);
    expect(issues({ compression: { kind: 'gzip' } })).to.deep.equal([
      "compression.kind: must be 'none', 'uniform' or 'lgreco'",
    ]);
    expect(
      issues({
        compression: {
          kind: 'lgreco',
          compressors: ['topk', 'zip'],
          baseline: { kind: 'powersgd', rank: 0 },
        },
      }),
    ).to.deep.equal([
      "compression.compressors.1: must be one of 'powersgd', 'topk', 'randk', 'qsgd'",
      'compression.baseline.rank: at least 1',
    ]);
    expect(issues({ compression: { kind: 'lgreco', compressors: ['topk', 'topk'] } })).to.deep.equal([
      'compression.compressors: lists a compressor twice',
    ]);
    expect(validateJobSpec({ compression: { kind: 'lgreco' } }).compression).to.include({
      errorModel: 'feedback',
    });
    expect(validateJobSpec({ compression: { kind: 'lgreco', errorModel: 'step' } }).compression).to.include({
      errorModel: 'step',
    });
    // PowerSGD factor encodings: the baseline's own first, then the integer codes; validated like the rest
    expect(
      validateJobSpec({
        compression: { kind: 'lgreco', baseline: { kind: 'powersgd', rank: 2, values: 'int8' } },
      }).compression,
    ).to.deep.include({
      baseline: { kind: 'powersgd', rank: 2, values: 'int8' },
      factorValues: ['int8', 'int4'],
    });
    expect(
      validateJobSpec({ compression: { kind: 'lgreco', factorValues: ['bf16'] } }).compression,
    ).to.deep.include({ factorValues: ['bf16'] });
    expect(issues({ compression: { kind: 'lgreco', factorValues: ['bf16', 'int3'] } })).to.deep.equal([
      "compression.factorValues.1: must be 'fp32', 'bf16', 'int8' or 'int4'",
    ]);
    expect(issues({ compression: { kind: 'lgreco', factorValues: ['int8', 'int8'] } })).to.deep.equal([
      'compression.factorValues: lists an encoding twice',
    ]);
    expect(issues({ compression: { kind: 'lgreco', factorValues: [] } })).to.deep.equal([
      'compression.factorValues: at least one encoding (e.g. [bf16, int8, int4])',
    ]);
    expect(issues({ compression: { kind: 'uniform', factorValues: ['int8'] } })).to.deep.equal([
      'compression.factorValues: only with kind: lgreco (set kind: lgreco, or remove factorValues)',
    ]);
    expect(
      issues({ compression: { kind: 'uniform', baseline: { kind: 'topk', values: 'int8' } } }),
    ).to.deep.equal(["compression.baseline.values: must be 'fp32' or 'bf16'"]);
    expect(issues({ compression: { kind: 'lgreco', errorModel: 'delta' } })).to.deep.equal([
      "compression.errorModel: must be 'step' or 'feedback'",
    ]);
    expect(issues({ compression: { kind: 'uniform', errorModel: 'feedback' } })).to.deep.equal([
      'compression.errorModel: only with kind: lgreco (set kind: lgreco, or remove errorModel)',
    ]);
    expect(issues({ compression: { kind: 'lgreco', alpha: 0, window: 0 } })).to.deep.equal([
      'compression.alpha: must be greater than 0',
      'compression.window: at least 1',
    ]);
    expect(issues({ compression: { kind: 'uniform', baseline: { kind: 'qsgd', bits: 9 } } })).to.deep.equal([
      'compression.baseline.bits: at most 8',
    ]);
    expect(
      issues({ compression: { kind: 'uniform', baseline: { kind: 'powersgd', rnak: 2 } } }),
    ).to.deep.equal(['compression.baseline.rnak: unknown field (known: kind, rank, values)']);
  });
});
