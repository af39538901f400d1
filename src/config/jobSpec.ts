/**
 * The job spec: YAML or JSON, validated with zod at the edge. Every default is stated once, in the schema of the
 * section it belongs to (a parent section only says "absent means all defaults"), and every field is bounded, so
 * what passes `validateJobSpec` can be queued: rule, pre-aggregator and attack options are checked against the
 * schemas their registries own, and the rule's preconditions against workers.max. Errors name the field path and
 * say what is allowed. Everything downstream receives a fully-defaulted, typed JobSpec.
 */
import { z } from 'zod';
import YAML from 'yaml';
import { checkAggregation } from '../core/aggregation/ruleOptionSchemas.ts';
import { checkAttack } from '../core/attacks/attackOptionSchemas.ts';
import { boundedInt, boundedNumber, describeIssue, flattenIssues } from '../core/optionSchema.ts';
import { KJV_VOCABULARY } from '../data/text.ts';
import { parameterCount } from '../models/parameterCount.ts';
import { transformerSpecProblems } from '../models/transformerSpec.ts';
import { parseDuration } from './duration.ts';
import {
  FACTOR_ENCODINGS,
  PLAN_LIMITS,
  type CompressorKind,
  type FactorEncoding,
  type UniformSetting,
} from '../core/compression/compressionPlan.ts';
import type { ErrorModel } from '../core/compression/layerErrors.ts';

/** Bounds of a job spec (README "Limits"). */
export const LIMITS = Object.freeze({
  maxWorkers: 1024,
  maxRounds: 10_000_000,
  maxHiddenLayers: 16,
  maxLayerWidth: 65_536,
  /** 1 GiB of float32 per copy of the parameters; the coordinator's memory budget usually binds first. */
  maxParameters: 2 ** 28,
  maxBatchSize: 4096,
  maxExamples: 10_000_000,
  maxPreAggregators: 8,
  maxPathLength: 4096,
  minDurationMs: 100,
  minHeartbeatTtlMs: 1000,
  maxDurationMs: 24 * 3_600_000,
  maxCheckpointsKept: 100,
});

function duration(minMs: number = LIMITS.minDurationMs) {
  return z.union([z.number(), z.string()]).transform((v, ctx) => {
    let ms: number;
    try {
      ms = parseDuration(v);
    } catch (e) {
      ctx.addIssue({ code: 'custom', message: (e as Error).message });
      return z.NEVER;
    }
    if (ms < minMs || ms > LIMITS.maxDurationMs) {
      ctx.addIssue({ code: 'custom', message: `must be between ${minMs} ms and 24h (got ${ms} ms)` });
      return z.NEVER;
    }
    return ms;
  });
}

/** A strict section: unknown fields are refused with the list of known ones. */
function section<S extends z.ZodRawShape>(shape: S) {
  const known = Object.keys(shape);
  return z.strictObject(shape, {
    error: (issue) =>
      issue.code === 'unrecognized_keys' ? `unknown field (known: ${known.join(', ')})` : undefined,
  });
}

const count = (max: number) => boundedInt(0, max);
const positive = (max: number) => boundedInt(1, max);

/**
 * A sub-directory of the coordinator's checkpoint directory: relative, no '..', plain names. Normalised to
 * 'a/b' ('./a//b/' → 'a/b'; '.' → undefined, the checkpoint directory itself).
 */
const relativeDir = z
  .string()
  .max(255, 'at most 255 characters')
  .transform((dir, ctx) => {
    if (/^([/\\]|[A-Za-z]:)/.test(dir)) {
      ctx.addIssue({
        code: 'custom',
        message: "must be relative: a sub-directory of the coordinator's checkpoint directory (e.g. runs/a)",
      });
      return z.NEVER;
    }
    const parts = dir.split(/[/\\]/).filter((p) => p !== '' && p !== '.');
    if (parts.includes('..')) {
      ctx.addIssue({
        code: 'custom',
        message: "must not contain '..' (it must stay inside the checkpoint directory)",
      });
      return z.NEVER;
    }
    if (!parts.every((p) => /^[A-Za-z0-9._-]+$/.test(p))) {
      ctx.addIssue({
        code: 'custom',
        message: 'use letters, digits, dots, dashes and underscores in each path segment',
      });
      return z.NEVER;
    }
    return parts.length ? parts.join('/') : undefined;
  });

