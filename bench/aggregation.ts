/**
 * Aggregation-rule throughput (npm run bench:aggregation [-- options]).
 *
 * For every n ∈ {8, 16, 32} and d ∈ {1e5, 1e6, 1e7} (f = ⌊(n − 1)/4⌋) it times each rule's aggregate() on one
 * synthetic round (n − f honest workers μ + noise, f sign-flipped −μ), and, in the same run on the same input, one
 * plain pass over the data (a summing loop): the floor any rule has to pay. Reported: median ms, GB/s of input
 * processed (n·d·4 bytes / time) and the ratio to the plain pass, timed between the rule's runs (interleaved:
 * the machine is shared, and the ratio to a pass timed under the same load is what stays comparable).
 *
 * Targets (the project's performance targets; reference timings measured on this machine at n = 16,
 * d = 10⁶, f = 3, one thread, where one pass over the 64 MB input takes ≈ 0.01 s): every rule at or below its
 * reference (numpy trimmed mean 0.072 s, numpy median 0.46 s, Krum (scipy) 0.14 s, geometric median (numpy)
 * 0.12 s, FA ≤ 0.15 s), mean and clipping (clip, ARC) within 2× of one pass; no target for centered clipping
 * and bucketing. At that size the table adds the target, the load-independent estimate "× pass · 0.01 s" and
 * whether the estimate meets the target.
 *
 * Options:
 *   --quick             only d ≤ 1e6
 *   --rules a,b(k=v)    rules to run (registry names; inline options as in "flag(r=8, lambda=1)"; pre-aggregators
 *                       as "pre:clip", "pre:nnm(f=3)", timed by applyTracked); default: every registered rule
 *                       with default options, the FA variants below and the pre-aggregators
 *   --scalar            disable the WebAssembly SIMD kernels (scalar reference code, for comparisons)
 *   --n 16 --d 1e6      restrict the grid (comma lists allowed)
 *   --json FILE         also write the results as JSON
 *   --budget SECONDS    measured time per rule and size (default 1.5; at least 3 runs unless one run exceeds 3 s)
 *
 * Inputs are generated once per (n, d) (n = 32, d = 1e7 is 1.28 GB of float32) and released before the next size.
 */
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import {
  createPreAggregator,
  createRule,
  listPreAggregators,
  listRules,
  parsePreSpec,
} from '../src/core/aggregation/registry.ts';
import { setSimdKernels, simdKernelsActive } from '../src/core/aggregation/kernels/registry.ts';
import type { AggregationRule } from '../src/core/aggregation/types.ts';

interface RuleSpec {
  label: string;
  name: string;
  options: Record<string, unknown>;
  /** A pre-aggregator ("pre:" prefix): timed through applyTracked. */
  pre: boolean;
}

interface Row {
  label: string;
  rule: string;
  options: Record<string, unknown>;
  n: number;
  d: number;
  f: number;
  ms: number | null;
  minMs: number | null;
  samples: number[];
  gbPerS: number | null;
  /** Median of the plain passes timed between this rule's runs (the ratio's denominator). */
  passMs?: number;
  ratioToPass: number | null;
  /** At the reference size: the target in seconds, the estimate ratio · PASS_S and whether it meets it. */
  targetS?: number;
  estimateS?: number;
  met?: boolean;
  error?: string;
}

/** The one-pass time the targets assume at the reference size (n = 16, d = 10⁶) on this machine. */
const PASS_S = 0.01;

/**
 * Target of a rule at n = 16, d = 10⁶, f = 3 (seconds): its reference timing (the family it belongs to), 2 passes
 * for the mean and the clipping pre-aggregators; undefined when there is none.
 */
function targetSeconds(name: string, pre: boolean): number | undefined {
  if (pre) return name === 'clip' || name === 'arc' ? 2 * PASS_S : name === 'nnm' ? 0.14 : undefined;
  const byRule: Record<string, number> = {
    mean: 2 * PASS_S,
    trimmedMean: 0.072,
    phocas: 0.072,
    median: 0.46,
    meamed: 0.46,
    krum: 0.14,
    multiKrum: 0.14,
    bulyan: 0.14,
    mda: 0.14,
    monna: 0.14,
    geometricMedian: 0.12,
    flag: 0.15,
  };
  return byRule[name];
}

const FLAG_VARIANTS = [
  'flag(r=1)',
  'flag(r=8)',
  'flag(r=1, lambda=1)',
  'flag(r=8, lambda=1)',
  'flag(mode=reference, r=8, lambda=1)',
];

