/**
 * Fuzzing the job spec at the edge (fast-check): arbitrary JSON/YAML-like values, mutations of valid specs, and
 * option objects built from every rule's, pre-aggregator's and attack's option names. validateJobSpec either
 * returns a spec that satisfies every bound — and whose pipeline and attack construct and run on a small round to
 * completion — or throws a JobSpecError naming a field; never anything else.
 *
 * Runs per property: PHALANX_FUZZ_RUNS (default 500; the per-registry property runs max(60, runs/8) per entry: ≈ 4,000 cases in
 * `npm test`); `npm run fuzz` runs more.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { z } from 'zod';
import { JobSpecError, LIMITS, validateJobSpec, type JobSpec } from '../../src/config/jobSpec.ts';
import { createAggregationPipeline } from '../../src/core/aggregation/pipeline.ts';
import { createOptimizer } from '../../src/core/optim/index.ts';
import { PRE_OPTION_SCHEMAS, RULE_OPTION_SCHEMAS } from '../../src/core/aggregation/ruleOptionSchemas.ts';
import { ATTACK_OPTION_SCHEMAS } from '../../src/core/attacks/attackOptionSchemas.ts';
import { PreconditionError } from '../../src/core/aggregation/types.ts';
import { createAttack, listAttacks } from '../../src/core/attacks/registry.ts';
import { AttackError } from '../../src/core/attacks/types.ts';
import { listRules } from '../../src/core/aggregation/registry.ts';
import { Rng } from '../../src/core/random.ts';
import { parameterCount } from '../../src/models/parameterCount.ts';

const RUNS = Number(process.env['PHALANX_FUZZ_RUNS'] ?? 500);
const SEED =
  process.env['PHALANX_FUZZ_SEED'] === undefined ? undefined : Number(process.env['PHALANX_FUZZ_SEED']);
const params = { numRuns: RUNS, seed: SEED };

const TOP_LEVEL = [
  'name',
  'seed',
  'model',
  'data',
  'optimizer',
  'rounds',
  'workers',
  'aggregation',
  'compression',
  'checkpoint',
  'evaluation',
  'simulate',
];

/** The property every input must satisfy. */
function check(input: unknown): void {
  let spec: JobSpec;
  try {
    spec = validateJobSpec(input);
  } catch (e) {
    expect(e, String((e as Error)?.stack)).to.be.instanceOf(JobSpecError);
    const err = e as JobSpecError;
    expect(err.issues.length).to.be.greaterThan(0);
    expect(err.fields).to.have.length(err.issues.length);
    const given =
      typeof input === 'object' && input !== null && !Array.isArray(input) ? Object.keys(input) : [];
    const named = (field: string) => (key: string) => field === key || field.startsWith(`${key}.`);
    for (const field of err.fields) {
      expect(
        field === '(root)' || TOP_LEVEL.some(named(field)) || given.some(named(field)),
        `issue names no field: ${err.message}`,
      ).to.equal(true);
    }
    return;
  }
  satisfiesBounds(spec);
  runsBounded(spec);
}

function satisfiesBounds(spec: JobSpec): void {
  expect(spec.workers.min).to.be.within(1, spec.workers.max);
  expect(spec.workers.max).to.be.within(1, LIMITS.maxWorkers);
  expect(spec.workers.roundTimeout).to.be.within(LIMITS.minDurationMs, LIMITS.maxDurationMs);
  expect(spec.workers.heartbeatTtl).to.be.within(LIMITS.minHeartbeatTtlMs, LIMITS.maxDurationMs);
  expect(spec.rounds).to.be.within(1, LIMITS.maxRounds);
  expect(spec.data.batchSize).to.be.within(1, LIMITS.maxBatchSize);
  expect(parameterCount(spec.model)).to.be.within(1, LIMITS.maxParameters);
  expect(spec.aggregation.f).to.be.within(0, spec.workers.max);
  expect(spec.seed).to.be.within(0, 2 ** 32 - 1);
  if (spec.checkpoint.dir !== undefined) {
    expect(spec.checkpoint.dir.split('/')).to.not.include('..');
    expect(spec.checkpoint.dir).to.match(/^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/);
  }
  if (spec.simulate) expect(spec.simulate.byzantine.count).to.be.within(0, spec.workers.max);
  // what the coordinator stores, it reads back unchanged
  const stored = JSON.stringify(spec); // (JSON has no -0: compare as stored)
  expect(JSON.stringify(validateJobSpec(JSON.parse(stored)))).to.equal(stored);
}