const mlpSchema = section({
  kind: z.literal('mlp'),
  hidden: z
    .array(positive(LIMITS.maxLayerWidth))
    .min(1, 'at least one hidden layer')
    .max(LIMITS.maxHiddenLayers, `at most ${LIMITS.maxHiddenLayers} hidden layers`)
    .default([128]),
});

/** A decoder-only character transformer (src/models/transformer.ts); trains on data.kind text. */
const transformerSchema = section({
  kind: z.literal('transformer'),
  /** The sorted distinct characters of the text (token id = index); default: those of the whole KJV. */
  vocab: z.string().min(2).max(256).default(KJV_VOCABULARY),
  dModel: positive(4096).default(64),
  layers: positive(64).default(2),
  heads: positive(64).default(4),
  /** Hidden width of each block's MLP. */
  ffn: positive(LIMITS.maxLayerWidth).default(256),
  /** Longest sequence (positions embedded); data.seqLen must not exceed it. */
  context: positive(4096).default(64),
  /** Present: a recursive student, `layers` deep, running `blocks` shared blocks (docs/students.md). */
  recursion: section({
    blocks: positive(64),
    schedule: z
      .enum(['cycle', 'middle-cycle'], { error: () => "must be 'cycle' or 'middle-cycle'" })
      .default('cycle'),
    /** Teacher layers each shared block starts from; scratch: the seeded initialisation (see studentInit.ts). */
    init: z
      .enum(['stepwise', 'average', 'lower', 'scratch'], {
        error: () => "must be 'stepwise', 'average', 'lower' or 'scratch'",
      })
      .default('stepwise'),
    /** Rank of each tied layer's LoRA; 0 = purely recursive, ≥ dModel = full rank. */
    loraRank: z.number().int().min(0).max(4096).default(0),
    /** Present: Mixture-of-Recursions routing (schedule cycle, layers = R·blocks; docs/students.md). */
    mor: section({
      /** Fraction of tokens running each of the R recursions: 1 first, non-increasing, each in (0, 1]. */
      capacities: z.array(z.number()).min(1).max(64),
      /** Weight of the router's auxiliary loss. */
      auxLossWeight: z.number().min(0).max(100).default(0.01),
    }).optional(),
  }).optional(),
  /** Present: each block's MLP is a mixture of `experts` MLPs of width ffn, top-k routed (docs/students.md). */
  moe: section({
    experts: z.number().int().min(2).max(64),
    topK: positive(64).default(2),
    /** Capacity factor: each expert takes at most ⌈capacity·topK·tokens/experts⌉ tokens of a pass; absent = no limit. */
    capacity: z.number().positive().max(64).optional(),
    /** Weight of the load-balancing loss (Switch: 0.01). */
    auxLossWeight: z.number().min(0).max(100).default(0.01),
    /** Where the experts start given a dense teacher of the student's shape (studentInit.ts); scratch: the seed. */
    init: z
      .enum(['scratch', 'upcycle', 'split'], { error: () => "must be 'scratch', 'upcycle' or 'split'" })
      .default('scratch'),
    /** How blocks score experts: linear (x·W_r per block) or rmoe (a GRU carried across depth); absent = linear. */
    router: z.enum(['linear', 'rmoe'], { error: () => "must be 'linear' or 'rmoe'" }).optional(),
    /** Width p of the rmoe router's GRU (router rmoe only; absent: 32). */
    routerHidden: positive(1024).optional(),
  }).optional(),
}).superRefine((model, ctx) => {
  // Bounds are the fields' own schemas; here only what relates fields (heads | dModel) or the vocabulary.
  for (const problem of transformerSpecProblems(model).filter(
    (p) => !p.endsWith('must be a positive integer'),
  )) {
    const nested = /^(recursion|moe)\.([\w.]+) (.*)$/.exec(problem);
    if (nested !== null) {
      ctx.addIssue({ code: 'custom', path: [nested[1], ...nested[2].split('.')], message: nested[3] });
      continue;
    }
    const field = problem.startsWith('vocab') ? 'vocab' : problem.startsWith('dModel') ? 'heads' : undefined;
    ctx.addIssue({ code: 'custom', path: field ? [field] : [], message: problem });
  }
});

