/**
 * Compression benchmark (npm run bench:compression -- [options]): final test accuracy AND gradient bytes of
 * uncompressed training, the uniform baseline (PowerSGD rank 4) and L-GreCo (α = 1), under the default robust
 * rule with Byzantine workers, each run a `phalanx simulate` child (which encodes every worker's push through the
 * codecs and decodes it as the coordinator does, so its accuracy and bytes are those of a distributed job).
 *
 * Setup (every run): Fashion-MNIST (full 60k/10k when installed), n = 12 workers of which the 2 highest ranks are
 * Byzantine (ALIE with the paper's z unless --attack), the default rule (what a spec that names no rule runs) with
 * f = 2; batch 25, random flips, worker momentum 0.9, SGD lr 0.1, weight decay 1e-4; the MLP 784-128-10 (or
 * --model cnn). Test accuracy every --eval-every rounds and after the last. --model lm: the character transformer
 * of docs/specs/lm-tiny.yaml instead (defaults d = 64, 2 blocks; text from PHALANX_TEXT or the KJV, seqLen 64,
 * batch 16, Adam lr 0.003, no worker momentum; accuracy = next-character accuracy on the held-out 10 %).
 *
 * Configurations: none (dense fp32) · uniform (every layer PowerSGD rank 4, bf16 factors; vectors and matrices it
 * would not shrink twofold in fp32) · lgreco (compressors powersgd, topk, qsgd around that baseline, α = 1,
 * re-planned at round `warmup` and then every `window` rounds from the median of the workers' error tables).
 * Each configuration runs once per seed; bytes and accuracy are compared with the uncompressed run of the same
 * seed. Reported per configuration: final accuracy mean ± std (sample, over seeds) and worst; gradient bytes of a
 * run (all pushes) and per round; bytes ÷ the same seed's uncompressed run and ÷ the same seed's uniform run; the
 * accuracy difference to the same seed's uncompressed run; wall time.
 *
 * Options:
 *   --quick          60 rounds, evaluation every 30, warm-up 20, window 20, 3 seeds (≈ 3–5 min at --parallel 1
 *                    on a quiet 2-core machine)
 *   --rounds N       (default 600; --quick 60)   --eval-every N (default 100; --quick 30)
 *   --warmup N --window N   L-GreCo schedule (default 100, 200; --quick 20, 20)
 *   --seeds 0,1,2    --model mlp|cnn|lm   --attack NAME (default alie) --byzantine K (default 2)
 *   --workers N      n, Byzantine ones included (default 12)
 *   --split test|validation  what is evaluated (default test); validation holds out 10 % of the training set
 *                    (stratified, before sharding): choose settings there, report the test split
 *   --parallel K     runs at a time (default 1)   --backend NAME   --out DIR   --json FILE (every run's report)
 *   --baseline powersgd:4|topk:0.01|qsgd:4   the uniform baseline (default PowerSGD rank 4, bf16 factors)
 *   --error-model step|feedback   what L-GreCo's E counts (compression.errorModel; default feedback)
 *   --factor-values LIST   PowerSGD factor encodings L-GreCo may choose, e.g. bf16 or bf16,int8,int4
 *                    (compression.factorValues; default the job spec's)
 *   --configs LIST   which of none,uniform,lgreco to run (default all)
 *   --merge FILE     add an earlier --json file's runs of the other configurations (same setup) to the table
 *   --tables         print what each L-GreCo re-plan of the first lgreco run chose from: per layer, every
 *                    candidate's bytes S and median error E, the chosen one marked
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { validateJobSpec, type JobSpecInput } from '../src/config/jobSpec.ts';
import { parameterCount } from '../src/models/parameterCount.ts';
import type { SimulationReport } from '../src/simulation/report.ts';
import type { PlanRecord } from '../src/core/compression/compressionSession.ts';
import type { ErrorModel } from '../src/core/compression/layerErrors.ts';
import { FACTOR_ENCODINGS, type FactorEncoding } from '../src/core/compression/compressionPlan.ts';

const BIN = fileURLToPath(new URL('../bin/phalanx.js', import.meta.url));
const DEFAULT_WORKERS = 12;
const MODELS = ['mlp', 'cnn', 'lm'] as const;

/** Share of the training set held out (stratified, before sharding) under --split validation. */
const VALIDATION_FRACTION = 0.1;

export const CONFIGS = ['none', 'uniform', 'lgreco'] as const;
const ERROR_MODELS = ['step', 'feedback'] as const satisfies readonly ErrorModel[];
export type Config = (typeof CONFIGS)[number];