/** The admitted pipeline and attack construct, and run one round of workers.max small vectors to completion. */
function runsBounded(spec: JobSpec): void {
  createOptimizer(spec.optimizer, 4);
  const pipeline = createAggregationPipeline({ ...spec.aggregation });
  const n = Math.min(spec.workers.max, 24);
  const rng = new Rng(spec.seed);
  const vectors = Array.from({ length: n }, () => Float32Array.from({ length: 4 }, () => rng.next() * 2 - 1));
  if (n === spec.workers.max) {
    try {
      pipeline.aggregate(
        vectors,
        vectors.map((_, i) => `w${i}`),
      );
    } catch (e) {
      // only preconditions that depend on the round's data (or on the real model's size) may fail here
      expect(e, String((e as Error)?.stack)).to.be.instanceOf(PreconditionError);
      expect((e as Error).message).to.match(/y0|signThreshold|minTrust|valid/);
    }
  }
  if (spec.simulate) {
    const attack = createAttack(spec.simulate.byzantine.attack, spec.simulate.byzantine.options);
    if (attack.behaviour === undefined) {
      try {
        attack.craft({ honest: vectors.slice(0, 3), own: vectors[0], n: 5, f: 2, rng, round: 0, d: 4 });
      } catch (e) {
        expect(e, String((e as Error)?.stack)).to.be.instanceOf(AttackError);
      }
    }
  }
}

// --- generators ---------------------------------------------------------------------------------------------

const extremeNumber = fc.constantFrom(
  0,
  1,
  -1,
  0.5,
  2,
  3,
  7,
  1e-12,
  1e-13,
  1e3,
  1e4,
  10_001,
  1_001,
  1e7,
  1e12,
  1e300,
  2 ** 31,
  2 ** 32,
  Number.MAX_SAFE_INTEGER,
  Infinity,
  -Infinity,
  NaN,
);
const anyNumber = fc.oneof(fc.integer({ min: -3, max: 40 }), fc.double(), extremeNumber);
const word = fc.constantFrom(
  'auto',
  'byzfl',
  'garfield',
  'default',
  'none',
  'reference',
  'phalanx',
  'median-norm',
  'std',
  'unit_vec',
  'sign',
  'paper',
  'honest',
  'own',
  'mean',
  '10s',
  '0ms',
  '5m',
  '',
  '2',
);
const scalar = fc.oneof(anyNumber, word, fc.boolean(), fc.constant(null));
const value: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 6, arbitrary: scalar },
  { weight: 1, arbitrary: fc.array(scalar, { maxLength: 3 }) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
);

const RULE_OPTION_KEYS = [
  'compat',
  'm',
  'nu',
  'T',
  'tol',
  'tau',
  'L',
  'maxSubsets',
  'idx',
  'mode',
  'seed',
  'r',
  'rMax',
  'lambda',
  'epsilon',
  'maxIterations',
  'tolerance',
  'signAware',
  'signThreshold',
  'signSpread',
  'signDirection',
  'signAxisThreshold',
  'signAxisSpread',
  'readmit',
  'minTrust',
  'rescale',
  'warmStart',
  'reuseOutput',
];
const ATTACK_OPTION_KEYS = [
  'mode',
  'scale',
  'k',
  'source',
  'mu',
  'sigma',
  'low',
  'high',
  'classes',
  'tau',
  'z',
  'zVariant',
  'ddof',
  'epsilon',
  'devType',
  'gammaInit',
  'tol',
  'evals',
  'start',
  'delta',
  'ratio',
  'negative',
  'fraction',
  'length',
  'lag',
  'freeze',
  'fromRound',
  'delayMs',
];

/** Options objects: mostly none, else 1–2 keys drawn from `keys` (values mostly plausible, sometimes not). */
function optionsFrom(keys: string[]): fc.Arbitrary<Record<string, unknown>> {
  return fc.oneof(
    { weight: 2, arbitrary: fc.constant({}) },
    { weight: 3, arbitrary: fc.dictionary(fc.constantFrom(...keys), value, { minKeys: 1, maxKeys: 2 }) },
  );
}

