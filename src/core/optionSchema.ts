/**
 * Building blocks for the option schemas the registries own (aggregation rules, pre-aggregators, attacks): zod
 * schemas whose error messages say what is allowed, so a job spec error reads
 * `aggregation.options.T: at most 10000` or `…: unknown option 'maxIterations' (known: nu, T, tol, compat)`.
 */
import { z } from 'zod';

/** A strict object of options: unknown keys are refused with the list of known ones. */
export function optionsObject<S extends z.ZodRawShape>(shape: S) {
  const known = Object.keys(shape);
  return z.strictObject(shape, {
    error: (issue) =>
      issue.code === 'unrecognized_keys'
        ? `unknown option (known: ${known.length ? known.join(', ') : 'none'})`
        : undefined,
  });
}

/** A schema issue as path + message, one per unknown key (so the path names the offending option). */
export interface PathIssue {
  path: (string | number)[];
  message: string;
}

export function flattenIssues(issues: readonly z.core.$ZodIssue[]): PathIssue[] {
  return issues.flatMap((issue) => {
    const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
    return issue.code === 'unrecognized_keys'
      ? issue.keys.map((key) => ({ path: [...path, key], message: issue.message }))
      : [{ path, message: issue.message }];
  });
}

/** A finite number in [min, max] (`gt` instead of `min` for a strict lower bound). */
export function boundedNumber(bounds: { min?: number; gt?: number; max?: number; lt?: number }) {
  let s = z.number();
  if (bounds.gt !== undefined) s = s.gt(bounds.gt, `must be greater than ${bounds.gt}`);
  if (bounds.min !== undefined) s = s.min(bounds.min, `at least ${bounds.min}`);
  if (bounds.lt !== undefined) s = s.lt(bounds.lt, `must be less than ${bounds.lt}`);
  if (bounds.max !== undefined) s = s.max(bounds.max, `at most ${bounds.max}`);
  return s;
}

/** An integer in [min, max]. */
export function boundedInt(min: number, max: number) {
  return z.number().int('must be an integer').min(min, `at least ${min}`).max(max, `at most ${max}`);
}

/** One of the given strings. */
export function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, { error: () => `must be one of ${values.map((v) => `'${v}'`).join(', ')}` });
}

/** `message` when both keys are set (options that are aliases or alternatives of each other). */
export function notBoth(a: string, b: string, message: string) {
  return (options: Record<string, unknown>, ctx: z.RefinementCtx) => {
    if (options[a] !== undefined && options[b] !== undefined) {
      ctx.addIssue({ code: 'custom', path: [b], message });
    }
  };
}

/** Short messages for zod's generic issues (the schemas' own messages take precedence). */
export function describeIssue(issue: z.core.$ZodRawIssue): string | undefined {
  switch (issue.code) {
    case 'invalid_type':
      return issue.input === undefined ? `required (${issue.expected})` : `expected ${issue.expected}`;
    case 'too_big':
      return issue.origin === 'array' || issue.origin === 'string'
        ? `at most ${String(issue.maximum)} ${issue.origin === 'array' ? 'entries' : 'characters'}`
        : `at most ${String(issue.maximum)}`;
    case 'too_small':
      return issue.origin === 'array' || issue.origin === 'string'
        ? `at least ${String(issue.minimum)} ${issue.origin === 'array' ? 'entries' : 'characters'}`
        : `at least ${String(issue.minimum)}`;
    case 'invalid_value':
      return `must be ${issue.values.map((v) => JSON.stringify(v)).join(' or ')}`;
    default:
      return undefined;
  }
}