export const modelSchema = z
  .discriminatedUnion('kind', [mlpSchema, section({ kind: z.literal('cnn') }), transformerSchema], {
    error: () => "must be 'mlp', 'cnn' or 'transformer'",
  })
  .superRefine((model, ctx) => {
    const p = parameterCount(model);
    if (p > LIMITS.maxParameters) {
      ctx.addIssue({
        code: 'custom',
        path: model.kind === 'mlp' ? ['hidden'] : [],
        message: `${p.toLocaleString('en')} parameters; at most ${LIMITS.maxParameters.toLocaleString('en')}: use ${model.kind === 'transformer' ? 'a smaller dModel, ffn or fewer layers' : 'narrower layers'}`,
      });
    }
  });

const dataSchema = section({
  /** 'fashion-mnist' (images, for mlp and cnn) or 'text' (characters of the KJV, for transformer; src/data/text.ts). */
  kind: z
    .enum(['fashion-mnist', 'text'], { error: () => "must be 'fashion-mnist' or 'text'" })
    .default('fashion-mnist'),
  /**
   * Dataset directory. The coordinator only accepts one inside its data roots (src/coordinator/admission.ts);
   * absent: PHALANX_DATA, the Debian package, then the bundled subset.
   */
  path: z
    .string()
    .min(1)
    .max(LIMITS.maxPathLength)
    .refine((p) => !p.includes('\0'), 'must not contain NUL')
    .optional(),
  /**
   * kind text only: a UTF-8 text file (the coordinator only accepts one inside its data roots); absent:
   * PHALANX_TEXT, the Debian KJV packages, then the bundled excerpt. Its last 10 % is held out for evaluation.
   */
  source: z
    .string()
    .min(1)
    .max(LIMITS.maxPathLength)
    .refine((p) => !p.includes('\0'), 'must not contain NUL')
    .optional(),
  /** kind text only: characters per training sequence (64 when absent there). */
  seqLen: positive(4096).optional(),
  batchSize: positive(LIMITS.maxBatchSize).default(32),
  /** Random horizontal flips (ByzFL's Fashion-MNIST preprocessing). */
  flip: z.boolean().default(false),
  maxTrain: positive(LIMITS.maxExamples).optional(),
  maxTest: positive(LIMITS.maxExamples).optional(),
  /** 'worker': IID shards; 'dirichlet': per class, shard proportions ~ Dirichlet(alpha) (src/data/sharding.ts). */
  shardBy: z
    .enum(['worker', 'dirichlet'], { error: () => "must be 'worker' or 'dirichlet'" })
    .default('worker'),
  /** Dirichlet concentration (only with shardBy: dirichlet; 1 when absent there): small = far from IID. */
  alpha: boundedNumber({ min: 0.01, max: 1000 }).optional(),
  /** Fraction of the training set held out for validation (stratified, seeded, before sharding). */
  validation: boundedNumber({ min: 0, max: 0.5 }).default(0),
})
  .superRefine((data, ctx) => {
    const text = data.kind === 'text';
    const onlyFor = (field: string, kind: string, fix: string) =>
      ctx.addIssue({ code: 'custom', path: [field], message: `only with kind: ${kind} (${fix})` });
    if (!text && data.source !== undefined) onlyFor('source', 'text', 'use path for Fashion-MNIST');
    if (!text && data.seqLen !== undefined) onlyFor('seqLen', 'text', 'add kind: text or remove seqLen');
    if (text && data.path !== undefined) onlyFor('path', 'fashion-mnist', 'use source for a text file');
    if (text && data.flip) onlyFor('flip', 'fashion-mnist', 'remove flip');
    const unshardable = 'text is sharded IID by sequence (remove shardBy or use shardBy: worker)';
    if (text && data.shardBy === 'dirichlet')
      ctx.addIssue({ code: 'custom', path: ['shardBy'], message: unshardable });
    if (text && data.validation > 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['validation'],
        message: 'text always holds out its last 10 % for evaluation (remove validation)',
      });
    }
    if (data.shardBy !== 'dirichlet' && data.alpha !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['alpha'],
        message: 'only with shardBy: dirichlet (add shardBy: dirichlet or remove alpha)',
      });
    }
  })
  .transform(({ alpha, ...rest }): typeof rest & { alpha?: number } => {
    const withSeqLen = rest.kind === 'text' ? { ...rest, seqLen: rest.seqLen ?? 64 } : rest;
    return rest.shardBy === 'dirichlet' ? { ...withSeqLen, alpha: alpha ?? 1 } : withSeqLen;
  });

