/**
 * Option schemas of the attacks (registry.ts), for `simulate.byzantine.options` in a job spec. They mirror what
 * each factory's OptionReader accepts, with bounds on what costs time or memory per round (line-search
 * evaluations, bisection range, replay history), so an admitted spec constructs and runs in bounded time.
 */
import { z } from 'zod';
import {
  boundedInt,
  describeIssue,
  boundedNumber,
  flattenIssues,
  notBoth,
  oneOf,
  optionsObject,
  type PathIssue,
} from '../optionSchema.ts';
import { listAttacks } from './registry.ts';

export const MAX_LINE_SEARCH_EVALS = 1_000;
export const MAX_REPLAY_LAG = 100;
/** wrongSize allocates its vector: at most 2²⁴ floats (64 MiB), longer than the layouts it is meant to break. */
export const MAX_WRONG_SIZE = 2 ** 24;
/** Shejwalkar's bisection takes ⌈log₂(gammaInit / tol)⌉ steps: at most ≈ 80 with these bounds. */
const GAMMA_BOUNDS = { gammaInit: { gt: 0, max: 1e12 }, tol: { min: 1e-12, max: 1e12 } } as const;

const finite = z.number();
const index = boundedInt(0, 1023);
const round = boundedInt(0, 10_000_000);
const fraction = boundedNumber({ gt: 0, max: 1 });

const lineSearch = {
  evals: boundedInt(1, MAX_LINE_SEARCH_EVALS).optional(),
  start: finite.optional(),
  delta: finite.refine((v) => v !== 0, 'must be ≠ 0').optional(),
  ratio: boundedNumber({ gt: 0.5, lt: 1 }).optional(),
};

const shejwalkar = optionsObject({
  devType: oneOf(['std', 'unit_vec', 'sign']).optional(),
  gammaInit: boundedNumber(GAMMA_BOUNDS.gammaInit).optional(),
  tol: boundedNumber(GAMMA_BOUNDS.tol).optional(),
});

/** Option schemas by attack name. */
export const ATTACK_OPTION_SCHEMAS: Readonly<Record<string, z.ZodType>> = Object.freeze({
  signflip: optionsObject({ mode: oneOf(['mean', 'own']).optional(), scale: finite.optional() }),
  scaledReverse: optionsObject({ k: finite.optional(), source: oneOf(['auto', 'own', 'mean']).optional() }),
  gaussian: optionsObject({ mu: finite.optional(), sigma: boundedNumber({ min: 0 }).optional() }),
  uniform: optionsObject({ low: finite.optional(), high: finite.optional() }).refine(
    (o) => (o.high ?? 1) > (o.low ?? 0),
    { path: ['high'], message: 'must be greater than low (defaults: low 0, high 1)' },
  ),
  labelflip: optionsObject({ classes: boundedInt(1, 256).optional() }),
  alie: optionsObject({
    tau: finite.optional(),
    z: finite.optional(),
    zVariant: oneOf(['paper', 'honest']).optional(),
    ddof: index.optional(),
  }).superRefine(notBoth('tau', 'z', "give 'tau' (μ + τσ) or 'z' (μ − zσ), not both")),
  ipm: optionsObject({ epsilon: finite.optional(), tau: finite.optional() }).superRefine(
    notBoth('epsilon', 'tau', "give 'epsilon' or its alias 'tau', not both"),
  ),
  mimic: optionsObject({ epsilon: index.optional() }),
  minmax: shejwalkar,
  minsum: shejwalkar,
  optimalAlie: optionsObject({ ...lineSearch, ddof: index.optional() }),
  optimalIpm: optionsObject(lineSearch),
  inf: optionsObject({ negative: z.boolean().optional(), fraction: fraction.optional() }),
  nan: optionsObject({ fraction: fraction.optional() }),
  wrongSize: optionsObject({
    delta: boundedInt(-MAX_WRONG_SIZE, MAX_WRONG_SIZE)
      .refine((v) => v !== 0, 'must be ≠ 0')
      .optional(),
    length: boundedInt(0, MAX_WRONG_SIZE).optional(),
  }).superRefine(notBoth('delta', 'length', "give 'delta' or 'length', not both")),
  replay: optionsObject({ lag: boundedInt(1, MAX_REPLAY_LAG).optional(), freeze: z.boolean().optional() }),
  crash: optionsObject({ fromRound: round.optional() }),
  straggle: optionsObject({
    delayMs: boundedNumber({ min: 0, max: 3_600_000 }).optional(),
    fromRound: round.optional(),
  }),
});

/** Paths relative to `simulate.byzantine` in a job spec. */
export type AttackIssue = PathIssue;

/** Everything wrong with an attack name and its options (empty when `createAttack(attack, options)` builds). */
export function checkAttack(attack: string, options: Record<string, unknown>): AttackIssue[] {
  if (!listAttacks().includes(attack)) {
    return [{ path: ['attack'], message: `unknown attack '${attack}' (valid: ${listAttacks().join(', ')})` }];
  }
  // a registered attack without a schema here takes no options from a job spec
  const schema = Object.hasOwn(ATTACK_OPTION_SCHEMAS, attack)
    ? ATTACK_OPTION_SCHEMAS[attack]
    : optionsObject({});
  const result = schema.safeParse(options, { error: describeIssue });
  if (result.success) return [];
  return flattenIssues(result.error.issues).map((issue) => ({
    path: ['options', ...issue.path],
    message: issue.message,
  }));
}