const preSpec = fc.oneof(
  fc.constantFrom(
    'clip',
    'clip(2)',
    'clip(c=0.5)',
    'clip(c=-1)',
    'nnm',
    'nnm(1)',
    'nnm(1, 2)',
    'arc',
    'arc(f=30)',
    'bucketing',
    'bucketing(s=3)',
    'bucketing(s=2, seed=7)',
    'bucketing(0)',
    'Clipping(c=1e400)',
    'bogus',
    'clip(',
  ),
  fc
    .tuple(
      fc.constantFrom('clip', 'nnm', 'arc', 'bucketing'),
      fc.constantFrom('c', 'f', 's', 'seed', 'x'),
      anyNumber,
    )
    .map(([name, key, v]) => `${name}(${key}=${String(v)})`),
);

/** Mostly `valid`, sometimes `invalid`: each field is usually fine, so whole specs often are. */
function mostly<T, U>(valid: fc.Arbitrary<T>, invalid: fc.Arbitrary<U>): fc.Arbitrary<T | U> {
  return fc.oneof({ weight: 15, arbitrary: valid }, { weight: 1, arbitrary: invalid });
}

/** Values at and just beyond the bounds the schemas state. */
const boundary = fc.constantFrom(
  -1,
  -1e-9,
  0,
  1e-13,
  1e-12,
  0.5,
  0.999,
  1,
  1.5,
  2,
  100,
  101,
  1000,
  1001,
  10_000,
  10_001,
  1e7,
  1e7 + 1,
  2 ** 29,
  'auto',
  null,
);

/** Plausible values per option name (rules, pre-aggregators and attacks share some names). */
const PLAUSIBLE: Record<string, fc.Arbitrary<unknown>> = {
  compat: fc.constantFrom('default', 'none', 'byzfl', 'garfield', 'reference'),
  m: fc.integer({ min: 1, max: 8 }),
  nu: fc.double({ min: 1e-6, max: 10, noNaN: true }),
  T: fc.integer({ min: 0, max: 30 }),
  tol: fc.double({ min: 1e-9, max: 1e-2, noNaN: true }),
  tau: fc.double({ min: 0, max: 200, noNaN: true }),
  L: fc.integer({ min: 0, max: 5 }),
  maxSubsets: fc.integer({ min: 1, max: 10_000_000 }),
  idx: fc.integer({ min: 0, max: 4 }),
  mode: fc.constantFrom('phalanx', 'reference', 'mean', 'own'),
  seed: fc.integer({ min: 0, max: 1000 }),
  r: fc.oneof(fc.constant('auto'), fc.integer({ min: 1, max: 4 })),
  rMax: fc.oneof(fc.constant(null), fc.integer({ min: 1, max: 4 })),
  lambda: fc.double({ min: 0, max: 1, noNaN: true }),
  lr: fc.double({ min: 1e-5, max: 1, noNaN: true }),
  momentum: fc.double({ min: 0, max: 1, noNaN: true }),
  weightDecay: fc.double({ min: 0, max: 1e-2, noNaN: true }),
  nesterov: fc.boolean(),
  beta1: fc.double({ min: 0, max: 0.99, noNaN: true }),
  beta2: fc.double({ min: 0, max: 0.999, noNaN: true }),
  eps: fc.double({ min: 1e-10, max: 1e-6, noNaN: true }),
  epsilon: fc.oneof(fc.double({ min: 1e-9, max: 1e-3, noNaN: true }), fc.integer({ min: 0, max: 2 })),
  maxIterations: fc.integer({ min: 0, max: 50 }),
  tolerance: fc.double({ min: 0, max: 1e-3, noNaN: true }),
  signAware: fc.boolean(),
  signThreshold: fc.double({ min: -1, max: 1, noNaN: true }),
  minTrust: fc.double({ min: 0, max: 0.5, noNaN: true }),
  signSpread: fc.oneof(fc.constant(null), fc.double({ min: 0, max: 5, noNaN: true })),
  signDirection: fc.constantFrom('principal-axis', 'clipped-mean', 'combined'),
  signAxisThreshold: fc.double({ min: -1, max: 1, noNaN: true }),
  signAxisSpread: fc.oneof(fc.constant(null), fc.double({ min: 0, max: 5, noNaN: true })),
  rescale: fc.constantFrom('none', 'median-norm', 'agreement'),
  step: fc.constantFrom('subspace', 'trusted-mean', 'projected-mean'),
  readmit: fc.boolean(),
  warmStart: fc.boolean(),
  scale: fc.double({ min: -10, max: 10, noNaN: true }),
  k: fc.double({ min: -10, max: 10, noNaN: true }),
  source: fc.constantFrom('auto', 'own', 'mean'),
  mu: fc.double({ min: -1, max: 1, noNaN: true }),
  sigma: fc.double({ min: 0, max: 2, noNaN: true }),
  low: fc.double({ min: -1, max: 0, noNaN: true }),
  high: fc.double({ min: 0.01, max: 1, noNaN: true }),
  classes: fc.integer({ min: 1, max: 10 }),
  z: fc.double({ min: -3, max: 3, noNaN: true }),
  zVariant: fc.constantFrom('paper', 'honest'),
  ddof: fc.integer({ min: 0, max: 1 }),
  devType: fc.constantFrom('std', 'unit_vec', 'sign'),
  gammaInit: fc.double({ min: 1e-3, max: 1e6, noNaN: true }),
  evals: fc.integer({ min: 1, max: 30 }),
  start: fc.double({ min: -5, max: 5, noNaN: true }),
  delta: fc.oneof(fc.double({ min: 0.1, max: 10, noNaN: true }), fc.integer({ min: -3, max: 3 })),
  ratio: fc.double({ min: 0.55, max: 0.95, noNaN: true }),
  negative: fc.boolean(),
  fraction: fc.double({ min: 0.01, max: 1, noNaN: true }),
  length: fc.integer({ min: 0, max: 10 }),
  lag: fc.integer({ min: 1, max: 5 }),
  freeze: fc.boolean(),
  fromRound: fc.integer({ min: 0, max: 5 }),
  delayMs: fc.integer({ min: 0, max: 100 }),
};

