/**
 * What a job spec may ask of the aggregation registry: one option schema per rule and pre-aggregator, with bounds,
 * and the preconditions a rule must be able to meet with the job's workers. `checkAggregation` is what SubmitJob
 * runs, so a spec whose pipeline could not be built, could not run with its workers, or could run for unbounded
 * time is refused before it is queued.
 *
 * The schemas accept a subset of what the factories accept (numbers as numbers, no `reuseOutput`, which is a
 * contract with the in-process caller), never more: every spec they admit constructs. Iteration counts are bounded
 * (10× their defaults) because a rule runs once per round on every parameter.
 */
import { z } from 'zod';
import {
  boundedInt,
  describeIssue,
  boundedNumber,
  flattenIssues,
  oneOf,
  optionsObject,
  type PathIssue,
} from '../optionSchema.ts';
import { parseFlagOptions } from './flag/options.ts';
import {
  listPreAggregators,
  listRules,
  parsePreSpec,
  preAggregatorPrimaryOption,
  resolvePreAggregatorName,
  resolveRuleName,
} from './registry.ts';
import { binomial } from './util.ts';

/** Upper bound of any count of inputs (workers) an option may refer to. */
const MAX_INPUTS = 1024;
export const MAX_GEOMETRIC_MEDIAN_ITERATIONS = 10_000;
export const MAX_FLAG_ITERATIONS = 1_000;
export const MAX_CENTERED_CLIPPING_ITERATIONS = 100;
/** MDA enumerates C(n, f) subsets; its own default cap is also the most a spec may allow. */
export const MAX_MDA_SUBSETS = 1e7;

function compat(...supported: ('byzfl' | 'garfield')[]) {
  return oneOf(['default', 'none', ...supported]).optional();
}

const count = boundedInt(0, MAX_INPUTS).optional();

const flagShape = {
  mode: oneOf(['phalanx', 'reference']).optional(),
  compat: oneOf(['garfield', 'reference']).optional(),
  seed: z.number().optional(),
  r: z
    .union([z.literal('auto'), z.literal('n-2f'), boundedInt(1, MAX_INPUTS)], {
      error: () => "'auto', 'n-2f' or an integer in [1, 1024]",
    })
    .optional(),
  rMax: boundedInt(1, MAX_INPUTS).nullable().optional(),
  /** Larger λ (≳ 10⁹) makes the IRLS system numerically indefinite; useful values are O(1). */
  lambda: boundedNumber({ min: 0, max: 1e4 }).optional(),
  epsilon: boundedNumber({ gt: 0, max: 1 }).optional(),
  maxIterations: boundedInt(0, MAX_FLAG_ITERATIONS).optional(),
  tolerance: boundedNumber({ min: 0, max: 1 }).optional(),
  signAware: z.boolean().optional(),
  signThreshold: boundedNumber({ min: -1, max: 1 }).optional(),
  signSpread: boundedNumber({ min: 0, max: 100 }).nullable().optional(),
  signDirection: oneOf(['principal-axis', 'clipped-mean', 'combined']).optional(),
  signAxisThreshold: boundedNumber({ min: -1, max: 1 }).optional(),
  signAxisSpread: boundedNumber({ min: 0, max: 100 }).nullable().optional(),
  minTrust: boundedNumber({ min: 0, max: 1 }).optional(),
  rescale: oneOf(['none', 'median-norm', 'agreement']).optional(),
  step: oneOf(['subspace', 'trusted-mean', 'projected-mean']).optional(),
  vote: oneOf(['unit', 'norm']).optional(),
  readmit: z.boolean().optional(),
  warmStart: z.boolean().optional(),
  /** Reference mode's start Y₀: d rows of r columns (checked against the model in checkAggregation). */
  y0: z.array(z.array(z.number()).min(1).max(MAX_INPUTS)).min(1).optional(),
};

/** The flag rule's mode-dependent rules (which options go with which mode) are its own parser's. */
const flagOptions = optionsObject(flagShape).superRefine((options, ctx) => {
  try {
    parseFlagOptions(options);
  } catch (e) {
    const message = (e as Error).message.replace(/^flag: /, '');
    const key = /option '(\w+)'/.exec(message)?.[1];
    ctx.addIssue({ code: 'custom', path: key && key in flagShape ? [key] : [], message });
  }
});

/** A registered rule or pre-aggregator without a schema here takes no options from a job spec. */
const NO_OPTIONS = optionsObject({});