export interface BenchArgs {
  rounds: number;
  evalEvery: number;
  warmup: number;
  window: number;
  seeds: number[];
  model: (typeof MODELS)[number];
  workers: number;
  split: 'test' | 'validation';
  attack: string;
  byzantine: number;
  parallel: number;
  backend?: string;
  out?: string;
  json?: string;
  tables: boolean;
  errorModel: ErrorModel;
  /** compression.factorValues of the lgreco runs; absent: the job spec's default. */
  factorValues?: FactorEncoding[];
  configs: Config[];
  merge?: string;
  baseline: Baseline;
}

export type Baseline =
  | { kind: 'powersgd'; rank: number }
  | { kind: 'topk'; density: number }
  | { kind: 'qsgd'; bits: number; bucket: number };

/** Settings two bench files must share for their runs to sit in one table. */
const SAME_SETUP = ['rounds', 'evalEvery', 'model', 'workers', 'split', 'attack', 'byzantine'] as const;

/** Runs of an earlier --json file, for the configurations this run does not make (--merge). */
export function mergedRuns(file: { args: Partial<BenchArgs>; runs: Run[] }, a: BenchArgs): Run[] {
  for (const k of SAME_SETUP) {
    if (file.args[k] !== a[k])
      throw new Error(`--merge: the file's ${k} is ${String(file.args[k])}, this run's is ${String(a[k])}`);
  }
  // compressed runs of another baseline are other experiments: only the uncompressed ones carry over then
  const sameBaseline =
    JSON.stringify(file.args.baseline ?? { kind: 'powersgd', rank: 4 }) === JSON.stringify(a.baseline);
  return file.runs.filter(
    (r) => !a.configs.includes(r.config) && a.seeds.includes(r.seed) && (sameBaseline || r.config === 'none'),
  );
}

export function parseCli(argv: string[]): BenchArgs {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      rounds: { type: 'string' },
      'eval-every': { type: 'string' },
      warmup: { type: 'string' },
      window: { type: 'string' },
      seeds: { type: 'string', default: '0,1,2' },
      model: { type: 'string', default: 'mlp' },
      split: { type: 'string', default: 'test' },
      attack: { type: 'string', default: 'alie' },
      byzantine: { type: 'string', default: '2' },
      workers: { type: 'string' },
      parallel: { type: 'string', default: '1' },
      backend: { type: 'string' },
      out: { type: 'string' },
      json: { type: 'string' },
      tables: { type: 'boolean', default: false },
      'error-model': { type: 'string', default: 'feedback' },
      'factor-values': { type: 'string' },
      configs: { type: 'string', default: CONFIGS.join(',') },
      merge: { type: 'string' },
      baseline: { type: 'string', default: 'powersgd:4' },
    },
  });
  const int = (v: string | undefined, name: string, fallback: number, min = 0): number => {
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`${name}: an integer ≥ ${min} (got '${v}')`);
    return n;
  };
  const quick = values.quick!;
  const model = MODELS.find((m) => m === values.model);
  if (!model) throw new Error(`--model: ${MODELS.join(', ')}`);
  if (values.split !== 'test' && values.split !== 'validation')
    throw new Error(`--split: test or validation`);
  const seeds = values.seeds!.split(',').map((s) => int(s.trim(), '--seeds', 0));
  const errorModel = ERROR_MODELS.find((m) => m === values['error-model']);
  if (!errorModel) throw new Error(`--error-model: ${ERROR_MODELS.join(' or ')}`);
  const factorValues = values['factor-values']?.split(',').map((v) => {
    const found = FACTOR_ENCODINGS.find((e) => e === v.trim());
    if (!found) throw new Error(`--factor-values: a list of ${FACTOR_ENCODINGS.join(', ')} (got '${v}')`);
    return found;
  });
  const configs = values.configs!.split(',').map((c) => {
    const found = CONFIGS.find((k) => k === c.trim());
    if (!found) throw new Error(`--configs: a list of ${CONFIGS.join(', ')} (got '${c}')`);
    return found;
  });
  return {
    rounds: int(values.rounds, '--rounds', quick ? 60 : 600, 1),
    evalEvery: int(values['eval-every'], '--eval-every', quick ? 30 : 100),
    warmup: int(values.warmup, '--warmup', quick ? 20 : 100),
    window: int(values.window, '--window', quick ? 20 : 200, 1),
    seeds,
    model,
    workers: int(values.workers, '--workers', DEFAULT_WORKERS, 1),
    split: values.split,
    attack: values.attack!,
    byzantine: int(values.byzantine, '--byzantine', 2),
    parallel: int(values.parallel, '--parallel', 1, 1),
    ...(values.backend ? { backend: values.backend } : {}),
    ...(values.out ? { out: values.out } : {}),
    ...(values.json ? { json: values.json } : {}),
    tables: values.tables!,
    errorModel,
    ...(factorValues ? { factorValues } : {}),
    configs,
    ...(values.merge ? { merge: values.merge } : {}),
    baseline: parseBaseline(values.baseline!),
  };
}