const rate = boundedNumber({ gt: 0, max: 1e6 });
/**
 * Decay β of the iterate average θ̄ ← β·θ̄ + (1 − β)·θ that the job evaluates and delivers (workers still train
 * on θ; src/core/optim/parameterAverage.ts). 0 = off: the live parameters are the model.
 */
export const DEFAULT_EMA = 0.95;
const ema = boundedNumber({ min: 0, lt: 1 }).default(DEFAULT_EMA);
const optimizerSchema = z.discriminatedUnion(
  'kind',
  [
    section({
      kind: z.literal('sgd'),
      lr: rate.default(0.1),
      momentum: boundedNumber({ min: 0, max: 1 }).default(0),
      weightDecay: boundedNumber({ min: 0, max: 1 }).default(0),
      nesterov: z.boolean().default(false),
      ema,
    }).refine((o) => !o.nesterov || o.momentum > 0, { path: ['nesterov'], message: 'needs momentum > 0' }),
    section({
      kind: z.literal('adam'),
      lr: rate.default(1e-3),
      beta1: boundedNumber({ min: 0, lt: 1 }).default(0.9),
      beta2: boundedNumber({ min: 0, lt: 1 }).default(0.999),
      eps: boundedNumber({ gt: 0, max: 1 }).default(1e-8),
      weightDecay: boundedNumber({ min: 0, max: 1 }).default(0),
      ema,
    }),
  ],
  { error: () => "must be 'sgd' or 'adam'" },
);

const workersSchema = section({
  /** Rounds close without stragglers once at least `min` gradients arrived and roundTimeout passed. */
  min: positive(LIMITS.maxWorkers).default(1),
  /** Number of data shards; ranks 0..max-1. */
  max: positive(LIMITS.maxWorkers).default(8),
  roundTimeout: duration().default(10_000),
  /** Workers heartbeat every second: a shorter TTL would drop them all. */
  heartbeatTtl: duration(LIMITS.minHeartbeatTtlMs).default(6_000),
  /** Worker-side momentum (ByzFL): workers send m ← β·m + (1 − β)·g instead of g. 0 = off. */
  momentum: boundedNumber({ min: 0, max: 0.9999 }).default(0),
}).refine((w) => w.min <= w.max, { message: 'must be <= workers.max', path: ['min'] });

const aggregationSchema = section({
  rule: z.string().min(1).max(64).default('flag'),
  f: count(LIMITS.maxWorkers - 1).default(0),
  pre: z
    .array(z.string().min(1).max(256))
    .max(LIMITS.maxPreAggregators, `at most ${LIMITS.maxPreAggregators} pre-aggregators`)
    .default([]),
  /** The rule's options, plus `preOptions: { <pre-aggregator>: {...} }`. */
  options: z.record(z.string(), z.unknown()).default({}),
  /**
   * Mixture-of-experts models: each expert block is aggregated over the workers that sent a non-zero gradient
   * for it (src/core/aggregation/perGroup.ts), under this rule or the guard's fallback.
   */
  perExpert: z.boolean().default(false),
  /** Compute budget of one round's aggregation; a round that exceeds it is skipped, with the reason. */
  deadline: duration(1000)
    .pipe(
      z.number().min(1000, 'must be at least 1s (e.g. 30s)').max(3_600_000, 'must be at most 1h (e.g. 10m)'),
    )
    .default(60_000),
});