/** Values at, just inside and just beyond the bounds a schema field declares (reflecting on zod). */
function edgeValues(field: z.ZodType): unknown[] {
  let f: z.ZodType = field;
  while (f instanceof z.ZodOptional || f instanceof z.ZodNullable || f instanceof z.ZodDefault) {
    f = f.unwrap() as z.ZodType;
  }
  if (f instanceof z.ZodNumber) {
    const out: number[] = [0];
    for (const b of [f.minValue, f.maxValue]) {
      if (b === null || !Number.isFinite(b)) continue;
      const step = f.isInt ? 1 : 1e-9 * Math.max(1, Math.abs(b));
      out.push(b - step, b, b + step);
    }
    return out;
  }
  if (f instanceof z.ZodUnion) return (f.options as z.ZodType[]).flatMap(edgeValues);
  if (f instanceof z.ZodEnum) return [...f.options, 'bogus'];
  if (f instanceof z.ZodLiteral) return [...f.values];
  if (f instanceof z.ZodBoolean) return [true, false, 'true'];
  return [];
}

/** The option names a registry schema declares (test-side reflection on the zod object). */
function declaredKeys(schema: z.ZodType): string[] {
  return schema instanceof z.ZodObject ? Object.keys(schema.shape) : [];
}

/** Options of a named rule or attack: 0–3 of its declared keys, plausible values (sometimes not). */
function plausibleOptions(keys: string[]): fc.Arbitrary<Record<string, unknown>> {
  if (keys.length === 0) return fc.constant({});
  return fc
    .subarray(keys, { maxLength: Math.min(3, keys.length) })
    .chain((picked) =>
      fc
        .tuple(
          ...picked.map((key) =>
            fc.oneof(
              { weight: 8, arbitrary: PLAUSIBLE[key] ?? value },
              { weight: 1, arbitrary: boundary },
              { weight: 1, arbitrary: value },
            ),
          ),
        )
        .map((vals) => Object.fromEntries(picked.map((key, i) => [key, vals[i]]))),
    );
}

const ruleChoice = fc.constantFrom(...listRules()).chain((rule) =>
  fc.record({
    rule: fc.constant(rule),
    options: plausibleOptions(declaredKeys(RULE_OPTION_SCHEMAS[rule])),
  }),
);
const attackChoice = fc.constantFrom(...listAttacks()).chain((attack) =>
  fc.record({
    attack: fc.constant(attack),
    options: plausibleOptions(declaredKeys(ATTACK_OPTION_SCHEMAS[attack])),
  }),
);

