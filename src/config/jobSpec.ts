/**
 * The job spec (architecture.md §5): YAML or JSON, validated with zod at the edge. Errors name the field and
 * say what is expected. Everything downstream receives a fully-defaulted, typed JobSpec.
 */
import { z } from 'zod';
import YAML from 'yaml';
import { parseDuration } from './duration.ts';

const duration = z.union([z.number(), z.string()]).transform((v, ctx) => {
  try {
    return parseDuration(v);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: (e as Error).message });
    return z.NEVER;
  }
});

const modelSchema = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('mlp'),
    hidden: z.array(z.number().int().positive()).min(1).default([128]),
  }),
  z.strictObject({ kind: z.literal('cnn') }),
]);

const dataSchema = z.strictObject({
  kind: z.literal('fashion-mnist').default('fashion-mnist'),
  /** Directory with the IDX files; default: PHALANX_DATA, the Debian package, then the bundled subset. */
  path: z.string().optional(),
  batchSize: z.number().int().min(1).max(4096).default(32),
  /** Random horizontal flips (ByzFL's Fashion-MNIST preprocessing). */
  flip: z.boolean().default(false),
  maxTrain: z.number().int().positive().optional(),
  maxTest: z.number().int().positive().optional(),
  shardBy: z.literal('worker').default('worker'),
});

const optimizerSchema = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('sgd'),
    lr: z.number().positive(),
    momentum: z.number().min(0).max(1).default(0),
    weightDecay: z.number().min(0).default(0),
    nesterov: z.boolean().default(false),
  }),
  z.strictObject({
    kind: z.literal('adam'),
    lr: z.number().positive(),
    beta1: z.number().min(0).max(1).default(0.9),
    beta2: z.number().min(0).max(1).default(0.999),
    eps: z.number().positive().default(1e-8),
    weightDecay: z.number().min(0).default(0),
  }),
]);

const workersSchema = z
  .strictObject({
    /** Rounds close without stragglers once at least `min` gradients arrived and roundTimeout passed. */
    min: z.number().int().min(1).default(1),
    /** Number of data shards; ranks 0..max-1. */
    max: z.number().int().min(1).max(1024).default(8),
    roundTimeout: duration.default(10_000),
    heartbeatTtl: duration.default(6_000),
    /** Worker-side momentum (ByzFL): workers send m ← β·m + (1 − β)·g instead of g. 0 = off. */
    momentum: z.number().min(0).max(0.9999).default(0),
  })
  .refine((w) => w.min <= w.max, { message: 'workers.min must be <= workers.max', path: ['min'] });

const aggregationSchema = z.strictObject({
  rule: z.string().min(1).default('flag'),
  f: z.number().int().min(0).default(0),
  pre: z.array(z.string().min(1)).default([]),
  options: z.record(z.string(), z.unknown()).default({}),
  /** Compute budget of one round's aggregation; a round that exceeds it is skipped, with the reason. */
  deadline: duration
    .pipe(
      z.number().min(1000, 'must be at least 1s (e.g. 30s)').max(3_600_000, 'must be at most 1h (e.g. 10m)'),
    )
    .default(60_000),
});

const compressionSchema = z.strictObject({
  kind: z.literal('none').default('none'),
  /** Wire encoding of the dense parameters and gradients. */
  encoding: z.enum(['fp32', 'bf16']).default('fp32'),
});

const checkpointSchema = z.strictObject({
  every: z.number().int().min(0).default(50),
  dir: z.string().default('./checkpoints'),
  keep: z.number().int().min(1).default(3),
});

const evaluationSchema = z.strictObject({
  every: z.number().int().min(0).default(50),
  /** Test examples used per evaluation (all if omitted). */
  limit: z.number().int().positive().optional(),
});

const simulateSchema = z.strictObject({
  byzantine: z
    .strictObject({
      count: z.number().int().min(0).default(0),
      attack: z.string().default('signflip'),
      options: z.record(z.string(), z.unknown()).default({}),
    })
    .default({ count: 0, attack: 'signflip', options: {} }),
});

export const jobSpecSchema = z.strictObject({
  name: z
    .string()
    .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'use lowercase letters, digits and dashes (max 63 chars)')
    .default('job'),
  seed: z.number().int().min(0).default(1),
  model: modelSchema.default({ kind: 'mlp', hidden: [128] }),
  data: dataSchema.default({ kind: 'fashion-mnist', batchSize: 32, flip: false, shardBy: 'worker' }),
  optimizer: optimizerSchema.default({
    kind: 'sgd',
    lr: 0.1,
    momentum: 0.9,
    weightDecay: 0,
    nesterov: false,
  }),
  rounds: z.number().int().min(1).max(10_000_000).default(200),
  workers: workersSchema.default({ min: 1, max: 8, roundTimeout: 10_000, heartbeatTtl: 6_000, momentum: 0 }),
  aggregation: aggregationSchema.default({ rule: 'flag', f: 0, pre: [], options: {}, deadline: 60_000 }),
  compression: compressionSchema.default({ kind: 'none', encoding: 'fp32' }),
  checkpoint: checkpointSchema.default({ every: 50, dir: './checkpoints', keep: 3 }),
  evaluation: evaluationSchema.default({ every: 50 }),
  simulate: simulateSchema.optional(),
});

export type JobSpec = z.output<typeof jobSpecSchema>;
export type JobSpecInput = z.input<typeof jobSpecSchema>;

export class JobSpecError extends Error {
  constructor(readonly issues: string[]) {
    super(`invalid job spec:\n  - ${issues.join('\n  - ')}`);
    this.name = 'JobSpecError';
  }
}

/** Validate an already-parsed object. */
export function validateJobSpec(value: unknown): JobSpec {
  const parsed = jobSpecSchema.safeParse(value ?? {});
  if (!parsed.success) {
    throw new JobSpecError(
      parsed.error.issues.map(
        (issue) => `${issue.path.length ? issue.path.join('.') : '(root)'}: ${issue.message}`,
      ),
    );
  }
  return parsed.data;
}

/** Parse YAML or JSON text (JSON is YAML) and validate. */
export function parseJobSpec(text: string): JobSpec {
  let value: unknown;
  try {
    value = YAML.parse(text);
  } catch (e) {
    throw new JobSpecError([`(root): not valid YAML/JSON: ${(e as Error).message.split('\n')[0]}`]);
  }
  return validateJobSpec(value);
}