/** Value encoding of compressed values (topk/randk values, PowerSGD factors). */
const valueEncoding = z.enum(['fp32', 'bf16'], { error: () => "must be 'fp32' or 'bf16'" });
const density = boundedNumber({ gt: 0, max: 1 });
/** PowerSGD factors: fp32/bf16 values or 8-/4-bit integer codes with per-column scales. */
const factorEncoding = z.enum(FACTOR_ENCODINGS, {
  error: () =>
    `must be ${FACTOR_ENCODINGS.map((e) => `'${e}'`)
      .join(', ')
      .replace(/, ([^,]*)$/, ' or $1')}`,
});

/** The uniform baseline: one compressor setting applied to every layer (src/core/compression/compressionPlan.ts). */
const baselineSchema = z.discriminatedUnion(
  'kind',
  [
    section({
      kind: z.literal('powersgd'),
      rank: positive(PLAN_LIMITS.maxRank).default(4),
      values: factorEncoding.default('bf16'),
    }),
    section({
      kind: z.literal('topk'),
      density: density.default(0.01),
      values: valueEncoding.default('bf16'),
    }),
    section({
      kind: z.literal('randk'),
      density: density.default(0.01),
      values: valueEncoding.default('bf16'),
    }),
    section({
      kind: z.literal('qsgd'),
      bits: boundedInt(PLAN_LIMITS.minBits, PLAN_LIMITS.maxBits).default(4),
      bucket: positive(PLAN_LIMITS.maxBucket).default(128),
    }),
    section({ kind: z.literal('fp32') }),
    section({ kind: z.literal('bf16') }),
  ],
  {
    error: () =>
      "must be one of 'powersgd', 'topk', 'randk', 'qsgd', 'fp32', 'bf16' (e.g. { kind: powersgd, rank: 4 })",
  },
);

const ADAPTIVE = ['powersgd', 'topk', 'randk', 'qsgd'] as const;
const ERROR_MODELS = ['step', 'feedback'] as const satisfies readonly ErrorModel[];
/** Fields that only L-GreCo reads. */
const LGRECO_ONLY = ['compressors', 'alpha', 'window', 'warmup', 'errorModel', 'factorValues'] as const;

/**
 * Gradient compression (docs/compression.md). `none`: dense gradients in `encoding`; `uniform`: every layer with
 * `baseline`; `lgreco`: per-layer settings from the L-GreCo planner, starting from the baseline and re-planned
 * at round `warmup`, then every `window` rounds, under the error budget alpha × the baseline's error. Parameters
 * travel down in `encoding` whatever the kind.
 */
const compressionSchema = section({
  kind: z
    .enum(['none', 'uniform', 'lgreco'], { error: () => "must be 'none', 'uniform' or 'lgreco'" })
    .default('none'),
  /** Wire encoding of the parameters (and of dense gradients under kind: none). */
  encoding: valueEncoding.default('fp32'),
  compressors: z
    .array(z.enum(ADAPTIVE, { error: () => `must be one of ${ADAPTIVE.map((a) => `'${a}'`).join(', ')}` }))
    .min(1, 'at least one compressor (e.g. [powersgd, topk, qsgd])')
    .max(ADAPTIVE.length, `at most ${ADAPTIVE.length} entries`)
    .optional(),
  baseline: baselineSchema.optional(),
  alpha: boundedNumber({ gt: 0, max: 100 }).optional(),
  window: positive(LIMITS.maxRounds).optional(),
  warmup: count(LIMITS.maxRounds).optional(),
  /**
   * What the planner's E measures: 'step', one round's squared error on p = g + e; 'feedback', the squared
   * error-feedback memory a setting would hold in steady state, from its contraction on the fresh gradient g.
   */
  errorModel: z
    .enum(ERROR_MODELS, { error: () => `must be ${ERROR_MODELS.map((m) => `'${m}'`).join(' or ')}` })
    .optional(),
  /** Encodings the planner may give PowerSGD factors, each with the whole rank grid. */
  factorValues: z
    .array(factorEncoding)
    .min(1, 'at least one encoding (e.g. [bf16, int8, int4])')
    .max(FACTOR_ENCODINGS.length, `at most ${FACTOR_ENCODINGS.length} entries`)
    .optional(),
})
  .superRefine((c, ctx) => {
    if (c.kind !== 'lgreco') {
      for (const field of LGRECO_ONLY) {
        if (c[field] !== undefined) {
          ctx.addIssue({
            code: 'custom',
            path: [field],
            message: `only with kind: lgreco (set kind: lgreco, or remove ${field})`,
          });
        }
      }
    }
    if (c.kind === 'none' && c.baseline !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['baseline'],
        message: 'only with kind: uniform or lgreco (set one, or remove baseline)',
      });
    }
    if (c.compressors && new Set(c.compressors).size !== c.compressors.length) {
      ctx.addIssue({ code: 'custom', path: ['compressors'], message: 'lists a compressor twice' });
    }
    if (c.factorValues && new Set(c.factorValues).size !== c.factorValues.length) {
      ctx.addIssue({ code: 'custom', path: ['factorValues'], message: 'lists an encoding twice' });
    }
  })
  .transform((c): CompressionSpec => {
    const baseline: UniformSetting = c.baseline ?? { kind: 'powersgd', rank: 4, values: 'bf16' };
    switch (c.kind) {
      case 'none':
        return { kind: 'none', encoding: c.encoding };
      case 'uniform':
        return { kind: 'uniform', encoding: c.encoding, baseline };
      case 'lgreco':
        return {
          kind: 'lgreco',
          encoding: c.encoding,
          baseline,
          compressors: c.compressors ?? ['powersgd', 'topk', 'qsgd'],
          alpha: c.alpha ?? 1,
          window: c.window ?? 200,
          warmup: c.warmup ?? 100,
          errorModel: c.errorModel ?? 'feedback',
          factorValues: c.factorValues ?? defaultFactorValues(baseline),
        };
    }
  });