const validishSpec = fc.record(
  {
    name: mostly(fc.constantFrom('job', 'a-b-1'), fc.constantFrom('Bad Name', '')),
    seed: mostly(fc.integer({ min: 0, max: 2 ** 32 - 1 }), anyNumber),
    model: mostly(
      fc.oneof(
        fc.constant({ kind: 'cnn' }),
        fc.record({
          kind: fc.constant('mlp'),
          hidden: fc.array(fc.integer({ min: 1, max: 256 }), { minLength: 1, maxLength: 3 }),
        }),
      ),
      fc.record({
        kind: fc.constantFrom('mlp', 'rnn'),
        hidden: fc.array(fc.oneof(fc.integer({ min: 0, max: 70_000 }), anyNumber), { maxLength: 3 }),
      }),
    ),
    data: fc.record(
      {
        batchSize: mostly(fc.integer({ min: 1, max: 4096 }), anyNumber),
        flip: fc.boolean(),
        maxTrain: mostly(fc.integer({ min: 1, max: 1000 }), anyNumber),
        path: fc.constantFrom('fmnist', '/etc', '../x'),
      },
      { requiredKeys: [] },
    ),
    optimizer: mostly(
      fc.oneof(
        fc.record(
          {
            kind: fc.constant('sgd'),
            lr: fc.double({ min: 1e-4, max: 1, noNaN: true }),
            momentum: mostly(fc.double({ min: 0, max: 1, noNaN: true }), boundary),
            nesterov: fc.boolean(),
            weightDecay: mostly(fc.constant(1e-4), boundary),
          },
          { requiredKeys: ['kind'] },
        ),
        fc.record(
          {
            kind: fc.constant('adam'),
            lr: fc.double({ min: 1e-5, max: 0.1, noNaN: true }),
            beta1: mostly(fc.double({ min: 0, max: 0.99, noNaN: true }), boundary),
            beta2: mostly(fc.double({ min: 0, max: 0.999, noNaN: true }), boundary),
            eps: mostly(fc.double({ min: 1e-10, max: 1e-6, noNaN: true }), boundary),
          },
          { requiredKeys: ['kind'] },
        ),
      ),
      fc.record(
        {
          kind: fc.constantFrom('sgd', 'adam', 'rmsprop'),
          lr: anyNumber,
          nesterov: fc.boolean(),
          beta2: anyNumber,
        },
        { requiredKeys: [] },
      ),
    ),
    rounds: mostly(fc.integer({ min: 1, max: 1000 }), anyNumber),
    workers: fc.record(
      {
        min: mostly(fc.constant(1), fc.integer({ min: 0, max: 30 })),
        max: fc.oneof(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 20 })),
        roundTimeout: mostly(fc.constantFrom('10s', 1000, '1h'), fc.constantFrom(50, '25h', 'soon', -1)),
        momentum: mostly(fc.constantFrom(0, 0.9), fc.constantFrom(1, -0.5)),
      },
      { requiredKeys: [] },
    ),
    aggregation: fc
      .record({
        choice: fc.oneof(
          { weight: 4, arbitrary: ruleChoice },
          {
            weight: 1,
            arbitrary: fc.record({
              rule: fc.constantFrom('gm', 'TM', 'cc', 'bogus', 'flag'),
              options: optionsFrom(RULE_OPTION_KEYS),
            }),
          },
        ),
        f: fc.oneof(
          { weight: 3, arbitrary: fc.constant(0) },
          { weight: 2, arbitrary: fc.integer({ min: 1, max: 6 }) },
        ),
        pre: fc.oneof(
          { weight: 2, arbitrary: fc.constant([]) },
          { weight: 1, arbitrary: fc.array(preSpec, { maxLength: 2 }) },
        ),
      })
      .map(({ choice, f, pre }) => ({ ...choice, f, pre })),
    compression: mostly(
      fc.oneof(
        fc.record({ encoding: fc.constantFrom('fp32', 'bf16') }, { requiredKeys: [] }),
        fc.record(
          {
            kind: fc.constant('uniform'),
            encoding: fc.constantFrom('fp32', 'bf16'),
            baseline: fc.oneof(
              fc.record({ kind: fc.constant('powersgd'), rank: fc.integer({ min: 1, max: 8 }) }),
              fc.record({
                kind: fc.constantFrom('topk', 'randk'),
                density: fc.double({ min: 0.001, max: 1, noNaN: true }),
              }),
              fc.record({ kind: fc.constant('qsgd'), bits: fc.integer({ min: 2, max: 8 }) }),
            ),
          },
          { requiredKeys: ['kind'] },
        ),
        fc.record(
          {
            kind: fc.constant('lgreco'),
            compressors: fc.subarray(['powersgd', 'topk', 'randk', 'qsgd'], { minLength: 1 }),
            alpha: fc.double({ min: 0.1, max: 10, noNaN: true }),
            window: fc.integer({ min: 1, max: 500 }),
            warmup: fc.integer({ min: 0, max: 500 }),
          },
          { requiredKeys: ['kind'] },
        ),
      ),
      fc.record(
        {
          encoding: fc.constant('fp16'),
          kind: fc.constantFrom('gzip', 'none', 'uniform'),
          baseline: fc.record({
            kind: fc.constantFrom('powersgd', 'zip'),
            rank: fc.constantFrom(0, 2000, 1.5),
          }),
          compressors: fc.constantFrom([], ['zip'], ['topk', 'topk']),
          alpha: fc.constantFrom(0, -1, 1e9),
          window: fc.constantFrom(0, 1.5),
          warmup: fc.constant(-1),
        },
        { requiredKeys: [] },
      ),
    ),
    checkpoint: fc.record(
      {
        every: fc.integer({ min: 0, max: 100 }),
        dir: mostly(
          fc.constantFrom('runs/a', './x', 'ok_1.2', '.'),
          fc.constantFrom('../x', '/abs', 'a/../b', 'a b', 'C:\\x'),
        ),
        keep: mostly(fc.integer({ min: 1, max: 100 }), fc.constantFrom(0, 101, 1.5)),
      },
      { requiredKeys: [] },
    ),
    evaluation: fc.record(
      { every: fc.integer({ min: 0, max: 100 }), limit: fc.integer({ min: 1, max: 100 }) },
      { requiredKeys: [] },
    ),
    simulate: fc.record({
      byzantine: fc
        .record({
          count: fc.integer({ min: 0, max: 3 }),
          choice: mostly(
            attackChoice,
            fc.record({ attack: fc.constant('bogus'), options: optionsFrom(ATTACK_OPTION_KEYS) }),
          ),
        })
        .map(({ count, choice }) => ({ count, ...choice })),
    }),
  },
  { requiredKeys: [] },
);