/** --baseline powersgd:RANK | topk:DENSITY | qsgd:BITS (bucket 128) — the uniform setting both compressed configs start from. */
export function parseBaseline(text: string): Baseline {
  const [kind, param] = text.split(':');
  const value = Number(param);
  const bad = () => new Error(`--baseline: powersgd:RANK, topk:DENSITY or qsgd:BITS (got '${text}')`);
  if (param === undefined || !Number.isFinite(value)) throw bad();
  if (kind === 'powersgd') return { kind, rank: value };
  if (kind === 'topk') return { kind, density: value };
  if (kind === 'qsgd') return { kind, bits: value, bucket: 128 };
  throw bad();
}

/** How a baseline reads in tables: 'PowerSGD r4', 'top-k 1%', 'QSGD 4 bits'. */
export function describeBaseline(b: Baseline): string {
  if (b.kind === 'powersgd') return `PowerSGD r${b.rank}`;
  if (b.kind === 'topk') return `top-k ${+(100 * b.density).toPrecision(3)}%`;
  return `QSGD ${b.bits} bits`;
}

/** The job spec of one run. */
export function runSpec(config: Config, seed: number, a: BenchArgs): JobSpecInput {
  const baseline = a.baseline;
  const compression: JobSpecInput['compression'] =
    config === 'none'
      ? { kind: 'none' }
      : config === 'uniform'
        ? { kind: 'uniform', baseline }
        : {
            kind: 'lgreco',
            baseline,
            compressors: ['powersgd', 'topk', 'qsgd'],
            alpha: 1,
            warmup: a.warmup,
            window: a.window,
            errorModel: a.errorModel,
            ...(a.factorValues ? { factorValues: a.factorValues } : {}),
          };
  const validation = a.split === 'validation';
  const lm = a.model === 'lm';
  return {
    name: `compression-${config}`,
    seed,
    model: lm
      ? { kind: 'transformer' }
      : a.model === 'mlp'
        ? { kind: 'mlp', hidden: [128] }
        : { kind: 'cnn' },
    // text always holds out its last 10 % (the evaluated split whichever its name)
    data: lm
      ? { kind: 'text', seqLen: 64, batchSize: 16 }
      : {
          kind: 'fashion-mnist',
          batchSize: 25,
          flip: true,
          ...(validation ? { validation: VALIDATION_FRACTION } : {}),
        },
    optimizer: lm ? { kind: 'adam', lr: 0.003 } : { kind: 'sgd', lr: 0.1, momentum: 0, weightDecay: 1e-4 },
    rounds: a.rounds,
    workers: { min: a.workers, max: a.workers, momentum: lm ? 0 : 0.9 },
    aggregation: { f: a.byzantine },
    checkpoint: { every: 0 },
    evaluation: { every: a.evalEvery, ...(validation ? { split: 'validation' as const } : {}) },
    compression,
    simulate: { byzantine: { count: a.byzantine, attack: a.attack, options: {} } },
  };
}

export interface Run {
  config: Config;
  seed: number;
  accuracy?: number;
  /** Gradient bytes of all pushes (the dense fp32 size under none). */
  bytes?: number;
  rounds?: number;
  plans?: string[];
  wallSeconds?: number;
  error?: string;
  report?: SimulationReport;
}

/** Gradient bytes a run sent: the compressed bytes, or the fp32 size of every push when uncompressed. */
export function runBytes(report: SimulationReport, parameters: number): number {
  if (report.compression) return report.compression.bytes;
  const pushes = report.health.ranks.reduce((s, r) => s + r.delivered, 0);
  return pushes * 4 * parameters;
}

export interface Stats {
  n: number;
  mean: number;
  std: number;
  worst: number;
}

/** Mean, sample standard deviation (0 for one value) and minimum. */
export function stats(xs: number[]): Stats {
  const v = xs.filter(Number.isFinite);
  if (v.length === 0) return { n: 0, mean: NaN, std: NaN, worst: NaN };
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const std = v.length > 1 ? Math.sqrt(v.reduce((a, x) => a + (x - mean) ** 2, 0) / (v.length - 1)) : 0;
  return { n: v.length, mean, std, worst: Math.min(...v) };
}

