/**
 * The cases of the aggregation golden test (not a test file itself): every registered rule and pre-aggregator,
 * with the options the benchmarks and the README use, on fixed seeded inputs, each reduced to one sha256 over the
 * bits of what it returns. A change of any bit of any case (a reordered sum, a different tie rule) changes its
 * hash; `scripts/gen-aggregation-golden.ts` writes the hashes of the current code to
 * `test/fixtures/aggregation-golden.json`, and `golden.test.ts` compares against that file.
 *
 * Inputs per size (n, f, d): n − f honest vectors μ + σ·ξ and f sign-flipped −4μ (as the demo's attackers), in
 * two flavours: `gauss` (continuous values) and `ties` (values on a coarse grid, so that every coordinate-wise
 * rule meets equal values across its cuts). The sizes cover d not a multiple of the SIMD width (4), several
 * cache blocks, odd and even n, and f from 1 to 4. Stateful rules and pre-aggregators (centered clipping, the
 * Flag Aggregator's warm start, bucketing's round counter) run three rounds on one instance, each round hashed.
 */
import { createHash } from 'node:crypto';
import { createAggregationPipeline } from '../../../src/core/aggregation/pipeline.ts';
import {
  createPreAggregator,
  createRule,
  listPreAggregators,
  listRules,
} from '../../../src/core/aggregation/registry.ts';
import type { AggregationResult } from '../../../src/core/aggregation/types.ts';
import { Rng } from '../../../src/core/random.ts';

export interface GoldenSize {
  n: number;
  f: number;
  d: number;
}

export const GOLDEN_SIZES: readonly GoldenSize[] = [
  { n: 5, f: 1, d: 37 },
  { n: 8, f: 1, d: 4103 },
  { n: 12, f: 2, d: 2050 },
  { n: 16, f: 3, d: 6001 },
  { n: 19, f: 4, d: 1027 },
];

export const FLAVOURS = ['gauss', 'ties'] as const;
export type Flavour = (typeof FLAVOURS)[number];

/** Rounds run on one instance for every case (stateful rules carry state between them). */
export const ROUNDS = 3;

/** A rule case: registry name, options, and the pre-aggregators run before it (through the pipeline). */
interface RuleCase {
  label: string;
  rule: string;
  options: Record<string, unknown>;
  pre: string[];
}

/**
 * Every registered rule with its defaults, plus the variants the README, the aggregation benchmark (flag r and λ
 * grid) and the robustness benchmark (trimmed mean + clip + NNM, flag reference mode) run, and the compat modes.
 */
export function ruleCases(): RuleCase[] {
  const cases: RuleCase[] = listRules().map((rule) => ({ label: rule, rule, options: {}, pre: [] }));
  const extra: [string, string, Record<string, unknown>, string[]][] = [
    ['median', 'byzfl', { compat: 'byzfl' }, []],
    ['median', 'garfield', { compat: 'garfield' }, []],
    ['trimmedMean', 'byzfl', { compat: 'byzfl' }, []],
    ['trimmedMean', 'garfield', { compat: 'garfield' }, []],
    ['krum', 'byzfl', { compat: 'byzfl' }, []],
    ['krum', 'garfield', { compat: 'garfield' }, []],
    ['multiKrum', 'byzfl', { compat: 'byzfl' }, []],
    ['bulyan', 'garfield', { compat: 'garfield' }, []],
    ['meamed', 'byzfl', { compat: 'byzfl' }, []],
    ['geometricMedian', 'byzfl', { compat: 'byzfl' }, []],
    ['centeredClipping', 'byzfl', { compat: 'byzfl' }, []],
    ['flag', 'r=1', { r: 1 }, []],
    ['flag', 'r=8', { r: 8 }, []],
    ['flag', 'r=1,lambda=1', { r: 1, lambda: 1 }, []],
    ['flag', 'r=8,lambda=1', { r: 8, lambda: 1 }, []],
    ['flag', 'reference', { mode: 'reference' }, []],
    ['flag', 'reference,r=8,lambda=1', { mode: 'reference', r: 8, lambda: 1 }, []],
    ['flag', 'median-norm', { r: 'auto', rescale: 'median-norm' }, []],
    ['flag', 'unscaled', { r: 'auto', rescale: 'none', signThreshold: 0 }, []],
    ['flag', 'sign-0', { r: 'auto', signThreshold: 0 }, []],
    ['flag', 'principal-axis', { signDirection: 'principal-axis' }, []],
    ['flag', 'subspace-step', { step: 'subspace' }, []],
    ['trimmedMean', 'pre=clip,nnm', {}, ['clip', 'nnm']],
    ['mean', 'pre=bucketing', {}, ['bucketing']],
    ['median', 'pre=arc', {}, ['arc']],
    ['krum', 'pre=nnm', {}, ['nnm']],
  ];
  for (const [rule, variant, options, pre] of extra) {
    cases.push({ label: `${rule}(${variant})`, rule, options, pre });
  }
  return cases;
}