export type CompressionSpec =
  | { kind: 'none'; encoding: 'fp32' | 'bf16' }
  | { kind: 'uniform'; encoding: 'fp32' | 'bf16'; baseline: UniformSetting }
  | {
      kind: 'lgreco';
      encoding: 'fp32' | 'bf16';
      baseline: UniformSetting;
      compressors: CompressorKind[];
      alpha: number;
      window: number;
      warmup: number;
      errorModel: ErrorModel;
      factorValues: FactorEncoding[];
    };

/** Integer factor codes L-GreCo may choose by default. */
const DEFAULT_CODED_FACTORS: readonly FactorEncoding[] = ['int8', 'int4'];

/** The baseline's own factor encoding (or bf16 when the baseline is not PowerSGD) and the integer codes. */
function defaultFactorValues(baseline: UniformSetting): FactorEncoding[] {
  const own: FactorEncoding = baseline.kind === 'powersgd' ? baseline.values : 'bf16';
  return [own, ...DEFAULT_CODED_FACTORS.filter((e) => e !== own)];
}

const checkpointSchema = section({
  every: count(LIMITS.maxRounds).default(50),
  /** Sub-directory of the coordinator's checkpoint directory (absent: that directory itself). */
  dir: relativeDir.optional(),
  keep: positive(LIMITS.maxCheckpointsKept).default(3),
}).transform(({ dir, ...rest }): { every: number; keep: number; dir?: string } =>
  dir === undefined ? rest : { ...rest, dir },
);

const evaluationSchema = section({
  every: count(LIMITS.maxRounds).default(50),
  /** Examples of the evaluated split used per evaluation (all if omitted). */
  limit: positive(LIMITS.maxExamples).optional(),
  /** What is evaluated: the test set, or the validation examples held out of the training set (data.validation). */
  split: z.enum(['test', 'validation'], { error: () => "must be 'test' or 'validation'" }).default('test'),
});

/** An aggregation choice without a deadline: the rule a guarded job falls back to (absent f: aggregation.f). */
const fallbackSchema = section({
  rule: z.string().min(1).max(64).default('median'),
  f: count(LIMITS.maxWorkers - 1).optional(),
  pre: aggregationSchema.shape.pre,
  options: aggregationSchema.shape.options,
});

/**
 * The divergence guard (src/core/round/divergenceGuard.ts states the tests): its signals go into every round's
 * report; with `rollback`, a signal sends the job back to its newest good checkpoint (DivergenceGuard.health) to
 * continue with `fallback`.
 */