/** Option schemas by canonical rule name (registry.ts). */
export const RULE_OPTION_SCHEMAS: Readonly<Record<string, z.ZodType>> = Object.freeze({
  mean: optionsObject({ compat: compat('byzfl', 'garfield') }),
  median: optionsObject({ compat: compat('byzfl', 'garfield') }),
  trimmedMean: optionsObject({ compat: compat('byzfl', 'garfield') }),
  krum: optionsObject({ compat: compat('byzfl', 'garfield') }),
  multiKrum: optionsObject({ compat: compat('byzfl', 'garfield'), m: boundedInt(1, MAX_INPUTS).optional() }),
  bulyan: optionsObject({ compat: compat('garfield'), m: boundedInt(1, MAX_INPUTS).optional() }).refine(
    (o) => o.m === undefined || o.compat === 'garfield',
    { path: ['m'], message: "only applies to compat 'garfield'" },
  ),
  geometricMedian: optionsObject({
    compat: compat('byzfl'),
    nu: boundedNumber({ gt: 0, max: 1e12 }).optional(),
    T: boundedInt(0, MAX_GEOMETRIC_MEDIAN_ITERATIONS).optional(),
    tol: boundedNumber({ min: 0, max: 1 }).optional(),
  }).refine((o) => o.tol === undefined || o.compat !== 'byzfl', {
    path: ['tol'],
    message: "does not apply to compat 'byzfl' (it runs exactly T iterations)",
  }),
  centeredClipping: optionsObject({
    compat: compat('byzfl'),
    tau: boundedNumber({ min: 0, max: 1e12 }).optional(),
    L: boundedInt(0, MAX_CENTERED_CLIPPING_ITERATIONS).optional(),
  }),
  meamed: optionsObject({ compat: compat('byzfl', 'garfield') }),
  phocas: optionsObject({ compat: compat('garfield') }),
  mda: optionsObject({
    compat: compat('byzfl'),
    maxSubsets: boundedNumber({ min: 1, max: MAX_MDA_SUBSETS }).optional(),
  }),
  monna: optionsObject({ compat: compat('byzfl'), idx: boundedInt(0, MAX_INPUTS - 1).optional() }),
  flag: flagOptions,
});

/** Option schemas by canonical pre-aggregator name (registry.ts). */
export const PRE_OPTION_SCHEMAS: Readonly<Record<string, z.ZodType>> = Object.freeze({
  clip: optionsObject({ c: boundedNumber({ min: 0, max: 1e12 }).optional() }),
  nnm: optionsObject({ f: count, signThreshold: boundedNumber({ min: -1, max: 1 }).optional() }),
  arc: optionsObject({ f: count }),
  bucketing: optionsObject({
    s: boundedInt(1, MAX_INPUTS).optional(),
    seed: boundedInt(-(2 ** 31), 2 ** 32 - 1).optional(),
  }),
});

export interface AggregationChoice {
  rule: string;
  f: number;
  pre: string[];
  options: Record<string, unknown>;
}

/** Paths relative to the aggregation section of a job spec. */
export type OptionIssue = PathIssue;

/**
 * Everything wrong with `aggregation` for a job of at most `workers` workers whose model has `parameters`
 * parameters: unknown names, invalid or unbounded options, and rule preconditions that n = `workers` inputs (after
 * the pre-aggregators) cannot meet. Empty when the pipeline builds and can run.
 */