/** Pre-aggregator cases: every registered one with its defaults, and clip with an explicit threshold. */
export function preCases(): string[] {
  return [...listPreAggregators(), 'clip(c=2)', 'bucketing(s=3, seed=7)'];
}

/** Round `round` of size `size`: n vectors (honest first, then the f sign-flipped ones), deterministic. */
export function goldenInput(size: GoldenSize, flavour: Flavour, round: number): Float32Array[] {
  const { n, f, d } = size;
  const rng = new Rng(1000 * n + 10 * d + 7 * round + (flavour === 'ties' ? 1 : 0));
  const mu = new Float64Array(d);
  for (let k = 0; k < d; k++) mu[k] = flavour === 'ties' ? rng.int(5) - 2 : rng.normal();
  const vectors: Float32Array[] = [];
  for (let i = 0; i < n; i++) {
    const x = new Float32Array(d);
    const byzantine = i >= n - f;
    for (let k = 0; k < d; k++) {
      if (byzantine) x[k] = -4 * mu[k];
      else if (flavour === 'ties') x[k] = mu[k] + 0.5 * (rng.int(5) - 2);
      else x[k] = mu[k] + 0.5 * rng.normal();
    }
    vectors.push(x);
  }
  return vectors;
}

function ids(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `w${i}`);
}

/**
 * sha256 of the update's float32 bytes, then per worker its included flag, trust and weight (float64 bytes) and
 * reason; or the error message when the rule refused the input (a precondition is part of the behaviour).
 */
export function hashResult(result: AggregationResult): string {
  const h = createHash('sha256');
  h.update(new Uint8Array(result.update.buffer, result.update.byteOffset, result.update.byteLength));
  const nums = new Float64Array(2 * result.workers.length);
  result.workers.forEach((w, i) => {
    nums[2 * i] = w.trust;
    nums[2 * i + 1] = w.weight;
  });
  h.update(new Uint8Array(nums.buffer));
  h.update(result.workers.map((w) => `${w.included ? 1 : 0}${w.reason ?? ''}`).join('|'));
  return h.digest('hex');
}

/** sha256 of a pre-aggregator's output vectors and its mixing matrix (float64 bytes) when tracked. */
function hashVectors(vectors: Float32Array[], mixing?: Float64Array): string {
  const h = createHash('sha256');
  h.update(String(vectors.length));
  for (const v of vectors) h.update(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
  if (mixing !== undefined) h.update(new Uint8Array(mixing.buffer, mixing.byteOffset, mixing.byteLength));
  return h.digest('hex');
}

function errorHash(e: unknown): string {
  return `error: ${e instanceof Error ? e.name : 'thrown'}`;
}

/** One hash of a case's rounds: the first 16 hex digits of sha256 over the rounds' hashes. */
function combine(rounds: string[]): string {
  return createHash('sha256').update(rounds.join(',')).digest('hex').slice(0, 16);
}

/**
 * Every case's hash, keyed "rule|pre label n=… f=… d=… flavour" (the ROUNDS rounds of one instance hashed
 * together), or "error: <name>" when round 0 is refused. Deterministic.
 */
export function computeGolden(): Record<string, string> {
  const out: Record<string, string> = {};
  const record = (key: string, round: (r: number) => string) => {
    const hashes: string[] = [];
    try {
      for (let r = 0; r < ROUNDS; r++) hashes.push(round(r));
      out[key] = combine(hashes);
    } catch (e) {
      out[key] = hashes.length === 0 ? errorHash(e) : `${errorHash(e)} at round ${hashes.length}`;
    }
  };
  for (const size of GOLDEN_SIZES) {
    for (const flavour of FLAVOURS) {
      const inputs = Array.from({ length: ROUNDS }, (_, r) => goldenInput(size, flavour, r));
      const workerIds = ids(size.n);
      const at = `n=${size.n} f=${size.f} d=${size.d} ${flavour}`;
      for (const c of ruleCases()) {
        if (c.pre.length > 0) {
          const pipeline = createAggregationPipeline({
            rule: c.rule,
            f: size.f,
            pre: c.pre,
            options: c.options,
          });
          record(`rule ${c.label} ${at}`, (r) => hashResult(pipeline.aggregate(inputs[r], workerIds)));
        } else {
          const rule = createRule(c.rule, c.options);
          record(`rule ${c.label} ${at}`, (r) =>
            hashResult(rule.aggregate({ vectors: inputs[r], workerIds, f: size.f })),
          );
        }
      }
      for (const spec of preCases()) {
        const tracked = createPreAggregator(spec);
        const plain = createPreAggregator(spec);
        record(`pre ${spec} ${at}`, (r) => hashVectors(plain.apply(inputs[r], size.f)));
        record(`pre ${spec} tracked ${at}`, (r) => {
          const t = tracked.applyTracked?.(inputs[r], size.f);
          return t === undefined ? 'untracked' : hashVectors(t.vectors, t.mixing);
        });
      }
    }
  }
  return out;
}