const guardSchema = section({
  enabled: z.boolean().default(true),
  /** Rounds in the rolling medians of the loss and the update norm. */
  window: boundedInt(5, 10_000).default(20),
  /** Signal when the loss stays above lossJump × its lowest rolling median for `patience` rounds. */
  lossJump: boundedNumber({ gt: 1, max: 1e6 }).default(2),
  patience: boundedInt(1, 1000).default(3),
  /** Signal when the update norm exceeds normJump × its rolling median. */
  normJump: boundedNumber({ gt: 1, max: 1e6 }).default(10),
  /** Signal when the evaluation accuracy falls below (1 − accuracyDrop) × the best one so far. */
  accuracyDrop: boundedNumber({ gt: 0, max: 1 }).default(0.5),
  rollback: z.boolean().default(false),
  /** Rollbacks allowed; one more signal after that fails the job. */
  maxRollbacks: count(100).default(3),
  fallback: fallbackSchema.prefault({}),
}).refine((g) => g.enabled || !g.rollback, {
  path: ['rollback'],
  message: 'needs guard.enabled: true (its signals are what trigger a rollback)',
});

/**
 * Distillation (docs/students.md): the job's model is a student trained on α·T²·KL(p_T‖p_S) + (1−α)·CE against a
 * teacher checkpoint. The coordinator admits only a checkpoint inside its checkpoint directory or a data root,
 * whose model reads the same inputs and predicts the same classes (same vocabulary for text), and pins its sha256;
 * each worker pulls the teacher once and refuses bytes that do not match.
 */
const teacherSchema = section({
  /** A checkpoint directory, relative to the coordinator's checkpoint directory or one of its data roots. */
  checkpoint: z
    .string()
    .min(1)
    .max(LIMITS.maxPathLength)
    .refine((p) => !p.includes('\0'), 'must not contain NUL'),
  /** Weight of the teacher term; 1 − alpha weighs the cross-entropy with the true next token / label. */
  alpha: boundedNumber({ min: 0, max: 1 }).default(0.5),
  /** Softening temperature of both models' logits in the teacher term. */
  temperature: boundedNumber({ gt: 0, max: 100 }).default(2),
  /** sha256 of the teacher's model.safetensors; admission fills it in (a given one must match the checkpoint). */
  sha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/, 'a sha256 in lower-case hex (see `phalanx checkpoint inspect`)')
    .optional(),
});

export type TeacherSpec = z.output<typeof teacherSchema>;

const simulateSchema = section({
  byzantine: section({
    count: count(LIMITS.maxWorkers).default(0),
    attack: z.string().min(1).max(64).default('signflip'),
    options: z.record(z.string(), z.unknown()).default({}),
  }).prefault({}),
});