export function checkAggregation(
  aggregation: AggregationChoice,
  workers: number,
  parameters?: number,
): OptionIssue[] {
  const issues: OptionIssue[] = [];
  const { preOptions, ...ruleOptions } = aggregation.options;
  const f = aggregation.f;
  if (f > workers) issues.push({ path: ['f'], message: `at most workers.max (${workers})` });

  // pre-aggregators, in order: each may change the number of inputs the next stage sees
  let n = workers;
  const preNames = new Set<string>();
  let preOpts: Record<string, unknown> = {};
  if (preOptions !== undefined) {
    if (!isPlainObject(preOptions)) {
      issues.push({
        path: ['options', 'preOptions'],
        message: 'must be an object: { <pre-aggregator>: { ... } }',
      });
    } else preOpts = preOptions;
  }
  aggregation.pre.forEach((spec, i) => {
    const at = ['pre', i];
    let parsed: ReturnType<typeof parsePreSpec>;
    try {
      parsed = parsePreSpec(spec);
    } catch {
      issues.push({
        path: at,
        message: `invalid pre-aggregator '${spec}' (expected e.g. "clip" or "clip(c=2)")`,
      });
      return;
    }
    const rawName = spec.split('(')[0].trim();
    preNames.add(rawName);
    const name = resolvePreAggregatorName(parsed.name);
    if (name === undefined) {
      issues.push({
        path: at,
        message: `unknown pre-aggregator '${parsed.name}' (valid: ${listPreAggregators().join(', ')})`,
      });
      return;
    }
    const fromSection = preOpts[rawName] ?? {};
    if (!isPlainObject(fromSection)) {
      issues.push({ path: ['options', 'preOptions', rawName], message: 'must be an object' });
      return;
    }
    const merged: Record<string, unknown> = { ...fromSection };
    const positional = parsed.args.filter(([key]) => key === null);
    const primary = preAggregatorPrimaryOption(name);
    if (positional.length > 1) {
      issues.push({ path: at, message: `'${spec}': at most one positional argument` });
      return;
    }
    if (positional.length === 1 && primary === undefined) {
      issues.push({ path: at, message: `'${name}' takes no positional argument` });
      return;
    }
    for (const [key, value] of parsed.args) merged[key ?? primary!] = value;
    const result = (PRE_OPTION_SCHEMAS[name] ?? NO_OPTIONS).safeParse(merged, { error: describeIssue });
    if (!result.success) {
      for (const issue of flattenIssues(result.error.issues)) {
        const key = issue.path.length ? `option '${issue.path.join('.')}': ` : '';
        issues.push({ path: at, message: `${name}: ${key}${issue.message}` });
      }
      return;
    }
    const o = result.data as Record<string, number | undefined>;
    const fPre = o['f'] ?? f;
    if ((name === 'nnm' || name === 'arc') && !(fPre < n)) {
      issues.push({
        path: at,
        message: `${name} needs f < n (f = ${fPre}, n = ${n} inputs with workers.max = ${workers})`,
      });
    }
    if (name === 'nnm' && o['signThreshold'] !== undefined && fPre > 0 && !(2 * fPre < n)) {
      issues.push({
        path: at,
        message: `nnm's sign screen needs 2f < n (f = ${fPre}, n = ${n} inputs with workers.max = ${workers})`,
      });
    }
    if (name === 'bucketing') n = Math.ceil(n / (o['s'] ?? 2));
  });
  for (const key of Object.keys(preOpts)) {
    if (!preNames.has(key)) {
      issues.push({
        path: ['options', 'preOptions', key],
        message: `no pre-aggregator '${key}' in aggregation.pre`,
      });
    }
  }

  const rule = resolveRuleName(aggregation.rule);
  if (rule === undefined) {
    issues.push({
      path: ['rule'],
      message: `unknown rule '${aggregation.rule}' (valid: ${listRules().join(', ')})`,
    });
    return issues;
  }
  const result = (RULE_OPTION_SCHEMAS[rule] ?? NO_OPTIONS).safeParse(ruleOptions, {
    error: describeIssue,
  });
  if (!result.success) {
    for (const issue of flattenIssues(result.error.issues))
      issues.push({ path: ['options', ...issue.path], message: issue.message });
    return issues;
  }
  const unmet = unmetPrecondition(rule, result.data as Record<string, unknown>, n, f, workers, parameters);
  if (unmet !== undefined) issues.push(unmet);
  return issues;
}

/** The rule's precondition at n inputs (workers.max after the pre-aggregators), if n cannot meet it. */
function unmetPrecondition(
  rule: string,
  o: Record<string, unknown>,
  n: number,
  f: number,
  workers: number,
  parameters: number | undefined,
): OptionIssue | undefined {
  const inputs = n === workers ? `n = workers.max = ${n}` : `n = ${n} inputs after the pre-aggregators`;
  const need = (
    ok: boolean,
    condition: string,
    path: (string | number)[] = ['f'],
  ): OptionIssue | undefined =>
    ok
      ? undefined
      : { path, message: `${rule} needs ${condition} (${inputs}, f = ${f}): lower f or raise workers.max` };
  const garfield = o['compat'] === 'garfield';
  const byzfl = o['compat'] === 'byzfl';
  switch (rule) {
    case 'median':
    case 'trimmedMean':
    case 'meamed':
    case 'phocas':
      return need(2 * f < n, '2f < n');
    case 'monna':
      return (
        need(2 * f < n, '2f < n') ?? need(((o['idx'] as number) ?? 0) < n, 'idx < n', ['options', 'idx'])
      );
    case 'mda': {
      const cap = (o['maxSubsets'] as number | undefined) ?? MAX_MDA_SUBSETS;
      return need(2 * f < n, '2f < n') ?? need(binomial(n, f) <= cap, `C(n, f) ≤ maxSubsets (${cap})`);
    }
    case 'krum':
    case 'multiKrum': {
      const unmet = byzfl ? need(2 * f < n, '2f < n') : need(n > 2 * f + 2, 'n > 2f + 2');
      if (unmet || rule === 'krum' || o['m'] === undefined) return unmet;
      const mMax = garfield ? n - f - 2 : n;
      return need((o['m'] as number) <= mMax, `m ≤ ${garfield ? 'n − f − 2' : 'n'}`, ['options', 'm']);
    }
    case 'bulyan':
      return (
        need(n >= 4 * f + 3, 'n ≥ 4f + 3') ??
        (o['m'] === undefined
          ? undefined
          : need((o['m'] as number) <= n - f - 2, 'm ≤ n − f − 2', ['options', 'm']))
      );
    case 'flag': {
      if (typeof o['r'] === 'number' && o['r'] > n)
        return need(false, `r ≤ n (r = ${o['r']})`, ['options', 'r']);
      const y0 = o['y0'] as number[][] | undefined;
      if (y0 !== undefined && parameters !== undefined && y0.length !== parameters) {
        return {
          path: ['options', 'y0'],
          message: `needs one row per model parameter (${parameters}), has ${y0.length}`,
        };
      }
      return undefined;
    }
    default:
      return undefined;
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