export interface Row {
  config: Config;
  accuracy: Stats;
  /** Accuracy minus the same seed's uncompressed accuracy. */
  accuracyVsNone: Stats;
  bytesPerRun: Stats;
  /** Bytes ÷ the same seed's uncompressed bytes, and ÷ the same seed's uniform bytes. */
  bytesVsNone: Stats;
  bytesVsUniform: Stats;
  wallSeconds: Stats;
}

/** One row per configuration; ratios pair runs of the same seed. */
export function summarise(runs: Run[]): Row[] {
  const of = (config: Config, seed: number) =>
    runs.find((r) => r.config === config && r.seed === seed && r.accuracy !== undefined);
  return CONFIGS.map((config) => {
    const mine = runs.filter((r) => r.config === config && r.accuracy !== undefined);
    const paired = (other: Config, f: (a: Run, b: Run) => number) =>
      stats(
        mine.map((r) => {
          const o = of(other, r.seed);
          return o ? f(r, o) : NaN;
        }),
      );
    return {
      config,
      accuracy: stats(mine.map((r) => r.accuracy!)),
      accuracyVsNone: paired('none', (a, b) => a.accuracy! - b.accuracy!),
      bytesPerRun: stats(mine.map((r) => r.bytes!)),
      bytesVsNone: paired('none', (a, b) => a.bytes! / b.bytes!),
      bytesVsUniform: paired('uniform', (a, b) => a.bytes! / b.bytes!),
      wallSeconds: stats(mine.map((r) => r.wallSeconds!)),
    };
  });
}

const pct = (x: number) => (Number.isFinite(x) ? (100 * x).toFixed(2) : '–');
const pm = (s: Stats, f: (x: number) => string) => (s.n ? `${f(s.mean)} ± ${f(s.std)}` : '–');
const mb = (x: number) => (Number.isFinite(x) ? (x / 1e6).toFixed(2) : '–');
const ratio = (x: number) => (Number.isFinite(x) ? x.toFixed(4) : '–');

/** The results table (markdown) and the claims of issue 9, checked on the means. */
export function formatTable(rows: Row[], rounds: number): string {
  const lines = [
    '| config | final acc % (mean ± std) | worst % | Δ acc vs none (pts) | MB per run | MB per round | bytes ÷ none | bytes ÷ uniform | wall s |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.config} | ${pm(r.accuracy, pct)} | ${pct(r.accuracy.worst)} | ${pm(r.accuracyVsNone, pct)} | ` +
        `${mb(r.bytesPerRun.mean)} | ${mb(r.bytesPerRun.mean / rounds)} | ${ratio(r.bytesVsNone.mean)} | ` +
        `${ratio(r.bytesVsUniform.mean)} | ${r.wallSeconds.mean.toFixed(0)} |`,
    );
  }
  const row = (c: Config) => rows.find((r) => r.config === c)!;
  const u = row('uniform');
  const l = row('lgreco');
  const check = (ok: boolean) => (ok ? 'yes' : 'NO');
  lines.push(
    '',
    `uniform within 0.5 points of uncompressed (mean): ${check(u.accuracyVsNone.mean >= -0.005)} (${pct(u.accuracyVsNone.mean)} pts)`,
    `lgreco bytes ≤ 0.5 × uniform (mean over seeds): ${check(l.bytesVsUniform.mean <= 0.5)} (${ratio(l.bytesVsUniform.mean)})`,
    `lgreco accuracy ≥ uniform (mean): ${check(l.accuracy.mean >= u.accuracy.mean)} (${pct(l.accuracy.mean)} vs ${pct(u.accuracy.mean)})`,
  );
  return lines.join('\n');
}

/** The knapsack behind one L-GreCo plan, as text: per layer, each candidate's S and E, '*' on the chosen. */
export function formatDecision(record: PlanRecord): string {
  const d = record.decision;
  if (!d) return `${record.planId}: the baseline (no decision)`;
  const chosenBytes = d.layers.reduce((s, l) => s + l.bytes[l.chosen], 0);
  const chosenError = d.layers.reduce((s, l) => s + l.errors[l.chosen], 0);
  const lines = [
    `${record.planId} (from round ${record.fromRound}, median of ${record.tables} tables): budget ΣE(baseline) = ` +
      `${d.budget.toExponential(3)}, chosen ΣE = ${chosenError.toExponential(3)}; bytes ${chosenBytes} of the ` +
      `baseline's ${d.baselineBytes} (${ratio(chosenBytes / d.baselineBytes)}×)`,
  ];
  for (const l of d.layers) {
    lines.push(`  ${l.name}`);
    l.settings.forEach((s, j) => {
      const e = l.errors[j];
      lines.push(
        `    ${j === l.chosen ? '*' : ' '} ${s.padEnd(24)} S ${String(l.bytes[j]).padStart(8)}  E ${e === null || !Number.isFinite(e) ? '∞' : e.toExponential(3)}`,
      );
    });
  }
  return lines.join('\n');
}