export const jobSpecSchema = section({
  name: z
    .string()
    .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'use lowercase letters, digits and dashes (max 63 chars)')
    .default('job'),
  seed: count(2 ** 32 - 1).default(1),
  model: modelSchema.prefault({ kind: 'mlp' }),
  data: dataSchema.prefault({}),
  optimizer: optimizerSchema.prefault({ kind: 'sgd' }),
  rounds: positive(LIMITS.maxRounds).default(200),
  workers: workersSchema.prefault({}),
  aggregation: aggregationSchema.prefault({}),
  compression: compressionSchema.prefault({}),
  checkpoint: checkpointSchema.prefault({}),
  evaluation: evaluationSchema.prefault({}),
  guard: guardSchema.prefault({}),
  /** Present: a distillation job whose model is the student of this teacher. */
  teacher: teacherSchema.optional(),
  /** Only for `phalanx simulate`: simulated Byzantine workers. */
  simulate: simulateSchema.optional(),
}).superRefine((spec, ctx) => {
  // Cross-field checks: what the rule, its pre-aggregators and the attack need of the rest of the spec.
  const lm = spec.model.kind === 'transformer';
  if (lm !== (spec.data.kind === 'text')) {
    ctx.addIssue({
      code: 'custom',
      path: lm ? ['data', 'kind'] : ['model', 'kind'],
      message: lm
        ? 'a transformer trains on text: set data: { kind: text } (model and data must match)'
        : 'text data needs model: { kind: transformer } (mlp and cnn read images; model and data must match)',
    });
  }
  if (
    spec.model.kind === 'transformer' &&
    spec.data.seqLen !== undefined &&
    spec.data.seqLen > spec.model.context
  ) {
    ctx.addIssue({
      code: 'custom',
      path: ['data', 'seqLen'],
      message: `at most model.context (${spec.model.context}): lower seqLen or raise model.context`,
    });
  }
  if (spec.evaluation.split === 'validation' && spec.data.validation === 0 && spec.data.kind !== 'text') {
    ctx.addIssue({
      code: 'custom',
      path: ['evaluation', 'split'],
      message: "'validation' needs data.validation > 0 (e.g. data: { validation: 0.1 })",
    });
  }
  if (spec.aggregation.perExpert && !(spec.model.kind === 'transformer' && spec.model.moe)) {
    ctx.addIssue({
      code: 'custom',
      path: ['aggregation', 'perExpert'],
      message:
        'needs a mixture-of-experts model (model: { kind: transformer, moe: { experts: 4 } }); remove aggregation.perExpert or add model.moe',
    });
  }
  const moeInit = spec.model.kind === 'transformer' ? spec.model.moe?.init : undefined;
  if (moeInit !== undefined && moeInit !== 'scratch' && !spec.teacher) {
    ctx.addIssue({
      code: 'custom',
      path: ['model', 'moe', 'init'],
      message: `'${moeInit}' builds the experts from a teacher's MLP: add a teacher section or use 'scratch'`,
    });
  }
  const parameters = parameterCount(spec.model);
  for (const issue of checkAggregation(spec.aggregation, spec.workers.max, parameters)) {
    ctx.addIssue({ code: 'custom', path: ['aggregation', ...issue.path], message: issue.message });
  }
  if (spec.guard.rollback) {
    for (const issue of checkAggregation(fallbackAggregation(spec), spec.workers.max, parameters)) {
      ctx.addIssue({ code: 'custom', path: ['guard', 'fallback', ...issue.path], message: issue.message });
    }
  }
  const byz = spec.simulate?.byzantine;
  if (byz) {
    if (byz.count > spec.workers.max) {
      ctx.addIssue({
        code: 'custom',
        path: ['simulate', 'byzantine', 'count'],
        message: `at most workers.max (${spec.workers.max})`,
      });
    }
    for (const issue of checkAttack(byz.attack, byz.options)) {
      ctx.addIssue({
        code: 'custom',
        path: ['simulate', 'byzantine', ...issue.path],
        message: issue.message,
      });
    }
  }
});

export type JobSpec = z.output<typeof jobSpecSchema>;
export type JobSpecInput = z.input<typeof jobSpecSchema>;

/** The aggregation a guarded job continues with after a rollback. */
export function fallbackAggregation(spec: Pick<JobSpec, 'aggregation' | 'guard'>): {
  rule: string;
  f: number;
  pre: string[];
  options: Record<string, unknown>;
} {
  const { rule, f, pre, options } = spec.guard.fallback;
  return { rule, f: f ?? spec.aggregation.f, pre, options };
}

/** The detector thresholds of the guard section. */
export function guardOptions(spec: Pick<JobSpec, 'guard'>) {
  const { window, lossJump, patience, normJump, accuracyDrop } = spec.guard;
  return { window, lossJump, patience, normJump, accuracyDrop };
}

export class JobSpecError extends Error {
  /**
   * `issues`: one line per problem, "<field path>: <what is allowed>"; `fields`: the field path of each ('(root)' for
   * the spec as a whole).
   */
  constructor(
    readonly issues: string[],
    readonly fields: string[] = issues.map((i) => i.slice(0, Math.max(0, i.indexOf(': '))) || '(root)'),
  ) {
    super(`invalid job spec:\n  - ${issues.join('\n  - ')}`);
    this.name = 'JobSpecError';
  }
}

/** Validate an already-parsed object (the one place where a spec's defaults are applied). */
export function validateJobSpec(value: unknown): JobSpec {
  const parsed = jobSpecSchema.safeParse(value ?? {}, { error: describeIssue });
  if (!parsed.success) {
    const issues = flattenIssues(parsed.error.issues);
    const fields = issues.map((issue) => (issue.path.length ? issue.path.join('.') : '(root)'));
    throw new JobSpecError(
      issues.map((issue, i) => `${fields[i]}: ${issue.message}`),
      fields,
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