type Mutation = { path: string[]; op: 'set' | 'delete'; value: unknown };
const mutation: fc.Arbitrary<Mutation> = fc.record({
  path: fc.oneof(
    fc.constantFrom(...TOP_LEVEL).map((k) => [k]),
    fc.tuple(
      fc.constantFrom(...TOP_LEVEL),
      fc.constantFrom(
        'kind',
        'max',
        'min',
        'options',
        'dir',
        'bogus',
        'lr',
        'momentum',
        'nesterov',
        'beta1',
        'beta2',
        'eps',
        'hidden',
        'path',
        'limit',
        'every',
        'keep',
        'f',
        'pre',
        'rule',
      ),
    ),
    fc.tuple(
      fc.constant('aggregation'),
      fc.constant('options'),
      fc.constantFrom(...RULE_OPTION_KEYS, 'preOptions'),
    ),
    fc.array(fc.string({ maxLength: 4 }), { minLength: 1, maxLength: 3 }),
  ),
  op: fc.constantFrom('set', 'delete'),
  value,
});

function mutate(spec: Record<string, unknown>, mutations: Mutation[]): unknown {
  const copy = structuredClone(spec);
  for (const m of mutations) {
    let node: Record<string, unknown> = copy;
    for (const key of m.path.slice(0, -1)) {
      const next = node[key];
      if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {};
      node = node[key] as Record<string, unknown>;
    }
    const last = m.path.at(-1)!;
    if (m.op === 'delete') delete node[last];
    else node[last] = m.value;
  }
  return copy;
}