function runChild(config: Config, seed: number, a: BenchArgs, dir: string): Promise<Run> {
  const base = path.join(dir, `${config}-seed${seed}`);
  const spec = runSpec(config, seed, a);
  writeFileSync(`${base}.json`, `${JSON.stringify(spec, null, 2)}\n`);
  const cliArgs = [BIN, 'simulate', '--config', `${base}.json`, '--report', `${base}.report.json`];
  if (a.backend) cliArgs.push('--backend', a.backend);
  const started = performance.now();
  const child = spawn(process.execPath, cliArgs, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, CI: '1' },
  });
  let log = '';
  const onData = (b: Buffer) => (log += b.toString());
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  return new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      writeFileSync(`${base}.log`, log);
      const wallSeconds = (performance.now() - started) / 1000;
      if (code !== 0) {
        resolve({
          config,
          seed,
          wallSeconds,
          error: `exit ${code ?? signal}: ${log.trim().split('\n').at(-1)}`,
        });
        return;
      }
      const report = JSON.parse(readFileSync(`${base}.report.json`, 'utf8')) as SimulationReport;
      const parameters = parameterCount(validateJobSpec(spec).model);
      resolve({
        config,
        seed,
        accuracy: report.finalAccuracy,
        bytes: runBytes(report, parameters),
        rounds: report.rounds,
        plans: report.compression?.plans.map((p) => `${p.planId}: ${p.settings.join(', ')}`),
        wallSeconds,
        report,
      });
    });
  });
}

async function main(): Promise<void> {
  const a = parseCli(process.argv.slice(2));
  const dir = a.out ?? mkdtempSync(path.join(os.tmpdir(), 'phalanx-bench-compression-'));
  mkdirSync(dir, { recursive: true });
  const todo = a.seeds.flatMap((seed) => a.configs.map((config) => ({ config, seed })));
  const merged = a.merge
    ? mergedRuns(JSON.parse(readFileSync(a.merge, 'utf8')) as { args: BenchArgs; runs: Run[] }, a)
    : [];
  console.log(
    `compression: ${todo.length} runs (${a.configs.join(', ')} × seeds ${a.seeds.join(',')}), ${a.model}, ${a.split} split, ${a.rounds} rounds, ` +
      `n = ${a.workers} with ${a.byzantine} × ${a.attack}, default rule, baseline ${describeBaseline(a.baseline)}, ` +
      `L-GreCo error model ${a.errorModel}, factors ${(a.factorValues ?? ['the spec default']).join('/')}, ` +
      `${a.parallel} at a time; files in ${dir}`,
  );
  if (merged.length) console.log(`  + ${merged.length} runs of ${a.merge}`);
  const runs: Run[] = [...merged];
  let next = 0;
  const worker = async () => {
    while (next < todo.length) {
      const { config, seed } = todo[next++];
      const run = await runChild(config, seed, a, dir);
      runs.push(run);
      console.log(
        run.error
          ? `  ${config} seed ${seed}: FAILED ${run.error}`
          : `  ${config} seed ${seed}: acc ${pct(run.accuracy!)}%, ${mb(run.bytes!)} MB, ${run.wallSeconds!.toFixed(0)} s` +
              (run.plans && run.plans.length > 1 ? `, ${run.plans.length} plans` : ''),
      );
      if (a.json) writeFileSync(a.json, `${JSON.stringify({ args: a, runs }, null, 2)}\n`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(a.parallel, todo.length) }, worker));
  console.log('');
  console.log(formatTable(summarise(runs), a.rounds));
  const lg = runs.find((r) => r.config === 'lgreco' && r.plans);
  if (lg?.plans) console.log(`\nL-GreCo plans (seed ${lg.seed}):\n  ${lg.plans.join('\n  ')}`);
  if (a.tables && lg?.report?.compression) {
    for (const record of lg.report.compression.plans.filter((r) => r.decision))
      console.log(`\n${formatDecision(record)}`);
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  main().catch((e: unknown) => {
    console.error(`bench:compression: ${(e as Error).message}`);
    process.exit(1);
  });
}