function parseArgs(argv: string[]) {
  const args = {
    quick: false,
    scalar: false,
    rules: null as string[] | null,
    json: null as string | null,
    budget: 1.5,
  };
  let ns = [8, 16, 32];
  let ds = [1e5, 1e6, 1e7];
  const list = (v: string | undefined, flag: string): string => {
    if (v === undefined) throw new Error(`${flag} needs a value`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') continue;
    if (a === '--quick') args.quick = true;
    else if (a === '--scalar') args.scalar = true;
    else if (a === '--rules') args.rules = splitTopLevel(list(argv[++i], a));
    else if (a === '--json') args.json = list(argv[++i], a);
    else if (a === '--budget') args.budget = Number(list(argv[++i], a));
    else if (a === '--n') ns = list(argv[++i], a).split(',').map(Number);
    else if (a === '--d') ds = list(argv[++i], a).split(',').map(Number);
    else throw new Error(`unknown argument '${a}' (see the header of bench/aggregation.ts)`);
  }
  if (args.quick) ds = ds.filter((d) => d <= 1e6);
  for (const x of [...ns, ...ds]) if (!Number.isInteger(x) || x < 1) throw new Error(`invalid size ${x}`);
  if (!(args.budget > 0)) throw new Error('--budget must be positive');
  return { ...args, ns, ds };
}

/** Splits "a,b(x=1, y=2),c" on the commas outside parentheses. */
function splitTopLevel(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      if (cur.trim()) out.push(cur.trim());
      cur = '';
    } else cur += ch;
  }
  if (cur.trim()) out.push(cur.trim());
  return out;
}

function ruleSpec(text: string): RuleSpec {
  const pre = text.startsWith('pre:');
  const { name, args } = parsePreSpec(pre ? text.slice(4) : text);
  const options: Record<string, unknown> = {};
  for (const [k, v] of args) {
    if (k === null) throw new Error(`rule spec '${text}': use key=value options`);
    options[k] = v;
  }
  return { label: text.replace(/\s+/g, ''), name, options, pre };
}

/** Synthetic round: honest μ + U(−1, 1) noise (cosine to μ ≈ 0.87), f sign-flipped −μ. xorshift32, seeded. */
function makeInput(n: number, d: number, f: number): Float32Array[] {
  let x = 0x9e3779b9 ^ (n * 7919 + d);
  const next = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296 - 0.5;
  };
  const mu = new Float32Array(d);
  for (let k = 0; k < d; k++) mu[k] = 2 * next();
  const vectors: Float32Array[] = [];
  for (let i = 0; i < n; i++) {
    const v = new Float32Array(d);
    if (i < n - f) for (let k = 0; k < d; k++) v[k] = mu[k] + next();
    else for (let k = 0; k < d; k++) v[k] = -mu[k];
    vectors.push(v);
  }
  return vectors;
}

/** The floor: one summing pass over all n·d inputs (4 accumulators, as a tuned rule's inner loop would). */
function plainPass(vectors: Float32Array[]): number {
  let total = 0;
  for (const a of vectors) {
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    let k = 0;
    const d = a.length;
    for (; k + 3 < d; k += 4) {
      s0 += a[k];
      s1 += a[k + 1];
      s2 += a[k + 2];
      s3 += a[k + 3];
    }
    for (; k < d; k++) s0 += a[k];
    total += s0 + s1 + s2 + s3;
  }
  return total;
}

let sink = 0;

/**
 * Runs fn once or twice as warm-up, then until `budget` seconds are spent (3..10 runs); one run if the warm-up
 * took > 3 s.
 * With `pass`, one plain pass is timed before every run as well (interleaved, so that the ratio compares the
 * rule with the floor under the same machine load: the machine is shared).
 */
function time(
  fn: () => number,
  budget: number,
  pass?: () => number,
): { samples: number[]; passSamples: number[] } {
  let t = performance.now();
  sink += fn();
  const first = performance.now() - t;
  // a second warm-up run when cheap: WebAssembly kernels tier up from the baseline compiler after a few calls
  if (first < Math.min(500, (budget * 1000) / 4)) {
    t = performance.now();
    sink += fn();
  }
  const passSamples: number[] = [];
  const timePass = () => {
    if (pass === undefined) return;
    t = performance.now();
    sink += pass();
    passSamples.push(performance.now() - t);
  };
  if (first > 3000) {
    timePass();
    return { samples: [first], passSamples };
  }
  const reps = Math.max(3, Math.min(10, Math.ceil((budget * 1000) / Math.max(first, 1e-3))));
  const samples: number[] = [];
  for (let i = 0; i < reps; i++) {
    timePass();
    t = performance.now();
    sink += fn();
    samples.push(performance.now() - t);
  }
  return { samples, passSamples };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : 0.5 * (s[m - 1] + s[m]);
}