describe('fuzz: job spec validation', function () {
  this.timeout(Math.max(60_000, RUNS * 200));

  it('arbitrary JSON/YAML-like values: a bounded spec or a JobSpecError naming a field', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.jsonValue(), fc.anything(), fc.dictionary(fc.constantFrom(...TOP_LEVEL), value)),
        check,
      ),
      params,
    );
  });

  it('valid-ish specs (every rule, pre-aggregator and attack, options from their names)', () => {
    fc.assert(fc.property(validishSpec, check), params);
  });

  it('mutations of valid-ish specs', () => {
    fc.assert(
      fc.property(validishSpec, fc.array(mutation, { minLength: 1, maxLength: 3 }), (spec, mutations) =>
        check(mutate(spec, mutations)),
      ),
      params,
    );
  });

  it('registry schemas admit only options the factories accept (values at and beyond every declared bound)', () => {
    const optionsOf = (shape: Record<string, z.ZodType>) => {
      const keys = Object.keys(shape);
      if (keys.length === 0) return fc.constant({});
      const edge = (key: string) => {
        const edges = edgeValues(shape[key]);
        const plausible = PLAUSIBLE[key] ?? value;
        return edges.length
          ? fc.oneof(plausible, fc.constantFrom(...edges), fc.constantFrom(...edges))
          : plausible;
      };
      return fc
        .subarray(keys, { minLength: 1, maxLength: Math.min(3, keys.length) })
        .chain((picked) =>
          fc.tuple(...picked.map(edge)).map((v) => Object.fromEntries(picked.map((k, i) => [k, v[i]]))),
        );
    };
    const shapeOf = (schema: z.ZodType): Record<string, z.ZodType> =>
      schema instanceof z.ZodObject ? (schema.shape as Record<string, z.ZodType>) : {};
    const optimizerEdges = fc.constantFrom(0, 1, -1, 1 - 1e-9, 1 + 1e-9, 1e-300, 0.999999, 1e6, 1e6 + 1);
    // one run of its own per rule, pre-aggregator, attack and optimizer, so every bound of every entry is reached
    const sections: [string, fc.Arbitrary<unknown>][] = [
      ...listRules().map((rule): [string, fc.Arbitrary<unknown>] => [
        rule,
        fc
          .tuple(
            optionsOf(shapeOf(RULE_OPTION_SCHEMAS[rule])),
            fc.integer({ min: 1, max: 24 }),
            fc.integer({ min: 0, max: 3 }),
          )
          .map(([options, max, f]) => ({ workers: { max }, aggregation: { rule, options, f } })),
      ]),
      ...Object.keys(PRE_OPTION_SCHEMAS).map((pre): [string, fc.Arbitrary<unknown>] => [
        pre,
        optionsOf(shapeOf(PRE_OPTION_SCHEMAS[pre])).map((options) => ({
          workers: { max: 8 },
          aggregation: { rule: 'mean', pre: [pre], options: { preOptions: { [pre]: options } } },
        })),
      ]),
      ...listAttacks().map((attack): [string, fc.Arbitrary<unknown>] => [
        attack,
        optionsOf(shapeOf(ATTACK_OPTION_SCHEMAS[attack])).map((options) => ({
          simulate: { byzantine: { count: 1, attack, options } },
        })),
      ]),
      ...(['sgd', 'adam'] as const).map((kind): [string, fc.Arbitrary<unknown>] => [
        kind,
        fc
          .subarray(
            kind === 'sgd'
              ? ['lr', 'momentum', 'weightDecay']
              : ['lr', 'beta1', 'beta2', 'eps', 'weightDecay'],
            {
              minLength: 1,
            },
          )
          .chain((keys) =>
            fc
              .tuple(...keys.map((k) => fc.oneof(PLAUSIBLE[k] ?? value, optimizerEdges)))
              .map((v) => ({ optimizer: { kind, ...Object.fromEntries(keys.map((k, i) => [k, v[i]])) } })),
          ),
      ]),
    ];
    for (const [, arbitrary] of sections) {
      fc.assert(fc.property(arbitrary, check), { ...params, numRuns: Math.max(60, Math.round(RUNS / 8)) });
    }
  });

  it('accepts a fair share of the valid-ish specs (the generators reach the success path)', () => {
    const samples = fc.sample(validishSpec, { numRuns: 300, seed: 7 });
    const accepted = samples.filter((s) => {
      try {
        validateJobSpec(s);
        return true;
      } catch {
        return false;
      }
    });
    expect(accepted.length).to.be.greaterThan(30);
    // including rule and attack options, not only empty ones
    const withOptions = accepted.filter(
      (s) =>
        Object.keys((s.aggregation?.options ?? {}) as object).length > 0 ||
        Object.keys((s.simulate?.byzantine?.options ?? {}) as object).length > 0,
    );
    expect(withOptions.length).to.be.greaterThan(10);
  });
});