function fmt(x: number | null, digits: number): string {
  return x === null ? '—' : x.toFixed(digits);
}

function main(): void {
  const args = parseArgs(process.argv.slice(2));
  if (args.scalar) setSimdKernels(false);
  const defaults = [...listRules(), ...FLAG_VARIANTS, ...listPreAggregators().map((p) => `pre:${p}`)];
  const specs = (args.rules ?? defaults).map(ruleSpec);
  const rows: Row[] = [];
  const passes: { n: number; d: number; ms: number; gbPerS: number; samples: number[] }[] = [];
  console.log(
    `aggregation bench — node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? '?'}, ` +
      `SIMD kernels ${simdKernelsActive() ? 'on' : 'off'}`,
  );
  const header =
    `${'rule'.padEnd(36)} ${'n'.padStart(3)} ${'d'.padStart(9)} ${'ms'.padStart(10)} ${'GB/s'.padStart(7)} ` +
    `${'× pass'.padStart(8)} ${'target s'.padStart(9)} ${'est s'.padStart(7)}  met`;
  for (const d of args.ds) {
    for (const n of args.ns) {
      const f = Math.floor((n - 1) / 4);
      // Released when this iteration's scope ends (before the next size is generated).
      const vectors = makeInput(n, d, f);
      const workerIds = vectors.map((_, i) => `w${i}`);
      const bytes = n * d * 4;
      const input = vectors;
      const pass = () => plainPass(input);
      const passSamples = time(() => plainPass(input), args.budget).samples;
      const passMs = median(passSamples);
      passes.push({ n, d, ms: passMs, gbPerS: bytes / (passMs * 1e6), samples: passSamples });
      console.log(`\n${header}`);
      console.log(
        `${'pass (sum)'.padEnd(36)} ${String(n).padStart(3)} ${d.toExponential(0).padStart(9)} ` +
          `${passMs.toFixed(2).padStart(10)} ${(bytes / (passMs * 1e6)).toFixed(2).padStart(7)} ${'1.0'.padStart(8)}`,
      );
      for (const spec of specs) {
        const row: Row = {
          label: spec.label,
          rule: spec.name,
          options: spec.options,
          n,
          d,
          f,
          ms: null,
          minMs: null,
          samples: [],
          gbPerS: null,
          ratioToPass: null,
        };
        try {
          let timed: { samples: number[]; passSamples: number[] };
          if (spec.pre) {
            const p = createPreAggregator(spec.name, spec.options);
            const track =
              p.applyTracked ?? ((v: Float32Array[], ff: number) => ({ vectors: p.apply(v, ff) }));
            timed = time(() => track(input, f).vectors[0][0], args.budget, pass);
          } else {
            const rule: AggregationRule = createRule(spec.name, spec.options);
            const agg = { vectors: input, workerIds, f };
            timed = time(() => rule.aggregate(agg).update[0], args.budget, pass);
          }
          row.samples = timed.samples;
          row.ms = median(row.samples);
          row.minMs = Math.min(...row.samples);
          row.gbPerS = bytes / (row.ms * 1e6);
          row.passMs = median(timed.passSamples);
          row.ratioToPass = row.ms / row.passMs;
          const target = n === 16 && d === 1e6 ? targetSeconds(spec.name, spec.pre) : undefined;
          if (target !== undefined) {
            row.targetS = target;
            row.estimateS = row.ratioToPass * PASS_S;
            row.met = row.estimateS <= target;
          }
        } catch (e) {
          row.error = e instanceof Error ? e.message : String(e);
        }
        rows.push(row);
        const tail = row.error ? `  (${row.error.slice(0, 70)})` : '';
        console.log(
          `${spec.label.padEnd(36)} ${String(n).padStart(3)} ${d.toExponential(0).padStart(9)} ` +
            `${fmt(row.ms, 2).padStart(10)} ${fmt(row.gbPerS, 2).padStart(7)} ${fmt(row.ratioToPass, 1).padStart(8)} ` +
            `${fmt(row.targetS ?? null, 3).padStart(9)} ${fmt(row.estimateS ?? null, 3).padStart(7)}  ` +
            `${row.met === undefined ? '' : row.met ? 'yes' : 'NO'}${tail}`,
        );
      }
    }
  }
  if (args.json) {
    const report = {
      date: new Date().toISOString(),
      node: process.version,
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? null,
      quick: args.quick,
      simdKernels: simdKernelsActive(),
      passSeconds: PASS_S,
      passes,
      results: rows,
    };
    writeFileSync(args.json, `${JSON.stringify(report, null, 2)}\n`);
    console.log(`\nwrote ${args.json}`);
  }
  if (sink === 42.4242) console.log('');
}

main();
